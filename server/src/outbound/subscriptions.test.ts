import type { Basic, Extension, Subscription } from 'fhir/r4.js';
import { describe, expect, it } from 'vitest';
import type { AccessPolicy, FhirContext, Interaction } from '../fhir/context.js';
import { FhirError, forbidden } from '../fhir/outcomes.js';
import type { AccessContext } from '../fhir/request.js';
import { SearchParamRegistry } from '../fhir/search/registry.js';
import { OutboundConfigSchema } from './config.js';
import { notificationBundle, statusParameters } from './notifications.js';
import { checkSubscriptionAccess, isMemberOwned, maskHeaders, ownerOf, SUBSCRIPTION_OWNER_SYSTEM, subscriptionAccessRule } from './subscriptionAccess.js';
import { channelSettings } from './subscriptionSettings.js';
import { BACKPORT, readTopicBasic, TOPIC_RESOURCE_TYPES, TOPIC_URL } from './topic.js';
import { topicAccessRule } from './topicAccess.js';

const registry = SearchParamRegistry.withStandard();
const BASE = 'https://plan.example.org/fhir';
const config = OutboundConfigSchema.parse({});
const deps = { registry, fhirBase: BASE, network: config.network, settings: config.subscriptions };

function sub(filters: string[], extra: Partial<Subscription> = {}): Subscription {
  return {
    resourceType: 'Subscription',
    id: 's1',
    status: 'requested',
    reason: 'r',
    criteria: TOPIC_URL,
    _criteria: { extension: filters.map((valueString) => ({ url: BACKPORT.filterCriteria, valueString })) },
    channel: {
      type: 'rest-hook',
      endpoint: 'https://subscriber.example.com/hook',
      payload: 'application/fhir+json',
      _payload: { extension: [{ url: BACKPORT.payloadContent, valueCode: 'full-resource' }] },
      header: ['Authorization: Bearer abc'],
      extension: [{ url: BACKPORT.heartbeatPeriod, valueUnsignedInt: 3600 }],
    },
    ...extra,
  } as Subscription;
}

const status = (fn: () => unknown): number => {
  try {
    fn();
  } catch (err) {
    if (err instanceof FhirError) return err.status;
    throw err;
  }
  return 0;
};

describe('the topic', () => {
  it('is published as the backport IG R4 Basic with the same canonical and one trigger per resource type', () => {
    const basic: Basic = readTopicBasic();
    const ext = (url: string): Extension[] => (basic.extension ?? []).filter((e) => e.url === url);
    expect(ext('http://hl7.org/fhir/StructureDefinition/artifact-url')[0].valueUri).toBe(TOPIC_URL);
    expect(basic.code.coding?.[0]).toEqual({ system: 'http://hl7.org/fhir/fhir-types', code: 'SubscriptionTopic' });
    const triggers = ext('http://hl7.org/fhir/5.0/StructureDefinition/extension-SubscriptionTopic.resourceTrigger').map(
      (e) => e.extension?.find((x) => x.url === 'resource')?.valueUri?.split('/').pop(),
    );
    expect(triggers.sort()).toEqual([...TOPIC_RESOURCE_TYPES].sort());
  });
});

describe('channelSettings', () => {
  it('reads the backport extensions', () => {
    const s = channelSettings(sub(['Task?patient=Patient/1&status=requested']), deps);
    expect(s).toMatchObject({ content: 'full-resource', heartbeatSeconds: 3600, endpoint: 'https://subscriber.example.com/hook', headers: { authorization: 'Bearer abc' } });
    expect(s.filters).toHaveLength(1);
    expect(s.filters[0].resourceType).toBe('Task');
    expect(s.filters[0].query.clauses).toHaveLength(2);
  });

  it('refuses what the server cannot honour', () => {
    expect(status(() => channelSettings(sub([], { criteria: 'Task?status=ready' }), deps))).toBe(422);
    expect(status(() => channelSettings(sub(['Observation?patient=Patient/1']), deps))).toBe(422);
    expect(status(() => channelSettings(sub(['Task?unknown-param=1']), deps))).toBe(400);
    expect(status(() => channelSettings(sub(['Task?_count=5']), deps))).toBe(400);
    // A page position selects nothing: beside a real filter it would make the filter skip what it should match.
    expect(status(() => channelSettings(sub([`Task?patient=Patient/1&_cursor=${Buffer.from(JSON.stringify({ d: 'a', s: '', p: ['zzz'] })).toString('base64url')}`]), deps))).toBe(400);
    expect(status(() => channelSettings(sub(['patient=Patient/1']), deps))).toBe(400);
    const s = sub([]);
    expect(status(() => channelSettings({ ...s, channel: { ...s.channel, endpoint: 'http://subscriber.example.com/hook' } } as Subscription, deps))).toBe(422);
    expect(status(() => channelSettings({ ...s, channel: { ...s.channel, endpoint: 'https://10.0.0.5/hook' } } as Subscription, deps))).toBe(422);
    // Finding F8(b): loopback and link-local written as IPv4-mapped IPv6.
    for (const endpoint of ['https://[::ffff:127.0.0.1]:18556/hook', 'https://[::ffff:169.254.169.254]/latest/meta-data/']) {
      expect(status(() => channelSettings({ ...s, channel: { ...s.channel, endpoint } } as Subscription, deps))).toBe(422);
    }
    expect(status(() => channelSettings({ ...s, channel: { ...s.channel, payload: 'application/fhir+xml' } } as Subscription, deps))).toBe(422);
    expect(status(() => channelSettings({ ...s, channel: { ...s.channel, header: ['Content-Length: 5'] } } as Subscription, deps))).toBe(422);
    expect(status(() => channelSettings({ ...s, channel: { ...s.channel, extension: [{ url: BACKPORT.heartbeatPeriod, valueUnsignedInt: 5 }] } } as Subscription, deps))).toBe(422);
  });
});

