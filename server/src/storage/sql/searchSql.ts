import { badRequest } from '../../fhir/outcomes.js';
import { type DateCondition, META_TOKEN_PARAMS, type NumberCondition, type Prefix, type SearchClause, type SearchQuery, type SortRule } from '../FhirStore.js';

/**
 * AuditEvents are kept in their own append-only table (migration 4), with the columns of `resources`
 * that searches read; their one date parameter (`date`, when the event was recorded) is a column.
 */
export const AUDIT_EVENT = 'AuditEvent';
export const tableOf = (resourceType: string): string => (resourceType === AUDIT_EVENT ? 'audit_events' : 'resources');

/** Collects positional parameters while a statement is built. */
export class Params {
  readonly values: unknown[] = [];
  add(value: unknown): string {
    this.values.push(value);
    return `$${this.values.length}`;
  }
}

/** WHERE of a search over the table of its type (`tableOf`), aliased `r`. */
export function buildWhere(query: SearchQuery, params: Params): string {
  const conditions = [`r.res_type = ${params.add(query.resourceType)}`, 'NOT r.deleted'];
  for (const clause of query.clauses) conditions.push(clauseOf(query.resourceType)(clause, 'r', params));
  return conditions.join(' AND ');
}

export interface Statement {
  sql: string;
  values: unknown[];
}

/**
 * How a page of a search is read. Most searches are one statement. A search sorted first by a date
 * parameter walks that parameter's date index in order and stops once the page is full, so its cost
 * does not grow with the number of matches (looking up every match's date and sorting them took over
 * a second at 1M resources). Resources without the parameter come after the dated ones (as NULLS LAST
 * would put them) and are read only when the dated ones do not fill the page.
 */
export type SearchPlan =
  | { kind: 'single'; page: Statement }
  | {
      kind: 'dateOrdered';
      /** The dated matches of the page (LIMIT count + 1 OFFSET offset). */
      dated: Statement;
      /** How many matches have the parameter (needed only when the page starts past them). */
      datedCount: Statement;
      undated(limit: number, offset: number): Statement;
    };

export function planSearch(query: SearchQuery): SearchPlan {
  const [first, ...rest] = query.sort;
  const table = tableOf(query.resourceType);
  const orderBy = (rules: SortRule[], params: Params) => [...rules.map((rule) => sortSql(rule, query.resourceType, params)), 'r.id'].join(', ');
  if (query.clauses.some(namesFewResources)) {
    return {
      kind: 'single',
      page: statement((params) => `SELECT r.content::text AS content FROM (SELECT * FROM ${table} r WHERE ${buildWhere(query, params)} OFFSET 0) r ORDER BY ${orderBy(query.sort, params)} LIMIT ${params.add(query.count + 1)} OFFSET ${params.add(query.offset)}`),
    };
  }
  if (first?.kind === 'date' && query.resourceType !== AUDIT_EVENT) {
    return {
      kind: 'dateOrdered',
      dated: statement((params) => datedSql(query, first, orderBy(rest, params), params, query.count + 1, query.offset)),
      datedCount: statement((params) => `SELECT count(*)::int AS n FROM resources r WHERE ${buildWhere(query, params)} AND ${hasDate(first.param, params)}`),
      undated: (limit, offset) =>
        statement((params) => `SELECT r.content::text AS content FROM resources r WHERE ${buildWhere(query, params)} AND NOT ${hasDate(first.param, params)} ORDER BY ${orderBy(rest, params)} LIMIT ${params.add(limit)} OFFSET ${params.add(offset)}`),
    };
  }
  return {
    kind: 'single',
    page: statement((params) => `SELECT r.content::text AS content FROM ${table} r WHERE ${buildWhere(query, params)} ORDER BY ${orderBy(query.sort, params)} LIMIT ${params.add(query.count + 1)} OFFSET ${params.add(query.offset)}`),
  };
}

