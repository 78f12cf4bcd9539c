import type { Bundle, Communication, DocumentReference, Parameters, ParametersParameter, Provenance, ServiceRequest, StructureDefinition, Task } from 'fhir/r4.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readConformanceResources } from '../server/src/fhir/conformance.js';
import { createResourceValidator } from '../server/src/fhir/resourceValidator.js';
import { localDateTime } from '../server/src/domain/clock.js';
import { planById } from '../server/src/domain/plans.js';
import { CODE_SYSTEMS, IDENTIFIER_SYSTEMS, PROFILES } from '../server/src/fhir/systems.js';
import { namePerformersOfEarlierGrievances } from '../server/src/workflow/grievance.js';
import { type DemoServer, startDemoServer } from './helpers/demoServer.js';
import { raw } from './helpers/fhir.js';
import { STORE_DRIVERS } from './helpers/stores.js';
import { tokenFor } from './helpers/tokens.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/** R17 (PHC VI.E): a member's grievance about a second opinion, filed, acknowledged and resolved over HTTP with real tokens. */
describe.each(STORE_DRIVERS)('R17 grievances on $name', (driver) => {
  let server: DemoServer;
  const store = driver.config();
  beforeAll(async () => {
    server = await startDemoServer(store);
  });
  afterAll(async () => {
    await server?.close();
    await driver.cleanup(store);
  });

  const member = (id: string) => tokenFor(server, { scope: 'launch/patient patient/*.rs patient/Task.c', patient: id, fhirUser: `Patient/${id}`, roles: ['member'] });
  const staff = (fhirUser: string, role: 'grievance-coordinator' | 'um-clinician' | 'treating-provider' | 'medical-director') => tokenFor(server, { scope: 'user/*.rs user/Task.cu', fhirUser, roles: [role] });
  const coordinator = () => staff('Practitioner/phc-gc-1', 'grievance-coordinator');
  const call = (token: string, path: string, json?: unknown, method = json === undefined ? 'GET' : 'POST') =>
    raw(`${server.fhirBase}/${path}`, { method, headers: { authorization: `Bearer ${token}` }, json });
  const params = (parameter: ParametersParameter[]): Parameters => ({ resourceType: 'Parameters', parameter });
  const filing = (extra: ParametersParameter[] = [], category = 'pcp-not-granted') =>
    params([{ name: 'category', valueCode: category }, { name: 'description', valueString: 'My doctor would not send my request for a second opinion.' }, ...extra]);
  const file = (token: string, body: Parameters) => call(token, 'Task/$file-grievance', body);
  const step = (t: Task) => t.businessStatus?.coding?.[0]?.code;
  const letterOf = async (task: Task, label: string) => {
    const ref = task.output?.find((o) => o.type.text === label)?.valueReference?.reference;
    const doc = (await call(coordinator(), ref!)).body as DocumentReference;
    return Buffer.from(doc.content[0].attachment.data!, 'base64').toString();
  };
  const grievancesOf = async (patient: string) => ((await call(coordinator(), `Task?code=second-opinion-grievance&patient=${patient}&_count=100`)).body as Bundle).entry?.length ?? 0;

  /** A PHC case in UM review: member-phc-1's PCP asks for an out-of-network neurologist. */
  async function phcCase(patient = 'member-phc-1'): Promise<{ serviceRequest: ServiceRequest; task: Task }> {
    const sr: ServiceRequest = {
      resourceType: 'ServiceRequest',
      identifier: [{ system: IDENTIFIER_SYSTEMS.secondOpinionRequest, value: `grievance-${Math.random()}` }],
      status: 'draft',
      intent: 'order',
      subject: { reference: `Patient/${patient}` },
      requester: { reference: 'PractitionerRole/role-phc-pcp-1' },
      insurance: [{ reference: `Coverage/coverage-${patient}` }],
      reasonCode: [{ coding: [{ system: CODE_SYSTEMS.reason, code: 'unclear-diagnosis' }] }],
      performerType: { coding: [{ system: CODE_SYSTEMS.nucc, code: '2084N0400X' }] },
      performer: [{ reference: 'PractitionerRole/role-oon-neuro-1' }],
    };
    const pcp = tokenFor(server, { scope: 'user/*.cruds', fhirUser: 'Practitioner/phc-pcp-1', roles: ['treating-provider'] });
    const res = await call(pcp, 'ServiceRequest/$submit', { resourceType: 'Bundle', type: 'collection', entry: [{ resource: sr }] });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return { serviceRequest: res.body.entry[0].resource, task: res.body.entry[3].resource };
  }

  it('R17 PHC VI.E: a member files a grievance about their own case: a grievance Task for them, about the request, owned by the plan, with its dues and a Provenance', async () => {
    const { serviceRequest } = await phcCase();
    const res = await file(member('member-phc-1'), filing([{ name: 'case', valueReference: { reference: `ServiceRequest/${serviceRequest.id}` } }]));
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    const task = res.body as Task;
    expect(res.headers.get('location')).toContain(`/Task/${task.id}/_history/1`);
    expect(task.meta?.profile).toEqual([PROFILES.grievance]);
    // What is stored holds to the profile it claims (and so do its letters, once sent: see below).
    const validator = createResourceValidator(readConformanceResources().filter((r): r is StructureDefinition => r.resourceType === 'StructureDefinition'));
    expect(validator.validate(task).filter((i) => i.severity === 'error')).toEqual([]);
    expect(task).toMatchObject({ status: 'requested', priority: 'routine', for: { reference: 'Patient/member-phc-1' }, focus: { reference: `ServiceRequest/${serviceRequest.id}` }, requester: { reference: 'Patient/member-phc-1' }, owner: { reference: 'Organization/phc' } });
    expect(step(task)).toBe('received');
    expect(task.reasonCode?.coding?.[0]).toMatchObject({ system: CODE_SYSTEMS.grievanceCategory, code: 'pcp-not-granted' });
    expect(task.note?.[0].text).toBe('My doctor would not send my request for a second opinion.');
    // H&S 1368.01(a): resolved within 30 days; 28 CCR 1300.68(d)(1): acknowledged within 5.
    const received = Date.parse(task.authoredOn!);
    expect(Date.parse(task.restriction!.period!.end!) - received).toBeGreaterThanOrEqual(30 * DAY - HOUR);
    expect(Date.parse(task.restriction!.period!.end!) - received).toBeLessThanOrEqual(30 * DAY + HOUR);
    const ackDue = task.input?.find((i) => i.type.text === 'acknowledgment-due')?.valueDateTime;
    expect(Math.abs(Date.parse(ackDue!) - received - 5 * DAY)).toBeLessThanOrEqual(HOUR);
    const provenance = (await call(coordinator(), `Provenance?target=Task/${task.id}`)).body as Bundle;
    expect((provenance.entry?.[0]?.resource as Provenance).agent[0].who).toEqual({ reference: 'Patient/member-phc-1' });
    // The member reads it back; it is not theirs to rewrite (it changes through its operations only).
    expect((await call(member('member-phc-1'), `Task/${task.id}`)).status).toBe(200);
    const rewritten = await call(coordinator(), `Task/${task.id}`, { ...task, status: 'completed' }, 'PUT');
    expect(rewritten.status).toBe(403);
  });

  it('R17 PHC VI.E: a case named by its Task is the request it tracks; a PCP who never submitted leaves no case; an imminent threat is due in 72 hours (H&S 1368.01(b))', async () => {
    const { serviceRequest, task: caseTask } = await phcCase();
    const byTask = await file(member('member-phc-1'), filing([{ name: 'case', valueReference: { reference: `Task/${caseTask.id}` } }], 'deadline-missed'));
    expect(byTask.status, JSON.stringify(byTask.body)).toBe(201);
    expect(byTask.body.focus).toEqual({ reference: `ServiceRequest/${serviceRequest.id}` });
    const none = await file(member('member-phc-1'), filing([{ name: 'expedited', valueBoolean: true }]));
    expect(none.status, JSON.stringify(none.body)).toBe(201);
    const task = none.body as Task;
    expect(task.focus).toBeUndefined();
    expect(task.owner?.reference).toBe('Organization/phc');
    expect(task.priority).toBe('urgent');
    expect(Date.parse(task.restriction!.period!.end!) - Date.parse(task.authoredOn!)).toBe(72 * HOUR);
    expect(task.input?.find((i) => i.type.text === 'acknowledgment-due')?.valueDateTime).toBe(task.restriction!.period!.end);
  });

  it('R17 H&S 1368.01(b): an urgent grievance sends the member at once, with the grievance, the right to notify the DMHC now and its 72-hour due time; a routine one sends nothing at filing', async () => {
    const sentFor = async (task: Task) => (((await call(coordinator(), `Communication?based-on=Task/${task.id}`)).body as Bundle).entry ?? []).map((e) => e.resource as Communication);
    const urgent = await file(member('member-phc-1'), filing([{ name: 'expedited', valueBoolean: true }]));
    expect(urgent.status, JSON.stringify(urgent.body)).toBe(201);
    const task = urgent.body as Task;
    const sent = await sentFor(task);
    expect(sent.map((c) => [c.recipient?.[0]?.reference, c.category?.[0]?.text, c.sent])).toEqual([['Patient/member-phc-1', 'grievance-urgent', task.authoredOn]]);
    const html = await letterOf(task, 'urgent-notice');
    const due = localDateTime(planById('phc')!, new Date(task.restriction!.period!.end!));
    expect(html).toContain(`by ${due}, within 72 hours`);
    expect(html).toMatch(/right to tell the California Department of Managed Health Care \(DMHC\) about your grievance right away/);
    expect(html).toContain('The California Department of Managed Health Care is responsible for regulating health care service plans.');
    expect(html).toContain('<strong>1-888-466-2219</strong>');
    // A provider files urgently for a Spanish-speaking member: the member's notice in Spanish, the provider a copy.
    const byPcp = await file(staff('Practitioner/phc-pcp-3', 'treating-provider'), filing([{ name: 'patient', valueReference: { reference: 'Patient/member-phc-2' } }, { name: 'expedited', valueBoolean: true }]));
    expect(byPcp.status, JSON.stringify(byPcp.body)).toBe(201);
    const forPatient = byPcp.body as Task;
    expect((await sentFor(forPatient)).map((c) => c.recipient?.[0]?.reference).sort()).toEqual(['Patient/member-phc-2', 'Practitioner/phc-pcp-3']);
    const letters = (await call(coordinator(), `DocumentReference?related=Task/${forPatient.id}`)).body as Bundle;
    expect(letters.entry?.map((e) => (e.resource as DocumentReference).description).sort()).toEqual(['Copia: la queja urgente presentada por su paciente', 'Su queja urgente: puede comunicarse con el DMHC ahora']);
    expect(await letterOf(forPatient, 'urgent-notice')).toMatch(/Departamento de Atención Médica Administrada de California \(DMHC\).*El Departamento de Atención Médica Administrada de California es responsable/s);
    // Not urgent: the acknowledgment (within 5 days) is the first letter.
    const routine = (await file(member('member-phc-1'), filing())).body as Task;
    expect(await sentFor(routine)).toEqual([]);
    expect(routine.output).toBeUndefined();
  });

  it('R17: a treating provider files for the member; a UM clinician may not file; nobody files about another member’s case or for another member', async () => {
    const provider = await file(staff('Practitioner/phc-pcp-1', 'treating-provider'), filing([{ name: 'patient', valueReference: { reference: 'Patient/member-phc-1' } }]));
    expect(provider.status, JSON.stringify(provider.body)).toBe(201);
    expect(provider.body.requester).toEqual({ reference: 'Practitioner/phc-pcp-1' });
    const um = await file(staff('Practitioner/phc-um-1', 'um-clinician'), filing([{ name: 'patient', valueReference: { reference: 'Patient/member-phc-1' } }]));
    expect(um.status).toBe(403);
    // 28 CCR 1300.68(a): the plan's coordinator takes a grievance by phone: it is the member's own; another plan's may not.
    const byPhone = await file(coordinator(), filing([{ name: 'patient', valueReference: { reference: 'Patient/member-phc-1' } }]));
    expect(byPhone.status, JSON.stringify(byPhone.body)).toBe(201);
    expect(byPhone.body.requester).toEqual({ reference: 'Patient/member-phc-1' });
    const otherPlan = await file(staff('Practitioner/hpsj-gc-1', 'grievance-coordinator'), filing([{ name: 'patient', valueReference: { reference: 'Patient/member-phc-1' } }]));
    expect(otherPlan.status).toBe(403);
    const { serviceRequest } = await phcCase('member-phc-2');
    const before = await grievancesOf('member-phc-2');
    const othersCase = await file(member('member-phc-1'), filing([{ name: 'case', valueReference: { reference: `ServiceRequest/${serviceRequest.id}` } }]));
    // Another member's case, or another member: answered as ids that do not exist (no 403 to tell which do).
    expect(othersCase.status).toBe(404);
    expect(othersCase.body.resourceType).toBe('OperationOutcome');
    const forOther = await file(member('member-phc-1'), filing([{ name: 'patient', valueReference: { reference: 'Patient/member-phc-2' } }]));
    const nobody = await file(member('member-phc-1'), filing([{ name: 'patient', valueReference: { reference: 'Patient/no-such-member' } }]));
    expect([forOther.status, nobody.status]).toEqual([404, 404]);
    // 28 CCR 1300.68(a): a provider files for a member they treat, not for anyone the token can read.
    const stranger = await file(staff('Practitioner/phc-pcp-1', 'treating-provider'), filing([{ name: 'patient', valueReference: { reference: 'Patient/member-hpsj-1' } }]));
    expect(stranger.status).toBe(403);
    // A grievance is filed through $file-grievance only: a plain Task coded as one, without the profile, is refused.
    const planted = await call(member('member-phc-1'), 'Task', { resourceType: 'Task', status: 'requested', intent: 'order', code: { coding: [{ system: CODE_SYSTEMS.serviceRequestCategory, code: 'second-opinion-grievance' }] }, for: { reference: 'Patient/member-phc-1' } });
    expect([planted.status, planted.body.issue?.[0]?.diagnostics]).toEqual([403, expect.stringMatching(/changes only through the case's operations/)]);
    // A provider naming one member and another member's case: 422, the case is not theirs.
    const mismatch = await file(staff('Practitioner/phc-pcp-1', 'treating-provider'), filing([{ name: 'patient', valueReference: { reference: 'Patient/member-phc-1' } }, { name: 'case', valueReference: { reference: `ServiceRequest/${serviceRequest.id}` } }]));
    expect(mismatch.status).toBe(422);
    expect(await grievancesOf('member-phc-2')).toBe(before);
  });

  it('R17: bad input is 400 (or 404 for a case that does not exist), with an OperationOutcome and nothing stored', async () => {
    const before = await grievancesOf('member-phc-1');
    const token = member('member-phc-1');
    const refused = [
      [params([{ name: 'description', valueString: 'x' }]), 400, /'category' is required/],
      [filing([], 'bogus'), 400, /category/],
      [params([{ name: 'category', valueCode: 'other' }, { name: 'description', valueString: '   ' }]), 400, /description/],
      [filing([{ name: 'mood', valueString: 'angry' }]), 400, /Unknown parameter 'mood'/],
      [filing([{ name: 'expedited', valueString: 'yes' }]), 400, /expedited/],
      [filing([{ name: 'case', valueReference: { reference: 'Coverage/coverage-member-phc-1' } }]), 400, /case must reference/],
      [filing([{ name: 'case', valueReference: { reference: 'ServiceRequest/no-such-request' } }]), 404, /./],
    ] as const;
    for (const [body, status, message] of refused) {
      const res = await file(token, body);
      expect(res.status, JSON.stringify(res.body)).toBe(status);
      expect(res.body.resourceType).toBe('OperationOutcome');
      expect(res.body.issue[0].diagnostics).toMatch(message);
    }
    expect((await call(token, 'Task/$file-grievance', { resourceType: 'Patient' })).status).toBe(400);
    expect(await grievancesOf('member-phc-1')).toBe(before);
  });

  it('R17: the Grievance Coordinator acknowledges, then resolves, in order and once; each sends the member a letter (English), the resolution with the further rights', async () => {
    const filed = (await file(member('member-phc-1'), filing([], 'deadline-missed'))).body as Task;
    const ack = (token: string) => call(token, `Task/${filed.id}/$acknowledge-grievance`, params([]));
    const resolve = (token: string, extra: ParametersParameter[] = [{ name: 'resolution', valueString: 'The decision was sent late; the reviewers were told to keep to the deadline.' }]) =>
      call(token, `Task/${filed.id}/$resolve-grievance`, params([{ name: 'outcome', valueCode: 'upheld' }, ...extra]));
    // Wrong roles: 403, whatever the step; another plan's coordinator may not even see it (404, workflow/grievanceAccess.ts).
    expect((await ack(staff('Practitioner/phc-um-1', 'um-clinician'))).status).toBe(403);
    expect((await ack(staff('Practitioner/hpsj-gc-1', 'grievance-coordinator'))).status).toBe(404);
    expect((await ack(member('member-phc-1'))).status).toBe(403);
    // Out of order: 409 naming the step.
    const early = await resolve(coordinator());
    expect(early.status).toBe(409);
    expect(early.body.issue[0].diagnostics).toMatch(/in step 'received'; allowed now: acknowledge/);
    expect(((await call(coordinator(), `Task/${filed.id}/_history`)).body as Bundle).entry).toHaveLength(1);

    const acknowledged = await ack(coordinator());
    expect(acknowledged.status, JSON.stringify(acknowledged.body)).toBe(200);
    expect(acknowledged.body.status).toBe('in-progress');
    expect(step(acknowledged.body)).toBe('acknowledged');
    expect(await letterOf(acknowledged.body, 'acknowledgment-notice')).toMatch(/We received your grievance.*in writing by \d{4}-\d{2}-\d{2}/);
    expect((await ack(coordinator())).status).toBe(409);
    // A resolution without its reasons is refused by the OperationDefinition (400).
    expect((await resolve(coordinator(), [])).status).toBe(400);

    const resolved = await resolve(coordinator());
    expect(resolved.status, JSON.stringify(resolved.body)).toBe(200);
    expect(resolved.body.status).toBe('completed');
    expect(step(resolved.body)).toBe('resolved');
    expect(resolved.body.output.find((o: { type: { text: string } }) => o.type.text === 'outcome').valueCodeableConcept.coding[0].code).toBe('upheld');
    const html = await letterOf(resolved.body, 'resolution-notice');
    for (const words of [/decided your grievance in your favor/, /The decision was sent late/, /Independent Medical Review/, /1-888-466-2219/, /State Hearing/]) expect(html).toMatch(words);
    const again = await resolve(coordinator());
    expect(again.status).toBe(409);
    expect(again.body.issue[0].diagnostics).toMatch(/the grievance is resolved/);
    expect(((await call(coordinator(), `Task/${filed.id}/_history`)).body as Bundle).entry).toHaveLength(3);
    expect(((await call(coordinator(), `Provenance?target=Task/${filed.id}`)).body as Bundle).entry).toHaveLength(3);
    // The member sees the grievance resolved, and both letters (about the grievance, to them).
    expect(step((await call(member('member-phc-1'), `Task/${filed.id}`)).body)).toBe('resolved');
    const letters = (await call(member('member-phc-1'), `DocumentReference?related=Task/${filed.id}`)).body as Bundle;
    expect(letters.entry?.map((e) => (e.resource as DocumentReference).description).sort()).toEqual(['The decision on your grievance', 'We received your grievance']);
  });

  it('R17: a Spanish-speaking member’s letters are in Spanish; a provider who filed is sent a copy', async () => {
    const filed = (await file(staff('Practitioner/phc-pcp-1', 'treating-provider'), filing([{ name: 'patient', valueReference: { reference: 'Patient/member-phc-2' } }], 'plan-decision'))).body as Task;
    const acknowledged = (await call(coordinator(), `Task/${filed.id}/$acknowledge-grievance`, params([{ name: 'note', valueString: 'Called the member' }]))).body as Task;
    expect(await letterOf(acknowledged, 'acknowledgment-notice')).toMatch(/Recibimos su queja/);
    // A plan decision is clinical: the plan's physician resolves it (42 CFR 438.406(b)(2)(ii)).
    const resolved = (await call(staff('Practitioner/phc-md-1', 'medical-director'), `Task/${filed.id}/$resolve-grievance`, params([{ name: 'outcome', valueCode: 'not-upheld' }, { name: 'resolution', valueString: 'La decisión fue correcta.' }]))).body as Task;
    const html = await letterOf(resolved, 'resolution-notice');
    for (const words of [/No decidimos su queja a su favor/, /Revisión Médica Independiente/, /Audiencia Estatal/]) expect(html).toMatch(words);
    const sent = (await call(coordinator(), `Communication?based-on=Task/${filed.id}`)).body as Bundle;
    expect(sent.entry?.flatMap((e) => (e.resource as Communication).recipient!.map((r) => r.reference)).sort()).toEqual(['Patient/member-phc-2', 'Patient/member-phc-2', 'Practitioner/phc-pcp-1', 'Practitioner/phc-pcp-1']);
  });

  it('R17 42 CFR 438.406(b)(2): a clinical grievance is acknowledged by the coordinator and resolved by a physician of the plan who took no part in the case; the coordinator, and the Medical Director who denied the case, are refused (403) and nothing changes', async () => {
    const { serviceRequest, task: caseTask } = await phcCase();
    const director = staff('Practitioner/phc-md-1', 'medical-director');
    const denied = await call(director, `Task/${caseTask.id}/$deny`, params([{ name: 'reason', valueString: 'Not shown to be needed' }]));
    expect(denied.status, JSON.stringify(denied.body)).toBe(200);
    const about = [{ name: 'case', valueReference: { reference: `ServiceRequest/${serviceRequest.id}` } }];
    const filed = (await file(member('member-phc-1'), filing(about, 'plan-decision'))).body as Task;
    expect(filed.performerType?.map((p) => p.coding?.[0]?.code)).toEqual(['grievance-coordinator', 'medical-director']);
    // The physicians find the clinical grievances; one about a missed deadline is not theirs.
    const late = (await file(member('member-phc-1'), filing(about, 'deadline-missed'))).body as Task;
    expect(late.performerType?.map((p) => p.coding?.[0]?.code)).toEqual(['grievance-coordinator']);
    const theirs = (await call(director, `Task?code=second-opinion-grievance&performer=${encodeURIComponent(`${CODE_SYSTEMS.userRole}|medical-director`)}&_count=100`)).body as Bundle;
    expect(theirs.entry?.map((e) => e.resource!.id)).toContain(filed.id);
    expect(theirs.entry?.map((e) => e.resource!.id)).not.toContain(late.id);

    expect((await call(director, `Task/${filed.id}/$acknowledge-grievance`, params([]))).status).toBe(403);
    expect((await call(coordinator(), `Task/${filed.id}/$acknowledge-grievance`, params([]))).status).toBe(200);
    const resolve = (token: string) => call(token, `Task/${filed.id}/$resolve-grievance`, params([{ name: 'outcome', valueCode: 'not-upheld' }, { name: 'resolution', valueString: 'The request was reviewed again; the denial stands.' }]));
    const byCoordinator = await resolve(coordinator());
    expect([byCoordinator.status, byCoordinator.body.issue?.[0]?.diagnostics]).toEqual([403, expect.stringMatching(/^Only medical-director may resolve a grievance involving clinical issues, 42 CFR 438\.406\(b\)\(2\)\(ii\)/)]);
    const byDecider = await resolve(director);
    expect([byDecider.status, byDecider.body.resourceType, byDecider.body.issue?.[0]?.diagnostics]).toEqual([403, 'OperationOutcome', expect.stringMatching(/42 CFR 438\.406\(b\)\(2\)\(i\)/)]);
    // Another plan's physician may not even see it (404, workflow/grievanceAccess.ts).
    expect((await resolve(staff('Practitioner/hpsj-md-1', 'medical-director'))).status).toBe(404);
    expect(((await call(coordinator(), `Task/${filed.id}/_history`)).body as Bundle).entry).toHaveLength(2);
    expect(((await call(coordinator(), `Communication?based-on=Task/${filed.id}`)).body as Bundle).entry).toHaveLength(1);

    // The plan's physician designee (demo data), who took no part, resolves it; the Provenance names them.
    const resolved = await resolve(staff('Practitioner/phc-md-2', 'medical-director'));
    expect(resolved.status, JSON.stringify(resolved.body)).toBe(200);
    expect(step(resolved.body)).toBe('resolved');
    const provenance = (await call(coordinator(), `Provenance?target=Task/${filed.id}&_count=10`)).body as Bundle;
    expect(provenance.entry?.map((e) => (e.resource as Provenance).agent[0].who?.reference)).toContain('Practitioner/phc-md-2');
    // Not clinical: the coordinator, who took no part in the case, resolves it.
    await call(coordinator(), `Task/${late.id}/$acknowledge-grievance`, params([]));
    expect((await call(coordinator(), `Task/${late.id}/$resolve-grievance`, params([{ name: 'outcome', valueCode: 'upheld' }, { name: 'resolution', valueString: 'The notice went out a day late.' }]))).status).toBe(200);
  });

  it('R17: staff find the open grievances by status and due date, earliest due first', async () => {
    const expedited = (await file(member('member-phc-1'), filing([{ name: 'expedited', valueBoolean: true }]))).body as Task;
    const routine = (await file(member('member-phc-1'), filing())).body as Task;
    const open = (await call(coordinator(), 'Task?code=second-opinion-grievance&status=requested,in-progress&_sort=due&_count=100')).body as Bundle;
    const ids = open.entry!.map((e) => e.resource!.id);
    expect(ids).toContain(expedited.id);
    expect(ids).toContain(routine.id);
    expect(ids.indexOf(expedited.id)).toBeLessThan(ids.indexOf(routine.id));
    const soon = (await call(coordinator(), `Task?code=second-opinion-grievance&business-status=received&due=lt${new Date(Date.now() + 4 * DAY).toISOString().slice(0, 10)}`)).body as Bundle;
    const soonIds = soon.entry?.map((e) => e.resource!.id) ?? [];
    expect(soonIds).toContain(expedited.id);
    expect(soonIds).not.toContain(routine.id);
  });
  it('R17, R19 BSP F: the committee report counts the period\'s grievances by category and outcome, acknowledged and resolved on time, in the MeasureReport and the CSV', async () => {
    const auditor = tokenFor(server, { scope: 'user/*.rs', fhirUser: 'Practitioner/hpsj-md-1', roles: ['auditor'] });
    const period = new Date().toISOString().slice(0, 7);
    const figures = async () => {
      const report = (await call(auditor, `$second-opinion-report?period=${period}&plan=phc`)).body as { group: { code: { coding: { code: string }[] }; population?: { code: { text: string }; count: number }[] }[] };
      const group = (code: string) => Object.fromEntries((report.group.find((g) => g.code.coding[0].code === code)?.population ?? []).map((p) => [p.code.text, p.count]));
      return { grievances: group('grievances'), outcomes: group('grievance-outcomes'), timeliness: group('grievance-timeliness') };
    };
    const before = await figures();
    const filed = (await file(member('member-phc-2'), filing([], 'deadline-missed'))).body as Task;
    await call(coordinator(), `Task/${filed.id}/$acknowledge-grievance`, params([]));
    await call(coordinator(), `Task/${filed.id}/$resolve-grievance`, params([{ name: 'outcome', valueCode: 'partly-upheld' }, { name: 'resolution', valueString: 'The decision came a day late.' }]));
    const after = await figures();
    const delta = (a: Record<string, number>, b: Record<string, number>) => Object.fromEntries(Object.keys(b).map((k) => [k, b[k] - (a[k] ?? 0)]).filter(([, d]) => d !== 0));
    expect(delta(before.grievances, after.grievances)).toEqual({ received: 1, 'deadline-missed': 1 });
    expect(delta(before.outcomes, after.outcomes)).toEqual({ 'partly-upheld': 1 });
    expect(delta(before.timeliness, after.timeliness)).toEqual({ received: 1, 'acknowledged-on-time': 1, resolved: 1, 'resolved-on-time': 1 });
    // Another plan's report does not count it.
    const hpsj = (await call(auditor, `$second-opinion-report?period=${period}&plan=hpsj`)).body as { group: { code: { coding: { code: string }[] }; population?: { code: { text: string }; count: number }[] }[] };
    const hpsjReceived = hpsj.group.find((g) => g.code.coding[0].code === 'grievances')?.population?.find((p) => p.code.text === 'received')?.count;
    expect(hpsjReceived).toBe(0);
    const csv = await (await fetch(`${server.url}/reports/second-opinion.csv?period=${period}&plan=phc`, { headers: { authorization: `Bearer ${auditor}` } })).text();
    expect(csv).toContain(`grievances-by-outcome,partly-upheld,${after.outcomes['partly-upheld']}`);
  });

  it('R17: grievances stored before Task.performerType named who acts get it at start from their category, so the physician finds the clinical ones; resolved ones stay as they were', async () => {
    const storedWithout = async (category: string, status?: Task['status']) => {
      const filed = (await file(member('member-phc-2'), filing([], category))).body as Task;
      const { performerType: _, ...earlier } = filed;
      return (await server.store.update({ ...earlier, status: status ?? filed.status } as Task)).resource;
    };
    const clinical = await storedWithout('pcp-not-granted');
    const late = await storedWithout('deadline-missed');
    const resolved = await storedWithout('plan-decision', 'completed');
    const desk = async () => {
      const bundle = (await call(staff('Practitioner/phc-md-2', 'medical-director'), `Task?code=second-opinion-grievance&performer=${encodeURIComponent(`${CODE_SYSTEMS.userRole}|medical-director`)}&_count=1000`)).body as Bundle;
      return bundle.entry?.map((e) => e.resource!.id) ?? [];
    };
    expect(await desk()).not.toContain(clinical.id);

    expect(await namePerformersOfEarlierGrievances(server.store)).toBe(2);
    const roles = async (task: Task) => ((await server.store.read('Task', task.id!)) as Task).performerType?.map((p) => p.coding?.[0]?.code);
    expect(await roles(clinical)).toEqual(['grievance-coordinator', 'medical-director']);
    expect(await roles(late)).toEqual(['grievance-coordinator']);
    expect(await roles(resolved)).toBeUndefined();
    expect(await desk()).toContain(clinical.id);
    expect(await desk()).not.toContain(late.id);
    expect(await namePerformersOfEarlierGrievances(server.store)).toBe(0);
  });
});
