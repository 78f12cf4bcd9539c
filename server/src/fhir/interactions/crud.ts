import type { OperationOutcomeIssue, Resource } from 'fhir/r4.js';
import jsonpatch, { type Operation } from 'fast-json-patch';
import type { FhirStore } from '../../storage/FhirStore.js';
import type { FhirContext, ValidationOptions } from '../context.js';
import { aboutVisiblePatient, hasScope, isVisible, requireAboutVisiblePatient, lastStoredVersion, readVisible, requireAccess, requireCaseRecordWrite, requireScope, requireVisible, scopeRestriction, type VersionReader } from '../guard.js';
import { badRequest, conflict, FhirError, issuesOutcome, methodNotAllowed, preconditionFailed, unprocessableIssues } from '../outcomes.js';
import { type FhirRequest, type FhirResponse, JSON_PATCH } from '../request.js';
import { isBundleLocal, isConditionalReference, referencesIn, relativizeOwnReferences } from '../references.js';
import { ID_RE, refuseUnknownWhenStrict, shapeResource, versionAnswer, versionHeaders, writeResponse } from '../responses.js';
import { appendOnlyRefusal, isAppendOnlyType, isReadOnlyType } from '../resourceTypes.js';
import { parseSearch } from '../search/parse.js';
import { runSearch } from './search.js';

export async function readResource(req: FhirRequest, ctx: FhirContext, type: string, id: string, store: VersionReader = ctx.store): Promise<FhirResponse> {
  const restriction = scopeRestriction(req, ctx, type, 'read');
  const shape = readShape(req, ctx, type);
  const resource = await readVisible(req, ctx, store, type, checkId(id), restriction);
  return notModified(req, resource) ?? { status: 200, body: shape(resource), headers: versionHeaders(resource) };
}

export async function vreadResource(req: FhirRequest, ctx: FhirContext, type: string, id: string, vid: string): Promise<FhirResponse> {
  requireScope(req, ctx, type, 'vread');
  const shape = readShape(req, ctx, type);
  const resource = await readVisible(req, ctx, ctx.store, type, checkId(id), undefined, vid);
  return notModified(req, resource) ?? { status: 200, body: shape(resource), headers: versionHeaders(resource) };
}

/** What a read may be asked besides the resource: its shape; `_format` and `_pretty` reach here only from Bundle entries. */
const READ_PARAMS: ReadonlySet<string> = new Set(['_summary', '_elements', '_format', '_pretty']);

/** A read's parameters: unknown ones as a search treats them (`refuseUnknownWhenStrict`), then the shape asked for. */
function readShape(req: FhirRequest, ctx: FhirContext, type: string): (resource: Resource) => Resource {
  refuseUnknownWhenStrict(req, READ_PARAMS, 'a read');
  return resultShape(req, ctx, type, 'a read');
}

/**
 * `_summary` and `_elements` on a read or a history (3.1.1.5.7-8), parsed and applied as a search parses and applies
 * them (SUBSETTED tag included); `_summary=count` counts search matches, so they refuse it. `_elements` names elements
 * of one type: the system history, of every type, refuses it.
 */
export function resultShape(req: FhirRequest, ctx: FhirContext, type: string | undefined, interaction: string): (resource: Resource) => Resource {
  const shaping = req.query.filter(([name]) => name === '_summary' || name === '_elements');
  if (!type && shaping.some(([name, value]) => name === '_elements' && value)) throw badRequest(`_elements names elements of one type, not on ${interaction}`, '_elements');
  const { summary, elements } = parseSearch(type ?? 'Resource', shaping, ctx.registry, { strict: true, baseUrl: req.baseUrl });
  if (summary === 'count') throw badRequest(`_summary=count applies to searches, not to ${interaction}`, '_summary');
  return (resource) => shapeResource(resource, summary, elements);
}

