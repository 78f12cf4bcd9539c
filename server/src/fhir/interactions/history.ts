import { nonEmpty } from '../jsonRules.js';
import type { Bundle, BundleEntry, BundleLink, Resource } from 'fhir/r4.js';
import { HISTORY_ORDER, type HistoryEntry, type HistoryQuery, type PageCursor } from '../../storage/FhirStore.js';
import type { FhirContext } from '../context.js';
import { aboutVisiblePatient, compartmentOf, lastStoredVersion, mayAccess, requireScope, requireVisible, requireVisiblePatient } from '../guard.js';
import { badRequest } from '../outcomes.js';
import type { FhirRequest, FhirResponse } from '../request.js';
import { linkUrl, refuseUnknownWhenStrict } from '../responses.js';
import { RESOURCE_TYPES } from '../resourceTypes.js';
import { DEFAULT_COUNT, MAX_COUNT, parseNonNegative } from '../search/parse.js';
import { CURSOR_PARAM, decodeCursor, encodeCursor, pageOrFirst } from '../search/cursor.js';
import { dateRange, isInstant } from '../search/dates.js';
import { resultShape } from './crud.js';

/**
 * Not an R4 parameter: the pin that links of earlier versions of this server carried (versions written at or before
 * it). Still honoured when sent; links now carry a cursor, which new versions cannot shift.
 */
const PIN = '_before';
/** What a history takes (R4 http.html#history, and the result parameters a read takes); others as `refuseUnknownWhenStrict` says. */
const HISTORY_PARAMS: ReadonlySet<string> = new Set(['_count', '_since', '_at', '_offset', CURSOR_PARAM, PIN, '_summary', '_elements', '_format', '_pretty']);
/** Versions read per query when some of them may be filtered out (a patient-bound token). */
const FILTERED_BATCH = 200;

interface HistoryPaging {
  count: number;
  offset: number;
  since?: Date;
  at?: { from: Date; to: Date };
  before?: Date;
  /** Where a page link's page starts (`_cursor`): after or before a version's place in HISTORY_ORDER. */
  cursor?: NonNullable<HistoryQuery['cursor']>;
}

/**
 * Instance, type and system history (3.1.0.11), newest first, paged by cursor as searches are (search.ts pageLinks):
 * `next` reads on from this page's oldest version and `previous` back from its newest, so versions written between
 * requests (each request appends an AuditEvent; others write meanwhile) neither shift nor repeat what the pages show.
 */
export async function history(req: FhirRequest, ctx: FhirContext, type?: string, id?: string): Promise<FhirResponse> {
  if (type) requireScope(req, ctx, type, 'history');
  // A deleted resource still has a history; access is judged on its last stored version.
  if (type && id) {
    const judged = (await ctx.store.find(type, id)) ?? (await lastStoredVersion(ctx.store, type, id)) ?? (await ctx.store.read(type, id));
    requireVisible(req, ctx, judged);
    await requireVisiblePatient(req, ctx, judged, `${type}/${id}`);
  }
  const shape = historyShape(req, ctx, type);
  const requested = parsePaging(req.query);
  const types = type ? undefined : allowedTypes(req, ctx);
  const compartment = id ? undefined : compartmentQuery(req, ctx, type ? [type] : (types ?? []));
  const query = { resourceType: type, id, since: requested.since, at: requested.at, before: requested.before, types, compartment };
  // Under a patient compartment versions are left out one by one, so a query reads more than a page of them.
  const batch = compartment ? Math.max(requested.count + 1, FILTERED_BATCH) : requested.count + 1;
  const read = (p: HistoryPaging) => (p.count === 0 ? Promise.resolve({ versions: [], hasMore: false }) : visiblePage(req, ctx, query, p, batch));
  const { paging, page } = await pageOrFirst(requested, read, (p) => p.versions.length === 0);
  const bundle: Bundle = {
    resourceType: 'Bundle',
    type: 'history',
    timestamp: new Date().toISOString(),
    link: historyLinks(req, [type, id, '_history'].filter(Boolean).join('/'), paging, page),
  };
  // R4 JSON has no empty arrays (json.html, ele-1): a history with no versions has no entry.
  bundle.entry = nonEmpty(page.versions.map((v) => historyEntry(req.baseUrl, v, shape)));
  return { status: 200, body: bundle };
}

/**
 * A history's parameters: `_list`, an R4 history parameter, is refused as not supported (an answer without it would
 * pass for one with it), whatever `Prefer` says; unknown ones as a search treats them; `_summary` and `_elements`
 * shape each version as a read's do (`resultShape`).
 */
