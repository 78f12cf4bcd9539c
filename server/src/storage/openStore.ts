import { mkdirSync } from 'node:fs';
import { Indexer } from '../fhir/search/indexer.js';
import type { SearchParamRegistry } from '../fhir/search/registry.js';
import type { FhirStore } from './FhirStore.js';
import type { SqlConnection } from './sql/connection.js';
import { ReadCache } from './sql/readCache.js';
import { migrate } from './sql/schema.js';
import { SqlFhirStore } from './sql/SqlFhirStore.js';

export type StoreConfig =
  | { driver: 'pglite'; dataDir: string; loadDataDir?: Blob }
  | { driver: 'postgres'; databaseUrl: string; schema?: string; poolSize?: number };

/** Each driver is loaded only when chosen (pg and PGlite each take tens of milliseconds to load). */
export async function openConnection(config: StoreConfig): Promise<SqlConnection> {
  if (config.driver === 'postgres') {
    const { openPostgres } = await import('./sql/postgres.js');
    return openPostgres(config.databaseUrl, { schema: config.schema, max: config.poolSize });
  }
  if (!config.dataDir.startsWith('memory://')) mkdirSync(config.dataDir, { recursive: true });
  const { openPglite } = await import('./sql/pglite.js');
  return openPglite(config.dataDir, config.loadDataDir);
}

/** Opens the configured database, runs migrations and returns the store. */
export async function openStore(config: StoreConfig, registry: SearchParamRegistry): Promise<FhirStore> {
  const conn = await openConnection(config);
  await migrate(conn);
  // PGlite has one process writing to it, so a current-version cache is always coherent there;
  // several server processes share a PostgreSQL server, so they read through.
  const cache = config.driver === 'pglite' ? new ReadCache(20_000) : undefined;
  return new SqlFhirStore(conn, new Indexer(registry), [], cache);
}
