import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { OperationDefinition, Resource, SearchParameter } from 'fhir/r4.js';
import { PROJECT_ROOT } from '../paths.js';
import type { FhirStore } from '../storage/FhirStore.js';
import { CONFORMANCE_TYPES } from './resourceTypes.js';

export const PROFILES_DIR = join(PROJECT_ROOT, 'profiles');

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

export const ourOperationDefinitions = (resources: Resource[]): OperationDefinition[] =>
  resources.filter((r): r is OperationDefinition => r.resourceType === 'OperationDefinition');

/** Publishes the conformance resources in the store (read-only for clients); unchanged ones are left alone. */
export async function publishConformance(store: FhirStore, resources: Resource[]): Promise<void> {
  await storeChanged(store, resources.filter((r) => r.id));
}

const ID_BATCH = 500;

/**
 * Writes each resource (all with ids) whose stored version differs from it, in one transaction, and
 * returns how many it wrote. The stored versions are fetched by `_id`, a type at a time: on a restart
 * nothing has changed, and one search per type is much cheaper than one read per resource.
 */
export async function storeChanged(store: FhirStore, resources: Resource[]): Promise<number> {
  const byType = new Map<string, Resource[]>();
  for (const r of resources) byType.set(r.resourceType, [...(byType.get(r.resourceType) ?? []), r]);
  return store.transaction(async (tx) => {
    let written = 0;
    for (const [resourceType, ofType] of byType) {
      for (let start = 0; start < ofType.length; start += ID_BATCH) {
        const batch = ofType.slice(start, start + ID_BATCH);
        const ids = batch.map((r) => r.id!);
        const found = await tx.search({ resourceType, clauses: [{ kind: 'id', ids }], sort: [], count: ids.length, offset: 0, total: false });
        const stored = new Map(found.resources.map((r) => [r.id, r]));
        for (const resource of batch) {
          const current = stored.get(resource.id);
          if (current && sameContent(current, resource)) continue;
          await tx.update(resource);
          written++;
        }
      }
    }
    return written;
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
