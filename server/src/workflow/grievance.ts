import { randomUUID } from 'node:crypto';
import type { CodeableConcept, Coverage, Patient, Provenance, Reference, Resource, ServiceRequest, Task, TaskOutput } from 'fhir/r4.js';
import { grievanceDeadlines, inPeriod, localDate, localDateTime } from '../domain/clock.js';
import { type GrievanceAction, type GrievanceActor, type GrievanceCategory, type GrievanceOutcome, type GrievanceStep, GRIEVANCE_FILERS, GRIEVANCE_TASK_STATUS, grievanceHandlers, grievanceTransition } from '../domain/grievance.js';
import type { PlanProfile } from '../domain/plans.js';
import { ReviewRefusal } from '../domain/reviewPath.js';
import { nonEmpty } from '../fhir/jsonRules.js';
import { badRequest, conflict, FhirError, forbidden, preconditionFailed, unprocessable } from '../fhir/outcomes.js';
import { parseLiteral } from '../fhir/references.js';
import type { AccessContext } from '../fhir/request.js';
import { CODE_SYSTEMS, GRIEVANCE_TASK_CODE, PROFILES } from '../fhir/systems.js';
import type { FhirStore, SearchQuery } from '../storage/FhirStore.js';
import { everyMatch } from '../storage/pages.js';
import { type CallerAccess, practitionerOf, uniqueReferences } from './caseParties.js';
import { planOf } from './decide.js';
import { composeLetter, sendLetter } from './letters.js';
import type { ProviderDelivery } from './providerDelivery.js';
import { rolesOf } from './directory.js';
import { grievanceParties, grievancePartyTags } from './grievanceAccess.js';
import { worksForPlan } from './planStaff.js';
import { provenance } from './submit.js';

// R17 (PHC VI.E): a member's grievance about a second opinion, filed, acknowledged and resolved as a Task.


export interface GrievanceFiling {
  /** The member; a member identity files for their own record when it names none. */
  patient?: Reference;
  /** The second-opinion request (ServiceRequest) or its case Task; none when the PCP never submitted one. */
  case?: Reference;
  category: GrievanceCategory;
  description: string;
  /** H&S 1368.01(b): an imminent and serious threat to the member's health. */
  expedited: boolean;
}

export interface GrievanceHandling {
  note?: string;
  outcome?: GrievanceOutcome;
  resolution?: string;
}

type Options = { now?: Date; delivery?: ProviderDelivery; ifMatch?: string };

const outputRef = (label: string, reference: Reference): TaskOutput => ({ type: { text: label }, valueReference: reference });
const stepOf = (task: Task) => task.businessStatus?.coding?.find((c) => c.system === CODE_SYSTEMS.grievanceStatus)?.code as GrievanceStep | undefined;
const categoryOf = (task: Task) => task.reasonCode?.coding?.find((c) => c.system === CODE_SYSTEMS.grievanceCategory)?.code;
const status = (step: GrievanceStep) => ({ coding: [{ system: CODE_SYSTEMS.grievanceStatus, code: step }], text: step });

/**
 * `Task/$file-grievance`: the grievance Task (for the member, about their case if any, owned by the plan, with its
 * acknowledgment and resolution dues) and its Provenance, in one transaction; an urgent one also with its notice to the
 * member (and a provider who filed) of the right to notify the DMHC now (H&S 1368.01(b)). The caller must be able to read the
 * member and the case named (404 otherwise, as for a missing id); a provider must treat the member (403); a case of
 * another member is 422.
 */
