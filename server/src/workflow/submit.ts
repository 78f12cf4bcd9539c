import { randomUUID } from 'node:crypto';
import type { Bundle, Coverage, CoverageEligibilityResponse, Patient, Provenance, Reference, Resource, ServiceRequest, Task, TaskOutput } from 'fhir/r4.js';
import { inPeriod } from '../domain/clock.js';
import { conflict, unprocessable } from '../fhir/outcomes.js';
import { parseLiteral } from '../fhir/references.js';
import { IDENTIFIER_SYSTEMS } from '../fhir/systems.js';
import type { FhirStore } from '../storage/FhirStore.js';
import { caseTask, type CaseDecision, type CaseRefs, coverageInformation, eligibilityRequest, eligibilityResponse, stampServiceRequest } from './caseResources.js';
import { type IntakeAccess, matchSubmission, parseSubmission, type Resolution, storeSubmission } from './intake.js';

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
export interface SubmitGuard extends IntakeAccess {
  /** Work done when a request is approved on receipt (R11 letters, R13 transportation). */
  onApproval?: OnApproval;
  /** The id a new case's ServiceRequest takes: a create inside a transaction is given one, which other entries may already refer to. */
  serviceRequestId?: string;
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
 * transaction. A resubmission with the same identifier and the same parties returns the existing case
 * and creates nothing; one naming other parties is refused (see `sameCase`).
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
    let existing: SubmitResult | undefined;
    if (requestIdentifier) {
      await tx.lock(`second-opinion:${requestIdentifier.system}|${requestIdentifier.value}`);
      existing = await findCase(tx, requestIdentifier);
    }
    const resolution = await matchSubmission(tx, submission, guard);
    if (existing && requestIdentifier) return sameCase(tx, existing, resolution, guard, requestIdentifier);
    const facts = await intake(tx, resolution, now, guard);
    const { decision, insurer } = await decide(tx, facts);
    return persistCase(tx, facts, decision, insurer, requestIdentifier?.value ?? randomUUID(), actor, guard);
  });
}

/** Checks and stores what the request brings along, and reads the facts of the decision (access checked in intake.ts). */
async function intake(tx: FhirStore, resolution: Resolution, now: Date, guard: SubmitGuard): Promise<CaseFacts> {
  const { serviceRequest, referenced } = await storeSubmission(tx, resolution, guard);
  return loadFacts(tx, serviceRequest, now.toISOString(), referenced);
}

/** Who the request is for, by whom, under which coverage and to whom: what a request identifier stands for. */
const PARTIES = ['subject', 'requester', 'insurance', 'performer'] as const;
const partyRefs = (sr: ServiceRequest, party: (typeof PARTIES)[number]): (string | undefined)[] =>
  ([sr[party]].flat().filter(Boolean) as Reference[]).map((r) => r.reference);

/**
 * A resubmission under a known identifier returns the stored case when it names the same parties
 * (idempotent retry); otherwise it is refused with 409. FHIR's conditional create returns the one match
 * (200) or 412 for several, both assuming the criteria identify the request; here the identifier does
 * identify one stored request, but the submitted content contradicts it: a conflict with the current
 * state of the server (RFC 9110 §15.5.10), not an invalid submission (422: under a new identifier it
 * would be accepted). A case the caller may not access gets the same 409, without saying how it differs
 * (no "another member" hint, probe F13); that the identifier is taken cannot be hidden from a submitter
 * who may not reuse it. A party new in this Bundle (a RelatedPerson sent again) matches the stored one
 * when its content is the same.
 */
async function sameCase(tx: FhirStore, existing: SubmitResult, resolution: Resolution, guard: SubmitGuard, identifier: { system: string; value: string }): Promise<SubmitResult> {
  const taken = `A different second-opinion request was already submitted with identifier ${identifier.system}|${identifier.value}`;
  if (!guard.mayAccess(existing.serviceRequest)) throw conflict(taken);
  const fresh = new Map(resolution.toCreate.map(({ resource }) => [`${resource.resourceType}/${resource.id}`, resource]));
  const differing: string[] = [];
  for (const party of PARTIES) {
    const submitted = partyRefs(resolution.serviceRequest, party);
    const stored = partyRefs(existing.serviceRequest, party);
    let same = submitted.length === stored.length;
    for (let i = 0; same && i < submitted.length; i++) {
      if (submitted[i] === stored[i]) continue;
      const created = submitted[i] === undefined ? undefined : fresh.get(submitted[i]!);
      const literal = parseLiteral(stored[i]);
      same = Boolean(created && literal && sameContent(created, await tx.find(literal[0], literal[1])));
    }
    if (!same) differing.push(`ServiceRequest.${party}`);
  }
  if (differing.length) throw conflict(`${taken}, for other parties (${differing.join(', ')}); resubmit it unchanged, or submit this request under a new identifier`);
  return existing;
}

/** Same content, whatever the id and metadata the store gave it. */
function sameContent(a: Resource, b: Resource | undefined): boolean {
  const content = (r: Resource) => canonicalJson({ ...r, id: undefined, meta: undefined, text: undefined });
  return b !== undefined && content(a) === content(b);
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  const entries = Object.entries(value).filter(([, v]) => v !== undefined).sort(([a], [b]) => (a < b ? -1 : 1));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
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
      const facts = await intake(tx, await matchSubmission(tx, submission, guard), now, guard);
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



/**
 * The request's identifier in our second-opinion-request system, which makes resubmission idempotent.
 * Only that system: any other identifier (an order number of the sender's EHR, a system we do not
 * control) may be shared by unrelated requests, and must not turn a new request into someone else's case.
 */
function identifierOf(sr: ServiceRequest): { system: string; value: string } | undefined {
  const value = sr.identifier?.find((i) => i.system === IDENTIFIER_SYSTEMS.secondOpinionRequest && i.value)?.value;
  return value ? { system: IDENTIFIER_SYSTEMS.secondOpinionRequest, value } : undefined;
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
async function persistCase(tx: FhirStore, facts: CaseFacts, decision: CaseDecision, insurer: Reference, requestIdentifier: string, actor: Reference | undefined, guard: SubmitGuard): Promise<SubmitResult> {
  const { onApproval } = guard;
  const ids = { serviceRequest: guard.serviceRequestId ?? randomUUID(), eligibilityRequest: randomUUID(), eligibilityResponse: randomUUID(), task: randomUUID() };
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
