import type { CodeSystem, ElementDefinition, OperationDefinition, OperationDefinitionParameter, Resource, SearchParameter, StructureDefinition, ValueSet } from 'fhir/r4.js';
import { CANONICAL_BASE, CODE_SYSTEMS, EXTENSIONS, PROFILES, VALUE_SETS } from '../systems.js';
import { COMMITTEE_FIGURES } from '../../domain/reporting.js';
import type { GrievanceCategory, GrievanceOutcome, GrievanceStep } from '../../domain/grievance.js';
import { withSnapshot } from './snapshot.js';

/**
 * The conformance resources of our API, as code so that codes and URLs come from one place
 * (systems.ts) and snapshots are computed. scripts/build-profiles.ts writes them to profiles/.
 */
export const META = { version: '0.1.0', status: 'active' as const, date: '2026-11-24', publisher: 'second-opinion-fhir', experimental: false };

type Concept = [code: string, display: string, definition: string];

function codeSystem(id: string, url: string, name: string, title: string, description: string, concepts: Concept[]): CodeSystem {
  return {
    resourceType: 'CodeSystem', id, url, name, title, description, ...META, caseSensitive: true, content: 'complete', valueSet: url.replace('/CodeSystem/', '/ValueSet/'),
    count: concepts.length,
    concept: concepts.map(([code, display, definition]) => ({ code, display, definition })),
  };
}

function valueSetOf(cs: CodeSystem): ValueSet {
  return { resourceType: 'ValueSet', id: cs.id, url: cs.valueSet!, name: `${cs.name}VS`, title: cs.title, description: `All codes of ${cs.url}`, ...META, compose: { include: [{ system: cs.url }] } };
}

export const REASONS: Concept[] = [
  ['surgery-necessity', 'Questions the necessity of recommended surgery or treatment', 'R2.1: the member questions the reasonableness or necessity of recommended surgical procedures (HPSJ II.B.1, ANT II.A, BSP C.II.a) or treatment (PHC VI.A.1).'],
  ['serious-condition', 'Questions the diagnosis or plan of care for a serious condition', 'R2.2: a condition that threatens loss of life, limb, bodily function or substantial impairment, including a serious chronic condition (HPSJ II.B.2, PHC VI.A.2, ANT II.B, BSP C.II.b).'],
  ['unclear-diagnosis', 'Clinical indications unclear or diagnosis in doubt', 'R2.3: clinical indications not clear or complex and confusing, diagnosis in doubt due to conflicting test results, or the treating professional cannot diagnose (HPSJ II.B.3, PHC VI.A.3, ANT II.C, BSP C.II.c).'],
  ['not-improving', 'Treatment plan not improving the condition', 'R2.4: the treatment plan in progress is not improving the condition within an appropriate time (HPSJ II.B.4, PHC VI.A.4, ANT II.D, BSP C.II.d).'],
  ['persistent-concerns', 'Serious concerns persist after following the plan', 'R2.5: the member followed the plan of care or consulted the initial provider and still has serious concerns (HPSJ II.B.5, PHC VI.A.5, ANT II.E, BSP C.II.e).'],
  ['other', 'Other reason', 'Reasons "include, but are not limited to" the five categories: any other reason, described in words.'],
];

export const BUSINESS_STATUSES: Concept[] = [
  ['received', 'Received', 'The request was received and recorded (the clock starts).'],
  ['approved', 'Approved', 'Authorized or approved without authorization (R3, BSP D.V, D.VII.a).'],
  ['um-review', 'In UM review', 'A UM clinician reviews the request for complete demographic and clinical information (BSP D.I, D.III).'],
  ['info-requested', 'Information requested', 'The UM clinician asked the treating provider for more information (BSP D.IV).'],
  ['info-received', 'Information received', 'The requested information arrived.'],
  ['medical-director-review', 'Medical Director review', 'Forwarded to the Medical Director (BSP D.VI).'],
  ['consultative-review', 'Consultative review', 'Referred to a physician of the same specialty for consultative review (BSP D.VI).'],
  ['modified', 'Modified', 'Authorized in network instead of out of network: an adverse decision with notice and appeal rights (R10).'],
  ['denied', 'Denied', 'Denied by a physician reviewer, with written notice and appeal and grievance rights (R10).'],
  ['extended', 'Extended', 'Decision deadline extended by up to 14 days with notice (42 CFR 438.210(d)(1)(ii)).'],
  ['withdrawn', 'Withdrawn', 'The member or requester withdrew the request.'],
  ['scheduled', 'Scheduled', 'The second-opinion visit is scheduled.'],
  ['transport-arranged', 'Transportation arranged', 'Transportation to the second-opinion provider is arranged (R13).'],
  ['report-received', 'Consultation report received', 'The consultation report arrived (R14).'],
  ['completed', 'Completed', 'The report reached the member and the initial professional; the case is closed.'],
  ['delivery-failed', 'Delivery failed', 'A notice or report could not be delivered to a provider system after all retries.'],
];

