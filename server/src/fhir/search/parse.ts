import { type DateCondition, META_TOKEN_PARAMS, type NumberCondition, type Prefix, type SearchClause, type SearchQuery, type SortRule } from '../../storage/FhirStore.js';
import { badRequest, tooCostly } from '../outcomes.js';
import { relativeToBase } from '../references.js';
import { RESOURCE_TYPES } from '../resourceTypes.js';
import { elementNamesOf } from '../responses.js';
import { CURSOR_PARAM, decodeCursor } from './cursor.js';
import { dateRange } from './dates.js';
import { implicitSystemOf } from './implicitSystems.js';
import { normalize } from './normalize.js';
import { isPhonetic, nameWords, soundsOf, soundToken } from './phonetic.js';
import { elementPaths, elementTypes } from './simplePath.js';
import type { SearchParamDef, SearchParamRegistry } from './registry.js';

export const DEFAULT_COUNT = 20;
export const MAX_COUNT = 1000;

/**
 * How many clauses one search may AND together. Each becomes a join whose order PostgreSQL plans, and
 * planning time grows much faster than their number (ANDed `name=` on PGlite at the demo size: 20 clauses
 * 21 ms, 40 100 ms, 100 520 ms, 200 4.2 s, 1000 about 7 minutes); PGlite plans on the thread that serves
 * every request. Realistic searches AND a handful. Each level of a chain or `_has` counts, and so does
 * each `_include`, `_revinclude` and `_sort` key (each one more statement or sort expression).
 */
export const MAX_SEARCH_CLAUSES = 20;
/**
 * How many comma-separated (OR) values all parameters of a search may hold together. One parameter's
 * OR list is cheap (1000 string or date values: 35-100 ms), so lists of a few hundred ids keep working;
 * but 20 clauses of 1000 values each took 1.3-2.1 s, and 20 of 50 (this cap) 110-330 ms on either driver.
 */
export const MAX_SEARCH_VALUES = 1000;

/** What a search asks for besides matching: includes, summary, elements. */
export interface SearchRequest {
  query: SearchQuery;
  includes: IncludeSpec[];
  revIncludes: IncludeSpec[];
  summary?: 'count' | 'true' | 'false' | 'data' | 'text';
  elements?: string[];
  /** Parameters that were understood, for the self link. */
  used: [string, string][];
  /** Parameters ignored under lenient handling. */
  ignored: string[];
}

export interface IncludeSpec {
  sourceType: string;
  param: string;
  targetType?: string;
  iterate: boolean;
}

const RESULT_PARAMS = new Set(['_count', '_offset', '_sort', '_include', '_revinclude', '_summary', '_elements', '_total', '_format', '_pretty', '_contained', '_containedType']);
const PREFIXES = new Set<Prefix>(['eq', 'ne', 'gt', 'lt', 'ge', 'le', 'sa', 'eb', 'ap']);
const TOTALS = new Set(['none', 'estimate', 'accurate']);
/** `:recurse` is STU3's name for `:iterate`, still sent by older clients. */
const INCLUDE_MODIFIERS = new Set(['iterate', 'recurse']);

/** Counts what a search asks against MAX_SEARCH_CLAUSES and MAX_SEARCH_VALUES as it is parsed. */
class SearchBudget {
  private clauses = 0;
  private values = 0;

  charge(param: string, clauses: number, values: number): void {
    this.clauses += clauses;
    this.values += values;
    if (this.clauses > MAX_SEARCH_CLAUSES) throw tooCostly(`A search may combine at most ${MAX_SEARCH_CLAUSES} clauses (parameters, chain and _has levels, _include, _revinclude and _sort keys); '${param}' is one too many`, param);
    if (this.values > MAX_SEARCH_VALUES) throw tooCostly(`A search may hold at most ${MAX_SEARCH_VALUES} comma-separated values in all; '${param}' goes past it`, param);
  }
}

