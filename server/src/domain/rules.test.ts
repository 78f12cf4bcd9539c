import { describe, expect, it } from 'vitest';
import { computeDeadlines, extendDeadline, notificationDues } from './clock.js';
import { DomainRuleError, type Professional, type SecondOpinionInput } from './model.js';
import { PLANS, type PlanProfile, planById } from './plans.js';
import { decideSecondOpinion } from './rules.js';

const CARDIOLOGY = '207RC0000X';
const NEUROLOGY = '2084N0400X';
const PSYCHIATRY = '2084P0800X';
const FAMILY = '207Q00000X';
const PSYCHOLOGY = '103T00000X';

const pro = (id: string, over: Partial<Professional>): Professional => ({
  practitionerId: id,
  practitionerRoleId: `role-${id}`,
  name: id,
  specialties: [],
  isPrimaryCare: false,
  organizationId: 'ipa-a',
  networkIds: ['net'],
  boardCertified: true,
  mediCalEnrolled: true,
  active: true,
  acceptingNewPatients: true,
  ...over,
});

const directory: Professional[] = [
  pro('pcp-1', { isPrimaryCare: true, specialties: [FAMILY] }),
  pro('pcp-2', { isPrimaryCare: true, specialties: [FAMILY], position: { latitude: 37.95, longitude: -121.29 } }),
  pro('pcp-3', { isPrimaryCare: true, specialties: [FAMILY], organizationId: 'ipa-b', position: { latitude: 37.96, longitude: -121.3 } }),
  pro('card-1', { specialties: [CARDIOLOGY] }),
  pro('card-2', { specialties: [CARDIOLOGY], organizationId: 'ipa-b', position: { latitude: 38.5, longitude: -121.5 } }),
  pro('card-3', { specialties: [CARDIOLOGY], boardCertified: false, position: { latitude: 37.9, longitude: -121.2 } }),
  pro('card-oon', { specialties: [CARDIOLOGY], organizationId: 'oon-group', networkIds: [] }),
  pro('neuro-oon', { specialties: [NEUROLOGY], organizationId: 'oon-group', networkIds: [] }),
  pro('neuro-unenrolled', { specialties: [NEUROLOGY], organizationId: 'oon-group', networkIds: [], mediCalEnrolled: false }),
  pro('psych-1', { specialties: [PSYCHIATRY], organizationId: 'ipa-b' }),
  pro('psych-oon', { specialties: [PSYCHIATRY], organizationId: 'oon-group', networkIds: [] }),
  pro('psychologist-1', { specialties: [PSYCHOLOGY], boardCertified: false, position: { latitude: 37.96, longitude: -121.3 } }),
  pro('psychologist-oon', { specialties: [PSYCHOLOGY], organizationId: 'oon-group', networkIds: [], boardCertified: false }),
  pro('psychiatrist-uncertified', { specialties: [PSYCHIATRY], boardCertified: false }),
];
const byId = (id: string) => directory.find((p) => p.practitionerId === id)!;

function input(over: Partial<SecondOpinionInput> = {}): SecondOpinionInput {
  return {
    receivedAt: '2026-11-16T10:00:00-08:00',
    member: { patientId: 'p1', memberGroupId: 'ipa-a', planNetworkId: 'net', pcpPractitionerId: 'pcp-1', position: { latitude: 37.95, longitude: -121.29 }, previouslyInvolvedPractitionerIds: ['pcp-1', 'card-1'] },
    requesterKind: 'pcp',
    reasons: [{ category: 'surgery-necessity' }],
    priority: 'routine',
    imminentThreat: false,
    careQuestioned: { kind: 'specialist', specialty: CARDIOLOGY, practitionerId: 'card-1' },
    behavioralHealth: false,
    directory,
    ...over,
  };
}

const ids = (d: ReturnType<typeof decideSecondOpinion>) => d.qualifiedInNetworkProviders.map((q) => q.professional.practitionerId);
const byPlan = (f: (plan: PlanProfile) => void) => PLANS.map((plan) => [plan.id, plan] as const).forEach(([, plan]) => f(plan));

