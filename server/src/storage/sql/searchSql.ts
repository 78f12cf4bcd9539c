import { badRequest } from '../../fhir/outcomes.js';
import { undatedToken } from '../../fhir/search/indexer.js';
import { type DateCondition, type NumberCondition, type Prefix, type SearchClause, type SearchQuery, SORT_KEY_KINDS, type SortPosition, type SortRule } from '../FhirStore.js';

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
 *
 * Every statement returns `content`, `id` and the row's sort keys as text (`k0`...), from which the
 * page's cursors are made. A page read from a cursor starts after (or, read backwards, before) that
 * position: a condition on the sort keys that an index in the sort order bounds, where an offset
 * counts rows that may since have stopped matching or been added.
 */
export type SearchPlan =
  | { kind: 'single'; page: Statement }
  | {
      kind: 'dateOrdered';
      /** Matches with the parameter, in the walk's order: from `from` (a cursor's position) when given, else past `offset`. */
      dated: Section;
      /** Matches without it, likewise. */
      undated: Section;
      /** How many matches have the parameter (needed only when an offset starts past them). */
      datedCount: Statement;
    };
type Section = (limit: number, offset: number, from?: SortPosition) => Statement;

/** A sort rule as SQL: the key's expression, its type, whether a match may lack it (sorted last, as NULLS LAST). */
interface SortKey {
  sql: string;
  type: (typeof SQL_TYPES)[keyof typeof SQL_TYPES];
  descending: boolean;
  nullable: boolean;
}

export function planSearch(query: SearchQuery): SearchPlan {
  const [first, ...rest] = query.sort;
  const table = tableOf(query.resourceType);
  const backward = query.cursor?.direction === 'before';
  const at = query.cursor?.at;
  const keysOf = (rules: SortRule[], params: Params) => rules.map((rule) => sortKey(rule, query.resourceType, params));
  const namesFew = query.clauses.some(namesFewResources);
  if (first?.kind === 'date' && query.resourceType !== AUDIT_EVENT && !namesFew) {
    const undated: Section = (limit, offset, from) =>
      statement((params) => {
        const keys = [UNDATED, ...keysOf(rest, params)];
        const after = from ? ` AND ${keysetSql(keys.slice(1), { keys: from.keys.slice(1), id: from.id }, backward, params)}` : '';
        return pageSql(`SELECT ${columns(keys)} FROM resources r WHERE ${buildWhere(query, params)} AND r.tokens @> ARRAY[${params.add(undatedToken(first.param))}::text]${after} ORDER BY ${orderSql(keys, backward)} LIMIT ${params.add(limit)} OFFSET ${params.add(offset)}`, keys, backward);
      });
    return {
      kind: 'dateOrdered',
      dated: (limit, offset, from) => statement((params) => datedSql(query, first, keysOf(rest, params), params, { limit, offset, from, backward })),
      undated,
      datedCount: statement((params) => `SELECT count(*)::int AS n FROM resources r WHERE ${buildWhere(query, params)} AND ${hasDate(first.param, params)}`),
    };
  }
  // With a clause that names few resources, they are found through its index first, then sorted (namesFewResources).
  return {
    kind: 'single',
    page: statement((params) => {
      const keys = keysOf(query.sort, params);
      const source = namesFew ? `(SELECT * FROM ${table} r WHERE ${buildWhere(query, params)} OFFSET 0) r` : `${table} r`;
      const where = [namesFew ? '' : buildWhere(query, params), at ? keysetSql(keys, at, backward, params) : ''].filter(Boolean);
      return pageSql(`SELECT ${columns(keys)} FROM ${source}${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY ${orderSql(keys, backward)} LIMIT ${params.add(query.count + 1)} OFFSET ${params.add(at ? 0 : query.offset)}`, keys, backward);
    }),
  };
}

/** The first key of the matches without the sort's date parameter: none. */
const UNDATED: SortKey = { sql: 'NULL::timestamptz', type: 'timestamptz', descending: false, nullable: true };

/** The page's columns: its JSON, its id, and its sort keys `k0`... (ordered by alias, so each is computed once). */
const columns = (keys: SortKey[]) => ['r.content::text AS content', 'r.id AS id', ...keys.map((key, i) => `${key.sql} AS k${i}`)].join(', ');

/**
 * ORDER BY the keys in the walk's direction, then the id. A key every match has keeps the NULLS placement
 * of its direction's default, which a btree index walked either way gives (`d.lo`, `last_updated`, `id`).
 */
function orderSql(keys: SortKey[], backward: boolean, alias = (i: number) => `k${i}`, id = 'id'): string {
  const nulls = backward ? ' NULLS FIRST' : ' NULLS LAST';
  const ordered = keys.map((key, i) => `${alias(i)} ${key.descending !== backward ? 'DESC' : 'ASC'}${key.nullable ? nulls : ''}`);
  return [...ordered, `${id} ${backward ? 'DESC' : 'ASC'}`].join(', ');
}

/**
 * The page's rows with their keys as text, in the walk's order. Timestamps are written in UTC with their
 * microseconds, so a cursor names exactly the instant the row sorts by, whatever the session's time zone.
 */
function pageSql(inner: string, keys: SortKey[], backward: boolean): string {
  const text = keys.map((key, i) => `${textOf(`p.k${i}`, key.type)} AS k${i}`);
  return `SELECT ${['p.content', 'p.id', ...text].join(', ')} FROM (${inner}) p ORDER BY ${orderSql(keys, backward, (i) => `p.k${i}`, 'p.id')}`;
}

function textOf(sql: string, type: SortKey['type']): string {
  if (type === 'timestamptz') return instantText(sql);
  return type === 'numeric' ? `${sql}::text` : sql;
}

