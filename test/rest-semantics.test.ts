import type { Bundle, BundleEntry, OperationOutcome, Patient } from 'fhir/r4.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../server/src/server.js';
import { raw } from './helpers/fhir.js';
import { STORE_DRIVERS } from './helpers/stores.js';
import { startFhirOnlyServer } from './helpers/testServer.js';

/**
 * REST semantics a conformance probe found wanting: the shape of batch/transaction Bundles, identities a
 * transaction touches twice, PATCH in a Bundle, response entries, conditional reads and writes (RFC 7232),
 * and _summary/_elements on reads.
 */
const patient = (family: string, extra: Partial<Patient> = {}): Patient => ({
  resourceType: 'Patient',
  name: [{ family, given: ['Ana'] }],
  birthDate: '1980-02-03',
  maritalStatus: { text: 'single' },
  text: { status: 'generated', div: `<div xmlns="http://www.w3.org/1999/xhtml">Ana ${family}</div>` },
  ...extra,
});

const base64 = (value: unknown) => Buffer.from(JSON.stringify(value), 'utf8').toString('base64');
const jsonPatch = (ops: unknown, contentType = 'application/json-patch+json') => ({ resourceType: 'Binary', contentType, data: base64(ops) });
const paths = (o: OperationOutcome) => o.issue.flatMap((i) => i.expression ?? []);
const isSubsetted = (r: Patient) => r.meta?.tag?.some((t) => t.code === 'SUBSETTED') ?? false;

