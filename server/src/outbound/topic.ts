import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Basic, Reference, Resource, Subscription } from 'fhir/r4.js';
import { PROFILES_DIR } from '../fhir/conformance.js';
import { badRequest, unprocessable } from '../fhir/outcomes.js';
import { parseLiteral } from '../fhir/references.js';
import { isGrievanceTask } from '../fhir/guard.js';
import { parseSearch } from '../fhir/search/parse.js';
import type { SearchParamRegistry } from '../fhir/search/registry.js';
import { BACKPORT, CANONICAL_BASE, CODE_SYSTEMS, IDENTIFIER_SYSTEMS, PROFILES, SUBSCRIPTION_TOPICS } from '../fhir/systems.js';
import type { FhirStore, SearchQuery } from '../storage/FhirStore.js';

/**
 * The one subscription topic this server offers (Subscriptions R5 Backport IG 1.1, R4 form):
 * changes to the resources of a second-opinion case. In R4 there is no SubscriptionTopic
 * resource; the IG represents a topic as a `Basic` carrying the R5 SubscriptionTopic as
 * cross-version extensions (profiles/SubscriptionTopic-second-opinion-case.json), and clients
 * name it by its canonical URL in Subscription.criteria.
 */
export const TOPIC_URL = SUBSCRIPTION_TOPICS.secondOpinionCase;
export const TOPIC_BASIC_ID = 'second-opinion-case';

export const TOPIC_RESOURCE_TYPES = ['Task', 'ServiceRequest', 'CoverageEligibilityResponse', 'Communication', 'DocumentReference'] as const;
export type TopicResourceType = (typeof TOPIC_RESOURCE_TYPES)[number];
export const isTopicResourceType = (type: string): type is TopicResourceType => (TOPIC_RESOURCE_TYPES as readonly string[]).includes(type);

export { BACKPORT };

/** The topic a Subscription.criteria names (an R4 canonical): its URL, and the version it pins (`url|version`), if any. */
export function topicCanonical(criteria: string): { url: string; version?: string } {
  const bar = criteria.indexOf('|');
  return bar < 0 ? { url: criteria } : { url: criteria.slice(0, bar), version: criteria.slice(bar + 1) };
}

/** Whether Subscription.criteria names this server's topic, with or without a version. */
export const namesOurTopic = (criteria: string | undefined): boolean => criteria !== undefined && topicCanonical(criteria).url === TOPIC_URL;

const TOPIC_VERSION_EXTENSION = 'http://hl7.org/fhir/5.0/StructureDefinition/extension-SubscriptionTopic.version';

/** The SubscriptionTopic.version of a topic Basic (a cross-version extension), if it has one. */
export const topicVersion = (topic: Resource | undefined): string | undefined =>
  (topic as Basic | undefined)?.extension?.find((e) => e.url === TOPIC_VERSION_EXTENSION)?.valueString;

/**
 * Whether a version named in a canonical matches the topic's: the same, or its major.minor (semantic versioning,
 * as FHIR canonicals are matched: `|0.1` names 0.1.x, whose patches change nothing a subscriber relies on).
 */
export function versionMatches(asked: string, offered: string): boolean {
  return asked === offered || (/^\d+\.\d+$/.test(asked) && offered.startsWith(`${asked}.`));
}

/**
 * A Subscription may pin the topic's version in its criteria (`url|version`): it must be the version published
 * (stored, so a plan administrator's edit counts), else 422 naming the version offered.
 */
export async function checkTopicVersion(store: FhirStore, criteria: string): Promise<void> {
  const asked = topicCanonical(criteria).version;
  if (asked === undefined) return;
  const offered = topicVersion(await store.find('Basic', TOPIC_BASIC_ID));
  if (offered !== undefined && versionMatches(asked, offered)) return;
  const named = `Subscription.criteria names version '${asked.slice(0, 40)}'`;
  throw unprocessable(
    offered === undefined
      ? `Topic ${TOPIC_URL} is published without a version: ${named}; name the topic without one`
      : `Topic ${TOPIC_URL} is offered at version ${offered} only (${TOPIC_URL}|${offered}, or the URL alone): ${named}`,
    ['Subscription.criteria'],
  );
}

