import { createHmac, randomUUID } from 'node:crypto';
import type { AuditEvent, Bundle, BundleEntry, DocumentReference, Patient, Resource, ServiceRequest, Task } from 'fhir/r4.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recordResult } from './helpers/results.js';
import type { Grant } from '../server/src/auth/accessTokens.js';
import { loadSigningKey } from '../server/src/auth/signingKeys.js';
import { CODE_SYSTEMS, IDENTIFIER_SYSTEMS, PROFILES } from '../server/src/fhir/systems.js';
import { type DemoServer, startDemoServer } from './helpers/demoServer.js';
import { raw } from './helpers/fhir.js';
import { inNetworkHpsjRequest } from './helpers/requests.js';
import { backendAssertion, forgedToken, pkce, tokenFor } from './helpers/tokens.js';

/**
 * A table of access attempts that must be refused (or, for searches, answered without the
 * target's data). Every row checks its status, that nothing of the target member came back, and
 * that nothing changed (counts and versions of the case files); the last test checks the audit log.
 *
 * The target is member-hpsj-1 (Maria Garcia) and her second-opinion cases; the attacking member is
 * member-hpsj-2 of the same plan.
 */

type Res = { status: number; headers: Headers; body: any };

const TARGET = 'member-hpsj-1';
const ATTACKER = 'member-hpsj-2';
const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

/**
 * What the audit log must show for the row:
 * - `failure`: a FHIR API call with a valid token, refused: an AuditEvent with outcome != 0 for the token's jti.
 * - `not-a-refusal`: a search answered 200 with the target filtered out (an audited success).
 * - `batch-entry`: a batch answered 200 whose entries were refused: each entry is audited on its own,
 *   a failure for the token's jti.
 * - `login-failure`: refused before anyone is authenticated (a bad bearer token at /fhir, or the
 *   authorization server at /auth/authorize and /auth/token): a DICOM Login (110114) AuditEvent with a
 *   failure outcome and no token to tie it to; counted.
 * - `pre-auth`: a CORS preflight, answered without reaching the API (not an access; not audited).
 */
type AuditExpectation = 'failure' | 'not-a-refusal' | 'batch-entry' | 'login-failure' | 'pre-auth';

interface Tools {
  /** A token signed by the server, recorded for the audit check. */
  token(grant: Partial<Grant> & { scope: string }, seconds?: number): string;
  fhir(method: string, path: string, token?: string, json?: unknown, headers?: Record<string, string>): Promise<Res>;
}

interface Attempt {
  category: string;
  name: string;
  status: number;
  audit: AuditExpectation;
  run: (t: Tools) => Promise<Res>;
  /** Row-specific checks beyond the common ones. */
  check?: (res: Res) => void;
}

interface Fixtures {
  /** Approved on receipt, authorized professional hpsj-card-2; letters sent. */
  caseA: Task;
  /** In UM review. */
  caseB: Task;
  /** Escalated to the medical director. */
  caseC: Task;
  /** Approved by a UM clinician, authorized professional oon-card-1 (out of network). */
  caseD: Task;
  letterDoc: string;
  letterComm: string;
  srA: string;
  phi: string[];
}

let server: DemoServer;
let fx: Fixtures;
const results = new Map<Attempt, { jtis: string[]; status: number }>();

const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
const unb64 = (s: string) => JSON.parse(Buffer.from(s, 'base64url').toString()) as Record<string, unknown>;
const jtiOf = (token: string) => unb64(token.split('.')[1]).jti as string;
const params = (p: unknown[]) => ({ resourceType: 'Parameters', parameter: p });
const report = { resourceType: 'DocumentReference', status: 'current', description: 'Consultation report', content: [{ attachment: { contentType: 'text/plain', data: Buffer.from('report').toString('base64') } }] };
const appRedirect = () => `${server.url}/app/index.html`;
const now = () => Math.floor(Date.now() / 1000);

const member = (t: Tools, patient = ATTACKER, scope = 'launch/patient patient/*.rs') => t.token({ scope, patient, fhirUser: `Patient/${patient}`, roles: ['member'] });
const practitioner = (t: Tools, who: string, role: Grant['roles'][number], scope = 'user/*.cruds') => t.token({ scope, fhirUser: `Practitioner/${who}`, roles: [role] });

async function oauthPost(path: string, body: Record<string, string>, headers: Record<string, string> = {}): Promise<Res> {
  return raw(`${server.url}${path}`, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body: new URLSearchParams(body).toString() });
}

/** A code from the (demo) authorization endpoint for `user`, bound to a PKCE challenge and redirect URI. */
async function codeFor(user: string, scope: string, challenge: string, redirect = appRedirect()): Promise<string> {
  const res = await fetch(`${server.url}/auth/authorize`, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ response_type: 'code', client_id: 'second-opinion-app', redirect_uri: redirect, scope, state: 's', aud: server.fhirBase, code_challenge: challenge, code_challenge_method: 'S256', user }),
  });
  const code = new URL(res.headers.get('location') ?? 'http://x/').searchParams.get('code');
  if (!code) throw new Error(`no code: ${res.status} ${res.headers.get('location')}`);
  return code;
}

/** A refresh token for the attacking member with `scope` (which must include offline_access). */
async function refreshTokenFor(scope: string): Promise<string> {
  const { verifier, challenge } = pkce();
  const code = await codeFor(`Patient/${ATTACKER}`, scope, challenge);
  const res = await oauthPost('/auth/token', { grant_type: 'authorization_code', code, redirect_uri: appRedirect(), client_id: 'second-opinion-app', code_verifier: verifier });
  if (res.status !== 200 || !res.body.refresh_token) throw new Error(`no refresh token: ${JSON.stringify(res.body)}`);
  return res.body.refresh_token as string;
}

const clientCredentials = (assertion: string, scope = 'system/*.rs') =>
  oauthPost('/auth/token', { grant_type: 'client_credentials', scope, client_assertion_type: ASSERTION_TYPE, client_assertion: assertion });

const authorizeGet = (over: Record<string, string>) => {
  const { challenge } = pkce();
  const q = new URLSearchParams({ response_type: 'code', client_id: 'second-opinion-app', redirect_uri: appRedirect(), scope: 'launch/patient openid fhirUser patient/*.rs', state: 'st', aud: server.fhirBase, code_challenge: challenge, code_challenge_method: 'S256', user: `Patient/${ATTACKER}`, ...over });
  return raw(`${server.url}/auth/authorize?${q}`, { redirect: 'manual' });
};

const preflight = async (path: string, origin: string): Promise<Res> =>
  raw(`${server.url}${path}`, { method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'GET', 'access-control-request-headers': 'authorization' } });

/** A valid-looking attacker token with its payload edited and the original signature kept. */
function tamper(t: Tools, edit: (claims: Record<string, unknown>) => Record<string, unknown>, base?: string): string {
  const token = base ?? member(t);
  const [h, p, s] = token.split('.');
  return `${h}.${b64(edit(unb64(p)))}.${s}`;
}

