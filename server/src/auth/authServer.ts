import express, { type Request, type Response } from 'express';
import { z } from 'zod';
import type { SecurityUrls } from '../fhir/capability.js';
import type { AuditSink } from '../fhir/context.js';
import type { AccessContext } from '../fhir/request.js';
import type { FhirStore } from '../storage/FhirStore.js';
import { absoluteFhirUser, accessContextOf, bearerTokenRequired, invalidToken, type TokenIssuer, verifyAccessToken } from './accessTokens.js';
import { authorizeHandler } from './authorizeEndpoint.js';
import { type Client, ClientRegistry } from './clientRegistry.js';
import { insufficientScope, invalidBearerToken, invalidClient, invalidRequest, OAuthError } from './oauthErrors.js';
import { FhirError } from '../fhir/outcomes.js';
import { createAccessPolicy } from './policy.js';
import { sandboxRouter } from './sandboxEhr.js';
import type { SigningKey } from './signingKeys.js';
import type { ResourceScope } from './smartScopes.js';
import { authenticateClient, authenticationMethods, type Form, formOf, grantExpired, requireForm, severalMethods, tokenHandler, type TrustedIssuer } from './tokenEndpoint.js';
import { hash } from './authorizeEndpoint.js';
import { createJwksCache } from './clientJwks.js';
import { rateLimit } from './rateLimit.js';
import { isPlanStaff, staffOrganizationsOf } from '../workflow/planStaff.js';

export interface AuthServerConfig {
  issuer: string;
  fhirBase: string;
  key: SigningKey;
  demoMode: boolean;
  sandboxEnabled: boolean;
  clients: Client[];
  clientsFile?: string;
  trustedIssuers: TrustedIssuer[];
  accessTokenSeconds: number;
  tokenRequestsPerMinute: number;
  isCompartmentType: (type: string) => boolean;
  /** Called once an authorization grant is revoked (its Subscriptions end with it). */
  onGrantRevoked?: (grantId: string) => Promise<void>;
  /** Whether reads and searches of the type can be held to a v2 scope's query (`guard.isRestrictionQuery`); none when unset. */
  isRestrictionQuery?: (resourceType: string, query: [string, string][]) => boolean;
}

/**
 * No encounter context and no styling: this server has no Encounter resources, and no EHR style sheet to offer.
 * Resource scopes: v2 `rs` and `cruds`, v1 `read` and `write`, in each context (smartScopes.ts parses them all alike).
 */
export const SCOPES_SUPPORTED = [
  'openid', 'fhirUser', 'launch', 'launch/patient', 'offline_access', 'online_access',
  ...['patient', 'user', 'system'].flatMap((context) => ['rs', 'cruds', 'read', 'write'].map((permissions) => `${context}/*.${permissions}`)),
];

const CAPABILITIES = [
  'launch-ehr', 'launch-standalone', 'client-public', 'client-confidential-symmetric', 'client-confidential-asymmetric',
  'context-ehr-patient', 'context-standalone-patient', 'context-banner',
  'permission-patient', 'permission-user', 'permission-offline', 'permission-online', 'permission-v1', 'permission-v2',
  'sso-openid-connect', 'authorize-post',
];

interface VerifiedToken {
  context: AccessContext;
  exp: number;
  jti: string;
  gid?: string;
  /** When `context.staffOf` was read from the directory. */
  staffReadAt?: number;
}

const STAFF_PLANS_MS = 30_000;