describe('notification content', () => {
  const event = { number: 7, timestamp: '2025-03-01T10:00:00Z', focus: 'Task/t1' };
  const input = { fhirBase: BASE, subscriptionId: 's1', status: 'active' as const, type: 'event-notification' as const, eventsSinceStart: 7, events: [event] };
  const names = (content: 'empty' | 'id-only' | 'full-resource') => statusParameters({ ...input, content }).parameter!.map((p) => p.name);

  it('follows the R4 SubscriptionStatus profile: topic and focus only beyond empty', () => {
    expect(names('empty')).toEqual(['subscription', 'status', 'type', 'events-since-subscription-start', 'notification-event']);
    expect(names('id-only')).toEqual(['subscription', 'topic', 'status', 'type', 'events-since-subscription-start', 'notification-event']);
    const params = statusParameters({ ...input, content: 'id-only' });
    expect(params.meta?.profile).toEqual([BACKPORT.statusProfile]);
    expect(params.parameter!.find((p) => p.name === 'notification-event')!.part).toEqual([
      { name: 'event-number', valueString: '7' },
      { name: 'timestamp', valueInstant: '2025-03-01T10:00:00Z' },
      { name: 'focus', valueReference: { reference: `${BASE}/Task/t1` } },
    ]);
    expect(statusParameters({ ...input, content: 'empty' }).parameter!.find((p) => p.name === 'notification-event')!.part).toHaveLength(2);
  });

  it('puts the focus after the status entry for full-resource', () => {
    const focusResource = { resourceType: 'Task' as const, id: 't1', status: 'ready' as const, intent: 'order' as const };
    const bundle = notificationBundle({ ...input, content: 'full-resource', focusVersions: [{ resource: focusResource, created: false }] });
    expect(bundle.type).toBe('history');
    expect(bundle.meta?.profile).toEqual([BACKPORT.notificationProfile]);
    expect(bundle.entry?.[0].request).toEqual({ method: 'GET', url: `${BASE}/Subscription/s1/$status` });
    expect(bundle.entry?.[1]).toEqual({ fullUrl: `${BASE}/Task/t1`, resource: focusResource, request: { method: 'PUT', url: 'Task/t1' }, response: { status: '200' } });
    expect(notificationBundle({ ...input, content: 'id-only', focusVersions: [{ resource: focusResource, created: false }] }).entry).toHaveLength(1);
  });
});

