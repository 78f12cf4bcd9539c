import { createPublicKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import jwt from 'jsonwebtoken';
import type { AccessPolicy } from '../../server/src/fhir/context.js';
import type { AccessContext } from '../../server/src/fhir/request.js';
import { createLogger } from '../../server/src/log.js';
import { createOutbound, type Outbound, type OutboundConfigInput } from '../../server/src/outbound/index.js';
import { startServer, type RunningServer } from '../../server/src/server.js';
import type { StoreConfig } from '../../server/src/storage/connect.js';
import { pgliteConfig } from './stores.js';
import { startFhirOnlyServer, testConfig } from './testServer.js';

/**
 * A provider's FHIR server for outbound tests: our own server on its own store, behind SMART
 * Backend Services. Its token endpoint checks the client assertion the way a real authorization
 * server must (signature with the registered key, iss = sub = client_id, aud = token URL, exp at
 * most 5 minutes ahead, kid, single-use jti) and every FHIR call needs a bearer token it issued.
 * Tests can make it fail on purpose and see every request it received.
 */

export interface RegisteredClient {
  clientId: string;
  publicKey: KeyObject;
  kid: string;
  /** Scopes the client may be granted. */
  scopes: string[];
}

export interface LoggedRequest {
  method: string;
  path: string;
  status: number;
  ifNoneExist?: string;
}

export interface ProviderServer {
  server: RunningServer;
  fhirBase: string;
  tokenUrl: string;
  /** FHIR requests received (after the token check), in order. */
  requests: LoggedRequest[];
  /** Token requests: accepted and refused, with the reason for refusals. */
  tokenRequests: { ok: boolean; error?: string }[];
  register(client: RegisteredClient): void;
  /** The next `times` FHIR requests matching method and path prefix get `status` (no processing). */
  failNext(match: { method: string; pathPrefix: string }, status: number, times: number): void;
  /** Lifetime of tokens issued from now on. */
  setTokenLifetime(seconds: number): void;
  /** Forgets every issued token (the next FHIR call answers 401). */
  revokeTokens(): void;
  close(): Promise<void>;
}

const allowSystemScopes: AccessPolicy = {
  requireScope: (ctx) => {
    if (!ctx.scopes.some((s) => s.startsWith('system/'))) throw new Error('no system scope');
  },
  patientCompartment: () => undefined,
  mayAccess: () => true,
};

export async function startProviderServer(store: StoreConfig = pgliteConfig()): Promise<ProviderServer> {
  const clients = new Map<string, RegisteredClient>();
  const tokens = new Map<string, { clientId: string; scopes: string[]; expiresAt: number }>();
  const usedJti = new Set<string>();
  const requests: LoggedRequest[] = [];
  const tokenRequests: { ok: boolean; error?: string }[] = [];
  const faults: { method: string; pathPrefix: string; status: number; left: number }[] = [];
  let lifetime = 300;
  let tokenUrl = '';

  const authenticate = async (authorization: string | undefined): Promise<AccessContext | undefined> => {
    const token = /^Bearer (.+)$/.exec(authorization ?? '')?.[1];
    const grant = token ? tokens.get(token) : undefined;
    if (!grant || grant.expiresAt < Date.now()) return undefined;
    // A stand-in EHR, not a plan: it files what the plan delivers (reports, letters) whatever profile they claim,
    // where the plan server keeps its own case records for its operations (guard.ts requireCaseRecordWrite).
    return { kind: 'system', clientId: grant.clientId, scopes: grant.scopes, roles: ['plan-admin'] };
  };

  const router = express.Router();
  router.get('/fhir/.well-known/smart-configuration', (_req, res) => {
    res.json({
      token_endpoint: tokenUrl,
      token_endpoint_auth_methods_supported: ['private_key_jwt'],
      token_endpoint_auth_signing_alg_values_supported: ['RS384', 'ES384'],
      grant_types_supported: ['client_credentials'],
      capabilities: ['client-confidential-asymmetric'],
    });
  });
  router.post('/auth/token', express.urlencoded({ extended: false }), (req, res) => {
    const refuse = (status: number, error: string) => {
      tokenRequests.push({ ok: false, error });
      res.status(status).json({ error });
    };
    const body = req.body as Record<string, string | undefined>;
    if (body.grant_type !== 'client_credentials') return refuse(400, 'unsupported_grant_type');
    if (body.client_assertion_type !== 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer' || !body.client_assertion) return refuse(400, 'invalid_client');
    const decoded = jwt.decode(body.client_assertion, { complete: true });
    const claims = decoded?.payload as jwt.JwtPayload | undefined;
    const client = typeof claims?.iss === 'string' ? clients.get(claims.iss) : undefined;
    if (!decoded || !claims || !client) return refuse(401, 'invalid_client');
    if (decoded.header.kid !== client.kid) return refuse(401, 'invalid_client: unknown kid');
    try {
      jwt.verify(body.client_assertion, client.publicKey, { algorithms: ['RS384', 'ES384'], audience: tokenUrl, issuer: client.clientId, subject: client.clientId });
    } catch (err) {
      return refuse(401, `invalid_client: ${(err as Error).message}`);
    }
    const now = Math.floor(Date.now() / 1000);
    if (typeof claims.exp !== 'number' || claims.exp > now + 300) return refuse(401, 'invalid_client: exp more than 5 minutes ahead');
    if (typeof claims.jti !== 'string' || usedJti.has(claims.jti)) return refuse(401, 'invalid_client: jti replayed');
    usedJti.add(claims.jti);
    const requested = (body.scope ?? '').split(' ').filter(Boolean);
    if (!requested.length || requested.some((s) => !client.scopes.includes(s))) return refuse(400, 'invalid_scope');
    const accessToken = randomBytes(24).toString('hex');
    tokens.set(accessToken, { clientId: client.clientId, scopes: requested, expiresAt: Date.now() + lifetime * 1000 });
    tokenRequests.push({ ok: true });
    res.json({ access_token: accessToken, token_type: 'bearer', expires_in: lifetime, scope: requested.join(' ') });
  });
  router.use('/fhir', async (req, res, next) => {
    // Unauthenticated calls are answered 401 by the FHIR layer (AUTH_REQUIRED) and logged too.
    const entry: LoggedRequest = { method: req.method, path: req.path, status: 0, ifNoneExist: req.headers['if-none-exist'] as string | undefined };
    res.on('finish', () => {
      entry.status = res.statusCode;
      requests.push(entry);
    });
    const authorized = await authenticate(req.headers.authorization);
    const fault = authorized ? faults.find((f) => f.left > 0 && f.method === req.method && req.path.startsWith(f.pathPrefix)) : undefined;
    if (fault) {
      fault.left--;
      res.status(fault.status).json({ resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'transient', diagnostics: 'injected fault' }] });
      return;
    }
    next();
  });

  const config = testConfig(store, { AUTH_REQUIRED: 'true' });
  const server = await startServer(
    config,
    async (env) => {
      tokenUrl = `${env.publicUrl}/auth/token`;
      return { policy: allowSystemScopes, authenticate, routers: [router] };
    },
    createLogger('silent'),
  );
  return {
    server,
    fhirBase: server.fhirBase,
    tokenUrl,
    requests,
    tokenRequests,
    register: (client) => clients.set(client.clientId, client),
    failNext: (match, status, times) => faults.push({ ...match, status, left: times }),
    setTokenLifetime: (seconds) => {
      lifetime = seconds;
    },
    revokeTokens: () => tokens.clear(),
    close: () => server.close(),
  };
}

