import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from 'fhir-kit-client';
import type { AuditEvent, PractitionerRole, Basic, Bundle, CapabilityStatement, OperationOutcome, Parameters, ParametersParameter, Patient, ServiceRequest, Subscription, Task } from 'fhir/r4.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROFILES, SUBSCRIPTION_TOPICS } from '../server/src/fhir/systems.js';
import { type OutboundConfigInput, SUBSCRIPTION_OWNER_SYSTEM } from '../server/src/outbound/index.js';
import { type DemoServer, startDemoServer } from './helpers/demoServer.js';
import { failure, raw } from './helpers/fhir.js';
import { startNotificationReceiver, startPlanServer, waitFor, type NotificationReceiver, type PlanServer } from './helpers/providerServer.js';
import { pgliteConfig, STORE_DRIVERS } from './helpers/stores.js';
import { smartAppGrant, tokenFor } from './helpers/tokens.js';

const TOPIC = SUBSCRIPTION_TOPICS.secondOpinionCase;
const BACKPORT = 'http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition';

const config: OutboundConfigInput = {
  planOrganization: 'Organization/plan-ant',
  worker: { pollMs: 25, batch: 20, leaseMs: 5000, maxAttempts: 3, backoff: { baseMs: 20, maxMs: 60 } },
  network: { allowPrivateNetwork: true, timeoutMs: 3000 },
  subscriptions: { handshakeAttempts: 2, heartbeatCheckMs: 100, minHeartbeatSeconds: 1 },
};

function subscription(endpoint: string, filters: string[], content: 'empty' | 'id-only' | 'full-resource', extra: { heartbeat?: number; header?: string[] } = {}): Subscription {
  return {
    resourceType: 'Subscription',
    status: 'requested',
    reason: 'Second-opinion case updates',
    criteria: TOPIC,
    _criteria: filters.length ? { extension: filters.map((valueString) => ({ url: `${BACKPORT}/backport-filter-criteria`, valueString })) } : undefined,
    channel: {
      type: 'rest-hook',
      endpoint,
      payload: 'application/fhir+json',
      _payload: { extension: [{ url: `${BACKPORT}/backport-payload-content`, valueCode: content }] },
      header: extra.header,
      extension: extra.heartbeat ? [{ url: `${BACKPORT}/backport-heartbeat-period`, valueUnsignedInt: extra.heartbeat }] : undefined,
    },
  } as Subscription;
}

/** The SubscriptionStatus of a notification, flattened: name → value (parts as objects). */
function statusOf(bundle: Bundle): Record<string, unknown> {
  const params = bundle.entry?.[0]?.resource as Parameters;
  const value = (p: ParametersParameter): unknown =>
    p.part ? Object.fromEntries(p.part.map((x) => [x.name, value(x)])) : (p.valueString ?? p.valueCode ?? p.valueCanonical ?? p.valueInstant ?? p.valueReference?.reference);
  return Object.fromEntries((params.parameter ?? []).map((p) => [p.name, value(p)]));
}

const bundles = (r: NotificationReceiver) => r.received.map((x) => x.body as Bundle);
const events = (r: NotificationReceiver) => bundles(r).filter((b) => statusOf(b).type === 'event-notification');
const eventNumbers = (r: NotificationReceiver) => events(r).map((b) => Number((statusOf(b)['notification-event'] as Record<string, string>)['event-number']));

/** What the second-opinion ServiceRequest profile requires besides subject/status/intent. */
const PROFILE_REQUIRED = () => ({ identifier: [{ system: 'urn:test', value: crypto.randomUUID() }], requester: { reference: 'Organization/requester' }, insurance: [{ reference: 'Coverage/any' }], reasonCode: [{ text: 'test' }] });

