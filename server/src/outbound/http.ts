import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { BlockList, isIP, type LookupFunction } from 'node:net';
import { Client } from 'fhir-kit-client';
import type { Agent, Dispatcher } from 'undici-types';
import type { NetworkPolicy } from './config.js';
import { PermanentError, PRIVATE_ADDRESS } from './errors.js';

/**
 * Refuses URLs the server must not call: anything but https (unless allowed), and loopback,
 * link-local and private-network hosts written as such (unless allowed), so a Subscription cannot
 * point our server at internal services. A DNS name is checked again where it is resolved, as the
 * connection is made (`outboundInit`): a public name may resolve, or rebind, to 127.0.0.1.
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

/**
 * Special-purpose ranges (RFC 6890 and the IANA registries) the server never connects to unless the
 * network policy allows private networks: this host, private, shared (CGNAT), link-local, multicast
 * and reserved. Node's BlockList matches IPv4 rules against IPv4-mapped IPv6 addresses as well.
 */
const NON_PUBLIC = new BlockList();
for (const [network, prefix] of [
  ['0.0.0.0', 8], // "this network", and 0.0.0.0 itself (connects to the local host)
  ['10.0.0.0', 8],
  ['100.64.0.0', 10], // shared address space (CGNAT)
  ['127.0.0.0', 8],
  ['169.254.0.0', 16], // link-local (cloud metadata services)
  ['172.16.0.0', 12],
  ['192.0.0.0', 24], // IETF protocol assignments
  ['192.168.0.0', 16],
  ['198.18.0.0', 15], // benchmarking
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, and the broadcast address
] as const) {
  NON_PUBLIC.addSubnet(network, prefix, 'ipv4');
}
for (const [network, prefix] of [
  ['::', 96], // unspecified, loopback and the deprecated IPv4-compatible addresses (::7f00:1)
  ['100::', 64], // discard-only
  ['fc00::', 7], // unique-local
  ['fe80::', 10], // link-local
  ['fec0::', 10], // site-local (deprecated)
  ['ff00::', 8], // multicast
] as const) {
  NON_PUBLIC.addSubnet(network, prefix, 'ipv6');
}

/** Host names that never name a public host. */
const isLocalName = (host: string): boolean => host === 'localhost' || ['.localhost', '.local', '.internal', '.home.arpa'].some((suffix) => host.endsWith(suffix));

/** Whether a URL host (name, IPv4 or bracketed IPv6, as WHATWG URL writes it) is local or private. */
export function isPrivateHost(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '').toLowerCase().replace(/\.$/, '');
  if (isIP(host)) return isPrivateAddress(host);
  return host === '' || isLocalName(host);
}

/**
 * Whether an IP address is outside the public internet, in either family. IPv6 forms that carry an
 * IPv4 address (mapped `::ffff:7f00:1`, compatible `::7f00:1`, NAT64 `64:ff9b::/96` and 6to4
 * `2002::/16`) are judged by that IPv4 address too, so `[::ffff:127.0.0.1]` is loopback. Anything
 * that is not an address counts as private (fail closed).
 */
export function isPrivateAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 4) return NON_PUBLIC.check(address, 'ipv4');
  if (family !== 6) return true;
  if (NON_PUBLIC.check(address, 'ipv6')) return true;
  const v4 = embeddedIPv4(address);
  return v4 !== undefined && NON_PUBLIC.check(v4, 'ipv4');
}

/** The IPv4 address inside an IPv6 one, for the forms that embed one (see isPrivateAddress). */
function embeddedIPv4(address: string): string | undefined {
  const words = ipv6Words(address);
  if (!words) return undefined;
  const dotted = (hi: number, lo: number) => `${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`;
  const zeros = (from: number, to: number) => words.slice(from, to).every((w) => w === 0);
  if (zeros(0, 5) && (words[5] === 0 || words[5] === 0xffff)) return dotted(words[6], words[7]); // compatible, mapped
  if (words[0] === 0x64 && words[1] === 0xff9b && zeros(2, 6)) return dotted(words[6], words[7]); // NAT64 (RFC 6052)
  if (words[0] === 0x2002) return dotted(words[1], words[2]); // 6to4 (RFC 3056)
  return undefined;
}

