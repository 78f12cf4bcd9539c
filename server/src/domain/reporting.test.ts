import { describe, expect, it } from 'vitest';
import { type CaseRecord, type GrievanceRecord, grievanceFigures, inclusiveEnd, periodBounds, reportFigures } from './reporting.js';

/** Six cases counted by hand below. */
const cases: CaseRecord[] = [
  { plan: 'bsp', reasons: ['surgery-necessity'], outcome: 'approved', expedited: false, receivedAt: '2026-07-01T00:00:00Z', dueAt: '2026-07-08T00:00:00Z', decidedAt: '2026-07-02T00:00:00Z', extended: false, providerGroup: 'ipa-a' }, // 24 h, on time
  { plan: 'bsp', reasons: ['serious-condition', 'other'], outcome: 'denied', expedited: false, receivedAt: '2026-07-01T00:00:00Z', dueAt: '2026-07-08T00:00:00Z', decidedAt: '2026-07-10T00:00:00Z', extended: false, providerGroup: 'ipa-a' }, // 216 h, late
  { plan: 'bsp', reasons: ['unclear-diagnosis'], outcome: 'completed', expedited: true, receivedAt: '2026-08-01T00:00:00Z', dueAt: '2026-08-04T00:00:00Z', decidedAt: '2026-08-02T12:00:00Z', extended: false, providerGroup: 'ipa-b' }, // 36 h
  { plan: 'bsp', reasons: ['not-improving'], outcome: 'denied', expedited: true, receivedAt: '2026-08-01T00:00:00Z', dueAt: '2026-08-04T00:00:00Z', decidedAt: '2026-08-03T00:00:00Z', extended: false }, // 48 h
  { plan: 'bsp', reasons: ['surgery-necessity'], outcome: 'approved', expedited: false, receivedAt: '2026-09-01T00:00:00Z', dueAt: '2026-09-22T00:00:00Z', decidedAt: '2026-09-20T00:00:00Z', extended: true, providerGroup: 'ipa-b' }, // 456 h, on time after extension
  { plan: 'bsp', reasons: ['persistent-concerns'], outcome: 'um-review', expedited: false, receivedAt: '2026-09-20T00:00:00Z', dueAt: '2026-09-27T00:00:00Z', extended: false, providerGroup: 'ipa-a' }, // open, overdue on Oct 1
];

