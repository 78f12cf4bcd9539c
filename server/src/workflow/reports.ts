import type { Coverage, MeasureReport, MeasureReportGroup, Organization, PractitionerRole, ServiceRequest, Task } from 'fhir/r4.js';
import type { ReasonCategory } from '../domain/model.js';
import { planById } from '../domain/plans.js';
import { type CaseRecord, COMMITTEE_FIGURES, type CommitteeFigure, type DecisionSplit, type GrievanceRecord, inclusiveEnd, periodBounds, type ReportFigures, reportFigures } from '../domain/reporting.js';
import { badRequest, forbidden } from '../fhir/outcomes.js';
import { parseLiteral } from '../fhir/references.js';
import type { AccessContext, UserRole } from '../fhir/request.js';
import { dateRange } from '../fhir/search/dates.js';
import { CANONICAL_BASE, CODE_SYSTEMS, PROFILES } from '../fhir/systems.js';
import type { FhirStore, SearchQuery } from '../storage/FhirStore.js';
import { pagesInIdOrder } from '../storage/pages.js';
import { isPlanStaff, staffPlansOf } from './planStaff.js';
import { nonEmpty } from '../fhir/jsonRules.js';

/**
 * Who reads which committee figures (R19, BSP F). Plan administration and auditors oversee every plan
 * this server serves: any plan, or all together. UM clinicians and medical directors read their own
 * plan's figures only (the plans of their plan-staff PractitionerRoles): `plan` defaults to theirs,
 * and naming another plan is 403. The figures are aggregates without PHI, but one plan's UM trends are
 * not another plan's business.
 */
const ALL_PLANS_ROLES: UserRole[] = ['plan-admin', 'auditor'];

export async function committeePlanFor(store: FhirStore, auth: AccessContext, requested: string | undefined): Promise<string | undefined> {
  if (requested !== undefined && !planById(requested)) throw badRequest(`Unknown plan '${requested.slice(0, 64)}'`, 'plan');
  if (auth.roles.some((r) => ALL_PLANS_ROLES.includes(r))) return requested;
  const own = isPlanStaff(auth) ? await staffPlansOf(store, auth) : [];
  if (!own.length) throw forbidden('Only plan staff may read the committee report');
  if (requested === undefined) {
    if (own.length > 1) throw badRequest(`Name the plan (plan=${own.join(' or ')})`, 'plan');
    return own[0];
  }
  if (!(own as string[]).includes(requested)) throw forbidden(`Plan staff read their own plan's committee report (${own.join(', ')})`);
  return requested;
}

/** The committee figures of a period (and plan): its cases and its grievances (R17, R19), as of `now`. */
export async function committeeFigures(store: FhirStore, period: string, planId: string | undefined, now: Date): Promise<ReportFigures> {
  return reportFigures(await caseRecords(store, period, planId), await grievanceRecords(store, period, planId), now);
}

/** Tasks claiming `profile` received in the period (Task.authoredOn, its bounds inclusive), every one once. */
async function* receivedInPeriod(store: FhirStore, profile: string, period: string, planId: string | undefined): AsyncGenerator<Task> {
  const bounds = periodBounds(period);
  if (!bounds) throw badRequest(`Invalid period '${period}' (use 2026-Q3, 2026-11 or 2026)`, 'period');
  if (planId && !planById(planId)) throw badRequest(`Unknown plan '${planId}'`, 'plan');
  const lo = dateRange(bounds.start)!.lo;
  const hi = new Date(dateRange(bounds.end)!.lo.getTime() - 1);
  const query: SearchQuery = {
    resourceType: 'Task',
    clauses: [
      { kind: 'token', param: '_profile', values: [`_profile||${profile}`], not: false },
      { kind: 'date', param: 'authored-on', values: [{ prefix: 'ge', lo, hi: lo }] },
      { kind: 'date', param: 'authored-on', values: [{ prefix: 'le', lo: hi, hi }] },
    ],
    sort: [],
    count: 500,
    offset: 0,
    total: false,
  };
  for await (const page of pagesInIdOrder(store, query)) yield* page as Task[];
}

