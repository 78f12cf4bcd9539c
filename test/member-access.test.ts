import type { Bundle, CareTeam, Condition, OperationOutcome, ServiceRequest } from 'fhir/r4.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { UserRole } from '../server/src/fhir/request.js';
import { CODE_SYSTEMS, IDENTIFIER_SYSTEMS } from '../server/src/fhir/systems.js';
import { type DemoServer, startDemoServer } from './helpers/demoServer.js';
import { raw } from './helpers/fhir.js';
import { STORE_DRIVERS } from './helpers/stores.js';
import { tokenFor } from './helpers/tokens.js';

/**
 * Whose records a user sees through user/ scopes (workflow/memberAccess.ts): plan staff their plans' members (R10, R11),
 * a practitioner the patients they treat or were asked about (R1, R14), plan administration and auditors everyone.
 * Outside that, a member's records are missing ids, left out of searches, includes, chains and history, and not written.
 */
describe.each(STORE_DRIVERS)('whose records a user sees on $name', (driver) => {
  let server: DemoServer;
  const store = driver.config();
  const user = (fhirUser: string, role: UserRole, scope = 'user/*.rs', patient?: string) => tokenFor(server, { scope, fhirUser, roles: [role], patient });
  const admin = () => user('Practitioner/hpsj-md-1', 'plan-admin', 'user/*.cruds');
  const call = (token: string, path: string, init: { method?: string; json?: unknown } = {}) =>
    raw(`${server.fhirBase}/${path}`, { method: init.method ?? (init.json === undefined ? 'GET' : 'POST'), headers: { authorization: `Bearer ${token}` }, json: init.json });
  const ids = (bundle: Bundle) => bundle.entry?.map((e) => `${e.resource!.resourceType}/${e.resource!.id}`) ?? [];
  const found = async (token: string, path: string) => ids((await call(token, path)).body as Bundle);
  const members = async (token: string) => (await found(token, 'Patient?_count=200')).sort();
  /** A refusal answered as a missing id is: 404 with the same issue code. */
  const missing = async (token: string, path: string) => {
    const [asked, absent] = [await call(token, path), await call(token, `${path.split('/')[0]}/no-such-id`)];
    expect(asked.status, path).toBe(404);
    expect((asked.body as OperationOutcome).issue[0].code, path).toBe((absent.body as OperationOutcome).issue[0].code);
  };

  beforeAll(async () => {
    server = await startDemoServer(store);
  });
  afterAll(async () => {
    await server?.close();
    await driver.cleanup(store);
  });

  it('R11: a UM clinician sees their own plan\'s members and their records, and another plan\'s are missing ids that no search, include, chain, _has or history shows', async () => {
    const phcUm = user('Practitioner/phc-um-1', 'um-clinician');
    expect(await members(phcUm)).toEqual(['Patient/member-phc-1', 'Patient/member-phc-2']);
    expect((await call(phcUm, 'Condition/condition-member-phc-1')).status).toBe(200);
    await missing(phcUm, 'Patient/member-hpsj-1');
    await missing(phcUm, 'Condition/condition-member-hpsj-1');
    await missing(phcUm, 'Patient/member-hpsj-1/_history');
    expect(await found(phcUm, 'Condition?patient=Patient/member-hpsj-1')).toEqual([]);
    expect(await found(phcUm, 'Coverage?_count=200')).toEqual(expect.arrayContaining(['Coverage/coverage-member-phc-1']));
    expect(await found(phcUm, 'Coverage?_count=200')).not.toContain('Coverage/coverage-member-hpsj-1');
    // What links to another plan's member does not tell of them either.
    expect(await found(phcUm, 'Condition?patient.family=Garcia')).toEqual([]);
    expect(await found(phcUm, 'Patient?_has:Condition:patient:code=49436004')).toEqual([]);
    expect(await found(phcUm, 'CareTeam?_id=careteam-member-hpsj-1&_include=CareTeam:subject')).toEqual([]);
    expect(await found(phcUm, 'PractitionerRole?_id=role-hpsj-pcp-1&_revinclude=Patient:general-practitioner')).toEqual(['PractitionerRole/role-hpsj-pcp-1']);
    expect(await found(phcUm, 'Patient?_id=member-phc-1&_revinclude=Condition:patient')).toEqual(['Patient/member-phc-1', 'Condition/condition-member-phc-1']);
    const history = await found(phcUm, 'Patient/_history?_count=1000');
    expect(history).toContain('Patient/member-phc-1');
    expect(history).not.toContain('Patient/member-hpsj-1');
    // The directory is not a member's record: every user reads it.
    expect((await call(phcUm, 'PractitionerRole/role-hpsj-pcp-1')).status).toBe(200);
  });

  it('R1: a treating provider sees the patients they are PCP to and on the care team of, through their PractitionerRoles, and the patient their EHR launched them with; no one else', async () => {
    const pcp = user('Practitioner/hpsj-pcp-1', 'treating-provider');
    const seen = await members(pcp);
    expect(seen).toContain('Patient/member-hpsj-1');
    expect(seen.every((p) => p.startsWith('Patient/member-hpsj-') || p.startsWith('Patient/hpsj-'))).toBe(true);
    await missing(pcp, 'Patient/member-phc-1');
    // On the member's care team as their specialist, not their PCP.
    const specialist = user('Practitioner/hpsj-card-1', 'treating-provider');
    expect(await members(specialist)).toContain('Patient/member-hpsj-1');
    // The EHR's launch context vouches for a patient the directory links them to in no other way.
    const launched = user('Practitioner/hpsj-pcp-1', 'treating-provider', 'launch user/*.rs', 'member-phc-2');
    expect((await call(launched, 'Patient/member-phc-2')).status).toBe(200);
    expect(await found(launched, 'Condition?patient=Patient/member-phc-2')).toEqual(['Condition/condition-member-phc-2']);
    await missing(launched, 'Patient/member-phc-1');
    // No relationship, no members; a user in no clinical or staff role sees the launch patient alone.
    expect(await members(user('Practitioner/oon-neuro-2', 'second-opinion-provider'))).toEqual([]);
    expect(await members(tokenFor(server, { scope: 'launch user/*.rs', fhirUser: 'Practitioner/hpsj-pcp-1', roles: [], patient: 'member-phc-2' }))).toEqual(['Patient/member-phc-2']);
  });

  it('R14: the second-opinion professional a request names sees that member once it is submitted, with the case', async () => {
    const consultant = user('Practitioner/oon-neuro-1', 'second-opinion-provider');
    await missing(consultant, 'Patient/member-bsp-2');
    const sr: ServiceRequest = {
      resourceType: 'ServiceRequest',
      identifier: [{ system: IDENTIFIER_SYSTEMS.secondOpinionRequest, value: `member-access-${Math.random()}` }],
      status: 'draft',
      intent: 'order',
      subject: { reference: 'Patient/member-bsp-2' },
      requester: { reference: 'PractitionerRole/role-bsp-pcp-3' },
      insurance: [{ reference: 'Coverage/coverage-member-bsp-2' }],
      reasonCode: [{ coding: [{ system: CODE_SYSTEMS.reason, code: 'unclear-diagnosis' }] }],
      performerType: { coding: [{ system: CODE_SYSTEMS.nucc, code: '2084N0400X' }] },
      performer: [{ reference: 'PractitionerRole/role-oon-neuro-1' }],
    };
    const submitted = await call(user('Practitioner/bsp-pcp-3', 'treating-provider', 'user/*.cruds'), 'ServiceRequest/$submit', { json: { resourceType: 'Bundle', type: 'collection', entry: [{ resource: sr }] } });
    expect(submitted.status, JSON.stringify(submitted.body)).toBe(201);
    const task = (submitted.body as Bundle).entry!.find((e) => e.resource?.resourceType === 'Task')!.resource!;
    expect((await call(consultant, 'Patient/member-bsp-2')).status).toBe(200);
    expect(await found(consultant, `Task?patient=Patient/member-bsp-2&_id=${task.id}`)).toEqual([`Task/${task.id}`]);
    // Another plan's staff still do not see it, nor learn from an operation on it that it exists.
    const otherPlanUm = user('Practitioner/hpsj-um-1', 'um-clinician', 'user/*.cruds');
    await missing(otherPlanUm, `Task/${task.id}`);
    const approve = await call(otherPlanUm, `Task/${task.id}/$approve`, { json: { resourceType: 'Parameters', parameter: [{ name: 'authorizedPractitionerRole', valueReference: { reference: 'PractitionerRole/role-oon-neuro-1' } }] } });
    const unknown = await call(otherPlanUm, 'Task/no-such-id/$approve', { json: { resourceType: 'Parameters', parameter: [{ name: 'authorizedPractitionerRole', valueReference: { reference: 'PractitionerRole/role-oon-neuro-1' } }] } });
    expect([approve.status, (approve.body as OperationOutcome).issue[0].code]).toEqual([unknown.status, (unknown.body as OperationOutcome).issue[0].code]);
    expect(approve.status).toBe(404);
  });

  it('a user writes only about patients they may see: a create or update about another is 403, a DELETE is answered as for a missing id and deletes nothing', async () => {
    const pcp = user('Practitioner/hpsj-pcp-1', 'treating-provider', 'user/*.cruds');
    const condition = (patient: string): Condition => ({
      resourceType: 'Condition',
      subject: { reference: `Patient/${patient}` },
      code: { coding: [{ system: 'http://snomed.info/sct', code: '38341003', display: 'Hypertension' }] },
    });
    expect((await call(pcp, 'Condition', { json: condition('member-hpsj-1') })).status).toBe(201);
    expect((await call(pcp, 'Condition', { json: condition('member-phc-1') })).status).toBe(403);
    // Moving one of their patients' records to another member is a write about that member.
    const own = (await call(admin(), 'Condition/condition-member-hpsj-1')).body as Condition;
    expect((await call(pcp, 'Condition/condition-member-hpsj-1', { method: 'PUT', json: { ...own, subject: { reference: 'Patient/member-phc-1' } } })).status).toBe(403);
    const other = (await call(admin(), 'Condition/condition-member-phc-1')).body as Condition;
    expect((await call(pcp, 'Condition/condition-member-phc-1', { method: 'PUT', json: other })).status).toBe(403);
    // A new member is the plan's to enrol, not a provider's to create.
    expect((await call(pcp, 'Patient', { json: { resourceType: 'Patient', name: [{ family: 'New' }] } })).status).toBe(403);
    expect((await call(pcp, 'Condition/condition-member-phc-1', { method: 'DELETE' })).status).toBe(204);
    expect((await call(admin(), 'Condition/condition-member-phc-1')).status).toBe(200);
    // A conditional write runs its criteria over what the user may see: it finds nothing of another plan's member.
    const conditional = await raw(`${server.fhirBase}/Condition?_id=condition-member-phc-1`, { method: 'DELETE', headers: { authorization: `Bearer ${pcp}` } });
    expect(conditional.status).toBe(204);
    expect((await call(admin(), 'Condition/condition-member-phc-1')).status).toBe(200);
  });

  it('plan administration, auditors and the plan\'s backend systems see every member, an IPA\'s system its group\'s (R18); a relationship that ends ends what the user sees', async () => {
    const all = await members(admin());
    for (const token of [user('Practitioner/auditor-1', 'auditor'), tokenFor(server, { clientId: 'plan-warehouse', scope: 'system/*.rs', roles: [] })]) expect(await members(token)).toEqual(all);
    expect(all).toEqual(expect.arrayContaining(['Patient/member-hpsj-1', 'Patient/member-phc-1', 'Patient/member-bsp-1', 'Patient/member-ant-1']));
    const ipa = tokenFor(server, { clientId: 'demo-backend', scope: 'system/*.rs', roles: ['delegated-group'], organization: 'bsp-ipa-a' });
    expect(await members(ipa)).toEqual(['Patient/member-bsp-1']);
    await missing(ipa, 'Condition/condition-member-bsp-2');
    // The specialist leaves the member's care team.
    const specialist = user('Practitioner/phc-onc-1', 'treating-provider');
    expect(await members(specialist)).toContain('Patient/member-phc-1');
    const team = (await call(admin(), 'CareTeam/careteam-member-phc-1')).body as CareTeam;
    const left = { ...team, participant: team.participant!.filter((p) => p.member?.reference !== 'PractitionerRole/role-phc-onc-1') };
    expect((await call(admin(), 'CareTeam/careteam-member-phc-1', { method: 'PUT', json: left })).status).toBe(200);
    expect(await members(specialist)).not.toContain('Patient/member-phc-1');
    await missing(specialist, 'Condition/condition-member-phc-1');
  });
});
