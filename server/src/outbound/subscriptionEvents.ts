import type { OperationDefinitionParameter, OperationOutcomeIssue, Resource, Subscription } from 'fhir/r4.js';
import type { FhirContext, OperationDefinitionEntry } from '../fhir/context.js';
import { aboutVisiblePatient, hasScope, mayAccess } from '../fhir/guard.js';
import { single, type ParsedParameters } from '../fhir/operations/parameters.js';
import { badRequest, FhirError, issuesOutcome } from '../fhir/outcomes.js';
import type { FhirRequest } from '../fhir/request.js';
import type { SubscriptionEventRecord } from '../storage/FhirStore.js';
import type { OutboundConfig } from './config.js';
import { eventCount, notificationBundle, type FocusVersion, type NotificationEvent, type PayloadContent } from './notifications.js';
import { eventsKeptSince } from './subscriptions.js';
import { backportOperation, contentOf, readTopicSubscription } from './subscriptionStatus.js';
import { BACKPORT } from './topic.js';

const EVENTS_PARAMETERS: OperationDefinitionParameter[] = [
  { name: 'eventsSinceNumber', use: 'in', min: 0, max: '1', type: 'string' },
  { name: 'eventsUntilNumber', use: 'in', min: 0, max: '1', type: 'string' },
  { name: 'content', use: 'in', min: 0, max: '1', type: 'code' },
  { name: 'return', use: 'out', min: 1, max: '1', type: 'Bundle' },
];

/** Most events in one answer: each `full-resource` event reads a version. A client asks again from the next number. */
export const MAX_EVENTS_PER_ANSWER = 100;

const CONTENT_LEVELS: readonly PayloadContent[] = ['empty', 'id-only', 'full-resource'];

/**
 * `Subscription/[id]/$events?eventsSinceNumber=&eventsUntilNumber=&content=`: the Subscription's logged events
 * in that range as a notification Bundle (type history, SubscriptionStatus of type query-event first). Who may
 * ask is who may ask `$status` (the owner and staff, subscriptionAccess.ts). The content is no more than the
 * Subscription's own, and an event's focus is shown only to a caller who may read it now (scopes, compartment).
 * The log keeps events for a bounded time and count (config subscriptions.eventRetention): the status entry's
 * outcome names the events no longer available, and those left for a next request.
 */
export function subscriptionEventsOperation(deps: { settings: OutboundConfig['subscriptions'] }): OperationDefinitionEntry {
  const op = { url: BACKPORT.eventsOperation, name: 'R5SubscriptionEvents', code: 'events', typeLevel: false, parameter: EVENTS_PARAMETERS };
  return backportOperation(op, async (req, ctx, args, params) => {
    const sub = await readTopicSubscription(req, ctx, args.id!, 'events');
    const content = contentFor(sub, params);
    const count = await eventCount(ctx.store, sub.id!);
    const range = eventRange(params, count);
    const logged = range ? await ctx.store.subscriptionEvents(sub.id!, { ...range, since: eventsKeptSince(deps.settings), limit: MAX_EVENTS_PER_ANSWER }) : [];
    const shown = await showEvents({ ...req, interaction: 'read' }, ctx, logged, content);
    const issues = [...(range ? missingIssues(range, logged, deps.settings) : []), ...hiddenIssues(shown.hidden)];
    const bundle = notificationBundle({
      fhirBase: req.baseUrl,
      subscriptionId: sub.id!,
      status: sub.status,
      type: 'query-event',
      eventsSinceStart: count,
      content,
      events: shown.events,
      focusVersions: shown.focusVersions,
      outcome: issues.length ? issuesOutcome(issues) : undefined,
    });
    return { status: 200, body: bundle };
  });
}

/** The content asked for (`content`, else the Subscription's), never more than the Subscription's own. */
function contentFor(sub: Subscription, params: ParsedParameters): PayloadContent {
  const own = contentOf(sub);
  const asked = single<string>(params, 'content');
  if (asked === undefined) return own;
  const level = CONTENT_LEVELS.indexOf(asked as PayloadContent);
  if (level < 0) throw badRequest(`content must be one of ${CONTENT_LEVELS.join(', ')}`, 'content');
  return CONTENT_LEVELS[Math.min(level, CONTENT_LEVELS.indexOf(own))];
}