describe('checkSubscriptionAccess', () => {
  const searched: string[] = [];
  const policy = (compartment?: string, allowed = TOPIC_RESOURCE_TYPES as readonly string[]): AccessPolicy => ({
    requireScope: (_ctx, type) => {
      searched.push(type);
      if (!allowed.includes(type)) throw forbidden(`no scope for ${type}`);
    },
    patientCompartment: () => compartment,
    mayAccess: () => true,
  });
  const auth: AccessContext = { kind: 'user', clientId: 'app-1', scopes: [], roles: ['treating-provider'] };
  const options = { registry, baseUrl: BASE };

  it('needs search access to every type the filters deliver, and stamps the owner', () => {
    searched.length = 0;
    const stamped = checkSubscriptionAccess(auth, sub(['Task?patient=Patient/1', 'ServiceRequest?patient=Patient/1']), policy(), options);
    expect(searched).toEqual(['Task', 'ServiceRequest']);
    expect(stamped.meta?.tag).toEqual([{ system: SUBSCRIPTION_OWNER_SYSTEM, code: 'app-1' }]);
    expect(status(() => checkSubscriptionAccess(auth, sub(['Task?patient=Patient/1']), policy(undefined, ['ServiceRequest']), options))).toBe(403);
    searched.length = 0;
    checkSubscriptionAccess(auth, sub([]), policy(), options);
    expect(searched).toEqual([...TOPIC_RESOURCE_TYPES]);
  });

  it('makes a patient-limited caller pin every filter to its patient', () => {
    const p = policy('Patient/1');
    expect(status(() => checkSubscriptionAccess(auth, sub(['Task?patient=Patient/1']), p, options))).toBe(0);
    expect(status(() => checkSubscriptionAccess(auth, sub([`Task?patient=${BASE}/Patient/1`]), p, options))).toBe(0);
    expect(status(() => checkSubscriptionAccess(auth, sub(['Task?patient=Patient/2']), p, options))).toBe(403);
    expect(status(() => checkSubscriptionAccess(auth, sub(['Task?patient=Patient/1,Patient/2']), p, options))).toBe(403);
    expect(status(() => checkSubscriptionAccess(auth, sub(['Task?status=ready']), p, options))).toBe(403);
    expect(status(() => checkSubscriptionAccess(auth, sub([]), p, options))).toBe(403);
  });

  it('owns a launch by client and user, a backend service by client', () => {
    const member = (fhirUser: string): AccessContext => ({ kind: 'patient', clientId: 'app|1', scopes: [], fhirUser, roles: ['member'] });
    const [a, b] = [member('Patient/a'), member('Patient/b')].map((m) => checkSubscriptionAccess(m, sub([]), policy(), options).meta?.tag?.[0].code);
    expect(a).toBe('app%7C1/Patient%2Fa');
    expect(a).not.toBe(b);
    expect(checkSubscriptionAccess({ kind: 'system', clientId: 'svc', scopes: [], fhirUser: 'Device/x', roles: [] }, sub([]), policy(), options).meta?.tag?.[0].code).toBe('svc');
    // An owner tag the client sends is replaced.
    const forged = { ...sub([]), meta: { tag: [{ system: SUBSCRIPTION_OWNER_SYSTEM, code: 'someone-else' }] } };
    expect(checkSubscriptionAccess(auth, forged, policy(), options).meta?.tag).toEqual([{ system: SUBSCRIPTION_OWNER_SYSTEM, code: 'app-1' }]);
  });
});

describe('the Subscription access rule', () => {
  const rule = subscriptionAccessRule({ registry, baseUrl: BASE });
  const ctx = { policy: { requireScope: () => undefined, patientCompartment: () => undefined, mayAccess: () => true } } as unknown as FhirContext;
  const owner: AccessContext = { kind: 'user', clientId: 'app', scopes: [], fhirUser: 'Practitioner/p1', roles: ['treating-provider'] };
  const peer: AccessContext = { ...owner, fhirUser: 'Practitioner/p2' };
  const admin: AccessContext = { ...owner, fhirUser: 'Practitioner/admin', roles: ['plan-admin'] };
  const auditor: AccessContext = { ...owner, fhirUser: 'Practitioner/audit', roles: ['auditor'] };
  const stored = checkSubscriptionAccess(owner, sub([], { channel: { ...sub([]).channel, header: ['Authorization: Bearer s3cret', 'X-Key:abc'] } }), ctx.policy, { registry, baseUrl: BASE });
  const may = (auth: AccessContext, interaction: Interaction, resource: Subscription = stored) =>
    rule.mayAccess({ method: 'GET', path: [], query: [], headers: {}, baseUrl: BASE, auth, interaction }, ctx, resource);

  it('lets the owner do anything, staff read (plan-admin also delete), and nobody else anything', () => {
    for (const i of ['read', 'search', 'history', 'update', 'patch', 'delete'] as const) expect(may(owner, i)).toBe(true);
    for (const i of ['read', 'vread', 'search', 'history', 'update', 'patch', 'delete'] as const) expect(may(peer, i)).toBe(false);
    expect(['read', 'history', 'delete', 'update'].map((i) => may(admin, i as Interaction))).toEqual([true, true, true, false]);
    expect(['read', 'history', 'delete', 'update'].map((i) => may(auditor, i as Interaction))).toEqual([true, true, false, false]);
    // Stored without an owner (before the rule): staff only.
    const legacy = { ...stored, meta: undefined };
    expect([may(owner, 'read', legacy), may(admin, 'read', legacy)]).toEqual([false, true]);
  });

  it('shows channel.header values to the owner alone', () => {
    expect((rule.present!(owner, stored) as Subscription).channel.header).toEqual(['Authorization: Bearer s3cret', 'X-Key:abc']);
    expect((rule.present!(admin, stored) as Subscription).channel.header).toEqual(['Authorization: [hidden]', 'X-Key: [hidden]']);
    const headerless = sub([], { channel: { ...sub([]).channel, header: undefined } });
    expect(maskHeaders(headerless)).toBe(headerless);
  });

  it('limits searches to the caller\'s own Subscriptions, except for staff', () => {
    const req = (auth: AccessContext) => ({ method: 'GET' as const, path: [], query: [], headers: {}, baseUrl: BASE, auth, interaction: 'search' as const });
    expect(rule.searchClauses(req(owner), ctx)).toEqual([{ kind: 'token', param: '_tag', values: [`_tag|${SUBSCRIPTION_OWNER_SYSTEM}|app/Practitioner%2Fp1`], not: false }]);
    expect(rule.searchClauses(req(auditor), ctx)).toEqual([]);
  });
});