export function parseSearch(
  resourceType: string,
  params: [string, string][],
  registry: SearchParamRegistry,
  options: { strict: boolean; baseUrl: string; refuseEmpty?: boolean },
): SearchRequest {
  const request: SearchRequest = {
    query: { resourceType, clauses: [], sort: [], count: DEFAULT_COUNT, offset: 0, total: false },
    includes: [],
    revIncludes: [],
    used: [],
    ignored: [],
  };
  const budget = new SearchBudget();
  let cursor: string | undefined;
  for (const [rawKey, value] of params) {
    if (value === '') {
      if (options.refuseEmpty) throw badRequest(`'${rawKey}' has no value: ignored, it would widen what the criteria match`, rawKey);
      continue; // R4 search.html: parameters with an empty value are ignored (whatever their type), so not in the self link.
    }
    if (rawKey === '_contained' && value !== 'false') {
      // Contained resources are not searched: an answer without them would pass for one.
      if (options.strict) throw badRequest(`_contained=${value.slice(0, 20)} is not supported: contained resources are not searched`, rawKey);
      request.ignored.push(rawKey);
      continue;
    }
    if (rawKey === CURSOR_PARAM) {
      cursor = value; // read once `_sort` is known, wherever it stands
      request.used.push([rawKey, value]);
      continue;
    }
    if (RESULT_PARAMS.has(rawKey) || rawKey.startsWith('_include:') || rawKey.startsWith('_revinclude:')) {
      applyResultParam(request, rawKey, value, registry);
      budget.charge(rawKey, resultParamCost(rawKey, value), 0);
      request.used.push([rawKey, value]);
      continue;
    }
    budget.charge(rawKey, 0, splitUnescaped(value, ',').length);
    const clause = parseClause(resourceType, rawKey, value, registry, options.baseUrl);
    if (clause) {
      budget.charge(rawKey, levelsOf(clause), 0);
      request.query.clauses.push(clause);
      request.used.push([rawKey, value]);
    } else if (options.strict) {
      throw badRequest(`Unknown search parameter '${rawKey}' for ${resourceType}`, rawKey);
    } else {
      request.ignored.push(rawKey);
    }
  }
  if (cursor !== undefined) {
    if (request.used.some(([key]) => key === '_offset')) throw badRequest(`${CURSOR_PARAM} and _offset cannot be combined: each says where the page starts`, CURSOR_PARAM);
    request.query.cursor = decodeCursor(cursor, request.query.sort);
  }
  return request;
}

/** `_sort` costs one clause a key, `_include` and `_revinclude` one each; the other result parameters nothing. */
function resultParamCost(key: string, value: string): number {
  const name = key.split(':')[0];
  if (name === '_sort') return value.split(',').filter(Boolean).length;
  return name === '_include' || name === '_revinclude' ? 1 : 0;
}

/** A chain or `_has` costs a level for itself and each level inside it. */
function levelsOf(clause: SearchClause): number {
  return clause.kind === 'chain' || clause.kind === 'reverseChain' ? 1 + levelsOf(clause.clause) : 1;
}

function applyResultParam(request: SearchRequest, key: string, value: string, registry: SearchParamRegistry): void {
  const q = request.query;
  switch (key.split(':')[0]) {
    case '_count':
      q.count = Math.min(parseNonNegative(key, value), MAX_COUNT);
      return;
    case '_offset':
      q.offset = parseNonNegative(key, value);
      return;
    case '_total':
      if (!TOTALS.has(value)) throw badRequest(`Invalid _total '${value.slice(0, 40)}' (expected none, estimate or accurate)`, '_total');
      q.total = value === 'accurate' || value === 'estimate';
      return;
    case '_sort':
      q.sort = value.split(',').filter(Boolean).map((s) => parseSort(q.resourceType, s, registry));
      return;
    case '_summary':
      if (!['count', 'true', 'false', 'data', 'text'].includes(value)) throw badRequest(`Invalid _summary '${value}'`, '_summary');
      request.summary = value as SearchRequest['summary'];
      if (value === 'count') q.total = true;
      return;
    case '_elements':
      request.elements = parseElements(q.resourceType, value);
      return;
    case '_include':
    case '_revinclude':
      (key.startsWith('_include') ? request.includes : request.revIncludes).push(parseInclude(key, value, registry));
      return;
    default:
      return; // _format, _pretty, _contained=false, _containedType: accepted, no effect on matching
  }
}

