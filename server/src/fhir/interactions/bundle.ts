import { nonEmpty } from '../jsonRules.js';
import { randomUUID } from 'node:crypto';
import type { Binary, Bundle, BundleEntry, OperationOutcome, Resource } from 'fhir/r4.js';
import { z } from 'zod';
import type { FhirContext, Interaction } from '../context.js';
import { requireScope } from '../guard.js';
import { badRequest, FhirError, issuesOutcome, normalizeError, outcome, preconditionFailed, unsupportedMediaType } from '../outcomes.js';
import { type FhirRequest, type FhirResponse, JSON_PATCH } from '../request.js';
import { collectReferences, isBundleLocal, isConditionalReference, parseLiteral, relativeToBase, rewritePatchReferences, rewriteReferences } from '../references.js';
import { isResource, rebase } from '../resourceValidator.js';
import { isSupportedType } from '../resourceTypes.js';
import { conditionalLock, ifNoneExistCriteria } from './crud.js';
import { runSearch } from './search.js';

export type Dispatch = (req: FhirRequest, ctx: FhirContext) => Promise<FhirResponse>;

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;
type Method = (typeof METHODS)[number];

/** The order a transaction runs its entries in (3.1.0.11.2): deletes, creates, updates, reads. */
const METHOD_ORDER: Record<Method, number> = { DELETE: 0, POST: 1, PUT: 2, PATCH: 3, GET: 4, HEAD: 4 };

/** What a batch or transaction Bundle is before any entry runs (anything else is refused first: `checkBundle`); each entry is then checked on its own (`checkEntry`). */
const BundleShape = z.object({
  resourceType: z.literal('Bundle'),
  type: z.enum(['batch', 'transaction'], { error: (issue) => `Bundle.type must be batch or transaction${issue.input === undefined ? '' : `, not '${String(issue.input).slice(0, 40)}'`}` }),
  entry: z.array(z.looseObject({}, { error: 'A Bundle entry must be an object' })).optional(),
});

const optionalString = z.string().optional();

/** A Bundle entry the server can run: a request with a method and url, string headers, a resource if any. */
const EntryShape = z.object({
  fullUrl: optionalString,
  resource: z.custom<Resource>(isResource, { error: 'must be a resource (an object with a resourceType)' }).optional(),
  request: z.object({
    method: z.enum(METHODS),
    url: z.string().min(1),
    ifMatch: optionalString,
    ifNoneMatch: optionalString,
    ifNoneExist: optionalString,
    ifModifiedSince: optionalString,
  }),
});
type Entry = z.infer<typeof EntryShape>;

/** An entry and its place in the Bundle. */
type Ordered = { entry: Entry; index: number };

/**
 * POST [base] with a batch or transaction Bundle (3.1.0.11). Batch entries are independent requests,
 * each answered and audited on its own (`handleEntry`), a malformed one too; a transaction is one
 * request, audited once, and refused whole if any entry is malformed.
 */
export async function processBundle(req: FhirRequest, ctx: FhirContext, dispatch: Dispatch, handleEntry: Dispatch): Promise<FhirResponse> {
  if (req.inBundle) throw badRequest('A Bundle entry cannot be a batch or transaction itself', 'Bundle.entry.request.url');
  const bundle = checkBundle(req.body, ctx.limits.maxBundleEntries);
  const entries = bundle.entry ?? [];
  if (bundle.type === 'batch') return { status: 200, body: await batch(req, ctx, entries, handleEntry) };
  const checked = entries.map((entry, index) => checkEntry(entry, index));
  return ctx.store.transaction((store) => transaction(req, { ...ctx, store }, checked, dispatch));
}

function checkBundle(body: unknown, maxEntries: number): z.infer<typeof BundleShape> {
  // Anything but a Bundle is refused as such alone: its missing Bundle.type says nothing more.
  const type = isResource(body) ? body.resourceType : undefined;
  if (type !== 'Bundle') throw badRequest(`POST to the base takes a batch or transaction Bundle${type ? `, not a ${type.slice(0, 64)}` : ''}`, type ? 'Bundle.resourceType' : 'Bundle');
  const parsed = BundleShape.safeParse(body);
  if (!parsed.success) throw shapeError(parsed.error, []);
  if ((parsed.data.entry?.length ?? 0) > maxEntries) throw badRequest(`A Bundle may hold at most ${maxEntries} entries`, 'Bundle.entry');
  return parsed.data;
}

