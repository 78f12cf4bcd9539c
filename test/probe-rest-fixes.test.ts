import type { AuditEvent, Basic, Bundle, Patient } from 'fhir/r4.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../server/src/server.js';
import { type DemoServer, startDemoServer } from './helpers/demoServer.js';
import { raw } from './helpers/fhir.js';
import { STORE_DRIVERS } from './helpers/stores.js';
import { startFhirOnlyServer } from './helpers/testServer.js';
import { tokenFor } from './helpers/tokens.js';

/**
 * Defects a REST conformance probe found: impossible dates, DELETE of what does not exist, history's parameters and
 * the requests its entries describe, lastModified in Bundle entries, and two misleading error messages.
 */
const basic = (code: string, extra: Partial<Basic> = {}): Basic => ({ resourceType: 'Basic', code: { coding: [{ system: 'urn:test:probe', code }] }, ...extra });
const isSubsetted = (r: { meta?: { tag?: { code?: string }[] } } | undefined) => r?.meta?.tag?.some((t) => t.code === 'SUBSETTED') ?? false;
const expressions = (body: { issue?: { expression?: string[] }[] }) => (body.issue ?? []).flatMap((i) => i.expression ?? []);

describe.each(STORE_DRIVERS)('REST fixes from the conformance probe on $name', (driver) => {
  let server: RunningServer;
  const config = driver.config();
  const url = (path: string) => `${server.fhirBase}/${path}`;
  const post = (path: string, json: unknown, headers: Record<string, string> = {}) => raw(url(path), { method: 'POST', json, headers });
  const put = (path: string, json: unknown) => raw(url(path), { method: 'PUT', json });
  const transaction = (entry: unknown[], headers: Record<string, string> = {}) => raw(server.fhirBase, { method: 'POST', json: { resourceType: 'Bundle', type: 'transaction', entry }, headers });

  beforeAll(async () => {
    server = await startFhirOnlyServer(config);
  });
  afterAll(async () => {
    await server?.close();
    await driver.cleanup(config);
  });

  describe('dates R4 refuses (datatypes.html): a day the calendar does not have, a time without its zone', () => {
    it('are refused on create with 422 naming the element; leap days of leap years are taken and found by date searches', async () => {
      const refused: [Partial<Patient>, string][] = [
        [{ birthDate: '1990-02-30' }, 'Patient.birthDate'],
        [{ birthDate: '2021-02-29' }, 'Patient.birthDate'],
        [{ birthDate: '1900-02-29' }, 'Patient.birthDate'],
        [{ deceasedDateTime: '2021-02-29T10:00:00Z' }, 'Patient.deceased[x]'],
        [{ deceasedDateTime: '2021-04-31' }, 'Patient.deceased[x]'],
        [{ deceasedDateTime: '2021-04-30T10:00:00' }, 'Patient.deceased[x]'],
        [{ deceasedDateTime: '2021-04-30T10:00Z' }, 'Patient.deceased[x]'],
      ];
      for (const [fields, path] of refused) {
        const res = await post('Patient', { resourceType: 'Patient', ...fields });
        expect([res.status, res.body.resourceType, expressions(res.body)], JSON.stringify(fields)).toEqual([422, 'OperationOutcome', [path]]);
      }
      const report = await post('DiagnosticReport', { resourceType: 'DiagnosticReport', status: 'final', code: { text: 'probe' }, issued: '2021-02-29T10:00:00Z' });
      expect([report.status, expressions(report.body)]).toEqual([422, ['DiagnosticReport.issued']]);
      for (const birthDate of ['2024-02-29', '2000-02-29']) {
        const created = await post('Patient', { resourceType: 'Patient', birthDate, deceasedDateTime: `${birthDate}T23:30:00-08:00` });
        expect(created.status, birthDate).toBe(201);
        const found = await raw(url(`Patient?_id=${created.body.id}&birthdate=${birthDate}&death-date=${birthDate.slice(0, 4)}-03-01`));
        expect(found.body.entry?.length, birthDate).toBe(1);
      }
    });

    it('are refused on update, on what a PATCH makes and in transaction entries, with nothing stored', async () => {
      const put1 = await put('Patient/probe-bad-date', { resourceType: 'Patient', id: 'probe-bad-date', birthDate: '2021-04-31' });
      expect([put1.status, expressions(put1.body)]).toEqual([422, ['Patient.birthDate']]);
      expect((await raw(url('Patient/probe-bad-date'))).status).toBe(404);
      const created = (await post('Patient', { resourceType: 'Patient', birthDate: '1990-02-28' })).body as Patient;
      const patch = await raw(url(`Patient/${created.id}`), {
        method: 'PATCH',
        headers: { 'content-type': 'application/json-patch+json' },
        json: [{ op: 'replace', path: '/birthDate', value: '1990-02-29' }],
      });
      expect([patch.status, expressions(patch.body)]).toEqual([422, ['Patient.birthDate']]);
      expect((await raw(url(`Patient/${created.id}`))).body.meta.versionId).toBe('1');
      const tx = await transaction([{ fullUrl: 'urn:uuid:p', resource: { resourceType: 'Patient', deceasedDateTime: '2021-04-30T10:00:00' }, request: { method: 'POST', url: 'Patient' } }]);
      expect([tx.status, expressions(tx.body)]).toEqual([422, ['Bundle.entry[0].resource.deceased[x]']]);
    });
  });

  describe('DELETE of what does not exist (R4 http.html#delete: 200 or 204 "if the resource does not exist at all")', () => {
    it('answers 204 as a deletion does for an id that never existed and one already deleted, and writes nothing', async () => {
      const never = await raw(url('Basic/probe-never-existed'), { method: 'DELETE' });
      expect([never.status, never.body]).toEqual([204, undefined]);
      expect((await raw(url('Basic/probe-never-existed'))).status).toBe(404);
      expect((await raw(url('Basic/probe-never-existed/_history'))).status).toBe(404);
      const created = (await post('Basic', basic('deleted-twice'))).body as Basic;
      for (let i = 0; i < 2; i++) expect((await raw(url(`Basic/${created.id}`), { method: 'DELETE' })).status).toBe(204);
      expect((await raw(url(`Basic/${created.id}/_history`))).body.entry.length).toBe(2);
      // The preconditions still hold: If-Match names no version of what does not exist; If-None-Match: * holds.
      expect((await raw(url('Basic/probe-never-existed'), { method: 'DELETE', headers: { 'If-Match': '*' } })).status).toBe(412);
      expect((await raw(url('Basic/probe-never-existed'), { method: 'DELETE', headers: { 'If-None-Match': '*' } })).status).toBe(204);
      // A conditional delete that matches nothing answers the same.
      expect((await raw(url('Basic?identifier=urn:test:probe|nothing-matches'), { method: 'DELETE' })).status).toBe(204);
    });

    it('does not roll back a transaction', async () => {
      const tx = await transaction([
        { fullUrl: 'urn:uuid:kept', resource: basic('kept-by-transaction'), request: { method: 'POST', url: 'Basic' } },
        { request: { method: 'DELETE', url: 'Basic/probe-never-in-transaction' } },
      ]);
      expect(tx.status).toBe(200);
      expect((tx.body as Bundle).entry?.map((e) => e.response?.status)).toEqual(['201', '204']);
      expect((await raw(url((tx.body as Bundle).entry![0].response!.location!.split('/_history')[0].replace(`${server.fhirBase}/`, '')))).status).toBe(200);
    });
  });

  describe('history parameters, as a search treats its own', () => {
    it('_list is refused as not supported; an unknown parameter is 400 under handling=strict and ignored (and left out of the links) otherwise', async () => {
      const created = (await post('Basic', basic('history-params'))).body as Basic;
      for (const prefer of ['handling=strict', 'handling=lenient']) {
        const list = await raw(url('Basic/_history?_list=probe'), { headers: { Prefer: prefer } });
        expect([list.status, expressions(list.body)], prefer).toEqual([400, ['_list']]);
      }
      const strict = await raw(url(`Basic/${created.id}/_history?bogus=1`), { headers: { Prefer: 'handling=strict' } });
      expect([strict.status, expressions(strict.body)]).toEqual([400, ['bogus']]);
      const lenient = await raw(url(`Basic/${created.id}/_history?bogus=1&_count=5`));
      expect(lenient.status).toBe(200);
      expect(lenient.body.entry.length).toBe(1);
      expect(lenient.body.link.find((l: { relation: string }) => l.relation === 'self').url).toBe(url(`Basic/${created.id}/_history?_count=5`));
    });

    it('_summary and _elements shape each version as on a read; _summary=count, and _elements across types, are 400', async () => {
      const created = (await post('Basic', basic('history-shape', { subject: { reference: 'Patient/x' } }))).body as Basic;
      const summary = await raw(url(`Basic/${created.id}/_history?_summary=true`));
      expect(summary.status).toBe(200);
      expect(isSubsetted(summary.body.entry[0].resource)).toBe(true);
      const elements = await raw(url(`Basic/_history?_elements=subject&_count=1`));
      expect(elements.status).toBe(200);
      expect(elements.body.entry[0].resource.subject).toEqual({ reference: 'Patient/x' });
      expect(isSubsetted(elements.body.entry[0].resource)).toBe(true);
      for (const path of ['Basic/_history?_summary=count', '_history?_summary=count', '_history?_elements=subject']) {
        const res = await raw(url(path));
        expect(res.status, path).toBe(400);
      }
    });
  });

  describe('history entries describe the requests that wrote each version', () => {
    it('a PUT that recreates a deleted resource is PUT Type/id answered 201', async () => {
      const id = 'probe-recreated';
      expect((await put(`Basic/${id}`, basic('recreated', { id }))).status).toBe(201);
      expect((await put(`Basic/${id}`, basic('recreated-2', { id }))).status).toBe(200);
      expect((await raw(url(`Basic/${id}`), { method: 'DELETE' })).status).toBe(204);
      expect((await put(`Basic/${id}`, basic('recreated-3', { id }))).status).toBe(201);
      const history = (await raw(url(`Basic/${id}/_history`))).body as Bundle;
      const described = history.entry?.map((e) => [e.request?.method, e.request?.url, e.response?.status]);
      expect(described?.slice(0, 3)).toEqual([
        ['PUT', `Basic/${id}`, '201'],
        ['DELETE', `Basic/${id}`, '204'],
        ['PUT', `Basic/${id}`, '200'],
      ]);
      // The first version was a create (201); whether by POST or by PUT is not stored.
      expect(history.entry?.[3].response?.status).toBe('201');
    });
  });

  describe('lastModified of Bundle entries without the resource', () => {
    it('is the version\'s meta.lastUpdated, milliseconds included, in a batch 304 and under Prefer: return=minimal', async () => {
      const created = (await post('Basic', basic('last-modified'))).body as Basic;
      const batch = await raw(server.fhirBase, {
        method: 'POST',
        json: { resourceType: 'Bundle', type: 'batch', entry: [{ request: { method: 'GET', url: `Basic/${created.id}`, ifNoneMatch: 'W/"1"' } }] },
      });
      expect(batch.body.entry[0].response).toMatchObject({ status: '304', lastModified: created.meta?.lastUpdated });
      const tx = await transaction([{ fullUrl: 'urn:uuid:m', resource: basic('minimal'), request: { method: 'POST', url: 'Basic' } }], { Prefer: 'return=minimal' });
      const response = (tx.body as Bundle).entry![0].response!;
      const stored = (await raw(response.location!)).body as Basic;
      expect(response.lastModified).toBe(stored.meta?.lastUpdated);
    });
  });

  describe('error messages say what is wrong', () => {
    it('POST to the base with another resource says the base takes a batch or transaction Bundle, and nothing of Bundle.type', async () => {
      const res = await raw(server.fhirBase, { method: 'POST', json: { resourceType: 'Patient' } });
      expect(res.status).toBe(400);
      expect(res.body.issue).toHaveLength(1);
      expect(res.body.issue[0].diagnostics).toBe('POST to the base takes a batch or transaction Bundle, not a Patient');
      const untyped = await raw(server.fhirBase, { method: 'POST', json: { resourceType: 'Bundle' } });
      expect(untyped.body.issue.map((i: { diagnostics: string }) => i.diagnostics)).toEqual(['Bundle.type: Bundle.type must be batch or transaction']);
    });

  });
});

