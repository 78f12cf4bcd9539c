/**
 * What the server writes and answers is R4 JSON its own validator accepts (json.html: no empty arrays, ele-1),
 * so a client can send it back: the CapabilityStatement, a case Task after an action that adds no output, the
 * committee MeasureReport and the AuditEvents of a batch.
 */
import type { AuditEvent, Bundle, CodeSystem, MeasureReport, Resource, StructureDefinition, Task } from 'fhir/r4.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readConformanceResources } from '../server/src/fhir/conformance.js';
import { createResourceValidator } from '../server/src/fhir/resourceValidator.js';
import { type CaseRecord, reportFigures } from '../server/src/domain/reporting.js';
import { committeeMeasureReport } from '../server/src/workflow/reports.js';
import { type DemoServer, startDemoServer } from './helpers/demoServer.js';
import { raw } from './helpers/fhir.js';
import { hpsjCardiologyRequest } from './helpers/requests.js';
import { tokenFor } from './helpers/tokens.js';

describe('answers and stored records are valid R4 JSON', () => {
  let server: DemoServer;
  const validator = createResourceValidator(readConformanceResources().filter((r): r is StructureDefinition => r.resourceType === 'StructureDefinition'));
  const errors = (resource: Resource) => validator.validate(resource).filter((i) => i.severity === 'error' || i.severity === 'fatal').map((i) => `${i.expression?.join(',')}: ${i.diagnostics}`);
  const call = (token: string, path: string, json?: unknown) => raw(`${server.fhirBase}/${path}`, { method: json === undefined ? 'GET' : 'POST', headers: { authorization: `Bearer ${token}` }, json });
  const admin = () => tokenFor(server, { scope: 'user/*.cruds', fhirUser: 'Practitioner/hpsj-md-1', roles: ['plan-admin', 'auditor'] });

  beforeAll(async () => {
    server = await startDemoServer();
  });
  afterAll(async () => server?.close());

  it('the CapabilityStatement (no empty operation or searchInclude lists)', async () => {
    const statement = (await raw(`${server.fhirBase}/metadata`)).body as Resource;
    expect(errors(statement)).toEqual([]);
  });

  it('a case Task withdrawn before any output, and the committee MeasureReport with empty figures', async () => {
    const pcp = tokenFor(server, { scope: 'user/*.cruds', fhirUser: 'Practitioner/hpsj-pcp-1', roles: ['treating-provider'] });
    const submitted = await call(pcp, 'ServiceRequest/$submit', hpsjCardiologyRequest('PractitionerRole/role-oon-card-1'));
    expect(submitted.status, JSON.stringify(submitted.body)).toBe(201);
    const task = submitted.body.entry[3].resource as Task;
    expect(task.output).toBeUndefined();
    const member = tokenFor(server, { scope: 'launch/patient patient/*.cruds', fhirUser: 'Patient/member-hpsj-1', roles: ['member'], patient: 'member-hpsj-1' });
    const withdrawn = await call(member, `Task/${task.id}/$withdraw`, { resourceType: 'Parameters', parameter: [{ name: 'reason', valueString: 'no longer needed' }] });
    expect(withdrawn.status, JSON.stringify(withdrawn.body)).toBe(200);
    const stored = (await call(admin(), `Task/${task.id}`)).body as Task;
    expect(stored.status).toBe('cancelled');
    expect(errors(stored)).toEqual([]);

    const report = await call(admin(), '$second-opinion-report?period=2026-Q1&plan=hpsj');
    expect(report.status).toBe(200);
    expect(errors(report.body as Resource)).toEqual([]);
    // Its figures are coded in a CodeSystem the server publishes.
    const codings = (report.body as MeasureReport).group?.map((g) => g.code?.coding?.[0]) ?? [];
    const system = (await call(admin(), `CodeSystem?url=${encodeURIComponent(codings[0]?.system ?? '')}`)).body as Bundle;
    const concepts = ((system.entry?.[0]?.resource as CodeSystem | undefined)?.concept ?? []).map((c) => c.code);
    expect(codings.map((c) => c?.code).filter((code) => !concepts.includes(code!))).toEqual([]);
    expect(concepts.length).toBeGreaterThan(10);
  });

  it('R19: a committee MeasureReport whose percentages and hours have decimals (populations count, scores measure)', () => {
    const at = (day: number, hour = 0) => new Date(Date.UTC(2026, 6, day, hour)).toISOString();
    const decided = (outcome: string, expedited: boolean, hours: number): CaseRecord => ({ plan: 'hpsj', reasons: ['other'], outcome, expedited, receivedAt: at(1), dueAt: at(8), decidedAt: at(1, hours), extended: false });
    const figures = reportFigures([decided('approved', false, 5), decided('approved', false, 8), decided('denied', false, 12), decided('approved', true, 7)], [], new Date(at(20)));
    expect([figures.standard.approvedPct, figures.averageDecisionHours]).toEqual([66.7, 8]);
    const report = committeeMeasureReport({ ...figures, medianDecisionHours: 7.5 }, '2026-Q3', 'hpsj', new Date(at(20)));
    expect(errors(report)).toEqual([]);
    const standard = report.group?.find((g) => g.code?.coding?.[0]?.code === 'standard');
    expect([standard?.population?.map((p) => [p.code?.text, p.count]), standard?.measureScore]).toEqual([
      [['decided', 3], ['approved', 2], ['denied', 1]],
      { value: 66.7, unit: '%', system: 'http://unitsofmeasure.org', code: '%' },
    ]);
    expect(report.group?.find((g) => g.code?.coding?.[0]?.code === 'decision-hours-median')?.measureScore?.value).toBe(7.5);
  });

  it('the AuditEvents of a batch', async () => {
    const token = admin();
    const batch = await call(token, '', { resourceType: 'Bundle', type: 'batch', entry: [{ request: { method: 'GET', url: 'Patient/member-hpsj-1' } }] });
    expect(batch.status).toBe(200);
    // AuditEvents are stored in batches, within 50 ms.
    let events: AuditEvent[] = [];
    for (let wait = 0; wait < 40 && !events.length; wait++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      events = (((await call(token, 'AuditEvent?subtype=batch&_count=5')).body as Bundle).entry ?? []).map((e) => e.resource as AuditEvent);
    }
    expect(events.length).toBeGreaterThan(0);
    for (const event of events) expect(errors(event), event.id).toEqual([]);
  });
});