/** The $submit Bundle for a member, requested by `requester`. */
function submitBundle(subject: string, requester: string, coverage = `Coverage/coverage-${subject}`): Bundle {
  const sr: ServiceRequest = {
    resourceType: 'ServiceRequest',
    identifier: [{ system: IDENTIFIER_SYSTEMS.secondOpinionRequest, value: randomUUID() }],
    status: 'draft',
    intent: 'order',
    subject: { reference: `Patient/${subject}` },
    requester: { reference: requester },
    insurance: [{ reference: coverage }],
    reasonCode: [{ coding: [{ system: CODE_SYSTEMS.reason, code: 'unclear-diagnosis' }] }],
    performerType: { coding: [{ system: CODE_SYSTEMS.nucc, code: '2084N0400X' }] },
    performer: [{ reference: 'PractitionerRole/role-oon-neuro-1' }],
  };
  return { resourceType: 'Bundle', type: 'collection', entry: [{ resource: sr }] };
}

const entries = (res: Res): BundleEntry[] => (res.body?.entry ?? []) as BundleEntry[];
const ids = (res: Res) => entries(res).map((e) => `${e.resource?.resourceType}/${e.resource?.id}`);
const www = (res: Res) => expect(res.headers.get('www-authenticate') ?? '').toMatch(/^Bearer/);
const outcome = (res: Res) => expect(res.body?.resourceType).toBe('OperationOutcome');
const noCors = (res: Res) => {
  expect(res.headers.get('access-control-allow-origin')).toBeNull();
  expect(res.headers.get('access-control-allow-credentials')).toBeNull();
  expect(res.headers.get('access-control-allow-methods')).toBeNull();
};
const oauthError = (error: string) => (res: Res) => expect(res.body?.error).toBe(error);
const noSuchEntries = (res: Res) => {
  expect(entries(res).filter((e) => e.resource)).toHaveLength(0);
  if (res.body?.total !== undefined) expect(res.body.total).toBe(0);
};

