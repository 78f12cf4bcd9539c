import { AsyncLocalStorage } from 'node:async_hooks';
import type { Resource, Subscription } from 'fhir/r4.js';
import { z } from 'zod';
import { FhirError, unprocessable } from '../fhir/outcomes.js';
import { parseSearch } from '../fhir/search/parse.js';
import type { SearchParamRegistry } from '../fhir/search/registry.js';
import type { Logger } from '../log.js';
import type { FhirStore, WriteHook } from '../storage/FhirStore.js';
import type { NetworkPolicy, OutboundConfig } from './config.js';
import { classifyHttpError, describeError, isSuccessfulNonJson, PermanentError, TransientError } from './errors.js';
import { checkOutboundUrl, fhirClient, requestOptions } from './http.js';
import { eventCount, nextEventNumber, notificationBundle, type NotificationType, type PayloadContent } from './notifications.js';
import { BACKPORT, isCaseResource, isTopicResourceType, parseFilters, passesFilters, TOPIC_URL, type TopicFilter } from './topic.js';
import type { OutboxHandler } from './worker.js';

/**
 * Topic-based Subscriptions (Subscriptions R5 Backport IG 1.1, R4): validation of client
 * Subscriptions, the write hook that turns changes into notifications in the same transaction,
 * the `rest-hook` outbox handler (handshake, heartbeat, event notification) and the heartbeat
 * scheduler. Notifications go through the shared outbox worker.
 */
export const REST_HOOK = 'rest-hook';

export interface SubscriptionDeps {
  store: FhirStore;
  registry: SearchParamRegistry;
  fhirBase: string;
  network: NetworkPolicy;
  settings: OutboundConfig['subscriptions'];
  logger: Logger;
}

/** A Subscription as this server understands it, after validation. */
export interface ChannelSettings {
  id: string;
  status: 'requested' | 'active' | 'error' | 'off';
  filters: TopicFilter[];
  endpoint: string;
  headers: Record<string, string>;
  content: PayloadContent;
  heartbeatSeconds?: number;
  timeoutMs: number;
  end?: number;
}

const Extension = z.looseObject({ url: z.string() });
/** What a client sent (network input): only the parts we act on are checked here. */
const SubscriptionInput = z.looseObject({
  resourceType: z.literal('Subscription'),
  id: z.string(),
  status: z.enum(['requested', 'active', 'error', 'off']),
  criteria: z.string(),
  end: z.string().optional(),
  channel: z.looseObject({
    type: z.string(),
    endpoint: z.string().optional(),
    payload: z.string().optional(),
    _payload: z.looseObject({ extension: z.array(z.looseObject({ url: z.string(), valueCode: z.string().optional() })).optional() }).optional(),
    header: z.array(z.string()).max(10).optional(),
    extension: z.array(Extension.extend({ valueUnsignedInt: z.number().int().min(0).optional() })).optional(),
  }),
});

const FORBIDDEN_HEADERS = new Set(['host', 'content-length', 'content-type', 'transfer-encoding', 'connection', 'upgrade', 'expect', 'te', 'trailer', 'keep-alive', 'proxy-authorization']);

/** Checks a client's Subscription against what we support; FhirError 400/422 naming the problem. */
export function channelSettings(subscription: Resource, deps: Pick<SubscriptionDeps, 'registry' | 'fhirBase' | 'network' | 'settings'>): ChannelSettings {
  const parsed = SubscriptionInput.safeParse(subscription);
  if (!parsed.success) {
    const path = parsed.error.issues[0]?.path.join('.') ?? '';
    throw unprocessable(`Subscription.${path}: ${parsed.error.issues[0]?.message ?? 'invalid'}`, [`Subscription.${path}`]);
  }
  const sub = parsed.data;
  if (sub.criteria !== TOPIC_URL) {
    throw unprocessable(`Only topic-based subscriptions are supported: Subscription.criteria must be ${TOPIC_URL}`, ['Subscription.criteria']);
  }
  if (sub.channel.type !== 'rest-hook') throw unprocessable("Only channel.type 'rest-hook' is supported", ['Subscription.channel.type']);
  if (!sub.channel.endpoint) throw unprocessable('A rest-hook channel needs channel.endpoint', ['Subscription.channel.endpoint']);
  try {
    checkOutboundUrl(sub.channel.endpoint, deps.network, 'channel.endpoint');
  } catch (err) {
    throw unprocessable(describeError(err), ['Subscription.channel.endpoint']);
  }
  const mime = (sub.channel.payload ?? '').split(';')[0].trim();
  if (mime !== 'application/fhir+json' && mime !== 'application/json') {
    throw unprocessable('channel.payload must be application/fhir+json', ['Subscription.channel.payload']);
  }
  const content = sub.channel._payload?.extension?.find((e) => e.url === BACKPORT.payloadContent)?.valueCode ?? 'id-only';
  if (content !== 'empty' && content !== 'id-only' && content !== 'full-resource') {
    throw unprocessable(`Unknown payload content '${content.slice(0, 40)}' (empty, id-only or full-resource)`, ['Subscription.channel.payload']);
  }
  const ext = (url: string) => sub.channel.extension?.find((e) => e.url === url)?.valueUnsignedInt;
  const heartbeatSeconds = ext(BACKPORT.heartbeatPeriod);
  if (heartbeatSeconds !== undefined && heartbeatSeconds < deps.settings.minHeartbeatSeconds) {
    throw unprocessable(`The heartbeat period must be at least ${deps.settings.minHeartbeatSeconds} seconds`, ['Subscription.channel']);
  }
  const timeoutSeconds = ext(BACKPORT.timeout);
  const end = sub.end ? Date.parse(sub.end) : undefined;
  if (end !== undefined && Number.isNaN(end)) throw unprocessable('Subscription.end is not a valid instant', ['Subscription.end']);
  return {
    id: sub.id,
    status: sub.status,
    filters: parseFilters(subscription as Subscription, deps.registry, deps.fhirBase, deps.settings.maxFilters),
    endpoint: sub.channel.endpoint,
    headers: parseHeaders(sub.channel.header ?? []),
    content,
    heartbeatSeconds: heartbeatSeconds || undefined,
    timeoutMs: timeoutSeconds ? Math.min(timeoutSeconds * 1000, deps.network.timeoutMs) : deps.network.timeoutMs,
    end,
  };
}