/**
 * A conditional read (RFC 7232 §3.2-3.3, §6): If-None-Match decides when sent (any of its tags, weakly
 * compared, or `*`, matching answers 304); If-Modified-Since is consulted only without it.
 */
function notModified(req: FhirRequest, resource: Resource): FhirResponse | undefined {
  const { ifNoneMatch, ifModifiedSince } = req.headers;
  const unchanged = ifNoneMatch ? tagsMatch(entityTags(ifNoneMatch, 'If-None-Match'), resource.meta?.versionId) : unmodifiedSince(ifModifiedSince, resource);
  return unchanged ? versionAnswer(304, resource) : undefined;
}

/** HTTP-dates have whole seconds, meta.lastUpdated milliseconds: a change within the second named is no change. */
function unmodifiedSince(ifModifiedSince: string | undefined, resource: Resource): boolean {
  const since = ifModifiedSince ? Date.parse(ifModifiedSince) : Number.NaN;
  return !Number.isNaN(since) && resource.meta?.lastUpdated !== undefined && Date.parse(resource.meta.lastUpdated) <= since + 999;
}

export async function createResource(req: FhirRequest, ctx: FhirContext, type: string, presetId?: string): Promise<FhirResponse> {
  requireScope(req, ctx, type, 'create');
  refuseReadOnly(type);
  const body = requireBody(req, type);
  const intercepted = await ctx.createInterceptors?.[type]?.(req, ctx, body);
  if (intercepted) return intercepted;
  // A blank If-None-Exist is criteria with nothing in them, refused as such: not a plain create.
  if (req.headers.ifNoneExist !== undefined) return conditionalCreate(req, ctx, type, body, presetId);
  const resource = prepare(req, ctx, { ...body, id: presetId } as Resource);
  await requireWrite(req, ctx, resource);
  const stored = await ctx.store.create(resource);
  return writeResponse(req, stored, 201);
}

async function conditionalCreate(req: FhirRequest, ctx: FhirContext, type: string, body: Resource, presetId?: string): Promise<FhirResponse> {
  const criteria = ifNoneExistCriteria(req.headers.ifNoneExist!);
  if (!criteria.length) throw badRequest('If-None-Exist has no search criteria');
  // SMART v2 letters: the criteria run as a search (s); the match comes back only to a reader (r).
  requireScope(req, ctx, type, 'search');
  return ctx.store.transaction(async (store) => {
    const txCtx = { ...ctx, store };
    // Serialize concurrent conditional creates with the same criteria (otherwise both could create).
    await store.lock(conditionalLock(type, criteria));
    store.readThrough(type);
    const matches = await runSearch(req, txCtx, type, criteria, 2);
    if (matches.length > 1) throw preconditionFailed(`If-None-Exist matched ${matches.length} ${type} resources`);
    if (matches.length === 1) {
      const existing = matches[0];
      const headers = { ...versionHeaders(existing), Location: `${req.baseUrl}/${type}/${existing.id}` };
      return hasScope(req, ctx, type, 'read') ? { status: 200, body: existing, headers } : versionAnswer(200, existing, headers);
    }
    const resource = prepare(req, ctx, { ...body, id: presetId } as Resource);
    await requireWrite(req, ctx, resource, store);
    return writeResponse(req, await store.create(resource), 201);
  });
}

/**
 * A conditional update matching nothing creates; the id it brings must be new ("no matches, id provided and already
 * exist: 409", R5 http.html#cond-update). Otherwise criteria the caller's access hides everything from would overwrite
 * a resource the caller may not write, by naming its id in the body.
 */
async function requireNewId(store: FhirStore, type: string, id: string | undefined): Promise<void> {
  if (id && (await store.find(type, id))) throw conflict(`No ${type} the caller may see matches the criteria, and ${type}/${id} exists: a conditional update does not overwrite a resource its criteria do not match`);
}

