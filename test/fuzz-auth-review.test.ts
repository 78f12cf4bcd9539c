import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import type { Bundle, OperationDefinition, ServiceRequest, Task } from 'fhir/r4.js';
import fc from 'fast-check';
import jwt from 'jsonwebtoken';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { APP_CLIENT_ID, appClient, DEMO_BACKEND_CLIENT_ID } from '../server/src/auth/demoClients.js';
import { readConformanceResources } from '../server/src/fhir/conformance.js';
import { REVIEW_ACTIONS } from '../server/src/fhir/operations/review.js';
import { CODE_SYSTEMS } from '../server/src/fhir/systems.js';
import { type DemoServer, startDemoServer } from './helpers/demoServer.js';
import { inNetworkHpsjRequest } from './helpers/requests.js';
import { pgliteConfig } from './helpers/stores.js';
import { backendAssertion, pkce, tokenFor } from './helpers/tokens.js';

/**
 * Property-based hostile input against the review operations (`Task/{id}/$<action>`) and the SMART
 * authorization server (`/auth/token`, `/auth/authorize`): every answer is a success or a 4xx of the
 * endpoint's own error format (OperationOutcome for FHIR, `{ error }` for OAuth, RFC 6749 §5.2), never
 * a 5xx or a hang; a refused review action leaves the case Task as it was; no access token comes out
 * of garbage; no redirect goes to a URI the client did not register. Seeded, with a fixed budget.
 */
const SEED = 20261125;
const RUNS = Number(process.env.FUZZ_RUNS ?? 40);
/** Any answer slower than this counts as a hang. */
const HANG_MS = 10_000;
const counts: Record<string, Record<string, number>> = {};

interface Answer {
  status: number;
  body: unknown;
  text: string;
  headers: Headers;
}

