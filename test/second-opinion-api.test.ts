import { Client } from 'fhir-kit-client';
import type { Bundle, CoverageEligibilityResponse, ServiceRequest, Task } from 'fhir/r4.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Resource, StructureDefinition } from 'fhir/r4.js';
import { seedDemoData } from '../server/src/demo/seed.js';
import { ourOperationDefinitions, readConformanceResources } from '../server/src/fhir/conformance.js';
import { createResourceValidator } from '../server/src/fhir/resourceValidator.js';
import { eligibilityCheckOperation, submitOnCreate, submitOperation } from '../server/src/fhir/operations/submit.js';
import { CODE_SYSTEMS, EXTENSIONS, IDENTIFIER_SYSTEMS, PROFILES } from '../server/src/fhir/systems.js';
import type { RunningServer } from '../server/src/server.js';
import { decideWithPlanRules } from '../server/src/workflow/decide.js';
import { type DemoServer, startDemoServer } from './helpers/demoServer.js';
import { raw } from './helpers/fhir.js';
import { STORE_DRIVERS } from './helpers/stores.js';
import { startFhirOnlyServer } from './helpers/testServer.js';
import { tokenFor } from './helpers/tokens.js';

let seq = 0;
/** A request by the member's PCP about the care of their treating specialist. */
function request(plan: string, memberId: string, opts: { specialty: string; careQuestioned?: string; performer?: string; priority?: ServiceRequest['priority']; requester?: string }): Bundle {
  const sr: ServiceRequest = {
    resourceType: 'ServiceRequest',
    identifier: [{ system: IDENTIFIER_SYSTEMS.secondOpinionRequest, value: `api-${plan}-${++seq}-${Date.now()}` }],
    status: 'draft',
    intent: 'order',
    priority: opts.priority ?? 'routine',
    subject: { reference: `Patient/${memberId}` },
    requester: { reference: opts.requester ?? `PractitionerRole/role-${plan}-pcp-1` },
    insurance: [{ reference: `Coverage/coverage-${memberId}` }],
    reasonCode: [{ coding: [{ system: CODE_SYSTEMS.reason, code: 'surgery-necessity' }] }],
    performerType: { coding: [{ system: CODE_SYSTEMS.nucc, code: opts.specialty }] },
    performer: opts.performer ? [{ reference: opts.performer }] : undefined,
    extension: opts.careQuestioned ? [{ url: EXTENSIONS.careQuestioned, valueReference: { reference: opts.careQuestioned } }] : undefined,
  };
  return { resourceType: 'Bundle', type: 'collection', entry: [{ resource: sr }] };
}

const CARDIOLOGY = '207RC0000X';
const NEUROLOGY = '2084N0400X';

