import { randomUUID } from 'node:crypto';
import type { Resource } from 'fhir/r4.js';
import { conflict, gone, notFound, preconditionFailed } from '../../fhir/outcomes.js';
import { appendOnlyRefusal, isAppendOnlyType } from '../../fhir/resourceTypes.js';
import type { Indexer, ResourceIndex } from '../../fhir/search/indexer.js';
import { withinFhirYears } from '../../fhir/search/dates.js';
import type { FhirStore, HistoryEntry, HistoryQuery, OutboxMessage, SearchQuery, SearchResult, SortPosition, SubscriptionEventRecord, WriteHook } from '../FhirStore.js';
import type { SqlConnection } from './connection.js';
import { GroupCommit } from './groupCommit.js';
import type { ReadCache } from './readCache.js';
import type { CachedPage, SearchCache } from './searchCache.js';
import { AUDIT_EVENT, buildWhere, instantText, Params, planSearch, type Statement, tableOf } from './searchSql.js';

interface CurrentRow {
  version_id: number;
  deleted: boolean;
}

/**
 * One statement per written version: the current row, its history row and its search-index rows
 * (the old index rows deleted on an update). Data-modifying CTEs share one snapshot, so the deletes
 * never see the rows inserted beside them. Nothing is written unless the current row was (a create
 * that lost a race writes nothing and reports `written = 0`).
 */
const WRITE_VERSION_SQL = (replacing: boolean) => `
  WITH w AS (
    ${replacing
      ? `UPDATE resources SET version_id = $3::int, last_updated = $4::timestamptz, deleted = false, content = $5::json, tokens = $6::text[], refs = $7::text[], compartments = $8::text[]
         WHERE res_type = $1::text AND id = $2::text RETURNING 1`
      : `INSERT INTO resources (res_type, id, version_id, last_updated, content, tokens, refs, compartments)
         VALUES ($1::text, $2::text, $3::int, $4::timestamptz, $5::json, $6::text[], $7::text[], $8::text[])
         ON CONFLICT (res_type, id) DO NOTHING RETURNING 1`}
  ),
  ${replacing
    ? `ds AS (DELETE FROM sp_string WHERE res_type = $1::text AND id = $2::text),
  dd AS (DELETE FROM sp_date WHERE res_type = $1::text AND id = $2::text),
  dn AS (DELETE FROM sp_number WHERE res_type = $1::text AND id = $2::text),`
    : ''}
  h AS (INSERT INTO resource_history (res_type, id, version_id, last_updated, content)
        SELECT $1::text, $2::text, $3::int, $4::timestamptz, $5::json FROM w),
  s AS (INSERT INTO sp_string (res_type, id, param, value, exact)
        SELECT $1::text, $2::text, u.p, u.v, u.e FROM unnest($9::text[], $10::text[], $11::text[]) AS u(p, v, e) WHERE EXISTS (SELECT 1 FROM w)),
  d AS (INSERT INTO sp_date (res_type, id, param, lo, hi)
        SELECT $1::text, $2::text, u.p, u.lo, u.hi FROM unnest($12::text[], $13::timestamptz[], $14::timestamptz[]) AS u(p, lo, hi) WHERE EXISTS (SELECT 1 FROM w)),
  n AS (INSERT INTO sp_number (res_type, id, param, value, system, unit)
        SELECT $1::text, $2::text, u.p, u.v, u.s, u.un FROM unnest($15::text[], $16::numeric[], $17::text[], $18::text[]) AS u(p, v, s, un) WHERE EXISTS (SELECT 1 FROM w))
  SELECT count(*)::int AS written FROM w`;
const WRITE_NEW = WRITE_VERSION_SQL(false);
const WRITE_REPLACING = WRITE_VERSION_SQL(true);
const writeVersionSql = (replacing: boolean) => (replacing ? WRITE_REPLACING : WRITE_NEW);

/**
 * Many new resources in one statement: their rows, history rows and search-index rows. The content
 * is sent once for both tables; index arrays travel joined by U+001F (text[][] cannot be ragged).
 */
const INSERT_MANY_SQL = `
  WITH r AS (
    INSERT INTO resources (res_type, id, version_id, last_updated, content, tokens, refs, compartments)
    SELECT t, i, 1, $3::timestamptz, c::json, string_to_array(tk, chr(31)), string_to_array(rf, chr(31)), string_to_array(cp, chr(31))
    FROM unnest($1::text[], $2::text[], $4::text[], $5::text[], $6::text[], $7::text[]) AS u(t, i, c, tk, rf, cp)
  ),
  h AS (
    INSERT INTO resource_history (res_type, id, version_id, last_updated, content)
    SELECT t, i, 1, $3::timestamptz, c::json FROM unnest($1::text[], $2::text[], $4::text[]) AS u(t, i, c)
  ),
  ${indexRowsSql(8)}`;

/** The search-index rows of many resources (strings, dates, numbers), their parameters from `$first` on. */
function indexRowsSql(first: number): string {
  const p = (n: number) => `$${first + n}`;
  return `s AS (INSERT INTO sp_string (res_type, id, param, value, exact) SELECT * FROM unnest(${p(0)}::text[], ${p(1)}::text[], ${p(2)}::text[], ${p(3)}::text[], ${p(4)}::text[])),
  d AS (INSERT INTO sp_date (res_type, id, param, lo, hi) SELECT * FROM unnest(${p(5)}::text[], ${p(6)}::text[], ${p(7)}::text[], ${p(8)}::timestamptz[], ${p(9)}::timestamptz[]))
  INSERT INTO sp_number (res_type, id, param, value, system, unit) SELECT * FROM unnest(${p(10)}::text[], ${p(11)}::text[], ${p(12)}::text[], ${p(13)}::numeric[], ${p(14)}::text[], ${p(15)}::text[])`;
}
const INDEX_ROWS_SQL = `WITH ${indexRowsSql(1)}`;