/** A `_count` or `_offset`: at most nine digits (an offset past PostgreSQL's bigint was a 500). */
export function parseNonNegative(key: string, value: string): number {
  if (!/^\d{1,9}$/.test(value)) throw badRequest(`${key} must be a non-negative integer`, key);
  return Number(value);
}

function parseSort(resourceType: string, spec: string, registry: SearchParamRegistry): SortRule {
  const descending = spec.startsWith('-');
  const code = descending ? spec.slice(1) : spec;
  if (code === '_id') return { param: code, kind: 'id', descending };
  if (code === '_lastUpdated') return { param: code, kind: 'lastUpdated', descending };
  if (META_TOKEN_PARAMS.has(code)) throw badRequest(`Sorting by ${code === '_profile' ? 'uri' : 'token'} parameter '${code}' is not supported`, '_sort');
  const def = registry.get(resourceType, code);
  if (!def) throw badRequest(`Unknown sort parameter '${code}' for ${resourceType}`, '_sort');
  const kind = def.type === 'date' ? 'date' : def.type === 'string' ? 'string' : def.type === 'number' || def.type === 'quantity' ? 'number' : 'token';
  if (def.type === 'reference') throw badRequest(`Sorting by reference parameter '${code}' is not supported`, '_sort');
  if (isPhonetic(def)) throw badRequest(`Sorting by '${code}' is not supported: it matches names by their sound (sort by family or given)`, '_sort');
  return { param: code, kind, descending };
}

/**
 * R4 `_elements` names elements of the searched type (`name`, not `Patient.name`); a name the type does
 * not have would strip every element, which no client means.
 */
function parseElements(resourceType: string, value: string): string[] {
  const names = elementNamesOf(resourceType);
  const elements = value.split(',').map((e) => e.trim()).filter(Boolean);
  const unknown = elements.filter((e) => !names.has(e));
  if (unknown.length) throw badRequest(`_elements names no element of ${resourceType}: '${unknown.join("', '").slice(0, 200)}' (R4 takes element names, such as 'name')`, '_elements');
  return elements;
}

function parseInclude(key: string, value: string, registry: SearchParamRegistry): IncludeSpec {
  const modifier = key.split(':')[1];
  if (modifier !== undefined && !INCLUDE_MODIFIERS.has(modifier)) throw unsupportedModifier(key, modifier);
  const iterate = modifier !== undefined;
  const [sourceType, param, targetType] = value.split(':');
  if (!sourceType || !param) throw badRequest(`Invalid ${key} value '${value}' (expected Type:param[:targetType])`, key);
  if (!RESOURCE_TYPES.includes(sourceType)) throw badRequest(`Unknown resource type '${sourceType}' in ${key}`, key);
  if (param === '*') {
    if (targetType && !RESOURCE_TYPES.includes(targetType)) throw badRequest(`Unknown resource type '${targetType}' in ${key}`, key);
    return { sourceType, param, targetType, iterate };
  }
  const def = registry.get(sourceType, param);
  if (!def || def.type !== 'reference') throw badRequest(`Unknown reference parameter '${sourceType}:${param}' in ${key}`, key);
  if (targetType) requireTarget(def, targetType, key);
  return { sourceType, param, targetType, iterate };
}

/** A type named for a reference parameter (`subject:Patient`, `Condition:subject:Patient`) must be one it can refer to. */
function requireTarget(def: SearchParamDef, type: string, key: string): void {
  const targets = def.targets.length ? def.targets : RESOURCE_TYPES;
  if (!targets.includes(type)) throw badRequest(`'${def.code}' cannot refer to a '${type.slice(0, 64)}' (it refers to ${targets.join(', ')})`, key);
}

