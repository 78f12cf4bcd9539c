import { createPrivateKey, randomUUID, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import jwt from 'jsonwebtoken';
import { z } from 'zod';
import type { CredentialConfig, NetworkPolicy } from './config.js';
import { classifyHttpError, httpStatusOf, PermanentError, TransientError } from './errors.js';
import { checkOutboundUrl, outboundInit, trimBase } from './http.js';

/**
 * SMART Backend Services as a client (SMART App Launch 2.x, "Backend Services"): the plan signs a
 * `private_key_jwt` client assertion and exchanges it for an access token with the
 * `client_credentials` grant at the provider's token endpoint, found in
 * `{fhirBase}/.well-known/smart-configuration`. Tokens are cached until shortly before expiry
 * and refreshed once when a FHIR call answers 401. Tokens and keys are never logged.
 */

export interface ResolvedCredential {
  plan?: string;
  endpoints: string[];
  clientId: string;
  key: KeyObject;
  kid: string;
  alg: 'RS384' | 'ES384';
  scopes: string;
  tokenEndpoint?: string;
}

const SmartConfiguration = z.object({
  token_endpoint: z.url(),
  token_endpoint_auth_methods_supported: z.array(z.string()).optional(),
  token_endpoint_auth_signing_alg_values_supported: z.array(z.string()).optional(),
  grant_types_supported: z.array(z.string()).optional(),
});

const TokenResponse = z.object({
  access_token: z.string().min(1).max(8192),
  token_type: z.string().refine((t) => t.toLowerCase() === 'bearer', 'token_type must be bearer'),
  expires_in: z.number().int().positive().optional(),
  scope: z.string().optional(),
});

interface CachedToken {
  accessToken: string;
  /** Epoch ms after which the token is refreshed (expiry minus a margin). */
  refreshAt: number;
}

export interface ProviderAuthOptions {
  network: NetworkPolicy;
  fetch?: typeof fetch;
  now?: () => number;
  /** Refresh this long before expiry (capped at half the token lifetime). */
  refreshMarginMs?: number;
  /** Discovery documents are re-read after this long. */
  discoveryTtlMs?: number;
}

/** Loads the private key and checks it fits the algorithm, so a wrong key fails at start, not at 2 a.m. */
export function resolveCredential(config: CredentialConfig): ResolvedCredential {
  const material = config.privateKeyFile ? readFileSync(config.privateKeyFile, 'utf8') : config.privateKey!;
  let key: KeyObject;
  let jwkKid: string | undefined;
  try {
    if (typeof material === 'string' && material.trimStart().startsWith('{')) {
      const jwk = JSON.parse(material) as Record<string, unknown>;
      jwkKid = typeof jwk.kid === 'string' ? jwk.kid : undefined;
      key = createPrivateKey({ key: jwk, format: 'jwk' });
    } else if (typeof material === 'string') {
      key = createPrivateKey(material);
    } else {
      jwkKid = typeof material.kid === 'string' ? material.kid : undefined;
      key = createPrivateKey({ key: material, format: 'jwk' });
    }
  } catch {
    throw new Error(`credentials for client ${config.clientId}: the private key could not be read`);
  }
  const kid = config.kid ?? jwkKid;
  if (!kid) throw new Error(`credentials for client ${config.clientId}: kid is required (in the config or the JWK)`);
  if (config.alg === 'RS384' && key.asymmetricKeyType !== 'rsa') throw new Error(`credentials for client ${config.clientId}: RS384 needs an RSA key`);
  if (config.alg === 'ES384' && (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'secp384r1')) {
    throw new Error(`credentials for client ${config.clientId}: ES384 needs a P-384 EC key`);
  }
  return {
    plan: config.plan,
    endpoints: config.endpoints.map(trimBase),
    clientId: config.clientId,
    key,
    kid,
    alg: config.alg,
    scopes: config.scopes,
    tokenEndpoint: config.tokenEndpoint,
  };
}

/** The signed client assertion (RFC 7523; SMART Backend Services "authentication JWT"). */
export function clientAssertion(credential: ResolvedCredential, tokenEndpoint: string, nowMs: number): string {
  const iat = Math.floor(nowMs / 1000);
  return jwt.sign({ iss: credential.clientId, sub: credential.clientId, aud: tokenEndpoint, jti: randomUUID(), iat, exp: iat + 240 }, credential.key, {
    algorithm: credential.alg,
    keyid: credential.kid,
    header: { alg: credential.alg, typ: 'JWT', kid: credential.kid },
  });
}

export class ProviderAuth {
  private readonly credentials: ResolvedCredential[];
  private readonly tokens = new Map<string, CachedToken>();
  private readonly pending = new Map<string, Promise<CachedToken>>();
  private readonly discovery = new Map<string, { tokenEndpoint: Promise<string>; at: number }>();
  private readonly fetch: typeof fetch;
  private readonly now: () => number;

  constructor(
    credentials: CredentialConfig[],
    private readonly options: ProviderAuthOptions,
  ) {
    this.credentials = credentials.map(resolveCredential);
    this.fetch = options.fetch ?? fetch;
    this.now = options.now ?? Date.now;
  }

  /**
   * The credentials for a FHIR base: the longest configured prefix, preferring those registered for
   * `plan` over plan-neutral ones.
   */
  credentialFor(endpoint: string, plan?: string): ResolvedCredential | undefined {
    const base = trimBase(endpoint);
    let best: { credential: ResolvedCredential; score: number } | undefined;
    for (const credential of this.credentials) {
      if (credential.plan !== undefined && credential.plan !== plan) continue;
      for (const prefix of credential.endpoints) {
        if (base !== prefix && !base.startsWith(`${prefix}/`)) continue;
        const score = prefix.length * 2 + (credential.plan !== undefined ? 1 : 0);
        if (!best || score > best.score) best = { credential, score };
      }
    }
    return best?.credential;
  }

  /**
   * Runs `call` with an Authorization header for `endpoint`; on 401, drops the cached token and
   * tries once more with a fresh one. Without configured credentials the call is refused
   * (PermanentError): PHI goes only to providers we authenticate to.
   */
  async withAuthorization<T>(endpoint: string, plan: string | undefined, call: (headers: Record<string, string>) => Promise<T>): Promise<T> {
    const credential = this.credentialFor(endpoint, plan);
    if (!credential) throw new PermanentError('no backend-services credentials are configured for this endpoint');
    const token = await this.token(credential, endpoint);
    try {
      return await call({ authorization: `Bearer ${token}` });
    } catch (err) {
      if (httpStatusOf(err) !== 401) throw err;
      this.invalidate(credential, token);
      const fresh = await this.token(credential, endpoint);
      return call({ authorization: `Bearer ${fresh}` });
    }
  }

  /** A valid access token for the credential (cached; concurrent callers share one request). */
  async token(credential: ResolvedCredential, endpoint: string): Promise<string> {
    const key = this.cacheKey(credential);
    const ready = this.tokens.get(key);
    if (ready && this.now() < ready.refreshAt) return ready.accessToken;
    let pending = this.pending.get(key);
    if (!pending) {
      pending = this.requestToken(credential, endpoint)
        .then((token) => {
          this.tokens.set(key, token);
          return token;
        })
        .finally(() => this.pending.delete(key));
      this.pending.set(key, pending);
    }
    return (await pending).accessToken;
  }

  /** Forgets a token the provider refused (only if it is still the cached one), or any cached token. */
  invalidate(credential: ResolvedCredential, accessToken?: string): void {
    const key = this.cacheKey(credential);
    if (accessToken === undefined || this.tokens.get(key)?.accessToken === accessToken) this.tokens.delete(key);
  }

  private cacheKey(credential: ResolvedCredential): string {
    return `${credential.clientId}\u0000${credential.endpoints.join(',')}\u0000${credential.scopes}`;
  }

  private async requestToken(credential: ResolvedCredential, endpoint: string): Promise<CachedToken> {
    const tokenEndpoint = credential.tokenEndpoint ?? (await this.discoverTokenEndpoint(endpoint, credential));
    checkOutboundUrl(tokenEndpoint, this.options.network, 'token endpoint');
    const body = new URLSearchParams({
      grant_type: 'client_credentials',
      scope: credential.scopes,
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: clientAssertion(credential, tokenEndpoint, this.now()),
    });
    let response: Response;
    try {
      response = await this.fetch(tokenEndpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body,
        signal: AbortSignal.timeout(this.options.network.timeoutMs),
        ...outboundInit(this.options.network),
      });
    } catch (err) {
      throw classifyHttpError(err, 'token request');
    }
    if (!response.ok) {
      await response.body?.cancel();
      // invalid_client / invalid_scope will not fix themselves; throttling and outages may.
      if (response.status === 400 || response.status === 401 || response.status === 403) {
        throw new PermanentError(`token request: HTTP ${response.status} (check client id, key and scopes registered at the provider)`);
      }
      throw new TransientError(`token request: HTTP ${response.status}`);
    }
    const parsed = TokenResponse.safeParse(await response.json().catch(() => undefined));
    if (!parsed.success) throw new TransientError('token request: unexpected response shape');
    const lifetimeMs = (parsed.data.expires_in ?? 300) * 1000;
    const margin = Math.min(this.options.refreshMarginMs ?? 60_000, lifetimeMs / 2);
    return { accessToken: parsed.data.access_token, refreshAt: this.now() + lifetimeMs - margin };
  }

  private async discoverTokenEndpoint(endpoint: string, credential: ResolvedCredential): Promise<string> {
    const base = trimBase(endpoint);
    const ttl = this.options.discoveryTtlMs ?? 3_600_000;
    const cached = this.discovery.get(base);
    if (cached && this.now() - cached.at < ttl) return cached.tokenEndpoint;
    const lookup = this.readSmartConfiguration(base, credential);
    this.discovery.set(base, { tokenEndpoint: lookup, at: this.now() });
    lookup.catch(() => this.discovery.delete(base));
    return lookup;
  }

  private async readSmartConfiguration(base: string, credential: ResolvedCredential): Promise<string> {
    const url = `${base}/.well-known/smart-configuration`;
    checkOutboundUrl(url, this.options.network, 'smart-configuration');
    let response: Response;
    try {
      response = await this.fetch(url, { headers: { accept: 'application/json' }, signal: AbortSignal.timeout(this.options.network.timeoutMs), ...outboundInit(this.options.network) });
    } catch (err) {
      throw classifyHttpError(err, 'smart-configuration');
    }
    if (!response.ok) {
      await response.body?.cancel();
      throw response.status === 404
        ? new PermanentError('smart-configuration: not published (set tokenEndpoint in the credentials)')
        : new TransientError(`smart-configuration: HTTP ${response.status}`);
    }
    const parsed = SmartConfiguration.safeParse(await response.json().catch(() => undefined));
    if (!parsed.success) throw new TransientError('smart-configuration: no valid token_endpoint');
    const config = parsed.data;
    if (config.token_endpoint_auth_methods_supported && !config.token_endpoint_auth_methods_supported.includes('private_key_jwt')) {
      throw new PermanentError('smart-configuration: the provider does not accept private_key_jwt');
    }
    const algs = config.token_endpoint_auth_signing_alg_values_supported;
    if (algs && !algs.includes(credential.alg)) throw new PermanentError(`smart-configuration: the provider does not accept ${credential.alg} assertions`);
    if (config.grant_types_supported && !config.grant_types_supported.includes('client_credentials')) {
      throw new PermanentError('smart-configuration: the provider does not support client_credentials');
    }
    return config.token_endpoint;
  }
}