export async function updateResource(req: FhirRequest, ctx: FhirContext, type: string, id: string): Promise<FhirResponse> {
  requireScope(req, ctx, type, 'update');
  refuseChange(type);
  const body = requireBody(req, type);
  checkId(id);
  if (body.id !== id) throw badRequest(`Resource id '${body.id ?? ''}' does not match the URL id '${id}'`, `${type}.id`);
  return ctx.store.transaction(async (store) => {
    const existing = await store.find(type, id);
    if (existing) await requireWrite(req, ctx, existing, store);
    else requireScope(req, ctx, type, 'create'); // update-as-create creates (SMART v2: c)
    const resource = prepare(req, ctx, body);
    await requireWrite(req, ctx, resource, store);
    const { resource: stored, created } = await putVersion(req, store, resource, existing, `${type}/${id}`);
    return writeResponse(req, stored, created ? 201 : 200);
  });
}

export async function conditionalUpdate(req: FhirRequest, ctx: FhirContext, type: string): Promise<FhirResponse> {
  requireScope(req, ctx, type, 'update');
  refuseChange(type);
  const body = requireBody(req, type);
  if (!req.query.length) throw methodNotAllowed(`PUT on ${type} needs an id or search criteria`);
  requireScope(req, ctx, type, 'search'); // the criteria run as a search
  return ctx.store.transaction(async (store) => {
    await store.lock(conditionalLock(type, req.query));
    store.readThrough(type);
    const matches = await runSearch(req, { ...ctx, store }, type, req.query, 2);
    if (matches.length > 1) throw preconditionFailed(`Conditional update matched ${matches.length} ${type} resources`);
    const target = matches[0];
    if (target && body.id && body.id !== target.id) throw badRequest(`Resource id '${body.id}' does not match the matched resource ${type}/${target.id}`, `${type}.id`);
    if (target) await requireWrite(req, ctx, target, store);
    else {
      requireScope(req, ctx, type, 'create');
      await requireNewId(store, type, body.id);
    }
    // In a transaction, a create takes the id references to this entry were given (bundle.ts updateTarget).
    const resource = prepare(req, ctx, { ...body, id: target?.id ?? body.id ?? req.presetId } as Resource);
    await requireWrite(req, ctx, resource, store);
    const { resource: stored, created } = await putVersion(req, store, resource, target, `the ${type} matched`);
    return writeResponse(req, stored, created ? 201 : 200);
  });
}

/** The lock serializing conditional writes with the same criteria: two that match nothing would otherwise both create. */
export const conditionalLock = (type: string, criteria: [string, string][]): string => `${type}?${new URLSearchParams(criteria).toString()}`;

/** The search criteria of an If-None-Exist header (blank: none). */
export const ifNoneExistCriteria = (header: string): [string, string][] => [...new URLSearchParams(header.trim()).entries()];

export async function patchResource(req: FhirRequest, ctx: FhirContext, type: string, id: string): Promise<FhirResponse> {
  requireScope(req, ctx, type, 'patch');
  refuseChange(type);
  checkId(id);
  const ops = parsePatch(req);
  return ctx.store.transaction(async (store) => {
    const current = await readVisible(req, ctx, store, type, id);
    await requireWrite(req, ctx, current, store);
    writePreconditions(req, current, `${type}/${id}`);
    let patched: Resource;
    try {
      patched = jsonpatch.applyPatch(structuredClone(current), ops, true, false).newDocument;
    } catch (err) {
      const message = err instanceof Error ? err.message.split('\n')[0] : 'invalid patch';
      throw new FhirError(422, issuesOutcome([{ severity: 'error', code: 'processing', diagnostics: `JSON Patch failed: ${message}` }]));
    }
    // A patch of the root (path "") may replace the whole document with anything (found by the fuzz suite).
    if (typeof patched !== 'object' || patched === null || Array.isArray(patched) || patched.resourceType !== type || patched.id !== id) {
      throw unprocessableIssues([{ severity: 'error', code: 'processing', diagnostics: 'A patch may not replace the resource or change its resourceType or id' }]);
    }
    const resource = prepare(req, ctx, patched);
    await requireWrite(req, ctx, resource, store);
    const { resource: stored } = await store.update(resource, current.meta?.versionId);
    return writeResponse(req, stored, 200);
  });
}

