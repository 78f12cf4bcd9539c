import type { Bundle, Condition } from 'fhir/r4.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DemoServer, startDemoServer } from './helpers/demoServer.js';
import { raw } from './helpers/fhir.js';
import { tokenFor } from './helpers/tokens.js';

/**
 * A reference by this server's own absolute URL is the relative reference it names (R4 references.html):
 * `patient=` searches (`subject.where(resolve() is Patient)`), includes and the patient compartment find it.
 */
describe('references by this server\'s absolute URL', () => {
  let server: DemoServer;
  let admin: string;
  const member = 'member-hpsj-1';
  const call = (token: string, path: string, init: RequestInit & { json?: unknown } = {}) =>
    raw(`${server.fhirBase}/${path}`, { ...init, headers: { authorization: `Bearer ${token}`, ...(init.headers ?? {}) } });

  beforeAll(async () => {
    server = await startDemoServer();
    admin = tokenFor(server, { scope: 'user/*.cruds', roles: ['plan-admin'] });
  });
  afterAll(async () => server?.close());

  it('are stored relative, found by patient=, included, and in the member\'s compartment', async () => {
    const condition: Condition = {
      resourceType: 'Condition',
      subject: { reference: `${server.fhirBase}/Patient/${member}` },
      code: { text: `own-base ${Date.now()}` },
    };
    const created = await call(admin, 'Condition', { method: 'POST', json: condition });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    expect((created.body as Condition).subject.reference).toBe(`Patient/${member}`);
    const id = (created.body as Condition).id!;

    const byPatient = await call(admin, `Condition?patient=${member}&_id=${id}`);
    expect(((byPatient.body as Bundle).entry ?? []).map((e) => e.resource?.id)).toEqual([id]);
    const revIncluded = await call(admin, `Patient?_id=${member}&_revinclude=Condition:patient`);
    expect(((revIncluded.body as Bundle).entry ?? []).some((e) => e.resource?.id === id)).toBe(true);

    const memberToken = tokenFor(server, { scope: 'launch/patient patient/*.rs', fhirUser: `Patient/${member}`, roles: ['member'], patient: member });
    expect((await call(memberToken, `Condition/${id}`)).status).toBe(200);
    const other = tokenFor(server, { scope: 'launch/patient patient/*.rs', fhirUser: 'Patient/member-hpsj-2', roles: ['member'], patient: 'member-hpsj-2' });
    expect((await call(other, `Condition/${id}`)).status).toBe(404);
  });

  it('another server\'s absolute URL is kept as it was sent', async () => {
    const elsewhere = `https://ehr.example.org/fhir/Patient/${member}`;
    const created = await call(admin, 'Condition', { method: 'POST', json: { resourceType: 'Condition', subject: { reference: elsewhere } } });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    expect((created.body as Condition).subject.reference).toBe(elsewhere);
  });
});
