/**
 * `npm run reindex [ResourceType]`: recomputes the search index of every stored resource (or of one
 * type) with the search parameters this server now publishes; run it after adding or changing a
 * SearchParameter in profiles/. Uses the server's store settings (DATA_DIR or DATABASE_URL). On
 * PGlite, stop the server first (one process owns the data folder); on PostgreSQL it can run beside
 * the servers: each batch of 500 is its own short transaction.
 */
import { loadConfig } from '../server/src/config.js';
import { ourSearchParameters, readConformanceResources } from '../server/src/fhir/conformance.js';
import { isSupportedType } from '../server/src/fhir/resourceTypes.js';
import { SearchParamRegistry } from '../server/src/fhir/search/registry.js';
import { openStore } from '../server/src/storage/openStore.js';

const resourceType = process.argv[2];
if (resourceType !== undefined && !isSupportedType(resourceType)) {
  process.stderr.write(`Unknown resource type '${resourceType}'\n`);
  process.exit(2);
}
const registry = SearchParamRegistry.withStandard(ourSearchParameters(readConformanceResources()));
const store = await openStore(loadConfig().store, registry);
try {
  const started = performance.now();
  const indexed = await store.reindex(resourceType, (n) => process.stderr.write(`\r  ${n.toLocaleString('en-US')} re-indexed`));
  await store.analyze();
  process.stderr.write(`\n${indexed.toLocaleString('en-US')} ${resourceType ?? 'resources'} re-indexed in ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
} finally {
  await store.close();
}
