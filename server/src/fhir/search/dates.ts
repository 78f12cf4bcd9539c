/** FHIR date/dateTime/instant values as inclusive UTC millisecond ranges, per their precision. */
export interface DateRange {
  lo: Date;
  hi: Date;
}

const DATE_RE =
  /^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$/;

/** The pieces of R4's patterns (datatypes.html): years 0001-9999 (PostgreSQL has no year 0000), zones from -13:59 to +14:00. */
const YEAR = '([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)';
const MONTH = '(0[1-9]|1[0-2])';
const DAY = '(0[1-9]|[1-2][0-9]|3[0-1])';
const CLOCK = '([01][0-9]|2[0-3]):[0-5][0-9]';
const ZONE = '(Z|(\\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))';

/**
 * An R4 `instant` (datatypes.html#instant): a real calendar day (2026-02-30 is none), to the second, an optional
 * fraction, and its zone. A leap second (`:60`), which R4's pattern allows, is refused: a JavaScript Date cannot hold it.
 * The one definition `_since`, the cursors' sort keys and stored instants are checked against.
 */
const INSTANT_RE = new RegExp(`^${YEAR}-${MONTH}-${DAY}T${CLOCK}:[0-5][0-9](\\.[0-9]+)?${ZONE}$`);
/** R4's `date` and `dateTime` patterns: a dateTime with a time has its seconds and its zone. */
const R4_DATE_RE = new RegExp(`^${YEAR}(-${MONTH}(-${DAY})?)?$`);
const R4_DATE_TIME_RE = new RegExp(`^${YEAR}(-${MONTH}(-${DAY}(T${CLOCK}:([0-5][0-9]|60)(\\.[0-9]+)?${ZONE})?)?)?$`);

/** FHIR's first and last instants (years 0001 and 9999): PostgreSQL refuses year 0000 and years past 9999 written out. */
const FIRST_INSTANT = Date.parse('0001-01-01T00:00:00.000Z');
const LAST_INSTANT = Date.parse('9999-12-31T23:59:59.999Z');

/** The instant, moved into FHIR's years where a zone offset or an open end took it outside them. */
export const withinFhirYears = (ms: number): Date => new Date(Math.min(Math.max(ms, FIRST_INSTANT), LAST_INSTANT));

export function isInstant(value: string): boolean {
  return INSTANT_RE.test(value) && dateRange(value) !== undefined;
}

/**
 * Why a stored date, dateTime or instant is not one R4 takes, or undefined: a day the calendar does not have
 * (2021-02-29, 2021-04-31), a time without its zone ("If hours and minutes are specified, a time zone SHALL be
 * populated"). Stored, such a value would be in no date search's range. A leap second is refused as `isInstant` does.
 */
export function temporalProblem(value: string, type: 'date' | 'dateTime' | 'instant'): string | undefined {
  const shown = value.slice(0, 40);
  if (type === 'instant') return isInstant(value) ? undefined : `Invalid instant '${shown}': R4 takes a calendar day, a time to the second and its time zone`;
  if (!(type === 'date' ? R4_DATE_RE : R4_DATE_TIME_RE).test(value)) {
    return type === 'dateTime' && value.includes('T') ? `Invalid ${type} '${shown}': a time needs its seconds and its time zone (2021-04-30T10:00:00Z)` : `Invalid ${type} '${shown}'`;
  }
  return dateRange(value) ? undefined : `Invalid ${type} '${shown}': the calendar has no such day or time`;
}

/** Returns the range a FHIR date value covers, or undefined if it is not a real date (e.g. 2026-02-30). */
export function dateRange(value: string): DateRange | undefined {
  const m = DATE_RE.exec(value);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s, frac, tz] = m;
  const year = Number(y);
  if (year === 0) return undefined;
  const month = mo ? Number(mo) : undefined;
  const day = d ? Number(d) : undefined;
  if (month !== undefined && (month < 1 || month > 12)) return undefined;
  if (day !== undefined && month !== undefined && (day < 1 || day > daysInMonth(year, month))) return undefined;
  if (h === undefined) {
    const lo = utc(year, (month ?? 1) - 1, day ?? 1);
    const hi = day !== undefined ? utc(year, month! - 1, day + 1) : month !== undefined ? utc(year, month, 1) : utc(year + 1, 0, 1);
    return { lo: withinFhirYears(lo), hi: withinFhirYears(hi - 1) };
  }
  const hour = Number(h);
  const minute = Number(mi);
  const second = s !== undefined ? Number(s) : undefined;
  if (hour > 23 || minute > 59 || (second !== undefined && second > 59)) return undefined;
  const offsetMinutes = tz && tz !== 'Z' ? tzOffsetMinutes(tz) : 0;
  if (offsetMinutes === undefined) return undefined;
  const ms = frac ? Number(frac.slice(0, 3).padEnd(3, '0')) : 0;
  const base = utc(year, month! - 1, day!, hour, minute, second ?? 0, ms) - offsetMinutes * 60_000;
  const width = frac ? 0 : second !== undefined ? 999 : 59_999;
  return { lo: withinFhirYears(base), hi: withinFhirYears(base + width) };
}

function tzOffsetMinutes(tz: string): number | undefined {
  const sign = tz.startsWith('-') ? -1 : 1;
  const [hh, mm] = tz.slice(1).split(':').map(Number);
  if (hh > 14 || mm > 59) return undefined;
  return sign * (hh * 60 + mm);
}

function daysInMonth(year: number, month: number): number {
  return new Date(utc(year, month, 0)).getUTCDate();
}

/** Date.UTC, except that years 0-99 are those years, not 1900-1999. */
function utc(year: number, month: number, day: number, hour = 0, minute = 0, second = 0, ms = 0): number {
  const date = new Date(0);
  date.setUTCFullYear(year, month, day);
  return date.setUTCHours(hour, minute, second, ms);
}
