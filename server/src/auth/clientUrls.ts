/**
 * Rules for the URLs a client registers. Pure: no I/O.
 *
 * - Redirect and launch URIs (RFC 8252 §7.3 and §8.3, RFC 9700 §2.1, RFC 6749 §3.1.2): https, or http to
 *   a loopback host only (a native or development app listening on this machine); no other scheme
 *   (javascript:, data:, file: ...), no credentials, no fragment.
 * - jwks_uri: a URL this server will fetch, so it must pass the outbound check every server-side call
 *   passes (https only, no loopback, link-local or private-network host).
 */
import { checkOutboundUrl } from '../outbound/http.js';

const LOOPBACK_HOSTS = /^(localhost|127(\.\d{1,3}){3}|\[::1\])$/i;

function parse(url: string): URL | undefined {
  try {
    return new URL(url);
  } catch {
    return undefined;
  }
}

/** Why `url` may not be a redirect or launch URI, or undefined when it may. */
export function redirectUriProblem(url: string): string | undefined {
  const u = parse(url);
  if (!u) return 'not a URL';
  if (u.protocol !== 'https:' && !(u.protocol === 'http:' && LOOPBACK_HOSTS.test(u.hostname))) {
    return 'must be https, or http to a loopback host (127.0.0.1, [::1], localhost)';
  }
  if (u.username || u.password) return 'may not carry credentials';
  if (url.includes('#')) return 'may not have a fragment';
  return undefined;
}

/** The jwks_uri policy of this server: never http, never a private-network host. */
export const JWKS_NETWORK_POLICY = { allowHttp: false, allowPrivateNetwork: false } as const;

/** Why this server will not fetch `url` as a JWKS, or undefined when it will. */
export function jwksUriProblem(url: string): string | undefined {
  try {
    checkOutboundUrl(url, JWKS_NETWORK_POLICY, 'jwks_uri');
    return undefined;
  } catch (err) {
    return err instanceof Error ? err.message : 'jwks_uri is not allowed';
  }
}
