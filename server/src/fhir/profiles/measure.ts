import type { CodeableConcept, Coding, Expression, Measure, MeasureGroup, MeasureGroupPopulation } from 'fhir/r4.js';
import { COMMITTEE_FIGURES, type CommitteeFigure } from '../../domain/reporting.js';
import { CANONICAL_BASE, CODE_SYSTEMS } from '../systems.js';
import { BUSINESS_STATUSES, GRIEVANCE_CATEGORY_CONCEPTS, GRIEVANCE_OUTCOME_CONCEPTS, META, REASONS } from './definitions.js';

/**
 * The Measure the committee report (R19) follows: `$second-opinion-report` answers a MeasureReport whose `measure` is
 * this one's url (workflow/reports.ts). One group per figure of the committee-report CodeSystem, with the populations
 * each group of the MeasureReport carries, so that a reader of the report can look up what each count means.
 */
export const COMMITTEE_MEASURE_ID = 'second-opinion-committee-report';

/** R4 Measure scoring is one for the whole Measure; the figures differ, so each group says its own (CQF Measures). */
const GROUP_SCORING = 'http://hl7.org/fhir/us/cqfmeasures/StructureDefinition/cqfm-scoring';
type Scoring = 'cohort' | 'proportion' | 'continuous-variable';

/** Population `[code text, what it counts]`; the server computes every figure itself, so its criteria are in words. */
type Population = [code: string | CodeableConcept, counts: string];

const inWords = (expression: string): Expression => ({ language: 'text/plain', expression });
const codeText = (code: string | CodeableConcept): CodeableConcept => (typeof code === 'string' ? { text: code } : code);
const coded = (system: string, [code, display]: readonly [string, string, ...unknown[]]): CodeableConcept => ({ coding: [{ system, code, display }], text: code });

const reasonPopulations = (): Population[] =>
  REASONS.map((reason) => [coded(CODE_SYSTEMS.reason, reason), `Cases giving reason ${reason[0]} (R2: ServiceRequest.reasonCode; a request giving only a reasonReference counts as other). A case giving two reasons counts under each.`]);

const outcomePopulations = (): Population[] =>
  BUSINESS_STATUSES.map((status) => [coded(CODE_SYSTEMS.businessStatus, status), `Cases whose Task.businessStatus is ${status[0]} when the report is made (um-review where none is set).`]);

const decidedSplit = (which: string): Population[] => [
  ['decided', `${which} requests decided (a decision time recorded on the case Task).`],
  ['approved', 'Of those, the requests approved (approved, modified, transport-arranged or completed).'],
  ['denied', 'Of those, the requests denied.'],
];
const SPLIT_SCORE = 'The percentage of the decided requests approved (UCUM %), to one decimal; absent when none was decided.';
const DECIDED: Population = ['decided', 'Cases decided (a decision time recorded on the case Task).'];

const GROUPS: Record<CommitteeFigure, { scoring: Scoring; populations: Population[]; score?: string }> = {
  cases: { scoring: 'cohort', populations: [['cases', 'Second-opinion cases (Tasks claiming the second-opinion-task profile) received in the period.']] },
  'by-reason': { scoring: 'cohort', populations: reasonPopulations() },
  'by-outcome': { scoring: 'cohort', populations: outcomePopulations() },
  'by-reason-outcome': { scoring: 'cohort', populations: outcomePopulations() },
  'by-provider-group': {
    scoring: 'cohort',
    populations: [['unassigned', 'Cases whose PractitionerRole authorized for the opinion (or, until one is, the one requested) names no Organization, or that have none. Every other population of this group is one medical group (IPA): its code text is the id of that Organization, and it counts that group\'s cases.']],
  },
  timeliness: {
    scoring: 'proportion',
    populations: [
      ['decided', 'Cases decided (a decision time recorded on the case Task).'],
      ['on-time', 'Decided cases decided by their due date (Task.restriction.period.end, R9).'],
      ['overdue', 'Cases not decided and not withdrawn whose due date has passed when the report is made.'],
    ],
    score: 'on-time / decided, from 0 to 1; absent when none was decided.',
  },
  'opinion-timeliness': {
    scoring: 'proportion',
    populations: [
      ['due', 'Cases whose opinion itself has a due date (R9, H&S 1383.15).'],
      ['reported', 'Of those, the cases whose consultation report was posted (R14).'],
      ['on-time', 'Reports posted by the opinion\'s due date.'],
      ['overdue', 'Opinions still owed (the case neither withdrawn nor denied), unreported past their due date when the report is made.'],
    ],
    score: 'on-time / reported, from 0 to 1; absent when none was reported.',
  },
  standard: { scoring: 'proportion', populations: decidedSplit('Standard (routine or no priority)'), score: SPLIT_SCORE },
  expedited: { scoring: 'proportion', populations: decidedSplit('Expedited (any priority but routine)'), score: SPLIT_SCORE },
  'after-appeal': { scoring: 'proportion', populations: [], score: 'The percentage of decided requests approved after an appeal (UCUM %), to one decimal; absent when none was decided.' },
  'extended-approved': { scoring: 'proportion', populations: [], score: 'The percentage of decided requests whose deadline was extended that were then approved (UCUM %), to one decimal; absent when none was.' },
  'decision-hours': {
    scoring: 'continuous-variable',
    populations: [DECIDED],
    score: 'The average number of hours from receipt (Task.authoredOn) to decision (UCUM h), to one decimal; absent when none was decided.',
  },
  grievances: {
    scoring: 'cohort',
    populations: [
      ['received', 'Grievances about second opinions (Tasks claiming the second-opinion-grievance profile) received in the period (Task.authoredOn).'],
      ...GRIEVANCE_CATEGORY_CONCEPTS.map((concept): Population => [coded(CODE_SYSTEMS.grievanceCategory, concept), `Of those, the grievances in category ${concept[0]} (Task.reasonCode): ${concept[2]}`]),
    ],
  },
  'grievance-outcomes': {
    scoring: 'cohort',
    populations: GRIEVANCE_OUTCOME_CONCEPTS.map((concept): Population => [coded(CODE_SYSTEMS.grievanceOutcome, concept), `Resolved grievances whose outcome (the Task output outcome) is ${concept[0]}: ${concept[2]}`]),
  },
  'grievance-timeliness': {
    scoring: 'proportion',
    populations: [
      ['received', 'Grievances received in the period.'],
      ['acknowledged-on-time', 'Of those, the grievances acknowledged in writing by their acknowledgment due date (28 CCR 1300.68(d)(1): 5 calendar days).'],
      ['resolved', 'Of those, the grievances resolved.'],
      ['resolved-on-time', 'Resolved grievances resolved by their due date (Task.restriction.period.end: H&S 1368.01, 30 calendar days or 72 hours).'],
      ['overdue', 'Grievances unresolved past their resolution due date when the report is made.'],
    ],
    score: 'resolved-on-time / resolved, from 0 to 1; absent when none was resolved.',
  },
  'decision-hours-median': {
    scoring: 'continuous-variable',
    populations: [DECIDED],
    score: 'The median number of hours from receipt (Task.authoredOn) to decision (UCUM h), to one decimal; absent when none was decided.',
  },
};