export const USER_ROLES: Concept[] = [
  ['treating-provider', 'Treating provider', 'A PCP or treating specialist of the member (R1).'],
  ['um-clinician', 'UM clinician', 'Reviews requests, asks for information, approves and escalates (BSP D.III-V).'],
  ['medical-director', 'Physician reviewer', 'Medical Director or physician designee: may deny, modify or refer (R10, BSP D.VI-VII); resolves the grievances that involve clinical issues (R17, 42 CFR 438.406(b)(2)(ii)).'],
  ['second-opinion-provider', 'Second-opinion professional', 'Gives the opinion and posts the consultation report (R14).'],
  ['member', 'Member', 'The member or their authorized representative.'],
  ['plan-admin', 'Plan administrator', 'Administers the plan configuration.'],
  ['auditor', 'Auditor', 'Reads the audit log.'],
  ['delegated-group', 'Delegated IPA/medical group', 'Decides in its own name under delegation (R18).'],
  ['grievance-coordinator', 'Grievance Coordinator', 'Acknowledges members’ grievances for the plan and resolves those that involve no clinical issue (R17, PHC VI.E).'],
];

/** R17: the codes are the domain's (domain/grievance.ts); each must have its words here. */
const concepts = <C extends string>(words: Record<C, [display: string, definition: string]>): Concept[] =>
  (Object.entries(words) as [C, [string, string]][]).map(([code, [display, definition]]) => [code, display, definition]);

const GRIEVANCE_CATEGORIES = concepts<GrievanceCategory>({
  'pcp-not-granted': ['The PCP or treating provider did not grant or submit the request', 'PHC VI.E: the primary care provider did not grant the member’s request for a second opinion. Clinical: resolved by a physician (42 CFR 438.406(b)(2)(ii)).'],
  'plan-decision': ['The plan denied or changed the request', 'A denial or modification of a second-opinion request (R10: the notice of action names the right to a grievance). Clinical: resolved by a physician (42 CFR 438.406(b)(2)(ii)).'],
  'deadline-missed': ['A deadline was missed', 'The request was not decided, notified or given in time (R9).'],
  other: ['Other', 'Any other dissatisfaction with the second-opinion process, described in words.'],
});

const GRIEVANCE_STATUSES = concepts<GrievanceStep>({
  received: ['Received', 'The grievance was received; the clocks run from here (R17).'],
  acknowledged: ['Acknowledged', 'The member was sent the written acknowledgment (28 CCR 1300.68(d)(1)).'],
  resolved: ['Resolved', 'The member was sent the written resolution with their further rights (H&S 1368.01; 28 CCR 1300.68(d)(3)).'],
});

const GRIEVANCE_OUTCOMES = concepts<GrievanceOutcome>({
  upheld: ['Upheld', 'The grievance is resolved in the member’s favour.'],
  'partly-upheld': ['Partly upheld', 'The grievance is resolved partly in the member’s favour.'],
  'not-upheld': ['Not upheld', 'The grievance is not resolved in the member’s favour.'],
});

export { GRIEVANCE_CATEGORIES as GRIEVANCE_CATEGORY_CONCEPTS, GRIEVANCE_OUTCOMES as GRIEVANCE_OUTCOME_CONCEPTS };

