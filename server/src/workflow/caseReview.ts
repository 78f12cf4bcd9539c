import { randomUUID } from 'node:crypto';
import type { Coverage, CoverageEligibilityResponse, DocumentReference, Extension, Patient, Reference, Resource, ServiceRequest, Task, TaskInput, TaskOutput } from 'fhir/r4.js';
import { extendDeadline, localDate, notificationDues } from '../domain/clock.js';
import { practisesRequestedSpecialty } from '../domain/network.js';
import { type CaseStep, type Delegation, type ReviewAction, ReviewRefusal, TASK_STATUS, transition } from '../domain/reviewPath.js';
import { conflict, forbidden, preconditionFailed, unprocessable } from '../fhir/outcomes.js';
import { parseLiteral } from '../fhir/references.js';
import type { AccessContext } from '../fhir/request.js';
import { CODE_SYSTEMS, EXTENSIONS, PROFILES } from '../fhir/systems.js';
import type { FhirStore } from '../storage/FhirStore.js';
import { type CallerAccess, type CaseFiles, checkParty, memberDocuments, noticeRecipients, practitionerOf, practitionerReference, treatingProvider, uniqueReferences } from './caseParties.js';
import { authorizationProblems, planOf, requestedSpecialtiesOf } from './decide.js';
import { professionalNameOf, specialtiesOfReference } from './directory.js';
import { composeLetter, sendLetter } from './letters.js';
import type { ProviderDelivery } from './providerDelivery.js';
import { type OnApproval, provenance } from './submit.js';
import { nonEmpty } from '../fhir/jsonRules.js';

export type { CallerAccess } from './caseParties.js';

export interface ReviewInput {
  authorizedPractitionerRole?: Reference;
  note?: string;
  what?: string[];
  document?: Reference[];
  reason?: string;
  criteria?: string;
  days?: number;
  reviewer?: Reference;
  report?: DocumentReference;
  outOfNetworkTreatment?: string;
  treatmentPerformer?: Reference;
}

const stepOf = (task: Task): CaseStep => (task.businessStatus?.coding?.find((c) => c.system === CODE_SYSTEMS.businessStatus)?.code ?? 'um-review') as CaseStep;
const outputRef = (label: string, reference: Reference): TaskOutput => ({ type: { text: label }, valueReference: reference });

/**
 * The case behind a Task, checked against the caller's token first (a case outside its compartment is
 * refused before anything about it is told), then for the shape of a second-opinion case: a Task of
 * our profile whose focus is a ServiceRequest with the member, the requester and the Coverage. A Task
 * that claims the profile without them is 422, not a 500.
 */
async function loadCase(tx: FhirStore, taskId: string, access: CallerAccess): Promise<CaseFiles> {
  const task = (await tx.read('Task', taskId)) as Task;
  access.require(task);
  await access.requireAboutVisiblePatient(task, tx);
  const notCase = (why: string, expression: string) => unprocessable(`Task/${taskId} is not a second-opinion case: ${why}`, [expression]);
  if (!task.meta?.profile?.includes(PROFILES.task)) throw unprocessable(`Task/${taskId} is not a second-opinion case`, ['Task.meta.profile']);
  const srRef = parseLiteral(task.focus?.reference);
  const serviceRequest = srRef?.[0] === 'ServiceRequest' ? ((await tx.find('ServiceRequest', srRef[1])) as ServiceRequest | undefined) : undefined;
  if (!serviceRequest) throw notCase('its focus is not a stored ServiceRequest', 'Task.focus');
  access.requireRead(serviceRequest);
  const patientRef = parseLiteral(serviceRequest.subject?.reference);
  const patient = patientRef?.[0] === 'Patient' ? ((await tx.find('Patient', patientRef[1])) as Patient | undefined) : undefined;
  if (!patient) throw notCase('the request names no stored Patient as its subject', 'ServiceRequest.subject');
  access.requireRead(patient);
  if (task.for?.reference !== `Patient/${patient.id}`) throw notCase('the Task is not for the member of its request', 'Task.for');
  if (!serviceRequest.requester?.reference) throw notCase('the request names no requester', 'ServiceRequest.requester');
  const coverageRef = parseLiteral(serviceRequest.insurance?.[0]?.reference);
  const coverage = coverageRef?.[0] === 'Coverage' ? ((await tx.find('Coverage', coverageRef[1])) as Coverage | undefined) : undefined;
  if (!coverage) throw notCase('the request names no stored Coverage', 'ServiceRequest.insurance');
  const { plan, payor } = await planOf(tx, coverage);
  const memberGroup = coverage.class?.find((k) => k.type.coding?.some((x) => x.code === 'group'))?.value;
  return { task, serviceRequest, patient, plan, coverage, payor, insurer: { reference: `Organization/${payor.id}`, display: plan.name }, step: stepOf(task), memberGroup };
}

