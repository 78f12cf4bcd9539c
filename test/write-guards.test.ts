import type { Bundle, PractitionerRole, Task } from 'fhir/r4.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CODE_SYSTEMS, PROFILES } from '../server/src/fhir/systems.js';
import { type DemoServer, startDemoServer } from './helpers/demoServer.js';
import { raw } from './helpers/fhir.js';
import { inNetworkHpsjRequest } from './helpers/requests.js';
import { tokenFor } from './helpers/tokens.js';

/**
 * Writes that would bypass the review path or rewrite who may act: a case's records change only through
 * its operations, and the provider directory (whence users' roles and plans come) only by plan administration.
 */
describe('write guards: case records and the provider directory', () => {
  let server: DemoServer;
  let pcp: string;
  let member: string;
  let admin: string;
  let task: Task;
  beforeAll(async () => {
    server = await startDemoServer();
    pcp = tokenFor(server, { scope: 'user/*.cruds', fhirUser: 'Practitioner/hpsj-pcp-1', roles: ['treating-provider'] });
    member = tokenFor(server, { scope: 'launch/patient patient/*.cruds', patient: 'member-hpsj-1', fhirUser: 'Patient/member-hpsj-1', roles: ['member'] });
    admin = tokenFor(server, { scope: 'user/*.cruds', fhirUser: 'Practitioner/hpsj-md-1', roles: ['plan-admin'] });
    const submitted = await send(pcp, 'POST', 'ServiceRequest/$submit', inNetworkHpsjRequest());
    expect(submitted.status).toBe(201);
    const tasks = (await send(pcp, 'GET', `Task?_profile=${encodeURIComponent(PROFILES.task)}&patient=member-hpsj-1&_count=1`)).body as Bundle;
    task = tasks.entry![0].resource as Task;
  });
  afterAll(async () => server?.close());

  const send = (token: string, method: string, path: string, json?: unknown, contentType = 'application/fhir+json') =>
    raw(`${server.fhirBase}/${path}`, { method, headers: { authorization: `Bearer ${token}`, 'content-type': contentType }, json });

  it("a case's Task is not changed, replaced, deleted or forged by plain writes, by its requester or its member (403)", async () => {
    const forged = [{ op: 'replace', path: '/status', value: 'accepted' }];
    for (const token of [pcp, member]) {
      expect((await send(token, 'PATCH', `Task/${task.id}`, forged, 'application/json-patch+json')).status).toBe(403);
      expect((await send(token, 'PUT', `Task/${task.id}`, { ...task, status: 'accepted' })).status).toBe(403);
      // Dropping the profile does not help: the stored version is a case record.
      const { meta: _meta, ...unprofiled } = task;
      expect((await send(token, 'PUT', `Task/${task.id}`, { ...unprofiled, status: 'accepted' })).status).toBe(403);
      expect((await send(token, 'DELETE', `Task/${task.id}`)).status).toBe(403);
    }
    const { id: _id, meta: _m, ...copy } = task;
    expect((await send(pcp, 'POST', 'Task', { ...copy, meta: { profile: [PROFILES.task] } })).status).toBe(403);
    const after = (await send(pcp, 'GET', `Task/${task.id}`)).body as Task;
    expect(after.meta?.versionId).toBe(task.meta?.versionId);
    // Plan administration may correct a record by hand.
    const note = [{ op: 'add', path: '/note', value: [{ text: 'corrected by plan administration' }] }];
    expect((await send(admin, 'PATCH', `Task/${task.id}`, note, 'application/json-patch+json')).status).toBe(200);
  });

  it('the provider directory is written by plan administration only: nobody grants themselves a role (403)', async () => {
    const selfPromotion: PractitionerRole = {
      resourceType: 'PractitionerRole',
      practitioner: { reference: 'Practitioner/hpsj-pcp-1' },
      organization: { reference: 'Organization/hpsj' },
      code: [{ coding: [{ system: CODE_SYSTEMS.userRole, code: 'medical-director' }] }],
    };
    expect((await send(pcp, 'POST', 'PractitionerRole', selfPromotion)).status).toBe(403);
    const role = (await send(member, 'GET', 'PractitionerRole/role-hpsj-pcp-1')).body as PractitionerRole;
    expect((await send(member, 'PUT', 'PractitionerRole/role-hpsj-pcp-1', { ...role, active: false })).status).toBe(403);
    expect((await send(member, 'POST', 'Endpoint', { resourceType: 'Endpoint', status: 'active', connectionType: { code: 'hl7-fhir-rest' }, payloadType: [{ text: 'any' }], address: 'https://attacker.example/fhir' })).status).toBe(403);
    expect((await send(pcp, 'DELETE', 'Organization/hpsj')).status).toBe(403);
    expect(((await send(admin, 'GET', 'PractitionerRole/role-hpsj-pcp-1')).body as PractitionerRole).active).not.toBe(false);
    expect((await send(admin, 'PUT', 'PractitionerRole/role-hpsj-pcp-1', { ...role, active: true })).status).toBe(200);
  });

  it("a conditional update whose criteria match nothing the caller may see does not overwrite another member's record by its id (409)", async () => {
    const others = (await send(admin, 'GET', 'Condition/condition-member-hpsj-2')).body as { meta: { versionId: string }; subject: { reference: string } };
    const takeover = { resourceType: 'Condition', id: 'condition-member-hpsj-2', subject: { reference: 'Patient/member-hpsj-1' }, code: { text: 'rewritten' } };
    const res = await send(member, 'PUT', 'Condition?_id=condition-member-hpsj-2', takeover);
    expect(res.status, JSON.stringify(res.body)).toBe(409);
    expect(res.body.resourceType).toBe('OperationOutcome');
    const after = (await send(admin, 'GET', 'Condition/condition-member-hpsj-2')).body as typeof others;
    expect([after.meta.versionId, after.subject.reference]).toEqual([others.meta.versionId, others.subject.reference]);
    // Matching nothing with a new id still creates (update as create).
    const created = await send(member, 'PUT', 'Condition?_id=member-hpsj-1-new-condition', { ...takeover, id: 'member-hpsj-1-new-condition' });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
  });
});
