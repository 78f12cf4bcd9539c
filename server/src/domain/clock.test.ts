import { describe, expect, it } from 'vitest';
import { inPeriod, isBusinessDay, localDate } from './clock.js';
import { planById } from './plans.js';

describe('Medi-Cal calendar days', () => {
  it('a Coverage period given in dates covers whole days in California, not in UTC', () => {
    const coverage = { start: '2026-01-01', end: '2026-12-31' };
    expect(inPeriod(coverage, new Date('2027-01-01T04:00:00Z'))).toBe(true); // 20:00 on 31 December, PST
    expect(inPeriod(coverage, new Date('2027-01-01T08:00:00Z'))).toBe(false); // midnight, 1 January
    expect(inPeriod(coverage, new Date('2026-01-01T04:00:00Z'))).toBe(false); // still 31 December 2025 in California
    expect(inPeriod(coverage, new Date('2026-01-01T08:00:00Z'))).toBe(true);
  });

  it('partial dates are whole months and years; dateTimes are instants; a missing bound is open', () => {
    expect(inPeriod({ end: '2026-06' }, new Date('2026-07-01T06:59:00Z'))).toBe(true); // 23:59 on 30 June, PDT
    expect(inPeriod({ end: '2026-06' }, new Date('2026-07-01T07:00:00Z'))).toBe(false);
    expect(inPeriod({ start: '2026' }, new Date('2026-01-01T07:59:00Z'))).toBe(false);
    expect(inPeriod({ end: '2026-12-31T12:00:00Z' }, new Date('2026-12-31T13:00:00Z'))).toBe(false);
    expect(inPeriod({ start: '2026-12-31T12:00:00-08:00' }, new Date('2026-12-31T20:00:00Z'))).toBe(true);
    expect(inPeriod(undefined, new Date())).toBe(true);
  });

  it('R9 business days: a Saturday holiday closes the Friday before only where the plan observes substitutes; a Sunday one closes the Monday after either way', () => {
    const plan = planById('phc')!;
    const stateCalendar = { ...plan, holidays: { ...plan.holidays, fridaySubstitutes: false } };
    // 4 July 2026 is a Saturday; 4 July 2027 a Sunday.
    expect(isBusinessDay(plan, '2026-07-03')).toBe(false);
    expect(isBusinessDay(stateCalendar, '2026-07-03')).toBe(true);
    expect(isBusinessDay(stateCalendar, '2027-07-05')).toBe(false);
    expect(isBusinessDay(stateCalendar, '2026-11-27')).toBe(false); // the day after Thanksgiving is no substitute
    expect(isBusinessDay(stateCalendar, '2026-07-02')).toBe(true);
    // Gov. Code 6701: a Saturday November 11th (2028) still closes the Friday before on the state's calendar.
    expect(isBusinessDay(stateCalendar, '2028-11-10')).toBe(false);
  });

  it("a letter's date is the day of sending in the plan's zone", () => {
    const plan = planById('phc')!;
    expect(localDate(plan, new Date('2026-12-01T03:51:00Z'))).toBe('2026-11-30');
    expect(localDate(plan, new Date('2026-12-01T08:00:00Z'))).toBe('2026-12-01');
  });
});