/** A timestamp as a cursor carries it: UTC, with its microseconds. */
export const instantText = (sql: string): string => `to_char(${sql} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;

/**
 * The rows past `at` in the walk's order (keys, then id): for each key, a row is past when its key is,
 * or when it ties and the next key decides. A match without a key sorts after every match with one
 * (NULLS LAST), so walking backwards it comes first. The first key also bounds the walk (`>=`), where
 * every match has it or the walk is backwards, so that an index in the sort order starts there.
 */
function keysetSql(keys: SortKey[], at: SortPosition, backward: boolean, params: Params, id = 'r.id'): string {
  let past = `${id} ${backward ? '<' : '>'} ${params.add(at.id)}::text`;
  let bound = '';
  for (let i = keys.length - 1; i >= 0; i--) {
    const key = keys[i];
    const raw = at.keys[i];
    const op = key.descending !== backward ? '<' : '>';
    if (raw === null) {
      past = backward ? `(${key.sql} IS NOT NULL OR (${key.sql} IS NULL AND ${past}))` : `(${key.sql} IS NULL AND ${past})`;
      continue;
    }
    const value = `${params.add(raw)}::${key.type}`;
    const beyond = key.nullable && !backward ? `(${key.sql} ${op} ${value} OR ${key.sql} IS NULL)` : `${key.sql} ${op} ${value}`;
    past = `(${beyond} OR (${key.sql} = ${value} AND ${past}))`;
    if (i === 0 && (!key.nullable || backward)) bound = `${key.sql} ${op}= ${value} AND `;
  }
  return `${bound}${past}`;
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
function datedSql(query: SearchQuery, first: SortRule, thenBy: SortKey[], params: Params, page: { limit: number; offset: number; from?: SortPosition; backward: boolean }): string {
  const col = first.descending ? 'hi' : 'lo';
  const other = first.descending ? '>' : '<';
  const keys: SortKey[] = [{ sql: `d.${col}`, type: 'timestamptz', descending: first.descending, nullable: false }, ...thenBy];
  const from = page.from ? ` AND ${keysetSql(keys, page.from, page.backward, params)}` : '';
  return pageSql(`SELECT ${columns(keys)} FROM sp_date d JOIN resources r ON r.res_type = d.res_type AND r.id = d.id
    WHERE d.param = ${params.add(first.param)} AND ${buildWhere(query, params)}
      AND NOT EXISTS (SELECT 1 FROM sp_date o WHERE o.res_type = d.res_type AND o.id = d.id AND o.param = d.param AND (o.${col} ${other} d.${col} OR (o.${col} = d.${col} AND o.ctid < d.ctid)))${from}
    ORDER BY ${orderSql(keys, page.backward)} LIMIT ${params.add(page.limit)} OFFSET ${params.add(page.offset)}`, keys, page.backward);
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
    case 'patientCompartment': {
      const t = `${alias}p`;
      const patients = `SELECT substr(c, 9) FROM unnest(${r}.compartments) c WHERE c LIKE 'Patient/%'`;
      const held = clause.patient.map((c) => ` AND ${clauseSql(c, t, params)}`).join('');
      // A record in no patient's compartment is about no patient: it is not held (as guard.ts aboutVisiblePatient judges it).
      return `(cardinality(${r}.compartments) = 0 OR EXISTS (SELECT 1 FROM ${tableOf('Patient')} ${t} WHERE ${t}.res_type = 'Patient' AND NOT ${t}.deleted AND ${t}.id = ANY (ARRAY(${patients}))${held}))`;
    }
    case 'anyOf':
      if (!clause.alternatives.length) return 'false';
      return `(${clause.alternatives.map((all) => (all.length ? `(${all.map((c) => clauseSql(c, r, params)).join(' AND ')})` : 'true')).join(' OR ')})`;
  }
}

/** Whether a resource has a value for the parameter: the `#param` token the indexer adds (GIN-indexed). */
const hasParam = (param: string, r: string, params: Params) => `(${r}.tokens @> ARRAY[${params.add(`#${param}`)}::text])`;

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

const SQL_TYPES = { instant: 'timestamptz', decimal: 'numeric', text: 'text' } as const;

/** A multi-valued parameter sorts by its earliest value ascending, its latest descending; a match without one last. */
function sortKey(rule: SortRule, resourceType: string, params: Params): SortKey {
  const key = (sql: string, nullable = true): SortKey => ({ sql, type: SQL_TYPES[SORT_KEY_KINDS[rule.kind]], descending: rule.descending, nullable });
  if (resourceType === AUDIT_EVENT && rule.kind === 'date') return key('r.recorded', false);
  if (resourceType === AUDIT_EVENT && (rule.kind === 'string' || rule.kind === 'number')) throw badRequest(`AuditEvents cannot be sorted by '${rule.param}'`);
  const agg = rule.descending ? 'max' : 'min';
  const p = () => params.add(rule.param);
  switch (rule.kind) {
    case 'id':
      return key('r.id', false);
    case 'lastUpdated':
      return key('r.last_updated', false);
    case 'date':
      return key(`(SELECT ${agg}(${rule.descending ? 'd.hi' : 'd.lo'}) FROM sp_date d WHERE d.res_type = r.res_type AND d.id = r.id AND d.param = ${p()})`);
    case 'string':
      return key(`(SELECT ${agg}(s.value) FROM sp_string s WHERE s.res_type = r.res_type AND s.id = r.id AND s.param = ${p()})`);
    case 'number':
      return key(`(SELECT ${agg}(n.value) FROM sp_number n WHERE n.res_type = r.res_type AND n.id = r.id AND n.param = ${p()})`);
    case 'token':
      return key(`(SELECT ${agg}(t) FROM unnest(r.tokens) t WHERE t LIKE ${params.add(`${rule.param}|*|%`)})`);
  }
}
