import type { Resource, Task } from 'fhir/r4.js';
import type { FhirStore, SearchClause } from '../storage/FhirStore.js';
import type { FhirContext, Interaction } from './context.js';
import { concealedRefusal, FhirError, forbidden } from './outcomes.js';
import { GRIEVANCE_TASK_CODE, PROFILES } from './systems.js';
import type { FhirRequest } from './request.js';
import { parseSearch } from './search/parse.js';
import type { Indexer } from './search/indexer.js';
import type { SearchParamRegistry } from './search/registry.js';

/** Scope check for an interaction on a type; no-op when auth is off (tests of the FHIR layer alone). */
export function requireScope(req: FhirRequest, ctx: FhirContext, resourceType: string, interaction: Interaction): void {
  if (req.auth) ctx.policy.requireScope(req.auth, resourceType, interaction);
}

/** Whether the token's scopes allow the interaction on the type (the check of `requireScope`, without the refusal). */
export function hasScope(req: FhirRequest, ctx: FhirContext, resourceType: string, interaction: Interaction): boolean {
  try {
    requireScope(req, ctx, resourceType, interaction);
    return true;
  } catch {
    return false;
  }
}

/**
 * A read or search the token's scopes grant only in part, through query-restricted v2 scopes
 * (`patient/Observation.rs?category=laboratory`): the clause holding it to that part, any one scope's query
 * in the compartment of its patient. Undefined when a scope grants the whole type; refused as requireScope
 * refuses when none grants any of it.
 */
export function scopeRestriction(req: FhirRequest, ctx: FhirContext, resourceType: string, interaction: 'read' | 'search'): SearchClause | undefined {
  if (!req.auth || hasScope(req, ctx, resourceType, interaction)) return undefined;
  const grants = ctx.policy.restrictedGrants?.(req.auth, resourceType, interaction) ?? [];
  if (!grants.length) requireScope(req, ctx, resourceType, interaction); // refuses, as it refused hasScope
  return {
    kind: 'anyOf',
    alternatives: grants.map((grant) => [
      ...(grant.compartment ? [{ kind: 'compartment', compartment: grant.compartment } as const] : []),
      ...restrictionClauses(ctx, resourceType, grant.query),
    ]),
  };
}

/** The clauses of a scope's query; a query the server cannot hold searches to is never granted (`isRestrictionQuery`). */
function restrictionClauses(ctx: FhirContext, resourceType: string, query: [string, string][]): SearchClause[] {
  return parseSearch(resourceType, query, ctx.registry, { strict: true, baseUrl: '', refuseEmpty: true }).query.clauses;
}

/** The parameters named with `_` that match resources (the others shape or page the results). */
const MATCHING_META_PARAMS: ReadonlySet<string> = new Set(['_id', '_lastUpdated', '_profile', '_tag', '_security']);

/**
 * Whether a v2 scope's query can restrict reads and searches of the type: search parameters of the type
 * itself (no chains, `_has` or result parameters such as `_include`). Not the audit log, which is role-bound.
 */
export function isRestrictionQuery(registry: SearchParamRegistry, resourceType: string, query: [string, string][]): boolean {
  if (resourceType === 'AuditEvent' || !query.length) return false;
  try {
    const parsed = parseSearch(resourceType, query, registry, { strict: true, baseUrl: '', refuseEmpty: true });
    return query.every(([name]) => !name.startsWith('_') || MATCHING_META_PARAMS.has(name.split(':')[0])) && parsed.query.clauses.every((c) => c.kind !== 'chain' && c.kind !== 'reverseChain');
  } catch {
    return false;
  }
}

/** The interaction a resource-level check is judged for: the one routed, a read where none was (a bare operation). */
const interactionOf = (req: FhirRequest): Interaction => req.interaction ?? 'read';

/** The compartment a search (or the search of a conditional write) must be limited to, if any. */
export function compartmentOf(req: FhirRequest, ctx: FhirContext, resourceType: string): string | undefined {
  return req.auth ? ctx.policy.patientCompartment(req.auth, resourceType, interactionOf(req)) : undefined;
}

export function mayAccess(req: FhirRequest, ctx: FhirContext, resource: Resource): boolean {
  return refusalOf(req, ctx, resource) === undefined;
}

/** Why the caller may not use this interaction on the resource: its type's own rule, or the token's patient compartment. */
function refusalOf(req: FhirRequest, ctx: FhirContext, resource: Resource, interaction = interactionOf(req)): string | undefined {
  if (!req.auth) return undefined;
  const what = `${resource.resourceType}/${resource.id ?? '(new)'}`;
  if (!ruleAllows(req, ctx, resource, interaction)) return `This token may not ${interaction} ${what}`;
  // Evaluating the compartment's search parameters is skipped for user and system grants, which need no compartment.
  const inCompartment = ctx.policy.mayAccess(req.auth, resource.resourceType, interaction, () => ctx.indexer.patientCompartments(resource));
  return inCompartment ? undefined : `Access to ${what} is outside the patient compartment of this token`;
}

