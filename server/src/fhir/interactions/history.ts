import type { Bundle, BundleEntry } from 'fhir/r4.js';
import type { FhirContext } from '../context.js';
import { compartmentOf, mayAccess, requireAccess, requireScope } from '../guard.js';
import { badRequest } from '../outcomes.js';
import type { FhirRequest, FhirResponse } from '../request.js';
import { DEFAULT_COUNT, MAX_COUNT } from '../search/parse.js';
import { dateRange } from '../search/dates.js';

/** Instance, type and system history (3.1.0.11), newest first, with paging. */
export async function history(req: FhirRequest, ctx: FhirContext, type?: string, id?: string): Promise<FhirResponse> {
  if (type) requireScope(req, ctx, type, 'history');
  if (type && id) requireAccess(req, ctx, await ctx.store.read(type, id).catch(async (err) => {
    // A deleted resource still has a history; access is judged on its last stored version.
    const versions = await ctx.store.history({ resourceType: type, id, count: 2, offset: 0 });
    const last = versions.find((v) => v.resource)?.resource;
    if (!last) throw err;
    return last;
  }));
  const params = new Map(req.query);
  const count = Math.min(Number(params.get('_count') ?? DEFAULT_COUNT), MAX_COUNT);
  const offset = Number(params.get('_offset') ?? 0);
  if (!Number.isInteger(count) || count < 0 || !Number.isInteger(offset) || offset < 0) throw badRequest('_count and _offset must be non-negative integers');
  const since = params.get('_since') ? parseInstant('_since', params.get('_since')!) : undefined;
  const at = params.get('_at') ? parseInstant('_at', params.get('_at')!) : undefined;
  const versions = await ctx.store.history({ resourceType: type, id, since, at, count: count + 1, offset });
  const visible = versions.slice(0, count).filter((v) => {
    if (!v.resource) return !compartmentOf(req, ctx, v.resourceType) && (!req.auth || allowed(req, ctx, v.resourceType));
    return allowed(req, ctx, v.resourceType) && mayAccess(req, ctx, v.resource);
  });
  const path = [type, id, '_history'].filter(Boolean).join('/');
  const link = [{ relation: 'self', url: `${req.baseUrl}/${path}?_count=${count}&_offset=${offset}` }];
  if (versions.length > count) link.push({ relation: 'next', url: `${req.baseUrl}/${path}?_count=${count}&_offset=${offset + count}` });
  const bundle: Bundle = {
    resourceType: 'Bundle',
    type: 'history',
    timestamp: new Date().toISOString(),
    link,
    entry: visible.map((v): BundleEntry => ({
      fullUrl: `${req.baseUrl}/${v.resourceType}/${v.id}`,
      resource: v.resource,
      request: {
        method: v.deleted ? 'DELETE' : v.created ? 'POST' : 'PUT',
        url: v.created && !v.deleted ? v.resourceType : `${v.resourceType}/${v.id}`,
      },
      response: {
        status: v.deleted ? '204' : v.created ? '201' : '200',
        etag: `W/"${v.versionId}"`,
        lastModified: v.lastUpdated,
      },
    })),
  };
  if (type && id) bundle.total = undefined;
  return { status: 200, body: bundle };
}

function allowed(req: FhirRequest, ctx: FhirContext, type: string): boolean {
  try {
    requireScope(req, ctx, type, 'history');
    return true;
  } catch {
    return false;
  }
}

function parseInstant(name: string, value: string): Date {
  const range = dateRange(value);
  if (!range) throw badRequest(`Invalid ${name} '${value}'`, name);
  return range.lo;
}