describe.each(STORE_DRIVERS)('second-opinion API with the plan rules on $name', (driver) => {
  let server: RunningServer;
  let client: Client;
  const config = driver.config();
  beforeAll(async () => {
    server = await startFhirOnlyServer(config, async (env) => {
      await seedDemoData(env.store);
      return { operations: [submitOperation(ourOperationDefinitions(readConformanceResources()), decideWithPlanRules), eligibilityCheckOperation(ourOperationDefinitions(readConformanceResources()), decideWithPlanRules)] };
    });
    server.ctx.createInterceptors = { ServiceRequest: submitOnCreate(decideWithPlanRules) };
    client = new Client({ baseUrl: server.fhirBase });
  });
  afterAll(async () => {
    await server?.close();
    await driver.cleanup(config);
  });

  const submit = async (bundle: Bundle) => {
    const res = await raw(`${server.fhirBase}/ServiceRequest/$submit`, { method: 'POST', json: bundle });
    return { status: res.status, body: res.body, parts: (res.body.entry ?? []).map((e: { resource: unknown }) => e.resource) as [ServiceRequest, unknown, CoverageEligibilityResponse, Task] };
  };
  const paNeeded = (sr: ServiceRequest) => sr.extension?.find((e) => e.url === EXTENSIONS.crdCoverageInformation)?.extension?.find((e) => e.url === 'pa-needed')?.valueCode;

  it('finds qualified in-network professionals by specialty and Plan-Net network (PractitionerRole?network=)', async () => {
    const res = await raw(`${server.fhirBase}/PractitionerRole?specialty=${CARDIOLOGY}&network=Organization/hpsj-network&active=true`);
    expect(res.status).toBe(200);
    const ids = (res.body.entry ?? []).map((e: { resource: { id: string } }) => e.resource.id).sort();
    expect(ids).toEqual(['role-hpsj-card-1', 'role-hpsj-card-2']);
  });

  it('R3 HPSJ III.A: an in-network cardiologist is approved at once with no authorization and no cost (R12)', async () => {
    const { status, parts } = await submit(request('hpsj', 'member-hpsj-1', { specialty: CARDIOLOGY, careQuestioned: 'PractitionerRole/role-hpsj-card-1', performer: 'PractitionerRole/role-hpsj-card-2' }));
    expect(status).toBe(201);
    const [sr, , response, task] = parts;
    expect(paNeeded(sr)).toBe('no-auth');
    expect(response.insurance?.[0].item?.[0].authorizationRequired).toBe(false);
    expect(response.insurance?.[0].item?.[0].benefit?.[0].allowedMoney?.value).toBe(0);
    expect(response.disposition).toMatch(/R3 \(HPSJ III\.A\)/);
    expect(task.businessStatus?.coding?.[0].code).toBe('approved');
  });

  it('R7/R8 HPSJ: out of network while a qualified in-network cardiologist exists: auth-needed, alternatives named', async () => {
    const { parts } = await submit(request('hpsj', 'member-hpsj-1', { specialty: CARDIOLOGY, careQuestioned: 'PractitionerRole/role-hpsj-card-1', performer: 'PractitionerRole/role-oon-card-1' }));
    const [sr, , response, task] = parts;
    expect(paNeeded(sr)).toBe('auth-needed');
    const reason = sr.extension?.find((e) => e.url === EXTENSIONS.crdCoverageInformation)?.extension?.find((e) => e.url === 'reason');
    expect(reason?.valueCodeableConcept?.coding?.[0].code).toBe('auth-out-network');
    expect(response.insurance?.[0].item?.[0].authorizationRequired).toBe(true);
    expect(response.disposition).toContain('Schmidt');
    expect(task.status).toBe('requested');
    expect(task.businessStatus?.coding?.[0].code).toBe('um-review');
    expect(Date.parse(task.restriction!.period!.end!)).toBeGreaterThan(Date.parse(task.authoredOn!));
  });

  it('R3 BSP D.I: even an in-network request goes to a UM clinician', async () => {
    const { parts } = await submit(request('bsp', 'member-bsp-2', { specialty: CARDIOLOGY, careQuestioned: 'PractitionerRole/role-bsp-card-2', performer: 'PractitionerRole/role-bsp-card-1', requester: 'PractitionerRole/role-bsp-pcp-3' }));
    const [sr, , , task] = parts;
    expect(paNeeded(sr)).toBe('auth-needed');
    expect(task.businessStatus?.coding?.[0].code).toBe('um-review');
  });

  it('R7 PHC: no neurologist in network, an out-of-network one is justified; R9 PHC VI.D.1 urgent out of network → 72 hours', async () => {
    const { parts } = await submit(request('phc', 'member-phc-1', { specialty: NEUROLOGY, performer: 'PractitionerRole/role-oon-neuro-1', priority: 'urgent' }));
    const [, , response, task] = parts;
    expect(response.disposition).toMatch(/No qualified professional is available in network/);
    const hours = (Date.parse(task.restriction!.period!.end!) - Date.parse(task.authoredOn!)) / 3_600_000;
    expect(hours).toBeCloseTo(72, 5);
    // The 72 hours are PHC VI.D.1's as well as the federal ones; another plan's urgent out-of-network case has only the federal clock.
    expect(response.disposition).toMatch(/R9 \(PHC VI\.D\): Decision due [^;]*; PHC VI\.D\.1: urgent out-of-network, 72 hours/);
    const hpsj = (await submit(request('hpsj', 'member-hpsj-1', { specialty: CARDIOLOGY, careQuestioned: 'PractitionerRole/role-hpsj-card-1', performer: 'PractitionerRole/role-oon-card-1', priority: 'urgent' }))).parts[2];
    expect(hpsj.disposition).toMatch(/42 CFR 438\.210\(d\)\(2\): expedited, 72 hours/);
    expect(hpsj.disposition).not.toMatch(/VI\.D\.1/);
  });

  it('R12 (HPSJ II.A, PHC VI.A, ANT IV, BSP D.VIII): the member is charged nothing, in and out of network: the copay allowed is 0 USD', async () => {
    for (const performer of ['PractitionerRole/role-hpsj-card-2', 'PractitionerRole/role-oon-card-1']) {
      const response = (await submit(request('hpsj', 'member-hpsj-1', { specialty: CARDIOLOGY, careQuestioned: 'PractitionerRole/role-hpsj-card-1', performer }))).parts[2];
      const benefits = response.insurance?.[0].item?.[0].benefit ?? [];
      expect(benefits.map((b) => [b.type.coding?.[0].code, b.allowedMoney])).toEqual([['copay', { value: 0, currency: 'USD' }]]);
    }
  });

  it('R3 (R13, R14): a request naming no professional goes to a UM clinician, who names one; it is not approved on receipt', async () => {
    const { parts } = await submit(request('hpsj', 'member-hpsj-1', { specialty: CARDIOLOGY, careQuestioned: 'PractitionerRole/role-hpsj-card-1' }));
    const [, , response, task] = parts;
    expect([task.status, task.businessStatus?.coding?.[0].code]).toEqual(['requested', 'um-review']);
    expect(response.disposition).toMatch(/R3 \(HPSJ III\.A\): No professional is named: the request goes to a UM clinician, who names a qualified one/);
    expect(response.disposition).toContain('Schmidt'); // the qualified in-network alternatives, for the clinician to choose from
  });

  it.each([['hpsj', 'HPSJ III.A'], ['phc', 'PHC VI.A'], ['ant', 'ANT IV']])('R3 %s (%s): a request naming no professional is answered as what happens: no authorization needed, pending while the plan arranges a qualified in-network professional by the due date', async (plan) => {
    const [sr, , response, task] = (await submit(request(plan, `member-${plan}-1`, { specialty: CARDIOLOGY, careQuestioned: `PractitionerRole/role-${plan}-card-1` }))).parts;
    expect(paNeeded(sr)).toBe('no-auth');
    expect([response.outcome, response.insurance?.[0].item?.[0].authorizationRequired, response.preAuthRef]).toEqual(['queued', false, undefined]);
    const due = task.restriction!.period!.end!;
    expect(response.disposition).toMatch(new RegExp(`^No authorization is needed\\. No professional was named: the plan arranges a qualified professional in its network; the plan names the professional by ${due.replace(/[.]/g, '\\.')}\\.`));
    expect(response.disposition).not.toMatch(/Pended for utilization management review/);
    expect(response.disposition).toContain('Schmidt'); // the qualified in-network professionals
    expect([task.status, task.businessStatus?.coding?.[0].code]).toEqual(['requested', 'um-review']);
    expect(task.businessStatus?.text).toMatch(/^No authorization is needed\. No professional was named: the plan arranges/);
  });

  it('R6 (ANT III, BSP D.VI.b): the specialty requested is read one way: with none named, a care questioned named as a Practitioner gives it, and a qualified in-network professional of it is approved on receipt', async () => {
    const bundle = request('hpsj', 'member-hpsj-1', { specialty: CARDIOLOGY, careQuestioned: 'Practitioner/hpsj-card-1', performer: 'PractitionerRole/role-hpsj-card-2' });
    delete (bundle.entry![0].resource as ServiceRequest).performerType;
    const [, , response, task] = (await submit(bundle)).parts;
    expect(response.disposition).not.toMatch(/not the same specialty/);
    expect(task.businessStatus?.coding?.[0].code).toBe('approved');
  });

  it('R3 BSP D.VI.a: a member PCP request without a designated PCP goes to the UM clinician', async () => {
    const bundle = request('bsp', 'member-bsp-1', { specialty: '207Q00000X', careQuestioned: 'PractitionerRole/role-bsp-pcp-1', requester: 'Patient/member-bsp-1' });
    const { parts } = await submit(bundle);
    const [sr, , response, task] = parts;
    expect(paNeeded(sr)).toBe('auth-needed');
    expect(response.insurance?.[0].item?.[0].authorizationRequired).toBe(true);
    expect(task.businessStatus?.coding?.[0].code).toBe('um-review');
    expect(response.disposition).toMatch(/R3 \(BSP D\.I, D\.VI\.a\): No professional is named/);
  });

  it('R1: a self-declared requester-kind does not make a professional outside the care team a treating specialist', async () => {
    const bundle = request('hpsj', 'member-hpsj-1', { specialty: CARDIOLOGY, careQuestioned: 'PractitionerRole/role-hpsj-card-1', performer: 'PractitionerRole/role-hpsj-card-2', requester: 'PractitionerRole/role-hpsj-ortho-2' });
    const sr = bundle.entry![0].resource as ServiceRequest;
    sr.extension = [...(sr.extension ?? []), { url: EXTENSIONS.requesterKind, valueCode: 'treating-specialist' }];
    const [, , response, task] = (await submit(bundle)).parts;
    expect(task.businessStatus?.coding?.[0].code).toBe('um-review');
    expect(response.disposition).toMatch(/R1 \(HPSJ II\.A\): The requester is not one the policy names \(declared 'treating-specialist', which the record does not show\); the request goes to UM review/);
  });

  it('R1 (ANT Policy): a care-team professional outside the plan network is not a participating treating specialist: UM review', async () => {
    await server.store.update({ resourceType: 'Practitioner', id: 'outside-card', active: true, name: [{ family: 'Outside' }] });
    await server.store.update({ resourceType: 'PractitionerRole', id: 'role-outside-card', active: true, practitioner: { reference: 'Practitioner/outside-card' }, specialty: [{ coding: [{ system: CODE_SYSTEMS.nucc, code: CARDIOLOGY }] }] });
    await server.store.update({ resourceType: 'CareTeam', id: 'careteam-outside-member-ant-2', status: 'active', subject: { reference: 'Patient/member-ant-2' }, participant: [{ member: { reference: 'PractitionerRole/role-outside-card' } }] });
    const [, , response, task] = (await submit(request('ant', 'member-ant-2', { specialty: CARDIOLOGY, performer: 'PractitionerRole/role-ant-card-2', requester: 'PractitionerRole/role-outside-card' }))).parts;
    expect(task.businessStatus?.coding?.[0].code).toBe('um-review');
    expect(response.disposition).toMatch(/R1 \(ANT Policy\): The requester is not one the policy names/);
    // In network nothing needs authorizing (R3, ANT IV): the answer says so, and that UM reviews the finding.
    expect(response.disposition).toMatch(/^No authorization is needed in network; pended for utilization management review of what the findings below name/);
  });

  it('R2: a request giving only a reasonReference is recorded as "other" with the Condition\'s words and goes to UM review', async () => {
    const bundle = request('hpsj', 'member-hpsj-1', { specialty: CARDIOLOGY, careQuestioned: 'PractitionerRole/role-hpsj-card-1', performer: 'PractitionerRole/role-hpsj-card-2' });
    const sr = bundle.entry![0].resource as ServiceRequest;
    delete sr.reasonCode;
    sr.reasonReference = [{ reference: 'Condition/condition-member-hpsj-1' }];
    const { status, body, parts } = await submit(bundle);
    expect(status, JSON.stringify(body)).toBe(201);
    const [, , response, task] = parts;
    expect(task.businessStatus?.coding?.[0].code).toBe('um-review');
    expect(response.disposition).toMatch(/R2 \(HPSJ II\.B\.1-5\): Reason: other \(Atrial fibrillation\)/);
    expect(response.disposition).toMatch(/R2 \(HPSJ II\.B\.1-5\): No reason was stated, only a condition/);
  });

  it('CoverageEligibilityRequest/$submit tells the app, before submitting, whether authorization is needed', async () => {
    const res = await raw(`${server.fhirBase}/CoverageEligibilityRequest/$submit`, {
      method: 'POST',
      json: request('ant', 'member-ant-1', { specialty: CARDIOLOGY, careQuestioned: 'PractitionerRole/role-ant-card-1', performer: 'PractitionerRole/role-oon-card-1' }),
    });
    expect(res.status).toBe(200);
    expect(res.body.insurance[0].item[0].authorizationRequired).toBe(true);
    expect(res.body.disposition).toMatch(/R8/);
  });

  it('fhir-kit-client submits through the $submit operation and gets the case back', async () => {
    const bundle = request('hpsj', 'member-hpsj-2', { specialty: '207X00000X', careQuestioned: 'PractitionerRole/role-hpsj-ortho-1', performer: 'PractitionerRole/role-hpsj-ortho-2' });
    const result = (await client.operation({ resourceType: 'ServiceRequest', name: '$submit', method: 'POST', input: bundle as never })) as unknown as Bundle;
    expect(result.entry?.map((e) => e.resource?.resourceType)).toEqual(['ServiceRequest', 'CoverageEligibilityRequest', 'CoverageEligibilityResponse', 'Task']);
    const task = result.entry![3].resource as Task;
    const read = (await client.read({ resourceType: 'Task', id: task.id! })) as unknown as Task;
    expect(read.focus?.reference).toBe(`ServiceRequest/${result.entry![0].resource!.id}`);
  });

  it('what the server writes for a case conforms to our profiles', async () => {
    const validator = createResourceValidator(readConformanceResources().filter((r): r is StructureDefinition => r.resourceType === 'StructureDefinition'));
    const { parts } = await submit(request('ant', 'member-ant-1', { specialty: CARDIOLOGY, careQuestioned: 'PractitionerRole/role-ant-card-1', performer: 'PractitionerRole/role-oon-card-1' }));
    for (const resource of parts as Resource[]) {
      expect(validator.validate(resource).filter((i) => i.severity === 'error').map((i) => i.diagnostics), resource.resourceType).toEqual([]);
    }
    expect((parts as Resource[]).filter((r) => r.meta?.profile?.length).map((r) => r.resourceType).sort()).toEqual(['CoverageEligibilityResponse', 'ServiceRequest', 'Task']);
  });

  it('refuses a request whose Coverage is not with a plan we serve, and one naming an unknown professional', async () => {
    await server.store.update({ resourceType: 'Organization', id: 'other-payer', name: 'Someone else' });
    await server.store.update({ resourceType: 'Coverage', id: 'coverage-elsewhere', status: 'active', beneficiary: { reference: 'Patient/member-ant-2' }, payor: [{ reference: 'Organization/other-payer' }] });
    const bundle = request('ant', 'member-ant-2', { specialty: CARDIOLOGY });
    (bundle.entry![0].resource as ServiceRequest).insurance = [{ reference: 'Coverage/coverage-elsewhere' }];
    const res = await submit(bundle);
    expect(res.status).toBe(422);
    expect(res.body.issue[0].expression).toEqual(['Coverage.payor']);
  });

  it('a request found by chained search on the member identifier', async () => {
    const found = (await client.search({ resourceType: 'ServiceRequest', searchParams: { 'subject:Patient.identifier': `${IDENTIFIER_SYSTEMS.planMemberId}|HPSJ-100201` } })) as unknown as Bundle;
    expect(found.entry?.length).toBeGreaterThanOrEqual(2);
  });
});