/** Many AuditEvents in one statement: one row each in the append-only audit table (no history, no index rows). */
const INSERT_AUDIT_EVENTS_SQL = `
  INSERT INTO audit_events (id, last_updated, recorded, content, tokens, refs, compartments)
  SELECT i, $2::timestamptz, rc, c::json, string_to_array(tk, chr(31)), string_to_array(rf, chr(31)), string_to_array(cp, chr(31))
  FROM unnest($1::text[], $3::timestamptz[], $4::text[], $5::text[], $6::text[], $7::text[]) AS u(i, rc, c, tk, rf, cp)
  ON CONFLICT (id) DO NOTHING RETURNING id`;

/** When an AuditEvent was recorded (its `date` parameter), as the audit table's `recorded` column holds it. */
const recordedOf = (index: ResourceIndex): string | undefined => index.dates.find((d) => d.param === 'date')?.lo.toISOString();
const REINDEX_BATCH = 500;

/** The token, reference and compartment arrays of each resource, each joined by U+001F. */
function joinedArrays(indexes: ResourceIndex[]): string[][] {
  return [indexes.map((x) => x.tokens.join('\u001f')), indexes.map((x) => x.refs.join('\u001f')), indexes.map((x) => x.compartments.join('\u001f'))];
}

/** Parameters of indexRowsSql: each index row with the type and id of its resource. */
function indexRowParams(resources: Resource[], indexes: ResourceIndex[]): unknown[] {
  const rows = <T>(pick: (index: ResourceIndex) => T[]) => {
    const types: string[] = [];
    const ids: string[] = [];
    const values: T[] = [];
    resources.forEach((r, i) => {
      for (const value of pick(indexes[i])) (types.push(r.resourceType), ids.push(r.id!), values.push(value));
    });
    return { types, ids, values };
  };
  const strings = rows((x) => x.strings);
  const dates = rows((x) => x.dates);
  const numbers = rows((x) => x.numbers);
  return [
    strings.types, strings.ids, strings.values.map((v) => v.param), strings.values.map((v) => v.value), strings.values.map((v) => v.exact),
    dates.types, dates.ids, dates.values.map((v) => v.param), dates.values.map((v) => clampDate(v.lo)), dates.values.map((v) => clampDate(v.hi)),
    numbers.types, numbers.ids, numbers.values.map((v) => v.param), numbers.values.map((v) => v.value), numbers.values.map((v) => v.system), numbers.values.map((v) => v.unit),
  ];
}

/** The FhirStore over PostgreSQL SQL; the same code runs on PGlite and on a PostgreSQL server. */
export class SqlFhirStore implements FhirStore {
  constructor(
    private readonly conn: SqlConnection,
    private readonly indexer: Indexer,
    private readonly hooks: WriteHook[] = [],
    /** Only for a single-process store (PGlite); shared by the transaction-bound instances. */
    private readonly cache?: ReadCache,
    /** Pages of directory searches (both drivers, see SearchCache); shared likewise. */
    private readonly searchCache?: SearchCache,
  ) {}

  /** Keys this (transaction-bound) instance wrote: their uncommitted content never enters the cache. */
  private readonly written = new Set<string>();
  /** Types this instance wrote: its searches of them neither use nor fill the search cache. */
  private readonly writtenTypes = new Set<string>();
  /** Types whose reads and searches in this transaction skip the shared caches (readThrough). */
  private readonly freshTypes = new Set<string>();
  /** Cached types written here whose change the other processes have yet to be told of. */
  private readonly unannounced = new Set<string>();

  addWriteHook(hook: WriteHook): void {
    this.hooks.push(hook);
  }

  private async runHooks(change: Parameters<WriteHook>[1]): Promise<void> {
    for (const hook of this.hooks) await hook(this, change);
  }

  async find(resourceType: string, id: string): Promise<Resource | undefined> {
    const current = await this.currentContent(resourceType, id);
    return typeof current === 'string' ? parseContent(current) : undefined;
  }

  async read(resourceType: string, id: string): Promise<Resource> {
    const current = await this.currentContent(resourceType, id);
    if (current === undefined) throw notFound(`${resourceType}/${id} not found`);
    if (current === null) throw gone(`${resourceType}/${id} was deleted`);
    return parseContent(current);
  }

  /**
   * The current JSON of a resource, `null` if deleted, `undefined` if never stored. The cache serves
   * and fills inside transactions too: PGlite runs one transaction at a time, so what a transaction
   * reads is committed unless it wrote that resource itself, and those keys are never filled.
   */
  private async currentContent(resourceType: string, id: string): Promise<string | null | undefined> {
    const key = `${resourceType}/${id}`;
    const cached = this.cache?.get(key);
    if (cached !== undefined) return cached;
    const readKey = this.cache || this.skipsSharedCache(resourceType) ? undefined : this.searchCache?.keyOfRead(resourceType, id);
    const page = readKey === undefined ? undefined : this.searchCache!.get(readKey);
    if (page) return page.contents[0];
    const startedAt = this.cache?.begin() ?? 0;
    const typeStartedAt = readKey === undefined ? '' : this.searchCache!.begin(resourceType);
    const { rows } = await this.conn.query(`SELECT deleted, content::text AS content FROM ${tableOf(resourceType)} WHERE res_type = $1 AND id = $2`, [resourceType, id]);
    const row = rows[0];
    if (!row) return undefined;
    const content = row.deleted ? null : String(row.content);
    if (!this.written.has(key)) this.cache?.fill(key, content, startedAt);
    if (readKey !== undefined && content !== null) this.searchCache!.fill(readKey, resourceType, { contents: [content], hasMore: false }, typeStartedAt);
    return content;
  }

