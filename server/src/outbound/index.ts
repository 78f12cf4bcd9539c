import type { AuditSink } from '../fhir/context.js';
import type { Task } from 'fhir/r4.js';
import type { OperationDefinitionEntry, ResourceAccessRule } from '../fhir/context.js';
import type { SearchParamRegistry } from '../fhir/search/registry.js';
import type { Logger } from '../log.js';
import type { FhirStore, WriteHook } from '../storage/FhirStore.js';
import { CDEX_POLL, cdexPollHandler, enqueueInformationRequest, type InformationRequest } from './cdex.js';
import { loadOutboundConfig, type OutboundConfig, type OutboundConfigInput } from './config.js';
import { deadLetterRecorder } from './deadLetter.js';
import { endpointsFor, enqueueDelivery, FHIR_CREATE, fhirCreateHandler, type DeliveryRequest, type ProviderEndpoint } from './deliveries.js';
import { ProviderAuth } from './providerAuth.js';
import { subscriptionAccessRule } from './subscriptionAccess.js';
import { subscriptionEventsOperation } from './subscriptionEvents.js';
import { subscriptionStatusOperation } from './subscriptionStatus.js';
import { HeartbeatScheduler } from './subscriptionScheduler.js';
import { endGrantSubscriptions, REST_HOOK, restHookHandler, subscriptionWriteHook, type SubscriptionDeps } from './subscriptions.js';
import { publishTopic } from './topic.js';
import { topicAccessRule } from './topicAccess.js';
import { OutboxWorker, type OutboxMetrics } from './worker.js';

export { loadOutboundConfig, OutboundConfigSchema, type OutboundConfig, type OutboundConfigInput } from './config.js';
export { SUBSCRIPTION_OWNER_SYSTEM, subscriptionOwner } from './subscriptionAccess.js';
export { TOPIC_URL } from './topic.js';
export type { DeliveryRequest, InformationRequest, ProviderEndpoint };
export type { OutboxMetrics };

export interface OutboundEnv {
  store: FhirStore;
  registry: SearchParamRegistry;
  /** Our FHIR base (notification references, filter parsing). */
  fhirBase: string;
  /** Validated config, raw input, or a JSON file path. */
  config: OutboundConfig | OutboundConfigInput | string | undefined;
  logger: Logger;
  /** For tests: the fetch used for token requests. */
  fetch?: typeof fetch;
  /** Where disclosures to other systems are recorded (AuditEvents); none in tests of this module alone. */
  audit?: AuditSink;
  /** Whether a Subscription's owner is still authorized (SubscriptionDeps.ownerStands). */
  ownerStands?: SubscriptionDeps['ownerStands'];
  /** Whether a Subscription's owner may see what an event is about (SubscriptionDeps.ownerSees). */
  ownerSees?: SubscriptionDeps['ownerSees'];
  /** Whether an authorization grant has ended (SubscriptionDeps.grantEnded). */
  grantEnded?: SubscriptionDeps['grantEnded'];
}

export interface Outbound {
  /** Outbox worker and heartbeat scheduler: ServerParts.workers. */
  workers: { start(): void; stop(): Promise<void> }[];
  worker: OutboxWorker;
  heartbeats: HeartbeatScheduler;
  /** Register with store.addWriteHook before serving. */
  writeHook: WriteHook;
  /** `$status` and `$events` on Subscription: ServerParts.operations. */
  operations: OperationDefinitionEntry[];
  enqueueDelivery(tx: FhirStore, request: DeliveryRequest): Promise<void>;
  enqueueInformationRequest(tx: FhirStore, request: InformationRequest): Promise<Task>;
  endpointsFor(store: FhirStore, reference: string): Promise<ProviderEndpoint[]>;
  /**
   * Who may see and change Subscriptions (owner, filters within the owner's grant, headers) and the
   * published topic Basic (plan administration): ServerParts.accessRules.
   */
  accessRules: Record<string, ResourceAccessRule>;
  metrics(): OutboxMetrics;
  config: OutboundConfig;
  /** Turns off the Subscriptions bound to an authorization grant just revoked. */
  endGrant(grantId: string): Promise<void>;
}

/**
 * Everything the server sends to others, wired in one place: provider deliveries (`fhir-create`),
 * CDex information requests (`cdex-poll`) and subscription notifications (`rest-hook`), all
 * through one outbox worker. Publishes the subscription topic (a Basic) in the store.
 */
export async function createOutbound(env: OutboundEnv): Promise<Outbound> {
  // Parsing is idempotent: an already validated config passes through unchanged.
  const config = loadOutboundConfig(env.config);
  const { store, registry, fhirBase, logger } = env;
  const auth = new ProviderAuth(config.credentials, { network: config.network, fetch: env.fetch });
  const delivery = { auth, network: config.network, fhirBase, audit: env.audit };
  const subscriptionDeps = { store, registry, fhirBase, network: config.network, settings: config.subscriptions, logger, audit: env.audit, ownerStands: env.ownerStands, ownerSees: env.ownerSees, grantEnded: env.grantEnded };
  await publishTopic(store);
  const worker = new OutboxWorker({
    store,
    handlers: {
      [FHIR_CREATE]: fhirCreateHandler(delivery),
      [CDEX_POLL]: cdexPollHandler({ ...delivery, store, settings: config.cdex }),
      [REST_HOOK]: restHookHandler(subscriptionDeps),
    },
    ...config.worker,
    onDeadLetter: deadLetterRecorder({ planOrganization: config.planOrganization, registry, fhirBase, logger }),
    logger,
  });
  const heartbeats = new HeartbeatScheduler(subscriptionDeps, config.subscriptions.heartbeatCheckMs);
  return {
    workers: [worker, heartbeats],
    worker,
    heartbeats,
    writeHook: subscriptionWriteHook(subscriptionDeps),
    operations: [subscriptionStatusOperation({ registry }), subscriptionEventsOperation({ settings: config.subscriptions })],
    enqueueDelivery,
    enqueueInformationRequest: (tx, request) => enqueueInformationRequest(tx, request, config.cdex),
    endpointsFor,
    endGrant: (grantId) => endGrantSubscriptions(subscriptionDeps, grantId),
    accessRules: {
      Subscription: subscriptionAccessRule({ registry, baseUrl: fhirBase, maxFilters: config.subscriptions.maxFilters }),
      Basic: topicAccessRule,
    },
    metrics: () => worker.metrics(),
    config,
  };
}