export async function fileGrievance(store: FhirStore, filing: GrievanceFiling, actor: AccessContext, access: CallerAccess, options: Options = {}): Promise<Task> {
  if (!actor.roles.some((r) => GRIEVANCE_FILERS.includes(r))) throw forbidden(`Only ${GRIEVANCE_FILERS.join(', ')} may file a grievance (R17)`);
  const now = options.now ?? new Date();
  return store.transaction(async (tx) => {
    const patient = await grievant(tx, filing.patient, actor, access);
    const serviceRequest = filing.case ? await grievedCase(tx, filing.case, patient, access) : undefined;
    const coverage = await coverageOf(tx, patient, serviceRequest, now);
    const { plan, payor } = await planOf(tx, coverage);
    const takenByCoordinator = actor.roles.includes('grievance-coordinator');
    if (takenByCoordinator && !(await worksForPlan(tx, actor, `Organization/${payor.id}`))) throw forbidden(`Only ${plan.name} staff take grievances for its members (PHC VI.E)`);
    const ownGrievance = actor.patient === patient.id;
    if (!ownGrievance && !takenByCoordinator && !(await treats(tx, actor, patient))) {
      throw forbidden('A provider files a grievance for a member they treat: as the member\'s PCP, or as the requester of one of their second-opinion requests (28 CCR 1300.68(a))');
    }
    const dues = grievanceDeadlines(plan, now.toISOString(), filing.expedited);
    const member = { reference: `Patient/${patient.id}` };
    // Taken by the coordinator (by phone), the grievance is the member's own.
    const requester = actor.fhirUser && !takenByCoordinator ? { reference: actor.fhirUser } : member;
    const task: Task = {
      resourceType: 'Task',
      id: randomUUID(),
      meta: { profile: [PROFILES.grievance] },
      status: GRIEVANCE_TASK_STATUS.received,
      businessStatus: status('received'),
      intent: 'order',
      priority: filing.expedited ? 'urgent' : 'routine',
      code: { coding: [GRIEVANCE_TASK_CODE] },
      reasonCode: { coding: [{ system: CODE_SYSTEMS.grievanceCategory, code: filing.category }] },
      focus: serviceRequest ? { reference: `ServiceRequest/${serviceRequest.id}` } : undefined,
      for: member,
      authoredOn: dues.receivedAt,
      lastModified: dues.receivedAt,
      requester,
      owner: { reference: `Organization/${payor.id}`, display: `${plan.name}: Grievance Coordinator` },
      performerType: performersOf(filing.category),
      insurance: [{ reference: `Coverage/${coverage.id}` }],
      restriction: { period: { start: dues.receivedAt, end: dues.resolutionDueAt } },
      input: [{ type: { text: 'acknowledgment-due' }, valueDateTime: dues.acknowledgmentDueAt }],
      note: [{ authorReference: requester, time: dues.receivedAt, text: filing.description }],
    };
    const parties = { plan, patient, regarding: { reference: `Task/${task.id}` }, recipients: uniqueReferences([member, requester]), sender: task.owner!, now };
    const notice = filing.expedited ? composeLetter('grievance-urgent', parties, { grievance: { statement: filing.description, resolutionDueDate: localDateTime(plan, new Date(dues.resolutionDueAt)), expedited: true } }) : undefined;
    if (notice) task.output = notice.refs.map((r) => outputRef('urgent-notice', r));
    const [stored] = await tx.createMany([task, grievanceProvenance(task, actor.fhirUser ? { reference: actor.fhirUser } : requester, 'CREATE', 'Grievance received (R17)'), ...(notice?.resources ?? [])]);
    await notice?.deliver(tx, options.delivery);
    return stored as Task;
  });
}

/** A Provenance of the grievance, kept to its parties (the plan, the member, whoever filed it) as its letters are. */
function grievanceProvenance(task: Task, agent: Reference | undefined, activity: string, reason: string): Provenance {
  return { ...provenance([task], agent, activity, reason), meta: { tag: grievancePartyTags(grievanceParties(task)) } };
}

/** Who acts on the grievance, to find it by (`performer`): the coordinator, and the physician who resolves a clinical one. */
function performersOf(category: string | undefined): CodeableConcept[] {
  const roles = [...new Set([...grievanceHandlers('acknowledge', category), ...grievanceHandlers('resolve', category)])];
  return roles.map((code) => ({ coding: [{ system: CODE_SYSTEMS.userRole, code }] }));
}

