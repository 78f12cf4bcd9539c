/** FHIR date/dateTime/instant values as inclusive UTC millisecond ranges, per their precision. */
export interface DateRange {
  lo: Date;
  hi: Date;
}

const DATE_RE =
  /^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$/;

/** Returns the range a FHIR date value covers, or undefined if it is not a real date (e.g. 2026-02-30). */
export function dateRange(value: string): DateRange | undefined {
  const m = DATE_RE.exec(value);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s, frac, tz] = m;
  const year = Number(y);
  const month = mo ? Number(mo) : undefined;
  const day = d ? Number(d) : undefined;
  if (month !== undefined && (month < 1 || month > 12)) return undefined;
  if (day !== undefined && month !== undefined && (day < 1 || day > daysInMonth(year, month))) return undefined;
  if (h === undefined) {
    const lo = Date.UTC(year, (month ?? 1) - 1, day ?? 1);
    const hi = day !== undefined ? Date.UTC(year, month! - 1, day + 1) : month !== undefined ? Date.UTC(year, month, 1) : Date.UTC(year + 1, 0, 1);
    return { lo: new Date(lo), hi: new Date(hi - 1) };
  }
  const hour = Number(h);
  const minute = Number(mi);
  const second = s !== undefined ? Number(s) : undefined;
  if (hour > 23 || minute > 59 || (second !== undefined && second > 59)) return undefined;
  const offsetMinutes = tz && tz !== 'Z' ? tzOffsetMinutes(tz) : 0;
  if (offsetMinutes === undefined) return undefined;
  const ms = frac ? Number(frac.slice(0, 3).padEnd(3, '0')) : 0;
  const base = Date.UTC(year, month! - 1, day!, hour, minute, second ?? 0, ms) - offsetMinutes * 60_000;
  const width = frac ? 0 : second !== undefined ? 999 : 59_999;
  return { lo: new Date(base), hi: new Date(base + width) };
}

function tzOffsetMinutes(tz: string): number | undefined {
  const sign = tz.startsWith('-') ? -1 : 1;
  const [hh, mm] = tz.slice(1).split(':').map(Number);
  if (hh > 14 || mm > 59) return undefined;
  return sign * (hh * 60 + mm);
}

function daysInMonth(year: number, month: number): number {
  return new Date(Date.UTC(year, month, 0)).getUTCDate();
}
