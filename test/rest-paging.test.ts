import type { Basic, Bundle, BundleLink, CapabilityStatement } from 'fhir/r4.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../server/src/server.js';
import { type DemoServer, startDemoServer } from './helpers/demoServer.js';
import { raw } from './helpers/fhir.js';
import { STORE_DRIVERS } from './helpers/stores.js';
import { startFhirOnlyServer } from './helpers/testServer.js';
import { tokenFor } from './helpers/tokens.js';

const link = (bundle: Bundle, relation: string): string | undefined => bundle.link?.find((l: BundleLink) => l.relation === relation)?.url;
const basic = (code: string, extra: Partial<Basic> = {}): Basic => ({ resourceType: 'Basic', code: { coding: [{ system: 'urn:test:paging', code }] }, ...extra });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
/** `Type/id/version` of each entry. */
const versionsOf = (bundle: Bundle): string[] =>
  (bundle.entry ?? []).map((e) => `${e.fullUrl!.split('/').slice(-2).join('/')}/${e.response!.etag!.replace(/^W\/"(.*)"$/, '$1')}`);

/** Every page of a paged Bundle, following `next` links (a bounded walk: a loop is a failure, not a hang). */
async function walk(url: string, headers: Record<string, string> = {}): Promise<Bundle[]> {
  const pages: Bundle[] = [];
  for (let next: string | undefined = url; next && pages.length < 200; ) {
    const res = await raw(next, { headers });
    expect(res.status).toBe(200);
    pages.push(res.body as Bundle);
    next = link(res.body as Bundle, 'next');
  }
  return pages;
}

