import { describe, expect, it } from 'vitest';
import { practisesRequestedSpecialty } from './network.js';
import { PLANS, planById } from './plans.js';
import { allowedActions, delegationFor, ReviewRefusal, transition } from './reviewPath.js';

describe.each(PLANS.map((p) => [p.id, p] as const))('review path, plan %s', (_id, plan) => {
  it('R11 BSP D.III-V: a UM clinician may approve, ask for information and escalate', () => {
    expect(allowedActions(plan, 'um-review', ['um-clinician']).sort()).toEqual(['approve', 'escalate', 'extend', 'request-info']);
  });
  it('R11 BSP D.VI-VII: once with the Medical Director or in consultative review, only the Medical Director approves', () => {
    for (const step of ['medical-director-review', 'consultative-review'] as const) {
      for (const roles of [['um-clinician'], ['delegated-group']] as const) {
        expect(allowedActions(plan, step, [...roles])).not.toContain('approve');
        expect(() => transition(plan, step, 'approve', [...roles])).toThrow(/Only medical-director may approve/);
      }
      expect(transition(plan, step, 'approve', ['medical-director'])).toBe('approved');
    }
  });
  it('R18 BSP D.IX: a delegated group approves at UM review, under its delegation', () => {
    expect(allowedActions(plan, 'um-review', ['delegated-group'])).toEqual(['approve']);
    expect(transition(plan, 'info-received', 'approve', ['delegated-group'])).toBe('approved');
  });
  it('R10 H&S 1367.01(e): a UM clinician may not deny or modify', () => {
    expect(() => transition(plan, 'um-review', 'deny', ['um-clinician'])).toThrow(ReviewRefusal);
    expect(() => transition(plan, 'um-review', 'modify', ['um-clinician'])).toThrow(/Only medical-director/);
  });
  it('R10/R11 BSP D.VI-VII: the physician reviewer may deny, modify or refer to consultative review', () => {
    expect(transition(plan, 'medical-director-review', 'deny', ['medical-director'])).toBe('denied');
    expect(transition(plan, 'medical-director-review', 'modify', ['medical-director'])).toBe('modified');
    expect(transition(plan, 'medical-director-review', 'refer-consultative-review', ['medical-director'])).toBe('consultative-review');
  });
  it('R11: an illegal transition is refused naming the current step and the allowed actions', () => {
    try {
      transition(plan, 'denied', 'approve', ['medical-director']);
      expect.unreachable();
    } catch (err) {
      expect((err as ReviewRefusal).kind).toBe('illegal-transition');
      expect((err as Error).message).toMatch(/step 'denied'.*none/);
    }
  });
  it('R14: only the second-opinion professional posts the report, after approval', () => {
    expect(transition(plan, 'approved', 'post-report', ['second-opinion-provider'])).toBe('completed');
    expect(() => transition(plan, 'um-review', 'post-report', ['second-opinion-provider'])).toThrow(/allowed now/);
  });
  it('R1: the member or requester may withdraw an open case', () => {
    expect(transition(plan, 'info-requested', 'withdraw', ['member'])).toBe('withdrawn');
  });
});

it('R10 BSP C.I: denials stay with the Medical Director or physician designee', () => {
  expect(() => transition(planById('bsp')!, 'um-review', 'deny', ['um-clinician', 'treating-provider'])).toThrow(/medical-director/);
});

it('R18 BSP D.IX: a backend client decides only for the member group it acts for, when the plan delegated to that group', () => {
  const bsp = planById('bsp')!;
  expect(delegationFor(bsp, 'bsp-ipa-a', 'bsp-ipa-a')?.clause).toBe('BSP D.IX');
  expect(delegationFor(bsp, 'bsp-ipa-a', 'bsp-ipa-b')).toBeUndefined();
  expect(delegationFor(bsp, 'bsp-ipa-b', 'bsp-ipa-b')).toBeUndefined();
  expect(delegationFor(bsp, undefined, 'bsp-ipa-a')).toBeUndefined();
  expect(delegationFor(bsp, 'bsp-ipa-a', undefined)).toBeUndefined();
  // The other policies name no delegation: no system client decides their cases.
  for (const id of ['hpsj', 'phc', 'ant']) expect(delegationFor(planById(id)!, `${id}-ipa-a`, `${id}-ipa-a`)).toBeUndefined();
});

describe('R11 BSP D.VI consultative reviewer', () => {
  it('practises the specialty requested; for a primary care opinion any primary care specialty', () => {
    const neurology = '2084N0400X';
    const cardiology = '207RC0000X';
    expect(practisesRequestedSpecialty([neurology], [cardiology, neurology])).toBe(true);
    expect(practisesRequestedSpecialty([neurology], [cardiology])).toBe(false);
    expect(practisesRequestedSpecialty([neurology], [])).toBe(false);
    // family medicine asked, internal medicine reviews: both primary care (R5)
    expect(practisesRequestedSpecialty(['207Q00000X'], ['207R00000X'])).toBe(true);
    expect(practisesRequestedSpecialty(['207Q00000X'], [neurology])).toBe(false);
  });
});
