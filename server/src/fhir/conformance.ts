import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Resource, SearchParameter } from 'fhir/r4.js';
import type { FhirStore } from '../storage/FhirStore.js';
import { CONFORMANCE_TYPES } from './resourceTypes.js';

export const PROFILES_DIR = fileURLToPath(new URL('../../../profiles/', import.meta.url));

/** The conformance resources in profiles/ (not the examples). */
export function readConformanceResources(dir = PROFILES_DIR): Resource[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')) as Resource)
    .filter((r) => (CONFORMANCE_TYPES as readonly string[]).includes(r.resourceType));
}

export const ourSearchParameters = (resources: Resource[]): SearchParameter[] =>
  resources.filter((r): r is SearchParameter => r.resourceType === 'SearchParameter');

/** Publishes the conformance resources in the store (read-only for clients); unchanged ones are left alone. */
export async function publishConformance(store: FhirStore, resources: Resource[]): Promise<void> {
  await store.transaction(async (tx) => {
    for (const resource of resources) {
      if (!resource.id) continue;
      const current = await tx.find(resource.resourceType, resource.id);
      if (current && sameContent(current, resource)) continue;
      await tx.update(resource);
    }
  });
}

/** Equal apart from versionId and lastUpdated, whatever the order of their keys. */
export function sameContent(a: Resource, b: Resource): boolean {
  const strip = (r: Resource) => ({ ...r, meta: { ...r.meta, versionId: undefined, lastUpdated: undefined } });
  // What the store gives back keeps the key order it was given: one plain comparison usually settles it.
  if (JSON.stringify(strip(a)) === JSON.stringify(strip(b))) return true;
  return stableStringify(strip(a)) === stableStringify(strip(b));
}

function stableStringify(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableStringify).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined && !(v && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length === 0));
    return `{${entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([k, v]) => `${JSON.stringify(k)}:${stableStringify(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}