describe.each(STORE_DRIVERS)('REST paging, summary counts, CapabilityStatement includes and content negotiation on $name', (driver) => {
  let server: RunningServer;
  const config = driver.config();

  beforeAll(async () => {
    server = await startFhirOnlyServer(config);
  });
  afterAll(async () => {
    await server?.close();
    await driver.cleanup(config);
  });

  const url = (path: string) => `${server.fhirBase}/${path}`;

  describe('history paging links repeat the query', () => {
    let id: string;
    let since: string;
    beforeAll(async () => {
      const created = await raw(url('Basic'), { method: 'POST', json: basic('history-links') });
      id = created.body.id;
      for (let v = 2; v <= 3; v++) await raw(url(`Basic/${id}`), { method: 'PUT', json: { ...basic('history-links'), id, language: `v${v}` } });
      await sleep(5);
      since = new Date().toISOString();
      await sleep(5);
      for (let v = 4; v <= 7; v++) await raw(url(`Basic/${id}`), { method: 'PUT', json: { ...basic('history-links'), id, language: `v${v}` } });
    });

    it('instance history with _since: every page holds only versions since then, and the walk ends there', async () => {
      const pages = await walk(url(`Basic/${id}/_history?_since=${encodeURIComponent(since)}&_count=2`));
      expect(pages.flatMap(versionsOf)).toEqual([7, 6, 5, 4].map((v) => `Basic/${id}/${v}`));
      for (const page of pages) for (const l of page.link ?? []) expect(l.url).toContain(`_since=${encodeURIComponent(since)}`);
    });

    it('history with _at: the version current at that time (R4 http.html#history), its links keeping _at', async () => {
      const pages = await walk(url(`Basic/${id}/_history?_at=${encodeURIComponent(since)}&_count=2`));
      expect(pages.flatMap(versionsOf)).toEqual([`Basic/${id}/3`]);
      const typeLevel = await walk(url(`Basic/_history?_at=${encodeURIComponent(since)}&_count=1`));
      const ours = typeLevel.flatMap(versionsOf).filter((v) => v.startsWith(`Basic/${id}/`));
      expect(ours).toEqual([`Basic/${id}/3`]);
      for (const page of typeLevel) for (const l of (page.link ?? []).filter((l) => l.relation === 'next')) expect(l.url).toContain(`_at=${encodeURIComponent(since)}`);
    });

    it('type and system history links keep _since and _count, and self is the request', async () => {
      for (const path of ['Basic/_history', '_history']) {
        const request = url(`${path}?_since=${encodeURIComponent(since)}&_count=1`);
        const page = (await raw(request)).body as Bundle;
        expect(link(page, 'self')).toBe(request);
        const next = new URL(link(page, 'next')!);
        expect([next.searchParams.get('_since'), next.searchParams.get('_count'), next.searchParams.get('_offset')]).toEqual([since, '1', '1']);
      }
    });

    it('history with _count=0: no entries and no next link (it led to the same page again)', async () => {
      const page = (await raw(url(`Basic/${id}/_history?_count=0`))).body as Bundle;
      expect([page.entry ?? [], link(page, 'next')]).toEqual([[], undefined]);
    });

    it('a next link is pinned to the versions there were: writes after the first page do not shift the second', async () => {
      const first = (await raw(url('_history?_count=3'))).body as Bundle;
      for (let i = 0; i < 4; i++) await raw(url('Basic'), { method: 'POST', json: basic('history-shift') });
      const second = (await raw(link(first, 'next')!)).body as Bundle;
      expect(second.entry).toHaveLength(3);
      const seen = new Set(versionsOf(first));
      expect(versionsOf(second).filter((v) => seen.has(v))).toEqual([]);
      const oldest = Math.min(...first.entry!.map((e) => Date.parse(e.response!.lastModified!)));
      for (const e of second.entry!) expect(Date.parse(e.response!.lastModified!)).toBeLessThanOrEqual(oldest);
    });
  });

  describe('_count=0 and _summary=count', () => {
    const code = `count-${driver.name}`;
    beforeAll(async () => {
      for (let i = 0; i < 3; i++) await raw(url('Basic'), { method: 'POST', json: basic(code) });
    });

    it('_count=0 answers the real total, no entries and no next link', async () => {
      const res = await raw(url(`Basic?code=urn:test:paging|${code}&_count=0`));
      expect(res.status).toBe(200);
      expect(res.body.total).toBe(3);
      expect(res.body.entry ?? []).toEqual([]);
      expect(link(res.body, 'next')).toBeUndefined();
    });

    it('_summary=count: no next link, and the self link is the request as made', async () => {
      const request = url(`Basic?code=${encodeURIComponent(`urn:test:paging|${code}`)}&_summary=count&_count=1`);
      const res = await raw(request);
      expect(res.body.total).toBe(3);
      expect(res.body.entry).toBeUndefined();
      expect(res.body.link).toEqual([{ relation: 'self', url: request }]);
    });
  });

  describe('CapabilityStatement', () => {
    let cs: CapabilityStatement;
    beforeAll(async () => {
      cs = (await raw(url('metadata'))).body as CapabilityStatement;
    });
    const resource = (type: string) => cs.rest![0].resource!.find((r) => r.type === type)!;

    it('searchRevInclude names the reference parameters that point at the type, each one accepted by _revinclude', async () => {
      const revIncludes = resource('Patient').searchRevInclude ?? [];
      expect(revIncludes).toEqual(expect.arrayContaining(['Coverage:beneficiary', 'Condition:subject', 'Provenance:target', 'Task:patient']));
      expect(revIncludes).not.toContain('PractitionerRole:location'); // it names Locations only
      const answers = await Promise.all(revIncludes.map(async (value) => [value, (await raw(url(`Patient?_id=none&_revinclude=${value}`))).status] as const));
      expect(answers.filter(([, status]) => status !== 200)).toEqual([]);
      expect(resource('Practitioner').searchRevInclude).toEqual(expect.arrayContaining(['Task:owner', 'Provenance:agent']));
    });

    it('searchInclude names the type\'s own reference parameters, each one accepted by _include', async () => {
      const includes = resource('Coverage').searchInclude ?? [];
      expect(includes).toEqual(expect.arrayContaining(['Coverage:beneficiary', 'Coverage:payor', 'Coverage:*']));
      const answers = await Promise.all(includes.map(async (value) => [value, (await raw(url(`Coverage?_id=none&_include=${value}`))).status] as const));
      expect(answers.filter(([, status]) => status !== 200)).toEqual([]);
    });
  });

  describe('content negotiation', () => {
    const count = async () => (await raw(url('Basic?code=urn:test:paging|negotiation&_summary=count'))).body.total as number;

    it('a JSON Patch content type creates and replaces nothing: 415', async () => {
      const before = await count();
      const post = await raw(url('Basic'), { method: 'POST', headers: { 'content-type': 'application/json-patch+json' }, body: JSON.stringify(basic('negotiation')) });
      expect([post.status, post.body.resourceType]).toEqual([415, 'OperationOutcome']);
      const put = await raw(url('Basic/negotiation-put'), { method: 'PUT', headers: { 'content-type': 'application/json-patch+json' }, body: JSON.stringify({ ...basic('negotiation'), id: 'negotiation-put' }) });
      expect([put.status, put.body.resourceType]).toEqual([415, 'OperationOutcome']);
      expect(await count()).toBe(before);
    });

    it('a body of another FHIR version is 415; a JSON Patch still patches', async () => {
      const other = await raw(url('Basic'), { method: 'POST', headers: { 'content-type': 'application/fhir+json; fhirVersion=3.0' }, body: JSON.stringify(basic('negotiation')) });
      expect(other.status).toBe(415);
      const r4 = await raw(url('Basic'), { method: 'POST', headers: { 'content-type': 'application/fhir+json; fhirVersion=4.0' }, body: JSON.stringify(basic('negotiation')) });
      expect(r4.status).toBe(201);
      const patched = await raw(url(`Basic/${r4.body.id}`), { method: 'PATCH', headers: { 'content-type': 'application/json-patch+json' }, body: JSON.stringify([{ op: 'add', path: '/language', value: 'en' }]) });
      expect(patched.status).toBe(200);
    });

    it('Accept: another FHIR version or a format other than JSON is 406; R4 JSON is served', async () => {
      const accepts: [string, number][] = [
        ['application/fhir+json; fhirVersion=3.0', 406],
        ['application/fhir+json; fhirVersion=5.0', 406],
        ['text/turtle', 406],
        ['text/html', 406],
        ['application/fhir+json; fhirVersion=4.0', 200],
        ['application/fhir+json', 200],
        ['application/json, */*;q=0.1', 200],
      ];
      const answers = await Promise.all(accepts.map(async ([accept]) => {
        const res = await raw(url('Basic?_count=1'), { headers: { accept } });
        return [accept, res.status, res.body.resourceType];
      }));
      expect(answers).toEqual(accepts.map(([accept, status]) => [accept, status, status === 200 ? 'Bundle' : 'OperationOutcome']));
    });

    it('_format: ttl, html and unknown formats are 406; the JSON ones are served', async () => {
      const formats: [string, number][] = [
        ['ttl', 406],
        ['html', 406],
        ['bogus', 406],
        ['text/html', 406],
        ['application%2Ffhir%2Bturtle', 406],
        ['json', 200],
        ['application/json', 200],
        ['application%2Ffhir%2Bjson', 200],
        ['application/fhir+json', 200], // a `+` left unencoded arrives as a space
      ];
      const answers = await Promise.all(formats.map(async ([format]) => {
        const res = await raw(url(`Basic?_count=1&_format=${format}`));
        return [format, res.status, res.body.resourceType];
      }));
      expect(answers).toEqual(formats.map(([format, status]) => [format, status, status === 200 ? 'Bundle' : 'OperationOutcome']));
    });

    it('_format overrides Accept', async () => {
      expect((await raw(url('Basic?_count=1&_format=json'), { headers: { accept: 'application/fhir+xml' } })).status).toBe(200);
    });
  });
});

