import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Communication, Endpoint, Organization, Task } from 'fhir/r4.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DemoServer, startDemoServer } from './helpers/demoServer.js';
import { PROFILES } from '../server/src/fhir/systems.js';
import { raw } from './helpers/fhir.js';
import { inNetworkHpsjRequest } from './helpers/requests.js';
import { planKeys, type ProviderServer, startProviderServer, untilLogged, waitFor } from './helpers/providerServer.js';
import { pgliteConfig } from './helpers/stores.js';
import { tokenFor } from './helpers/tokens.js';

const SCOPES = ['system/Communication.cr', 'system/Communication.s', 'system/DocumentReference.cr', 'system/DocumentReference.s', 'system/Task.cru', 'system/Task.s'];

/** Decision notices reach the requesting provider's own FHIR server through the outbox (R11, issue 7). */
describe('notices delivered to a provider FHIR endpoint', () => {
  let provider: ProviderServer;
  let server: DemoServer;
  const keys = planKeys('RS384');

  beforeAll(async () => {
    provider = await startProviderServer();
    provider.register({ clientId: 'plan-hpsj', publicKey: keys.publicKey, kid: 'hpsj-1', scopes: SCOPES });
    const file = join(process.env.TMPDIR ?? '/tmp', `so-outbound-${randomUUID()}.json`);
    writeFileSync(file, JSON.stringify({
      planOrganization: 'Organization/hpsj',
      worker: { pollMs: 30, batch: 10, leaseMs: 5000, maxAttempts: 6, backoff: { baseMs: 20, maxMs: 100 } },
      network: { allowPrivateNetwork: true, timeoutMs: 5000 },
      credentials: [{ endpoints: [provider.fhirBase], clientId: 'plan-hpsj', privateKey: keys.privatePem, kid: 'hpsj-1', alg: 'RS384', scopes: SCOPES }],
    }));
    server = await startDemoServer(pgliteConfig(), { OUTBOX_ENABLED: 'true', OUTBOUND_CONFIG_FILE: file });
    // The requesting PCP's medical group has a FHIR endpoint.
    await server.store.update<Endpoint>({ resourceType: 'Endpoint', id: 'ep-hpsj-ipa-a', status: 'active', connectionType: { system: 'http://terminology.hl7.org/CodeSystem/endpoint-connection-type', code: 'hl7-fhir-rest' }, payloadType: [{ text: 'FHIR' }], address: provider.fhirBase });
    const ipa = (await server.store.read('Organization', 'hpsj-ipa-a')) as Organization;
    await server.store.update<Organization>({ ...ipa, endpoint: [{ reference: 'Endpoint/ep-hpsj-ipa-a' }] });
  });
  afterAll(async () => {
    await server?.close();
    await provider?.close();
  });

  it('an approval on receipt sends the provider letter to the provider server exactly once', async () => {
    const token = tokenFor(server, { scope: 'user/*.cruds', fhirUser: 'Practitioner/hpsj-pcp-1', roles: ['treating-provider'] });
    const res = await raw(`${server.fhirBase}/ServiceRequest/$submit`, { method: 'POST', headers: { authorization: `Bearer ${token}` }, json: inNetworkHpsjRequest() });
    expect(res.status).toBe(201);
    const received = await waitFor(async () => {
      const found = (await provider.server.store.search({ resourceType: 'Communication', clauses: [], sort: [], count: 10, offset: 0, total: false })).resources as Communication[];
      return found.length ? found : undefined;
    }, 10_000, 'the letter at the provider');
    expect(received).toHaveLength(1);
    expect(received[0].identifier?.[0].value).toMatch(/^Communication\//);
    // Our resources are named absolutely (relative, they would name the provider's own), and the letter itself travels.
    expect(received[0].subject?.reference).toBe(`${server.fhirBase}/Patient/member-hpsj-1`);
    expect(received[0].meta?.profile).toEqual([PROFILES.decisionNotice]);
    expect(received[0].basedOn?.[0].reference).toMatch(new RegExp(`^${server.fhirBase}/ServiceRequest/`));
    const [payload] = received[0].payload ?? [];
    expect(payload.contentReference).toBeUndefined();
    expect(payload.contentAttachment?.contentType).toBe('text/html');
    expect(Buffer.from(payload.contentAttachment?.data ?? '', 'base64').toString()).toMatch(/<html|<p/i);
    const posts = await untilLogged(provider, (r) => r.method === 'POST' && r.path === '/Communication', 'the logged POST');
    expect(posts).toHaveLength(1);
    // The disclosure is audited as any access is: a DICOM Export naming what went where, and whose it is.
    const auditor = tokenFor(server, { scope: 'user/AuditEvent.rs', fhirUser: 'Practitioner/auditor-1', roles: ['auditor'] });
    const delivered = received[0].identifier?.[0].value;
    const exported = await waitFor(async () => {
      const found = await raw(`${server.fhirBase}/AuditEvent?type=http://dicom.nema.org/resources/ontology/DCM|110106&entity=${delivered}`, { headers: { authorization: `Bearer ${auditor}` } });
      return (found.body.entry ?? []).length ? found.body.entry[0].resource : undefined;
    }, 10_000, 'the export AuditEvent');
    expect(exported.entity.map((e: { what: { reference: string } }) => e.what.reference)).toEqual([delivered, 'Patient/member-hpsj-1']);
    expect(exported.agent.find((a: { requestor: boolean }) => !a.requestor).network.address).toBe(provider.fhirBase);
    expect(exported.outcome).toBe('0');
  });

  it('a delivery the provider refuses leaves UM staff a Task naming the letter and the member, and what they can do', async () => {
    provider.failNext({ method: 'POST', pathPrefix: '/Communication' }, 422, 1);
    const token = tokenFor(server, { scope: 'user/*.cruds', fhirUser: 'Practitioner/hpsj-pcp-1', roles: ['treating-provider'] });
    const res = await raw(`${server.fhirBase}/ServiceRequest/$submit`, { method: 'POST', headers: { authorization: `Bearer ${token}` }, json: inNetworkHpsjRequest() });
    expect(res.status).toBe(201);
    const task = await waitFor(async () => {
      const { resources } = await server.store.search({ resourceType: 'Task', clauses: [], sort: [], count: 200, offset: 0, total: false });
      return (resources as Task[]).find((t) => t.code?.text === 'delivery-failed' && t.statusReason?.text?.includes('HTTP 422'));
    }, 10_000, 'the delivery-failed Task');
    expect(task.focus?.reference).toMatch(/^Communication\//);
    const letter = (await server.store.read('Communication', task.focus!.reference!.split('/')[1])) as Communication;
    expect(letter.recipient?.[0].reference).not.toMatch(/^Patient\//);
    expect(task.for?.reference).toBe('Patient/member-hpsj-1');
    expect(task.owner?.reference).toBe('Organization/hpsj');
    expect(task.description).not.toMatch(/resend/i);
    expect(task.description).toMatch(/another way/);
  });
});
