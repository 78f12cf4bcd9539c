import { randomUUID } from 'node:crypto';
import type { Bundle, Coverage, CoverageEligibilityResponse, Patient, Provenance, Reference, Resource, ServiceRequest, Task, TaskOutput } from 'fhir/r4.js';
import { inPeriod } from '../domain/clock.js';
import { forbidden, unprocessable } from '../fhir/outcomes.js';
import { parseLiteral } from '../fhir/references.js';
import { IDENTIFIER_SYSTEMS } from '../fhir/systems.js';
import type { FhirStore } from '../storage/FhirStore.js';
import { caseTask, type CaseDecision, type CaseRefs, coverageInformation, eligibilityRequest, eligibilityResponse, stampServiceRequest } from './caseResources.js';
import { parseSubmission, resolveSubmission, type Submission } from './intake.js';

/** Everything the decision needs, read from the store inside the submitting transaction. */
export interface CaseFacts {
  serviceRequest: ServiceRequest;
  patient: Patient;
  coverage: Coverage;
  requester?: Resource;
  receivedAt: string;
}

/** The decision step: plan rules over stored facts (domain/ through workflow/decide.ts). */
export type DecideCase = (store: FhirStore, facts: CaseFacts) => Promise<{ decision: CaseDecision; insurer: Reference }>;

/** Access checks the caller's token imposes on what a submission stores and reads. */
export interface SubmitGuard {
  /** Throws (403) when the caller may not create a resource of this type. */
  authorize(resource: Resource): void;
  /** False when the resource is outside the caller's patient compartment. */
  mayAccess(resource: Resource): boolean;
  /** Work done when a request is approved on receipt (R11 letters, R13 transportation). */
  onApproval?: OnApproval;
}

export interface SubmitResult {
  created: boolean;
  serviceRequest: ServiceRequest;
  eligibilityRequest: Resource;
  eligibilityResponse: Resource;
  task: Task;
}

/**
 * `$submit`: stores the request, its CoverageEligibilityRequest/Response and its Task in one
 * transaction. A resubmission with the same identifier returns the existing case and creates nothing.
 */
export async function submitSecondOpinion(
  store: FhirStore,
  body: unknown,
  decide: DecideCase,
  actor: Reference | undefined,
  now: Date,
  guard: SubmitGuard,
): Promise<SubmitResult> {
  const submission = parseSubmission(body);
  const requestIdentifier = identifierOf(submission.serviceRequest);
  return store.transaction(async (tx) => {
    if (requestIdentifier) {
      await tx.lock(`second-opinion:${requestIdentifier.system}|${requestIdentifier.value}`);
      const existing = await findCase(tx, requestIdentifier);
      if (existing) {
        if (!guard.mayAccess(existing.serviceRequest)) throw forbidden('That request belongs to another member');
        return existing;
      }
    }
    const facts = await intake(tx, submission, now, guard);
    const { decision, insurer } = await decide(tx, facts);
    return persistCase(tx, facts, decision, insurer, requestIdentifier?.value ?? randomUUID(), actor, guard.onApproval);
  });
}

async function intake(tx: FhirStore, submission: Submission, now: Date, guard: SubmitGuard): Promise<CaseFacts> {
  const { serviceRequest, stored, referenced } = await resolveSubmission(tx, submission);
  for (const resource of stored) {
    guard.authorize(resource);
    if (!guard.mayAccess(resource)) throw forbidden(`${resource.resourceType} is outside the patient compartment of this token`);
  }
  const facts = await loadFacts(tx, serviceRequest, now.toISOString(), referenced);
  if (!guard.mayAccess(facts.patient)) throw forbidden('A member may submit only for themselves');
  return facts;
}

class DryRun extends Error {
  constructor(readonly response: CoverageEligibilityResponse) {
    super('dry run');
  }
}

/**
 * `CoverageEligibilityRequest/$submit`: the answer `$submit` would give, computed inside a
 * transaction that is then rolled back, so nothing is stored.
 */
export async function checkEligibility(store: FhirStore, body: unknown, decide: DecideCase, guard: SubmitGuard, now = new Date()): Promise<CoverageEligibilityResponse> {
  const submission = parseSubmission(body);
  try {
    await store.transaction(async (tx) => {
      const facts = await intake(tx, submission, now, guard);
      const { decision, insurer } = await decide(tx, facts);
      const refs: CaseRefs = {
        serviceRequest: { display: 'proposed second-opinion request' },
        patient: { reference: `Patient/${facts.patient.id}` },
        coverage: { reference: `Coverage/${facts.coverage.id}` },
        insurer,
        requester: facts.serviceRequest.requester,
        performer: facts.serviceRequest.performer?.[0],
        eligibilityRequest: { display: 'auth-requirements check (not stored)' },
      };
      throw new DryRun(eligibilityResponse(decision, refs, facts.receivedAt));
    });
  } catch (err) {
    if (err instanceof DryRun) return err.response;
    throw err;
  }
  throw new Error('unreachable');
}