/** What a $submit may reference and reveal, judged for the caller's token (probe F6, F12, F13), on the server as `npm start` runs it. */
describe('second-opinion submission: references and what errors reveal, per token', () => {
  let server: DemoServer;
  let memberToken: string;
  let pcpToken: string;
  let systemToken: string;
  beforeAll(async () => {
    server = await startDemoServer();
    memberToken = tokenFor(server, { scope: 'launch/patient patient/*.cruds', patient: 'member-hpsj-1', fhirUser: 'Patient/member-hpsj-1', roles: ['member'] });
    pcpToken = tokenFor(server, { scope: 'user/*.cruds', fhirUser: 'Practitioner/hpsj-pcp-1', roles: ['treating-provider'] });
    systemToken = tokenFor(server, { scope: 'system/*.rs' });
  });
  afterAll(async () => server?.close());

  const post = (path: string, token: string, json: unknown) => raw(`${server.fhirBase}/${path}`, { method: 'POST', headers: { authorization: `Bearer ${token}` }, json });
  const storedCount = async () => Promise.all(['ServiceRequest', 'Task', 'CoverageEligibilityResponse', 'DocumentReference'].map(async (type) => (await raw(`${server.fhirBase}/${type}?_summary=count`, { headers: { authorization: `Bearer ${systemToken}` } })).body.total as number));
  /** member-hpsj-1 asking for themselves, with their own Coverage. */
  const ownRequest = (change: Partial<ServiceRequest> = {}): ServiceRequest => ({
    ...(request('hpsj', 'member-hpsj-1', { specialty: CARDIOLOGY, careQuestioned: 'PractitionerRole/role-hpsj-card-1', requester: 'Patient/member-hpsj-1' }).entry![0].resource as ServiceRequest),
    ...change,
  });
  const bundleOf = (sr: ServiceRequest, ...more: Resource[]): Bundle => ({ resourceType: 'Bundle', type: 'collection', entry: [{ resource: sr }, ...more.map((resource, i) => ({ fullUrl: `urn:uuid:entry-${i}`, resource }))] });
  /** Each way into the intake: $submit, the dry run, and a plain POST of the profiled request. */
  const allPaths = (token: string, sr: ServiceRequest) => Promise.all([
    post('ServiceRequest/$submit', token, bundleOf(sr)),
    post('CoverageEligibilityRequest/$submit', token, bundleOf(sr)),
    post('ServiceRequest', token, { ...sr, meta: { profile: [PROFILES.serviceRequest] } }),
  ]);

  it('F6: a member may not name another member\'s Condition as supportingInfo or reasonReference: 403 naming the element, nothing stored', async () => {
    const before = await storedCount();
    for (const [element, sr] of [
      ['ServiceRequest.supportingInfo[0]', ownRequest({ supportingInfo: [{ reference: 'Condition/condition-member-phc-1' }] })],
      ['ServiceRequest.reasonReference[0]', ownRequest({ reasonReference: [{ reference: 'Condition/condition-member-bsp-2' }] })],
      ['ServiceRequest.extension[0].valueReference', ownRequest({ extension: [{ url: EXTENSIONS.careQuestioned, valueReference: { reference: 'Condition/condition-member-bsp-2' } }] })],
    ] as const) {
      for (const res of await allPaths(memberToken, sr)) {
        expect(res.status, element).toBe(403);
        expect(res.body.issue[0].expression, element).toEqual([element]);
        expect(res.body.issue[0].diagnostics, element).toMatch(/does not exist or is outside the patient compartment/);
        expect(JSON.stringify(res.body)).not.toMatch(/neoplasm|arteriosclerosis/i);
      }
    }
    expect(await storedCount()).toEqual(before);
  });

  it('F6: a member submitting for themselves with their own Condition and Coverage is still accepted', async () => {
    const res = await post('ServiceRequest/$submit', memberToken, bundleOf(ownRequest({ supportingInfo: [{ reference: 'Condition/condition-member-hpsj-1' }], reasonReference: [{ reference: 'Condition/condition-member-hpsj-1' }] })));
    expect(res.status, JSON.stringify(res.body)).toBe(201);
  });

  it('F6: a treating provider may not attach another patient\'s record to a request: 422 naming the element, nothing stored; their own patient\'s is accepted', async () => {
    const before = await storedCount();
    const forHpsj1 = (change: Partial<ServiceRequest>): ServiceRequest => ({ ...(request('hpsj', 'member-hpsj-1', { specialty: CARDIOLOGY, careQuestioned: 'PractitionerRole/role-hpsj-card-1' }).entry![0].resource as ServiceRequest), ...change });
    for (const [element, sr] of [
      ['ServiceRequest.supportingInfo[0]', forHpsj1({ supportingInfo: [{ reference: 'Condition/condition-member-phc-1' }] })],
      ['ServiceRequest.reasonReference[0]', forHpsj1({ reasonReference: [{ reference: 'Condition/condition-member-bsp-2' }] })],
      ['ServiceRequest.insurance[0]', forHpsj1({ insurance: [{ reference: 'Coverage/coverage-member-hpsj-2' }] })],
      ['ServiceRequest.requester', forHpsj1({ requester: { reference: 'RelatedPerson/rep-member-hpsj-1' }, subject: { reference: 'Patient/member-hpsj-2' }, insurance: [{ reference: 'Coverage/coverage-member-hpsj-2' }] })],
    ] as const) {
      for (const res of await allPaths(pcpToken, sr)) {
        expect(res.status, element).toBe(422);
        expect(res.body.issue[0].expression, element).toEqual([element]);
      }
    }
    expect(await storedCount()).toEqual(before);
    expect((await post('ServiceRequest/$submit', pcpToken, bundleOf(forHpsj1({ supportingInfo: [{ reference: 'Condition/condition-member-hpsj-1' }] })))).status).toBe(201);
  });

  it('F12: a member cannot map a CIN to a Patient id or confirm a birth date: the same answer as for an unknown CIN', async () => {
    const withPatient = (birthDate: string, cin: string) => {
      const sr = ownRequest({ subject: { reference: 'urn:uuid:entry-0' } });
      return bundleOf(sr, { resourceType: 'Patient', identifier: [{ system: IDENTIFIER_SYSTEMS.mediCalCin, value: cin }], birthDate } as Resource);
    };
    const answers = [];
    for (const bundle of [withPatient('1970-01-01', '91000935A'), withPatient('1961-08-08', '91000935A'), withPatient('1961-08-08', '99999999Z')]) {
      for (const path of ['CoverageEligibilityRequest/$submit', 'ServiceRequest/$submit']) {
        const res = await post(path, memberToken, bundle);
        answers.push({ status: res.status, body: res.body });
      }
    }
    expect(answers[0].status).toBe(403);
    for (const answer of answers) expect(answer).toEqual(answers[0]);
    expect(JSON.stringify(answers)).not.toMatch(/member-bsp-1|1961|birth/);
  });

  it('F12: another member\'s resource and one that does not exist get the same answer through any reference', async () => {
    for (const [existing, missing, change] of [
      ['Patient/member-bsp-1', 'Patient/no-such-member', (ref: string) => ({ requester: { reference: ref } })],
      ['Condition/condition-member-bsp-1', 'Condition/no-such-condition', (ref: string) => ({ supportingInfo: [{ reference: ref }] })],
      ['Condition/condition-member-bsp-1', 'Condition/no-such-condition', (ref: string) => ({ reasonReference: [{ reference: ref }] })],
      ['Patient/member-bsp-1', 'Patient/no-such-member', (ref: string) => ({ subject: { reference: ref } })],
    ] as const) {
      const [a, b] = await Promise.all([existing, missing].map((ref) => post('ServiceRequest/$submit', memberToken, bundleOf(ownRequest(change(ref))))));
      expect(a.status, existing).toBe(403);
      expect(b.status, missing).toBe(a.status);
      expect(JSON.stringify(b.body).replaceAll(missing, 'X')).toBe(JSON.stringify(a.body).replaceAll(existing, 'X'));
    }
  });

  it('F13: a member resubmitting another member\'s request identifier gets a 409 that says nothing of whose it is', async () => {
    const pcpCase = request('hpsj', 'member-hpsj-2', { specialty: CARDIOLOGY, careQuestioned: 'PractitionerRole/role-hpsj-ortho-1' });
    expect((await post('ServiceRequest/$submit', pcpToken, pcpCase)).status).toBe(201);
    const identifier = (pcpCase.entry![0].resource as ServiceRequest).identifier;
    const res = await post('ServiceRequest/$submit', memberToken, bundleOf(ownRequest({ identifier })));
    expect(res.status).toBe(409);
    expect(res.body.issue[0].diagnostics).not.toMatch(/member|subject|Patient/);
  });
});
