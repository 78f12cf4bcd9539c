import { fromEnv, EnvSchema, type ServerConfig } from '../../server/src/config.js';
import { createLogger } from '../../server/src/log.js';
import { startServer, type PartsEnv, type RunningServer, type ServerParts } from '../../server/src/server.js';
import type { StoreConfig } from '../../server/src/storage/connect.js';
import { pgliteConfig } from './stores.js';

/** Server config for tests: random port on loopback, no demo data unless asked. */
export function testConfig(store: StoreConfig = pgliteConfig(), env: Record<string, string> = {}): ServerConfig {
  const config = fromEnv(EnvSchema.parse({ PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent', AUTH_REQUIRED: 'false', ...env }));
  return { ...config, store: store as ServerConfig['store'] };
}

const failClosedPolicy: ServerParts['policy'] = {
  requireScope: () => {
    throw new Error('no access policy configured');
  },
  patientCompartment: () => undefined,
  mayAccess: () => false,
};

/** A server with the FHIR layer only (no auth), for tests of the REST API itself. */
export async function startFhirOnlyServer(
  store?: StoreConfig,
  extra: (env: PartsEnv) => Promise<Partial<ServerParts>> = async () => ({}),
): Promise<RunningServer> {
  const config = testConfig(store);
  return startServer(config, async (env) => ({ policy: failClosedPolicy, ...(await extra(env)) }), createLogger('silent'));
}
