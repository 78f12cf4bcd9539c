import { describe, expect, it } from 'vitest';
import { grievanceDeadlines } from './clock.js';
import { CLINICAL_GRIEVANCE_CATEGORIES, GRIEVANCE_CATEGORIES, type GrievanceAction, type GrievanceStep, grievanceTransition, isClinicalGrievance } from './grievance.js';
import { renderLetter } from './letters.js';
import { PLANS, planById } from './plans.js';
import { ReviewRefusal } from './reviewPath.js';
import type { UserRole } from '../fhir/request.js';

/** The refusal a transition throws: its kind and message (a grievance about a missed deadline unless named). */
function refusal(step: GrievanceStep, action: GrievanceAction, roles: UserRole[], category = 'deadline-missed', involvedInCase = false): { kind: string; message: string } | undefined {
  try {
    grievanceTransition({ step, category }, action, { roles, involvedInCase });
  } catch (err) {
    if (err instanceof ReviewRefusal) return { kind: err.kind, message: err.message };
    throw err;
  }
  return undefined;
}

const phc = planById('phc')!;
// 10:00 on Tuesday 3 November 2026 in California (PST, UTC-8).
const RECEIVED = '2026-11-03T18:00:00.000Z';

describe('R17 grievance clocks (PHC VI.E)', () => {
  it('R17 28 CCR 1300.68(d)(1): the written acknowledgment is due within 5 calendar days of receipt', () => {
    const dues = grievanceDeadlines(phc, RECEIVED, false);
    expect(dues.acknowledgmentDueAt).toBe('2026-11-08T18:00:00.000Z');
    expect(dues.considered.map((c) => c.source)).toContainEqual(expect.stringMatching(/^28 CCR 1300\.68\(d\)\(1\)/));
  });

  it('R17 H&S 1368.01(a): the resolution is due within 30 calendar days, the stricter state clock before the federal 90 days of 42 CFR 438.408(b)(1)', () => {
    const dues = grievanceDeadlines(phc, RECEIVED, false);
    expect(dues.resolutionDueAt).toBe('2026-12-03T18:00:00.000Z');
    const federal = dues.considered.find((c) => c.source.startsWith('42 CFR 438.408(b)(1)'));
    expect(federal?.dueAt).toBe('2027-02-01T18:00:00.000Z');
    expect(Date.parse(federal!.dueAt)).toBeGreaterThan(Date.parse(dues.resolutionDueAt));
  });

  it('R17 calendar days keep the local time of receipt across a change of clocks (1 November 2026 ends daylight time)', () => {
    // 10:00 PDT on Friday 30 October is 17:00 UTC; five days later it is 10:00 PST, 18:00 UTC.
    expect(grievanceDeadlines(phc, '2026-10-30T17:00:00.000Z', false).acknowledgmentDueAt).toBe('2026-11-04T18:00:00.000Z');
  });

  it('R17 H&S 1368.01(b): an imminent and serious threat to health is resolved within 72 hours, and acknowledged no later', () => {
    const dues = grievanceDeadlines(phc, RECEIVED, true);
    expect(dues.expedited).toBe(true);
    expect(dues.resolutionDueAt).toBe('2026-11-06T18:00:00.000Z');
    expect(dues.acknowledgmentDueAt).toBe(dues.resolutionDueAt);
    expect(dues.considered.map((c) => c.source)).toContainEqual(expect.stringMatching(/^H&S 1368\.01\(b\)/));
  });

  it('R17: the clocks are law, not plan policy: the same for every plan', () => {
    const all = PLANS.map((plan) => grievanceDeadlines(plan, RECEIVED, false));
    expect(new Set(all.map((d) => `${d.acknowledgmentDueAt} ${d.resolutionDueAt}`)).size).toBe(1);
  });

  it('R17: a receipt time that is no time is refused', () => {
    expect(() => grievanceDeadlines(phc, 'yesterday', false)).toThrow(RangeError);
  });
});

