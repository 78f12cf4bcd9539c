import type Holidays from 'date-holidays';
import { DateTime } from 'luxon';
import { createRequire } from 'node:module';
import type { Deadlines } from './model.js';
import type { PlanProfile } from './plans.js';

const require = createRequire(import.meta.url);
/** Loaded on first use: its rules for every country take 0.2 s to load, which every start paid. */
let HolidaysClass: typeof Holidays | undefined;
const calendars = new Map<string, Holidays>();

function holidayCalendar(plan: PlanProfile): Holidays {
  const key = `${plan.holidays.country}/${plan.holidays.state ?? ''}`;
  let hd = calendars.get(key);
  if (!hd) {
    HolidaysClass ??= require('date-holidays') as typeof Holidays;
    calendars.set(key, (hd = new HolidaysClass(plan.holidays.country, plan.holidays.state ?? '')));
  }
  return hd;
}

/** A business day: Monday to Friday and not a public holiday of the plan's calendar (R9). `date` is YYYY-MM-DD. */
export function isBusinessDay(plan: PlanProfile, date: string): boolean {
  const weekday = new Date(`${date}T00:00:00Z`).getUTCDay();
  if (weekday === 0 || weekday === 6) return false;
  if (plan.holidays.extraDates.includes(date)) return false;
  return !isPublicHoliday(plan, date);
}

/** Answers per calendar and date are kept: date-holidays works a date out from its rules each time it is asked. */
const publicHolidays = new Map<string, boolean>();

function isPublicHoliday(plan: PlanProfile, iso: string): boolean {
  const { country, state, fridaySubstitutes } = plan.holidays;
  const key = `${country}/${state ?? ''}/${fridaySubstitutes}/${iso}`;
  let closed = publicHolidays.get(key);
  if (closed === undefined) {
    // date-holidays answers per local date; only `public` holidays close the plan (not observances).
    const found = holidayCalendar(plan).isHoliday(new Date(`${iso}T12:00:00Z`));
    const friday = new Date(`${iso}T00:00:00Z`).getUTCDay() === 5;
    closed =
      Boolean(found && found.some((h) => h.type === 'public' && !(h.substitute && friday && !fridaySubstitutes))) ||
      // Gov. Code 6701: where only Sunday holidays move, a Saturday November 11th still closes the Friday before.
      (!fridaySubstitutes && friday && iso.endsWith('-11-10'));
    publicHolidays.set(key, closed);
  }
  return closed;
}

const DAY_MS = 86_400_000;
const nextDate = (date: string) => new Date(Date.parse(`${date}T00:00:00Z`) + DAY_MS).toISOString().slice(0, 10);

/**
 * The end (23:59:59.999 local) of the n-th business day after the day of `from`. The day of
 * receipt does not count, as with statutory day counts (Cal. Civ. Code 10: exclude the first day).
 * The days are walked as plain calendar dates: Luxon's zone arithmetic costs tens of microseconds a step.
 */
export function endOfNthBusinessDay(plan: PlanProfile, from: DateTime, n: number): DateTime {
  let date = from.setZone(plan.timeZone).toISODate()!;
  let counted = 0;
  while (counted < n) {
    date = nextDate(date);
    if (isBusinessDay(plan, date)) counted++;
  }
  return DateTime.fromISO(`${date}T23:59:59.999`, { zone: plan.timeZone });
}

const iso = (d: DateTime) => d.toUTC().toISO()!;

/** Medi-Cal is California's: a date without a time (a Coverage period's, a report period's) is a day in Pacific time. */
export const MEDI_CAL_ZONE = 'America/Los_Angeles';

const DATE_ONLY = /^\d{4}(-\d{2}(-\d{2})?)?$/;

/**
 * Whether `at` falls within a FHIR Period. A bound given as a date (`2026`, `2026-12`, `2026-12-31`) is whole
 * local days in `zone`, so a Coverage ending on 31 December still covers a request sent at 8 pm that day in
 * California (4 am on 1 January in UTC); a bound given as a dateTime is an instant.
 */
export function inPeriod(period: { start?: string; end?: string } | undefined, at: Date, zone = MEDI_CAL_ZONE): boolean {
  const day = DateTime.fromJSDate(at, { zone }).toISODate()!;
  const { start, end } = period ?? {};
  if (start && (DATE_ONLY.test(start) ? day.slice(0, start.length) < start : at.getTime() < Date.parse(start))) return false;
  if (end && (DATE_ONLY.test(end) ? day.slice(0, end.length) > end : at.getTime() > Date.parse(end))) return false;
  return true;
}

