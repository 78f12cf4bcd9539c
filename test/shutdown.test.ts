import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createLogger } from '../server/src/log.js';
import { startServer } from '../server/src/server.js';
import { openConnection } from '../server/src/storage/connect.js';
import { openStore } from '../server/src/storage/openStore.js';
import type { SqlConnection } from '../server/src/storage/sql/connection.js';
import { SearchParamRegistry } from '../server/src/fhir/search/registry.js';
import { waitFor } from './helpers/providerServer.js';
import { startServerProcess } from './helpers/serverProcess.js';
import { pgliteConfig } from './helpers/stores.js';
import { startFhirOnlyServer, testConfig } from './helpers/testServer.js';

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

  it('listens while the database is still opening; a database that fails to open leaves the port free', async () => {
    const port = await freePort();
    const config = testConfig(pgliteConfig(), { PORT: String(port) });
    const parts = async () => ({ policy: { requireScope: () => undefined, patientCompartment: () => undefined, mayAccess: () => true } });
    let opened!: (conn: SqlConnection) => void;
    const connection = new Promise<SqlConnection>((resolve) => (opened = resolve));
    const starting = startServer(config, parts, createLogger('silent'), connection);
    const metadata = `http://127.0.0.1:${port}/fhir/metadata`;
    const early = await waitFor(() => fetch(metadata).catch(() => undefined), 5_000, `an answer at ${metadata}`);
    expect(early.status).toBe(503);
    expect(((await early.json()) as { resourceType: string }).resourceType).toBe('OperationOutcome');
    opened(await openConnection(pgliteConfig()));
    const server = await starting;
    try {
      expect((await fetch(`${server.fhirBase}/metadata`)).status).toBe(200);
    } finally {
      await server.close();
    }

    const unreachable = new Promise<SqlConnection>((_, reject) => setTimeout(() => reject(new Error('database unreachable')), 100));
    await expect(startServer(config, parts, createLogger('silent'), unreachable)).rejects.toThrow('database unreachable');
    expect(await freePort(port)).toBe(port);
  });
});

/** A port nothing listens on (the one asked for, or any). */
function freePort(port = 0): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(port, '127.0.0.1', () => {
      const { port: free } = probe.address() as { port: number };
      probe.close(() => resolve(free));
    });
  });
}