describe('R17 grievance handling (PHC VI.E)', () => {
  const coordinator = { roles: ['grievance-coordinator'] as UserRole[], involvedInCase: false };
  it('R17: the Grievance Coordinator acknowledges, then resolves a grievance that involves no clinical issue', () => {
    expect(grievanceTransition({ step: 'received', category: 'deadline-missed' }, 'acknowledge', coordinator)).toBe('acknowledged');
    expect(grievanceTransition({ step: 'acknowledged', category: 'deadline-missed' }, 'resolve', coordinator)).toBe('resolved');
    expect(grievanceTransition({ step: 'acknowledged', category: 'other' }, 'resolve', coordinator)).toBe('resolved');
  });

  it('R17 42 CFR 438.406(b)(2)(ii): a PCP not granting the request and a plan decision are clinical, resolved by the plan’s physician (medical-director), not the coordinator; the coordinator still acknowledges them', () => {
    expect([...CLINICAL_GRIEVANCE_CATEGORIES]).toEqual(['pcp-not-granted', 'plan-decision']);
    expect(GRIEVANCE_CATEGORIES.filter((c) => !isClinicalGrievance(c))).toEqual(['deadline-missed', 'other']);
    expect(isClinicalGrievance('no-such-category')).toBe(true);
    for (const category of CLINICAL_GRIEVANCE_CATEGORIES) {
      expect(grievanceTransition({ step: 'received', category }, 'acknowledge', coordinator)).toBe('acknowledged');
      expect(refusal('acknowledged', 'resolve', ['grievance-coordinator'], category)).toEqual({ kind: 'role', message: expect.stringMatching(/^Only medical-director may resolve a grievance involving clinical issues, 42 CFR 438\.406\(b\)\(2\)\(ii\)/) });
      expect(grievanceTransition({ step: 'acknowledged', category }, 'resolve', { roles: ['medical-director'], involvedInCase: false })).toBe('resolved');
      expect(refusal('received', 'acknowledge', ['medical-director'], category)?.kind).toBe('role');
    }
    // Not clinical: the physician does not take the coordinator's work.
    expect(refusal('acknowledged', 'resolve', ['medical-director'], 'deadline-missed')?.kind).toBe('role');
  });

  it('R17 42 CFR 438.406(b)(2)(i): whoever reviewed or decided the case does not resolve a grievance about it, physician or coordinator', () => {
    expect(refusal('acknowledged', 'resolve', ['medical-director'], 'plan-decision', true)).toEqual({ kind: 'role', message: expect.stringMatching(/42 CFR 438\.406\(b\)\(2\)\(i\)/) });
    expect(refusal('acknowledged', 'resolve', ['grievance-coordinator'], 'deadline-missed', true)?.message).toMatch(/438\.406\(b\)\(2\)\(i\)/);
    // Acknowledging decides nothing.
    expect(grievanceTransition({ step: 'received', category: 'plan-decision' }, 'acknowledge', { roles: ['grievance-coordinator'], involvedInCase: true })).toBe('acknowledged');
  });

  it('R17: no resolution before the acknowledgment, no second acknowledgment, nothing after the resolution', () => {
    expect(refusal('received', 'resolve', ['grievance-coordinator'])).toEqual({ kind: 'illegal-transition', message: expect.stringMatching(/in step 'received'; allowed now: acknowledge$/) });
    expect(refusal('acknowledged', 'acknowledge', ['grievance-coordinator'])).toEqual({ kind: 'illegal-transition', message: expect.stringMatching(/allowed now: resolve$/) });
    expect(refusal('resolved', 'resolve', ['grievance-coordinator'])).toEqual({ kind: 'illegal-transition', message: expect.stringMatching(/the grievance is resolved/) });
  });

  it('R17: other roles may not handle a grievance, whatever its step', () => {
    for (const roles of [['um-clinician'], ['medical-director'], ['member'], ['plan-admin']] as const) {
      expect(refusal('received', 'acknowledge', [...roles])).toEqual({ kind: 'role', message: expect.stringMatching(/^Only grievance-coordinator/) });
      expect(refusal('resolved', 'resolve', [...roles])).toEqual({ kind: 'role', message: expect.stringMatching(/^Only grievance-coordinator/) });
    }
  });
});