function parseHeaders(lines: string[]): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const m = /^([!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}):\s?(.{0,4096})$/.exec(line);
    if (!m || /[\r\n]/.test(m[2])) throw unprocessable('Each channel.header must read "Name: value"', ['Subscription.channel.header']);
    if (FORBIDDEN_HEADERS.has(m[1].toLowerCase())) throw unprocessable(`channel.header may not set ${m[1]}`, ['Subscription.channel.header']);
    headers[m[1].toLowerCase()] = m[2];
  }
  return headers;
}

/** Writes of this module to Subscriptions (status changes) are not client requests: the hook lets them through. */
const internalWrite = new AsyncLocalStorage<true>();

/** Sets a Subscription's status as the server (active after a handshake, error after failures). */
export async function setSubscriptionStatus(store: FhirStore, id: string, status: 'active' | 'error', error?: string): Promise<void> {
  await store.transaction((tx) => setSubscriptionStatusInTx(tx, id, status, error));
}

/** The same, in the caller's transaction (the dead-letter transaction). */
export async function setSubscriptionStatusInTx(tx: FhirStore, id: string, status: 'active' | 'error', error?: string): Promise<void> {
  await internalWrite.run(true, async () => {
    const current = (await tx.find('Subscription', id)) as Subscription | undefined;
    if (!current || (status === 'active' && current.status !== 'requested') || current.status === 'off') return;
    // The first error says what went wrong; later ones (the dead letter of that message) add nothing.
    if (current.status === status && (status === 'error' || current.error === error)) return;
    const next: Subscription = { ...current, status };
    if (error) next.error = error.slice(0, 500);
    else delete next.error;
    await tx.update(next, current.meta?.versionId);
  });
}

const sameChannel = (a: Subscription | undefined, b: Subscription) =>
  a !== undefined && a.channel.endpoint === b.channel.endpoint && JSON.stringify(a.channel.header ?? []) === JSON.stringify(b.channel.header ?? []);

/**
 * The write hook: validates client Subscriptions (and queues their handshake), and turns every
 * create or update of a topic resource of a second-opinion case into one event notification per
 * matching active Subscription, enqueued in the writer's transaction.
 */
export function subscriptionWriteHook(deps: SubscriptionDeps): WriteHook {
  return async (tx, change) => {
    if (change.resourceType === 'Subscription') {
      activeInTransaction.delete(tx);
      if (internalWrite.getStore() || change.kind === 'delete' || !change.resource) return;
      await onSubscriptionWrite(deps, tx, change.resource as Subscription, change.previous as Subscription | undefined, change.kind === 'create');
      return;
    }
    if (change.kind === 'delete' || !change.resource || !isTopicResourceType(change.resourceType)) return;
    await onTopicEvent(deps, tx, change.resource, change.kind === 'create');
  };
}