/**
 * Grievances filed before `Task.performerType` named who acts on them are on no physician's desk (it finds them by
 * `performer`): at start, each one still open without it gets it from its category, as a new version. The next start
 * finds none; a version another process wrote meanwhile (412) is left to it.
 */
export async function namePerformersOfEarlierGrievances(store: FhirStore): Promise<number> {
  const query: SearchQuery = {
    resourceType: 'Task',
    clauses: [
      { kind: 'token', param: 'code', values: [`code|${GRIEVANCE_TASK_CODE.system}|${GRIEVANCE_TASK_CODE.code}`], not: false },
      { kind: 'token', param: 'status', values: [GRIEVANCE_TASK_STATUS.received, GRIEVANCE_TASK_STATUS.acknowledged].map((code) => `status|*|${code}`), not: false },
      { kind: 'missing', param: 'performer', missing: true },
    ],
    sort: [],
    count: 200,
    offset: 0,
    total: false,
  };
  const unnamed = (await everyMatch(store, query, 200)) as Task[];
  let named = 0;
  for (const task of unnamed) {
    try {
      await store.update({ ...task, performerType: performersOf(categoryOf(task)) }, task.meta?.versionId);
      named++;
    } catch (err) {
      if (!(err instanceof FhirError && err.status === 412)) throw err;
    }
  }
  return named;
}

/** The member the grievance is for: named, or the member signed in. */
async function grievant(tx: FhirStore, named: Reference | undefined, actor: AccessContext, access: CallerAccess): Promise<Patient> {
  const reference = named?.reference ?? (actor.patient ? `Patient/${actor.patient}` : undefined);
  const literal = parseLiteral(reference);
  if (!reference) throw badRequest('Name the member the grievance is for (patient)', 'patient');
  if (literal?.[0] !== 'Patient') throw badRequest('patient must reference a Patient', 'patient');
  const patient = (await tx.read('Patient', literal[1])) as Patient;
  access.requireRead(patient);
  return patient;
}

/** Whether the provider treats the member: their PCP, or the requester of one of their second-opinion requests. */
async function treats(tx: FhirStore, actor: AccessContext, patient: Patient): Promise<boolean> {
  const practitioner = parseLiteral(actor.fhirUser);
  if (practitioner?.[0] !== 'Practitioner') return false;
  const own = [actor.fhirUser!, ...(await rolesOf(tx, practitioner[1])).map((role) => `PractitionerRole/${role.id}`)];
  if (patient.generalPractitioner?.some((pcp) => own.includes(pcp.reference ?? ''))) return true;
  const { resources } = await tx.search({
    resourceType: 'ServiceRequest',
    clauses: [
      { kind: 'reference', param: 'subject', values: [`subject|Patient/${patient.id}`] },
      { kind: 'reference', param: 'requester', values: own.map((reference) => `requester|${reference}`) },
    ],
    sort: [],
    count: 1,
    offset: 0,
    total: false,
  });
  return resources.length > 0;
}

/** The second-opinion request the grievance is about: named directly or through its case Task, the member's own. */
async function grievedCase(tx: FhirStore, named: Reference, patient: Patient, access: CallerAccess): Promise<ServiceRequest> {
  const literal = parseLiteral(named.reference);
  if (literal?.[0] !== 'ServiceRequest' && literal?.[0] !== 'Task') throw badRequest('case must reference a second-opinion ServiceRequest or its case Task', 'case');
  let found = await tx.read(literal[0], literal[1]);
  access.requireRead(found);
  if (found.resourceType === 'Task') {
    const task = found as Task;
    const focus = parseLiteral(task.focus?.reference);
    if (!task.meta?.profile?.includes(PROFILES.task) || focus?.[0] !== 'ServiceRequest') throw unprocessable(`${named.reference} is not a second-opinion case`, ['case']);
    found = await tx.read('ServiceRequest', focus[1]);
    access.requireRead(found);
  }
  const serviceRequest = found as ServiceRequest;
  if (!serviceRequest.meta?.profile?.includes(PROFILES.serviceRequest)) throw unprocessable(`${named.reference} is not a second-opinion request`, ['case']);
  if (serviceRequest.subject?.reference !== `Patient/${patient.id}`) throw unprocessable(`${named.reference} is another member's request`, ['case']);
  return serviceRequest;
}