describe.each(PLANS.map((p) => [p.id, p] as const))('plan %s', (_id, plan) => {
  describe('R1 who may ask (HPSJ II.A, PHC VI.A, ANT Policy, BSP C.I-II)', () => {
    it.each(['member', 'authorized-representative', 'pcp', 'treating-specialist'] as const)('R1: a %s is a requester the policy names', (kind) => {
      expect(decideSecondOpinion(plan, input({ requesterKind: kind })).requesterAccepted).toBe(true);
    });
    it('R1: a requester the policies do not name is routed to UM review, never dropped', () => {
      const d = decideSecondOpinion(plan, input({ requesterKind: 'other', requestedProfessional: byId('card-2') }));
      expect(d.requesterAccepted).toBe(false);
      expect(d.reviewRoute).toBe('um-review');
      expect(d.outcome).toBe('pended');
      expect(d.findings.some((f) => f.rule === 'R1' && /UM review/.test(f.text))).toBe(true);
      // The requester, not the (qualified) professional, is why: no R4 finding.
      expect(d.findings.filter((f) => f.rule === 'R4')).toEqual([]);
    });
    it('R1: a declared requester kind never upgrades the requester the record shows', () => {
      const d = decideSecondOpinion(plan, input({ requesterKind: 'other', declaredRequesterKind: 'treating-specialist', requestedProfessional: byId('card-2') }));
      expect([d.requesterAccepted, d.reviewRoute, d.outcome]).toEqual([false, 'um-review', 'pended']);
      expect(d.findings.find((f) => f.rule === 'R1')?.text).toMatch(/declared 'treating-specialist', which the record does not show.*UM review/);
    });
    it('R1: a declared "other" is a downgrade and is honoured', () => {
      const d = decideSecondOpinion(plan, input({ requesterKind: 'pcp', declaredRequesterKind: 'other', requestedProfessional: byId('card-2') }));
      expect([d.requesterAccepted, d.reviewRoute]).toEqual([false, 'um-review']);
    });
    it('R1 PHC VI.A: a PCP opinion requested by an authorized representative is accepted', () => {
      const d = decideSecondOpinion(plan, input({ requesterKind: 'authorized-representative', careQuestioned: { kind: 'primary-care', practitionerId: 'pcp-1' }, requestedProfessional: byId('pcp-2') }));
      expect(d.requesterAccepted).toBe(true);
      expect(d.authorizationRequired).toBe(false);
      expect(d.outcome).toBe('approved');
      expect(d.findings.find((f) => f.rule === 'R1')?.clause).toBe('PHC VI.A');
    });
  });

  describe('R2 reasons (HPSJ II.B, PHC VI.A.1-5, ANT II.A-E, BSP C.II.a-e)', () => {
    it.each(['surgery-necessity', 'serious-condition', 'unclear-diagnosis', 'not-improving', 'persistent-concerns'] as const)('R2: %s is a valid reason', (category) => {
      expect(decideSecondOpinion(plan, input({ reasons: [{ category }] })).findings.find((f) => f.rule === 'R2')?.text).toContain(category);
    });
    it('R2: no reason is refused', () => {
      expect(() => decideSecondOpinion(plan, input({ reasons: [] }))).toThrow(DomainRuleError);
    });
    it('R2: a request giving only a condition is recorded as "other" with the condition\'s words and goes to a UM clinician', () => {
      const d = decideSecondOpinion(plan, input({ reasons: [{ category: 'other', text: 'Atrial fibrillation', inferredFromCondition: true }], requestedProfessional: byId('card-2') }));
      expect(d.findings.find((f) => f.rule === 'R2')?.text).toBe('Reason: other (Atrial fibrillation)');
      expect([d.reviewRoute, d.outcome]).toEqual(['um-review', 'pended']);
      expect(d.findings.some((f) => f.rule === 'R2' && /No reason was stated/.test(f.text))).toBe(true);
    });
    it('R2: "other" needs a description', () => {
      expect(() => decideSecondOpinion(plan, input({ reasons: [{ category: 'other' }] }))).toThrow(/description/);
      expect(decideSecondOpinion(plan, input({ reasons: [{ category: 'other', text: 'second look at imaging' }] })).requesterAccepted).toBe(true);
    });
  });

  it('R3 in network needs no authorization (HPSJ III.A, PHC VI.A, ANT IV), except BSP routes every request to a UM clinician (BSP D.I)', () => {
    const d = decideSecondOpinion(plan, input({ requestedProfessional: byId('card-2') }));
    expect(d.outOfNetwork).toBe(false);
    if (plan.id === 'bsp') {
      expect(d.authorizationRequired).toBe(true);
      expect(d.reviewRoute).toBe('um-review');
      expect(d.outcome).toBe('pended');
    } else {
      expect(d.authorizationRequired).toBe(false);
      expect(d.outcome).toBe('approved');
      expect(d.findings.find((f) => f.rule === 'R3')?.clause).toBe(plan.routing.clause);
    }
  });

  it('R3 BSP D.VI.a: a member designating an in-network PCP needs no authorization', () => {
    const d = decideSecondOpinion(plan, input({ requesterKind: 'member', careQuestioned: { kind: 'primary-care', practitionerId: 'pcp-1' }, requestedProfessional: byId('pcp-2') }));
    expect(d.authorizationRequired).toBe(false);
    expect(d.outcome).toBe('approved');
  });

  it('R3 BSP D.VI.a: a member PCP request without a designated PCP goes to the UM clinician', () => {
    const d = decideSecondOpinion(plan, input({ requesterKind: 'member', careQuestioned: { kind: 'primary-care', practitionerId: 'pcp-1' } }));
    expect(d.outOfNetwork).toBe(false);
    expect([d.reviewRoute, d.outcome]).toEqual(['um-review', 'pended']);
    // BSP D.I: without the D.VI.a designation, the UM clinician authorizes; elsewhere in network needs none, only a professional named.
    expect(d.authorizationRequired).toBe(plan.id === 'bsp');
    expect(d.findings.find((f) => f.rule === 'R3')).toEqual({ rule: 'R3', clause: plan.routing.clause, text: 'No professional is named: the request goes to a UM clinician, who names a qualified one' });
  });

  it('R3 BSP D.VI.a: a member designating a PCP outside their physician organization goes to the UM clinician', () => {
    const d = decideSecondOpinion(plan, input({ requesterKind: 'member', careQuestioned: { kind: 'primary-care', practitionerId: 'pcp-1' }, requestedProfessional: byId('pcp-3') }));
    expect(d.outcome).toBe(plan.id === 'bsp' ? 'pended' : 'approved');
    expect(d.authorizationRequired).toBe(plan.id === 'bsp');
  });

  it('R3 BSP D.I, D.VI.a: a PCP opinion the PCP (not the member) requests goes to the UM clinician in BSP', () => {
    const d = decideSecondOpinion(plan, input({ requesterKind: 'pcp', careQuestioned: { kind: 'primary-care', practitionerId: 'pcp-1' }, requestedProfessional: byId('pcp-2') }));
    expect(d.outcome).toBe(plan.id === 'bsp' ? 'pended' : 'approved');
  });

  it('R3 (R13, R14): a specialist request naming no professional is never approved on receipt: a UM clinician names one', () => {
    const d = decideSecondOpinion(plan, input());
    expect(d.outOfNetwork).toBe(false);
    expect([d.reviewRoute, d.outcome]).toEqual(['um-review', 'pended']);
    expect(d.findings.find((f) => f.rule === 'R3')?.text).toMatch(/No professional is named/);
  });

  it('R3 (HPSJ III.A, PHC VI.A, ANT IV): naming no professional in network needs no authorization: the plan arranges one; BSP D.I authorizes', () => {
    const d = decideSecondOpinion(plan, input());
    const inNetworkFree = plan.id !== 'bsp';
    expect([d.authorizationRequired, d.professionalToArrange]).toEqual([!inNetworkFree, inNetworkFree]);
    const arranging = d.findings.filter((f) => f.rule === 'R3' && /the plan arranges a qualified professional in its network/.test(f.text));
    expect(arranging).toHaveLength(inNetworkFree ? 1 : 0);
    // Out of network, or naming someone, is no arrangement.
    expect(decideSecondOpinion(plan, input({ requestedProfessional: byId('card-oon') })).professionalToArrange).toBe(false);
    expect(decideSecondOpinion(plan, input({ requestedProfessional: byId('card-2') })).professionalToArrange).toBe(false);
  });

  it('R4 (BSP A): a professional previously involved in the treatment plan does not qualify', () => {
    const d = decideSecondOpinion(plan, input({ requestedProfessional: byId('card-1') }));
    expect(d.requestedQualified).toBe(false);
    expect(d.outcome).toBe('pended');
    expect(ids(d)).not.toContain('card-1');
    expect(d.findings.find((f) => f.rule === 'R4')?.text).toMatch(/previously involved/);
  });

  it('R5 opinion on PCP care: qualified PCPs, within the same physician organization for BSP (D.VI.a)', () => {
    const d = decideSecondOpinion(plan, input({ careQuestioned: { kind: 'primary-care', practitionerId: 'pcp-1' } }));
    expect(ids(d)).toEqual(plan.id === 'bsp' ? ['pcp-2'] : ['pcp-2', 'pcp-3']);
  });

  it('R6 opinion on specialist care: same specialty in network; BSP: board certified, member group first (D.VI.b)', () => {
    const d = decideSecondOpinion(plan, input());
    if (plan.id === 'bsp') expect(ids(d)).toEqual(['card-2']);
    else expect(ids(d)).toEqual(['card-3', 'card-2']); // nearest first (R7)
    expect(ids(d)).not.toContain('card-oon');
  });

  it('R7 edge: out-of-network request when an in-network specialist of the same specialty exists in another IPA', () => {
    const d = decideSecondOpinion(plan, input({ requestedProfessional: byId('card-oon') }));
    expect(d.outOfNetwork).toBe(true);
    expect(d.authorizationRequired).toBe(true);
    expect(d.outOfNetworkJustified).toBe(false);
    expect(ids(d)).toContain('card-2');
    expect(d.findings.find((f) => f.rule === 'R7')?.text).toMatch(/available in network/);
  });

  it("R7: limiting the choice to the network cites the case's own plan (HPSJ III.D, PHC VI.C, ANT IV, BSP C.I)", () => {
    const d = decideSecondOpinion(plan, input({ requestedProfessional: byId('card-oon') }));
    const own = { hpsj: 'HPSJ III.D', phc: 'PHC VI.C', ant: 'ANT IV', bsp: 'BSP C.I, D.VI.b' }[plan.id];
    expect(d.findings.filter((f) => f.rule === 'R7').map((f) => f.clause)).toEqual([own]);
  });

  it('R7 edge: specialist opinion when only a different specialty is in network: out of network is justified', () => {
    const d = decideSecondOpinion(plan, input({ careQuestioned: { kind: 'specialist', specialty: NEUROLOGY }, requestedProfessional: byId('neuro-oon') }));
    expect(d.qualifiedInNetworkProviders).toEqual([]);
    expect(d.outOfNetworkJustified).toBe(true);
    expect(d.authorizationRequired).toBe(true);
    expect(d.findings.find((f) => f.rule === 'R7')?.text).toMatch(/No qualified professional is available in network/);
  });

  it('R7 PHC VI.A: an out-of-network professional must be Medi-Cal certified where the plan says so', () => {
    const d = decideSecondOpinion(plan, input({ careQuestioned: { kind: 'specialist', specialty: NEUROLOGY }, requestedProfessional: byId('neuro-unenrolled') }));
    expect(d.requestedQualified).toBe(!plan.network.outOfNetworkMediCalEnrollment);
  });

  it('R8 out of network needs prior authorization (HPSJ III.B, PHC VI.A) and is pended for UM review', () => {
    const d = decideSecondOpinion(plan, input({ careQuestioned: { kind: 'specialist', specialty: NEUROLOGY }, requestedProfessional: byId('neuro-oon') }));
    expect(d.outcome).toBe('pended');
    expect(d.findings.some((f) => f.rule === 'R8')).toBe(true);
  });

  it('R12 no cost to the member (HPSJ II.A, ANT IV, BSP D.VIII), in and out of network', () => {
    expect(decideSecondOpinion(plan, input()).memberCost).toBe(0);
    expect(decideSecondOpinion(plan, input({ requestedProfessional: byId('card-oon') })).memberCost).toBe(0);
  });

  it('R22 parity (PHC, 42 CFR 438.910): a behavioral health request follows the same rules', () => {
    const bh = decideSecondOpinion(plan, input({ behavioralHealth: true, careQuestioned: { kind: 'specialist', specialty: PSYCHIATRY }, requestedProfessional: byId('psych-oon') }));
    const medical = decideSecondOpinion(plan, input({ careQuestioned: { kind: 'specialist', specialty: CARDIOLOGY }, requestedProfessional: byId('card-oon') }));
    expect([bh.authorizationRequired, bh.outcome, bh.outOfNetwork]).toEqual([medical.authorizationRequired, medical.outcome, medical.outOfNetwork]);
    expect(ids(bh).sort()).toEqual(plan.id === 'bsp' ? ['psych-1'] : ['psych-1', 'psychiatrist-uncertified']);
    expect(bh.findings.some((f) => f.rule === 'R22')).toBe(true);
  });

  it('R22, R6 BSP D.VI.b: a psychologist qualifies without the board certification asked of physicians; a psychiatrist still needs it', () => {
    const psychology = decideSecondOpinion(plan, input({ behavioralHealth: true, careQuestioned: { kind: 'specialist', specialty: PSYCHOLOGY }, requestedProfessional: byId('psychologist-oon') }));
    expect(ids(psychology)).toEqual(['psychologist-1']);
    expect(psychology.outOfNetworkJustified).toBe(false);
    const psychiatry = decideSecondOpinion(plan, input({ behavioralHealth: true, careQuestioned: { kind: 'specialist', specialty: PSYCHIATRY } }));
    if (plan.id === 'bsp') expect(ids(psychiatry)).toEqual(['psych-1']);
    else expect(ids(psychiatry).sort()).toEqual(['psych-1', 'psychiatrist-uncertified']);
  });

  describe('R9 deadlines', () => {
    it('R9 42 CFR 438.210(d): standard within 7 calendar days, expedited within 72 hours', () => {
      const standard = computeDeadlines(plan, '2026-11-16T10:00:00-08:00', { expedited: false, imminentThreat: false, outOfNetwork: false });
      expect(standard.decisionDueAt).toBe('2026-11-23T18:00:00.000Z');
      const expedited = computeDeadlines(plan, '2026-11-16T10:00:00-08:00', { expedited: true, imminentThreat: false, outOfNetwork: true });
      expect(expedited.decisionDueAt).toBe('2026-11-19T18:00:00.000Z');
    });
    it('R9 edge: a routine out-of-network request at 23:30 on the Wednesday before Thanksgiving', () => {
      const d = computeDeadlines(plan, '2026-11-25T23:30:00-08:00', { expedited: false, imminentThreat: false, outOfNetwork: true });
      // 7 calendar days: Wed Dec 2, 23:30 PST. PHC's 5 business days skip Thanksgiving, the day after and the weekend: end of Fri Dec 4.
      expect(d.decisionDueAt).toBe('2026-12-03T07:30:00.000Z');
      if (plan.id === 'phc') expect(d.considered.map((c) => c.dueAt)).toContain('2026-12-05T07:59:59.999Z');
      // H&S 1367.01(h)(3) would give the end of Fri Dec 4 (member) and Thu Dec 3 23:30 (provider), but 42 CFR
      // 438.210(d)(1) gives 7 days for the decision *and its notice*: both by Wed Dec 2, 23:30.
      expect(d.memberNotificationDueAt).toBe('2026-12-03T07:30:00.000Z');
      expect(d.providerNotificationDueAt).toBe('2026-12-03T07:30:00.000Z');
    });
    it('R9 edge: 72 hours across the spring DST change are 72 elapsed hours', () => {
      const d = computeDeadlines(plan, '2026-03-07T10:00:00-08:00', { expedited: true, imminentThreat: true, outOfNetwork: false });
      expect(d.decisionDueAt).toBe('2026-03-10T18:00:00.000Z'); // 11:00 PDT
      expect(d.opinionDueAt).toBe('2026-03-10T18:00:00.000Z'); // H&S 1383.15
    });
    it('R9 edge: 7 calendar days across the fall DST change keep the local time', () => {
      const d = computeDeadlines(plan, '2026-10-30T09:00:00-07:00', { expedited: false, imminentThreat: false, outOfNetwork: false });
      expect(d.decisionDueAt).toBe('2026-11-06T17:00:00.000Z'); // 09:00 PST
    });
    it('R9: the due date is the earliest deadline that applies', () => {
      // Received Sat Oct 17, 10:00 PDT. 7 calendar days: Sat Oct 24, 10:00. PHC VI.D.2, 5 business days: end of Fri Oct 23.
      const d = computeDeadlines(plan, '2026-10-17T10:00:00-07:00', { expedited: false, imminentThreat: false, outOfNetwork: true });
      const federal = '2026-10-24T17:00:00.000Z';
      const phc = '2026-10-24T06:59:59.999Z';
      expect(d.considered.map((c) => c.dueAt)).toEqual(plan.id === 'phc' ? [federal, phc] : [federal]);
      expect(d.decisionDueAt).toBe(plan.id === 'phc' ? phc : federal);
    });
    it('R9 42 CFR 438.210(d)(2): an expedited decision and its notices are due within the 72 hours', () => {
      // Sat Oct 31, 10:00 PDT: 72 hours is Tue Nov 3, 09:00 PST; 2 business days after it would be the end of Thu Nov 5.
      const d = computeDeadlines(plan, '2026-10-31T10:00:00-07:00', { expedited: true, imminentThreat: false, outOfNetwork: false });
      expect([d.decisionDueAt, d.providerNotificationDueAt, d.memberNotificationDueAt]).toEqual(['2026-11-03T17:00:00.000Z', '2026-11-03T17:00:00.000Z', '2026-11-03T17:00:00.000Z']);
    });
    it('R9 H&S 1367.01(h)(3): decided early, the provider is told within 24 hours and the member within 2 business days', () => {
      // Decided Mon Nov 16, 10:00 PST; the notice clock runs to Mon Nov 23.
      expect(notificationDues(plan, '2026-11-16T18:00:00.000Z', '2026-11-23T18:00:00.000Z')).toEqual({
        providerNotificationDueAt: '2026-11-17T18:00:00.000Z',
        memberNotificationDueAt: '2026-11-19T07:59:59.999Z', // end of Wed Nov 18
      });
    });
    it('R9 H&S 1383.15: an imminent and serious threat makes a routine request expedited (72-hour decision, urgent)', () => {
      // Fri Sep 4, 16:00 PDT: the opinion is due Mon Sep 7, 16:00; so is the decision, not Fri Sep 11.
      const d = decideSecondOpinion(plan, input({ receivedAt: '2026-09-04T16:00:00-07:00', priority: 'routine', imminentThreat: true, requestedProfessional: byId('card-2') }));
      expect(d.deadlines.expedited).toBe(true);
      expect(d.deadlines.decisionDueAt).toBe('2026-09-07T23:00:00.000Z');
      expect(d.deadlines.opinionDueAt).toBe('2026-09-07T23:00:00.000Z');
      expect(d.findings.some((f) => f.rule === 'R9' && f.clause.startsWith('H&S 1383.15'))).toBe(true);
    });
    it('R9 42 CFR 438.210(d)(1)(ii): an extension of up to 14 days', () => {
      expect(extendDeadline(plan, '2026-11-23T18:00:00.000Z', 14)).toBe('2026-12-07T18:00:00.000Z');
      expect(() => extendDeadline(plan, '2026-11-23T18:00:00.000Z', 15)).toThrow(RangeError);
    });
  });
});