  async vread(resourceType: string, id: string, versionId: string): Promise<Resource> {
    const version = Number(versionId);
    if (!Number.isInteger(version) || version < 1) throw notFound(`${resourceType}/${id}/_history/${versionId} not found`);
    if (resourceType === AUDIT_EVENT) {
      const current = version === 1 ? await this.find(resourceType, id) : undefined;
      if (!current) throw notFound(`${resourceType}/${id}/_history/${versionId} not found`);
      return current;
    }
    const { rows } = await this.conn.query(
      'SELECT deleted, content::text AS content FROM resource_history WHERE res_type = $1 AND id = $2 AND version_id = $3',
      [resourceType, id, version],
    );
    const row = rows[0];
    if (!row) throw notFound(`${resourceType}/${id}/_history/${versionId} not found`);
    if (row.deleted) throw gone(`${resourceType}/${id}/_history/${versionId} is a deletion`);
    return parseContent(row.content);
  }

  /** New resources with server-assigned ids, written together with the others arriving at the same time. */
  private readonly newResources = new GroupCommit<Resource, Resource>((resources) => this.createMany(resources));

  /** Creates in this transaction that arrive together (a transaction Bundle's entries), written together likewise. */
  private readonly createsInTransaction = new GroupCommit<Resource, Resource>((resources) => this.createTogether(resources));

  async create<T extends Resource>(resource: T): Promise<T> {
    if (resource.id === undefined && !this.conn.inTransaction) return this.newResources.submit(resource) as Promise<T>;
    if (resource.resourceType === AUDIT_EVENT) return (await this.createMany([resource]))[0] as T;
    if (this.conn.inTransaction) return this.createsInTransaction.submit(resource) as Promise<T>;
    return this.transaction(async (tx) => (tx as SqlFhirStore).writeVersion(resource, undefined, 'create')).then((r) => r.resource);
  }

  /**
   * Many creates in one statement. Should one of their ids be taken (or come twice), the savepoint takes
   * the statement back and GroupCommit writes each alone, with a single create's rules (409, a deleted id
   * revived); a write hook refusing one likewise fails that one alone.
   */
  private async createTogether(resources: Resource[]): Promise<Resource[]> {
    if (resources.length === 1) return [(await this.writeVersion(resources[0], undefined, 'create')).resource];
    await this.conn.query('SAVEPOINT create_together');
    try {
      const stored = await this.insertMany(resources);
      await this.conn.query('RELEASE SAVEPOINT create_together');
      return stored;
    } catch (err) {
      await this.conn.query('ROLLBACK TO SAVEPOINT create_together');
      throw err;
    }
  }

  async createMany(resources: Resource[]): Promise<Resource[]> {
    if (!resources.length) return [];
    return this.transaction(async (tx) => (tx as SqlFhirStore).insertMany(resources));
  }

  private async insertMany(resources: Resource[]): Promise<Resource[]> {
    const now = new Date().toISOString();
    const stored = resources.map((r) => ({ ...r, id: r.id ?? randomUUID(), meta: { ...r.meta, versionId: '1', lastUpdated: now } }) as Resource);
    for (const r of stored) this.noteWrite(r.resourceType, r.id!);
    const indexes = stored.map((r) => this.indexer.index(r));
    const isAudit = stored.map((r) => r.resourceType === AUDIT_EVENT);
    const pick = <T>(xs: T[], audit: boolean) => xs.filter((_, i) => isAudit[i] === audit);
    const [clinical, clinicalIndexes] = [pick(stored, false), pick(indexes, false)];
    if (clinical.length) {
      await this.conn.query(INSERT_MANY_SQL, [
        clinical.map((r) => r.resourceType), clinical.map((r) => r.id!), now, clinical.map((r) => JSON.stringify(r)),
        ...joinedArrays(clinicalIndexes),
        ...indexRowParams(clinical, clinicalIndexes),
      ]);
    }
    if (isAudit.includes(true)) await this.insertAuditEvents(pick(stored, true), pick(indexes, true), now);
    await this.announceWrites();
    for (const r of stored) if (this.hooks.length) await this.runHooks({ resource: r, resourceType: r.resourceType, id: r.id!, kind: 'create' });
    return stored;
  }

  /** AuditEvents into their own table; an id already there is a conflict (as for any create). */
  private async insertAuditEvents(events: Resource[], indexes: ResourceIndex[], now: string): Promise<void> {
    const { rows } = await this.conn.query(INSERT_AUDIT_EVENTS_SQL, [
      events.map((e) => e.id!), now, indexes.map((x) => recordedOf(x) ?? now), events.map((e) => JSON.stringify(e)),
      ...joinedArrays(indexes),
    ]);
    if (rows.length < events.length) {
      const written = new Set(rows.map((r) => String(r.id)));
      throw conflict(`AuditEvent/${events.find((e) => !written.has(e.id!))!.id} already exists`, 'duplicate');
    }
  }

  async update<T extends Resource>(resource: T, ifMatch?: string): Promise<{ resource: T; created: boolean }> {
    if (isAppendOnlyType(resource.resourceType)) throw appendOnlyRefusal(resource.resourceType);
    return this.transaction(async (tx) => (tx as SqlFhirStore).writeVersion(resource, ifMatch, 'update'));
  }

