import { randomUUID } from 'node:crypto';
import type { Attachment, Binary, Bundle, CodeableConcept, DocumentReference, Reference, Resource, Task, TaskInput, TaskOutput } from 'fhir/r4.js';
import { z } from 'zod';
import { parseLiteral, rewriteReferences } from '../fhir/references.js';
import { isReadOnlyType, isSupportedType } from '../fhir/resourceTypes.js';
import { CANONICAL_BASE } from '../fhir/systems.js';
import type { FhirStore } from '../storage/FhirStore.js';
import type { OutboundConfig } from './config.js';
import { createIfNoneExist, type DeliveryDeps } from './deliveries.js';
import { classifyHttpError, PermanentError, RetryLater } from './errors.js';
import { checkOutboundUrl, fhirClient, identifierQuery, requestOptions, trimBase } from './http.js';
import type { OutboxHandler } from './worker.js';

/**
 * Information requests to a provider in the style of Da Vinci CDex's task-based approach: the plan
 * creates a data-request Task on the provider's FHIR server and polls it; when the provider
 * completes it, the resources it points to in Task.output are copied into our server, linked to
 * the case, and our tracking Task is completed with references to the copies.
 */
export const CDEX_POLL = 'cdex-poll';
export const CDEX_TEMP = 'http://hl7.org/fhir/us/davinci-cdex/CodeSystem/cdex-temp';
export const CDEX_TASK_PROFILE = 'http://hl7.org/fhir/us/davinci-cdex/StructureDefinition/cdex-task-data-request';
/** Identifier shared by our tracking Task and the provider's Task (conditional create, search). */
export const INFORMATION_REQUEST_SYSTEM = `${CANONICAL_BASE}/sid/information-request`;

const cdexCode = (code: string): CodeableConcept => ({ coding: [{ system: CDEX_TEMP, code }] });

export interface InformationRequest {
  /** The provider's FHIR base. */
  endpoint: string;
  plan?: string;
  /** Our case: `ServiceRequest/<id>`. */
  basedOn: string;
  /** The member here (`Patient/<id>`) and as the provider knows them (usually an identifier, e.g. the CIN). */
  patient: { local?: string; remote: Reference };
  /** The plan as the provider knows it (identifier or display). */
  requester?: Reference;
  /** Who should answer at the provider. */
  owner?: Reference;
  /** What is asked: a code (e.g. LOINC 11506-3 progress note) or a FHIR query. */
  request: { code: CodeableConcept } | { query: string };
  /** Free text for the provider's staff (no more PHI than the request needs). */
  description?: string;
  /** When the plan needs the answer (Task.restriction.period.end). */
  dueDate?: string;
  /** Stop polling after this; the request then fails visibly. */
  deadline?: Date;
}

const Ref = z.string().regex(/^[A-Z][A-Za-z]+\/[A-Za-z0-9\-.]{1,64}$/);
export const CdexPollPayload = z.object({
  endpoint: z.url(),
  plan: z.string().optional(),
  identifier: z.object({ system: z.string(), value: z.string() }),
  task: z.looseObject({ resourceType: z.literal('Task') }),
  localTask: Ref,
  localPatient: Ref.optional(),
  basedOn: Ref,
  deadline: z.iso.datetime(),
});
export type CdexPollPayload = z.infer<typeof CdexPollPayload>;

/**
 * Records the request (our tracking Task, status requested) and queues its delivery and polling,
 * all in the caller's transaction. Returns the tracking Task.
 */