/** The resource type's own access rule (ResourceAccessRule), if it has one. */
function ruleAllows(req: FhirRequest, ctx: FhirContext, resource: Resource, interaction = interactionOf(req)): boolean {
  const rule = ctx.accessRules?.[resource.resourceType];
  return !req.auth || !rule || rule.mayAccess({ ...req, auth: req.auth, interaction }, ctx, resource);
}

/** A read granted through query-restricted scopes (`scopeRestriction`): the resource must match one of their queries. */
export async function requireRestrictedAccess(req: FhirRequest, ctx: FhirContext, resource: Resource, restriction: SearchClause): Promise<void> {
  const clauses: SearchClause[] = [{ kind: 'id', ids: [resource.id!] }, restriction];
  if (ruleAllows(req, ctx, resource) && (await ctx.store.search({ resourceType: resource.resourceType, clauses, sort: [], count: 1, offset: 0, total: false })).resources.length) return;
  throw concealedRefusal(`${resource.resourceType}/${resource.id}`);
}

/**
 * The check of a resource asked for by its id (read, vread, instance history, patch, delete, an operation on it):
 * one the caller may neither read nor use so is answered as what was asked (`asked`, a version for a vread) would be
 * if it did not exist, so that a 403 does not tell which ids exist. A PUT names the id it creates at, so whether
 * that id is taken cannot be hidden from it: its refusal stays 403.
 * What the caller may read but not change is refused 403 by the write's own check.
 */
export function requireVisible(req: FhirRequest, ctx: FhirContext, resource: Resource, asked = `${resource.resourceType}/${resource.id}`): void {
  if (!isVisible(req, ctx, resource)) throw concealedRefusal(asked);
}

/** Whether the caller may read or use the resource; if neither, `requireVisible` answers it as a missing id. */
export function isVisible(req: FhirRequest, ctx: FhirContext, resource: Resource): boolean {
  return !refusalOf(req, ctx, resource) || !refusalOf(req, ctx, resource, 'read');
}

/**
 * The current version of a resource asked for by its id, if the caller may see it (`requireVisible`, or the
 * token's query-restricted scopes). A deletion is 410 only to a caller who could see its last stored version:
 * to the others, and to query-restricted scopes (whose queries no deletion matches), it is 404.
 */
export async function readVisible(req: FhirRequest, ctx: FhirContext, store: VersionReader, type: string, id: string, restriction?: SearchClause, versionId?: string): Promise<Resource> {
  const asked = versionId === undefined ? `${type}/${id}` : `${type}/${id}/_history/${versionId}`;
  let resource: Resource;
  try {
    resource = versionId === undefined ? await store.read(type, id) : await store.vread(type, id, versionId);
  } catch (err) {
    if (err instanceof FhirError && err.status === 410) await requireDeletionVisible(req, ctx, store, await lastStoredVersion(store, type, id), restriction, asked);
    throw err;
  }
  if (restriction) await requireRestrictedAccess(req, ctx, resource, restriction);
  else requireVisible(req, ctx, resource, asked);
  await requireVisiblePatient(req, ctx, resource, asked, store);
  return resource;
}

/**
 * The clause holding a search of `type` to the patients the caller may see (FhirContext.visiblePatients): on Patient,
 * the patients themselves; on another type of the patient compartment, what is in one of their compartments.
 * Undefined for the directory's types and for a caller who is not so limited.
 */
export function visiblePatientsClause(req: FhirRequest, ctx: FhirContext, type: string): SearchClause | undefined {
  const patients = req.auth && ctx.visiblePatients?.(req.auth);
  if (!patients) return undefined;
  if (type === 'Patient') return patients;
  return ctx.indexer.compartmentParams(type).length ? { kind: 'patientCompartment', patient: [patients] } : undefined;
}

/** Whether the resource is about a patient the caller may see (`visiblePatientsClause`); a record about no patient is not held. */
export async function aboutVisiblePatient(req: FhirRequest, ctx: FhirContext, resource: Resource, store: PatientFinder = ctx.store): Promise<boolean> {
  const patients = req.auth && ctx.visiblePatients?.(req.auth);
  return !patients || aboutPatientsMatching(ctx.indexer, store, resource, patients);
}

/** Whether the resource is about a stored Patient that `patients` matches; the directory and a record about no patient are. */
export async function aboutPatientsMatching(indexer: Indexer, store: PatientFinder, resource: Resource, patients: SearchClause): Promise<boolean> {
  const type = resource.resourceType;
  if (type !== 'Patient' && !indexer.compartmentParams(type).length) return true;
  const ids = indexer.patientCompartments(resource).map((ref) => ref.slice('Patient/'.length));
  if (!ids.length) return type !== 'Patient';
  const { resources } = await store.search({ resourceType: 'Patient', clauses: [{ kind: 'id', ids }, patients], sort: [], count: 1, offset: 0, total: false });
  return resources.length > 0;
}

