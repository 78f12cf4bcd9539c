import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../server/src/server.js';
import type { StoreConfig } from '../server/src/storage/connect.js';
import { waitFor } from './helpers/providerServer.js';
import { recordResult } from './helpers/results.js';
import { dropSchema, TEST_DATABASE_URL } from './helpers/stores.js';
import { startTcpProxy, type TcpProxy } from './helpers/tcpProxy.js';
import { startFhirOnlyServer } from './helpers/testServer.js';

interface Answer {
  status: number;
  retryAfter: string | null;
  body: { resourceType?: string; id?: string; issue?: { code: string }[] };
}

/**
 * Issue 9: when PostgreSQL goes away under load (the network drops, or the server terminates our
 * sessions), requests fail cleanly with 503 + Retry-After and the server recovers by itself.
 */
describe.skipIf(!TEST_DATABASE_URL)('PostgreSQL outages under load', () => {
  let proxy: TcpProxy;
  let server: RunningServer;
  let config: StoreConfig;
  const applicationName = `so_outage_${randomBytes(4).toString('hex')}`;

  beforeAll(async () => {
    const target = new URL(TEST_DATABASE_URL!);
    proxy = await startTcpProxy(target.hostname, Number(target.port || 5432));
    const viaProxy = new URL(TEST_DATABASE_URL!);
    viaProxy.port = String(proxy.port);
    viaProxy.searchParams.set('application_name', applicationName);
    config = { driver: 'postgres', databaseUrl: viaProxy.toString(), schema: `t_${randomBytes(6).toString('hex')}`, poolSize: 8 };
    server = await startFhirOnlyServer(config);
    await send('PUT', 'Patient/outage-1', { resourceType: 'Patient', id: 'outage-1', name: [{ family: 'Outage' }] });
  });
  afterAll(async () => {
    await server?.close();
    await proxy?.close();
    if (config) await dropSchema({ ...config, databaseUrl: TEST_DATABASE_URL! } as StoreConfig);
  });

  async function send(method: string, path: string, body?: unknown): Promise<Answer> {
    const res = await fetch(`${server.fhirBase}/${path}`, {
      method,
      headers: { 'content-type': 'application/fhir+json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(15_000),
    });
    return { status: res.status, retryAfter: res.headers.get('retry-after'), body: (await res.json()) as Answer['body'] };
  }

  /** Eight clients alternating creates and reads until `done` resolves. */
  async function load(done: Promise<void>): Promise<{ answers: Answer[]; created: string[] }> {
    await new Promise((r) => setTimeout(r, 200)); // earlier audit records are flushed
    auditsBefore = await auditCount();
    let stop = false;
    void done.then(() => (stop = true));
    const answers: Answer[] = (answering = []);
    const created: string[] = [];
    await Promise.all(
      Array.from({ length: 8 }, async (_, worker) => {
        for (let i = 0; !stop; i++) {
          const answer = i % 2 === 0
            ? await send('POST', 'Basic', { resourceType: 'Basic', code: { text: `outage-${worker}-${i}` } })
            : await send('GET', 'Patient/outage-1');
          answers.push(answer);
          if (answer.status === 201 && answer.body.id) created.push(answer.body.id);
          if (answer.status === 503) await new Promise((r) => setTimeout(r, 50));
        }
      }),
    );
    return { answers, created };
  }

  /** The answers of the load running now, as they come. */
  let answering: Answer[] = [];

  /** Successful creates audited (searches, like this one, are not counted). */
  const auditCount = async () => ((await send('GET', 'AuditEvent?action=C&outcome=0&_summary=count')).body as { total: number }).total;
  let auditsBefore = 0;

  async function expectCleanFailuresAndRecovery(scenario: string, run: { answers: Answer[]; created: string[] }) {
    const statuses = new Set(run.answers.map((a) => a.status));
    expect([...statuses].filter((s) => ![200, 201, 503].includes(s))).toEqual([]);
    const unavailable = run.answers.filter((a) => a.status === 503);
    expect(unavailable.length).toBeGreaterThan(0);
    for (const a of unavailable) {
      expect(a.retryAfter).toMatch(/^\d+$/);
      expect(a.body.resourceType).toBe('OperationOutcome');
      expect(a.body.issue?.[0].code).toBe('transient');
    }
    // Recovers by itself: reads and writes succeed again without a restart.
    await waitFor(async () => (await send('GET', 'Patient/outage-1')).status === 200, 15_000, 'reads to recover');
    for (let i = 0; i < 10; i++) expect((await send('POST', 'Basic', { resourceType: 'Basic', code: { text: 'after' } })).status).toBe(201);
    // Every acknowledged write is stored, and every answered request is audited once the database is back.
    for (const id of run.created) expect((await send('GET', `Basic/${id}`)).status, id).toBe(200);
    const acknowledgedCreates = run.created.length + 10;
    await waitFor(async () => (await auditCount()) - auditsBefore >= acknowledgedCreates, 15_000, 'audit records kept through the outage');
    recordResult('pg-outage', scenario, {
      requests: run.answers.length,
      answered2xx: run.answers.filter((a) => a.status < 300).length,
      unavailable503WithRetryAfter: unavailable.length,
      otherStatuses: run.answers.filter((a) => ![200, 201, 503].includes(a.status)).length,
      writesAcknowledged: run.created.length,
      acknowledgedFoundAfterRecovery: run.created.length,
    });
  }

  it('the CapabilityStatement is still served while the database is away (as last read), and follows the stored one again after', async () => {
    const metadata = async (path: string) => {
      const res = await fetch(`${server.fhirBase}/${path}`, { signal: AbortSignal.timeout(15_000) });
      return { status: res.status, etag: res.headers.get('etag'), body: (await res.json()) as { resourceType?: string; id?: string; rest?: unknown[] } };
    };
    const before = await metadata('metadata');
    expect([before.status, before.body.resourceType]).toEqual([200, 'CapabilityStatement']);
    await proxy.cut();
    try {
      await waitFor(async () => (await send('GET', 'Patient/outage-1')).status === 503, 15_000, 'the database to be away');
      for (const path of ['metadata', 'CapabilityStatement/server', 'metadata?_summary=true', 'metadata?mode=terminology']) {
        const during = await metadata(path);
        expect([path, during.status], JSON.stringify(during.body).slice(0, 300)).toEqual([path, 200]);
        expect(during.body.id).toBe('server');
        if (path === 'metadata') expect([during.body, during.etag]).toEqual([before.body, before.etag]);
      }
    } finally {
      await proxy.restore();
    }
    await waitFor(async () => (await send('GET', 'Patient/outage-1')).status === 200, 15_000, 'reads to recover');
    expect((await metadata('metadata')).etag).toBe(before.etag);
  });

  it('the network to the database drops and comes back: 503 with Retry-After, then recovery', async () => {
    const done = (async () => {
      await new Promise((r) => setTimeout(r, 600));
      await proxy.cut();
      await new Promise((r) => setTimeout(r, 1200));
      await proxy.restore();
      await new Promise((r) => setTimeout(r, 1500));
    })();
    const run = await load(done);
    expect(run.answers.filter((a) => a.status === 201).length).toBeGreaterThan(0);
    await expectCleanFailuresAndRecovery('network-drop', run);
  });

  it('PostgreSQL terminates our sessions mid-load (administrator command): 503, then recovery', async () => {
    const admin = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await admin.connect();
    const done = (async () => {
      // A termination answers 503 only to a request whose query it cuts: on a loaded machine four rounds can all land
      // between queries, so the rounds go on (twelve at most) until one has.
      for (let round = 0; round < 4 || (round < 12 && !answering.some((a) => a.status === 503)); round++) {
        await new Promise((r) => setTimeout(r, 300));
        await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1', [applicationName]);
      }
      await new Promise((r) => setTimeout(r, 800));
    })();
    try {
      await expectCleanFailuresAndRecovery('sessions-terminated', await load(done));
    } finally {
      await admin.end();
    }
  });
});