/** The plan the grievance goes to: the case's Coverage, or else the member's Medi-Cal Coverage active today. */
async function coverageOf(tx: FhirStore, patient: Patient, serviceRequest: ServiceRequest | undefined, now: Date): Promise<Coverage> {
  const onCase = parseLiteral(serviceRequest?.insurance?.[0]?.reference);
  if (onCase?.[0] === 'Coverage') return (await tx.read('Coverage', onCase[1])) as Coverage;
  const { resources } = await tx.search({
    resourceType: 'Coverage',
    clauses: [{ kind: 'reference', param: 'beneficiary', values: [`beneficiary|Patient/${patient.id}`] }],
    sort: [],
    count: 20,
    offset: 0,
    total: false,
  });
  const active = (resources as Coverage[]).find((c) => c.status === 'active' && inPeriod(c.period, now));
  if (!active) throw unprocessable('The member has no active Medi-Cal Coverage: no plan to file the grievance with', ['patient']);
  return active;
}

/**
 * `$acknowledge-grievance`, `$resolve-grievance` (R17): only the owning plan's staff, only in order (acknowledge, then
 * resolve once). The Grievance Coordinator acknowledges; a clinical grievance is resolved by the plan's physician
 * (42 CFR 438.406(b)(2)(ii)), and nobody who reviewed or decided the case resolves a grievance about it
 * (438.406(b)(2)(i)). Each sends the member (and whoever filed for them) a letter, leaves a new Task version and a
 * Provenance, in one transaction under a lock on the grievance.
 */
export async function handleGrievance(store: FhirStore, taskId: string, action: GrievanceAction, input: GrievanceHandling, actor: AccessContext, access: CallerAccess, options: Options = {}): Promise<Task> {
  const now = options.now ?? new Date();
  return store.transaction(async (tx) => {
    await tx.lock(`grievance:${taskId}`);
    const current = (await tx.read('Task', taskId)) as Task;
    access.require(current);
    const step = stepOf(current);
    const resolutionDue = current.restriction?.period?.end;
    if (!current.meta?.profile?.includes(PROFILES.grievance) || !step || !resolutionDue) throw unprocessable(`Task/${taskId} is not a grievance (its profile, step and resolution due)`, ['Task.meta.profile']);
    if (options.ifMatch !== undefined && current.meta.versionId !== options.ifMatch) throw preconditionFailed(`Task/${taskId} changed (version ${current.meta.versionId}); reload and retry`);
    const { plan, patient } = await grievanceFiles(tx, current);
    const category = categoryOf(current);
    // Parties first: staff of another plan learn nothing of where the grievance stands.
    if (!current.owner?.reference || !(await worksForPlan(tx, actor, current.owner.reference))) {
      throw forbidden(`Only ${grievanceHandlers(action, category).join(' or ')} staff of ${plan.name} may ${action} this grievance (PHC VI.E)`);
    }
    const decider: GrievanceActor = { roles: actor.roles, involvedInCase: action === 'resolve' && (await tookPartInCase(tx, actor, current.focus)) };
    const next = refusalAsError(() => grievanceTransition({ step, category }, action, decider));
    if (action === 'resolve' && (!input.outcome || !input.resolution)) throw unprocessable('A resolution needs its outcome and its reasons (28 CCR 1300.68(d)(3))', ['resolution']);
    const member = { reference: `Patient/${patient.id}` };
    const parties = { plan, patient, regarding: { reference: `Task/${taskId}` }, recipients: uniqueReferences([member, current.requester]), sender: current.owner, now, delivery: options.delivery };
    const dueDate = localDate(plan, new Date(resolutionDue));
    const letters =
      action === 'acknowledge'
        ? await sendLetter(tx, 'grievance-acknowledgment', parties, { grievance: { statement: current.note?.[0]?.text ?? '', resolutionDueDate: dueDate, expedited: current.priority === 'urgent' } })
        : await sendLetter(tx, 'grievance-resolution', parties, { grievanceOutcome: input.outcome, reason: input.resolution });
    const outputs: TaskOutput[] = [
      ...letters.map((r) => outputRef(`${action === 'acknowledge' ? 'acknowledgment' : 'resolution'}-notice`, r)),
      { type: { text: `${next}-at` }, valueDateTime: now.toISOString() },
      ...(input.outcome ? [{ type: { text: 'outcome' }, valueCodeableConcept: { coding: [{ system: CODE_SYSTEMS.grievanceOutcome, code: input.outcome }] } }] : []),
      ...(input.note ? [{ type: { text: action }, valueString: input.note }] : []),
    ];
    const task: Task = {
      ...structuredClone(current),
      status: GRIEVANCE_TASK_STATUS[next],
      businessStatus: status(next),
      statusReason: input.resolution ? { text: input.resolution } : current.statusReason,
      lastModified: now.toISOString(),
      output: nonEmpty([...(current.output ?? []), ...outputs]),
    };
    const { resource: saved } = await tx.update(task, current.meta.versionId);
    await tx.create(grievanceProvenance(saved, actor.fhirUser ? { reference: actor.fhirUser } : current.owner, 'UPDATE', `grievance ${action}${input.outcome ? `: ${input.outcome}` : ''}`));
    return saved as Task;
  });
}

