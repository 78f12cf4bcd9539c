import { createHash, createPublicKey, type JsonWebKey, randomBytes, randomUUID } from 'node:crypto';
import type { Request, Response } from 'express';
import type { Identifier } from 'fhir/r4.js';
import jwt from 'jsonwebtoken';
import { z } from 'zod';
import type { UserRole } from '../fhir/request.js';
import type { FhirStore } from '../storage/FhirStore.js';
import { type Grant, issueAccessToken, issueIdToken, type TokenIssuer } from './accessTokens.js';
import type { CodeGrant } from './authorizeEndpoint.js';
import { hash } from './authorizeEndpoint.js';
import { type Client, type ClientRegistry, secretMatches } from './clientRegistry.js';
import { type Jwk, type JwksSource, noUsableKey } from './clientJwks.js';
import { invalidClient, invalidGrant, invalidRequest, invalidScope, OAuthError, unauthorizedClient } from './oauthErrors.js';
import { parseScope, type ResourceScope, ScopeSet } from './smartScopes.js';
import { identify } from './userDirectory.js';

/** An EHR whose tokens we accept in exchange for ours (RFC 8693), verified by its JWKS. */
export const TrustedIssuerSchema = z.object({
  issuer: z.string(),
  audience: z.string(),
  jwks: z.object({ keys: z.array(z.looseObject({ kty: z.string(), kid: z.string().optional() })) }),
  /** The widest scopes an exchanged token may carry. */
  allowedScopes: z.string(),
  /** Claim holding the patient's identifier as `system|value`, matched to our Patient. */
  patientIdentifierClaim: z.string().default('patient_identifier'),
  /** Claim holding the user's NPI, matched to our Practitioner. */
  npiClaim: z.string().default('npi'),
});
export type TrustedIssuer = z.infer<typeof TrustedIssuerSchema>;

export interface TokenDeps {
  store: FhirStore;
  clients: ClientRegistry;
  tokens: TokenIssuer;
  tokenUrl: string;
  trustedIssuers: TrustedIssuer[];
  /** Which query-restricted v2 scopes may be granted (ScopeSet.narrow). */
  restrictable: (scope: ResourceScope) => boolean;
  refreshSeconds: { offline: number; online: number };
  /** Keys of clients registered with a jwks_uri (fetched with the outbound check, cached). */
  jwks: JwksSource;
  /** Revokes every token of an authorization grant (its access tokens and its refresh token). */
  revokeGrant: (grantId: string) => Promise<void>;
  isGrantRevoked: (grantId: string) => Promise<boolean>;
}

/** How long a used code is remembered, so that its replay revokes what it gave (RFC 6749 §4.1.2). */
const USED_CODE_SECONDS = 3600;

const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const KNOWN_GRANT_TYPES = ['authorization_code', 'refresh_token', 'client_credentials', TOKEN_EXCHANGE];

export type Form = Record<string, string | undefined>;

export function tokenHandler(deps: TokenDeps) {
  return async (req: Request, res: Response): Promise<void> => {
    res.setHeader('Cache-Control', 'no-store');
    res.setHeader('Pragma', 'no-cache');
    try {
      requireForm(req);
      const form = formOf(req);
      const client = await authenticateClient(deps, req, form);
      requireRegisteredGrant(client, form.grant_type);
      switch (form.grant_type) {
        case 'authorization_code':
          return void res.json(await authorizationCode(deps, client, form));
        case 'refresh_token':
          return void res.json(await refresh(deps, client, form));
        case 'client_credentials':
          return void res.json(await clientCredentials(deps, client, form));
        case TOKEN_EXCHANGE:
          return void res.json(await tokenExchange(deps, client, form));
        case undefined:
        case '':
          throw invalidRequest('grant_type is required'); // RFC 6749 §5.2: a missing parameter is invalid_request
        default:
          throw new OAuthError('unsupported_grant_type', `grant_type '${form.grant_type}' is not supported`);
      }
    } catch (err) {
      if (err instanceof OAuthError) return err.render(res);
      throw err;
    }
  };
}

export function formOf(req: Request): Form {
  const body = (req.body ?? {}) as Record<string, unknown>;
  return Object.fromEntries(Object.entries(body).map(([k, v]) => [k, typeof v === 'string' ? v : undefined]));
}

/** RFC 6749 §3.2, RFC 7662 §2.1, RFC 7009 §2.1: token, introspection and revocation requests are form-encoded; a JSON body is refused, not read. */
export function requireForm(req: Request): void {
  if (!req.is('application/x-www-form-urlencoded')) throw invalidRequest(`The request must be application/x-www-form-urlencoded`);
}