function parseClause(resourceType: string, key: string, value: string, registry: SearchParamRegistry, baseUrl: string): SearchClause | undefined {
  if (key.startsWith('_has:')) return parseHas(key, value, registry, baseUrl);
  const dot = key.indexOf('.');
  if (dot > 0) return parseChain(resourceType, key.slice(0, dot), key.slice(dot + 1), value, registry, baseUrl);
  const [code, modifier] = splitModifier(key);
  if (modifier === 'missing') return missingClause(resourceType, code, value, key, registry);
  if (code === '_id') {
    if (modifier && modifier !== 'not') throw unsupportedModifier(key, modifier);
    return { kind: 'id', ids: splitValues(value), not: modifier === 'not' };
  }
  if ((code === '_lastUpdated' || code === '_profile') && modifier) throw unsupportedModifier(key, modifier);
  if (code === '_lastUpdated') return { kind: 'lastUpdated', values: splitValues(value).map((v) => parseDate(key, v)) };
  if (code === '_profile') return { kind: 'token', param: '_profile', values: splitValues(value).map((v) => `_profile||${v}`), not: false };
  if (code === '_tag' || code === '_security') return tokenClause(code, modifier, value, key);
  const def = registry.get(resourceType, code);
  if (!def) return undefined;
  return clauseFor(def, modifier, value, key, baseUrl);
}


/**
 * `:missing` (R4 search.html#modifiers) on any parameter. Every stored resource has an id and a
 * lastUpdated, so `_id:missing=true` matches nothing and `=false` everything.
 */
function missingClause(resourceType: string, code: string, value: string, key: string, registry: SearchParamRegistry): SearchClause | undefined {
  if (value !== 'true' && value !== 'false') throw badRequest(`${key} must be true or false`, key);
  const missing = value === 'true';
  if (code === '_id' || code === '_lastUpdated') return { kind: 'id', ids: [], not: !missing };
  if (META_TOKEN_PARAMS.has(code) || registry.get(resourceType, code)) return { kind: 'missing', param: code, missing };
  return undefined;
}

function clauseFor(def: SearchParamDef, modifier: string | undefined, value: string, key: string, baseUrl: string): SearchClause {
  switch (def.type) {
    case 'token':
      if (modifier === 'text') return { kind: 'string', param: `${def.code}:text`, mode: 'starts', values: splitValues(value).map(normalize) };
      if (isBoolean(def)) requireBooleans(value, key);
      return tokenClause(def.code, modifier, value, key, implicitSystemOf(def.expression));
    case 'uri':
      if (modifier) throw unsupportedModifier(key, modifier);
      return { kind: 'token', param: def.code, values: splitValues(value).map((v) => `${def.code}||${v}`), not: false };
    case 'string': {
      if (isPhonetic(def)) return phoneticClause(def.code, modifier, value, key);
      if (modifier && modifier !== 'exact' && modifier !== 'contains') throw unsupportedModifier(key, modifier);
      const mode = modifier === 'exact' ? 'exact' : modifier === 'contains' ? 'contains' : 'starts';
      return { kind: 'string', param: def.code, mode, values: splitValues(value).map((v) => (mode === 'exact' ? v : normalize(v))) };
    }
    case 'reference':
      return referenceClause(def, modifier, value, key, baseUrl);
    case 'date':
      if (modifier) throw unsupportedModifier(key, modifier);
      return { kind: 'date', param: def.code, values: splitValues(value).map((v) => parseDate(key, v)) };
    case 'number':
    case 'quantity':
      if (modifier) throw unsupportedModifier(key, modifier);
      return { kind: 'number', param: def.code, values: splitValues(value).map((v) => parseNumber(key, v, def.type === 'quantity')) };
  }
}