export async function enqueueInformationRequest(tx: FhirStore, request: InformationRequest, settings: OutboundConfig['cdex']): Promise<Task> {
  const identifier = { system: INFORMATION_REQUEST_SYSTEM, value: randomUUID() };
  const inputs: TaskInput[] = [
    'code' in request.request
      ? { type: cdexCode('data-code'), valueCodeableConcept: request.request.code }
      : { type: cdexCode('data-query'), valueString: request.request.query },
  ];
  const common = {
    identifier: [identifier],
    status: 'requested' as const,
    intent: 'order' as const,
    code: cdexCode('code' in request.request ? 'data-request-code' : 'data-request-query'),
    description: request.description,
    authoredOn: new Date().toISOString(),
    restriction: request.dueDate ? { period: { end: request.dueDate } } : undefined,
    input: inputs,
  };
  const remote: Task = { resourceType: 'Task', meta: { profile: [CDEX_TASK_PROFILE] }, ...common, for: request.patient.remote, requester: request.requester, owner: request.owner };
  const local = await tx.create<Task>({
    resourceType: 'Task',
    ...common,
    basedOn: [{ reference: request.basedOn }],
    for: request.patient.local ? { reference: request.patient.local } : undefined,
    input: [...inputs, { type: { text: 'provider-endpoint' }, valueUrl: trimBase(request.endpoint) }],
  });
  const due = request.dueDate ? Date.parse(request.dueDate) : NaN;
  const deadline = request.deadline ?? new Date(Number.isNaN(due) ? Date.now() + settings.defaultDeadlineMs : due + 7 * 24 * 3600_000);
  const payload: CdexPollPayload = {
    endpoint: trimBase(request.endpoint),
    plan: request.plan,
    identifier,
    task: dropUndefined(remote) as unknown as CdexPollPayload['task'],
    localTask: `Task/${local.id}`,
    localPatient: request.patient.local,
    basedOn: request.basedOn,
    deadline: deadline.toISOString(),
  };
  await tx.enqueue(CDEX_POLL, CdexPollPayload.parse(payload), `${CDEX_POLL}:${identifier.system}|${identifier.value}`);
  return local;
}

const DONE_WITHOUT_DATA = new Set(['failed', 'rejected', 'cancelled', 'entered-in-error']);

/**
 * Handler of `cdex-poll`: makes sure the provider has the Task (conditional create, so a retry
 * never duplicates it), then looks at its status. Until it is completed, failed or past the
 * deadline, the message is rescheduled (RetryLater: the same outbox row, `pollIntervalMs` later;
 * transient errors wait the same interval and never count towards maxAttempts).
 */
export function cdexPollHandler(deps: DeliveryDeps & { store: FhirStore; settings: OutboundConfig['cdex'] }): OutboxHandler {
  return async (raw) => {
    const parsed = CdexPollPayload.safeParse(raw);
    if (!parsed.success) throw new PermanentError('cdex-poll: malformed outbox payload');
    const p = parsed.data;
    checkOutboundUrl(p.endpoint, deps.network, 'cdex endpoint');
    const now = Date.now();
    const later = (reason: string) => new RetryLater(new Date(now + deps.settings.pollIntervalMs), reason);
    const overdue = now > Date.parse(p.deadline);
    let remote: Task | undefined;
    try {
      remote = (await findRemoteTask(deps, p)) ?? ((await createIfNoneExist(deps, p.endpoint, p.plan, p.task as unknown as Task, p.identifier)) as Task | undefined);
      if (!remote) remote = await findRemoteTask(deps, p);
    } catch (err) {
      const failure = classifyHttpError(err, 'cdex request');
      if (failure instanceof PermanentError) throw failure;
      if (overdue) throw new PermanentError(`${failure.message}; deadline passed`);
      throw later(failure.message);
    }
    if (!remote) throw later('cdex request: the provider has not stored the Task yet');
    if (remote.status === 'completed') {
      const copies = await fetchOutputs(deps, p, remote).catch((err: unknown) => {
        const failure = classifyHttpError(err, 'cdex output');
        if (failure instanceof PermanentError || overdue) throw new PermanentError(failure.message);
        throw later(failure.message);
      });
      await completeLocally(deps.store, p, copies);
      return;
    }
    if (DONE_WITHOUT_DATA.has(remote.status)) {
      await mirrorStatus(deps.store, p.localTask, remote.status, remote.statusReason);
      return;
    }
    if (overdue) throw new PermanentError('cdex request: no answer before the deadline');
    await mirrorStatus(deps.store, p.localTask, remote.status, undefined);
    throw later(`cdex request: provider status ${remote.status}`);
  };
}