describe('R19 committee figures (BSP D.X, F; 42 CFR 438.210(f)), checked against a hand count', () => {
  const f = reportFigures(cases, [], new Date('2026-10-01T00:00:00Z'));
  it('counts by reason, outcome and provider group', () => {
    expect(f.cases).toBe(6);
    expect(f.byReason).toEqual({ 'surgery-necessity': 2, 'serious-condition': 1, other: 1, 'unclear-diagnosis': 1, 'not-improving': 1, 'persistent-concerns': 1 });
    expect(f.byOutcome).toEqual({ approved: 2, denied: 2, completed: 1, 'um-review': 1 });
    expect(f.byProviderGroup).toEqual({ 'ipa-a': 3, 'ipa-b': 2, unassigned: 1 });
  });
  it('R19 BSP D.X: approvals and denials coded by category: each reason category by outcome, a case with two reasons under each', () => {
    expect(f.byReasonAndOutcome).toEqual({
      'surgery-necessity': { approved: 2 },
      'serious-condition': { denied: 1 },
      other: { denied: 1 },
      'unclear-diagnosis': { completed: 1 },
      'not-improving': { denied: 1 },
      'persistent-concerns': { 'um-review': 1 },
    });
  });
  it('timeliness and overdue', () => {
    expect([f.decided, f.decidedOnTime, f.overdue]).toEqual([5, 4, 1]);
    expect(f.onTimeShare).toBe(0.8);
  });
  it('prior-authorization metrics: approved/denied by standard and expedited, extended then approved, average and median time', () => {
    expect(f.standard).toEqual({ decided: 3, approved: 2, denied: 1, approvedPct: 66.7, deniedPct: 33.3 });
    expect(f.expedited).toEqual({ decided: 2, approved: 1, denied: 1, approvedPct: 50, deniedPct: 50 });
    expect(f.extendedThenApprovedPct).toBe(100);
    expect(f.averageDecisionHours).toBe(156); // (24 + 216 + 36 + 48 + 456) / 5
    expect(f.medianDecisionHours).toBe(48);
  });
  it('periods: quarters, months, years, from local midnight in Pacific time (PDT in summer, PST in winter)', () => {
    expect(periodBounds('2026-Q3')).toEqual({ start: '2026-07-01T00:00:00-07:00', end: '2026-10-01T00:00:00-07:00' });
    expect(periodBounds('2026-Q4')).toEqual({ start: '2026-10-01T00:00:00-07:00', end: '2027-01-01T00:00:00-08:00' });
    expect(periodBounds('2026-11')).toEqual({ start: '2026-11-01T00:00:00-07:00', end: '2026-12-01T00:00:00-08:00' });
    expect(periodBounds('2026-12')).toEqual({ start: '2026-12-01T00:00:00-08:00', end: '2027-01-01T00:00:00-08:00' });
    expect(periodBounds('2027')).toEqual({ start: '2027-01-01T00:00:00-08:00', end: '2028-01-01T00:00:00-08:00' });
    expect(periodBounds('2026-13')).toBeUndefined();
    // A MeasureReport's period ends inclusively (FHIR Period.end): the last moment of the quarter, in Pacific time.
    expect(inclusiveEnd(periodBounds('2026-Q4')!.end)).toBe('2026-12-31T23:59:59.999-08:00');
  });
  it('R9 H&S 1383.15, R14: the opinion due dates are watched as the decision due dates are: reported on time, late, and overdue', () => {
    const opinion = (over: Partial<CaseRecord>): CaseRecord => ({ ...cases[0], outcome: 'approved', opinionDueAt: '2026-09-25T00:00:00Z', ...over });
    const watched = [
      opinion({ reportedAt: '2026-09-24T00:00:00Z', outcome: 'completed' }), // on time
      opinion({ reportedAt: '2026-09-26T00:00:00Z', outcome: 'completed' }), // late
      opinion({}), // overdue on Oct 1
      opinion({ opinionDueAt: '2026-10-02T00:00:00Z' }), // not yet due
      opinion({ outcome: 'withdrawn' }), // no opinion owed
      opinion({ outcome: 'denied' }), // no opinion owed
      cases[0], // no opinion clock
    ];
    expect(reportFigures(watched, [], new Date('2026-10-01T00:00:00Z')).opinions).toEqual({ due: 6, reported: 2, reportedOnTime: 1, onTimeShare: 0.5, overdue: 1 });
  });
});

describe('R17, R19 BSP F: grievances in the committee figures, checked against a hand count', () => {
  const grievance = (over: Partial<GrievanceRecord>): GrievanceRecord => ({
    plan: 'phc',
    category: 'pcp-not-granted',
    receivedAt: '2026-07-01T00:00:00Z',
    acknowledgmentDueAt: '2026-07-06T00:00:00Z',
    resolutionDueAt: '2026-07-31T00:00:00Z',
    ...over,
  });
  const grievances = [
    grievance({ acknowledgedAt: '2026-07-02T00:00:00Z', resolvedAt: '2026-07-20T00:00:00Z', outcome: 'upheld' }), // both on time
    grievance({ category: 'plan-decision', acknowledgedAt: '2026-07-08T00:00:00Z', resolvedAt: '2026-08-05T00:00:00Z', outcome: 'not-upheld' }), // both late
    grievance({ category: 'deadline-missed', acknowledgedAt: '2026-07-03T00:00:00Z' }), // unresolved, past due on Sep 1
    grievance({ receivedAt: '2026-08-20T00:00:00Z', acknowledgmentDueAt: '2026-08-25T00:00:00Z', resolutionDueAt: '2026-09-19T00:00:00Z' }), // open, not yet due
  ];
  it('R17, R19: received by category, resolved by outcome (every code named), acknowledged and resolved on time, overdue', () => {
    expect(grievanceFigures(grievances, new Date('2026-09-01T00:00:00Z'))).toEqual({
      received: 4,
      byCategory: { 'pcp-not-granted': 2, 'plan-decision': 1, 'deadline-missed': 1, other: 0 },
      byOutcome: { upheld: 1, 'partly-upheld': 0, 'not-upheld': 1 },
      acknowledgedOnTime: 2,
      resolved: 2,
      resolvedOnTime: 1,
      overdue: 1,
      onTimeShare: 0.5,
    });
    expect(reportFigures([], grievances, new Date('2026-09-01T00:00:00Z')).grievances.received).toBe(4);
  });
});
