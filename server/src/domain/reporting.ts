import { DateTime } from 'luxon';
import { MEDI_CAL_ZONE } from './clock.js';
import { GRIEVANCE_CATEGORIES, GRIEVANCE_OUTCOMES } from './grievance.js';
import type { ReasonCategory } from './model.js';

/** One case as the committee report counts it (R19, BSP D.X, F; 42 CFR 438.210(f)). */
export interface CaseRecord {
  plan: string;
  reasons: ReasonCategory[];
  outcome: string;
  expedited: boolean;
  receivedAt: string;
  dueAt: string;
  decidedAt?: string;
  /** R9 (H&S 1383.15): when the second opinion itself is due, where a clock runs for it. */
  opinionDueAt?: string;
  /** R14: when the consultation report was posted. */
  reportedAt?: string;
  extended: boolean;
  providerGroup?: string;
  approvedAfterAppeal?: boolean;
}

/** One grievance about a second opinion as the committee report counts it (R17, R19 BSP F). */
export interface GrievanceRecord {
  plan: string;
  category: string;
  receivedAt: string;
  acknowledgmentDueAt: string;
  acknowledgedAt?: string;
  resolutionDueAt: string;
  resolvedAt?: string;
  outcome?: string;
}

/** The committee report's figures (R19), each a group of its MeasureReport: what it is called and what it counts. */
export const COMMITTEE_FIGURES = {
  cases: ['Cases received', 'Second-opinion requests received in the period.'],
  'by-reason': ['By reason category (R2)', 'Cases by the reason category they gave; a case giving two reasons counts under each.'],
  'by-outcome': ['By outcome', 'Cases by where they stand or how they ended.'],
  'by-reason-outcome': ['Outcomes by reason category (R2, BSP D.X)', 'Approvals and denials coded by category: each reason category stratified by outcome.'],
  'by-provider-group': ['By provider group', "Cases by the member's medical group (IPA)."],
  timeliness: ['Decided within the deadline (R9)', 'Decisions made, made by their due date, and cases past their due date undecided; the score is the share on time.'],
  'opinion-timeliness': ['Opinion reported by its due date (R9 H&S 1383.15, R14)', 'Opinions with a due date, reported, reported on time and overdue; the score is the share on time.'],
  standard: ['42 CFR 438.210(f): standard requests', 'Standard requests decided, approved and denied; the score is the percentage approved.'],
  expedited: ['42 CFR 438.210(f): expedited requests', 'Expedited requests decided, approved and denied; the score is the percentage approved.'],
  'after-appeal': ['Approved after appeal (%)', 'The percentage of decided requests approved after an appeal.'],
  'extended-approved': ['Extended, then approved (%)', 'The percentage of extended requests then approved.'],
  'decision-hours': ['Decision time in hours (average)', 'Hours from receipt to decision: the cases decided as population, the average as score.'],
  'decision-hours-median': ['Decision time in hours (median)', 'Hours from receipt to decision: the cases decided as population, the median as score.'],
  grievances: ['Grievances (R17)', 'Grievances about second opinions received in the period, and what each is about (PHC VI.E: the PCP did not grant the request; a plan decision; a deadline missed; other).'],
  'grievance-outcomes': ['Grievance outcomes (R17)', 'Resolved grievances by outcome: upheld, partly upheld, not upheld.'],
  'grievance-timeliness': ['Grievances acknowledged and resolved by their due dates (R17)', 'Grievances received, acknowledged by their due date (28 CCR 1300.68(d)(1)), resolved, resolved by their due date (H&S 1368.01) and unresolved past it; the score is the share of resolved grievances resolved on time.'],
} as const satisfies Record<string, readonly [display: string, definition: string]>;
export type CommitteeFigure = keyof typeof COMMITTEE_FIGURES;

export interface ReportFigures {
  cases: number;
  byReason: Record<string, number>;
  byOutcome: Record<string, number>;
  /** BSP D.X: approvals and denials coded by category: each reason category's cases by outcome (a case giving two reasons counts under each). */
  byReasonAndOutcome: Record<string, Record<string, number>>;
  byProviderGroup: Record<string, number>;
  decided: number;
  decidedOnTime: number;
  /** Share of decisions made by their due date, 0-1 (null when nothing was decided). */
  onTimeShare: number | null;
  overdue: number;
  /** R9, R14: the opinions with a due date, watched as the decisions are (H&S 1383.15). */
  opinions: OpinionTimeliness;
  standard: DecisionSplit;
  expedited: DecisionSplit;
  approvedAfterAppealPct: number | null;
  extendedThenApprovedPct: number | null;
  averageDecisionHours: number | null;
  medianDecisionHours: number | null;
  grievances: GrievanceFigures;
}

