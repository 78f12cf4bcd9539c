import type { BundleEntry, Condition, OperationOutcome, Patient } from 'fhir/r4.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../server/src/server.js';
import { raw } from './helpers/fhir.js';
import { STORE_DRIVERS } from './helpers/stores.js';
import { startFhirOnlyServer } from './helpers/testServer.js';

/**
 * Transaction Bundles: resource identities that overlap once conditional entries are resolved against what is
 * stored (R4 http.html#trules), and `urn:uuid:` references inside a PATCH's operations.
 */
const SYSTEM = 'urn:test:txn-identities';

const patient = (family: string, id?: string): Patient => ({
  resourceType: 'Patient',
  ...(id ? { id } : {}),
  identifier: [{ system: SYSTEM, value: family }],
  name: [{ family, given: ['Ana'] }],
  text: { status: 'generated', div: `<div xmlns="http://www.w3.org/1999/xhtml">Ana ${family}</div>` },
});

const base64 = (value: unknown) => Buffer.from(JSON.stringify(value), 'utf8').toString('base64');
const jsonPatch = (ops: unknown) => ({ resourceType: 'Binary', contentType: 'application/json-patch+json', data: base64(ops) });
const paths = (o: OperationOutcome) => o.issue.flatMap((i) => i.expression ?? []);
const byIdentifier = (value: string) => `Patient?identifier=${encodeURIComponent(`${SYSTEM}|${value}`)}`;

