import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AuditEvent, Patient, PractitionerRole, SearchParameter, Task } from 'fhir/r4.js';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FhirError } from '../server/src/fhir/outcomes.js';
import { Indexer } from '../server/src/fhir/search/indexer.js';
import { SearchParamRegistry } from '../server/src/fhir/search/registry.js';
import type { FhirStore, SearchClause, SearchQuery, SortRule } from '../server/src/storage/FhirStore.js';
import { openConnection } from '../server/src/storage/connect.js';
import { openStore } from '../server/src/storage/openStore.js';
import { NAMED_STATEMENTS, type SqlConnection } from '../server/src/storage/sql/connection.js';
import { SqlFhirStore } from '../server/src/storage/sql/SqlFhirStore.js';
import { pagesInIdOrder } from '../server/src/storage/pages.js';
import { waitFor } from './helpers/providerServer.js';
import { dropSchema, postgresConfig, STORE_DRIVERS, TEST_DATABASE_URL } from './helpers/stores.js';

/** A multi-valued date parameter, to test sorting on one (no served type has a standard one). */
const namePeriod: SearchParameter = { resourceType: 'SearchParameter', url: 'urn:test:name-period', name: 'name-period', status: 'active', description: 'Periods of the names', code: 'name-period', base: ['Patient'], type: 'date', expression: 'Patient.name.period' };
const registry = SearchParamRegistry.withStandard([namePeriod]);
const task = (status: Task['status']): Task => ({ resourceType: 'Task', status, intent: 'order' });