describe('the topic access rule', () => {
  const ctx = {} as FhirContext;
  const provider: AccessContext = { kind: 'user', clientId: 'app', scopes: [], fhirUser: 'Practitioner/p1', roles: ['treating-provider'] };
  const admin: AccessContext = { ...provider, roles: ['plan-admin'] };
  const request = (auth: AccessContext, interaction: Interaction) => ({ method: 'PUT' as const, path: [], query: [], headers: {}, baseUrl: BASE, auth, interaction });
  const topic = readTopicBasic();
  const note: Basic = { resourceType: 'Basic', id: 'n1', code: { text: 'note' } };

  it('leaves the topic to plan administration, and every other Basic and every read to the scopes', () => {
    for (const i of ['create', 'update', 'patch', 'delete'] as const) {
      expect([topicAccessRule.mayAccess(request(provider, i), ctx, topic), topicAccessRule.mayAccess(request(admin, i), ctx, topic)]).toEqual([false, true]);
      expect(topicAccessRule.mayAccess(request(provider, i), ctx, note)).toBe(true);
    }
    expect(topicAccessRule.mayAccess(request(provider, 'read'), ctx, topic)).toBe(true);
    // A new Basic claiming to be a topic is refused as a write, with a reason.
    expect(status(() => topicAccessRule.prepareWrite!(request(provider, 'create'), ctx, { ...topic, id: undefined }))).toBe(403);
    expect(topicAccessRule.prepareWrite!(request(provider, 'create'), ctx, note)).toBe(note);
  });
});

describe('channelSettings, content type and channel type', () => {
  const withChannel = (channel: Partial<Subscription['channel']>) => ({ ...sub([]), channel: { ...sub([]).channel, ...channel } }) as Subscription;
  const customType = (system: string, code: string) => ({ extension: [{ url: BACKPORT.channelType, valueCoding: { system, code } }] });

  it('sends the MIME type channel.payload names, and refuses a custom channel type it does not support', () => {
    expect(channelSettings(withChannel({ payload: 'application/json' }), deps).contentType).toBe('application/json');
    expect(status(() => channelSettings(withChannel({ payload: 'application/json; a=b\r\nX: y' }), deps))).toBe(422);
    expect(status(() => channelSettings(withChannel({ _type: customType('http://example.org/ch', 'kafka') } as never), deps))).toBe(422);
    expect(channelSettings(withChannel({ _type: customType('http://terminology.hl7.org/CodeSystem/subscription-channel-type', 'rest-hook') } as never), deps).endpoint).toBe('https://subscriber.example.com/hook');
  });

  it('knows a member-owned Subscription by the user of its owner code', () => {
    const owned = (code: string) => ({ ...sub([]), meta: { tag: [{ system: SUBSCRIPTION_OWNER_SYSTEM, code }] } });
    expect(['app/Patient%2Fm1', 'app/RelatedPerson%2Fr1', 'app/Practitioner%2Fp1', 'svc', 'app/%E0%A4%A'].map((c) => isMemberOwned(owned(c)))).toEqual([true, true, false, false, false]);
  });
});

describe('owner codes', () => {
  const owned = (code: string): Subscription => ({ resourceType: 'Subscription', status: 'active', reason: 'x', criteria: TOPIC_URL, channel: { type: 'rest-hook' }, meta: { tag: [{ system: SUBSCRIPTION_OWNER_SYSTEM, code }] } });
  it('read the client and the user back; a bare patient id (a patient-context token without fhirUser) is that Patient', () => {
    expect(ownerOf('second-opinion-app/Practitioner%2Fhpsj-um-1')).toEqual({ clientId: 'second-opinion-app', user: 'Practitioner/hpsj-um-1' });
    expect(ownerOf('second-opinion-app/member-1')).toEqual({ clientId: 'second-opinion-app', user: 'Patient/member-1' });
    expect(ownerOf('demo-backend')).toEqual({ clientId: 'demo-backend', user: undefined });
    expect(ownerOf('a/b/c')).toBeUndefined();
    expect(isMemberOwned(owned('second-opinion-app/member-1'))).toBe(true);
    expect(isMemberOwned(owned('second-opinion-app/Practitioner%2Fhpsj-um-1'))).toBe(false);
  });
});
