import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Communication } from 'fhir/r4.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inNetworkHpsjRequest } from './helpers/requests.js';
import { startServerProcess, type ServerProcess } from './helpers/serverProcess.js';
import { planKeys, type ProviderServer, startProviderServer, waitFor } from './helpers/providerServer.js';

const SCOPES = ['system/Communication.cr', 'system/Communication.s', 'system/DocumentReference.cr', 'system/Task.cru', 'system/Task.s'];

/** The plan's server process is SIGKILLed between the write and the send: after restart the letter arrives once. */
describe('outbox across a SIGKILL of the plan server (PGlite data folder)', () => {
  let provider: ProviderServer;
  const dataDir = mkdtempSync(join(tmpdir(), 'so-crash-'));
  const configFile = join(dataDir, 'outbound.json');
  let server: ServerProcess | undefined;
  const keys = planKeys('RS384');

  beforeAll(async () => {
    provider = await startProviderServer();
    provider.register({ clientId: 'plan-hpsj', publicKey: keys.publicKey, kid: 'hpsj-1', scopes: SCOPES });
    writeFileSync(configFile, JSON.stringify({
      planOrganization: 'Organization/hpsj',
      worker: { pollMs: 30, batch: 10, leaseMs: 5000, maxAttempts: 6, backoff: { baseMs: 20, maxMs: 100 } },
      network: { allowPrivateNetwork: true, timeoutMs: 5000 },
      credentials: [{ endpoints: [provider.fhirBase], clientId: 'plan-hpsj', privateKey: keys.privatePem, kid: 'hpsj-1', alg: 'RS384', scopes: SCOPES }],
    }));
  });
  afterAll(async () => {
    await server?.kill('SIGKILL');
    await provider?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  async function start(outbox: boolean): Promise<string> {
    server = await startServerProcess({ DATA_DIR: dataDir, DEMO_MODE: 'true', OUTBOX_ENABLED: String(outbox), OUTBOUND_CONFIG_FILE: configFile });
    return server.url;
  }

  const token = () => server!.token({ scope: 'user/*.cruds', fhirUser: 'Practitioner/hpsj-pcp-1', roles: ['treating-provider', 'plan-admin'] });

  it('delivers the approval letter exactly once after the restart', async () => {
    const url = await start(false);
    const headers = { authorization: `Bearer ${token()}`, 'content-type': 'application/fhir+json' };
    await fetch(`${url}/fhir/Endpoint/ep-hpsj-ipa-a`, { method: 'PUT', headers, body: JSON.stringify({ resourceType: 'Endpoint', id: 'ep-hpsj-ipa-a', status: 'active', connectionType: { system: 'http://terminology.hl7.org/CodeSystem/endpoint-connection-type', code: 'hl7-fhir-rest' }, payloadType: [{ text: 'FHIR' }], address: provider.fhirBase }) });
    const ipa = await (await fetch(`${url}/fhir/Organization/hpsj-ipa-a`, { headers })).json();
    expect((await fetch(`${url}/fhir/Organization/hpsj-ipa-a`, { method: 'PUT', headers, body: JSON.stringify({ ...ipa, endpoint: [{ reference: 'Endpoint/ep-hpsj-ipa-a' }] }) })).status).toBe(200);
    const submitted = await fetch(`${url}/fhir/ServiceRequest/$submit`, { method: 'POST', headers, body: JSON.stringify(inNetworkHpsjRequest()) });
    expect(submitted.status).toBe(201);
    await server!.kill('SIGKILL');
    expect(provider.requests.filter((r) => r.path === '/Communication')).toHaveLength(0);

    const again = await start(true);
    const received = await waitFor(async () => {
      const found = (await provider.server.store.search({ resourceType: 'Communication', clauses: [], sort: [], count: 10, offset: 0, total: false })).resources as Communication[];
      return found.length ? found : undefined;
    }, 20_000, 'the letter after restart');
    expect(received).toHaveLength(1);
    const metrics = await (await fetch(`${again}/metrics`, { headers: { authorization: `Bearer ${token()}` } })).text();
    expect(metrics).toMatch(/outbox_sent_total [1-9]/);
    // The acknowledged case survived the kill.
    const tasks = await (await fetch(`${again}/fhir/Task?patient=member-hpsj-1`, { headers: { authorization: `Bearer ${token()}` } })).json();
    expect(tasks.entry?.length).toBeGreaterThanOrEqual(1);
    await server!.kill('SIGTERM');
  });
});