const REQUESTER_KINDS: Concept[] = [
  ['member', 'Member', 'The member asks (R1).'],
  ['authorized-representative', 'Authorized representative', 'The member’s authorized representative asks (PHC VI.A).'],
  ['pcp', 'Primary care provider', 'The member’s PCP asks (R1).'],
  ['treating-specialist', 'Treating specialist', 'A specialist treating the member asks (R1).'],
  ['other', 'Other', 'A requester the policies do not name: routed to UM review (R1).'],
];

const QUALIFICATIONS: Concept[] = [
  ['board-certified', 'Board certified', 'Board certification in the specialty (BSP D.VI.b).'],
  ['medi-cal-enrolled', 'Enrolled in Medi-Cal', 'Certified by / enrolled in Medi-Cal (PHC VI.A).'],
];

const TIERS: Concept[] = [
  ['member-group', 'Member’s IPA/medical group', 'The member’s own physician organization (BSP D.VI.b).'],
  ['plan-network', 'Plan network', 'Contracted with the plan.'],
  ['out-of-network', 'Out of network', 'Not contracted: prior authorization (R8).'],
];

const CATEGORIES: Concept[] = [
  ['second-opinion', 'Second medical opinion', 'A request for a second medical opinion (R1-R22).'],
  ['second-opinion-grievance', 'Grievance about a second opinion', 'A member’s grievance about a second-opinion request (R17, PHC VI.E): the code of its Task.'],
];

function el(path: string, rest: Omit<ElementDefinition, 'path' | 'id'> = {}): ElementDefinition {
  return { id: path, path, ...rest };
}

function profile(id: string, type: string, title: string, description: string, elements: ElementDefinition[]): StructureDefinition {
  return withSnapshot({
    resourceType: 'StructureDefinition', id, url: `${CANONICAL_BASE}/StructureDefinition/${id}`, name: id.split('-').map((w) => w[0].toUpperCase() + w.slice(1)).join(''), title, description, ...META,
    fhirVersion: '4.0.1', kind: 'resource', abstract: false, type, baseDefinition: `http://hl7.org/fhir/StructureDefinition/${type}`, derivation: 'constraint',
    differential: { element: [el(type), ...elements] },
  });
}

const required = (min = 1, extra: Omit<ElementDefinition, 'path' | 'id'> = {}) => ({ min, mustSupport: true, ...extra });
/** A Task for the member whose clocks start at its receipt (authoredOn). */
const receivedFor = (rule: string): ElementDefinition[] => [
  el('Task.for', { ...required(), type: [{ code: 'Reference', targetProfile: ['http://hl7.org/fhir/StructureDefinition/Patient'] }] }),
  el('Task.authoredOn', { ...required(), short: `Receipt: the clocks start here (${rule})` }),
];

/** What the Task's clocks make due, at restriction.period.end (the `due` SearchParameter). */
const dueBy = (rule: string, due: string, key: string): ElementDefinition[] => [
  el('Task.restriction', required()),
  el('Task.restriction.period', {
    ...required(),
    short: `start = receipt, end = ${due} due (${rule})`,
    constraint: [{ key, severity: 'error', human: `The ${due} due date (period.end) is required`, expression: 'end.exists()' }],
  }),
];
const secondOpinionCategory = { coding: [{ system: CODE_SYSTEMS.serviceRequestCategory, code: 'second-opinion' }] };