/**
 * DELETE of an id (R4 http.html#delete): what does not exist, never did or is already deleted, is answered as a
 * deletion is ("or if the resource does not exist at all, the server should return either a 200 OK ... or a
 * 204"), writing nothing; and so is a resource the caller may neither read nor use (`concealed`), which stays.
 */
export async function deleteResource(req: FhirRequest, ctx: FhirContext, type: string, id: string): Promise<FhirResponse> {
  requireScope(req, ctx, type, 'delete');
  refuseChange(type);
  checkId(id);
  return ctx.store.transaction(async (store) => {
    const stored = await store.find(type, id);
    const judged = stored ?? (await lastStoredVersion(store, type, id));
    const hidden = judged !== undefined && (!isVisible(req, ctx, judged) || !(await aboutVisiblePatient(req, ctx, judged, store)));
    const existing = hidden ? undefined : stored;
    if (existing) await requireWrite(req, ctx, existing, store);
    const version = concealing(hidden, () => writePreconditions(req, existing, `${type}/${id}`));
    if (hidden) return { status: 204, concealsRefusal: true };
    if (existing) await store.delete(type, id, version);
    return { status: 204 };
  });
}

/** A step answered as for a missing id: when `hidden`, what it refuses is recorded as the refusal it hides. */
function concealing<T>(hidden: boolean, step: () => T): T {
  try {
    return step();
  } catch (err) {
    if (hidden && err instanceof FhirError) throw new FhirError(err.status, err.outcome, err.headers, true);
    throw err;
  }
}

export async function conditionalDelete(req: FhirRequest, ctx: FhirContext, type: string): Promise<FhirResponse> {
  requireScope(req, ctx, type, 'delete');
  refuseChange(type);
  if (!req.query.length) throw methodNotAllowed(`DELETE on ${type} needs an id or search criteria`);
  return ctx.store.transaction(async (store) => {
    store.readThrough(type);
    const matches = await runSearch(req, { ...ctx, store }, type, req.query, 2);
    if (matches.length > 1) throw preconditionFailed(`Conditional delete matched ${matches.length} ${type} resources`);
    const target = matches[0];
    if (target) await requireWrite(req, ctx, target, store);
    const version = writePreconditions(req, target, `the ${type} matched`);
    if (target) await store.delete(type, target.id!, version);
    return { status: 204 };
  });
}

/** A write's checks on a resource it touches, before and after: the caller's compartment and patients, and a case's records. */
async function requireWrite(req: FhirRequest, ctx: FhirContext, resource: Resource, store: FhirStore = ctx.store): Promise<void> {
  requireAccess(req, ctx, resource);
  requireCaseRecordWrite(req, resource);
  await requireAboutVisiblePatient(req, ctx, resource, store);
}

function parsePatch(req: FhirRequest): Operation[] {
  if (!req.headers.contentType?.includes(JSON_PATCH)) {
    throw new FhirError(415, issuesOutcome([{ severity: 'error', code: 'not-supported', diagnostics: 'PATCH needs Content-Type application/json-patch+json' }]));
  }
  const ops = req.body;
  if (!Array.isArray(ops)) throw badRequest('A JSON Patch body is an array of operations');
  const error = jsonpatch.validate(ops as Operation[]);
  if (error) throw badRequest(`Invalid JSON Patch: ${error.name}${error.index !== undefined ? ` at operation ${error.index}` : ''}`);
  return ops as Operation[];
}

/**
 * An If-Match or If-None-Match value (RFC 7232 §3.1-3.2): `*`, or the versions its entity-tags name. Tags
 * compare weakly (`"3"` and `W/"3"` both name version 3), and an unquoted `3` is taken as clients send it.
 */