describe.each(STORE_DRIVERS)('transaction identities on $name', (driver) => {
  let server: RunningServer;
  const config = driver.config();
  const url = (path: string) => `${server.fhirBase}/${path}`;
  const transaction = (entry: unknown[]) => raw(server.fhirBase, { method: 'POST', json: { resourceType: 'Bundle', type: 'transaction', entry } });
  const put = async (p: Patient): Promise<Patient> => (await raw(url(`Patient/${p.id}`), { method: 'PUT', json: p })).body as Patient;
  const count = async (query: string): Promise<number> => (await raw(url(`${query}&_summary=count`))).body.total as number;

  /** A refusal: 400, an OperationOutcome naming both entries and the resource, and the stored patient untouched. */
  async function expectOverlap(res: Awaited<ReturnType<typeof raw>>, entries: [number, number], stored: Patient): Promise<void> {
    expect(res.status, JSON.stringify(res.body)).toBe(400);
    expect(res.body.resourceType).toBe('OperationOutcome');
    expect(paths(res.body)).toEqual(entries.map((i) => `Bundle.entry[${i}]`));
    expect(res.body.issue[0].diagnostics).toContain(`both name Patient/${stored.id}`);
    const now = await raw(url(`Patient/${stored.id}`));
    expect(now.status).toBe(200);
    expect(now.body.meta.versionId).toBe(stored.meta?.versionId);
  }

  beforeAll(async () => {
    server = await startFhirOnlyServer(config);
  });
  afterAll(async () => {
    await server?.close();
    await driver.cleanup(config);
  });

  describe('conditional entries resolved against what is stored', () => {
    it('a conditional update and a DELETE of the resource it matches fail with 400 naming both, and nothing is written', async () => {
      const stored = await put(patient('CondPutDelete', 'cond-put-delete'));
      const res = await transaction([
        { resource: patient('Changed'), request: { method: 'PUT', url: byIdentifier('CondPutDelete') } },
        { request: { method: 'DELETE', url: 'Patient/cond-put-delete' } },
      ]);
      await expectOverlap(res, [0, 1], stored);
      expect(await count('Patient?family=Changed')).toBe(0);
    });

    it('an update by id and a conditional update matching the same resource fail with 400 naming both', async () => {
      const stored = await put(patient('IdAndCond', 'id-and-cond'));
      const res = await transaction([
        { resource: patient('IdAndCond', 'id-and-cond'), request: { method: 'PUT', url: 'Patient/id-and-cond' } },
        { resource: patient('IdAndCond'), request: { method: 'PUT', url: byIdentifier('IdAndCond') } },
      ]);
      await expectOverlap(res, [0, 1], stored);
    });

    it('a conditional delete and a conditional update with different criteria matching one resource fail with 400 naming both', async () => {
      const stored = await put(patient('TwoCriteria', 'two-criteria'));
      const res = await transaction([
        { request: { method: 'GET', url: 'Patient?_count=1' } },
        { resource: patient('TwoCriteria'), request: { method: 'PUT', url: 'Patient?family=TwoCriteria' } },
        { request: { method: 'DELETE', url: byIdentifier('TwoCriteria') } },
      ]);
      await expectOverlap(res, [1, 2], stored);
    });

    it('a conditional create that finds the resource another entry updates fails with 400 naming both', async () => {
      const stored = await put(patient('CondCreate', 'cond-create'));
      const res = await transaction([
        { resource: patient('CondCreate', 'cond-create'), request: { method: 'PUT', url: 'Patient/cond-create' } },
        { resource: patient('CondCreate'), request: { method: 'POST', url: 'Patient', ifNoneExist: `identifier=${SYSTEM}|CondCreate` } },
      ]);
      await expectOverlap(res, [0, 1], stored);
    });

    it('a conditional update matching a resource created earlier in the same transaction fails with 400 and stores neither', async () => {
      const res = await transaction([
        { resource: patient('CreatedHere'), request: { method: 'PUT', url: byIdentifier('CreatedHere') } },
        { fullUrl: 'urn:uuid:7a0b7d3e-2f1c-4c55-9d0e-0c4f5b1b8a11', resource: patient('CreatedHere'), request: { method: 'POST', url: 'Patient' } },
      ]);
      expect(res.status, JSON.stringify(res.body)).toBe(400);
      expect(res.body.resourceType).toBe('OperationOutcome');
      expect(paths(res.body)).toEqual(['Bundle.entry[0]', 'Bundle.entry[1]']);
      expect(await count(byIdentifier('CreatedHere'))).toBe(0);
    });

    it('conditional entries that resolve to different resources, or to none, still run', async () => {
      await put(patient('Distinct', 'distinct'));
      const res = await transaction([
        { resource: patient('Distinct'), request: { method: 'PUT', url: byIdentifier('Distinct') } },
        { resource: patient('Other', 'distinct-other'), request: { method: 'PUT', url: 'Patient/distinct-other' } },
        { request: { method: 'DELETE', url: byIdentifier('NeverStored') } },
        { resource: patient('NewByCriteria'), request: { method: 'PUT', url: byIdentifier('NewByCriteria') } },
      ]);
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      expect(res.body.entry.map((e: BundleEntry) => e.response?.status)).toEqual(['200', '201', '204', '201']);
      expect(res.body.entry[0].resource.id).toBe('distinct');
    });
  });

  describe('conditional entries after the DELETE entries (R4 http.html#trules: DELETE runs first)', () => {
    it('a conditional update matching two resources, one of which a DELETE entry deletes, updates the one left; references to its fullUrl name it', async () => {
      await put(patient('AfterDelete', 'after-delete-1'));
      await put(patient('AfterDelete', 'after-delete-2'));
      const fullUrl = 'urn:uuid:4d2c8b1a-6e5f-4a3b-9c8d-7e6f5a4b3c2d';
      const res = await transaction([
        {
          resource: { resourceType: 'Condition', identifier: [{ system: SYSTEM, value: 'cond-after-delete' }], code: { text: 'x' }, subject: { reference: fullUrl } },
          request: { method: 'POST', url: 'Condition' },
        },
        { fullUrl, resource: { ...patient('AfterDelete'), gender: 'female' }, request: { method: 'PUT', url: byIdentifier('AfterDelete') } },
        { request: { method: 'DELETE', url: 'Patient/after-delete-1' } },
      ]);
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      expect(res.body.entry.map((e: BundleEntry) => e.response?.status)).toEqual(['201', '200', '204']);
      expect(res.body.entry[1].resource.id).toBe('after-delete-2');
      expect((await raw(url('Patient/after-delete-1'))).status).toBe(410);
      const left = (await raw(url('Patient/after-delete-2'))).body as Patient;
      expect([left.meta?.versionId, left.gender]).toEqual(['2', 'female']);
      const condition = await raw(url(`Condition?identifier=${encodeURIComponent(`${SYSTEM}|cond-after-delete`)}`));
      expect(condition.body.entry.map((e: BundleEntry) => (e.resource as Condition).subject.reference)).toEqual(['Patient/after-delete-2']);
    });

    it('a conditional delete matching two resources, one of which a DELETE entry later in the Bundle deletes, deletes the one left', async () => {
      await put(patient('DeleteAfterDelete', 'delete-after-delete-1'));
      await put(patient('DeleteAfterDelete', 'delete-after-delete-2'));
      const res = await transaction([
        { request: { method: 'DELETE', url: byIdentifier('DeleteAfterDelete') } },
        { request: { method: 'DELETE', url: 'Patient/delete-after-delete-1' } },
      ]);
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      expect(res.body.entry.map((e: BundleEntry) => e.response?.status)).toEqual(['204', '204']);
      expect(await count(byIdentifier('DeleteAfterDelete'))).toBe(0);
    });

    it('a conditional update whose every match a DELETE entry deletes names what that entry deletes: 400 naming both, nothing written', async () => {
      await put(patient('AllDeleted', 'all-deleted-1'));
      const second = await put(patient('AllDeleted', 'all-deleted-2'));
      const res = await transaction([
        { request: { method: 'DELETE', url: 'Patient/all-deleted-2' } },
        { resource: patient('AllDeleted'), request: { method: 'PUT', url: byIdentifier('AllDeleted') } },
        { request: { method: 'DELETE', url: 'Patient/all-deleted-1' } },
      ]);
      // The first DELETE entry deleting one of its matches is named.
      await expectOverlap(res, [0, 1], second);
      expect(await count(byIdentifier('AllDeleted'))).toBe(2);
    });
  });

  describe('a conditional create other entries refer to by its fullUrl', () => {
    const fullUrl = 'urn:uuid:9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b';
    /** A conditional create of a Condition referring to the Patient's fullUrl: placed first, it runs before the Patient's. */
    const condition = (value: string) => ({
      resource: { resourceType: 'Condition', identifier: [{ system: SYSTEM, value }], code: { text: value }, subject: { reference: fullUrl } },
      request: { method: 'POST', url: 'Condition', ifNoneExist: `identifier=${SYSTEM}|${value}` },
    });
    const createPatient = (family: string) => ({
      fullUrl,
      resource: patient(family),
      request: { method: 'POST', url: 'Patient', ifNoneExist: `identifier=${SYSTEM}|${family}` },
    });
    const subjects = async (value: string): Promise<(string | undefined)[]> => {
      const found = await raw(url(`Condition?identifier=${encodeURIComponent(`${SYSTEM}|${value}`)}`));
      return (found.body.entry ?? []).map((e: BundleEntry) => (e.resource as Condition).subject.reference);
    };

    it('If-None-Exist matching a stored resource: references from entries that run before it name that resource', async () => {
      await put(patient('CreateFound', 'create-found'));
      const res = await transaction([condition('cond-create-found'), createPatient('CreateFound')]);
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      expect(res.body.entry.map((e: BundleEntry) => e.response?.status)).toEqual(['201', '200']);
      expect(await subjects('cond-create-found')).toEqual(['Patient/create-found']);
      expect(await count(byIdentifier('CreateFound'))).toBe(1);
    });

    it('If-None-Exist matching nothing: the resource is created with the id references to it were given', async () => {
      const res = await transaction([condition('cond-create-new'), createPatient('CreateNew')]);
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      const id = res.body.entry[1].resource.id as string;
      expect(res.body.entry[1].response.status).toBe('201');
      expect(await subjects('cond-create-new')).toEqual([`Patient/${id}`]);
    });

    it('If-None-Exist matching a resource a DELETE entry deletes names it: 400 naming both, nothing written', async () => {
      const stored = await put(patient('CreateDeleted', 'create-deleted'));
      const res = await transaction([createPatient('CreateDeleted'), { request: { method: 'DELETE', url: 'Patient/create-deleted' } }]);
      await expectOverlap(res, [0, 1], stored);
    });
  });

  describe('a conditional update other entries refer to by its fullUrl', () => {
    const fullUrl = 'urn:uuid:3c6f1d2e-8a4b-4f0c-9e7d-2b1a0c9d8e7f';
    const upsert = (family: string) => ({ fullUrl, resource: patient(family), request: { method: 'PUT', url: byIdentifier(family) } });
    // Condition stands for the Observation of the usual integration: this server stores no Observation.
    const condition = (value: string) => ({
      resource: { resourceType: 'Condition', identifier: [{ system: SYSTEM, value }], code: { text: value }, subject: { reference: fullUrl } },
      request: { method: 'POST', url: 'Condition' },
    });
    /** The subjects of the stored Conditions with this identifier. */
    const subjects = async (value: string): Promise<(string | undefined)[]> => {
      const found = await raw(url(`Condition?identifier=${encodeURIComponent(`${SYSTEM}|${value}`)}`));
      return (found.body.entry ?? []).map((e: BundleEntry) => (e.resource as Condition).subject.reference);
    };

    it('criteria matching one stored resource: references become that resource, which is updated', async () => {
      const stored = await put(patient('UpsertFound', 'upsert-found'));
      const res = await transaction([condition('cond-upsert-found'), upsert('UpsertFound')]);
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      expect(res.body.entry[1].response.status).toBe('200');
      expect(await subjects('cond-upsert-found')).toEqual([`Patient/${stored.id}`]);
      expect((await raw(url(`Patient/${stored.id}`))).body.meta.versionId).toBe('2');
    });

    it('criteria matching nothing: the resource is created with the id references to it were given', async () => {
      const res = await transaction([upsert('UpsertNew'), condition('cond-upsert-new')]);
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      const created = await raw(url(byIdentifier('UpsertNew')));
      expect(created.body.entry).toHaveLength(1);
      const id = created.body.entry[0].resource.id as string;
      expect(res.body.entry[0].response.status).toBe('201');
      expect(res.body.entry[0].response.location).toMatch(new RegExp(`/Patient/${id}/_history/1$`));
      expect(await subjects('cond-upsert-new')).toEqual([`Patient/${id}`]);
    });

    it('criteria matching nothing, the resource bringing its own id: it is created with that id', async () => {
      const res = await transaction([{ ...upsert('UpsertOwnId'), resource: patient('UpsertOwnId', 'upsert-own-id') }, condition('cond-upsert-own-id')]);
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      expect((await raw(url('Patient/upsert-own-id'))).status).toBe(200);
      expect(await subjects('cond-upsert-own-id')).toEqual(['Patient/upsert-own-id']);
    });

    it('criteria matching two resources: 412 naming the update, and nothing is written', async () => {
      await put(patient('UpsertTwice', 'upsert-twice-1'));
      await put(patient('UpsertTwice', 'upsert-twice-2'));
      const res = await transaction([condition('cond-upsert-twice'), upsert('UpsertTwice')]);
      expect(res.status, JSON.stringify(res.body)).toBe(412);
      expect(res.body.resourceType).toBe('OperationOutcome');
      expect(paths(res.body)).toEqual(['Bundle.entry[1]']);
      expect(await subjects('cond-upsert-twice')).toEqual([]);
      expect((await raw(url('Patient/upsert-twice-1'))).body.meta.versionId).toBe('1');
    });
  });

  describe('PATCH entries', () => {
    it('urn:uuid references in the operations are rewritten to the ids the transaction assigned', async () => {
      const stored = await put(patient('PatchRefs', 'patch-refs'));
      const practitioner = 'urn:uuid:0f8e4d7c-1b2a-4e3f-9a8b-7c6d5e4f3a21';
      const organization = 'urn:uuid:1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d';
      const res = await transaction([
        {
          resource: jsonPatch([
            { op: 'add', path: '/generalPractitioner', value: [{ reference: practitioner, display: 'Dr Who' }] },
            { op: 'add', path: '/managingOrganization', value: { reference: 'urn:uuid:placeholder' } },
            { op: 'replace', path: '/managingOrganization/reference', value: organization },
          ]),
          request: { method: 'PATCH', url: `Patient/${stored.id}` },
        },
        { fullUrl: practitioner, resource: { resourceType: 'Practitioner', name: [{ family: 'Who' }] }, request: { method: 'POST', url: 'Practitioner' } },
        { fullUrl: organization, resource: { resourceType: 'Organization', name: 'Clinic' }, request: { method: 'POST', url: 'Organization' } },
        { fullUrl: 'urn:uuid:placeholder', resource: { resourceType: 'Organization', name: 'Placeholder' }, request: { method: 'POST', url: 'Organization' } },
      ]);
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      const practitionerId = res.body.entry[1].resource.id;
      const organizationId = res.body.entry[2].resource.id;
      const patched = (await raw(url(`Patient/${stored.id}`))).body as Patient;
      expect(patched.generalPractitioner).toEqual([{ reference: `Practitioner/${practitionerId}`, display: 'Dr Who' }]);
      expect(patched.managingOrganization).toEqual({ reference: `Organization/${organizationId}` });
    });

    it('a urn:uuid in the operations that names no entry fails with 400 naming the entry, and nothing is written', async () => {
      const stored = await put(patient('PatchDangling', 'patch-dangling'));
      const res = await transaction([
        { resource: { resourceType: 'Practitioner', name: [{ family: 'DanglingSibling' }] }, request: { method: 'POST', url: 'Practitioner' } },
        {
          resource: jsonPatch([{ op: 'add', path: '/generalPractitioner', value: [{ reference: 'urn:uuid:5b9c1e2d-0000-4000-8000-000000000000' }] }]),
          request: { method: 'PATCH', url: `Patient/${stored.id}` },
        },
      ]);
      expect(res.status).toBe(400);
      expect(res.body.resourceType).toBe('OperationOutcome');
      expect(paths(res.body)).toEqual(['Bundle.entry[1]']);
      expect(res.body.issue[0].diagnostics).toContain('does not match any fullUrl in the Bundle');
      expect((await raw(url(`Patient/${stored.id}`))).body.meta.versionId).toBe(stored.meta?.versionId);
      expect((await raw(url('Practitioner?family=DanglingSibling&_summary=count'))).body.total).toBe(0);
    });
  });

  it('concurrent transactions whose conditional entries name the same resources in opposite orders all succeed: no deadlock, no 500', async () => {
    const families = ['LockOrderA', 'LockOrderB', 'LockOrderC'];
    for (const family of families) await put(patient(family, family.toLowerCase()));
    const conditionalPuts = (order: string[], round: number) =>
      order.map((family) => ({ resource: { ...patient(family), gender: round % 2 ? 'female' : 'other' }, request: { method: 'PUT', url: byIdentifier(family) } }));
    const rounds = Array.from({ length: 12 }, (_, round) => transaction(conditionalPuts(round % 2 ? [...families].reverse() : families, round)));
    const statuses = (await Promise.all(rounds)).map((res) => `${res.status}${res.status === 200 ? '' : ` ${JSON.stringify(res.body).slice(0, 200)}`}`);
    expect(statuses).toEqual(rounds.map(() => '200'));
  });

  it('concurrent transactions updating the same named resources in opposite orders all succeed: they are written in one order', async () => {
    const ids = ['row-order-a', 'row-order-b', 'row-order-c'];
    for (const id of ids) await put(patient(id, id));
    const puts = (order: string[], round: number) => order.map((id) => ({ resource: { ...patient(id, id), gender: round % 2 ? 'female' : 'other' }, request: { method: 'PUT', url: `Patient/${id}` } }));
    const answers = await Promise.all(Array.from({ length: 12 }, (_, round) => transaction(puts(round % 2 ? [...ids].reverse() : ids, round))));
    expect(answers.map((res) => res.status)).toEqual(answers.map(() => 200));
  });

  it('concurrent transactions that meet on the same rows some other way: each succeeds or is a 409 lock-error to retry, never a 500', async () => {
    for (const id of ['mixed-order-a', 'mixed-order-b']) await put(patient(id, id));
    // A names a by id and b by criteria; B the other way round: each takes a row the other wants next.
    const crossed = (named: string, matched: string, round: number) => [
      { resource: { ...patient(named, named), gender: round % 2 ? 'female' : 'other' }, request: { method: 'PUT', url: `Patient/${named}` } },
      { resource: { ...patient(matched), gender: round % 2 ? 'female' : 'other' }, request: { method: 'PUT', url: byIdentifier(matched) } },
    ];
    const answers = await Promise.all(Array.from({ length: 12 }, (_, round) => transaction(round % 2 ? crossed('mixed-order-a', 'mixed-order-b', round) : crossed('mixed-order-b', 'mixed-order-a', round))));
    for (const res of answers) {
      if (res.status === 200) continue;
      expect(res.status, JSON.stringify(res.body)).toBe(409);
      expect(res.body.issue[0].code).toBe('lock-error');
    }
    expect(answers.some((res) => res.status === 200)).toBe(true);
  });
});