async function findRemoteTask(deps: DeliveryDeps, p: CdexPollPayload): Promise<Task | undefined> {
  const client = fhirClient(p.endpoint);
  const bundle = (await deps.auth.withAuthorization(p.endpoint, p.plan, (headers) =>
    client.request(`Task?${identifierQuery(p.identifier)}`, { options: requestOptions(headers, deps.network.timeoutMs, deps.network) }),
  )) as unknown as Bundle;
  const tasks = (bundle.entry ?? []).map((e) => e.resource).filter((r): r is Task => r?.resourceType === 'Task');
  if (tasks.length > 1) throw new PermanentError('cdex request: the provider holds more than one Task with our identifier');
  return tasks[0];
}

/** Reads what Task.output points to at the provider (only URLs under its FHIR base: our token goes nowhere else). */
async function fetchOutputs(deps: DeliveryDeps & { settings: OutboundConfig['cdex'] }, p: CdexPollPayload, remote: Task): Promise<{ resource: Resource; source: string }[]> {
  const copies: { resource: Resource; source: string }[] = [];
  for (const output of (remote.output ?? []).slice(0, deps.settings.maxOutputs)) {
    const attachment = (output as TaskOutput).valueAttachment;
    if (attachment) {
      copies.push({ resource: attachmentDocument(attachment), source: `${p.endpoint}/Task/${remote.id}` });
      continue;
    }
    const url = remoteUrl(p.endpoint, output.valueReference?.reference);
    if (!url) continue;
    const fetched = (await get(deps, p, url)) as Resource;
    const found = fetched.resourceType === 'Bundle' ? ((fetched as Bundle).entry ?? []).map((e) => e.resource).filter((r): r is Resource => r !== undefined) : [fetched];
    for (const resource of found) {
      if (copies.length >= deps.settings.maxOutputs) break;
      if (resource.resourceType === 'DocumentReference') await inlineAttachments(deps, p, resource as DocumentReference);
      copies.push({ resource, source: resource.id ? `${p.endpoint}/${resource.resourceType}/${resource.id}` : url });
    }
  }
  return copies;
}

async function get(deps: DeliveryDeps, p: CdexPollPayload, url: string): Promise<unknown> {
  const client = fhirClient(p.endpoint);
  return deps.auth.withAuthorization(p.endpoint, p.plan, (headers) => client.request(url, { options: requestOptions(headers, deps.network.timeoutMs, deps.network) }));
}

/**
 * Attachments pointing at the provider's Binary are fetched and inlined, so reviewers need no
 * provider access. Best effort: an attachment that cannot be fetched keeps its (absolute) URL.
 */
async function inlineAttachments(deps: DeliveryDeps, p: CdexPollPayload, doc: DocumentReference): Promise<void> {
  for (const content of doc.content ?? []) {
    const url = content.attachment.data ? undefined : remoteUrl(p.endpoint, content.attachment.url);
    if (!url) continue;
    content.attachment = { ...content.attachment, url };
    if (!/\/Binary\/[A-Za-z0-9\-.]{1,64}$/.test(url)) continue;
    const binary = (await get(deps, p, url).catch(() => undefined)) as Binary | undefined;
    if (binary?.resourceType !== 'Binary' || !binary.data) continue;
    const { url: _url, ...rest } = content.attachment;
    content.attachment = { ...rest, data: binary.data, contentType: rest.contentType ?? binary.contentType };
  }
}

