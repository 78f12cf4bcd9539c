import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Resource, StructureDefinition } from 'fhir/r4.js';
import type { AddressInfo } from 'node:net';
import type express from 'express';
import { createApp } from './app.js';
import { capabilityStatement, publishCapabilityStatement, rememberServerStatements } from './fhir/capability.js';
import type { ServerConfig } from './config.js';
import { BufferedAuditSink } from './fhir/audit.js';
import { ourSearchParameters, publishConformance, readConformanceResources } from './fhir/conformance.js';
import type { AccessPolicy, AuditSink, FhirContext, OperationDefinitionEntry, ResourceValidator } from './fhir/context.js';
import { Indexer } from './fhir/search/indexer.js';
import { createResourceValidator } from './fhir/resourceValidator.js';
import { SearchParamRegistry } from './fhir/search/registry.js';
import { serviceUnavailable } from './fhir/outcomes.js';
import { createLogger, errorFields, type Logger } from './log.js';
import type { FhirStore } from './storage/FhirStore.js';
import { openConnection } from './storage/connect.js';
import { openStore } from './storage/openStore.js';
import type { SqlConnection } from './storage/sql/connection.js';
import type { Authenticate } from './http/fhirRoutes.js';
import type { SecurityUrls } from './fhir/capability.js';

export const VERSION = '0.1.0';

/** Pieces of the server that other modules contribute (auth, operations, demo data). */
export interface ServerParts {
  policy: AccessPolicy;
  validator?: ResourceValidator;
  operations?: OperationDefinitionEntry[];
  authenticate?: Authenticate;
  security?: SecurityUrls;
  routers?: express.Router[];
  allowedOrigin?: (origin: string) => boolean | Promise<boolean>;
  /** Runs after migrations and conformance publishing, before serving (demo data). */
  seed?: (store: FhirStore) => Promise<void>;
  /** Creates that start a workflow (see FhirContext.createInterceptors). */
  createInterceptors?: FhirContext['createInterceptors'];
  /** Per-type access rules (see FhirContext.accessRules). */
  accessRules?: FhirContext['accessRules'];
  /** Whose records a user may see (see FhirContext.visiblePatients). */
  visiblePatients?: FhirContext['visiblePatients'];
  /** Background work (outbox delivery) started once serving and stopped before the store closes. */
  workers?: { start(): void; stop(): Promise<void> }[];
}

export interface RunningServer {
  url: string;
  fhirBase: string;
  store: FhirStore;
  ctx: FhirContext;
  close(): Promise<void>;
}

/** What the parts are built from: the real URLs (known once the port is bound) and the store. */
export interface PartsEnv {
  config: ServerConfig;
  publicUrl: string;
  fhirBase: string;
  store: FhirStore;
  registry: SearchParamRegistry;
  logger: Logger;
  audit: AuditSink;
}