/**
 * A phonetic parameter's values (phonetic.ts), each ORed: every word of a value must sound like a word of the
 * resource's names (one of its Double Metaphone codes, primary or alternate). A value with no sound matches
 * nothing. String modifiers make no sense on a match by sound.
 */
function phoneticClause(code: string, modifier: string | undefined, value: string, key: string): SearchClause {
  if (modifier) throw badRequest(`Modifier ':${modifier}' is not supported on '${code}': it matches names by their sound`, key);
  const alternatives = splitValues(value).map((v): SearchClause[] => {
    const words = nameWords(v).map(soundsOf).filter((sounds) => sounds.length);
    if (!words.length) return [{ kind: 'token', param: code, values: [], not: false }];
    return words.map((sounds) => ({ kind: 'token', param: code, values: sounds.map((sound) => soundToken(code, sound)), not: false }));
  });
  return { kind: 'anyOf', alternatives };
}

/**
 * `implicitSystem`: the code system of the plain codes the parameter reaches (implicitSystems.ts). They are
 * indexed without a system, so `implicitSystem|c` is read as `|c`, and `implicitSystem|` as "has a value".
 */
function tokenClause(code: string, modifier: string | undefined, value: string, key: string, implicitSystem?: string): SearchClause {
  if (modifier && modifier !== 'not') throw unsupportedModifier(key, modifier);
  const values = splitValues(value).map((v) => {
    const parts = splitUnescaped(v, '|');
    if (parts.length > 2) throw badRequest(`Invalid token '${v}' in ${key}`, key);
    if (parts.length === 1) return `${code}|*|${unescape(parts[0])}`;
    const [system, c] = parts.map(unescape);
    if (implicitSystem && system === implicitSystem) return c ? `${code}||${c}` : `#${code}`;
    if (!c) return `${code}|${system}|*`;
    return `${code}|${system}|${c}`;
  });
  return { kind: 'token', param: code, values, not: modifier === 'not' };
}

/** A token parameter on boolean elements (`active`, `deceased`): each element its expression reaches may hold a boolean. */
function isBoolean(def: SearchParamDef): boolean {
  const elements = elementPaths(def.expression);
  return elements !== undefined && elements.every((element) => elementTypes(element).includes('boolean'));
}

function requireBooleans(value: string, key: string): void {
  const bad = splitValues(value).find((v) => !['true', 'false'].includes(v.replace(/^[^|]*\|/, '')));
  if (bad !== undefined) throw badRequest(`${key} takes true or false, not '${bad.slice(0, 40)}'`, key);
}