/** A fresh key pair for the plan's client registration. */
export function planKeys(alg: 'RS384' | 'ES384' = 'RS384'): { privatePem: string; publicKey: KeyObject } {
  const pair =
    alg === 'RS384'
      ? generateKeyPairSync('rsa', { modulusLength: 2048 })
      : generateKeyPairSync('ec', { namedCurve: 'P-384' });
  return { privatePem: pair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), publicKey: createPublicKey(pair.privateKey) };
}

export interface ReceivedNotification {
  headers: IncomingHttpHeaders;
  body: unknown;
}

export interface NotificationReceiver {
  url: string;
  received: ReceivedNotification[];
  /** Status for the n-th request (0-based); 200 by default. */
  respondWith(status: (n: number) => number): void;
  close(): Promise<void>;
}

/** A subscriber's rest-hook endpoint: records every POST and answers as told. */
export async function startNotificationReceiver(): Promise<NotificationReceiver> {
  const received: ReceivedNotification[] = [];
  let respond: (n: number) => number = () => 200;
  let count = 0;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const status = respond(count++);
      if (status < 300) {
        let body: unknown;
        try {
          body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        } catch {
          body = undefined;
        }
        received.push({ headers: req.headers, body });
      }
      res.writeHead(status, { 'content-type': 'text/plain' });
      res.end(status < 300 ? 'OK' : 'nope');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    received,
    respondWith: (fn) => {
      respond = fn;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

export interface PlanServer {
  server: RunningServer;
  outbound: Outbound;
  /** Every log line the outbound module wrote (to check nothing sensitive is logged). */
  logs: string[];
}

/**
 * The plan's server with the outbound module wired as the lead wires it: write hook on the store,
 * `$status` in the operations, worker and heartbeat scheduler in ServerParts.workers (started
 * after listen, stopped before the store closes). `workers: false` leaves the outbox unsent, as a
 * process that dies right after the write would.
 */
export async function startPlanServer(store: StoreConfig, config: OutboundConfigInput, options: { workers?: boolean } = {}): Promise<PlanServer> {
  let outbound: Outbound | undefined;
  const logs: string[] = [];
  const logger = createLogger('debug', (line) => logs.push(line));
  const server = await startFhirOnlyServer(store, async (env) => {
    outbound = await createOutbound({ store: env.store, registry: env.registry, fhirBase: env.fhirBase, config, logger });
    env.store.addWriteHook(outbound.writeHook);
    return { workers: options.workers === false ? [] : outbound.workers, operations: outbound.operations };
  });
  return { server, outbound: outbound!, logs };
}

/** Polls until `check` returns a value other than undefined/false, or fails after `timeoutMs`. */
export async function waitFor<T>(check: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 10_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/**
 * The provider's logged requests that match, once there are any. The provider logs a request when its
 * answer has gone out, which can be after its commit: a test that saw the write waits for the log too.
 */
export function untilLogged(provider: ProviderServer, matches: (request: LoggedRequest) => boolean, what: string): Promise<LoggedRequest[]> {
  return waitFor(() => {
    const logged = provider.requests.filter(matches);
    return logged.length ? logged : undefined;
  }, 10_000, what);
}
