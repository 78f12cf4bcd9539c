import { r4Model } from './fhirpathEngine.js';

/**
 * Most search parameter expressions are plain element paths (`AuditEvent.agent.who`), sometimes
 * narrowed to one reference type or joined with `|`. Walking the JSON for those gives exactly what
 * FHIRPath gives, at a fraction of the cost (FHIRPath builds a typed node for every step; indexing
 * an AuditEvent through it cost about 100 µs). Anything else (functions, choice elements such as
 * `value[x]`, elements the R4 model does not know) returns undefined here and is left to FHIRPath.
 * A test checks the two agree on every search parameter over the demo and generated data.
 */
export type PathEvaluator = (resource: unknown) => unknown[];

interface R4Model {
  path2Type: Record<string, string | undefined>;
  choiceTypePaths: Record<string, unknown>;
  pathsDefinedElsewhere: Record<string, string | undefined>;
}

const BRANCH = /^([A-Z][A-Za-z]+)((?:\.[a-z][A-Za-z0-9]*)+)(?:\.where\(reference\.startsWith\('([A-Z][A-Za-z]+\/)'\)\))?$/;
const ELEMENT_TYPES = new Set(['BackboneElement', 'Element']);

export function compileSimplePath(expression: string): PathEvaluator | undefined {
  const branches = expression.split(' | ').map(compileBranch);
  if (branches.some((b) => !b)) return undefined;
  const walkers = branches as PathEvaluator[];
  if (walkers.length === 1) return walkers[0];
  return (resource) => union(walkers.flatMap((walk) => walk(resource)));
}

function compileBranch(branch: string): PathEvaluator | undefined {
  const m = BRANCH.exec(branch.trim());
  if (!m) return undefined;
  const [, type, dotted, referencePrefix] = m;
  const steps = dotted.slice(1).split('.');
  if (!knownNonChoicePath(type, steps)) return undefined;
  return (resource) => {
    let values: unknown[] = [resource];
    for (const step of steps) values = children(values, step);
    if (!referencePrefix) return values;
    return values.filter((v) => isObject(v) && typeof v.reference === 'string' && v.reference.startsWith(referencePrefix));
  };
}

/** Whether each step is an element the R4 model knows, none of them a choice (`[x]`) element. */
function knownNonChoicePath(type: string, steps: string[]): boolean {
  const model = r4Model() as unknown as R4Model;
  let owner = type;
  for (const step of steps) {
    let path = `${owner}.${step}`;
    if (model.choiceTypePaths[path]) return false;
    path = model.pathsDefinedElsewhere[path] ?? path;
    const elementType = model.path2Type[path];
    if (!elementType) return false;
    owner = ELEMENT_TYPES.has(elementType) ? path : elementType;
  }
  return true;
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

function children(values: unknown[], step: string): unknown[] {
  const out: unknown[] = [];
  for (const value of values) {
    if (!isObject(value)) continue;
    const child = value[step];
    if (Array.isArray(child)) {
      for (const item of child) if (item !== null && item !== undefined) out.push(item);
    } else if (child !== null && child !== undefined) out.push(child);
  }
  return out;
}

/** FHIRPath's `|`: the values of both sides, each once, in first-seen order. */
function union(values: unknown[]): unknown[] {
  const seen = new Set<string>();
  return values.filter((v) => {
    const key = JSON.stringify(v);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}