describe.each(STORE_DRIVERS)('REST semantics on $name', (driver) => {
  let server: RunningServer;
  const config = driver.config();
  const url = (path: string) => `${server.fhirBase}/${path}`;
  const post = (body: unknown) => raw(server.fhirBase, { method: 'POST', json: body });
  const create = async (p: Patient): Promise<Patient> => (await raw(url('Patient'), { method: 'POST', json: p })).body as Patient;

  beforeAll(async () => {
    server = await startFhirOnlyServer(config);
  });
  afterAll(async () => {
    await server?.close();
    await driver.cleanup(config);
  });

  describe('malformed batch and transaction Bundles', () => {
    it('a Bundle whose entry is not a list of objects, or that is not a batch or transaction, is a 400 naming the path', async () => {
      const cases: [unknown, string][] = [
        [{ resourceType: 'Bundle', type: 'batch', entry: {} }, 'Bundle.entry'],
        [{ resourceType: 'Bundle', type: 'transaction', entry: 'abc' }, 'Bundle.entry'],
        [{ resourceType: 'Bundle', type: 'batch', entry: [null] }, 'Bundle.entry[0]'],
        [{ resourceType: 'Bundle', type: 'transaction', entry: [{ request: { method: 'GET', url: 'Patient' } }, 7] }, 'Bundle.entry[1]'],
        [{ resourceType: 'Bundle', type: 'collection', entry: [] }, 'Bundle.type'],
        [{ resourceType: 'Bundle', entry: [] }, 'Bundle.type'],
        [{ resourceType: 'Patient', type: 'batch' }, 'Bundle.resourceType'],
      ];
      for (const [body, path] of cases) {
        const res = await post(body);
        expect(res.status, JSON.stringify(body)).toBe(400);
        expect(res.body.resourceType).toBe('OperationOutcome');
        expect(paths(res.body), JSON.stringify(body)).toContain(path);
      }
    });

    it('a batch entry with a malformed request is a 400 in its own entry; in a transaction the whole Bundle is a 400 naming it', async () => {
      const entries = [
        { request: { method: 'GET', url: 123 } },
        { request: { method: 'GET', url: 'Patient/never-there' } },
        { resource: patient('BadIfMatch'), request: { method: 'PUT', url: 'Patient/bad-if-match', ifMatch: 1 } },
        { request: { method: 'TRACE', url: 'Patient' } },
        { request: { method: 'GET', url: 'Patient/%E0%A4%A' } },
      ];
      const batch = await post({ resourceType: 'Bundle', type: 'batch', entry: entries });
      expect(batch.status).toBe(200);
      expect(batch.body.entry.map((e: BundleEntry) => e.response?.status)).toEqual(['400', '404', '400', '400', '400']);
      expect(paths(batch.body.entry[0].response.outcome)).toEqual(['Bundle.entry[0].request.url']);
      expect(paths(batch.body.entry[2].response.outcome)).toEqual(['Bundle.entry[2].request.ifMatch']);
      expect((await raw(url('Patient/bad-if-match'))).status).toBe(404);

      const transaction = await post({ resourceType: 'Bundle', type: 'transaction', entry: [{ resource: patient('Txn'), request: { method: 'PUT', url: 'Patient/txn-bad-url' } }, entries[0]] });
      expect(transaction.status).toBe(400);
      expect(paths(transaction.body)).toContain('Bundle.entry[1].request.url');
      expect((await raw(url('Patient/txn-bad-url'))).status).toBe(404);
    });

    it('a Bundle inside a Bundle is not run (400 in its entry); a HEAD entry answers without the resource; GET metadata answers in a batch too; /metadata takes GET alone', async () => {
      const stored = await create(patient('Head'));
      const inner = { resourceType: 'Bundle', type: 'batch', entry: [{ resource: patient('Nested'), request: { method: 'POST', url: 'Patient' } }] };
      const batch = await post({
        resourceType: 'Bundle',
        type: 'batch',
        entry: [{ resource: inner, request: { method: 'POST', url: '/' } }, { request: { method: 'HEAD', url: `Patient/${stored.id}` } }, { request: { method: 'GET', url: 'metadata' } }],
      });
      expect(batch.body.entry.map((e: BundleEntry) => e.response?.status)).toEqual(['400', '200', '200']);
      expect(batch.body.entry[2].resource.resourceType).toBe('CapabilityStatement');
      expect(batch.body.entry[1].resource).toBeUndefined();
      expect(batch.body.entry[1].response.etag).toBe('W/"1"');
      expect((await raw(url('Patient?family=Nested&_summary=count'))).body.total).toBe(0);
      const postMetadata = await raw(url('metadata'), { method: 'POST', json: {} });
      expect(postMetadata.status).toBe(405);
      expect(postMetadata.body.resourceType).toBe('OperationOutcome');
    });
  });

  describe('a transaction that names one resource twice', () => {
    it('two PUTs, or a PUT and a DELETE, of the same id fail with 400 naming both entries and store nothing', async () => {
      const twoPuts = await post({
        resourceType: 'Bundle',
        type: 'transaction',
        entry: [
          { resource: { ...patient('First'), id: 'twice' }, request: { method: 'PUT', url: 'Patient/twice' } },
          { resource: { ...patient('Second'), id: 'twice' }, request: { method: 'PUT', url: 'Patient/twice' } },
        ],
      });
      expect(twoPuts.status).toBe(400);
      expect(paths(twoPuts.body)).toEqual(['Bundle.entry[0]', 'Bundle.entry[1]']);
      expect((await raw(url('Patient/twice'))).status).toBe(404);

      await raw(url('Patient/put-then-delete'), { method: 'PUT', json: { ...patient('Kept'), id: 'put-then-delete' } });
      const putAndDelete = await post({
        resourceType: 'Bundle',
        type: 'transaction',
        entry: [
          { resource: { ...patient('Changed'), id: 'put-then-delete' }, request: { method: 'PUT', url: 'Patient/put-then-delete' } },
          { request: { method: 'DELETE', url: `${server.fhirBase}/Patient/put-then-delete` } },
        ],
      });
      expect(putAndDelete.status).toBe(400);
      expect(paths(putAndDelete.body)).toEqual(['Bundle.entry[0]', 'Bundle.entry[1]']);
      const kept = await raw(url('Patient/put-then-delete'));
      expect(kept.body.meta.versionId).toBe('1');
    });

    it('two entries with the same fullUrl, or two conditional updates with the same criteria, fail with 400 naming both', async () => {
      const marker = `same-full-url-${driver.name}`;
      const fullUrl = 'urn:uuid:66666666-6666-4666-8666-666666666666';
      const sameFullUrl = await post({
        resourceType: 'Bundle',
        type: 'transaction',
        entry: [0, 1, 2].map(() => ({ fullUrl, resource: patient('Same', { identifier: [{ system: 'urn:test', value: marker }] }), request: { method: 'POST', url: 'Patient' } })),
      });
      expect(sameFullUrl.status).toBe(400);
      expect(paths(sameFullUrl.body)).toEqual(['Bundle.entry[0]', 'Bundle.entry[1]']);
      expect((await raw(url(`Patient?identifier=urn:test|${marker}&_summary=count`))).body.total).toBe(0);

      const criteria = `Patient?identifier=urn:test|cond-${marker}`;
      const sameCriteria = await post({
        resourceType: 'Bundle',
        type: 'transaction',
        entry: [
          { resource: patient('CondA', { identifier: [{ system: 'urn:test', value: `cond-${marker}` }] }), request: { method: 'PUT', url: criteria } },
          { request: { method: 'GET', url: 'Patient?_count=1' } },
          { resource: patient('CondB', { identifier: [{ system: 'urn:test', value: `cond-${marker}` }] }), request: { method: 'PUT', url: `Patient?identifier=${encodeURIComponent(`urn:test|cond-${marker}`)}` } },
        ],
      });
      expect(sameCriteria.status).toBe(400);
      expect(paths(sameCriteria.body)).toEqual(['Bundle.entry[0]', 'Bundle.entry[2]']);
      expect((await raw(url(`Patient?identifier=urn:test|cond-${marker}&_summary=count`))).body.total).toBe(0);
    });
  });

  describe('PATCH in a Bundle', () => {
    it('takes a Binary holding the JSON Patch (application/json-patch+json, base64) in a batch and in a transaction', async () => {
      const created = await create(patient('BundlePatch'));
      const batch = await post({
        resourceType: 'Bundle',
        type: 'batch',
        entry: [
          { resource: jsonPatch([{ op: 'add', path: '/gender', value: 'female' }]), request: { method: 'PATCH', url: `Patient/${created.id}` } },
          { resource: jsonPatch([{ op: 'add', path: '/gender', value: 'male' }], 'application/fhir+json'), request: { method: 'PATCH', url: `Patient/${created.id}` } },
          { resource: { resourceType: 'Binary', contentType: 'application/json-patch+json', data: 'not base64 JSON!' }, request: { method: 'PATCH', url: `Patient/${created.id}` } },
          { resource: { resourceType: 'Parameters', parameter: [] }, request: { method: 'PATCH', url: `Patient/${created.id}` } },
        ],
      });
      expect(batch.status).toBe(200);
      expect(batch.body.entry.map((e: BundleEntry) => e.response?.status)).toEqual(['200', '415', '400', '400']);
      expect(batch.body.entry[0].resource.gender).toBe('female');

      const transaction = await post({
        resourceType: 'Bundle',
        type: 'transaction',
        entry: [{ resource: jsonPatch([{ op: 'replace', path: '/gender', value: 'other' }]), request: { method: 'PATCH', url: `Patient/${created.id}`, ifMatch: 'W/"2"' } }],
      });
      expect(transaction.status).toBe(200);
      expect(transaction.body.entry[0].response.status).toBe('200');
      const stored = (await raw(url(`Patient/${created.id}`))).body as Patient;
      expect([stored.gender, stored.meta?.versionId]).toEqual(['other', '3']);
    });
  });

  describe('urn:uuid and urn:oid references outside a Bundle (R4 references.html#literal, bundle.html#references)', () => {
    const urn = 'urn:uuid:2f4e6a8c-0b1d-4f3e-8a5c-7e9b1d3f5a7c';
    const condition = (value: string, subject: string, extra: object = {}) => ({
      resourceType: 'Condition',
      identifier: [{ system: 'urn:test:urn-refs', value }],
      code: { text: value },
      subject: { reference: subject },
      ...extra,
    });
    const stored = async (value: string) => (await raw(url(`Condition?identifier=urn:test:urn-refs|${value}&_summary=count`))).body.total as number;

    it('a create, update, conditional update or patch that holds one is a 400 naming where, and stores nothing', async () => {
      const subject = await create(patient('UrnSubject'));
      const writes: [string, RequestInit & { json?: unknown }, string][] = [
        ['Condition', { method: 'POST', json: condition('urn-post', urn) }, 'Condition.subject.reference'],
        ['Condition/urn-put', { method: 'PUT', json: { ...condition('urn-put', urn), id: 'urn-put' } }, 'Condition.subject.reference'],
        ['Condition', { method: 'POST', json: condition('conditional-ref', 'Patient?identifier=urn:test:any|1') }, 'Condition.subject.reference'],
        ['Condition?identifier=urn:test:urn-refs|urn-cond-put', { method: 'PUT', json: condition('urn-cond-put', urn) }, 'Condition.subject.reference'],
        [
          'Condition',
          { method: 'POST', json: condition('urn-oid', `Patient/${subject.id}`, { evidence: [{ detail: [{ reference: 'urn:oid:1.2.3.4' }] }] }) },
          'Condition.evidence[0].detail[0].reference',
        ],
      ];
      for (const [path, init, expression] of writes) {
        const res = await raw(url(path), init);
        expect(res.status, `${init.method} ${path}`).toBe(400);
        expect(res.body.resourceType).toBe('OperationOutcome');
        expect(paths(res.body)).toEqual([expression]);
      }
      for (const value of ['urn-post', 'urn-put', 'urn-cond-put', 'urn-oid']) expect(await stored(value)).toBe(0);

      const target = (await raw(url('Condition'), { method: 'POST', json: condition('urn-patch', `Patient/${subject.id}`) })).body;
      const patched = await raw(url(`Condition/${target.id}`), {
        method: 'PATCH',
        headers: { 'content-type': 'application/json-patch+json' },
        body: JSON.stringify([{ op: 'replace', path: '/subject/reference', value: urn }]),
      });
      expect(patched.status).toBe(400);
      expect((await raw(url(`Condition/${target.id}`))).body.meta.versionId).toBe('1');
    });

    it('a batch entry referring to another entry by its fullUrl is a 400 in its entry: batch entries do not depend on each other', async () => {
      const res = await post({
        resourceType: 'Bundle',
        type: 'batch',
        entry: [
          { fullUrl: urn, resource: patient('UrnBatch'), request: { method: 'POST', url: 'Patient' } },
          { resource: condition('urn-batch', urn), request: { method: 'POST', url: 'Condition' } },
        ],
      });
      expect(res.body.entry.map((e: BundleEntry) => e.response?.status)).toEqual(['201', '400']);
      expect(await stored('urn-batch')).toBe(0);
    });

    it('contained (#id) and absolute references are stored as sent, and a transaction still resolves its urn:uuid references', async () => {
      const contained = condition('urn-contained', '#p1', {
        contained: [{ resourceType: 'Patient', id: 'p1', name: [{ family: 'Contained' }] }],
        evidence: [{ detail: [{ reference: 'https://other.example/fhir/Observation/1' }] }],
      });
      const created = await raw(url('Condition'), { method: 'POST', json: contained });
      expect(created.status, JSON.stringify(created.body)).toBe(201);
      expect([created.body.subject.reference, created.body.evidence[0].detail[0].reference]).toEqual(['#p1', 'https://other.example/fhir/Observation/1']);

      const res = await post({
        resourceType: 'Bundle',
        type: 'transaction',
        entry: [
          { resource: condition('urn-transaction', urn), request: { method: 'POST', url: 'Condition' } },
          { fullUrl: urn, resource: patient('UrnTransaction'), request: { method: 'POST', url: 'Patient' } },
        ],
      });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      expect(res.body.entry[0].resource.subject.reference).toBe(`Patient/${res.body.entry[1].resource.id}`);
    });
  });

  describe('response entries', () => {
    it('a transaction-response and a batch-response give absolute fullUrls and lastModified with meta.lastUpdated\'s milliseconds', async () => {
      const entry = (family: string) => ({ resource: patient(family), request: { method: 'POST', url: 'Patient' } });
      for (const type of ['transaction', 'batch']) {
        const res = await post({ resourceType: 'Bundle', type, entry: [entry('Full1'), entry('Full2'), entry('Full3')] });
        expect(res.status).toBe(200);
        for (const e of res.body.entry as BundleEntry[]) {
          expect(e.fullUrl).toBe(`${server.fhirBase}/Patient/${e.resource!.id}`);
          expect(e.response?.lastModified).toBe(e.resource!.meta!.lastUpdated);
          // An instant with its milliseconds, not an HTTP-date cut to the second. (Creates written together share one
          // instant, so testing that some entry is off the whole second failed once in a thousand runs.)
          expect(e.response?.lastModified).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
        }
      }
    });
  });

  describe('conditional reads and writes (RFC 7232)', () => {
    it('If-None-Match compares weakly, takes lists and *, on read and vread: 304', async () => {
      const created = await create(patient('NoneMatch'));
      const read = (path: string, tag: string) => raw(url(path), { headers: { 'If-None-Match': tag } });
      for (const tag of ['"1"', 'W/"1"', 'W/"0", W/"1"', '"7","1"', '*']) {
        expect((await read(`Patient/${created.id}`, tag)).status, tag).toBe(304);
        expect((await read(`Patient/${created.id}/_history/1`, tag)).status, `vread ${tag}`).toBe(304);
      }
      expect((await read(`Patient/${created.id}`, 'W/"2", "3"')).status).toBe(200);
      const vread = await read(`Patient/${created.id}/_history/1`, 'W/"2"');
      expect(vread.status).toBe(200);
      expect(vread.headers.get('etag')).toBe('W/"1"');
      expect((await read(`Patient/${created.id}`, 'W/"1" "2"')).status).toBe(400);
    });

    it('If-Modified-Since is not consulted when If-None-Match is sent (RFC 7232 3.3)', async () => {
      const created = await create(patient('Since'));
      const future = new Date(Date.now() + 3_600_000).toUTCString();
      expect((await raw(url(`Patient/${created.id}`), { headers: { 'If-Modified-Since': future } })).status).toBe(304);
      expect((await raw(url(`Patient/${created.id}`), { headers: { 'If-None-Match': 'W/"9"', 'If-Modified-Since': future } })).status).toBe(200);
    });

    it('If-Match: * proceeds on an existing resource and is 412 where there is none; a list matches any of its versions', async () => {
      const created = await create(patient('MatchAny'));
      const put = (id: string, ifMatch: string, family: string) => raw(url(`Patient/${id}`), { method: 'PUT', json: { ...patient(family), id }, headers: { 'If-Match': ifMatch } });
      const star = await put(created.id!, '*', 'Star');
      expect(star.status).toBe(200);
      expect(star.body.meta.versionId).toBe('2');
      expect((await put(created.id!, 'W/"1", W/"2"', 'Listed')).status).toBe(200);
      expect((await put(created.id!, 'W/"1", W/"2"', 'Stale')).status).toBe(412);
      const patch = await raw(url(`Patient/${created.id}`), { method: 'PATCH', body: JSON.stringify([{ op: 'add', path: '/gender', value: 'female' }]), headers: { 'content-type': 'application/json-patch+json', 'If-Match': '*' } });
      expect(patch.status).toBe(200);

      const missing = `if-match-star-${driver.name}`;
      const none = await put(missing, '*', 'Nobody');
      expect(none.status).toBe(412);
      expect(none.body.resourceType).toBe('OperationOutcome');
      expect((await raw(url(`Patient/${missing}`))).status).toBe(404);
      expect((await raw(url(`Patient/${created.id}`), { method: 'DELETE', headers: { 'If-Match': '*' } })).status).toBe(204);
      expect((await raw(url(`Patient/${created.id}`), { method: 'DELETE', headers: { 'If-Match': '*' } })).status).toBe(412);

      // A conditional delete honours If-Match too: a stale version keeps the resource.
      const marked = await create(patient('CondDelete', { identifier: [{ system: 'urn:test:if-match', value: `cd-${driver.name}` }] }));
      const byIdentifier = url(`Patient?identifier=urn:test:if-match|cd-${driver.name}`);
      expect((await raw(byIdentifier, { method: 'DELETE', headers: { 'If-Match': 'W/"7"' } })).status).toBe(412);
      expect((await raw(url(`Patient/${marked.id}`))).status).toBe(200);
      expect((await raw(byIdentifier, { method: 'DELETE', headers: { 'If-Match': 'W/"1"' } })).status).toBe(204);
      expect((await raw(url(`Patient/${marked.id}`))).status).toBe(410);
    });
  });

  describe('_summary and _elements on reads', () => {
    it('shape read and vread as search does, marked SUBSETTED; _summary=count and bad values are 400', async () => {
      const created = await create(patient('Shaped'));
      const get = async (path: string) => (await raw(url(path))).body as Patient;

      const elements = await get(`Patient/${created.id}?_elements=birthDate`);
      expect([elements.birthDate, elements.name, elements.maritalStatus, elements.id]).toEqual(['1980-02-03', undefined, undefined, created.id]);
      expect(isSubsetted(elements)).toBe(true);
      const summary = await get(`Patient/${created.id}/_history/1?_summary=true`);
      expect([summary.name?.[0].family, summary.maritalStatus, summary.text]).toEqual(['Shaped', undefined, undefined]);
      expect(isSubsetted(summary)).toBe(true);
      const text = await get(`Patient/${created.id}?_summary=text`);
      expect([text.text?.status, text.name, text.birthDate]).toEqual(['generated', undefined, undefined]);
      const data = await get(`Patient/${created.id}?_summary=data`);
      expect([data.text, data.maritalStatus?.text]).toEqual([undefined, 'single']);
      expect(isSubsetted(data)).toBe(true);
      const full = await get(`Patient/${created.id}?_summary=false`);
      expect([full.text?.status, full.maritalStatus?.text, isSubsetted(full)]).toEqual(['generated', 'single', false]);

      for (const bad of ['_summary=count', '_summary=bogus']) {
        const res = await raw(url(`Patient/${created.id}?${bad}`));
        expect(res.status, bad).toBe(400);
        expect(res.body.resourceType).toBe('OperationOutcome');
      }
    });

    it('shape GET entries of a batch', async () => {
      const created = await create(patient('BatchShaped'));
      const res = await post({ resourceType: 'Bundle', type: 'batch', entry: [{ request: { method: 'GET', url: `Patient/${created.id}?_elements=birthDate` } }, { request: { method: 'GET', url: `Patient/${created.id}/_history/1?_summary=true` } }] });
      const [elements, summary] = (res.body as Bundle).entry!.map((e) => e.resource as Patient);
      expect([elements.birthDate, elements.name, isSubsetted(elements)]).toEqual(['1980-02-03', undefined, true]);
      expect([summary.maritalStatus, summary.name?.[0].family, isSubsetted(summary)]).toEqual([undefined, 'BatchShaped', true]);
    });

    it('unknown parameters on a read are ignored, as by a lenient search, and refused under Prefer: handling=strict', async () => {
      const created = await create(patient('Unknown'));
      const lenient = await raw(url(`Patient/${created.id}?bogus=1`));
      expect(lenient.status).toBe(200);
      expect(lenient.body.maritalStatus.text).toBe('single');
      const strict = await raw(url(`Patient/${created.id}?bogus=1`), { headers: { Prefer: 'handling=strict' } });
      expect(strict.status).toBe(400);
      expect(paths(strict.body)).toEqual(['bogus']);
      expect((await raw(url(`Patient/${created.id}?_elements=name`), { headers: { Prefer: 'handling=strict' } })).status).toBe(200);
    });
  });
});