function identifierOf(sr: ServiceRequest): { system: string; value: string } | undefined {
  const id = sr.identifier?.find((i) => i.system === IDENTIFIER_SYSTEMS.secondOpinionRequest && i.value) ?? sr.identifier?.find((i) => i.system && i.value);
  return id ? { system: id.system!, value: id.value! } : undefined;
}

async function findCase(tx: FhirStore, identifier: { system: string; value: string }): Promise<SubmitResult | undefined> {
  const { resources } = await tx.search({
    resourceType: 'ServiceRequest',
    clauses: [{ kind: 'token', param: 'identifier', values: [`identifier|${identifier.system}|${identifier.value}`], not: false }],
    sort: [],
    count: 1,
    offset: 0,
    total: false,
  });
  const serviceRequest = resources[0] as ServiceRequest | undefined;
  if (!serviceRequest) return undefined;
  const byRef = async (type: string, param: string, target: string) =>
    (await tx.search({ resourceType: type, clauses: [{ kind: 'reference', param, values: [`${param}|${target}`] }], sort: [], count: 1, offset: 0, total: false })).resources[0];
  const task = (await byRef('Task', 'focus', `ServiceRequest/${serviceRequest.id}`)) as Task | undefined;
  const eligibilityReq = task?.input?.find((i) => i.type.text === 'eligibility-request')?.valueReference?.reference;
  const eligibilityRes = task?.input?.find((i) => i.type.text === 'eligibility-response')?.valueReference?.reference;
  if (!task || !eligibilityReq || !eligibilityRes) return undefined;
  const [reqType, reqId] = parseLiteral(eligibilityReq)!;
  const [resType, resId] = parseLiteral(eligibilityRes)!;
  return {
    created: false,
    serviceRequest,
    task,
    eligibilityRequest: await tx.read(reqType, reqId),
    eligibilityResponse: await tx.read(resType, resId),
  };
}

/** The resource a literal reference points at: as intake found it, else from the store. */
type FindReferenced = (reference: string | undefined) => Promise<Resource | undefined>;

/** The facts of the request; `referenced` holds what its references were found to point at (read once). */
async function loadFacts(tx: FhirStore, serviceRequest: ServiceRequest, receivedAt: string, referenced: Map<string, Resource>): Promise<CaseFacts> {
  const find: FindReferenced = async (reference) => {
    const literal = parseLiteral(reference);
    return literal && (referenced.get(reference!) ?? (await tx.find(literal[0], literal[1])));
  };
  const subject = parseLiteral(serviceRequest.subject?.reference);
  if (!subject || subject[0] !== 'Patient') throw unprocessable('ServiceRequest.subject must be the member (a Patient)', ['ServiceRequest.subject']);
  const patient = (await find(serviceRequest.subject?.reference)) as Patient | undefined;
  if (!patient) throw unprocessable(`No member Patient/${subject[1]}`, ['ServiceRequest.subject']);
  const coverage = await activeCoverage(serviceRequest, patient, receivedAt, find);
  if (!parseLiteral(serviceRequest.requester?.reference)) throw unprocessable('The request has no identifiable requester', ['ServiceRequest.requester']);
  const requester = await find(serviceRequest.requester?.reference);
  if (!requester) throw unprocessable(`Unknown requester ${serviceRequest.requester?.reference}`, ['ServiceRequest.requester']);
  if (!serviceRequest.reasonCode?.length && !serviceRequest.reasonReference?.length) {
    throw unprocessable('The request gives no reason for the second opinion (R2)', ['ServiceRequest.reasonCode']);
  }
  return { serviceRequest, patient, coverage, requester, receivedAt };
}

/** The member's Coverage named on the request, active on the day of receipt (Medi-Cal eligibility). */
async function activeCoverage(sr: ServiceRequest, patient: Patient, receivedAt: string, find: FindReferenced): Promise<Coverage> {
  const refs = (sr.insurance ?? []).map((r) => r.reference).filter((ref) => parseLiteral(ref)?.[0] === 'Coverage');
  if (!refs.length) throw unprocessable('The request names no Coverage (ServiceRequest.insurance)', ['ServiceRequest.insurance']);
  for (const ref of refs) {
    const coverage = (await find(ref)) as Coverage | undefined;
    if (!coverage) continue;
    if (coverage.beneficiary.reference !== `Patient/${patient.id}`) throw unprocessable(`Coverage/${coverage.id} belongs to another member`, ['ServiceRequest.insurance']);
    if (coverage.status === 'active' && inPeriod(coverage.period, new Date(receivedAt))) return coverage;
  }
  throw unprocessable('The member has no active Medi-Cal Coverage on the date of the request', ['ServiceRequest.insurance']);
}