function profiles(): StructureDefinition[] {
  return [
    profile('second-opinion-servicerequest', 'ServiceRequest', 'Second-opinion ServiceRequest', 'A member’s request for a second medical opinion (R1-R9).', [
      el('ServiceRequest.identifier', required()),
      el('ServiceRequest.intent', { ...required(), short: 'order' }),
      el('ServiceRequest.priority', { mustSupport: true, short: 'urgent, asap and stat are expedited (R9)' }),
      el('ServiceRequest.subject', { ...required(), type: [{ code: 'Reference', targetProfile: ['http://hl7.org/fhir/StructureDefinition/Patient'] }] }),
      el('ServiceRequest.requester', required()),
      el('ServiceRequest.insurance', required()),
      el('ServiceRequest.reasonCode', { ...required(), binding: { strength: 'extensible', valueSet: VALUE_SETS.reason } }),
      el('ServiceRequest.performerType', { mustSupport: true, binding: { strength: 'extensible', valueSet: 'http://hl7.org/fhir/us/core/ValueSet/us-core-provider-specialty' } }),
      el('ServiceRequest.performer', { mustSupport: true, max: '1' }),
    ]),
    profile('second-opinion-coverageeligibilityresponse', 'CoverageEligibilityResponse', 'Second-opinion authorization answer', 'Whether a second opinion needs authorization, and the decision (R3, R7, R8, R12).', [
      el('CoverageEligibilityResponse.request', required()),
      el('CoverageEligibilityResponse.disposition', required()),
      el('CoverageEligibilityResponse.insurance', required()),
      el('CoverageEligibilityResponse.insurance.item', required()),
      el('CoverageEligibilityResponse.insurance.item.authorizationRequired', required()),
    ]),
    profile('second-opinion-task', 'Task', 'Second-opinion case Task', 'Tracks a second-opinion case through UM review (R11), deadlines (R9), notices and the report (R14).', [
      el('Task.businessStatus', { ...required(), binding: { strength: 'required', valueSet: VALUE_SETS.businessStatus } }),
      el('Task.focus', { ...required(), type: [{ code: 'Reference', targetProfile: ['http://hl7.org/fhir/StructureDefinition/ServiceRequest'] }] }),
      ...receivedFor('R9'),
      ...dueBy('R9', 'decision', 'so-task-1'),
    ]),
    profile('second-opinion-grievance', 'Task', 'Second-opinion grievance Task', 'A member’s grievance about a second opinion (R17, PHC VI.E): filed, acknowledged by the plan’s Grievance Coordinator and resolved within the California clocks, by the coordinator or, when it involves clinical issues, by the plan’s physician; never by someone who reviewed or decided the case (42 CFR 438.406(b)(2)).', [
      el('Task.businessStatus', { ...required(), binding: { strength: 'required', valueSet: VALUE_SETS.grievanceStatus } }),
      el('Task.code', { ...required(), short: 'second-opinion-grievance' }),
      el('Task.focus', { mustSupport: true, short: 'The second-opinion request it is about, if any (a PCP who never submitted leaves none)', type: [{ code: 'Reference', targetProfile: ['http://hl7.org/fhir/StructureDefinition/ServiceRequest'] }] }),
      ...receivedFor('R17'),
      el('Task.requester', { ...required(), short: 'Who filed it: the member (also when the coordinator took it by phone), their representative, or a provider for them' }),
      el('Task.owner', { ...required(), short: 'The plan (its Grievance Coordinator, PHC VI.E)' }),
      el('Task.reasonCode', { ...required(), binding: { strength: 'required', valueSet: VALUE_SETS.grievanceCategory } }),
      el('Task.note', { ...required(), short: 'The member’s words' }),
      el('Task.performerType', { mustSupport: true, short: 'Who acts on it: the Grievance Coordinator, and the plan’s physician who resolves a clinical grievance (42 CFR 438.406(b)(2)(ii))', binding: { strength: 'required', valueSet: VALUE_SETS.userRole } }),
      ...dueBy('R17', 'resolution', 'so-grievance-1'),
    ]),
    profile('second-opinion-consultation-report', 'DocumentReference', 'Second-opinion consultation report', 'The report of the second-opinion professional, with recommended procedures and tests (R14).', [
      el('DocumentReference.subject', required()),
      el('DocumentReference.author', required()),
      el('DocumentReference.context', required()),
      el('DocumentReference.context.related', required()),
    ]),
    profile('second-opinion-decision-notice', 'Communication', 'Second-opinion decision notice', 'A letter to the member or provider about a decision (R10, R11).', [
      el('Communication.basedOn', required()),
      el('Communication.subject', required()),
      el('Communication.recipient', required()),
      el('Communication.payload', required()),
      el('Communication.sent', required()),
    ]),
  ];
}