/** The cases received in a period (and plan), as report records. */
export async function caseRecords(store: FhirStore, period: string, planId?: string): Promise<CaseRecord[]> {
  const records: CaseRecord[] = [];
  for await (const task of receivedInPeriod(store, PROFILES.task, period, planId)) {
    const record = await recordOf(store, task);
    if (record && (!planId || record.plan === planId)) records.push(record);
  }
  return records;
}

/** R17: the grievances received in a period (and plan), as report records. */
export async function grievanceRecords(store: FhirStore, period: string, planId?: string): Promise<GrievanceRecord[]> {
  const records: GrievanceRecord[] = [];
  for await (const task of receivedInPeriod(store, PROFILES.grievance, period, planId)) {
    const plan = await planOfCoverage(store, task.insurance?.[0]?.reference);
    if (planId && plan !== planId) continue;
    const output = (label: string) => task.output?.find((o) => o.type.text === label);
    records.push({
      plan,
      category: task.reasonCode?.coding?.find((c) => c.system === CODE_SYSTEMS.grievanceCategory)?.code ?? 'other',
      receivedAt: task.authoredOn!,
      acknowledgmentDueAt: task.input?.find((i) => i.type.text === 'acknowledgment-due')?.valueDateTime ?? task.authoredOn!,
      acknowledgedAt: output('acknowledged-at')?.valueDateTime,
      resolutionDueAt: task.restriction?.period?.end ?? task.authoredOn!,
      resolvedAt: output('resolved-at')?.valueDateTime,
      outcome: output('outcome')?.valueCodeableConcept?.coding?.find((c) => c.system === CODE_SYSTEMS.grievanceOutcome)?.code,
    });
  }
  return records;
}

/** The plan a Coverage is with: its payor's plan identifier. */
async function planOfCoverage(store: FhirStore, reference: string | undefined): Promise<string> {
  const coverageRef = parseLiteral(reference);
  const coverage = coverageRef ? ((await store.find(coverageRef[0], coverageRef[1])) as Coverage | undefined) : undefined;
  const payorRef = parseLiteral(coverage?.payor[0]?.reference);
  const payor = payorRef ? ((await store.find(payorRef[0], payorRef[1])) as Organization | undefined) : undefined;
  return payor?.identifier?.find((i) => i.system?.endsWith('/sid/plan'))?.value ?? 'unknown';
}

async function recordOf(store: FhirStore, task: Task): Promise<CaseRecord | undefined> {
  const srRef = parseLiteral(task.focus?.reference);
  const sr = srRef ? ((await store.find(srRef[0], srRef[1])) as ServiceRequest | undefined) : undefined;
  if (!sr) return undefined;
  const authorized = task.output?.filter((o) => o.type.text === 'authorized-professional').at(-1)?.valueReference;
  const roleRef = parseLiteral(authorized?.reference ?? sr.performer?.[0]?.reference);
  const role = roleRef?.[0] === 'PractitionerRole' ? ((await store.find('PractitionerRole', roleRef[1])) as PractitionerRole | undefined) : undefined;
  return {
    plan: await planOfCoverage(store, sr.insurance?.[0]?.reference),
    // A request giving only a reasonReference is recorded as "other" at intake (R2): counted so here too.
    reasons: sr.reasonCode?.length ? sr.reasonCode.map((c) => (c.coding?.find((x) => x.system === CODE_SYSTEMS.reason)?.code ?? 'other') as ReasonCategory) : sr.reasonReference?.length ? ['other'] : [],
    outcome: task.businessStatus?.coding?.[0]?.code ?? 'um-review',
    expedited: sr.priority !== undefined && sr.priority !== 'routine',
    receivedAt: task.authoredOn!,
    dueAt: task.restriction?.period?.end ?? task.authoredOn!,
    decidedAt: task.output?.find((o) => o.type.text === 'decided-at')?.valueDateTime,
    opinionDueAt: task.input?.find((i) => i.type.text === 'opinion-due')?.valueDateTime,
    reportedAt: reportedAt(task),
    extended: task.output?.some((o) => o.type.text === 'extended') ?? false,
    providerGroup: parseLiteral(role?.organization?.reference)?.[1],
  };
}

