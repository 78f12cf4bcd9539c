import { nonEmpty } from '../jsonRules.js';
import type { Bundle, BundleEntry, BundleLink } from 'fhir/r4.js';
import type { HistoryEntry, HistoryQuery } from '../../storage/FhirStore.js';
import type { FhirContext } from '../context.js';
import { compartmentOf, lastStoredVersion, mayAccess, requireScope, requireVisible } from '../guard.js';
import { badRequest } from '../outcomes.js';
import type { FhirRequest, FhirResponse } from '../request.js';
import { linkUrl } from '../responses.js';
import { RESOURCE_TYPES } from '../resourceTypes.js';
import { DEFAULT_COUNT, MAX_COUNT } from '../search/parse.js';
import { dateRange, isInstant } from '../search/dates.js';

/**
 * Pins a walk through history to the versions there were on its first page. History is newest first
 * and paged by offset, and every request appends an AuditEvent (and others write meanwhile): without
 * the pin each new version shifts the next page by one, repeating what the last page showed. The first
 * page reads everything and pins its links to the newest version it found (at or before it); later pages
 * count offsets in that same list. Not an R4 parameter (R4 leaves history paging to the server).
 */
const PIN = '_before';
/** Versions read per query when some of them may be filtered out (a patient-bound token). */
const FILTERED_BATCH = 200;

interface HistoryPaging {
  count: number;
  offset: number;
  since?: Date;
  at?: { from: Date; to: Date };
  /** The pin a link carried; none on a first page. */
  before?: Date;
}

/** Instance, type and system history (3.1.0.11), newest first, with paging. */
export async function history(req: FhirRequest, ctx: FhirContext, type?: string, id?: string): Promise<FhirResponse> {
  if (type) requireScope(req, ctx, type, 'history');
  // A deleted resource still has a history; access is judged on its last stored version.
  if (type && id) requireVisible(req, ctx, (await ctx.store.find(type, id)) ?? (await lastStoredVersion(ctx.store, type, id)) ?? (await ctx.store.read(type, id)));
  const requestedAt = new Date();
  const paging = parsePaging(req.query);
  const types = type ? undefined : allowedTypes(req, ctx);
  const compartment = id ? undefined : compartmentQuery(req, ctx, type ? [type] : (types ?? []));
  const query = { resourceType: type, id, since: paging.since, at: paging.at, before: paging.before, types, compartment };
  // Under a patient compartment versions are left out one by one, so offsets no longer count pages of `_count`.
  const oneByOne = compartment !== undefined;
  const page = paging.count === 0 ? { versions: [] } : await visiblePage(req, ctx, query, paging, oneByOne);
  // A first page pins its links to the newest version there was (the first row read, newest first).
  const pin = paging.before ?? (paging.offset === 0 && page.newest ? new Date(page.newest) : requestedAt);
  const bundle: Bundle = {
    resourceType: 'Bundle',
    type: 'history',
    timestamp: new Date().toISOString(),
    link: historyLinks(req, [type, id, '_history'].filter(Boolean).join('/'), { ...paging, before: pin }, page.next, !oneByOne),
  };
  // R4 JSON has no empty arrays (json.html, ele-1): a history with no versions has no entry.
  bundle.entry = nonEmpty(page.versions.map((v) => historyEntry(req.baseUrl, v)));
  return { status: 200, body: bundle };
}

function parsePaging(query: [string, string][]): HistoryPaging {
  const params = new Map(query);
  const count = Math.min(Number(params.get('_count') ?? DEFAULT_COUNT), MAX_COUNT);
  const offset = Number(params.get('_offset') ?? 0);
  if (!Number.isInteger(count) || count < 0 || !Number.isInteger(offset) || offset < 0) throw badRequest('_count and _offset must be non-negative integers');
  const instant = (name: string) => (params.get(name) ? parseInstant(name, params.get(name)!) : undefined);
  return { count, offset, since: instant('_since'), at: params.get('_at') ? parsePeriod('_at', params.get('_at')!) : undefined, before: instant(PIN) };
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
 * The page's versions the caller may see and, when more follow, the offset of the next one. Versions of
 * types the caller's scopes refuse are left out by the query; those outside a patient-bound token's
 * compartment are left out here, reading on until the page is full or history ends, so a page is never
 * empty while more follow and a `next` link always leads to at least one version.
 */
async function visiblePage(
  req: FhirRequest,
  ctx: FhirContext,
  query: Omit<HistoryQuery, 'count' | 'offset'>,
  paging: HistoryPaging,
  oneByOne: boolean,
): Promise<{ versions: HistoryEntry[]; next?: number; newest?: string }> {
  const versions: HistoryEntry[] = [];
  let newest: string | undefined;
  const batch = oneByOne ? Math.max(paging.count + 1, FILTERED_BATCH) : paging.count + 1;
  for (let offset = paging.offset; ; offset += batch) {
    const rows = await ctx.store.history({ ...query, count: batch, offset });
    newest ??= rows[0]?.lastUpdated;
    for (const [i, version] of rows.entries()) {
      if (!visible(req, ctx, version)) continue;
      if (versions.length === paging.count) return { versions, next: offset + i, newest };
      versions.push(version);
    }
    if (rows.length < batch) return { versions, newest };
  }
}

function visible(req: FhirRequest, ctx: FhirContext, v: HistoryEntry): boolean {
  if (!v.resource) return !compartmentOf(req, ctx, v.resourceType) && (!req.auth || allowed(req, ctx, v.resourceType));
  return allowed(req, ctx, v.resourceType) && mayAccess(req, ctx, v.resource);
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
 * Self is the request as made; the others repeat its parameters (`_since`, `_at`...) with their own
 * `_offset` and the pin (R4 http.html#paging). A previous page is linked only where offsets count
 * visible versions: under a compartment filter where it starts is not known without reading back.
 */
function historyLinks(req: FhirRequest, path: string, paging: HistoryPaging & { before: Date }, next: number | undefined, countsVisible: boolean): BundleLink[] {
  const url = (params: [string, string][]) => linkUrl(req.baseUrl, path, params);
  const kept = req.query.filter(([k]) => k !== '_count' && k !== '_offset' && k !== PIN);
  const page = (offset: number) => url([...kept, ['_count', String(paging.count)], ['_offset', String(offset)], [PIN, paging.before.toISOString()]]);
  const links: BundleLink[] = [{ relation: 'self', url: url(req.query) }];
  if (paging.offset > 0) {
    links.push({ relation: 'first', url: page(0) });
    if (countsVisible) links.push({ relation: 'previous', url: page(Math.max(0, paging.offset - paging.count)) });
  }
  if (next !== undefined) links.push({ relation: 'next', url: page(next) });
  return links;
}

function historyEntry(baseUrl: string, v: HistoryEntry): BundleEntry {
  return {
    fullUrl: `${baseUrl}/${v.resourceType}/${v.id}`,
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
  };
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
