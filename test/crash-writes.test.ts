import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startServerProcess, type ServerProcess } from './helpers/serverProcess.js';
import { recordResult } from './helpers/results.js';
import { dropSchema, TEST_DATABASE_URL } from './helpers/stores.js';

const TX_SYSTEM = 'urn:so-test:crash-tx';
const TX_SIZE = 5;

interface Attempt {
  kind: 'create' | 'transaction';
  key: string;
  acknowledged: boolean;
  id?: string;
}

const drivers: { name: string; env: () => Record<string, string> }[] = [
  { name: 'pglite', env: () => ({}) },
  ...(TEST_DATABASE_URL ? [{ name: 'postgres', env: () => ({ DATABASE_URL: TEST_DATABASE_URL, DATABASE_SCHEMA: `t_${randomBytes(6).toString('hex')}` }) }] : []),
];

/**
 * Issue 9: SIGKILL in the middle of a write load. After a restart on the same store every
 * acknowledged write is there, no transaction Bundle is half there, and the store opens without repair.
 */
describe.each(drivers)('SIGKILL during a write load ($name)', ({ name, env }) => {
  const dataDir = mkdtempSync(join(tmpdir(), `so-kill-${name}-`));
  const storeEnv: Record<string, string> = { DATA_DIR: dataDir, DEMO_MODE: 'false', OUTBOX_ENABLED: 'false', ...env() };
  let server: ServerProcess | undefined;
  afterAll(async () => {
    await server?.kill('SIGKILL');
    if (storeEnv.DATABASE_SCHEMA) await dropSchema({ driver: 'postgres', databaseUrl: TEST_DATABASE_URL!, schema: storeEnv.DATABASE_SCHEMA });
    rmSync(dataDir, { recursive: true, force: true });
  });

  const headers = (s: ServerProcess) => ({ authorization: `Bearer ${s.token()}`, 'content-type': 'application/fhir+json' });

  async function attempt(s: ServerProcess, kind: Attempt['kind'], key: string): Promise<Attempt> {
    const body = kind === 'create'
      ? { resourceType: 'Basic', identifier: [{ system: 'urn:so-test:crash-create', value: key }], code: { text: key } }
      : {
          resourceType: 'Bundle',
          type: 'transaction',
          entry: Array.from({ length: TX_SIZE }, (_, i) => ({
            fullUrl: `urn:uuid:${randomBytes(16).toString('hex').replace(/(.{8})(.{4})(.{4})(.{4})(.{12})/, '$1-$2-$3-$4-$5')}`,
            resource: { resourceType: 'Basic', identifier: [{ system: TX_SYSTEM, value: key }], code: { text: `${key}-${i}` } },
            request: { method: 'POST', url: 'Basic' },
          })),
        };
    try {
      const res = await fetch(`${s.url}/fhir/${kind === 'create' ? 'Basic' : ''}`, { method: 'POST', headers: headers(s), body: JSON.stringify(body) });
      const json = (await res.json()) as { id?: string };
      return { kind, key, acknowledged: res.status === (kind === 'create' ? 201 : 200), id: json.id };
    } catch {
      return { kind, key, acknowledged: false }; // the connection died with the process
    }
  }

  it('keeps every acknowledged write, no half transaction, and reopens the store', async () => {
    server = await startServerProcess(storeEnv);
    const attempts: Attempt[] = [];
    let killed = false;
    const clients = Array.from({ length: 6 }, async (_, c) => {
      for (let i = 0; !killed; i++) attempts.push(await attempt(server!, i % 3 === 2 ? 'transaction' : 'create', `${c}-${i}`));
    });
    // Kill once the load is under way (a count, not a fixed time: a busy machine writes fewer in 1.5 s).
    const started = Date.now();
    while (attempts.filter((a) => a.acknowledged).length < 20 && Date.now() - started < 15_000) await new Promise((r) => setTimeout(r, 50));
    const code = await server.kill('SIGKILL');
    killed = true;
    await Promise.all(clients);
    expect(code).toBeNull(); // killed by the signal, not exited
    const acknowledged = attempts.filter((a) => a.acknowledged);
    expect(acknowledged.length).toBeGreaterThan(10);

    server = await startServerProcess(storeEnv);
    const h = headers(server);
    const count = async (query: string) => ((await (await fetch(`${server!.url}/fhir/Basic?${query}&_summary=count`, { headers: h })).json()) as { total: number }).total;
    for (const a of acknowledged.filter((x) => x.kind === 'create')) {
      expect((await fetch(`${server.url}/fhir/Basic/${a.id}`, { headers: h })).status, a.key).toBe(200);
    }
    for (const a of attempts.filter((x) => x.kind === 'transaction')) {
      const stored = await count(`identifier=${encodeURIComponent(`${TX_SYSTEM}|${a.key}`)}`);
      if (a.acknowledged) expect(stored, a.key).toBe(TX_SIZE);
      else expect([0, TX_SIZE], a.key).toContain(stored);
    }
    // Stored, at most what was attempted and at least what was acknowledged.
    const creates = await count('identifier=urn:so-test:crash-create|');
    expect(creates).toBeGreaterThanOrEqual(acknowledged.filter((a) => a.kind === 'create').length);
    expect(creates).toBeLessThanOrEqual(attempts.filter((a) => a.kind === 'create').length);
    // The restarted server takes writes again.
    expect((await attempt(server, 'transaction', 'after-restart')).acknowledged).toBe(true);
    const transactions = attempts.filter((a) => a.kind === 'transaction');
    recordResult('sigkill', name, {
      writesAttempted: attempts.length,
      writesAcknowledged: acknowledged.length,
      acknowledgedFoundAfterRestart: acknowledged.length,
      createsStored: creates,
      transactionsAttempted: transactions.length,
      halfTransactionsFound: 0,
    });
  });
});
