import type { Bundle, OperationDefinition, Subscription } from 'fhir/r4.js';
import type { OperationDefinitionEntry } from '../fhir/context.js';
import { mayAccess, requireAccess } from '../fhir/guard.js';
import { parseOperationInput } from '../fhir/operations/parameters.js';
import { badRequest } from '../fhir/outcomes.js';
import type { SearchParamRegistry } from '../fhir/search/registry.js';
import type { FhirStore } from '../storage/FhirStore.js';
import { eventCount, statusEntry, statusParameters, type PayloadContent } from './notifications.js';
import { activeSubscriptions } from './subscriptions.js';
import { BACKPORT, TOPIC_URL } from './topic.js';
import { nonEmpty } from '../fhir/jsonRules.js';

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
        // Another client's Subscription: 403, as its read would be (subscriptionAccess.ts).
        requireAccess(req, ctx, sub);
        if (sub.criteria !== TOPIC_URL) throw badRequest('$status applies to topic-based subscriptions');
        subs = [sub];
      } else {
        const ids = new Set((params.get('id') ?? []).map(String));
        const statuses = new Set((params.get('status') ?? []).map(String));
        const candidates = statuses.size === 1 && statuses.has('active') ? await activeSubscriptions(ctx.store, deps.registry, req.baseUrl) : await topicSubscriptions(ctx.store);
        subs = candidates.filter((s) => (!ids.size || ids.has(s.id!)) && (!statuses.size || statuses.has(s.status)) && mayAccess(req, ctx, s));
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
          // What failed, as recorded when the Subscription went to error (a handshake's HTTP status, a network failure).
          error: sub.status === 'error' ? { code: 'no-response', text: sub.error } : undefined,
        });
        // A searchset entry carries no request or response (bdl-3, bdl-4), unlike the same status in a notification.
        const { fullUrl, resource } = statusEntry(req.baseUrl, parameters, sub.id!);
        entry.push({ fullUrl, resource, search: { mode: 'match' as const } });
      }
      const bundle: Bundle = { resourceType: 'Bundle', type: 'searchset', total: entry.length, entry: nonEmpty(entry) };
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
