import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import jwt from 'jsonwebtoken';
import { describe, expect, it } from 'vitest';
import { CredentialSchema, NetworkPolicySchema, type CredentialConfig } from './config.js';
import { PermanentError, TransientError } from './errors.js';
import { ProviderAuth, resolveCredential } from './providerAuth.js';

const BASE = 'https://ehr.example.org/fhir';
const TOKEN_URL = 'https://auth.example.org/token';
const network = NetworkPolicySchema.parse({});
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ec = generateKeyPairSync('ec', { namedCurve: 'P-384' });

const credential = (extra: Partial<CredentialConfig> = {}): CredentialConfig =>
  CredentialSchema.parse({
    endpoints: [BASE],
    clientId: 'plan-client',
    privateKey: rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    kid: 'k1',
    scopes: ['system/Task.cru', 'system/DocumentReference.c'],
    ...extra,
  });

interface Call {
  url: string;
  body?: URLSearchParams;
}

/** A provider's discovery document and token endpoint, as a fetch stub. */
function stubFetch(options: { tokenStatus?: number[]; expiresIn?: number; discovery?: Record<string, unknown> } = {}) {
  const calls: Call[] = [];
  let issued = 0;
  const fetchStub = (async (input: string | URL | Request, init?: RequestInit) => {
    const url = String(input);
    calls.push({ url, body: init?.body instanceof URLSearchParams ? init.body : undefined });
    if (url === `${BASE}/.well-known/smart-configuration`) {
      return Response.json(options.discovery ?? { token_endpoint: TOKEN_URL, token_endpoint_auth_methods_supported: ['private_key_jwt'], token_endpoint_auth_signing_alg_values_supported: ['RS384', 'ES384'] });
    }
    if (url === TOKEN_URL) {
      const status = options.tokenStatus?.[issued] ?? 200;
      issued++;
      if (status !== 200) return Response.json({ error: 'invalid_client' }, { status });
      return Response.json({ access_token: `token-${issued}`, token_type: 'Bearer', expires_in: options.expiresIn ?? 300 });
    }
    return new Response('not found', { status: 404 });
  }) as typeof fetch;
  return { fetch: fetchStub, calls, tokenCalls: () => calls.filter((c) => c.url === TOKEN_URL) };
}

const httpError = (status: number) => Object.assign(new Error(`HTTP ${status}`), { response: { status, data: {} } });

describe('resolveCredential', () => {
  it('accepts a P-384 JWK for ES384 and takes its kid', () => {
    const jwk = ec.privateKey.export({ format: 'jwk' });
    const resolved = resolveCredential(credential({ privateKey: { ...jwk, kid: 'ec-1' }, kid: undefined, alg: 'ES384' }));
    expect(resolved.kid).toBe('ec-1');
    expect(resolved.alg).toBe('ES384');
  });
  it('refuses a key that does not fit the algorithm, without quoting the key', () => {
    expect(() => resolveCredential(credential({ alg: 'ES384' }))).toThrow(/ES384 needs a P-384 EC key/);
    expect(() => resolveCredential(credential({ privateKey: 'not a key' }))).toThrow(/could not be read/);
  });
  it('requires a kid', () => {
    expect(() => resolveCredential(credential({ kid: undefined }))).toThrow(/kid is required/);
  });
});

