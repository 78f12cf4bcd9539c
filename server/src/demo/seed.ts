import type { Resource } from 'fhir/r4.js';
import { sameContent } from '../fhir/conformance.js';
import type { FhirStore } from '../storage/FhirStore.js';
import { demoResources } from './demoData.js';

/** Loads the demo data once: resources already there and unchanged are left alone (idempotent). */
export async function seedDemoData(store: FhirStore, resources: Resource[] = demoResources()): Promise<number> {
  let written = 0;
  await store.transaction(async (tx) => {
    for (const resource of resources) {
      const current = await tx.find(resource.resourceType, resource.id!);
      if (current && sameContent(current, resource)) continue;
      await tx.update(resource);
      written++;
    }
  });
  return written;
}