const ATTEMPTS: Attempt[] = [
  // ── missing token ──────────────────────────────────────────────────────────
  { category: 'missing token', name: 'search of the target\'s conditions with no Authorization header', status: 401, audit: 'login-failure', run: (t) => t.fhir('GET', `Condition?patient=${TARGET}`), check: www },
  { category: 'missing token', name: 'an empty Bearer credential', status: 401, audit: 'login-failure', run: (t) => t.fhir('GET', `Patient/${TARGET}`, undefined, undefined, { authorization: 'Bearer ' }), check: www },
  { category: 'missing token', name: 'Basic credentials of the app instead of a bearer token', status: 401, audit: 'login-failure', run: (t) => t.fhir('GET', `Patient/${TARGET}`, undefined, undefined, { authorization: `Basic ${Buffer.from('second-opinion-app:x').toString('base64')}` }), check: www },
  { category: 'missing token', name: 'Digest credentials instead of a bearer token (RFC 6750 §3.1: no error code)', status: 401, audit: 'login-failure', run: (t) => t.fhir('GET', `Patient/${TARGET}`, undefined, undefined, { authorization: 'Digest username="second-opinion-app", realm="fhir"' }), check: (res) => { www(res); expect(res.headers.get('www-authenticate')).not.toMatch(/error=/); } },
  { category: 'token endpoint by GET', name: 'a token request by GET with the client credentials in the query string', status: 405, audit: 'login-failure', run: () => raw(`${server.url}/auth/token?grant_type=client_credentials&client_id=demo-backend&client_secret=guess`), check: oauthError('invalid_request') },
  { category: 'missing token', name: 'a valid token passed in the query string (access_token=) is not accepted', status: 401, audit: 'login-failure', run: (t) => t.fhir('GET', `Patient/${TARGET}?access_token=${t.token({ scope: 'user/*.rs', fhirUser: 'Practitioner/hpsj-pcp-1', roles: ['treating-provider'] })}`), check: www },
  { category: 'missing token', name: 'an update of the target\'s Patient with no token', status: 401, audit: 'login-failure', run: (t) => t.fhir('PUT', `Patient/${TARGET}`, undefined, { resourceType: 'Patient', id: TARGET, active: false }), check: www },

  // ── expired ────────────────────────────────────────────────────────────────
  { category: 'expired token', name: 'expired 30 s ago (beyond the 5 s clock tolerance), on a Task search', status: 401, audit: 'login-failure', run: (t) => t.fhir('GET', `Task?patient=${TARGET}`, forgedToken(server, { exp: now() - 30, iat: now() - 330 })), check: www },
  { category: 'expired token', name: 'a token the server issued that has since expired, used for a write', status: 401, audit: 'login-failure', run: (t) => t.fhir('PUT', `Patient/${TARGET}`, t.token({ scope: 'user/*.cruds', fhirUser: 'Practitioner/hpsj-pcp-1', roles: ['treating-provider'] }, -60), { resourceType: 'Patient', id: TARGET, active: false }), check: www },

  // ── not yet valid ──────────────────────────────────────────────────────────
  { category: 'future token', name: 'nbf 10 minutes ahead, on a create', status: 401, audit: 'login-failure', run: (t) => t.fhir('POST', 'Condition', forgedToken(server, { scope: 'user/*.cruds', nbf: now() + 600 }), { resourceType: 'Condition', subject: { reference: `Patient/${TARGET}` }, code: { text: 'x' } }), check: www },
  { category: 'future token', name: 'iat one hour ahead (no nbf), on a read', status: 401, audit: 'login-failure', run: (t) => t.fhir('GET', `Patient/${TARGET}`, forgedToken(server, { iat: now() + 3600, exp: now() + 3900 })), check: www },
  { category: 'future token', name: 'iat and nbf both a day ahead, on $submit', status: 401, audit: 'login-failure', run: (t) => t.fhir('POST', 'ServiceRequest/$submit', forgedToken(server, { scope: 'user/*.cruds', iat: now() + 86_400, nbf: now() + 86_400, exp: now() + 86_700 }), submitBundle(TARGET, 'PractitionerRole/role-hpsj-pcp-1')), check: www },

  // ── tampered ───────────────────────────────────────────────────────────────
  { category: 'tampered token', name: 'member token with its scope widened to system/*.cruds, signature kept', status: 401, audit: 'login-failure', run: (t) => t.fhir('GET', `Patient/${TARGET}`, tamper(t, (c) => ({ ...c, scope: 'system/*.cruds' }))), check: www },
  { category: 'tampered token', name: 'UM clinician token with medical-director added to its roles, on $deny', status: 401, audit: 'login-failure', run: (t) => t.fhir('POST', `Task/${fx.caseB.id}/$deny`, tamper(t, (c) => ({ ...c, roles: ['um-clinician', 'medical-director'] }), practitioner(t, 'hpsj-um-1', 'um-clinician')), params([{ name: 'reason', valueString: 'x' }])), check: www },
  { category: 'tampered token', name: 'signature stripped (header.payload.)', status: 401, audit: 'login-failure', run: (t) => t.fhir('GET', `Patient/${TARGET}`, `${member(t).split('.').slice(0, 2).join('.')}.`), check: www },
  { category: 'tampered token', name: 'forged claims spliced onto the signature of a genuine token', status: 401, audit: 'login-failure', run: (t) => { const [h, , s] = member(t).split('.'); const [, p] = forgedToken(server, { patient: TARGET, roles: ['member'], scope: 'patient/*.rs' }).split('.'); return t.fhir('GET', `Patient/${TARGET}`, `${h}.${p}.${s}`); }, check: www },
  { category: 'tampered token', name: 'HS256 signed with the server\'s public key as the HMAC secret (algorithm confusion)', status: 401, audit: 'login-failure', run: (t) => { const [, p] = forgedToken(server, {}).split('.'); const h = b64({ alg: 'HS256', typ: 'JWT' }); const sig = createHmac('sha256', loadSigningKey(server.dataDir).publicKeyPem).update(`${h}.${p}`).digest('base64url'); return t.fhir('GET', `Patient/${TARGET}`, `${h}.${p}.${sig}`); }, check: www },

  // ── alg none ───────────────────────────────────────────────────────────────
  { category: 'alg none', name: 'alg none with the patient claim pointed at the target', status: 401, audit: 'login-failure', run: (t) => { const [, p] = member(t).split('.'); return t.fhir('GET', `Condition?patient=${TARGET}`, `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ ...unb64(p), patient: TARGET })}.`); }, check: www },
  { category: 'alg none', name: 'alg "None" (other spelling)', status: 401, audit: 'login-failure', run: (t) => t.fhir('GET', `Patient/${TARGET}`, `${b64({ alg: 'None', typ: 'JWT' })}.${member(t).split('.')[1]}.`), check: www },
  { category: 'alg none', name: 'alg none with a genuine signature left in place', status: 401, audit: 'login-failure', run: (t) => { const [, p, s] = member(t).split('.'); return t.fhir('GET', `Patient/${TARGET}`, `${b64({ alg: 'none', typ: 'JWT' })}.${p}.${s}`); }, check: www },

  // ── wrong audience ─────────────────────────────────────────────────────────
  { category: 'wrong audience', name: 'aud is the issuer, not the FHIR base', status: 401, audit: 'login-failure', run: (t) => t.fhir('GET', `Patient/${TARGET}`, forgedToken(server, { aud: server.url })), check: www },
  { category: 'wrong audience', name: 'aud is the client id (an id_token presented as an access token)', status: 401, audit: 'login-failure', run: (t) => t.fhir('GET', `Patient/${TARGET}`, forgedToken(server, { aud: 'second-opinion-app' })), check: www },
  { category: 'wrong audience', name: 'aud is a look-alike of the FHIR base', status: 401, audit: 'login-failure', run: (t) => t.fhir('GET', `Patient/${TARGET}`, forgedToken(server, { aud: `${server.fhirBase}.evil.example.org` })), check: www },

  // ── wrong issuer ───────────────────────────────────────────────────────────
  { category: 'wrong issuer', name: 'iss with a trailing slash', status: 401, audit: 'login-failure', run: (t) => t.fhir('GET', `Patient/${TARGET}`, forgedToken(server, { iss: `${server.url}/` })), check: www },
  { category: 'wrong issuer', name: 'iss is the FHIR base', status: 401, audit: 'login-failure', run: (t) => t.fhir('GET', `Patient/${TARGET}`, forgedToken(server, { iss: server.fhirBase })), check: www },
  { category: 'wrong issuer', name: 'no iss claim at all', status: 401, audit: 'login-failure', run: (t) => t.fhir('GET', `Patient/${TARGET}`, forgedToken(server, { iss: undefined })), check: www },

  // ── replayed client assertions ─────────────────────────────────────────────
  {
    category: 'replayed client assertion', name: 'the exact assertion, exchanged once already', status: 401, audit: 'login-failure', check: oauthError('invalid_client'),
    run: async () => {
      const assertion = backendAssertion(server);
      expect((await clientCredentials(assertion)).status).toBe(200);
      return clientCredentials(assertion);
    },
  },
  {
    category: 'replayed client assertion', name: 'the same jti signed again with a new exp', status: 401, audit: 'login-failure', check: oauthError('invalid_client'),
    run: async () => {
      const jti = randomUUID();
      expect((await clientCredentials(backendAssertion(server, { jti }))).status).toBe(200);
      return clientCredentials(backendAssertion(server, { jti, exp: now() + 120 }));
    },
  },
  {
    category: 'replayed client assertion', name: 'an assertion spent at /auth/introspect, replayed at /auth/token', status: 401, audit: 'login-failure', check: oauthError('invalid_client'),
    run: async () => {
      const assertion = backendAssertion(server);
      expect((await oauthPost('/auth/introspect', { token: 'x', client_assertion_type: ASSERTION_TYPE, client_assertion: assertion })).status).toBe(200);
      return clientCredentials(assertion);
    },
  },

  // ── PKCE ───────────────────────────────────────────────────────────────────
  {
    category: 'PKCE mismatch', name: 'code exchanged without a code_verifier', status: 400, audit: 'login-failure', check: oauthError('invalid_grant'),
    run: async () => {
      const code = await codeFor(`Patient/${ATTACKER}`, 'openid fhirUser patient/*.rs', pkce().challenge);
      return oauthPost('/auth/token', { grant_type: 'authorization_code', code, redirect_uri: appRedirect(), client_id: 'second-opinion-app' });
    },
  },
  {
    category: 'PKCE mismatch', name: 'the code_challenge itself sent as the verifier (plain downgrade)', status: 400, audit: 'login-failure', check: oauthError('invalid_grant'),
    run: async () => {
      const { challenge } = pkce();
      const code = await codeFor(`Patient/${ATTACKER}`, 'openid fhirUser patient/*.rs', challenge);
      return oauthPost('/auth/token', { grant_type: 'authorization_code', code, redirect_uri: appRedirect(), client_id: 'second-opinion-app', code_verifier: challenge });
    },
  },
  {
    category: 'PKCE mismatch', name: 'the right verifier with one character appended', status: 400, audit: 'login-failure', check: oauthError('invalid_grant'),
    run: async () => {
      const { verifier, challenge } = pkce();
      const code = await codeFor(`Patient/${ATTACKER}`, 'openid fhirUser patient/*.rs', challenge);
      return oauthPost('/auth/token', { grant_type: 'authorization_code', code, redirect_uri: appRedirect(), client_id: 'second-opinion-app', code_verifier: `${verifier}A` });
    },
  },

  // ── redirect URI ───────────────────────────────────────────────────────────
  { category: 'redirect URI mismatch', name: 'authorize: a registered URI with a path suffix', status: 400, audit: 'login-failure', run: () => authorizeGet({ redirect_uri: `${appRedirect()}.evil` }), check: (res) => expect(res.headers.get('location')).toBeNull() },
  { category: 'redirect URI mismatch', name: 'authorize: a registered URI with an open-redirect query added', status: 400, audit: 'login-failure', run: () => authorizeGet({ redirect_uri: `${appRedirect()}?next=https://evil.example.org` }), check: (res) => expect(res.headers.get('location')).toBeNull() },
  { category: 'redirect URI mismatch', name: 'authorize: same path on another host name for the same server', status: 400, audit: 'login-failure', run: () => authorizeGet({ redirect_uri: appRedirect().replace('127.0.0.1', 'localhost') }), check: (res) => expect(res.headers.get('location')).toBeNull() },
  {
    category: 'redirect URI mismatch', name: 'token: code issued for /app/index.html exchanged with the other registered URI /app/', status: 400, audit: 'login-failure', check: oauthError('invalid_grant'),
    run: async () => {
      const { verifier, challenge } = pkce();
      const code = await codeFor(`Patient/${ATTACKER}`, 'openid fhirUser patient/*.rs', challenge);
      return oauthPost('/auth/token', { grant_type: 'authorization_code', code, redirect_uri: `${server.url}/app/`, client_id: 'second-opinion-app', code_verifier: verifier });
    },
  },

  // ── scope escalation at refresh ────────────────────────────────────────────
  { category: 'scope escalation at refresh', name: 'patient/*.rs grant refreshed as patient/*.cruds', status: 400, audit: 'login-failure', check: oauthError('invalid_scope'), run: async () => oauthPost('/auth/token', { grant_type: 'refresh_token', refresh_token: await refreshTokenFor('openid fhirUser patient/*.rs offline_access'), client_id: 'second-opinion-app', scope: 'patient/*.cruds' }) },
  { category: 'scope escalation at refresh', name: 'patient/*.rs grant refreshed as system/*.rs', status: 400, audit: 'login-failure', check: oauthError('invalid_scope'), run: async () => oauthPost('/auth/token', { grant_type: 'refresh_token', refresh_token: await refreshTokenFor('openid fhirUser patient/*.rs offline_access'), client_id: 'second-opinion-app', scope: 'system/*.rs' }) },
  { category: 'scope escalation at refresh', name: 'patient/Patient.rs grant refreshed with patient/Condition.rs and launch added', status: 400, audit: 'login-failure', check: oauthError('invalid_scope'), run: async () => oauthPost('/auth/token', { grant_type: 'refresh_token', refresh_token: await refreshTokenFor('openid fhirUser patient/Patient.rs offline_access'), client_id: 'second-opinion-app', scope: 'patient/Patient.rs patient/Condition.rs launch' }) },

  // ── patient token: another patient by id ───────────────────────────────────
  { category: 'patient token, other patient by id', name: 'read of the target\'s Condition', status: 404, audit: 'failure', run: (t) => t.fhir('GET', `Condition/condition-${TARGET}`, member(t)), check: outcome },
  { category: 'patient token, other patient by id', name: 'vread of the target\'s Patient', status: 404, audit: 'failure', run: (t) => t.fhir('GET', `Patient/${TARGET}/_history/1`, member(t)), check: outcome },
  { category: 'patient token, other patient by id', name: 'instance history of the target\'s Coverage', status: 404, audit: 'failure', run: (t) => t.fhir('GET', `Coverage/coverage-${TARGET}/_history`, member(t)), check: outcome },
  { category: 'patient token, other patient by id', name: 'read of the target\'s authorized representative (RelatedPerson)', status: 404, audit: 'failure', run: (t) => t.fhir('GET', `RelatedPerson/rep-${TARGET}`, member(t)), check: outcome },
  { category: 'patient token, other patient by id', name: 'read of the target\'s case Task', status: 404, audit: 'failure', run: (t) => t.fhir('GET', `Task/${fx.caseA.id}`, member(t)), check: outcome },
  { category: 'patient token, other patient by id', name: 'HEAD of the target\'s Patient', status: 404, audit: 'failure', run: (t) => t.fhir('HEAD', `Patient/${TARGET}`, member(t)) },

  // ── patient token: by search ───────────────────────────────────────────────
  { category: 'patient token, by search', name: 'Patient?_id= the target', status: 200, audit: 'not-a-refusal', run: (t) => t.fhir('GET', `Patient?_id=${TARGET}`, member(t)), check: noSuchEntries },
  { category: 'patient token, by search', name: 'Condition?subject=Patient/target', status: 200, audit: 'not-a-refusal', run: (t) => t.fhir('GET', `Condition?subject=Patient/${TARGET}`, member(t)), check: noSuchEntries },
  { category: 'patient token, by search', name: 'POST Patient/_search by family name', status: 200, audit: 'not-a-refusal', run: (t) => raw(`${server.fhirBase}/Patient/_search`, { method: 'POST', headers: { authorization: `Bearer ${member(t)}`, 'content-type': 'application/x-www-form-urlencoded' }, body: 'family=Garcia' }), check: noSuchEntries },
  { category: 'patient token, by search', name: 'Patient?identifier= the target\'s Medi-Cal CIN, _summary=count (no existence oracle)', status: 200, audit: 'not-a-refusal', run: (t) => t.fhir('GET', `Patient?identifier=${encodeURIComponent(`${IDENTIFIER_SYSTEMS.mediCalCin}|${fx.phi[3]}`)}&_summary=count`, member(t)), check: noSuchEntries },
  { category: 'patient token, by search', name: 'Task?patient= the target, _total=accurate', status: 200, audit: 'not-a-refusal', run: (t) => t.fhir('GET', `Task?patient=${TARGET}&_total=accurate`, member(t)), check: noSuchEntries },
  { category: 'patient token, by search', name: 'system-wide _history', status: 200, audit: 'not-a-refusal', run: (t) => t.fhir('GET', '_history?_count=1000', member(t)) },

  // ── patient token: _include / _revinclude ──────────────────────────────────
  { category: 'patient token, _include/_revinclude', name: 'the target\'s PCP role, _revinclude=Patient:general-practitioner', status: 200, audit: 'not-a-refusal', run: (t) => t.fhir('GET', 'PractitionerRole?_id=role-hpsj-pcp-1&_revinclude=Patient:general-practitioner', member(t)), check: (res) => expect(ids(res)).toEqual(['PractitionerRole/role-hpsj-pcp-1']) },
  { category: 'patient token, _include/_revinclude', name: 'the plan, _revinclude=Coverage:payor', status: 200, audit: 'not-a-refusal', run: (t) => t.fhir('GET', 'Organization?_id=hpsj&_revinclude=Coverage:payor', member(t)), check: (res) => expect(ids(res).sort()).toEqual([`Coverage/coverage-${ATTACKER}`, 'Organization/hpsj']) },
  { category: 'patient token, _include/_revinclude', name: 'the consultant\'s role, _revinclude=ServiceRequest:performer, _include:iterate=ServiceRequest:subject', status: 200, audit: 'not-a-refusal', run: (t) => t.fhir('GET', 'PractitionerRole?_id=role-hpsj-card-2&_revinclude=ServiceRequest:performer&_include:iterate=ServiceRequest:subject', member(t)), check: (res) => expect(ids(res)).toEqual(['PractitionerRole/role-hpsj-card-2']) },
  { category: 'patient token, _include/_revinclude', name: 'own Coverage, _revinclude:iterate through the payor to other members\' Coverage and Patients', status: 200, audit: 'not-a-refusal', run: (t) => t.fhir('GET', `Coverage?beneficiary=Patient/${ATTACKER}&_include=Coverage:payor&_revinclude:iterate=Coverage:payor&_include:iterate=Coverage:beneficiary`, member(t)), check: (res) => expect(ids(res).sort()).toEqual([`Coverage/coverage-${ATTACKER}`, 'Organization/hpsj', `Patient/${ATTACKER}`]) },

  // ── patient token: inside Bundles ──────────────────────────────────────────
  {
    category: 'patient token, batch/transaction', name: 'batch: read, search and update of the target\'s data', status: 200, audit: 'batch-entry',
    run: (t) => t.fhir('POST', '', member(t, ATTACKER, 'launch/patient patient/*.cruds'), { resourceType: 'Bundle', type: 'batch', entry: [
      { request: { method: 'GET', url: `Condition/condition-${TARGET}` } },
      { request: { method: 'GET', url: `Communication?subject=Patient/${TARGET}` } },
      { request: { method: 'PUT', url: `Patient/${TARGET}` }, resource: { resourceType: 'Patient', id: TARGET, active: false } },
    ] }),
    check: (res) => {
      expect(entries(res).map((e) => e.response?.status)).toEqual(['404', '200', '403']);
      expect(entries(res)[0].resource).toBeUndefined();
      expect(((entries(res)[1].resource as Bundle).entry ?? []).length).toBe(0);
    },
  },
  { category: 'patient token, batch/transaction', name: 'batch: absolute URL of the target\'s Patient', status: 200, audit: 'batch-entry', run: (t) => t.fhir('POST', '', member(t), { resourceType: 'Bundle', type: 'batch', entry: [{ request: { method: 'GET', url: `${server.fhirBase}/Patient/${TARGET}` } }] }), check: (res) => expect(entries(res).map((e) => e.response?.status)).toEqual(['404']) },
  { category: 'patient token, batch/transaction', name: 'transaction: read of the target\'s Patient', status: 404, audit: 'failure', run: (t) => t.fhir('POST', '', member(t), { resourceType: 'Bundle', type: 'transaction', entry: [{ request: { method: 'GET', url: `Patient/${TARGET}` } }] }), check: outcome },
  { category: 'patient token, batch/transaction', name: 'transaction: own record updated together with the target\'s Coverage', status: 403, audit: 'failure', run: (t) => t.fhir('POST', '', member(t, ATTACKER, 'launch/patient patient/*.cruds'), { resourceType: 'Bundle', type: 'transaction', entry: [
    { request: { method: 'PUT', url: `Patient/${ATTACKER}` }, resource: { resourceType: 'Patient', id: ATTACKER, active: true, name: [{ family: 'Johnson', given: ['Derek'] }] } },
    { request: { method: 'PUT', url: `Coverage/coverage-${TARGET}` }, resource: { resourceType: 'Coverage', id: `coverage-${TARGET}`, status: 'cancelled', beneficiary: { reference: `Patient/${TARGET}` }, payor: [{ reference: 'Organization/hpsj' }] } },
  ] }), check: outcome },

  // ── patient token: through operations ──────────────────────────────────────
  { category: 'patient token, operation', name: '$submit for the target, requested by the attacker', status: 403, audit: 'failure', run: (t) => t.fhir('POST', 'ServiceRequest/$submit', member(t, ATTACKER, 'launch/patient patient/*.cruds'), submitBundle(TARGET, `Patient/${ATTACKER}`)), check: outcome },
  { category: 'patient token, operation', name: 'plain POST ServiceRequest with the second-opinion profile, for the target', status: 403, audit: 'failure', run: (t) => t.fhir('POST', 'ServiceRequest', member(t, ATTACKER, 'launch/patient patient/*.cruds'), { ...submitBundle(TARGET, `Patient/${ATTACKER}`).entry![0].resource, meta: { profile: [PROFILES.serviceRequest] } }), check: outcome },
  { category: 'patient token, operation', name: '$withdraw of the target\'s case', status: 404, audit: 'failure', run: (t) => t.fhir('POST', `Task/${fx.caseA.id}/$withdraw`, member(t, ATTACKER, 'launch/patient patient/*.cruds'), params([{ name: 'reason', valueString: 'withdrawn' }])), check: outcome },
  { category: 'patient token, operation', name: '$answer-info on the target\'s case (a non-party learns nothing of its step)', status: 404, audit: 'failure', run: (t) => t.fhir('POST', `Task/${fx.caseB.id}/$answer-info`, member(t, ATTACKER, 'launch/patient patient/*.cruds'), params([{ name: 'document', valueReference: { reference: `DocumentReference/${fx.letterDoc}` } }])), check: (res) => { outcome(res); expect(JSON.stringify(res.body)).not.toMatch(/um-review|allowed now/); } },
  { category: 'patient token, operation', name: 'the committee report ($second-opinion-report)', status: 403, audit: 'failure', run: (t) => t.fhir('GET', `$second-opinion-report?period=${new Date().toISOString().slice(0, 7)}&plan=hpsj`, member(t)), check: outcome },

  // ── another member's letters ───────────────────────────────────────────────
  { category: 'other member\'s letters', name: 'read of the approval letter (DocumentReference)', status: 404, audit: 'failure', run: (t) => t.fhir('GET', `DocumentReference/${fx.letterDoc}`, member(t)), check: outcome },
  { category: 'other member\'s letters', name: 'read of the letter sent to the target (Communication)', status: 404, audit: 'failure', run: (t) => t.fhir('GET', `Communication/${fx.letterComm}`, member(t)), check: outcome },
  { category: 'other member\'s letters', name: 'vread of the letter Communication', status: 404, audit: 'failure', run: (t) => t.fhir('GET', `Communication/${fx.letterComm}/_history/1`, member(t)), check: outcome },
  { category: 'other member\'s letters', name: 'Communication?based-on= the target\'s request', status: 200, audit: 'not-a-refusal', run: (t) => t.fhir('GET', `Communication?based-on=ServiceRequest/${fx.srA}`, member(t)), check: noSuchEntries },
  { category: 'other member\'s letters', name: 'DocumentReference?related= the target\'s request', status: 200, audit: 'not-a-refusal', run: (t) => t.fhir('GET', `DocumentReference?related=ServiceRequest/${fx.srA}`, member(t)), check: noSuchEntries },

  // ── UM clinician may not deny ──────────────────────────────────────────────
  { category: 'UM clinician denying', name: '$deny of a case in UM review', status: 403, audit: 'failure', run: (t) => t.fhir('POST', `Task/${fx.caseB.id}/$deny`, practitioner(t, 'hpsj-um-1', 'um-clinician'), params([{ name: 'reason', valueString: 'not needed' }])), check: outcome },
  { category: 'UM clinician denying', name: '$deny of a case escalated to the medical director', status: 403, audit: 'failure', run: (t) => t.fhir('POST', `Task/${fx.caseC.id}/$deny`, practitioner(t, 'hpsj-um-1', 'um-clinician'), params([{ name: 'reason', valueString: 'not needed' }])), check: outcome },
  { category: 'UM clinician denying', name: '$deny by a UM clinician who is also a treating provider', status: 403, audit: 'failure', run: (t) => t.fhir('POST', `Task/${fx.caseB.id}/$deny`, t.token({ scope: 'user/*.cruds', fhirUser: 'Practitioner/hpsj-um-1', roles: ['um-clinician', 'treating-provider'] }), params([{ name: 'reason', valueString: 'not needed' }])), check: outcome },
  { category: 'UM clinician denying', name: '$deny inside a batch Bundle', status: 200, audit: 'batch-entry', run: (t) => t.fhir('POST', '', practitioner(t, 'hpsj-um-1', 'um-clinician'), { resourceType: 'Bundle', type: 'batch', entry: [{ request: { method: 'POST', url: `Task/${fx.caseB.id}/$deny` }, resource: params([{ name: 'reason', valueString: 'not needed' }]) }] }), check: (res) => expect(entries(res).map((e) => e.response?.status)).toEqual(['403']) },

  // ── plan staff acting on another plan's case ───────────────────────────────
  { category: "another plan's staff", name: "a PHC UM clinician's $request-info on an HPSJ case (a missing id to them: they may not see the member)", status: 404, audit: 'failure', run: (t) => t.fhir('POST', `Task/${fx.caseB.id}/$request-info`, practitioner(t, 'phc-um-1', 'um-clinician'), params([{ name: 'what', valueString: 'labs' }])), check: outcome },
  { category: "another plan's staff", name: "a PHC UM clinician's $approve of an HPSJ case (a missing id to them: they may not see the member)", status: 404, audit: 'failure', run: (t) => t.fhir('POST', `Task/${fx.caseB.id}/$approve`, practitioner(t, 'phc-um-1', 'um-clinician'), params([{ name: 'authorizedPractitionerRole', valueReference: { reference: 'PractitionerRole/role-hpsj-card-1' } }])), check: outcome },
  { category: "another plan's staff", name: "an ANT medical director's $deny of an escalated HPSJ case (a missing id to them: they may not see the member)", status: 404, audit: 'failure', run: (t) => t.fhir('POST', `Task/${fx.caseC.id}/$deny`, practitioner(t, 'ant-md-1', 'medical-director'), params([{ name: 'reason', valueString: 'not needed' }])), check: outcome },

  // ── second-opinion professional: report on a case not theirs ───────────────
  { category: 'consultant report on a case not theirs', name: 'an out-of-network neurologist on the case authorized to hpsj-card-2', status: 403, audit: 'failure', run: (t) => t.fhir('POST', `Task/${fx.caseA.id}/$post-report`, practitioner(t, 'oon-neuro-1', 'second-opinion-provider'), params([{ name: 'report', resource: report }])), check: outcome },
  { category: 'consultant report on a case not theirs', name: 'an in-network cardiologist of the same plan who was not authorized', status: 403, audit: 'failure', run: (t) => t.fhir('POST', `Task/${fx.caseA.id}/$post-report`, practitioner(t, 'hpsj-card-1', 'second-opinion-provider'), params([{ name: 'report', resource: report }])), check: outcome },
  { category: 'consultant report on a case not theirs', name: 'the professional authorized on another case', status: 403, audit: 'failure', run: (t) => t.fhir('POST', `Task/${fx.caseD.id}/$post-report`, practitioner(t, 'hpsj-card-2', 'second-opinion-provider'), params([{ name: 'report', resource: report }])), check: outcome },
  { category: 'consultant report on a case not theirs', name: 'the requesting PCP (treating provider) posting the report', status: 403, audit: 'failure', run: (t) => t.fhir('POST', `Task/${fx.caseA.id}/$post-report`, practitioner(t, 'hpsj-pcp-1', 'treating-provider'), params([{ name: 'report', resource: report }])), check: outcome },

  // ── writes with read-only scopes ───────────────────────────────────────────
  { category: 'write with read-only scopes', name: 'PCP with user/*.rs updating the target\'s Patient', status: 403, audit: 'failure', run: (t) => t.fhir('PUT', `Patient/${TARGET}`, practitioner(t, 'hpsj-pcp-1', 'treating-provider', 'user/*.rs'), { resourceType: 'Patient', id: TARGET, active: false }), check: outcome },
  { category: 'write with read-only scopes', name: 'UM clinician with v1 user/*.read deleting the target\'s Condition', status: 403, audit: 'failure', run: (t) => t.fhir('DELETE', `Condition/condition-${TARGET}`, practitioner(t, 'hpsj-um-1', 'um-clinician', 'user/*.read')), check: outcome },
  { category: 'write with read-only scopes', name: 'medical director with user/*.rs approving a case ($approve needs update)', status: 403, audit: 'failure', run: (t) => t.fhir('POST', `Task/${fx.caseC.id}/$approve`, practitioner(t, 'hpsj-md-1', 'medical-director', 'user/*.rs'), params([])), check: outcome },
  { category: 'write with read-only scopes', name: 'the target\'s own patient/*.rs token patching her Patient', status: 403, audit: 'failure', run: (t) => t.fhir('PATCH', `Patient/${TARGET}`, member(t, TARGET), [{ op: 'replace', path: '/active', value: false }], { 'content-type': 'application/json-patch+json' }), check: outcome },
  { category: 'write with read-only scopes', name: 'PCP with user/*.rs conditional update by identifier', status: 403, audit: 'failure', run: (t) => t.fhir('PUT', `Patient?identifier=${encodeURIComponent(`${IDENTIFIER_SYSTEMS.mediCalCin}|${fx.phi[3]}`)}`, practitioner(t, 'hpsj-pcp-1', 'treating-provider', 'user/*.rs'), { resourceType: 'Patient', active: false }), check: outcome },
  { category: 'write with read-only scopes', name: 'PCP with user/*.rs creating a Communication to the target', status: 403, audit: 'failure', run: (t) => t.fhir('POST', 'Communication', practitioner(t, 'hpsj-pcp-1', 'treating-provider', 'user/*.rs'), { resourceType: 'Communication', status: 'completed', subject: { reference: `Patient/${TARGET}` }, payload: [{ contentString: 'x' }] }), check: outcome },

  // ── system tokens without system scopes ────────────────────────────────────
  { category: 'system token without system scopes', name: 'backend client token with only openid, reading the target', status: 403, audit: 'failure', run: (t) => t.fhir('GET', `Patient/${TARGET}`, t.token({ clientId: 'demo-backend', scope: 'openid', roles: ['delegated-group'] })), check: outcome },
  { category: 'system token without system scopes', name: 'delegated group token with user/*.rs and no user, approving a case', status: 403, audit: 'failure', run: (t) => t.fhir('POST', `Task/${fx.caseB.id}/$approve`, t.token({ clientId: 'demo-backend', scope: 'user/*.rs', roles: ['delegated-group'] }), params([])), check: outcome },
  { category: 'system token without system scopes', name: 'system/Patient.rs only, searching Conditions', status: 403, audit: 'failure', run: (t) => t.fhir('GET', `Condition?patient=${TARGET}`, t.token({ clientId: 'demo-backend', scope: 'system/Patient.rs', roles: ['delegated-group'] })), check: outcome },
  { category: 'system token without system scopes', name: 'system/*.rs submitting a case', status: 403, audit: 'failure', run: (t) => t.fhir('POST', 'ServiceRequest/$submit', t.token({ clientId: 'demo-backend', scope: 'system/*.rs', roles: ['delegated-group'] }), submitBundle(TARGET, 'PractitionerRole/role-hpsj-pcp-1')), check: outcome },
  { category: 'system token without system scopes', name: 'client_credentials asking for patient/*.rs', status: 400, audit: 'login-failure', check: oauthError('invalid_scope'), run: () => clientCredentials(backendAssertion(server), 'patient/*.rs') },
  { category: 'system token without system scopes', name: 'client_credentials asking for openid and launch only', status: 400, audit: 'login-failure', check: oauthError('invalid_scope'), run: () => clientCredentials(backendAssertion(server), 'openid launch') },

  // ── CORS ───────────────────────────────────────────────────────────────────
  { category: 'CORS preflight from an unregistered origin', name: 'https://evil.example.org to /fhir/Patient/{id}', status: 204, audit: 'pre-auth', run: () => preflight(`/fhir/Patient/${TARGET}`, 'https://evil.example.org'), check: noCors },
  { category: 'CORS preflight from an unregistered origin', name: 'Origin: null (sandboxed frame)', status: 204, audit: 'pre-auth', run: () => preflight(`/fhir/Patient/${TARGET}`, 'null'), check: noCors },
  { category: 'CORS preflight from an unregistered origin', name: 'the server under another host name (http://localhost:port)', status: 204, audit: 'pre-auth', run: () => preflight('/fhir/Task', server.url.replace('127.0.0.1', 'localhost')), check: noCors },
  { category: 'CORS preflight from an unregistered origin', name: 'https://evil.example.org to /auth/token', status: 204, audit: 'pre-auth', run: () => preflight('/auth/token', 'https://evil.example.org'), check: noCors },
];