  async delete(resourceType: string, id: string, ifMatch?: string): Promise<boolean> {
    if (isAppendOnlyType(resourceType)) throw appendOnlyRefusal(resourceType);
    return this.transaction(async (tx) => (tx as SqlFhirStore).deleteInTx(resourceType, id, ifMatch));
  }

  private async current(resourceType: string, id: string): Promise<CurrentRow | undefined> {
    this.claimNew(resourceType, id);
    const { rows } = await this.conn.query('SELECT version_id, deleted FROM resources WHERE res_type = $1 AND id = $2 FOR UPDATE', [resourceType, id]);
    return rows[0] as unknown as CurrentRow | undefined;
  }

  /** Marks the id as written by this transaction; returns no current version (the caller expects none). */
  private claimNew(resourceType: string, id: string): undefined {
    this.noteWrite(resourceType, id);
    return undefined;
  }

  private noteWrite(resourceType: string, id: string): void {
    this.written.add(`${resourceType}/${id}`);
    this.cache?.invalidate(`${resourceType}/${id}`);
    if (!this.writtenTypes.has(resourceType)) {
      this.writtenTypes.add(resourceType);
      this.searchCache?.invalidate(resourceType);
      if (this.conn.changes && this.searchCache?.caches(resourceType)) this.unannounced.add(resourceType);
    }
  }

  /** Tells the other server processes (on commit) which cached types this transaction changed. */
  private async announceWrites(): Promise<void> {
    for (const resourceType of this.unannounced) {
      this.unannounced.delete(resourceType);
      await this.conn.changes!.announce(this.conn, resourceType);
    }
  }

  /**
   * A create inserts first (`lookFirst` false): a new id, server-assigned or given by a Bundle, has no
   * current version to look up and lock. Only when the id is taken does it look, and then revive a
   * deleted resource or refuse a live one.
   */
  private async writeVersion<T extends Resource>(
    resource: T,
    ifMatch: string | undefined,
    mode: 'create' | 'update',
    lookFirst = mode === 'update',
  ): Promise<{ resource: T; created: boolean }> {
    const id = resource.id ?? randomUUID();
    const existing = lookFirst ? await this.current(resource.resourceType, id) : this.claimNew(resource.resourceType, id);
    if (mode === 'create' && existing && !existing.deleted) throw conflict(`${resource.resourceType}/${id} already exists`, 'duplicate');
    if (ifMatch !== undefined && (!existing || existing.deleted || String(existing.version_id) !== ifMatch)) {
      throw preconditionFailed(`Version ${ifMatch} of ${resource.resourceType}/${id} is not the current version${existing ? ` (current: ${existing.version_id})` : ''}`);
    }
    const version = (existing?.version_id ?? 0) + 1;
    const lastUpdated = new Date();
    const stored = {
      ...resource,
      id,
      meta: { ...resource.meta, versionId: String(version), lastUpdated: lastUpdated.toISOString() },
    } as T;
    const index = this.indexer.index(stored);
    const { rows } = await this.conn.query(writeVersionSql(existing !== undefined), [
      stored.resourceType, id, version, lastUpdated.toISOString(), JSON.stringify(stored), index.tokens, index.refs, index.compartments,
      index.strings.map((s) => s.param), index.strings.map((s) => s.value), index.strings.map((s) => s.exact),
      index.dates.map((d) => d.param), index.dates.map((d) => clampDate(d.lo)), index.dates.map((d) => clampDate(d.hi)),
      index.numbers.map((n) => n.param), index.numbers.map((n) => n.value), index.numbers.map((n) => n.system), index.numbers.map((n) => n.unit),
    ]);
    // The id is taken: a create looks at what holds it; an update lost a race to create it (two PUTs) and becomes an update of it.
    if (Number(rows[0]?.written ?? 0) === 0) {
      if (mode === 'create' && lookFirst) throw conflict(`${resource.resourceType}/${id} already exists`, 'duplicate');
      return this.writeVersion({ ...resource, id }, ifMatch, mode, true);
    }
    const created = !existing || existing.deleted;
    await this.announceWrites();
    if (this.hooks.length) {
      const previous = created ? undefined : await this.vread(stored.resourceType, id, String(version - 1)).catch(() => undefined);
      await this.runHooks({ resource: stored, previous, resourceType: stored.resourceType, id, kind: created ? 'create' : 'update' });
    }
    return { resource: stored, created };
  }

  private async deleteInTx(resourceType: string, id: string, ifMatch?: string): Promise<boolean> {
    const existing = await this.current(resourceType, id);
    if (!existing || existing.deleted) return false;
    if (ifMatch !== undefined && String(existing.version_id) !== ifMatch) {
      throw preconditionFailed(`Version ${ifMatch} of ${resourceType}/${id} is not the current version (current: ${existing.version_id})`);
    }
    const version = existing.version_id + 1;
    const now = new Date().toISOString();
    await this.conn.query(
      `UPDATE resources SET version_id = $3, last_updated = $4, deleted = true, content = NULL, tokens = '{}', refs = '{}', compartments = '{}' WHERE res_type = $1 AND id = $2`,
      [resourceType, id, version, now],
    );
    await this.conn.query('INSERT INTO resource_history (res_type, id, version_id, last_updated, deleted) VALUES ($1, $2, $3, $4, true)', [resourceType, id, version, now]);
    await this.clearIndex(resourceType, id);
    await this.announceWrites();
    if (this.hooks.length) {
      const previous = await this.vread(resourceType, id, String(existing.version_id)).catch(() => undefined);
      await this.runHooks({ previous, resourceType, id, kind: 'delete' });
    }
    return true;
  }