/** The SMART authorization server: discovery, authorize, token, introspection, revocation, registration, sandbox. */
export function createAuthServer(store: FhirStore, config: AuthServerConfig, audit: AuditSink) {
  const clients = ClientRegistry.fromFile(store, config.clientsFile, config.clients);
  const tokens: TokenIssuer = { issuer: config.issuer, fhirBase: config.fhirBase, key: config.key, accessTokenSeconds: config.accessTokenSeconds };
  const urls = {
    authorize: `${config.issuer}/auth/authorize`,
    token: `${config.issuer}/auth/token`,
    introspect: `${config.issuer}/auth/introspect`,
    revoke: `${config.issuer}/auth/revoke`,
    register: `${config.issuer}/auth/register`,
    jwks: `${config.issuer}/.well-known/jwks.json`,
  };
  const refreshSeconds = { offline: 30 * 86_400, online: 86_400 };
  const revokedCache = new Map<string, number>();

  const isGrantRevoked = async (grantId: string) => (await store.getEphemeral(`revoked-grant:${grantId}`)) !== undefined;
  /** Revoked, or every token of it expired (tokenEndpoint.ts recordGrantEnd): what was authorized under it ends too. */
  const hasGrantEnded = async (grantId: string) => (await isGrantRevoked(grantId)) || (await grantExpired(store, grantId));
  /** Every token of an authorization grant: its access tokens (checked by `isRevoked`) and its refresh token (`refresh`). */
  async function revokeGrant(grantId: string): Promise<void> {
    await store.putEphemeral(`revoked-grant:${grantId}`, true, new Date(Date.now() + (refreshSeconds.offline + 86_400) * 1000));
    revokedCache.clear();
    await config.onGrantRevoked?.(grantId);
  }
  const restrictable = (scope: ResourceScope) => config.isRestrictionQuery?.(scope.resourceType, scope.query) ?? false;
  const tokenDeps = { store, clients, tokens, restrictable, tokenUrl: urls.token, trustedIssuers: config.trustedIssuers, refreshSeconds, jwks: createJwksCache(), revokeGrant, isGrantRevoked };

  async function isRevoked(jti: string, grantId: string | undefined): Promise<boolean> {
    const checked = revokedCache.get(jti);
    // A "not revoked" answer is reused for 10 s per process; revocation reaches other processes within that time.
    if (checked !== undefined && Date.now() - checked < 10_000) return false;
    const revoked = (await store.getEphemeral(`revoked:${jti}`)) !== undefined || (grantId !== undefined && (await isGrantRevoked(grantId)));
    if (!revoked) {
      revokedCache.set(jti, Date.now());
      if (revokedCache.size > 50_000) revokedCache.delete(revokedCache.keys().next().value as string);
    }
    return revoked;
  }

  // Tokens already verified (signature, issuer, audience) by this process; expiry is checked on every use.
  const verified = new Map<string, VerifiedToken>();

  /** For the HTTP layer: Bearer token → AccessContext (401 on any flaw), undefined when there is none. */
  async function authenticate(authorization: string | undefined): Promise<AccessContext | undefined> {
    if (!authorization) return undefined;
    // RFC 7235: the scheme is case-insensitive. RFC 6750 §3.1: a request with no Bearer token (Basic, say) gets no error code.
    if (!/^Bearer(\s|$)/i.test(authorization.trim())) throw bearerTokenRequired(config.fhirBase);
    const m = /^Bearer\s+([A-Za-z0-9\-_.]+)$/i.exec(authorization.trim());
    if (!m) throw invalidToken('expected a Bearer token');
    let entry = verified.get(m[1]);
    if (entry && entry.exp * 1000 <= Date.now()) {
      verified.delete(m[1]);
      entry = undefined;
    }
    if (!entry) {
      const claims = verifyAccessToken(tokens, m[1]);
      entry = { context: accessContextOf(claims), exp: claims.exp, jti: claims.jti, gid: claims.gid };
      verified.set(m[1], entry);
      if (verified.size > 10_000) verified.delete(verified.keys().next().value as string);
    }
    if (await isRevoked(entry.jti, entry.gid)) throw invalidToken('token revoked');
    return withStaffPlans(entry);
  }

  /** The context with the plans its user is staff of, read again once it is STAFF_PLANS_MS old: a role withdrawn takes effect within that time. */
  async function withStaffPlans(entry: VerifiedToken): Promise<AccessContext> {
    if (!isPlanStaff(entry.context)) return entry.context;
    if (entry.staffReadAt === undefined || Date.now() - entry.staffReadAt > STAFF_PLANS_MS) {
      entry.context = { ...entry.context, staffOf: await staffOrganizationsOf(store, entry.context) };
      entry.staffReadAt = Date.now();
    }
    return entry.context;
  }

  const router = express.Router();
  router.use('/auth', auditOAuthOutcome(audit));
  // One parse for every OAuth endpoint (forms; JSON for registration), then one check of what was sent.
  router.use('/auth', express.urlencoded({ extended: false, limit: '64kb' }), express.json({ limit: '64kb' }), refuseControlCharacters);
  router.get('/fhir/.well-known/smart-configuration', (_req, res) => res.json(smartConfiguration(config, urls)));
  router.get('/.well-known/smart-configuration', (_req, res) => res.json(smartConfiguration(config, urls)));
  router.get('/.well-known/openid-configuration', (_req, res) =>
    res.json({
      issuer: config.issuer,
      authorization_endpoint: urls.authorize,
      token_endpoint: urls.token,
      jwks_uri: urls.jwks,
      registration_endpoint: urls.register,
      response_types_supported: ['code'],
      subject_types_supported: ['public'],
      id_token_signing_alg_values_supported: ['RS256'],
      scopes_supported: ['openid', 'fhirUser'],
      claims_supported: ['sub', 'iss', 'aud', 'exp', 'iat', 'fhirUser', 'nonce'],
      token_endpoint_auth_methods_supported: ['none', 'client_secret_basic', 'client_secret_post', 'private_key_jwt'],
      code_challenge_methods_supported: ['S256'],
    }),
  );
  router.get('/.well-known/jwks.json', (_req, res) => res.json({ keys: [config.key.publicJwk] }));
  const authorize = authorizeHandler({ store, clients, fhirBase: config.fhirBase, demoMode: config.demoMode, restrictable });
  router.get('/auth/authorize', authorize);
  router.post('/auth/authorize', authorize);
  router.post('/auth/token', rateLimit(config.tokenRequestsPerMinute), tokenHandler(tokenDeps));
  router.post('/auth/introspect', async (req, res) => {
    requireForm(req);
    const form = formOf(req);
    if (!form.token) throw invalidRequest('token is required');
    const mayLearnOf = await introspectionCaller(req, form);
    res.setHeader('Cache-Control', 'no-store');
    res.json(await introspect(form.token, mayLearnOf));
  });
  router.post('/auth/revoke', async (req, res) => {
    requireForm(req);
    const client = await authenticateCaller(req);
    const token = formOf(req).token ?? '';
    const refresh = (await store.getEphemeral(`refresh:${hash(token)}`)) as { clientId: string; grantId?: string } | undefined;
    if (refresh && refresh.clientId === client.client_id) {
      await store.takeEphemeral(`refresh:${hash(token)}`);
      // RFC 7009 §2.1: revoking a refresh token also invalidates the access tokens of the same grant.
      if (refresh.grantId) await revokeGrant(refresh.grantId);
    }
    try {
      const claims = verifyAccessToken(tokens, token);
      if (claims.client_id === client.client_id) {
        await store.putEphemeral(`revoked:${claims.jti}`, true, new Date(claims.exp * 1000 + 60_000));
        revokedCache.delete(claims.jti);
      }
    } catch {
      /* RFC 7009: an invalid token is not an error */
    }
    res.status(200).end();
  });
  router.post('/auth/register', async (req, res) => {
    if (!config.demoMode) throw new OAuthError('access_denied', 'Dynamic registration is open in demo mode only; register clients in the clients file', 403);
    try {
      res.setHeader('Cache-Control', 'no-store');
      res.status(201).json(await clients.register(req.body));
    } catch (err) {
      if (err instanceof z.ZodError) throw registrationError(err);
      throw err;
    }
  });
  for (const [path, allow] of Object.entries(OAUTH_ENDPOINT_METHODS)) router.all(path, methodNotAllowed(allow));
  router.use('/auth', (_req, _res, next) => next(new OAuthError('invalid_request', 'No OAuth endpoint at this path', 404)));
  router.use('/auth/register', unreadableRegistration);
  router.use('/auth', oauthErrors);
  if (config.sandboxEnabled) router.use(sandboxRouter({ store, clients, fhirBase: config.fhirBase }));

  /**
   * Whose tokens the caller may learn of (RFC 7662 §2.1; §4, against token scanning): a resource server
   * authorized by a Bearer token, any client's; a confidential client authenticating itself, its own only.
   */
  async function introspectionCaller(req: Request, form: Form): Promise<(clientId: string) => boolean> {
    const authorization = req.headers.authorization ?? '';
    if (/^Bearer\s/i.test(authorization)) {
      const methods = authenticationMethods(req, form);
      if (methods.length) throw severalMethods(['bearer token', ...methods]);
      await authorizeResourceServer(authorization);
      return () => true;
    }
    const caller = await authenticateClient(tokenDeps, req, form);
    if (caller.type === 'public') throw invalidClient('Introspection needs an authenticated confidential client');
    return (clientId) => clientId === caller.client_id;
  }

  /**
   * SMART App Launch 2 (token introspection): a resource server may call with a Bearer token. Only a backend
   * service's token qualifies (system/ scopes, acting for no user or patient, of a confidential client):
   * such clients are registered by the operator (registration never grants system/ scopes) and may read
   * every record already, while a user-facing app could use introspection to learn of other apps' tokens.
   */
  async function authorizeResourceServer(authorization: string): Promise<void> {
    let context: AccessContext | undefined;
    try {
      context = await authenticate(authorization);
    } catch (err) {
      if (err instanceof FhirError && err.status === 401) throw invalidBearerToken(err.message);
      throw err;
    }
    const client = context && (await clients.get(context.clientId));
    const backend = context?.kind === 'system' && !context.fhirUser && !context.patient && client !== undefined && client.type !== 'public';
    if (!backend) throw insufficientScope("Only a backend service's token (system scopes, confidential client) may introspect other clients' tokens");
  }

  /** RFC 7662 §2.2: a token is active for the caller only if the caller may learn of its client's tokens. */
  async function introspect(token: string, mayLearnOf: (clientId: string) => boolean): Promise<Record<string, unknown>> {
    try {
      const claims = verifyAccessToken(tokens, token);
      if (!mayLearnOf(claims.client_id) || (await isRevoked(claims.jti, claims.gid))) return { active: false };
      return { active: true, scope: claims.scope, client_id: claims.client_id, sub: claims.sub, exp: claims.exp, iat: claims.iat, iss: claims.iss, aud: claims.aud, patient: claims.patient, fhirUser: absoluteFhirUser(tokens.fhirBase, claims.fhirUser), token_type: 'Bearer' };
    } catch {
      const grant = (await store.getEphemeral(`refresh:${hash(token)}`)) as { clientId?: string; grantId?: string } | undefined;
      const active = grant?.clientId !== undefined && mayLearnOf(grant.clientId) && !(grant.grantId && (await isGrantRevoked(grant.grantId)));
      return active ? { active: true, token_type: 'refresh_token', client_id: grant.clientId } : { active: false };
    }
  }

  async function authenticateCaller(req: Request): Promise<Client> {
    const f = formOf(req);
    if (!f.token) throw invalidRequest('token is required');
    return authenticateClient(tokenDeps, req, f);
  }

  const policy = createAccessPolicy(config.isCompartmentType);
  const security: SecurityUrls = { authorize: urls.authorize, token: urls.token, revoke: urls.revoke, introspect: urls.introspect, register: urls.register };
  return { router, authenticate, policy, security, clients, tokens, hasGrantEnded, allowedOrigin: (origin: string) => clients.isAllowedOrigin(origin) };
}