/** The client authentication methods a request uses: at most one is allowed (RFC 6749 §2.3). */
export function authenticationMethods(req: Request, form: Form): string[] {
  const used = {
    client_secret_basic: /^Basic\b/i.test(req.headers.authorization ?? ''),
    client_secret_post: form.client_secret !== undefined,
    private_key_jwt: form.client_assertion !== undefined,
  };
  return Object.entries(used).filter(([, present]) => present).map(([method]) => method);
}

export const severalMethods = (used: string[]) => invalidRequest(`A client may use only one authentication method per request (RFC 6749 §2.3); this one uses ${used.join(', ')}`);

/** client_secret_basic, client_secret_post, private_key_jwt (RS384/ES384) or a public client_id. */
export async function authenticateClient(deps: TokenDeps, req: Request, form: Form): Promise<Client> {
  const methods = authenticationMethods(req, form);
  if (methods.length > 1) throw severalMethods(methods);
  const assertion = clientAssertion(form);
  const basic = /^Basic (.+)$/i.exec(req.headers.authorization ?? '');
  if (basic) return basicClient(deps, basic[1], form);
  if (assertion) return assertedClient(deps, assertion, form);
  return formClient(deps, form);
}

/**
 * The client_assertion, when the request sends one. RFC 7521 §4.2: client_assertion_type and
 * client_assertion go together, and the type must be one we support; a lone or unknown type is
 * refused rather than ignored, so the request never falls back to a bare client_id. RFC 6749 §3.1:
 * a parameter without a value counts as omitted.
 */
function clientAssertion(form: Form): string | undefined {
  const { client_assertion: assertion, client_assertion_type: type } = form;
  if (!assertion && !type) return undefined;
  if (!assertion) throw invalidRequest('client_assertion_type was sent without a client_assertion (RFC 7521 §4.2)');
  if (type !== ASSERTION_TYPE) throw invalidRequest(`client_assertion_type must be ${ASSERTION_TYPE} (RFC 7523 §2.2)`);
  return assertion;
}

/** client_secret_basic (RFC 6749 §2.3.1): id and secret are form-encoded inside the Basic credentials. */
async function basicClient(deps: TokenDeps, credentials: string, form: Form): Promise<Client> {
  let id: string | undefined;
  let secret: string | undefined;
  try {
    [id, secret] = Buffer.from(credentials, 'base64').toString().split(':').map(decodeURIComponent);
  } catch {
    throw invalidClient('Malformed Basic credentials');
  }
  // RFC 6749 §5.2: a request naming two clients is malformed (invalid_request), whatever the secret.
  if (form.client_id && form.client_id !== id) throw invalidRequest('client_id names another client than the Basic credentials');
  const client = await deps.clients.get(id ?? '');
  if (!client || !secretMatches(client, secret)) throw invalidClient('Client authentication failed');
  return client;
}

async function assertedClient(deps: TokenDeps, assertion: string, form: Form): Promise<Client> {
  const client = await verifyAssertion(deps, assertion);
  // RFC 7521 §4.2: a client_id beside the assertion must name the same client.
  if (form.client_id && form.client_id !== client.client_id) throw invalidClient('client_id names another client than the client_assertion');
  return client;
}

/** client_secret_post, or a public client naming itself. */
async function formClient(deps: TokenDeps, form: Form): Promise<Client> {
  const client = await deps.clients.get(form.client_id ?? '');
  if (!client) throw invalidClient('Unknown client');
  if (client.type === 'confidential-symmetric' && !secretMatches(client, form.client_secret)) throw invalidClient('Client authentication failed');
  if (client.type === 'confidential-asymmetric') throw invalidClient('This client must authenticate with a private_key_jwt client assertion');
  return client;
}

const AssertionClaims = z.object({ iss: z.string(), sub: z.string(), aud: z.union([z.string(), z.array(z.string())]), exp: z.number(), jti: z.string().min(1) });