/** R17 as the committee sees it: the grievances received in the period, what about, how they ended, and on time. */
export interface GrievanceFigures {
  received: number;
  byCategory: Record<string, number>;
  byOutcome: Record<string, number>;
  acknowledgedOnTime: number;
  resolved: number;
  resolvedOnTime: number;
  /** Unresolved past their resolution due date as of `now`. */
  overdue: number;
  /** Share of resolved grievances resolved by their due date, 0-1 (null when none was resolved). */
  onTimeShare: number | null;
}

/** 42 CFR 438.210(f): requests of one kind decided, approved and denied, with the percentages. */
export interface DecisionSplit {
  decided: number;
  approved: number;
  denied: number;
  approvedPct: number | null;
  deniedPct: number | null;
}

export interface OpinionTimeliness {
  /** Cases whose opinion has a due date. */
  due: number;
  reported: number;
  reportedOnTime: number;
  /** Share of reports posted by their due date, 0-1 (null when none was posted). */
  onTimeShare: number | null;
  /** Past the due date without a report, and still owed (not withdrawn or denied). */
  overdue: number;
}

/** No opinion is owed once the request is withdrawn or denied. */
const NO_OPINION_OWED = new Set(['withdrawn', 'denied']);

/** R9 (H&S 1383.15), R14: the opinion due dates, counted as the decision due dates are: on time, and overdue as of `now`. */
export function opinionTimeliness(cases: CaseRecord[], now: Date): OpinionTimeliness {
  const due = cases.filter((c) => c.opinionDueAt);
  const reported = due.filter((c) => c.reportedAt);
  const reportedOnTime = reported.filter((c) => Date.parse(c.reportedAt!) <= Date.parse(c.opinionDueAt!)).length;
  return {
    due: due.length,
    reported: reported.length,
    reportedOnTime,
    onTimeShare: reported.length ? reportedOnTime / reported.length : null,
    overdue: due.filter((c) => !c.reportedAt && !NO_OPINION_OWED.has(c.outcome) && Date.parse(c.opinionDueAt!) < now.getTime()).length,
  };
}

const APPROVED = new Set(['approved', 'modified', 'transport-arranged', 'completed']);
const DENIED = new Set(['denied']);
const count = (xs: string[]) => xs.reduce<Record<string, number>>((acc, x) => ({ ...acc, [x]: (acc[x] ?? 0) + 1 }), {});
const crossCount = (pairs: [string, string][]) =>
  pairs.reduce<Record<string, Record<string, number>>>((acc, [row, column]) => ({ ...acc, [row]: { ...acc[row], [column]: (acc[row]?.[column] ?? 0) + 1 } }), {});
const pct = (n: number, d: number) => (d ? Math.round((1000 * n) / d) / 10 : null);

const by = (at: string | undefined, due: string) => at !== undefined && Date.parse(at) <= Date.parse(due);

/** R17: the grievance figures, every category and outcome named (zero when none), as of `now`. */
export function grievanceFigures(grievances: GrievanceRecord[], now: Date): GrievanceFigures {
  const resolved = grievances.filter((g) => g.resolvedAt);
  const resolvedOnTime = resolved.filter((g) => by(g.resolvedAt, g.resolutionDueAt)).length;
  const zeros = (codes: readonly string[]) => Object.fromEntries(codes.map((c) => [c, 0]));
  return {
    received: grievances.length,
    byCategory: { ...zeros(GRIEVANCE_CATEGORIES), ...count(grievances.map((g) => g.category)) },
    byOutcome: { ...zeros(GRIEVANCE_OUTCOMES), ...count(resolved.map((g) => g.outcome ?? 'not-upheld')) },
    acknowledgedOnTime: grievances.filter((g) => by(g.acknowledgedAt, g.acknowledgmentDueAt)).length,
    resolved: resolved.length,
    resolvedOnTime,
    overdue: grievances.filter((g) => !g.resolvedAt && Date.parse(g.resolutionDueAt) < now.getTime()).length,
    onTimeShare: resolved.length ? resolvedOnTime / resolved.length : null,
  };
}