describe.each(STORE_DRIVERS)('FhirStore contract on $name', (driver) => {
  let store: FhirStore;
  const config = driver.config();
  beforeAll(async () => {
    store = await openStore(config, registry);
  });
  afterAll(async () => {
    await store?.close();
    await driver.cleanup(config);
  });

  it('keeps every version and assigns increasing versionIds', async () => {
    const created = await store.create(task('requested'));
    const v2 = await store.update({ ...created, status: 'in-progress' });
    const v3 = await store.update({ ...v2.resource, status: 'completed' }, '2');
    expect([created.meta?.versionId, v2.resource.meta?.versionId, v3.resource.meta?.versionId]).toEqual(['1', '2', '3']);
    const history = await store.history({ resourceType: 'Task', id: created.id, count: 10, offset: 0 });
    expect(history.map((h) => (h.resource as Task).status)).toEqual(['completed', 'in-progress', 'requested']);
  });

  it('createMany stores and indexes every resource in one go', async () => {
    const marker = `bulk-${driver.name}`;
    const stored = await store.createMany(
      Array.from({ length: 5 }, (_, i) => ({ resourceType: 'Patient', identifier: [{ system: 'urn:bulk', value: marker }], birthDate: `200${i}-01-01`, name: [{ family: `Bulk${i}` }] }) as Patient),
    );
    expect(new Set(stored.map((r) => r.id)).size).toBe(5);
    const byToken = await store.search({ resourceType: 'Patient', clauses: [{ kind: 'token', param: 'identifier', values: [`identifier|urn:bulk|${marker}`], not: false }], sort: [{ param: 'birthdate', kind: 'date', descending: true }], count: 10, offset: 0, total: true });
    expect(byToken.total).toBe(5);
    expect((byToken.resources[0] as Patient).birthDate).toBe('2004-01-01');
    const byName = await store.search({ resourceType: 'Patient', clauses: [{ kind: 'string', param: 'family', mode: 'exact', values: ['Bulk3'] }], sort: [], count: 10, offset: 0, total: false });
    expect(byName.resources).toHaveLength(1);
    expect((await store.history({ resourceType: 'Patient', id: stored[0].id, count: 5, offset: 0 })).length).toBe(1);
  });

  it('sorts by a date parameter through its index: earliest start or latest end of multi-valued dates, missing last, ties by the next rule, every page', async () => {
    const marker = `period-sort-${driver.name}`;
    const days = ['2026-03-04', '2026-01-15', '2026-03-04', '2025-12-31', '2026-07-01', '2026-02-10'];
    // Name periods: none, one, or three overlapping ones (so the earliest start and the latest end come from different names).
    const periods = (i: number): { start: string; end: string }[] =>
      i % 7 === 6 ? [] : (i % 3 === 0 ? [0, 2, 4] : [0]).map((k) => ({ start: days[(i + k) % 6], end: days[(i + k + 1) % 6] > days[(i + k) % 6] ? days[(i + k + 1) % 6] : days[(i + k) % 6] }));
    const people = (await store.createMany(
      Array.from({ length: 31 }, (_, i) => ({
        resourceType: 'Patient',
        identifier: [{ system: 'urn:sort', value: marker }],
        name: periods(i).length ? periods(i).map((period) => ({ family: `${marker}-${i}`, period })) : [{ family: `${marker}-${i}` }],
      }) as Patient),
    )) as Patient[];
    // By identifier, matches are found first and then sorted; by name, the date index is walked in order.
    const byIdentifier: SearchClause = { kind: 'token', param: 'identifier', values: [`identifier|urn:sort|${marker}`], not: false };
    const byName: SearchClause = { kind: 'string', param: 'family', mode: 'starts', values: [marker] };
    for (const [descending, clause] of [[false, byIdentifier], [true, byIdentifier], [false, byName], [true, byName]] as const) {
      const key = (p: Patient): string | undefined => {
        const ps = (p.name ?? []).flatMap((n) => (n.period ? [n.period] : []));
        if (!ps.length) return undefined;
        return descending ? ps.map((x) => x.end as string).sort().at(-1) : ps.map((x) => x.start as string).sort()[0];
      };
      const expected = [...people]
        .sort((a, b) => {
          const [ka, kb] = [key(a), key(b)];
          if (ka !== kb) return ka === undefined ? 1 : kb === undefined ? -1 : (ka < kb ? -1 : 1) * (descending ? -1 : 1);
          return a.id! < b.id! ? 1 : -1; // the next rule: _id descending
        })
        .map((p) => p.id);
      const seen: (string | undefined)[] = [];
      for (let offset = 0; offset < 35; offset += 7) {
        const page = await store.search({
          resourceType: 'Patient',
          clauses: [clause],
          sort: [{ param: 'name-period', kind: 'date', descending }, { param: '_id', kind: 'id', descending: true }],
          count: 7,
          offset,
          total: false,
        });
        seen.push(...page.resources.map((r) => r.id));
        expect(page.hasMore).toBe(offset + 7 < 31);
      }
      expect(seen).toEqual(expected);
    }
  });

  it('parallel updates creating the same new id all succeed, one version each (update-as-create race)', async () => {
    for (let round = 0; round < 5; round++) {
      const id = `race-${driver.name}-${round}-${Date.now()}`;
      const results = await Promise.all(Array.from({ length: 12 }, (_, i) => store.update({ ...task('requested'), id, description: `writer ${i}` })));
      expect(results.filter((r) => r.created)).toHaveLength(1);
      expect(results.map((r) => Number(r.resource.meta?.versionId)).sort((a, b) => a - b)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
      expect(await store.history({ resourceType: 'Task', id, count: 20, offset: 0 })).toHaveLength(12);
    }
  });

  it('text, JSON and index values reach the database byte for byte: multi-byte and astral characters, quotes, backslashes, braces, commas, empty values', async () => {
    const awkward = ['Ñúñez-Łódź', 'O\'Brien "Jr." \\ {a,b} (x)', '患者 😀 é', 'NULL', ' ', 'a\u001fb'];
    const marker = `roundtrip-${driver.name}`;
    const [stored] = await store.createMany([
      { resourceType: 'Patient', identifier: [{ system: 'urn:rt', value: marker }, ...awkward.map((value) => ({ system: 'urn:rt:awkward', value }))], name: [{ family: awkward[0], given: awkward.slice(1, 3) }] } as Patient,
    ]);
    const read = (await store.read('Patient', stored.id!)) as Patient;
    expect(read.name).toEqual([{ family: awkward[0], given: awkward.slice(1, 3) }]);
    expect(read.identifier?.slice(1).map((x) => x.value)).toEqual(awkward);
    for (const value of awkward.filter((x) => !x.includes('\u001f'))) {
      const found = await store.search({ resourceType: 'Patient', clauses: [{ kind: 'token', param: 'identifier', values: [`identifier|urn:rt:awkward|${value}`], not: false }], sort: [], count: 10, offset: 0, total: false });
      expect(found.resources.map((r) => r.id), value).toEqual([stored.id]);
    }
    const byName = await store.search({ resourceType: 'Patient', clauses: [{ kind: 'string', param: 'family', mode: 'exact', values: [awkward[0]] }], sort: [], count: 10, offset: 0, total: false });
    expect(byName.resources.map((r) => r.id)).toEqual([stored.id]);
    const updated = await store.update({ ...read, name: [{ family: awkward[2] }] });
    expect(((await store.read('Patient', stored.id!)) as Patient).name?.[0].family).toBe(awkward[2]);
    expect(updated.resource.meta?.versionId).toBe('2');
  });

  it('createMany keeps ids it is given (bulk loads)', async () => {
    const id = `given-${driver.name}-${Date.now()}`;
    const [stored] = await store.createMany([{ ...task('requested'), id }]);
    expect(stored.id).toBe(id);
    expect((await store.read('Task', id)).id).toBe(id);
  });

  it('refuses a create over an existing id with 409 and a stale version with 412', async () => {
    const created = await store.create(task('requested'));
    await expect(store.create({ ...created })).rejects.toMatchObject({ status: 409 });
    await expect(store.update({ ...created }, '7')).rejects.toMatchObject({ status: 412 });
  });

  it('AuditEvents: append-only, read, searched by token, reference and recorded date, sorted by date, in history; never changed', async () => {
    const agent = `Practitioner/auditor-${driver.name}-${Date.now()}`;
    const event = (i: number): AuditEvent => ({
      resourceType: 'AuditEvent',
      type: { system: 'http://terminology.hl7.org/CodeSystem/audit-event-type', code: 'rest' },
      action: i === 2 ? 'C' : 'R',
      recorded: `2026-0${i + 1}-15T10:00:00Z`,
      outcome: i === 1 ? '4' : '0',
      agent: [{ who: { reference: agent }, requestor: true }],
      source: { observer: { display: 'test' } },
      entity: [{ what: { reference: `Patient/audited-${driver.name}-${i}` } }],
    });
    const events = await store.createMany([0, 1, 2].map(event));
    const byAgent: SearchClause = { kind: 'reference', param: 'agent', values: [`agent|${agent}`] };
    const ids = async (clauses: SearchClause[], sort: SortRule[] = [{ param: 'date', kind: 'date', descending: false }]) =>
      (await store.search({ resourceType: 'AuditEvent', clauses: [byAgent, ...clauses], sort, count: 10, offset: 0, total: false })).resources.map((r) => r.id);
    const [e0, e1, e2] = events.map((e) => e.id);

    expect(await store.read('AuditEvent', e1!)).toEqual(events[1]);
    expect(await store.vread('AuditEvent', e1!, '1')).toEqual(events[1]);
    await expect(store.vread('AuditEvent', e1!, '2')).rejects.toMatchObject({ status: 404 });
    expect(await ids([])).toEqual([e0, e1, e2]);
    expect(await ids([], [{ param: 'date', kind: 'date', descending: true }])).toEqual([e2, e1, e0]);
    expect(await ids([{ kind: 'token', param: 'outcome', values: ['outcome|*|4'], not: false }])).toEqual([e1]);
    expect(await ids([{ kind: 'token', param: 'outcome', values: ['outcome|*|4'], not: true }])).toEqual([e0, e2]);
    expect(await ids([{ kind: 'reference', param: 'entity', values: [`entity|Patient/audited-${driver.name}-2`] }])).toEqual([e2]);
    expect(await ids([{ kind: 'date', param: 'date', values: [{ prefix: 'ge', lo: new Date('2026-02-01T00:00:00Z'), hi: new Date('2026-02-01T23:59:59.999Z') }] }])).toEqual([e1, e2]);
    expect(await ids([{ kind: 'date', param: 'date', values: [{ prefix: 'eq', lo: new Date('2026-01-15T00:00:00Z'), hi: new Date('2026-01-15T23:59:59.999Z') }] }])).toEqual([e0]);
    expect(await ids([{ kind: 'missing', param: 'subtype', missing: true }])).toEqual([e0, e1, e2]);
    const total = await store.search({ resourceType: 'AuditEvent', clauses: [byAgent], sort: [], count: 0, offset: 0, total: true });
    expect(total.total).toBe(3);
    await expect(ids([{ kind: 'string', param: 'agent-name', mode: 'starts', values: ['x'] }])).rejects.toMatchObject({ status: 400 });

    // A patient found through the AuditEvents that name it (_has), as for any other type.
    const audited = `audited-${driver.name}-1`;
    await store.update({ resourceType: 'Patient', id: audited } as Patient);
    const viaHas = await store.search({ resourceType: 'Patient', clauses: [{ kind: 'reverseChain', sourceType: 'AuditEvent', refParam: 'entity', clause: { kind: 'token', param: 'outcome', values: ['outcome|*|4'], not: false } }], sort: [], count: 10, offset: 0, total: false });
    expect(viaHas.resources.map((r) => r.id)).toContain(audited);

    const typeHistory = await store.history({ resourceType: 'AuditEvent', count: 1000, offset: 0 });
    expect(typeHistory.filter((h) => events.some((e) => e.id === h.id)).map((h) => [h.versionId, h.created, h.deleted])).toEqual([['1', true, false], ['1', true, false], ['1', true, false]]);
    expect((await store.history({ resourceType: 'AuditEvent', id: e0, count: 10, offset: 0 })).map((h) => h.resource)).toEqual([events[0]]);
    const systemHistory = await store.history({ count: 1000, offset: 0 });
    expect(systemHistory.map((h) => `${h.resourceType}/${h.id}`)).toEqual(expect.arrayContaining([`AuditEvent/${e0}`, `Patient/${audited}`]));

    await expect(store.update({ ...events[0], outcome: '8' })).rejects.toMatchObject({ status: 405 });
    await expect(store.delete('AuditEvent', e0!)).rejects.toMatchObject({ status: 405 });
    await expect(store.create({ ...events[0] })).rejects.toMatchObject({ status: 409 });
    await expect(store.transaction(async (tx) => {
      await tx.create({ ...event(0), id: `rolled-back-${driver.name}` });
      throw new Error('abort');
    })).rejects.toThrow('abort');
    expect(await store.find('AuditEvent', `rolled-back-${driver.name}`)).toBeUndefined();
    expect(await store.read('AuditEvent', e0!)).toEqual(events[0]);
  });

  it('a create with a given id inserts first: parallel creates of one id leave one version, a deleted id is revived', async () => {
    const id = `given-race-${driver.name}-${Date.now()}`;
    const results = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => store.create({ ...task('requested'), id, description: `writer ${i}` })));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    for (const r of results) if (r.status === 'rejected') expect(r.reason).toMatchObject({ status: 409 });
    expect(await store.history({ resourceType: 'Task', id, count: 20, offset: 0 })).toHaveLength(1);
    const byId = await store.search({ resourceType: 'Task', clauses: [{ kind: 'id', ids: [id] }], sort: [], count: 5, offset: 0, total: true });
    expect(byId.total).toBe(1);

    expect(await store.delete('Task', id)).toBe(true);
    const revived = await store.create({ ...task('completed'), id });
    expect(revived.meta?.versionId).toBe('3');
    expect(((await store.read('Task', id)) as Task).status).toBe('completed');
  });

  it('creates arriving together are written together; one refused by a write hook fails alone', async () => {
    const marker = `group-${driver.name}-${Date.now()}`;
    const refused = `${marker}-refused`;
    const hooked = await openStore(config, registry);
    hooked.addWriteHook(async (_tx, change) => {
      if ((change.resource as Task | undefined)?.description === refused) throw new FhirError(422, { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'business-rule' }] });
    });
    try {
      const descriptions = Array.from({ length: 12 }, (_, i) => (i === 5 ? refused : `${marker}-${i}`));
      const results = await Promise.allSettled(descriptions.map((description) => hooked.create({ ...task('requested'), description })));
      expect(results[5]).toMatchObject({ status: 'rejected', reason: { status: 422 } });
      const created: Task[] = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
      expect(created).toHaveLength(11);
      expect(new Set(created.map((t) => t.id)).size).toBe(11);
      for (const t of created) {
        expect(t.meta?.versionId).toBe('1');
        expect(((await hooked.read('Task', t.id!)) as Task).description).toBe(t.description);
        expect(await hooked.history({ resourceType: 'Task', id: t.id!, count: 5, offset: 0 })).toHaveLength(1);
      }
    } finally {
      await hooked.close();
    }
  });

  it('creates inside a transaction that arrive together go in one statement; a taken or repeated id sends them one at a time, with a single create\'s 409 and revival', async () => {
    const conn = await openConnection(config);
    const inserts: string[] = [];
    const counted = (c: SqlConnection): SqlConnection => ({
      get inTransaction() {
        return c.inTransaction;
      },
      query: (sql, params) => {
        if (/INSERT INTO resources/.test(sql)) inserts.push(sql);
        return c.query(sql, params);
      },
      transaction: (fn) => c.transaction((tx) => fn(counted(tx))),
      close: () => c.close(),
    });
    const tx = new SqlFhirStore(counted(conn), new Indexer(registry));
    try {
      const marker = `tx-group-${driver.name}`;
      const fresh = (i: number): Task => ({ ...task('requested'), id: i % 2 ? randomUUID() : undefined, description: `${marker}-${i}` });
      const created = await tx.transaction((store) => Promise.all(Array.from({ length: 8 }, (_, i) => store.create(fresh(i)))));
      expect(inserts).toHaveLength(1);
      expect(new Set(created.map((t) => t.id)).size).toBe(8);
      for (const t of created) {
        expect(((await tx.read('Task', t.id!)) as Task).description).toBe(t.description);
        expect(await tx.history({ resourceType: 'Task', id: t.id!, count: 5, offset: 0 })).toHaveLength(1);
      }

      // A deleted id among them is revived (version 3) and a live one refused, as single creates would be.
      await tx.delete('Task', created[1].id!);
      inserts.length = 0;
      const twice = randomUUID();
      const again = await tx.transaction((store) =>
        Promise.allSettled([
          store.create(fresh(10)), store.create({ ...fresh(11), id: created[1].id }), store.create({ ...fresh(12), id: created[3].id }), store.create(fresh(13)),
          store.create({ ...fresh(14), id: twice }), store.create({ ...fresh(15), id: twice }),
        ]),
      );
      expect(again.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'fulfilled', 'fulfilled', 'rejected']);
      expect(again[2]).toMatchObject({ reason: { status: 409 } });
      expect(again[5]).toMatchObject({ reason: { status: 409 } });
      expect(((await tx.read('Task', twice)) as Task).description).toBe(`${marker}-14`);
      expect(((await tx.read('Task', created[1].id!)) as Task).meta?.versionId).toBe('3');
      expect(((await tx.read('Task', created[3].id!)) as Task).description).toBe(`${marker}-3`);
      expect(inserts.length).toBeGreaterThan(1);
    } finally {
      await conn.close();
    }
  });

  it('rolls back everything a failing transaction wrote', async () => {
    const marker = `rollback-${driver.name}`;
    await expect(
      store.transaction(async (tx) => {
        await tx.create({ resourceType: 'Patient', identifier: [{ system: 'urn:t', value: marker }] } as Patient);
        await tx.enqueue('notice', { marker }, marker);
        throw new FhirError(400, { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'invalid' }] });
      }),
    ).rejects.toBeInstanceOf(FhirError);
    const found = await store.search({ resourceType: 'Patient', clauses: [{ kind: 'token', param: 'identifier', values: [`identifier|urn:t|${marker}`], not: false }], sort: [], count: 5, offset: 0, total: true });
    expect(found.total).toBe(0);
    const claimed = await store.claimOutbox(100, 1000);
    expect(claimed.filter((m) => (m.payload as { marker?: string }).marker === marker)).toHaveLength(0);
  });

  it('directory searches (cached on PGlite) see every committed create, update and delete, their own transaction\'s writes, and nothing rolled back', async () => {
    const specialty = `spec-${driver.name}`;
    const role = (id: string, code: string): PractitionerRole => ({ resourceType: 'PractitionerRole', id, active: true, specialty: [{ coding: [{ system: 'urn:spec', code }] }] });
    const bySpecialty = async (from: FhirStore = store) =>
      (await from.search({ resourceType: 'PractitionerRole', clauses: [{ kind: 'token', param: 'specialty', values: [`specialty|urn:spec|${specialty}`], not: false }], sort: [], count: 10, offset: 0, total: true })).resources.map((r) => r.id).sort();
    const a = `dir-a-${driver.name}`;
    const b = `dir-b-${driver.name}`;
    expect(await bySpecialty()).toEqual([]);
    await store.update(role(a, specialty));
    expect(await bySpecialty()).toEqual([a]);
    await store.createMany([role(b, specialty)]);
    expect(await bySpecialty()).toEqual([a, b]);
    await store.update(role(a, 'other'));
    expect(await bySpecialty()).toEqual([b]);
    await store.delete('PractitionerRole', b);
    expect(await bySpecialty()).toEqual([]);
    const c = `dir-c-${driver.name}`;
    await expect(
      store.transaction(async (tx) => {
        expect(await bySpecialty(tx)).toEqual([]);
        await tx.update(role(c, specialty));
        expect(await bySpecialty(tx)).toEqual([c]);
        throw new FhirError(422, { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'invalid' }] });
      }),
    ).rejects.toBeInstanceOf(FhirError);
    expect(await bySpecialty()).toEqual([]);
    await store.transaction(async (tx) => {
      await tx.update(role(c, specialty));
      expect(await bySpecialty(tx)).toEqual([c]);
    });
    expect(await bySpecialty()).toEqual([c]);
  });

  it('transactions queued behind each other leave the event loop turns, so new requests are read between them', async () => {
    let finished = 0;
    const queued = Array.from({ length: 100 }, () =>
      store
        .transaction(async (tx) => {
          await tx.find('Patient', 'nobody');
          await tx.search({ resourceType: 'Task', clauses: [{ kind: 'token', param: 'status', values: ['status|*|draft'], not: false }], sort: [], count: 1, offset: 0, total: false });
        })
        .then(() => finished++),
    );
    const finishedAtFirstTurn = await new Promise<number>((resolve) => setImmediate(() => resolve(finished)));
    await Promise.all(queued);
    expect(finishedAtFirstTurn).toBeLessThan(100);
  });

  it.skipIf(driver.name !== 'pglite')('statements outside transactions run one per turn of the event loop, so a turn stays short (PGlite runs them on this thread)', async () => {
    let finished = 0;
    const queued = Array.from({ length: 30 }, () =>
      store.search({ resourceType: 'Task', clauses: [{ kind: 'token', param: 'status', values: ['status|*|draft'], not: false }], sort: [], count: 1, offset: 0, total: false }).then(() => finished++),
    );
    for (let turn = 0; turn < 3; turn++) await new Promise<void>((resolve) => setImmediate(resolve));
    const finishedAfterThreeTurns = finished;
    await Promise.all(queued);
    expect(finishedAfterThreeTurns).toBeLessThanOrEqual(4);
  });

  it('walks every match a page at a time in id order after the last id: one deleted between pages makes none skipped', async () => {
    const tag = randomUUID();
    const tasks = await Promise.all([0, 1, 2, 3].map(() => store.create({ ...task('requested'), identifier: [{ system: 'urn:test:walk', value: tag }] })));
    const ids = tasks.map((t) => t.id!).sort();
    const query: SearchQuery = { resourceType: 'Task', clauses: [{ kind: 'token', param: 'identifier', values: [`identifier|urn:test:walk|${tag}`], not: false }], sort: [], count: 1, offset: 0, total: false };
    const seen: string[] = [];
    for await (const page of pagesInIdOrder(store, query, 1)) {
      seen.push(...page.map((r) => r.id!));
      if (seen.length === 1) await store.delete('Task', ids[0]);
    }
    expect(seen).toEqual(ids);
  });

  it('outbox: dedupes, leases, retries and completes', async () => {
    await store.enqueue('k', { n: 1 }, `dedupe-${driver.name}`);
    await store.enqueue('k', { n: 1 }, `dedupe-${driver.name}`);
    const first = await store.claimOutbox(10, 60_000);
    expect(first.filter((m) => m.kind === 'k')).toHaveLength(1);
    expect(await store.claimOutbox(10, 60_000)).toHaveLength(0); // leased
    const msg = first.find((m) => m.kind === 'k')!;
    await store.failOutbox(msg.id, 'HTTP 500', new Date(Date.now() - 1));
    const retry = await store.claimOutbox(10, 60_000);
    expect(retry.map((m) => [m.id, m.attempts])).toEqual([[msg.id, 2]]);
    await store.completeOutbox(msg.id);
    expect(await store.claimOutbox(10, 0)).toHaveLength(0);
  });

  it('ephemeral values: single-use take and one-time claims', async () => {
    const soon = new Date(Date.now() + 60_000);
    await store.putEphemeral(`code-${driver.name}`, { a: 1 }, soon);
    expect(await store.takeEphemeral(`code-${driver.name}`)).toEqual({ a: 1 });
    expect(await store.takeEphemeral(`code-${driver.name}`)).toBeUndefined();
    expect(await store.claimOnce(`jti-${driver.name}`, soon)).toBe(true);
    expect(await store.claimOnce(`jti-${driver.name}`, soon)).toBe(false);
    await store.putEphemeral(`old-${driver.name}`, 1, new Date(Date.now() - 1000));
    expect(await store.getEphemeral(`old-${driver.name}`)).toBeUndefined();
  });
});

