import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import pg from 'pg';
import type { StoreConfig } from '../../server/src/storage/connect.js';
import { SNAPSHOT_PATH } from './paths.js';

export const TEST_DATABASE_URL = process.env.TEST_DATABASE_URL;

export interface TestStoreConfig {
  name: 'pglite' | 'postgres';
  config: () => StoreConfig;
  /** Drops what config() created (the PostgreSQL schema). */
  cleanup: (config: StoreConfig) => Promise<void>;
}

/** A fresh in-memory PGlite from the migrated snapshot. */
export function pgliteConfig(): StoreConfig {
  return { driver: 'pglite', dataDir: 'memory://', loadDataDir: new Blob([readFileSync(SNAPSHOT_PATH)]) };
}

/** A fresh schema on the test PostgreSQL server. */
export function postgresConfig(): StoreConfig {
  if (!TEST_DATABASE_URL) throw new Error('TEST_DATABASE_URL is not set');
  return { driver: 'postgres', databaseUrl: TEST_DATABASE_URL, schema: `t_${randomBytes(6).toString('hex')}`, poolSize: 10 };
}

export async function dropSchema(config: StoreConfig): Promise<void> {
  if (config.driver !== 'postgres' || !config.schema) return;
  const client = new pg.Client({ connectionString: config.databaseUrl });
  await client.connect();
  await client.query(`DROP SCHEMA IF EXISTS ${config.schema} CASCADE`);
  await client.end();
}

/** The drivers every storage suite runs against: PGlite always, PostgreSQL when TEST_DATABASE_URL is set. */
export const STORE_DRIVERS: TestStoreConfig[] = [
  { name: 'pglite', config: pgliteConfig, cleanup: async () => undefined },
  ...(TEST_DATABASE_URL ? [{ name: 'postgres' as const, config: postgresConfig, cleanup: dropSchema }] : []),
];