const STRATIFIERS: Partial<Record<CommitteeFigure, { code: string; description: string }>> = {
  'by-reason-outcome': {
    code: 'reason',
    description: 'BSP D.X, approvals and denials coded by category: one stratum per reason category (R2) the cases gave, its value the reason code, with the cases of that reason by outcome. A case giving two reasons counts under each.',
  },
};

function group(code: CommitteeFigure): MeasureGroup {
  const [display, definition] = COMMITTEE_FIGURES[code];
  const { scoring, populations, score } = GROUPS[code];
  const stratifier = STRATIFIERS[code];
  const scoringCoding: Coding = { system: 'http://terminology.hl7.org/CodeSystem/measure-scoring', code: scoring };
  return {
    extension: [{ url: GROUP_SCORING, valueCodeableConcept: { coding: [scoringCoding] } }],
    code: { coding: [{ system: CODE_SYSTEMS.committeeReport, code, display }], text: display },
    description: score ? `${definition} Score: ${score}` : definition,
    population: populations.length ? populations.map(([population, counts]): MeasureGroupPopulation => ({ code: codeText(population), description: counts, criteria: inWords(counts) })) : undefined,
    stratifier: stratifier ? [{ code: { text: stratifier.code }, description: stratifier.description, criteria: inWords(stratifier.description) }] : undefined,
  };
}

export function committeeMeasure(): Measure {
  return {
    resourceType: 'Measure',
    id: COMMITTEE_MEASURE_ID,
    url: `${CANONICAL_BASE}/Measure/${COMMITTEE_MEASURE_ID}`,
    name: 'SecondOpinionCommitteeReport',
    title: 'Second-opinion committee report',
    ...META,
    description:
      'The figures a plan tracks on second-opinion requests and reports to its Medical Services Committee (R19): approvals and denials coded by category (BSP D.X), quarterly reports to find provider trends and quality issues (BSP F), and the prior-authorization metrics of 42 CFR 438.210(f) for standard and expedited requests.',
    subjectCodeableConcept: { coding: [{ system: 'http://hl7.org/fhir/resource-types', code: 'Task' }], text: 'Second-opinion case (the case Task)' },
    type: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/measure-type', code: 'process' }] }],
    usage: 'Computed by the server for a period and, optionally, a plan: `$second-opinion-report` (a MeasureReport of type summary) or `/reports/second-opinion.csv`. The criteria are described in words: the server evaluates them itself.',
    guidance:
      'Period: `2026-Q3` (a quarter), `2026-11` (a month) or `2026` (a year), from local midnight to local midnight in Pacific time (America/Los_Angeles, PST or PDT as the date falls); MeasureReport.period.end is the last millisecond before the next period. A case belongs to the period in which it was received (Task.authoredOn). Outcomes, decisions, reports and what is overdue are counted as they stand when the report is made (MeasureReport.date), so a past period\'s figures change as its cases move on.',
    relatedArtifact: [{ type: 'documentation', display: 'The operation that computes the report', resource: `${CANONICAL_BASE}/OperationDefinition/second-opinion-report` }],
    group: (Object.keys(COMMITTEE_FIGURES) as CommitteeFigure[]).map(group),
  };
}