/** Every resource the answer carries, including those inside batch responses and search Bundles. */
function resourcesIn(body: unknown): Resource[] {
  const r = body as (Resource & { entry?: BundleEntry[] }) | undefined;
  if (!r || typeof r !== 'object' || !('resourceType' in r)) return [];
  if (r.resourceType === 'OperationOutcome') return [];
  if (r.resourceType === 'Bundle') return (r.entry ?? []).flatMap((e) => resourcesIn(e.resource));
  return [r];
}

/** Nothing of the target came back, and no credentials were handed out. */
function expectNothingReturned(res: Res): void {
  // A Bundle's links echo the caller's own query (which may name the target): not returned data.
  const text = typeof res.body === 'string' ? res.body : JSON.stringify(res.body ?? '', (k, v: unknown) => (k === 'link' ? undefined : v));
  for (const marker of fx.phi) expect(text, `the answer carries '${marker.slice(0, 40)}'`).not.toContain(marker);
  for (const r of resourcesIn(res.body)) {
    expect(r.resourceType === 'Patient' && r.id === TARGET, 'the target Patient came back').toBe(false);
    expect(JSON.stringify(r), `${r.resourceType}/${r.id} of the target came back`).not.toContain(`Patient/${TARGET}`);
  }
  for (const key of ['access_token', 'refresh_token', 'id_token']) expect(res.body?.[key], key).toBeUndefined();
  expect(res.headers.get('location') ?? '').not.toMatch(/[?&]code=/);
}

