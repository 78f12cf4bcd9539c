import { loadConfig } from './config.js';
import { buildParts } from './compose.js';
import { createLogger, errorFields } from './log.js';
import { startServer } from './server.js';

/** Starts the server from environment configuration; SIGTERM/SIGINT drain in-flight requests first. */
async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(2);
  }
  const logger = createLogger(config.logLevel);
  const server = await startServer(config, buildParts, logger);
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