/** An event number (R4 has no integer64: the IG sends them as strings). */
function eventNumber(params: ParsedParameters, name: string): number | undefined {
  const value = single<string>(params, name);
  if (value === undefined) return undefined;
  if (!/^\d{1,15}$/.test(value)) throw badRequest(`${name} must be an event number (a non-negative integer)`, name);
  return Number(value);
}

/**
 * The numbers asked for, within those that exist (1 to the count): by default the newest events, as many as
 * one answer holds. Undefined when no event is in the range.
 */
function eventRange(params: ParsedParameters, count: number): { from: number; to: number } | undefined {
  const since = eventNumber(params, 'eventsSinceNumber');
  const until = eventNumber(params, 'eventsUntilNumber');
  if (since !== undefined && until !== undefined && since > until) throw badRequest('eventsSinceNumber is after eventsUntilNumber', 'eventsSinceNumber');
  const to = Math.min(until ?? count, count);
  const from = Math.max(since ?? to - MAX_EVENTS_PER_ANSWER + 1, 1);
  return from <= to ? { from, to } : undefined;
}

interface ShownEvents {
  events: NotificationEvent[];
  focusVersions: FocusVersion[];
  /** Numbers of the events whose focus this caller may not read now. */
  hidden: number[];
}

async function showEvents(reading: FhirRequest, ctx: FhirContext, logged: SubscriptionEventRecord[], content: PayloadContent): Promise<ShownEvents> {
  const shown: ShownEvents = { events: [], focusVersions: [], hidden: [] };
  for (const event of logged) {
    const version = content === 'empty' ? undefined : await readableVersion(reading, ctx, event.focus);
    if (content !== 'empty' && !version) shown.hidden.push(event.number);
    shown.events.push({ number: event.number, timestamp: event.timestamp, focus: version ? `${event.focus.resourceType}/${event.focus.id}` : undefined });
    if (version && content === 'full-resource') shown.focusVersions.push({ resource: version, created: event.created });
  }
  return shown;
}

/** The focus version of an event, if the caller may read it now (its scopes, its patient compartment, the type's rule). */
async function readableVersion(reading: FhirRequest, ctx: FhirContext, focus: SubscriptionEventRecord['focus']): Promise<Resource | undefined> {
  if (!hasScope(reading, ctx, focus.resourceType, 'read')) return undefined;
  let version: Resource;
  try {
    version = await ctx.store.vread(focus.resourceType, focus.id, focus.versionId);
  } catch (err) {
    if (err instanceof FhirError && (err.status === 404 || err.status === 410)) return undefined;
    throw err;
  }
  return mayAccess(reading, ctx, version) && (await aboutVisiblePatient(reading, ctx, version)) ? version : undefined;
}

const span = (from: number, to: number) => (from === to ? `Event ${from} is` : `Events ${from}-${to} are`);

/** The events of the range that the answer lacks: those past retention (the oldest), and those beyond one answer. */
function missingIssues(range: { from: number; to: number }, logged: SubscriptionEventRecord[], settings: OutboundConfig['subscriptions']): OperationOutcomeIssue[] {
  const issues: OperationOutcomeIssue[] = [];
  const firstKept = logged[0]?.number ?? range.to + 1;
  if (firstKept > range.from) {
    const kept = `this server keeps the newest ${settings.eventRetention.events} events of a Subscription, for ${settings.eventRetention.days} days`;
    issues.push({ severity: 'warning', code: 'not-found', diagnostics: `${span(range.from, firstKept - 1)} no longer available (${kept})` });
  }
  const last = logged[logged.length - 1]?.number;
  if (logged.length === MAX_EVENTS_PER_ANSWER && last !== undefined && last < range.to) {
    issues.push({
      severity: 'information',
      code: 'informational',
      diagnostics: `${span(last + 1, range.to)} not in this answer (at most ${MAX_EVENTS_PER_ANSWER} events each): ask again with eventsSinceNumber=${last + 1}`,
    });
  }
  return issues;
}

function hiddenIssues(hidden: number[]): OperationOutcomeIssue[] {
  if (!hidden.length) return [];
  return [{ severity: 'information', code: 'suppressed', diagnostics: `The focus of event(s) ${hidden.join(', ')} is left out: this token may not read it now` }];
}
