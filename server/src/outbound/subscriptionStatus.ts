import type { Bundle, OperationDefinition, OperationDefinitionParameter, Subscription } from 'fhir/r4.js';
import type { FhirContext, OperationArgs, OperationDefinitionEntry } from '../fhir/context.js';
import type { FhirRequest, FhirResponse } from '../fhir/request.js';
import { mayAccess, readVisible } from '../fhir/guard.js';
import { parseOperationInput, type ParsedParameters } from '../fhir/operations/parameters.js';
import { badRequest } from '../fhir/outcomes.js';
import type { SearchParamRegistry } from '../fhir/search/registry.js';
import type { FhirStore } from '../storage/FhirStore.js';
import { eventCount, statusEntry, statusParameters, type PayloadContent } from './notifications.js';
import { activeSubscriptions } from './subscriptions.js';
import { pagesInIdOrder } from '../storage/pages.js';
import { BACKPORT, namesOurTopic } from './topic.js';
import { nonEmpty } from '../fhir/jsonRules.js';

/**
 * One of the backport IG's read-only operations on Subscription, declared by the IG's canonical (router and
 * CapabilityStatement); `run` gets its inputs parsed against the IG's parameters.
 */
export function backportOperation(
  op: { url: string; name: string; code: string; typeLevel: boolean; parameter: OperationDefinitionParameter[] },
  run: (req: FhirRequest, ctx: FhirContext, args: OperationArgs, params: ParsedParameters) => Promise<FhirResponse>,
): OperationDefinitionEntry {
  const definition: OperationDefinition = { resourceType: 'OperationDefinition', url: op.url, name: op.name, status: 'active', kind: 'operation', code: op.code, resource: ['Subscription'], system: false, type: op.typeLevel, instance: true, parameter: op.parameter };
  return {
    name: op.code,
    levels: op.typeLevel ? ['instance', 'type'] : ['instance'],
    resourceTypes: ['Subscription'],
    interaction: 'read',
    affectsState: false,
    definition: op.url,
    handler: (req, ctx, args) => run(req, ctx, args, parseOperationInput(req, definition)),
  };
}

const STATUS_PARAMETERS: OperationDefinitionParameter[] = [
  { name: 'id', use: 'in', min: 0, max: '*', type: 'id' },
  { name: 'status', use: 'in', min: 0, max: '*', type: 'code' },
  { name: 'return', use: 'out', min: 1, max: '1', type: 'Bundle' },
];

/**
 * `Subscription/[id]/$status` and `Subscription/$status?id=..&status=..`: a searchset Bundle of
 * SubscriptionStatus Parameters (type query-status), one per Subscription the caller may see.
 */
export function subscriptionStatusOperation(deps: { registry: SearchParamRegistry }): OperationDefinitionEntry {
  const op = { url: BACKPORT.statusOperation, name: 'R5SubscriptionStatus', code: 'status', typeLevel: true, parameter: STATUS_PARAMETERS };
  return backportOperation(op, async (req, ctx, args, params) => {
    let subs: Subscription[];
    if (args.id) {
      subs = [await readTopicSubscription(req, ctx, args.id, 'status')];
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
  });
}

/** The topic-based Subscription an instance-level operation is about: 404 where its read would be (subscriptionAccess.ts), 400 for another kind. */
export async function readTopicSubscription(req: FhirRequest, ctx: FhirContext, id: string, operation: string): Promise<Subscription> {
  const sub = (await readVisible(req, ctx, ctx.store, 'Subscription', id)) as Subscription;
  if (!namesOurTopic(sub.criteria)) throw badRequest(`$${operation} applies to topic-based subscriptions`);
  return sub;
}

async function topicSubscriptions(store: FhirStore): Promise<Subscription[]> {
  const found: Subscription[] = [];
  let pages = 0;
  for await (const page of pagesInIdOrder(store, { resourceType: 'Subscription', clauses: [], sort: [], count: 500, offset: 0, total: false })) {
    found.push(...(page as Subscription[]).filter((s) => namesOurTopic(s.criteria)));
    if (++pages === 20) break; // 10,000 Subscriptions at most
  }
  return found;
}

/** The payload content a Subscription asked for (an unknown code, refused on write, as the default id-only). */
export function contentOf(sub: Subscription): PayloadContent {
  const code = sub.channel._payload?.extension?.find((e) => e.url === BACKPORT.payloadContent)?.valueCode;
  return code === 'empty' || code === 'full-resource' ? code : 'id-only';
}
