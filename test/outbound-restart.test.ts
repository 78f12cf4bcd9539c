import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DocumentReference, Patient } from 'fhir/r4.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadOutboundConfig, type OutboundConfigInput } from '../server/src/outbound/index.js';
import { FHIR_CREATE, fhirCreateHandler } from '../server/src/outbound/deliveries.js';
import { ProviderAuth } from '../server/src/outbound/providerAuth.js';
import type { StoreConfig } from '../server/src/storage/connect.js';
import { SNAPSHOT_PATH } from './helpers/paths.js';
import { planKeys, startPlanServer, startProviderServer, waitFor, type ProviderServer } from './helpers/providerServer.js';
import { STORE_DRIVERS } from './helpers/stores.js';

const SYSTEM = 'https://second-opinion.example.org/fhir/sid/decision-notice';
const SCOPES = ['system/DocumentReference.cr'];

/**
 * Exactly-once delivery across a plan process that dies: the outbox row is in the database, so
 * a new process on the same database sends what the old one did not; and when the old one died
 * after sending but before recording it, the lease expires, the row is sent again and the
 * provider's conditional create turns the second send into a no-op.
 */
describe.each(STORE_DRIVERS)('outbox across a restart on $name', (driver) => {
  let provider: ProviderServer;
  const keys = planKeys('ES384');
  const dataDir = driver.name === 'pglite' ? mkdtempSync(join(tmpdir(), 'outbound-restart-')) : undefined;
  const pgConfig = driver.name === 'postgres' ? driver.config() : undefined;
  /** First start: a fresh database; later starts: the same one. */
  const storeConfig = (first: boolean): StoreConfig =>
    pgConfig ?? (first ? { driver: 'pglite', dataDir: dataDir!, loadDataDir: new Blob([readFileSync(SNAPSHOT_PATH)]) } : { driver: 'pglite', dataDir: dataDir! });

  const config = (): OutboundConfigInput => ({
    worker: { pollMs: 30, batch: 10, leaseMs: 1500, maxAttempts: 5, backoff: { baseMs: 20, maxMs: 100 } },
    network: { allowPrivateNetwork: true, timeoutMs: 5000 },
    credentials: [{ endpoints: [provider.fhirBase], clientId: 'plan-phc', privateKey: keys.privatePem, kid: 'phc-es', alg: 'ES384', scopes: SCOPES }],
  });

  beforeAll(async () => {
    provider = await startProviderServer();
    provider.register({ clientId: 'plan-phc', publicKey: keys.publicKey, kid: 'phc-es', scopes: SCOPES });
  });
  afterAll(async () => {
    await provider?.close();
    if (pgConfig) await driver.cleanup(pgConfig);
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  const atProvider = async (value: string) =>
    (await provider.server.store.search({
      resourceType: 'DocumentReference',
      clauses: [{ kind: 'token', param: 'identifier', values: [`identifier|${SYSTEM}|${value}`], not: false }],
      sort: [],
      count: 10,
      offset: 0,
      total: false,
    })).resources;
  const posts = () => provider.requests.filter((r) => r.method === 'POST' && r.path === '/DocumentReference');

  it('a process that dies between the write and the send: the next one sends it, once', async () => {
    const first = await startPlanServer(storeConfig(true), config(), { workers: false });
    await first.server.store.transaction(async (tx) => {
      const patient = await tx.create<Patient>({ resourceType: 'Patient', name: [{ family: 'Restart' }] });
      const notice = await tx.create<DocumentReference>({ resourceType: 'DocumentReference', status: 'current', subject: { reference: `Patient/${patient.id}` }, content: [{ attachment: { contentType: 'text/plain', data: 'bm90aWNl' } }] });
      await first.outbound.enqueueDelivery(tx, { endpoint: provider.fhirBase, resource: notice, identifier: { system: SYSTEM, value: `n-${driver.name}-1` } });
    });
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(await atProvider(`n-${driver.name}-1`)).toHaveLength(0);
    await first.server.close();

    const second = await startPlanServer(storeConfig(false), config());
    try {
      await waitFor(async () => ((await atProvider(`n-${driver.name}-1`)).length === 1 ? true : undefined), 10_000, 'delivery after restart');
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(await atProvider(`n-${driver.name}-1`)).toHaveLength(1);
      expect(posts().filter((p) => p.status === 201)).toHaveLength(1);
    } finally {
      await second.server.close();
    }
  });

  it('a process that dies after the send but before recording it: resent after the lease, still one resource', async () => {
    const before = posts().length;
    const first = await startPlanServer(storeConfig(false), config(), { workers: false });
    await first.server.store.transaction(async (tx) => {
      const notice = await tx.create<DocumentReference>({ resourceType: 'DocumentReference', status: 'current', content: [{ attachment: { contentType: 'text/plain', data: 'bm90aWNl' } }] });
      await first.outbound.enqueueDelivery(tx, { endpoint: provider.fhirBase, resource: notice, identifier: { system: SYSTEM, value: `n-${driver.name}-2` } });
    });
    // What the worker does, minus the bookkeeping: lease the row, send it, then "crash".
    const [message] = await first.server.store.claimOutbox(10, 1500);
    expect(message.kind).toBe(FHIR_CREATE);
    const parsed = loadOutboundConfig(config());
    await fhirCreateHandler({ auth: new ProviderAuth(parsed.credentials, { network: parsed.network }), network: parsed.network, fhirBase: first.server.fhirBase })(message.payload, message.attempts);
    expect(await atProvider(`n-${driver.name}-2`)).toHaveLength(1);
    await first.server.close();

    const second = await startPlanServer(storeConfig(false), config());
    try {
      await waitFor(() => (posts().length - before >= 2 ? true : undefined), 10_000, 'resend after the lease expired');
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(posts().slice(before).map((p) => p.status)).toEqual([201, 200]);
      expect(await atProvider(`n-${driver.name}-2`)).toHaveLength(1);
      expect(second.outbound.metrics().sent).toBe(1);
    } finally {
      await second.server.close();
    }
  });
});
