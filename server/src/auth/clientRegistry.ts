import { randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import type { FhirStore } from '../storage/FhirStore.js';
import { JwkSchema } from './clientJwks.js';
import { jwksUriProblem, redirectUriProblem } from './clientUrls.js';
import { APP_SCOPE } from './demoClients.js';
import { ScopeSet } from './smartScopes.js';

/** A URL field checked by `problem` (a message when the URL is refused). */
const checkedUrl = (problem: (url: string) => string | undefined) =>
  z.url().superRefine((url, ctx) => {
    const message = problem(url);
    if (message) ctx.addIssue({ code: 'custom', message });
  });

const KID_REQUIRED = 'every key needs a kid: client assertions name their key (SMART Backend Services)';

/**
 * A client's own keys. An assertion names its key by kid (tokenEndpoint assertionKey), so a key without
 * one could never be used, and two keys sharing one would leave the choice to the order of the list.
 */
const RegisteredJwksSchema = z
  .object({ keys: z.array(JwkSchema.extend({ kid: z.string({ error: KID_REQUIRED }).min(1, { error: KID_REQUIRED }) })).min(1, { error: 'a jwks needs at least one key' }) })
  .superRefine(({ keys }, ctx) => {
    keys.forEach(({ kid }, i) => {
      if (keys.findIndex((k) => k.kid === kid) < i) ctx.addIssue({ code: 'custom', path: ['keys', i, 'kid'], message: `duplicate kid '${kid}': each key needs its own` });
    });
  });

/** A registered app or system (SMART App Launch client types, Backend Services). */
export const ClientSchema = z.object({
  client_id: z.string().min(3).max(200),
  client_name: z.string().optional(),
  /** public (PKCE only), confidential-symmetric (secret), confidential-asymmetric (private_key_jwt). */
  type: z.enum(['public', 'confidential-symmetric', 'confidential-asymmetric']),
  client_secret: z.string().min(16).optional(),
  redirect_uris: z.array(z.url()).default([]),
  launch_uri: z.url().optional(),
  /** Scopes the client may ever get. */
  scope: z.string().default('openid fhirUser launch launch/patient offline_access online_access patient/*.rs user/*.rs'),
  jwks: RegisteredJwksSchema.optional(),
  /** Fetched by this server: https to a public host only (checked here, for the clients file and registrations, and again before each fetch). */
  jwks_uri: checkedUrl(jwksUriProblem).optional(),
  /** Roles a backend (system) client acts with, e.g. delegated-group for an IPA's system. */
  system_roles: z.array(z.string()).default([]),
  /** Organization id a backend client acts for, e.g. the IPA whose UM system it is (R18, BSP D.IX). Set by the operator only. */
  organization: z.string().optional(),
  /** Browser origins allowed by CORS. */
  origins: z.array(z.url()).default([]),
  /** The grants the client registered (RFC 7591 §2), the only ones the token endpoint gives it; absent, those its type allows. */
  grant_types: z.array(z.string()).optional(),
});
export type Client = z.infer<typeof ClientSchema>;

/**
 * The widest scope a dynamically registered client may hold: that of the SMART app this server ships
 * (a user-facing app acting for a signed-in user, within that user's roles). Never `system/` scopes:
 * backend services are registered by the operator, in the clients file.
 */
export const REGISTERED_CLIENT_MAX_SCOPE = APP_SCOPE;

/**
 * The grants a registered client can use: never client_credentials, since registration grants no `system/`
 * scope (backend services are registered in the clients file), nor implicit or password, which SMART does not offer.
 */
const REGISTRABLE_GRANT_TYPES = ['authorization_code', 'refresh_token', 'urn:ietf:params:oauth:grant-type:token-exchange'] as const;

/**
 * RFC 7591 client metadata we accept (and `origins`, our own: browser origins besides those of the redirect URIs);
 * redirect and launch URIs must be https or http to loopback (RFC 8252 §7.3).
 */
const RegistrationSchema = ClientSchema.omit({ client_id: true, client_secret: true, type: true, system_roles: true, organization: true }).extend({
  redirect_uris: z.array(checkedUrl(redirectUriProblem)).default([]),
  launch_uri: checkedUrl(redirectUriProblem).optional(),
  token_endpoint_auth_method: z.enum(['none', 'client_secret_basic', 'client_secret_post', 'private_key_jwt']).default('none'),
  // RFC 7591 §2: authorization_code when omitted.
  grant_types: z
    .array(z.enum(REGISTRABLE_GRANT_TYPES, { error: `registration offers ${REGISTRABLE_GRANT_TYPES.join(', ')}; backend services are registered in the clients file` }))
    .min(1)
    .default(['authorization_code']),
  response_types: z.array(z.literal('code', { error: 'the only response type is code' })).optional(),
});
type RegistrationRequest = z.infer<typeof RegistrationSchema>;

/** RFC 7591 §3.2.1: the client's registered metadata, as sent back; server-internal fields (type, system_roles) stay out. */
export interface RegisteredClient {
  client_id: string;
  client_secret?: string;
  client_id_issued_at: number;
  client_secret_expires_at?: number;
  client_name?: string;
  redirect_uris: string[];
  launch_uri?: string;
  grant_types: string[];
  response_types: string[];
  token_endpoint_auth_method: string;
  scope: string;
  jwks?: Client['jwks'];
  jwks_uri?: string;
  origins?: string[];
}

/** Clients from the config file, the demo set, and dynamic registrations (RFC 7591) kept in the store. */
export class ClientRegistry {
  private readonly configured = new Map<string, Client>();

  constructor(
    private readonly store: FhirStore,
    clients: Client[],
  ) {
    for (const c of clients) this.configured.set(c.client_id, ClientSchema.parse(c));
  }

  static fromFile(store: FhirStore, path: string | undefined, extra: Client[]): ClientRegistry {
    return new ClientRegistry(store, [...extra, ...(path ? clientsFile(path) : [])]);
  }

  async get(clientId: string): Promise<Client | undefined> {
    // Ids come from forms, Basic headers and assertion claims: nothing unprintable or huge reaches storage.
    if (!clientId || clientId.length > 256 || /[\u0000-\u001f]/.test(clientId)) return undefined;
    const configured = this.configured.get(clientId);
    if (configured) return configured;
    const stored = await this.store.getEphemeral(`client:${clientId}`);
    const parsed = ClientSchema.safeParse(stored);
    return parsed.success ? parsed.data : undefined;
  }

  /** A registered client's origin (its `origins`, or those of its redirect URIs): CORS for the token endpoint and the API. */
  async isAllowedOrigin(origin: string): Promise<boolean> {
    for (const c of this.configured.values()) if (originsOf(c).includes(origin)) return true;
    if (origin.length > 256) return false;
    return (await this.store.getEphemeral(`origin:${origin}`)) !== undefined;
  }

  all(): Client[] {
    return [...this.configured.values()];
  }

  /** RFC 7591 dynamic registration: scopes capped to REGISTERED_CLIENT_MAX_SCOPE (§3.2.1 lets the server replace them). */
  async register(body: unknown): Promise<RegisteredClient> {
    const req = RegistrationSchema.parse(body);
    const type = req.token_endpoint_auth_method === 'private_key_jwt' ? 'confidential-asymmetric' : req.token_endpoint_auth_method === 'none' ? 'public' : 'confidential-symmetric';
    if (type === 'confidential-asymmetric' && !req.jwks && !req.jwks_uri) throw metadataError(body, 'jwks', 'private_key_jwt needs jwks or jwks_uri');
    if (type !== 'confidential-asymmetric' && !req.redirect_uris.length) throw metadataError(body, 'redirect_uris', 'redirect_uris is required');
    const scope = ScopeSet.parse(REGISTERED_CLIENT_MAX_SCOPE).narrow(ScopeSet.parse(req.scope)).toString();
    if (!scope) throw metadataError(body, 'scope', `none of the requested scopes may be registered (at most: ${REGISTERED_CLIENT_MAX_SCOPE})`);
    // offline_access and online_access ask for a refresh token, which a client that did not register the grant never uses.
    const refreshes = req.grant_types.includes('refresh_token');
    const lastingScope = refreshes ? scope : scope.split(' ').filter((s) => s !== 'offline_access' && s !== 'online_access').join(' ');
    const client: Client = {
      ...req,
      scope: lastingScope,
      type,
      client_id: `dyn-${randomBytes(12).toString('hex')}`,
      client_secret: type === 'confidential-symmetric' ? randomBytes(32).toString('base64url') : undefined,
      system_roles: [],
    };
    const expiresAt = new Date(Date.now() + 10 * 365 * 86_400_000);
    await this.store.putEphemeral(`client:${client.client_id}`, client, expiresAt);
    for (const origin of originsOf(client)) await this.store.putEphemeral(`origin:${origin}`, client.client_id, expiresAt);
    return registeredClient(client, req);
  }
}

function registeredClient(client: Client, req: RegistrationRequest): RegisteredClient {
  return {
    client_id: client.client_id,
    client_id_issued_at: Math.floor(Date.now() / 1000),
    // RFC 7591 §3.2.1: client_secret_expires_at is required with a secret; 0 says it does not expire.
    ...(client.client_secret ? { client_secret: client.client_secret, client_secret_expires_at: 0 } : {}),
    client_name: client.client_name,
    redirect_uris: client.redirect_uris,
    launch_uri: client.launch_uri,
    grant_types: req.grant_types,
    response_types: req.grant_types.includes('authorization_code') ? ['code'] : [],
    token_endpoint_auth_method: req.token_endpoint_auth_method,
    scope: client.scope,
    jwks: client.jwks,
    jwks_uri: client.jwks_uri,
    origins: client.origins.length ? client.origins : undefined,
  };
}

/** The operator's clients file, validated at start-up: the error names the file and each wrong field. */
function clientsFile(path: string): Client[] {
  const parsed = z.array(ClientSchema).safeParse(JSON.parse(readFileSync(path, 'utf8')));
  if (parsed.success) return parsed.data;
  throw new Error(`Invalid clients file ${path}: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
}

const originsOf = (c: Client): string[] => [...new Set([...c.origins, ...c.redirect_uris.map((u) => new URL(u).origin)])];

const metadataError = (input: unknown, field: string, message: string) => new z.ZodError([{ code: 'custom', path: [field], message, input }]);

export function secretMatches(client: Client, secret: string | undefined): boolean {
  if (!client.client_secret || !secret) return false;
  const a = Buffer.from(client.client_secret);
  const b = Buffer.from(secret);
  return a.length === b.length && timingSafeEqual(a, b);
}
