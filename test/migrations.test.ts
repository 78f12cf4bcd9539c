import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AuditEvent, Binary, Patient, SearchParameter, Task } from 'fhir/r4.js';
import { afterAll, describe, expect, it } from 'vitest';
import { ourSearchParameters, readConformanceResources } from '../server/src/fhir/conformance.js';
import { Indexer } from '../server/src/fhir/search/indexer.js';
import { SearchParamRegistry } from '../server/src/fhir/search/registry.js';
import { openConnection, type StoreConfig } from '../server/src/storage/connect.js';
import type { SqlConnection } from '../server/src/storage/sql/connection.js';
import { migrate } from '../server/src/storage/sql/schema.js';
import { SqlFhirStore } from '../server/src/storage/sql/SqlFhirStore.js';
import { dropSchema, pgliteConfig, postgresConfig, TEST_DATABASE_URL } from './helpers/stores.js';

const registry = SearchParamRegistry.withStandard(ourSearchParameters(readConformanceResources()));
const drivers: { name: string; config: () => StoreConfig }[] = [
  { name: 'pglite', config: () => ({ driver: 'pglite', dataDir: 'memory://' }) },
  ...(TEST_DATABASE_URL ? [{ name: 'postgres', config: postgresConfig }] : []),
];

describe.each(drivers)('schema migrations and re-indexing on $name', ({ name, config }) => {
  const cfg = config();
  let conn: SqlConnection | undefined;
  afterAll(async () => {
    await conn?.close();
    await dropSchema(cfg);
  });

  it('migration 3 moves every stored resource into its type partition, migration 4 every AuditEvent into the audit table; reads, searches, history and writes work after them', async () => {
    conn = await openConnection(cfg);
    await migrate(conn, new Indexer(registry), 2);
    const before = new SqlFhirStore(conn, new Indexer(registry));
    const patient = await before.create({ resourceType: 'Patient', name: [{ family: 'Migrated' }], birthDate: '1970-01-01' } as Patient);
    const tasks = await before.createMany(
      Array.from({ length: 30 }, (_, i) => ({ resourceType: 'Task', status: i % 3 ? 'requested' : 'completed', intent: 'order', for: { reference: `Patient/${patient.id}` }, restriction: { period: { end: `2026-0${1 + (i % 9)}-01` } } }) as Task),
    );
    await before.update({ ...tasks[0], status: 'cancelled' } as Task);
    const binary = await before.create({ resourceType: 'Binary', contentType: 'text/plain', data: 'aGk=' } as Binary);
    // An AuditEvent as the clinical index held them before migration 4: current row, history row, date and string rows.
    const oldAudit = { resourceType: 'AuditEvent', id: 'old-audit', meta: { versionId: '1', lastUpdated: '2026-11-01T00:00:00.000Z' }, type: { code: 'rest' }, recorded: '2026-10-31T12:00:00Z', outcome: '4', agent: [{ who: { reference: 'Practitioner/p1' }, requestor: true }], source: { observer: { display: 'x' } }, entity: [{ what: { reference: `Patient/${patient.id}` } }] } as AuditEvent;
    const oldIndex = new Indexer(registry).index(oldAudit);
    await conn.query(`INSERT INTO resources (res_type, id, version_id, last_updated, content, tokens, refs, compartments) VALUES ('AuditEvent', 'old-audit', 1, '2026-11-01T00:00:00Z', $1::json, $2, $3, $4)`, [JSON.stringify(oldAudit), oldIndex.tokens, oldIndex.refs, oldIndex.compartments]);
    await conn.query(`INSERT INTO resource_history (res_type, id, version_id, last_updated, content) VALUES ('AuditEvent', 'old-audit', 1, '2026-11-01T00:00:00Z', $1::json)`, [JSON.stringify(oldAudit)]);
    await conn.query(`INSERT INTO sp_date (res_type, id, param, lo, hi) VALUES ('AuditEvent', 'old-audit', 'date', '2026-10-31T12:00:00Z', '2026-10-31T12:00:00Z')`);
    await conn.query(`INSERT INTO sp_string (res_type, id, param, value, exact) VALUES ('AuditEvent', 'old-audit', 'type:text', 'rest', 'rest')`);

    await migrate(conn, new Indexer(registry));
    const partitions = await conn.query(`SELECT tableoid::regclass::text AS part, res_type FROM resources WHERE id = ANY($1::text[]) ORDER BY res_type`, [[patient.id, tasks[1].id, binary.id]]);
    expect(partitions.rows.map((r) => [r.res_type, String(r.part).replace(/^.*\./, '')])).toEqual([
      ['Binary', 'resources_other'],
      ['Patient', 'resources_patient'],
      ['Task', 'resources_task'],
    ]);
    const after = new SqlFhirStore(conn, new Indexer(registry));
    expect(((await after.read('Task', tasks[0].id!)) as Task).status).toBe('cancelled');
    expect((await after.history({ resourceType: 'Task', id: tasks[0].id!, count: 10, offset: 0 })).length).toBe(2);
    const open = await after.search({
      resourceType: 'Task',
      clauses: [{ kind: 'reference', param: 'patient', values: [`patient|Patient/${patient.id}`] }, { kind: 'token', param: 'status', values: ['status|*|requested'], not: false }],
      sort: [{ param: 'due', kind: 'date', descending: false }],
      count: 50,
      offset: 0,
      total: true,
    });
    expect(open.total).toBe(20);
    expect(open.resources.map((t) => (t as Task).restriction?.period?.end)).toEqual([...open.resources.map((t) => (t as Task).restriction?.period?.end)].sort());
    const created = await after.create({ resourceType: 'Task', status: 'draft', intent: 'order' } as Task);
    await expect(after.create({ ...created })).rejects.toMatchObject({ status: 409 });

    // Migration 4 moved the AuditEvent to the audit table, its recorded date from the old date row, and left nothing behind.
    expect(await after.read('AuditEvent', 'old-audit')).toEqual(oldAudit);
    const failures = await after.search({ resourceType: 'AuditEvent', clauses: [{ kind: 'token', param: 'outcome', values: ['outcome|*|4'], not: false }, { kind: 'date', param: 'date', values: [{ prefix: 'lt', lo: new Date('2026-11-01T00:00:00Z'), hi: new Date('2026-11-01T23:59:59.999Z') }] }], sort: [], count: 10, offset: 0, total: false });
    expect(failures.resources.map((r) => r.id)).toEqual(['old-audit']);
    const leftBehind = await conn.query(`SELECT (SELECT count(*) FROM resources WHERE res_type = 'AuditEvent') + (SELECT count(*) FROM resource_history WHERE res_type = 'AuditEvent') + (SELECT count(*) FROM sp_date WHERE res_type = 'AuditEvent') + (SELECT count(*) FROM sp_string WHERE res_type = 'AuditEvent') AS n`);
    expect(Number(leftBehind.rows[0].n)).toBe(0);
  });

  it('reindex applies a new search parameter to stored resources and removes what an old one indexed', async () => {
    const namePeriod: SearchParameter = { resourceType: 'SearchParameter', url: 'urn:test:name-period', name: 'name-period', status: 'active', description: 'Periods of the names', code: 'name-period', base: ['Patient'], type: 'date', expression: 'Patient.name.period' };
    const without = new SqlFhirStore(conn!, new Indexer(registry));
    const withParam = new SqlFhirStore(conn!, new Indexer(SearchParamRegistry.withStandard([...ourSearchParameters(readConformanceResources()), namePeriod])));
    const marker = `reindex-${Date.now()}`;
    await without.createMany(Array.from({ length: 7 }, (_, i) => ({ resourceType: 'Patient', identifier: [{ system: 'urn:reindex', value: marker }], name: [{ family: `R${i}`, period: { start: `2020-0${i + 1}-01`, end: `2020-0${i + 1}-28` } }] }) as Patient));
    const inSpring = async (store: SqlFhirStore) =>
      (await store.search({
        resourceType: 'Patient',
        clauses: [{ kind: 'token', param: 'identifier', values: [`identifier|urn:reindex|${marker}`], not: false }, { kind: 'date', param: 'name-period', values: [{ prefix: 'ge', lo: new Date('2020-03-01'), hi: new Date('2020-03-01T23:59:59.999Z') }] }],
        sort: [],
        count: 20,
        offset: 0,
        total: true,
      })).total;
    expect(await inSpring(withParam)).toBe(0); // stored before the parameter existed
    const progress: number[] = [];
    expect(await withParam.reindex('Patient', (n) => progress.push(n))).toBeGreaterThanOrEqual(7);
    expect(progress.length).toBeGreaterThan(0);
    expect(await inSpring(withParam)).toBe(5); // March to July
    await without.reindex('Patient');
    expect(await inSpring(withParam)).toBe(0); // the parameter's rows are gone again
    expect((await without.search({ resourceType: 'Patient', clauses: [{ kind: 'token', param: 'identifier', values: [`identifier|urn:reindex|${marker}`], not: false }], sort: [], count: 20, offset: 0, total: true })).total).toBe(7);
  });

  it('reindex also rewrites the index arrays of AuditEvents in their own table', async () => {
    const site: SearchParameter = { resourceType: 'SearchParameter', url: 'urn:test:audit-site-name', name: 'audit-site-name', status: 'active', description: 'Where the event happened', code: 'site-name', base: ['AuditEvent'], type: 'token', expression: 'AuditEvent.source.site' };
    const without = new SqlFhirStore(conn!, new Indexer(registry));
    const withParam = new SqlFhirStore(conn!, new Indexer(SearchParamRegistry.withStandard([...ourSearchParameters(readConformanceResources()), site])));
    const marker = `campus-${Date.now()}`;
    const [event] = await without.createMany([{ resourceType: 'AuditEvent', type: { code: 'rest' }, recorded: '2026-11-30T10:00:00Z', agent: [{ requestor: true }], source: { site: marker, observer: { display: 'x' } } } as AuditEvent]);
    const atSite = async () =>
      (await withParam.search({ resourceType: 'AuditEvent', clauses: [{ kind: 'token', param: 'site-name', values: [`site-name|*|${marker}`], not: false }], sort: [], count: 5, offset: 0, total: false })).resources.map((r) => r.id);
    expect(await atSite()).toEqual([]);
    expect(await withParam.reindex('AuditEvent')).toBeGreaterThanOrEqual(1);
    expect(await atSite()).toEqual([event.id]);
    await without.reindex();
    expect(await atSite()).toEqual([]);
  });

  it('analyze refreshes statistics table by table: only the never-analyzed ones on request, then every table', async () => {
    const unanalyzed = async () => (await conn!.query(`SELECT c.relname FROM pg_class c WHERE c.relkind = 'r' AND c.relnamespace = current_schema()::regnamespace AND c.reltuples < 0`)).rows.map((r) => String(r.relname));
    const lastAnalyzed = async (table: string) => (await conn!.query('SELECT last_analyze FROM pg_stat_user_tables WHERE relid = $1::regclass', [table])).rows[0]?.last_analyze as Date | null;
    const store = new SqlFhirStore(conn!, new Indexer(registry));
    expect((await unanalyzed()).length).toBeGreaterThan(0); // e.g. the outbox, never analyzed
    await store.analyze('never-analyzed');
    expect(await unanalyzed()).toEqual([]);
    const taskBefore = await lastAnalyzed('resources_task');
    await store.analyze();
    const taskAfter = await lastAnalyzed('resources_task');
    expect(taskAfter).not.toBeNull();
    expect(taskAfter!.getTime()).toBeGreaterThan(taskBefore?.getTime() ?? 0);
  });

  it('migration 5: analyze samples no stored JSON (in any partition) and none of the audit trail\'s tokens and compartments, and keeps the statistics searches plan with', async () => {
    const store = new SqlFhirStore(conn!, new Indexer(registry));
    const patients = await store.createMany(Array.from({ length: 20 }, (_, i) => ({ resourceType: 'Patient', name: [{ family: `Stats${i}` }] }) as Patient));
    await store.createMany(patients.map((p) => ({ resourceType: 'AuditEvent', type: { code: 'rest' }, recorded: '2026-11-30T12:00:00Z', agent: [{ who: { reference: 'Practitioner/p1' }, requestor: true }], source: { observer: { display: 'x' } }, entity: [{ what: { reference: `Patient/${p.id}` } }] }) as AuditEvent));
    await store.analyze();
    const targets = await conn!.query(
      `SELECT c.relname || '.' || a.attname AS col, COALESCE(a.attstattarget, -1) AS target FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
       WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p') AND a.attname IN ('content', 'tokens', 'compartments', 'refs') AND NOT a.attisdropped`,
    );
    const target = new Map(targets.rows.map((r) => [String(r.col), Number(r.target)]));
    const partitions = [...target.keys()].filter((col) => col.startsWith('resources_') && col.endsWith('.content'));
    expect(partitions.length).toBeGreaterThan(20);
    for (const col of [...partitions, 'resource_history.content', 'audit_events.content', 'audit_events.tokens', 'audit_events.compartments']) expect([col, target.get(col)]).toEqual([col, 0]);
    for (const col of ['audit_events.refs', 'resources_patient.tokens', 'resources_patient.refs', 'resources_patient.compartments']) expect([col, target.get(col)]).toEqual([col, -1]);
    const { rows } = await conn!.query(`SELECT tablename || '.' || attname AS col FROM pg_stats WHERE schemaname = current_schema() AND tablename IN ('audit_events', 'resources_patient')`);
    expect(rows.map((r) => String(r.col))).toEqual(expect.arrayContaining(['audit_events.refs', 'audit_events.recorded', 'resources_patient.tokens', 'resources_patient.compartments']));
  });

  it('migration 6 marks the stored resources and AuditEvents that have a profile, tag or security label, so :missing finds them by index', async () => {
    const own = config();
    const c = await openConnection(own);
    try {
      await migrate(c, new Indexer(registry), 5);
      const store = new SqlFhirStore(c, new Indexer(registry));
      const tagged = await store.create({ resourceType: 'Patient', meta: { tag: [{ system: 'urn:t', code: 'x' }], security: [{ system: 'urn:s', code: 'R' }] } } as Patient);
      await store.create({ resourceType: 'Patient' } as Patient);
      const [audited] = await store.createMany([{ resourceType: 'AuditEvent', meta: { tag: [{ code: 'y' }] }, type: { code: 'rest' }, recorded: '2026-11-30T10:00:00Z', agent: [{ requestor: true }], source: { observer: { display: 'x' } } } as AuditEvent]);
      // As stored before the indexer marked meta values.
      for (const table of ['resources', 'audit_events']) await c.query(`UPDATE ${table} SET tokens = array_remove(array_remove(array_remove(tokens, '#_tag'), '#_security'), '#_profile')`);
      const having = async (resourceType: string, param: string) =>
        (await store.search({ resourceType, clauses: [{ kind: 'missing', param, missing: false }], sort: [], count: 10, offset: 0, total: false })).resources.map((r) => r.id);
      expect([await having('Patient', '_tag'), await having('AuditEvent', '_tag')]).toEqual([[], []]);
      await migrate(c, new Indexer(registry));
      expect([await having('Patient', '_tag'), await having('Patient', '_security'), await having('Patient', '_profile'), await having('AuditEvent', '_tag')]).toEqual([[tagged.id], [tagged.id], [], [audited.id]]);
    } finally {
      await c.close();
      await dropSchema(own);
    }
  });

  it('migration 8 marks the stored resources without a value for a date parameter, so the last page of a sort by that date finds them through the index', async () => {
    const own = config();
    const c = await openConnection(own);
    try {
      await migrate(c, new Indexer(registry), 7);
      const store = new SqlFhirStore(c, new Indexer(registry));
      const tasks = await store.createMany(['2026-01-02', undefined, '2026-01-01', undefined].map((end) => ({ resourceType: 'Task', status: 'requested', intent: 'order', ...(end ? { restriction: { period: { end } } } : {}) }) as Task));
      // As stored before the indexer marked missing dates.
      await c.query(`UPDATE resources SET tokens = ARRAY(SELECT t FROM unnest(tokens) t WHERE t NOT LIKE '!%')`);
      const last = async () =>
        (await store.search({ resourceType: 'Task', clauses: [], sort: [{ param: 'due', kind: 'date', descending: false }], count: 3, offset: 0, total: false, cursor: { direction: 'before' } })).resources.map((r) => r.id);
      expect(await last()).toEqual([tasks[2].id, tasks[0].id]); // the undated ones not found
      await migrate(c, new Indexer(registry));
      const undated = [tasks[1].id!, tasks[3].id!].sort();
      expect(await last()).toEqual([tasks[0].id, ...undated]);
      const marked = async (mark: string) => (await c.query(`SELECT id FROM resources WHERE tokens @> ARRAY[$1] ORDER BY id`, [mark])).rows.map((r) => r.id);
      expect([await marked('!due'), await marked('!authored-on')]).toEqual([undated, tasks.map((t) => t.id).sort()]);
    } finally {
      await c.close();
      await dropSchema(own);
    }
  });

  // PGlite has no autovacuum; on PostgreSQL sessions report their counts when idle, and autovacuum acts on them.
  it.runIf(name === 'pglite')('analyze of the changed tables takes those written past autovacuum\'s thresholds and leaves the rest', async () => {
    const lastAnalyzed = async (table: string) => ((await conn!.query('SELECT last_analyze FROM pg_stat_user_tables WHERE relid = $1::regclass', [table])).rows[0]?.last_analyze as Date).getTime();
    const store = new SqlFhirStore(conn!, new Indexer(registry));
    await store.analyze();
    const [patientBefore, taskBefore] = [await lastAnalyzed('resources_patient'), await lastAnalyzed('resources_task')];
    await store.analyze('changed');
    expect([await lastAnalyzed('resources_patient'), await lastAnalyzed('resources_task')]).toEqual([patientBefore, taskBefore]); // nothing changed
    await store.createMany(Array.from({ length: 200 }, (_, i) => ({ resourceType: 'Patient', name: [{ family: `Stats${i}` }] }) as Patient));
    await store.analyze('changed');
    expect(await lastAnalyzed('resources_patient')).toBeGreaterThan(patientBefore);
    expect(await lastAnalyzed('resources_task')).toBe(taskBefore);
  });
});