/**
 * One review action on a case (R10, R11, R13, R14): checked against the review path and the
 * actor's role, applied in one transaction with a lock on the case, recorded with Provenance.
 */
export async function performReviewAction(
  store: FhirStore,
  taskId: string,
  action: ReviewAction,
  input: ReviewInput,
  actor: AccessContext,
  access: CallerAccess,
  options: { ifMatch?: string; delivery?: ProviderDelivery; now?: Date } = {},
): Promise<Task> {
  const { ifMatch, delivery } = options;
  const now = options.now ?? new Date();
  return store.transaction(async (tx) => {
    await tx.lock(`case:${taskId}`);
    const c = await loadCase(tx, taskId, access);
    if (ifMatch !== undefined && c.task.meta?.versionId !== ifMatch) throw preconditionFailed(`Task/${taskId} changed (version ${c.task.meta?.versionId}); reload and retry`);
    // Parties first: someone who is not party to the case learns nothing about its step.
    const delegation = await checkParty(tx, c, action, actor);
    let next: CaseStep;
    try {
      next = transition(c.plan, c.step, action, actor.roles);
    } catch (err) {
      if (err instanceof ReviewRefusal) throw err.kind === 'role' ? forbidden(err.message) : conflict(err.message, 'business-rule');
      throw err;
    }
    const outputs: TaskOutput[] = [];
    const task: Task = structuredClone(c.task);
    // A delegated decision is in the group's own name (R18, BSP D.IX).
    const sender = actor.fhirUser ? { reference: actor.fhirUser } : delegation ? { reference: `Organization/${delegation.organization}`, display: actor.clientId } : c.insurer;
    const agents: Reference[] = [];
    const letter = (kind: Parameters<typeof sendLetter>[1], recipients: Reference[], facts: Parameters<typeof sendLetter>[3]) =>
      sendLetter(tx, kind, { plan: c.plan, patient: c.patient, serviceRequest: c.serviceRequest, recipients, sender: c.insurer, now, delivery }, facts);
    const member = { reference: `Patient/${c.patient.id}` };

    switch (action) {
      case 'approve':
      case 'modify': {
        const role = input.authorizedPractitionerRole ?? (action === 'approve' ? c.serviceRequest.performer?.[0] : undefined);
        const professional = await professionalNameOf(tx, role);
        if (!role || !professional) throw unprocessable('Name the authorized professional (authorizedPractitionerRole)', ['authorizedPractitionerRole']);
        if (action === 'approve') await refuseSteering(tx, c.serviceRequest.performer?.[0], role);
        await requireQualified(tx, c, role, now);
        if (action === 'modify' && !input.reason) throw unprocessable('A modification needs its reason (R10)', ['reason']);
        const preAuthRef = await recordDecision(tx, c, { role, professional }, action === 'modify' ? input.reason! : input.note);
        outputs.push(outputRef('authorized-professional', role), ...(preAuthRef ? [{ type: { text: 'preauth-ref' }, valueString: preAuthRef }] : []));
        const transportation = c.serviceRequest.extension?.some((e) => e.url === EXTENSIONS.transportationNeeded && e.valueBoolean) ?? false;
        const kind = action === 'approve' ? 'approval' : 'modification';
        for (const r of await letter(kind, noticeRecipients(c.serviceRequest, c.patient, role), { professionalName: professional, preAuthRef, transportation, reason: input.reason, criteria: input.criteria })) outputs.push(outputRef(`${kind}-notice`, r));
        if (transportation) {
          outputs.push(outputRef('transportation', await arrangeTransport(tx, c, role, now)));
          next = 'transport-arranged';
        }
        break;
      }
      case 'deny': {
        if (!input.reason) throw unprocessable('A denial needs its specific reason (R10)', ['reason']);
        task.statusReason = { text: input.reason };
        for (const r of await letter('denial', noticeRecipients(c.serviceRequest, c.patient), { reason: input.reason, criteria: input.criteria })) outputs.push(outputRef('denial-notice', r));
        break;
      }
      case 'request-info': {
        if (!input.what?.length) throw unprocessable('Say what information is needed', ['what']);
        const provider = treatingProvider(c.serviceRequest, c.patient);
        if (!provider) throw unprocessable('The case names no treating provider to ask (care-questioned professional, PCP or practitioner requester): BSP D.IV', ['ServiceRequest.requester']);
        const infoTask = await tx.create<Task>({
          resourceType: 'Task',
          status: 'requested',
          intent: 'order',
          code: { coding: [{ system: 'http://hl7.org/fhir/us/davinci-cdex/CodeSystem/cdex-temp', code: 'data-request' }], text: 'Information request' },
          partOf: [{ reference: `Task/${taskId}` }],
          focus: { reference: `ServiceRequest/${c.serviceRequest.id}` },
          for: member,
          authoredOn: now.toISOString(),
          requester: c.insurer,
          owner: provider,
          reasonCode: { text: input.note ?? 'Information needed to decide the second-opinion request (BSP D.IV)' },
          input: input.what.map((what) => ({ type: { coding: [{ system: 'http://hl7.org/fhir/us/davinci-cdex/CodeSystem/cdex-temp', code: 'data-query' }], text: 'what' }, valueString: what })),
        });
        outputs.push(outputRef('information-request', { reference: `Task/${infoTask.id}` }));
        // Where the provider has a FHIR endpoint, the request is also placed there (CDex) and the answer copied back.
        const cin = c.patient.identifier?.find((i) => i.system === 'urn:oid:2.16.840.1.113883.3.1241.1.1');
        const remote = await delivery?.requestInformation(tx, {
          recipient: provider,
          serviceRequestId: c.serviceRequest.id!,
          patientId: c.patient.id!,
          patientIdentifier: cin?.system && cin.value ? { system: cin.system, value: cin.value } : undefined,
          what: input.what,
          due: c.task.restriction?.period?.end,
        });
        if (remote) outputs.push(outputRef('information-request-at-provider', remote));
        // H&S 1367.01(h)(4): the member and the provider are told of the delay and of what is missing.
        const due = c.task.restriction?.period?.end;
        const facts = { newDueDate: due && localDate(c.plan, new Date(due)), missing: input.what };
        for (const r of await letter('delay', uniqueReferences([member, provider]), facts)) outputs.push(outputRef('delay-notice', r));
        break;
      }
      case 'answer-info': {
        if (!input.document?.length) throw unprocessable('Attach at least one document', ['document']);
        const documents = await memberDocuments(tx, c, input.document, access);
        const open = await openInfoRequest(tx, taskId);
        if (!open) throw conflict('No open information request on this case');
        await tx.update({ ...open, status: 'completed', output: [...(open.output ?? []), ...documents.map((d) => outputRef('document', d))] } as Task);
        break;
      }
      case 'extend': {
        // 42 CFR 438.210(d)(1)(ii), (d)(2)(ii): one extension of up to 14 more calendar days, not one per call.
        if (c.task.output?.some((o) => o.type.text === 'extended')) throw conflict('This case was already extended once; 42 CFR 438.210(d)(1)(ii) allows one extension (R9)', 'business-rule');
        if (input.days === undefined || !input.reason) throw unprocessable('An extension needs days (1-14) and a reason', ['days']);
        const currentDue = c.task.restriction?.period?.end;
        if (!currentDue) throw unprocessable(`Task/${taskId} has no decision due date to extend`, ['Task.restriction.period.end']);
        if (now.getTime() > Date.parse(currentDue)) throw conflict(`The decision was due ${currentDue}: an extension is taken within the timeframe, not after it (42 CFR 438.210(d)(1)(ii), R9)`, 'business-rule');
        let due: string;
        try {
          due = extendDeadline(c.plan, currentDue, input.days);
        } catch (err) {
          throw unprocessable((err as Error).message, ['days']);
        }
        task.restriction = { ...task.restriction, period: { ...task.restriction?.period, end: due } };
        task.input = withNotificationDues(task.input, extendedNotificationDues(c.plan, due));
        outputs.push({ type: { text: 'extended' }, valueString: `${input.days} days: ${input.reason}` });
        const facts = { newDueDate: localDate(c.plan, new Date(due)), reason: input.reason };
        for (const r of await letter('extension', noticeRecipients(c.serviceRequest, c.patient), facts)) outputs.push(outputRef('extension-notice', r));
        break;
      }
      case 'post-report': {
        const report = await storeReport(tx, c, input.report, actor, now);
        outputs.push(outputRef('consultation-report', { reference: `DocumentReference/${report.id}` }), { type: { text: 'reported-at' }, valueDateTime: now.toISOString() });
        const recipients = reportRecipients(c);
        for (const r of recipients.filter((x) => !x.reference?.startsWith('Patient/'))) await delivery?.deliver(tx, r, report);
        const summary = report.description ?? undefined;
        for (const r of await letter('report', recipients, { reportSummary: summary })) outputs.push(outputRef('report-sent', r));
        if (input.outOfNetworkTreatment) outputs.push(outputRef('treatment-authorization-request', await openTar(tx, c, input, actor, now)));
        break;
      }
      case 'refer-consultative-review': {
        // R11 (BSP D.VI): the physician the Medical Director refers to is recorded on the case and in its Provenance.
        if (input.reviewer) {
          const reviewer = await practitionerReference(tx, input.reviewer);
          if (!reviewer) throw unprocessable('The consultative reviewer must be a stored PractitionerRole or Practitioner', ['reviewer']);
          const requested = await requestedSpecialtiesOf(tx, c.serviceRequest);
          if (requested.length && !practisesRequestedSpecialty(requested, await specialtiesOfReference(tx, reviewer))) {
            throw unprocessable(`R11 (BSP D.VI): the consultative reviewer must be a physician in the specialty requested (NUCC ${requested.join(', ')})`, ['reviewer']);
          }
          outputs.push(outputRef('consultative-reviewer', reviewer));
          agents.push(reviewer);
        }
        if (input.note) outputs.push({ type: { text: action }, valueString: input.note });
        break;
      }
      case 'withdraw':
        if (input.reason) task.statusReason = { text: input.reason };
        if (input.note) outputs.push({ type: { text: action }, valueString: input.note });
        break;
      default:
        if (input.note) outputs.push({ type: { text: action }, valueString: input.note });
    }
    if (action === 'approve' || action === 'deny' || action === 'modify') {
      outputs.push({ type: { text: 'decided-at' }, valueDateTime: now.toISOString() });
      if (delegation) outputs.push(outputRef('delegated-decision-copy', await keepDelegationCopy(tx, c, action, actor, delegation, now)));
    }
    task.businessStatus = { coding: [{ system: CODE_SYSTEMS.businessStatus, code: next }], text: next };
    task.status = TASK_STATUS[next];
    task.lastModified = now.toISOString();
    task.output = nonEmpty([...(task.output ?? []), ...outputs]);
    const { resource: saved } = await tx.update(task, c.task.meta?.versionId);
    const record = provenance([saved], sender, 'UPDATE', `${action}${input.reason ? `: ${input.reason}` : input.note ? `: ${input.note}` : ''}`);
    record.agent.push(...agents.map((who) => ({ role: [{ text: 'consultative reviewer (BSP D.VI)' }], who })));
    await tx.create(record);
    return saved;
  });
}