/** Orders dotted versions part by part, numerically where both parts are numbers (0.10.0 comes after 0.9.1). */
export function compareVersions(a: string, b: string): number {
  const [x, y] = [a.split('.'), b.split('.')];
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const [p, q] = [x[i] ?? '0', y[i] ?? '0'];
    const order = /^\d+$/.test(p) && /^\d+$/.test(q) ? Number(p) - Number(q) : p.localeCompare(q);
    if (order) return Math.sign(order);
  }
  return 0;
}

/** Tag on the Tasks this module writes about failed deliveries; they never trigger notifications. */
export const OUTBOUND_TAG = { system: `${CANONICAL_BASE}/CodeSystem/outbound`, code: 'delivery-failed' } as const;

/** A parsed `backport-filter-criteria` value: `Task?patient=Patient/123&status=requested`. */
export interface TopicFilter {
  resourceType: TopicResourceType;
  params: [string, string][];
  query: SearchQuery;
}

const RESULT_PARAMS = /^_(count|offset|cursor|sort|include|revinclude|summary|elements|total|format|pretty|contained|containedType)(:|$)/;

/** Reads and checks the filters of a Subscription; 400/422 with the offending filter otherwise. */
export function parseFilters(subscription: Subscription, registry: SearchParamRegistry, baseUrl: string, maxFilters: number): TopicFilter[] {
  const values = (subscription._criteria?.extension ?? []).filter((e) => e.url === BACKPORT.filterCriteria).map((e) => e.valueString);
  if (values.length > maxFilters) throw unprocessable(`At most ${maxFilters} filter criteria are allowed`, ['Subscription.criteria']);
  return values.map((value) => {
    if (typeof value !== 'string' || !value) throw badRequest('A filter criteria extension needs a valueString', 'Subscription.criteria');
    const m = /^([A-Z][A-Za-z]+)\?(.+)$/.exec(value);
    if (!m) throw badRequest(`Filter '${value.slice(0, 100)}' must read Type?param=value (e.g. Task?patient=Patient/123)`, 'Subscription.criteria');
    const [, resourceType, query] = m;
    if (!isTopicResourceType(resourceType)) {
      throw unprocessable(`Topic ${TOPIC_URL} has no ${resourceType} events (it covers ${TOPIC_RESOURCE_TYPES.join(', ')})`, ['Subscription.criteria']);
    }
    const params = [...new URLSearchParams(query).entries()];
    if (!params.length) throw badRequest(`Filter '${value.slice(0, 100)}' has no parameters`, 'Subscription.criteria');
    const bad = params.find(([k]) => RESULT_PARAMS.test(k));
    if (bad) throw badRequest(`Filter parameter '${bad[0]}' does not select resources`, 'Subscription.criteria');
    // An empty value would be ignored, widening the filter to every resource of the type.
    const parsed = parseSearch(resourceType, params, registry, { strict: true, baseUrl, refuseEmpty: true });
    // Each event is matched without the subscriber's token: what a chain or `_has` passes through (another member's
    // records, a grievance) would be judged by nobody's access, and its events would tell what it found.
    if (parsed.query.clauses.some((c) => c.kind === 'chain' || c.kind === 'reverseChain')) {
      throw badRequest(`Filter '${value.slice(0, 100)}' uses a chain or _has: a filter names the ${resourceType}'s own search parameters`, 'Subscription.criteria');
    }
    return { resourceType, params, query: { ...parsed.query, sort: [], offset: 0, total: false } };
  });
}

/**
 * Whether a stored resource passes the subscription's filters. A subscription with filters gets the
 * events of the resource types it filters on (all filters of that type must hold, IG: "logical
 * AND"); one without filters gets every event of the topic. Matching reuses the search engine on
 * the transaction that wrote the resource, so it sees the new version and its index.
 */
export async function passesFilters(tx: FhirStore, filters: TopicFilter[], resource: Resource): Promise<boolean> {
  if (!filters.length) return true;
  const own = filters.filter((f) => f.resourceType === resource.resourceType);
  if (!own.length || !resource.id) return false;
  for (const filter of own) {
    const { resources } = await tx.search({ ...filter.query, clauses: [...filter.query.clauses, { kind: 'id', ids: [resource.id] }], count: 1 });
    if (!resources.length) return false;
  }
  return true;
}

