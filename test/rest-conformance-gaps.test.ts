import type { Basic, BundleEntry } from 'fhir/r4.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../server/src/server.js';
import { raw } from './helpers/fhir.js';
import { STORE_DRIVERS } from './helpers/stores.js';
import { startFhirOnlyServer } from './helpers/testServer.js';

/**
 * REST conformance gaps a conformance suite would hit: `_since` as an instant, If-None-Match on PATCH and DELETE.
 */
const basic = (code: string, extra: Partial<Basic> = {}): Basic => ({ resourceType: 'Basic', code: { coding: [{ system: 'urn:test:gaps', code }] }, ...extra });
const base64 = (value: unknown) => Buffer.from(JSON.stringify(value), 'utf8').toString('base64');
const jsonPatch = (ops: unknown) => ({ resourceType: 'Binary', contentType: 'application/json-patch+json', data: base64(ops) });

describe.each(STORE_DRIVERS)('REST conformance gaps on $name', (driver) => {
  let server: RunningServer;
  const config = driver.config();
  const url = (path: string) => `${server.fhirBase}/${path}`;
  const post = (body: unknown) => raw(server.fhirBase, { method: 'POST', json: body });
  const create = async (b: Basic): Promise<Basic> => (await raw(url('Basic'), { method: 'POST', json: b })).body as Basic;

  beforeAll(async () => {
    server = await startFhirOnlyServer(config);
  });
  afterAll(async () => {
    await server?.close();
    await driver.cleanup(config);
  });

  describe('_since takes an instant (R4 http.html#history)', () => {
    it('a partial date or a time without its zone is a 400 naming _since; an instant, with any offset, is taken', async () => {
      const created = await create(basic('since-instant'));
      for (const since of ['2026-11', '2026-11-30', '2026-11-30T10:00:00', '2026-11-30T10:00Z', '2026-13-01T00:00:00Z', 'ge2026-11-30T10:00:00Z']) {
        const res = await raw(url(`Basic/${created.id}/_history?_since=${encodeURIComponent(since)}`));
        expect(res.status, since).toBe(400);
        expect(res.body.issue[0].expression, since).toEqual(['_since']);
      }
      for (const since of ['2000-01-01T00:00:00Z', '1999-12-31T16:00:00.123-08:00']) {
        const res = await raw(url(`Basic/${created.id}/_history?_since=${encodeURIComponent(since)}`));
        expect([res.status, res.body.entry?.length], since).toEqual([200, 1]);
      }
      expect((await raw(url(`Basic/${created.id}/_history?_since=${encodeURIComponent('2999-01-01T00:00:00Z')}`))).body.entry).toBeUndefined();
      // `_at` is a dateTime: a partial one still names its period.
      expect((await raw(url(`Basic/${created.id}/_history?_at=2999-01`))).body.entry?.length).toBe(1);
    });
  });

  describe('If-None-Match on PATCH and DELETE (RFC 9110 §13.1.2): 412 and nothing written when the condition is false', () => {
    const replaceLanguage = (value: string) => [{ op: 'add', path: '/language', value }];
    const patch = (id: string, headers: Record<string, string>) =>
      raw(url(`Basic/${id}`), { method: 'PATCH', body: JSON.stringify(replaceLanguage('fr')), headers: { 'content-type': 'application/json-patch+json', ...headers } });

    it('PATCH: a tag naming the current version, or *, is 412; another tag lets it through', async () => {
      const created = await create(basic('patch-inm'));
      for (const tag of ['*', 'W/"1"', '"1"', 'W/"7", W/"1"']) {
        const refused = await patch(created.id!, { 'If-None-Match': tag });
        expect(refused.status, tag).toBe(412);
        expect(refused.body.resourceType).toBe('OperationOutcome');
      }
      expect((await raw(url(`Basic/${created.id}`))).body.meta.versionId).toBe('1');
      const other = await patch(created.id!, { 'If-None-Match': 'W/"7"' });
      expect([other.status, other.body.language, other.body.meta.versionId]).toEqual([200, 'fr', '2']);
      expect((await patch(created.id!, { 'If-None-Match': 'nonsense, "' })).status).toBe(400);
    });

    it('DELETE: * or the current version is 412 and the resource stays; another tag deletes; a conditional DELETE too', async () => {
      const created = await create(basic('delete-inm'));
      for (const tag of ['*', 'W/"1"']) expect((await raw(url(`Basic/${created.id}`), { method: 'DELETE', headers: { 'If-None-Match': tag } })).status, tag).toBe(412);
      expect((await raw(url(`Basic/${created.id}`))).status).toBe(200);
      expect((await raw(url(`Basic/${created.id}`), { method: 'DELETE', headers: { 'If-None-Match': 'W/"9"' } })).status).toBe(204);
      expect((await raw(url(`Basic/${created.id}`))).status).toBe(410);
      // Nothing there: `*` holds, and deleting nothing answers as it does without the header.
      expect((await raw(url('Basic/never-there-inm'), { method: 'DELETE', headers: { 'If-None-Match': '*' } })).status).toBe(404);

      const matched = await create(basic('delete-inm-conditional'));
      const criteria = 'Basic?code=urn:test:gaps|delete-inm-conditional';
      expect((await raw(url(criteria), { method: 'DELETE', headers: { 'If-None-Match': '*' } })).status).toBe(412);
      expect((await raw(url(`Basic/${matched.id}`))).status).toBe(200);
      expect((await raw(url(criteria), { method: 'DELETE', headers: { 'If-None-Match': 'W/"2"' } })).status).toBe(204);
      expect((await raw(url(`Basic/${matched.id}`))).status).toBe(410);
    });

    it('DELETE honours If-Match: a stale version is 412 and the resource stays, the current one deletes', async () => {
      const created = await create(basic('delete-if-match'));
      await raw(url(`Basic/${created.id}`), { method: 'PUT', json: { ...created, language: 'es' } });
      const stale = await raw(url(`Basic/${created.id}`), { method: 'DELETE', headers: { 'If-Match': 'W/"1"' } });
      expect([stale.status, stale.body.resourceType]).toEqual([412, 'OperationOutcome']);
      expect((await raw(url(`Basic/${created.id}`))).body.meta.versionId).toBe('2');
      expect((await raw(url(`Basic/${created.id}`), { method: 'DELETE', headers: { 'If-Match': 'W/"2"' } })).status).toBe(204);
      expect((await raw(url('Basic/never-there-if-match'), { method: 'DELETE', headers: { 'If-Match': '*' } })).status).toBe(412);
    });

    it('in a transaction a false If-None-Match fails the whole Bundle (412, nothing written); in a batch, its own entry', async () => {
      const target = await create(basic('bundle-inm'));
      const transaction = await post({
        resourceType: 'Bundle',
        type: 'transaction',
        entry: [
          { resource: basic('bundle-inm-new'), request: { method: 'POST', url: 'Basic' } },
          { resource: jsonPatch(replaceLanguage('de')), request: { method: 'PATCH', url: `Basic/${target.id}`, ifNoneMatch: '*' } },
        ],
      });
      expect(transaction.status).toBe(412);
      expect(transaction.body.resourceType).toBe('OperationOutcome');
      expect((await raw(url('Basic?code=urn:test:gaps|bundle-inm-new&_summary=count'))).body.total).toBe(0);
      expect((await raw(url(`Basic/${target.id}`))).body.meta.versionId).toBe('1');

      const batch = await post({
        resourceType: 'Bundle',
        type: 'batch',
        entry: [
          { request: { method: 'DELETE', url: `Basic/${target.id}`, ifNoneMatch: 'W/"1"' } },
          { resource: jsonPatch(replaceLanguage('de')), request: { method: 'PATCH', url: `Basic/${target.id}`, ifNoneMatch: 'W/"1"' } },
          { resource: jsonPatch(replaceLanguage('it')), request: { method: 'PATCH', url: `Basic/${target.id}`, ifNoneMatch: 'W/"5"' } },
        ],
      });
      expect(batch.body.entry.map((e: BundleEntry) => e.response?.status)).toEqual(['412', '412', '200']);
      const after = (await raw(url(`Basic/${target.id}`))).body as Basic;
      expect([after.language, after.meta?.versionId]).toEqual(['it', '2']);
    });
  });

});