describe('ProviderAuth', () => {
  it('discovers the token endpoint and signs a client assertion the provider can verify', async () => {
    const stub = stubFetch();
    const auth = new ProviderAuth([credential()], { network, fetch: stub.fetch });
    const headers = await auth.withAuthorization(`${BASE}/`, undefined, async (h) => h);
    expect(headers).toEqual({ authorization: 'Bearer token-1' });
    const body = stub.tokenCalls()[0].body!;
    expect(body.get('grant_type')).toBe('client_credentials');
    expect(body.get('scope')).toBe('system/Task.cru system/DocumentReference.c');
    expect(body.get('client_assertion_type')).toBe('urn:ietf:params:oauth:client-assertion-type:jwt-bearer');
    const assertion = body.get('client_assertion')!;
    const decoded = jwt.decode(assertion, { complete: true })!;
    expect(decoded.header).toMatchObject({ alg: 'RS384', kid: 'k1', typ: 'JWT' });
    const claims = jwt.verify(assertion, createPublicKey(rsa.privateKey), { algorithms: ['RS384'], audience: TOKEN_URL, issuer: 'plan-client', subject: 'plan-client' }) as jwt.JwtPayload;
    expect(claims.exp! - Math.floor(Date.now() / 1000)).toBeLessThanOrEqual(300);
    expect(claims.jti).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('signs ES384 assertions with a P-384 key', async () => {
    const stub = stubFetch();
    const auth = new ProviderAuth([credential({ privateKey: ec.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), alg: 'ES384' })], { network, fetch: stub.fetch });
    await auth.withAuthorization(BASE, undefined, async () => undefined);
    const assertion = stub.tokenCalls()[0].body!.get('client_assertion')!;
    expect(() => jwt.verify(assertion, createPublicKey(ec.privateKey), { algorithms: ['ES384'], audience: TOKEN_URL })).not.toThrow();
  });

  it('caches the token until a minute before expiry, and shares one request between concurrent callers', async () => {
    const stub = stubFetch({ expiresIn: 300 });
    let now = 1_000_000;
    const auth = new ProviderAuth([credential()], { network, fetch: stub.fetch, now: () => now });
    const tokens = await Promise.all([1, 2, 3].map(() => auth.withAuthorization(BASE, undefined, async (h) => h.authorization)));
    expect(new Set(tokens)).toEqual(new Set(['Bearer token-1']));
    now += 239_000;
    expect(await auth.withAuthorization(BASE, undefined, async (h) => h.authorization)).toBe('Bearer token-1');
    now += 2_000;
    expect(await auth.withAuthorization(BASE, undefined, async (h) => h.authorization)).toBe('Bearer token-2');
    expect(stub.tokenCalls()).toHaveLength(2);
    expect(stub.calls.filter((c) => c.url.endsWith('smart-configuration'))).toHaveLength(1);
  });

  it('gets a new token once when the FHIR call answers 401, and gives up on a second 401', async () => {
    const stub = stubFetch();
    const auth = new ProviderAuth([credential()], { network, fetch: stub.fetch });
    const seen: string[] = [];
    const result = await auth.withAuthorization(BASE, undefined, async (h) => {
      seen.push(h.authorization);
      if (seen.length === 1) throw httpError(401);
      return 'ok';
    });
    expect(result).toBe('ok');
    expect(seen).toEqual(['Bearer token-1', 'Bearer token-2']);
    await expect(auth.withAuthorization(BASE, undefined, async () => Promise.reject(httpError(401)))).rejects.toMatchObject({ response: { status: 401 } });
    expect(stub.tokenCalls()).toHaveLength(3);
  });

  it('picks the longest endpoint prefix and prefers credentials registered for the plan', () => {
    const auth = new ProviderAuth(
      [credential({ clientId: 'generic' }), credential({ clientId: 'deep', endpoints: [`${BASE}/tenant-a`] }), credential({ clientId: 'hpsj', plan: 'HPSJ' })],
      { network },
    );
    expect(auth.credentialFor(`${BASE}/tenant-a`)?.clientId).toBe('deep');
    expect(auth.credentialFor(BASE)?.clientId).toBe('generic');
    expect(auth.credentialFor(BASE, 'HPSJ')?.clientId).toBe('hpsj');
    expect(auth.credentialFor(BASE, 'PHC')?.clientId).toBe('generic');
    expect(auth.credentialFor('https://ehr.example.org/fhirx')).toBeUndefined();
  });

  it('refuses endpoints without credentials, and classifies token endpoint failures', async () => {
    await expect(new ProviderAuth([], { network }).withAuthorization(BASE, undefined, async () => 1)).rejects.toBeInstanceOf(PermanentError);
    const refused = new ProviderAuth([credential()], { network, fetch: stubFetch({ tokenStatus: [401] }).fetch });
    await expect(refused.withAuthorization(BASE, undefined, async () => 1)).rejects.toBeInstanceOf(PermanentError);
    const down = new ProviderAuth([credential()], { network, fetch: stubFetch({ tokenStatus: [503] }).fetch });
    await expect(down.withAuthorization(BASE, undefined, async () => 1)).rejects.toBeInstanceOf(TransientError);
  });

  it('refuses a provider that does not take private_key_jwt or a token endpoint over plain http', async () => {
    const noJwt = new ProviderAuth([credential()], { network, fetch: stubFetch({ discovery: { token_endpoint: TOKEN_URL, token_endpoint_auth_methods_supported: ['client_secret_basic'] } }).fetch });
    await expect(noJwt.withAuthorization(BASE, undefined, async () => 1)).rejects.toThrow(/private_key_jwt/);
    const plain = new ProviderAuth([credential()], { network, fetch: stubFetch({ discovery: { token_endpoint: 'http://auth.example.org/token' } }).fetch });
    await expect(plain.withAuthorization(BASE, undefined, async () => 1)).rejects.toThrow(/only https/);
  });
});