function historyShape(req: FhirRequest, ctx: FhirContext, type: string | undefined): (resource: Resource) => Resource {
  if (req.query.some(([name]) => name === '_list')) throw badRequest('_list is not supported on history: versions are not filtered by a List', '_list');
  refuseUnknownWhenStrict(req, HISTORY_PARAMS, 'a history');
  return resultShape(req, ctx, type, 'a history');
}

function parsePaging(query: [string, string][]): HistoryPaging {
  const params = new Map(query);
  const count = Math.min(params.has('_count') ? parseNonNegative('_count', params.get('_count')!) : DEFAULT_COUNT, MAX_COUNT);
  const offset = params.has('_offset') ? parseNonNegative('_offset', params.get('_offset')!) : 0;
  const instant = (name: string) => (params.get(name) ? parseInstant(name, params.get(name)!) : undefined);
  const paging = { count, offset, since: instant('_since'), at: params.get('_at') ? parsePeriod('_at', params.get('_at')!) : undefined, before: instant(PIN) };
  const cursor = params.get(CURSOR_PARAM);
  if (cursor === undefined) return paging;
  if (params.has('_offset')) throw badRequest(`${CURSOR_PARAM} and _offset cannot be combined: each says where the page starts`, CURSOR_PARAM);
  return { ...paging, cursor: historyCursor(cursor) };
}

/** A history page link's cursor: one the server wrote for history, at a version's place (400 otherwise, as for a search's). */
function historyCursor(raw: string): NonNullable<HistoryQuery['cursor']> {
  const { direction, at } = decodeCursor(raw, HISTORY_ORDER);
  if (!at || at.keys.some((key) => key === null)) throw badRequest(`Invalid ${CURSOR_PARAM}: its position does not fit a history`, CURSOR_PARAM);
  return { direction, at };
}

/**
 * `_since` (and the pin) take an instant (R4 http.html#history: "_since: instant"). A partial date or a time without
 * its zone is refused (400), not taken at its start: `_since=2026-11` read as UTC midnight began 7 hours before a
 * Pacific plan's November, and another reader would take it in its own zone. HAPI refuses it too (its InstantDt
 * allows second or millisecond precision only); `_at`, a dateTime, keeps partial values as the period they name.
 */
function parseInstant(name: string, value: string): Date {
  const range = isInstant(value) ? dateRange(value) : undefined;
  if (!range) throw badRequest(`Invalid ${name} '${value.slice(0, 40)}': it takes an instant, to the second with a time zone (2026-11-01T00:00:00-07:00)`, name);
  return range.lo;
}

/**
 * The page's versions the caller may see, newest first, and whether more follow in the walk's direction (older ones;
 * newer ones for a page read backwards). Versions of types the caller's scopes refuse are left out by the query; those
 * outside a patient-bound token's compartment are left out here, reading on from the last version read until the page
 * is full or history ends, so a page is never empty while more follow.
 */
async function visiblePage(
  req: FhirRequest,
  ctx: FhirContext,
  query: Omit<HistoryQuery, 'count' | 'offset' | 'cursor'>,
  paging: HistoryPaging,
  batch: number,
): Promise<{ versions: HistoryEntry[]; hasMore: boolean }> {
  const versions: HistoryEntry[] = [];
  let cursor = paging.cursor;
  let offset = paging.offset;
  for (;;) {
    const rows = await ctx.store.history({ ...query, count: batch, offset, cursor });
    for (const version of rows) {
      if (!(await visible(req, ctx, version))) continue;
      if (versions.length === paging.count) return { versions: inOrder(versions, cursor), hasMore: true };
      versions.push(version);
    }
    if (rows.length < batch) return { versions: inOrder(versions, cursor), hasMore: false };
    cursor = { direction: cursor?.direction ?? 'after', at: rows[rows.length - 1].position };
    offset = 0;
  }
}

/** Read backwards, the versions nearest the cursor (the oldest) come first: the page shows them newest first. */
const inOrder = (versions: HistoryEntry[], cursor: HistoryPaging['cursor']) => (cursor?.direction === 'before' ? versions.reverse() : versions);

async function visible(req: FhirRequest, ctx: FhirContext, v: HistoryEntry): Promise<boolean> {
  if (v.resource) return allowed(req, ctx, v.resourceType) && mayAccess(req, ctx, v.resource) && (await aboutVisiblePatient(req, ctx, v.resource));
  if (compartmentOf(req, ctx, v.resourceType) || (req.auth && !allowed(req, ctx, v.resourceType))) return false;
  // A deletion of a type with its own access rule (a grievance's records), or of a patient's record, is shown to who could see what it deleted.
  if (!req.auth || (!ctx.accessRules?.[v.resourceType] && !ctx.visiblePatients?.(req.auth))) return true;
  const last = await lastStoredVersion(ctx.store, v.resourceType, v.id);
  return !last || (mayAccess(req, ctx, last) && (await aboutVisiblePatient(req, ctx, last)));
}

