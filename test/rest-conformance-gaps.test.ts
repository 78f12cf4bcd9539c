import type { Basic } from 'fhir/r4.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../server/src/server.js';
import { raw } from './helpers/fhir.js';
import { STORE_DRIVERS } from './helpers/stores.js';
import { startFhirOnlyServer } from './helpers/testServer.js';

/**
 * REST conformance gaps a conformance suite would hit: `_since` as an instant.
 */
const basic = (code: string, extra: Partial<Basic> = {}): Basic => ({ resourceType: 'Basic', code: { coding: [{ system: 'urn:test:gaps', code }] }, ...extra });

describe.each(STORE_DRIVERS)('REST conformance gaps on $name', (driver) => {
  let server: RunningServer;
  const config = driver.config();
  const url = (path: string) => `${server.fhirBase}/${path}`;
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

});
