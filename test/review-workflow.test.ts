import type { Binary, Bundle, Communication, CoverageEligibilityResponse, DocumentReference, MeasureReport, Parameters, Provenance, ServiceRequest, Task } from 'fhir/r4.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CODE_SYSTEMS, EXTENSIONS, IDENTIFIER_SYSTEMS, PROFILES } from '../server/src/fhir/systems.js';
import { type DemoServer, startDemoServer } from './helpers/demoServer.js';
import { raw } from './helpers/fhir.js';
import { backendAssertion, tokenFor } from './helpers/tokens.js';

const PLANS = [
  { plan: 'hpsj', member: 'member-hpsj-1' },
  { plan: 'phc', member: 'member-phc-1' },
  { plan: 'ant', member: 'member-ant-1' },
  { plan: 'bsp', member: 'member-bsp-1' },
];

/** Each plan's full path through the review operations, over HTTP with real tokens (R10, R11, R13, R14). */
describe('UM review path', () => {
  let server: DemoServer;
  beforeAll(async () => {
    server = await startDemoServer();
  });
  afterAll(async () => server?.close());

  const as = (plan: string, role: 'pcp' | 'um' | 'md' | 'oon' | 'second', patient?: string) => {
    const users = { pcp: [`Practitioner/${plan}-pcp-1`, 'treating-provider'], um: [`Practitioner/${plan}-um-1`, 'um-clinician'], md: [`Practitioner/${plan}-md-1`, 'medical-director'], oon: ['Practitioner/oon-neuro-1', 'second-opinion-provider'], second: [`Practitioner/${plan}-card-2`, 'second-opinion-provider'] } as const;
    const [fhirUser, r] = users[role];
    return tokenFor(server, { scope: 'user/*.cruds', fhirUser, roles: [r], patient });
  };
  const call = async (token: string, path: string, json?: unknown) =>
    raw(`${server.fhirBase}/${path}`, { method: json === undefined ? 'GET' : 'POST', headers: { authorization: `Bearer ${token}` }, json });
  const params = (p: Parameters['parameter']): Parameters => ({ resourceType: 'Parameters', parameter: p });
  const step = (t: Task) => t.businessStatus?.coding?.[0].code;

  async function submit(plan: string, member: string, performer: string, extra: Partial<ServiceRequest> = {}): Promise<Task> {
    const sr: ServiceRequest = {
      resourceType: 'ServiceRequest',
      identifier: [{ system: IDENTIFIER_SYSTEMS.secondOpinionRequest, value: `review-${plan}-${Math.random()}` }],
      status: 'draft',
      intent: 'order',
      subject: { reference: `Patient/${member}` },
      requester: { reference: `PractitionerRole/role-${plan}-pcp-1` },
      insurance: [{ reference: `Coverage/coverage-${member}` }],
      reasonCode: [{ coding: [{ system: CODE_SYSTEMS.reason, code: 'unclear-diagnosis' }] }],
      performerType: { coding: [{ system: CODE_SYSTEMS.nucc, code: '2084N0400X' }] },
      performer: [{ reference: performer }],
      ...extra,
    };
    const res = await call(as(plan, 'pcp'), 'ServiceRequest/$submit', { resourceType: 'Bundle', type: 'collection', entry: [{ resource: sr }] });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return res.body.entry[3].resource as Task;
  }

  describe.each(PLANS)('plan $plan', ({ plan, member }) => {
    it('submit → ask for info → answer → escalate → deny with a notice of action; the appeal route is shown', async () => {
      const task = await submit(plan, member, 'PractitionerRole/role-oon-neuro-1');
      expect(step(task)).toBe('um-review');
      const asked = await call(as(plan, 'um'), `Task/${task.id}/$request-info`, params([{ name: 'what', valueString: 'Latest MRI report' }]));
      expect(asked.status, JSON.stringify(asked.body)).toBe(200);
      expect(step(asked.body)).toBe('info-requested');
      expect(asked.body.status).toBe('on-hold');
      const infoTask = asked.body.output.find((o: { type: { text: string } }) => o.type.text === 'information-request').valueReference.reference;
      const doc = await call(as(plan, 'pcp'), 'DocumentReference', { resourceType: 'DocumentReference', status: 'current', subject: { reference: `Patient/${member}` }, content: [{ attachment: { contentType: 'text/plain', data: Buffer.from('MRI: no change').toString('base64') } }] });
      const answered = await call(as(plan, 'pcp'), `Task/${task.id}/$answer-info`, params([{ name: 'document', valueReference: { reference: `DocumentReference/${doc.body.id}` } }]));
      expect(step(answered.body)).toBe('info-received');
      expect((await call(as(plan, 'um'), infoTask)).body.status).toBe('completed');
      // R10: a UM clinician may not deny.
      const refused = await call(as(plan, 'um'), `Task/${task.id}/$deny`, params([{ name: 'reason', valueString: 'x' }]));
      expect(refused.status).toBe(403);
      const escalated = await call(as(plan, 'um'), `Task/${task.id}/$escalate`, params([{ name: 'note', valueString: 'criteria unclear' }]));
      expect(step(escalated.body)).toBe('medical-director-review');
      const denied = await call(as(plan, 'md'), `Task/${task.id}/$deny`, params([{ name: 'reason', valueString: 'A qualified neurologist was not shown to be needed out of network' }, { name: 'criteria', valueString: 'Second opinion policy' }]));
      expect(denied.status).toBe(200);
      expect(step(denied.body)).toBe('denied');
      expect(denied.body.status).toBe('rejected');
      const notice = denied.body.output.find((o: { type: { text: string } }) => o.type.text === 'denial-notice').valueReference.reference;
      const letter = (await call(as(plan, 'um'), notice)).body as DocumentReference;
      const html = Buffer.from(letter.content[0].attachment.data!, 'base64').toString();
      expect(html).toContain('A qualified neurologist was not shown to be needed out of network');
      expect(html).toMatch(/appeal|apelación/);
      expect(html).toMatch(/1-888-466-2219/);
      expect(html).toMatch(/State Hearing|Audiencia Estatal/);
      const history = (await call(as(plan, 'um'), `Task/${task.id}/_history`)).body as Bundle;
      expect(history.entry?.length).toBe(5);
      // An illegal transition changes nothing and names the step.
      const again = await call(as(plan, 'md'), `Task/${task.id}/$approve`, params([]));
      expect(again.status).toBe(409);
      expect(again.body.issue[0].diagnostics).toMatch(/denied/);
      expect(((await call(as(plan, 'um'), `Task/${task.id}/_history`)).body as Bundle).entry?.length).toBe(5);
    });

    it('R11 BSP D.V, R13: submit → approve (letters to member, requester and authorized professional, preAuthRef, transportation coded HCPCS A0130) → report posted by the authorized professional → member and PCP receive it → completed', async () => {
      const task = await submit(plan, member, `PractitionerRole/role-${plan}-card-2`, {
        performerType: { coding: [{ system: CODE_SYSTEMS.nucc, code: '207RC0000X' }] },
        extension: [{ url: EXTENSIONS.transportationNeeded, valueBoolean: true }],
      });
      let current = task;
      if (step(task) !== 'approved') {
        const approved = await call(as(plan, 'um'), `Task/${task.id}/$approve`, params([{ name: 'authorizedPractitionerRole', valueReference: { reference: `PractitionerRole/role-${plan}-card-2` } }]));
        expect(approved.status, JSON.stringify(approved.body)).toBe(200);
        current = approved.body;
        expect(step(current)).toBe('transport-arranged');
        const sr = (await call(as(plan, 'um'), current.focus!.reference!)).body as ServiceRequest;
        const info = sr.extension?.find((e) => e.url === EXTENSIONS.crdCoverageInformation);
        expect(info?.extension?.find((e) => e.url === 'pa-needed')?.valueCode).toBe('satisfied');
      }
      // R3 approvals on receipt and UM approvals alike: letters to member and provider, transportation arranged (R13).
      const ride = current.output?.find((o) => o.type.text === 'transportation')?.valueReference?.reference;
      expect(ride).toBeDefined();
      // R13: A0130 is a HCPCS Level II code, not CPT.
      expect(((await call(as(plan, 'um'), ride!)).body as ServiceRequest).code?.coding?.[0]).toMatchObject({ system: 'https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets', code: 'A0130' });
      // R11 (BSP D.V): the member, the requester and the authorized professional, each once.
      const letters = (await call(as(plan, 'um'), `Communication?based-on=${current.focus!.reference}`)).body as Bundle;
      expect(letters.entry?.map((e) => (e.resource as Communication).recipient?.[0].reference).sort()).toEqual([`Patient/${member}`, `PractitionerRole/role-${plan}-pcp-1`, `PractitionerRole/role-${plan}-card-2`].sort());
      // It claims the report profile without the subject, author and request the server fills in: checked against R4 only.
      const report = { resourceType: 'DocumentReference', meta: { profile: [PROFILES.consultationReport] }, status: 'current', description: 'Agree with the plan; recommend echocardiogram', content: [{ attachment: { contentType: 'text/plain', data: Buffer.from('Consultation report').toString('base64') } }] };
      const notTheirs = await call(as(plan, 'oon'), `Task/${task.id}/$post-report`, params([{ name: 'report', resource: report as DocumentReference }]));
      expect(notTheirs.status).toBe(403);
      // A report that is not valid R4 (a date that is no date, an unknown element) is refused before anything is stored.
      const invalid = await call(as(plan, 'second'), `Task/${task.id}/$post-report`, params([{ name: 'report', resource: { ...report, date: 'today', summary: 'x' } as DocumentReference }]));
      expect(invalid.status).toBe(422);
      expect(invalid.body.issue.flatMap((i: { expression?: string[] }) => i.expression ?? [])).toEqual(expect.arrayContaining(['Parameters.parameter[0].resource.date', 'Parameters.parameter[0].resource.summary']));
      expect(((await call(as(plan, 'um'), `Task/${task.id}`)).body as Task).meta?.versionId).toBe(current.meta?.versionId);
      const posted = await call(as(plan, 'second'), `Task/${task.id}/$post-report`, params([{ name: 'report', resource: report as DocumentReference }]));
      expect(posted.status, JSON.stringify(posted.body)).toBe(200);
      expect(posted.body.status).toBe('completed');
      const reports = (await call(as(plan, 'pcp'), `DocumentReference?related=${current.focus!.reference}&_profile=${PROFILES.consultationReport}`)).body as Bundle;
      expect(reports.entry).toHaveLength(1);
      const sent = (await call(as(plan, 'um'), `Communication?based-on=${current.focus!.reference}&category:text=report`)).body as Bundle;
      expect(sent.entry?.map((e) => (e.resource as Communication).recipient?.[0].reference)).toEqual(expect.arrayContaining([`Patient/${member}`, `PractitionerRole/role-${plan}-pcp-1`]));
    });
  });

  it('R19: the committee report counts the cases of the period (FHIR MeasureReport and CSV), for plan staff only', async () => {
    // This month in the plans' zone (periods are Pacific): every case of this run, also in the hours when UTC is a month ahead.
    const period = new Intl.DateTimeFormat('en-CA', { timeZone: 'America/Los_Angeles', year: 'numeric', month: '2-digit' }).format(new Date());
    const otherReasons = async () => {
      const body = (await call(as('bsp', 'um'), `$second-opinion-report?period=${period}&plan=bsp`)).body as MeasureReport;
      return body.group?.find((g) => g.code?.coding?.[0].code === 'by-reason')?.population?.find((p) => p.code?.text === 'other')?.count ?? 0;
    };
    // A request giving only a reasonReference is "other" at intake (R2), and so in the figures.
    const before = await otherReasons();
    await submit('bsp', 'member-bsp-1', 'PractitionerRole/role-oon-neuro-1', { reasonCode: undefined, reasonReference: [{ reference: 'Condition/condition-member-bsp-1' }] });
    expect(await otherReasons()).toBe(before + 1);
    const report = await call(as('bsp', 'um'), `$second-opinion-report?period=${period}&plan=bsp`);
    expect(report.status, JSON.stringify(report.body)).toBe(200);
    expect(report.body.resourceType).toBe('MeasureReport');
    const casesGroup = report.body.group.find((g: { code: { coding: { code: string }[] } }) => g.code.coding[0].code === 'cases');
    expect(casesGroup.population[0].count).toBeGreaterThanOrEqual(2);
    const byOutcome = report.body.group.find((g: { code: { coding: { code: string }[] } }) => g.code.coding[0].code === 'by-outcome');
    expect(byOutcome.population.map((p: { code: { text: string } }) => p.code.text)).toContain('denied');
    // BSP D.X: approvals and denials coded by category: the outcomes of each reason category add up to its cases.
    const byReasonOutcome = (report.body as MeasureReport).group?.find((g) => g.code?.coding?.[0].code === 'by-reason-outcome');
    const other = byReasonOutcome?.stratifier?.[0].stratum?.find((s) => s.value?.text === 'other');
    expect(other?.population?.reduce((n, p) => n + (p.count ?? 0), 0)).toBe(before + 1);
    const csv = await fetch(`${server.url}/reports/second-opinion.csv?period=${period}&plan=bsp`, { headers: { authorization: `Bearer ${as('bsp', 'um')}` } });
    expect(csv.headers.get('content-type')).toContain('text/csv');
    const rows = await csv.text();
    expect(rows).toMatch(/^metric,key,value\ncases,,\d+/);
    expect(rows).toMatch(/\nby-reason-outcome,other\/[a-z-]+,\d+\n/);
    expect((await call(as('bsp', 'pcp'), `$second-opinion-report?period=${period}`)).status).toBe(403);
    expect((await call(as('bsp', 'um'), '$second-opinion-report?period=2026-13')).status).toBe(400);
  });

  it('R21: the criteria are published as a Library generated from the plan profile, and as a page', async () => {
    const lib = await call(as('phc', 'pcp'), 'Library/second-opinion-criteria-phc');
    expect(lib.status).toBe(200);
    expect(lib.body.description).toMatch(/Medi-Cal/);
    const page = await fetch(`${server.url}/criteria/phc`);
    expect(await page.text()).toMatch(/5 business days/);
  });

  it('R16 PHC VI.C: out-of-network treatment recommended in the report opens a treatment authorization request; R15 HPSJ III.G: an additional opinion goes to UM on the plan\'s own determination', async () => {
    const task = await submit('hpsj', 'member-hpsj-1', 'PractitionerRole/role-hpsj-card-2', { performerType: { coding: [{ system: CODE_SYSTEMS.nucc, code: '207RC0000X' }] } });
    expect(step(task)).toBe('approved');
    const report = { resourceType: 'DocumentReference', status: 'current', description: 'Recommend TAVR at an academic center', content: [{ attachment: { contentType: 'text/plain', data: Buffer.from('x').toString('base64') } }] };
    const posted = await call(as('hpsj', 'second'), `Task/${task.id}/$post-report`, params([
      { name: 'report', resource: report as DocumentReference },
      { name: 'outOfNetworkTreatment', valueString: 'Transcatheter aortic valve replacement' },
      { name: 'treatmentPerformer', valueReference: { reference: 'PractitionerRole/role-oon-card-1' } },
    ]));
    expect(posted.status, JSON.stringify(posted.body)).toBe(200);
    const tarTask = posted.body.output.find((o: { type: { text: string } }) => o.type.text === 'treatment-authorization-request').valueReference.reference;
    const tarReview = (await call(as('hpsj', 'um'), tarTask)).body as Task;
    expect(tarReview.status).toBe('requested');
    const tar = (await call(as('hpsj', 'um'), tarReview.focus!.reference!)).body as ServiceRequest;
    expect(tar.category?.[0].text).toBe('treatment-authorization-request');
    expect(tar.basedOn?.[0].reference).toBe(task.focus!.reference);

    const additional = await submit('hpsj', 'member-hpsj-1', 'PractitionerRole/role-hpsj-card-2', { performerType: { coding: [{ system: CODE_SYSTEMS.nucc, code: '207RC0000X' }] }, basedOn: [{ reference: task.focus!.reference! }] });
    expect(step(additional)).toBe('um-review');
    const response = (await call(as('hpsj', 'um'), additional.input!.find((i) => i.type.text === 'eligibility-response')!.valueReference!.reference!)).body;
    expect(response.disposition).toMatch(/R15 \(HPSJ III\.G\)/);
  });

  /** demo-backend's token from the token endpoint (client_credentials, private_key_jwt): its registration names its organization. */
  async function demoBackendToken(): Promise<string> {
    const form = { grant_type: 'client_credentials', scope: 'system/*.cruds', client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: backendAssertion(server) };
    const res = await fetch(`${server.url}/auth/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(form) });
    expect(res.status).toBe(200);
    return ((await res.json()) as { access_token: string }).access_token;
  }

  it('R18 BSP D.IX: a delegated IPA decision keeps a copy of the request and clinical information at decision time', async () => {
    const task = await submit('bsp', 'member-bsp-1', 'PractitionerRole/role-oon-neuro-1', { supportingInfo: [{ reference: 'Condition/condition-member-bsp-1' }] });
    // demo-backend is registered as the system of bsp-ipa-a, the member's group, to which BSP delegates (plans.ts delegatedUm).
    const ipa = await demoBackendToken();
    const approved = await call(ipa, `Task/${task.id}/$approve`, params([]));
    expect(approved.status, JSON.stringify(approved.body)).toBe(200);
    const copyRef = approved.body.output.find((o: { type: { text: string } }) => o.type.text === 'delegated-decision-copy').valueReference.reference;
    const copy = (await call(as('bsp', 'um'), copyRef)).body as DocumentReference;
    expect(copy.author?.[0].reference).toBe('Organization/bsp-ipa-a');
    const bundle = JSON.parse(Buffer.from(copy.content[0].attachment.data!, 'base64').toString()) as Bundle;
    expect(bundle.entry?.map((e) => e.resource?.resourceType)).toEqual(['ServiceRequest', 'Patient', 'Condition']);
  });

  it('R18 BSP D.IX: a backend client decides only cases whose plan delegated them to it, for the member group it acts for', async () => {
    const delegatedIpa = await demoBackendToken();
    // A system acting for another group, and one registered for none: the client id alone delegates nothing.
    const otherIpa = tokenFor(server, { clientId: 'bsp-ipa-b-system', scope: 'system/*.cruds', roles: ['delegated-group'], organization: 'bsp-ipa-b' });
    const noGroup = tokenFor(server, { clientId: 'demo-backend', scope: 'system/*.cruds', roles: ['delegated-group'] });
    const phcIpa = tokenFor(server, { clientId: 'phc-ipa-a-system', scope: 'system/*.cruds', roles: ['delegated-group'], organization: 'phc-ipa-a' });
    const phc = await submit('phc', 'member-phc-1', 'PractitionerRole/role-oon-neuro-1');
    const otherGroup = await submit('bsp', 'member-bsp-2', 'PractitionerRole/role-oon-neuro-1');
    const ownGroup = await submit('bsp', 'member-bsp-1', 'PractitionerRole/role-oon-neuro-1');
    // A group's system sees only its own members (workflow/memberAccess.ts): another group's case is a missing id to it.
    for (const [token, task, why, status] of [[delegatedIpa, phc, 'member-phc-1 is in phc-ipa-a', 404], [delegatedIpa, otherGroup, 'member-bsp-2 is in bsp-ipa-b', 404], [otherIpa, ownGroup, 'the client acts for bsp-ipa-b', 404], [noGroup, ownGroup, 'the client acts for no group', 403], [phcIpa, phc, 'PHC delegates nothing, even to its member\'s own group', 403]] as const) {
      const res = await call(token, `Task/${task.id}/$approve`, params([]));
      expect(res.status, `${why}: ${JSON.stringify(res.body)}`).toBe(status);
      if (status === 403) expect(res.body.issue[0].diagnostics).toMatch(/delegated/);
      expect(((await call(as(task.id === phc.id ? 'phc' : 'bsp', 'um'), `Task/${task.id}`)).body as Task).meta?.versionId).toBe(task.meta?.versionId);
    }
  });

  it('R11: review actions stay in the token\'s patient compartment, and plan staff act only on their own plan\'s cases whatever the token kind', async () => {
    const bspCase = await submit('bsp', 'member-bsp-1', 'PractitionerRole/role-oon-neuro-1');
    const hpsjCase = await submit('hpsj', 'member-hpsj-1', 'PractitionerRole/role-oon-neuro-1');
    const hpsjUmFor = (patient: string) => tokenFor(server, { scope: 'launch/patient patient/*.cruds', fhirUser: 'Practitioner/hpsj-um-1', roles: ['um-clinician'], patient });
    const approve = params([{ name: 'authorizedPractitionerRole', valueReference: { reference: 'PractitionerRole/role-oon-neuro-1' } }]);
    // Another member's case: outside the token's compartment, answered as a case that does not exist.
    const outside = await call(hpsjUmFor('member-hpsj-1'), `Task/${bspCase.id}/$approve`, approve);
    expect(outside.status, JSON.stringify(outside.body)).toBe(404);
    expect(outside.body.issue[0].diagnostics).toBe(`Task/${bspCase.id} not found`);
    // In the compartment, but another plan's case: a patient-bound token of HPSJ staff is still HPSJ staff.
    const otherPlan = await call(hpsjUmFor('member-bsp-1'), `Task/${bspCase.id}/$approve`, approve);
    expect(otherPlan.status, JSON.stringify(otherPlan.body)).toBe(403);
    expect(otherPlan.body.issue[0].diagnostics).toMatch(/Blue Shield/);
    expect(((await call(as('bsp', 'um'), `Task/${bspCase.id}`)).body as Task).meta?.versionId).toBe(bspCase.meta?.versionId);
    // Its own plan's case of the member in context goes through.
    const own = await call(hpsjUmFor('member-hpsj-1'), `Task/${hpsjCase.id}/$request-info`, params([{ name: 'what', valueString: 'Latest MRI report' }]));
    expect(own.status, JSON.stringify(own.body)).toBe(200);
  });

  it('R1: only a member identity or the requester withdraws, not a practitioner with the member in context; the reason is the Task\'s statusReason', async () => {
    const task = await submit('hpsj', 'member-hpsj-1', 'PractitionerRole/role-oon-neuro-1');
    const withdraw = params([{ name: 'reason', valueString: 'I found a doctor myself' }]);
    const cardiologist = tokenFor(server, { scope: 'launch/patient patient/*.cruds', fhirUser: 'Practitioner/hpsj-card-1', roles: ['treating-provider'], patient: 'member-hpsj-1' });
    const refused = await call(cardiologist, `Task/${task.id}/$withdraw`, withdraw);
    expect(refused.status, JSON.stringify(refused.body)).toBe(403);
    expect(((await call(as('hpsj', 'um'), `Task/${task.id}`)).body as Task).meta?.versionId).toBe(task.meta?.versionId);
    const memberToken = tokenFor(server, { scope: 'launch/patient patient/*.cruds', fhirUser: 'Patient/member-hpsj-1', roles: ['member'], patient: 'member-hpsj-1' });
    const withdrawn = await call(memberToken, `Task/${task.id}/$withdraw`, withdraw);
    expect(withdrawn.status, JSON.stringify(withdrawn.body)).toBe(200);
    expect(step(withdrawn.body)).toBe('withdrawn');
    expect((withdrawn.body as Task).statusReason?.text).toBe('I found a doctor myself');
  });

  it('R9 42 CFR 438.210(d)(1)(ii): one extension per case (409 for a second); days must be a valueInteger in a Parameters body', async () => {
    const task = await submit('hpsj', 'member-hpsj-1', 'PractitionerRole/role-oon-neuro-1');
    const extend = (days: Record<string, unknown>) => call(as('hpsj', 'um'), `Task/${task.id}/$extend`, { resourceType: 'Parameters', parameter: [{ name: 'days', ...days }, { name: 'reason', valueString: 'Waiting for the specialist records' }] });
    const asText = await extend({ valueString: '5' });
    expect(asText.status, JSON.stringify(asText.body)).toBe(400);
    expect(asText.body.issue[0].diagnostics).toMatch(/valueInteger/);
    expect(((await call(as('hpsj', 'um'), `Task/${task.id}`)).body as Task).meta?.versionId).toBe(task.meta?.versionId);
    // Outside 1-14 days, zero and negative alike: the same 422 naming the rule.
    for (const days of [0, -3, 15]) {
      const outside = await extend({ valueInteger: days });
      expect(outside.status, `${days}: ${JSON.stringify(outside.body)}`).toBe(422);
      expect(outside.body.issue[0].diagnostics).toMatch(/1 to 14 days/);
    }
    const first = await extend({ valueInteger: 14 });
    expect(first.status, JSON.stringify(first.body)).toBe(200);
    const due = (first.body as Task).restriction?.period?.end;
    const second = await extend({ valueInteger: 14 });
    expect(second.status, JSON.stringify(second.body)).toBe(409);
    expect(second.body.issue[0].diagnostics).toMatch(/already extended/);
    const after = (await call(as('hpsj', 'um'), `Task/${task.id}`)).body as Task;
    expect(after.restriction?.period?.end).toBe(due);
    expect(after.output?.filter((o) => o.type.text === 'extended')).toHaveLength(1);
  });

  it('R11: a Task claiming the case profile whose ServiceRequest has no Coverage is 422 "not a second-opinion case", not a 500', async () => {
    const sr = await server.store.create<ServiceRequest>({ resourceType: 'ServiceRequest', status: 'active', intent: 'order', subject: { reference: 'Patient/member-hpsj-1' }, requester: { reference: 'PractitionerRole/role-hpsj-pcp-1' } });
    const task = await server.store.create<Task>({ resourceType: 'Task', meta: { profile: [PROFILES.task] }, status: 'requested', intent: 'order', focus: { reference: `ServiceRequest/${sr.id}` }, for: { reference: 'Patient/member-hpsj-1' } });
    const res = await call(as('hpsj', 'um'), `Task/${task.id}/$escalate`, params([]));
    expect(res.status, JSON.stringify(res.body)).toBe(422);
    expect(res.body.issue[0].diagnostics).toMatch(/not a second-opinion case/);
    const notARequest = await server.store.create<Task>({ resourceType: 'Task', meta: { profile: [PROFILES.task] }, status: 'requested', intent: 'order', focus: { reference: 'Patient/member-hpsj-1' }, for: { reference: 'Patient/member-hpsj-1' } });
    expect((await call(as('hpsj', 'um'), `Task/${notARequest.id}/$escalate`, params([]))).status).toBe(422);
  });

  it('R11 BSP D.IV: an information answer attaches only DocumentReferences or Binaries about the case\'s member that the answerer may read', async () => {
    const task = await submit('bsp', 'member-bsp-1', 'PractitionerRole/role-oon-neuro-1');
    const asked = await call(as('bsp', 'um'), `Task/${task.id}/$request-info`, params([{ name: 'what', valueString: 'Latest MRI report' }]));
    expect(asked.status).toBe(200);
    const docAbout = async (member: string) => (await call(as('bsp', 'pcp'), 'DocumentReference', { resourceType: 'DocumentReference', status: 'current', subject: { reference: `Patient/${member}` }, content: [{ attachment: { contentType: 'text/plain', data: Buffer.from('MRI').toString('base64') } }] })).body as DocumentReference;
    const otherMembers = await docAbout('member-bsp-2');
    const answer = (reference: Record<string, unknown>) => call(as('bsp', 'pcp'), `Task/${task.id}/$answer-info`, params([{ name: 'document', valueReference: reference }]));
    for (const bad of [{ reference: 'Patient/member-bsp-1' }, { reference: 'DocumentReference/does-not-exist' }, { display: 'the MRI' }, { reference: `DocumentReference/${otherMembers.id}` }, { reference: 'Condition/condition-member-bsp-1' }]) {
      const res = await answer(bad);
      expect(res.status, `${JSON.stringify(bad)}: ${JSON.stringify(res.body)}`).toBe(422);
    }
    expect(((await call(as('bsp', 'um'), `Task/${task.id}`)).body as Task).meta?.versionId).toBe(asked.body.meta.versionId);
    // Read on the answerer's behalf: a patient-bound token does not attach what is outside its compartment.
    const pcpInContext = tokenFor(server, { scope: 'launch/patient patient/*.cruds', fhirUser: 'Practitioner/bsp-pcp-1', roles: ['treating-provider'], patient: 'member-bsp-1' });
    const notTheirs = await call(pcpInContext, `Task/${task.id}/$answer-info`, params([{ name: 'document', valueReference: { reference: `DocumentReference/${otherMembers.id}` } }]));
    expect(notTheirs.status, JSON.stringify(notTheirs.body)).toBe(422);
    const binary = await server.store.create<Binary>({ resourceType: 'Binary', contentType: 'text/plain', securityContext: { reference: 'Patient/member-bsp-1' }, data: Buffer.from('labs').toString('base64') });
    const own = await docAbout('member-bsp-1');
    const answered = await call(as('bsp', 'pcp'), `Task/${task.id}/$answer-info`, params([{ name: 'document', valueReference: { reference: `DocumentReference/${own.id}` } }, { name: 'document', valueReference: { reference: `Binary/${binary.id}` } }]));
    expect(answered.status, JSON.stringify(answered.body)).toBe(200);
    expect(step(answered.body)).toBe('info-received');
  });

  it('R11 BSP D.VI: the consultative reviewer the Medical Director refers to practises the specialty requested, and is recorded on the Task and in its Provenance', async () => {
    const task = await submit('bsp', 'member-bsp-2', 'PractitionerRole/role-oon-neuro-1');
    expect((await call(as('bsp', 'um'), `Task/${task.id}/$escalate`, params([]))).status).toBe(200);
    const unknown = await call(as('bsp', 'md'), `Task/${task.id}/$refer-consultative-review`, params([{ name: 'reviewer', valueReference: { reference: 'PractitionerRole/does-not-exist' } }]));
    expect(unknown.status).toBe(422);
    // "a physician in the same specialty as the one being requested": a cardiologist does not review a neurology opinion,
    // named by role or as a Practitioner (whose roles give the specialty).
    for (const reference of ['PractitionerRole/role-oon-card-1', 'Practitioner/oon-card-1']) {
      const otherSpecialty = await call(as('bsp', 'md'), `Task/${task.id}/$refer-consultative-review`, params([{ name: 'reviewer', valueReference: { reference } }]));
      expect(otherSpecialty.status, reference).toBe(422);
      expect(JSON.stringify(otherSpecialty.body)).toContain('BSP D.VI');
    }
    const referred = await call(as('bsp', 'md'), `Task/${task.id}/$refer-consultative-review`, params([{ name: 'reviewer', valueReference: { reference: 'PractitionerRole/role-oon-neuro-2' } }, { name: 'note', valueString: 'Neurology peer review' }]));
    expect(referred.status, JSON.stringify(referred.body)).toBe(200);
    const saved = referred.body as Task;
    expect(step(saved)).toBe('consultative-review');
    expect(saved.output?.find((o) => o.type.text === 'consultative-reviewer')?.valueReference?.reference).toBe('PractitionerRole/role-oon-neuro-2');
    const { resources } = await server.store.search({ resourceType: 'Provenance', clauses: [], sort: [{ param: '_lastUpdated', kind: 'lastUpdated', descending: true }], count: 200, offset: 0, total: false });
    const record = (resources as Provenance[]).find((p) => p.target.some((t) => t.reference === `Task/${task.id}/_history/${saved.meta?.versionId}`));
    expect(record?.agent.map((a) => a.who.reference)).toEqual(['Practitioner/bsp-md-1', 'PractitionerRole/role-oon-neuro-2']);
  });

  it('R19 BSP F: plan staff read their own plan\'s committee figures; plan administration and auditors any plan', async () => {
    const period = new Intl.DateTimeFormat('en-CA', { timeZone: 'America/Los_Angeles', year: 'numeric', month: '2-digit' }).format(new Date());
    const otherPlan = await call(as('hpsj', 'um'), `$second-opinion-report?period=${period}&plan=bsp`);
    expect(otherPlan.status, JSON.stringify(otherPlan.body)).toBe(403);
    // The CSV download holds the same figures: the same rule.
    const otherCsv = await fetch(`${server.url}/reports/second-opinion.csv?period=${period}&plan=bsp`, { headers: { authorization: `Bearer ${as('hpsj', 'um')}` } });
    expect(otherCsv.status).toBe(403);
    const own = await call(as('hpsj', 'md'), `$second-opinion-report?period=${period}`);
    expect(own.status, JSON.stringify(own.body)).toBe(200);
    expect((own.body as MeasureReport).reporter?.reference).toBe('Organization/hpsj');
    const admin = tokenFor(server, { scope: 'user/*.rs', fhirUser: 'Practitioner/hpsj-md-1', roles: ['plan-admin'] });
    expect((await call(admin, `$second-opinion-report?period=${period}&plan=bsp`)).status).toBe(200);
    const auditor = tokenFor(server, { scope: 'user/*.rs', roles: ['auditor'] });
    const all = await call(auditor, `$second-opinion-report?period=${period}`);
    expect(all.status).toBe(200);
    expect((all.body as MeasureReport).reporter).toBeUndefined();
  });

  it('R11: staff with the app\'s scopes (read everything, update Tasks) act on a case: the operation updates the Task and only reads the request and the member', async () => {
    const task = await submit('bsp', 'member-bsp-2', 'PractitionerRole/role-oon-neuro-1');
    const appStaff = tokenFor(server, { scope: 'openid fhirUser user/*.rs user/Task.u', fhirUser: 'Practitioner/bsp-um-1', roles: ['um-clinician'] });
    const res = await call(appStaff, `Task/${task.id}/$request-info`, params([{ name: 'what', valueString: 'Latest echocardiogram' }]));
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(step(res.body as Task)).toBe('info-requested');
  });

  it('a stale If-Match is 412 and a body that is not Parameters is 400; neither changes the case', async () => {
    const task = await submit('bsp', 'member-bsp-2', 'PractitionerRole/role-oon-neuro-1');
    const approve = (body: unknown, headers: Record<string, string> = {}) =>
      raw(`${server.fhirBase}/Task/${task.id}/$request-info`, { method: 'POST', headers: { authorization: `Bearer ${as('bsp', 'um')}`, ...headers }, json: body });
    const stale = await approve(params([{ name: 'what', valueString: 'labs' }]), { 'if-match': 'W/"999"' });
    expect(stale.status).toBe(412);
    for (const body of [[], null, 'labs', { resourceType: 'Parameters', parameter: [{ name: 42 }] }]) {
      const res = await approve(body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.resourceType).toBe('OperationOutcome');
    }
    expect(((await call(as('bsp', 'um'), `Task/${task.id}`)).body as Task).meta?.versionId).toBe(task.meta?.versionId);
  });

  const unchanged = async (plan: string, task: Task) => expect(((await call(as(plan, 'um'), `Task/${task.id}`)).body as Task).meta?.versionId).toBe(task.meta?.versionId);
  const recipientsOf = async (plan: string, task: Task, category: string) =>
    ((await call(as(plan, 'um'), `Communication?based-on=${task.focus!.reference}&category:text=${category}`)).body as Bundle).entry?.map((e) => (e.resource as Communication).recipient?.[0].reference).sort();
  const letterText = async (plan: string, task: Task, label: string) => {
    const ref = task.output?.find((o) => o.type.text === label)?.valueReference?.reference;
    return Buffer.from(((await call(as(plan, 'um'), ref!)).body as DocumentReference).content[0].attachment.data!, 'base64').toString();
  };
  /** A request the member makes (BSP D.VI.a: "if the member is making the request"), about a cardiologist's care. */
  async function memberSubmits(member: string, extra: Partial<ServiceRequest> = {}): Promise<Task> {
    const memberToken = tokenFor(server, { scope: 'launch/patient patient/*.cruds', patient: member, fhirUser: `Patient/${member}`, roles: ['member'] });
    const sr: ServiceRequest = {
      resourceType: 'ServiceRequest',
      identifier: [{ system: IDENTIFIER_SYSTEMS.secondOpinionRequest, value: `member-${Math.random()}` }],
      status: 'draft',
      intent: 'order',
      subject: { reference: `Patient/${member}` },
      requester: { reference: `Patient/${member}` },
      insurance: [{ reference: `Coverage/coverage-${member}` }],
      reasonCode: [{ coding: [{ system: CODE_SYSTEMS.reason, code: 'not-improving' }] }],
      performerType: { coding: [{ system: CODE_SYSTEMS.nucc, code: '207RC0000X' }] },
      extension: [{ url: EXTENSIONS.careQuestioned, valueReference: { reference: 'PractitionerRole/role-bsp-card-1' } }],
      ...extra,
    };
    const res = await call(memberToken, 'ServiceRequest/$submit', { resourceType: 'Bundle', type: 'collection', entry: [{ resource: sr }] });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return res.body.entry[3].resource as Task;
  }

  it('R10: approving another professional than the one requested is a modification, refused on $approve; with no one requested, approving names the one authorized, who must qualify (R4-R7)', async () => {
    const task = await submit('hpsj', 'member-hpsj-1', 'PractitionerRole/role-oon-card-1', { performerType: { coding: [{ system: CODE_SYSTEMS.nucc, code: '207RC0000X' }] } });
    expect(step(task)).toBe('um-review');
    const steered = await call(as('hpsj', 'um'), `Task/${task.id}/$approve`, params([{ name: 'authorizedPractitionerRole', valueReference: { reference: 'PractitionerRole/role-hpsj-card-2' } }]));
    expect(steered.status, JSON.stringify(steered.body)).toBe(422);
    expect(steered.body.resourceType).toBe('OperationOutcome');
    expect(steered.body.issue[0].diagnostics).toMatch(/R10.*\$modify/);
    await unchanged('hpsj', task);
    // The professional requested, named or not, is approved.
    const same = await call(as('hpsj', 'um'), `Task/${task.id}/$approve`, params([{ name: 'authorizedPractitionerRole', valueReference: { reference: 'PractitionerRole/role-oon-card-1' } }]));
    expect(same.status, JSON.stringify(same.body)).toBe(200);

    const unnamed = await submit('bsp', 'member-bsp-2', 'PractitionerRole/role-oon-neuro-1', { performer: undefined });
    expect(step(unnamed)).toBe('um-review');
    // R4-R7: whoever is named must qualify, by the rules applied at intake: a cardiologist does not give a neurology opinion.
    const unqualified = await call(as('bsp', 'um'), `Task/${unnamed.id}/$approve`, params([{ name: 'authorizedPractitionerRole', valueReference: { reference: 'PractitionerRole/role-oon-card-1' } }]));
    expect(unqualified.status, JSON.stringify(unqualified.body)).toBe(422);
    expect(unqualified.body.issue[0].diagnostics).toMatch(/does not qualify.*not the same specialty \(R6\)/);
    await unchanged('bsp', unnamed);
    const assigned = await call(as('bsp', 'um'), `Task/${unnamed.id}/$approve`, params([{ name: 'authorizedPractitionerRole', valueReference: { reference: 'PractitionerRole/role-oon-neuro-1' } }]));
    expect(assigned.status, JSON.stringify(assigned.body)).toBe(200);
    expect((assigned.body as Task).output?.find((o) => o.type.text === 'authorized-professional')?.valueReference?.reference).toBe('PractitionerRole/role-oon-neuro-1');
  });

  it('R11 BSP D.VI-VII: once the case is with the Medical Director, the UM clinician may not approve it; the Medical Director may', async () => {
    const task = await submit('bsp', 'member-bsp-2', 'PractitionerRole/role-oon-neuro-1');
    const escalated = await call(as('bsp', 'um'), `Task/${task.id}/$escalate`, params([]));
    expect(step(escalated.body)).toBe('medical-director-review');
    const byUm = await call(as('bsp', 'um'), `Task/${task.id}/$approve`, params([]));
    expect(byUm.status, JSON.stringify(byUm.body)).toBe(403);
    expect(byUm.body.issue[0].diagnostics).toMatch(/Only medical-director may approve/);
    await unchanged('bsp', escalated.body as Task);
    const byMd = await call(as('bsp', 'md'), `Task/${task.id}/$approve`, params([]));
    expect(byMd.status, JSON.stringify(byMd.body)).toBe(200);
  });

  it('R9 42 CFR 438.210(d)(1)(ii), 438.404(c)(4): the extension notice gives the reason and the grievance right, the notification dues move with the decision due date, and an overdue case is not extended', async () => {
    const task = await submit('hpsj', 'member-hpsj-2', 'PractitionerRole/role-oon-neuro-1');
    const extended = await call(as('hpsj', 'um'), `Task/${task.id}/$extend`, params([{ name: 'days', valueInteger: 14 }, { name: 'reason', valueString: 'Awaiting echocardiogram results from the cardiologist' }]));
    expect(extended.status, JSON.stringify(extended.body)).toBe(200);
    const saved = extended.body as Task;
    const due = Date.parse(saved.restriction!.period!.end!);
    const input = (label: string) => Date.parse(saved.input!.find((i) => i.type.text === label)!.valueDateTime!);
    // The notice clock is extended with the decision (42 CFR 438.210(d)(1)(ii)): both notices by the new due date, later than before.
    const before = (label: string) => Date.parse(task.input!.find((i) => i.type.text === label)!.valueDateTime!);
    for (const label of ['provider-notification-due', 'member-notification-due']) {
      expect(input(label), label).toBe(due);
      expect(input(label), label).toBeGreaterThan(before(label));
    }
    const html = await letterText('hpsj', saved, 'extension-notice');
    expect(html).toContain('Awaiting echocardiogram results from the cardiologist');
    expect(html).toMatch(/file a grievance/);
    expect(html).toContain('Grievance and Appeals Department');

    const late = await submit('hpsj', 'member-hpsj-2', 'PractitionerRole/role-oon-neuro-1');
    const { resource: overdue } = await server.store.update<Task>({ ...late, restriction: { ...late.restriction, period: { ...late.restriction?.period, end: new Date(Date.now() - 60_000).toISOString() } } });
    const refused = await call(as('hpsj', 'um'), `Task/${late.id}/$extend`, params([{ name: 'days', valueInteger: 14 }, { name: 'reason', valueString: 'late' }]));
    expect(refused.status, JSON.stringify(refused.body)).toBe(409);
    expect(refused.body.issue[0].code).toBe('business-rule');
    await unchanged('hpsj', overdue);
  });

  it('R11 BSP D.IV, H&S 1367.01(h)(4): when the member asked, the information request goes to the treating provider, who answers it; the delay notice names what is missing and a copy goes to that provider', async () => {
    const task = await memberSubmits('member-bsp-1');
    expect(step(task)).toBe('um-review');
    const asked = await call(as('bsp', 'um'), `Task/${task.id}/$request-info`, params([{ name: 'what', valueString: 'Recent MRI report' }]));
    expect(asked.status, JSON.stringify(asked.body)).toBe(200);
    const infoRef = (asked.body as Task).output!.find((o) => o.type.text === 'information-request')!.valueReference!.reference!;
    expect(((await call(as('bsp', 'um'), infoRef)).body as Task).owner?.reference).toBe('PractitionerRole/role-bsp-card-1');
    expect(await letterText('bsp', asked.body as Task, 'delay-notice')).toContain('Recent MRI report');
    expect(await recipientsOf('bsp', task, 'delay')).toEqual(['Patient/member-bsp-1', 'PractitionerRole/role-bsp-card-1']);
    const cardiologist = tokenFor(server, { scope: 'user/*.cruds', fhirUser: 'Practitioner/bsp-card-1', roles: ['treating-provider'] });
    const doc = await call(cardiologist, 'DocumentReference', { resourceType: 'DocumentReference', status: 'current', subject: { reference: 'Patient/member-bsp-1' }, content: [{ attachment: { contentType: 'text/plain', data: Buffer.from('MRI').toString('base64') } }] });
    const answered = await call(cardiologist, `Task/${task.id}/$answer-info`, params([{ name: 'document', valueReference: { reference: `DocumentReference/${doc.body.id}` } }]));
    expect(answered.status, JSON.stringify(answered.body)).toBe(200);
  });

  it('R11 BSP D.V, H&S 1367.01(h)(3): when the member asked, the decision goes to the member once and to the providers (authorized and treating)', async () => {
    const task = await memberSubmits('member-bsp-1');
    const approved = await call(as('bsp', 'um'), `Task/${task.id}/$approve`, params([{ name: 'authorizedPractitionerRole', valueReference: { reference: 'PractitionerRole/role-bsp-card-2' } }]));
    expect(approved.status, JSON.stringify(approved.body)).toBe(200);
    expect(await recipientsOf('bsp', task, 'approval')).toEqual(['Patient/member-bsp-1', 'PractitionerRole/role-bsp-card-1', 'PractitionerRole/role-bsp-card-2']);
    const denied = await memberSubmits('member-bsp-1');
    await call(as('bsp', 'um'), `Task/${denied.id}/$escalate`, params([]));
    expect((await call(as('bsp', 'md'), `Task/${denied.id}/$deny`, params([{ name: 'reason', valueString: 'not needed' }]))).status).toBe(200);
    expect(await recipientsOf('bsp', denied, 'denial')).toEqual(['Patient/member-bsp-1', 'PractitionerRole/role-bsp-card-1']);
  });

  /** Each recipient's letter of a notice on the Task: recipient reference → the HTML of the letter its Communication carries. */
  const lettersByRecipient = async (plan: string, task: Task, label: string): Promise<Record<string, string>> => {
    const refs = task.output?.filter((o) => o.type.text === label).map((o) => o.valueReference!.reference!) ?? [];
    const out: Record<string, string> = {};
    for (const ref of refs.filter((r) => r.startsWith('Communication/'))) {
      const sent = (await call(as(plan, 'um'), ref)).body as Communication;
      const doc = (await call(as(plan, 'um'), sent.payload![0].contentReference!.reference!)).body as DocumentReference;
      out[sent.recipient![0].reference!] = Buffer.from(doc.content[0].attachment.data!, 'base64').toString();
    }
    return out;
  };
  const CARDIOLOGY = { coding: [{ system: CODE_SYSTEMS.nucc, code: '207RC0000X' }] };
  const rightsList = (html: string) => /<ul>.*?<\/ul>/s.exec(html)?.[0];

  it('R10 BSP D.V: the provider is sent a copy worded about "your patient", with the reason, criteria and the rights the member was told of; the member their own letter', async () => {
    const task = await submit('bsp', 'member-bsp-2', 'PractitionerRole/role-oon-neuro-1');
    await call(as('bsp', 'um'), `Task/${task.id}/$escalate`, params([]));
    const denied = await call(as('bsp', 'md'), `Task/${task.id}/$deny`, params([{ name: 'reason', valueString: 'A neurologist is available in network' }, { name: 'criteria', valueString: 'BSP 10.02.44 C.I' }]));
    expect(denied.status, JSON.stringify(denied.body)).toBe(200);
    const letters = await lettersByRecipient('bsp', denied.body as Task, 'denial-notice');
    const member = letters['Patient/member-bsp-2'];
    const provider = letters['PractitionerRole/role-bsp-pcp-1'];
    expect(member).toContain('Dear Tyrone Brown,');
    expect(member).toContain('We denied your request');
    expect(provider).toContain('Regarding your patient Tyrone Brown');
    expect(provider).toContain('We denied the request for a second medical opinion for your patient.');
    expect(provider).not.toMatch(/Dear |We denied your request/);
    for (const fact of ['A neurologist is available in network', 'BSP 10.02.44 C.I']) expect(provider).toContain(fact);
    expect(rightsList(provider)).toBe(rightsList(member));
  });

  it('R3 HPSJ III.A, R10: an approval on receipt naming a Practitioner names the professional in the member\'s language (Spanish), in the member\'s letter and the provider copy', async () => {
    const task = await submit('hpsj', 'member-hpsj-1', 'Practitioner/hpsj-card-2', { performerType: CARDIOLOGY });
    expect(step(task)).toBe('approved');
    const letters = await lettersByRecipient('hpsj', task, 'approval-notice');
    expect(letters['Patient/member-hpsj-1']).toContain('El profesional que la dará es <strong>Dr. Hanna Schmidt</strong>.');
    expect(letters['PractitionerRole/role-hpsj-pcp-1']).toContain('para su paciente está aprobada. El profesional que la dará es <strong>Dr. Hanna Schmidt</strong>.');
    for (const html of Object.values(letters)) expect(html).not.toMatch(/qualified professional/);
  });

  it('R3 HPSJ III.A: a request naming no professional is arranged, not authorized: the UM clinician names the professional, no authorization number is issued, and the answer and the letters say so', async () => {
    const task = await submit('hpsj', 'member-hpsj-1', '', { performer: undefined, performerType: CARDIOLOGY });
    expect(step(task)).toBe('um-review');
    expect(task.businessStatus?.text).toMatch(/No authorization is needed.*arranges a qualified professional in its network/);
    const approved = await call(as('hpsj', 'um'), `Task/${task.id}/$approve`, params([{ name: 'authorizedPractitionerRole', valueReference: { reference: 'PractitionerRole/role-hpsj-card-2' } }]));
    expect(approved.status, JSON.stringify(approved.body)).toBe(200);
    const saved = approved.body as Task;
    expect(saved.output?.find((o) => o.type.text === 'preauth-ref')).toBeUndefined();
    const response = (await call(as('hpsj', 'um'), saved.input!.find((i) => i.type.text === 'eligibility-response')!.valueReference!.reference!)).body as CoverageEligibilityResponse;
    expect([response.outcome, response.preAuthRef, response.insurance?.[0].item?.[0].authorizationRequired]).toEqual(['complete', undefined, false]);
    expect(response.disposition).toMatch(/^Arranged without authorization: Dr\. Hanna Schmidt gives the opinion\./);
    const sr = (await call(as('hpsj', 'um'), saved.focus!.reference!)).body as ServiceRequest;
    expect(sr.extension?.find((e) => e.url === EXTENSIONS.crdCoverageInformation)?.extension?.find((e) => e.url === 'pa-needed')?.valueCode).toBe('no-auth');
    for (const html of Object.values(await lettersByRecipient('hpsj', saved, 'approval-notice'))) {
      expect(html).toContain('Dr. Hanna Schmidt');
      expect(html).not.toMatch(/Authorization number|Número de autorización/);
    }
  });

  it('R6, R11 BSP D.VI: the specialty requested is worked out one way: naming none, it is the care questioned\'s, for the opinion and for the consultative reviewer alike', async () => {
    // A cardiologist's care is questioned, and an out-of-network neurologist is asked for: the opinion is a cardiology one (R6).
    const task = await submit('bsp', 'member-bsp-2', 'PractitionerRole/role-oon-neuro-1', { performerType: undefined, extension: [{ url: EXTENSIONS.careQuestioned, valueReference: { reference: 'PractitionerRole/role-bsp-card-2' } }] });
    const response = (await call(as('bsp', 'um'), task.input!.find((i) => i.type.text === 'eligibility-response')!.valueReference!.reference!)).body as CoverageEligibilityResponse;
    expect(response.disposition).toMatch(/not the same specialty \(R6\)/);
    expect((await call(as('bsp', 'um'), `Task/${task.id}/$escalate`, params([]))).status).toBe(200);
    const neurologist = await call(as('bsp', 'md'), `Task/${task.id}/$refer-consultative-review`, params([{ name: 'reviewer', valueReference: { reference: 'PractitionerRole/role-oon-neuro-2' } }]));
    expect(neurologist.status, JSON.stringify(neurologist.body)).toBe(422);
    expect(neurologist.body.issue[0].diagnostics).toContain('NUCC 207RC0000X');
    const cardiologist = await call(as('bsp', 'md'), `Task/${task.id}/$refer-consultative-review`, params([{ name: 'reviewer', valueReference: { reference: 'PractitionerRole/role-bsp-card-1' } }]));
    expect(cardiologist.status, JSON.stringify(cardiologist.body)).toBe(200);
  });

  it('R9 H&S 1383.15, R14: the opinion due date is on the overdue watch: past due without a report it is overdue in the committee figures, and a late report is not on time', async () => {
    const period = new Intl.DateTimeFormat('en-CA', { timeZone: 'America/Los_Angeles', year: 'numeric', month: '2-digit' }).format(new Date());
    const figures = async () => {
      const report = (await call(as('hpsj', 'um'), `$second-opinion-report?period=${period}&plan=hpsj`)).body as MeasureReport;
      const group = report.group?.find((g) => g.code?.coding?.[0].code === 'opinion-timeliness');
      return Object.fromEntries((group?.population ?? []).map((p) => [p.code?.text, p.count]));
    };
    const before = await figures();
    const task = await submit('hpsj', 'member-hpsj-1', 'PractitionerRole/role-hpsj-card-2', { performerType: CARDIOLOGY, extension: [{ url: EXTENSIONS.imminentThreat, valueBoolean: true }] });
    expect(step(task)).toBe('approved');
    const opinionDue = task.input?.find((i) => i.type.text === 'opinion-due');
    expect(opinionDue?.valueDateTime).toBeDefined();
    // The 72 hours have passed and no report came.
    const past = new Date(Date.now() - 60_000).toISOString();
    await server.store.update<Task>({ ...task, input: task.input!.map((i) => (i === opinionDue ? { ...i, valueDateTime: past } : i)) });
    const overdue = await figures();
    expect([overdue.due, overdue.overdue]).toEqual([(before.due ?? 0) + 1, (before.overdue ?? 0) + 1]);
    const csv = await (await fetch(`${server.url}/reports/second-opinion.csv?period=${period}&plan=hpsj`, { headers: { authorization: `Bearer ${as('hpsj', 'um')}` } })).text();
    expect(csv).toContain(`opinions-overdue,,${overdue.overdue}`);
    const report = { resourceType: 'DocumentReference', status: 'current', description: 'Agree with the plan', content: [{ attachment: { contentType: 'text/plain', data: Buffer.from('x').toString('base64') } }] };
    expect((await call(as('hpsj', 'second'), `Task/${task.id}/$post-report`, params([{ name: 'report', resource: report as DocumentReference }]))).status).toBe(200);
    const reported = await figures();
    expect([reported.overdue, reported.reported, reported['on-time']]).toEqual([before.overdue ?? 0, (before.reported ?? 0) + 1, before['on-time'] ?? 0]);
  });

  it('concurrent approve and deny of one case: exactly one wins', async () => {
    const task = await submit('bsp', 'member-bsp-2', 'PractitionerRole/role-oon-neuro-1');
    await call(as('bsp', 'um'), `Task/${task.id}/$escalate`, params([]));
    const [a, d] = await Promise.all([
      call(as('bsp', 'md'), `Task/${task.id}/$approve`, params([{ name: 'authorizedPractitionerRole', valueReference: { reference: 'PractitionerRole/role-oon-neuro-1' } }])),
      call(as('bsp', 'md'), `Task/${task.id}/$deny`, params([{ name: 'reason', valueString: 'not needed' }])),
    ]);
    expect([a.status, d.status].sort()).toEqual([200, 409]);
  });
});
