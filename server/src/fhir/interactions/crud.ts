import type { OperationOutcomeIssue, Resource } from 'fhir/r4.js';
import jsonpatch, { type Operation } from 'fast-json-patch';
import type { FhirContext, ValidationOptions } from '../context.js';
import { requireAccess, requireScope } from '../guard.js';
import { badRequest, FhirError, issuesOutcome, methodNotAllowed, notFound, preconditionFailed, unprocessableIssues } from '../outcomes.js';
import type { FhirRequest, FhirResponse } from '../request.js';
import { ID_RE, versionHeaders, writeResponse } from '../responses.js';
import { appendOnlyRefusal, isAppendOnlyType, isReadOnlyType } from '../resourceTypes.js';
import { runSearch } from './search.js';

export async function readResource(req: FhirRequest, ctx: FhirContext, type: string, id: string): Promise<FhirResponse> {
  requireScope(req, ctx, type, 'read');
  const resource = await ctx.store.read(type, checkId(id));
  requireAccess(req, ctx, resource);
  if (req.headers.ifNoneMatch && req.headers.ifNoneMatch === versionHeaders(resource).ETag) return { status: 304, headers: versionHeaders(resource) };
  if (req.headers.ifModifiedSince && resource.meta?.lastUpdated) {
    const since = Date.parse(req.headers.ifModifiedSince);
    if (!Number.isNaN(since) && Date.parse(resource.meta.lastUpdated) <= since + 999) return { status: 304, headers: versionHeaders(resource) };
  }
  return { status: 200, body: resource, headers: versionHeaders(resource) };
}

export async function vreadResource(req: FhirRequest, ctx: FhirContext, type: string, id: string, vid: string): Promise<FhirResponse> {
  requireScope(req, ctx, type, 'vread');
  const resource = await ctx.store.vread(type, checkId(id), vid);
  requireAccess(req, ctx, resource);
  return { status: 200, body: resource, headers: versionHeaders(resource) };
}

export async function createResource(req: FhirRequest, ctx: FhirContext, type: string, presetId?: string): Promise<FhirResponse> {
  requireScope(req, ctx, type, 'create');
  refuseReadOnly(type);
  const body = requireBody(req, type);
  const intercepted = await ctx.createInterceptors?.[type]?.(req, ctx, body);
  if (intercepted) return intercepted;
  if (req.headers.ifNoneExist) return conditionalCreate(req, ctx, type, body, presetId);
  const resource = prepare(ctx, { ...body, id: presetId } as Resource);
  requireAccess(req, ctx, resource);
  const stored = await ctx.store.create(resource);
  return writeResponse(req, stored, 201);
}

async function conditionalCreate(req: FhirRequest, ctx: FhirContext, type: string, body: Resource, presetId?: string): Promise<FhirResponse> {
  const criteria = [...new URLSearchParams(req.headers.ifNoneExist!).entries()];
  if (!criteria.length) throw badRequest('If-None-Exist has no search criteria');
  return ctx.store.transaction(async (store) => {
    const txCtx = { ...ctx, store };
    // Serialize concurrent conditional creates with the same criteria (otherwise both could create).
    await store.lock(`${type}?${req.headers.ifNoneExist}`);
    store.readThrough(type);
    const matches = await runSearch(req, txCtx, type, criteria, 2);
    if (matches.length > 1) throw preconditionFailed(`If-None-Exist matched ${matches.length} ${type} resources`);
    if (matches.length === 1) {
      const existing = matches[0];
      return { status: 200, body: existing, headers: { ...versionHeaders(existing), Location: `${req.baseUrl}/${type}/${existing.id}` } };
    }
    const resource = prepare(ctx, { ...body, id: presetId } as Resource);
    requireAccess(req, ctx, resource);
    return writeResponse(req, await store.create(resource), 201);
  });
}

export async function updateResource(req: FhirRequest, ctx: FhirContext, type: string, id: string): Promise<FhirResponse> {
  requireScope(req, ctx, type, 'update');
  refuseChange(type);
  const body = requireBody(req, type);
  checkId(id);
  if (body.id !== id) throw badRequest(`Resource id '${body.id ?? ''}' does not match the URL id '${id}'`, `${type}.id`);
  return ctx.store.transaction(async (store) => {
    const existing = await store.find(type, id);
    if (existing) requireAccess(req, ctx, existing);
    const resource = prepare(ctx, body);
    requireAccess(req, ctx, resource);
    const { resource: stored, created } = await store.update(resource, ifMatchVersion(req));
    return writeResponse(req, stored, created ? 201 : 200);
  });
}

