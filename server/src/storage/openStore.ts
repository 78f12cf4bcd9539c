import { Indexer } from '../fhir/search/indexer.js';
import type { SearchParamRegistry } from '../fhir/search/registry.js';
import { openConnection, type StoreConfig } from './connect.js';
import type { FhirStore } from './FhirStore.js';
import type { SqlConnection } from './sql/connection.js';
import { ReadCache } from './sql/readCache.js';
import { SearchCache } from './sql/searchCache.js';
import { migrate } from './sql/schema.js';
import { SqlFhirStore } from './sql/SqlFhirStore.js';

/**
 * Opens the configured database (or takes the connection start-up began opening), runs migrations and
 * returns the store.
 */
export async function openStore(config: StoreConfig, registry: SearchParamRegistry, connection: Promise<SqlConnection> = openConnection(config)): Promise<FhirStore> {
  const conn = await connection;
  const indexer = new Indexer(registry);
  await migrate(conn, indexer);
  // PGlite has one process writing to it, so caches of current versions and of directory searches are
  // always coherent there. Several server processes share a PostgreSQL server: they read current
  // versions through, except those of rarely written types, which they cache, with those types'
  // searches, only while they hear each other's changes.
  const searchCache = new SearchCache(RARELY_WRITTEN_TYPES, 5_000);
  if (conn.changes) {
    searchCache.suspend(); // until the process hears the others' changes
    conn.changes.listen({ changed: (type) => searchCache.invalidate(type), lost: () => searchCache.suspend(), ready: () => searchCache.resume() });
    return new SqlFhirStore(conn, indexer, [], undefined, searchCache);
  }
  return new SqlFhirStore(conn, indexer, [], new ReadCache(20_000), searchCache);
}

/**
 * The provider directory (Plan-Net): read by every `$submit`, written rarely. Not Subscriptions: the outbound
 * worker of one process acts on a Subscription's status, which another process may have changed a moment ago.
 */
const RARELY_WRITTEN_TYPES: ReadonlySet<string> = new Set(['Practitioner', 'PractitionerRole', 'Organization', 'Location', 'Endpoint', 'HealthcareService', 'InsurancePlan']);
