import type { Bundle, Coverage, CoverageEligibilityResponse, Patient, Practitioner, RelatedPerson, ServiceRequest, Task } from 'fhir/r4.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ourOperationDefinitions, readConformanceResources } from '../server/src/fhir/conformance.js';
import { eligibilityCheckOperation, submitOnCreate, submitOperation } from '../server/src/fhir/operations/submit.js';
import { CODE_SYSTEMS, IDENTIFIER_SYSTEMS, PROFILES } from '../server/src/fhir/systems.js';
import type { RunningServer } from '../server/src/server.js';
import type { CaseDecision } from '../server/src/workflow/caseResources.js';
import type { DecideCase } from '../server/src/workflow/submit.js';
import { raw } from './helpers/fhir.js';
import { STORE_DRIVERS } from './helpers/stores.js';
import { startFhirOnlyServer } from './helpers/testServer.js';

/**
 * The workflow layer on its own: intake, idempotency, persistence and refusals. The decision here
 * is a fixed rule of the test (authorization needed when a performer is named), so these tests do
 * not depend on the plan rules, which have their own suites.
 */
const testDecide: DecideCase = async (_store, facts) => {
  const outOfNetwork = Boolean(facts.serviceRequest.performer?.length);
  const decision: CaseDecision = {
    authorizationRequired: outOfNetwork,
    outcome: outOfNetwork ? 'pended' : 'approved',
    outOfNetwork,
    memberCost: 0,
    explanation: [outOfNetwork ? 'test: performer named' : 'test: no performer'],
    qualifiedInNetworkProviders: [],
    decisionDueAt: '2026-12-01T08:00:00.000Z',
    providerNotificationDueAt: '2026-12-02T08:00:00.000Z',
    memberNotificationDueAt: '2026-12-03T08:00:00.000Z',
    expedited: false,
    reviewRoute: outOfNetwork ? 'um-review' : 'straight-through',
  };
  return { decision, insurer: facts.coverage.payor[0] };
};

const CIN = IDENTIFIER_SYSTEMS.mediCalCin;

function submission(tag: string, overrides: { birthDate?: string; performer?: boolean; coverageEnd?: string; reason?: boolean } = {}): Bundle {
  const patient: Patient = { resourceType: 'Patient', identifier: [{ system: CIN, value: `CIN-${tag}` }], birthDate: overrides.birthDate ?? '1975-05-06', name: [{ family: 'Member', given: [tag] }] };
  const coverage: Coverage = {
    resourceType: 'Coverage',
    status: 'active',
    beneficiary: { reference: 'urn:uuid:patient' },
    payor: [{ reference: 'Organization/plan-test' }],
    period: { start: '2026-01-01', end: overrides.coverageEnd ?? '2026-12-31' },
    identifier: [{ system: IDENTIFIER_SYSTEMS.planMemberId, value: `M-${tag}` }],
  };
  const pcp: Practitioner = { resourceType: 'Practitioner', identifier: [{ system: IDENTIFIER_SYSTEMS.npi, value: '1234567893' }], name: [{ family: 'Pcp' }] };
  const sr: ServiceRequest = {
    resourceType: 'ServiceRequest',
    identifier: [{ system: IDENTIFIER_SYSTEMS.secondOpinionRequest, value: `req-${tag}` }],
    status: 'draft',
    intent: 'order',
    subject: { reference: 'urn:uuid:patient' },
    requester: { reference: 'urn:uuid:pcp' },
    insurance: [{ reference: 'urn:uuid:coverage' }],
    reasonCode: overrides.reason === false ? undefined : [{ coding: [{ system: CODE_SYSTEMS.reason, code: 'unclear-diagnosis' }] }],
    performer: overrides.performer ? [{ reference: 'urn:uuid:pcp' }] : undefined,
  };
  return {
    resourceType: 'Bundle',
    type: 'collection',
    entry: [
      { fullUrl: 'urn:uuid:sr', resource: sr },
      { fullUrl: 'urn:uuid:patient', resource: patient },
      { fullUrl: 'urn:uuid:coverage', resource: coverage },
      { fullUrl: 'urn:uuid:pcp', resource: pcp },
    ],
  };
}