/** Those of the resources that are about patients the caller may see: one query per type. */
export async function aboutVisiblePatients(req: FhirRequest, ctx: FhirContext, resources: Resource[]): Promise<Resource[]> {
  const kept = new Set<Resource>();
  for (const type of new Set(resources.map((r) => r.resourceType))) {
    const ofType = resources.filter((r) => r.resourceType === type && r.id);
    const clause = visiblePatientsClause(req, ctx, type);
    if (!clause) {
      ofType.forEach((r) => kept.add(r));
      continue;
    }
    const ids = [...new Set(ofType.map((r) => r.id!))];
    const found = await ctx.store.search({ resourceType: type, clauses: [{ kind: 'id', ids }, clause], sort: [], count: ids.length, offset: 0, total: false });
    const visible = new Set(found.resources.map((r) => r.id));
    ofType.filter((r) => visible.has(r.id)).forEach((r) => kept.add(r));
  }
  return resources.filter((r) => kept.has(r));
}

/**
 * The store a check of the patients runs its query on: in a transaction, the transaction's (PGlite has one
 * connection, which a query outside the transaction would wait for until the transaction ends).
 */
export type PatientFinder = Pick<FhirStore, 'search'>;

/** A resource asked for (`asked`) about a patient the caller may not see: answered as a missing id, as `requireVisible` answers. */
export async function requireVisiblePatient(req: FhirRequest, ctx: FhirContext, resource: Resource, asked = `${resource.resourceType}/${resource.id}`, store: PatientFinder = ctx.store): Promise<void> {
  if (!(await aboutVisiblePatient(req, ctx, resource, store))) throw concealedRefusal(asked);
}

/** A write about a patient the caller may not see: 403 (a PUT or POST names what it writes, so there is nothing to hide). */
export async function requireAboutVisiblePatient(req: FhirRequest, ctx: FhirContext, resource: Resource, store: PatientFinder = ctx.store): Promise<void> {
  if (!(await aboutVisiblePatient(req, ctx, resource, store))) {
    throw forbidden(`${resource.resourceType}/${resource.id ?? '(new)'} is about a patient this user has no care or plan relationship with`);
  }
}

/** What a read needs of the store. */
export type VersionReader = Pick<FhirStore, 'read' | 'vread' | 'history' | 'search'>;

/** Whether a deleted resource's 410 may be told: see `readVisible`. */
async function requireDeletionVisible(req: FhirRequest, ctx: FhirContext, store: PatientFinder, last: Resource | undefined, restriction: SearchClause | undefined, asked: string): Promise<void> {
  if (!last) return;
  if (restriction) throw concealedRefusal(asked);
  requireVisible(req, ctx, last, asked);
  await requireVisiblePatient(req, ctx, last, asked, store);
}

/** The newest version of a resource that holds content (a deleted resource's last state). */
export async function lastStoredVersion(store: VersionReader, type: string, id: string): Promise<Resource | undefined> {
  const versions = await store.history({ resourceType: type, id, count: 2, offset: 0 });
  return versions.find((v) => v.resource)?.resource;
}

export function requireAccess(req: FhirRequest, ctx: FhirContext, resource: Resource): void {
  const refusal = refusalOf(req, ctx, resource);
  if (refusal) throw forbidden(refusal);
}

const CASE_PROFILES: ReadonlySet<string> = new Set(Object.values(PROFILES));

/** A Task coded as a grievance, with or without the profile: one not filed through $file-grievance would sit on the coordinator's desk. */
export const isGrievanceTask = (resource: Resource): boolean =>
  resource.resourceType === 'Task' && Boolean((resource as Task).code?.coding?.some((c) => c.system === GRIEVANCE_TASK_CODE.system && c.code === GRIEVANCE_TASK_CODE.code));

/**
 * A second-opinion case's records (its ServiceRequest, Task, CoverageEligibilityResponse, notices and report)
 * change only through the case's operations, which check the review path, the parties and the deadlines
 * and leave Provenance; a plain create, update, patch or delete of one is plan administration's alone.
 */
export function requireCaseRecordWrite(req: FhirRequest, resource: Resource): void {
  if (!req.auth || req.auth.roles.includes('plan-admin')) return;
  const profiles: unknown = resource.meta?.profile;
  const claimsCaseProfile = Array.isArray(profiles) && profiles.some((p) => CASE_PROFILES.has(p as string));
  if (!claimsCaseProfile && !isGrievanceTask(resource)) return;
  throw forbidden(`${resource.resourceType}/${resource.id ?? '(new)'} is a second-opinion case record: it changes only through the case's operations ($submit, Task/$approve, ...)`);
}
