import type { AuditSink } from '../fhir/context.js';
import { auditExport, type Export, patientNamed } from './exportAudit.js';
import { AsyncLocalStorage } from 'node:async_hooks';
import type { Resource, Subscription } from 'fhir/r4.js';
import { z } from 'zod';
import { FhirError, outcome, unprocessable } from '../fhir/outcomes.js';
import { parseSearch } from '../fhir/search/parse.js';
import type { SearchParamRegistry } from '../fhir/search/registry.js';
import type { Logger } from '../log.js';
import type { FhirStore, WriteHook } from '../storage/FhirStore.js';
import { everyMatch } from '../storage/pages.js';
import type { NetworkPolicy, OutboundConfig } from './config.js';
import { classifyHttpError, describeError, isSuccessfulNonJson, PermanentError, TransientError } from './errors.js';
import { fhirClient, requestOptions } from './http.js';
import { eventCount, nextEventNumber, notificationBundle, type NotificationType } from './notifications.js';
import { ownerOf, SUBSCRIPTION_GRANT_SYSTEM, subscriptionGrant, subscriptionOwner, SUBSCRIPTION_OWNER_SYSTEM } from './subscriptionAccess.js';
import { channelSettings, type ChannelSettings, type SettingsDeps, type SubscriptionStatus } from './subscriptionSettings.js';
import { checkTopicVersion, isCaseResource, isTopicResourceType, namesOurTopic, passesFilters } from './topic.js';
import type { OutboxHandler } from './worker.js';

/**
 * Topic-based Subscriptions (Subscriptions R5 Backport IG 1.1, R4): the write hook that checks client
 * Subscriptions (subscriptionSettings.ts) and turns changes into notifications in the same
 * transaction, and the `rest-hook` outbox handler (handshake, heartbeat, event notification).
 * Notifications go through the shared outbox worker; subscriptionScheduler.ts sends heartbeats and
 * ends Subscriptions whose end has passed.
 */
export const REST_HOOK = 'rest-hook';

