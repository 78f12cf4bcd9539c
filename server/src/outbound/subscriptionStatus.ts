import type { Bundle, Coding, OperationDefinition, Subscription } from 'fhir/r4.js';
import type { AccessPolicy, OperationDefinitionEntry } from '../fhir/context.js';
import { requireAccess } from '../fhir/guard.js';
import { parseOperationInput } from '../fhir/operations/parameters.js';
import { badRequest, forbidden, notFound } from '../fhir/outcomes.js';
import type { AccessContext } from '../fhir/request.js';
import type { SearchParamRegistry } from '../fhir/search/registry.js';
import { CANONICAL_BASE } from '../fhir/systems.js';
import type { FhirStore } from '../storage/FhirStore.js';
import { eventCount, statusEntry, statusParameters, type PayloadContent } from './notifications.js';
import { activeSubscriptions } from './subscriptions.js';
import { BACKPORT, parseFilters, TOPIC_RESOURCE_TYPES, TOPIC_URL } from './topic.js';

/** The backport IG's `$status` (instance and type level), as the router needs it. */
const DEFINITION: OperationDefinition = {
  resourceType: 'OperationDefinition',
  url: BACKPORT.statusOperation,
  name: 'R5SubscriptionStatus',
  status: 'active',
  kind: 'operation',
  code: 'status',
  resource: ['Subscription'],
  system: false,
  type: true,
  instance: true,
  parameter: [
    { name: 'id', use: 'in', min: 0, max: '*', type: 'id' },
    { name: 'status', use: 'in', min: 0, max: '*', type: 'code' },
    { name: 'return', use: 'out', min: 1, max: '1', type: 'Bundle' },
  ],
};

/** meta.tag naming the client that created a Subscription (set by checkSubscriptionAccess). */
export const SUBSCRIPTION_OWNER_SYSTEM = `${CANONICAL_BASE}/CodeSystem/subscription-owner`;

export const subscriptionOwner = (sub: Subscription): string | undefined => sub.meta?.tag?.find((t) => t.system === SUBSCRIPTION_OWNER_SYSTEM)?.code;

/** Staff who may see every Subscription's status. */
const mayManageAll = (auth: AccessContext) => auth.roles.includes('plan-admin') || auth.roles.includes('auditor');

function mayView(auth: AccessContext | undefined, sub: Subscription): boolean {
  if (!auth) return true;
  const owner = subscriptionOwner(sub);
  return owner === undefined || owner === auth.clientId || mayManageAll(auth);
}

/**
 * `Subscription/[id]/$status` and `Subscription/$status?id=..&status=..`: a searchset Bundle of
 * SubscriptionStatus Parameters (type query-status), one per Subscription the caller may see.
 */
export function subscriptionStatusOperation(deps: { registry: SearchParamRegistry }): OperationDefinitionEntry {
  return {
    name: 'status',
    levels: ['instance', 'type'],
    resourceTypes: ['Subscription'],
    interaction: 'read',
    affectsState: false,
    definition: BACKPORT.statusOperation,
    async handler(req, ctx, args) {
      const params = parseOperationInput(req, DEFINITION);
      let subs: Subscription[];
      if (args.id) {
        const sub = (await ctx.store.read('Subscription', args.id)) as Subscription;
        requireAccess(req, ctx, sub);
        if (sub.criteria !== TOPIC_URL) throw badRequest('$status applies to topic-based subscriptions');
        if (!mayView(req.auth, sub)) throw notFound(`Subscription/${args.id} not found`);
        subs = [sub];
      } else {
        const ids = new Set((params.get('id') ?? []).map(String));
        const statuses = new Set((params.get('status') ?? []).map(String));
        const candidates = statuses.size === 1 && statuses.has('active') ? await activeSubscriptions(ctx.store, deps.registry, req.baseUrl) : await topicSubscriptions(ctx.store);
        subs = candidates.filter((s) => (!ids.size || ids.has(s.id!)) && (!statuses.size || statuses.has(s.status)) && mayView(req.auth, s));
      }
      const entry = [];
      for (const sub of subs) {
        const parameters = statusParameters({
          fhirBase: req.baseUrl,
          subscriptionId: sub.id!,
          status: sub.status,
          type: 'query-status',
          eventsSinceStart: await eventCount(ctx.store, sub.id!),
          content: contentOf(sub),
          error: sub.status === 'error' ? 'no-response' : undefined,
        });
        entry.push({ ...statusEntry(req.baseUrl, parameters, sub.id!), search: { mode: 'match' as const } });
      }
      const bundle: Bundle = { resourceType: 'Bundle', type: 'searchset', total: entry.length, entry };
      return { status: 200, body: bundle };
    },
  };
}

