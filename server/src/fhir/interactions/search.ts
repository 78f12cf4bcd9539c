import { nonEmpty } from '../jsonRules.js';
import type { Bundle, BundleEntry, BundleLink, Resource } from 'fhir/r4.js';
import type { PageCursor, SearchClause, SearchResult } from '../../storage/FhirStore.js';
import type { FhirContext } from '../context.js';
import { aboutVisiblePatients, compartmentOf, mayAccess, requireScope, scopeRestriction, visiblePatientsClause } from '../guard.js';
import { badRequest, type FhirError, outcome } from '../outcomes.js';
import { relativeToBase } from '../references.js';
import type { FhirRequest, FhirResponse } from '../request.js';
import { linkUrl, preferStrict, shapeResource } from '../responses.js';
import { CURSOR_PARAM, encodeCursor, pageOrFirst } from '../search/cursor.js';
import { type IncludeSpec, parseSearch, type SearchRequest } from '../search/parse.js';

/**
 * Internal search (conditional create/update/delete, conditional references): resources the caller may see.
 * An empty parameter is refused here, not ignored: ignoring it would let `PUT Patient?identifier=` update
 * whatever single Patient there is. So are criteria that filter nothing (`_count`, `_sort`, `_summary`...
 * alone): R4 http.html#cond-update runs "a search using the criteria", and result parameters are no criteria.
 */
export async function runSearch(req: FhirRequest, ctx: FhirContext, type: string, params: [string, string][], count: number): Promise<Resource[]> {
  const parsed = parseSearch(type, params, ctx.registry, { strict: true, baseUrl: req.baseUrl, refuseEmpty: true });
  if (!parsed.query.clauses.length) throw noCriteria(type, params);
  const paging = params.find(([name]) => name === '_offset' || name === CURSOR_PARAM);
  // Criteria name what they match; a page of the matches would let a write miss what it should find, and create.
  if (paging) throw badRequest(`Conditional criteria match resources; ${paging[0]} pages search results and cannot be part of them`, paging[0]);
  parsed.query.count = count;
  restrictToCompartment(req, ctx, parsed.query.clauses, type);
  return (await ctx.store.search(parsed.query)).resources;
}

/**
 * 400, as for criteria with nothing in them: the request is wrong whatever is stored, where 412 would say the
 * criteria were understood and matched too many.
 */
function noCriteria(type: string, params: [string, string][]): FhirError {
  const names = [...new Set(params.map(([name]) => name))].join(', ').slice(0, 200);
  return badRequest(`Conditional criteria need a search parameter that filters ${type} resources; ${names || 'none'} only shape results, so they would match every ${type}`);
}

/**
 * A patient-bound token's search: the matches, and the resources its chains and `_has` pass through, stay in the
 * patient's compartment. A search granted through query-restricted scopes (`restriction`) is held to what they grant,
 * each in its own compartment. A user's search stays with the patients the user may see (`visiblePatientsClause`).
 */
function restrictToCompartment(req: FhirRequest, ctx: FhirContext, clauses: SearchClause[], type: string, restriction?: SearchClause): void {
  const compartment = restriction ? undefined : compartmentOf(req, ctx, type);
  if (restriction) clauses.push(restriction);
  if (compartment && (type === 'Patient' || ctx.indexer.compartmentParams(type).length)) clauses.push({ kind: 'compartment', compartment });
  clauses.push(...heldTo(req, ctx, type));
  for (const clause of clauses) restrictChain(req, ctx, clause);
}

function restrictChain(req: FhirRequest, ctx: FhirContext, clause: SearchClause): void {
  if (clause.kind !== 'chain' && clause.kind !== 'reverseChain') return;
  const through = clause.kind === 'chain' ? clause.targetType : clause.sourceType;
  const compartment = compartmentOf(req, ctx, through);
  // As for the matches themselves: only types of the patient compartment are held to it, not the directory.
  if (compartment && (through === 'Patient' || ctx.indexer.compartmentParams(through).length)) clause.compartment = compartment;
  restrictChain(req, ctx, clause.clause);
  // What holds the matches holds what a chain or `_has` passes through too, or it would tell what the caller may not see.
  const held = heldTo(req, ctx, through);
  if (held.length) clause.clause = { kind: 'anyOf', alternatives: [[clause.clause, ...held]] };
}

