/**
 * SMART App Launch 2 query-restricted scopes (US Core's granular scopes): `patient/Condition.rs?category=…`
 * grants only the Conditions its query matches, and is granted only where the server holds reads and
 * searches to it.
 */
import type { Bundle, Condition } from 'fhir/r4.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DemoServer, startDemoServer } from './helpers/demoServer.js';
import { raw } from './helpers/fhir.js';
import { smartAppGrant, tokenFor } from './helpers/tokens.js';

const CATEGORY = 'http://terminology.hl7.org/CodeSystem/condition-category';
const PROBLEM = `${CATEGORY}|problem-list-item`;
const DIAGNOSIS = `${CATEGORY}|encounter-diagnosis`;
const MEMBER = 'member-hpsj-1';
const OTHER_MEMBER = 'member-phc-1';

describe('query-restricted v2 scopes', () => {
  let server: DemoServer;
  let admin: string;
  const ids: Record<string, string> = {};

  const get = (path: string, token: string) => raw(`${server.fhirBase}/${path}`, { headers: { authorization: `Bearer ${token}` } });
  const grant = (user: string, scope: string) => smartAppGrant(server, user, scope);

  async function createCondition(patient: string, category: string): Promise<string> {
    const [system, code] = category.split('|');
    const body: Condition = { resourceType: 'Condition', subject: { reference: `Patient/${patient}` }, category: [{ coding: [{ system, code }] }], code: { text: `${code} of ${patient}` } };
    const res = await raw(`${server.fhirBase}/Condition`, { method: 'POST', headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/fhir+json' }, json: body });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return res.body.id as string;
  }

  const conditionIds = (bundle: Bundle) => (bundle.entry ?? []).filter((e) => e.search?.mode === 'match').map((e) => e.resource?.id).sort();

  beforeAll(async () => {
    server = await startDemoServer();
    admin = tokenFor(server, { scope: 'user/*.cruds', fhirUser: 'Practitioner/hpsj-md-1', roles: ['plan-admin'] });
    ids.memberProblem = await createCondition(MEMBER, PROBLEM);
    ids.memberDiagnosis = await createCondition(MEMBER, DIAGNOSIS);
    ids.otherDiagnosis = await createCondition(OTHER_MEMBER, DIAGNOSIS);
  });
  afterAll(async () => server?.close());

  it('a patient/ scope with a query grants reads and searches of what its query matches, in the patient compartment', async () => {
    const token = await grant(`Patient/${MEMBER}`, `launch/patient openid fhirUser patient/Condition.rs?category=${DIAGNOSIS}`);
    expect(token.scope.split(' ')).toContain(`patient/Condition.rs?category=${DIAGNOSIS}`);

    const found = await get('Condition', token.access_token);
    expect(found.status).toBe(200);
    expect(conditionIds(found.body)).toEqual([ids.memberDiagnosis]);
    expect(found.body.total ?? conditionIds(found.body).length).toBe(1);
    // The caller's own parameters narrow further; they never widen.
    expect(conditionIds((await get(`Condition?category=${PROBLEM}`, token.access_token)).body)).toEqual([]);

    expect((await get(`Condition/${ids.memberDiagnosis}`, token.access_token)).status).toBe(200);
    const outsideQuery = await get(`Condition/${ids.memberProblem}`, token.access_token);
    // Outside the query or the compartment: answered as a missing id; a type with no scope at all stays 403.
    expect(outsideQuery.status).toBe(404);
    expect(outsideQuery.body.resourceType).toBe('OperationOutcome');
    expect((await get(`Condition/${ids.otherDiagnosis}`, token.access_token)).status).toBe(404);
    // Nothing else: other types, history and writes need a scope of their own.
    expect((await get(`Patient/${MEMBER}`, token.access_token)).status).toBe(403);
    expect((await get(`Condition/${ids.memberDiagnosis}/_history`, token.access_token)).status).toBe(403);
  });

  it('a user/ scope with a query reaches the patients the user may see, only through its query; several scopes of a type add up', async () => {
    const token = await grant('Practitioner/hpsj-pcp-1', `openid fhirUser user/Condition.rs?category=${DIAGNOSIS}`);
    const found = conditionIds((await get('Condition', token.access_token)).body);
    expect(found).toContain(ids.memberDiagnosis);
    expect(found).not.toContain(ids.memberProblem);
    // Another plan's member, whom this PCP does not treat (workflow/memberAccess.ts): not through a query either.
    expect(found).not.toContain(ids.otherDiagnosis);
    expect((await get(`Condition/${ids.otherDiagnosis}`, token.access_token)).status).toBe(404);

    const both = await grant('Practitioner/hpsj-pcp-1', `openid fhirUser user/Condition.rs?category=${DIAGNOSIS} user/Condition.rs?_id=${ids.memberProblem}`);
    const union = conditionIds((await get('Condition', both.access_token)).body);
    expect(union).toContain(ids.memberProblem);
    expect(union).toContain(ids.memberDiagnosis);
    expect((await get(`Condition/${ids.memberProblem}`, both.access_token)).status).toBe(200);
  });

  it('a refresh may not bring in a query-restricted scope the server cannot hold to its query (invalid_scope)', async () => {
    const token = await smartAppGrant(server, `Patient/${MEMBER}`, 'launch/patient openid offline_access patient/*.rs');
    const refresh = (scope: string) =>
      raw(`${server.url}/auth/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: token.refresh_token!, client_id: 'second-opinion-app', scope }).toString() });
    const refused = await refresh('patient/Condition.rs?no-such-param=1');
    expect([refused.status, refused.body.error]).toEqual([400, 'invalid_scope']);
    const narrowed = await refresh(`patient/Condition.rs?category=${DIAGNOSIS}`);
    expect(narrowed.status, JSON.stringify(narrowed.body)).toBe(200);
    expect(narrowed.body.scope).toBe(`patient/Condition.rs?category=${DIAGNOSIS}`);
  });

  it('is granted only for reads and searches of a concrete type, by parameters the server searches by', async () => {
    const token = await grant(
      `Patient/${MEMBER}`,
      [
        'launch/patient openid',
        `patient/Condition.cruds?category=${DIAGNOSIS}`,
        `patient/*.rs?category=${DIAGNOSIS}`,
        'patient/Condition.rs?no-such-param=1',
        'patient/Condition.rs?category=x&_include=Condition:subject',
        'patient/Condition.rs?subject.name=x',
        'patient/Coverage.rs',
      ].join(' '),
    );
    expect(token.scope.split(' ').sort()).toEqual(['launch/patient', 'openid', 'patient/Coverage.rs']);
    expect((await get('Condition', token.access_token)).status).toBe(403);
  });
});
