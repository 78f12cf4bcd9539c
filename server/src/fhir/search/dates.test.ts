import { describe, expect, it } from 'vitest';
import { dateRange, isInstant } from './dates.js';

describe('isInstant: an R4 instant (datatypes.html#instant), the one rule for _since and cursor keys', () => {
  it.each([
    '2026-11-01T00:00:00Z',
    '2026-11-01T00:00:00-07:00',
    '2026-11-01T23:59:59.5+05:30',
    '2026-01-02T03:04:05.678900Z',
    '2024-02-29T12:00:00Z',
    '0001-01-01T00:00:00Z',
    '9999-12-31T23:59:59.999Z',
    '2026-11-01T00:00:00+14:00',
    '2026-11-01T00:00:00-13:59',
  ])('%s is one', (value) => expect(isInstant(value)).toBe(true));

  it.each([
    ['a date', '2026-11-01'],
    ['minutes only', '2026-11-01T00:00Z'],
    ['no zone', '2026-11-01T00:00:00'],
    ['no zone, with a fraction', '2026-11-01T00:00:00.123'],
    ['an empty fraction', '2026-11-01T00:00:00.Z'],
    ['a lower-case zone', '2026-11-01T00:00:00z'],
    ['a day the month lacks', '2026-02-30T00:00:00Z'],
    ['February 29 of a common year', '2026-02-29T00:00:00Z'],
    ['month 13', '2026-13-01T00:00:00Z'],
    ['hour 24', '2026-11-01T24:00:00Z'],
    ['minute 60', '2026-11-01T00:60:00Z'],
    ['a leap second', '2026-12-31T23:59:60Z'],
    ['year 0000', '0000-01-01T00:00:00Z'],
    ['a zone past +14:00', '2026-11-01T00:00:00+14:30'],
    ['a zone without its colon', '2026-11-01T00:00:00+0700'],
    ['a space for the T', '2026-11-01 00:00:00Z'],
    ['trailing text', '2026-11-01T00:00:00Z '],
    ['a five-digit year', '20260-11-01T00:00:00Z'],
  ])('%s (%s) is not', (_, value) => expect(isInstant(value)).toBe(false));
});

describe('dateRange', () => {
  it('years before 100 are those years (Date.UTC would read 0050 as 1950)', () => {
    expect(dateRange('0050-03-01T00:00:00Z')?.lo.toISOString()).toBe('0050-03-01T00:00:00.000Z');
    expect(dateRange('0099')?.hi.toISOString()).toBe('0099-12-31T23:59:59.999Z');
    expect(dateRange('0004-02-29')?.lo.toISOString()).toBe('0004-02-29T00:00:00.000Z');
  });
});