/** Two stores on one PostgreSQL schema, as two server processes hold them, and a plain client to change rows behind their backs. */
async function twoProcesses(test: (p: { a: FhirStore; b: FhirStore; sql: pg.Client; schema: string }) => Promise<void>): Promise<void> {
  const config = postgresConfig();
  const schema = (config as { schema: string }).schema;
  const [a, b] = [await openStore(config, registry), await openStore(config, registry)];
  const sql = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await sql.connect();
  try {
    await test({ a, b, sql, schema });
  } finally {
    await sql.end();
    await a.close();
    await b.close();
    await dropSchema(config);
  }
}

describe.skipIf(!TEST_DATABASE_URL)('directory search cache of server processes sharing PostgreSQL', () => {
  it('a process hears the committed directory writes of another, caches nothing while it cannot hear them, and listens again', () =>
    twoProcesses(async ({ a, b, sql, schema }) => {
      const role = (id: string): PractitionerRole => ({ resourceType: 'PractitionerRole', id, active: true, specialty: [{ coding: [{ system: 'urn:spec', code: 'shared' }] }] });
      const found = async (store: FhirStore) =>
        (await store.search({ resourceType: 'PractitionerRole', clauses: [{ kind: 'token', param: 'specialty', values: ['specialty|urn:spec|shared'], not: false }], sort: [], count: 10, offset: 0, total: false })).resources.map((r) => r.id).sort();
      // Hides a role from the index behind the stores' backs: a store that still finds it answered from its cache.
      const hide = (id: string, hidden: boolean) => sql.query(`UPDATE ${schema}.resources SET tokens = ${hidden ? "'{}'" : "ARRAY['specialty|urn:spec|shared','specialty|*|shared']"} WHERE res_type = 'PractitionerRole' AND id = $1`, [id]);
      let pokes = 0;
      const answersFromCache = async (id: string) => {
        await found(b);
        await hide(id, true);
        const cached = (await found(b)).includes(id);
        await hide(id, false);
        // A page B filled while the role was hidden is dropped when B hears of this write.
        if (!cached) await a.update({ ...role(`poke-${pokes++}`), specialty: [{ coding: [{ system: 'urn:spec', code: 'poke' }] }] });
        return cached;
      };
      await a.update(role('shared-1'));
      await waitFor(() => answersFromCache('shared-1'), 10_000, 'process B caching directory searches');
      await hide('shared-1', true);
      expect(await found(b)).toEqual(['shared-1']); // from B's cache: nothing told B
      await a.update(role('shared-2'));
      await waitFor(async () => JSON.stringify(await found(b)) === '["shared-2"]', 5_000, 'process B hearing of the write by process A');

      await sql.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = 'LISTEN fhir_changes_${schema}'`);
      await hide('shared-2', true);
      // Sooner than the listening session is replaced (after a second): B stops answering from its cache as soon as it is lost.
      await waitFor(async () => (await found(b)).length === 0, 800, 'process B reading through while it cannot listen');
      await hide('shared-2', false);
      await waitFor(() => answersFromCache('shared-2'), 10_000, 'process B listening and caching again');
    }));
});

describe.skipIf(!TEST_DATABASE_URL)('directory reads by id of server processes sharing PostgreSQL', () => {
  it('a process answers reads of directory resources from its cache, drops them when it hears of a write, and reads through while it cannot hear', () =>
    twoProcesses(async ({ a, b, sql, schema }) => {
      const role: PractitionerRole = { resourceType: 'PractitionerRole', id: 'read-1', active: true };
      const read = async (store: FhirStore) => (await store.find('PractitionerRole', 'read-1')) as PractitionerRole;
      // Changes the stored role behind the stores' backs: a store that does not see it answered from its cache.
      const setActive = (active: boolean) => sql.query(`UPDATE ${schema}.resources SET content = (content::jsonb || jsonb_build_object('active', $1::boolean))::json WHERE res_type = 'PractitionerRole' AND id = 'read-1'`, [active]);
      let pokes = 0;
      const answersFromCache = async () => {
        await read(b);
        await setActive(false);
        const cached = (await read(b)).active === true;
        await setActive(true);
        // A read B cached while the role was changed is dropped when B hears of this write.
        if (!cached) await a.update({ resourceType: 'PractitionerRole', id: `poke-${pokes++}` });
        return cached;
      };
      await a.update(role);
      await waitFor(answersFromCache, 10_000, 'process B caching directory reads');
      const { resource: updated } = await a.update({ ...role, active: false });
      expect((await read(a)).meta?.versionId).toBe(updated.meta?.versionId); // its own write: at once
      await waitFor(async () => (await read(b)).meta?.versionId === updated.meta?.versionId, 5_000, 'process B hearing of the write by process A');

      await a.update({ ...role, active: true });
      await waitFor(answersFromCache, 10_000, 'process B caching the new version');
      await sql.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = 'LISTEN fhir_changes_${schema}'`);
      await setActive(false);
      await waitFor(async () => (await read(b)).active === false, 800, 'process B reading through while it cannot listen');
      expect(await b.find('PractitionerRole', 'nobody')).toBeUndefined();
    }));
});