function checkEntry(raw: unknown, index: number): Entry {
  const parsed = EntryShape.safeParse(raw);
  if (!parsed.success) throw shapeError(parsed.error, ['entry', index]);
  const { method } = parsed.data.request;
  if ((method === 'POST' || method === 'PUT' || method === 'PATCH') && !parsed.data.resource) {
    throw badRequest(`Bundle.entry[${index}] needs a resource for ${method}`, `Bundle.entry[${index}].resource`);
  }
  return parsed.data;
}

/** Every problem zod found, each at its path in the Bundle (`Bundle.entry[0].request.url`). */
function shapeError(error: z.ZodError, at: PropertyKey[]): FhirError {
  return new FhirError(
    400,
    issuesOutcome(
      error.issues.map((issue) => {
        const path = bundlePath([...at, ...issue.path]);
        return { severity: 'error', code: 'invalid', diagnostics: `${path}: ${issue.message}`, expression: [path] };
      }),
    ),
  );
}

const bundlePath = (path: PropertyKey[]): string => path.reduce<string>((at, key) => (typeof key === 'number' ? `${at}[${key}]` : `${at}.${String(key)}`), 'Bundle');

async function batch(req: FhirRequest, ctx: FhirContext, entries: unknown[], handleEntry: Dispatch): Promise<Bundle> {
  const responses: BundleEntry[] = [];
  for (const [index, entry] of entries.entries()) responses.push(await batchEntry(req, ctx, entry, index, handleEntry));
  return responseBundle('batch-response', responses);
}

/** One batch entry: a malformed one is answered in its own response entry, as a failed request would be. */
async function batchEntry(req: FhirRequest, ctx: FhirContext, raw: unknown, index: number, handleEntry: Dispatch): Promise<BundleEntry> {
  let entryReq: FhirRequest;
  try {
    entryReq = entryRequest(req, checkEntry(raw, index));
  } catch (err) {
    const error = normalizeError(err);
    return { response: { status: String(error.status), outcome: error.outcome } };
  }
  const response = await handleEntry(entryReq, ctx);
  // HEAD asks for the headers alone, in a batch as over HTTP.
  return responseEntry(req.baseUrl, entryReq.method === 'HEAD' && response.status < 400 ? { ...response, body: undefined } : response);
}

/**
 * All entries in one database transaction: any failure throws, so nothing of the Bundle is stored.
 * `urn:uuid:` fullUrls are given server ids first, and references to them rewritten, so entries
 * may refer to each other in any order. A refusal an entry answers as a success (a DELETE's 204) is the
 * transaction's to record.
 */
async function transaction(req: FhirRequest, ctx: FhirContext, entries: Entry[], dispatch: Dispatch): Promise<FhirResponse> {
  const ids = new Map<string, string>();
  const order = entries
    .map((entry, index) => ({ entry, index }))
    .sort((a, b) => METHOD_ORDER[a.entry.request.method] - METHOD_ORDER[b.entry.request.method] || compareKeys(placeWithinMethod(a.entry), placeWithinMethod(b.entry)));
  for (const { entry } of order) assignId(entry, ids);
  // What creates are given, kept apart from `ids`, where a conditional create's fullUrl may come to name what it matched.
  const presets = new Map(ids);
  await lockConditionalCriteria(req, ctx, order);
  const identities = await resolveIdentities(req, ctx, order, ids);
  const claims = claimIdentities(req.baseUrl, entries, ids, identities);
  const responses: BundleEntry[] = new Array(entries.length);
  let concealsRefusal = false;
  const run = async ({ entry, index }: Ordered) => {
    const response = await atEntry(index, entry.resource, async () => {
      const resolved = await resolveReferences(req, ctx, entry, ids);
      return dispatch({ ...entryRequest(req, resolved), presetId: presetIdOf(entry, presets, identities[index]) }, ctx);
    });
    // A create interceptor (a ServiceRequest starting a workflow) chooses its own id: entries that run after it see it.
    if (entry.fullUrl && response.body && entry.request.method === 'POST') {
      ids.set(entry.fullUrl, `${response.body.resourceType}/${response.body.id}`);
    }
    concealsRefusal ||= response.concealsRefusal === true;
    claimWritten(claims, req.baseUrl, entry.request.method, index, response);
    requireWrittenAsResolved(req.baseUrl, entry, index, identities[index], response);
    responses[index] = responseEntry(req.baseUrl, response);
  };
  // Plain creates next to each other run together, so the store writes them in one statement.
  for (const group of groupPlainCreates(order, ctx)) {
    const settled = await Promise.allSettled(group.map(run));
    const failure = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failure) throw failure.reason;
  }
  return { status: 200, body: responseBundle('transaction-response', responses), concealsRefusal };
}

