import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openStore } from '../server/src/storage/openStore.js';
import { SearchParamRegistry } from '../server/src/fhir/search/registry.js';
import { startServerProcess } from './helpers/serverProcess.js';
import { startFhirOnlyServer } from './helpers/testServer.js';

/** SIGTERM drains in-flight requests, closes the store and exits 0; every acknowledged write is there. */
describe('graceful shutdown', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'so-term-'));
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

  it('answers the requests in flight, exits 0, and keeps every acknowledged write', async () => {
    const server = await startServerProcess({ DATA_DIR: dataDir, DEMO_MODE: 'true', OUTBOX_ENABLED: 'false' });
    const { url } = server;
    const token = server.token();
    const writes = Array.from({ length: 40 }, (_, i) =>
      fetch(`${url}/fhir/Basic`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/fhir+json' },
        body: JSON.stringify({ resourceType: 'Basic', code: { text: `drain-${i}` } }),
      }).then(
        (r) => r.status,
        () => 'refused' as const,
      ),
    );
    await new Promise((r) => setTimeout(r, 30));
    const exitCode = server.kill('SIGTERM');
    const statuses = await Promise.all(writes);
    expect(await exitCode).toBe(0);
    expect(statuses.filter((s) => typeof s === 'number' && s >= 500)).toEqual([]);
    const acknowledged = statuses.filter((s) => s === 201).length;
    expect(acknowledged).toBeGreaterThan(0);
    const store = await openStore({ driver: 'pglite', dataDir: join(dataDir, 'pg') }, SearchParamRegistry.withStandard());
    const stored = await store.search({ resourceType: 'Basic', clauses: [], sort: [], count: 100, offset: 0, total: true });
    await store.close();
    // Every acknowledged write is there; a write whose connection closed before its answer may be there too.
    // (The store also holds the subscription topic, a Basic of its own.)
    const drained = stored.resources.filter((r) => (r as { code?: { text?: string } }).code?.text?.startsWith('drain-')).length;
    expect(drained).toBeGreaterThanOrEqual(acknowledged);
    expect(drained).toBeLessThanOrEqual(40);
  });
});

/** The server listens before it is ready (with PORT=0 its URLs are known only then): early requests are told to retry. */
describe('start-up', () => {
  it('answers 503 with Retry-After and an OperationOutcome until the app is ready, then serves', async () => {
    let early: Response | undefined;
    const server = await startFhirOnlyServer(undefined, async (env) => {
      early = await fetch(`${env.fhirBase}/metadata`, { signal: AbortSignal.timeout(5_000) });
      return {};
    });
    try {
      expect(early?.status).toBe(503);
      expect(early?.headers.get('retry-after')).toBe('1');
      expect(((await early!.json()) as { resourceType: string }).resourceType).toBe('OperationOutcome');
      expect((await fetch(`${server.fhirBase}/metadata`)).status).toBe(200);
    } finally {
      await server.close();
    }
  });
});