/**
 * 42 CFR 438.406(b)(2)(i): whether the actor acted on the case the grievance is about: an agent (a PractitionerRole
 * counts as its Practitioner) of a Provenance of its request or of its case Task: the submission, every review step, a
 * consultative review, the report. A grievance about no case has no earlier level.
 */
async function tookPartInCase(tx: FhirStore, actor: AccessContext, focus: Reference | undefined): Promise<boolean> {
  if (!actor.fhirUser || parseLiteral(focus?.reference)?.[0] !== 'ServiceRequest') return false;
  const tasks = await searchAll(tx, 'Task', { param: 'focus', reference: focus!.reference! });
  const cases = tasks.filter((t) => t.meta?.profile?.includes(PROFILES.task)).map((t) => `Task/${t.id}`);
  for (const target of [focus!.reference!, ...cases]) {
    for (const record of (await searchAll(tx, 'Provenance', { param: 'target', reference: target })) as Provenance[]) {
      for (const agent of record.agent) if ((await practitionerOf(tx, agent.who)) === actor.fhirUser) return true;
    }
  }
  return false;
}

/** Every resource of the type whose reference parameter names the reference. */
async function searchAll(tx: FhirStore, resourceType: string, by: { param: string; reference: string }): Promise<Resource[]> {
  const query = { resourceType, clauses: [{ kind: 'reference' as const, param: by.param, values: [`${by.param}|${by.reference}`] }], sort: [], count: 200, offset: 0, total: false };
  return everyMatch(tx, query, 200);
}

function refusalAsError(decide: () => GrievanceStep): GrievanceStep {
  try {
    return decide();
  } catch (err) {
    if (err instanceof ReviewRefusal) throw err.kind === 'role' ? forbidden(err.message) : conflict(err.message, 'business-rule');
    throw err;
  }
}

/** The member and the plan of a stored grievance (its Coverage's plan). */
async function grievanceFiles(tx: FhirStore, task: Task): Promise<{ plan: PlanProfile; patient: Patient }> {
  const coverage = parseLiteral(task.insurance?.[0]?.reference);
  const member = parseLiteral(task.for?.reference);
  if (coverage?.[0] !== 'Coverage' || member?.[0] !== 'Patient') throw unprocessable(`Task/${task.id} names no member and Coverage`, ['Task.insurance']);
  const { plan } = await planOf(tx, (await tx.read('Coverage', coverage[1])) as Coverage);
  return { plan, patient: (await tx.read('Patient', member[1])) as Patient };
}
