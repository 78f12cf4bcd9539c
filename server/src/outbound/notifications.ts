import { randomUUID } from 'node:crypto';
import type { Bundle, BundleEntry, OperationOutcome, Parameters, ParametersParameter, Resource } from 'fhir/r4.js';
import type { FhirStore } from '../storage/FhirStore.js';
import { BACKPORT, TOPIC_URL } from './topic.js';

/**
 * Notification content of the Subscriptions R5 Backport IG in its R4 form: a `history` Bundle
 * whose first entry is the SubscriptionStatus as a `Parameters` (profile
 * backport-subscription-status-r4), followed by the focus resources for `full-resource` payloads.
 * Pure functions; the event counter is the only state and lives in the database.
 */

/** R5 SubscriptionStatus.type; `query-event` answers `$events`. */
export type NotificationType = 'handshake' | 'heartbeat' | 'event-notification' | 'query-status' | 'query-event';
export type PayloadContent = 'empty' | 'id-only' | 'full-resource';

export interface NotificationEvent {
  number: number;
  timestamp: string;
  /** `Type/id` of the resource the event is about; left out where the recipient may not learn it. */
  focus?: string;
}

export interface StatusInput {
  fhirBase: string;
  subscriptionId: string;
  status: 'requested' | 'active' | 'error' | 'off';
  type: NotificationType;
  eventsSinceStart: number;
  content: PayloadContent;
  events?: NotificationEvent[];
  /** A subscription-error code, and what went wrong in words (Subscription.error, which names no patient). */
  error?: { code: string; text?: string };
}

/** The SubscriptionStatus (R4: Parameters). `topic` and the focus are left out of `empty` payloads (IG guidance). */
export function statusParameters(input: StatusInput): Parameters {
  const parameter: ParametersParameter[] = [
    { name: 'subscription', valueReference: { reference: `${input.fhirBase}/Subscription/${input.subscriptionId}` } },
  ];
  if (input.content !== 'empty') parameter.push({ name: 'topic', valueCanonical: TOPIC_URL });
  parameter.push({ name: 'status', valueCode: input.status }, { name: 'type', valueCode: input.type });
  // R4 has no integer64: the IG carries the counters as strings.
  parameter.push({ name: 'events-since-subscription-start', valueString: String(input.eventsSinceStart) });
  for (const event of input.events ?? []) {
    const part: ParametersParameter[] = [
      { name: 'event-number', valueString: String(event.number) },
      { name: 'timestamp', valueInstant: event.timestamp },
    ];
    if (input.content !== 'empty' && event.focus) part.push({ name: 'focus', valueReference: { reference: `${input.fhirBase}/${event.focus}` } });
    parameter.push({ name: 'notification-event', part });
  }
  if (input.error) parameter.push({ name: 'error', valueCodeableConcept: { coding: [{ system: BACKPORT.subscriptionError, code: input.error.code }], text: input.error.text } });
  return { resourceType: 'Parameters', id: randomUUID(), meta: { profile: [BACKPORT.statusProfile] }, parameter };
}

/** The status entry; `outcome` says what the status leaves out (the events `$events` no longer has). */
export function statusEntry(fhirBase: string, parameters: Parameters, subscriptionId: string, outcome?: OperationOutcome): BundleEntry {
  return {
    fullUrl: `urn:uuid:${parameters.id}`,
    resource: parameters,
    request: { method: 'GET', url: `${fhirBase}/Subscription/${subscriptionId}/$status` },
    response: outcome ? { status: '200', outcome } : { status: '200' },
  };
}

/** A focus resource version of a `full-resource` notification, and whether that version was a create. */
export interface FocusVersion {
  resource: Resource;
  created: boolean;
}

/**
 * The notification Bundle. For `full-resource`, the focus versions follow the status entry, each with the
 * request that produced it (POST for a create, PUT for an update; the IG's bdl-3/4 note).
 */
export function notificationBundle(input: StatusInput & { focusVersions?: FocusVersion[]; outcome?: OperationOutcome }): Bundle {
  const parameters = statusParameters(input);
  const entry: BundleEntry[] = [statusEntry(input.fhirBase, parameters, input.subscriptionId, input.outcome)];
  for (const { resource: focus, created } of input.content === 'full-resource' ? (input.focusVersions ?? []) : []) {
    if (!focus.id) continue;
    entry.push({
      fullUrl: `${input.fhirBase}/${focus.resourceType}/${focus.id}`,
      resource: focus,
      request: created ? { method: 'POST', url: focus.resourceType } : { method: 'PUT', url: `${focus.resourceType}/${focus.id}` },
      response: { status: created ? '201' : '200' },
    });
  }
  return {
    resourceType: 'Bundle',
    id: randomUUID(),
    meta: { profile: [BACKPORT.notificationProfile] },
    type: 'history',
    timestamp: new Date().toISOString(),
    entry,
  };
}

const counterKey = (subscriptionId: string) => `subscription-events:${subscriptionId}`;
/** The counter must outlive the subscription's notifications; ephemeral rows expire, so far away. */
const COUNTER_EXPIRY = new Date(Date.UTC(9999, 0, 1));

function countOf(value: unknown): number {
  const n = (value as { count?: unknown } | undefined)?.count;
  return typeof n === 'number' && Number.isInteger(n) && n >= 0 ? n : 0;
}

/**
 * Next event number of a subscription, in the transaction that records the event: the per
 * subscription lock serializes concurrent writers until commit, and a rolled-back event gives its
 * number back, so numbers are strictly increasing without gaps.
 */
export async function nextEventNumber(tx: FhirStore, subscriptionId: string): Promise<number> {
  await tx.lock(counterKey(subscriptionId));
  const next = countOf(await tx.getEphemeral(counterKey(subscriptionId))) + 1;
  await tx.putEphemeral(counterKey(subscriptionId), { count: next }, COUNTER_EXPIRY);
  return next;
}

/** Events generated since the subscription started (events-since-subscription-start). */
export async function eventCount(store: FhirStore, subscriptionId: string): Promise<number> {
  return countOf(await store.getEphemeral(counterKey(subscriptionId)));
}
