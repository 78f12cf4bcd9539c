import type { Basic, Bundle, BundleEntry, Endpoint } from 'fhir/r4.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { OperationDefinitionEntry } from '../server/src/fhir/context.js';
import type { RunningServer } from '../server/src/server.js';
import { raw } from './helpers/fhir.js';
import { STORE_DRIVERS } from './helpers/stores.js';
import { startFhirOnlyServer } from './helpers/testServer.js';

/**
 * Findings of conformance probe 5 on the REST layer (.tmp/probe5/findings.md): conditional writes whose criteria hold
 * only result parameters (M6), `_history?_at=` with a partial date (M7), 405 without Allow (L1), `If-None-Match: *`
 * on PUT (L8), a blank If-None-Exist (L12) and empty batch answers (L3).
 */
const endpoint = (name: string, extra: Partial<Endpoint> = {}): Endpoint => ({
  resourceType: 'Endpoint',
  status: 'active',
  name,
  connectionType: { system: 'http://terminology.hl7.org/CodeSystem/endpoint-connection-type', code: 'hl7-fhir-rest' },
  payloadType: [{ text: 'any' }],
  address: 'https://provider.example/fhir',
  ...extra,
});
const basic = (code: string, extra: Partial<Basic> = {}): Basic => ({ resourceType: 'Basic', code: { coding: [{ system: 'urn:test:probe5', code }] }, ...extra });

/** Two stand-in operations, one that changes state and one that does not, to see what their 405s allow. */
const operation = (name: string, affectsState: boolean): OperationDefinitionEntry => ({
  name,
  levels: ['type', 'instance'],
  resourceTypes: ['Basic'],
  interaction: 'read',
  affectsState,
  definition: `urn:test:probe5:${name}`,
  handler: async () => ({ status: 200, body: { resourceType: 'Parameters' } }),
});