/** SMART Backend Services: a JWT signed with the client's registered key, short-lived and used once. */
async function verifyAssertion(deps: TokenDeps, assertion: string): Promise<Client> {
  const decoded = jwt.decode(assertion, { complete: true });
  if (!decoded || typeof decoded.payload !== 'object') throw invalidClient('client_assertion is not a JWT');
  const header = decoded.header;
  if (header.alg !== 'RS384' && header.alg !== 'ES384') throw invalidClient('client_assertion must be signed with RS384 or ES384');
  // SMART Backend Services: the header has alg, kid (required) and typ, fixed "JWT".
  if (typeof header.kid !== 'string' || !header.kid) throw invalidClient('client_assertion must name its key (kid)');
  // A typ is a media type name, compared without regard to case (RFC 7515 §4.1.9).
  if (typeof header.typ !== 'string' || header.typ.toUpperCase() !== 'JWT') throw invalidClient('client_assertion typ must be JWT');
  // SMART Backend Services: a jku SHALL match the registered JWKS URL; keys are never fetched from one, so none is taken.
  if (header.jku !== undefined) throw invalidClient('client_assertion may not name a jku: the registered keys are used');
  const iss = (decoded.payload as { iss?: string }).iss ?? '';
  const client = await deps.clients.get(iss);
  if (!client || client.type !== 'confidential-asymmetric') throw invalidClient('Unknown client or client without registered keys');
  const jwk = await assertionKey(deps, client, header.kid, header.alg);
  let claims: z.infer<typeof AssertionClaims>;
  try {
    const publicKey = createPublicKey({ key: jwk as never, format: 'jwk' });
    claims = AssertionClaims.parse(jwt.verify(assertion, publicKey, { algorithms: [header.alg], audience: deps.tokenUrl, issuer: client.client_id, subject: client.client_id }));
  } catch (err) {
    throw invalidClient(`client_assertion rejected: ${err instanceof Error ? err.message : 'invalid'}`);
  }
  const now = Math.floor(Date.now() / 1000);
  if (claims.exp > now + 300 + 5) throw invalidClient('client_assertion exp is more than 5 minutes ahead');
  if (!(await deps.store.claimOnce(`jti:${client.client_id}:${claims.jti}`, new Date((claims.exp + 60) * 1000)))) {
    throw invalidClient('client_assertion jti was already used');
  }
  return client;
}

/** RFC 7591 §2: a client that registered its grant types uses only those (RFC 6749 §5.2 unauthorized_client). */
function requireRegisteredGrant(client: Client, grantType: string | undefined): void {
  if (!client.grant_types || !grantType || !KNOWN_GRANT_TYPES.includes(grantType) || client.grant_types.includes(grantType)) return;
  throw unauthorizedClient(`The client registered the grant types ${client.grant_types.join(', ')}; ${grantType} is not one of them`);
}

/**
 * The client's key for this assertion: from its registered JWKS, or from its jwks_uri (fetched only
 * when the URL passes the outbound check, and cached). Every failure has the same message.
 */
async function assertionKey(deps: TokenDeps, client: Client, kid: string, alg: string): Promise<Jwk> {
  const keys = client.jwks?.keys ?? (client.jwks_uri ? await deps.jwks.keys(client.jwks_uri) : []);
  const jwk = keys.find((k) => k.kid === kid && (!k.alg || k.alg === alg));
  if (!jwk) throw noUsableKey();
  return jwk;
}

async function authorizationCode(deps: TokenDeps, client: Client, form: Form) {
  if (!form.code) throw invalidRequest('code is required');
  const grant = (await deps.store.takeEphemeral(`code:${hash(form.code)}`)) as CodeGrant | undefined;
  if (!grant) {
    // RFC 6749 §4.1.2: a code used twice is denied, and the tokens issued from it are revoked.
    const replayed = await deps.store.getEphemeral(`used-code:${hash(form.code)}`);
    if (typeof replayed === 'string') await deps.revokeGrant(replayed);
    throw invalidGrant('The authorization code is invalid, expired or already used');
  }
  const grantId = randomUUID();
  await deps.store.putEphemeral(`used-code:${hash(form.code)}`, grantId, new Date(Date.now() + USED_CODE_SECONDS * 1000));
  if (grant.clientId !== client.client_id) throw invalidGrant('The code was issued to another client');
  if (form.redirect_uri !== grant.redirectUri) throw invalidGrant('redirect_uri does not match the authorization request');
  const verifier = form.code_verifier ?? '';
  if (!/^[A-Za-z0-9\-._~]{43,128}$/.test(verifier) || createHash('sha256').update(verifier).digest('base64url') !== grant.codeChallenge) {
    throw invalidGrant('PKCE code_verifier does not match the code_challenge');
  }
  return tokenResponse(deps, { clientId: grant.clientId, scope: grant.scope, fhirUser: grant.fhirUser, patient: grant.patient, encounter: grant.encounter, roles: grant.roles, grantId }, grant.nonce);
}

/**
 * The access token carries `grant`; a refresh token, if the authorization allows one, carries `authorized`:
 * a refresh that narrows the access token leaves the refresh token's scope as it was (RFC 6749 §6).
 */