/**
 * A clause that picks out a few resources: an id, an identifier, a reference, a compartment. The
 * planner cannot know that a value it has never seen (a new identifier) matches nothing, and its
 * estimate for one made it walk every ServiceRequest in id order looking for a first match (170 ms
 * at 100k resources). With such a clause the matches are found through the index first, then sorted
 * (the OFFSET 0 subquery keeps the planner from walking the sort order instead).
 */
function namesFewResources(clause: SearchClause): boolean {
  switch (clause.kind) {
    case 'id':
      return !clause.not;
    case 'reference':
    case 'compartment':
      return true;
    case 'token':
      return !clause.not && /(^|-)identifier$/.test(clause.param);
    default:
      return false;
  }
}

function statement(build: (params: Params) => string): Statement {
  const params = new Params();
  const sql = build(params);
  return { sql, values: params.values };
}

const hasDate = (param: string, params: Params) => `EXISTS (SELECT 1 FROM sp_date o WHERE o.res_type = r.res_type AND o.id = r.id AND o.param = ${params.add(param)})`;

/**
 * A multi-valued parameter sorts by its earliest start (ascending) or latest end (descending): only
 * that one index row of a resource joins (ties between equal rows broken by their physical position).
 */
function datedSql(query: SearchQuery, first: SortRule, thenBy: string, params: Params, limit: number, offset: number): string {
  const col = first.descending ? 'hi' : 'lo';
  const dir = first.descending ? 'DESC' : 'ASC';
  const other = first.descending ? '>' : '<';
  return `SELECT r.content::text AS content FROM sp_date d JOIN resources r ON r.res_type = d.res_type AND r.id = d.id
    WHERE d.param = ${params.add(first.param)} AND ${buildWhere(query, params)}
      AND NOT EXISTS (SELECT 1 FROM sp_date o WHERE o.res_type = d.res_type AND o.id = d.id AND o.param = d.param AND (o.${col} ${other} d.${col} OR (o.${col} = d.${col} AND o.ctid < d.ctid)))
    ORDER BY d.${col} ${dir}, ${thenBy} LIMIT ${params.add(limit)} OFFSET ${params.add(offset)}`;
}

type ClauseSql = (clause: SearchClause, alias: string, params: Params) => string;
const clauseOf = (resourceType: string): ClauseSql => (resourceType === AUDIT_EVENT ? auditClauseSql : clauseSql);

/** An AuditEvent's date is its `recorded` column; it has no string or number parameters (see the registry). */
function auditClauseSql(clause: SearchClause, alias: string, params: Params): string {
  switch (clause.kind) {
    case 'date':
      if (clause.param !== 'date') throw badRequest(`AuditEvent has no date parameter '${clause.param}'`);
      return `(${clause.values.map((v) => dateSql(v, `${alias}.recorded`, `${alias}.recorded`, params)).join(' OR ')})`;
    case 'string':
    case 'number':
      throw badRequest(`AuditEvent searches take tokens, references and dates, not '${clause.param}'`);
    default:
      return clauseSql(clause, alias, params);
  }
}

