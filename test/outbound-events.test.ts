import { Client } from 'fhir-kit-client';
import type { Basic, Bundle, CapabilityStatement, OperationOutcome, Parameters, ParametersParameter, ServiceRequest, Subscription } from 'fhir/r4.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKPORT as BACKPORT_URLS, PROFILES, SUBSCRIPTION_TOPICS } from '../server/src/fhir/systems.js';
import type { OutboundConfigInput } from '../server/src/outbound/index.js';
import { publishTopic, readTopicBasic, TOPIC_BASIC_ID, topicVersion } from '../server/src/outbound/topic.js';
import { failure, raw } from './helpers/fhir.js';
import { startPlanServer, type PlanServer } from './helpers/providerServer.js';
import { STORE_DRIVERS } from './helpers/stores.js';

const TOPIC = SUBSCRIPTION_TOPICS.secondOpinionCase;
const SD = 'http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition';
const VERSION_EXTENSION = 'http://hl7.org/fhir/5.0/StructureDefinition/extension-SubscriptionTopic.version';

const config: OutboundConfigInput = {
  network: { allowPrivateNetwork: true, timeoutMs: 3000 },
  subscriptions: { eventRetention: { events: 3, days: 30 } },
};

function subscription(filters: string[], content: 'empty' | 'id-only' | 'full-resource', criteria: string = TOPIC): Subscription {
  return {
    resourceType: 'Subscription',
    status: 'requested',
    reason: 'Second-opinion case updates',
    criteria,
    _criteria: { extension: filters.map((valueString) => ({ url: `${SD}/backport-filter-criteria`, valueString })) },
    channel: { type: 'rest-hook', endpoint: 'http://127.0.0.1:9/hook', payload: 'application/fhir+json', _payload: { extension: [{ url: `${SD}/backport-payload-content`, valueCode: content }] } },
  } as Subscription;
}

/** The SubscriptionStatus of a notification Bundle, flattened; its events as [number, focus] pairs. */
function statusOf(bundle: Bundle): { params: Record<string, unknown>; events: [number, string | undefined][] } {
  const parameter = (bundle.entry?.[0]?.resource as Parameters).parameter ?? [];
  const part = (p: ParametersParameter, name: string) => p.part?.find((x) => x.name === name);
  const params = Object.fromEntries(parameter.filter((p) => !p.part).map((p) => [p.name, p.valueString ?? p.valueCode ?? p.valueCanonical ?? p.valueReference?.reference]));
  const events = parameter
    .filter((p) => p.name === 'notification-event')
    .map((p): [number, string | undefined] => [Number(part(p, 'event-number')?.valueString), part(p, 'focus')?.valueReference?.reference]);
  return { params, events };
}

const outcomeOf = (bundle: Bundle) => (bundle.entry?.[0]?.response?.outcome as OperationOutcome | undefined)?.issue.map((i) => i.diagnostics) ?? [];