/** R4-R7: whoever a decision authorizes qualifies for the request, by the rules applied at intake. */
async function requireQualified(tx: FhirStore, c: CaseFiles, role: Reference, now: Date): Promise<void> {
  const facts = { serviceRequest: c.serviceRequest, patient: c.patient, coverage: c.coverage, receivedAt: c.task.authoredOn ?? now.toISOString() };
  const problems = await authorizationProblems(tx, facts, c.plan, c.payor, role);
  if (problems.length) throw unprocessable(`${role.reference} does not qualify for this request: ${problems.join('; ')}`, ['authorizedPractitionerRole']);
}

/**
 * R10: approving another professional than the one requested steers the member: a modification, an
 * adverse decision with notice and appeal rights that only a physician takes. When the request named
 * no one, approving names the one authorized: an assignment, not a change.
 */
async function refuseSteering(tx: FhirStore, requested: Reference | undefined, authorized: Reference): Promise<void> {
  if (!requested?.reference || requested.reference === authorized.reference) return;
  const [asked, named] = [await practitionerOf(tx, requested), await practitionerOf(tx, authorized)];
  if (asked && asked === named) return;
  throw unprocessable(
    `R10: authorizing ${authorized.reference} instead of the professional requested (${requested.reference}) is a modification, an adverse decision with notice and appeal rights; use $modify`,
    ['authorizedPractitionerRole'],
  );
}