function clauseSql(clause: SearchClause, alias: string, params: Params): string {
  const r = alias;
  switch (clause.kind) {
    case 'id':
      return `${clause.not ? 'NOT ' : ''}${r}.id = ANY(${params.add(clause.ids)}::text[])`;
    case 'token':
      return `${clause.not ? 'NOT ' : ''}(${r}.tokens && ${params.add(clause.values)}::text[])`;
    case 'missing':
      return `${clause.missing ? 'NOT ' : ''}${hasParam(clause.param, r, params)}`;
    case 'reference':
      return `${r}.refs && ${params.add(clause.values)}::text[]`;
    case 'compartment':
      return `${r}.compartments @> ARRAY[${params.add(clause.compartment)}::text]`;
    case 'string':
      return stringSql(clause, r, params);
    case 'date':
      return `EXISTS (SELECT 1 FROM sp_date d WHERE d.res_type = ${r}.res_type AND d.id = ${r}.id AND d.param = ${params.add(clause.param)} AND (${clause.values.map((v) => dateSql(v, 'd.lo', 'd.hi', params)).join(' OR ')}))`;
    case 'lastUpdated':
      return `(${clause.values.map((v) => dateSql(v, `${r}.last_updated`, `${r}.last_updated`, params)).join(' OR ')})`;
    case 'number':
      return `EXISTS (SELECT 1 FROM sp_number n WHERE n.res_type = ${r}.res_type AND n.id = ${r}.id AND n.param = ${params.add(clause.param)} AND (${clause.values.map((v) => numberSql(v, params)).join(' OR ')}))`;
    case 'chain': {
      const t = `${alias}c`;
      const prefix = params.add(`${clause.param}|${clause.targetType}/`);
      return `${r}.refs && ARRAY(SELECT ${prefix} || ${t}.id FROM ${tableOf(clause.targetType)} ${t} WHERE ${t}.res_type = ${params.add(clause.targetType)} AND NOT ${t}.deleted${inCompartment(clause, t, params)} AND ${clauseOf(clause.targetType)(clause.clause, t, params)})`;
    }
    case 'reverseChain': {
      const t = `${alias}h`;
      return `EXISTS (SELECT 1 FROM ${tableOf(clause.sourceType)} ${t} WHERE ${t}.res_type = ${params.add(clause.sourceType)} AND NOT ${t}.deleted${inCompartment(clause, t, params)} AND ${t}.refs @> ARRAY[${params.add(`${clause.refParam}|`)} || ${r}.res_type || '/' || ${r}.id] AND ${clauseOf(clause.sourceType)(clause.clause, t, params)})`;
    }
    case 'anyOf':
      if (!clause.alternatives.length) return 'false';
      return `(${clause.alternatives.map((all) => (all.length ? `(${all.map((c) => clauseSql(c, r, params)).join(' AND ')})` : 'true')).join(' OR ')})`;
  }
}

/**
 * Whether a resource has a value for the parameter: the `#param` token the indexer adds, or for the meta
 * parameters (indexed without it) any of their tokens, found by prefix (no index: `:missing` reads every row anyway).
 */
function hasParam(param: string, r: string, params: Params): string {
  if (!META_TOKEN_PARAMS.has(param)) return `(${r}.tokens @> ARRAY[${params.add(`#${param}`)}::text])`;
  return `EXISTS (SELECT 1 FROM unnest(${r}.tokens) t WHERE t LIKE ${params.add(`${param.replace(/_/g, '\\_')}|%`)})`;
}

const inCompartment = (clause: { compartment?: string }, t: string, params: Params) =>
  clause.compartment ? ` AND ${t}.compartments @> ARRAY[${params.add(clause.compartment)}::text]` : '';

function stringSql(clause: Extract<SearchClause, { kind: 'string' }>, r: string, params: Params): string {
  const tests = clause.values.map((value) => {
    if (clause.mode === 'exact') return `s.exact = ${params.add(value)}`;
    const escaped = value.replace(/[\\%_]/g, (c) => `\\${c}`);
    return `s.value LIKE ${params.add(clause.mode === 'contains' ? `%${escaped}%` : `${escaped}%`)}`;
  });
  return `EXISTS (SELECT 1 FROM sp_string s WHERE s.res_type = ${r}.res_type AND s.id = ${r}.id AND s.param = ${params.add(clause.param)} AND (${tests.join(' OR ')}))`;
}