function referenceClause(def: SearchParamDef, modifier: string | undefined, value: string, key: string, baseUrl: string): SearchClause {
  if (modifier === 'identifier') return tokenClause(`${def.code}:identifier`, undefined, value, key);
  if (modifier && !/^[A-Z][A-Za-z]+$/.test(modifier)) throw unsupportedModifier(key, modifier);
  if (modifier) requireTarget(def, modifier, key);
  const values = splitValues(value).map((raw) => {
    const v = relativeToBase(baseUrl, raw);
    if (/^https?:\/\//.test(v) || v.startsWith('urn:')) return `${def.code}|${v}`;
    const parts = v.split('/');
    if (parts.length === 1) return modifier ? `${def.code}|${modifier}/${v}` : `${def.code}|*/${v}`;
    if (parts.length === 2 || (parts.length === 4 && parts[2] === '_history')) return `${def.code}|${parts[0]}/${parts[1]}`;
    throw badRequest(`Invalid reference '${raw}' in ${key}`, key);
  });
  return { kind: 'reference', param: def.code, values };
}

function parseChain(resourceType: string, head: string, rest: string, value: string, registry: SearchParamRegistry, baseUrl: string): SearchClause {
  const [code, typeModifier] = splitModifier(head);
  const def = registry.get(resourceType, code);
  if (!def || def.type !== 'reference') throw badRequest(`Cannot chain through '${head}' on ${resourceType}: not a reference parameter`, head);
  if (typeModifier) requireTarget(def, typeModifier, head);
  const targets = typeModifier ? [typeModifier] : def.targets;
  if (targets.length !== 1) throw badRequest(`Chain '${head}.${rest}' is ambiguous: name the target type (e.g. ${code}:${targets[0] ?? 'Patient'}.${rest})`, head);
  const targetType = targets[0];
  const inner = parseClause(targetType, rest, value, registry, baseUrl);
  if (!inner) throw badRequest(`Unknown search parameter '${rest}' for ${targetType} in chain`, `${head}.${rest}`);
  return { kind: 'chain', param: code, targetType, clause: inner };
}

function parseHas(key: string, value: string, registry: SearchParamRegistry, baseUrl: string): SearchClause {
  const [, sourceType, refParam, ...rest] = key.split(':');
  const innerKey = rest.join(':');
  if (!sourceType || !refParam || !innerKey) throw badRequest(`Invalid _has parameter '${key}'`, key);
  const def = registry.get(sourceType, refParam);
  if (!def || def.type !== 'reference') throw badRequest(`Unknown reference parameter '${sourceType}:${refParam}' in _has`, key);
  const inner = parseClause(sourceType, innerKey, value, registry, baseUrl);
  if (!inner) throw badRequest(`Unknown search parameter '${innerKey}' for ${sourceType} in _has`, key);
  return { kind: 'reverseChain', sourceType, refParam, clause: inner };
}

function splitModifier(key: string): [string, string | undefined] {
  const i = key.indexOf(':');
  return i < 0 ? [key, undefined] : [key.slice(0, i), key.slice(i + 1)];
}

function unsupportedModifier(key: string, modifier: string) {
  return badRequest(`Modifier ':${modifier}' is not supported on '${key.split(':')[0]}'`, key);
}

/** Splits on commas not escaped with a backslash (3.1.1.4.7). */
function splitValues(value: string): string[] {
  return splitUnescaped(value, ',').map((v) => v.replace(/\\,/g, ','));
}

function splitUnescaped(value: string, sep: string): string[] {
  const out: string[] = [];
  let current = '';
  for (let i = 0; i < value.length; i++) {
    if (value[i] === '\\' && i + 1 < value.length) {
      current += value[i] + value[i + 1];
      i++;
    } else if (value[i] === sep) {
      out.push(current);
      current = '';
    } else current += value[i];
  }
  out.push(current);
  return out;
}

function unescape(v: string): string {
  return v.replace(/\\([\\|$,])/g, '$1');
}

function splitPrefix(v: string): [Prefix, string] {
  const p = v.slice(0, 2) as Prefix;
  return PREFIXES.has(p) && /^[a-z]{2}[-\d]/.test(v) ? [p, v.slice(2)] : ['eq', v];
}

/** `2020-01-01T10:00:00 05:00`: an offset's `+` sent unescaped reads as a space in a query string; nothing else puts one there. */
const UNESCAPED_PLUS_OFFSET = /(T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?) (\d{2}:\d{2})$/;

function parseDate(key: string, raw: string): DateCondition {
  const [prefix, v] = splitPrefix(raw);
  const range = dateRange(v.replace(UNESCAPED_PLUS_OFFSET, '$1+$2'));
  if (!range) throw badRequest(`Invalid date '${raw}' in ${key}`, key);
  return { prefix, ...range };
}

function parseNumber(key: string, raw: string, quantity: boolean): NumberCondition {
  const [prefix, rest] = splitPrefix(raw);
  const [num, system, unit] = quantity ? rest.split('|') : [rest];
  if (!/^-?\d+(\.\d+)?([eE][-+]?\d+)?$/.test(num)) throw badRequest(`Invalid number '${raw}' in ${key}`, key);
  const decimals = num.includes('.') ? num.split('.')[1].replace(/[eE].*/, '').length : 0;
  return { prefix, value: Number(num), tolerance: 0.5 * 10 ** -decimals, system: system || undefined, unit: unit || undefined };
}