/** The clauses a user's search of the type is held to besides scopes and compartment: the type's own access rule, the patients the user may see. */
function heldTo(req: FhirRequest, ctx: FhirContext, type: string): SearchClause[] {
  if (!req.auth) return [];
  const rule = ctx.accessRules?.[type];
  const patients = visiblePatientsClause(req, ctx, type);
  return [...(rule ? rule.searchClauses({ ...req, auth: req.auth }, ctx) : []), ...(patients ? [patients] : [])];
}

export async function searchType(req: FhirRequest, ctx: FhirContext, type: string, params: [string, string][]): Promise<FhirResponse> {
  const restriction = scopeRestriction(req, ctx, type, 'search');
  const search = parseSearch(type, params, ctx.registry, { strict: preferStrict(req), baseUrl: req.baseUrl });
  restrictToCompartment(req, ctx, search.query.clauses, type, restriction);
  const result = await readPage(ctx, search);
  const bundle: Bundle = {
    resourceType: 'Bundle',
    type: 'searchset',
    timestamp: new Date().toISOString(),
    total: result.total,
    link: pageLinks(req.baseUrl, type, search, result),
  };
  if (search.summary === 'count') return { status: 200, body: bundle };
  const entries: BundleEntry[] = result.resources.map((r) => entry(req.baseUrl, shapeResource(r, search.summary, search.elements), 'match'));
  // `_elements` names elements of the searched type; it does not apply to included resources (3.1.1.5.9).
  entries.push(...(await includes(req, ctx, result.resources, search)).map((r) => entry(req.baseUrl, shapeResource(r, search.summary), 'include')));
  if (search.ignored.length) {
    entries.push({
      resource: outcome('warning', 'not-supported', `Ignored unknown search parameters: ${search.ignored.join(', ')}`),
      search: { mode: 'outcome' },
    });
  }
  bundle.entry = nonEmpty(entries);
  return { status: 200, body: bundle };
}

/** The page the search asks for (pageOrFirst: an empty `previous` page is the first page). */
async function readPage(ctx: FhirContext, search: SearchRequest): Promise<SearchResult> {
  const { paging, page } = await pageOrFirst(search.query, (query) => ctx.store.search(query), (result) => result.resources.length === 0);
  search.query = paging;
  return page;
}

function entry(baseUrl: string, resource: Resource, mode: 'match' | 'include'): BundleEntry {
  return { fullUrl: `${baseUrl}/${resource.resourceType}/${resource.id}`, resource, search: { mode } };
}

/**
 * The self link is the search as understood (R4 http.html#paging); the others page through it with a
 * cursor (`_cursor`), the position of this page's first or last match in the sort order: the next page
 * is the matches after this one's last, whatever stopped matching or was added meanwhile, where an
 * offset would skip or repeat one. `previous` reads backwards from this page's first match, `last`
 * backwards from the end. `_summary=count` and `_count=0` return no page of entries, so there is
 * nothing to page through.
 */
function pageLinks(baseUrl: string, type: string, search: SearchRequest, result: SearchResult): BundleLink[] {
  const links: BundleLink[] = [{ relation: 'self', url: linkUrl(baseUrl, type, search.used) }];
  const { count, sort, cursor, offset } = search.query;
  if (search.summary === 'count' || count === 0) return links;
  const base = search.used.filter(([k]) => k !== '_offset' && k !== '_count' && k !== CURSOR_PARAM);
  const url = (page?: PageCursor) => linkUrl(baseUrl, type, [...base, ['_count', String(count)], ...(page ? [[CURSOR_PARAM, encodeCursor(sort, page)] as [string, string]] : [])]);
  links.push({ relation: 'first', url: url() });
  const backward = cursor?.direction === 'before';
  // Read backwards, `hasMore` says that more precede this page; read forwards from a position, it came after some.
  const earlier = backward ? result.hasMore : cursor?.at !== undefined || offset > 0;
  const later = backward ? cursor?.at !== undefined : result.hasMore;
  if (result.edges && earlier) links.push({ relation: 'previous', url: url({ direction: 'before', at: result.edges.first }) });
  if (result.edges && later) links.push({ relation: 'next', url: url({ direction: 'after', at: result.edges.last }) });
  links.push({ relation: 'last', url: url({ direction: 'before' }) });
  return links;
}

