import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Communication } from 'fhir/r4.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { issueAccessToken } from '../server/src/auth/accessTokens.js';
import { loadSigningKey } from '../server/src/auth/signingKeys.js';
import { inNetworkHpsjRequest } from './helpers/requests.js';
import { planKeys, type ProviderServer, startProviderServer, waitFor } from './helpers/providerServer.js';

const SCOPES = ['system/Communication.cr', 'system/Communication.s', 'system/DocumentReference.cr', 'system/Task.cru', 'system/Task.s'];

/** The plan's server process is SIGKILLed between the write and the send: after restart the letter arrives once. */
describe('outbox across a SIGKILL of the plan server (PGlite data folder)', () => {
  let provider: ProviderServer;
  const dataDir = mkdtempSync(join(tmpdir(), 'so-crash-'));
  const configFile = join(dataDir, 'outbound.json');
  let child: ChildProcess | undefined;
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
    child?.kill('SIGKILL');
    await provider?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  async function start(outbox: boolean): Promise<string> {
    // node itself (not npx) so that SIGKILL reaches the server process.
    child = spawn(process.execPath, ['--import', 'tsx', 'server/src/main.ts'], {
      env: { ...process.env, PORT: '0', DATA_DIR: dataDir, DEMO_MODE: 'true', LOG_LEVEL: 'info', OUTBOX_ENABLED: String(outbox), OUTBOUND_CONFIG_FILE: configFile },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    return new Promise<string>((resolve, reject) => {
      let buffer = '';
      child!.stdout!.on('data', (chunk: Buffer) => {
        buffer += chunk.toString();
        const m = /"event":"server_started","url":"([^"]+)"/.exec(buffer);
        if (m) resolve(m[1]);
      });
      child!.once('exit', (code) => reject(new Error(`server exited (${code})`)));
    });
  }

  const token = (url: string) =>
    issueAccessToken({ issuer: url, fhirBase: `${url}/fhir`, key: loadSigningKey(dataDir), accessTokenSeconds: 600 }, { clientId: 'test', scope: 'user/*.cruds', fhirUser: 'Practitioner/hpsj-pcp-1', roles: ['treating-provider', 'plan-admin'] }).token;

  it('delivers the approval letter exactly once after the restart', async () => {
    const url = await start(false);
    const headers = { authorization: `Bearer ${token(url)}`, 'content-type': 'application/fhir+json' };
    await fetch(`${url}/fhir/Endpoint/ep-hpsj-ipa-a`, { method: 'PUT', headers, body: JSON.stringify({ resourceType: 'Endpoint', id: 'ep-hpsj-ipa-a', status: 'active', connectionType: { system: 'http://terminology.hl7.org/CodeSystem/endpoint-connection-type', code: 'hl7-fhir-rest' }, payloadType: [{ text: 'FHIR' }], address: provider.fhirBase }) });
    const ipa = await (await fetch(`${url}/fhir/Organization/hpsj-ipa-a`, { headers })).json();
    expect((await fetch(`${url}/fhir/Organization/hpsj-ipa-a`, { method: 'PUT', headers, body: JSON.stringify({ ...ipa, endpoint: [{ reference: 'Endpoint/ep-hpsj-ipa-a' }] }) })).status).toBe(200);
    const submitted = await fetch(`${url}/fhir/ServiceRequest/$submit`, { method: 'POST', headers, body: JSON.stringify(inNetworkHpsjRequest()) });
    expect(submitted.status).toBe(201);
    child!.kill('SIGKILL');
    await new Promise((r) => child!.once('exit', r));
    expect(provider.requests.filter((r) => r.path === '/Communication')).toHaveLength(0);

    const again = await start(true);
    const received = await waitFor(async () => {
      const found = (await provider.server.store.search({ resourceType: 'Communication', clauses: [], sort: [], count: 10, offset: 0, total: false })).resources as Communication[];
      return found.length ? found : undefined;
    }, 20_000, 'the letter after restart');
    expect(received).toHaveLength(1);
    const metrics = await (await fetch(`${again}/metrics`, { headers: { authorization: `Bearer ${token(again)}` } })).text();
    expect(metrics).toMatch(/outbox_sent_total [1-9]/);
    // The acknowledged case survived the kill.
    const tasks = await (await fetch(`${again}/fhir/Task?patient=member-hpsj-1`, { headers: { authorization: `Bearer ${token(again)}` } })).json();
    expect(tasks.entry?.length).toBeGreaterThanOrEqual(1);
    child!.kill('SIGTERM');
    await new Promise((r) => child!.once('exit', r));
  });
});