/** The committee figures for a set of cases and grievances, as of `now`. Pure: the caller selects period and plan. */
export function reportFigures(cases: CaseRecord[], grievances: GrievanceRecord[], now: Date): ReportFigures {
  const decided = cases.filter((c) => c.decidedAt);
  const hours = decided.map((c) => (Date.parse(c.decidedAt!) - Date.parse(c.receivedAt)) / 3_600_000).sort((a, b) => a - b);
  const median = hours.length ? (hours.length % 2 ? hours[(hours.length - 1) / 2] : (hours[hours.length / 2 - 1] + hours[hours.length / 2]) / 2) : null;
  const split = (expedited: boolean): DecisionSplit => {
    const group = decided.filter((c) => c.expedited === expedited);
    const approved = group.filter((c) => APPROVED.has(c.outcome)).length;
    const denied = group.filter((c) => DENIED.has(c.outcome)).length;
    return { decided: group.length, approved, denied, approvedPct: pct(approved, group.length), deniedPct: pct(denied, group.length) };
  };
  const extended = decided.filter((c) => c.extended);
  const decidedOnTime = decided.filter((c) => Date.parse(c.decidedAt!) <= Date.parse(c.dueAt)).length;
  return {
    cases: cases.length,
    byReason: count(cases.flatMap((c) => c.reasons)),
    byOutcome: count(cases.map((c) => c.outcome)),
    byReasonAndOutcome: crossCount(cases.flatMap((c) => c.reasons.map((reason): [string, string] => [reason, c.outcome]))),
    byProviderGroup: count(cases.map((c) => c.providerGroup ?? 'unassigned')),
    decided: decided.length,
    decidedOnTime,
    onTimeShare: decided.length ? decidedOnTime / decided.length : null,
    overdue: cases.filter((c) => !c.decidedAt && !['withdrawn'].includes(c.outcome) && Date.parse(c.dueAt) < now.getTime()).length,
    opinions: opinionTimeliness(cases, now),
    standard: split(false),
    expedited: split(true),
    approvedAfterAppealPct: pct(decided.filter((c) => c.approvedAfterAppeal).length, decided.length),
    extendedThenApprovedPct: pct(extended.filter((c) => APPROVED.has(c.outcome)).length, extended.length),
    averageDecisionHours: hours.length ? Math.round((10 * hours.reduce((a, b) => a + b, 0)) / hours.length) / 10 : null,
    medianDecisionHours: median === null ? null : Math.round(10 * median) / 10,
    grievances: grievanceFigures(grievances, now),
  };
}

/** A period runs from local midnight to local midnight in Pacific time, PST or PDT as the date falls. */
const localMidnight = (year: number, month: number) => DateTime.fromObject({ year, month, day: 1 }, { zone: MEDI_CAL_ZONE }).toISO({ suppressMilliseconds: true })!;

/** A FHIR Period's end is inclusive: the last millisecond before the next period's local midnight. */
export const inclusiveEnd = (exclusiveEnd: string): string => DateTime.fromISO(exclusiveEnd, { setZone: true }).minus({ milliseconds: 1 }).toISO()!;

/** `2026-Q3` → [2026-07-01, 2026-10-01) in the plans' zone (Pacific); also accepts `2026` and `2026-11`. */
export function periodBounds(period: string): { start: string; end: string } | undefined {
  const q = /^(\d{4})-Q([1-4])$/.exec(period);
  const month = /^(\d{4})-(\d{2})$/.exec(period);
  const year = /^(\d{4})$/.exec(period);
  let first: [number, number];
  let months: number;
  if (q) [first, months] = [[Number(q[1]), (Number(q[2]) - 1) * 3 + 1], 3];
  else if (month && Number(month[2]) >= 1 && Number(month[2]) <= 12) [first, months] = [[Number(month[1]), Number(month[2])], 1];
  else if (year) [first, months] = [[Number(year[1]), 1], 12];
  else return undefined;
  const [y, m] = first;
  const after = m - 1 + months;
  return { start: localMidnight(y, m), end: localMidnight(y + Math.floor(after / 12), (after % 12) + 1) };
}