function smartConfiguration(config: AuthServerConfig, urls: Record<string, string>) {
  return {
    issuer: config.issuer,
    jwks_uri: urls.jwks,
    authorization_endpoint: urls.authorize,
    token_endpoint: urls.token,
    introspection_endpoint: urls.introspect,
    revocation_endpoint: urls.revoke,
    registration_endpoint: urls.register,
    // Token exchange only where an EHR is trusted to exchange its tokens (TRUSTED_ISSUERS_FILE): otherwise every such request fails.
    grant_types_supported: ['authorization_code', 'refresh_token', 'client_credentials', ...(config.trustedIssuers.length ? ['urn:ietf:params:oauth:grant-type:token-exchange'] : [])],
    token_endpoint_auth_methods_supported: ['none', 'client_secret_basic', 'client_secret_post', 'private_key_jwt'],
    token_endpoint_auth_signing_alg_values_supported: ['RS384', 'ES384'],
    scopes_supported: SCOPES_SUPPORTED,
    response_types_supported: ['code'],
    code_challenge_methods_supported: ['S256'],
    capabilities: CAPABILITIES,
  };
}

/**
 * Every answer of the OAuth endpoints leaves a Login AuditEvent (success or failure, with the client),
 * except the authorize endpoint's own login and consent pages. An error sent back as a redirect is a failure.
 */
