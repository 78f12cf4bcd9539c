import type { Resource, Subscription } from 'fhir/r4.js';
import { z } from 'zod';
import { unprocessable } from '../fhir/outcomes.js';
import type { SearchParamRegistry } from '../fhir/search/registry.js';
import type { NetworkPolicy, OutboundConfig } from './config.js';
import { describeError } from './errors.js';
import { checkOutboundUrl } from './http.js';
import type { PayloadContent } from './notifications.js';
import { BACKPORT, namesOurTopic, parseFilters, TOPIC_URL, type TopicFilter } from './topic.js';

/**
 * What this server makes of a client's Subscription (Subscriptions R5 Backport IG 1.1, R4): the
 * checks of what it can honour, and the settings the write hook, the sender and the scheduler use.
 */

export type SubscriptionStatus = 'requested' | 'active' | 'error' | 'off';

/** A Subscription as this server understands it, after validation. */
export interface ChannelSettings {
  id: string;
  status: SubscriptionStatus;
  filters: TopicFilter[];
  endpoint: string;
  headers: Record<string, string>;
  content: PayloadContent;
  /** channel.payload as sent: the Content-Type of every notification (IG channels.md, REST-Hook). */
  contentType: string;
  heartbeatSeconds?: number;
  timeoutMs: number;
  end?: number;
}

export interface SettingsDeps {
  registry: SearchParamRegistry;
  fhirBase: string;
  network: NetworkPolicy;
  settings: OutboundConfig['subscriptions'];
}

const Extension = z.looseObject({ url: z.string() });
const Coding = z.looseObject({ system: z.string().optional(), code: z.string().optional() });
/** What a client sent (network input): only the parts we act on are checked here. */
const SubscriptionInput = z.looseObject({
  resourceType: z.literal('Subscription'),
  id: z.string(),
  status: z.enum(['requested', 'active', 'error', 'off']),
  criteria: z.string(),
  end: z.string().optional(),
  channel: z.looseObject({
    type: z.string(),
    _type: z.looseObject({ extension: z.array(Extension.extend({ valueCoding: Coding.optional() })).optional() }).optional(),
    endpoint: z.string().optional(),
    payload: z.string().optional(),
    _payload: z.looseObject({ extension: z.array(z.looseObject({ url: z.string(), valueCode: z.string().optional() })).optional() }).optional(),
    header: z.array(z.string()).max(10).optional(),
    extension: z.array(Extension.extend({ valueUnsignedInt: z.number().int().min(0).optional() })).optional(),
  }),
});
type SubscriptionInput = z.infer<typeof SubscriptionInput>;

