import express, { type NextFunction, type Request, type Response } from 'express';
import { capabilities } from '../fhir/capability.js';
import type { FhirContext } from '../fhir/context.js';
import { badRequest, FhirError, notAcceptable, normalizeError, payloadTooLarge, unsupportedMediaType } from '../fhir/outcomes.js';
import { type AccessContext, type FhirRequest, type FhirResponse, type HttpMethod, JSON_PATCH } from '../fhir/request.js';
import { notAllowed } from '../fhir/responses.js';
import { handleRequest } from '../fhir/router.js';
import { notAcceptableReason, parseMediaType, unsupportedBodyReason } from './mediaTypes.js';

export type Authenticate = (authorization: string | undefined) => Promise<AccessContext | undefined>;

export interface FhirRouterOptions {
  fhirBase: string;
  maxBodyBytes: number;
  authenticate?: Authenticate;
  /** When true, calls without a token are refused with 401 (public: metadata and discovery). */
  authRequired: boolean;
  wwwAuthenticate: string;
}

const JSON_TYPES = ['application/fhir+json', 'application/json', JSON_PATCH];
const FORM = 'application/x-www-form-urlencoded';

/** The only code that knows Express for FHIR: Express request → FhirRequest → Express response. */
export function fhirRouter(ctx: FhirContext, options: FhirRouterOptions): express.Router {
  const router = express.Router();
  router.use(express.json({ type: JSON_TYPES, limit: options.maxBodyBytes, strict: false }));
  router.use(express.urlencoded({ extended: false, limit: options.maxBodyBytes }));
  router.use(checkFormat);
  router.get('/metadata', async (req, res) => send(res, await capabilities(toFhirRequest(req, options.fhirBase, undefined), ctx), req.method === 'HEAD'));
  router.all('/metadata', (req, _res, next) => next(notAllowed(`${req.method} is not allowed on /metadata`, ['GET', 'HEAD'])));
  router.use(async (req, res, next) => {
    try {
      checkContentType(req);
      const auth = await options.authenticate?.(req.headers.authorization);
      if (!auth && options.authRequired) {
        throw new FhirError(401, { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'login', diagnostics: 'A bearer access token is required' }] }, { 'WWW-Authenticate': options.wwwAuthenticate });
      }
      const fhirReq = toFhirRequest(req, options.fhirBase, auth);
      const response = await handleRequest(fhirReq, ctx);
      send(res, response, req.method === 'HEAD');
    } catch (err) {
      next(err);
    }
  });
  router.use(errorHandler(ctx));
  return router;
}

/** The one check of what the client asked to receive (406) and what it sent (415): see mediaTypes.ts. */
function checkFormat(req: Request, _res: Response, next: NextFunction): void {
  const formats = new URL(req.originalUrl, 'http://localhost').searchParams.getAll('_format');
  const reason = notAcceptableReason(formats, req.headers.accept);
  next(reason ? notAcceptable(reason) : undefined);
}

function checkContentType(req: Request): void {
  if (!['POST', 'PUT', 'PATCH'].includes(req.method)) return;
  const type = req.headers['content-type'] ?? '';
  const hasBody = Number(req.headers['content-length'] ?? 0) > 0 || req.headers['transfer-encoding'] !== undefined;
  if (!type.trim() && !hasBody) return;
  const formSearch = req.path.endsWith('/_search');
  // R4 http.html#search: the body of a POST _search is a form. Read as anything else, a JSON body's keys
  // became unknown parameters, ignored, and the search returned everything.
  if (formSearch && hasBody && parseMediaType(type).type !== FORM) {
    throw unsupportedMediaType(`POST _search takes its parameters as ${FORM}, not '${parseMediaType(type).type || '(no Content-Type)'}'`);
  }
  const reason = unsupportedBodyReason(type, req.method, formSearch);
  if (reason) throw unsupportedMediaType(reason);
}

/**
 * NUL cannot be stored by PostgreSQL and is not allowed in FHIR strings; refusing it here, once,
 * keeps it out of every interaction and operation (found by the fuzz suite).
 */
const MAX_JSON_DEPTH = 64;