describe('R17 grievance letters', () => {
  const facts = { plan: phc, memberName: 'Alice <Thompson>', date: '2026-11-05' };

  it('R17 28 CCR 1300.68(d)(1): the acknowledgment gives the resolution date and the member’s words, in English and Spanish', () => {
    for (const [language, words] of [['en', /We received your grievance.*by 2026-12-03/], ['es', /Recibimos su queja.*a más tardar el 2026-12-03/]] as const) {
      const { title, html } = renderLetter('grievance-acknowledgment', { ...facts, language, audience: 'member', grievance: { statement: 'My PCP <refused>', resolutionDueDate: '2026-12-03', expedited: false } });
      expect(title).toMatch(language === 'en' ? /received your grievance/ : /Recibimos su queja/);
      expect(html).toMatch(words);
      expect(html).toContain('My PCP &lt;refused&gt;');
      expect(html).toContain(`lang="${language}"`);
      expect(html).not.toMatch(/72 hours|72 horas/); // the urgent wording is the urgent grievance's alone
    }
  });

  it('R17 H&S 1368.01(b): an urgent grievance’s acknowledgment says 72 hours and gives the DMHC Help Center at once', () => {
    const { html } = renderLetter('grievance-acknowledgment', { ...facts, language: 'en', audience: 'member', grievance: { statement: 'x', resolutionDueDate: '2026-11-06', expedited: true } });
    expect(html).toMatch(/72 hours/);
    expect(html).toContain('1-888-466-2219');
  });

  it('R17 H&S 1368.01(b): the notice sent at the filing of an urgent grievance says it is urgent, when it will be decided and that the member may tell the DMHC now, in English and Spanish; the provider copy says what the member was told', () => {
    const grievance = { statement: 'I cannot <breathe>', resolutionDueDate: '2026-11-06 10:00 PST', expedited: true };
    const expected = {
      en: [/handling it as urgent: we will decide it and tell you our decision by 2026-11-06 10:00 PST, within 72 hours/, /right to tell the California Department of Managed Health Care \(DMHC\) about your grievance right away/, /is responsible for regulating health care service plans/],
      es: [/la tratamos como urgente: la decidiremos.*2026-11-06 10:00 PST, dentro de las 72 horas/, /derecho a informar de inmediato sobre su queja al Departamento/, /es responsable de regular los planes/],
    } as const;
    for (const language of ['en', 'es'] as const) {
      const { title, html } = renderLetter('grievance-urgent', { ...facts, language, audience: 'member', grievance });
      expect(title).toMatch(language === 'en' ? /urgent grievance.*DMHC/ : /queja urgente.*DMHC/);
      for (const words of expected[language]) expect(html).toMatch(words);
      expect(html).toContain('I cannot &lt;breathe&gt;');
      expect(html).toContain('1-888-466-2219');
    }
    const copy = renderLetter('grievance-urgent', { ...facts, language: 'en', audience: 'provider', grievance });
    expect(copy.title).toMatch(/^Copy/);
    expect(copy.html).toMatch(/We told your patient that they have the right to tell the California Department of Managed Health Care/);
  });

  it('R17 H&S 1368.01, 28 CCR 1300.68(d)(3): the resolution gives the outcome, its reasons and the further rights (DMHC, Independent Medical Review, State Hearing), in English and Spanish', () => {
    const expected = {
      en: [/not decide your grievance in your favor/, /Independent Medical Review/, /State Hearing/, /Your Rights/],
      es: [/No decidimos su queja a su favor/, /Revisión Médica Independiente/, /Audiencia Estatal/, /Sus derechos/],
    } as const;
    for (const language of ['en', 'es'] as const) {
      const { html } = renderLetter('grievance-resolution', { ...facts, language, audience: 'member', grievanceOutcome: 'not-upheld', reason: 'The PCP <did> submit it' });
      for (const words of expected[language]) expect(html).toMatch(words);
      expect(html).toContain('The PCP &lt;did&gt; submit it');
      expect(html).toContain('1-888-466-2219');
      expect(html).toContain('1-800-743-8525');
    }
  });

  it('R17: a provider who filed for the member gets a copy about "your patient"', () => {
    const { title, html } = renderLetter('grievance-resolution', { ...facts, language: 'en', audience: 'provider', grievanceOutcome: 'upheld', reason: 'r' });
    expect(title).toMatch(/^Copy/);
    expect(html).toMatch(/in your patient’s favor/);
  });
});