function extension(id: string, url: string, title: string, description: string, value: string, context: string[]): StructureDefinition {
  return {
    resourceType: 'StructureDefinition', id, url, name: id.split('-').map((w) => w[0].toUpperCase() + w.slice(1)).join(''), title, description, ...META,
    fhirVersion: '4.0.1', kind: 'complex-type', abstract: false, type: 'Extension', baseDefinition: 'http://hl7.org/fhir/StructureDefinition/Extension', derivation: 'constraint',
    context: context.map((expression) => ({ type: 'element' as const, expression })),
    differential: { element: [{ id: 'Extension', path: 'Extension', short: title }, { id: 'Extension.url', path: 'Extension.url', fixedUri: url }, { id: 'Extension.value[x]', path: 'Extension.value[x]', min: 1, type: [{ code: value }] }] },
  };
}

function extensions(): StructureDefinition[] {
  const crdParts: [string, string, number, string][] = [
    ['coverage', 'Reference', 1, 'The Coverage the answer is about'],
    ['covered', 'code', 1, 'covered | not-covered | conditional'],
    ['pa-needed', 'code', 0, 'no-auth | auth-needed | satisfied | performpa | conditional'],
    ['doc-needed', 'code', 0, 'clinical | admin | both | conditional'],
    ['info-needed', 'code', 0, 'performer | location | timeframe'],
    ['billingCode', 'Coding', 0, 'Billing code the answer applies to'],
    ['reason', 'CodeableConcept', 0, 'Why (e.g. auth-out-network)'],
    ['detail', 'Extension', 0, 'Further detail (code/value pairs)'],
    ['date', 'date', 1, 'When the answer was given'],
    ['coverage-assertion-id', 'string', 1, 'Identifier of this coverage assertion'],
    ['satisfied-pa-id', 'string', 0, 'Prior authorization that satisfies the requirement'],
    ['contact', 'ContactPoint', 0, 'Whom to contact'],
    ['expiry-date', 'date', 0, 'Until when the answer holds'],
  ];
  const crd: StructureDefinition = {
    resourceType: 'StructureDefinition', id: 'ext-coverage-information', url: EXTENSIONS.crdCoverageInformation, name: 'CoverageInformation', title: 'Coverage Information (Da Vinci CRD 2.2)',
    description: 'Written from the published Da Vinci CRD 2.2 guide (the package cannot be downloaded here): coverage and prior-authorization information on the ordered service.',
    ...META, publisher: 'HL7 Da Vinci (transcribed)', fhirVersion: '4.0.1', kind: 'complex-type', abstract: false, type: 'Extension', baseDefinition: 'http://hl7.org/fhir/StructureDefinition/Extension', derivation: 'constraint',
    context: [{ type: 'element', expression: 'ServiceRequest' }, { type: 'element', expression: 'DeviceRequest' }, { type: 'element', expression: 'MedicationRequest' }],
    differential: {
      element: [
        { id: 'Extension', path: 'Extension', short: 'CRD coverage information' },
        ...crdParts.flatMap(([name, type, min, short]): ElementDefinition[] => [
          { id: `Extension.extension:${name}`, path: 'Extension.extension', sliceName: name, min, max: name === 'detail' || name === 'reason' || name === 'contact' ? '*' : '1', short },
          { id: `Extension.extension:${name}.url`, path: 'Extension.extension.url', fixedUri: name },
          { id: `Extension.extension:${name}.value[x]`, path: 'Extension.extension.value[x]', type: [{ code: type }] },
        ]),
        { id: 'Extension.url', path: 'Extension.url', fixedUri: EXTENSIONS.crdCoverageInformation },
        { id: 'Extension.value[x]', path: 'Extension.value[x]', max: '0' },
      ],
    },
  };
  return [
    crd,
    { ...extension('network-reference', EXTENSIONS.planNetNetworkReference, 'Network reference (Da Vinci Plan-Net)', 'Transcribed from Da Vinci PDEX Plan-Net: the network a practitioner role or organization belongs to.', 'Reference', ['PractitionerRole', 'Organization']), publisher: 'HL7 Da Vinci (transcribed)' },
    extension('transportation-needed', EXTENSIONS.transportationNeeded, 'Transportation needed', 'The member needs transportation to the second-opinion provider (R13, HPSJ III.F).', 'boolean', ['ServiceRequest']),
    extension('care-questioned', EXTENSIONS.careQuestioned, 'Care questioned', 'The initial professional whose care the second opinion is about (R5, R6, R14).', 'Reference', ['ServiceRequest']),
    extension('imminent-threat', EXTENSIONS.imminentThreat, 'Imminent and serious threat', 'The member faces an imminent and serious threat to health: the opinion is due within 72 hours (H&S 1383.15, R9).', 'boolean', ['ServiceRequest']),
    extension('requester-kind', EXTENSIONS.requesterKind, 'Requester kind', 'Who asks (R1), when the requester reference alone does not say.', 'code', ['ServiceRequest']),
    extension('behavioral-health', EXTENSIONS.behavioralHealth, 'Behavioral health request', 'A behavioral health second opinion (R22, parity).', 'boolean', ['ServiceRequest']),
    extension('preferred-language', EXTENSIONS.preferredLanguage, 'Preferred language for notices', 'Language of the member’s letters (R10), BCP-47.', 'code', ['ServiceRequest']),
  ];
}