/** How deep a parsed body nests, counted without recursion (a hostile body may nest thousands deep). */
function nestsDeeperThan(value: unknown, limit: number): boolean {
  const stack: [unknown, number][] = [[value, 1]];
  while (stack.length) {
    const [v, depth] = stack.pop()!;
    if (typeof v !== 'object' || v === null) continue;
    if (depth > limit) return true;
    for (const child of Array.isArray(v) ? v : Object.values(v)) if (typeof child === 'object' && child !== null) stack.push([child, depth + 1]);
  }
  return false;
}

function refuseNul(query: [string, string][], body: unknown): void {
  if (query.some(([k, v]) => k.includes('\u0000') || v.includes('\u0000'))) throw badRequest('Search parameters may not contain NUL characters');
  if (body !== undefined && JSON.stringify(body).includes('\\u0000')) throw badRequest('FHIR strings may not contain NUL characters');
}

/** A query with a broken percent-encoding is refused, as such a path is: URLSearchParams would read it as U+FFFD and search for that. */
function refuseMalformedQuery(search: string): void {
  for (const part of search.slice(1).split('&')) {
    try {
      decodeURIComponent(part.replace(/\+/g, ' '));
    } catch {
      throw badRequest('Malformed URL encoding in the query');
    }
  }
}

function toFhirRequest(req: Request, baseUrl: string, auth: AccessContext | undefined): FhirRequest {
  const url = new URL(req.originalUrl, 'http://localhost');
  refuseMalformedQuery(url.search);
  const query = [...url.searchParams.entries()].filter(([k]) => k !== '_format' && k !== '_pretty');
  if (nestsDeeperThan(req.body, MAX_JSON_DEPTH)) throw badRequest(`The body nests deeper than ${MAX_JSON_DEPTH} levels`);
  refuseNul(query, req.body);
  const path = req.path
    .split('/')
    .filter(Boolean)
    .map((s) => {
      try {
        return decodeURIComponent(s);
      } catch {
        throw badRequest('Malformed URL encoding in path');
      }
    });
  const header = (name: string) => {
    const v = req.headers[name];
    return Array.isArray(v) ? v[0] : v;
  };
  return {
    method: req.method as HttpMethod,
    path,
    query,
    body: req.body as unknown,
    headers: {
      ifMatch: header('if-match'),
      ifNoneExist: header('if-none-exist'),
      ifNoneMatch: header('if-none-match'),
      ifModifiedSince: header('if-modified-since'),
      prefer: header('prefer'),
      contentType: header('content-type'),
    },
    baseUrl,
    auth,
  };
}

export function send(res: Response, response: FhirResponse, headOnly = false): void {
  for (const [k, v] of Object.entries(response.headers ?? {})) if (v !== undefined) res.setHeader(k, v);
  res.status(response.status);
  if (response.body === undefined || response.status === 204 || response.status === 304) {
    res.end();
    return;
  }
  res.setHeader('Content-Type', 'application/fhir+json; charset=utf-8');
  const json = JSON.stringify(response.body);
  if (headOnly) {
    res.setHeader('Content-Length', Buffer.byteLength(json));
    res.end();
  } else res.end(json);
}

/** Body-parser and other thrown errors → OperationOutcome with the right 4xx (never a 500 for bad input). */
function errorHandler(ctx: FhirContext) {
  return (err: unknown, req: Request, res: Response, _next: NextFunction): void => {
    const e = err as { type?: string; status?: number };
    let error: FhirError;
    if (e?.type === 'entity.too.large') error = payloadTooLarge('The request body is larger than the configured limit');
    else if (e?.type === 'entity.parse.failed') error = badRequest('The body is not valid JSON');
    else if (e?.type === 'charset.unsupported' || e?.type === 'encoding.unsupported') error = unsupportedMediaType('Unsupported body encoding');
    else if (typeof e?.status === 'number' && e.status >= 400 && e.status < 500 && !(err instanceof FhirError)) error = badRequest('The request could not be read');
    else {
      error = normalizeError(err);
      if (!(err instanceof FhirError)) ctx.onUnexpectedError?.(err);
    }
    const resourceType = /^\/([A-Z][A-Za-z]{1,63})(\/|$)/.exec(req.path)?.[1];
    const answer = () => send(res, { status: error.status, body: error.outcome, headers: error.headers });
    const behind = ctx.audit.record({ interaction: error.status === 401 ? 'login' : 'refused', resourceType, status: error.status });
    if (behind) void behind.then(answer);
    else answer();
  };
}