export async function conditionalUpdate(req: FhirRequest, ctx: FhirContext, type: string): Promise<FhirResponse> {
  requireScope(req, ctx, type, 'update');
  refuseChange(type);
  const body = requireBody(req, type);
  if (!req.query.length) throw methodNotAllowed(`PUT on ${type} needs an id or search criteria`);
  return ctx.store.transaction(async (store) => {
    await store.lock(`${type}?${new URLSearchParams(req.query).toString()}`);
    store.readThrough(type);
    const matches = await runSearch(req, { ...ctx, store }, type, req.query, 2);
    if (matches.length > 1) throw preconditionFailed(`Conditional update matched ${matches.length} ${type} resources`);
    const target = matches[0];
    if (target && body.id && body.id !== target.id) throw badRequest(`Resource id '${body.id}' does not match the matched resource ${type}/${target.id}`, `${type}.id`);
    if (target) requireAccess(req, ctx, target);
    const resource = prepare(ctx, { ...body, id: target?.id ?? body.id } as Resource);
    requireAccess(req, ctx, resource);
    const { resource: stored, created } = await store.update(resource, ifMatchVersion(req));
    return writeResponse(req, stored, created ? 201 : 200);
  });
}

export async function patchResource(req: FhirRequest, ctx: FhirContext, type: string, id: string): Promise<FhirResponse> {
  requireScope(req, ctx, type, 'patch');
  refuseChange(type);
  checkId(id);
  const ops = parsePatch(req);
  return ctx.store.transaction(async (store) => {
    const current = await store.read(type, id);
    requireAccess(req, ctx, current);
    const expected = ifMatchVersion(req);
    if (expected !== undefined && current.meta?.versionId !== expected) {
      throw preconditionFailed(`Version ${expected} of ${type}/${id} is not the current version (current: ${current.meta?.versionId})`);
    }
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
    const resource = prepare(ctx, patched);
    requireAccess(req, ctx, resource);
    const { resource: stored } = await store.update(resource, current.meta?.versionId);
    return writeResponse(req, stored, 200);
  });
}

export async function deleteResource(req: FhirRequest, ctx: FhirContext, type: string, id: string): Promise<FhirResponse> {
  requireScope(req, ctx, type, 'delete');
  refuseChange(type);
  checkId(id);
  return ctx.store.transaction(async (store) => {
    const existing = await store.find(type, id);
    if (existing) requireAccess(req, ctx, existing);
    const deleted = await store.delete(type, id, ifMatchVersion(req));
    if (!deleted && !existing) {
      // Deleting what is already deleted succeeds (idempotent); what never existed is 404.
      const history = await store.history({ resourceType: type, id, count: 1, offset: 0 });
      if (!history.length) throw notFound(`${type}/${id} not found`);
    }
    return { status: 204 };
  });
}

export async function conditionalDelete(req: FhirRequest, ctx: FhirContext, type: string): Promise<FhirResponse> {
  requireScope(req, ctx, type, 'delete');
  refuseChange(type);
  if (!req.query.length) throw methodNotAllowed(`DELETE on ${type} needs an id or search criteria`);
  return ctx.store.transaction(async (store) => {
    store.readThrough(type);
    const matches = await runSearch(req, { ...ctx, store }, type, req.query, 2);
    if (matches.length > 1) throw preconditionFailed(`Conditional delete matched ${matches.length} ${type} resources`);
    if (matches[0]) {
      requireAccess(req, ctx, matches[0]);
      await store.delete(type, matches[0].id!);
    }
    return { status: 204 };
  });
}

function parsePatch(req: FhirRequest): Operation[] {
  if (!req.headers.contentType?.includes('json-patch+json')) {
    throw new FhirError(415, issuesOutcome([{ severity: 'error', code: 'not-supported', diagnostics: 'PATCH needs Content-Type application/json-patch+json' }]));
  }
  const ops = req.body;
  if (!Array.isArray(ops)) throw badRequest('A JSON Patch body is an array of operations');
  const error = jsonpatch.validate(ops as Operation[]);
  if (error) throw badRequest(`Invalid JSON Patch: ${error.name}${error.index !== undefined ? ` at operation ${error.index}` : ''}`);
  return ops as Operation[];
}

/** `If-Match: W/"3"` → '3'. */
export function ifMatchVersion(req: FhirRequest): string | undefined {
  const raw = req.headers.ifMatch;
  if (raw === undefined) return undefined;
  const m = /^(?:W\/)?"?([^"]+)"?$/.exec(raw.trim());
  if (!m) throw badRequest(`Invalid If-Match header '${raw}'`);
  return m[1];
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
export function prepare(ctx: FhirContext, resource: Resource): Resource {
  const { versionId: _v, lastUpdated: _l, ...meta } = resource.meta ?? {};
  const clean = { ...resource, meta: Object.keys(meta).length ? meta : undefined } as Resource;
  if (clean.meta === undefined) delete clean.meta;
  if (clean.id === undefined) delete clean.id;
  requireValid(ctx, clean);
  return clean;
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

