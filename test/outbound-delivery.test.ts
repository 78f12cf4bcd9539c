import type { DocumentReference, Endpoint, Organization, Patient, Practitioner, PractitionerRole, ServiceRequest, Task } from 'fhir/r4.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CODE_SYSTEMS, IDENTIFIER_SYSTEMS, PROFILES } from '../server/src/fhir/systems.js';
import type { OutboundConfigInput } from '../server/src/outbound/index.js';
import type { FhirStore } from '../server/src/storage/FhirStore.js';
import { planKeys, startPlanServer, startProviderServer, untilLogged, waitFor, type LoggedRequest, type PlanServer, type ProviderServer } from './helpers/providerServer.js';
import { STORE_DRIVERS } from './helpers/stores.js';

const REPORT_SYSTEM = 'https://second-opinion.example.org/fhir/sid/consultation-report';
const SCOPES = ['system/DocumentReference.cr', 'system/Task.cru', 'system/Task.s', 'system/Binary.r', 'system/DocumentReference.r'];

describe.each(STORE_DRIVERS)('payer-to-provider deliveries on $name', (driver) => {
  let provider: ProviderServer;
  let plan: PlanServer;
  const planStore = driver.config();
  const keys = planKeys('RS384');

  const config = (): OutboundConfigInput => ({
    planOrganization: 'Organization/plan-hpsj',
    worker: { pollMs: 30, batch: 10, leaseMs: 5000, maxAttempts: 6, backoff: { baseMs: 20, maxMs: 100 } },
    network: { allowPrivateNetwork: true, timeoutMs: 5000 },
    credentials: [{ endpoints: [provider.fhirBase], clientId: 'plan-hpsj', privateKey: keys.privatePem, kid: 'hpsj-1', alg: 'RS384', scopes: SCOPES }],
    cdex: { pollIntervalMs: 50 },
  });

  beforeAll(async () => {
    provider = await startProviderServer();
    provider.register({ clientId: 'plan-hpsj', publicKey: keys.publicKey, kid: 'hpsj-1', scopes: SCOPES });
    plan = await startPlanServer(planStore, config());
  });
  afterAll(async () => {
    await plan?.server.close();
    await provider?.close();
    await driver.cleanup(planStore);
  });

  /** A consultation report in the plan's store, and its delivery queued in the same transaction. */
  async function reportDelivered(value: string): Promise<DocumentReference> {
    return plan.server.store.transaction(async (tx) => {
      const patient = await tx.create<Patient>({ resourceType: 'Patient', name: [{ family: 'Quillfeather' }] });
      const report = await tx.create<DocumentReference>({
        resourceType: 'DocumentReference',
        meta: { profile: [PROFILES.consultationReport] },
        status: 'current',
        subject: { reference: `Patient/${patient.id}` },
        author: [{ display: 'Second-opinion professional' }],
        context: { related: [{ display: 'The second-opinion request' }] },
        content: [{ attachment: { contentType: 'text/plain', data: Buffer.from('second opinion').toString('base64') } }],
      });
      await plan.outbound.enqueueDelivery(tx, { endpoint: provider.fhirBase, resource: report, identifier: { system: REPORT_SYSTEM, value } });
      return report;
    });
  }

  const atProvider = async (value: string) =>
    (await provider.server.store.search({
      resourceType: 'DocumentReference',
      clauses: [{ kind: 'token', param: 'identifier', values: [`identifier|${REPORT_SYSTEM}|${value}`], not: false }],
      sort: [],
      count: 10,
      offset: 0,
      total: false,
    })).resources as DocumentReference[];

  /** The provider's logged creates of one report: its conditional create names the report's identifier. */
  const isCreateOf = (identifier: string) => (r: LoggedRequest) =>
    r.method === 'POST' && r.path === '/DocumentReference' && decodeURIComponent(r.ifNoneExist ?? '').endsWith(`|${identifier}`);
  const createsOf = (identifier: string) => provider.requests.filter(isCreateOf(identifier));
  const answered = (identifier: string, status: number) =>
    untilLogged(provider, (r) => isCreateOf(identifier)(r) && r.status === status, `the provider's log of ${status} for ${identifier}`);

  it('delivers a queued resource exactly once, with a conditional create and a backend-services token', async () => {
    const report = await reportDelivered(`r-${driver.name}-1`);
    const delivered = await waitFor(async () => ((await atProvider(`r-${driver.name}-1`)).length === 1 ? true : undefined), 10_000, 'delivery');
    expect(delivered).toBe(true);
    await answered(`r-${driver.name}-1`, 201);
    await new Promise((resolve) => setTimeout(resolve, 200));
    const copies = await atProvider(`r-${driver.name}-1`);
    expect(copies).toHaveLength(1);
    expect(copies[0].id).not.toBe(report.id);
    const sent = createsOf(`r-${driver.name}-1`);
    expect(sent).toHaveLength(1);
    expect(sent[0].status).toBe(201);
    expect(decodeURIComponent(sent[0].ifNoneExist ?? '')).toBe(`identifier=${REPORT_SYSTEM}|r-${driver.name}-1`);
    expect(provider.tokenRequests.filter((t) => t.ok).length).toBeGreaterThanOrEqual(1);
    expect(provider.tokenRequests.filter((t) => !t.ok)).toEqual([]);
  });

  it('reuses the cached token, and refreshes it once when the provider answers 401', async () => {
    const tokensBefore = provider.tokenRequests.length;
    await reportDelivered(`r-${driver.name}-2`);
    await waitFor(async () => ((await atProvider(`r-${driver.name}-2`)).length === 1 ? true : undefined));
    expect(provider.tokenRequests.length).toBe(tokensBefore);
    provider.revokeTokens();
    await reportDelivered(`r-${driver.name}-3`);
    await waitFor(async () => ((await atProvider(`r-${driver.name}-3`)).length === 1 ? true : undefined));
    expect(provider.tokenRequests.length).toBe(tokensBefore + 1);
    expect(provider.requests.some((r) => r.status === 401)).toBe(true);
  });

  it('retries 500 three times and still creates exactly one resource', async () => {
    const retriedBefore = plan.outbound.metrics().retried;
    provider.failNext({ method: 'POST', pathPrefix: '/DocumentReference' }, 500, 3);
    await reportDelivered(`r-${driver.name}-500`);
    await waitFor(async () => ((await atProvider(`r-${driver.name}-500`)).length === 1 ? true : undefined), 10_000, 'delivery after 500s');
    await answered(`r-${driver.name}-500`, 201);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(await atProvider(`r-${driver.name}-500`)).toHaveLength(1);
    expect(createsOf(`r-${driver.name}-500`).map((r) => r.status)).toEqual([500, 500, 500, 201]);
    expect(plan.outbound.metrics().retried - retriedBefore).toBe(3);
  });

  it('dead-letters a 4xx at once and shows UM staff a delivery-failed Task about the report', async () => {
    provider.failNext({ method: 'POST', pathPrefix: '/DocumentReference' }, 422, 1);
    const report = await reportDelivered(`r-${driver.name}-422`);
    const task = await waitFor(async () => (await failureTasks(plan.server.store, `DocumentReference/${report.id}`))[0], 10_000, 'delivery-failed Task');
    expect(task.status).toBe('requested');
    expect(task.code?.text).toBe('delivery-failed');
    expect(task.businessStatus?.coding?.[0]).toMatchObject({ system: CODE_SYSTEMS.businessStatus, code: 'delivery-failed' });
    expect(task.owner?.reference).toBe('Organization/plan-hpsj');
    expect(task.for?.reference).toBe(report.subject?.reference);
    expect(task.statusReason?.text).toContain('HTTP 422');
    await answered(`r-${driver.name}-422`, 422);
    expect(createsOf(`r-${driver.name}-422`)).toHaveLength(1);
    expect(await atProvider(`r-${driver.name}-422`)).toHaveLength(0);
    expect(plan.outbound.metrics().deadLettered).toBeGreaterThanOrEqual(1);
  });

  it('finds the provider endpoint from PractitionerRole and Organization directory data', async () => {
    const store = plan.server.store;
    const endpoint = await store.create<Endpoint>({
      resourceType: 'Endpoint',
      status: 'active',
      connectionType: { system: 'http://terminology.hl7.org/CodeSystem/endpoint-connection-type', code: 'hl7-fhir-rest' },
      payloadType: [{ text: 'FHIR' }],
      address: `${provider.fhirBase}/`,
    });
    const off = await store.create<Endpoint>({ ...endpoint, id: undefined, status: 'off', address: 'https://old.example.org/fhir' });
    const direct = await store.create<Endpoint>({ ...endpoint, id: undefined, connectionType: { code: 'direct-project' }, address: 'mailto:x@example.org' });
    const org = await store.create<Organization>({ resourceType: 'Organization', name: 'Clinic', endpoint: [{ reference: `Endpoint/${endpoint.id}` }, { reference: `Endpoint/${off.id}` }] });
    const practitioner = await store.create<Practitioner>({ resourceType: 'Practitioner', name: [{ family: 'Second' }] });
    await store.create<PractitionerRole>({ resourceType: 'PractitionerRole', practitioner: { reference: `Practitioner/${practitioner.id}` }, organization: { reference: `Organization/${org.id}` }, endpoint: [{ reference: `Endpoint/${direct.id}` }] });
    const expected = [{ address: provider.fhirBase, endpoint: `Endpoint/${endpoint.id}` }];
    expect(await plan.outbound.endpointsFor(store, `Practitioner/${practitioner.id}`)).toEqual(expected);
    expect(await plan.outbound.endpointsFor(store, `Organization/${org.id}`)).toEqual(expected);
    expect(await plan.outbound.endpointsFor(store, 'Patient/x')).toEqual([]);
  });

  it('sends a CDex information request once and copies the answer back when the provider completes it', async () => {
    const store = plan.server.store;
    const { local, sr, patient } = await store.transaction(async (tx) => {
      const patient = await tx.create<Patient>({ resourceType: 'Patient', name: [{ family: 'Thistlewood' }] });
      const sr = await tx.create<ServiceRequest>({
        resourceType: 'ServiceRequest',
        meta: { profile: [PROFILES.serviceRequest] },
        identifier: [{ system: 'urn:test', value: crypto.randomUUID() }],
        status: 'active',
        intent: 'order',
        subject: { reference: `Patient/${patient.id}` },
        requester: { display: 'PCP' },
        insurance: [{ display: 'Medi-Cal' }],
        reasonCode: [{ text: 'test' }],
      });
      const local = await plan.outbound.enqueueInformationRequest(tx, {
        endpoint: provider.fhirBase,
        basedOn: `ServiceRequest/${sr.id}`,
        patient: { local: `Patient/${patient.id}`, remote: { identifier: { system: IDENTIFIER_SYSTEMS.mediCalCin, value: '9X1234567' } } },
        requester: { display: 'Health Plan of San Joaquin' },
        request: { code: { coding: [{ system: 'http://loinc.org', code: '11506-3', display: 'Progress note' }] } },
        description: 'Latest progress note for the second-opinion review',
      });
      return { local, sr, patient };
    });
    expect(local.status).toBe('requested');
    const identifier = local.identifier![0];
    const remote = await waitFor(async () => {
      const { resources } = await provider.server.store.search({
        resourceType: 'Task',
        clauses: [{ kind: 'token', param: 'identifier', values: [`identifier|${identifier.system}|${identifier.value}`], not: false }],
        sort: [],
        count: 5,
        offset: 0,
        total: false,
      });
      return resources.length ? (resources as Task[]) : undefined;
    }, 10_000, 'remote Task');
    expect(remote).toHaveLength(1);
    expect(remote[0].for?.identifier?.value).toBe('9X1234567');
    expect(remote[0].code?.coding?.[0].code).toBe('data-request-code');
    // Several polls go by while the provider works on it; the Task stays single.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const pstore = provider.server.store;
    const note = await pstore.create<DocumentReference>({
      resourceType: 'DocumentReference',
      status: 'current',
      subject: { reference: 'Patient/provider-local-id' },
      type: { coding: [{ system: 'http://loinc.org', code: '11506-3' }] },
      content: [{ attachment: { contentType: 'text/plain', data: Buffer.from('progress note text').toString('base64') } }],
    });
    await pstore.update<Task>({
      ...remote[0],
      status: 'completed',
      output: [{ type: { coding: [{ system: 'http://hl7.org/fhir/us/davinci-cdex/CodeSystem/cdex-temp', code: 'data-value' }] }, valueReference: { reference: `DocumentReference/${note.id}` } }],
    });
    const done = await waitFor(async () => {
      const t = (await store.read('Task', local.id!)) as Task;
      return t.status === 'completed' ? t : undefined;
    }, 10_000, 'local Task completed');
    expect(done.output).toHaveLength(1);
    const copyRef = done.output![0].valueReference!.reference!;
    const copy = (await store.read('DocumentReference', copyRef.split('/')[1])) as DocumentReference;
    expect(copy.subject?.reference).toBe(`Patient/${patient.id}`);
    expect(copy.context?.related?.map((r) => r.reference)).toContain(`ServiceRequest/${sr.id}`);
    expect(copy.meta?.source).toBe(`${provider.fhirBase}/DocumentReference/${note.id}`);
    expect(Buffer.from(copy.content[0].attachment.data!, 'base64').toString()).toBe('progress note text');
    const posts = provider.requests.filter((r) => r.method === 'POST' && r.path === '/Task');
    expect(posts).toHaveLength(1);
  });

  it('never logs tokens, keys or resource content', () => {
    const all = plan.logs.join('\n');
    expect(all).not.toMatch(/Bearer|access_token|PRIVATE KEY|Quillfeather|Thistlewood|progress note|9X1234567/);
  });
});

async function failureTasks(store: FhirStore, focus: string): Promise<Task[]> {
  const { resources } = await store.search({
    resourceType: 'Task',
    clauses: [{ kind: 'reference', param: 'focus', values: [`focus|${focus}`] }],
    sort: [],
    count: 10,
    offset: 0,
    total: false,
  });
  return (resources as Task[]).filter((t) => t.code?.text === 'delivery-failed');
}