function auditOAuthOutcome(audit: AuditSink) {
  return (req: Request, res: Response, next: () => void): void => {
    if (req.method === 'OPTIONS') return next(); // a CORS preflight, not an attempt
    const endpoint = req.path.replace(/^\//, '').split('/')[0] || 'auth';
    res.on('finish', () => {
      const redirected = res.statusCode >= 300 && res.statusCode < 400;
      if (endpoint === 'authorize' && !redirected && res.statusCode < 400) return;
      const location = res.getHeader('location');
      const failed = redirected && typeof location === 'string' && /[?&]error=/.test(location);
      void audit.record({ interaction: 'login', operation: endpoint, status: res.statusCode, clientId: clientIdOf(req), failed }); // answered already
    });
    next();
  };
}

/** OAuth parameters are printable (RFC 6749 Appendix A); control characters (NUL above all) are refused. */
function refuseControlCharacters(req: Request, _res: Response, next: (err?: unknown) => void): void {
  const values = [...Object.values(req.query as Record<string, unknown>), ...Object.values((req.body ?? {}) as Record<string, unknown>)];
  const hasControl = (v: unknown): boolean => (typeof v === 'string' ? /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/.test(v) : Array.isArray(v) ? v.some(hasControl) : false);
  next(values.some(hasControl) ? invalidRequest('Parameters may not contain control characters') : undefined);
}

/** What each OAuth endpoint answers to; Express answers HEAD with GET. */
const OAUTH_ENDPOINT_METHODS: Record<string, string> = {
  '/auth/authorize': 'GET, HEAD, POST',
  '/auth/token': 'POST',
  '/auth/introspect': 'POST',
  '/auth/revoke': 'POST',
  '/auth/register': 'POST',
};

/** RFC 9110 §15.5.6: 405 with Allow; the body an OAuth error, as every answer of these endpoints. */
function methodNotAllowed(allow: string) {
  return (req: Request, res: Response): void => {
    res.setHeader('Allow', allow);
    new OAuthError('invalid_request', `${req.method} is not allowed here; use ${allow}`, 405).render(res);
  };
}

/** RFC 7591 §3.2.2 has no invalid_request: a registration body that is not JSON is invalid client metadata. */
function unreadableRegistration(err: unknown, _req: Request, _res: Response, next: (err?: unknown) => void): void {
  if ((err as { type?: string } | undefined)?.type === 'entity.parse.failed') return next(new OAuthError('invalid_client_metadata', 'The registration body is not valid JSON'));
  if (err instanceof OAuthError && err.error === 'invalid_request' && err.status === 400) return next(new OAuthError('invalid_client_metadata', err.description));
  next(err);
}

/**
 * Whatever goes wrong on an OAuth endpoint answers as OAuth (RFC 6749 5.2): JSON `{ error }`,
 * never an HTML error page (body-parser limits, encodings, storage refusals).
 */
function oauthErrors(err: unknown, _req: Request, res: Response, _next: (err?: unknown) => void): void {
  const e = err as { type?: string; status?: number };
  if (err instanceof OAuthError) return err.render(res);
  if (err instanceof FhirError) {
    const description = err.outcome.issue?.[0]?.diagnostics ?? 'The request was refused';
    return new OAuthError(err.status === 503 ? 'temporarily_unavailable' : err.status < 500 ? 'invalid_request' : 'server_error', description, err.status).render(res);
  }
  if (e?.type === 'entity.too.large') return new OAuthError('invalid_request', 'The request body is too large', 413).render(res);
  if (e?.type === 'charset.unsupported' || e?.type === 'encoding.unsupported') return new OAuthError('invalid_request', 'Unsupported body encoding', 415).render(res);
  if (typeof e?.status === 'number' && e.status >= 400 && e.status < 500) return new OAuthError('invalid_request', 'The request body could not be read', e.status).render(res);
  new OAuthError('server_error', 'Internal error', 500).render(res);
}

/** The client_id the caller named (form or query), when it looks like one; never a secret or assertion. */
function clientIdOf(req: Request): string | undefined {
  const fromBody = (req.body as Record<string, unknown> | undefined)?.client_id;
  const value = typeof fromBody === 'string' ? fromBody : typeof req.query.client_id === 'string' ? req.query.client_id : undefined;
  return value && /^[\w.:@-]{1,128}$/.test(value) ? value : undefined;
}

/** RFC 7591 §3.2.2: invalid_redirect_uri when a redirect URI is refused, invalid_client_metadata otherwise. */
function registrationError(err: z.ZodError): OAuthError {
  const description = err.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
  const redirect = err.issues.some((i) => i.path[0] === 'redirect_uris');
  return new OAuthError(redirect ? 'invalid_redirect_uri' : 'invalid_client_metadata', description);
}