  private async clearIndex(resourceType: string, id: string): Promise<void> {
    for (const table of ['sp_string', 'sp_date', 'sp_number']) {
      await this.conn.query(`DELETE FROM ${table} WHERE res_type = $1 AND id = $2`, [resourceType, id]);
    }
  }

  async reindex(resourceType?: string, onProgress?: (indexed: number) => void): Promise<number> {
    let indexed = 0;
    const batches: ((after: [string, string]) => Promise<{ count: number; last: [string, string] } | undefined>)[] = [];
    if (resourceType !== AUDIT_EVENT) batches.push((from) => this.transaction(async (tx) => (tx as SqlFhirStore).reindexBatch(from, resourceType)));
    if (resourceType === undefined || resourceType === AUDIT_EVENT) batches.push((from) => this.transaction(async (tx) => (tx as SqlFhirStore).reindexAuditBatch(from)));
    for (const nextBatch of batches) {
      let after: [string, string] = ['', ''];
      for (let batch = await nextBatch(after); batch; batch = await nextBatch(after)) {
        indexed += batch.count;
        after = batch.last;
        onProgress?.(indexed);
      }
    }
    return indexed;
  }

  /** Re-indexes the next REINDEX_BATCH AuditEvents after `after` (by id), rows locked while rewritten. */
  private async reindexAuditBatch(after: [string, string]): Promise<{ count: number; last: [string, string] } | undefined> {
    const { rows } = await this.conn.query(`SELECT id, content::text AS content FROM audit_events WHERE id > $1 ORDER BY id LIMIT ${REINDEX_BATCH} FOR UPDATE`, [after[1]]);
    if (!rows.length) return undefined;
    const events = rows.map((row) => parseContent(row.content));
    const indexes = events.map((r) => this.indexer.index(r));
    await this.conn.query(
      `UPDATE audit_events a SET recorded = COALESCE(u.rc, a.recorded), tokens = string_to_array(u.tk, chr(31)), refs = string_to_array(u.rf, chr(31)), compartments = string_to_array(u.cp, chr(31))
       FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::text[]) AS u(i, rc, tk, rf, cp) WHERE a.id = u.i`,
      [events.map((e) => e.id!), indexes.map((x) => recordedOf(x) ?? null), ...joinedArrays(indexes)],
    );
    for (const e of events) this.noteWrite(AUDIT_EVENT, e.id!);
    return { count: rows.length, last: [AUDIT_EVENT, String(rows[rows.length - 1].id)] };
  }

  /** Re-indexes the next REINDEX_BATCH current resources after `after` (keyset order), rows locked while rewritten. */
  private async reindexBatch(after: [string, string], resourceType: string | undefined): Promise<{ count: number; last: [string, string] } | undefined> {
    const { rows } = await this.conn.query(
      `SELECT res_type, id, content::text AS content FROM resources
       WHERE NOT deleted AND (res_type, id) > ($1::text, $2::text) AND ($3::text IS NULL OR res_type = $3::text)
       ORDER BY res_type, id LIMIT ${REINDEX_BATCH} FOR UPDATE`,
      [after[0], after[1], resourceType ?? null],
    );
    if (!rows.length) return undefined;
    const resources = rows.map((row) => parseContent(row.content));
    const indexes = resources.map((r) => this.indexer.index(r));
    const types = resources.map((r) => r.resourceType);
    const ids = resources.map((r) => r.id!);
    await this.conn.query(
      `UPDATE resources r SET tokens = string_to_array(u.tk, chr(31)), refs = string_to_array(u.rf, chr(31)), compartments = string_to_array(u.cp, chr(31))
       FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) AS u(t, i, tk, rf, cp) WHERE r.res_type = u.t AND r.id = u.i`,
      [types, ids, ...joinedArrays(indexes)],
    );
    for (const table of ['sp_string', 'sp_date', 'sp_number']) {
      await this.conn.query(`DELETE FROM ${table} x USING unnest($1::text[], $2::text[]) AS u(t, i) WHERE x.res_type = u.t AND x.id = u.i`, [types, ids]);
    }
    await this.conn.query(INDEX_ROWS_SQL, indexRowParams(resources, indexes));
    for (const r of resources) this.noteWrite(r.resourceType, r.id!);
    await this.announceWrites();
    const last = rows[rows.length - 1];
    return { count: rows.length, last: [String(last.res_type), String(last.id)] };
  }

  /**
   * VACUUM ANALYZE, one table at a time. PostgreSQL's autovacuum does this by itself; PGlite has no
   * autovacuum, and without statistics its planner picks poor indexes (a sort by due date scanned
   * every Task's date rows). PGlite runs one statement at a time, so one ANALYZE of everything held
   * every request for seconds at 1M resources; table by table, requests run in between. The
   * partitioned parent is left out: searches name a type, so each partition's statistics are used.
   * `changed` takes the tables past autovacuum's default thresholds: rows changed since the last
   * analyze above 50 + 10% of the table, or dead rows above 50 + 20%. PGlite reports its activity
   * counts only when asked (it never goes idle as a server session does), so they are flushed first:
   * for the thresholds, and so that counts from before an analyze are not added after it.
   */
  async analyze(tables: 'all' | 'never-analyzed' | 'changed' = 'all'): Promise<void> {
    await this.conn.query(`DO $$ BEGIN IF current_setting('server_version_num')::int >= 150000 THEN PERFORM pg_stat_force_next_flush(); END IF; END $$`);
    const { rows } = await this.conn.query(
      `SELECT c.oid::regclass::text AS name FROM pg_class c LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
       WHERE c.relkind = 'r' AND c.relnamespace = current_schema()::regnamespace
         AND CASE $1::text
           WHEN 'never-analyzed' THEN c.reltuples < 0
           WHEN 'changed' THEN c.reltuples < 0 OR s.n_mod_since_analyze > 50 + 0.1 * greatest(c.reltuples, 0) OR s.n_dead_tup > 50 + 0.2 * greatest(c.reltuples, 0)
           ELSE true END
       ORDER BY c.relpages DESC`,
      [tables],
    );
    // VACUUM also merges the GIN indexes' pending lists, which every token and reference search reads.
    // Two statements, not VACUUM (ANALYZE): on PGlite requests then run between them.
    for (const row of rows) {
      await this.conn.query(`VACUUM ${String(row.name)}`);
      await this.conn.query(`ANALYZE ${String(row.name)}`);
    }
  }

