import { randomUUID } from 'node:crypto';
import type { Bundle, BundleEntry, OperationOutcome, Resource } from 'fhir/r4.js';
import type { FhirContext } from '../context.js';
import { badRequest, FhirError, normalizeError, preconditionFailed } from '../outcomes.js';
import type { FhirRequest, FhirResponse, HttpMethod } from '../request.js';
import { collectReferences, rewriteReferences } from '../references.js';
import { rebase } from '../resourceValidator.js';
import { isSupportedType } from '../resourceTypes.js';
import { runSearch } from './search.js';

export type Dispatch = (req: FhirRequest, ctx: FhirContext) => Promise<FhirResponse>;

/** A Bundle entry and its place in the Bundle. */
type Ordered = { entry: BundleEntry; index: number };

const METHOD_ORDER: Record<string, number> = { DELETE: 0, POST: 1, PUT: 2, PATCH: 3, GET: 4, HEAD: 4 };

/**
 * POST [base] with a batch or transaction Bundle (3.1.0.11). Batch entries are independent requests,
 * each answered and audited on its own (`handleEntry`); a transaction is one request, audited once.
 */
export async function processBundle(req: FhirRequest, ctx: FhirContext, dispatch: Dispatch, handleEntry: Dispatch): Promise<FhirResponse> {
  const bundle = req.body as Bundle | undefined;
  if (!bundle || bundle.resourceType !== 'Bundle') throw badRequest('POST to the base needs a Bundle', 'resourceType');
  if (bundle.type !== 'batch' && bundle.type !== 'transaction') throw badRequest(`Bundle.type must be batch or transaction, not '${String(bundle.type)}'`, 'Bundle.type');
  const entries = bundle.entry ?? [];
  if (entries.length > ctx.limits.maxBundleEntries) throw badRequest(`A Bundle may hold at most ${ctx.limits.maxBundleEntries} entries`);
  entries.forEach((e, i) => checkEntry(e, i));
  if (bundle.type === 'batch') return { status: 200, body: await batch(req, ctx, entries, handleEntry) };
  return { status: 200, body: await ctx.store.transaction((store) => transaction(req, { ...ctx, store }, entries, dispatch)) };
}

function checkEntry(entry: BundleEntry, index: number): void {
  const method = entry.request?.method;
  if (!method || !entry.request?.url) throw badRequest(`Bundle.entry[${index}].request needs method and url`, `Bundle.entry[${index}].request`);
  if (!(method in METHOD_ORDER)) throw badRequest(`Unsupported method '${method}' in Bundle.entry[${index}]`, `Bundle.entry[${index}].request.method`);
  if ((method === 'POST' || method === 'PUT') && !entry.resource) throw badRequest(`Bundle.entry[${index}] needs a resource for ${method}`, `Bundle.entry[${index}].resource`);
}

async function batch(req: FhirRequest, ctx: FhirContext, entries: BundleEntry[], handleEntry: Dispatch): Promise<Bundle> {
  const responses: BundleEntry[] = [];
  for (const entry of entries) {
    let entryReq: FhirRequest;
    try {
      entryReq = entryRequest(req, entry);
    } catch (err) {
      const error = normalizeError(err);
      responses.push({ response: { status: String(error.status), outcome: error.outcome } });
      continue;
    }
    responses.push(responseEntry(await handleEntry(entryReq, ctx)));
  }
  return { resourceType: 'Bundle', type: 'batch-response', entry: responses };
}

/**
 * All entries in one database transaction: any failure throws, so nothing of the Bundle is stored.
 * `urn:uuid:` fullUrls are given server ids first, and references to them rewritten, so entries
 * may refer to each other in any order.
 */
async function transaction(req: FhirRequest, ctx: FhirContext, entries: BundleEntry[], dispatch: Dispatch): Promise<Bundle> {
  const ids = new Map<string, string>();
  const order = entries
    .map((entry, index) => ({ entry, index }))
    .sort((a, b) => METHOD_ORDER[a.entry.request!.method] - METHOD_ORDER[b.entry.request!.method] || conditionalFirst(a.entry, b.entry));
  for (const { entry } of order) assignId(entry, ids);
  const responses: BundleEntry[] = new Array(entries.length);
  const run = async ({ entry, index }: Ordered) => {
    try {
      const resolved = await resolveReferences(req, ctx, entry, ids);
      const response = await dispatch({ ...entryRequest(req, resolved), presetId: presetIdOf(resolved, ids) }, ctx);
      if (entry.fullUrl && response.body && entry.request!.method === 'POST') {
        ids.set(entry.fullUrl, `${response.body.resourceType}/${response.body.id}`);
      }
      responses[index] = responseEntry(response);
    } catch (err) {
      const error = normalizeError(err);
      throw new FhirError(error.status, prefixOutcome(error.outcome, index, entry.resource), error.headers);
    }
  };
  // Plain creates next to each other run together, so the store writes them in one statement.
  for (const group of groupPlainCreates(order, ctx)) {
    const settled = await Promise.allSettled(group.map(run));
    const failure = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failure) throw failure.reason;
  }
  return { resourceType: 'Bundle', type: 'transaction-response', entry: responses };
}

/** Consecutive plain creates form one group; every other entry is a group of its own. */
function groupPlainCreates(order: Ordered[], ctx: FhirContext): Ordered[][] {
  const groups: Ordered[][] = [];
  let previousPlain = false;
  for (const item of order) {
    const plain = isPlainCreate(item.entry, ctx);
    if (plain && previousPlain) groups.at(-1)!.push(item);
    else groups.push([item]);
    previousPlain = plain;
  }
  return groups;
}