describe.each(STORE_DRIVERS)('the events operation of topic-based subscriptions (R4 backport) on $name', (driver) => {
  let plan: PlanServer;
  let client: Client;
  const store = driver.config();
  const base = () => plan.server.fhirBase;
  const events = async (id: string, query = '') => (await client.request(`Subscription/${id}/$events${query}`)) as unknown as Bundle;
  const caseRequest = (patient: string): ServiceRequest => ({
    resourceType: 'ServiceRequest',
    meta: { profile: [PROFILES.serviceRequest] },
    identifier: [{ system: 'urn:test', value: crypto.randomUUID() }],
    requester: { reference: 'Organization/requester' },
    insurance: [{ reference: 'Coverage/any' }],
    reasonCode: [{ text: 'test' }],
    status: 'active',
    intent: 'order',
    subject: { reference: `Patient/${patient}` },
  });
  const create = async <T>(resource: T): Promise<T> => (await client.create({ resourceType: (resource as { resourceType: string }).resourceType, body: resource as never })) as unknown as T;
  const update = async <T extends { resourceType: string; id?: string }>(resource: T): Promise<T> => (await client.update({ resourceType: resource.resourceType, id: resource.id!, body: resource as never })) as unknown as T;

  beforeAll(async () => {
    // No workers: the Subscriptions stay requested, and count (and log) their events all the same.
    plan = await startPlanServer(store, config, { workers: false });
    client = new Client({ baseUrl: plan.server.fhirBase });
  });
  afterAll(async () => {
    await plan?.server.close();
    await driver.cleanup(store);
  });

  it('answers the logged events of a range as a query-event notification, and names those no longer kept', async () => {
    const sub = await create(subscription(['ServiceRequest?patient=Patient/events-1'], 'id-only'));
    const first = await create(caseRequest('events-1'));
    const second = await update({ ...first, status: 'on-hold' as const });
    await update({ ...second, status: 'active' as const });
    const other = await create(caseRequest('events-1'));
    await update({ ...other, status: 'on-hold' as const });
    await create(caseRequest('someone-else'));

    const all = await events(sub.id!);
    expect(all.type).toBe('history');
    expect(all.meta?.profile).toEqual([BACKPORT_URLS.notificationProfile]);
    expect(all.entry?.[0].resource?.resourceType).toBe('Parameters');
    const { params, events: numbered } = statusOf(all);
    expect(params).toMatchObject({ type: 'query-event', status: 'requested', topic: TOPIC, 'events-since-subscription-start': '5', subscription: `${base()}/Subscription/${sub.id}` });
    // The log keeps the newest three (eventRetention.events): 1 and 2 are gone, and the answer says so.
    expect(numbered).toEqual([
      [3, `${base()}/ServiceRequest/${first.id}`],
      [4, `${base()}/ServiceRequest/${other.id}`],
      [5, `${base()}/ServiceRequest/${other.id}`],
    ]);
    expect(all.entry).toHaveLength(1);
    expect(outcomeOf(all)).toEqual([expect.stringMatching(/^Events 1-2 are no longer available \(this server keeps the newest 3 events of a Subscription, for 30 days\)$/)]);

    const one = await events(sub.id!, '?eventsSinceNumber=4&eventsUntilNumber=4');
    expect(statusOf(one).events).toEqual([[4, `${base()}/ServiceRequest/${other.id}`]]);
    expect(one.entry?.[0].response?.outcome).toBeUndefined();
    const gone = await events(sub.id!, '?eventsSinceNumber=1&eventsUntilNumber=2');
    expect(statusOf(gone).events).toEqual([]);
    expect(outcomeOf(gone)).toEqual([expect.stringMatching(/^Events 1-2 are no longer available/)]);
    // Beyond the last event: nothing, and nothing missing.
    const ahead = await events(sub.id!, '?eventsSinceNumber=9');
    expect([statusOf(ahead).events, outcomeOf(ahead)]).toEqual([[], []]);
    // The inputs may come in a Parameters body as well.
    const posted = await raw(`${base()}/Subscription/${sub.id}/$events`, { method: 'POST', json: { resourceType: 'Parameters', parameter: [{ name: 'eventsSinceNumber', valueString: '5' }] } });
    expect(posted.status).toBe(200);
    expect(statusOf(posted.body as Bundle).events.map(([n]) => n)).toEqual([5]);

    // The log's age bound: nothing that happened before `since` is answered, and pruning by age forgets it.
    const future = new Date(Date.now() + 60_000);
    expect(await plan.server.store.subscriptionEvents(sub.id!, { from: 1, to: 10, since: future, limit: 10 })).toEqual([]);
    await plan.server.store.forgetSubscriptionEvents({ before: future });
    expect(statusOf(await events(sub.id!)).events).toEqual([]);
  });

  it('gives no more content than the Subscription has, full resources as they were at each event', async () => {
    const full = await create(subscription(['ServiceRequest?patient=Patient/events-2'], 'full-resource'));
    const idOnly = await create(subscription(['ServiceRequest?patient=Patient/events-2'], 'id-only'));
    const request = await create(caseRequest('events-2'));
    await update({ ...request, status: 'on-hold' as const });

    const both = await events(full.id!);
    expect(statusOf(both).events.map(([n]) => n)).toEqual([1, 2]);
    expect(both.entry?.slice(1).map((e) => [e.fullUrl, (e.resource as ServiceRequest).status, e.resource?.meta?.versionId, e.request])).toEqual([
      [`${base()}/ServiceRequest/${request.id}`, 'active', '1', { method: 'POST', url: 'ServiceRequest' }],
      [`${base()}/ServiceRequest/${request.id}`, 'on-hold', '2', { method: 'PUT', url: `ServiceRequest/${request.id}` }],
    ]);
    const asIds = await events(full.id!, '?content=id-only');
    expect(asIds.entry).toHaveLength(1);
    expect(statusOf(asIds).events).toEqual([[1, `${base()}/ServiceRequest/${request.id}`], [2, `${base()}/ServiceRequest/${request.id}`]]);
    const empty = await events(full.id!, '?content=empty');
    expect([statusOf(empty).events, statusOf(empty).params.topic]).toEqual([[[1, undefined], [2, undefined]], undefined]);
    // An id-only Subscription asking for full resources still gets ids only.
    const capped = await events(idOnly.id!, '?content=full-resource');
    expect(capped.entry).toHaveLength(1);
    expect(statusOf(capped).events.map(([, focus]) => focus)).toEqual([`${base()}/ServiceRequest/${request.id}`, `${base()}/ServiceRequest/${request.id}`]);
  });

  it('refuses malformed inputs with 400, and answers 410 for a deleted Subscription, whose events it forgets', async () => {
    const sub = await create(subscription(['ServiceRequest?patient=Patient/events-3'], 'id-only'));
    await create(caseRequest('events-3'));
    for (const query of ['?eventsSinceNumber=abc', '?eventsSinceNumber=-1', '?eventsSinceNumber=3&eventsUntilNumber=2', '?content=everything', '?since=1']) {
      expect((await failure(events(sub.id!, query))).status, query).toBe(400);
    }
    expect(await plan.server.store.subscriptionEvents(sub.id!, { from: 1, to: 10, since: new Date(0), limit: 10 })).toHaveLength(1);
    await client.delete({ resourceType: 'Subscription', id: sub.id! });
    expect((await failure(events(sub.id!))).status).toBe(410);
    expect(await plan.server.store.subscriptionEvents(sub.id!, { from: 1, to: 10, since: new Date(0), limit: 10 })).toEqual([]);
  });

  it('declares $events beside $status in the CapabilityStatement, by the IG canonical', async () => {
    const statement = (await client.capabilityStatement()) as unknown as CapabilityStatement;
    const operations = statement.rest?.[0].resource?.find((r) => r.type === 'Subscription')?.operation;
    expect(operations).toEqual(
      expect.arrayContaining([
        { name: 'status', definition: 'http://hl7.org/fhir/uv/subscriptions-backport/OperationDefinition/backport-subscription-status' },
        { name: 'events', definition: 'http://hl7.org/fhir/uv/subscriptions-backport/OperationDefinition/backport-subscription-events' },
      ]),
    );
  });

  it("accepts the topic's canonical with the published version (or its major.minor), and refuses another version with 422 naming the one offered", async () => {
    const published = topicVersion(await plan.server.store.read('Basic', TOPIC_BASIC_ID));
    expect(published).toBe('0.1.0');
    for (const criteria of [`${TOPIC}|0.1.0`, `${TOPIC}|0.1`]) {
      const sub = await create(subscription(['Task?patient=Patient/events-4'], 'id-only', criteria));
      expect([sub.criteria, sub.status]).toEqual([criteria, 'requested']);
    }
    for (const criteria of [`${TOPIC}|9.9.9`, `${TOPIC}|0`, `${TOPIC}|`]) {
      const refused = await failure(create(subscription(['Task?patient=Patient/events-4'], 'id-only', criteria)));
      expect(refused.status, criteria).toBe(422);
      const issue = (refused.data as OperationOutcome).issue[0];
      expect(issue.diagnostics).toContain(`offered at version 0.1.0 only (${TOPIC}|0.1.0, or the URL alone)`);
      expect(issue.expression).toEqual(['Subscription.criteria']);
    }
    // A pinned Subscription counts its events and answers $events like any other.
    const pinned = await create(subscription(['ServiceRequest?patient=Patient/events-4'], 'id-only', `${TOPIC}|0.1.0`));
    await create(caseRequest('events-4'));
    expect(statusOf(await events(pinned.id!)).events.map(([n]) => n)).toEqual([1]);
  });

  it("keeps a plan administrator's edit of the topic at start-up until a newer topic version ships", async () => {
    const shipped = readTopicBasic();
    const withVersion = (topic: Basic, version: string | undefined): Basic => ({
      ...topic,
      extension: [...(topic.extension ?? []).filter((e) => e.url !== VERSION_EXTENSION), ...(version ? [{ url: VERSION_EXTENSION, valueString: version }] : [])],
    });
    const stored = () => plan.server.store.read('Basic', TOPIC_BASIC_ID) as Promise<Basic>;
    const edited = { ...(await stored()), code: { ...shipped.code, text: 'Edited by plan administration' } };
    await plan.server.store.update(edited);
    await publishTopic(plan.server.store, shipped);
    expect((await stored()).code.text).toBe('Edited by plan administration');
    // The project ships 0.2.0: it replaces the edit (0.10.0 would too: versions compare part by part as numbers).
    await publishTopic(plan.server.store, withVersion(shipped, '0.2.0'));
    expect([(await stored()).code.text, topicVersion(await stored())]).toEqual([shipped.code.text, '0.2.0']);
    await publishTopic(plan.server.store, withVersion(shipped, '0.10.0'));
    expect(topicVersion(await stored())).toBe('0.10.0');
    await publishTopic(plan.server.store, withVersion(shipped, '0.9.1'));
    expect(topicVersion(await stored())).toBe('0.10.0');
    // A stored topic without a version is older than any shipped one; a missing one is written.
    await plan.server.store.update(withVersion({ ...(await stored()), code: { text: 'unversioned' } }, undefined));
    await publishTopic(plan.server.store, shipped);
    expect([(await stored()).code.text, topicVersion(await stored())]).toEqual([shipped.code.text, '0.1.0']);
    await plan.server.store.delete('Basic', TOPIC_BASIC_ID);
    await publishTopic(plan.server.store, shipped);
    expect(topicVersion(await stored())).toBe('0.1.0');
  });
});
