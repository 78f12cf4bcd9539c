import { z } from 'zod';
import { outboundInit } from '../outbound/http.js';
import { jwksUriProblem } from './clientUrls.js';
import { invalidClient, type OAuthError } from './oauthErrors.js';

export const JwkSchema = z.looseObject({ kty: z.string(), kid: z.string().optional(), alg: z.string().optional() });
export type Jwk = z.infer<typeof JwkSchema>;
const JwksSchema = z.object({ keys: z.array(JwkSchema) });

/** The keys a client publishes at its jwks_uri (SMART Backend Services §"Registering"). */
export interface JwksSource {
  keys(uri: string): Promise<Jwk[]>;
}

export interface JwksCacheOptions {
  fetch?: typeof fetch;
  /** How long a fetched JWKS is used before it is fetched again. */
  ttlMs?: number;
  /** How long a failed fetch is remembered (a failure is not retried on every assertion). */
  failureTtlMs?: number;
  timeoutMs?: number;
  maxEntries?: number;
  now?: () => number;
}

const MAX_JWKS_BYTES = 64 * 1024;

/**
 * One message for every way a client's keys cannot be had or do not match, so the token endpoint is
 * no oracle for what the server can reach (refused URL, network error, HTTP status, not a JWKS, no key).
 */
export const noUsableKey = (): OAuthError => invalidClient('No registered key matches the assertion kid/alg');

/**
 * Fetches a client's JWKS after the outbound URL check (https, no private hosts), without redirects,
 * and keeps the answer, success or failure, for a while: an assertion naming the client causes at
 * most one outbound request per period, whoever sends it.
 */
export function createJwksCache(options: JwksCacheOptions = {}): JwksSource {
  const { ttlMs = 5 * 60_000, failureTtlMs = 60_000, timeoutMs = 5000, maxEntries = 1000, now = Date.now } = options;
  const doFetch = options.fetch ?? fetch;
  const cache = new Map<string, { keys: Promise<Jwk[]>; until: number }>();
  return {
    async keys(uri) {
      const hit = cache.get(uri);
      if (hit && hit.until > now()) return hit.keys;
      const entry = { keys: load(uri, doFetch, timeoutMs), until: now() + ttlMs };
      cache.delete(uri);
      if (cache.size >= maxEntries) cache.delete(cache.keys().next().value as string);
      cache.set(uri, entry);
      const keys = await entry.keys;
      if (!keys.length) entry.until = now() + failureTtlMs;
      return keys;
    },
  };
}

/** The keys at `uri`, or none when the URL is refused or anything goes wrong (never throws). */
async function load(uri: string, doFetch: typeof fetch, timeoutMs: number): Promise<Jwk[]> {
  if (jwksUriProblem(uri)) return [];
  try {
    // The outbound module's connection rules: no redirects, and a name that resolves to a private address is refused as it connects.
    const res = await doFetch(uri, { ...outboundInit({ allowPrivateNetwork: false }), signal: AbortSignal.timeout(timeoutMs), headers: { accept: 'application/json' } });
    if (!res.ok) return [];
    const text = await res.text();
    if (text.length > MAX_JWKS_BYTES) return [];
    const parsed = JwksSchema.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data.keys : [];
  } catch {
    return [];
  }
}