export interface SubscriptionDeps {
  store: FhirStore;
  registry: SearchParamRegistry;
  fhirBase: string;
  network: NetworkPolicy;
  settings: OutboundConfig['subscriptions'];
  logger: Logger;
  audit?: AuditSink;
  /**
   * Whether a Subscription's owner is still authorized: its client registered and its user still standing (a
   * practitioner with a role, an existing member). Asked before each event notification; unset, always.
   */
  ownerStands?: (owner: { clientId: string; user?: string }) => Promise<boolean>;
  /**
   * Whether the authorization grant a Subscription was made under has ended: revoked, or (without offline_access)
   * every token of it expired. Asked before each event notification and at each scheduler pass; unset, never.
   */
  grantEnded?: (grantId: string) => Promise<boolean>;
  /**
   * Whether a Subscription's owner may see the record an event is about (a user sees only some members, see
   * workflow/memberAccess.ts); asked in the writing transaction (`tx`) before an event is counted. Unset, always.
   */
  ownerSees?: (owner: { clientId: string; user?: string }, resource: Resource, tx: FhirStore) => Promise<boolean>;
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

/**
 * Turns a Subscription off once its end has passed (R4 Subscription.end: "the time for the server to
 * turn the subscription off"). Judged again in the transaction: the client may have moved the end.
 */
export async function endSubscription(store: FhirStore, id: string, now: number): Promise<boolean> {
  return turnOff(store, id, (current) => hasEnded(current, now));
}

/** Turns a Subscription off when `still` holds of it as stored (judged in the transaction), saying why in `error`. */
async function turnOff(store: FhirStore, id: string, still: (current: Subscription) => boolean, why?: string): Promise<boolean> {
  return store.transaction((tx) =>
    internalWrite.run(true, async () => {
      const current = (await tx.find('Subscription', id)) as Subscription | undefined;
      if (!current || current.status === 'off' || !still(current)) return false;
      await tx.update({ ...current, status: 'off', ...(why ? { error: why } : {}) }, current.meta?.versionId);
      return true;
    }),
  );
}

/** Turns off every Subscription bound to a revoked authorization grant, at once: not only at its next event. */
export async function endGrantSubscriptions(deps: Pick<SubscriptionDeps, 'store' | 'registry' | 'fhirBase'>, grantId: string): Promise<void> {
  const { query } = parseSearch('Subscription', [['_tag', `${SUBSCRIPTION_GRANT_SYSTEM}|${grantId}`]], deps.registry, { strict: true, baseUrl: deps.fhirBase });
  const { resources } = await deps.store.search({ ...query, count: 1000 });
  for (const sub of resources) await turnOff(deps.store, sub.id!, (current) => subscriptionGrant(current) === grantId, "the owner's authorization has ended (grant revoked)");
}

/**
 * An event notification goes out only while its Subscription's owner is still authorized: the authorization was
 * judged when the Subscription was written, and a practitioner whose roles were withdrawn, or a client no longer
 * registered, would otherwise go on receiving case data. Such a Subscription is turned off (R4: by the server).
 */
async function ownerStillStands(deps: SubscriptionDeps, sub: Subscription): Promise<boolean> {
  if (await endIfGrantEnded(deps, sub)) return false;
  const code = subscriptionOwner(sub);
  if (!deps.ownerStands || !code) return true;
  const owner = ownerOf(code);
  if (owner && (await deps.ownerStands(owner))) return true;
  await turnOff(deps.store, sub.id!, () => true, "the owner's authorization has ended (client no longer registered, or user without a role)");
  return false;
}

/**
 * Turns a Subscription off when the authorization grant it was made under has ended (SubscriptionDeps.grantEnded):
 * an online_access grant whose refresh token lapsed ends as a revoked one does. True when it did.
 */
export async function endIfGrantEnded(deps: Pick<SubscriptionDeps, 'store' | 'grantEnded'>, sub: Subscription): Promise<boolean> {
  const grant = subscriptionGrant(sub);
  if (!grant || !deps.grantEnded || !(await deps.grantEnded(grant))) return false;
  await turnOff(deps.store, sub.id!, (current) => subscriptionGrant(current) === grant, "the owner's authorization has ended (grant revoked or expired)");
  return true;
}

/** The oldest instant of the events a Subscription's event log keeps (eventRetention.days). */
export const eventsKeptSince = (settings: OutboundConfig['subscriptions'], now = Date.now()): Date => new Date(now - settings.eventRetention.days * 86_400_000);

/** Whether Subscription.end has passed; an end that is not an instant (refused on write) is no end. */
export function hasEnded(sub: Subscription, now: number): boolean {
  const end = sub.end === undefined ? Number.NaN : Date.parse(sub.end);
  return !Number.isNaN(end) && end <= now;
}

const sameChannel = (a: Subscription | undefined, b: Subscription) =>
  a !== undefined && a.channel.endpoint === b.channel.endpoint && JSON.stringify(a.channel.header ?? []) === JSON.stringify(b.channel.header ?? []);

/**
 * The write hook: validates client Subscriptions (and queues their handshake), and turns every
 * create or update of a topic resource of a second-opinion case into one event per matching
 * Subscription that counts events, notified (enqueued in the writer's transaction) to active ones.
 */
export function subscriptionWriteHook(deps: SubscriptionDeps): WriteHook {
  return async (tx, change) => {
    if (change.resourceType === 'Subscription') {
      countingInTransaction.delete(tx);
      // A deleted Subscription's events are nobody's to ask for ($events answers 410).
      if (change.kind === 'delete') await tx.forgetSubscriptionEvents({ subscriptionId: change.id });
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
  await checkTopicVersion(tx, sub.criteria);
  checkStatusChange(settings, sub, previous, created);
  if (settings.end !== undefined && settings.end <= Date.now() && settings.status !== 'off') {
    throw unprocessable('Subscription.end has passed: the subscription would be over before it starts', ['Subscription.end']);
  }
  if (settings.status !== 'off' && (created || !previous || previous.status === 'off')) await checkOwnerLimit(deps, tx, sub);
  if (settings.status !== 'requested') return;
  if (created || previous?.status !== 'requested' || !sameChannel(previous, sub)) {
    await tx.enqueue(REST_HOOK, { type: 'handshake', subscription: settings.id }, `${REST_HOOK}:${settings.id}:handshake:${sub.meta?.versionId ?? '1'}`);
  }
}

function checkStatusChange(settings: ChannelSettings, sub: Subscription, previous: Subscription | undefined, created: boolean): void {
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
}

/**
 * At most `maxPerOwner` Subscriptions per owner that are not off: each one costs a filter search and
 * a counter lock in every case write (probe 6, M5). Error ones count, as they keep counting events.
 * The owner lock serializes an owner's concurrent creates. Without auth there is no owner and no limit.
 */
async function checkOwnerLimit(deps: SubscriptionDeps, tx: FhirStore, sub: Subscription): Promise<void> {
  const owner = subscriptionOwner(sub);
  if (!owner) return;
  const max = deps.settings.maxPerOwner;
  await tx.lock(`subscription-owner:${owner}`);
  const params: [string, string][] = [
    ['_tag', `${SUBSCRIPTION_OWNER_SYSTEM}|${owner}`],
    ['status', COUNTING.join(',')],
  ];
  const { query } = parseSearch('Subscription', params, deps.registry, { strict: true, baseUrl: deps.fhirBase });
  const { resources } = await tx.search({ ...query, sort: [], count: max + 1, offset: 0, total: false });
  if (resources.filter((r) => r.id !== sub.id).length < max) return;
  throw new FhirError(422, outcome('error', 'business-rule', `At most ${max} Subscriptions per client and user may be requested, active or in error; switch one off or delete it first`, ['Subscription']));
}

/**
 * Subscriptions that count events: requested and error ones too, which are not sent them. The IG
 * (errors.md, "Handling Errors as a Server") has a server keep counting while in error, so that after
 * re-activation the numbers show the subscriber what it missed.
 */
const COUNTING: SubscriptionStatus[] = ['requested', 'active', 'error'];

/** Topic Subscriptions of the given statuses, in id order (the order their counters are locked in, so writers cannot deadlock). */
export async function subscriptionsWithStatus(store: FhirStore, registry: SearchParamRegistry, baseUrl: string, statuses: SubscriptionStatus[]): Promise<Subscription[]> {
  const { query } = parseSearch('Subscription', [['status', statuses.join(',')]], registry, { strict: true, baseUrl });
  return ((await everyMatch(store, query)) as Subscription[]).filter((s) => namesOurTopic(s.criteria));
}


export const activeSubscriptions = (store: FhirStore, registry: SearchParamRegistry, baseUrl: string): Promise<Subscription[]> =>
  subscriptionsWithStatus(store, registry, baseUrl, ['active']);

/** The Subscriptions that count events (see COUNTING). */
export const countingSubscriptions = (store: FhirStore, registry: SearchParamRegistry, baseUrl: string): Promise<Subscription[]> =>
  subscriptionsWithStatus(store, registry, baseUrl, COUNTING);

/**
 * The counting Subscriptions as one transaction sees them, looked up once per transaction: a `$submit`
 * writes eight resources and the hook runs for each. A Subscription write in the transaction clears it.
 */
const countingInTransaction = new WeakMap<FhirStore, Promise<Subscription[]>>();

function countingSubscriptionsInTx(tx: FhirStore, deps: SubscriptionDeps): Promise<Subscription[]> {
  let found = countingInTransaction.get(tx);
  if (!found) {
    found = countingSubscriptions(tx, deps.registry, deps.fhirBase);
    countingInTransaction.set(tx, found);
  }
  return found;
}

async function onTopicEvent(deps: SubscriptionDeps, tx: FhirStore, resource: Resource, created: boolean): Promise<void> {
  const subscriptions = await countingSubscriptionsInTx(tx, deps);
  if (!subscriptions.length || !(await isCaseResource(tx, resource))) return;
  const timestamp = resource.meta?.lastUpdated ?? new Date().toISOString();
  for (const sub of subscriptions) {
    const settings = settingsOrUndefined(sub, deps);
    if (!settings || (settings.end !== undefined && settings.end < Date.now())) continue;
    if (!(await passesFilters(tx, settings.filters, resource))) continue;
    if (!(await ownerSees(deps, tx, sub, resource))) continue;
    const number = await nextEventNumber(tx, settings.id);
    const focus = { resourceType: resource.resourceType, id: resource.id!, versionId: resource.meta?.versionId ?? '1' };
    // Logged for $events whatever the status: what a Subscription in error missed is what a client asks for.
    await tx.recordSubscriptionEvent({ subscriptionId: settings.id, number, timestamp, focus, created }, deps.settings.eventRetention.events);
    if (settings.status !== 'active') continue; // counted, not sent (COUNTING)
    const payload: RestHookPayload = { type: 'event-notification', subscription: settings.id, eventNumber: number, timestamp, focus, created };
    await tx.enqueue(REST_HOOK, payload, `${REST_HOOK}:${settings.id}:event:${number}`);
  }
}

/** An event is the Subscription's only if its owner may see what it is about: else it is neither counted nor sent. */
async function ownerSees(deps: SubscriptionDeps, tx: FhirStore, sub: Subscription, resource: Resource): Promise<boolean> {
  const code = subscriptionOwner(sub);
  const owner = code ? ownerOf(code) : undefined;
  return !deps.ownerSees || !owner || deps.ownerSees(owner, resource, tx);
}

/** A stored Subscription's settings, or undefined when it was stored before a rule changed: it gets nothing until it is fixed. */
export function settingsOrUndefined(sub: Subscription, deps: SettingsDeps): ChannelSettings | undefined {
  try {
    return channelSettings(sub, deps);
  } catch {
    return undefined;
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
    if (!sub || !namesOurTopic(sub.criteria)) return;
    if (message.type === 'handshake' ? sub.status !== 'requested' : sub.status !== 'active') return;
    if (message.type === 'event-notification' && !(await ownerStillStands(deps, sub))) return;
    let settings: ChannelSettings;
    try {
      settings = channelSettings(sub, deps);
    } catch (err) {
      throw new PermanentError(`rest-hook: the Subscription is no longer valid (${err instanceof FhirError ? err.status : describeError(err)})`);
    }
    const bundle = await buildNotification(deps, settings, message);
    // An event notification discloses its focus (its id at least); handshakes and heartbeats name no record.
    const sent = message.type === 'event-notification' ? await notified(deps, message.focus, settings.endpoint) : undefined;
    try {
      await post(settings, bundle, deps.network);
      if (sent) auditExport(deps.audit, sent, { status: 200 });
    } catch (err) {
      if (sent) auditExport(deps.audit, sent, { error: err });
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

/** What an event notification discloses, for its AuditEvent: the focus, the member it is about, and where it goes. */
async function notified(deps: SubscriptionDeps, focus: { resourceType: string; id: string }, destination: string): Promise<Export> {
  const resource = await deps.store.find(focus.resourceType, focus.id);
  return { record: `${focus.resourceType}/${focus.id}`, patient: resource ? patientNamed(resource, deps.fhirBase) : undefined, destination };
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
    events: [{ number: message.eventNumber, timestamp: message.timestamp, focus }],
    focusVersions: focusResource ? [{ resource: focusResource, created: message.created }] : [],
  });
}

async function post(settings: ChannelSettings, bundle: unknown, network: NetworkPolicy): Promise<void> {
  const client = fhirClient(settings.endpoint);
  try {
    await client.request(settings.endpoint, {
      method: 'POST',
      body: bundle,
      options: requestOptions({ ...settings.headers, 'content-type': settings.contentType }, settings.timeoutMs, network),
    });
  } catch (err) {
    if (isSuccessfulNonJson(err)) return;
    throw err;
  }
}