/** `_include` and `_revinclude` (with `:iterate`), filtered by the caller's scopes and compartment. */
async function includes(req: FhirRequest, ctx: FhirContext, matches: Resource[], search: SearchRequest): Promise<Resource[]> {
  if (!search.includes.length && !search.revIncludes.length) return [];
  const seen = new Set(matches.map(key));
  const found: Resource[] = [];
  let frontier = matches;
  for (let depth = 0; depth < 3 && frontier.length; depth++) {
    const next: Resource[] = [];
    for (const spec of search.includes.filter((s) => depth === 0 || s.iterate)) next.push(...(await forwardIncludes(ctx, req.baseUrl, frontier, spec)));
    for (const spec of search.revIncludes.filter((s) => depth === 0 || s.iterate)) next.push(...(await reverseIncludes(ctx, frontier, spec)));
    frontier = await aboutVisiblePatients(req, ctx, next.filter((r) => {
      if (seen.has(key(r)) || !visible(req, ctx, r)) return false;
      seen.add(key(r));
      return true;
    }));
    found.push(...frontier);
  }
  return found;
}

function visible(req: FhirRequest, ctx: FhirContext, resource: Resource): boolean {
  try {
    requireScope(req, ctx, resource.resourceType, 'read');
  } catch {
    return false;
  }
  return mayAccess(req, ctx, resource);
}

const key = (r: Resource) => `${r.resourceType}/${r.id}`;

/** The resources the sources refer to through `spec`'s parameter (or all of them: `*`), relatively or by this server's own absolute URL. */
async function forwardIncludes(ctx: FhirContext, baseUrl: string, sources: Resource[], spec: IncludeSpec): Promise<Resource[]> {
  const targets = new Map<string, string[]>();
  for (const source of sources.filter((s) => s.resourceType === spec.sourceType)) {
    const defs = spec.param === '*' ? ctx.registry.forType(source.resourceType).filter((d) => d.type === 'reference') : [ctx.registry.get(source.resourceType, spec.param)!];
    for (const def of defs) {
      for (const value of ctx.indexer.evaluate(def, source)) {
        const raw = typeof value === 'object' && value !== null ? (value as { reference?: unknown }).reference : undefined;
        const ref = typeof raw === 'string' ? relativeToBase(baseUrl, raw) : raw;
        const m = typeof ref === 'string' ? /^([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})$/.exec(ref) : null;
        if (!m || (spec.targetType && m[1] !== spec.targetType)) continue;
        targets.set(m[1], [...(targets.get(m[1]) ?? []), m[2]]);
      }
    }
  }
  const out: Resource[] = [];
  for (const [type, ids] of targets) {
    const { resources } = await ctx.store.search({ resourceType: type, clauses: [{ kind: 'id', ids: [...new Set(ids)] }], sort: [], count: 1000, offset: 0, total: false });
    out.push(...resources);
  }
  return out;
}

/** The resources of `spec`'s source type that refer to the targets through its parameter (or any that may point at them: `*`). */
async function reverseIncludes(ctx: FhirContext, targets: Resource[], spec: IncludeSpec): Promise<Resource[]> {
  const params = spec.param === '*' ? ctx.registry.forType(spec.sourceType).filter((d) => d.type === 'reference').map((d) => d.code) : [spec.param];
  const values = params.flatMap((param) => targets.map((t) => `${param}|${t.resourceType}/${t.id}`));
  if (!values.length) return [];
  const { resources } = await ctx.store.search({
    resourceType: spec.sourceType,
    clauses: [{ kind: 'reference', param: spec.param, values }],
    sort: [],
    count: 1000,
    offset: 0,
    total: false,
  });
  return resources;
}