describe.each(STORE_DRIVERS)('topic-based subscriptions (R4 backport) on $name', (driver) => {
  let plan: PlanServer;
  let client: Client;
  const store = driver.config();
  const receivers: NotificationReceiver[] = [];
  let patient: Patient;
  let other: Patient;
  let sr: ServiceRequest;

  const receiver = async () => {
    const r = await startNotificationReceiver();
    receivers.push(r);
    return r;
  };
  const create = async <T>(resource: T): Promise<T> => (await client.create({ resourceType: (resource as { resourceType: string }).resourceType, body: resource as never })) as unknown as T;
  const active = (id: string) => waitFor(async () => ((await plan.server.store.read('Subscription', id)) as Subscription).status === 'active' || undefined, 10_000, 'active');

  beforeAll(async () => {
    plan = await startPlanServer(store, config);
    client = new Client({ baseUrl: plan.server.fhirBase });
    patient = await create<Patient>({ resourceType: 'Patient', name: [{ family: 'Subscribed' }] });
    other = await create<Patient>({ resourceType: 'Patient', name: [{ family: 'Other' }] });
  });
  afterAll(async () => {
    await plan?.server.close();
    for (const r of receivers) await r.close();
    await driver.cleanup(store);
  });

  it('refuses Subscriptions it cannot honour with 422', async () => {
    const r = await receiver();
    const bad = [
      { ...subscription(r.url, [], 'id-only'), criteria: 'Task?status=requested' },
      { ...subscription(r.url, [], 'id-only'), channel: { ...subscription(r.url, [], 'id-only').channel, type: 'email' } },
      subscription(r.url, ['Patient?name=x'], 'id-only'),
      subscription(r.url, ['Task?nonsense=1'], 'id-only'),
      // An empty value is ignored in a search; in a filter it would widen it to every Task.
      subscription(r.url, ['Task?status='], 'id-only'),
      subscription('ftp://127.0.0.1/hook', [], 'id-only'),
      { ...subscription(r.url, [], 'id-only'), status: 'active' },
      subscription(r.url, [], 'id-only', { header: ['Host: evil.example.org'] }),
    ];
    for (const body of bad) {
      const res = await failure(client.create({ resourceType: 'Subscription', body: body as never }));
      expect([400, 422]).toContain(res.status);
    }
    expect(r.received).toHaveLength(0);
  });

  it('sends a handshake with the channel headers, then activates the Subscription', async () => {
    const r = await receiver();
    const sub = await create(subscription(r.url, [`Task?patient=Patient/${patient.id}`], 'id-only', { header: ['Authorization: Bearer subscriber-secret'] }));
    expect(sub.status).toBe('requested');
    await active(sub.id!);
    expect(r.received).toHaveLength(1);
    const handshake = r.received[0];
    expect(handshake.headers.authorization).toBe('Bearer subscriber-secret');
    expect(handshake.headers['content-type']).toContain('application/fhir+json');
    const bundle = handshake.body as Bundle;
    expect(bundle.type).toBe('history');
    expect(bundle.entry?.[0].resource?.resourceType).toBe('Parameters');
    expect(bundle.entry?.[0].request).toEqual({ method: 'GET', url: `${plan.server.fhirBase}/Subscription/${sub.id}/$status` });
    expect(statusOf(bundle)).toMatchObject({ type: 'handshake', status: 'requested', 'events-since-subscription-start': '0', subscription: `${plan.server.fhirBase}/Subscription/${sub.id}`, topic: TOPIC });
    // Only the server moves a Subscription to active.
    const current = (await client.read({ resourceType: 'Subscription', id: sub.id! })) as unknown as Subscription;
    const res = await failure(client.update({ resourceType: 'Subscription', id: sub.id!, body: { ...current, status: 'error' } as never }));
    expect(res.status).toBe(422);
  });

  it('notifies case events that match the filters, numbered per subscription, at each content level', async () => {
    const [empty, idOnly, full] = [await receiver(), await receiver(), await receiver()];
    const p = `Patient/${patient.id}`;
    const subs = [
      await create(subscription(empty.url, [`Task?patient=${p}`], 'empty')),
      await create(subscription(idOnly.url, [`Task?patient=${p}`, `ServiceRequest?patient=${p}`], 'id-only')),
      await create(subscription(full.url, [`Task?patient=${p}&status=requested,in-progress`], 'full-resource')),
    ];
    for (const s of subs) await active(s.id!);

    sr = await create<ServiceRequest>({ resourceType: 'ServiceRequest', meta: { profile: [PROFILES.serviceRequest] }, ...PROFILE_REQUIRED(), status: 'active', intent: 'order', subject: { reference: p } });
    const task = await create<Task>({ resourceType: 'Task', status: 'requested', intent: 'order', for: { reference: p }, basedOn: [{ reference: `ServiceRequest/${sr.id}` }] });
    const updated = (await client.update({ resourceType: 'Task', id: task.id!, body: { ...task, status: 'in-progress' } as never })) as unknown as Task;
    // Not events for these subscriptions: another member's case, and a Task outside any case.
    const otherSr = await create<ServiceRequest>({ resourceType: 'ServiceRequest', meta: { profile: [PROFILES.serviceRequest] }, ...PROFILE_REQUIRED(), status: 'active', intent: 'order', subject: { reference: `Patient/${other.id}` } });
    await create<Task>({ resourceType: 'Task', status: 'requested', intent: 'order', for: { reference: `Patient/${other.id}` }, basedOn: [{ reference: `ServiceRequest/${otherSr.id}` }] });
    await create<Task>({ resourceType: 'Task', status: 'requested', intent: 'order', for: { reference: p }, description: 'not part of a case' });
    // A write that rolls back notifies nobody and uses no event number.
    await plan.server.store
      .transaction(async (tx) => {
        await tx.create<Task>({ resourceType: 'Task', status: 'requested', intent: 'order', for: { reference: p }, basedOn: [{ reference: `ServiceRequest/${sr.id}` }] });
        throw new Error('rolled back');
      })
      .catch(() => undefined);
    const completed = (await client.update({ resourceType: 'Task', id: task.id!, body: { ...updated, status: 'completed' } as never })) as unknown as Task;

    await waitFor(() => (events(empty).length >= 3 && events(idOnly).length >= 4 && events(full).length >= 2) || undefined, 10_000, 'notifications');
    await new Promise((resolve) => setTimeout(resolve, 200));

    expect([...eventNumbers(empty)].sort((a, b) => a - b)).toEqual([1, 2, 3]);
    expect([...eventNumbers(idOnly)].sort((a, b) => a - b)).toEqual([1, 2, 3, 4]);
    // status=requested,in-progress: the update to completed is filtered out.
    expect([...eventNumbers(full)].sort((a, b) => a - b)).toEqual([1, 2]);

    for (const b of events(empty)) {
      const s = statusOf(b);
      expect(b.entry).toHaveLength(1);
      expect(s.topic).toBeUndefined();
      expect((s['notification-event'] as Record<string, unknown>).focus).toBeUndefined();
      expect(s['events-since-subscription-start']).toBe((s['notification-event'] as Record<string, string>)['event-number']);
    }
    const idFocus = events(idOnly)
      .sort((a, b) => Number((statusOf(a)['notification-event'] as Record<string, string>)['event-number']) - Number((statusOf(b)['notification-event'] as Record<string, string>)['event-number']))
      .map((b) => {
        expect(b.entry).toHaveLength(1);
        expect(statusOf(b).topic).toBe(TOPIC);
        return (statusOf(b)['notification-event'] as Record<string, string>).focus;
      });
    const base = plan.server.fhirBase;
    expect(idFocus).toEqual([`${base}/ServiceRequest/${sr.id}`, `${base}/Task/${task.id}`, `${base}/Task/${task.id}`, `${base}/Task/${task.id}`]);

    const fullEvents = events(full).sort((a, b) => ((a.entry?.[1].resource?.meta?.versionId ?? '') < (b.entry?.[1].resource?.meta?.versionId ?? '') ? -1 : 1));
    expect(fullEvents.map((b) => b.entry?.[1].request)).toEqual([
      { method: 'POST', url: 'Task' },
      { method: 'PUT', url: `Task/${task.id}` },
    ]);
    expect(fullEvents.map((b) => (b.entry?.[1].resource as Task).status)).toEqual(['requested', 'in-progress']);
    expect(fullEvents[0].entry?.[1].fullUrl).toBe(`${base}/Task/${task.id}`);
    expect(completed.status).toBe('completed');

    // $status reports the count of events so far.
    const status = (await client.request(`Subscription/${subs[1].id}/$status`)) as unknown as Bundle;
    expect(status.type).toBe('searchset');
    expect(statusOf(status)).toMatchObject({ type: 'query-status', status: 'active', 'events-since-subscription-start': '4' });
    const typeLevel = (await client.request(`Subscription/$status?id=${subs[0].id}&id=${subs[2].id}`)) as unknown as Bundle;
    expect(typeLevel.entry?.map((e) => statusOf({ ...typeLevel, entry: [e] })['events-since-subscription-start']).sort()).toEqual(['2', '3']);
  });

  it('numbers concurrent events without gaps or repeats', async () => {
    const r = await receiver();
    const sub = await create(subscription(r.url, [`ServiceRequest?patient=Patient/${other.id}`], 'id-only'));
    await active(sub.id!);
    await Promise.all(
      Array.from({ length: 8 }, () =>
        create<ServiceRequest>({ resourceType: 'ServiceRequest', meta: { profile: [PROFILES.serviceRequest] }, ...PROFILE_REQUIRED(), status: 'draft', intent: 'order', subject: { reference: `Patient/${other.id}` } }),
      ),
    );
    await waitFor(() => events(r).length >= 8 || undefined, 10_000, 'concurrent notifications');
    expect([...eventNumbers(r)].sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  });

  it('sends heartbeats on schedule', async () => {
    const r = await receiver();
    const sub = await create(subscription(r.url, [`Task?patient=Patient/${other.id}`], 'empty', { heartbeat: 1 }));
    await active(sub.id!);
    const beat = await waitFor(() => bundles(r).find((b) => statusOf(b).type === 'heartbeat'), 10_000, 'heartbeat');
    expect(statusOf(beat)).toMatchObject({ type: 'heartbeat', status: 'active', 'events-since-subscription-start': '0' });
  });

  it('keeps counting events while a Subscription is in error, so that after re-activation the numbers show the missed one (H2)', async () => {
    const r = await receiver();
    const member = await create<Patient>({ resourceType: 'Patient', name: [{ family: 'Gap' }] });
    const caseOf = () => create<ServiceRequest>({ resourceType: 'ServiceRequest', meta: { profile: [PROFILES.serviceRequest] }, ...PROFILE_REQUIRED(), status: 'active', intent: 'order', subject: { reference: `Patient/${member.id}` } });
    const sub = await create(subscription(r.url, [`ServiceRequest?patient=Patient/${member.id}`], 'id-only'));
    await active(sub.id!);
    await caseOf();
    await waitFor(() => events(r).length >= 1 || undefined, 10_000, 'event 1');
    // Event 2 is not accepted: the Subscription goes to error. Event 3 happens while it is in error.
    r.respondWith(() => 500);
    await caseOf();
    const failed = await waitFor(async () => {
      const s = (await plan.server.store.read('Subscription', sub.id!)) as Subscription;
      return s.status === 'error' ? s : undefined;
    }, 10_000, 'status error');
    await caseOf();
    const status = (await client.request(`Subscription/${sub.id}/$status`)) as unknown as Bundle;
    expect(statusOf(status)).toMatchObject({ status: 'error', 'events-since-subscription-start': '3' });

    r.respondWith(() => 200);
    await client.update({ resourceType: 'Subscription', id: sub.id!, body: { ...failed, status: 'requested' } as never });
    await active(sub.id!);
    const handshakes = bundles(r).filter((b) => statusOf(b).type === 'handshake');
    expect(statusOf(handshakes[handshakes.length - 1])['events-since-subscription-start']).toBe('3');
    await caseOf();
    await waitFor(() => events(r).length >= 2 || undefined, 10_000, 'the event after re-activation');
    expect(eventNumbers(r)).toEqual([1, 4]);
  });

  it('refuses a Subscription whose end has passed, and turns one off when its end passes (M7)', async () => {
    const r = await receiver();
    const past = await failure(client.create({ resourceType: 'Subscription', body: { ...subscription(r.url, [], 'id-only'), end: '2020-01-01T00:00:00Z' } as never }));
    expect(past.status).toBe(422);
    expect(JSON.stringify(past.data)).toContain('Subscription.end');
    const sub = await create({ ...subscription(r.url, [`Task?patient=Patient/${other.id}`], 'id-only'), end: new Date(Date.now() + 2000).toISOString() });
    await active(sub.id!);
    await waitFor(async () => ((await plan.server.store.read('Subscription', sub.id!)) as Subscription).status === 'off' || undefined, 10_000, 'status off after the end');
  });

  it('sends notifications with the content type channel.payload names (L1)', async () => {
    const [plain, versioned] = [await receiver(), await receiver()];
    const asked = (r: NotificationReceiver, payload: string) => ({ ...subscription(r.url, [`Task?patient=Patient/${other.id}`], 'id-only'), channel: { ...subscription(r.url, [], 'id-only').channel, payload } });
    const subs = [await create(asked(plain, 'application/json')), await create(asked(versioned, 'application/fhir+json; fhirVersion=4.0'))];
    for (const s of subs) await active(s.id!);
    expect(plain.received[0].headers['content-type']).toBe('application/json');
    expect(versioned.received[0].headers['content-type']).toBe('application/fhir+json; fhirVersion=4.0');
    const injected = await failure(client.create({ resourceType: 'Subscription', body: asked(plain, 'application/json; x=1\r\nX-Evil: 1') as never }));
    expect(injected.status).toBe(422);
  });

  it('refuses a custom channel it does not support (backport-channel-type) with 422 naming channel.type (M2)', async () => {
    const r = await receiver();
    const typed = (system: string, code: string) => {
      const body = subscription(r.url, [`Task?patient=Patient/${other.id}`], 'id-only');
      return { ...body, channel: { ...body.channel, _type: { extension: [{ url: `${BACKPORT}/backport-channel-type`, valueCoding: { system, code } }] } } };
    };
    const kafka = await failure(client.create({ resourceType: 'Subscription', body: typed('http://example.org/ch', 'kafka') as never }));
    expect(kafka.status).toBe(422);
    expect((kafka.data as { issue: { expression?: string[] }[] }).issue[0].expression).toEqual(['Subscription.channel.type']);
    const restHook = await create(typed('http://terminology.hl7.org/CodeSystem/subscription-channel-type', 'rest-hook'));
    expect(restHook.status).toBe('requested');
  });

  it('declares the backport Subscription profile and server statement in its CapabilityStatement (M3)', async () => {
    const statement = (await client.capabilityStatement()) as unknown as CapabilityStatement;
    expect(statement.instantiates).toContain(`http://hl7.org/fhir/uv/subscriptions-backport/CapabilityStatement/backport-subscription-server-r4`);
    const entry = statement.rest?.[0].resource?.find((x) => x.type === 'Subscription');
    expect(entry?.supportedProfile).toContain(`${BACKPORT}/backport-subscription`);
    expect(statement.rest?.[0].resource?.find((x) => x.type === 'Basic')?.supportedProfile).toBeUndefined();
  });

  it('puts a Subscription whose handshake keeps failing in error and tells UM staff once', async () => {
    const r = await receiver();
    r.respondWith(() => 503);
    const sub = await create(subscription(r.url, [], 'id-only'));
    const failed = await waitFor(async () => {
      const s = (await plan.server.store.read('Subscription', sub.id!)) as Subscription;
      return s.status === 'error' ? s : undefined;
    }, 10_000, 'status error');
    expect(failed.error).toContain('handshake failed');
    // $status says what failed, in words, beside its code.
    const status = (await fetch(`${plan.server.fhirBase}/Subscription/${sub.id}/$status`).then((res) => res.json())) as Bundle;
    const error = ((status.entry?.[0]?.resource as Parameters).parameter ?? []).find((p) => p.name === 'error')?.valueCodeableConcept;
    expect([error?.coding?.[0]?.code, error?.text]).toEqual(['no-response', failed.error]);
    const tasks = await waitFor(async () => {
      const { resources } = await plan.server.store.search({
        resourceType: 'Task',
        clauses: [{ kind: 'reference', param: 'focus', values: [`focus|Subscription/${sub.id}`] }],
        sort: [],
        count: 10,
        offset: 0,
        total: false,
      });
      return resources.length ? (resources as Task[]) : undefined;
    }, 10_000, 'delivery-failed Task');
    expect(tasks).toHaveLength(1);
    expect(tasks[0]).toMatchObject({ status: 'requested', code: { text: 'delivery-failed' }, owner: { reference: 'Organization/plan-ant' } });
    // A failed subscription gets no more events.
    await create<ServiceRequest>({ resourceType: 'ServiceRequest', meta: { profile: [PROFILES.serviceRequest] }, ...PROFILE_REQUIRED(), status: 'active', intent: 'order', subject: { reference: `Patient/${patient.id}` } });
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(r.received).toHaveLength(0);
  });
});

/**
 * Finding F5: who may create, see and change a Subscription, with auth on (the whole server as
 * `npm start` wires it). A Subscription is its creator's; its filters stay within what the
 * creator's token could search; its channel.header is shown to the creator alone.
 */
describe('Subscription access control (auth on)', () => {
  let server: DemoServer;
  const receivers: NotificationReceiver[] = [];
  const receiver = async () => {
    const r = await startNotificationReceiver();
    receivers.push(r);
    return r;
  };
  const member = (id: string) => tokenFor(server, { scope: 'launch/patient patient/*.cruds', patient: id, fhirUser: `Patient/${id}`, roles: ['member'] });
  const admin = () => tokenFor(server, { scope: 'user/*.cruds', fhirUser: 'Practitioner/hpsj-md-1', roles: ['plan-admin'] });
  const auditor = () => tokenFor(server, { scope: 'user/Subscription.rs user/AuditEvent.rs', fhirUser: 'Practitioner/auditor-1', roles: ['auditor'] });
  const call = (token: string, path: string, init: RequestInit & { json?: unknown } = {}) =>
    raw(`${server.fhirBase}/${path}`, { ...init, headers: { authorization: `Bearer ${token}`, ...(init.headers as Record<string, string> | undefined) } });
  const post = (token: string, sub: Subscription) => call(token, 'Subscription', { method: 'POST', json: sub });
  const ownerTags = (sub: Subscription) => (sub.meta?.tag ?? []).filter((t) => t.system === SUBSCRIPTION_OWNER_SYSTEM);
  const mine = (id: string) => [`Task?patient=Patient/${id}`, `ServiceRequest?patient=Patient/${id}`];

  beforeAll(async () => {
    const file = join(process.env.TMPDIR ?? '/tmp', `so-subscriptions-${randomUUID()}.json`);
    writeFileSync(file, JSON.stringify({ ...config, planOrganization: 'Organization/hpsj', subscriptions: { ...config.subscriptions, maxPerOwner: 3 } }));
    server = await startDemoServer(pgliteConfig(), { OUTBOX_ENABLED: 'true', OUTBOUND_CONFIG_FILE: file });
  });
  afterAll(async () => {
    await server?.close();
    for (const r of receivers) await r.close();
  });

  it('refuses a Subscription wider than what its token may search, and stamps the owner', async () => {
    const r = await receiver();
    const m1 = member('member-hpsj-1');
    // The probe's request: every case event of every member, full resources.
    expect((await post(m1, subscription(r.url, [], 'full-resource'))).status).toBe(403);
    expect((await post(m1, subscription(r.url, ['Task?patient=Patient/member-hpsj-2'], 'full-resource'))).status).toBe(403);
    expect((await post(m1, subscription(r.url, ['Task?status=requested'], 'full-resource'))).status).toBe(403);
    const forged = { ...subscription(r.url, mine('member-hpsj-1'), 'id-only'), meta: { tag: [{ system: SUBSCRIPTION_OWNER_SYSTEM, code: 'someone-else' }] } };
    const created = await post(m1, forged);
    expect(created.status).toBe(201);
    const tags = ownerTags(created.body as Subscription);
    expect(tags).toHaveLength(1);
    expect(tags[0].code).toContain('member-hpsj-1');
    // A Subscription also writes in a transaction entry the same way.
    const bundle = { resourceType: 'Bundle', type: 'transaction', entry: [{ resource: subscription(r.url, [], 'full-resource'), request: { method: 'POST', url: 'Subscription' } }] };
    expect((await call(m1, '', { method: 'POST', json: bundle })).status).toBe(403);
  });

  it("keeps other clients' Subscriptions, and everyone's channel.header, from a token", async () => {
    const r = await receiver();
    const [m1, m2] = [member('member-hpsj-1'), member('member-hpsj-2')];
    const adminSub = (await post(admin(), subscription(r.url, [], 'id-only', { header: ['Authorization: Bearer admin-endpoint-secret-123'] }))).body as Subscription;
    const memberSub = (await post(m1, subscription(r.url, mine('member-hpsj-1'), 'id-only', { header: ['Authorization: Bearer member-secret-456'] }))).body as Subscription;
    expect([adminSub.id, memberSub.id].every(Boolean)).toBe(true);

    // Another member: no read, no search hit, no history, no $status, no update, no delete.
    for (const id of [adminSub.id, memberSub.id]) {
      // Refused by the Subscription's owner rule, answered as a missing id: another's Subscription ids stay unknown.
      const read = await call(m2, `Subscription/${id}`);
      expect(read.status).toBe(404);
      expect(read.body.issue[0].diagnostics).toBe(`Subscription/${id} not found`);
      expect((await call(m2, `Subscription/${id}/$status`)).status).toBe(404);
      expect((await call(m2, `Subscription/${id}/$events`)).status).toBe(404);
      // A DELETE of what the caller may not see is answered as one of a missing id: the 204 a deletion gets, deleting nothing.
      expect((await call(m2, `Subscription/${id}`, { method: 'DELETE' })).status).toBe(204);
    }
    expect((await call(m2, `Subscription/${memberSub.id}`, { method: 'PUT', json: { ...memberSub, status: 'off' } })).status).toBe(403);
    const search = await call(m2, 'Subscription');
    expect(search.status).toBe(200);
    expect(search.body.total).toBe(0);
    expect(((await call(m2, 'Subscription/$status')).body as Bundle).entry ?? []).toHaveLength(0);
    expect(((await call(m2, 'Subscription/_history')).body as Bundle).entry ?? []).toHaveLength(0);
    expect((await server.store.read('Subscription', adminSub.id!)).id).toBe(adminSub.id);

    // The owner sees its own, with its headers.
    const own = ((await call(m1, 'Subscription')).body as Bundle).entry?.map((e) => e.resource as Subscription) ?? [];
    expect(own.map((sub) => sub.id)).toContain(memberSub.id);
    expect(own.map((sub) => sub.id)).not.toContain(adminSub.id);
    expect(own.find((sub) => sub.id === memberSub.id)?.channel.header).toEqual(['Authorization: Bearer member-secret-456']);
    // $status is a searchset: its entries carry no request or response (Bundle bdl-3, bdl-4).
    const status = (await call(m1, `Subscription/${memberSub.id}/$status`)).body as Bundle;
    expect(status.entry?.map((e) => [e.search?.mode, e.request, e.response])).toEqual([['match', undefined, undefined]]);

    // Staff see every Subscription, without the header values.
    const asAdmin = await call(admin(), `Subscription/${memberSub.id}`);
    expect(asAdmin.status).toBe(200);
    expect((asAdmin.body as Subscription).channel.header).toEqual(['Authorization: [hidden]']);
    const audited = await call(auditor(), 'Subscription?_count=50');
    expect((audited.body as Bundle).entry?.map((e) => e.resource?.id)).toEqual(expect.arrayContaining([adminSub.id, memberSub.id]));
    const history = await call(auditor(), `Subscription/${adminSub.id}/_history`);
    expect(history.status).toBe(200);
    for (const body of [audited.body, history.body, asAdmin.body]) {
      expect(JSON.stringify(body)).not.toContain('admin-endpoint-secret-123');
      expect(JSON.stringify(body)).not.toContain('member-secret-456');
    }

    // Changing a Subscription is its owner's (a staff update would judge the filters by the wrong token); plan-admin may delete.
    expect((await call(admin(), `Subscription/${memberSub.id}`, { method: 'PUT', json: { ...memberSub, status: 'off' } })).status).toBe(403);
    const widen = [{ op: 'replace', path: '/_criteria/extension/0/valueString', value: 'Task?patient=Patient/member-hpsj-2' }];
    expect((await call(m1, `Subscription/${memberSub.id}`, { method: 'PATCH', headers: { 'content-type': 'application/json-patch+json' }, body: JSON.stringify(widen) })).status).toBe(403);
    expect((await call(m1, `Subscription/${memberSub.id}`, { method: 'PUT', json: { ...memberSub, status: 'off' } })).status).toBe(200);
    expect((await call(auditor(), `Subscription/${memberSub.id}`, { method: 'DELETE' })).status).toBe(403);
    expect((await call(admin(), `Subscription/${memberSub.id}`, { method: 'DELETE' })).status).toBe(204);
  });

  it('lets only plan administration change the published subscription topic (M1)', async () => {
    const provider = tokenFor(server, { scope: 'user/*.cruds', fhirUser: 'Practitioner/hpsj-pcp-1', roles: ['treating-provider'] });
    const read = await call(provider, 'Basic/second-opinion-case');
    expect(read.status).toBe(200);
    const topic = read.body as Basic;
    const spoofed = { ...topic, extension: topic.extension?.map((e) => (e.url.endsWith('SubscriptionTopic.version') ? { ...e, valueString: '9.9.9-probe' } : e)) };
    expect((await call(provider, 'Basic/second-opinion-case', { method: 'PUT', json: spoofed })).status).toBe(403);
    const patch = [{ op: 'replace', path: '/code/text', value: 'spoofed' }];
    expect((await call(provider, 'Basic/second-opinion-case', { method: 'PATCH', headers: { 'content-type': 'application/json-patch+json' }, body: JSON.stringify(patch) })).status).toBe(403);
    expect((await call(provider, 'Basic/second-opinion-case', { method: 'DELETE' })).status).toBe(403);
    expect((await call(provider, 'Basic', { method: 'POST', json: { ...topic, id: undefined, meta: undefined } })).status).toBe(403);
    expect((await call(provider, 'Basic?_id=second-opinion-case', { method: 'PUT', json: topic })).status).toBe(403);
    const bundle = { resourceType: 'Bundle', type: 'transaction', entry: [{ request: { method: 'DELETE', url: 'Basic/second-opinion-case' } }] };
    expect((await call(provider, '', { method: 'POST', json: bundle })).status).toBe(403);
    // Other Basics are the scopes' business, and plan administration may maintain the topic.
    expect((await call(provider, 'Basic', { method: 'POST', json: { resourceType: 'Basic', code: { text: 'note' } } })).status).toBe(201);
    expect((await call(admin(), 'Basic/second-opinion-case', { method: 'PUT', json: topic })).status).toBe(200);
    expect(((await server.store.read('Basic', 'second-opinion-case')) as Basic).extension).toEqual(topic.extension);
  });

  it("R17: a grievance about a case is no event of the case topic: a provider subscribed to the member's Tasks is not sent it", async () => {
    const r = await receiver();
    const provider = tokenFor(server, { scope: 'user/*.cruds', fhirUser: 'Practitioner/hpsj-pcp-1', roles: ['treating-provider'] });
    // A filter is the resource's own parameters: a chain or _has would be matched at each event without the subscriber's access.
    for (const filter of ['ServiceRequest?_has:Task:focus:code=second-opinion-grievance', 'Task?focus:ServiceRequest.status=active']) {
      const refused = await post(provider, subscription(r.url, [filter], 'empty'));
      expect([refused.status, refused.body.resourceType], filter).toEqual([400, 'OperationOutcome']);
    }
    const sub = (await post(provider, subscription(r.url, ['Task?patient=Patient/member-hpsj-2'], 'id-only'))).body as Subscription;
    const request: ServiceRequest = {
      resourceType: 'ServiceRequest',
      identifier: [{ system: 'urn:test', value: randomUUID() }],
      status: 'draft',
      intent: 'order',
      subject: { reference: 'Patient/member-hpsj-2' },
      requester: { reference: 'PractitionerRole/role-hpsj-pcp-1' },
      insurance: [{ reference: 'Coverage/coverage-member-hpsj-2' }],
      reasonCode: [{ text: 'unclear diagnosis' }],
      performerType: { coding: [{ system: 'http://nucc.org/provider-taxonomy', code: '2084N0400X' }] },
    };
    const submitted = await call(provider, 'ServiceRequest/$submit', { method: 'POST', json: { resourceType: 'Bundle', type: 'collection', entry: [{ resource: request }] } });
    expect(submitted.status, JSON.stringify(submitted.body)).toBe(201);
    const caseTask = (submitted.body as Bundle).entry!.map((e) => e.resource!).find((x) => x.resourceType === 'Task') as Task;
    const grievance = {
      resourceType: 'Parameters',
      parameter: [
        { name: 'case', valueReference: { reference: `Task/${caseTask.id}` } },
        { name: 'category', valueCode: 'plan-decision' },
        { name: 'description', valueString: 'I was not told why.' },
      ],
    };
    const filed = await call(member('member-hpsj-2'), 'Task/$file-grievance', { method: 'POST', json: grievance });
    expect(filed.status, JSON.stringify(filed.body)).toBe(201);
    const events = (await call(provider, `Subscription/${sub.id}/$events`)).body as Bundle;
    const status = events.entry?.[0]?.resource as Parameters;
    const foci = (status.parameter ?? []).filter((p) => p.name === 'notification-event').map((p) => p.part?.find((x) => x.name === 'focus')?.valueReference?.reference?.split('/fhir/')[1]);
    expect(foci, JSON.stringify(events)).toContain(`Task/${caseTask.id}`);
    expect(foci).not.toContain(`Task/${(filed.body as Task).id}`);
    // Not even an event whose focus the provider may not read: the grievance counted no event at all.
    expect(foci.every(Boolean)).toBe(true);
    expect(status.parameter?.find((p) => p.name === 'events-since-subscription-start')?.valueString).toBe(String(foci.length));
  });

  it("caps an owner's Subscriptions (422 business-rule) and opens no UM Task for a member's broken endpoint (M5)", async () => {
    const [ok, broken] = [await receiver(), await receiver()];
    broken.respondWith(() => 404);
    const m = member('member-phc-1');
    const own = (url: string) => subscription(url, ['Task?patient=Patient/member-phc-1'], 'id-only');
    const created: Subscription[] = [];
    for (let i = 0; i < 3; i++) created.push((await post(m, own(ok.url))).body as Subscription);
    const over = await post(m, own(ok.url));
    expect(over.status).toBe(422);
    expect(over.body.issue[0]).toMatchObject({ code: 'business-rule', expression: ['Subscription'] });
    // Another owner has its own allowance; switching one off frees a place.
    expect((await post(member('member-phc-2'), subscription(ok.url, ['Task?patient=Patient/member-phc-2'], 'id-only'))).status).toBe(201);
    expect((await call(m, `Subscription/${created[0].id}`, { method: 'PUT', json: { ...created[0], status: 'off' } })).status).toBe(200);
    const memberSub = await post(m, own(broken.url));
    expect(memberSub.status).toBe(201);

    // A provider's Subscription to a broken endpoint still tells UM staff (after the member's was handled).
    const provider = tokenFor(server, { scope: 'user/*.cruds', fhirUser: 'Practitioner/hpsj-pcp-1', roles: ['treating-provider'] });
    const providerSub = (await post(provider, subscription(broken.url, [], 'id-only'))).body as Subscription;
    const failureTasks = async (id: string) =>
      (await server.store.search({ resourceType: 'Task', clauses: [{ kind: 'reference', param: 'focus', values: [`focus|Subscription/${id}`] }], sort: [], count: 5, offset: 0, total: false })).resources;
    await waitFor(async () => (await failureTasks(providerSub.id!)).length > 0 || undefined, 10_000, "the provider's delivery-failed Task");
    const memberId = (memberSub.body as Subscription).id!;
    await waitFor(async () => ((await server.store.read('Subscription', memberId)) as Subscription).status === 'error' || undefined, 10_000, 'member Subscription in error');
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await failureTasks(memberId)).toHaveLength(0);
  });

  it("notifies a member's Subscription of that member's case events only", async () => {
    const [own, wide] = [await receiver(), await receiver()];
    const m1 = member('member-hpsj-1');
    expect((await post(m1, subscription(wide.url, [], 'full-resource'))).status).toBe(403);
    const created = await post(m1, subscription(own.url, mine('member-hpsj-1'), 'full-resource'));
    expect(created.status).toBe(201);
    const id = (created.body as Subscription).id!;
    await waitFor(async () => ((await server.store.read('Subscription', id)) as Subscription).status === 'active' || undefined, 10_000, 'active');

    // Case events of two members (written as the workflow writes them, in the store).
    const caseRequest = (patient: string): ServiceRequest => ({ resourceType: 'ServiceRequest', meta: { profile: [PROFILES.serviceRequest] }, ...PROFILE_REQUIRED(), status: 'active', intent: 'order', subject: { reference: `Patient/${patient}` } });
    await server.store.create(caseRequest('member-hpsj-2'));
    const ownRequest = await server.store.create(caseRequest('member-hpsj-1'));
    await waitFor(() => events(own).length >= 1 || undefined, 10_000, 'notification');
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(events(own)).toHaveLength(1);
    const focus = events(own)[0].entry?.[1].resource as ServiceRequest;
    expect([focus.id, focus.subject.reference]).toEqual([ownRequest.id, 'Patient/member-hpsj-1']);
    expect(wide.received).toHaveLength(0);
    // The notification is a disclosure, audited as a DICOM Export of its focus to the endpoint.
    const destination = (event: AuditEvent) => event.agent.find((a) => !a.requestor)?.network?.address;
    const exported = await waitFor(async () => {
      const found = await call(auditor(), `AuditEvent?type=http://dicom.nema.org/resources/ontology/DCM|110106&entity=ServiceRequest/${ownRequest.id}`);
      return ((found.body as Bundle).entry ?? []).map((e) => e.resource as AuditEvent).find((event) => destination(event) === own.url);
    }, 10_000, 'the export AuditEvent to the member endpoint');
    expect(exported.outcome).toBe('0');
    // Named by the member it is about, so their accounting of disclosures (AuditEvent?patient=) finds it.
    expect(exported.entity?.map((e) => e.what?.reference)).toContain('Patient/member-hpsj-1');
  });

  it("sends a practitioner's Subscription the events about the patients they may see only, and counts no other (workflow/memberAccess.ts)", async () => {
    const r = await receiver();
    const provider = tokenFor(server, { scope: 'user/*.cruds', fhirUser: 'Practitioner/hpsj-pcp-1', roles: ['treating-provider'] });
    const created = await post(provider, subscription(r.url, ['ServiceRequest?status=active'], 'id-only'));
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const id = (created.body as Subscription).id!;
    await waitFor(async () => ((await server.store.read('Subscription', id)) as Subscription).status === 'active' || undefined, 10_000, 'active');
    const caseRequest = (patient: string): ServiceRequest => ({ resourceType: 'ServiceRequest', meta: { profile: [PROFILES.serviceRequest] }, ...PROFILE_REQUIRED(), status: 'active', intent: 'order', subject: { reference: `Patient/${patient}` } });
    // Another plan's member, whom this PCP does not treat, then their own patient.
    await server.store.create(caseRequest('member-phc-1'));
    const own = await server.store.create(caseRequest('member-hpsj-1'));
    await waitFor(() => events(r).length >= 1 || undefined, 10_000, 'notification');
    await new Promise((resolve) => setTimeout(resolve, 300));
    const foci = events(r).flatMap((b) => ((b.entry?.[0]?.resource as Parameters).parameter ?? []).filter((p) => p.name === 'notification-event').map((p) => p.part?.find((x) => x.name === 'focus')?.valueReference?.reference));
    expect(foci).toEqual([`${server.fhirBase}/ServiceRequest/${own.id}`]);
    expect(statusOf(events(r)[0])['events-since-subscription-start']).toBe('1');
  });

  it('stops notifying, and turns the Subscription off, once the authorization grant it was made under is revoked', async () => {
    const r = await receiver();
    const granted = await smartAppGrant(server, 'Patient/member-hpsj-1', 'launch/patient openid fhirUser offline_access patient/*.cruds');
    const created = await post(granted.access_token, subscription(r.url, mine('member-hpsj-1'), 'id-only'));
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const id = (created.body as Subscription).id!;
    await waitFor(async () => ((await server.store.read('Subscription', id)) as Subscription).status === 'active' || undefined, 10_000, 'active');
    // The app may not unbind it from its grant: a PATCH that drops or changes the grant tag is refused (a PUT re-stamps it).
    const tags = (created.body as Subscription).meta?.tag ?? [];
    const grantTag = tags.findIndex((t) => t.system?.endsWith('/subscription-grant'));
    expect(grantTag).toBeGreaterThanOrEqual(0);
    const unbind = await call(granted.access_token, `Subscription/${id}`, { method: 'PATCH', headers: { 'content-type': 'application/json-patch+json' }, body: JSON.stringify([{ op: 'remove', path: `/meta/tag/${grantTag}` }]) });
    expect(unbind.status).toBe(403);
    // The member revokes the app's access (RFC 7009): its refresh token, and so the whole grant; the Subscription ends with it.
    const revoked = await fetch(`${server.url}/auth/revoke`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ token: granted.refresh_token!, client_id: 'second-opinion-app' }).toString() });
    expect(revoked.status).toBe(200);
    const off = (await server.store.read('Subscription', id)) as Subscription;
    expect([off.status, off.error]).toEqual(['off', expect.stringMatching(/grant revoked/)]);
    await server.store.create({ resourceType: 'ServiceRequest', meta: { profile: [PROFILES.serviceRequest] }, ...PROFILE_REQUIRED(), status: 'active', intent: 'order', subject: { reference: 'Patient/member-hpsj-1' } } as ServiceRequest);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(events(r)).toHaveLength(0);
  });

  it("stops notifying, and turns the Subscription off, once its owner's authorization ends (a practitioner whose roles are withdrawn)", async () => {
    const r = await receiver();
    const umToken = tokenFor(server, { scope: 'user/*.rs user/Subscription.cruds', fhirUser: 'Practitioner/hpsj-um-1', roles: ['um-clinician'] });
    const created = await post(umToken, subscription(r.url, [], 'id-only'));
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const id = (created.body as Subscription).id!;
    await waitFor(async () => ((await server.store.read('Subscription', id)) as Subscription).status === 'active' || undefined, 10_000, 'active');
    const request = (): ServiceRequest => ({ resourceType: 'ServiceRequest', meta: { profile: [PROFILES.serviceRequest] }, ...PROFILE_REQUIRED(), status: 'active', intent: 'order', subject: { reference: 'Patient/member-hpsj-2' } });
    await server.store.create(request());
    await waitFor(() => events(r).length >= 1 || undefined, 10_000, 'a notification while the owner stands');

    const roles = (await server.store.search({ resourceType: 'PractitionerRole', clauses: [{ kind: 'reference', param: 'practitioner', values: ['practitioner|Practitioner/hpsj-um-1'] }], sort: [], count: 20, offset: 0, total: false })).resources as PractitionerRole[];
    expect(roles.length).toBeGreaterThan(0);
    for (const role of roles) await server.store.update({ ...role, active: false });
    try {
      await server.store.create(request());
      const off = await waitFor(async () => {
        const sub = (await server.store.read('Subscription', id)) as Subscription;
        return sub.status === 'off' ? sub : undefined;
      }, 10_000, 'switched off');
      expect(off.error).toMatch(/authorization has ended/);
      expect(events(r)).toHaveLength(1);
    } finally {
      for (const role of roles) await server.store.update({ ...role, active: true });
    }
  });

  it('answers $events to the owner and staff alone, showing a focus only to a token that may read it now', async () => {
    const r = await receiver();
    const created = await post(admin(), subscription(r.url, [], 'full-resource'));
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const id = (created.body as Subscription).id!;
    await waitFor(async () => ((await server.store.read('Subscription', id)) as Subscription).status === 'active' || undefined, 10_000, 'active');
    const request = await server.store.create({ resourceType: 'ServiceRequest', meta: { profile: [PROFILES.serviceRequest] }, ...PROFILE_REQUIRED(), status: 'active', intent: 'order', subject: { reference: 'Patient/member-hpsj-2' } } as ServiceRequest);
    const focus = `${server.fhirBase}/ServiceRequest/${request.id}`;
    const ask = async (token: string) => {
      const res = await call(token, `Subscription/${id}/$events?eventsSinceNumber=1`);
      const bundle = res.body as Bundle;
      const parts = ((bundle.entry?.[0]?.resource as Parameters | undefined)?.parameter ?? []).filter((p) => p.name === 'notification-event').map((p) => p.part ?? []);
      const focuses = parts.map((part) => part.find((x) => x.name === 'focus')?.valueReference?.reference);
      return { status: res.status, focuses, resources: (bundle.entry ?? []).slice(1).map((e) => e.resource?.id), outcome: bundle.entry?.[0]?.response?.outcome as OperationOutcome | undefined };
    };
    const owner = await ask(admin());
    expect(owner.status).toBe(200);
    expect(owner.focuses).toContain(focus);
    expect(owner.resources).toContain(request.id);
    // Staff who may see the Subscription, and its owner with a token that may no longer read case records: the events without their focus.
    for (const token of [auditor(), tokenFor(server, { scope: 'user/Subscription.rs', fhirUser: 'Practitioner/hpsj-md-1', roles: ['plan-admin'] })]) {
      const narrow = await ask(token);
      expect(narrow.status).toBe(200);
      expect(narrow.focuses.length).toBe(owner.focuses.length);
      expect(narrow.focuses.every((f) => f === undefined)).toBe(true);
      expect(narrow.resources).toEqual([]);
      expect(narrow.outcome?.issue.map((i) => i.code)).toContain('suppressed');
    }
    // Anyone else: 404, as for its read and $status (another's Subscription ids stay unknown).
    expect((await ask(member('member-hpsj-2'))).status).toBe(404);
    expect((await ask(tokenFor(server, { scope: 'user/*.cruds', fhirUser: 'Practitioner/hpsj-pcp-1', roles: ['treating-provider'] }))).status).toBe(404);
  });

  it('ends a Subscription made under an online_access grant once that grant lapses (an offline_access grant ends only when revoked)', async () => {
    const grantOf = (token: string) => (JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString()) as { gid: string }).gid;
    const grantEnd = async (token: string) => ((await server.store.getEphemeral(`grant-end:${grantOf(token)}`)) as { endsAt: number } | undefined)?.endsAt;
    const offline = await smartAppGrant(server, 'Patient/member-hpsj-1', 'launch/patient openid fhirUser offline_access patient/*.cruds');
    expect(await grantEnd(offline.access_token)).toBeUndefined();

    const r = await receiver();
    const online = await smartAppGrant(server, 'Patient/member-hpsj-1', 'launch/patient openid fhirUser online_access patient/*.cruds');
    expect(online.refresh_token).toBeDefined();
    // Online while its refresh token lasts: a day from the last refresh (this server keeps no sign-in session).
    expect(await grantEnd(online.access_token)).toBeGreaterThan(Date.now() + 23 * 3600_000);
    const created = await post(online.access_token, subscription(r.url, mine('member-hpsj-1'), 'id-only'));
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const id = (created.body as Subscription).id!;
    await waitFor(async () => ((await server.store.read('Subscription', id)) as Subscription).status === 'active' || undefined, 10_000, 'active');

    // A refresh moves the grant's end: set near, it is a day away again after the refresh.
    const key = `grant-end:${grantOf(online.access_token)}`;
    await server.store.putEphemeral(key, { endsAt: Date.now() + 600_000 }, new Date(Date.now() + 86_400_000));
    const refreshed = await fetch(`${server.url}/auth/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: online.refresh_token!, client_id: 'second-opinion-app' }).toString() });
    expect(refreshed.status).toBe(200);
    expect(await grantEnd(online.access_token)).toBeGreaterThan(Date.now() + 23 * 3600_000);
    expect(((await server.store.read('Subscription', id)) as Subscription).status).toBe('active');

    // The user goes offline: the refresh token lapses unused. The scheduler's next pass ends the Subscription, as a revocation would.
    await server.store.putEphemeral(key, { endsAt: Date.now() - 1000 }, new Date(Date.now() + 86_400_000));
    const off = await waitFor(async () => {
      const sub = (await server.store.read('Subscription', id)) as Subscription;
      return sub.status === 'off' ? sub : undefined;
    }, 10_000, 'switched off');
    expect(off.error).toMatch(/authorization has ended \(grant revoked or expired\)/);
  });
});