function entityTags(raw: string, header: string): '*' | string[] {
  if (raw.trim() === '*') return '*';
  const tags = raw.split(',').map((tag) => tag.trim()).filter(Boolean);
  const versions = tags.flatMap((tag) => ENTITY_TAG.exec(tag)?.[1] ?? []);
  if (!tags.length || versions.length !== tags.length) throw badRequest(`Invalid ${header} header '${raw.slice(0, 100)}'`);
  return versions;
}

const ENTITY_TAG = /^(?:W\/)?"?([^",\s]+)"?$/;

/** `*` matches any current representation; a list, any version it names. */
const tagsMatch = (tags: '*' | string[], version: string | undefined): boolean => tags === '*' || (version !== undefined && tags.includes(version));

/**
 * If-Match on a write (RFC 7232 §3.1): undefined without it; else the current version it matched, which
 * the store checks again as it writes (a concurrent write in between is a 412 too). Where nothing exists,
 * nothing matches, `*` included: 412.
 */
function expectedVersion(req: FhirRequest, current: Resource | undefined, what: string): string | undefined {
  const raw = req.headers.ifMatch;
  if (raw === undefined) return undefined;
  const tags = entityTags(raw, 'If-Match');
  if (!current) throw preconditionFailed(`If-Match ${raw.slice(0, 100)}: ${what} does not exist`);
  const version = current.meta?.versionId;
  if (!tagsMatch(tags, version)) throw preconditionFailed(`If-Match ${raw.slice(0, 100)} does not name the current version of ${what} (${version})`);
  return version;
}

/**
 * The preconditions of a PUT, PATCH or DELETE on what it found (RFC 9110 §13.2.2: If-Match, then If-None-Match), and
 * the version the store must still find as it writes (undefined: any). If-None-Match (§13.1.2; R4 defines it for reads
 * only, so this is HTTP's meaning) is false where a tag names the current version or `*` meets one: 412, nothing
 * written. Where it holds, the version found is the one written over, so that a change meanwhile is a 412 too.
 */
function writePreconditions(req: FhirRequest, current: Resource | undefined, what: string): string | undefined {
  const version = expectedVersion(req, current, what);
  const raw = req.headers.ifNoneMatch;
  if (raw === undefined) return version;
  const tags = entityTags(raw, 'If-None-Match');
  if (current && tagsMatch(tags, current.meta?.versionId)) throw preconditionFailed(`If-None-Match ${raw.slice(0, 100)}: ${what} exists (version ${current.meta?.versionId})`);
  return version ?? current?.meta?.versionId;
}

/**
 * The write of a PUT under its preconditions (`writePreconditions`). With `If-None-Match: *` and nothing there, a
 * create, so that a resource another request created meanwhile is refused, not overwritten.
 */
async function putVersion(req: FhirRequest, store: FhirStore, resource: Resource, current: Resource | undefined, what: string): Promise<{ resource: Resource; created: boolean }> {
  const version = writePreconditions(req, current, what);
  if (!current && req.headers.ifNoneMatch?.trim() === '*') return { resource: await createAbsent(store, resource, what), created: true };
  return store.update(resource, version);
}

/** A create for `If-None-Match: *`: the id taken meanwhile (409 duplicate) is the precondition failing. */
async function createAbsent(store: FhirStore, resource: Resource, what: string): Promise<Resource> {
  try {
    return await store.create(resource);
  } catch (err) {
    if (err instanceof FhirError && err.status === 409 && err.outcome.issue[0]?.code === 'duplicate') throw preconditionFailed(`If-None-Match *: ${what} was created meanwhile`);
    throw err;
  }
}

/** `If-Match: W/"3"` → '3', for an operation that checks one version itself; `*` asks for none to be checked. */
export function ifMatchVersion(req: FhirRequest): string | undefined {
  const raw = req.headers.ifMatch;
  if (raw === undefined) return undefined;
  const tags = entityTags(raw, 'If-Match');
  if (tags === '*') return undefined;
  if (tags.length > 1) throw badRequest('If-Match names one version here', 'If-Match');
  return tags[0];
}