/**
 * The notification dues once the decision is extended to `decisionDueAt`: the notice clock moves with it
 * (42 CFR 438.210(d)(1)(ii) extends the timeframe for the notice too), H&S 1367.01(h)(3) counted from it.
 */
function extendedNotificationDues(plan: CaseFiles['plan'], decisionDueAt: string): Record<string, string> {
  const dues = notificationDues(plan, decisionDueAt, decisionDueAt);
  return { 'provider-notification-due': dues.providerNotificationDueAt, 'member-notification-due': dues.memberNotificationDueAt };
}

const withNotificationDues = (inputs: TaskInput[] | undefined, dues: Record<string, string>): TaskInput[] | undefined =>
  inputs?.map((i) => (i.type.text && i.type.text in dues ? { ...i, valueDateTime: dues[i.type.text] } : i));

/** The CoverageEligibilityResponse the case was answered with at receipt. */
async function eligibilityAnswer(tx: FhirStore, c: CaseFiles): Promise<CoverageEligibilityResponse | undefined> {
  const literal = parseLiteral(c.task.input?.find((i) => i.type.text === 'eligibility-response')?.valueReference?.reference);
  return literal ? ((await tx.read(literal[0], literal[1])) as CoverageEligibilityResponse) : undefined;
}

/**
 * The decision on the case's answer and request; returns the authorization number, if one is issued.
 * A case answered "no authorization is needed" (R3, in network: HPSJ III.A, PHC VI.A, ANT IV) is arranged,
 * not authorized: no number, CRD `no-auth` stays. Otherwise preAuthRef on the answer, CRD `satisfied`.
 */