async function onSubscriptionWrite(deps: SubscriptionDeps, tx: FhirStore, sub: Subscription, previous: Subscription | undefined, created: boolean): Promise<void> {
  // Switching off is always allowed, even for a Subscription stored under older rules.
  if (!created && sub.status === 'off') return;
  const settings = channelSettings(sub, deps);
  const serverOwned = settings.status === 'active' || settings.status === 'error';
  if (created && serverOwned) {
    throw unprocessable('A new Subscription has status requested; the server activates it after a successful handshake', ['Subscription.status']);
  }
  if (!created && serverOwned && previous?.status !== settings.status) {
    throw unprocessable('Only the server sets status active or error; send requested to re-activate', ['Subscription.status']);
  }
  if (!created && settings.status === 'active' && !sameChannel(previous, sub)) {
    throw unprocessable('Changing the channel needs status requested (and a new handshake)', ['Subscription.status']);
  }
  if (settings.status !== 'requested') return;
  if (created || previous?.status !== 'requested' || !sameChannel(previous, sub)) {
    await tx.enqueue(REST_HOOK, { type: 'handshake', subscription: settings.id }, `${REST_HOOK}:${settings.id}:handshake:${sub.meta?.versionId ?? '1'}`);
  }
}

/** Active topic Subscriptions, in id order (the order their counters are locked in, so writers cannot deadlock). */
export async function activeSubscriptions(store: FhirStore, registry: SearchParamRegistry, baseUrl: string): Promise<Subscription[]> {
  const found: Subscription[] = [];
  const { query } = parseSearch('Subscription', [['status', 'active']], registry, { strict: true, baseUrl });
  for (let offset = 0; ; offset += 500) {
    const page = await store.search({ ...query, sort: [{ param: '_id', kind: 'id', descending: false }], count: 500, offset });
    found.push(...(page.resources as Subscription[]).filter((s) => s.criteria === TOPIC_URL));
    if (!page.hasMore) return found;
  }
}

/**
 * The active Subscriptions as one transaction sees them, looked up once per transaction: a `$submit`
 * writes eight resources and the hook runs for each. A Subscription write in the transaction clears it.
 */
const activeInTransaction = new WeakMap<FhirStore, Promise<Subscription[]>>();

function activeSubscriptionsInTx(tx: FhirStore, deps: SubscriptionDeps): Promise<Subscription[]> {
  let active = activeInTransaction.get(tx);
  if (!active) {
    active = activeSubscriptions(tx, deps.registry, deps.fhirBase);
    activeInTransaction.set(tx, active);
  }
  return active;
}

async function onTopicEvent(deps: SubscriptionDeps, tx: FhirStore, resource: Resource, created: boolean): Promise<void> {
  const subscriptions = await activeSubscriptionsInTx(tx, deps);
  if (!subscriptions.length || !(await isCaseResource(tx, resource))) return;
  const timestamp = resource.meta?.lastUpdated ?? new Date().toISOString();
  for (const sub of subscriptions) {
    let settings: ChannelSettings;
    try {
      settings = channelSettings(sub, deps);
    } catch {
      continue; // stored before a rule changed; it gets nothing until it is fixed
    }
    if (settings.end !== undefined && settings.end < Date.now()) continue;
    if (!(await passesFilters(tx, settings.filters, resource))) continue;
    const number = await nextEventNumber(tx, settings.id);
    const payload: RestHookPayload = {
      type: 'event-notification',
      subscription: settings.id,
      eventNumber: number,
      timestamp,
      focus: { resourceType: resource.resourceType, id: resource.id!, versionId: resource.meta?.versionId ?? '1' },
      created,
    };
    await tx.enqueue(REST_HOOK, payload, `${REST_HOOK}:${settings.id}:event:${number}`);
  }
}

const Id = z.string().regex(/^[A-Za-z0-9\-.]{1,64}$/);
export const RestHookPayload = z.discriminatedUnion('type', [
  z.object({ type: z.literal('handshake'), subscription: Id }),
  z.object({ type: z.literal('heartbeat'), subscription: Id }),
  z.object({
    type: z.literal('event-notification'),
    subscription: Id,
    eventNumber: z.number().int().positive(),
    timestamp: z.string(),
    focus: z.object({ resourceType: z.string().regex(/^[A-Z][A-Za-z]+$/), id: Id, versionId: z.string().min(1) }),
    created: z.boolean(),
  }),
]);
export type RestHookPayload = z.infer<typeof RestHookPayload>;

/**
 * Handler of `rest-hook`: POSTs the notification Bundle to channel.endpoint with the channel's
 * headers. What is sent is decided at send time from the Subscription as it is then (a Subscription
 * switched off or deleted gets nothing more). A handshake that keeps failing puts the Subscription
 * in status error; a successful one activates it.
 */
