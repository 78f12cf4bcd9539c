import type { SqlConnection } from './sql/connection.js';

export type StoreConfig =
  | { driver: 'pglite'; dataDir: string; loadDataDir?: Blob }
  | { driver: 'postgres'; databaseUrl: string; schema?: string; poolSize?: number };

/**
 * Opens the configured database. Each driver is loaded only when chosen (pg and PGlite each take tens
 * of milliseconds to load); this module imports neither, so that start-up can open the database while
 * the rest of the server loads.
 */
export async function openConnection(config: StoreConfig): Promise<SqlConnection> {
  if (config.driver === 'postgres') {
    const { openPostgres } = await import('./sql/postgres.js');
    return openPostgres(config.databaseUrl, { schema: config.schema, max: config.poolSize });
  }
  const { openPglite } = await import('./sql/pglite.js');
  return openPglite(config.dataDir, config.loadDataDir);
}