/**
 * A patient-bound token's history is read in the database from the resources now in its compartment
 * (an index lookup), not by walking every version: the versions are then checked one by one, as a
 * resource may have moved between patients.
 */
function compartmentQuery(req: FhirRequest, ctx: FhirContext, types: string[]): HistoryQuery['compartment'] {
  const bound = types.flatMap((t) => {
    const compartment = compartmentOf(req, ctx, t);
    return compartment ? [{ type: t, compartment }] : [];
  });
  return bound.length ? { patient: bound[0].compartment, types: bound.map((b) => b.type) } : undefined;
}

/** The types a system history may show the caller (all of them without auth). */
function allowedTypes(req: FhirRequest, ctx: FhirContext): string[] | undefined {
  return req.auth ? RESOURCE_TYPES.filter((t) => allowed(req, ctx, t)) : undefined;
}

/**
 * Self is the request as made; the others repeat its parameters (`_since`, `_at`...) with `_count` and a cursor
 * (R4 http.html#paging): `next` after this page's oldest version, `previous` before its newest; `first` starts over.
 */
function historyLinks(req: FhirRequest, path: string, paging: HistoryPaging, page: { versions: HistoryEntry[]; hasMore: boolean }): BundleLink[] {
  // As a search's links, they name the history as understood: without the parameters ignored.
  const understood = req.query.filter(([k]) => HISTORY_PARAMS.has(k));
  const kept = understood.filter(([k]) => k !== '_count' && k !== '_offset' && k !== CURSOR_PARAM && k !== PIN);
  const url = (cursor?: PageCursor) =>
    linkUrl(req.baseUrl, path, [...kept, ['_count', String(paging.count)], ...(cursor ? [[CURSOR_PARAM, encodeCursor(HISTORY_ORDER, cursor)] as [string, string]] : [])]);
  const links: BundleLink[] = [{ relation: 'self', url: linkUrl(req.baseUrl, path, understood) }];
  const { versions, hasMore } = page;
  const backward = paging.cursor?.direction === 'before';
  const earlier = backward ? hasMore : paging.cursor !== undefined || paging.offset > 0;
  const later = backward || hasMore;
  if (earlier) links.push({ relation: 'first', url: url() });
  if (earlier && versions.length) links.push({ relation: 'previous', url: url({ direction: 'before', at: versions[0].position }) });
  if (later && versions.length) links.push({ relation: 'next', url: url({ direction: 'after', at: versions[versions.length - 1].position }) });
  return links;
}

function historyEntry(baseUrl: string, v: HistoryEntry, shape: (resource: Resource) => Resource): BundleEntry {
  const { method, url, status } = writtenBy(v);
  return {
    fullUrl: `${baseUrl}/${v.resourceType}/${v.id}`,
    resource: v.resource && shape(v.resource),
    request: { method, url },
    response: { status, etag: `W/"${v.versionId}"`, lastModified: v.lastUpdated },
  };
}

type EntryMethod = NonNullable<BundleEntry['request']>['method'];

/**
 * The request that wrote a version and its answer, as far as what is stored tells: a deletion; a create (the first
 * version: a POST, or a PUT naming a new id, which is not stored apart); a version after a deletion (only a PUT names
 * a deleted id, and it is answered 201); an update (a PUT, or a PATCH, not stored apart either).
 */
function writtenBy(v: HistoryEntry): { method: EntryMethod; url: string; status: string } {
  const instance = `${v.resourceType}/${v.id}`;
  if (v.deleted) return { method: 'DELETE', url: instance, status: '204' };
  if (v.created) return { method: 'POST', url: v.resourceType, status: '201' };
  return { method: 'PUT', url: instance, status: v.recreated ? '201' : '200' };
}

function allowed(req: FhirRequest, ctx: FhirContext, type: string): boolean {
  try {
    requireScope(req, ctx, type, 'history');
    return true;
  } catch {
    return false;
  }
}

/**
 * The period a date or dateTime value covers (`_at=2026` is the whole year: "current at some point during the time
 * period specified", R4 http.html#history). R4 gives `_at` the type dateTime,
 * not that of a date search parameter: a prefix (`ge2026`) is no dateTime, so it is refused, not guessed at.
 */
function parsePeriod(name: string, value: string): { from: Date; to: Date } {
  const range = dateRange(value);
  if (range) return { from: range.lo, to: range.hi };
  const prefixed = /^[a-z]{2}\d/.test(value) ? ': it takes a dateTime, without a search prefix' : '';
  throw badRequest(`Invalid ${name} '${value.slice(0, 40)}'${prefixed}`, name);
}