export async function startServer(
  config: ServerConfig,
  makeParts: (env: PartsEnv) => Promise<ServerParts>,
  logger: Logger = createLogger(config.logLevel),
  connection: Promise<SqlConnection> = openConnection(config.store),
): Promise<RunningServer> {
  const conformance = readConformanceResources();
  const registry = SearchParamRegistry.withStandard(ourSearchParameters(conformance));
  const server = createServer();
  server.keepAliveTimeout = 5000;
  server.on('clientError', answerUnparsable);
  // Listening comes first: with PORT=0 the URLs are known only then, and until the app is ready it
  // says so. A listening socket also keeps the event loop alive while the database opens: with nothing
  // alive, Node waits at each idle turn for every background task, and after PGlite's first statements
  // those are optimizing compilations of its WebAssembly (about 0.2 s at start-up).
  server.on('request', answerStarting);
  let store: FhirStore | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(config.port, config.host, () => resolve());
    });
    store = await openStore(config.store, registry, connection);
    await publishConformance(store, conformance);
  } catch (err) {
    server.close();
    await (store ? store.close() : connection.then((conn) => conn.close())).catch(() => undefined);
    throw err;
  }
  const port = (server.address() as AddressInfo).port;
  // With PORT=0 the real port is known only now; PUBLIC_URL, when set, wins.
  const url = config.publicUrl.replace(/:0$/, `:${port}`);
  const fhirBase = `${url}/fhir`;
  const audit = new BufferedAuditSink(store, { enabled: config.auditEnabled, intervalMs: 50, maxBatch: 50, maxWriters: 4, maxBacklog: 1_000 });
  const parts = await makeParts({ config, publicUrl: url, fhirBase, store, registry, logger, audit });
  await parts.seed?.(store);
  const ctx: FhirContext = {
    store,
    registry,
    indexer: new Indexer(registry),
    validator: parts.validator ?? createResourceValidator(conformance.filter((r): r is StructureDefinition => r.resourceType === 'StructureDefinition')),
    policy: parts.policy,
    audit,
    operations: parts.operations ?? [],
    createInterceptors: parts.createInterceptors,
    accessRules: parts.accessRules,
    visiblePatients: parts.visiblePatients,
    limits: { maxBundleEntries: config.maxBundleEntries },
    supportedProfiles: profilesByType(conformance),
    onUnexpectedError: (err) => logger.error('unexpected_error', errorFields(err)),
  };
  await publishCapabilityStatement(store, capabilityStatement(ctx, fhirBase, parts.security, VERSION));
  await rememberServerStatements(store);
  const app = createApp({
    ctx,
    fhirBase,
    maxBodyBytes: config.maxBodyBytes,
    authRequired: config.authRequired,
    authenticate: parts.authenticate,
    routers: parts.routers,
    allowedOrigin: parts.allowedOrigin,
    logRequest: (fields) => logger.info('request', fields),
  });
  server.off('request', answerStarting);
  server.on('request', app);
  for (const worker of parts.workers ?? []) worker.start();
  const statistics = config.store.driver === 'pglite' ? keepStatisticsFresh(store, logger) : undefined;
  logger.info('server_started', { url, fhirBase: `${url}/fhir`, store: config.store.driver, startupMs: Math.round(performance.now()) });
  let closing: Promise<void> | undefined;
  return {
    url,
    fhirBase,
    store,
    ctx,
    close: () =>
      (closing ??= (async () => {
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeIdleConnections();
        });
        for (const worker of parts.workers ?? []) await worker.stop();
        statistics?.stop();
        await audit.flush();
        await store.close();
        logger.info('server_stopped');
      })()),
  };
}


function profilesByType(conformance: Resource[]): Map<string, string[]> {
  const map = new Map<string, string[]>();
  for (const r of conformance) {
    if (r.resourceType !== 'StructureDefinition') continue;
    const sd = r as StructureDefinition;
    if (sd.kind === 'resource') map.set(sd.type, [...(map.get(sd.type) ?? []), sd.url]);
  }
  return map;
}

/**
 * PGlite has no autovacuum: without fresh statistics its planner picks poor indexes as data grows,
 * GIN pending lists are merged only when full, and updated rows leave dead ones behind. Shortly after
 * start, VACUUM ANALYZE the tables that never were analyzed; then, every minute, those changed past
 * autovacuum's thresholds (on PostgreSQL autovacuum usually got there first, and then this finds nothing).
 */
function keepStatisticsFresh(store: FhirStore, logger: Logger): { stop(): void } {
  const run = (tables: 'never-analyzed' | 'changed') => () => void store.analyze(tables).catch((err: unknown) => logger.warn('analyze_failed', errorFields(err)));
  const first = setTimeout(run('never-analyzed'), 10_000).unref();
  const every = setInterval(run('changed'), 60_000).unref();
  return {
    stop() {
      clearTimeout(first);
      clearInterval(every);
    },
  };
}

function answerStarting(_req: IncomingMessage, res: ServerResponse): void {
  const error = serviceUnavailable('The server is starting; retry shortly', 1);
  res.writeHead(error.status, { 'Content-Type': 'application/fhir+json', ...error.headers });
  res.end(JSON.stringify(error.outcome));
}

/**
 * A request Node's HTTP parser refuses (a raw non-ASCII byte in the URL, headers too large) never reaches
 * Express: it is answered here, as every error is, with an OperationOutcome.
 */
function answerUnparsable(err: Error & { code?: string }, socket: Duplex): void {
  if (err.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  const tooLarge = err.code === 'HPE_HEADER_OVERFLOW';
  const body = JSON.stringify({
    resourceType: 'OperationOutcome',
    issue: [{ severity: 'error', code: tooLarge ? 'too-long' : 'structure', diagnostics: tooLarge ? 'The request headers are too large' : 'The HTTP request could not be parsed (a URL must percent-encode non-ASCII characters)' }],
  });
  const status = tooLarge ? '431 Request Header Fields Too Large' : '400 Bad Request';
  socket.end(`HTTP/1.1 ${status}\r\nContent-Type: application/fhir+json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
}