describe.skipIf(!TEST_DATABASE_URL)('conditional writes of server processes sharing PostgreSQL', () => {
  it('a transaction that reads a type through searches and reads it fresh, where the cache has not heard of a write', () =>
    twoProcesses(async ({ b, sql, schema }) => {
      const role: PractitionerRole = { resourceType: 'PractitionerRole', id: 'fresh-1', active: true, specialty: [{ coding: [{ system: 'urn:spec', code: 'fresh' }] }] };
      const query: SearchQuery = { resourceType: 'PractitionerRole', clauses: [{ kind: 'token', param: 'specialty', values: ['specialty|urn:spec|fresh'], not: false }], sort: [], count: 10, offset: 0, total: false };
      const found = async (store: FhirStore) => (await store.search(query)).resources.map((r) => r.id);
      await b.update(role);
      // Takes the role out behind B's back (no process announces it) until B answers from its cache.
      await waitFor(async () => {
        await found(b);
        await b.find('PractitionerRole', 'fresh-1');
        await sql.query(`UPDATE ${schema}.resources SET deleted = true WHERE res_type = 'PractitionerRole' AND id = 'fresh-1'`);
        const cached = (await found(b)).includes('fresh-1') && (await b.find('PractitionerRole', 'fresh-1')) !== undefined;
        if (!cached) {
          await sql.query(`UPDATE ${schema}.resources SET deleted = false WHERE res_type = 'PractitionerRole' AND id = 'fresh-1'`);
          await b.update({ resourceType: 'PractitionerRole', id: 'fresh-poke' }); // drops what B cached meanwhile
        }
        return cached;
      }, 10_000, 'process B caching the directory');
      expect(await b.transaction(async (tx) => found(tx))).toEqual(['fresh-1']); // stale, from the cache
      await b.transaction(async (tx) => {
        tx.readThrough('PractitionerRole');
        expect(await found(tx)).toEqual([]);
        expect(await tx.find('PractitionerRole', 'fresh-1')).toBeUndefined();
      });
      await expect(Promise.resolve().then(() => b.readThrough('PractitionerRole'))).rejects.toThrow(/needs a transaction/);
    }));
});