describe('fuzzing the review operations and the authorization server', () => {
  let server: DemoServer;
  let mdToken: string;
  let pcpToken: string;
  /** A case in UM review (out-of-network performer): the medical director can act on it. */
  let openCase: string | undefined;
  /** A case approved on receipt (in-network, R3): every medical-director action is refused. */
  let approvedCase: string;
  let registered: string[];
  let otherKeyPem: string;

  beforeAll(async () => {
    // The token endpoint's rate limit (600/min by default) would turn the fuzz into 429s after a few hundred requests.
    server = await startDemoServer(pgliteConfig(), { TOKEN_REQUESTS_PER_MINUTE: '1000000' });
    mdToken = tokenFor(server, { scope: 'user/*.cruds', fhirUser: 'Practitioner/hpsj-md-1', roles: ['medical-director'] }, 3600);
    pcpToken = tokenFor(server, { scope: 'user/*.cruds', fhirUser: 'Practitioner/hpsj-pcp-1', roles: ['treating-provider'] }, 3600);
    registered = appClient(server.url).redirect_uris;
    otherKeyPem = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    approvedCase = await submit(inNetworkHpsjRequest());
  });
  afterAll(async () => {
    await server?.close();
    mkdirSync('test-results', { recursive: true });
    writeFileSync('test-results/fuzz-auth-review-counts.json', JSON.stringify({ seed: SEED, runsPerProperty: RUNS, counts }, null, 2));
  });

  async function send(family: string, url: string, init: RequestInit = {}): Promise<Answer> {
    const started = Date.now();
    const res = await fetch(url, { redirect: 'manual', ...init, signal: AbortSignal.timeout(HANG_MS) });
    const text = await res.text();
    // The server runs in this process: a blocked event loop also delays the abort timer, so time it too.
    expect(Date.now() - started, `${init.method ?? 'GET'} ${url.slice(0, 200)} took too long`).toBeLessThan(HANG_MS);
    (counts[family] ??= {})[String(res.status)] = ((counts[family] ?? {})[String(res.status)] ?? 0) + 1;
    let body: unknown = text;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      /* not JSON */
    }
    return { status: res.status, body, text, headers: res.headers };
  }
  const fhir = (family: string, path: string, init: RequestInit = {}, token = mdToken) =>
    send(family, `${server.fhirBase}/${path}`, { ...init, headers: { authorization: `Bearer ${token}`, ...((init.headers as Record<string, string>) ?? {}) } });
  const show = (r: Answer) => `${r.status} ${r.text.slice(0, 300)}`;

  /** A FHIR answer: below 500, and every 4xx is an OperationOutcome. */
  const acceptableFhir = (r: Answer) => {
    expect(r.status, show(r)).toBeLessThan(500);
    if (r.status >= 400) expect((r.body as { resourceType?: string })?.resourceType, show(r)).toBe('OperationOutcome');
  };
  /** An OAuth token-endpoint answer: a 4xx `{ error: string }` and never an access token. */
  const refusedOAuth = (r: Answer) => {
    expect(r.status, show(r)).toBeLessThan(500);
    expect(r.status, show(r)).toBeGreaterThanOrEqual(400);
    expect(typeof (r.body as { error?: unknown })?.error, show(r)).toBe('string');
    expect(r.text).not.toMatch(/access_token/);
  };

  async function submit(bundle: Bundle): Promise<string> {
    const res = await fhir('setup', 'ServiceRequest/$submit', { method: 'POST', headers: { 'content-type': 'application/fhir+json' }, body: JSON.stringify(bundle) }, pcpToken);
    expect(res.status, show(res)).toBe(201);
    const task = (res.body as Bundle).entry?.map((e) => e.resource).find((r): r is Task => r?.resourceType === 'Task');
    expect(task?.id).toBeDefined();
    return task!.id!;
  }
  /** A new case that goes to UM review: the HPSJ PCP asks for an out-of-network neurologist. */
  async function submitOpenCase(): Promise<string> {
    const bundle = inNetworkHpsjRequest();
    const sr = bundle.entry![0].resource as ServiceRequest;
    sr.reasonCode = [{ coding: [{ system: CODE_SYSTEMS.reason, code: 'unclear-diagnosis' }] }];
    sr.performerType = { coding: [{ system: CODE_SYSTEMS.nucc, code: '2084N0400X' }] };
    sr.performer = [{ reference: 'PractitionerRole/role-oon-neuro-1' }];
    return submit(bundle);
  }
  const versionOf = async (id: string): Promise<string | undefined> => {
    const r = await fhir('review-read', `Task/${id}`);
    expect(r.status, show(r)).toBe(200);
    return (r.body as Task).meta?.versionId;
  };

  // ---- shared hostile values ----
  const hostileString = fc.oneof(
    fc.string({ maxLength: 200 }),
    fc.string({ maxLength: 60, unit: 'binary' }),
    fc.constantFrom(
      "' OR 1=1 --", '"; DROP TABLE resources; --', '$.store[*]', '\u0000\u0001\u001f', '\r\nSet-Cookie: x=1', '𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ✓ ñ', '\ud800', '../../etc/passwd',
      '%00', '%zz', '%E0%A4%A', '"><script>alert(1)</script>', '${7*7}{{7*7}}', '__proto__', 'constructor', '2026-02-30', '2026-11-01T01:30:00-07:00', '', ' ', 'x'.repeat(5000),
    ),
  );
  const deep = fc.letrec((tie) => ({
    node: fc.oneof({ depthSize: 'small' }, fc.constant(null), fc.integer(), fc.boolean(), hostileString, fc.array(tie('node'), { maxLength: 3 }), fc.dictionary(fc.string({ maxLength: 8 }), tie('node'), { maxKeys: 3 })),
  })).node;
  /** Header-safe text (fetch refuses CR, LF, NUL and non-Latin-1 in header values). */
  const headerText = fc.oneof(fc.string({ maxLength: 80 }), fc.constantFrom('%', '%zz', '::', 'W/', '"', '*', 'x'.repeat(4000)));

  // ---- 1. review operations ----
  const PARAM_NAMES = ['authorizedPractitionerRole', 'note', 'what', 'document', 'reason', 'criteria', 'days', 'reviewer', 'report', 'outOfNetworkTreatment', 'treatmentPerformer'];
  const paramName = fc.oneof({ weight: 6, arbitrary: fc.constantFrom(...PARAM_NAMES) }, { weight: 1, arbitrary: hostileString }, { weight: 1, arbitrary: fc.constantFrom<unknown>(42, null, true, ['note'], { name: 'note' }) });
  const dateLike = fc.constantFrom('2026-02-30', '2026-13-01', '0000-00-00', '9999-12-31T23:59:59Z', '2026-11-01T01:30:00-07:00', '2026-03-08T02:30:00-08:00', 'yesterday', '-000001-01-01', '2026-02-29');
  const days = fc.oneof(fc.integer({ min: -1000, max: 1000 }), fc.constantFrom(0, -1, 1, 14, 15, 2 ** 31, -(2 ** 31), Number.MAX_SAFE_INTEGER, 1e308, -1e308, 1.5, 0.0001, '3', '1e3', 'NaN', null));
  const reference = fc.oneof(
    fc.constantFrom<unknown>(
      { reference: 'PractitionerRole/role-hpsj-card-2' }, { reference: 'PractitionerRole/role-oon-neuro-1' }, { reference: 'PractitionerRole/role-hpsj-md-1' }, { reference: 'PractitionerRole/does-not-exist' },
      { reference: 'Practitioner/hpsj-md-1' }, { reference: 'Patient/member-hpsj-1' }, { reference: 'DocumentReference/x' }, { reference: 'http://evil.example/fhir/PractitionerRole/1' },
      { reference: '#contained' }, { reference: 'urn:uuid:a' }, { reference: '' }, { reference: 42 }, { reference: { reference: 'x' } }, { reference: ['PractitionerRole/role-hpsj-card-2'] },
      {}, { display: 'Dr. Nobody' }, { identifier: { system: 'x', value: 'y' } }, [], 'PractitionerRole/role-hpsj-card-2',
    ),
    fc.record({ reference: hostileString, display: fc.option(hostileString) }, { requiredKeys: ['reference'] }),
  );
  const docRef = fc.record(
    {
      resourceType: fc.constantFrom('DocumentReference', 'DocumentReference', 'Patient', 'Parameters', ''),
      status: fc.constantFrom('current', 'bogus', 42),
      description: hostileString,
      date: dateLike,
      content: fc.oneof(fc.constant([]), fc.constant([{ attachment: { contentType: 'text/plain', data: 'eA==' } }]), fc.array(fc.record({ attachment: fc.record({ data: hostileString, contentType: hostileString }) }), { maxLength: 2 }), deep),
      context: deep,
      id: hostileString,
      meta: deep,
    },
    { requiredKeys: ['resourceType'] },
  );
  /** A parameter's value[x], resource or parts, of the right type or not. */
  const valueSlot = (names: fc.Arbitrary<unknown>) =>
    fc.oneof(
      hostileString.map((v) => ({ valueString: v })),
      days.map((v) => ({ valueInteger: v })),
      days.map((v) => ({ valueDecimal: v })),
      fc.boolean().map((v) => ({ valueBoolean: v })),
      dateLike.map((v) => ({ valueDate: v })),
      dateLike.map((v) => ({ valueDateTime: v })),
      reference.map((v) => ({ valueReference: v })),
      hostileString.map((v) => ({ valueCode: v })),
      deep.map((v) => ({ valueString: v })),
      deep.map((v) => ({ valueReference: v })),
      docRef.map((resource) => ({ resource })),
      fc.constant({}),
      fc.constant({ valueString: 'a', valueInteger: 1 }),
      fc.array(fc.record({ name: names, valueString: hostileString }), { maxLength: 3 }).map((part) => ({ part })),
    );
  /** Parameters whose names are strings (the known ones, mostly) and whose values are anything. */
  const wellNamed = fc.oneof({ weight: 6, arbitrary: fc.constantFrom(...PARAM_NAMES) }, { weight: 1, arbitrary: hostileString });
  const typedParameters = fc.array(fc.tuple(wellNamed, valueSlot(wellNamed)).map(([name, v]) => ({ name, ...v })), { maxLength: 5 }).map((parameter) => ({ resourceType: 'Parameters', parameter }));
  /** Any JSON shape: parameter names of the wrong type, parameter lists that are not lists, other resources. */
  const parameter = fc.tuple(paramName, valueSlot(paramName)).map(([name, v]) => ({ name, ...v }));
  const parametersBody = fc.oneof(
    { weight: 6, arbitrary: fc.array(parameter, { maxLength: 5 }).map((parameter) => ({ resourceType: 'Parameters', parameter })) },
    { weight: 1, arbitrary: fc.record({ resourceType: fc.constant('Parameters'), parameter: deep }) },
    { weight: 1, arbitrary: fc.array(fc.oneof(deep, parameter), { maxLength: 3 }).map((parameter) => ({ resourceType: 'Parameters', parameter })) },
    { weight: 1, arbitrary: docRef },
    { weight: 1, arbitrary: deep },
  );
  /**
   * Inputs of the declared names, types and cardinality (from the published OperationDefinitions) with
   * hostile values: these get past the parser and exercise each action's own checks.
   */
  const definitions = readConformanceResources().filter((r): r is OperationDefinition => r.resourceType === 'OperationDefinition');
  const integers = fc.oneof(fc.integer({ min: -1000, max: 1000 }), fc.constantFrom(0, -1, 1, 14, 15, 2 ** 31, -(2 ** 31), Number.MAX_SAFE_INTEGER));
  // Half of the values are good ones, so that actions also succeed and the success path is checked too.
  const valueOfType = (type: string | undefined): fc.Arbitrary<Record<string, unknown>> =>
    type === 'integer' ? fc.oneof(fc.integer({ min: 1, max: 14 }), integers).map((v) => ({ valueInteger: v }))
      : type === 'Reference' ? fc.oneof(fc.constant({ reference: 'PractitionerRole/role-hpsj-card-2' }), reference).map((v) => ({ valueReference: v }))
        : type === 'DocumentReference' || type === 'Resource' ? docRef.map((resource) => ({ resource }))
          : hostileString.map((v) => ({ valueString: v }));
  const declaredInputs = (action: string) => {
    const definition = definitions.find((d) => d.id === `Task-${action}`);
    expect(definition, `OperationDefinition Task-${action}`).toBeDefined();
    const inputs = (definition!.parameter ?? []).filter((p) => p.use === 'in');
    return fc
      .tuple(...inputs.map((p) => fc.array(valueOfType(p.type).map((v) => ({ name: p.name, ...v })), { minLength: p.min, maxLength: p.max === '*' ? 3 : Math.max(p.min, Number(p.max)) })))
      .map((lists) => ({ resourceType: 'Parameters', parameter: lists.flat() }));
  };
  /** A valid input for each action, so the fuzz also reaches the action's logic and not only the parser. */
  const plausible: Record<string, unknown[]> = {
    approve: [{ name: 'authorizedPractitionerRole', valueReference: { reference: 'PractitionerRole/role-hpsj-card-2' } }],
    'request-info': [{ name: 'what', valueString: 'Latest MRI report' }],
    'answer-info': [{ name: 'document', valueReference: { reference: 'DocumentReference/x' } }],
    escalate: [{ name: 'note', valueString: 'n' }],
    deny: [{ name: 'reason', valueString: 'r' }],
    modify: [{ name: 'authorizedPractitionerRole', valueReference: { reference: 'PractitionerRole/role-hpsj-card-2' } }, { name: 'reason', valueString: 'r' }],
    extend: [{ name: 'days', valueInteger: 5 }, { name: 'reason', valueString: 'r' }],
    'refer-consultative-review': [],
    withdraw: [],
    'post-report': [{ name: 'report', resource: { resourceType: 'DocumentReference', status: 'current', content: [{ attachment: { data: 'eA==' } }] } }],
  };
  const target = fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom<'open' | 'approved'>('open', 'open', 'approved') },
    { weight: 1, arbitrary: fc.oneof(fc.constantFrom('does-not-exist', 'x'.repeat(64), 'x'.repeat(65), '..', '.', '-', '%2e%2e', 'Task', '$approve', '1 OR 1=1', 'ü', '__proto__'), hostileString).map((id) => ({ id })) },
  );
  const WRONG_VERSIONS = ['W/"999999"', '"0"', 'W/"-1"'];
  const ifMatch = fc.oneof(
    { weight: 5, arbitrary: fc.constant<string | undefined>(undefined) },
    { weight: 2, arbitrary: fc.constantFrom('current-weak', 'current-strong') },
    { weight: 2, arbitrary: fc.constantFrom(...WRONG_VERSIONS, '*', 'W/""', '""', 'W/', '"', '   ', 'W/"1", W/"2"') },
    { weight: 1, arbitrary: headerText },
  );

  /** Resolves the generated target to a path id and, for real cases, the version before the call. */
  async function resolveTarget(t: 'open' | 'approved' | { id: string }): Promise<{ id: string; path: string; before?: string }> {
    if (typeof t === 'object') return { id: t.id, path: encodeURIComponent(t.id) };
    const id = t === 'open' ? (openCase ??= await submitOpenCase()) : approvedCase;
    return { id, path: id, before: await versionOf(id) };
  }
  function ifMatchHeader(value: string | undefined, before: string | undefined): Record<string, string> {
    if (value === undefined) return {};
    if (value === 'current-weak') return { 'if-match': `W/"${before ?? '1'}"` };
    if (value === 'current-strong') return { 'if-match': `"${before ?? '1'}"` };
    return { 'if-match': value };
  }

  /** How many Tasks, letters and notices are stored: a refused action adds none. */
  const stored = async () =>
    Promise.all(['Task', 'DocumentReference', 'Communication', 'Provenance'].map(async (type) => {
      const r = await fhir('review-read', `${type}?_summary=count`);
      expect(r.status, show(r)).toBe(200);
      return `${type}:${(r.body as { total?: number }).total}`;
    }));

  async function reviewCall(family: string, action: string, t: 'open' | 'approved' | { id: string }, body: string, contentType: string | undefined, im: string | undefined, qs?: [string, string][], checkStored = false) {
    const { id, path, before } = await resolveTarget(t);
    const storedBefore = checkStored && before !== undefined ? await stored() : undefined;
    const search = qs?.length ? `?${new URLSearchParams(qs).toString()}` : '';
    const headers = { ...(contentType ? { 'content-type': contentType } : {}), ...ifMatchHeader(im, before) };
    const r = await fhir(family, `Task/${path}/$${action}${search}`, { method: 'POST', headers, body });
    acceptableFhir(r);
    if (before === undefined) return r;
    const after = await versionOf(id);
    if (r.status >= 300) {
      // A refused action changes nothing on the case.
      expect(after, `refused ${action} (${show(r)}) still changed Task/${id}`).toBe(before);
      if (storedBefore) expect(await stored(), `refused ${action} (${show(r)}) still stored something`).toEqual(storedBefore);
    } else {
      expect((r.body as Task).resourceType, show(r)).toBe('Task');
      expect((r.body as Task).id).toBe(id);
      expect(after).not.toBe(before);
      // A stale If-Match never lets an action through.
      expect(WRONG_VERSIONS.includes(im ?? ''), `${action} with If-Match ${im} succeeded`).toBe(false);
      // The case moved on: the next run that wants an open case gets a new one.
      if (t === 'open') openCase = undefined;
    }
    return r;
  }

  it('review actions with well-named Parameters of any value, hostile ids and If-Match: 2xx Task or 4xx OperationOutcome; refused ones leave the Task version as it was and store nothing', async () => {
    const actionAndBody = fc.constantFrom(...REVIEW_ACTIONS).chain((action) =>
      fc.tuple(fc.constant(action), fc.oneof({ weight: 4, arbitrary: declaredInputs(action) }, { weight: 2, arbitrary: typedParameters }, { weight: 1, arbitrary: fc.constant({ resourceType: 'Parameters', parameter: plausible[action] }) })),
    );
    const query = fc.oneof({ weight: 5, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.array(fc.tuple(wellNamed, fc.oneof(hostileString, days.map(String))), { maxLength: 3 }) });
    await fc.assert(
      fc.asyncProperty(actionAndBody, target, ifMatch, query, async ([action, json], t, im, qs) => {
        await reviewCall('review-typed', action, t, JSON.stringify(json), 'application/fhir+json', im, qs, true);
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });

  it('review actions with Parameters of any JSON shape (names of the wrong type, lists that are not lists, other resources)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...REVIEW_ACTIONS), fc.constantFrom<'open' | 'approved'>('open', 'approved'), parametersBody, async (action, t, b) => {
        await reviewCall('review-shape', action, t, JSON.stringify(b), 'application/fhir+json', undefined);
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });

  it('review actions with unreadable bodies and wrong content types', async () => {
    const ODD_JSON = ['null', '[]', '"Parameters"', '42', 'true', '{}', '{"resourceType":null}', '{"resourceType":"Parameters","parameter":null}', '{"resourceType":"Parameters","parameter":{}}', '{"resourceType":"Parameters","parameter":"note"}', '{"resourceType":"Parameters","parameter":[null]}', '{"resourceType":"Parameters","parameter":[1,2]}', '{"resourceType":"Parameters","parameter":[[]]}', '{"__proto__":{"resourceType":"Parameters"}}', '{"resourceType":"Parameters","parameter":[{"name":"days","valueInteger":1e999}]}', '{"resourceType":"Parameters","parameter":[{"name":"__proto__","valueString":"x"}]}', '{"resourceType":"Parameters","parameter":[{"name":"note","part":null}]}', '{"resourceType":"Parameters","parameter":[{"name":"note","part":[null]}]}'];
    const bodies = fc.oneof(
      fc.tuple(fc.string({ maxLength: 300 }), fc.constantFrom('application/fhir+json', 'application/json', 'text/plain', 'application/xml', 'application/x-www-form-urlencoded', 'application/fhir+json; charset=utf-16', 'multipart/form-data; boundary=x', '')).map(([text, type]) => ({ text, type })),
      fc.constantFrom(...ODD_JSON).map((text) => ({ text, type: 'application/fhir+json' })),
    );
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...REVIEW_ACTIONS), fc.constantFrom<'open' | 'approved'>('open', 'approved'), bodies, async (action, t, b) => {
        await reviewCall('review-malformed', action, t, b.text, b.type || undefined, undefined);
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });

  /** Big bodies, described small so a counterexample stays readable. */
  type Huge = { nested: number; in: 'part' | 'extension' } | { repeated: number; name: string } | { stringOf: number };
  function hugeBody(h: Huge): string {
    if ('nested' in h) {
      return h.in === 'part'
        ? `{"resourceType":"Parameters","parameter":[${'{"name":"note","part":['.repeat(h.nested)}${']}'.repeat(h.nested)}]}`
        : `{"resourceType":"Parameters","parameter":[{"name":"report","resource":{"resourceType":"DocumentReference","content":[{"attachment":{"data":"eA=="}}],"extension":[${'{"url":"x","extension":['.repeat(h.nested)}${']}'.repeat(h.nested)}]}}]}`;
    }
    if ('repeated' in h) {
      const parameter = Array.from({ length: h.repeated }, (_, i) => (h.name === 'document' ? { name: h.name, valueReference: { reference: `DocumentReference/d${i}` } } : { name: h.name, valueString: `w${i}` }));
      return JSON.stringify({ resourceType: 'Parameters', parameter });
    }
    return JSON.stringify({ resourceType: 'Parameters', parameter: [{ name: 'reason', valueString: 'x'.repeat(h.stringOf) }] });
  }

  it('review actions with deeply nested, long or oversized bodies', async () => {
    const huge = fc.oneof(
      fc.record({ nested: fc.constantFrom(10, 1000, 5000, 20_000, 100_000), in: fc.constantFrom<'part' | 'extension'>('part', 'extension') }),
      fc.record({ repeated: fc.constantFrom(100, 1000, 5000), name: fc.constantFrom('what', 'note', 'document', 'criteria', 'bogus') }),
      fc.record({ stringOf: fc.constantFrom(100_000, 1_000_000, 6_000_000) }),
    );
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...REVIEW_ACTIONS), fc.constantFrom<'open' | 'approved'>('open', 'approved'), huge, async (action, t, h) => {
        await reviewCall('review-huge', action, t, hugeBody(h as Huge), 'application/fhir+json', undefined);
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });

  it('a review action with 15 000 repeated parameters is read in linear time (no event-loop stall)', async () => {
    // About 0.6 MB, far under the body limit; a linear reader takes tens of milliseconds.
    const started = Date.now();
    try {
      const r = await reviewCall('review-huge', 'deny', 'approved', hugeBody({ repeated: 15_000, name: 'criteria' }), 'application/fhir+json', undefined);
      expect(r.status).toBe(400);
      expect(Date.now() - started, 'reading 15 000 parameters stalled the server').toBeLessThan(1000);
    } finally {
      // After a stall the server's overdue keep-alive timers close pooled sockets: let that settle before the next request.
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  });

  // ---- 2. token endpoint ----
  const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
  const b64 = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v) ?? 'undefined').toString('base64url');
  const now = () => Math.floor(Date.now() / 1000);
  const jwtHeader = fc.oneof(
    fc.constantFrom<unknown>({ alg: 'none', typ: 'JWT' }, { alg: 'RS384' }, { alg: 'RS384', kid: 'demo-backend-1' }, { alg: 'ES384', kid: 'demo-backend-1' }, { alg: 'HS256' }, { alg: 'RS384', kid: {} }, { alg: 'RS384', kid: 'nope' }, { alg: ['RS384'] }, {}, null, 'x', [], 42),
    deep,
  );
  const jwtPayload = fc.oneof(
    fc.record(
      {
        iss: fc.oneof(fc.constantFrom<unknown>(DEMO_BACKEND_CLIENT_ID, APP_CLIENT_ID, '', null, 42, {}, ['demo-backend']), hostileString),
        sub: fc.oneof(fc.constantFrom<unknown>(DEMO_BACKEND_CLIENT_ID, 'other', null), hostileString),
        aud: fc.constantFrom<unknown>('token-url', 'https://evil.example/auth/token', ['token-url'], 42, null),
        exp: fc.constantFrom<unknown>('soon', 'past', 'far', 0, -1, 1e308, '1', null),
        jti: fc.oneof(fc.constantFrom<unknown>('', null, 42, 'fixed-jti'), hostileString),
      },
      { requiredKeys: [] },
    ),
    fc.constantFrom<unknown>(null, 'null', [], 'not json', 42),
    deep,
  );
  /** Realizes the claims at run time (the token URL and the clock are known only then). */
  const realize = (p: unknown): unknown => {
    if (!p || typeof p !== 'object' || Array.isArray(p)) return p;
    const o = { ...(p as Record<string, unknown>) };
    const tokenUrl = `${server.url}/auth/token`;
    if (o.aud === 'token-url') o.aud = tokenUrl;
    if (Array.isArray(o.aud) && o.aud[0] === 'token-url') o.aud = [tokenUrl];
    if (o.exp === 'soon') o.exp = now() + 120;
    if (o.exp === 'past') o.exp = now() - 120;
    if (o.exp === 'far') o.exp = now() + 86_400;
    return o;
  };
  /** Claims for an assertion signed with the real demo-backend key, each with one thing wrong. */
  const BROKEN_CLAIMS = [
    { aud: 'https://evil.example/auth/token' },
    { exp: 'past' },
    { exp: 'far' },
    { jti: '' },
    { sub: 'someone-else' },
    { iss: APP_CLIENT_ID, sub: APP_CLIENT_ID },
    { nbf: 'future' },
  ];
  const assertion = fc.oneof(
    hostileString,
    fc.constantFrom('a.b.c', 'eyJ.eyJ.', '...', '.', 'e30.e30.', 'e30.e30', 'eyJhbGciOiJub25lIn0.bnVsbA.', 'x'.repeat(20_000)),
    fc.tuple(jwtHeader, jwtPayload, fc.constantFrom('', 'AAAA', 'sig', '.extra')).map(([h, p, s]) => ({ kind: 'raw' as const, h, p, s })),
    fc.tuple(jwtPayload, fc.constantFrom<jwt.Algorithm>('RS384', 'RS256', 'RS512'), fc.constantFrom('demo-backend-1', undefined)).map(([p, alg, kid]) => ({ kind: 'other-key' as const, p, alg, kid })),
    fc.tuple(fc.constantFrom(...BROKEN_CLAIMS), fc.constantFrom<jwt.Algorithm>('RS384', 'RS256')).map(([claims, alg]) => ({ kind: 'real-key-broken' as const, claims, alg })),
  );
  type AssertionSpec = string | { kind: 'raw'; h: unknown; p: unknown; s: string } | { kind: 'other-key'; p: unknown; alg: jwt.Algorithm; kid?: string } | { kind: 'real-key-broken'; claims: Record<string, unknown>; alg: jwt.Algorithm };
  function makeAssertion(a: AssertionSpec): string {
    if (typeof a === 'string') return a;
    if (a.kind === 'raw') return `${b64(a.h)}.${b64(realize(a.p))}.${a.s}`;
    if (a.kind === 'other-key') {
      const p = realize(a.p);
      const payload = p && typeof p === 'object' && !Array.isArray(p) ? { ...(p as object) } : { iss: DEMO_BACKEND_CLIENT_ID, sub: DEMO_BACKEND_CLIENT_ID, value: p };
      // jsonwebtoken refuses to sign non-numeric exp; such claims are covered by the raw kind.
      for (const k of ['exp', 'nbf', 'iat'] as const) if (k in payload && typeof (payload as Record<string, unknown>)[k] !== 'number') delete (payload as Record<string, unknown>)[k];
      for (const k of ['iss', 'sub', 'jti'] as const) if (k in payload && typeof (payload as Record<string, unknown>)[k] !== 'string') delete (payload as Record<string, unknown>)[k];
      if ('aud' in payload && typeof (payload as Record<string, unknown>).aud !== 'string' && !Array.isArray((payload as Record<string, unknown>).aud)) delete (payload as Record<string, unknown>).aud;
      return jwt.sign(payload, otherKeyPem, { algorithm: a.alg, ...(a.kid ? { keyid: a.kid } : {}) });
    }
    const c = { ...a.claims } as Record<string, unknown>;
    if (c.exp === 'past') c.exp = now() - 120;
    if (c.exp === 'far') c.exp = now() + 3600;
    if (c.nbf === 'future') c.nbf = now() + 3600;
    return backendAssertion(server, c, a.alg);
  }
  const scope = fc.oneof(
    hostileString,
    fc.constantFrom('system/*.rs', 'system/*.cruds', 'user/*.cruds', 'patient/*.rs openid fhirUser offline_access', 'system/*.*', 'system/Patient.rs?_tag=a|b', '\u0000system/*.rs', 'system/*.rs\r\nuser/*.cruds', 'system/*.rs\tuser/*.cruds', '  ', 'openid '.repeat(2000), 'launch/patient\u0085'),
  );
  const formValue = fc.oneof({ weight: 4, arbitrary: hostileString }, { weight: 1, arbitrary: fc.array(hostileString, { minLength: 2, maxLength: 3 }) });
  const tokenForm = fc.record(
    {
      grant_type: fc.oneof(fc.constantFrom('authorization_code', 'refresh_token', 'client_credentials', 'urn:ietf:params:oauth:grant-type:token-exchange', 'password', 'implicit', 'AUTHORIZATION_CODE', 'client_credentials ', 'urn:ietf:params:oauth:grant-type:jwt-bearer'), formValue),
      client_id: fc.oneof({ weight: 4, arbitrary: fc.constant(APP_CLIENT_ID) }, { weight: 1, arbitrary: fc.constantFrom(DEMO_BACKEND_CLIENT_ID, 'dyn-000000000000000000000000', 'client:second-opinion-app', '__proto__', 'constructor') }, { weight: 1, arbitrary: formValue }),
      client_secret: formValue,
      client_assertion_type: fc.oneof(fc.constant(ASSERTION_TYPE), formValue),
      client_assertion: assertion,
      code: fc.oneof(fc.constantFrom('', 'x', pkce().verifier), formValue),
      code_verifier: fc.oneof(fc.constant(pkce().verifier), fc.constantFrom('a'.repeat(43), 'a'.repeat(129), '~'.repeat(43)), formValue),
      redirect_uri: fc.oneof(fc.constantFrom('registered', 'https://evil.example/cb'), formValue),
      refresh_token: fc.oneof(fc.constantFrom('', 'x'.repeat(43)), formValue),
      scope,
      subject_token: fc.oneof(assertion, formValue),
      subject_token_type: fc.oneof(fc.constantFrom('urn:ietf:params:oauth:token-type:access_token', 'urn:ietf:params:oauth:token-type:jwt'), formValue),
      extra: fc.array(fc.tuple(hostileString, hostileString), { maxLength: 3 }),
    },
    { requiredKeys: [] },
  );
  type TokenForm = typeof tokenForm extends fc.Arbitrary<infer T> ? T : never;
  function encodeForm(f: TokenForm): URLSearchParams {
    const out = new URLSearchParams();
    for (const [k, v] of Object.entries(f)) {
      if (k === 'extra') {
        for (const [ek, ev] of v as [string, string][]) out.append(ek, ev);
        continue;
      }
      if (k === 'client_assertion' || (k === 'subject_token' && typeof v === 'object' && !Array.isArray(v))) {
        out.append(k, makeAssertion(v as AssertionSpec));
        continue;
      }
      if (k === 'redirect_uri' && v === 'registered') {
        out.append(k, registered[0]);
        continue;
      }
      for (const one of Array.isArray(v) ? v : [v]) out.append(k, String(one));
    }
    return out;
  }

  it('token endpoint: arbitrary form bodies get a 4xx { error } and never an access token', async () => {
    await fc.assert(
      fc.asyncProperty(tokenForm, async (f) => {
        const body = encodeForm(f).toString();
        fc.pre(body.length <= 60_000); // oversized bodies have their own property below
        refusedOAuth(await send('token', `${server.url}/auth/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body }));
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });

  it('token endpoint: control characters in client and grant identifiers (every field x character)', async () => {
    const CONTROL = ['\u0000', '\u0001', '\u001f', '\u007f', '\u0085', '\u2028', '\ud800', '\r\n', '\t'];
    const FIELDS = ['client_id', 'client_secret', 'code', 'refresh_token', 'redirect_uri', 'code_verifier', 'scope', 'assertion-iss', 'assertion-kid', 'subject_token'] as const;
    const GRANTS = ['authorization_code', 'refresh_token', 'client_credentials', 'urn:ietf:params:oauth:grant-type:token-exchange'];
    const failures: string[] = [];
    let i = 0;
    for (const where of FIELDS) {
      for (const c of CONTROL) {
        const grant = GRANTS[i++ % GRANTS.length];
        const value = `a${c}b`;
        const form = new URLSearchParams({ grant_type: grant, client_id: APP_CLIENT_ID, code: 'x', refresh_token: 'x', subject_token: 'x', code_verifier: pkce().verifier, redirect_uri: registered[0] });
        if (where === 'assertion-iss' || where === 'assertion-kid') {
          form.delete('client_id');
          form.set('client_assertion_type', ASSERTION_TYPE);
          const header = where === 'assertion-kid' ? { alg: 'RS384', kid: value } : { alg: 'RS384' };
          form.set('client_assertion', `${b64(header)}.${b64({ iss: where === 'assertion-iss' ? value : DEMO_BACKEND_CLIENT_ID, sub: DEMO_BACKEND_CLIENT_ID, aud: `${server.url}/auth/token`, exp: now() + 60, jti: randomUUID() })}.c2ln`);
        } else if (where === 'subject_token') {
          form.set('subject_token', `${b64({ alg: 'RS256' })}.${b64({ iss: value })}.c2ln`);
        } else form.set(where, value);
        const r = await send('token-control', `${server.url}/auth/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: form.toString() });
        // Collected, so one run reports every failing field and character at once.
        if (r.status >= 500 || r.status < 400 || typeof (r.body as { error?: unknown })?.error !== 'string' || r.text.includes('access_token')) {
          failures.push(`${where}=${JSON.stringify(value)} grant_type=${grant}: ${r.status} ${r.text.slice(0, 80).replace(/\s+/g, ' ')}`);
        }
      }
    }
    expect(failures).toEqual([]);
  });

  it('token endpoint: hostile HTTP Basic client credentials', async () => {
    const basic = fc.oneof(
      fc.tuple(fc.oneof(fc.constantFrom(APP_CLIENT_ID, DEMO_BACKEND_CLIENT_ID, '', '%', '%zz', 'a%2'), hostileString), fc.oneof(fc.constantFrom('', '%', '%E0%A4%A', 'secret'), hostileString)).map(([id, secret]) => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`),
      headerText.map((t) => `Basic ${t}`),
      fc.constantFrom('Basic', 'Basic ', 'basic Og==', 'Basic Og==', 'Basic JQ==', 'Basic JTpa', 'Bearer x', 'Digest x'),
    );
    await fc.assert(
      fc.asyncProperty(basic, tokenForm, async (authorization, f) => {
        const body = encodeForm(f).toString();
        fc.pre(body.length <= 60_000);
        refusedOAuth(await send('token-basic', `${server.url}/auth/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', authorization }, body }));
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });

  it('token endpoint: JSON, garbage, oversized and wrongly encoded bodies', async () => {
    /** Named, so that a counterexample shows the name and not 70 kB of body. */
    const ODD_FORMS = {
      'over the 64 kB form limit': { type: 'application/x-www-form-urlencoded', body: `grant_type=client_credentials&scope=${'x'.repeat(70_000)}` },
      'over 1000 form fields': { type: 'application/x-www-form-urlencoded', body: Array.from({ length: 1500 }, (_, i) => `k${i}=v`).join('&') },
      'charset utf-16': { type: 'application/x-www-form-urlencoded; charset=utf-16', body: 'grant_type=client_credentials' },
      'charset koi8-r': { type: 'application/x-www-form-urlencoded; charset=koi8-r', body: 'grant_type=client_credentials' },
      'bad percent-encoding': { type: 'application/x-www-form-urlencoded', body: 'grant_type=%E0%A4%A&client_id=%zz' },
      'bracketed and prototype keys': { type: 'application/x-www-form-urlencoded', body: 'grant_type[]=a&client_id[x]=b&__proto__[a]=1&constructor=1' },
      'only separators': { type: 'application/x-www-form-urlencoded', body: '&&&===&&' },
      'gzip that is not gzip': { type: 'application/x-www-form-urlencoded', body: 'grant_type=client_credentials', encoding: 'gzip' },
      'unknown content-encoding': { type: 'application/x-www-form-urlencoded', body: 'grant_type=client_credentials', encoding: 'br2' },
    } satisfies Record<string, { type: string; body: string; encoding?: string }>;
    const bodies = fc.oneof(
      tokenForm.map((f) => ({ type: 'application/json', body: JSON.stringify(Object.fromEntries(encodeForm(f))) })),
      fc.tuple(fc.string({ maxLength: 300, unit: 'binary' }), fc.constantFrom('application/x-www-form-urlencoded', 'application/json', 'text/plain', 'multipart/form-data; boundary=x', 'application/xml', '')).map(([body, type]) => ({ type, body })),
      fc.constantFrom(...(Object.keys(ODD_FORMS) as (keyof typeof ODD_FORMS)[])).map((odd) => ({ odd })),
    );
    await fc.assert(
      fc.asyncProperty(bodies, async (spec) => {
        const b: { type: string; body: string; encoding?: string } = 'odd' in spec ? ODD_FORMS[spec.odd] : spec;
        const headers: Record<string, string> = { ...(b.type ? { 'content-type': b.type } : {}), ...(b.encoding ? { 'content-encoding': b.encoding } : {}) };
        refusedOAuth(await send('token-raw', `${server.url}/auth/token`, { method: 'POST', headers, body: b.body }));
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });

  // ---- 3. authorize endpoint ----
  const XSS = '"><script>alert(1)</script>';
  /** Hostile but printable: no control characters (those have their own property). */
  const printable = fc.oneof(fc.string({ maxLength: 200 }), fc.constantFrom(XSS, "' OR 1=1 --", '%zz', '%00', '𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ✓ ñ', '../../etc/passwd', '${7*7}{{7*7}}', '__proto__', '', ' ', 'x'.repeat(3000)));
  /** redirect_uri variants: the registered ones (reg0, reg1) and near misses of them, resolved at run time. */
  const redirectUri = (text: fc.Arbitrary<string>) =>
    fc.oneof(
      fc.constantFrom('reg0', 'reg1', 'https://evil.example/cb', 'javascript:alert(1)', 'data:text/html,x', '//evil.example/cb', 'reg0?x=1', 'reg0#frag', 'reg0/', 'reg0 ', 'reg0-UPPER', 'reg1..%2fevil', 'reg1@evil.example', 'reg1%2e%2e/', 'http://127.0.0.1:1/app/'),
      text,
    );
  const resolveRedirect = (s: string) => {
    const m = /^reg([01])(.*)$/s.exec(s);
    if (!m) return s;
    const uri = registered[Number(m[1])];
    return m[2] === '-UPPER' ? uri.toUpperCase() : uri + m[2];
  };

  async function authorize(family: string, p: Record<string, string>, duplicateRedirect: boolean, method: 'GET' | 'POST'): Promise<{ r: Answer; values: Record<string, string> }> {
    const values: Record<string, string> = { ...p };
    if (values.redirect_uri !== undefined) values.redirect_uri = resolveRedirect(values.redirect_uri);
    if (values.aud === 'fhirBase') values.aud = server.fhirBase;
    if (values.aud === 'fhirBase/') values.aud = `${server.fhirBase}/`;
    const qs = new URLSearchParams(values);
    if (duplicateRedirect) qs.append('redirect_uri', 'https://evil.example/dup');
    const url = `${server.url}/auth/authorize`;
    const r = method === 'GET' ? await send(family, `${url}?${qs}`) : await send(family, url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: qs.toString() });
    expect(r.status, show(r)).toBeLessThan(500);
    // 414/431: Node refuses an over-long request line or headers before any handler runs.
    if (r.status >= 400 && r.status !== 414 && r.status !== 431) expect(typeof (r.body as { error?: unknown })?.error, show(r)).toBe('string');
    return { r, values };
  }

  it('authorize: control characters and arbitrary text in every parameter never cause a 5xx', async () => {
    const param = fc.record(
      {
        client_id: fc.oneof(fc.constantFrom(APP_CLIENT_ID, DEMO_BACKEND_CLIENT_ID, 'unknown-app'), hostileString),
        redirect_uri: redirectUri(hostileString),
        response_type: fc.oneof(fc.constant('code'), hostileString),
        scope: fc.oneof(scope, fc.constantFrom('openid fhirUser launch/patient patient/*.rs', 'user/*.cruds')),
        state: fc.oneof(fc.constant('abc'), hostileString),
        aud: fc.oneof(fc.constantFrom('fhirBase', 'fhirBase/'), hostileString),
        code_challenge: fc.oneof(fc.constant(pkce().challenge), hostileString),
        code_challenge_method: fc.oneof(fc.constant('S256'), hostileString),
        launch: hostileString,
        user: fc.oneof(fc.constantFrom('Practitioner/hpsj-md-1', 'Patient/member-hpsj-1'), hostileString),
        patient: fc.oneof(fc.constant('Patient/member-hpsj-1'), hostileString),
        nonce: hostileString,
      },
      { requiredKeys: [] },
    );
    await fc.assert(
      fc.asyncProperty(param, fc.constantFrom<'GET' | 'POST'>('GET', 'GET', 'POST'), async (p, method) => {
        await authorize('authorize', p, false, method);
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });

  it('authorize: never a redirect to a URI the client did not register, and nothing reflected unescaped', async () => {
    // Mostly valid requests (so logins and codes happen) with one or two parameters off; redirect_uri is off half the time.
    const mostly = <T, U>(valid: fc.Arbitrary<T>, off: fc.Arbitrary<U>, weight = 19) => fc.oneof({ weight, arbitrary: valid }, { weight: 1, arbitrary: off });
    const param = fc.record({
      client_id: mostly(fc.constant(APP_CLIENT_ID), fc.oneof(fc.constantFrom(DEMO_BACKEND_CLIENT_ID, 'unknown-app', `${APP_CLIENT_ID} `, APP_CLIENT_ID.toUpperCase(), undefined), printable)),
      redirect_uri: mostly(fc.constantFrom('reg0', 'reg1'), redirectUri(printable), 1),
      response_type: mostly(fc.constant('code'), fc.oneof(fc.constantFrom('token', 'code id_token', '', undefined), printable)),
      scope: mostly(fc.constantFrom('openid fhirUser launch/patient patient/*.rs', 'openid fhirUser user/*.cruds offline_access', 'user/*.rs'), fc.oneof(fc.constantFrom('launch openid', 'system/*.cruds', '', undefined), printable)),
      state: mostly(fc.constantFrom('abc', XSS), fc.oneof(fc.constantFrom('', undefined), printable)),
      aud: mostly(fc.constantFrom('fhirBase', 'fhirBase/'), fc.oneof(fc.constantFrom('https://evil.example/fhir', '', undefined), printable)),
      code_challenge: mostly(fc.constant(pkce().challenge), fc.oneof(fc.constantFrom('a'.repeat(42), 'a'.repeat(129), XSS, undefined), printable)),
      code_challenge_method: mostly(fc.constant('S256'), fc.oneof(fc.constantFrom('plain', 's256', '', undefined), printable)),
      launch: mostly(fc.constant(undefined), fc.constantFrom('', 'x', 'unknown-launch', XSS)),
      user: fc.constantFrom('Practitioner/hpsj-md-1', 'Practitioner/hpsj-pcp-1', 'Patient/member-hpsj-1', 'Practitioner/nobody', XSS, '', undefined),
      patient: fc.constantFrom('Patient/member-hpsj-1', 'Patient/member-phc-1', XSS, '', undefined),
      nonce: fc.option(printable, { nil: undefined }),
    });
    await fc.assert(
      fc.asyncProperty(param, fc.boolean(), fc.constantFrom<'GET' | 'POST'>('GET', 'GET', 'POST'), async (raw, duplicate, method) => {
        const p = Object.fromEntries(Object.entries(raw).filter(([, v]) => v !== undefined)) as Record<string, string>;
        const dup = duplicate && p.redirect_uri !== undefined && raw.client_id === APP_CLIENT_ID;
        const { r, values } = await authorize('authorize-redirect', p, dup, method);
        if (r.status >= 300 && r.status < 400) {
          const location = r.headers.get('location') ?? '';
          const allowed = values.client_id === APP_CLIENT_ID && !dup && registered.includes(values.redirect_uri ?? '') ? values.redirect_uri : undefined;
          expect(allowed, `redirected to ${location} for client_id=${JSON.stringify(values.client_id)} redirect_uri=${JSON.stringify(values.redirect_uri)}`).toBeDefined();
          expect(location.split('?')[0]).toBe(allowed);
          // A code is issued only for a complete, valid request, and carries the state back.
          if (/[?&]code=/.test(location)) {
            expect(values.response_type).toBe('code');
            expect(values.code_challenge_method).toBe('S256');
            expect(values.aud?.replace(/\/$/, '')).toBe(server.fhirBase);
            expect(new URL(location).searchParams.get('state')).toBe(values.state);
          }
        }
        if (r.status === 200) expect(r.text).not.toContain('<script>alert(1)</script>');
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });

  // ---- 4. still alive ----
  it('the server still answers afterwards', async () => {
    const r = await fhir('alive', 'metadata');
    expect(r.status).toBe(200);
    expect((r.body as { resourceType?: string }).resourceType).toBe('CapabilityStatement');
    const config = await send('alive', `${server.url}/.well-known/smart-configuration`);
    expect(config.status).toBe(200);
    expect((config.body as { token_endpoint?: string }).token_endpoint).toBe(`${server.url}/auth/token`);
    expect((config.body as { authorization_endpoint?: string }).authorization_endpoint).toBe(`${server.url}/auth/authorize`);
  });
});