const FORBIDDEN_HEADERS = new Set(['host', 'content-length', 'content-type', 'transfer-encoding', 'connection', 'upgrade', 'expect', 'te', 'trailer', 'keep-alive', 'proxy-authorization']);
const CHANNEL_TYPE_SYSTEM = 'http://terminology.hl7.org/CodeSystem/subscription-channel-type';
/** `application/fhir+json` or `application/json`, with RFC 9110 parameters (`; fhirVersion=4.0`): sent back as the Content-Type. */
const PAYLOAD_MIME = /^application\/(?:fhir\+)?json(?:\s*;\s*[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}=(?:[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}|"[^"\\\x00-\x1f\x7f]{0,128}"))*$/;

/** Checks a client's Subscription against what we support; FhirError 400/422 naming the problem. */
export function channelSettings(subscription: Resource, deps: SettingsDeps): ChannelSettings {
  const sub = parseInput(subscription);
  if (!namesOurTopic(sub.criteria)) {
    throw unprocessable(`Only topic-based subscriptions are supported: Subscription.criteria must be ${TOPIC_URL} (or ${TOPIC_URL}|version)`, ['Subscription.criteria']);
  }
  checkChannelType(sub.channel);
  const endpoint = checkEndpoint(sub.channel.endpoint, deps.network);
  const contentType = checkPayload(sub.channel.payload);
  const content = sub.channel._payload?.extension?.find((e) => e.url === BACKPORT.payloadContent)?.valueCode ?? 'id-only';
  if (content !== 'empty' && content !== 'id-only' && content !== 'full-resource') {
    throw unprocessable(`Unknown payload content '${content.slice(0, 40)}' (empty, id-only or full-resource)`, ['Subscription.channel.payload']);
  }
  const ext = (url: string) => sub.channel.extension?.find((e) => e.url === url)?.valueUnsignedInt;
  const heartbeatSeconds = ext(BACKPORT.heartbeatPeriod);
  if (heartbeatSeconds !== undefined && heartbeatSeconds < deps.settings.minHeartbeatSeconds) {
    throw unprocessable(`The heartbeat period must be at least ${deps.settings.minHeartbeatSeconds} seconds`, ['Subscription.channel']);
  }
  const timeoutSeconds = ext(BACKPORT.timeout);
  return {
    id: sub.id,
    status: sub.status,
    filters: parseFilters(subscription as Subscription, deps.registry, deps.fhirBase, deps.settings.maxFilters),
    endpoint,
    headers: parseHeaders(sub.channel.header ?? []),
    content,
    contentType,
    heartbeatSeconds: heartbeatSeconds || undefined,
    timeoutMs: timeoutSeconds ? Math.min(timeoutSeconds * 1000, deps.network.timeoutMs) : deps.network.timeoutMs,
    end: endOf(subscription),
  };
}

function parseInput(subscription: Resource): SubscriptionInput {
  const parsed = SubscriptionInput.safeParse(subscription);
  if (parsed.success) return parsed.data;
  const path = parsed.error.issues[0]?.path.join('.') ?? '';
  throw unprocessable(`Subscription.${path}: ${parsed.error.issues[0]?.message ?? 'invalid'}`, [`Subscription.${path}`]);
}

/**
 * rest-hook only, also where the backport-channel-type extension names a custom channel: the IG
 * (conformance.md, Must Support) says a server SHALL reject a channel it does not support.
 */
function checkChannelType(channel: SubscriptionInput['channel']): void {
  if (channel.type !== 'rest-hook') throw unprocessable("Only channel.type 'rest-hook' is supported", ['Subscription.channel.type']);
  for (const ext of channel._type?.extension ?? []) {
    if (ext.url !== BACKPORT.channelType) continue;
    const coding = ext.valueCoding;
    if (coding?.code === 'rest-hook' && (coding.system === undefined || coding.system === CHANNEL_TYPE_SYSTEM)) continue;
    const named = coding ? `${coding.system ?? ''}|${coding.code ?? ''}`.slice(0, 120) : 'a channel without a valueCoding';
    throw unprocessable(`Unsupported channel type ${named} (backport-channel-type): only rest-hook is supported`, ['Subscription.channel.type']);
  }
}

function checkEndpoint(endpoint: string | undefined, network: NetworkPolicy): string {
  if (!endpoint) throw unprocessable('A rest-hook channel needs channel.endpoint', ['Subscription.channel.endpoint']);
  try {
    checkOutboundUrl(endpoint, network, 'channel.endpoint');
  } catch (err) {
    throw unprocessable(describeError(err), ['Subscription.channel.endpoint']);
  }
  return endpoint;
}

function checkPayload(payload: string | undefined): string {
  const contentType = (payload ?? '').trim();
  if (!PAYLOAD_MIME.test(contentType)) {
    throw unprocessable('channel.payload must be application/fhir+json or application/json (parameters as name=value)', ['Subscription.channel.payload']);
  }
  return contentType;
}

/** Subscription.end as epoch milliseconds; 422 when it is not an instant. */
export function endOf(subscription: Resource): number | undefined {
  const end = (subscription as Subscription).end;
  if (end === undefined) return undefined;
  const at = Date.parse(end);
  if (Number.isNaN(at)) throw unprocessable('Subscription.end is not a valid instant', ['Subscription.end']);
  return at;
}

function parseHeaders(lines: string[]): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const m = /^([!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}):\s?(.{0,4096})$/.exec(line);
    if (!m || /[\r\n]/.test(m[2])) throw unprocessable('Each channel.header must read "Name: value"', ['Subscription.channel.header']);
    if (FORBIDDEN_HEADERS.has(m[1].toLowerCase())) throw unprocessable(`channel.header may not set ${m[1]}`, ['Subscription.channel.header']);
    headers[m[1].toLowerCase()] = m[2];
  }
  return headers;
}
