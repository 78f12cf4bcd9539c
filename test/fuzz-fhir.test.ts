import { mkdirSync, writeFileSync } from 'node:fs';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DemoServer, startDemoServer } from './helpers/demoServer.js';
import { tokenFor } from './helpers/tokens.js';

/**
 * Property-based hostile input against the running server (issue 9): every answer is a correct
 * success or a 4xx OperationOutcome, never a 5xx or a hang; refused writes store nothing; the
 * server still answers afterwards. Seeded, with a fixed budget, so runs are repeatable.
 */
const SEED = 20261124;
const RUNS = Number(process.env.FUZZ_RUNS ?? 60);
const counts: Record<string, Record<string, number>> = {};

describe('fuzzing the FHIR API', () => {
  let server: DemoServer;
  let token: string;
  beforeAll(async () => {
    server = await startDemoServer();
    token = tokenFor(server, { scope: 'user/*.cruds system/*.cruds', fhirUser: 'Practitioner/hpsj-md-1', roles: ['plan-admin', 'auditor'] }, 3600);
  });
  afterAll(async () => {
    await server?.close();
    mkdirSync('test-results', { recursive: true });
    writeFileSync('test-results/fuzz-counts.json', JSON.stringify({ seed: SEED, runsPerProperty: RUNS, counts }, null, 2));
  });

  async function send(family: string, path: string, init: RequestInit): Promise<{ status: number; body: unknown }> {
    const res = await fetch(`${server.fhirBase}/${path}`, { ...init, headers: { authorization: `Bearer ${token}`, ...(init.headers ?? {}) }, signal: AbortSignal.timeout(10_000) });
    const text = await res.text();
    (counts[family] ??= {})[String(res.status)] = ((counts[family] ?? {})[String(res.status)] ?? 0) + 1;
    let body: unknown = text;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      /* not JSON */
    }
    return { status: res.status, body };
  }

  const acceptable = (r: { status: number; body: unknown }) => {
    expect(r.status, JSON.stringify(r.body).slice(0, 300)).toBeLessThan(500);
    if (r.status >= 400) expect((r.body as { resourceType?: string })?.resourceType).toBe('OperationOutcome');
  };
  const count = async (type: string) => ((await send('count', `${type}?_summary=count`, {})).body as { total: number }).total;

  const hostileString = fc.oneof(
    fc.string({ maxLength: 200 }),
    fc.constantFrom("' OR 1=1 --", '"; DROP TABLE resources; --', '$.store[*]', '\u0000\u0001\u001f', '𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ✓ ñ', '../../etc/passwd', '%00', '2026-02-30', '2026-11-01T01:30:00-07:00', 'x'.repeat(5000)),
  );
  const deep = fc.letrec((tie) => ({ node: fc.oneof({ depthSize: 'small' }, fc.constant(null), fc.integer(), hostileString, fc.array(tie('node'), { maxLength: 3 }), fc.dictionary(fc.string({ maxLength: 8 }), tie('node'), { maxKeys: 3 })) })).node;
  const body = fc.oneof(
    fc.record({ resourceType: fc.constantFrom('Patient', 'Task', 'ServiceRequest', 'Spaceship', ''), id: fc.option(hostileString), name: fc.option(deep), status: fc.option(deep), birthDate: fc.option(hostileString), extra: fc.option(deep) }, { requiredKeys: ['resourceType'] }),
    deep,
  );

  it('create and update with arbitrary bodies: 2xx or 4xx OperationOutcome; refused ones store nothing', async () => {
    await fc.assert(
      fc.asyncProperty(body, fc.constantFrom('Patient', 'Task'), async (b, type) => {
        const before = await count(type);
        const created = await send('create', type, { method: 'POST', headers: { 'content-type': 'application/fhir+json' }, body: JSON.stringify(b) });
        acceptable(created);
        if (created.status >= 400) expect(await count(type)).toBe(before);
        const updated = await send('update', `${type}/fuzz-1`, { method: 'PUT', headers: { 'content-type': 'application/fhir+json' }, body: JSON.stringify(b) });
        acceptable(updated);
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });

  it('broken JSON and wrong content types', async () => {
    await fc.assert(
      fc.asyncProperty(fc.string({ maxLength: 300 }), fc.constantFrom('application/fhir+json', 'application/json', 'text/plain', 'application/xml', ''), async (text, type) => {
        acceptable(await send('raw-body', 'Patient', { method: 'POST', headers: type ? { 'content-type': type } : {}, body: text }));
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });

  it('search parameters with hostile values, prefixes, modifiers and chains', async () => {
    const key = fc.constantFrom('name', 'family:exact', 'birthdate', 'identifier', '_id', '_lastUpdated', 'general-practitioner', 'subject:Patient.name', '_has:Task:patient:status', '_sort', '_count', '_include', 'status:not', 'bogus', 'name:contains', '_elements');
    const value = fc.oneof(hostileString, fc.constantFrom('ge2026-01-01', 'lt2026-02-30', 'eq', 'Patient:link', '-1', '99999999999', 'a|b|c', '\\,\\|'));
    await fc.assert(
      fc.asyncProperty(fc.constantFrom('Patient', 'Task', 'ServiceRequest'), fc.array(fc.tuple(key, value), { maxLength: 4 }), fc.boolean(), async (type, params, strict) => {
        const qs = new URLSearchParams(params).toString();
        acceptable(await send('search', `${type}?${qs}`, { headers: strict ? { prefer: 'handling=strict' } : {} }));
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });

  it('JSON Patch with arbitrary operations', async () => {
    await send('setup', 'Patient/fuzz-patch', { method: 'PUT', headers: { 'content-type': 'application/fhir+json' }, body: JSON.stringify({ resourceType: 'Patient', id: 'fuzz-patch', gender: 'female' }) });
    const op = fc.record({ op: fc.constantFrom('add', 'remove', 'replace', 'move', 'copy', 'test', 'bogus'), path: fc.oneof(fc.constantFrom('/gender', '/id', '/resourceType', '/name/0', '/meta/versionId', ''), hostileString), value: fc.option(deep), from: fc.option(fc.constantFrom('/gender', '/x')) });
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 4 }), async (ops) => {
        acceptable(await send('patch', 'Patient/fuzz-patch', { method: 'PATCH', headers: { 'content-type': 'application/json-patch+json' }, body: JSON.stringify(ops) }));
      }),
      { seed: SEED, numRuns: RUNS },
    );
    expect((await send('read', 'Patient/fuzz-patch', {})).status).toBe(200);
  });

  it('transaction Bundles with urn:uuid tricks store all or nothing', async () => {
    const entry = fc.record({
      fullUrl: fc.constantFrom('urn:uuid:a', 'urn:uuid:a', 'urn:uuid:b', 'Patient/x', undefined),
      resource: fc.oneof(fc.constant({ resourceType: 'Patient', link: [{ other: { reference: 'urn:uuid:a' }, type: 'seealso' }] }), fc.constant({ resourceType: 'Task', status: 'requested', intent: 'order', for: { reference: 'urn:uuid:missing' } }), fc.constant({ resourceType: 'Patient' }), body),
      request: fc.record({ method: fc.constantFrom('POST', 'PUT', 'DELETE', 'GET', 'PATCH', 'TRACE'), url: fc.constantFrom('Patient', 'Task', 'Patient/x', 'Patient?identifier=a|b', '', 'urn:uuid:a') }),
    });
    await fc.assert(
      fc.asyncProperty(fc.array(entry, { maxLength: 5 }), fc.constantFrom('transaction', 'batch', 'collection'), async (entries, type) => {
        const before = await count('Patient');
        const r = await send('bundle', '', { method: 'POST', headers: { 'content-type': 'application/fhir+json' }, body: JSON.stringify({ resourceType: 'Bundle', type, entry: entries }) });
        acceptable(r);
        if (type === 'transaction' && r.status >= 400) expect(await count('Patient')).toBe(before);
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });

  it('$submit with arbitrary Bundles never half-stores a case', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.record({ resource: body, fullUrl: fc.option(fc.constantFrom('urn:uuid:p', 'urn:uuid:c')) }), { maxLength: 4 }), async (entries) => {
        const before = await Promise.all(['ServiceRequest', 'Task'].map(count));
        const r = await send('$submit', 'ServiceRequest/$submit', { method: 'POST', headers: { 'content-type': 'application/fhir+json' }, body: JSON.stringify({ resourceType: 'Bundle', type: 'collection', entry: entries }) });
        acceptable(r);
        if (r.status >= 400) expect(await Promise.all(['ServiceRequest', 'Task'].map(count))).toEqual(before);
      }),
      { seed: SEED, numRuns: RUNS },
    );
    expect((await send('alive', 'metadata', {})).status).toBe(200);
  });
});
