import express, { type Request, type Response, type NextFunction } from 'express';
import type { FhirContext } from './fhir/context.js';
import { bearerChallenge } from './auth/accessTokens.js';
import { outcome } from './fhir/outcomes.js';
import { fhirRouter, type Authenticate } from './http/fhirRoutes.js';

export interface AppDeps {
  /** Access log: one line per request with method, route shape, status and time (no ids, no query). */
  logRequest?: (fields: { method: string; route: string; status: number; ms: number }) => void;
  ctx: FhirContext;
  fhirBase: string;
  maxBodyBytes: number;
  authRequired: boolean;
  authenticate?: Authenticate;
  /** Routers mounted at the root before /fhir (OAuth, sandbox, app). */
  routers?: express.Router[];
  /** Origins allowed to call from a browser (registered apps). */
  allowedOrigin?: (origin: string) => boolean | Promise<boolean>;
}

/** Builds the Express app; no listen(), so tests and main share it. */
export function createApp(deps: AppDeps): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('query parser', 'simple');
  app.use(securityHeaders);
  if (deps.logRequest) app.use(accessLog(deps.logRequest));
  app.use(cors(deps.allowedOrigin));
  for (const router of deps.routers ?? []) app.use(router);
  app.use(
    '/fhir',
    fhirRouter(deps.ctx, {
      fhirBase: deps.fhirBase,
      maxBodyBytes: deps.maxBodyBytes,
      authenticate: deps.authenticate,
      authRequired: deps.authRequired,
      wwwAuthenticate: bearerChallenge(deps.fhirBase),
    }),
  );
  app.get('/', (_req, res) => res.redirect(deps.routers?.length ? '/sandbox' : '/fhir/metadata'));
  app.get('/healthz', (_req, res) => res.json({ status: 'ok' }));
  app.use(unknownPath);
  app.use(lastErrorHandler);
  return app;
}

/** A path no router serves (the OAuth endpoints and /fhir answer their own): 404 as an OperationOutcome, never Express's HTML page. */
function unknownPath(_req: Request, res: Response): void {
  res.status(404).json(outcome('error', 'not-found', 'Nothing is served at this path; the FHIR API is at /fhir'));
}

/** The routers answer their own errors; anything else gets an OperationOutcome, never an HTML page with a stack. */
function lastErrorHandler(err: unknown, _req: Request, res: Response, _next: NextFunction): void {
  const status = (err as { status?: number })?.status;
  const clientError = typeof status === 'number' && status >= 400 && status < 500;
  res.status(clientError ? status : 500).json(outcome('error', clientError ? 'invalid' : 'exception', clientError ? 'The request could not be read' : 'Internal server error'));
}

function accessLog(log: NonNullable<AppDeps['logRequest']>) {
  return (req: Request, res: Response, next: NextFunction): void => {
    const started = process.hrtime.bigint();
    res.on('finish', () => {
      log({ method: req.method, route: routeShape(req.originalUrl.split('?')[0]), status: res.statusCode, ms: Number(process.hrtime.bigint() - started) / 1e6 });
    });
    next();
  };
}

/** `/fhir/Patient/123/_history/2` → `/fhir/Patient/:id/_history/:vid`: ids can identify people. */
export function routeShape(path: string): string {
  const parts = path.split('/');
  const fhir = parts[1] === 'fhir';
  return parts
    .map((seg, i) => {
      if (!fhir || i < 3 || seg.startsWith('$') || seg.startsWith('_')) return seg;
      return i === 3 ? ':id' : i === 5 ? ':vid' : seg;
    })
    .join('/');
}

/**
 * The app, the sandbox and the sign-in pages run no inline script, so any escaping slip in their HTML runs
 * nothing; the app talks to its FHIR server (this one, or an EHR's over https). Letters' inline styles stay.
 */
const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "connect-src 'self' https:",
  "object-src 'none'",
  "base-uri 'none'",
  "frame-ancestors 'self'",
].join('; ');

function securityHeaders(_req: Request, res: Response, next: NextFunction): void {
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('X-Frame-Options', 'SAMEORIGIN');
  res.setHeader('Referrer-Policy', 'no-referrer');
  res.setHeader('Strict-Transport-Security', 'max-age=31536000; includeSubDomains');
  res.setHeader('Cross-Origin-Resource-Policy', 'same-site');
  res.setHeader('Content-Security-Policy', CONTENT_SECURITY_POLICY);
  next();
}

/**
 * Discovery documents, open to any origin (SMART App Launch 2.x, CORS): they hold nothing private. Browser
 * OpenID Connect libraries also fetch the OpenID configuration and the keys to check an id_token.
 */
const PUBLIC_DISCOVERY = new Set(['/fhir/metadata', '/fhir/.well-known/smart-configuration', '/.well-known/smart-configuration', '/.well-known/openid-configuration', '/.well-known/jwks.json']);

/**
 * CORS: discovery for any origin (no credentials); the token endpoint and the FHIR API for registered
 * app origins only. Same-origin calls need none.
 */
function cors(allowed?: (origin: string) => boolean | Promise<boolean>) {
  return async (req: Request, res: Response, next: NextFunction): Promise<void> => {
    const origin = req.headers.origin;
    if (!origin) return next();
    if (PUBLIC_DISCOVERY.has(req.path) && (req.method === 'GET' || req.method === 'HEAD' || req.method === 'OPTIONS')) {
      res.setHeader('Access-Control-Allow-Origin', '*');
      if (req.method === 'OPTIONS') return preflight(res, 'GET, HEAD, OPTIONS');
      return next();
    }
    if (allowed && (await allowed(origin))) {
      res.setHeader('Access-Control-Allow-Origin', origin);
      res.setHeader('Vary', 'Origin');
      res.setHeader('Access-Control-Allow-Credentials', 'true');
      res.setHeader('Access-Control-Expose-Headers', 'Location, ETag, Last-Modified, Content-Location, WWW-Authenticate, Allow');
      if (req.method === 'OPTIONS') return preflight(res, 'GET, POST, PUT, PATCH, DELETE, OPTIONS');
    }
    if (isPreflight(req)) return void res.status(204).end();
    next();
  };
}

/**
 * A CORS preflight carries no token, so it never reaches the API or the OAuth endpoints: from an origin not
 * registered, 204 without Access-Control-Allow-Origin, and the browser sends nothing further.
 */
const isPreflight = (req: Request): boolean => req.method === 'OPTIONS' && req.headers['access-control-request-method'] !== undefined;

function preflight(res: Response, methods: string): void {
  res.setHeader('Access-Control-Allow-Methods', methods);
  res.setHeader('Access-Control-Allow-Headers', 'Authorization, Content-Type, If-Match, If-None-Exist, If-None-Match, If-Modified-Since, Prefer, Accept');
  res.setHeader('Access-Control-Max-Age', '600');
  res.status(204).end();
}