describe.each(STORE_DRIVERS)('REST fixes from the conformance probe, with access control, on $name', (driver) => {
  let server: DemoServer;
  const config = driver.config();
  let admin: string;
  let member: string;
  const send = (method: string, path: string, token: string, json?: unknown, headers: Record<string, string> = {}) =>
    raw(`${server.fhirBase}/${path}`, { method, json, headers: { authorization: `Bearer ${token}`, ...headers } });

  beforeAll(async () => {
    server = await startDemoServer(config);
    admin = tokenFor(server, { scope: 'system/*.cruds' });
    member = tokenFor(server, { scope: 'launch/patient patient/*.cruds', patient: 'member-hpsj-1', fhirUser: 'Patient/member-hpsj-1', roles: ['member'] });
  });
  afterAll(async () => {
    await server?.close();
    await driver.cleanup(config);
  });

  it('a DELETE of a resource the token may not see is answered as one of a missing id (204), deletes nothing, and is audited as the refusal it is', async () => {
    const condition = { resourceType: 'Condition', subject: { reference: 'Patient/member-phc-1' }, code: { text: 'delete concealment probe' } };
    const theirs = (await send('POST', 'Condition', admin, condition)).body.id as string;
    const theirsDeleted = (await send('POST', 'Condition', admin, condition)).body.id as string;
    expect((await send('DELETE', `Condition/${theirsDeleted}`, admin)).status).toBe(204);
    for (const id of [theirs, theirsDeleted]) {
      const res = await send('DELETE', `Condition/${id}`, member);
      const missing = await send('DELETE', 'Condition/never-existed', member);
      expect([res.status, res.body]).toEqual([missing.status, missing.body]);
      expect(res.status).toBe(204);
      // If-Match names no version of a missing id: the same 412, word for word.
      const ifMatch = await send('DELETE', `Condition/${id}`, member, undefined, { 'If-Match': 'W/"1"' });
      const ifMatchMissing = await send('DELETE', 'Condition/never-existed', member, undefined, { 'If-Match': 'W/"1"' });
      expect([ifMatch.status, ifMatch.body.issue[0].diagnostics.replace(id, '{id}')]).toEqual([412, ifMatchMissing.body.issue[0].diagnostics.replace('never-existed', '{id}')]);
    }
    const tx = await send('POST', '', member, { resourceType: 'Bundle', type: 'transaction', entry: [{ request: { method: 'DELETE', url: `Condition/${theirs}` } }] });
    expect([tx.status, tx.body.entry?.[0]?.response?.status]).toEqual([200, '204']);
    const kept = await send('GET', `Condition/${theirs}`, admin);
    expect([kept.status, kept.body.meta.versionId]).toEqual([200, '1']);
    expect((await send('GET', `Condition/${theirsDeleted}/_history`, admin)).body.entry).toHaveLength(2);
    await new Promise((r) => setTimeout(r, 300));
    const audit = (await send('GET', `AuditEvent?entity=Condition/${theirs}&_count=50`, admin)).body as Bundle;
    const deletes = (audit.entry ?? []).map((e) => e.resource as AuditEvent).filter((e) => e.action === 'D' && e.outcomeDesc?.startsWith('HTTP 204'));
    expect(deletes.map((e) => [e.outcome, e.outcomeDesc])).toEqual([['4', 'HTTP 204 (access refused, answered as not found)']]);
  });

  it('$submit of a Bundle without entries says it needs one; a date R4 refuses in what an operation is sent is 422 naming it', async () => {
    const empty = await send('POST', 'ServiceRequest/$submit', admin, { resourceType: 'Bundle', type: 'collection' });
    expect([empty.status, empty.body.issue[0].diagnostics, expressions(empty.body)]).toEqual([400, 'The Bundle has no entry: it needs one holding the second-opinion ServiceRequest', ['Bundle.entry']]);
    const request = { resourceType: 'ServiceRequest', status: 'draft', intent: 'order', subject: { reference: 'Patient/member-hpsj-1' }, authoredOn: '2021-02-29T10:00:00Z' };
    const dated = await send('POST', 'ServiceRequest/$submit', admin, { resourceType: 'Bundle', type: 'collection', entry: [{ resource: request }] });
    expect([dated.status, expressions(dated.body)]).toEqual([422, ['Bundle.entry[0].resource.authoredOn']]);
  });
});