function param(name: string, use: 'in' | 'out', min: number, max: string, type: string, documentation: string): OperationDefinitionParameter {
  return { name, use, min, max, type: type as OperationDefinitionParameter['type'], documentation };
}

function operation(id: string, code: string, resource: string[], level: { system: boolean; type: boolean; instance: boolean }, affectsState: boolean, description: string, parameter: OperationDefinitionParameter[]): OperationDefinition {
  return { resourceType: 'OperationDefinition', id, url: `${CANONICAL_BASE}/OperationDefinition/${id}`, name: id.replace(/-/g, ''), title: `$${code}`, ...META, kind: 'operation', code, description, ...(resource.length ? { resource: resource as OperationDefinition['resource'] } : {}), ...level, affectsState, parameter };
}

function operations(): OperationDefinition[] {
  const onTask = (code: string, description: string, inputs: OperationDefinitionParameter[]) =>
    operation(`Task-${code}`, code, ['Task'], { system: false, type: false, instance: true }, true, description, [...inputs, param('return', 'out', 1, '1', 'Task', 'The case Task after the action')]);
  return [
    operation('ServiceRequest-submit', 'submit', ['ServiceRequest'], { system: false, type: true, instance: false }, true,
      'Submit a second-opinion request: a Bundle with the ServiceRequest and the resources it references. Returns the stored ServiceRequest, CoverageEligibilityRequest, CoverageEligibilityResponse and Task. Idempotent on the request identifier.',
      [param('bundle', 'in', 1, '1', 'Bundle', 'The request and what it references'), param('return', 'out', 1, '1', 'Bundle', 'The stored case')]),
    operation('CoverageEligibilityRequest-submit', 'submit', ['CoverageEligibilityRequest'], { system: false, type: true, instance: false }, false,
      'Ask, without creating a case, whether a second opinion by a given professional would need authorization and why (purpose auth-requirements).',
      [param('bundle', 'in', 1, '1', 'Bundle', 'The proposed request and what it references'), param('return', 'out', 1, '1', 'CoverageEligibilityResponse', 'The answer')]),
    onTask('approve', 'Approve (UM clinician or physician reviewer).', [param('authorizedPractitionerRole', 'in', 0, '1', 'Reference', 'The authorized professional'), param('note', 'in', 0, '1', 'string', 'Why')]),
    onTask('request-info', 'Ask the treating provider for information (BSP D.IV; CDex-style Task).', [param('what', 'in', 1, '*', 'string', 'What is needed'), param('note', 'in', 0, '1', 'string', 'Why')]),
    onTask('answer-info', 'Answer an information request with documents.', [param('document', 'in', 1, '*', 'Reference', 'DocumentReference answering the request')]),
    onTask('escalate', 'Forward to the Medical Director (BSP D.VI).', [param('note', 'in', 0, '1', 'string', 'Why')]),
    onTask('deny', 'Deny (physician reviewer only, R10).', [param('reason', 'in', 1, '1', 'string', 'Specific reason'), param('criteria', 'in', 0, '1', 'string', 'Criteria used')]),
    onTask('modify', 'Authorize in network instead (adverse: notice of action, R10).', [param('authorizedPractitionerRole', 'in', 1, '1', 'Reference', 'The in-network professional'), param('reason', 'in', 1, '1', 'string', 'Why')]),
    onTask('extend', 'Extend the decision deadline up to 14 days with notice (42 CFR 438.210(d)(1)(ii)).', [param('days', 'in', 1, '1', 'integer', '1-14'), param('reason', 'in', 1, '1', 'string', 'Why')]),
    onTask('refer-consultative-review', 'Refer to a physician of the same specialty (BSP D.VI).', [param('reviewer', 'in', 0, '1', 'Reference', 'The consultative reviewer'), param('note', 'in', 0, '1', 'string', 'Why')]),
    onTask('withdraw', 'Withdraw the request (member or requester).', [param('reason', 'in', 0, '1', 'string', 'Why')]),
    onTask('post-report', 'Post the consultation report (the authorized second-opinion professional only, R14). Recommended out-of-network treatment opens a treatment authorization request (R16, PHC VI.C).', [
      param('report', 'in', 1, '1', 'DocumentReference', 'The consultation report'),
      param('outOfNetworkTreatment', 'in', 0, '1', 'string', 'Recommended treatment by an out-of-network provider, if any (opens a TAR)'),
      param('treatmentPerformer', 'in', 0, '1', 'Reference', 'Who would give that treatment'),
    ]),
    operation('Task-file-grievance', 'file-grievance', ['Task'], { system: false, type: true, instance: false }, true,
      'File a member’s grievance about a second opinion (R17, PHC VI.E): by the member or their representative, a provider for them, or the Grievance Coordinator taking it by phone. Returns the grievance Task with its acknowledgment and resolution dues.',
      [
        param('patient', 'in', 0, '1', 'Reference', 'The member (defaults to the member signed in)'),
        param('case', 'in', 0, '1', 'Reference', 'The second-opinion request (ServiceRequest) or its case Task, if any'),
        param('category', 'in', 1, '1', 'code', 'pcp-not-granted | plan-decision | deadline-missed | other'),
        param('description', 'in', 1, '1', 'string', 'The grievance in the member’s words'),
        param('expedited', 'in', 0, '1', 'boolean', 'The member faces an imminent and serious threat to health (H&S 1368.01(b): 72 hours)'),
        param('return', 'out', 1, '1', 'Task', 'The grievance Task'),
      ]),
    operation('Task-acknowledge-grievance', 'acknowledge-grievance', ['Task'], { system: false, type: false, instance: true }, true,
      'Acknowledge a grievance in writing (Grievance Coordinator; 28 CCR 1300.68(d)(1)): the member is sent the acknowledgment letter.',
      [param('note', 'in', 0, '1', 'string', 'A note for the record'), param('return', 'out', 1, '1', 'Task', 'The grievance Task after the action')]),
    operation('Task-resolve-grievance', 'resolve-grievance', ['Task'], { system: false, type: false, instance: true }, true,
      'Resolve an acknowledged grievance (H&S 1368.01, 28 CCR 1300.68(d)(3)): by the Grievance Coordinator, or by the plan’s physician (medical-director) when it involves clinical issues, and never by someone who reviewed or decided the case it is about (42 CFR 438.406(b)(2)); the member is sent the resolution with its reasons and their further rights (DMHC, Independent Medical Review, State Hearing).',
      [
        param('outcome', 'in', 1, '1', 'code', 'upheld | partly-upheld | not-upheld'),
        param('resolution', 'in', 1, '1', 'string', 'The resolution and its reasons, as the member is told them'),
        param('return', 'out', 1, '1', 'Task', 'The grievance Task after the action'),
      ]),
    operation('second-opinion-report', 'second-opinion-report', [], { system: true, type: false, instance: false }, false,
      'Committee report (R19) and 42 CFR 438.210(f) prior-authorization metrics for a period and plan.',
      [param('period', 'in', 1, '1', 'string', 'e.g. 2026-Q3'), param('plan', 'in', 0, '1', 'code', 'hpsj | phc | ant | bsp'), param('return', 'out', 1, '1', 'MeasureReport', 'The figures')]),
  ];
}