export function restHookHandler(deps: SubscriptionDeps): OutboxHandler {
  return async (raw, attempt) => {
    const parsed = RestHookPayload.safeParse(raw);
    if (!parsed.success) throw new PermanentError('rest-hook: malformed outbox payload');
    const message = parsed.data;
    const sub = (await deps.store.find('Subscription', message.subscription)) as Subscription | undefined;
    if (!sub || sub.criteria !== TOPIC_URL) return;
    if (message.type === 'handshake' ? sub.status !== 'requested' : sub.status !== 'active') return;
    let settings: ChannelSettings;
    try {
      settings = channelSettings(sub, deps);
    } catch (err) {
      throw new PermanentError(`rest-hook: the Subscription is no longer valid (${err instanceof FhirError ? err.status : describeError(err)})`);
    }
    const bundle = await buildNotification(deps, settings, message);
    try {
      await post(settings, bundle, deps.network);
    } catch (err) {
      const failure = classifyHttpError(err, `rest-hook ${message.type}`);
      if (message.type === 'handshake' && (failure instanceof PermanentError || attempt >= deps.settings.handshakeAttempts)) {
        await setSubscriptionStatus(deps.store, settings.id, 'error', `handshake failed: ${failure.message}`);
        throw new PermanentError(failure.message);
      }
      throw failure;
    }
    if (message.type === 'handshake') {
      try {
        await setSubscriptionStatus(deps.store, settings.id, 'active');
      } catch (err) {
        // The client changed the Subscription while we were sending: handshake again.
        throw new TransientError(`rest-hook handshake: could not activate (${describeError(err)})`);
      }
    }
  };
}

async function buildNotification(deps: SubscriptionDeps, settings: ChannelSettings, message: RestHookPayload) {
  const type: NotificationType = message.type;
  if (message.type !== 'event-notification') {
    const eventsSinceStart = await eventCount(deps.store, settings.id);
    return notificationBundle({ fhirBase: deps.fhirBase, subscriptionId: settings.id, status: settings.status, type, eventsSinceStart, content: settings.content });
  }
  const focus = `${message.focus.resourceType}/${message.focus.id}`;
  const focusResource =
    settings.content === 'full-resource'
      ? await deps.store.vread(message.focus.resourceType, message.focus.id, message.focus.versionId).catch(() => undefined)
      : undefined;
  return notificationBundle({
    fhirBase: deps.fhirBase,
    subscriptionId: settings.id,
    status: settings.status,
    type,
    // As of the event (IG example: event-number 2, events-since-subscription-start 2), so a client
    // compares it with the numbers it has received to find gaps.
    eventsSinceStart: message.eventNumber,
    content: settings.content,
    event: { number: message.eventNumber, timestamp: message.timestamp, focus },
    focusResource,
    created: message.created,
  });
}

async function post(settings: ChannelSettings, bundle: unknown, network: NetworkPolicy): Promise<void> {
  const client = fhirClient(settings.endpoint);
  try {
    await client.request(settings.endpoint, {
      method: 'POST',
      body: bundle,
      options: requestOptions({ ...settings.headers, 'content-type': 'application/fhir+json' }, settings.timeoutMs, network),
    });
  } catch (err) {
    if (isSuccessfulNonJson(err)) return;
    throw err;
  }
}

/**
 * Queues heartbeats (backport-heartbeat-period) for active Subscriptions. One outbox row per
 * subscription and period slot (the dedupe key), so several server processes running the
 * scheduler do not multiply them.
 */
export class HeartbeatScheduler {
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private current: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly deps: SubscriptionDeps,
    private readonly intervalMs: number,
  ) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    const loop = () => {
      this.current = this.runOnce().catch((err) => this.deps.logger.warn('heartbeat_schedule_failed', { error: describeError(err) }));
      void this.current.then(() => {
        if (this.running) {
          this.timer = setTimeout(loop, this.intervalMs);
          this.timer.unref();
        }
      });
    };
    loop();
  }

  async stop(): Promise<void> {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    await this.current;
  }

  /** Enqueues the heartbeats that are due now; returns how many subscriptions have one due. */
  async runOnce(now = Date.now()): Promise<number> {
    const { store, registry, fhirBase } = this.deps;
    let due = 0;
    for (const sub of await activeSubscriptions(store, registry, fhirBase)) {
      let settings: ChannelSettings;
      try {
        settings = channelSettings(sub, this.deps);
      } catch {
        continue;
      }
      if (!settings.heartbeatSeconds || (settings.end !== undefined && settings.end < now)) continue;
      const periodMs = settings.heartbeatSeconds * 1000;
      // Just activated (or changed): the handshake or last change is recent enough.
      if (now - Date.parse(sub.meta?.lastUpdated ?? '') < periodMs) continue;
      const slot = Math.floor(now / periodMs);
      await store.enqueue(REST_HOOK, { type: 'heartbeat', subscription: settings.id }, `${REST_HOOK}:${settings.id}:heartbeat:${slot}`);
      due++;
    }
    return due;
  }
}