const SYSTEM_READ = () => tokenFor(server, { scope: 'system/*.rs', roles: [] });
const COUNTED = ['Patient', 'RelatedPerson', 'Coverage', 'Condition', 'ServiceRequest', 'Task', 'CoverageEligibilityRequest', 'CoverageEligibilityResponse', 'DocumentReference', 'Communication', 'Provenance'];

/** Counts of case files and versions of the target's resources, read with a system token. */
async function fingerprint(): Promise<Record<string, unknown>> {
  const token = SYSTEM_READ();
  const get = (path: string) => raw(`${server.fhirBase}/${path}`, { headers: { authorization: `Bearer ${token}` } });
  const versioned = [`Patient/${TARGET}`, `Coverage/coverage-${TARGET}`, `Condition/condition-${TARGET}`, `RelatedPerson/rep-${TARGET}`, ...[fx.caseA, fx.caseB, fx.caseC, fx.caseD].map((c) => `Task/${c.id}`)];
  const [counts, versions] = await Promise.all([
    Promise.all(COUNTED.map(async (type) => [type, (await get(`${type}?_summary=count`)).body.total] as const)),
    Promise.all(versioned.map(async (ref) => [ref, (await get(ref)).body.meta?.versionId] as const)),
  ]);
  for (const [what, value] of [...counts, ...versions]) expect(value, `fingerprint: ${what}`).toBeDefined();
  return Object.fromEntries([...counts, ...versions]);
}