/** The answer to a Bundle; to one without entries, without `entry` (R4 JSON has no empty arrays). */
const responseBundle = (type: 'batch-response' | 'transaction-response', entries: BundleEntry[]): Bundle => ({ resourceType: 'Bundle', type, entry: nonEmpty(entries) });

/** One step of an entry: its failure is the transaction's, naming the entry, with paths in its resource as paths in the Bundle. */
async function atEntry<T>(index: number, resource: Resource | undefined, step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (err) {
    const error = normalizeError(err);
    throw new FhirError(error.status, prefixOutcome(error.outcome, index, resource), error.headers, error.concealsRefusal);
  }
}

/** Which entry names each identity. */
type Claims = Map<string, number>;

/** What the Bundle's DELETE entries delete, each with the first entry deleting it. */
type Deletes = Map<string, number>;

/**
 * What each conditional entry resolves to (`resolvedIdentity`), by entry index, resolved in the order entries run:
 * criteria see what the DELETE entries before them delete (R4 http.html#trules step 1). A conditional update's or
 * create's fullUrl names what it resolves to, so that references to it are rewritten like those to any entry
 * (step 5), whichever entry runs first.
 */
async function resolveIdentities(req: FhirRequest, ctx: FhirContext, order: Ordered[], ids: Map<string, string>): Promise<(string | undefined)[]> {
  const identities: (string | undefined)[] = new Array(order.length);
  const deletes: Deletes = new Map();
  for (const { entry, index } of order) {
    const { method } = entry.request;
    const preset = entry.fullUrl ? ids.get(entry.fullUrl) : undefined;
    const identity = await atEntry(index, entry.resource, () => resolvedIdentity(req, ctx, entry, deletes, preset));
    if (identity && entry.fullUrl && (method === 'PUT' || method === 'POST')) ids.set(entry.fullUrl, identity);
    const deleted = deletedBy(req.baseUrl, entry, ids, identity);
    if (deleted && !deletes.has(deleted)) deletes.set(deleted, index);
    identities[index] = identity;
  }
  return identities;
}

/**
 * The locks of the Bundle's conditional updates and creates, held to the end of the transaction so that a concurrent
 * conditional write with the same criteria waits and what they match stays as found. Taken together, in one order
 * every transaction shares: taken entry by entry, two transactions naming the same criteria in opposite orders
 * deadlocked (PostgreSQL aborted one, a 500).
 */
async function lockConditionalCriteria(req: FhirRequest, ctx: FhirContext, order: Ordered[]): Promise<void> {
  const keys = new Set<string>();
  for (const { entry, index } of order) {
    const search = await atEntry(index, entry.resource, async () => conditionalSearch(req, ctx, entry));
    if (search && search.interaction !== 'delete') keys.add(conditionalLock(search.type, search.criteria));
  }
  for (const key of [...keys].sort()) await ctx.store.lock(key);
}

/** What a DELETE entry deletes: what its criteria resolved to, or what its url names. */
function deletedBy(baseUrl: string, entry: Entry, ids: Map<string, string>, resolved: string | undefined): string | undefined {
  if (entry.request.method !== 'DELETE') return undefined;
  return resolved ?? parseLiteral(relativeTo(baseUrl, targetUrl(entry, ids)))?.join('/');
}