/** The calendar date (YYYY-MM-DD) of an instant in the plan's zone: the date a letter sent then bears. */
export function localDate(plan: PlanProfile, at: Date): string {
  return DateTime.fromJSDate(at, { zone: plan.timeZone }).toISODate()!;
}

/** The date, time and zone (`2026-11-06 10:00 PST`) of an instant in the plan's zone: for a due time counted in hours. */
export function localDateTime(plan: PlanProfile, at: Date): string {
  return DateTime.fromJSDate(at, { zone: plan.timeZone }).toFormat('yyyy-MM-dd HH:mm ZZZZ');
}

type Clock = { source: string; dueAt: DateTime; coversNotice: boolean };
type ClockOptions = { expedited: boolean; imminentThreat: boolean; outOfNetwork: boolean };

// Elapsed hours are added in UTC, where Luxon needs no time-zone lookups.
const hoursAfter = (from: DateTime, hours: number) => from.toUTC().plus({ hours });
const earliest = (times: DateTime[]) => times.reduce((a, b) => (b < a ? b : a));

/**
 * The R9 clocks that run from receipt. 42 CFR 438.210(d)(1)-(2) give the time to decide *and provide
 * notice*, and PHC VI.D.2 the time to notify the member, so they also bound the notices; PHC VI.D.1 is a
 * decision clock only.
 */
function clocksFromReceipt(plan: PlanProfile, received: DateTime, opts: ClockOptions): Clock[] {
  const t = plan.timeframes;
  const clocks: Clock[] = [
    opts.expedited
      ? { source: `42 CFR 438.210(d)(2): expedited, ${t.expeditedHours} hours`, dueAt: hoursAfter(received, t.expeditedHours), coversNotice: true }
      : { source: `42 CFR 438.210(d)(1) (CMS-0057-F): standard, ${t.standardCalendarDays} calendar days`, dueAt: received.plus({ days: t.standardCalendarDays }), coversNotice: true },
  ];
  if (opts.outOfNetwork && opts.expedited && t.outOfNetworkUrgentHours) {
    clocks.push({ source: `${plan.id.toUpperCase()} VI.D.1: urgent out-of-network, ${t.outOfNetworkUrgentHours} hours`, dueAt: hoursAfter(received, t.outOfNetworkUrgentHours), coversNotice: false });
  }
  if (opts.outOfNetwork && !opts.expedited && t.outOfNetworkRoutineBusinessDays) {
    const dueAt = endOfNthBusinessDay(plan, received, t.outOfNetworkRoutineBusinessDays);
    clocks.push({ source: `${plan.id.toUpperCase()} VI.D.2: non-urgent out-of-network, member notified within ${t.outOfNetworkRoutineBusinessDays} business days`, dueAt, coversNotice: true });
  }
  return clocks;
}

/**
 * H&S 1367.01(h)(3): the provider is told within 24 hours of the decision and the member in writing
 * within 2 business days of it, but never after `noticeDueAt`, the notice clocks from receipt (or as extended).
 */
export function notificationDues(plan: PlanProfile, decisionAt: string, noticeDueAt: string): { providerNotificationDueAt: string; memberNotificationDueAt: string } {
  const decision = DateTime.fromISO(decisionAt, { zone: 'utc' });
  const notice = DateTime.fromISO(noticeDueAt, { zone: 'utc' });
  const t = plan.timeframes;
  return {
    providerNotificationDueAt: iso(earliest([hoursAfter(decision, t.providerNotificationHours), notice])),
    memberNotificationDueAt: iso(earliest([endOfNthBusinessDay(plan, decision, t.memberNotificationBusinessDays), notice])),
  };
}

/**
 * R9 deadlines for one request: every clock that applies, the earliest as the decision due date.
 * Hours are elapsed hours (72 hours across a DST change is still 72 hours); calendar days keep the
 * local wall-clock time; business days skip weekends and the plan's holidays, in the plan's zone.
 */
