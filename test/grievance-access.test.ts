import type { Bundle, DocumentReference, OperationOutcome, Parameters, PractitionerRole, ServiceRequest, Task } from 'fhir/r4.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { UserRole } from '../server/src/fhir/request.js';
import { CODE_SYSTEMS, IDENTIFIER_SYSTEMS } from '../server/src/fhir/systems.js';
import { type DemoServer, startDemoServer } from './helpers/demoServer.js';
import { raw } from './helpers/fhir.js';
import { STORE_DRIVERS } from './helpers/stores.js';
import { tokenFor } from './helpers/tokens.js';

/**
 * R17: who sees a member's grievance. It may be about their provider or their plan's decision: the plan that owns it,
 * the member, whoever filed it, plan administration and auditors see it; to anyone else it does not exist.
 */
describe.each(STORE_DRIVERS)('R17 grievance visibility on $name', (driver) => {
  let server: DemoServer;
  const store = driver.config();
  let aboutNoCase: Task;
  let aboutCase: Task;
  let serviceRequest: ServiceRequest;
  let caseTask: Task;

  const user = (fhirUser: string, role: UserRole, scope = 'user/*.rs') => tokenFor(server, { scope, fhirUser, roles: [role] });
  const member = (id: string) => tokenFor(server, { scope: 'launch/patient patient/*.rs patient/Task.c', patient: id, fhirUser: `Patient/${id}`, roles: ['member'] });
  const call = (token: string, path: string, json?: unknown) => raw(`${server.fhirBase}/${path}`, { method: json === undefined ? 'GET' : 'POST', headers: { authorization: `Bearer ${token}` }, json });
  const file = async (token: string, patient: string, extra: Parameters['parameter'] = []) => {
    const body: Parameters = { resourceType: 'Parameters', parameter: [{ name: 'patient', valueReference: { reference: `Patient/${patient}` } }, { name: 'category', valueCode: 'pcp-not-granted' }, { name: 'description', valueString: 'My doctor would not send my request.' }, ...(extra ?? [])] };
    const res = await call(token, 'Task/$file-grievance', body);
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return res.body as Task;
  };
  const ids = (bundle: Bundle) => bundle.entry?.map((e) => `${e.resource!.resourceType}/${e.resource!.id}`) ?? [];

  beforeAll(async () => {
    server = await startDemoServer(store);
    const pcp = user('Practitioner/phc-pcp-1', 'treating-provider', 'user/*.cruds');
    const sr: ServiceRequest = {
      resourceType: 'ServiceRequest',
      identifier: [{ system: IDENTIFIER_SYSTEMS.secondOpinionRequest, value: `visibility-${Math.random()}` }],
      status: 'draft',
      intent: 'order',
      subject: { reference: 'Patient/member-phc-1' },
      requester: { reference: 'PractitionerRole/role-phc-pcp-1' },
      insurance: [{ reference: 'Coverage/coverage-member-phc-1' }],
      reasonCode: [{ coding: [{ system: CODE_SYSTEMS.reason, code: 'unclear-diagnosis' }] }],
      performerType: { coding: [{ system: CODE_SYSTEMS.nucc, code: '2084N0400X' }] },
      performer: [{ reference: 'PractitionerRole/role-oon-neuro-1' }],
    };
    const submitted = await call(pcp, 'ServiceRequest/$submit', { resourceType: 'Bundle', type: 'collection', entry: [{ resource: sr }] });
    expect(submitted.status, JSON.stringify(submitted.body)).toBe(201);
    serviceRequest = submitted.body.entry[0].resource as ServiceRequest;
    caseTask = submitted.body.entry[3].resource as Task;
    aboutNoCase = await file(user('Practitioner/phc-pcp-1', 'treating-provider', 'user/*.rs user/Task.c'), 'member-phc-1');
    aboutCase = await file(member('member-phc-1'), 'member-phc-1', [{ name: 'case', valueReference: { reference: `ServiceRequest/${serviceRequest.id}` } }]);
  });
  afterAll(async () => {
    await server?.close();
    await driver.cleanup(store);
  });

  it('R17: the owning plan\'s staff, the member, whoever filed it, plan administration, auditors and the plan\'s own systems read and find a grievance', async () => {
    const readers: [string, string, Task][] = [
      ['the owning plan\'s Grievance Coordinator', user('Practitioner/phc-gc-1', 'grievance-coordinator'), aboutNoCase],
      ['the owning plan\'s UM clinician', user('Practitioner/phc-um-1', 'um-clinician'), aboutNoCase],
      ['the owning plan\'s medical director', user('Practitioner/phc-md-1', 'medical-director'), aboutCase],
      ['the member it is for', member('member-phc-1'), aboutNoCase],
      ['the provider who filed it', user('Practitioner/phc-pcp-1', 'treating-provider'), aboutNoCase],
      ['plan administration', user('Practitioner/hpsj-md-1', 'plan-admin'), aboutCase],
      ['an auditor', user('Practitioner/auditor-1', 'auditor'), aboutCase],
      ['the plan\'s own backend system', tokenFor(server, { clientId: 'plan-warehouse', scope: 'system/*.rs', roles: [] }), aboutCase],
    ];
    for (const [who, token, grievance] of readers) {
      expect((await call(token, `Task/${grievance.id}`)).status, who).toBe(200);
      const found = (await call(token, `Task?code=second-opinion-grievance&_id=${grievance.id}`)).body as Bundle;
      expect(ids(found), who).toEqual([`Task/${grievance.id}`]);
    }
    for (const token of [readers[0][1], readers[4][1]]) {
      const provenances = (await call(token, `Provenance?target=Task/${aboutNoCase.id}`)).body as Bundle;
      expect(provenances.entry?.length).toBe(1);
      expect((await call(token, ids(provenances)[0])).status).toBe(200);
    }
  });

  it('R17: to another plan\'s staff, a provider who did not file it, a delegated group\'s system and another member, a grievance is a missing id, and no search, include or history shows it', async () => {
    // Whether each may see the member's case at all: another plan's staff and a provider with no care relationship may not.
    const others: [string, string, boolean][] = [
      ['another plan\'s Grievance Coordinator', user('Practitioner/hpsj-gc-1', 'grievance-coordinator'), false],
      ['another plan\'s UM clinician', user('Practitioner/hpsj-um-1', 'um-clinician'), false],
      ['a provider who did not file it and does not treat the member', user('Practitioner/hpsj-pcp-1', 'treating-provider'), false],
      ['the second-opinion professional the case names, who did not file it', user('Practitioner/oon-neuro-1', 'second-opinion-provider'), true],
      ['another plan\'s delegated group\'s system', tokenFor(server, { clientId: 'demo-backend', scope: 'system/*.rs', roles: ['delegated-group'], organization: 'bsp-ipa-a' }), false],
      ['the member\'s own group\'s system', tokenFor(server, { clientId: 'phc-ipa-a-system', scope: 'system/*.rs', roles: ['delegated-group'], organization: 'phc-ipa-a' }), true],
    ];
    for (const [who, token, seesMember] of others) {
      for (const grievance of [aboutNoCase, aboutCase]) {
        const read = await call(token, `Task/${grievance.id}`);
        const missing = await call(token, 'Task/no-such-grievance');
        expect(read.status, who).toBe(404);
        expect((read.body as OperationOutcome).issue[0].code, who).toBe((missing.body as OperationOutcome).issue[0].code);
        expect((await call(token, `Task/${grievance.id}/_history`)).status, who).toBe(404);
        const searched = (await call(token, `Task?code=second-opinion-grievance&_id=${grievance.id}&_total=accurate`)).body as Bundle;
        expect(searched.total, who).toBe(0);
        // Its Provenance names who filed it: kept to its parties too.
        expect(ids((await call(token, `Provenance?target=Task/${grievance.id}`)).body as Bundle), who).toEqual([]);
      }
      // Whoever may see the case reads it as before; only the grievance about it is left out of an include and of the history.
      const included = (await call(token, `ServiceRequest?_id=${serviceRequest.id}&_revinclude=Task:focus`)).body as Bundle;
      if (seesMember) expect(ids(included), who).toContain(`Task/${caseTask.id}`);
      else expect(ids(included), who).toEqual([]);
      expect(ids(included), who).not.toContain(`Task/${aboutCase.id}`);
      const history = (await call(token, `Task/_history?_count=1000`)).body as Bundle;
      expect(ids(history), who).not.toContain(`Task/${aboutCase.id}`);
      // Nor does a search through it: `_has` and a chain would tell that a grievance exists.
      const grieved = (await call(token, `ServiceRequest?_id=${serviceRequest.id}&_has:Task:focus:code=second-opinion-grievance`)).body as Bundle;
      expect(ids(grieved), who).toEqual([]);
      const filedBy = (await call(token, `Provenance?target:Task.code=second-opinion-grievance&_total=accurate`)).body as Bundle;
      expect(filedBy.total, who).toBe(0);
    }
    // The audit log names who filed and resolved which grievance: not a delegated group's to read.
    const delegated = tokenFor(server, { clientId: 'demo-backend', scope: 'system/*.rs', roles: ['delegated-group'], organization: 'bsp-ipa-a' });
    expect((await call(delegated, 'AuditEvent?_count=1')).status).toBe(403);
    expect((await call(tokenFor(server, { clientId: 'plan-warehouse', scope: 'system/*.rs', roles: [] }), 'AuditEvent?_count=1')).status).toBe(200);
    // Another member: their compartment never held it.
    const otherMember = member('member-phc-2');
    expect((await call(otherMember, `Task/${aboutNoCase.id}`)).status).toBe(404);
    expect(ids((await call(otherMember, 'Task?code=second-opinion-grievance')).body as Bundle)).toEqual([]);
  });

  it('R17: a grievance\'s letters (they quote the member) are read by its parties only: the plan, the member, the provider who filed; to others they are missing ids, and searches leave them out', async () => {
    const coordinator = user('Practitioner/phc-gc-1', 'grievance-coordinator', 'user/*.rs user/Task.cu');
    for (const grievance of [aboutNoCase, aboutCase]) {
      const acknowledged = await call(coordinator, `Task/${grievance.id}/$acknowledge-grievance`, { resourceType: 'Parameters' });
      expect(acknowledged.status, JSON.stringify(acknowledged.body)).toBe(200);
    }
    const lettersOf = async (token: string, grievance: Task) => [
      ...ids((await call(token, `DocumentReference?related=Task/${grievance.id}`)).body as Bundle),
      ...ids((await call(token, `Communication?based-on=Task/${grievance.id}`)).body as Bundle),
    ];
    const all = await lettersOf(coordinator, aboutNoCase);
    // The member's letter and the provider copy, each sent once.
    expect(all).toHaveLength(4);
    for (const [who, token] of [['the member', member('member-phc-1')], ['the provider who filed', user('Practitioner/phc-pcp-1', 'treating-provider')], ['an auditor', user('Practitioner/auditor-1', 'auditor')]]) {
      const seen = await lettersOf(token, aboutNoCase);
      expect(seen.length, who).toBeGreaterThan(0);
      for (const id of seen) expect((await call(token, id)).status, `${who} ${id}`).toBe(200);
    }
    // A provider who filed the other grievance is no party to this one's letters.
    expect(await lettersOf(user('Practitioner/phc-pcp-1', 'treating-provider'), aboutCase)).toEqual([]);
    const mine = await call(user('Practitioner/phc-pcp-1', 'treating-provider', 'user/*.cruds'), 'DocumentReference', {
      resourceType: 'DocumentReference',
      status: 'current',
      subject: { reference: 'Patient/member-phc-1' },
      content: [{ attachment: { contentType: 'text/plain', data: Buffer.from('Referral note').toString('base64') } }],
    });
    expect(mine.status, JSON.stringify(mine.body)).toBe(201);
    // A party may not write one by hand: a PUT or PATCH without its tags would show it to everyone.
    const filer = user('Practitioner/phc-pcp-1', 'treating-provider', 'user/*.cruds');
    const letterId = all.find((id) => id.startsWith('DocumentReference/'))!;
    const letter = (await call(filer, letterId)).body as DocumentReference;
    const put = await raw(`${server.fhirBase}/${letterId}`, { method: 'PUT', headers: { authorization: `Bearer ${filer}` }, json: { ...letter, meta: undefined } });
    expect(put.status).toBe(403);
    const patch = await raw(`${server.fhirBase}/${letterId}`, { method: 'PATCH', headers: { authorization: `Bearer ${filer}`, 'content-type': 'application/json-patch+json' }, body: JSON.stringify([{ op: 'remove', path: '/meta/tag' }]) });
    expect(patch.status).toBe(403);
    expect((await raw(`${server.fhirBase}/${letterId}`, { method: 'DELETE', headers: { authorization: `Bearer ${filer}` } })).status).toBe(403);
    // Plan administration may delete one; the deletion shows in history only to who could see the letter.
    const admin = user('Practitioner/hpsj-md-1', 'plan-admin', 'user/*.cruds');
    expect((await raw(`${server.fhirBase}/${letterId}`, { method: 'DELETE', headers: { authorization: `Bearer ${admin}` } })).status).toBe(204);
    const deletionsSeen = async (token: string) =>
      (((await call(token, 'DocumentReference/_history?_count=1000')).body as Bundle).entry ?? []).filter((e) => e.request?.method === 'DELETE' && e.request.url?.endsWith(letterId));
    expect(await deletionsSeen(coordinator)).toHaveLength(1);
    for (const [who, token, seesMember] of [
      ['another plan\'s Grievance Coordinator', user('Practitioner/hpsj-gc-1', 'grievance-coordinator'), false],
      ['a provider who did not file and does not treat the member', user('Practitioner/hpsj-pcp-1', 'treating-provider'), false],
      ['the second-opinion professional the case names', user('Practitioner/oon-neuro-1', 'second-opinion-provider'), true],
    ] as const) {
      expect(await deletionsSeen(token), who).toEqual([]);
      expect(await lettersOf(token, aboutNoCase), who).toEqual([]);
      for (const id of all) expect((await call(token, id)).status, `${who} ${id}`).toBe(404);
      // Other documents about the member are read by who may see the member, as before.
      expect(ids((await call(token, 'DocumentReference?patient=Patient/member-phc-1')).body as Bundle), who).toEqual(seesMember ? [`DocumentReference/${mine.body.id}`] : []);
    }
  });

  it('R17: a coordinator who also holds many clinical roles is still known as their plan\'s staff', async () => {
    // More PractitionerRoles than one directory page holds, none of them a staff role, written after the staff role.
    for (let i = 0; i < 60; i++) {
      await server.store.create({
        resourceType: 'PractitionerRole',
        active: true,
        practitioner: { reference: 'Practitioner/phc-gc-1' },
        organization: { reference: 'Organization/phc-ipa-a' },
        code: [{ coding: [{ system: CODE_SYSTEMS.userRole, code: 'treating-provider' }] }],
      } as PractitionerRole);
    }
    const coordinator = user('Practitioner/phc-gc-1', 'grievance-coordinator');
    expect((await call(coordinator, `Task/${aboutNoCase.id}`)).status).toBe(200);
  });

  it('R17: a search for every Task by the case\'s second-opinion professional leaves grievances out and keeps the case Tasks, with a total that agrees', async () => {
    const token = user('Practitioner/oon-neuro-1', 'second-opinion-provider');
    const all = (await call(token, 'Task?patient=Patient/member-phc-1&_count=1000&_total=accurate')).body as Bundle;
    expect(ids(all)).toContain(`Task/${caseTask.id}`);
    expect(ids(all)).not.toContain(`Task/${aboutCase.id}`);
    expect(ids(all)).not.toContain(`Task/${aboutNoCase.id}`);
    expect(all.total).toBe(all.entry?.length);
    const own = (await call(user('Practitioner/phc-um-1', 'um-clinician'), 'Task?patient=Patient/member-phc-1&_count=1000&_total=accurate')).body as Bundle;
    expect(own.total).toBe((all.total ?? 0) + 2);
  });
});
