import type { CapabilityStatement } from 'fhir/r4.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DemoServer, startDemoServer } from './helpers/demoServer.js';
import { raw } from './helpers/fhir.js';
import { backendAssertion, smartAppGrant, tokenFor } from './helpers/tokens.js';

type Res = Awaited<ReturnType<typeof raw>>;

const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

/** An OAuth error as RFC 6749 §5.2 renders it: JSON `{ error, error_description }`, never stored. */
const expectOAuthError = (res: Res, status: number, error: string) => {
  expect(res.status, JSON.stringify(res.body)).toBe(status);
  expect(res.headers.get('content-type')).toMatch(/^application\/json/);
  expect(res.headers.get('cache-control')).toBe('no-store');
  expect(res.body.error).toBe(error);
  expect(typeof res.body.error_description).toBe('string');
};

describe('conformance probe: OAuth endpoints, discovery, bearer challenges, preflights, registration', () => {
  let server: DemoServer;
  beforeAll(async () => {
    server = await startDemoServer();
  });
  afterAll(async () => server?.close());

  const call = (method: string, path: string, headers: Record<string, string> = {}) => raw(`${server.url}${path}`, { method, headers, redirect: 'manual' });
  const register = (metadata: unknown) => raw(`${server.url}/auth/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(metadata) });

  describe('no HTML error page: wrong methods and unknown paths', () => {
    it.each([
      ['GET', '/auth/token', 'POST'],
      ['GET', '/auth/introspect', 'POST'],
      ['GET', '/auth/revoke', 'POST'],
      ['GET', '/auth/register', 'POST'],
      ['HEAD', '/auth/token', 'POST'],
      ['PUT', '/auth/authorize', 'GET, HEAD, POST'],
      ['DELETE', '/auth/authorize', 'GET, HEAD, POST'],
    ])('%s %s is 405 with Allow: %s and an OAuth error', async (method, path, allow) => {
      const res = await call(method, path);
      expect(res.headers.get('allow')).toBe(allow);
      if (method === 'HEAD') return void expect(res.status).toBe(405);
      expectOAuthError(res, 405, 'invalid_request');
    });

    it.each([['GET', '/auth/anything'], ['POST', '/auth/anything/else'], ['GET', '/auth']])('%s %s is 404 with an OAuth error', async (method, path) => {
      expectOAuthError(await call(method, path), 404, 'invalid_request');
    });

    it.each([['GET', '/nonexistent'], ['POST', '/nonexistent'], ['GET', '/app/no-such-file.js'], ['DELETE', '/sandbox']])('%s %s is 404 with an OperationOutcome', async (method, path) => {
      const res = await call(method, path);
      expect(res.status).toBe(404);
      expect(res.headers.get('content-type')).toMatch(/json/);
      expect(res.body.resourceType).toBe('OperationOutcome');
    });

    it('under /fhir, an unknown path is the FHIR API\'s 404 OperationOutcome', async () => {
      const token = tokenFor(server, { scope: 'user/*.rs', fhirUser: 'Practitioner/hpsj-md-1', roles: ['plan-admin'] });
      const res = await call('GET', '/fhir/Patient/x/y/z/w', { authorization: `Bearer ${token}` });
      expect(res.status).toBe(404);
      expect(res.body.resourceType).toBe('OperationOutcome');
    });

    it('the sandbox and the OAuth endpoints still answer their own methods', async () => {
      expect((await call('GET', '/sandbox')).status).toBe(200);
      const token = await raw(`${server.url}/auth/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'client_id=second-opinion-app' });
      expect(token.body.error_description).toMatch(/grant_type/);
      expect((await call('GET', '/auth/authorize')).status).toBe(400);
    });
  });

  describe('what discovery declares is what the server does', () => {
    it('every type of the CapabilityStatement lists _security beside _tag and _profile, and _security:not searches', async () => {
      const cs = (await raw(`${server.fhirBase}/metadata`)).body as CapabilityStatement;
      const resources = cs.rest?.[0].resource ?? [];
      expect(resources.length).toBeGreaterThan(10);
      for (const resource of resources) {
        const names = (resource.searchParam ?? []).map((p) => p.name);
        expect(names, resource.type).toEqual(expect.arrayContaining(['_tag', '_profile', '_security']));
        expect(resource.searchParam?.find((p) => p.name === '_security')?.type).toBe('token');
      }
      const token = tokenFor(server, { scope: 'user/*.rs', fhirUser: 'Practitioner/hpsj-md-1', roles: ['plan-admin'] });
      const search = await raw(`${server.fhirBase}/Patient?_security:not=http://terminology.hl7.org/CodeSystem/v3-Confidentiality|R&_count=1`, { headers: { authorization: `Bearer ${token}`, prefer: 'handling=strict' } });
      expect(search.status, JSON.stringify(search.body)).toBe(200);
    });

    it('scopes_supported names patient/*.write and system/*.write, which are granted when asked for', async () => {
      const smart = (await raw(`${server.fhirBase}/.well-known/smart-configuration`)).body as { scopes_supported: string[] };
      for (const context of ['patient', 'user', 'system']) {
        expect(smart.scopes_supported).toEqual(expect.arrayContaining(['rs', 'cruds', 'read', 'write'].map((p) => `${context}/*.${p}`)));
      }
      const backend = await raw(`${server.url}/auth/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'system/*.write', client_assertion_type: ASSERTION_TYPE, client_assertion: backendAssertion(server) }).toString(),
      });
      expect(backend.status, JSON.stringify(backend.body)).toBe(200);
      expect(backend.body.scope).toBe('system/*.write');
      const app = await smartAppGrant(server, 'Patient/member-hpsj-1', 'launch/patient openid fhirUser patient/*.write');
      expect(app.scope.split(' ')).toContain('patient/*.write');
    });
  });

  describe('RFC 6750 §3.1: a request without a Bearer token gets a challenge without an error code', () => {
    it.each([
      ['Basic', `Basic ${Buffer.from('second-opinion-app:x').toString('base64')}`],
      ['Digest', 'Digest username="x", realm="y"'],
      ['a bare token', 'eyJhbGciOiJSUzI1NiJ9.e30.c2ln'],
    ])('%s credentials get what a request without any gets', async (_what, authorization) => {
      const missing = await raw(`${server.fhirBase}/Patient`);
      const other = await raw(`${server.fhirBase}/Patient`, { headers: { authorization } });
      expect(other.status).toBe(401);
      expect(other.body.resourceType).toBe('OperationOutcome');
      expect(other.headers.get('www-authenticate')).toBe(missing.headers.get('www-authenticate'));
      expect(other.headers.get('www-authenticate')).toMatch(/^Bearer realm="/);
      expect(other.headers.get('www-authenticate')).not.toMatch(/error=/);
    });

    it('a Bearer token that does not verify is still invalid_token', async () => {
      const res = await raw(`${server.fhirBase}/Patient`, { headers: { authorization: 'Bearer not-a-jwt' } });
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toMatch(/error="invalid_token"/);
    });

    it('/metrics answers as the FHIR API does: the realm\'s challenge without a token, invalid_token for one that does not verify, 403 for a token of no plan staff', async () => {
      const metrics = (authorization?: string) => fetch(`${server.url}/metrics`, { headers: authorization ? { authorization } : {} });
      const missing = await metrics();
      expect([missing.status, missing.headers.get('www-authenticate')]).toEqual([401, `Bearer realm="${server.fhirBase}"`]);
      expect((await metrics(`Basic ${Buffer.from('a:b').toString('base64')}`)).headers.get('www-authenticate')).toBe(`Bearer realm="${server.fhirBase}"`);
      const forged = await metrics('Bearer not-a-jwt');
      expect([forged.status, forged.headers.get('www-authenticate')]).toEqual([401, expect.stringMatching(/error="invalid_token"/)]);
      const member = tokenFor(server, { scope: 'launch/patient patient/*.rs', patient: 'member-hpsj-1', fhirUser: 'Patient/member-hpsj-1', roles: ['member'] });
      expect((await metrics(`Bearer ${member}`)).status).toBe(403);
      const staff = await metrics(`Bearer ${tokenFor(server, { scope: 'user/*.rs', fhirUser: 'Practitioner/hpsj-um-1', roles: ['um-clinician'] })}`);
      expect([staff.status, await staff.text()]).toEqual([200, expect.stringMatching(/outbox_sent_total/)]);
    });
  });

  describe('CORS preflights never reach the API', () => {
    const preflight = (path: string, origin: string, headers: Record<string, string> = {}) =>
      call('OPTIONS', path, { origin, 'access-control-request-method': 'GET', 'access-control-request-headers': 'authorization', ...headers });

    it.each([
      ['/fhir/Patient', {}],
      ['/fhir/Patient', { authorization: 'Bearer x' }],
      ['/fhir/Task/abc', {}],
      ['/auth/token', {}],
      ['/nonexistent', {}],
    ])('from an unregistered origin, OPTIONS %s is 204 without Access-Control-Allow-Origin', async (path, headers: Record<string, string>) => {
      const res = await preflight(path, 'https://evil.example.org', headers);
      expect(res.status).toBe(204);
      expect(res.headers.get('access-control-allow-origin')).toBeNull();
      expect(res.headers.get('access-control-allow-methods')).toBeNull();
    });

    it('from a registered origin, the preflight allows the API as before', async () => {
      const res = await preflight('/fhir/Patient', server.url);
      expect(res.status).toBe(204);
      expect(res.headers.get('access-control-allow-origin')).toBe(server.url);
      expect(res.headers.get('access-control-allow-methods')).toMatch(/GET/);
    });
  });

  describe('RFC 7591 dynamic registration', () => {
    it('answers with the registered metadata (§3.2.1): grant and response types included, server-internal fields left out', async () => {
      const res = await register({ client_name: 'probe', redirect_uris: ['https://app.example.org/cb'], grant_types: ['authorization_code', 'refresh_token'], token_endpoint_auth_method: 'client_secret_basic', scope: 'openid patient/*.rs' });
      expect(res.status, JSON.stringify(res.body)).toBe(201);
      expect(res.headers.get('cache-control')).toBe('no-store');
      expect(res.body).toMatchObject({
        client_name: 'probe',
        redirect_uris: ['https://app.example.org/cb'],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic',
        scope: 'openid patient/*.rs',
        client_secret_expires_at: 0,
      });
      expect(res.body.client_id).toMatch(/^dyn-/);
      expect(typeof res.body.client_secret).toBe('string');
      expect(typeof res.body.client_id_issued_at).toBe('number');
      for (const internal of ['system_roles', 'type', 'organization', 'origins']) expect(res.body, internal).not.toHaveProperty(internal);
    });

    it('defaults grant_types to authorization_code (§2) and echoes the origins a client registered', async () => {
      const res = await register({ redirect_uris: ['https://app.example.org/cb'], origins: ['https://app.example.org'] });
      expect(res.status, JSON.stringify(res.body)).toBe(201);
      expect(res.body).toMatchObject({ grant_types: ['authorization_code'], response_types: ['code'], token_endpoint_auth_method: 'none', origins: ['https://app.example.org'] });
      expect(res.body).not.toHaveProperty('client_secret');
    });

    it.each([
      ['client_credentials (registration grants no system scope)', { redirect_uris: ['https://app.example.org/cb'], grant_types: ['client_credentials'] }],
      ['implicit', { redirect_uris: ['https://app.example.org/cb'], grant_types: ['implicit'] }],
      ['a token response type', { redirect_uris: ['https://app.example.org/cb'], response_types: ['token'] }],
    ])('refuses %s as invalid_client_metadata', async (_what, metadata) => {
      expectOAuthError(await register(metadata), 400, 'invalid_client_metadata');
    });

    it('the token endpoint gives a registered client only the grants it registered (§2): no refresh token scopes, and any other grant is unauthorized_client', async () => {
      const token = (form: Record<string, string>) =>
        raw(`${server.url}/auth/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(form).toString() });
      const codeOnly = await register({ redirect_uris: ['https://app.example.org/cb'], scope: 'openid fhirUser launch offline_access online_access patient/*.rs' });
      expect(codeOnly.body.scope).toBe('openid fhirUser launch patient/*.rs');
      expectOAuthError(await token({ grant_type: 'refresh_token', refresh_token: 'x', client_id: codeOnly.body.client_id }), 400, 'unauthorized_client');
      const tokenExchange = await token({ grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', client_id: codeOnly.body.client_id, subject_token: 'x', subject_token_type: 'urn:ietf:params:oauth:token-type:id_token' });
      expectOAuthError(tokenExchange, 400, 'unauthorized_client');
      // Its own grant goes on to check the code as before.
      expectOAuthError(await token({ grant_type: 'authorization_code', code: 'x', redirect_uri: 'https://app.example.org/cb', client_id: codeOnly.body.client_id }), 400, 'invalid_grant');
      const refreshing = await register({ redirect_uris: ['https://app.example.org/cb'], grant_types: ['authorization_code', 'refresh_token'], scope: 'openid offline_access patient/*.rs' });
      expect(refreshing.body.scope).toBe('openid offline_access patient/*.rs');
      expectOAuthError(await token({ grant_type: 'refresh_token', refresh_token: 'x', client_id: refreshing.body.client_id }), 400, 'invalid_grant');
    });

    it('a body that is not JSON is invalid_client_metadata (§3.2.2), not invalid_request', async () => {
      const res = await raw(`${server.url}/auth/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"redirect_uris": [' });
      expectOAuthError(res, 400, 'invalid_client_metadata');
    });
  });
});