it('R9 PHC VI.D: urgent out-of-network requests within 72 hours, routine within 5 business days', () => {
  const phc = planById('phc')!;
  const routine = computeDeadlines(phc, '2026-11-30T09:00:00-08:00', { expedited: false, imminentThreat: false, outOfNetwork: true });
  expect(routine.considered.find((c) => c.source.startsWith('PHC VI.D.2'))?.dueAt).toBe('2026-12-08T07:59:59.999Z'); // end of Mon Dec 7
  expect(routine.decisionDueAt).toBe('2026-12-07T17:00:00.000Z'); // CMS 7 days is earlier
  const urgent = computeDeadlines(phc, '2026-11-30T09:00:00-08:00', { expedited: true, imminentThreat: false, outOfNetwork: true });
  expect(urgent.considered.some((c) => c.source.startsWith('PHC VI.D.1'))).toBe(true);
  expect(urgent.decisionDueAt).toBe('2026-12-03T17:00:00.000Z');
});

describe('R9 PHC VI.D.2: the member is notified within 5 business days of receipt', () => {
  const phc = planById('phc')!;
  const routineOutOfNetwork = (receivedAt: string) => computeDeadlines(phc, receivedAt, { expedited: false, imminentThreat: false, outOfNetwork: true });
  const phcClock = (d: ReturnType<typeof computeDeadlines>) => d.considered.find((c) => c.source.startsWith('PHC VI.D.2'))?.dueAt;

  it('R9 PHC VI.D.2: received on a Saturday, the member is notified by the end of Friday', () => {
    const d = routineOutOfNetwork('2026-10-17T10:00:00-07:00');
    expect(d.memberNotificationDueAt).toBe('2026-10-24T06:59:59.999Z'); // end of Fri Oct 23, not 2 business days after it
    expect(d.providerNotificationDueAt).toBe('2026-10-24T06:59:59.999Z');
  });

  it.each([
    // received, PHC VI.D.2 (end of the 5th business day), member notified by (the earlier 7-calendar-day notice clock)
    ['Mon 2026-11-30 09:00 PST', '2026-11-30T09:00:00-08:00', '2026-12-08T07:59:59.999Z', '2026-12-07T17:00:00.000Z'],
    ['Fri 2026-09-04 16:00 PDT, Labor Day', '2026-09-04T16:00:00-07:00', '2026-09-15T06:59:59.999Z', '2026-09-11T23:00:00.000Z'],
    ['Fri 2027-01-15 16:00 PST, MLK Day', '2027-01-15T16:00:00-08:00', '2027-01-26T07:59:59.999Z', '2027-01-23T00:00:00.000Z'],
    ['Thu 2026-12-24 14:00 PST, Christmas and New Year', '2026-12-24T14:00:00-08:00', '2027-01-05T07:59:59.999Z', '2026-12-31T22:00:00.000Z'],
    ['Sat 2026-12-26 10:00 PST', '2026-12-26T10:00:00-08:00', '2027-01-05T07:59:59.999Z', '2027-01-02T18:00:00.000Z'],
  ])('R9 PHC VI.D.2 with 42 CFR 438.210(d)(1): received %s', (_label, receivedAt, fiveBusinessDays, notifiedBy) => {
    const d = routineOutOfNetwork(receivedAt);
    expect(phcClock(d)).toBe(fiveBusinessDays);
    expect(d.memberNotificationDueAt).toBe(notifiedBy);
  });
});

it('every plan profile is valid data with English and Spanish notices', () => {
  byPlan((plan) => expect(plan.languages).toEqual(expect.arrayContaining(['en', 'es'])));
  expect(PLANS.map((p) => p.id)).toEqual(['hpsj', 'phc', 'ant', 'bsp']);
});
