import { isIP } from 'node:net';
import { Client } from 'fhir-kit-client';
import type { NetworkPolicy } from './config.js';
import { PermanentError } from './errors.js';

/**
 * Refuses URLs the server must not call: anything but https (unless allowed), and loopback,
 * link-local and private-network hosts written as such (unless allowed), so a Subscription cannot
 * point our server at internal services. DNS names that resolve to private addresses are not
 * caught here (see the report: egress filtering belongs in the network).
 */
export function checkOutboundUrl(url: string, policy: Pick<NetworkPolicy, 'allowHttp' | 'allowPrivateNetwork'>, what: string): URL {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new PermanentError(`${what}: not a URL`);
  }
  const privateHost = isPrivateHost(parsed.hostname);
  if (parsed.protocol !== 'https:' && !(parsed.protocol === 'http:' && (policy.allowHttp || (privateHost && policy.allowPrivateNetwork)))) {
    throw new PermanentError(`${what}: only https URLs are allowed`);
  }
  if (privateHost && !policy.allowPrivateNetwork) throw new PermanentError(`${what}: private-network hosts are not allowed`);
  if (parsed.username || parsed.password) throw new PermanentError(`${what}: credentials in the URL are not allowed`);
  return parsed;
}

export function isPrivateHost(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  if (host === 'localhost' || host.endsWith('.localhost') || host.endsWith('.local') || host.endsWith('.internal')) return true;
  const kind = isIP(host);
  if (kind === 4) {
    const [a, b] = host.split('.').map(Number);
    return a === 10 || a === 127 || a === 0 || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168) || (a === 169 && b === 254) || (a === 100 && b >= 64 && b <= 127);
  }
  if (kind === 6) {
    if (host === '::1' || host === '::') return true;
    if (host.startsWith('::ffff:')) return isPrivateHost(host.slice(7));
    return /^f[cd]/.test(host) || /^fe[89ab]/.test(host);
  }
  return false;
}

/** `https://x/fhir/` → `https://x/fhir`. */
export const trimBase = (url: string): string => url.replace(/\/+$/, '');

/** A fhir-kit-client for one base URL; one per call keeps tokens from leaking between providers. */
export function fhirClient(baseUrl: string): Client {
  return new Client({ baseUrl: trimBase(baseUrl) });
}

/** Per-request options: our headers, a timeout, and no redirects (a redirect could carry the token elsewhere). */
export function requestOptions(headers: Record<string, string>, timeoutMs: number): { headers: Record<string, string>; signal: AbortSignal; redirect: RequestRedirect } {
  return { headers, signal: AbortSignal.timeout(timeoutMs), redirect: 'error' };
}

/** FHIR token search escaping (`\|`, `\,`, `\$`, `\\`), then URL encoding: for If-None-Exist and searches. */
export function identifierQuery(identifier: { system: string; value: string }): string {
  const esc = (s: string) => encodeURIComponent(s.replace(/[\\|,$]/g, (c) => `\\${c}`));
  return `identifier=${esc(identifier.system)}|${esc(identifier.value)}`;
}
