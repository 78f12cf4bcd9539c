import type { Resource } from 'fhir/r4.js';
import { conformanceResources } from './definitions.js';
import { committeeMeasure } from './measure.js';
import { terminologyCapabilities } from './terminology.js';

/** Everything scripts/build-profiles.ts writes to profiles/ (besides the examples). */
export function generatedConformance(): Resource[] {
  const resources = conformanceResources();
  return [...resources, committeeMeasure(), terminologyCapabilities(resources)];
}