/**
 * "If any resource identities (including resolved identities from conditional update/delete) overlap in
 * steps 1-3, then the transaction SHALL fail" (R4 http.html#trules), and fullUrls are unique (bdl-7).
 * Checked before any entry runs: an entry's fullUrl, what its delete, create or update targets
 * (conditional criteria as written, in a canonical order), and what conditional criteria resolved to
 * (`resolveIdentities`). `claimWritten` checks what entries write as they run.
 */
function claimIdentities(baseUrl: string, entries: Entry[], ids: Map<string, string>, resolved: (string | undefined)[]): Claims {
  const claims: Claims = new Map();
  entries.forEach((entry, index) => {
    for (const identity of [...identitiesOf(baseUrl, entry, ids), resolved[index]]) if (identity) claim(claims, identity, index);
  });
  return claims;
}

function claim(claims: Claims, identity: string, index: number): void {
  const other = claims.get(identity);
  if (other !== undefined && other !== index) throw overlap(Math.min(other, index), Math.max(other, index), identity);
  claims.set(identity, index);
}

/**
 * The resource a create, update or patch wrote (its Location), claimed as it runs: criteria can match what
 * an earlier entry of this transaction wrote, which the stored data could not show beforehand. The
 * database transaction rolls back what ran before the refusal.
 */
function claimWritten(claims: Claims, baseUrl: string, method: Method, index: number, response: FhirResponse): void {
  if (method === 'GET' || method === 'HEAD' || method === 'DELETE') return;
  const written = writtenIdentity(baseUrl, response);
  if (written) claim(claims, written, index);
}

/** `Type/id` of what a write's Location names. */
function writtenIdentity(baseUrl: string, response: FhirResponse): string | undefined {
  const location = response.headers?.Location;
  const [type, id] = location ? relativeTo(baseUrl, location).split('/') : [];
  return parseLiteral(`${type}/${id}`)?.join('/');
}

/**
 * A conditional update or create names, as it runs, what its criteria resolved to before any entry ran, the
 * resource references to its fullUrl were rewritten to; a concurrent write that changed what they match is a
 * conflict, not references to a resource that does not exist.
 */
function requireWrittenAsResolved(baseUrl: string, entry: Entry, index: number, resolved: string | undefined, response: FhirResponse): void {
  const { method } = entry.request;
  const written = writtenIdentity(baseUrl, response);
  if ((method !== 'PUT' && method !== 'POST') || !resolved || !written || written === resolved) return;
  const at = `Bundle.entry[${index}]`;
  const diagnostics = `${at}: the conditional ${method === 'PUT' ? 'update' : 'create'} resolved to ${resolved} but came to ${written}: what its criteria match changed meanwhile`;
  throw new FhirError(409, outcome('error', 'conflict', diagnostics, [at]));
}

function identitiesOf(baseUrl: string, entry: Entry, ids: Map<string, string>): string[] {
  const identities = entry.fullUrl ? [relativeTo(baseUrl, entry.fullUrl)] : [];
  const { method, ifNoneExist } = entry.request;
  const url = relativeTo(baseUrl, targetUrl(entry, ids));
  if (method === 'PUT' || method === 'PATCH' || method === 'DELETE') identities.push(canonicalTarget(url));
  else if (method === 'POST' && ifNoneExist) identities.push(canonicalTarget(`${url}?${ifNoneExist}`));
  return identities;
}