function searchParameters(): SearchParameter[] {
  return [
    {
      resourceType: 'SearchParameter', id: 'Task-due', url: `${CANONICAL_BASE}/SearchParameter/Task-due`, name: 'due', ...META,
      description: 'When the decision on a second-opinion case is due (R9), or the resolution of a grievance (R17): Task.restriction.period.end. R4 has no search parameter on it; UM desks search and sort open cases by it (Task?business-status=um-review&due=lt2026-12-01&_sort=due), grievance coordinators open grievances (Task?code=second-opinion-grievance&status=requested,in-progress&_sort=due).',
      code: 'due', base: ['Task'], type: 'date', expression: 'Task.restriction.period.end', comparator: ['eq', 'ne', 'gt', 'lt', 'ge', 'le', 'sa', 'eb', 'ap'],
    },
    {
      resourceType: 'SearchParameter', id: 'PractitionerRole-network', url: `${CANONICAL_BASE}/SearchParameter/PractitionerRole-network`, name: 'network', ...META,
      derivedFrom: 'http://hl7.org/fhir/us/davinci-pdex-plan-net/SearchParameter/practitionerrole-network',
      description: 'The plan networks a PractitionerRole belongs to (the Plan-Net network-reference extension), as Plan-Net defines it: a UM desk looks for qualified in-network professionals (PractitionerRole?specialty=207RC0000X&network=Organization/hpsj-network).',
      code: 'network', base: ['PractitionerRole'], type: 'reference', target: ['Organization'],
      expression: `PractitionerRole.extension.where(url = '${EXTENSIONS.planNetNetworkReference}').value`,
    },
  ];
}