  /** The query plan of a search as PostgreSQL runs it (EXPLAIN ANALYZE), for benchmarks and tuning. */
  async explainSearch(query: SearchQuery): Promise<string> {
    const plans: string[] = [];
    await this.searchPage(query, async ({ sql, values }) => {
      const { rows } = await this.conn.query(`EXPLAIN (ANALYZE, COSTS OFF) ${sql}`, values);
      plans.push(rows.map((r) => String(Object.values(r)[0])).join('\n'));
      return (await this.conn.query(sql, values)).rows;
    });
    return plans.join('\n\n');
  }

  async search(query: SearchQuery): Promise<SearchResult> {
    const page = await this.cachedPage(query);
    return { resources: page.contents.map(parseContent), total: page.total, hasMore: page.hasMore, edges: page.edges };
  }

  /** A page from the search cache when the query may use it, else from the database (filling the cache). */
  private async cachedPage(query: SearchQuery): Promise<CachedPage> {
    const key = this.skipsSharedCache(query.resourceType) ? undefined : this.searchCache?.keyOf(query);
    if (key === undefined) return this.pageFromDatabase(query);
    const cached = this.searchCache!.get(key);
    if (cached) return cached;
    const startedAt = this.searchCache!.begin(query.resourceType);
    const page = await this.pageFromDatabase(query);
    this.searchCache!.fill(key, query.resourceType, page, startedAt); // refused if this transaction wrote the type meanwhile (its epoch moved)
    return page;
  }

  private async pageFromDatabase(query: SearchQuery): Promise<CachedPage> {
    const rows = query.count > 0 ? await this.searchPage(query, async ({ sql, values }) => (await this.conn.query(sql, values)).rows) : [];
    const hasMore = rows.length > query.count;
    const page = rows.slice(0, query.count);
    // Read backwards from a cursor, the rows nearest it come first: the page shows them in the sort order.
    if (query.cursor?.direction === 'before') page.reverse();
    const contents = page.map((row) => String(row.content));
    const position = (row: Record<string, unknown>): SortPosition => ({ keys: query.sort.map((_, i) => (row[`k${i}`] == null ? null : String(row[`k${i}`]))), id: String(row.id) });
    const edges = page.length ? { first: position(page[0]), last: position(page[page.length - 1]) } : undefined;
    let total: number | undefined;
    // `_count=0` asks for the number of matches alone (R4 search.html#count), as `_summary=count` does.
    if (query.total || query.count === 0) {
      const countParams = new Params();
      const counted = await this.conn.query(`SELECT count(*)::int AS n FROM ${tableOf(query.resourceType)} r WHERE ${buildWhere(query, countParams)}`, countParams.values);
      total = Number(counted.rows[0]?.n ?? 0);
    } else if (!query.cursor && !hasMore && (contents.length > 0 || query.offset === 0)) {
      total = query.offset + contents.length;
    }
    return { contents, total, hasMore, edges };
  }

  /**
   * The rows of a page (count + 1 of them when there are more), reading as few statements as the plan allows.
   * A date-ordered search reads its dated matches, then its undated ones (backwards: the other way round),
   * starting in the part that holds the cursor's position.
   */
  private async searchPage(query: SearchQuery, run: (statement: Statement) => Promise<Record<string, unknown>[]>): Promise<Record<string, unknown>[]> {
    const plan = planSearch(query);
    if (plan.kind === 'single') return run(plan.page);
    const window = query.count + 1;
    const { cursor } = query;
    if (!cursor) {
      const dated = await run(plan.dated(window, query.offset));
      if (dated.length === window) return dated;
      let undatedOffset = 0;
      if (!dated.length && query.offset > 0) undatedOffset = Math.max(0, query.offset - Number((await run(plan.datedCount))[0]?.n ?? 0));
      return [...dated, ...(await run(plan.undated(window - dated.length, undatedOffset)))];
    }
    const parts = cursor.direction === 'after' ? [plan.dated, plan.undated] : [plan.undated, plan.dated];
    const start = cursor.at ? parts.indexOf(cursor.at.keys[0] === null ? plan.undated : plan.dated) : 0;
    const rows: Record<string, unknown>[] = [];
    for (let i = start; i < parts.length && rows.length < window; i++) rows.push(...(await run(parts[i](window - rows.length, 0, i === start ? cursor.at : undefined))));
    return rows;
  }