const hasProfile = (r: Resource, url: string) => r.meta?.profile?.includes(url) ?? false;
const hasTag = (r: Resource, tag: { system: string; code: string }) => r.meta?.tag?.some((t) => t.system === tag.system && t.code === tag.code) ?? false;

/** A second-opinion request: our profile, our category or our request identifier. */
export function isSecondOpinionRequest(resource: Resource): boolean {
  if (resource.resourceType !== 'ServiceRequest') return false;
  const sr = resource as Resource & { category?: { coding?: { system?: string }[] }[]; identifier?: { system?: string }[] };
  return (
    hasProfile(resource, PROFILES.serviceRequest) ||
    (sr.category ?? []).some((c) => (c.coding ?? []).some((x) => x.system === CODE_SYSTEMS.serviceRequestCategory)) ||
    (sr.identifier ?? []).some((i) => i.system === IDENTIFIER_SYSTEMS.secondOpinionRequest)
  );
}

/**
 * Whether a resource belongs to a second-opinion case, i.e. is an event of the topic: the case's
 * ServiceRequest; a Task, Communication or DocumentReference with our profile or pointing
 * (basedOn, focus, partOf, about, context.related) at the case's ServiceRequest or one of its
 * Tasks; a CoverageEligibilityResponse with our profile. Delivery-failed Tasks are internal and
 * never events.
 */
export async function isCaseResource(tx: FhirStore, resource: Resource, depth = 0): Promise<boolean> {
  if (hasTag(resource, OUTBOUND_TAG)) return false;
  switch (resource.resourceType) {
    case 'ServiceRequest':
      return isSecondOpinionRequest(resource);
    case 'CoverageEligibilityResponse':
      return hasProfile(resource, PROFILES.coverageEligibilityResponse);
    case 'Task':
      if (hasProfile(resource, PROFILES.task)) return true;
      // A grievance is the member's and its plan's (workflow/grievanceAccess.ts), not a case event for every subscriber to the case.
      if (isGrievanceTask(resource)) return false;
      break;
    case 'DocumentReference':
      if (hasProfile(resource, PROFILES.consultationReport) || hasProfile(resource, PROFILES.decisionNotice)) return true;
      break;
    case 'Communication':
      break;
    default:
      return false;
  }
  if (depth > 1) return false;
  for (const ref of caseLinks(resource)) {
    const literal = parseLiteral(ref);
    if (!literal || (literal[0] !== 'ServiceRequest' && literal[0] !== 'Task')) continue;
    const target = await tx.find(literal[0], literal[1]);
    if (target && (await isCaseResource(tx, target, depth + 1))) return true;
  }
  return false;
}

function caseLinks(resource: Resource): string[] {
  const r = resource as Resource & {
    basedOn?: Reference[];
    partOf?: Reference[];
    about?: Reference[];
    focus?: Reference;
    context?: { related?: Reference[] };
  };
  return [...(r.basedOn ?? []), ...(r.partOf ?? []), ...(r.about ?? []), ...(r.focus ? [r.focus] : []), ...(r.context?.related ?? [])]
    .map((x) => x.reference)
    .filter((x): x is string => typeof x === 'string');
}

export const TOPIC_FILE = join(PROFILES_DIR, 'SubscriptionTopic-second-opinion-case.json');

/** The topic as the IG's R4 `Basic` form, for clients to discover (`Basic?code=SubscriptionTopic`). */
export function readTopicBasic(file = TOPIC_FILE): Basic {
  return JSON.parse(readFileSync(file, 'utf8')) as Basic;
}

/**
 * Stores the topic Basic when none is stored, or when the profile file's version is newer than the stored one's
 * (a stored topic without a version counts as older): a plan administrator's edit of the topic stays, across
 * restarts, until the project ships a newer version of it.
 */
export async function publishTopic(store: FhirStore, topic: Basic = readTopicBasic()): Promise<void> {
  const current = await store.find('Basic', TOPIC_BASIC_ID);
  if (current && !isNewerTopic(topic, current)) return;
  await store.update({ ...topic, id: TOPIC_BASIC_ID });
}

function isNewerTopic(shipped: Basic, stored: Resource): boolean {
  const [version, storedVersion] = [topicVersion(shipped), topicVersion(stored)];
  if (version === undefined) return false;
  return storedVersion === undefined || compareVersions(version, storedVersion) > 0;
}
