import type { Bundle, Communication, DocumentReference, Parameters, ServiceRequest, Task } from 'fhir/r4.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CODE_SYSTEMS, EXTENSIONS, IDENTIFIER_SYSTEMS, PROFILES } from '../server/src/fhir/systems.js';
import { type DemoServer, startDemoServer } from './helpers/demoServer.js';
import { raw } from './helpers/fhir.js';
import { tokenFor } from './helpers/tokens.js';

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

    it('submit → approve (letters, preAuthRef, transportation) → report posted by the authorized professional → member and PCP receive it → completed', async () => {
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
      expect(current.output?.some((o) => o.type.text === 'transportation')).toBe(true);
      const letters = (await call(as(plan, 'um'), `Communication?based-on=${current.focus!.reference}`)).body as Bundle;
      expect(letters.entry?.map((e) => (e.resource as Communication).recipient?.[0].reference).sort()).toEqual([`Patient/${member}`, `PractitionerRole/role-${plan}-pcp-1`].sort());
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
    const report = await call(as('bsp', 'um'), `$second-opinion-report?period=${period}&plan=bsp`);
    expect(report.status, JSON.stringify(report.body)).toBe(200);
    expect(report.body.resourceType).toBe('MeasureReport');
    const casesGroup = report.body.group.find((g: { code: { coding: { code: string }[] } }) => g.code.coding[0].code === 'cases');
    expect(casesGroup.population[0].count).toBeGreaterThanOrEqual(2);
    const byOutcome = report.body.group.find((g: { code: { coding: { code: string }[] } }) => g.code.coding[0].code === 'by-outcome');
    expect(byOutcome.population.map((p: { code: { text: string } }) => p.code.text)).toContain('denied');
    const csv = await fetch(`${server.url}/reports/second-opinion.csv?period=${period}&plan=bsp`, { headers: { authorization: `Bearer ${as('bsp', 'um')}` } });
    expect(csv.headers.get('content-type')).toContain('text/csv');
    expect(await csv.text()).toMatch(/^metric,key,value\ncases,,\d+/);
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

  it('R18 BSP D.IX: a delegated IPA decision keeps a copy of the request and clinical information at decision time', async () => {
    const task = await submit('bsp', 'member-bsp-1', 'PractitionerRole/role-oon-neuro-1', { supportingInfo: [{ reference: 'Condition/condition-member-bsp-1' }] });
    const ipa = tokenFor(server, { scope: 'system/*.cruds', roles: ['delegated-group'] });
    const approved = await call(ipa, `Task/${task.id}/$approve`, params([]));
    expect(approved.status, JSON.stringify(approved.body)).toBe(200);
    const copyRef = approved.body.output.find((o: { type: { text: string } }) => o.type.text === 'delegated-decision-copy').valueReference.reference;
    const copy = (await call(as('bsp', 'um'), copyRef)).body as DocumentReference;
    const bundle = JSON.parse(Buffer.from(copy.content[0].attachment.data!, 'base64').toString()) as Bundle;
    expect(bundle.entry?.map((e) => e.resource?.resourceType)).toEqual(['ServiceRequest', 'Patient', 'Condition']);
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