describe.each(STORE_DRIVERS)('history for a patient-bound token on $name', (driver) => {
  let server: DemoServer;
  let member: Record<string, string>;
  const mine: string[] = [];
  const config = driver.config();

  beforeAll(async () => {
    server = await startDemoServer(config);
    member = { authorization: `Bearer ${tokenFor(server, { scope: 'launch/patient patient/*.rs', patient: 'member-hpsj-1', fhirUser: 'Patient/member-hpsj-1', roles: ['member'] })}` };
    // The member's Basic (two versions) between others' older and newer ones: most of the history is not hers.
    for (let i = 0; i < 3; i++) await server.store.create(basic('compartment', { subject: { reference: 'Patient/member-phc-1' } }));
    const created = await server.store.create(basic('compartment', { subject: { reference: 'Patient/member-hpsj-1' } }));
    await server.store.update({ ...created, language: 'en' });
    mine.push(`Basic/${created.id}/2`, `Basic/${created.id}/1`);
    for (let i = 0; i < 5; i++) await server.store.create(basic('compartment', { subject: { reference: 'Patient/member-phc-1' } }));
  });
  afterAll(async () => {
    await server?.close();
    await driver.cleanup(config);
  });

  it('type history: pages hold her own versions, and no next link leads past the end', async () => {
    const pages = await walk(`${server.fhirBase}/Basic/_history?_count=1`, member);
    expect(pages.flatMap(versionsOf)).toEqual(mine);
    for (const page of pages) expect(page.entry).toHaveLength(1);
  });

  it('system history: the first page is full of her versions, and every page of the walk holds some', async () => {
    const first = (await raw(`${server.fhirBase}/_history?_count=2`, { headers: member })).body as Bundle;
    expect(versionsOf(first)).toEqual(mine);
    const pages = await walk(`${server.fhirBase}/_history?_count=100`, member);
    expect(pages.filter((p) => !p.entry?.length)).toEqual([]);
    const seen = pages.flatMap(versionsOf);
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen.filter((v) => v.startsWith('Basic/'))).toEqual(mine);
  });
});
