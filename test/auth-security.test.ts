import { generateKeyPairSync, randomUUID } from 'node:crypto';
import jwt from 'jsonwebtoken';
import type { Bundle } from 'fhir/r4.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DemoServer, startDemoServer } from './helpers/demoServer.js';
import { raw } from './helpers/fhir.js';
import { pgliteConfig } from './helpers/stores.js';
import { backendAssertion, forgedToken, pkce, tokenFor } from './helpers/tokens.js';

const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
type Res = Awaited<ReturnType<typeof raw>>;

/** POST a form to the authorization server, redirects not followed. */
const oauthForm = (server: DemoServer, path: string, body: Record<string, string>): Promise<Res> =>
  raw(`${server.url}${path}`, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(body).toString() });

/** GET /auth/authorize for the SMART app (PKCE S256) with `over` added; the answer's Location, which must be a redirect. */
async function authorizeLocation(server: DemoServer, over: Record<string, string>, method: 'GET' | 'POST' = 'GET'): Promise<URL> {
  const params = new URLSearchParams({ response_type: 'code', client_id: 'second-opinion-app', redirect_uri: `${server.url}/app/index.html`, scope: 'launch openid fhirUser patient/*.rs', state: 's', aud: server.fhirBase, code_challenge: pkce().challenge, code_challenge_method: 'S256', ...over });
  const url = `${server.url}/auth/authorize`;
  const res = method === 'GET' ? await fetch(`${url}?${params}`, { redirect: 'manual' }) : await fetch(url, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: params });
  expect(res.status, await res.text()).toBe(302);
  return new URL(res.headers.get('location') ?? '');
}