/** FHIR R4 search prefixes on ranges (3.1.1.4.2): the resource range [lo, hi] against the value range. */
function dateSql(v: DateCondition, lo: string, hi: string, params: Params): string {
  // Parameters are added only when used: PostgreSQL cannot type an unused parameter.
  const at = (d: Date) => `${params.add(d.toISOString())}::timestamptz`;
  switch (v.prefix) {
    case 'eq':
      return `(${lo} >= ${at(v.lo)} AND ${hi} <= ${at(v.hi)})`;
    case 'ne':
      return `NOT (${lo} >= ${at(v.lo)} AND ${hi} <= ${at(v.hi)})`;
    case 'gt':
      return `${hi} > ${at(v.hi)}`;
    case 'lt':
      return `${lo} < ${at(v.lo)}`;
    case 'ge':
      return `${hi} >= ${at(v.lo)}`;
    case 'le':
      return `${lo} <= ${at(v.hi)}`;
    case 'sa':
      return `${lo} > ${at(v.hi)}`;
    case 'eb':
      return `${hi} < ${at(v.lo)}`;
    case 'ap': {
      // Approximately: within 10% of the distance from now, at least a day (3.1.1.4.2).
      const gap = Math.max(Math.abs(Date.now() - v.lo.getTime()) * 0.1, 86_400_000);
      return `(${lo} <= ${at(new Date(v.hi.getTime() + gap))} AND ${hi} >= ${at(new Date(v.lo.getTime() - gap))})`;
    }
  }
}

function numberSql(v: NumberCondition, params: Params): string {
  const unit = [
    v.system ? `n.system = ${params.add(v.system)}` : '',
    v.unit ? `n.unit = ${params.add(v.unit)}` : '',
  ].filter(Boolean);
  const num = (x: number) => `${params.add(x)}::numeric`;
  const range = () => `n.value >= ${num(v.value - v.tolerance)} AND n.value < ${num(v.value + v.tolerance)}`;
  const tests: Record<Prefix, () => string> = {
    eq: () => `(${range()})`,
    ne: () => `NOT (${range()})`,
    gt: () => `n.value > ${num(v.value)}`,
    lt: () => `n.value < ${num(v.value)}`,
    ge: () => `n.value >= ${num(v.value)}`,
    le: () => `n.value <= ${num(v.value)}`,
    sa: () => `n.value > ${num(v.value)}`,
    eb: () => `n.value < ${num(v.value)}`,
    ap: () => `(n.value >= ${num(Math.min(v.value * 0.9, v.value * 1.1))} AND n.value <= ${num(Math.max(v.value * 0.9, v.value * 1.1))})`,
  };
  const test = tests[v.prefix]();
  return [test, ...unit].join(' AND ');
}

function sortSql(rule: SortRule, resourceType: string, params: Params): string {
  const dir = rule.descending ? 'DESC' : 'ASC';
  if (resourceType === AUDIT_EVENT && rule.kind === 'date') return `r.recorded ${dir}`;
  if (resourceType === AUDIT_EVENT && (rule.kind === 'string' || rule.kind === 'number')) throw badRequest(`AuditEvents cannot be sorted by '${rule.param}'`);
  const agg = rule.descending ? 'max' : 'min';
  const p = () => params.add(rule.param);
  switch (rule.kind) {
    case 'id':
      return `r.id ${dir}`;
    case 'lastUpdated':
      return `r.last_updated ${dir}`;
    case 'date':
      return `(SELECT ${agg}(${rule.descending ? 'd.hi' : 'd.lo'}) FROM sp_date d WHERE d.res_type = r.res_type AND d.id = r.id AND d.param = ${p()}) ${dir} NULLS LAST`;
    case 'string':
      return `(SELECT ${agg}(s.value) FROM sp_string s WHERE s.res_type = r.res_type AND s.id = r.id AND s.param = ${p()}) ${dir} NULLS LAST`;
    case 'number':
      return `(SELECT ${agg}(n.value) FROM sp_number n WHERE n.res_type = r.res_type AND n.id = r.id AND n.param = ${p()}) ${dir} NULLS LAST`;
    case 'token':
      return `(SELECT ${agg}(t) FROM unnest(r.tokens) t WHERE t LIKE ${params.add(`${rule.param}|*|%`)}) ${dir} NULLS LAST`;
  }
}