  async history(query: HistoryQuery): Promise<HistoryEntry[]> {
    const params = new Params();
    const where = historyConditions(query, params);
    const dir = query.cursor?.direction === 'before' ? 'ASC' : 'DESC';
    const { rows } = await this.conn.query(
      `SELECT res_type, id, version_id, ${instantText('last_updated')} AS updated_key, deleted, content::text AS content, ${AFTER_DELETION} AS recreated FROM ${historySource(query)} ${where}
       ORDER BY last_updated ${dir}, version_id ${dir}, res_type ${dir}, id ${dir} LIMIT ${params.add(query.count)} OFFSET ${params.add(query.offset)}`,
      params.values,
    );
    return rows.map((row) => ({
      resourceType: String(row.res_type),
      id: String(row.id),
      versionId: String(row.version_id),
      lastUpdated: new Date(String(row.updated_key)).toISOString(),
      deleted: Boolean(row.deleted),
      resource: row.content ? parseContent(row.content) : undefined,
      created: Number(row.version_id) === 1,
      recreated: Boolean(row.recreated),
      position: { keys: [String(row.updated_key), String(row.version_id), String(row.res_type)], id: String(row.id) },
    }));
  }

  async transaction<T>(fn: (tx: FhirStore) => Promise<T>): Promise<T> {
    if (this.conn.inTransaction) return fn(this);
    let tx: SqlFhirStore | undefined;
    const result = await this.conn.transaction((c) => fn((tx = new SqlFhirStore(c, this.indexer, this.hooks, this.cache, this.searchCache))));
    // Again on commit: on PostgreSQL a concurrent search may have filled the cache between the write and its commit.
    for (const resourceType of tx?.writtenTypes ?? []) this.searchCache?.invalidate(resourceType);
    return result;
  }

  async lock(key: string): Promise<void> {
    if (!this.conn.inTransaction) throw new Error('lock() needs a transaction');
    await this.conn.query('SELECT pg_advisory_xact_lock(hashtext($1))', [key]);
  }

  readThrough(resourceType: string): void {
    if (!this.conn.inTransaction) throw new Error('readThrough() needs a transaction');
    this.freshTypes.add(resourceType);
  }

  /** A type this transaction wrote (its uncommitted rows are its own) or reads through (readThrough). */
  private skipsSharedCache(resourceType: string): boolean {
    return this.writtenTypes.has(resourceType) || this.freshTypes.has(resourceType);
  }

  async enqueue(kind: string, payload: unknown, dedupeKey?: string): Promise<void> {
    await this.conn.query('INSERT INTO outbox (id, kind, payload, dedupe_key) VALUES ($1, $2, $3::jsonb, $4) ON CONFLICT (dedupe_key) DO NOTHING', [
      randomUUID(),
      kind,
      JSON.stringify(payload),
      dedupeKey ?? null,
    ]);
  }

  async claimOutbox(limit: number, leaseMs: number): Promise<OutboxMessage[]> {
    const { rows } = await this.conn.query(
      `UPDATE outbox SET status = 'sending', attempts = attempts + 1, not_before = now() + ($2::int * interval '1 millisecond')
       WHERE id IN (SELECT id FROM outbox WHERE status IN ('pending', 'sending') AND not_before <= now() ORDER BY not_before LIMIT $1 FOR UPDATE SKIP LOCKED)
       RETURNING id, kind, payload, attempts, not_before`,
      [limit, leaseMs],
    );
    return rows.map((row) => ({
      id: String(row.id),
      kind: String(row.kind),
      payload: row.payload,
      attempts: Number(row.attempts),
      notBefore: new Date(row.not_before as string | Date),
    }));
  }

  async completeOutbox(id: string): Promise<void> {
    await this.conn.query(`UPDATE outbox SET status = 'sent', sent_at = now(), last_error = NULL WHERE id = $1`, [id]);
  }

  async failOutbox(id: string, error: string, retryAt: Date | undefined): Promise<void> {
    await this.conn.query(
      `UPDATE outbox SET status = $2, last_error = $3, not_before = COALESCE($4::timestamptz, not_before) WHERE id = $1`,
      [id, retryAt ? 'pending' : 'failed', error.slice(0, 1000), retryAt?.toISOString() ?? null],
    );
  }

  async outboxDepth(): Promise<number> {
    const { rows } = await this.conn.query("SELECT count(*)::int AS n FROM outbox WHERE status IN ('pending', 'sending')");
    return Number(rows[0]?.n ?? 0);
  }