describe('access attempts that must be refused', () => {
  let failuresBefore = 0;
  const auditor = () => tokenFor(server, { scope: 'user/AuditEvent.rs', fhirUser: 'Practitioner/hpsj-md-1', roles: ['auditor'] });
  const auditSearch = (query: string) => raw(`${server.fhirBase}/AuditEvent?${query}`, { headers: { authorization: `Bearer ${auditor()}` } });
  const loginFailureCount = async () => (await auditSearch(`type=${encodeURIComponent('http://dicom.nema.org/resources/ontology/DCM|110114')}&outcome=4&_summary=count`)).body.total as number;
  let loginFailuresBefore = 0;
  const failureCount = async () => {
    const [four, eight] = await Promise.all([auditSearch('outcome=4&_summary=count'), auditSearch('outcome=8&_summary=count')]);
    return (four.body.total as number) + (eight.body.total as number);
  };

  beforeAll(async () => {
    server = await startDemoServer();
    const pcp = tokenFor(server, { scope: 'user/*.cruds', fhirUser: 'Practitioner/hpsj-pcp-1', roles: ['treating-provider'] });
    const um = tokenFor(server, { scope: 'user/*.cruds', fhirUser: 'Practitioner/hpsj-um-1', roles: ['um-clinician'] });
    const call = async (token: string, path: string, json?: unknown) => {
      const res = await raw(`${server.fhirBase}/${path}`, { method: json === undefined ? 'GET' : 'POST', headers: { authorization: `Bearer ${token}` }, json });
      if (res.status >= 300) throw new Error(`${path}: ${res.status} ${JSON.stringify(res.body)}`);
      return res.body;
    };
    const submit = async (bundle: Bundle) => (await call(pcp, 'ServiceRequest/$submit', bundle)).entry[3].resource as Task;
    const step = (t: Task) => t.businessStatus?.coding?.[0].code;

    const caseA = await submit(inNetworkHpsjRequest());
    const outOfNetworkCard = inNetworkHpsjRequest();
    (outOfNetworkCard.entry![0].resource as ServiceRequest).performer = [{ reference: 'PractitionerRole/role-oon-card-1' }];
    // Out of network, so this one goes through UM review first; the UM clinician approves the professional requested.
    const caseD = await call(um, `Task/${(await submit(outOfNetworkCard)).id}/$approve`, params([{ name: 'authorizedPractitionerRole', valueReference: { reference: 'PractitionerRole/role-oon-card-1' } }])) as Task;
    const caseB = await submit(submitBundle(TARGET, 'PractitionerRole/role-hpsj-pcp-1'));
    const caseC = await call(um, `Task/${(await submit(submitBundle(TARGET, 'PractitionerRole/role-hpsj-pcp-1'))).id}/$escalate`, params([{ name: 'note', valueString: 'for the MD' }])) as Task;
    expect([step(caseA), step(caseD), step(caseB), step(caseC)]).toEqual(['approved', 'approved', 'um-review', 'medical-director-review']);

    const sys = SYSTEM_READ();
    const notice = caseA.output!.filter((o) => o.type.text === 'approval-notice').map((o) => o.valueReference!.reference!);
    const letterDoc = notice.find((r) => r.startsWith('DocumentReference/'))!.split('/')[1];
    const comms = await Promise.all(notice.filter((r) => r.startsWith('Communication/')).map((r) => call(sys, r)));
    const letterComm = comms.find((c) => c.recipient[0].reference === `Patient/${TARGET}`).id as string;
    const patient = (await call(sys, `Patient/${TARGET}`)) as Patient;
    const letter = (await call(sys, `DocumentReference/${letterDoc}`)) as DocumentReference;
    fx = {
      caseA,
      caseB,
      caseC,
      caseD,
      letterDoc,
      letterComm,
      srA: caseA.focus!.reference!.split('/')[1],
      // [3] is the Medi-Cal CIN (used by the identifier rows).
      phi: [patient.name![0].family!, patient.name![0].given![0], patient.birthDate!, patient.identifier!.find((i) => i.system === IDENTIFIER_SYSTEMS.mediCalCin)!.value!, patient.identifier!.find((i) => i.system === IDENTIFIER_SYSTEMS.planMemberId)!.value!, 'Atrial fibrillation', letter.content[0].attachment.data!],
    };
    await new Promise((r) => setTimeout(r, 200));
    failuresBefore = await failureCount();
    loginFailuresBefore = await loginFailureCount();
  });
  afterAll(async () => server?.close());

  it(`holds at least 40 attempts (${ATTEMPTS.length})`, () => {
    expect(ATTEMPTS.length).toBeGreaterThanOrEqual(40);
    expect(new Set(ATTEMPTS.map((a) => `${a.category}: ${a.name}`)).size).toBe(ATTEMPTS.length);
  });

  it.each(ATTEMPTS.map((a) => [`${a.category}: ${a.name}`, a] as const))('%s', async (_name, attempt) => {
    const before = await fingerprint();
    const jtis: string[] = [];
    const tools: Tools = {
      token: (grant, seconds) => {
        const token = tokenFor(server, grant, seconds);
        jtis.push(jtiOf(token));
        return token;
      },
      fhir: (method, path, token, json, headers = {}) =>
        raw(`${server.fhirBase}${path ? `/${path}` : ''}`, { method, headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers }, json }),
    };
    const res = await attempt.run(tools);
    results.set(attempt, { jtis, status: res.status });
    expect(res.status, JSON.stringify(res.body)?.slice(0, 400)).toBe(attempt.status);
    expectNothingReturned(res);
    attempt.check?.(res);
    expect(await fingerprint(), 'something changed').toEqual(before);
  });

  it('every refused FHIR API attempt made with a valid token left an AuditEvent with a failure outcome', async () => {
    await new Promise((r) => setTimeout(r, 300));
    const refused = ATTEMPTS.filter((a) => a.audit === 'failure' || a.audit === 'batch-entry');
    expect(refused.length).toBeGreaterThanOrEqual(25);
    const missing: string[] = [];
    for (const attempt of refused) {
      const result = results.get(attempt);
      if (!result) {
        missing.push(`${attempt.name} (did not run)`);
        continue;
      }
      const found: AuditEvent[] = [];
      for (const jti of result.jtis) {
        const res = await auditSearch(`policy=${encodeURIComponent(`urn:uuid:${jti}`)}`);
        expect(res.status).toBe(200);
        found.push(...entries(res).map((e) => e.resource as AuditEvent));
      }
      // A refused batch entry is audited with its own status; the batch itself answered 200. A refusal answered
      // as a missing id (404) is recorded as the refusal it is.
      const refusalOf = (status: number) => (status === 404 ? 'HTTP 404 (access refused, answered as not found)' : `HTTP ${status}`);
      const descriptions = attempt.audit === 'batch-entry' ? [refusalOf(403), refusalOf(404)] : [refusalOf(result.status)];
      const failure = found.find((e) => e.outcome !== '0' && descriptions.includes(e.outcomeDesc ?? ''));
      if (!failure) missing.push(`${attempt.category}: ${attempt.name} (events: ${found.map((e) => e.outcome).join(',') || 'none'})`);
    }
    expect(missing, 'refused attempts without a failure AuditEvent').toEqual([]);
    expect((await failureCount()) - failuresBefore).toBeGreaterThanOrEqual(refused.length);
  });

  it('every attempt refused before authentication (bad tokens, the authorization server) left a Login failure AuditEvent', async () => {
    await new Promise((r) => setTimeout(r, 300));
    const refusedAtLogin = ATTEMPTS.filter((a) => a.audit === 'login-failure');
    expect(refusedAtLogin.length).toBeGreaterThanOrEqual(40);
    const loginFailures = (await loginFailureCount()) - loginFailuresBefore;
    expect(loginFailures).toBeGreaterThanOrEqual(refusedAtLogin.length);
    recordResult('access', 'attempts', {
      attempts: ATTEMPTS.length,
      refusedWith4xx: [...results.values()].filter((r) => r.status >= 400).length,
      answered200WithNothingOfTheTarget: [...results.values()].filter((r) => r.status === 200).length,
      failureAuditEventsForValidTokens: ATTEMPTS.filter((a) => a.audit === 'failure' || a.audit === 'batch-entry').length,
      loginFailureAuditEvents: loginFailures,
      categories: new Set(ATTEMPTS.map((a) => a.category)).size,
    });
  });
});
