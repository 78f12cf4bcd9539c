import type { Resource } from 'fhir/r4.js';
import { storeChanged } from '../fhir/conformance.js';
import type { FhirStore } from '../storage/FhirStore.js';
import { demoResources } from './demoData.js';

/** Loads the demo data once: resources already there and unchanged are left alone (idempotent). */
export function seedDemoData(store: FhirStore, resources: Resource[] = demoResources()): Promise<number> {
  return storeChanged(store, resources);
}