async function tokenResponse(deps: TokenDeps, grant: Grant, nonce?: string, authorized: Grant = grant) {
  const scopes = ScopeSet.parse(grant.scope);
  const access = issueAccessToken(deps.tokens, grant);
  const lasting = ScopeSet.parse(authorized.scope);
  const offline = lasting.has('offline_access');
  const refresh = offline || lasting.has('online_access') ? randomBytes(32).toString('base64url') : undefined;
  if (refresh) {
    const seconds = offline ? deps.refreshSeconds.offline : deps.refreshSeconds.online;
    await deps.store.putEphemeral(`refresh:${hash(refresh)}`, authorized, new Date(Date.now() + seconds * 1000));
  }
  if (authorized.grantId && !offline) await recordGrantEnd(deps, authorized.grantId, Math.max(access.expiresIn, refresh ? deps.refreshSeconds.online : 0));
  return {
    access_token: access.token,
    token_type: 'Bearer',
    expires_in: access.expiresIn,
    scope: grant.scope,
    refresh_token: refresh,
    id_token: scopes.has('openid') && grant.fhirUser ? issueIdToken(deps.tokens, grant, nonce) : undefined,
    patient: grant.patient,
    encounter: grant.encounter,
    need_patient_banner: grant.patient ? true : undefined,
  };
}

const grantEndKey = (grantId: string) => `grant-end:${grantId}`;

/**
 * When a grant without offline_access ends, as of its latest tokens (a refresh moves it): SMART's online_access refresh
 * token lasts while the user is online, and this server keeps no sign-in session, so online means within the refresh
 * token's lifetime (refreshSeconds.online) of the last refresh; a grant with no refresh token ends with its access token.
 * Remembered as long as a revocation is; an offline_access grant ends only when revoked.
 */
async function recordGrantEnd(deps: TokenDeps, grantId: string, seconds: number): Promise<void> {
  const endsAt = Date.now() + seconds * 1000;
  await deps.store.putEphemeral(grantEndKey(grantId), { endsAt }, new Date(endsAt + (deps.refreshSeconds.offline + 86_400) * 1000));
}

/** Whether a grant's tokens have all expired (recordGrantEnd); revocation is asked separately (isGrantRevoked). */
export async function grantExpired(store: FhirStore, grantId: string): Promise<boolean> {
  const recorded = (await store.getEphemeral(grantEndKey(grantId))) as { endsAt?: unknown } | undefined;
  return typeof recorded?.endsAt === 'number' && recorded.endsAt <= Date.now();
}

/**
 * Refresh with rotation: the old refresh token stops working once a new one is issued; the access token's
 * scopes can only narrow, the new refresh token's stay those authorized. A refused request leaves the refresh token as it was (RFC 6749 §6): it is taken only after
 * every check has passed, and taken atomically, so two concurrent refreshes cannot both succeed.
 */
async function refresh(deps: TokenDeps, client: Client, form: Form) {
  if (!form.refresh_token) throw invalidRequest('refresh_token is required');
  const key = `refresh:${hash(form.refresh_token)}`;
  const grant = (await deps.store.getEphemeral(key)) as Grant | undefined;
  if (!grant) throw invalidGrant('The refresh token is invalid, expired, revoked or already used');
  if (grant.clientId !== client.client_id) throw invalidGrant('The refresh token was issued to another client');
  if (grant.grantId && (await deps.isGrantRevoked(grant.grantId))) throw invalidGrant('The authorization grant was revoked');
  const scope = refreshedScope(grant.scope, form.scope, deps.restrictable);
  if (!(await deps.store.takeEphemeral(key))) throw invalidGrant('The refresh token is invalid, expired, revoked or already used');
  return tokenResponse(deps, { ...grant, scope }, undefined, grant);
}

/** The scope of a refreshed token: the granted one, or a narrower one asked for. */
function refreshedScope(granted: string, asked: string | undefined, restrictable: (scope: ResourceScope) => boolean): string {
  if (!asked) return granted;
  const have = ScopeSet.parse(granted);
  const wanted = ScopeSet.parse(asked);
  if (!wanted.scopes.every((s) => have.covers(s))) throw invalidScope('A refresh may not widen the scopes');
  // A query-restricted scope is granted only where reads and searches can be held to it, at a refresh as at the first grant.
  if (have.narrow(wanted, restrictable).scopes.length < wanted.scopes.length) throw invalidScope('A refresh may not ask for a query-restricted scope the server cannot hold to its query');
  return wanted.toString();
}

const BACKEND_TOKEN_SECONDS = 300;