/**
 * What happens at once when a request is approved on receipt (letters, transportation): outputs for the
 * Task, resources to store with the case, and work to do once they are stored (delivery to providers).
 */
export type OnApproval = (
  tx: FhirStore,
  c: { serviceRequest: ServiceRequest; patient: Patient; coverage: Coverage },
) => Promise<{ outputs: TaskOutput[]; resources: Resource[]; afterStore(): Promise<void> }>;

/** The case's resources, and an approval's letter with its Communications, are written together in one statement. */
async function persistCase(tx: FhirStore, facts: CaseFacts, decision: CaseDecision, insurer: Reference, requestIdentifier: string, actor: Reference | undefined, onApproval?: OnApproval): Promise<SubmitResult> {
  const ids = { serviceRequest: randomUUID(), eligibilityRequest: randomUUID(), eligibilityResponse: randomUUID(), task: randomUUID() };
  const refs: CaseRefs = {
    serviceRequest: { reference: `ServiceRequest/${ids.serviceRequest}` },
    patient: { reference: `Patient/${facts.patient.id}` },
    coverage: { reference: `Coverage/${facts.coverage.id}` },
    insurer,
    requester: facts.serviceRequest.requester,
    performer: facts.serviceRequest.performer?.[0],
    eligibilityRequest: { reference: `CoverageEligibilityRequest/${ids.eligibilityRequest}` },
  };
  const eligibilityReq = { ...eligibilityRequest(refs, facts.receivedAt), id: ids.eligibilityRequest };
  const preAuthRef = decision.outcome === 'approved' && decision.authorizationRequired ? `PA-${randomUUID().slice(0, 8).toUpperCase()}` : undefined;
  const info = coverageInformation(decision, refs, facts.receivedAt, randomUUID(), preAuthRef);
  const serviceRequest = { ...stampServiceRequest(facts.serviceRequest, requestIdentifier, facts.receivedAt, info), id: ids.serviceRequest };
  const eligibilityRes = { ...eligibilityResponse(decision, refs, facts.receivedAt, preAuthRef), id: ids.eligibilityResponse };
  const task = { ...caseTask(decision, refs, facts.receivedAt, requestIdentifier), id: ids.task };
  task.input = [
    { type: { text: 'eligibility-request' }, valueReference: refs.eligibilityRequest },
    { type: { text: 'eligibility-response' }, valueReference: { reference: `CoverageEligibilityResponse/${ids.eligibilityResponse}` } },
    ...(task.input ?? []),
  ];
  const approval = decision.outcome === 'approved' ? await onApproval?.(tx, { serviceRequest, patient: facts.patient, coverage: facts.coverage }) : undefined;
  if (decision.outcome === 'approved') task.output = approval?.outputs ?? [];
  const stored = await tx.createMany([
    eligibilityReq,
    serviceRequest,
    eligibilityRes,
    task,
    provenance([serviceRequest, eligibilityRes, task], actor ?? facts.serviceRequest.requester, 'CREATE', 'Second-opinion request received'),
    ...(approval?.resources ?? []),
  ]);
  await approval?.afterStore();
  return {
    created: true,
    eligibilityRequest: stored[0],
    serviceRequest: stored[1] as ServiceRequest,
    eligibilityResponse: stored[2],
    task: stored[3] as Task,
  };
}

export function provenance(targets: Resource[], agent: Reference | undefined, activity: string, reason: string): Provenance {
  return {
    resourceType: 'Provenance',
    target: targets.map((t) => ({ reference: `${t.resourceType}/${t.id}/_history/${t.meta?.versionId ?? '1'}` })),
    recorded: new Date().toISOString(),
    activity: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-DataOperation', code: activity }] },
    reason: [{ text: reason }],
    agent: [{ type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/provenance-participant-type', code: 'author' }] }, who: agent ?? { display: 'second-opinion-fhir' } }],
  };
}

export function resultBundle(result: SubmitResult, baseUrl: string): Bundle {
  const entry = (r: Resource) => ({ fullUrl: `${baseUrl}/${r.resourceType}/${r.id}`, resource: r });
  return {
    resourceType: 'Bundle',
    type: 'collection',
    timestamp: new Date().toISOString(),
    entry: [result.serviceRequest, result.eligibilityRequest, result.eligibilityResponse, result.task].map(entry),
  };
}