async function recordDecision(tx: FhirStore, c: CaseFiles, chosen: { role: Reference; professional: string }, note?: string): Promise<string | undefined> {
  const response = await eligibilityAnswer(tx, c);
  const arranged = response?.insurance?.[0]?.item?.[0]?.authorizationRequired === false;
  const preAuthRef = arranged ? undefined : `PA-${randomUUID().slice(0, 8).toUpperCase()}`;
  if (response) {
    const head = preAuthRef ? `Authorized (${preAuthRef})` : `Arranged without authorization: ${chosen.professional} gives the opinion`;
    await tx.update({ ...response, outcome: 'complete', preAuthRef, disposition: `${head}${note ? `: ${note}` : ''}. ${response.disposition ?? ''}`.trim() });
  }
  const sr = c.serviceRequest;
  await tx.update({ ...sr, extension: preAuthRef ? paSatisfied(sr.extension, preAuthRef) : sr.extension, performer: [chosen.role] });
  return preAuthRef;
}

/** CRD coverage information once authorized: `pa-needed` satisfied, with the authorization number. */
const paSatisfied = (extensions: Extension[] | undefined, preAuthRef: string): Extension[] =>
  (extensions ?? []).map((e) =>
    e.url !== EXTENSIONS.crdCoverageInformation
      ? e
      : { ...e, extension: [...(e.extension ?? []).filter((x) => x.url !== 'pa-needed' && x.url !== 'satisfied-pa-id'), { url: 'pa-needed', valueCode: 'satisfied' }, { url: 'satisfied-pa-id', valueString: preAuthRef }] },
  );