export function conformanceResources(): Resource[] {
  const systems = [
    codeSystem('second-opinion-reason', CODE_SYSTEMS.reason, 'SecondOpinionReason', 'Second-opinion request reasons', 'Why a member asks for a second opinion (R2).', REASONS),
    codeSystem('second-opinion-business-status', CODE_SYSTEMS.businessStatus, 'SecondOpinionBusinessStatus', 'Second-opinion case steps', 'Where a case stands in the UM review path (R11) and after.', BUSINESS_STATUSES),
    codeSystem('user-role', CODE_SYSTEMS.userRole, 'UserRole', 'User roles', 'Roles of users of the second-opinion service.', USER_ROLES),
    codeSystem('requester-kind', CODE_SYSTEMS.requesterKind, 'RequesterKind', 'Requester kinds', 'Who asks for a second opinion (R1).', REQUESTER_KINDS),
    codeSystem('provider-qualification', CODE_SYSTEMS.qualification, 'ProviderQualification', 'Provider qualifications', 'Qualifications the plans require (R6, R7).', QUALIFICATIONS),
    codeSystem('network-tier', CODE_SYSTEMS.networkTier, 'NetworkTier', 'Network tiers', 'Where a professional stands relative to the member’s network (R6).', TIERS),
    codeSystem('second-opinion-category', CODE_SYSTEMS.serviceRequestCategory, 'SecondOpinionCategory', 'Second-opinion service', 'The service category and code of a second opinion.', CATEGORIES),
    codeSystem('grievance-category', CODE_SYSTEMS.grievanceCategory, 'GrievanceCategory', 'Grievance categories', 'What a member’s grievance about a second opinion is about (R17).', GRIEVANCE_CATEGORIES),
    codeSystem('grievance-status', CODE_SYSTEMS.grievanceStatus, 'GrievanceStatus', 'Grievance steps', 'Where a grievance stands (R17).', GRIEVANCE_STATUSES),
    codeSystem('grievance-outcome', CODE_SYSTEMS.grievanceOutcome, 'GrievanceOutcome', 'Grievance outcomes', 'How a grievance was resolved (R17).', GRIEVANCE_OUTCOMES),
    codeSystem('committee-report', CODE_SYSTEMS.committeeReport, 'CommitteeReport', 'Committee report figures', 'The figures of the second-opinion committee report (R19; BSP D.X, F; 42 CFR 438.210(f)), the groups of its MeasureReport.', Object.entries(COMMITTEE_FIGURES).map(([code, [display, definition]]): Concept => [code, display, definition])),
  ];
  return [...systems, ...systems.map(valueSetOf), ...profiles(), ...extensions(), ...operations(), ...searchParameters()];
}

export { secondOpinionCategory, PROFILES };