async function topicSubscriptions(store: FhirStore): Promise<Subscription[]> {
  const found: Subscription[] = [];
  for (let offset = 0; offset < 10_000; offset += 500) {
    const page = await store.search({ resourceType: 'Subscription', clauses: [], sort: [{ param: '_id', kind: 'id', descending: false }], count: 500, offset, total: false });
    found.push(...(page.resources as Subscription[]).filter((s) => s.criteria === TOPIC_URL));
    if (!page.hasMore) break;
  }
  return found;
}

function contentOf(sub: Subscription): PayloadContent {
  const code = sub.channel._payload?.extension?.find((e) => e.url === BACKPORT.payloadContent)?.valueCode;
  return code === 'empty' || code === 'full-resource' ? code : 'id-only';
}

/** Parameters whose value pins a filter to one patient. */
const PATIENT_PARAMS = new Set(['patient', 'subject', 'beneficiary']);

/**
 * What a client may subscribe to is what it may search: every resource type the Subscription can
 * deliver needs the caller's search scope, and a caller limited to one patient's compartment must
 * pin every filter to that patient (`patient=Patient/x`), since notifications carry that data
 * without a later access check. Returns the Subscription stamped with its owner (the client id),
 * replacing any owner tag the client sent. Call it on create and update of Subscription, after the
 * scope check for Subscription itself and before the write.
 */
export function checkSubscriptionAccess(
  auth: AccessContext | undefined,
  subscription: Subscription,
  policy: AccessPolicy,
  options: { registry: SearchParamRegistry; baseUrl: string; maxFilters?: number; existing?: Subscription },
): Subscription {
  if (!auth) return subscription;
  if (options.existing && !mayView(auth, options.existing)) throw forbidden('This Subscription belongs to another client');
  if (subscription.criteria !== TOPIC_URL) return subscription; // refused later by the write hook (422)
  const filters = parseFilters(subscription, options.registry, options.baseUrl, options.maxFilters ?? 20);
  const types = filters.length ? [...new Set(filters.map((f) => f.resourceType))] : [...TOPIC_RESOURCE_TYPES];
  for (const type of types) policy.requireScope(auth, type, 'search');
  const compartment = types.map((t) => policy.patientCompartment(auth, t, 'search')).find(Boolean);
  if (compartment) {
    if (!filters.length) throw forbidden(`A token limited to ${compartment} must filter every criteria by that patient`);
    for (const filter of filters) {
      const pinned = filter.params.some(([k, v]) => PATIENT_PARAMS.has(k) && stripBase(v, options.baseUrl) === compartment);
      if (!pinned) throw forbidden(`Filter on ${filter.resourceType} must include patient=${compartment}`);
    }
  }
  const tags: Coding[] = (subscription.meta?.tag ?? []).filter((t) => t.system !== SUBSCRIPTION_OWNER_SYSTEM);
  tags.push({ system: SUBSCRIPTION_OWNER_SYSTEM, code: auth.clientId });
  return { ...subscription, meta: { ...subscription.meta, tag: tags } };
}

const stripBase = (value: string, baseUrl: string) => (value.startsWith(`${baseUrl}/`) ? value.slice(baseUrl.length + 1) : value);