/** A0130 is a HCPCS Level II code, not CPT (R13); the system URI as US Core names it. */
const HCPCS = 'https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets';

/** R13 (HPSJ III.F): non-emergency medical transportation to the second-opinion provider. */
async function arrangeTransport(tx: FhirStore, c: CaseFiles, role: Reference, now: Date): Promise<Reference> {
  const nemt = await tx.create<ServiceRequest>({
    resourceType: 'ServiceRequest',
    status: 'active',
    intent: 'order',
    basedOn: [{ reference: `ServiceRequest/${c.serviceRequest.id}` }],
    code: { coding: [{ system: HCPCS, code: 'A0130', display: 'Non-emergency transportation: wheelchair van' }], text: 'Non-emergency medical transportation to the second-opinion visit' },
    subject: { reference: `Patient/${c.patient.id}` },
    authoredOn: now.toISOString(),
    requester: c.insurer,
    note: [{ text: `To the appointment with ${role.display ?? role.reference}` }],
  });
  return { reference: `ServiceRequest/${nemt.id}` };
}

async function openInfoRequest(tx: FhirStore, taskId: string): Promise<Task | undefined> {
  const { resources } = await tx.search({
    resourceType: 'Task',
    clauses: [
      { kind: 'reference', param: 'part-of', values: [`part-of|Task/${taskId}`] },
      { kind: 'token', param: 'status', values: ['status|*|requested', 'status|*|in-progress'], not: false },
    ],
    sort: [{ param: '_lastUpdated', kind: 'lastUpdated', descending: true }],
    count: 1,
    offset: 0,
    total: false,
  });
  return resources[0] as Task | undefined;
}

/** R14: the consultation report, stored with our profile and tied to the request. */
async function storeReport(tx: FhirStore, c: CaseFiles, report: DocumentReference | undefined, actor: AccessContext, now: Date): Promise<DocumentReference> {
  if (!report || report.resourceType !== 'DocumentReference' || !report.content?.length) throw unprocessable('Post the report as a DocumentReference with content', ['report']);
  return tx.create<DocumentReference>({
    ...report,
    id: undefined,
    meta: { profile: [PROFILES.consultationReport] },
    status: 'current',
    subject: { reference: `Patient/${c.patient.id}` },
    author: [{ reference: actor.fhirUser! }],
    date: report.date ?? now.toISOString(),
    context: { ...report.context, related: [{ reference: `ServiceRequest/${c.serviceRequest.id}` }] },
  });
}

/** R14: the member, the initial professional (HPSJ III.G) and the PCP (ANT VI). */
function reportRecipients(c: CaseFiles): Reference[] {
  return uniqueReferences([
    { reference: `Patient/${c.patient.id}` },
    c.serviceRequest.extension?.find((e) => e.url === EXTENSIONS.careQuestioned)?.valueReference,
    c.serviceRequest.requester,
    c.patient.generalPractitioner?.[0],
  ]);
}

/**
 * R3 approvals on receipt: the authorized professional, the approval letter (R11) and transportation (R13).
 * The letter is returned unstored, to be written in one statement with the case, then delivered.
 */