  async recordSubscriptionEvent(event: SubscriptionEventRecord, keep: number): Promise<void> {
    await this.conn.query(
      `WITH dropped AS (DELETE FROM subscription_events WHERE subscription_id = $1 AND event_number <= $2::bigint - $8::bigint)
       INSERT INTO subscription_events (subscription_id, event_number, occurred_at, focus_type, focus_id, focus_version, created) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
      [event.subscriptionId, event.number, event.timestamp, event.focus.resourceType, event.focus.id, event.focus.versionId, event.created, keep],
    );
  }

  async subscriptionEvents(subscriptionId: string, range: { from: number; to: number; since: Date; limit: number }): Promise<SubscriptionEventRecord[]> {
    const { rows } = await this.conn.query(
      `SELECT event_number, occurred_at, focus_type, focus_id, focus_version, created FROM subscription_events
       WHERE subscription_id = $1 AND event_number BETWEEN $2 AND $3 AND occurred_at >= $4 ORDER BY event_number LIMIT $5`,
      [subscriptionId, range.from, range.to, range.since.toISOString(), range.limit],
    );
    return rows.map((row) => ({
      subscriptionId,
      number: Number(row.event_number),
      timestamp: new Date(row.occurred_at as string | Date).toISOString(),
      focus: { resourceType: String(row.focus_type), id: String(row.focus_id), versionId: String(row.focus_version) },
      created: Boolean(row.created),
    }));
  }

  async forgetSubscriptionEvents(which: { before: Date } | { subscriptionId: string }): Promise<void> {
    if ('before' in which) await this.conn.query('DELETE FROM subscription_events WHERE occurred_at < $1', [which.before.toISOString()]);
    else await this.conn.query('DELETE FROM subscription_events WHERE subscription_id = $1', [which.subscriptionId]);
  }

  async putEphemeral(key: string, value: unknown, expiresAt: Date): Promise<void> {
    await this.conn.query(
      'INSERT INTO ephemeral (key, value, expires_at) VALUES ($1, $2::jsonb, $3) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at',
      [key, JSON.stringify(value ?? null), expiresAt.toISOString()],
    );
  }

  async getEphemeral(key: string): Promise<unknown | undefined> {
    const { rows } = await this.conn.query('SELECT value FROM ephemeral WHERE key = $1 AND expires_at > now()', [key]);
    return rows[0]?.value ?? undefined;
  }

  async takeEphemeral(key: string): Promise<unknown | undefined> {
    const { rows } = await this.conn.query('DELETE FROM ephemeral WHERE key = $1 RETURNING value, expires_at > now() AS live', [key]);
    return rows[0]?.live ? (rows[0].value ?? undefined) : undefined;
  }

  async claimOnce(key: string, expiresAt: Date): Promise<boolean> {
    await this.conn.query('DELETE FROM ephemeral WHERE expires_at <= now() AND key = $1', [key]);
    const { rowCount } = await this.conn.query(
      "INSERT INTO ephemeral (key, value, expires_at) VALUES ($1, 'true'::jsonb, $2) ON CONFLICT (key) DO NOTHING",
      [key, expiresAt.toISOString()],
    );
    return rowCount === 1;
  }

  async close(): Promise<void> {
    await this.conn.close();
  }
}

/** The WHERE clause of a history query: which resource, which types, which time window. */
function historyConditions(query: HistoryQuery, params: Params): string {
  const conditions: string[] = [];
  if (query.resourceType) conditions.push(`res_type = ${params.add(query.resourceType)}`);
  else if (query.types) conditions.push(`res_type = ANY(${params.add([...query.types])}::text[])`);
  if (query.id) conditions.push(`id = ${params.add(query.id)}`);
  if (query.since) conditions.push(`last_updated >= ${params.add(query.since.toISOString())}::timestamptz`);
  if (query.at) {
    // The versions current at some point in the period (R4 http.html#history): written by its end, and not yet replaced at its start.
    const [from, to] = [params.add(query.at.from.toISOString()), params.add(query.at.to.toISOString())];
    conditions.push(
      `last_updated <= ${to}::timestamptz AND NOT EXISTS (SELECT 1 FROM resource_history n WHERE n.res_type = v.res_type AND n.id = v.id AND n.version_id > v.version_id AND n.last_updated <= ${from}::timestamptz)`,
    );
  }
  if (query.before) conditions.push(`last_updated <= ${params.add(query.before.toISOString())}::timestamptz`);
  if (query.cursor) conditions.push(historyKeyset(query.cursor, params));
  if (query.compartment) {
    const { patient, types } = query.compartment;
    conditions.push(
      `(res_type <> ALL(${params.add([...types])}::text[]) OR (res_type, id) IN (SELECT c.res_type, c.id FROM resources c WHERE c.compartments @> ARRAY[${params.add(patient)}::text]))`,
    );
  }
  return conditions.length ? `WHERE ${conditions.join(' AND ')}` : '';
}

/**
 * The versions past a cursor's position in the walk's direction (older ones after it, newer ones before it), as one
 * row comparison in HISTORY_ORDER, with the time alone as a bound that the index on last_updated starts from. The
 * version is compared as numeric: whatever decimal a cursor carries, the database cannot refuse it.
 */
function historyKeyset(cursor: NonNullable<HistoryQuery['cursor']>, params: Params): string {
  const [updated, version, type] = cursor.at.keys.map((key) => params.add(key));
  const op = cursor.direction === 'after' ? '<' : '>';
  return `last_updated ${op}= ${updated}::timestamptz AND (last_updated, version_id::numeric, res_type, id) ${op} (${updated}::timestamptz, ${version}::numeric, ${type}::text, ${params.add(cursor.at.id)}::text)`;
}

/** Whether a history row's version follows a deletion: one primary-key lookup of the version before it. */
const AFTER_DELETION = `(v.version_id > 1 AND EXISTS (SELECT 1 FROM resource_history p WHERE p.res_type = v.res_type AND p.id = v.id AND p.version_id = v.version_id - 1 AND p.deleted))`;

/**
 * The versions a history query reads: an AuditEvent's one version is its row in the audit table,
 * which a system history leaves out when the caller may not see AuditEvents (it holds most rows).
 */
function historySource(query: HistoryQuery): string {
  const auditVersions = `SELECT res_type, id, 1 AS version_id, last_updated, deleted, content FROM audit_events`;
  if (query.resourceType === AUDIT_EVENT) return `(${auditVersions}) v`;
  if (query.resourceType || (query.types && !query.types.includes(AUDIT_EVENT))) return 'resource_history v';
  return `(SELECT res_type, id, version_id, last_updated, deleted, content FROM resource_history UNION ALL ${auditVersions}) v`;
}

/** Content is selected as text: parsing it here is several times cheaper than the drivers' json decoding. */
function parseContent(value: unknown): Resource {
  return (typeof value === 'string' ? JSON.parse(value) : value) as Resource;
}

/**
 * Open-ended periods index as FHIR's first and last instants (years 0001 and 9999): written with four-digit years,
 * which PostgreSQL reads (an extended year such as -004000 it refuses) and which sort keys and cursors carry as text.
 */
function clampDate(d: Date): string {
  return withinFhirYears(d.getTime()).toISOString();
}