/** A sandbox EHR launch of `clientId` for hpsj-pcp-1 with member-hpsj-1 in context: the launch id. */
async function sandboxLaunch(server: DemoServer, clientId: string, user = 'Practitioner/hpsj-pcp-1', patient = 'Patient/member-hpsj-1'): Promise<string> {
  const res = await oauthForm(server, '/sandbox/launch', { user, patient, client_id: clientId });
  expect(res.status).toBe(302);
  return new URL(res.headers.get('location') ?? '').searchParams.get('launch') ?? '';
}

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
    it('is refused another patient by id, answered as an id that does not exist (no 403 to tell which ids exist)', async () => {
      const res = await get('Patient/member-phc-1', token);
      const missing = await get('Patient/no-such-member', token);
      expect([res.status, missing.status]).toEqual([404, 404]);
      expect(res.body.issue[0].code).toBe(missing.body.issue[0].code);
      expect(res.body.issue[0].diagnostics).toBe(missing.body.issue[0].diagnostics.replace('no-such-member', 'member-phc-1'));
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
    it('learns nothing of another patient\'s ids from deletions, versions, history, PATCH or DELETE; the audit log keeps the refusal', async () => {
      const admin = tokenFor(server, { scope: 'system/*.cruds' });
      const writer = tokenFor(server, { scope: 'launch/patient patient/*.cruds', patient: 'member-hpsj-1', fhirUser: 'Patient/member-hpsj-1', roles: ['member'] });
      const send = (method: string, path: string, as: string, json?: unknown, contentType = 'application/fhir+json') =>
        raw(`${server.fhirBase}/${path}`, { method, headers: { authorization: `Bearer ${as}`, 'content-type': contentType }, json });
      const condition = (patient: string) => ({ resourceType: 'Condition', subject: { reference: `Patient/${patient}` }, code: { text: 'concealment probe' } });
      const theirs = (await send('POST', 'Condition', admin, condition('member-phc-1'))).body.id as string;
      const theirsDeleted = (await send('POST', 'Condition', admin, condition('member-phc-1'))).body.id as string;
      const mineDeleted = (await send('POST', 'Condition', admin, condition('member-hpsj-1'))).body.id as string;
      for (const id of [theirsDeleted, mineDeleted]) expect((await send('DELETE', `Condition/${id}`, admin)).status).toBe(204);
      const attempts: [string, string, unknown?, string?][] = [
        ['GET', `Condition/${theirsDeleted}`],
        ['GET', `Condition/${theirs}/_history/1`],
        ['GET', `Condition/${theirsDeleted}/_history/2`],
        ['GET', `Condition/${theirs}/_history`],
        ['GET', `Condition/${theirsDeleted}/_history`],
        ['PATCH', `Condition/${theirs}`, [{ op: 'add', path: '/recordedDate', value: '2026-01-01' }], 'application/json-patch+json'],
        ['PATCH', `Condition/${theirsDeleted}`, [{ op: 'add', path: '/recordedDate', value: '2026-01-01' }], 'application/json-patch+json'],
        ['DELETE', `Condition/${theirs}`],
        ['DELETE', `Condition/${theirsDeleted}`],
      ];
      // Each answer is the one the same request gets for an id that never existed, word for word.
      for (const [method, path, json, contentType] of attempts) {
        const id = path.split('/')[1];
        const res = await send(method, path, writer, json, contentType);
        const missing = await send(method, path.replace(id, 'never-existed'), writer, json, contentType);
        const answer = (r: typeof res, as: string) => [r.status, r.body?.issue?.[0]?.code, r.body?.issue?.[0]?.diagnostics?.replace(as, '{id}')];
        expect([method, path, ...answer(res, id)]).toEqual([method, path, ...answer(missing, 'never-existed')]);
        // A DELETE of what does not exist succeeds (R4 http.html#delete), deleting nothing; everything else is 404.
        expect(res.status).toBe(method === 'DELETE' ? 204 : 404);
      }
      // Their records are untouched; the member's own deletion is still told as one.
      expect((await get(`Condition/${theirs}`, admin)).body.meta.versionId).toBe('1');
      expect((await get(`Condition/${mineDeleted}`, writer)).status).toBe(410);
      expect((await get(`Condition/${mineDeleted}/_history`, writer)).status).toBe(200);
      await new Promise((r) => setTimeout(r, 300));
      const audit = await get(`AuditEvent?entity=Condition/${theirs}&_count=50`, admin);
      const descriptions = (audit.body.entry ?? []).map((e: { resource: { outcomeDesc: string } }) => e.resource.outcomeDesc);
      expect(descriptions.filter((d: string) => d === 'HTTP 404 (access refused, answered as not found)').length).toBeGreaterThanOrEqual(3);
      expect(descriptions).toContain('HTTP 204 (access refused, answered as not found)');
    });
    it('pages a type history by cursor inside its compartment: next walks every version of its own once, previous leads back, others never show', async () => {
      const admin = tokenFor(server, { scope: 'system/*.cruds' });
      const post = (patient: string) =>
        raw(`${server.fhirBase}/Condition`, { method: 'POST', headers: { authorization: `Bearer ${admin}` }, json: { resourceType: 'Condition', code: { text: 'history paging probe' }, subject: { reference: `Patient/${patient}` } } });
      for (let i = 0; i < 5; i++) for (const patient of ['member-hpsj-1', 'member-phc-1']) expect((await post(patient)).status).toBe(201);
      const whole = (await get('Condition/_history?_count=100', token)).body;
      const keyOf = (e: { fullUrl?: string; request?: { url?: string }; resource?: { id?: string; meta?: { versionId?: string }; subject?: { reference?: string } } }) => `${e.resource?.id}/${e.resource?.meta?.versionId}`;
      expect(whole.entry.length).toBeGreaterThanOrEqual(5);
      expect(whole.entry.every((e: { resource: { subject: { reference: string } } }) => e.resource.subject.reference === 'Patient/member-hpsj-1')).toBe(true);
      const walked: string[] = [];
      let url: string | undefined = `${server.fhirBase}/Condition/_history?_count=2`;
      const pages: { self: string; keys: string[]; next?: string; previous?: string }[] = [];
      while (url) {
        const page = (await raw(url, { headers: { authorization: `Bearer ${token}` } })).body as Bundle;
        const link = (rel: string): string | undefined => page.link?.find((l) => l.relation === rel)?.url;
        const keys = (page.entry ?? []).map(keyOf);
        pages.push({ self: url, keys, next: link('next'), previous: link('previous') });
        walked.push(...keys);
        url = link('next');
        expect(pages.length).toBeLessThan(50);
      }
      expect(walked).toEqual(whole.entry.map(keyOf));
      expect(pages.length).toBeGreaterThanOrEqual(3);
      const back = (await raw(pages[1].previous!, { headers: { authorization: `Bearer ${token}` } })).body;
      expect((back.entry ?? []).map(keyOf)).toEqual(pages[0].keys);
    });
    it('inside a batch Bundle', async () => {
      const res = await raw(server.fhirBase, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}` },
        json: { resourceType: 'Bundle', type: 'batch', entry: [{ request: { method: 'GET', url: 'Patient/member-phc-1' } }] },
      });
      expect(res.body.entry[0].response.status).toBe('404');
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
      ['unknown launch', { launch: 'nope', scope: 'launch openid fhirUser patient/*.rs' }],
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
    // The refused widening left the refresh token usable (RFC 6749 §6); using it rotates it.
    const rotated = await token({ grant_type: 'refresh_token', refresh_token: tokens.refresh_token, client_id: 'second-opinion-app' });
    expect(rotated.status).toBe(200);
    const fresh = (await rotated.json()) as { refresh_token: string; access_token: string };
    expect((await token({ grant_type: 'refresh_token', refresh_token: tokens.refresh_token, client_id: 'second-opinion-app' })).status).toBe(400);
    expect((await get('Patient/member-ant-1', fresh.access_token)).status).toBe(200);
    await fetch(`${server.url}/auth/revoke`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ token: fresh.access_token, client_id: 'second-opinion-app' }) });
    expect((await get('Patient/member-ant-1', fresh.access_token)).status).toBe(401);
  });

  it('CORS: discovery for any origin, the API and the token endpoint for registered app origins only', async () => {
    const stranger = { origin: 'https://other-app.example.org' };
    const discovery = ['/fhir/metadata', '/fhir/.well-known/smart-configuration', '/.well-known/smart-configuration', '/.well-known/openid-configuration', '/.well-known/jwks.json'];
    for (const url of discovery.map((path) => `${server.url}${path}`)) {
      const open = await fetch(url, { headers: stranger });
      expect(open.headers.get('access-control-allow-origin')).toBe('*');
      expect(open.headers.get('access-control-allow-credentials')).toBeNull();
    }
    const token = tokenFor(server, { scope: 'user/Patient.rs', fhirUser: 'Practitioner/hpsj-pcp-1', roles: ['treating-provider'] });
    const good = await fetch(`${server.fhirBase}/Patient/member-hpsj-1`, { headers: { origin: server.url, authorization: `Bearer ${token}` } });
    expect(good.headers.get('access-control-allow-origin')).toBe(server.url);
    // A browser app reads what it needs of an answer: where a create went, versions, and a 405's Allow (RFC 9110).
    expect(good.headers.get('access-control-expose-headers')?.split(/,\s*/)).toEqual(expect.arrayContaining(['Location', 'ETag', 'WWW-Authenticate', 'Allow']));
    const bad = await fetch(`${server.fhirBase}/Patient/member-hpsj-1`, { headers: { ...stranger, authorization: `Bearer ${token}` } });
    expect(bad.headers.get('access-control-allow-origin')).toBeNull();
    const preflight = await fetch(`${server.url}/auth/token`, { method: 'OPTIONS', headers: stranger });
    expect(preflight.headers.get('access-control-allow-origin')).toBeNull();
    // An app registered dynamically (RFC 7591) is a registered origin too: that of its redirect URI.
    const appOrigin = 'http://127.0.0.1:9977';
    const registered = await fetch(`${server.url}/auth/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ client_name: 'cors probe', redirect_uris: [`${appOrigin}/cb`], token_endpoint_auth_method: 'none' }) });
    expect(registered.status).toBe(201);
    const fromApp = await fetch(`${server.url}/auth/token`, { method: 'OPTIONS', headers: { origin: appOrigin } });
    expect(fromApp.headers.get('access-control-allow-origin')).toBe(appOrigin);
    const apiFromApp = await fetch(`${server.fhirBase}/Patient/member-hpsj-1`, { headers: { origin: appOrigin, authorization: `Bearer ${token}` } });
    expect(apiFromApp.headers.get('access-control-allow-origin')).toBe(appOrigin);
  });

  it('SMART v2 letters: an update that creates needs c, conditional criteria need s, and a conditional create\'s match comes back only to a reader (r)', async () => {
    const as = (scope: string) => tokenFor(server, { scope, fhirUser: 'Practitioner/hpsj-md-1', roles: ['plan-admin'] });
    const send = (token: string, method: string, path: string, json: unknown, headers: Record<string, string> = {}) =>
      raw(`${server.fhirBase}/${path}`, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/fhir+json', ...headers }, json });
    const marker = `letters-${Date.now()}`;
    const condition = (id?: string) => ({ resourceType: 'Condition', ...(id ? { id } : {}), subject: { reference: 'Patient/member-hpsj-1' }, code: { text: marker } });
    expect((await send(as('user/Condition.u'), 'PUT', `Condition/${marker}`, condition(marker))).status).toBe(403);
    expect((await send(as('user/Condition.cu'), 'PUT', `Condition/${marker}`, condition(marker))).status).toBe(201);
    expect((await send(as('user/Condition.cu'), 'PUT', `Condition?code:text=${marker}-none`, condition())).status).toBe(403);
    const ifNoneExist = { 'if-none-exist': `_id=${marker}` };
    expect((await send(as('user/Condition.c'), 'POST', 'Condition', condition(), ifNoneExist)).status).toBe(403);
    const blind = await send(as('user/Condition.cs'), 'POST', 'Condition', condition(), ifNoneExist);
    expect(blind.status).toBe(200);
    expect(blind.headers.get('location')).toContain(`Condition/${marker}`);
    expect(blind.body?.resourceType).toBeUndefined();
    expect((await send(as('user/Condition.crs'), 'POST', 'Condition', condition(), ifNoneExist)).body.id).toBe(marker);
  });

  it('SMART: a patient/ scope is granted only with a patient in context (the picker is shown without one), and an unknown patient is refused', async () => {
    const params = (over: Record<string, string>) =>
      new URLSearchParams({ response_type: 'code', client_id: 'second-opinion-app', redirect_uri: `${server.url}/app/index.html`, scope: 'openid fhirUser patient/*.rs', state: 's', aud: server.fhirBase, code_challenge: pkce().challenge, code_challenge_method: 'S256', user: 'Practitioner/hpsj-pcp-1', ...over });
    const noPatient = await fetch(`${server.url}/auth/authorize?${params({})}`, { redirect: 'manual' });
    expect(noPatient.status).toBe(200);
    expect(await noPatient.text()).toContain('patient');
    const unknown = await authorizeLocation(server, { scope: 'openid fhirUser patient/*.rs', user: 'Practitioner/hpsj-pcp-1', patient: 'Patient/does-not-exist' });
    expect(unknown.searchParams.get('error')).toBe('access_denied');
    expect(unknown.searchParams.get('code')).toBeNull();
  });

  it('takes the Bearer scheme in any case (RFC 7235)', async () => {
    const token = tokenFor(server, { scope: 'user/Patient.rs', fhirUser: 'Practitioner/hpsj-pcp-1', roles: ['treating-provider'] });
    for (const scheme of ['bearer', 'BEARER']) expect((await get('Patient/member-hpsj-1', undefined, { authorization: `${scheme} ${token}` })).status).toBe(200);
  });

  it('patient-level writes stay in the patient compartment when the token also reads at user level', async () => {
    const token = tokenFor(server, { scope: 'launch/patient patient/*.cruds user/*.rs', patient: 'member-hpsj-1', fhirUser: 'Practitioner/hpsj-um-1', roles: ['um-clinician'] });
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

  describe('dynamic registration, launch ids, introspection, refresh (probe 2)', () => {
    const post = (path: string, body: Record<string, string>) => oauthForm(server, path, body);
    const register = (metadata: Record<string, unknown>) => raw(`${server.url}/auth/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, json: metadata });
    const clientCredentials = (auth: Record<string, string>, scope = 'system/*.cruds') => post('/auth/token', { grant_type: 'client_credentials', scope, ...auth });
    const noCredentials = (res: Res) => {
      for (const key of ['access_token', 'refresh_token', 'id_token', 'active', 'client_id']) expect(res.body?.[key], key).toBeUndefined();
    };

    /** Code flow for the SMART app as `user` (demo login): the token response. */
    async function appTokens(user: string, scope: string): Promise<{ access_token: string; refresh_token: string }> {
      const { verifier, challenge } = pkce();
      const location = await authorizeLocation(server, { user, scope, code_challenge: challenge }, 'POST');
      const res = await post('/auth/token', { grant_type: 'authorization_code', code: location.searchParams.get('code') ?? '', redirect_uri: `${server.url}/app/index.html`, client_id: 'second-opinion-app', code_verifier: verifier });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      return res.body;
    }

    it('OAuth details: a missing grant_type is invalid_request (RFC 6749 §5.2), a registered secret says when it expires (RFC 7591), token exchange is advertised only with a trusted issuer', async () => {
      const missing = await post('/auth/token', { client_id: 'second-opinion-app' });
      expect(missing.status).toBe(400);
      expect(missing.body.error).toBe('invalid_request');
      const confidential = await register({ redirect_uris: ['https://x.example/cb'], token_endpoint_auth_method: 'client_secret_basic' });
      expect(confidential.body.client_secret_expires_at).toBe(0);
      const pub = await register({ redirect_uris: ['https://x.example/cb'], token_endpoint_auth_method: 'none' });
      expect(pub.body.client_secret_expires_at).toBeUndefined();
      const config = await (await fetch(`${server.fhirBase}/.well-known/smart-configuration`)).json() as { grant_types_supported: string[] };
      expect(config.grant_types_supported).not.toContain('urn:ietf:params:oauth:grant-type:token-exchange');
    });

    it('F7: a registered client gets no system/ scope, so no client_credentials token; system scopes alone are refused', async () => {
      const reg = await register({ redirect_uris: ['https://x.example/cb'], token_endpoint_auth_method: 'client_secret_post', scope: 'system/*.cruds user/*.cruds openid' });
      expect(reg.status, JSON.stringify(reg.body)).toBe(201);
      expect(reg.body.scope).toBe('user/*.cruds openid');
      const cc = await clientCredentials({ client_id: reg.body.client_id, client_secret: reg.body.client_secret });
      // It registered no client_credentials grant (registration offers none), so the grant is refused before its scope.
      expect(cc.status).toBe(400);
      expect(cc.body.error).toBe('unauthorized_client');
      noCredentials(cc);
      const systemOnly = await register({ redirect_uris: ['https://x.example/cb'], token_endpoint_auth_method: 'client_secret_post', scope: 'system/*.cruds system/*.rs' });
      expect(systemOnly.status).toBe(400);
      expect(systemOnly.body.error).toBe('invalid_client_metadata');
      expect(systemOnly.body.error_description).toMatch(/scope/);
    });

    it.each([
      ['javascript:', 'javascript:alert(document.domain)//'],
      ['data:', 'data:text/html,<script>alert(1)</script>'],
      ['http to a non-loopback host', 'http://evil.example/cb'],
      ['a fragment', 'https://app.example.org/cb#x'],
    ])('F19: registration refuses a redirect URI with %s (400 invalid_redirect_uri)', async (_what, uri) => {
      const res = await register({ redirect_uris: ['https://app.example.org/cb', uri] });
      expect(res.status).toBe(400);
      expect(res.body.error).toBe('invalid_redirect_uri');
      expect(res.body.error_description).toMatch(/redirect_uris/);
    });

    it('F19: registration refuses a javascript: or http non-loopback launch_uri (400 invalid_client_metadata), accepts https and http loopback', async () => {
      for (const launch_uri of ['javascript:alert(1)//', 'http://evil.example/launch']) {
        const res = await register({ redirect_uris: ['https://app.example.org/cb'], launch_uri });
        expect(res.status).toBe(400);
        expect(res.body.error).toBe('invalid_client_metadata');
      }
      const ok = await register({ redirect_uris: ['https://app.example.org/cb', 'http://127.0.0.1:4711/cb', 'http://[::1]:4711/cb'], launch_uri: 'https://app.example.org/launch' });
      expect(ok.status, JSON.stringify(ok.body)).toBe(201);
    });

    it('F8: a jwks_uri that is not https to a public host is refused at registration', async () => {
      for (const jwks_uri of ['http://127.0.0.1:1/x', `${server.url}/.well-known/jwks.json`, 'https://169.254.169.254/latest/meta-data/', 'https://[::1]/jwks', 'http://keys.example.org/jwks']) {
        const res = await register({ token_endpoint_auth_method: 'private_key_jwt', jwks_uri });
        expect(res.status, jwks_uri).toBe(400);
        expect(res.body.error).toBe('invalid_client_metadata');
        expect(res.body.error_description).toMatch(/jwks_uri/);
      }
    });

    it('F8: an unreachable jwks_uri and a key that does not match answer alike (no fetch oracle)', async () => {
      const reg = await register({ token_endpoint_auth_method: 'private_key_jwt', jwks_uri: 'https://jwks.invalid/keys' });
      expect(reg.status, JSON.stringify(reg.body)).toBe(201);
      const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
      const assertion = (iss: string) => jwt.sign({ iss, sub: iss, aud: `${server.url}/auth/token`, exp: Math.floor(Date.now() / 1000) + 240, jti: randomUUID() }, privateKey, { algorithm: 'RS384', keyid: 'k1' });
      const unreachable = await clientCredentials({ client_assertion_type: ASSERTION_TYPE, client_assertion: assertion(reg.body.client_id) });
      const wrongKey = await clientCredentials({ client_assertion_type: ASSERTION_TYPE, client_assertion: assertion('demo-backend') });
      expect([unreachable.status, wrongKey.status]).toEqual([401, 401]);
      expect(unreachable.body).toEqual(wrongKey.body);
    });

    it('F14: a launch id works only for the app it launched, and only once', async () => {
      const other = await register({ redirect_uris: ['https://other-app.example.org/cb'] });
      expect(other.status).toBe(201);
      const stolen = await sandboxLaunch(server, 'second-opinion-app');
      const elsewhere = await authorizeLocation(server, { client_id: other.body.client_id, redirect_uri: 'https://other-app.example.org/cb', launch: stolen, scope: 'launch user/*.rs' });
      expect(elsewhere.searchParams.get('error')).toBe('invalid_request');
      expect(elsewhere.searchParams.get('code')).toBeNull();
      // Presented by another client, the launch is spent: the app it was made for cannot use it either.
      expect((await authorizeLocation(server, { launch: stolen })).searchParams.get('error')).toBe('invalid_request');

      const launch = await sandboxLaunch(server, 'second-opinion-app');
      const first = await authorizeLocation(server, { launch });
      expect(first.searchParams.get('code'), first.toString()).toBeTruthy();
      const again = await authorizeLocation(server, { launch });
      expect(again.searchParams.get('error')).toBe('invalid_request');
      expect(again.searchParams.get('code')).toBeNull();
    });

    it('F17: introspection refuses a bare public client_id (401 invalid_client)', async () => {
      const backend = (await clientCredentials({ client_assertion_type: ASSERTION_TYPE, client_assertion: backendAssertion(server) }, 'system/*.rs')).body.access_token as string;
      const res = await post('/auth/introspect', { token: backend, client_id: 'second-opinion-app' });
      expect(res.status).toBe(401);
      expect(res.body.error).toBe('invalid_client');
      noCredentials(res);
    });

    it("F17: a confidential client learns only of its own tokens: another client's access or refresh token is inactive", async () => {
      const backend = (await clientCredentials({ client_assertion_type: ASSERTION_TYPE, client_assertion: backendAssertion(server) }, 'system/*.rs')).body.access_token as string;
      const app = await appTokens('Patient/member-hpsj-2', 'openid fhirUser patient/*.rs offline_access');
      const asBackend = (token: string) => post('/auth/introspect', { token, client_assertion_type: ASSERTION_TYPE, client_assertion: backendAssertion(server) });
      expect((await asBackend(backend)).body).toMatchObject({ active: true, client_id: 'demo-backend', scope: 'system/*.rs' });
      expect((await asBackend(app.access_token)).body).toEqual({ active: false });
      expect((await asBackend(app.refresh_token)).body).toEqual({ active: false });
      const confidential = await register({ redirect_uris: ['https://x.example/cb'], token_endpoint_auth_method: 'client_secret_post' });
      const asRegistered = await post('/auth/introspect', { token: backend, client_id: confidential.body.client_id, client_secret: confidential.body.client_secret });
      expect(asRegistered.status).toBe(200);
      expect(asRegistered.body).toEqual({ active: false });
    });

    it("SMART token introspection: a resource server with a backend service's Bearer token learns of any client's token; an app's token, an invalid or revoked one may not introspect", async () => {
      const backend = (await clientCredentials({ client_assertion_type: ASSERTION_TYPE, client_assertion: backendAssertion(server) }, 'system/*.rs')).body.access_token as string;
      const app = await appTokens('Patient/member-hpsj-2', 'openid fhirUser patient/*.rs offline_access');
      const asResourceServer = (bearer: string, token: string, extra: Record<string, string> = {}) =>
        raw(`${server.url}/auth/introspect`, { method: 'POST', headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ token, ...extra }).toString() });

      const learned = await asResourceServer(backend, app.access_token);
      expect(learned.status, JSON.stringify(learned.body)).toBe(200);
      expect(learned.body).toMatchObject({ active: true, client_id: 'second-opinion-app', scope: 'openid fhirUser patient/*.rs offline_access', patient: 'member-hpsj-2', fhirUser: `${server.fhirBase}/Patient/member-hpsj-2`, iss: server.url });
      expect(learned.body.exp).toBeGreaterThan(Date.now() / 1000);
      expect((await asResourceServer(backend, 'not-a-token')).body).toEqual({ active: false });

      const byApp = await asResourceServer(app.access_token, backend);
      expect(byApp.status).toBe(403);
      expect(byApp.body.error).toBe('insufficient_scope');
      expect(byApp.headers.get('www-authenticate')).toBe('Bearer error="insufficient_scope"');
      noCredentials(byApp);
      const forged = await asResourceServer(forgedToken(server, { client_id: 'demo-backend', scope: 'system/*.rs' }, { key: 'other' }), app.access_token);
      expect(forged.status).toBe(401);
      expect(forged.body.error).toBe('invalid_token');
      noCredentials(forged);
      const twoMethods = await asResourceServer(backend, app.access_token, { client_assertion_type: ASSERTION_TYPE, client_assertion: backendAssertion(server) });
      expect(twoMethods.body.error).toBe('invalid_request');

      expect((await post('/auth/revoke', { token: backend, client_assertion_type: ASSERTION_TYPE, client_assertion: backendAssertion(server) })).status).toBe(200);
      const revoked = await asResourceServer(backend, app.access_token);
      expect(revoked.status).toBe(401);
      expect(revoked.body.error).toBe('invalid_token');
    });

    it('SMART: a launch id is bound only with the launch scope; without it the request is refused (invalid_scope) and the launch id stays unspent', async () => {
      const launch = await sandboxLaunch(server, 'second-opinion-app');
      const without = await authorizeLocation(server, { launch, scope: 'openid fhirUser patient/*.rs' });
      expect(without.searchParams.get('error'), without.toString()).toBe('invalid_scope');
      expect(without.searchParams.get('code')).toBeNull();
      const withScope = await authorizeLocation(server, { launch, scope: 'launch openid fhirUser patient/*.rs' });
      expect(withScope.searchParams.get('code'), withScope.toString()).toBeTruthy();
    });

    it('RFC 6749 §3.2, RFC 7662 §2.1, RFC 7009 §2.1: the token, introspection and revocation endpoints refuse a JSON body (400 invalid_request), even for a request that succeeds as a form', async () => {
      const request = () => ({ grant_type: 'client_credentials', scope: 'system/*.rs', client_assertion_type: ASSERTION_TYPE, client_assertion: backendAssertion(server) });
      const json = await raw(`${server.url}/auth/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, json: request() });
      expect(json.status).toBe(400);
      expect(json.body.error).toBe('invalid_request');
      noCredentials(json);
      const issued = await post('/auth/token', request());
      expect(issued.status).toBe(200);
      const about = () => ({ token: issued.body.access_token as string, client_assertion_type: ASSERTION_TYPE, client_assertion: backendAssertion(server) });
      for (const path of ['/auth/introspect', '/auth/revoke']) {
        const refused = await raw(`${server.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, json: about() });
        expect(refused.status, path).toBe(400);
        expect(refused.body.error, path).toBe('invalid_request');
      }
      expect((await post('/auth/introspect', about())).body.active).toBe(true);
    });

    /** A dynamically registered confidential client, and a form POST carrying its HTTP Basic credentials. */
    async function basicClient() {
      const confidential = await register({ redirect_uris: ['https://x.example/cb'], token_endpoint_auth_method: 'client_secret_basic', grant_types: ['authorization_code', 'refresh_token'] });
      expect(confidential.status).toBe(201);
      const basic = `Basic ${Buffer.from(`${confidential.body.client_id}:${confidential.body.client_secret}`).toString('base64')}`;
      const withBasic = (path: string, body: Record<string, string>) =>
        raw(`${server.url}${path}`, { method: 'POST', headers: { authorization: basic, 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(body).toString() });
      return { confidential, withBasic };
    }

    it('RFC 6749 §2.3: HTTP Basic credentials together with a client assertion are refused (400 invalid_request), at the token and introspection endpoints', async () => {
      const { withBasic } = await basicClient();
      const assertion = () => ({ client_assertion_type: ASSERTION_TYPE, client_assertion: backendAssertion(server) });
      const token = await withBasic('/auth/token', { grant_type: 'client_credentials', scope: 'system/*.rs', ...assertion() });
      expect(token.status).toBe(400);
      expect(token.body.error).toBe('invalid_request');
      noCredentials(token);
      const introspection = await withBasic('/auth/introspect', { token: 'x', ...assertion() });
      expect(introspection.status).toBe(400);
      expect(introspection.body.error).toBe('invalid_request');
      expect((await withBasic('/auth/introspect', { token: 'x' })).body).toEqual({ active: false });
    });

    it('RFC 7591 §3.2.2: registration refuses jwks keys without a kid, or two keys sharing one (400 invalid_client_metadata): client assertions name their key', async () => {
      const jwk = () => generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey.export({ format: 'jwk' });
      const registerKeys = (keys: Record<string, unknown>[]) => register({ token_endpoint_auth_method: 'private_key_jwt', jwks: { keys } });
      for (const [keys, field] of [
        [[jwk()], 'jwks.keys.0.kid'],
        [[{ ...jwk(), kid: 'k1' }, { ...jwk(), kid: '' }], 'jwks.keys.1.kid'],
        [[{ ...jwk(), kid: 'k1' }, { ...jwk(), kid: 'k1' }], 'jwks.keys.1.kid'],
      ] as const) {
        const res = await registerKeys([...keys]);
        expect(res.status, JSON.stringify(keys)).toBe(400);
        expect(res.body.error).toBe('invalid_client_metadata');
        expect(res.body.error_description).toContain(`${field}: `);
        expect(res.body.error_description).toMatch(/kid/);
        noCredentials(res);
      }
      const ok = await registerKeys([{ ...jwk(), kid: 'k1' }, { ...jwk(), kid: 'k2' }]);
      expect(ok.status, JSON.stringify(ok.body)).toBe(201);
    });

    it('RFC 6749 §2.3.1, §5.2: a client_id in the body naming another client than the Basic credentials is refused (400 invalid_request), at the token and introspection endpoints', async () => {
      const { confidential, withBasic } = await basicClient();
      const refresh = { grant_type: 'refresh_token', refresh_token: 'not-a-token' };
      for (const [path, body] of [['/auth/token', refresh], ['/auth/introspect', { token: 'x' }]] as const) {
        const other = await withBasic(path, { ...body, client_id: 'second-opinion-app' });
        expect(other.status, path).toBe(400);
        expect(other.body.error).toBe('invalid_request');
        expect(other.body.error_description).toMatch(/client_id/);
        noCredentials(other);
      }
      // The same client named twice is no conflict.
      expect((await withBasic('/auth/token', { ...refresh, client_id: confidential.body.client_id })).body.error).toBe('invalid_grant');
      expect((await withBasic('/auth/introspect', { token: 'x', client_id: confidential.body.client_id })).body).toEqual({ active: false });
    });

    it.each<[string, Record<string, string>]>([
      ['a client_assertion without client_assertion_type', { client_assertion: 'assertion' }],
      ['a client_assertion with an unknown client_assertion_type', { client_assertion: 'assertion', client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:saml2-bearer' }],
      ['a client_assertion with an empty client_assertion_type', { client_assertion: 'assertion', client_assertion_type: '' }],
      ['a client_assertion_type without client_assertion', { client_assertion_type: ASSERTION_TYPE }],
      ['a client_assertion_type with an empty client_assertion', { client_assertion_type: ASSERTION_TYPE, client_assertion: '' }],
    ])('RFC 7521 §4.2: %s is refused (400 invalid_request), never read as a bare client_id', async (_what, auth) => {
      const body = { ...auth, ...(auth.client_assertion === 'assertion' ? { client_assertion: backendAssertion(server) } : {}) };
      for (const res of [
        await post('/auth/token', { grant_type: 'refresh_token', refresh_token: 'not-a-token', client_id: 'second-opinion-app', ...body }),
        await clientCredentials(body, 'system/*.rs'),
        await post('/auth/introspect', { token: 'x', ...body }),
      ]) {
        expect(res.status, JSON.stringify(res.body)).toBe(400);
        expect(res.body.error).toBe('invalid_request');
        expect(res.body.error_description).toMatch(/client_assertion/);
        noCredentials(res);
      }
    });

    it('a refresh narrowing the access token keeps the refresh token\'s scope as authorized (RFC 6749 §6)', async () => {
      const granted = 'openid fhirUser patient/*.rs offline_access';
      const { refresh_token } = await appTokens('Patient/member-hpsj-2', granted);
      const narrowed = await post('/auth/token', { grant_type: 'refresh_token', refresh_token, client_id: 'second-opinion-app', scope: 'patient/Patient.rs' });
      expect(narrowed.status, JSON.stringify(narrowed.body)).toBe(200);
      expect(narrowed.body.scope).toBe('patient/Patient.rs');
      expect(narrowed.body.refresh_token).toBeTruthy();
      const again = await post('/auth/token', { grant_type: 'refresh_token', refresh_token: narrowed.body.refresh_token, client_id: 'second-opinion-app' });
      expect(again.status, JSON.stringify(again.body)).toBe(200);
      expect(again.body.scope).toBe(granted);
    });

    it('a replayed authorization code is refused and revokes the tokens issued from it (RFC 6749 §4.1.2); revoking a refresh token revokes the access tokens of its grant (RFC 7009 §2.1)', async () => {
      const { verifier, challenge } = pkce();
      const location = await authorizeLocation(server, { user: 'Patient/member-hpsj-2', scope: 'openid fhirUser patient/*.rs offline_access', code_challenge: challenge }, 'POST');
      const exchange = { grant_type: 'authorization_code', code: location.searchParams.get('code') ?? '', redirect_uri: `${server.url}/app/index.html`, client_id: 'second-opinion-app', code_verifier: verifier };
      const first = await post('/auth/token', exchange);
      expect(first.status).toBe(200);
      expect((await get('Patient/member-hpsj-2', first.body.access_token)).status).toBe(200);
      const replay = await post('/auth/token', exchange);
      expect(replay.body.error).toBe('invalid_grant');
      expect((await get('Patient/member-hpsj-2', first.body.access_token)).status).toBe(401);
      const refreshed = await post('/auth/token', { grant_type: 'refresh_token', refresh_token: first.body.refresh_token, client_id: 'second-opinion-app' });
      expect(refreshed.body.error).toBe('invalid_grant');

      const other = await appTokens('Patient/member-hpsj-2', 'openid fhirUser patient/*.rs offline_access');
      const renewed = await post('/auth/token', { grant_type: 'refresh_token', refresh_token: other.refresh_token, client_id: 'second-opinion-app' });
      expect((await get('Patient/member-hpsj-2', renewed.body.access_token)).status).toBe(200);
      expect((await post('/auth/revoke', { token: renewed.body.refresh_token, client_id: 'second-opinion-app' })).status).toBe(200);
      for (const token of [other.access_token, renewed.body.access_token]) expect((await get('Patient/member-hpsj-2', token)).status).toBe(401);
    });

    it('F18: a refresh refused for a wider scope or for another client leaves the refresh token usable', async () => {
      const { refresh_token } = await appTokens('Patient/member-hpsj-2', 'openid fhirUser patient/*.rs offline_access');
      const wider = await post('/auth/token', { grant_type: 'refresh_token', refresh_token, client_id: 'second-opinion-app', scope: 'patient/*.cruds' });
      expect(wider.body.error).toBe('invalid_scope');
      const other = await register({ redirect_uris: ['https://other-app.example.org/cb'], grant_types: ['authorization_code', 'refresh_token'] });
      const stolen = await post('/auth/token', { grant_type: 'refresh_token', refresh_token, client_id: other.body.client_id });
      expect(stolen.body.error).toBe('invalid_grant');
      noCredentials(stolen);
      const ok = await post('/auth/token', { grant_type: 'refresh_token', refresh_token, client_id: 'second-opinion-app' });
      expect(ok.status, JSON.stringify(ok.body)).toBe(200);
      expect(ok.body.refresh_token).not.toBe(refresh_token);
    });
  });
});

describe('F1: outside demo mode the caller cannot choose the end-user', () => {
  let server: DemoServer;
  let practitioner: string;
  let member: string;
  beforeAll(async () => {
    server = await startDemoServer(pgliteConfig(), { DEMO_MODE: 'false', SANDBOX_ENABLED: 'true' });
    const admin = tokenFor(server, { scope: 'system/*.cruds', roles: ['plan-admin'] });
    const create = async (resource: Record<string, unknown>) => {
      const res = await raw(`${server.fhirBase}/${resource.resourceType as string}`, { method: 'POST', headers: { authorization: `Bearer ${admin}` }, json: resource });
      expect(res.status, JSON.stringify(res.body)).toBe(201);
      return res.body.id as string;
    };
    practitioner = await create({ resourceType: 'Practitioner', name: [{ family: 'Director', given: ['Medical'] }] });
    member = await create({ resourceType: 'Patient', name: [{ family: 'Member' }], birthDate: '1970-01-01' });
  });
  afterAll(async () => server?.close());

  const cases: [string, 'GET' | 'POST', () => Record<string, string>][] = [
    ['GET user=Practitioner', 'GET', () => ({ user: `Practitioner/${practitioner}`, scope: 'openid fhirUser user/*.cruds' })],
    ['POST user=Practitioner', 'POST', () => ({ user: `Practitioner/${practitioner}`, scope: 'openid fhirUser user/*.cruds' })],
    ['GET user=Patient', 'GET', () => ({ user: `Patient/${member}`, scope: 'launch/patient openid fhirUser patient/*.cruds' })],
    ['POST user=Practitioner with patient=', 'POST', () => ({ user: `Practitioner/${practitioner}`, patient: `Patient/${member}`, scope: 'launch/patient openid fhirUser patient/*.cruds' })],
  ];
  it.each(cases)('%s: access_denied, no code', async (_name, method, over) => {
    const location = await authorizeLocation(server, over(), method);
    expect(location.searchParams.get('error')).toBe('access_denied');
    expect(location.searchParams.get('code')).toBeNull();
    expect(location.searchParams.get('state')).toBe('s');
  });

  it('an EHR launch still signs in the EHR user (sandbox enabled), with the launch context', async () => {
    const { verifier, challenge } = pkce();
    const launch = await sandboxLaunch(server, 'second-opinion-app', `Practitioner/${practitioner}`, `Patient/${member}`);
    const location = await authorizeLocation(server, { launch, code_challenge: challenge, user: `Patient/${member}` });
    const code = location.searchParams.get('code');
    expect(code, location.toString()).toBeTruthy();
    const res = await oauthForm(server, '/auth/token', { grant_type: 'authorization_code', code: code ?? '', redirect_uri: `${server.url}/app/index.html`, client_id: 'second-opinion-app', code_verifier: verifier });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.patient).toBe(member);
    const idToken = jwt.decode(res.body.id_token as string) as { fhirUser?: string };
    // SMART App Launch 2: fhirUser is the user resource's absolute URL.
    expect(idToken.fhirUser).toBe(`${server.fhirBase}/Practitioner/${practitioner}`);
  });
});