/** The eight 16-bit words of an IPv6 address (with `::` expanded and a trailing dotted quad read). */
function ipv6Words(address: string): number[] | undefined {
  let text = address.toLowerCase();
  const quad = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (quad) {
    const [a, b, c, d] = quad.slice(1).map(Number);
    text = `${text.slice(0, quad.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.split('::');
  const part = (s: string | undefined) => (s ? s.split(':').map((w) => parseInt(w, 16)) : []);
  const start = part(head);
  const end = part(tail);
  const words = tail === undefined ? start : [...start, ...new Array<number>(8 - start.length - end.length).fill(0), ...end];
  return words.length === 8 && words.every((w) => Number.isInteger(w) && w >= 0 && w <= 0xffff) ? words : undefined;
}

/**
 * The DNS lookup of every outbound connection when private networks are not allowed: a name that
 * resolves to any non-public address is refused as the socket is opened, so the address checked is
 * the address connected to (no rebinding between a check and the connection).
 */
export const publicOnlyLookup: LookupFunction = (hostname, options, callback) => {
  dnsLookup(hostname, { ...options, all: true }, (err, addresses: LookupAddress[]) => {
    if (err) return callback(err, '', 0);
    if (!addresses.length || addresses.some((a) => isPrivateAddress(a.address))) {
      return callback(Object.assign(new Error(`${hostname} resolves to a private-network address`), { code: PRIVATE_ADDRESS }), '', 0);
    }
    if (options.all) return callback(null, addresses);
    callback(null, addresses[0].address, addresses[0].family);
  });
};

/**
 * Node's fetch is undici, whose Agent takes the connect-time `lookup`. Node does not export the
 * class (the `undici` package would be a new dependency), so it is taken from the global dispatcher
 * that Node's fetch creates (`undici.globalDispatcher.1` is undici's own hand-over point to Node's
 * fetch). Without it, outbound calls fail closed.
 */
let guarded: Dispatcher | undefined;
function publicOnlyDispatcher(): Dispatcher {
  if (guarded) return guarded;
  new Request('https://example.invalid/'); // makes Node's fetch create its global dispatcher
  const global = (globalThis as Record<symbol, unknown>)[Symbol.for('undici.globalDispatcher.1')];
  const AgentClass = typeof global === 'object' && global !== null ? (global.constructor as new (options: Agent.Options) => Dispatcher) : undefined;
  if (!AgentClass || AgentClass.name !== 'Agent') throw new PermanentError('outbound: no guarded HTTP dispatcher available (private-network filtering)');
  guarded = new AgentClass({ connect: { lookup: publicOnlyLookup } });
  return guarded;
}

/** What every outbound HTTP call adds to its fetch options: no redirects, and the guarded DNS lookup. */
export function outboundInit(policy: Pick<NetworkPolicy, 'allowPrivateNetwork'>): { redirect: RequestRedirect; dispatcher?: Dispatcher } {
  return policy.allowPrivateNetwork ? { redirect: 'error' } : { redirect: 'error', dispatcher: publicOnlyDispatcher() };
}

/** `https://x/fhir/` → `https://x/fhir`. */
export const trimBase = (url: string): string => url.replace(/\/+$/, '');

/** A fhir-kit-client for one base URL; one per call keeps tokens from leaking between providers. */
export function fhirClient(baseUrl: string): Client {
  return new Client({ baseUrl: trimBase(baseUrl) });
}

/** Per-request options: our headers, a timeout, no redirects (a redirect could carry the token elsewhere) and the guarded lookup. */
export function requestOptions(
  headers: Record<string, string>,
  timeoutMs: number,
  policy: Pick<NetworkPolicy, 'allowPrivateNetwork'>,
): { headers: Record<string, string>; signal: AbortSignal; redirect: RequestRedirect; dispatcher?: Dispatcher } {
  return { headers, signal: AbortSignal.timeout(timeoutMs), ...outboundInit(policy) };
}

/** FHIR token search escaping (`\|`, `\,`, `\$`, `\\`), then URL encoding: for If-None-Exist and searches. */
export function identifierQuery(identifier: { system: string; value: string }): string {
  const esc = (s: string) => encodeURIComponent(s.replace(/[\\|,$]/g, (c) => `\\${c}`));
  return `identifier=${esc(identifier.system)}|${esc(identifier.value)}`;
}