describe.each(STORE_DRIVERS)('conformance probe 5, REST layer, on $name', (driver) => {
  let server: RunningServer;
  const config = driver.config();
  const url = (path: string) => `${server.fhirBase}/${path}`;
  const post = (body: unknown) => raw(server.fhirBase, { method: 'POST', json: body });

  beforeAll(async () => {
    server = await startFhirOnlyServer(config, async () => ({ operations: [operation('probe-change', true), operation('probe-look', false)] }));
  });
  afterAll(async () => {
    await server?.close();
    await driver.cleanup(config);
  });

  it('L12: a query with a broken percent-encoding is 400, as such a path is, not a search for U+FFFD', async () => {
    for (const query of ['name=%E0%A4%A', 'name=%ZZ', 'na%G1me=x']) {
      const res = await raw(url(`Patient?${query}`));
      expect(res.status, query).toBe(400);
      expect(res.body.issue[0].diagnostics).toMatch(/Malformed URL encoding/);
    }
    expect((await raw(url('Patient?name=caf%C3%A9+au+lait'))).status).toBe(200);
  });

  describe('M6: conditional criteria that hold only result parameters', () => {
    const resultOnly = ['_count=1', '_sort=_id', '_summary=true', '_elements=name', '_total=accurate', '_include=Endpoint:organization', '_count=1&_offset=0&_sort=-_lastUpdated'];
    let only: Endpoint;
    const endpoints = async () => (await raw(url('Endpoint?_summary=count'))).body.total as number;

    beforeAll(async () => {
      only = (await raw(url('Endpoint'), { method: 'POST', json: endpoint('the only one') })).body as Endpoint;
    });

    it('a conditional update, delete or create is a 400 OperationOutcome, and the only Endpoint is left as it was', async () => {
      for (const criteria of resultOnly) {
        const put = await raw(url(`Endpoint?${criteria}`), { method: 'PUT', json: endpoint('overwritten') });
        const del = await raw(url(`Endpoint?${criteria}`), { method: 'DELETE' });
        const create = await raw(url('Endpoint'), { method: 'POST', json: endpoint('created'), headers: { 'If-None-Exist': criteria } });
        expect([put.status, del.status, create.status], criteria).toEqual([400, 400, 400]);
        for (const res of [put, del, create]) expect(res.body.issue[0].code, criteria).toBe('invalid');
      }
      const stored = (await raw(url(`Endpoint/${only.id}`))).body as Endpoint;
      expect([stored.name, stored.meta?.versionId, await endpoints()]).toEqual(['the only one', '1', 1]);
    });

    it('in a transaction (conditional update, delete, create and reference) the Bundle is a 400 naming the entry, nothing written', async () => {
      const entries: BundleEntry[] = [
        { resource: endpoint('overwritten'), request: { method: 'PUT', url: 'Endpoint?_count=1' } },
        { request: { method: 'DELETE', url: 'Endpoint?_sort=_id' } },
        { resource: endpoint('created'), request: { method: 'POST', url: 'Endpoint', ifNoneExist: '_summary=true' } },
        { resource: endpoint('refers', { managingOrganization: { reference: 'Organization?_count=1' } }), request: { method: 'POST', url: 'Endpoint' } },
        { resource: basic('refers', { subject: { reference: 'Endpoint?_elements=name' } }), request: { method: 'POST', url: 'Basic' } },
      ];
      await raw(url('Organization'), { method: 'POST', json: { resourceType: 'Organization', name: 'the only organization' } });
      for (const entry of entries) {
        const res = await post({ resourceType: 'Bundle', type: 'transaction', entry: [entry] });
        expect(res.status, JSON.stringify(entry.request)).toBe(400);
        expect(res.body.issue[0].diagnostics, JSON.stringify(entry.request)).toMatch(/^Bundle\.entry\[0\]: Conditional criteria need a search parameter/);
      }
      const stored = (await raw(url(`Endpoint/${only.id}`))).body as Endpoint;
      expect([stored.name, stored.meta?.versionId, await endpoints()]).toEqual(['the only one', '1', 1]);
    });

    it('result parameters beside a real criterion still work: the update names its match', async () => {
      const res = await raw(url(`Endpoint?_id=${only.id}&_count=1`), { method: 'PUT', json: endpoint('the only one') });
      expect([res.status, res.body.meta.versionId]).toEqual([200, '2']);
    });

    it('paging (_offset, _cursor) beside a real criterion is 400: a page past the match would make the update create', async () => {
      const before = await endpoints();
      const cursor = new URL((await raw(url('Endpoint?_count=1'))).body.link.find((l: { relation: string }) => l.relation === 'last').url).searchParams.get('_cursor')!;
      for (const paging of ['_offset=1', `_cursor=${cursor}`]) {
        const put = await raw(url(`Endpoint?_id=${only.id}&${paging}`), { method: 'PUT', json: endpoint('paged') });
        const del = await raw(url(`Endpoint?_id=${only.id}&${paging}`), { method: 'DELETE' });
        const create = await raw(url('Endpoint'), { method: 'POST', json: endpoint('paged'), headers: { 'If-None-Exist': `_id=${only.id}&${paging}` } });
        expect([put.status, del.status, create.status], paging).toEqual([400, 400, 400]);
        expect(put.body.issue[0].diagnostics, paging).toMatch(/pages search results/);
      }
      expect(await endpoints()).toBe(before);
      expect(((await raw(url(`Endpoint/${only.id}`))).body as Endpoint).name).toBe('the only one');
    });

    it('a blank or whitespace If-None-Exist is criteria with nothing in them: 400, not a plain create (L12)', async () => {
      const before = await endpoints();
      const blank = await raw(url('Endpoint'), { method: 'POST', json: endpoint('blank criteria'), headers: { 'If-None-Exist': '' } });
      expect([blank.status, blank.body.resourceType]).toEqual([400, 'OperationOutcome']);
      const inBundle = await post({ resourceType: 'Bundle', type: 'transaction', entry: [{ resource: endpoint('blank'), request: { method: 'POST', url: 'Endpoint', ifNoneExist: '  ' } }] });
      expect(inBundle.status).toBe(400);
      expect(await endpoints()).toBe(before);
    });
  });

  describe('M7: _history?_at= with a partial date is the whole period (R4 http.html#history)', () => {
    let id: string;
    let versions: string[];
    const atVersions = async (path: string) => ((await raw(url(path))).body as Bundle).entry?.map((e) => e.response?.etag) ?? [];

    beforeAll(async () => {
      id = ((await raw(url('Basic'), { method: 'POST', json: basic('history-at') })).body as Basic).id!;
      for (const language of ['en', 'fr']) await raw(url(`Basic/${id}`), { method: 'PUT', json: { ...basic('history-at'), id, language } });
      const history = (await raw(url(`Basic/${id}/_history`))).body as Bundle;
      versions = history.entry!.map((e) => e.response!.lastModified!);
    });

    it('a year, a month or a day holds every version current at some point in it', async () => {
      const newest = versions[0];
      // The three versions were written moments apart; should a day boundary fall between them, the day holds fewer.
      const sameDay = versions.every((v) => v.slice(0, 10) === newest.slice(0, 10));
      for (const period of [newest.slice(0, 4), newest.slice(0, 7), newest.slice(0, 10)]) {
        const found = await atVersions(`Basic/${id}/_history?_at=${period}`);
        if (sameDay) expect(found, period).toEqual(['W/"3"', 'W/"2"', 'W/"1"']);
        else expect(found, period).toContain('W/"3"');
      }
    });

    it('a period before the resource holds nothing; one after it, the current version; type history likewise', async () => {
      expect(await atVersions(`Basic/${id}/_history?_at=2001`)).toEqual([]);
      expect(await atVersions(`Basic/${id}/_history?_at=2999-01`)).toEqual(['W/"3"']);
      const typeLevel = ((await raw(url(`Basic/_history?_at=${versions[0].slice(0, 4)}&_count=100`))).body as Bundle).entry ?? [];
      expect(typeLevel.filter((e) => e.fullUrl?.endsWith(`/Basic/${id}`)).map((e) => e.response?.etag)).toContain('W/"1"');
    });

    it('an instant is a period of its precision: a version replaced in that millisecond is not in it', async () => {
      expect(await atVersions(`Basic/${id}/_history?_at=${encodeURIComponent(versions[0])}`)).toEqual(['W/"3"']);
    });

    it('a prefix is no dateTime: 400 naming _at', async () => {
      for (const at of ['ge2026-01-01', 'lt2026', '2026-13']) {
        const res = await raw(url(`Basic/${id}/_history?_at=${at}`));
        expect([res.status, res.body.issue?.[0]?.expression], at).toEqual([400, ['_at']]);
      }
    });
  });

  describe('L1: a 405 names the allowed methods (RFC 9110 §15.5.6)', () => {
    const cases: [string, string, string][] = [
      ['POST', 'Patient/some-id', 'GET, HEAD, PUT, PATCH, DELETE'],
      ['DELETE', 'StructureDefinition/some-id', 'GET, HEAD'],
      ['PUT', 'AuditEvent/some-id', 'GET, HEAD'],
      ['PUT', 'AuditEvent?_id=some-id', 'GET, HEAD, POST'],
      ['PUT', 'Patient', 'GET, HEAD, POST'],
      ['OPTIONS', 'Patient', 'GET, HEAD, POST'],
      ['DELETE', 'Patient/_history', 'GET, HEAD'],
      ['GET', 'Patient/_search', 'POST'],
      ['POST', 'metadata', 'GET, HEAD'],
      ['GET', 'Basic/some-id/$probe-change', 'POST'],
      ['PUT', 'Basic/$probe-look', 'GET, HEAD, POST'],
    ];
    it.each(cases)('%s %s: 405 with Allow: %s', async (method, path, allow) => {
      const res = await raw(url(path), { method, ...(method === 'PUT' ? { json: { resourceType: path.split(/[/?]/)[0], id: 'some-id' } } : {}) });
      expect([res.status, res.body?.resourceType, res.headers.get('allow')]).toEqual([405, 'OperationOutcome', allow]);
    });

    it('HEAD on an operation that does not change state answers as GET does, without the body', async () => {
      const res = await fetch(url('Basic/$probe-look'), { method: 'HEAD' });
      expect([res.status, await res.text()]).toEqual([200, '']);
      expect((await fetch(url('Basic/$probe-change'), { method: 'HEAD' })).status).toBe(405);
    });
  });

  describe('L8: If-None-Match on PUT (RFC 9110 §13.1.2)', () => {
    it('* where the resource exists is 412 and nothing is written; where it does not, the PUT creates it', async () => {
      const created = (await raw(url('Basic'), { method: 'POST', json: basic('if-none-match') })).body as Basic;
      const refused = await raw(url(`Basic/${created.id}`), { method: 'PUT', json: { ...created, language: 'fr' }, headers: { 'If-None-Match': '*' } });
      expect([refused.status, refused.body.resourceType]).toEqual([412, 'OperationOutcome']);
      expect((await raw(url(`Basic/${created.id}`))).body.meta.versionId).toBe('1');

      const id = `if-none-match-new-${driver.name}`;
      const fresh = await raw(url(`Basic/${id}`), { method: 'PUT', json: { ...basic('if-none-match'), id }, headers: { 'If-None-Match': '*' } });
      expect([fresh.status, fresh.body.meta.versionId]).toEqual([201, '1']);
    });

    it('a tag naming the current version is 412; another tag lets the update through', async () => {
      const created = (await raw(url('Basic'), { method: 'POST', json: basic('if-none-match-tag') })).body as Basic;
      const path = url(`Basic/${created.id}`);
      expect((await raw(path, { method: 'PUT', json: created, headers: { 'If-None-Match': 'W/"1"' } })).status).toBe(412);
      const other = await raw(path, { method: 'PUT', json: created, headers: { 'If-None-Match': 'W/"7"' } });
      expect([other.status, other.body.meta.versionId]).toEqual([200, '2']);
    });

    it('a conditional update with * is 412 when its criteria match, and creates when they match nothing', async () => {
      const created = (await raw(url('Basic'), { method: 'POST', json: basic('if-none-match-cond') })).body as Basic;
      const matched = await raw(url(`Basic?_id=${created.id}`), { method: 'PUT', json: basic('if-none-match-cond'), headers: { 'If-None-Match': '*' } });
      expect(matched.status).toBe(412);
      const none = await raw(url('Basic?code=urn:test:probe5|if-none-match-none'), { method: 'PUT', json: basic('if-none-match-none'), headers: { 'If-None-Match': '*' } });
      expect(none.status).toBe(201);
    });
  });

  describe('L3: an empty batch or transaction', () => {
    it('is answered without an entry array (R4 JSON has no empty arrays)', async () => {
      for (const type of ['batch', 'transaction']) {
        const res = await post({ resourceType: 'Bundle', type });
        expect(res.status).toBe(200);
        expect(res.body).toEqual({ resourceType: 'Bundle', type: `${type}-response` });
      }
    });

    it('so are an empty searchset and an empty history', async () => {
      const search = await raw(url('Basic?code=urn:test:probe5|nothing-has-this'));
      const history = await raw(url('Basic/_history?_at=2001'));
      expect(['entry' in search.body, 'entry' in history.body]).toEqual([false, false]);
    });
  });
});