/** A ServiceRequest claiming the second-opinion profile, for the member, requester and coverage of a stored case. */
const profiledRequest = (sr: ServiceRequest, identifier: string): ServiceRequest => ({
  resourceType: 'ServiceRequest',
  meta: { profile: [PROFILES.serviceRequest] },
  identifier: [{ system: IDENTIFIER_SYSTEMS.secondOpinionRequest, value: identifier }],
  status: 'draft',
  intent: 'order',
  subject: sr.subject,
  requester: sr.requester,
  insurance: sr.insurance,
  reasonCode: [{ coding: [{ system: CODE_SYSTEMS.reason, code: 'not-improving' }] }],
});

describe.each(STORE_DRIVERS)('second-opinion submission workflow on $name', (driver) => {
  let server: RunningServer;
  const config = driver.config();
  beforeAll(async () => {
    server = await startFhirOnlyServer(config, async () => ({
      operations: [submitOperation(ourOperationDefinitions(readConformanceResources()), testDecide), eligibilityCheckOperation(ourOperationDefinitions(readConformanceResources()), testDecide)],
    }));
    server.ctx.createInterceptors = { ServiceRequest: submitOnCreate(testDecide) };
    await server.store.update({ resourceType: 'Organization', id: 'plan-test', name: 'Test plan', identifier: [{ system: IDENTIFIER_SYSTEMS.planId, value: 'hpsj' }] });
  });
  afterAll(async () => {
    await server?.close();
    await driver.cleanup(config);
  });
  const post = (path: string, json: unknown) => raw(`${server.fhirBase}/${path}`, { method: 'POST', json });
  const count = async (type: string) => (await raw(`${server.fhirBase}/${type}?_summary=count`)).body.total as number;

  it('stores the request, its eligibility request and response, and the Task, and links them', async () => {
    const res = await post('ServiceRequest/$submit', submission('a'));
    expect(res.status).toBe(201);
    const [sr, cer, cerResp, task] = res.body.entry.map((e: { resource: unknown }) => e.resource) as [ServiceRequest, unknown, CoverageEligibilityResponse, Task];
    expect(sr.meta?.profile).toContain(PROFILES.serviceRequest);
    expect(res.headers.get('location')).toBe(`${server.fhirBase}/ServiceRequest/${sr.id}/_history/${sr.meta?.versionId}`);
    expect(sr.status).toBe('active');
    expect(sr.subject.reference).toMatch(/^Patient\//);
    expect(cerResp.request.reference).toBe(`CoverageEligibilityRequest/${(cer as { id: string }).id}`);
    expect(cerResp.insurance?.[0].item?.[0].authorizationRequired).toBe(false);
    expect(cerResp.insurance?.[0].item?.[0].benefit?.[0].allowedMoney?.value).toBe(0);
    expect(task.focus?.reference).toBe(`ServiceRequest/${sr.id}`);
    expect(task.for?.reference).toBe(sr.subject.reference);
    expect(task.restriction?.period?.end).toBe('2026-12-01T08:00:00.000Z');
    const ext = sr.extension?.find((e) => e.url.endsWith('ext-coverage-information'));
    expect(ext?.extension?.find((e) => e.url === 'pa-needed')?.valueCode).toBe('no-auth');
    const provenance = await raw(`${server.fhirBase}/Provenance?target=Task/${task.id}`);
    expect(provenance.body.entry).toHaveLength(1);
  });

  it('is idempotent: the same identifier returns the same case and creates nothing', async () => {
    const first = await post('ServiceRequest/$submit', submission('b'));
    const before = await Promise.all(['ServiceRequest', 'Task', 'Patient', 'Coverage'].map(count));
    const again = await post('ServiceRequest/$submit', submission('b'));
    expect(again.status).toBe(200);
    expect(again.body.entry.map((e: { resource: { id: string } }) => e.resource.id)).toEqual(first.body.entry.map((e: { resource: { id: string } }) => e.resource.id));
    expect(await Promise.all(['ServiceRequest', 'Task', 'Patient', 'Coverage'].map(count))).toEqual(before);
  });

  it('F13: a known identifier resubmitted for another member, requester, coverage or performer is a 409 and stores nothing; unchanged it is idempotent', async () => {
    const first = await post('ServiceRequest/$submit', submission('k', { performer: true }));
    expect(first.status).toBe(201);
    const stored = first.body.entry[0].resource as ServiceRequest;
    const other = await post('ServiceRequest/$submit', submission('k-other'));
    const otherSr = other.body.entry[0].resource as ServiceRequest;
    const resubmit = (change: Partial<ServiceRequest>): Bundle => {
      const bundle = submission('k', { performer: true });
      Object.assign(bundle.entry![0].resource as ServiceRequest, change);
      return bundle;
    };
    const types = ['ServiceRequest', 'Task', 'Patient', 'Coverage'];
    const before = await Promise.all(types.map(count));
    const cases: [string, Partial<ServiceRequest>][] = [
      ['ServiceRequest.subject', { subject: otherSr.subject }],
      ['ServiceRequest.requester', { requester: { reference: 'Organization/plan-test' } }],
      ['ServiceRequest.insurance', { insurance: otherSr.insurance }],
      ['ServiceRequest.performer', { performer: [{ reference: 'Organization/plan-test' }] }],
    ];
    for (const [element, change] of cases) {
      const res = await post('ServiceRequest/$submit', resubmit(change));
      expect(res.status, element).toBe(409);
      expect(res.body.issue[0].diagnostics, element).toContain(element);
    }
    expect(await Promise.all(types.map(count))).toEqual(before);
    const again = await post('ServiceRequest/$submit', resubmit({}));
    expect(again.status).toBe(200);
    expect(again.body.entry[0].resource.id).toBe(stored.id);
  });

  it('F13: a requester new in the Bundle (a RelatedPerson) resubmitted unchanged returns the case; changed, it is a 409', async () => {
    const withRepresentative = (name: string): Bundle => {
      const bundle = submission('rep');
      (bundle.entry![0].resource as ServiceRequest).requester = { reference: 'urn:uuid:rep' };
      bundle.entry!.push({ fullUrl: 'urn:uuid:rep', resource: { resourceType: 'RelatedPerson', patient: { reference: 'urn:uuid:patient' }, name: [{ family: name }] } as RelatedPerson });
      return bundle;
    };
    const first = await post('ServiceRequest/$submit', withRepresentative('Garcia'));
    expect(first.status).toBe(201);
    const again = await post('ServiceRequest/$submit', withRepresentative('Garcia'));
    expect(again.status).toBe(200);
    expect(again.body.entry[3].resource.id).toBe(first.body.entry[3].resource.id);
    expect((await post('ServiceRequest/$submit', withRepresentative('Someone else'))).status).toBe(409);
  });

  it('F13: only the second-opinion request identifier makes a resubmission idempotent, not any identifier with a system', async () => {
    const withEhrOrderNumber = (tag: string): Bundle => {
      const bundle = submission(tag);
      (bundle.entry![0].resource as ServiceRequest).identifier = [{ system: 'urn:oid:1.2.3.4.5.ehr-order', value: 'order-1' }];
      return bundle;
    };
    const a = await post('ServiceRequest/$submit', withEhrOrderNumber('ehr-a'));
    const b = await post('ServiceRequest/$submit', withEhrOrderNumber('ehr-b'));
    expect([a.status, b.status]).toEqual([201, 201]);
    expect(b.body.entry[0].resource.id).not.toBe(a.body.entry[0].resource.id);
    expect(b.body.entry[0].resource.subject.reference).not.toBe(a.body.entry[0].resource.subject.reference);
  });

  it('F6: a request may not bring another patient\'s record: 422 naming the element, for supportingInfo, reasonReference, any other reference and new entries; nothing stored', async () => {
    const victim = (await post('ServiceRequest/$submit', submission('victim'))).body.entry[0].resource as ServiceRequest;
    const condition = await post('Condition', { resourceType: 'Condition', subject: victim.subject, code: { text: 'Malignant neoplasm of breast' } });
    const ref = `Condition/${condition.body.id}`;
    const types = ['ServiceRequest', 'Task', 'Patient', 'Condition'];
    const before = await Promise.all(types.map(count));
    const cases: [string, (sr: ServiceRequest, bundle: Bundle) => void][] = [
      ['ServiceRequest.supportingInfo[0]', (sr) => (sr.supportingInfo = [{ reference: ref }])],
      ['ServiceRequest.reasonReference[0]', (sr) => (sr.reasonReference = [{ reference: ref }])],
      ['ServiceRequest.extension[0].valueReference', (sr) => (sr.extension = [{ url: 'https://example.org/any', valueReference: { reference: ref } }])],
      ['ServiceRequest.supportingInfo[0]', (sr) => (sr.supportingInfo = [{ reference: 'Organization/plan-test' }])],
      ['Bundle.entry[4].resource', (_sr, bundle) => bundle.entry!.push({ fullUrl: 'urn:uuid:c', resource: { resourceType: 'Condition', subject: victim.subject, code: { text: 'x' } } as never })],
    ];
    for (const [element, change] of cases) {
      const bundle = submission('thief');
      change(bundle.entry![0].resource as ServiceRequest, bundle);
      for (const path of ['ServiceRequest/$submit', 'CoverageEligibilityRequest/$submit']) {
        const res = await post(path, bundle);
        expect(res.status, `${path} ${element}`).toBe(422);
        expect(res.body.issue[0].expression, `${path} ${element}`).toEqual([element]);
      }
    }
    expect(await Promise.all(types.map(count))).toEqual(before);
    const own = submission('owner');
    own.entry!.push({ fullUrl: 'urn:uuid:c', resource: { resourceType: 'Condition', subject: { reference: 'urn:uuid:patient' }, code: { text: 'x' } } as never });
    (own.entry![0].resource as ServiceRequest).supportingInfo = [{ reference: 'urn:uuid:c' }];
    expect((await post('ServiceRequest/$submit', own)).status).toBe(201);
  });

  it('concurrent duplicate submissions create one case', async () => {
    const results = await Promise.all(Array.from({ length: 6 }, () => post('ServiceRequest/$submit', submission('race'))));
    expect(results.filter((r) => r.status === 201)).toHaveLength(1);
    expect(new Set(results.map((r) => r.body.entry[3].resource.id)).size).toBe(1);
  });

  it('reuses a member matched by CIN and refuses a conflicting birth date with 422 naming it', async () => {
    await post('ServiceRequest/$submit', submission('c'));
    const patients = await count('Patient');
    const second = submission('c');
    (second.entry![0].resource as ServiceRequest).identifier = [{ system: IDENTIFIER_SYSTEMS.secondOpinionRequest, value: 'req-c-2' }];
    expect((await post('ServiceRequest/$submit', second)).status).toBe(201);
    expect(await count('Patient')).toBe(patients);
    const conflicting = submission('c', { birthDate: '1999-01-01' });
    (conflicting.entry![0].resource as ServiceRequest).identifier = [{ system: IDENTIFIER_SYSTEMS.secondOpinionRequest, value: 'req-c-3' }];
    const refused = await post('ServiceRequest/$submit', conflicting);
    expect(refused.status).toBe(422);
    expect(refused.body.issue[0].expression).toEqual(['Patient.birthDate']);
  });

  it.each([
    ['no active coverage on the date', { coverageEnd: '2025-12-31' }, 'ServiceRequest.insurance'],
    ['no reason', { reason: false }, 'ServiceRequest.reasonCode'],
  ] as const)('refuses %s with 422 and stores nothing', async (_name, overrides, field) => {
    const before = await Promise.all(['ServiceRequest', 'Task', 'Patient'].map(count));
    const res = await post('ServiceRequest/$submit', submission(`bad-${field}`, overrides));
    expect(res.status).toBe(422);
    expect(res.body.issue[0].expression).toEqual([field]);
    expect(await Promise.all(['ServiceRequest', 'Task', 'Patient'].map(count))).toEqual(before);
  });

  it('refuses a Bundle without a ServiceRequest, or with an unknown referenced professional', async () => {
    const onlyPatient = { resourceType: 'Bundle', type: 'collection', entry: [{ resource: { resourceType: 'Patient', name: [{ family: 'Alone' }] } }] };
    expect((await post('ServiceRequest/$submit', onlyPatient)).status).toBe(400);
    // An empty array is not R4 JSON at all (json.html): refused as invalid before the operation looks inside.
    expect((await post('ServiceRequest/$submit', { resourceType: 'Bundle', type: 'collection', entry: [] })).status).toBe(422);
    const unknown = submission('d');
    (unknown.entry![0].resource as ServiceRequest).performer = [{ reference: 'PractitionerRole/nobody' }];
    const res = await post('ServiceRequest/$submit', unknown);
    expect(res.status).toBe(422);
    expect(res.body.issue[0].expression).toEqual(['ServiceRequest.performer[0]']);
  });

  it('refuses a submission whose resources are not valid FHIR R4 with 422 naming each flaw, and stores nothing', async () => {
    const types = ['ServiceRequest', 'Task', 'Patient', 'Condition', 'Coverage'];
    const before = await Promise.all(types.map(count));
    const invalid = submission('invalid');
    (invalid.entry![0].resource as ServiceRequest).authoredOn = 'soon';
    invalid.entry!.push({ fullUrl: 'urn:uuid:condition', resource: { resourceType: 'Condition', subject: { reference: 'urn:uuid:patient' }, onsetDateTime: 'last Tuesday', bogus: true } as never });
    for (const path of ['ServiceRequest/$submit', 'CoverageEligibilityRequest/$submit']) {
      const res = await post(path, invalid);
      expect(res.status, path).toBe(422);
      const expressions = (res.body.issue as { expression?: string[] }[]).flatMap((i) => i.expression ?? []);
      expect(expressions).toEqual(expect.arrayContaining(['Bundle.entry[0].resource.authoredOn', 'Bundle.entry[4].resource.onset[x]', 'Bundle.entry[4].resource.bogus']));
    }
    const wrapped = await post('ServiceRequest/$submit', { resourceType: 'Parameters', parameter: [{ name: 'request', resource: invalid }] });
    expect(wrapped.status).toBe(422);
    const plain = { ...(submission('invalid-plain').entry![0].resource as ServiceRequest), meta: { profile: [PROFILES.serviceRequest] }, subject: { reference: 'Patient/x' }, authoredOn: 'soon' };
    const res = await post('ServiceRequest', plain);
    expect(res.status).toBe(422);
    expect(res.body.issue.flatMap((i: { expression?: string[] }) => i.expression ?? [])).toContain('ServiceRequest.authoredOn');
    expect(await Promise.all(types.map(count))).toEqual(before);
  });

  it('CoverageEligibilityRequest/$submit answers without creating anything', async () => {
    const before = await Promise.all(['ServiceRequest', 'Task', 'Patient', 'CoverageEligibilityResponse'].map(count));
    const res = await post('CoverageEligibilityRequest/$submit', submission('e', { performer: true }));
    expect(res.status).toBe(200);
    expect(res.body.resourceType).toBe('CoverageEligibilityResponse');
    expect(res.body.insurance[0].item[0].authorizationRequired).toBe(true);
    expect(await Promise.all(['ServiceRequest', 'Task', 'Patient', 'CoverageEligibilityResponse'].map(count))).toEqual(before);
  });

  it('a plain POST of a profiled ServiceRequest starts the same workflow', async () => {
    const first = await post('ServiceRequest/$submit', submission('f'));
    const sr = first.body.entry[0].resource as ServiceRequest;
    const plain = profiledRequest(sr, 'req-plain');
    const res = await post('ServiceRequest', plain);
    expect(res.status).toBe(201);
    const tasks = await raw(`${server.fhirBase}/Task?focus=ServiceRequest/${res.body.id}`);
    expect(tasks.body.entry).toHaveLength(1);
    // Checked against R4, as inside a $submit Bundle, not against the profile it claims: the workflow gives it its identifier.
    const { identifier: _none, ...unidentified } = plain;
    const stored = await post('ServiceRequest', unidentified);
    expect(stored.status, JSON.stringify(stored.body)).toBe(201);
    expect(stored.body.identifier?.length).toBeGreaterThan(0);
  });

  it('in a transaction, a profiled ServiceRequest create keeps the id it was given, so an entry run before it that refers to its fullUrl names the case', async () => {
    const first = await post('ServiceRequest/$submit', submission('preset'));
    const sr = first.body.entry[0].resource as ServiceRequest;
    const request = profiledRequest(sr, 'req-in-transaction');
    const res = await post('', {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [
        { fullUrl: 'urn:uuid:note', resource: { resourceType: 'Basic', code: { text: 'note about the request' }, subject: { reference: 'urn:uuid:case-request' } }, request: { method: 'POST', url: 'Basic' } },
        { fullUrl: 'urn:uuid:case-request', resource: request, request: { method: 'POST', url: 'ServiceRequest' } },
      ],
    });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const [note, created] = (res.body as Bundle).entry!.map((e) => e.response!.location!.split('/_history')[0].replace(`${server.fhirBase}/`, ''));
    const stored = await raw(`${server.fhirBase}/${note}`);
    expect(stored.body.subject.reference).toBe(created);
    expect((await raw(`${server.fhirBase}/Task?focus=${created}`)).body.entry).toHaveLength(1);
  });

  it('reads its input as the OperationDefinitions declare it: one Parameters `bundle` or a bare Bundle; another name, a second bundle or an unknown parameter is 400, nothing stored', async () => {
    const bundle = submission('declared-input');
    const before = await count('ServiceRequest');
    for (const path of ['ServiceRequest/$submit', 'CoverageEligibilityRequest/$submit']) {
      const misnamed = await post(path, { resourceType: 'Parameters', parameter: [{ name: 'wrong-name', resource: bundle }] });
      expect(misnamed.status, path).toBe(400);
      expect(misnamed.body.resourceType).toBe('OperationOutcome');
      const twice = await post(path, { resourceType: 'Parameters', parameter: [{ name: 'bundle', resource: bundle }, { name: 'bundle', resource: submission('declared-input-2') }] });
      expect(twice.status, path).toBe(400);
      expect((await post(`${path}?foo=bar`, bundle)).status, path).toBe(400);
    }
    expect(await count('ServiceRequest')).toBe(before);
    expect((await post('ServiceRequest/$submit', { resourceType: 'Parameters', parameter: [{ name: 'bundle', resource: bundle }] })).status).toBe(201);
  });

  it('a malformed meta.profile is a 422 naming it, not a server error', async () => {
    const withProfile = (profile: unknown) => ({ ...submission('meta-profile'), meta: { profile } });
    for (const profile of ['x', 5, [5]]) {
      const res = await post('ServiceRequest/$submit', withProfile(profile));
      expect(res.status, JSON.stringify(profile)).toBe(422);
      expect(JSON.stringify(res.body.issue)).toContain('meta.profile');
    }
    const created = await post('Patient', { resourceType: 'Patient', meta: { profile: 'x' } });
    expect(created.status).toBe(422);
    const plain = await post('ServiceRequest', { resourceType: 'ServiceRequest', meta: { profile: PROFILES.serviceRequest }, status: 'draft', intent: 'order', subject: { reference: 'Patient/x' } });
    expect(plain.status).toBe(422);
  });
});