async function clientCredentials(deps: TokenDeps, client: Client, form: Form) {
  if (client.type !== 'confidential-asymmetric' && client.type !== 'confidential-symmetric') throw unauthorizedClient('client_credentials needs a confidential client');
  const wanted = ScopeSet.parse(form.scope);
  if (wanted.scopes.some((s) => parseScope(s)?.context !== 'system')) throw invalidScope('Backend services may only ask for system/ scopes');
  const scopes = ScopeSet.parse(client.scope).narrow(wanted, deps.restrictable);
  if (!scopes.scopes.length) throw invalidScope('None of the requested scopes is allowed for this client');
  // SMART Backend Services: access tokens SHALL be short-lived; expires_in SHOULD NOT exceed 300.
  const issuer = { ...deps.tokens, accessTokenSeconds: Math.min(deps.tokens.accessTokenSeconds, BACKEND_TOKEN_SECONDS) };
  const access = issueAccessToken(issuer, { clientId: client.client_id, scope: scopes.toString(), roles: client.system_roles as UserRole[], organization: client.organization });
  return { access_token: access.token, token_type: 'Bearer', expires_in: access.expiresIn, scope: scopes.toString() };
}

/**
 * The trusted EHR's signature on its token: by the key the token names (`kid`), or by any of the EHR's keys when it
 * names none (RFC 7515 §4.1.4: kid is optional), so a token signed with the newer of two keys is not refused.
 */
function verifySubjectToken(token: string, trusted: TrustedIssuer): Record<string, unknown> {
  const kid = jwt.decode(token, { complete: true })?.header.kid;
  const candidates = trusted.jwks.keys.filter((k) => kid === undefined || k.kid === kid);
  let problem = 'no key of the issuer matches its kid';
  for (const jwk of candidates) {
    try {
      return jwt.verify(token, createPublicKey({ key: jwk as JsonWebKey, format: 'jwk' }), { algorithms: ['RS256', 'RS384', 'ES256', 'ES384'], issuer: trusted.issuer, audience: trusted.audience }) as Record<string, unknown>;
    } catch (err) {
      problem = err instanceof Error ? err.message : 'invalid';
    }
  }
  throw invalidGrant(`subject_token rejected: ${problem}`);
}

/**
 * RFC 8693: a trusted EHR's token (bound to the EHR's FHIR base, so never accepted as is) becomes
 * one of ours, with scopes no wider than configured and the patient matched by identifier.
 */
async function tokenExchange(deps: TokenDeps, client: Client, form: Form) {
  if (!form.subject_token) throw invalidRequest('subject_token is required');
  const issuerClaim = (jwt.decode(form.subject_token) as { iss?: string } | null)?.iss;
  const trusted = deps.trustedIssuers.find((t) => t.issuer === issuerClaim);
  if (!trusted) throw invalidGrant('The subject_token issuer is not trusted');
  const claims = verifySubjectToken(form.subject_token, trusted);
  const allowed = ScopeSet.parse(trusted.allowedScopes);
  const scopes = allowed.narrow(ScopeSet.parse(form.scope ?? trusted.allowedScopes), deps.restrictable);
  if (!scopes.scopes.length) throw invalidScope('None of the requested scopes is allowed for this issuer');
  const patient = await matchByIdentifier(deps.store, 'Patient', claims[trusted.patientIdentifierClaim]);
  const practitioner = await matchByIdentifier(deps.store, 'Practitioner', typeof claims[trusted.npiClaim] === 'string' ? `http://hl7.org/fhir/sid/us-npi|${claims[trusted.npiClaim] as string}` : undefined);
  if (claims[trusted.patientIdentifierClaim] !== undefined && !patient) throw invalidGrant('The patient of the subject_token is not known here');
  const identity = practitioner ? await identify(deps.store, `Practitioner/${practitioner}`) : undefined;
  const access = issueAccessToken(deps.tokens, { clientId: client.client_id, scope: scopes.toString(), fhirUser: identity?.fhirUser, patient, roles: identity?.roles ?? [] });
  return {
    access_token: access.token,
    issued_token_type: 'urn:ietf:params:oauth:token-type:access_token',
    token_type: 'Bearer',
    expires_in: access.expiresIn,
    scope: scopes.toString(),
    patient,
  };
}

async function matchByIdentifier(store: FhirStore, type: string, value: unknown): Promise<string | undefined> {
  if (typeof value !== 'string' || !value.includes('|')) return undefined;
  const [system, code] = value.split('|') as [Identifier['system'], string];
  const { resources } = await store.search({ resourceType: type, clauses: [{ kind: 'token', param: 'identifier', values: [`identifier|${system}|${code}`], not: false }], sort: [], count: 2, offset: 0, total: false });
  return resources.length === 1 ? resources[0].id : undefined;
}
