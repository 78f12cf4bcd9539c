import { describe, expect, it } from 'vitest';
import { createJwksCache } from './clientJwks.js';

const JWKS = { keys: [{ kty: 'RSA', kid: 'k1', alg: 'RS384', n: 'x', e: 'AQAB' }] };

/** A fetch double: records the URLs asked for and answers with `answer`. */
function fakeFetch(answer: () => Promise<Response>) {
  const calls: string[] = [];
  const fn = async (input: string | URL | Request) => {
    calls.push(String(input));
    return answer();
  };
  return { calls, fetch: fn as typeof fetch };
}

describe('client JWKS from jwks_uri', () => {
  it.each(['http://keys.example.org/jwks', 'http://127.0.0.1:18556/.well-known/jwks.json', 'https://127.0.0.1:1/x', 'https://169.254.169.254/latest/meta-data/', 'https://[::1]/jwks', 'https://10.0.0.8/jwks'])(
    'never fetches a refused URL: %s',
    async (uri) => {
      const f = fakeFetch(async () => Response.json(JWKS));
      expect(await createJwksCache({ fetch: f.fetch }).keys(uri)).toEqual([]);
      expect(f.calls).toEqual([]);
    },
  );

  it('fetches an https public URL once, then answers from the cache until it expires', async () => {
    let clock = 1_000_000;
    const f = fakeFetch(async () => Response.json(JWKS));
    const cache = createJwksCache({ fetch: f.fetch, ttlMs: 300_000, now: () => clock });
    const uri = 'https://keys.example.org/jwks';
    expect((await cache.keys(uri)).map((k) => k.kid)).toEqual(['k1']);
    await Promise.all([cache.keys(uri), cache.keys(uri), cache.keys(uri)]);
    expect(f.calls).toHaveLength(1);
    clock += 300_001;
    await cache.keys(uri);
    expect(f.calls).toHaveLength(2);
  });

  it('fetches with the outbound connection rules: no redirects, and the private-address check at connect time', async () => {
    let init: RequestInit | undefined;
    const recording = (async (_input: string | URL | Request, given?: RequestInit) => {
      init = given;
      return Response.json(JWKS);
    }) as typeof fetch;
    await createJwksCache({ fetch: recording }).keys('https://keys.example.org/jwks');
    expect(init?.redirect).toBe('error');
    expect((init as RequestInit & { dispatcher?: unknown }).dispatcher).toBeDefined();
  });

  it('remembers a failure for a while: an assertion per request does not mean a fetch per request', async () => {
    let clock = 0;
    const f = fakeFetch(async () => new Response('nope', { status: 500 }));
    const cache = createJwksCache({ fetch: f.fetch, failureTtlMs: 60_000, now: () => clock });
    for (let i = 0; i < 5; i++) expect(await cache.keys('https://keys.example.org/jwks')).toEqual([]);
    expect(f.calls).toHaveLength(1);
    clock += 60_001;
    await cache.keys('https://keys.example.org/jwks');
    expect(f.calls).toHaveLength(2);
  });

  it.each<[string, () => Promise<Response>]>([
    ['a network error', async () => Promise.reject(new TypeError('fetch failed'))],
    ['an HTTP error', async () => new Response('', { status: 404 })],
    ['a body that is not JSON', async () => new Response('<html>')],
    ['JSON that is not a JWKS', async () => Response.json({ ami: 'metadata' })],
    ['an oversized body', async () => Response.json({ keys: [{ kty: 'RSA', pad: 'x'.repeat(70_000) }] })],
  ])('answers no keys, without throwing, for %s', async (_what, answer) => {
    expect(await createJwksCache({ fetch: fakeFetch(answer).fetch }).keys('https://keys.example.org/jwks')).toEqual([]);
  });
});