describe('the embedded engine', () => {
  it('runs with its own settings: a 32 MB buffer pool', async () => {
    const conn = await openConnection(pgliteConfig());
    try {
      expect((await conn.query(`SELECT current_setting('shared_buffers') AS value`)).rows[0].value).toBe('32MB');
    } finally {
      await conn.close();
    }
  });

  it('initialises a new data folder on a worker thread, so that the memory of initdb leaves with it; the folder then opens as it was left', async () => {
    const folder = mkdtempSync(join(tmpdir(), 'so-initdb-'));
    const config: StoreConfig = { driver: 'pglite', dataDir: join(folder, 'pg') };
    try {
      const externalBefore = process.memoryUsage().external;
      const conn = await openConnection(config);
      const externalGrowth = process.memoryUsage().external - externalBefore;
      await conn.query('CREATE TABLE kept (note text)');
      await conn.query(`INSERT INTO kept VALUES ('still here')`);
      await conn.close();
      expect(existsSync(join(folder, 'pg', 'PG_VERSION'))).toBe(true);
      // The engine's own WebAssembly memory is about 140 MB; initdb run on this thread left some 430 MB more.
      expect(externalGrowth).toBeLessThan(300 * 1024 * 1024);
      const reopened = await openConnection(config);
      try {
        expect((await reopened.query('SELECT note FROM kept')).rows).toEqual([{ note: 'still here' }]);
      } finally {
        await reopened.close();
      }
    } finally {
      rmSync(folder, { recursive: true, force: true });
    }
  });
});

describe.each(drivers)('sessions on $name', ({ name, config }) => {
  it('plan with random pages costed as cached (the UM desk sort by due walks the date index), in and out of transactions, in their schema', async () => {
    const cfg = config();
    const conn = await openConnection(cfg);
    try {
      const setting = async (c: SqlConnection, setting: string) => String((await c.query(`SELECT current_setting('${setting}') AS value`)).rows[0].value);
      expect(await setting(conn, 'random_page_cost')).toBe('1.1');
      expect(await conn.transaction((tx) => setting(tx, 'random_page_cost'))).toBe('1.1');
      if (name === 'postgres') expect(await setting(conn, 'search_path')).toBe((cfg as { schema: string }).schema);
    } finally {
      await conn.close();
      await dropSchema(cfg);
    }
  });
});
