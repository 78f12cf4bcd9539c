import { readFileSync } from 'node:fs';
import { z } from 'zod';

/**
 * Outbound configuration: how the outbox worker runs and which backend-services credentials the
 * plan uses at each provider's FHIR server. Loaded from a JSON file (OUTBOUND_CONFIG_FILE) or an
 * object; validated at start so a bad key or URL stops start-up with a clear message.
 */

const reference = (type: string) => z.string().regex(new RegExp(`^${type}/[A-Za-z0-9\\-.]{1,64}$`), `must be a ${type}/id reference`);

/** One registration of the plan as a backend-services client at a provider. */
export const CredentialSchema = z
  .object({
    /** Plan these credentials belong to (HPSJ, PHC, ANT, BSP), when a provider registered each plan separately. */
    plan: z.string().min(1).optional(),
    /** FHIR base URLs (prefixes) these credentials are used for. */
    endpoints: z.array(z.url()).min(1),
    clientId: z.string().min(1),
    /** PEM (PKCS#8 or PKCS#1/SEC1) or a private JWK. */
    privateKey: z.union([z.string().min(1), z.record(z.string(), z.unknown())]).optional(),
    privateKeyFile: z.string().min(1).optional(),
    /** Key id registered at the provider (the JWK's own `kid` when absent). */
    kid: z.string().min(1).optional(),
    alg: z.enum(['RS384', 'ES384']).default('RS384'),
    scopes: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).transform((s) => (Array.isArray(s) ? s.join(' ') : s)),
    /** Skips discovery when the provider's smart-configuration is not published. */
    tokenEndpoint: z.url().optional(),
  })
  .refine((c) => (c.privateKey === undefined) !== (c.privateKeyFile === undefined), { message: 'set exactly one of privateKey and privateKeyFile' });

export type CredentialConfig = z.infer<typeof CredentialSchema>;

export const NetworkPolicySchema = z.object({
  /** Plain http to non-loopback hosts (never in production). */
  allowHttp: z.boolean().default(false),
  /** Loopback and private-network hosts (tests, a provider on the same private network). */
  allowPrivateNetwork: z.boolean().default(false),
  /** Per-request timeout of every outbound HTTP call. */
  timeoutMs: z.number().int().min(100).max(300_000).default(20_000),
});
export type NetworkPolicy = z.infer<typeof NetworkPolicySchema>;

export const OutboundConfigSchema = z.object({
  /** The plan's Organization: owner of delivery-failed Tasks when the message names none. */
  planOrganization: reference('Organization').optional(),
  worker: z
    .object({
      pollMs: z.number().int().min(10).default(1000),
      batch: z.number().int().min(1).max(200).default(20),
      leaseMs: z.number().int().min(100).default(120_000),
      maxAttempts: z.number().int().min(1).max(100).default(12),
      backoff: z
        .object({ baseMs: z.number().int().min(1).default(2000), maxMs: z.number().int().min(1).default(30 * 60_000) })
        .prefault({}),
    })
    .prefault({}),
  network: NetworkPolicySchema.prefault({}),
  credentials: z.array(CredentialSchema).default([]),
  subscriptions: z
    .object({
      /** Attempts at the handshake before the Subscription goes to status error. */
      handshakeAttempts: z.number().int().min(1).default(3),
      /** How often the heartbeat scheduler looks for heartbeats that are due. */
      heartbeatCheckMs: z.number().int().min(50).default(15_000),
      /** Smallest heartbeat period a client may ask for. */
      minHeartbeatSeconds: z.number().int().min(1).default(60),
      maxFilters: z.number().int().min(1).default(20),
      /**
       * Subscriptions one owner (client and user) may have that are not off. Each costs work in every
       * case write; the same for every owner, plan administration included (an installation whose
       * integrations need more raises it).
       */
      maxPerOwner: z.number().int().min(1).default(10),
      /**
       * What each Subscription's event log keeps for `$events`: its newest `events` events, none older than
       * `days`. An older event is answered as no longer available.
       */
      eventRetention: z
        .object({ events: z.number().int().min(1).max(100_000).default(1000), days: z.number().positive().max(3650).default(30) })
        .prefault({}),
    })
    .prefault({}),
  cdex: z
    .object({
      /** How often an open information request is polled at the provider. */
      pollIntervalMs: z.number().int().min(10).default(15 * 60_000),
      /** Stop polling (dead letter) this long after the request when no deadline is given. */
      defaultDeadlineMs: z.number().int().min(1000).default(30 * 24 * 3600_000),
      /** Most resources copied back from one completed request. */
      maxOutputs: z.number().int().min(1).default(100),
    })
    .prefault({}),
});

export type OutboundConfig = z.infer<typeof OutboundConfigSchema>;
export type OutboundConfigInput = z.input<typeof OutboundConfigSchema>;

/** Reads and validates the configuration; the error lists the paths that are wrong, never key material. */
export function loadOutboundConfig(source: string | OutboundConfigInput | undefined): OutboundConfig {
  let raw: unknown = source ?? {};
  if (typeof source === 'string') {
    try {
      raw = JSON.parse(readFileSync(source, 'utf8'));
    } catch (err) {
      throw new Error(`Outbound configuration ${source} could not be read: ${err instanceof SyntaxError ? 'invalid JSON' : (err as { code?: string }).code ?? 'error'}`);
    }
  }
  const parsed = OutboundConfigSchema.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    throw new Error(`Invalid outbound configuration: ${problems}`);
  }
  return parsed.data;
}