/** R14: when the report was posted; a case completed before `reported-at` was recorded was completed by the report. */
function reportedAt(task: Task): string | undefined {
  const recorded = task.output?.find((o) => o.type.text === 'reported-at')?.valueDateTime;
  if (recorded) return recorded;
  const completed = task.businessStatus?.coding?.[0]?.code === 'completed' && task.output?.some((o) => o.type.text === 'consultation-report');
  return completed ? task.lastModified : undefined;
}

/** What a group's score is measured in (UCUM): a share from 0 to 1 has none. */
type ScoreUnit = '%' | 'h';
const UCUM = 'http://unitsofmeasure.org';

/** A group: its populations are counts (R4: integers); a percentage, share or number of hours is its score. */
const group = (code: CommitteeFigure, entries: [string, number][], measureScore?: number | null, unit?: ScoreUnit): MeasureReportGroup => ({
  code: { coding: [{ system: CODE_SYSTEMS.committeeReport, code, display: COMMITTEE_FIGURES[code][0] }], text: COMMITTEE_FIGURES[code][0] },
  measureScore: measureScore === undefined || measureScore === null ? undefined : { value: measureScore, ...(unit ? { unit, system: UCUM, code: unit } : {}) },
  population: nonEmpty(entries.map(([k, n]) => ({ code: { text: k }, count: n }))),
});

const decisionSplit = (code: 'standard' | 'expedited', split: DecisionSplit): MeasureReportGroup =>
  group(code, [['decided', split.decided], ['approved', split.approved], ['denied', split.denied]], split.approvedPct, '%');

/** BSP D.X: the outcomes stratified by reason category, one stratum per reason with a population per outcome. */
function reasonByOutcomeGroup(byReasonAndOutcome: ReportFigures['byReasonAndOutcome']): MeasureReportGroup {
  const head = group('by-reason-outcome', []);
  if (!Object.keys(byReasonAndOutcome).length) return head;
  return {
    ...head,
    stratifier: [{
      code: [{ text: 'reason' }],
      stratum: Object.entries(byReasonAndOutcome).map(([reason, outcomes]) => ({ value: { text: reason }, population: Object.entries(outcomes).map(([outcome, n]) => ({ code: { text: outcome }, count: n })) })),
    }],
  };
}