export const approvedOnReceipt = (delivery?: ProviderDelivery): OnApproval => async (tx, c) => {
  const { plan, payor } = await planOf(tx, c.coverage);
  const insurer = { reference: `Organization/${payor.id}`, display: plan.name };
  const role = c.serviceRequest.performer?.[0];
  const now = new Date();
  const outputs: TaskOutput[] = [...(role ? [outputRef('authorized-professional', role)] : []), { type: { text: 'decided-at' }, valueDateTime: now.toISOString() }];
  const transportation = c.serviceRequest.extension?.some((e) => e.url === EXTENSIONS.transportationNeeded && e.valueBoolean) ?? false;
  const files: CaseFiles = { task: { resourceType: 'Task', status: 'accepted', intent: 'order' }, serviceRequest: c.serviceRequest, patient: c.patient, plan, coverage: c.coverage, payor, insurer, step: 'approved' };
  const recipients = noticeRecipients(c.serviceRequest, c.patient, role);
  const name = role ? await professionalNameOf(tx, role) : undefined;
  const letter = composeLetter('approval', { plan, patient: c.patient, serviceRequest: c.serviceRequest, recipients, sender: insurer, now }, { professionalName: name, transportation });
  for (const r of letter.refs) outputs.push(outputRef('approval-notice', r));
  if (transportation && role) outputs.push(outputRef('transportation', await arrangeTransport(tx, files, role, now)));
  return { outputs, resources: letter.resources, afterStore: () => letter.deliver(tx, delivery) };
};


/** R16 (PHC VI.C): out-of-network treatment recommended in the report goes through the TAR process. */
async function openTar(tx: FhirStore, c: CaseFiles, input: ReviewInput, actor: AccessContext, now: Date): Promise<Reference> {
  const tar = await tx.create<ServiceRequest>({
    resourceType: 'ServiceRequest',
    status: 'active',
    intent: 'order',
    category: [{ text: 'treatment-authorization-request' }],
    basedOn: [{ reference: `ServiceRequest/${c.serviceRequest.id}` }],
    code: { text: input.outOfNetworkTreatment },
    subject: { reference: `Patient/${c.patient.id}` },
    authoredOn: now.toISOString(),
    requester: actor.fhirUser ? { reference: actor.fhirUser } : undefined,
    performer: input.treatmentPerformer ? [input.treatmentPerformer] : undefined,
    insurance: c.serviceRequest.insurance,
    note: [{ text: 'Recommended by the second-opinion professional; out of network, so it needs a treatment authorization request (PHC VI.C).' }],
  });
  const review = await tx.create<Task>({
    resourceType: 'Task',
    status: 'requested',
    intent: 'order',
    code: { text: 'Treatment authorization request review (R16)' },
    focus: { reference: `ServiceRequest/${tar.id}` },
    for: { reference: `Patient/${c.patient.id}` },
    authoredOn: now.toISOString(),
    owner: c.insurer,
    partOf: [{ reference: `Task/${c.task.id}` }],
  });
  return { reference: `Task/${review.id}` };
}

/**
 * R18 (BSP D.IX): when an IPA/medical group decides under delegation, the plan keeps a copy of the
 * request and the clinical information as they were at decision time.
 */
async function keepDelegationCopy(tx: FhirStore, c: CaseFiles, action: ReviewAction, actor: AccessContext, delegation: Delegation, now: Date): Promise<Reference> {
  const clinical = [...(c.serviceRequest.supportingInfo ?? []), ...(c.serviceRequest.reasonReference ?? [])];
  const resources: Resource[] = [c.serviceRequest, c.patient];
  for (const ref of clinical) {
    const literal = parseLiteral(ref.reference);
    const found = literal ? await tx.find(literal[0], literal[1]) : undefined;
    if (found) resources.push(found);
  }
  const bundle = { resourceType: 'Bundle', type: 'collection', timestamp: now.toISOString(), entry: resources.map((resource) => ({ fullUrl: `${resource.resourceType}/${resource.id}`, resource })) };
  const copy = await tx.create<DocumentReference>({
    resourceType: 'DocumentReference',
    status: 'current',
    category: [{ text: 'delegated-decision-copy' }],
    description: `Copy of the request and clinical information at the delegated ${action} by ${actor.clientId}`,
    subject: { reference: `Patient/${c.patient.id}` },
    date: now.toISOString(),
    author: [{ reference: `Organization/${delegation.organization}`, display: actor.clientId }],
    content: [{ attachment: { contentType: 'application/fhir+json', data: Buffer.from(JSON.stringify(bundle)).toString('base64') } }],
    context: { related: [{ reference: `ServiceRequest/${c.serviceRequest.id}` }] },
  });
  return { reference: `DocumentReference/${copy.id}` };
}