const relativeTo = (baseUrl: string, url: string): string => (url === baseUrl ? '' : relativeToBase(baseUrl, url)).replace(/^\//, '');

/** `Patient?b=2&a=1` and `Patient?a=1&b=%32` name the same criteria. */
function canonicalTarget(url: string): string {
  const [path, query] = url.split('?', 2);
  if (query === undefined) return path;
  const params = new URLSearchParams(query);
  params.sort();
  return `${path}?${params.toString()}`;
}

function overlap(first: number, second: number, identity: string): FhirError {
  const entries = [`Bundle.entry[${first}]`, `Bundle.entry[${second}]`];
  return new FhirError(
    400,
    outcome('error', 'invalid', `${entries.join(' and ')} both name ${identity}: a transaction may not name a resource twice (R4 http.html#trules, bdl-7)`, entries),
  );
}

/**
 * What a conditional delete, update or create (If-None-Exist) finds, as `Type/id`, in what is stored less what
 * `deletes` deletes: its one match, else what it creates (`updateTarget`; a create, its `preset`). Criteria whose
 * only matches the DELETE entries delete name one of those, which that DELETE entry names too: the transaction
 * fails (400, `claimIdentities`) rather than recreate what it deletes. A delete or create matching several names
 * nothing: the entry fails on its own (412).
 */
async function resolvedIdentity(req: FhirRequest, ctx: FhirContext, entry: Entry, deletes: Deletes, preset: string | undefined): Promise<string | undefined> {
  const search = conditionalSearch(req, ctx, entry);
  if (!search) return undefined;
  const { type, request, interaction } = search;
  requireScope(request, ctx, type, interaction);
  requireScope(request, ctx, type, 'search');
  ctx.store.readThrough(type);
  const { left, deleted } = await matchesAfterDeletes(ctx, search, deletes);
  if (!left.length && deleted) return deleted;
  if (interaction === 'update') return updateTarget(type, left, entry.resource);
  if (left.length === 1) return `${type}/${left[0].id}`;
  return interaction === 'create' && !left.length ? preset : undefined;
}

/**
 * The matches of conditional criteria once the DELETE entries have run: those left, and one the deletes take (that
 * of the first DELETE entry), if any. Asked for as many more as the deletes could take, so two left are seen.
 */
async function matchesAfterDeletes(ctx: FhirContext, search: ConditionalSearch, deletes: Deletes): Promise<{ left: Resource[]; deleted?: string }> {
  const { type, criteria, request } = search;
  const takeable = [...deletes.keys()].filter((identity) => identity.startsWith(`${type}/`)).length;
  const matches = (await runSearch(request, ctx, type, criteria, 2 + takeable)).map((resource) => ({ resource, identity: `${type}/${resource.id}` }));
  const deleted = matches.flatMap(({ identity }) => (deletes.has(identity) ? [identity] : [])).sort((a, b) => deletes.get(a)! - deletes.get(b)!);
  return { left: matches.filter(({ identity }) => !deletes.has(identity)).map(({ resource }) => resource), deleted: deleted[0] };
}

/**
 * A conditional update's target, known before any entry runs since references to its fullUrl need it: its one
 * match; with none, what it creates, the id its resource brings or a new one (given to it as `presetId`).
 * Several fail it with the 412 it would get as it runs.
 */
function updateTarget(type: string, matches: Resource[], resource: Resource | undefined): string {
  if (matches.length > 1) throw preconditionFailed(`Conditional update matched ${matches.length} ${type} resources`);
  return `${type}/${matches[0]?.id ?? resource?.id ?? randomUUID()}`;
}

const CONDITIONAL_WRITES = { DELETE: 'delete', PUT: 'update', POST: 'create' } as const satisfies Partial<Record<Method, Interaction>>;

type ConditionalSearch = { type: string; criteria: [string, string][]; request: FhirRequest; interaction: Interaction };

/** The search a conditional write will run, asked as the entry will ask it (the caller's compartment, the write's scope). */
function conditionalSearch(req: FhirRequest, ctx: FhirContext, entry: Entry): ConditionalSearch | undefined {
  const { method, ifNoneExist } = entry.request;
  // Conditional PATCH (`PATCH Type?criteria`) has no route here: the entry fails on its own (405).
  if (method !== 'DELETE' && method !== 'PUT' && method !== 'POST') return undefined;
  const interaction = CONDITIONAL_WRITES[method];
  const request: FhirRequest = { ...entryRequest(req, entry), interaction };
  const [type] = request.path;
  if (request.path.length !== 1 || !isSupportedType(type)) return undefined;
  // A type with a create interceptor (a ServiceRequest starting a workflow) decides alone what its create does.
  const criteria = method !== 'POST' ? request.query : ifNoneExist && !ctx.createInterceptors?.[type] ? ifNoneExistCriteria(ifNoneExist) : [];
  return criteria.length ? { type, criteria, request, interaction } : undefined;
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
function isPlainCreate({ request, resource }: Entry, ctx: FhirContext): boolean {
  const { method, url, ifNoneExist } = request;
  if (method !== 'POST' || ifNoneExist || !isSupportedType(url) || ctx.createInterceptors?.[url]) return false;
  return !collectReferences(resource).some((ref) => isConditionalReference(ref));
}


/**
 * An entry's place among those of its method (R4 leaves that order to the server; the sort keeps Bundle order
 * between equal places): conditional creates before plain ones; updates, patches and deletes of named resources
 * first, then conditional ones, each in url order. Literal DELETEs so run before the conditional ones whose
 * criteria `resolveIdentities` judged after them, and two transactions writing the same resources take their rows
 * and locks in the same order, where in Bundle order they deadlocked.
 */
function placeWithinMethod({ request }: Entry): string {
  if (request.method === 'POST') return request.ifNoneExist ? '0' : '1';
  return `${request.url.includes('?') ? 1 : 0}${request.url}`;
}

const compareKeys = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

function assignId({ fullUrl, resource, request }: Entry, ids: Map<string, string>): void {
  if (!fullUrl || !resource) return;
  if (request.method === 'POST') ids.set(fullUrl, `${resource.resourceType}/${randomUUID()}`);
  else if (request.method === 'PUT' && /^[A-Z][A-Za-z]+\/[A-Za-z0-9\-.]{1,64}$/.test(request.url)) ids.set(fullUrl, request.url);
}

/** The id the entry creates with, if it creates: a POST's given to its fullUrl (`assignId`), a conditional update's what it resolved to. */
function presetIdOf({ request, fullUrl }: Entry, presets: Map<string, string>, resolved: string | undefined): string | undefined {
  const preset = request.method === 'PUT' ? resolved : request.method === 'POST' && fullUrl ? presets.get(fullUrl) : undefined;
  return preset?.split('/')[1];
}

/** The url an entry acts on: a `urn:uuid:` the Bundle gave an id resolves to it (a DELETE, GET or PATCH of an entry's resource). */
function targetUrl({ request, resource }: Entry, ids: Map<string, string>): string {
  const bodyless = !resource || request.method === 'PATCH';
  return (bodyless && ids.get(request.url)) || request.url;
}

/**
 * Rewrites the request url, and `urn:uuid:` and conditional (`Type?query`) references inside the entry's
 * resource, or inside what a PATCH's operations write.
 */
async function resolveReferences(req: FhirRequest, ctx: FhirContext, entry: Entry, ids: Map<string, string>): Promise<Entry> {
  const request = { ...entry.request, url: targetUrl(entry, ids) };
  if (!entry.resource) return { ...entry, request };
  if (request.method === 'PATCH') {
    const ops = jsonPatchOf(entry.resource);
    await resolveIn(req, ctx, ids, ops, rewritePatchReferences);
    return { ...entry, request, resource: withJsonPatch(entry.resource, ops) };
  }
  const resource = structuredClone(entry.resource);
  await resolveIn(req, ctx, ids, resource, rewriteReferences);
  return { ...entry, request, resource };
}

type Rewrite = (node: unknown, visit: (ref: string) => string | undefined) => void;

/** Rewrites, in place, the references `rewrite` finds in `node`: to the Bundle's entries, or to what conditional ones match. */
async function resolveIn(req: FhirRequest, ctx: FhirContext, ids: Map<string, string>, node: unknown, rewrite: Rewrite): Promise<void> {
  const found: string[] = [];
  rewrite(node, (ref) => {
    found.push(ref);
    return undefined;
  });
  const conditional = await resolveConditional(req, ctx, found);
  rewrite(node, (ref) => bundleTarget(ref, ids) ?? conditional.get(ref));
}

/** Each conditional reference (`Type?query`) among `refs`, as the `Type/id` of its one match (5: "Resolve any conditional references"). */
async function resolveConditional(req: FhirRequest, ctx: FhirContext, refs: string[]): Promise<Map<string, string>> {
  const conditional = new Map<string, string>();
  for (const ref of refs) {
    if (!isConditionalReference(ref) || conditional.has(ref)) continue;
    const [type, query] = ref.split('?', 2);
    const matches = await runSearch(req, ctx, type, [...new URLSearchParams(query).entries()], 2);
    if (matches.length !== 1) throw preconditionFailed(`Conditional reference '${ref}' matched ${matches.length} resources (needs exactly 1)`);
    conditional.set(ref, `${type}/${matches[0].id}`);
  }
  return conditional;
}

/** A `urn:uuid:` or `urn:oid:` reference as the id given to the entry with that fullUrl; one that names no entry is a 400. */
function bundleTarget(ref: string, ids: Map<string, string>): string | undefined {
  if (!isBundleLocal(ref)) return undefined;
  const target = ids.get(ref);
  if (!target) throw badRequest(`Reference '${ref}' does not match any fullUrl in the Bundle`);
  return target;
}

function entryRequest(req: FhirRequest, entry: Entry): FhirRequest {
  const { request } = entry;
  const [path, query = ''] = relativeTo(req.baseUrl, request.url).split('?', 2);
  return {
    method: request.method,
    path: path.split('/').filter(Boolean).map(decodeSegment),
    query: [...new URLSearchParams(query).entries()],
    body: request.method === 'PATCH' ? jsonPatchOf(entry.resource) : entry.resource,
    headers: {
      ifMatch: request.ifMatch,
      ifNoneExist: request.ifNoneExist,
      ifNoneMatch: request.ifNoneMatch,
      ifModifiedSince: request.ifModifiedSince,
      prefer: req.headers.prefer,
      contentType: request.method === 'PATCH' ? JSON_PATCH : 'application/fhir+json',
    },
    baseUrl: req.baseUrl,
    auth: req.auth,
    inBundle: true,
  };
}

function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw badRequest('Malformed URL encoding in Bundle.entry.request.url', 'Bundle.entry.request.url');
  }
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/**
 * PATCH in a Bundle (R4 http.html#patch): the entry's resource is a Binary whose contentType is
 * application/json-patch+json and whose data is the JSON Patch, base64-encoded. Paths name the
 * Binary, which a transaction rebases to its entry.
 */
function jsonPatchOf(resource: Resource | undefined): unknown {
  if (!isBinary(resource)) throw badRequest('PATCH in a Bundle takes a Binary resource holding a JSON Patch', resource?.resourceType ?? 'resource');
  const contentType = resource.contentType?.split(';')[0].trim().toLowerCase();
  if (contentType !== JSON_PATCH) throw unsupportedMediaType(`A PATCH Binary must have contentType ${JSON_PATCH}, not '${resource.contentType ?? ''}'`);
  const data = resource.data?.replace(/\s+/g, '') ?? '';
  if (!BASE64.test(data)) throw badRequest('Binary.data must hold the JSON Patch, base64-encoded', 'Binary.data');
  try {
    return JSON.parse(Buffer.from(data, 'base64').toString('utf8'));
  } catch {
    throw badRequest('Binary.data does not decode to JSON', 'Binary.data');
  }
}

/** The PATCH Binary holding `ops`, once its references are resolved. */
const withJsonPatch = (binary: Resource, ops: unknown): Binary => ({ ...(binary as Binary), data: Buffer.from(JSON.stringify(ops), 'utf8').toString('base64') });

const isBinary = (resource: Resource | undefined): resource is Binary => resource?.resourceType === 'Binary';

/** A response entry: fullUrl absolute as in a searchset, lastModified to the millisecond where the resource says it. */
function responseEntry(baseUrl: string, response: FhirResponse): BundleEntry {
  const headers = response.headers ?? {};
  const entry: BundleEntry = {
    response: { status: String(response.status), location: headers.Location, etag: headers.ETag, lastModified: lastModifiedOf(response) },
  };
  // An entry's outcome, an error's or the one `Prefer: return=OperationOutcome` asks for, is its response's (Bundle.entry.response.outcome).
  if (response.body?.resourceType === 'OperationOutcome') entry.response!.outcome = response.body;
  else if (response.body) {
    entry.resource = response.body;
    if (response.body.id) entry.fullUrl = `${baseUrl}/${response.body.resourceType}/${response.body.id}`;
  }
  return entry;
}

/** meta.lastUpdated keeps the milliseconds the Last-Modified header (an HTTP-date) drops; the header is the last resort. */
function lastModifiedOf({ body, headers, lastUpdated: versionWritten }: FhirResponse): string | undefined {
  const lastUpdated = versionWritten ?? body?.meta?.lastUpdated;
  if (lastUpdated) return lastUpdated;
  const header = headers?.['Last-Modified'];
  return header ? new Date(header).toISOString() : undefined;
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