function refuseReadOnly(type: string): void {
  if (isReadOnlyType(type)) throw methodNotAllowed(`${type} resources are published by the server and read-only`);
}

/** Update, patch and delete: refused for read-only types and for the append-only audit trail. */
function refuseChange(type: string): void {
  refuseReadOnly(type);
  if (isAppendOnlyType(type)) throw appendOnlyRefusal(type);
}

function checkId(id: string): string {
  if (!ID_RE.test(id)) throw badRequest(`Invalid resource id '${id.slice(0, 80)}'`);
  return id;
}

export function requireBody(req: FhirRequest, type: string): Resource {
  const body = req.body;
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw badRequest(`The body must be a ${type} resource`);
  const resourceType = (body as { resourceType?: unknown }).resourceType;
  if (resourceType !== type) throw badRequest(`resourceType '${String(resourceType)}' does not match the URL type '${type}'`, 'resourceType');
  const id = (body as { id?: unknown }).id;
  if (id !== undefined && (typeof id !== 'string' || !ID_RE.test(id))) throw badRequest('Resource.id must be a FHIR id (1-64 of A-Z a-z 0-9 - .)', `${type}.id`);
  return body as Resource;
}

/** Strips server-owned meta and validates; throws 422 with every issue found. */
export function prepare(req: FhirRequest, ctx: FhirContext, resource: Resource): Resource {
  const { versionId: _v, lastUpdated: _l, ...meta } = resource.meta ?? {};
  const clean = { ...resource, meta: Object.keys(meta).length ? meta : undefined } as Resource;
  if (clean.meta === undefined) delete clean.meta;
  if (clean.id === undefined) delete clean.id;
  relativizeOwnReferences(clean, req.baseUrl);
  refuseBundleLocalReferences(clean);
  requireValid(ctx, clean);
  return clean;
}

/**
 * A `urn:uuid:` or `urn:oid:` reference means something only inside a Bundle (R4 references.html#literal), and a
 * conditional one (`Patient?identifier=…`) only in a transaction. A transaction rewrites both before its entries
 * write, so one reaching a write names nothing: sent in a plain request, or in a batch, whose entries may not
 * depend on each other (R4 http.html#brules).
 */
function refuseBundleLocalReferences(resource: Resource): void {
  const found = referencesIn(resource, resource.resourceType).filter(([, ref]) => isBundleLocal(ref) || isConditionalReference(ref));
  if (!found.length) return;
  const issues = found.map(([path, ref]): OperationOutcomeIssue => ({
    severity: 'error',
    code: 'invalid',
    diagnostics: isBundleLocal(ref)
      ? `Reference '${ref.slice(0, 100)}' names the entry of a Bundle with that fullUrl: outside a transaction Bundle it names nothing`
      : `Reference '${ref.slice(0, 100)}' is a conditional reference, resolved only inside a transaction Bundle`,
    expression: [`${path}.reference`],
  }));
  throw new FhirError(400, issuesOutcome(issues));
}

/** Checks a resource (with whatever it contains or bundles) against R4 and, unless told not to, the profiles it claims; throws 422 with every error found. */
export function requireValid(ctx: FhirContext, resource: Resource, options?: ValidationOptions): void {
  const errors = validationErrors(ctx, resource, options);
  if (errors.length) throw unprocessableIssues(errors);
}

/** What an operation is sent is checked against R4, not the profiles it claims: the operation completes what it stores, which then carries ours. */
export const OPERATION_INPUT: ValidationOptions = { claimedProfiles: false };

export function validationErrors(ctx: FhirContext, resource: Resource, options?: ValidationOptions): OperationOutcomeIssue[] {
  return (ctx.validator?.validate(resource, options) ?? []).filter((i: OperationOutcomeIssue) => i.severity === 'error' || i.severity === 'fatal');
}