/** An absolute URL under the provider's base for a reference, or undefined (other hosts, contained, urn). */
export function remoteUrl(endpoint: string, reference: string | undefined): string | undefined {
  if (!reference) return undefined;
  if (parseLiteral(reference) || /^[A-Z][A-Za-z]+\/[A-Za-z0-9\-.]{1,64}\/_history\/[A-Za-z0-9\-.]{1,64}$/.test(reference)) return `${endpoint}/${reference}`;
  return reference.startsWith(`${endpoint}/`) ? reference : undefined;
}

function attachmentDocument(attachment: Attachment): DocumentReference {
  return { resourceType: 'DocumentReference', status: 'current', content: [{ attachment }] };
}

/**
 * Our copy of a provider resource: new id, `meta.source` naming where it came from, references to
 * the provider's records made absolute (their `Patient/1` is not ours), the member's reference
 * replaced by ours, and documents linked to the case.
 */
export function localCopy(resource: Resource, source: string, endpoint: string, localPatient: string | undefined, basedOn: string): Resource | undefined {
  if (!isSupportedType(resource.resourceType) || isReadOnlyType(resource.resourceType)) return undefined;
  const { id: _id, meta: _meta, ...rest } = structuredClone(resource);
  const copy = { ...rest, meta: { source } } as Resource;
  rewriteReferences(copy, (ref) => {
    if (ref.startsWith('#')) return undefined;
    const relative = ref.startsWith(`${endpoint}/`) ? ref.slice(endpoint.length + 1) : ref;
    const literal = parseLiteral(relative);
    if (literal?.[0] === 'Patient' && localPatient) return localPatient;
    return literal ? `${endpoint}/${relative}` : undefined;
  });
  if (copy.resourceType === 'DocumentReference') {
    const doc = copy as DocumentReference;
    if (localPatient) doc.subject = { reference: localPatient };
    doc.context = { ...doc.context, related: [...(doc.context?.related ?? []), { reference: basedOn }] };
  }
  return copy;
}

async function completeLocally(store: FhirStore, p: CdexPollPayload, copies: { resource: Resource; source: string }[]): Promise<void> {
  const [, localId] = parseLiteral(p.localTask)!;
  await store.transaction(async (tx) => {
    await tx.lock(`cdex:${p.localTask}`);
    const local = (await tx.find('Task', localId)) as Task | undefined;
    if (!local || local.status === 'completed') return; // already copied by an earlier attempt
    const output: TaskOutput[] = [];
    for (const { resource, source } of copies) {
      const copy = localCopy(resource, source, p.endpoint, p.localPatient, p.basedOn);
      if (!copy) continue;
      const stored = await tx.create(copy);
      output.push({ type: cdexCode('data-value'), valueReference: { reference: `${stored.resourceType}/${stored.id}` } });
    }
    await tx.update<Task>({ ...local, status: 'completed', output, lastModified: new Date().toISOString() }, local.meta?.versionId);
  });
}

async function mirrorStatus(store: FhirStore, localTask: string, status: Task['status'], reason: CodeableConcept | undefined): Promise<void> {
  const [, localId] = parseLiteral(localTask)!;
  await store.transaction(async (tx) => {
    const local = (await tx.find('Task', localId)) as Task | undefined;
    if (!local || local.status === status || local.status === 'completed') return;
    const next: Task = { ...local, status, lastModified: new Date().toISOString() };
    if (reason?.text || reason?.coding) next.statusReason = reason;
    await tx.update(next, local.meta?.versionId);
  });
}

/** Marks our tracking Task failed when the request is given up (called in the dead-letter transaction). */
export async function failInformationRequest(tx: FhirStore, localTask: string, reason: string): Promise<void> {
  const literal = parseLiteral(localTask);
  const local = literal ? ((await tx.find('Task', literal[1])) as Task | undefined) : undefined;
  if (!local || ['completed', 'failed', 'rejected', 'cancelled'].includes(local.status)) return;
  await tx.update<Task>({ ...local, status: 'failed', statusReason: { text: reason }, lastModified: new Date().toISOString() });
}

function dropUndefined<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}
