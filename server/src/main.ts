import { setFlagsFromString } from 'node:v8';
import { loadConfig, type ServerConfig } from './config.js';
import { createLogger, errorFields } from './log.js';
import { openConnection } from './storage/connect.js';

/**
 * After each full collection V8 lets the old space grow to at most twice what survived, not by its
 * default of up to four times: under load the server's garbage otherwise held about 80 MB more (peak RSS
 * at 10k on PostgreSQL 307 against 230 MB in a probe) for about 5% more CPU per read (20% growth saved more
 * memory and cost 13-25% more CPU). This sets no cap: a large request still gets the memory it needs. A
 * flag given to node wins.
 */
const HEAP_GROWING_PERCENT = 100;
if (!process.execArgv.some((arg) => arg.startsWith('--heap-growing-percent'))) setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);

/**
 * Starts the server from environment configuration; SIGTERM/SIGINT drain in-flight requests first.
 * The database starts opening before the rest of the server's modules load: opening PGlite reads and
 * compiles its WebAssembly off the main thread, which module loading would otherwise wait for.
 */
async function main(): Promise<void> {
  let config: ServerConfig;
  try {
    config = loadConfig();
  } catch (err) {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(2);
  }
  const connection = openConnection(config.store);
  connection.catch(() => undefined); // a failure is reported where startServer awaits it
  const logger = createLogger(config.logLevel);
  const [{ startServer }, { buildParts }] = await Promise.all([import('./server.js'), import('./compose.js')]);
  const server = await startServer(config, buildParts, logger, connection);
  if (config.logLevel !== 'silent') {
    process.stdout.write(
      `\nsecond-opinion-fhir is running\n  FHIR base:   ${server.fhirBase}\n  metadata:    ${server.fhirBase}/metadata\n` +
        (config.demoMode ? `  sandbox EHR: ${server.url}/sandbox\n  SMART app:   ${server.url}/app/\n` : '') +
        '\n',
    );
  }
  const stop = (signal: string) => {
    logger.info('shutdown', { signal });
    server.close().then(
      () => process.exit(0),
      (err) => {
        logger.error('shutdown_failed', errorFields(err));
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}

main().catch((err) => {
  process.stderr.write(`start-up failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