/** The committee report (R19) as a MeasureReport: one group per figure family. */
export function committeeMeasureReport(figures: ReportFigures, period: string, planId: string | undefined, now: Date): MeasureReport {
  const bounds = periodBounds(period)!;
  return {
    resourceType: 'MeasureReport',
    status: 'complete',
    type: 'summary',
    measure: `${CANONICAL_BASE}/Measure/second-opinion-committee-report`,
    date: now.toISOString(),
    period: { start: bounds.start, end: inclusiveEnd(bounds.end) },
    reporter: planId ? { reference: `Organization/${planId}` } : undefined,
    improvementNotation: undefined,
    group: [
      group('cases', [['cases', figures.cases]]),
      group('by-reason', Object.entries(figures.byReason)),
      group('by-outcome', Object.entries(figures.byOutcome)),
      reasonByOutcomeGroup(figures.byReasonAndOutcome),
      group('by-provider-group', Object.entries(figures.byProviderGroup)),
      group('timeliness', [['decided', figures.decided], ['on-time', figures.decidedOnTime], ['overdue', figures.overdue]], figures.onTimeShare),
      group('opinion-timeliness', [['due', figures.opinions.due], ['reported', figures.opinions.reported], ['on-time', figures.opinions.reportedOnTime], ['overdue', figures.opinions.overdue]], figures.opinions.onTimeShare),
      decisionSplit('standard', figures.standard),
      decisionSplit('expedited', figures.expedited),
      group('after-appeal', [], figures.approvedAfterAppealPct, '%'),
      group('extended-approved', [], figures.extendedThenApprovedPct, '%'),
      group('decision-hours', [['decided', figures.decided]], figures.averageDecisionHours, 'h'),
      group('decision-hours-median', [['decided', figures.decided]], figures.medianDecisionHours, 'h'),
      group('grievances', [['received', figures.grievances.received], ...Object.entries(figures.grievances.byCategory)]),
      group('grievance-outcomes', Object.entries(figures.grievances.byOutcome)),
      group(
        'grievance-timeliness',
        [['received', figures.grievances.received], ['acknowledged-on-time', figures.grievances.acknowledgedOnTime], ['resolved', figures.grievances.resolved], ['resolved-on-time', figures.grievances.resolvedOnTime], ['overdue', figures.grievances.overdue]],
        figures.grievances.onTimeShare,
      ),
    ],
  };
}

/** The same figures as CSV rows (metric,key,value). */
export function committeeCsv(figures: ReportFigures): string {
  const rows: [string, string, string | number | null][] = [
    ['cases', '', figures.cases],
    ...Object.entries(figures.byReason).map(([k, v]): [string, string, number] => ['by-reason', k, v]),
    ...Object.entries(figures.byOutcome).map(([k, v]): [string, string, number] => ['by-outcome', k, v]),
    ...Object.entries(figures.byReasonAndOutcome).flatMap(([reason, outcomes]) => Object.entries(outcomes).map(([outcome, v]): [string, string, number] => ['by-reason-outcome', `${reason}/${outcome}`, v])),
    ...Object.entries(figures.byProviderGroup).map(([k, v]): [string, string, number] => ['by-provider-group', k, v]),
    ['decided', '', figures.decided],
    ['decided-on-time', '', figures.decidedOnTime],
    ['overdue', '', figures.overdue],
    ['opinions-due', '', figures.opinions.due],
    ['opinions-reported', '', figures.opinions.reported],
    ['opinions-reported-on-time', '', figures.opinions.reportedOnTime],
    ['opinions-overdue', '', figures.opinions.overdue],
    ['standard-approved-pct', '', figures.standard.approvedPct],
    ['standard-denied-pct', '', figures.standard.deniedPct],
    ['expedited-approved-pct', '', figures.expedited.approvedPct],
    ['expedited-denied-pct', '', figures.expedited.deniedPct],
    ['approved-after-appeal-pct', '', figures.approvedAfterAppealPct],
    ['extended-then-approved-pct', '', figures.extendedThenApprovedPct],
    ['average-decision-hours', '', figures.averageDecisionHours],
    ['median-decision-hours', '', figures.medianDecisionHours],
    ['grievances', '', figures.grievances.received],
    ...Object.entries(figures.grievances.byCategory).map(([k, v]): [string, string, number] => ['grievances-by-category', k, v]),
    ...Object.entries(figures.grievances.byOutcome).map(([k, v]): [string, string, number] => ['grievances-by-outcome', k, v]),
    ['grievances-acknowledged-on-time', '', figures.grievances.acknowledgedOnTime],
    ['grievances-resolved', '', figures.grievances.resolved],
    ['grievances-resolved-on-time', '', figures.grievances.resolvedOnTime],
    ['grievances-overdue', '', figures.grievances.overdue],
  ];
  const cell = (v: string | number | null) => (v === null ? '' : /[",\n]/.test(String(v)) ? `"${String(v).replace(/"/g, '""')}"` : String(v));
  return ['metric,key,value', ...rows.map((r) => r.map(cell).join(','))].join('\n') + '\n';
}