export function computeDeadlines(plan: PlanProfile, receivedAt: string, opts: ClockOptions): Deadlines {
  const instant = DateTime.fromISO(receivedAt, { zone: 'utc' });
  if (!instant.isValid) throw new RangeError(`Invalid receipt time ${receivedAt}`);
  const received = instant.setZone(plan.timeZone);
  const considered = clocksFromReceipt(plan, received, opts);
  const decisionDueAt = iso(earliest(considered.map((c) => c.dueAt)));
  const noticeDueAt = iso(earliest(considered.filter((c) => c.coversNotice).map((c) => c.dueAt)));
  return {
    receivedAt: iso(received),
    expedited: opts.expedited,
    decisionDueAt,
    noticeDueAt,
    ...notificationDues(plan, decisionDueAt, noticeDueAt),
    opinionDueAt: opts.imminentThreat ? iso(hoursAfter(instant, plan.timeframes.imminentThreatOpinionHours)) : undefined,
    considered: considered.map((c) => ({ source: c.source, dueAt: iso(c.dueAt) })),
  };
}

/** 42 CFR 438.210(d)(1)(ii): an extension of up to 14 more calendar days, with notice. */
export function extendDeadline(plan: PlanProfile, decisionDueAt: string, days: number): string {
  if (!Number.isInteger(days) || days < 1 || days > plan.timeframes.maxExtensionDays) {
    throw new RangeError(`An extension is 1 to ${plan.timeframes.maxExtensionDays} days (42 CFR 438.210(d)(1)(ii))`);
  }
  return iso(DateTime.fromISO(decisionDueAt).setZone(plan.timeZone).plus({ days }));
}

/**
 * R17: the clocks of a member's grievance. California's are stricter than the federal Medicaid rule and apply; they
 * are law, not plan policy, so one rule for every plan (in the plan's zone). Calendar days keep the local wall-clock
 * time of receipt, as the 438.210 clock does; hours are elapsed hours.
 */
export const GRIEVANCE_CLOCKS = {
  /** 28 CCR 1300.68(d)(1): written acknowledgment within 5 calendar days of receipt. */
  acknowledgmentCalendarDays: 5,
  /** H&S 1368.01(a): resolution within 30 calendar days of receipt. */
  resolutionCalendarDays: 30,
  /** 42 CFR 438.408(b)(1): the federal limit, 90 calendar days (the state's 30 is earlier and governs). */
  federalResolutionCalendarDays: 90,
  /** H&S 1368.01(b): within 72 hours when the member faces an imminent and serious threat to health. */
  expeditedResolutionHours: 72,
} as const;

export interface GrievanceDeadlines {
  receivedAt: string;
  expedited: boolean;
  /** The written acknowledgment: 5 calendar days, and never after the resolution is due. */
  acknowledgmentDueAt: string;
  /** The earliest resolution clock that applies. */
  resolutionDueAt: string;
  considered: { source: string; dueAt: string }[];
}

/** R17 (PHC VI.E): when a grievance must be acknowledged and resolved, from its receipt. */
export function grievanceDeadlines(plan: PlanProfile, receivedAt: string, expedited: boolean): GrievanceDeadlines {
  const instant = DateTime.fromISO(receivedAt, { zone: 'utc' });
  if (!instant.isValid) throw new RangeError(`Invalid receipt time ${receivedAt}`);
  const received = instant.setZone(plan.timeZone);
  const g = GRIEVANCE_CLOCKS;
  const resolution = [
    { source: `H&S 1368.01(a): resolved within ${g.resolutionCalendarDays} calendar days`, dueAt: received.plus({ days: g.resolutionCalendarDays }) },
    { source: `42 CFR 438.408(b)(1): resolved within ${g.federalResolutionCalendarDays} calendar days`, dueAt: received.plus({ days: g.federalResolutionCalendarDays }) },
    ...(expedited ? [{ source: `H&S 1368.01(b): imminent and serious threat to health, resolved within ${g.expeditedResolutionHours} hours`, dueAt: hoursAfter(received, g.expeditedResolutionHours) }] : []),
  ];
  const resolutionDueAt = earliest(resolution.map((c) => c.dueAt));
  const acknowledgment = { source: `28 CCR 1300.68(d)(1): acknowledged in writing within ${g.acknowledgmentCalendarDays} calendar days`, dueAt: received.plus({ days: g.acknowledgmentCalendarDays }) };
  return {
    receivedAt: iso(received),
    expedited,
    acknowledgmentDueAt: iso(earliest([acknowledgment.dueAt, resolutionDueAt])),
    resolutionDueAt: iso(resolutionDueAt),
    considered: [acknowledgment, ...resolution].map((c) => ({ source: c.source, dueAt: iso(c.dueAt) })),
  };
}