describe('PGlite data folder', () => {
  const dir = mkdtempSync(join(tmpdir(), 'so-fhir-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('data survives a restart (write, stop, start, read)', async () => {
    const first = await openStore({ driver: 'pglite', dataDir: dir }, registry);
    const created = await first.create({ resourceType: 'Patient', name: [{ family: 'Durable' }] } as Patient);
    await first.update({ ...created, gender: 'female' } as Patient);
    await first.close();
    const second = await openStore({ driver: 'pglite', dataDir: dir }, registry);
    const read = (await second.read('Patient', created.id!)) as Patient;
    expect(read.gender).toBe('female');
    expect(read.meta?.versionId).toBe('2');
    const found = await second.search({ resourceType: 'Patient', clauses: [{ kind: 'string', param: 'family', mode: 'starts', values: ['durable'] }], sort: [], count: 5, offset: 0, total: false });
    expect(found.resources.map((r) => r.id)).toEqual([created.id]);
    await second.close();
  });
});

describe.each(STORE_DRIVERS)('SQL connection on $name', (driver) => {
  let conn: SqlConnection;
  const config = driver.config();
  beforeAll(async () => {
    conn = await openConnection(config);
    await conn.query('CREATE TABLE kv (k text PRIMARY KEY, v integer NOT NULL)');
  });
  afterAll(async () => {
    await conn?.close();
    await driver.cleanup(config);
  });

  it('each SQL text is prepared once per session and planned for each run\'s values; texts past NAMED_STATEMENTS run unprepared', async () => {
    await conn.transaction(async (session) => {
      for (let i = 0; i < 12; i++) await session.query('INSERT INTO kv (k, v) VALUES ($1, $2)', [`k${i}`, i]);
      const sums = [];
      for (const n of [1, 2, 3]) sums.push((await session.query('SELECT sum(v)::int AS s FROM kv WHERE v >= $1', [n])).rows[0].s);
      expect(sums).toEqual([66, 65, 63]);
      const prepared = async () => (await session.query('SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements')).rows;
      const insert = (await prepared()).filter((r) => String(r.statement).startsWith('INSERT INTO kv'));
      expect(insert).toEqual([{ statement: 'INSERT INTO kv (k, v) VALUES ($1, $2)', generic_plans: 0, custom_plans: 12 }]);
      for (let i = 0; i < NAMED_STATEMENTS + 20; i++) expect((await session.query(`SELECT ${i} + $1::int AS n`, [1])).rows[0].n).toBe(i + 1);
      const held = (await prepared()).length;
      expect(held).toBeGreaterThan(NAMED_STATEMENTS - 10);
      expect(held).toBeLessThanOrEqual(NAMED_STATEMENTS);
    });
  });

  it('a failing statement leaves the connection usable, inside and outside a transaction; one that does not parse fails alike each time', async () => {
    await expect(conn.query('INSERT INTO kv (k, v) VALUES ($1, $2)', ['k1', 1])).rejects.toMatchObject({ code: '23505' });
    await expect(conn.transaction(async (tx) => {
      await tx.query('INSERT INTO kv (k, v) VALUES ($1, $2)', ['t1', 1]);
      await tx.query('INSERT INTO kv (k, v) VALUES ($1, $2)', ['k2', 2]);
    })).rejects.toMatchObject({ code: '23505' });
    for (let i = 0; i < 2; i++) await expect(conn.query('SELEC v FROM kv')).rejects.toMatchObject({ code: '42601' });
    expect((await conn.query('SELECT count(*)::int AS n FROM kv WHERE k = $1', ['t1'])).rows[0].n).toBe(0);
    expect((await conn.query('SELECT v FROM kv WHERE k = $1', ['k3'])).rows).toEqual([{ v: 3 }]);
  });
});