/**
 * A POST to a bare resource type with no If-None-Exist, no create interceptor and no conditional
 * reference: it neither searches nor depends on what the entries beside it write.
 */
function isPlainCreate(entry: BundleEntry, ctx: FhirContext): boolean {
  const { method, url, ifNoneExist } = entry.request!;
  if (method !== 'POST' || ifNoneExist || !isSupportedType(url) || ctx.createInterceptors?.[url]) return false;
  return !collectReferences(entry.resource!).some((ref) => CONDITIONAL_REFERENCE.test(ref));
}

const CONDITIONAL_REFERENCE = /^[A-Z][A-Za-z]+\?/;

const conditionalFirst = (a: BundleEntry, b: BundleEntry) => Number(!a.request?.ifNoneExist) - Number(!b.request?.ifNoneExist);

function assignId(entry: BundleEntry, ids: Map<string, string>): void {
  const { fullUrl, resource, request } = entry;
  if (!fullUrl || !resource) return;
  if (request!.method === 'POST') ids.set(fullUrl, `${resource.resourceType}/${randomUUID()}`);
  else if (request!.method === 'PUT' && /^[A-Z][A-Za-z]+\/[A-Za-z0-9\-.]{1,64}$/.test(request!.url)) ids.set(fullUrl, request!.url);
}

function presetIdOf(entry: BundleEntry, ids: Map<string, string>): string | undefined {
  if (entry.request!.method !== 'POST' || !entry.fullUrl) return undefined;
  return ids.get(entry.fullUrl)?.split('/')[1];
}

/** Rewrites `urn:uuid:` and conditional (`Type?query`) references inside the entry's resource. */
async function resolveReferences(req: FhirRequest, ctx: FhirContext, entry: BundleEntry, ids: Map<string, string>): Promise<BundleEntry> {
  if (!entry.resource) return { ...entry, request: { ...entry.request!, url: ids.get(entry.request!.url) ?? entry.request!.url } };
  const conditional = new Map<string, string>();
  for (const ref of collectReferences(entry.resource)) {
    if (!CONDITIONAL_REFERENCE.test(ref) || conditional.has(ref)) continue;
    const [type, query] = ref.split('?', 2);
    const matches = await runSearch(req, ctx, type, [...new URLSearchParams(query).entries()], 2);
    if (matches.length !== 1) throw preconditionFailed(`Conditional reference '${ref}' matched ${matches.length} resources (needs exactly 1)`);
    conditional.set(ref, `${type}/${matches[0].id}`);
  }
  const resource = structuredClone(entry.resource);
  rewriteReferences(resource, (ref) => {
    if (ref.startsWith('urn:uuid:') || ref.startsWith('urn:oid:')) {
      const target = ids.get(ref);
      if (!target) throw badRequest(`Reference '${ref}' does not match any fullUrl in the Bundle`);
      return target;
    }
    return conditional.get(ref);
  });
  return { ...entry, resource };
}

function entryRequest(req: FhirRequest, entry: BundleEntry): FhirRequest {
  const request = entry.request!;
  const url = request.url.startsWith(req.baseUrl) ? request.url.slice(req.baseUrl.length) : request.url;
  const [path, query = ''] = url.replace(/^\//, '').split('?', 2);
  return {
    method: request.method as HttpMethod,
    path: path.split('/').filter(Boolean).map(decodeURIComponent),
    query: [...new URLSearchParams(query).entries()],
    body: entry.resource,
    headers: {
      ifMatch: request.ifMatch,
      ifNoneExist: request.ifNoneExist,
      ifNoneMatch: request.ifNoneMatch,
      ifModifiedSince: request.ifModifiedSince,
      prefer: req.headers.prefer,
      contentType: request.method === 'PATCH' ? 'application/json-patch+json' : 'application/fhir+json',
    },
    baseUrl: req.baseUrl,
    auth: req.auth,
    inBundle: true,
  };
}

function responseEntry(response: FhirResponse): BundleEntry {
  const headers = response.headers ?? {};
  const entry: BundleEntry = {
    response: {
      status: String(response.status),
      location: headers.Location,
      etag: headers.ETag,
      lastModified: headers['Last-Modified'] ? new Date(headers['Last-Modified']).toISOString() : undefined,
    },
  };
  if (response.body?.resourceType === 'OperationOutcome' && response.status >= 400) entry.response!.outcome = response.body;
  else if (response.body) {
    entry.resource = response.body;
    if (response.body.id) entry.fullUrl = `${response.body.resourceType}/${response.body.id}`;
  }
  return entry;
}

/** An entry's failure as the transaction's: its issues name the entry, and paths in its resource become paths in the Bundle. */
function prefixOutcome(o: OperationOutcome, index: number, resource: Resource | undefined): OperationOutcome {
  const carried = resource && { resource, path: `Bundle.entry[${index}].resource` };
  return {
    ...o,
    issue: o.issue.map((i) => ({
      ...i,
      diagnostics: `Bundle.entry[${index}]: ${i.diagnostics ?? ''}`,
      expression: i.expression && carried ? i.expression.map((e) => rebase(e, carried)) : (i.expression ?? [`Bundle.entry[${index}]`]),
    })),
  };
}
