import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import jwt from 'jsonwebtoken';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DemoServer, startDemoServer } from './helpers/demoServer.js';
import { pgliteConfig } from './helpers/stores.js';

/** Backend services with an ES384 key from a clients file, and token exchange from a trusted EHR. */
describe('backend services (ES384) and token exchange (RFC 8693)', () => {
  let server: DemoServer;
  const es = generateKeyPairSync('ec', { namedCurve: 'P-384' });
  const ehr = generateKeyPairSync('rsa', { modulusLength: 2048 });
  /** The EHR's next key, published beside the current one while it rotates. */
  const ehrNext = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const stranger = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const files = join(process.env.TMPDIR ?? '/tmp', `so-auth-${randomUUID()}`);

  beforeAll(async () => {
    writeFileSync(`${files}-clients.json`, JSON.stringify([
      { client_id: 'ipa-system', type: 'confidential-asymmetric', scope: 'system/*.rs', jwks: { keys: [{ ...es.publicKey.export({ format: 'jwk' }), kid: 'ipa-1', alg: 'ES384' }] }, system_roles: ['delegated-group'] },
    ]));
    writeFileSync(`${files}-issuers.json`, JSON.stringify([
      { issuer: 'https://ehr.example.org', audience: 'https://ehr.example.org/fhir', jwks: { keys: [{ ...ehr.publicKey.export({ format: 'jwk' }), kid: 'ehr-1' }, { ...ehrNext.publicKey.export({ format: 'jwk' }), kid: 'ehr-2' }] }, allowedScopes: 'patient/*.rs openid fhirUser' },
    ]));
    server = await startDemoServer(pgliteConfig(), { CLIENTS_FILE: `${files}-clients.json`, TRUSTED_ISSUERS_FILE: `${files}-issuers.json` });
  });
  afterAll(async () => server?.close());

  const token = (body: Record<string, string>) =>
    fetch(`${server.url}/auth/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(body) });

  it('an ES384-signed client assertion from a registered system gets a system token', async () => {
    const assertion = jwt.sign({ jti: randomUUID() }, es.privateKey, { algorithm: 'ES384', keyid: 'ipa-1', issuer: 'ipa-system', subject: 'ipa-system', audience: `${server.url}/auth/token`, expiresIn: 120 });
    const res = await token({ grant_type: 'client_credentials', scope: 'system/Patient.rs', client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: assertion });
    expect(res.status).toBe(200);
    const { access_token } = (await res.json()) as { access_token: string };
    const read = await fetch(`${server.fhirBase}/Patient/member-bsp-1`, { headers: { authorization: `Bearer ${access_token}` } });
    expect(read.status).toBe(200);
    const other = await fetch(`${server.fhirBase}/Task`, { headers: { authorization: `Bearer ${access_token}` } });
    expect(other.status).toBe(403);
  });

  it('backend tokens last at most 300 s; a scope miss is 403 with WWW-Authenticate insufficient_scope (RFC 6750 §3.1)', async () => {
    const res = await token({ grant_type: 'client_credentials', scope: 'system/Patient.rs', client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: ipaAssertion() });
    const body = (await res.json()) as { access_token: string; expires_in: number };
    expect(body.expires_in).toBeLessThanOrEqual(300);
    const task = await fetch(`${server.fhirBase}/Task`, { headers: { authorization: `Bearer ${body.access_token}` } });
    expect(task.status).toBe(403);
    expect(task.headers.get('www-authenticate')).toBe('Bearer error="insufficient_scope", scope="system/Task.s"');
  });

  it('refuses a client_id naming another client than the assertion, an assertion naming a jku, and scopes other than system/ ones', async () => {
    const form = (over: Record<string, string>, assertion = ipaAssertion()) =>
      token({ grant_type: 'client_credentials', scope: 'system/Patient.rs', client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: assertion, ...over });
    const mismatch = await form({ client_id: 'second-opinion-app' });
    expect(mismatch.status).toBe(401);
    expect(((await mismatch.json()) as { error: string }).error).toBe('invalid_client');
    const jku = jwt.sign({ jti: randomUUID() }, es.privateKey, { algorithm: 'ES384', keyid: 'ipa-1', header: { alg: 'ES384', kid: 'ipa-1', jku: 'https://evil.example/jwks.json' } as jwt.JwtHeader, issuer: 'ipa-system', subject: 'ipa-system', audience: `${server.url}/auth/token`, expiresIn: 120 });
    expect((await form({}, jku)).status).toBe(401);
    const userScopes = await form({ scope: 'system/Patient.rs openid launch/patient' });
    expect(((await userScopes.json()) as { error: string }).error).toBe('invalid_scope');
  });

  it('SMART Backend Services: refuses a client assertion whose header lacks kid, or has a typ other than JWT (401 invalid_client)', async () => {
    const signed = (header: Record<string, unknown>) =>
      jwt.sign({ jti: randomUUID() }, es.privateKey, { algorithm: 'ES384', header: { alg: 'ES384', ...header } as jwt.JwtHeader, issuer: 'ipa-system', subject: 'ipa-system', audience: `${server.url}/auth/token`, expiresIn: 120 });
    const form = (assertion: string) => token({ grant_type: 'client_credentials', scope: 'system/Patient.rs', client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: assertion });
    for (const header of [{ typ: 'JWT' }, { kid: '', typ: 'JWT' }, { kid: 'ipa-1', typ: 'at+jwt' }, { kid: 'ipa-1', typ: undefined }]) {
      const res = await form(signed(header));
      expect(res.status, JSON.stringify(header)).toBe(401);
      expect(((await res.json()) as { error: string }).error).toBe('invalid_client');
    }
    expect((await form(signed({ kid: 'ipa-1', typ: 'JWT' }))).status).toBe(200);
    // A typ is a media type name: its case does not matter (RFC 7515 §4.1.9).
    expect((await form(signed({ kid: 'ipa-1', typ: 'jwt' }))).status).toBe(200);
  });

  it('advertises token exchange where an EHR is trusted to exchange its tokens', async () => {
    const config = (await (await fetch(`${server.fhirBase}/.well-known/smart-configuration`)).json()) as { grant_types_supported: string[] };
    expect(config.grant_types_supported).toContain('urn:ietf:params:oauth:grant-type:token-exchange');
  });

  const ipaAssertion = () => jwt.sign({ jti: randomUUID() }, es.privateKey, { algorithm: 'ES384', keyid: 'ipa-1', issuer: 'ipa-system', subject: 'ipa-system', audience: `${server.url}/auth/token`, expiresIn: 120 });

  const ehrToken = (key: typeof ehr.privateKey, claims: Record<string, unknown> = {}) =>
    jwt.sign({ patient_identifier: 'urn:oid:2.16.840.1.113883.3.1241.1.1|900123' + '', ...claims }, key, { algorithm: 'RS256', keyid: 'ehr-1', issuer: 'https://ehr.example.org', audience: 'https://ehr.example.org/fhir', subject: 'dr-who', expiresIn: 300 });

  it('a trusted EHR token is exchanged for ours, with the patient matched by identifier and scopes no wider than allowed', async () => {
    const cin = ((await (await fetch(`${server.fhirBase}/Patient/member-ant-1`, { headers: { authorization: `Bearer ${await systemToken()}` } })).json()) as { identifier: { system: string; value: string }[] }).identifier[0];
    const res = await token({
      grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
      client_id: 'second-opinion-app',
      subject_token: ehrToken(ehr.privateKey, { patient_identifier: `${cin.system}|${cin.value}` }),
      subject_token_type: 'urn:ietf:params:oauth:token-type:access_token',
      scope: 'patient/*.rs user/*.cruds',
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { access_token: string; scope: string; patient: string };
    expect(body.scope).toBe('patient/*.rs');
    expect(body.patient).toBe('member-ant-1');
    const own = await fetch(`${server.fhirBase}/Patient/member-ant-1`, { headers: { authorization: `Bearer ${body.access_token}` } });
    expect(own.status).toBe(200);
    const other = await fetch(`${server.fhirBase}/Patient/member-ant-2`, { headers: { authorization: `Bearer ${body.access_token}` } });
    expect(other.status).toBe(404);
  });

  it('an EHR token naming no kid is checked against each of the EHR\'s keys: one signed with its second key is exchanged, a stranger\'s is not', async () => {
    const exchange = (subject_token: string) => token({ grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', client_id: 'second-opinion-app', subject_token, subject_token_type: 'urn:ietf:params:oauth:token-type:access_token', scope: 'patient/*.rs' });
    const unnamed = (key: typeof ehr.privateKey) => jwt.sign({}, key, { algorithm: 'RS256', issuer: 'https://ehr.example.org', audience: 'https://ehr.example.org/fhir', subject: 'dr-who', expiresIn: 300 });
    expect((await exchange(unnamed(ehrNext.privateKey))).status).toBe(200);
    const refused = await exchange(unnamed(stranger.privateKey));
    expect(refused.status).toBe(400);
    expect(((await refused.json()) as { error: string }).error).toBe('invalid_grant');
  });

  it('refuses an EHR token signed by an unknown key, and the EHR token itself on our FHIR API', async () => {
    const forged = ehrToken(stranger.privateKey);
    const res = await token({ grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', client_id: 'second-opinion-app', subject_token: forged, subject_token_type: 'urn:ietf:params:oauth:token-type:access_token' });
    expect(res.status).toBe(400);
    const direct = await fetch(`${server.fhirBase}/Patient/member-ant-1`, { headers: { authorization: `Bearer ${ehrToken(ehr.privateKey)}` } });
    expect(direct.status).toBe(401);
  });

  async function systemToken(): Promise<string> {
    const assertion = jwt.sign({ jti: randomUUID() }, es.privateKey, { algorithm: 'ES384', keyid: 'ipa-1', issuer: 'ipa-system', subject: 'ipa-system', audience: `${server.url}/auth/token`, expiresIn: 120 });
    const res = await token({ grant_type: 'client_credentials', scope: 'system/Patient.rs', client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: assertion });
    return ((await res.json()) as { access_token: string }).access_token;
  }
});
