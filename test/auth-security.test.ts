import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DemoServer, startDemoServer } from './helpers/demoServer.js';
import { raw } from './helpers/fhir.js';
import { backendAssertion, forgedToken, pkce, tokenFor } from './helpers/tokens.js';

/** Every attempt here must be refused, return nothing and change nothing. */
describe('access control: tokens, scopes, compartments', () => {
  let server: DemoServer;
  beforeAll(async () => {
    server = await startDemoServer();
  });
  afterAll(async () => server?.close());

  const get = (path: string, token?: string, headers: Record<string, string> = {}) =>
    raw(`${server.fhirBase}/${path}`, { headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers } });

  describe('bad tokens get 401 with WWW-Authenticate', () => {
    const cases: [string, () => string | undefined][] = [
      ['missing', () => undefined],
      ['expired', () => forgedToken(server, { exp: Math.floor(Date.now() / 1000) - 60 })],
      ['not yet valid', () => forgedToken(server, { nbf: Math.floor(Date.now() / 1000) + 600 })],
      ['alg none', () => forgedToken(server, {}, { key: 'none' })],
      ['wrong key', () => forgedToken(server, {}, { key: 'other' })],
      ['wrong audience', () => forgedToken(server, { aud: 'https://ehr.example.org/fhir' })],
      ['wrong issuer', () => forgedToken(server, { iss: 'https://evil.example.org' })],
      ['tampered', () => {
        const t = tokenFor(server, { scope: 'patient/*.rs', patient: 'member-hpsj-1' });
        const [h, p, s] = t.split('.');
        const claims = JSON.parse(Buffer.from(p, 'base64url').toString());
        return `${h}.${Buffer.from(JSON.stringify({ ...claims, patient: 'member-phc-1' })).toString('base64url')}.${s}`;
      }],
      ['not ours (no token_use)', () => forgedToken(server, { token_use: undefined })],
      ['garbage', () => 'not-a-jwt'],
    ];
    it.each(cases)('%s', async (_name, make) => {
      const res = await get('Patient/member-hpsj-1', make());
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
      expect(res.body.resourceType).toBe('OperationOutcome');
    });
  });

  it('discovery documents and /metadata stay public', async () => {
    expect((await get('metadata')).status).toBe(200);
    expect((await get('.well-known/smart-configuration')).status).toBe(200);
    const cs = (await get('metadata')).body;
    expect(JSON.stringify(cs.rest[0].security)).toContain('oauth-uris');
    // Only what is delivered: no encounter context (no Encounter resources here), no style sheet (no smart_style_url).
    const smart = (await get('.well-known/smart-configuration')).body;
    expect(smart.capabilities).not.toContain('context-ehr-encounter');
    expect(smart.capabilities).not.toContain('context-style');
    expect(smart.scopes_supported).not.toContain('launch/encounter');
    expect(smart.scopes_supported).toContain('patient/*.cruds');
  });

  describe('a patient token sees only its own compartment', () => {
    let token: string;
    beforeAll(() => {
      token = tokenFor(server, { scope: 'launch/patient patient/*.rs', patient: 'member-hpsj-1', fhirUser: 'Patient/member-hpsj-1', roles: ['member'] });
    });
    it('reads its own record', async () => {
      expect((await get('Patient/member-hpsj-1', token)).status).toBe(200);
    });
    it('is refused another patient by id', async () => {
      const res = await get('Patient/member-phc-1', token);
      expect(res.status).toBe(403);
      expect(res.body.resourceType).toBe('OperationOutcome');
    });
    it('by search: sees only its own', async () => {
      const res = await get('Patient?_count=50', token);
      expect(res.body.entry.map((e: { resource: { id: string } }) => e.resource.id)).toEqual(['member-hpsj-1']);
      const coverages = await get('Coverage?_count=50', token);
      expect(coverages.body.entry.every((e: { resource: { beneficiary: { reference: string } } }) => e.resource.beneficiary.reference === 'Patient/member-hpsj-1')).toBe(true);
    });
    it('by _include: other patients never come along', async () => {
      const res = await get('CareTeam?_include=CareTeam:patient&_count=50', token);
      const patients = res.body.entry.filter((e: { resource: { resourceType: string } }) => e.resource.resourceType === 'Patient');
      expect(patients.map((e: { resource: { id: string } }) => e.resource.id)).toEqual(['member-hpsj-1']);
    });
    it('by _has and chains: what they pass through stays in the compartment too', async () => {
      const ids = async (path: string) => ((await get(path, token)).body.entry ?? []).map((e: { resource: { id: string } }) => e.resource.id);
      const admin = tokenFor(server, { scope: 'system/*.rs' });
      const pcpOf = (member: string) => `PractitionerRole?_has:Patient:general-practitioner:_id=${member}`;
      // The other member has a PCP (an unrestricted token finds it); the patient token learns nothing of it.
      expect(((await get(pcpOf('member-hpsj-2'), admin)).body.entry ?? []).length).toBeGreaterThan(0);
      expect(await ids(pcpOf('member-hpsj-2'))).toEqual([]);
      expect(await ids('Organization?_has:Coverage:payor:beneficiary=member-hpsj-2')).toEqual([]);
      expect(await ids('Organization?_has:Coverage:payor:beneficiary=member-hpsj-1')).not.toEqual([]);
      expect(await ids('Coverage?beneficiary:Patient._id=member-hpsj-1')).not.toEqual([]); // chains still find the patient's own
    });
    it('inside a batch Bundle', async () => {
      const res = await raw(server.fhirBase, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}` },
        json: { resourceType: 'Bundle', type: 'batch', entry: [{ request: { method: 'GET', url: 'Patient/member-phc-1' } }] },
      });
      expect(res.body.entry[0].response.status).toBe('403');
      expect(res.body.entry[0].resource).toBeUndefined();
    });
    it('through an operation: cannot submit for another member', async () => {
      const res = await raw(`${server.fhirBase}/ServiceRequest/$submit`, {
        method: 'POST',
        headers: { authorization: `Bearer ${tokenFor(server, { scope: 'launch/patient patient/*.cruds', patient: 'member-hpsj-1', fhirUser: 'Patient/member-hpsj-1', roles: ['member'] })}` },
        json: {
          resourceType: 'Bundle',
          type: 'collection',
          entry: [{ resource: { resourceType: 'ServiceRequest', status: 'draft', intent: 'order', subject: { reference: 'Patient/member-phc-1' }, requester: { reference: 'Patient/member-hpsj-1' }, insurance: [{ reference: 'Coverage/coverage-member-phc-1' }], reasonCode: [{ text: 'worried' }] } }],
        },
      });
      expect(res.status).toBe(403);
      const tasks = await get('Task?patient=member-phc-1', tokenFor(server, { scope: 'system/*.rs' }));
      expect(tasks.body.entry ?? []).toHaveLength(0);
    });
    it('cannot write outside its scopes', async () => {
      const res = await raw(`${server.fhirBase}/Patient/member-hpsj-1`, { method: 'PUT', headers: { authorization: `Bearer ${token}` }, json: { resourceType: 'Patient', id: 'member-hpsj-1' } });
      expect(res.status).toBe(403);
      expect((await get('Patient/member-hpsj-1', token)).body.name).toBeDefined();
    });
  });

  it('a user token without a scope for the type is refused with 403', async () => {
    const token = tokenFor(server, { scope: 'user/Patient.rs', fhirUser: 'Practitioner/hpsj-pcp-1', roles: ['treating-provider'] });
    expect((await get('Patient/member-hpsj-1', token)).status).toBe(200);
    expect((await get('Task', token)).status).toBe(403);
  });

  describe('the authorization server refuses', () => {
    const authorizeUrl = (over: Record<string, string> = {}) => {
      const { challenge } = pkce();
      const params = new URLSearchParams({ response_type: 'code', client_id: 'second-opinion-app', redirect_uri: `${server.url}/app/index.html`, scope: 'launch/patient openid fhirUser patient/*.rs', state: 'xyz', aud: server.fhirBase, code_challenge: challenge, code_challenge_method: 'S256', ...over });
      return `${server.url}/auth/authorize?${params}`;
    };
    it('a redirect URI that does not match (no redirect, 400)', async () => {
      const res = await fetch(authorizeUrl({ redirect_uri: 'https://evil.example.org/cb' }), { redirect: 'manual' });
      expect(res.status).toBe(400);
    });
    it.each([
      ['missing PKCE', { code_challenge: '' }],
      ['plain PKCE', { code_challenge_method: 'plain' }],
      ['wrong aud', { aud: 'https://other.example.org/fhir' }],
      ['missing state', { state: '' }],
      ['unknown launch', { launch: 'nope' }],
    ])('%s, redirecting with the error', async (_n, over) => {
      const res = await fetch(authorizeUrl(over), { redirect: 'manual' });
      expect(res.status).toBe(302);
      expect(new URL(res.headers.get('location')!).searchParams.get('error')).toBeTruthy();
    });
    it('a client assertion replayed (same jti), and one living more than 5 minutes, and one with the wrong aud', async () => {
      const post = (assertion: string) =>
        fetch(`${server.url}/auth/token`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'system/*.rs', client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: assertion }),
        });
      const assertion = backendAssertion(server);
      expect((await post(assertion)).status).toBe(200);
      expect((await post(assertion)).status).toBe(401);
      expect((await post(backendAssertion(server, { exp: Math.floor(Date.now() / 1000) + 3600 }))).status).toBe(401);
      expect((await post(backendAssertion(server, { aud: `${server.fhirBase}` }))).status).toBe(401);
    });
    it('a backend client asking for user scopes', async () => {
      const res = await fetch(`${server.url}/auth/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'user/*.rs', client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: backendAssertion(server) }),
      });
      expect(res.status).toBe(400);
    });
  });

  it('the full code flow: PKCE mismatch refused, code single-use, refresh rotates and cannot widen scopes, revoke works', async () => {
    const { verifier, challenge } = pkce();
    const redirect = `${server.url}/app/index.html`;
    const params = new URLSearchParams({ response_type: 'code', client_id: 'second-opinion-app', redirect_uri: redirect, scope: 'openid fhirUser patient/*.rs offline_access', state: 's1', aud: server.fhirBase, code_challenge: challenge, code_challenge_method: 'S256', user: 'Patient/member-ant-1' });
    const res = await fetch(`${server.url}/auth/authorize`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: params, redirect: 'manual' });
    const location = new URL(res.headers.get('location')!);
    expect(location.searchParams.get('state')).toBe('s1');
    const code = location.searchParams.get('code')!;
    const token = (body: Record<string, string>) => fetch(`${server.url}/auth/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(body) });
    expect((await token({ grant_type: 'authorization_code', code, redirect_uri: redirect, client_id: 'second-opinion-app', code_verifier: pkce().verifier })).status).toBe(400);
    // A code is single-use: the failed attempt consumed it too.
    expect((await token({ grant_type: 'authorization_code', code, redirect_uri: redirect, client_id: 'second-opinion-app', code_verifier: verifier })).status).toBe(400);

    const second = await fetch(`${server.url}/auth/authorize`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: params, redirect: 'manual' });
    const code2 = new URL(second.headers.get('location')!).searchParams.get('code')!;
    const ok = await token({ grant_type: 'authorization_code', code: code2, redirect_uri: redirect, client_id: 'second-opinion-app', code_verifier: verifier });
    expect(ok.status).toBe(200);
    const tokens = (await ok.json()) as { access_token: string; refresh_token: string; patient: string };
    expect(tokens.patient).toBe('member-ant-1');
    expect((await token({ grant_type: 'refresh_token', refresh_token: tokens.refresh_token, client_id: 'second-opinion-app', scope: 'user/*.rs' })).status).toBe(400);
    // The refused widening consumed the refresh token (rotation is strict); get a fresh pair to test rotation.
    const third = await fetch(`${server.url}/auth/authorize`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: params, redirect: 'manual' });
    const code3 = new URL(third.headers.get('location')!).searchParams.get('code')!;
    const fresh = (await (await token({ grant_type: 'authorization_code', code: code3, redirect_uri: redirect, client_id: 'second-opinion-app', code_verifier: verifier })).json()) as { refresh_token: string; access_token: string };
    const rotated = await token({ grant_type: 'refresh_token', refresh_token: fresh.refresh_token, client_id: 'second-opinion-app' });
    expect(rotated.status).toBe(200);
    expect((await token({ grant_type: 'refresh_token', refresh_token: fresh.refresh_token, client_id: 'second-opinion-app' })).status).toBe(400);
    const introspect = async (t: string) => (await (await fetch(`${server.url}/auth/introspect`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ token: t, client_id: 'second-opinion-app' }) })).json()) as { active: boolean };
    expect((await introspect(fresh.access_token)).active).toBe(true);
    await fetch(`${server.url}/auth/revoke`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ token: fresh.access_token, client_id: 'second-opinion-app' }) });
    expect((await introspect(fresh.access_token)).active).toBe(false);
    expect((await get('Patient/member-ant-1', fresh.access_token)).status).toBe(401);
  });

  it('CORS: discovery for any origin, the API and the token endpoint for registered app origins only', async () => {
    const stranger = { origin: 'https://other-app.example.org' };
    for (const url of [`${server.fhirBase}/metadata`, `${server.fhirBase}/.well-known/smart-configuration`, `${server.url}/.well-known/smart-configuration`]) {
      const open = await fetch(url, { headers: stranger });
      expect(open.headers.get('access-control-allow-origin')).toBe('*');
      expect(open.headers.get('access-control-allow-credentials')).toBeNull();
    }
    const token = tokenFor(server, { scope: 'user/Patient.rs', fhirUser: 'Practitioner/hpsj-pcp-1', roles: ['treating-provider'] });
    const good = await fetch(`${server.fhirBase}/Patient/member-hpsj-1`, { headers: { origin: server.url, authorization: `Bearer ${token}` } });
    expect(good.headers.get('access-control-allow-origin')).toBe(server.url);
    const bad = await fetch(`${server.fhirBase}/Patient/member-hpsj-1`, { headers: { ...stranger, authorization: `Bearer ${token}` } });
    expect(bad.headers.get('access-control-allow-origin')).toBeNull();
    const preflight = await fetch(`${server.url}/auth/token`, { method: 'OPTIONS', headers: stranger });
    expect(preflight.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('takes the Bearer scheme in any case (RFC 7235)', async () => {
    const token = tokenFor(server, { scope: 'user/Patient.rs', fhirUser: 'Practitioner/hpsj-pcp-1', roles: ['treating-provider'] });
    for (const scheme of ['bearer', 'BEARER']) expect((await get('Patient/member-hpsj-1', undefined, { authorization: `${scheme} ${token}` })).status).toBe(200);
  });

  it('patient-level writes stay in the patient compartment when the token also reads at user level', async () => {
    const token = tokenFor(server, { scope: 'launch/patient patient/*.cruds user/*.rs', patient: 'member-hpsj-1', fhirUser: 'Practitioner/hpsj-pcp-1' });
    const send = (method: string, path: string, json?: unknown, contentType = 'application/fhir+json') =>
      raw(`${server.fhirBase}/${path}`, { method, headers: { authorization: `Bearer ${token}`, 'content-type': contentType }, json });
    expect((await get('Patient/member-hpsj-2', token)).status).toBe(200); // user-level read
    const condition = (patient: string) => ({ resourceType: 'Condition', subject: { reference: `Patient/${patient}` }, code: { text: 'mixed-scope probe' } });
    expect((await send('POST', 'Condition', condition('member-hpsj-2'))).status).toBe(403);
    expect((await send('POST', 'Condition', condition('member-hpsj-1'))).status).toBe(201);
    expect((await send('PATCH', 'Patient/member-hpsj-2', [{ op: 'add', path: '/active', value: false }], 'application/json-patch+json')).status).toBe(403);
    expect((await send('DELETE', 'CareTeam/careteam-member-hpsj-2')).status).toBe(403);
    expect((await send('PUT', 'Condition?code:text=mixed-scope probe&subject=Patient/member-hpsj-2', condition('member-hpsj-2'))).status).toBe(403);
    expect((await get('CareTeam/careteam-member-hpsj-2', token)).status).toBe(200);
    expect((await get('Patient/member-hpsj-2', token)).body.active).not.toBe(false);
  });

  it('every refused access leaves an AuditEvent with a failure outcome', async () => {
    const token = tokenFor(server, { scope: 'launch/patient patient/*.rs', patient: 'member-hpsj-1', roles: ['member'] });
    await get('Patient/member-bsp-1', token);
    await new Promise((r) => setTimeout(r, 400));
    const auditor = tokenFor(server, { scope: 'user/AuditEvent.rs', fhirUser: 'Practitioner/hpsj-md-1', roles: ['auditor'] });
    const events = await get('AuditEvent?outcome=4&entity=Patient/member-bsp-1', auditor);
    expect(events.body.entry?.length).toBeGreaterThan(0);
    const clinician = tokenFor(server, { scope: 'user/*.rs', fhirUser: 'Practitioner/hpsj-um-1', roles: ['um-clinician'] });
    expect((await get('AuditEvent', clinician)).status).toBe(403);
  });
});
