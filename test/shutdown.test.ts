import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { issueAccessToken } from '../server/src/auth/accessTokens.js';
import { loadSigningKey } from '../server/src/auth/signingKeys.js';
import { openStore } from '../server/src/storage/openStore.js';
import { SearchParamRegistry } from '../server/src/fhir/search/registry.js';

/** SIGTERM drains in-flight requests, closes the store and exits 0; every acknowledged write is there. */
describe('graceful shutdown', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'so-term-'));
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

  it('answers the requests in flight, exits 0, and keeps every acknowledged write', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'server/src/main.ts'], {
      env: { ...process.env, PORT: '0', DATA_DIR: dataDir, DEMO_MODE: 'true', LOG_LEVEL: 'info', OUTBOX_ENABLED: 'false' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const url = await new Promise<string>((resolve, reject) => {
      let buffer = '';
      child.stdout!.on('data', (chunk: Buffer) => {
        buffer += chunk.toString();
        const m = /"event":"server_started","url":"([^"]+)"/.exec(buffer);
        if (m) resolve(m[1]);
      });
      child.once('exit', (code) => reject(new Error(`server exited (${code})`)));
    });
    child.stdout!.resume();
    const token = issueAccessToken({ issuer: url, fhirBase: `${url}/fhir`, key: loadSigningKey(dataDir), accessTokenSeconds: 600 }, { clientId: 'test', scope: 'user/*.cruds', roles: ['plan-admin'] }).token;
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
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
    child.kill('SIGTERM');
    const statuses = await Promise.all(writes);
    expect(await exited).toBe(0);
    expect(statuses.filter((s) => typeof s === 'number' && s >= 500)).toEqual([]);
    const acknowledged = statuses.filter((s) => s === 201).length;
    expect(acknowledged).toBeGreaterThan(0);
    const store = await openStore({ driver: 'pglite', dataDir: join(dataDir, 'pg') }, SearchParamRegistry.withStandard());
    const stored = await store.search({ resourceType: 'Basic', clauses: [], sort: [], count: 100, offset: 0, total: true });
    await store.close();
    // Every acknowledged write is there; a write whose connection closed before its answer may be there too.
    expect(stored.total).toBeGreaterThanOrEqual(acknowledged);
    expect(stored.total).toBeLessThanOrEqual(40);
  });
});
