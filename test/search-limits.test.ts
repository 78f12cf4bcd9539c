import type { Bundle, BundleLink, Condition, OperationOutcome, Patient } from 'fhir/r4.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_SEARCH_CLAUSES, MAX_SEARCH_VALUES } from '../server/src/fhir/search/parse.js';
import type { RunningServer } from '../server/src/server.js';
import { raw } from './helpers/fhir.js';
import { STORE_DRIVERS } from './helpers/stores.js';
import { startFhirOnlyServer } from './helpers/testServer.js';

/**
 * Search input a conformance probe (probe 3) found mishandled: searches costly enough to stall the server,
 * POST _search with a non-form body, invalid values accepted silently, empty values, `:missing` on the
 * common parameters, and the first page's paging links.
 */
const BASE_PROFILE = 'http://hl7.org/fhir/StructureDefinition/Patient';
const FORM = 'application/x-www-form-urlencoded';
const ids = (bundle: Bundle) => (bundle.entry ?? []).filter((e) => e.search?.mode === 'match').map((e) => e.resource!.id!).sort();
const link = (bundle: Bundle, relation: string) => bundle.link?.find((l: BundleLink) => l.relation === relation)?.url;
const issue = (body: OperationOutcome) => body.issue[0];

describe.each(STORE_DRIVERS)('search limits and input checks on $name', (driver) => {
  let server: RunningServer;
  const config = driver.config();
  const url = (path: string) => `${server.fhirBase}/${path}`;
  const get = (path: string, headers: Record<string, string> = {}) => raw(url(path), { headers });
  const put = (resource: Patient | Condition) => raw(url(`${resource.resourceType}/${resource.id}`), { method: 'PUT', json: resource });
  const expect400 = async (path: string, param: string, code = 'invalid') => {
    const res = await get(path);
    expect(res.status, path).toBe(400);
    expect(res.body.resourceType).toBe('OperationOutcome');
    expect(issue(res.body).code, path).toBe(code);
    expect(issue(res.body).expression, path).toEqual([param]);
  };

  beforeAll(async () => {
    server = await startFhirOnlyServer(config);
    await put({ resourceType: 'Patient', id: 'lim-a', meta: { profile: [BASE_PROFILE], tag: [{ system: 'urn:t', code: 'x' }] }, active: true, gender: 'female', name: [{ family: 'Limitsa' }] });
    await put({ resourceType: 'Patient', id: 'lim-b', active: false, gender: 'male', name: [{ family: 'Limitsb' }] });
    await put({ resourceType: 'Patient', id: 'lim-c', name: [{ family: 'Limitsc' }], birthDate: '1980' });
    await put({ resourceType: 'Condition', id: 'lim-c1', subject: { reference: 'Patient/lim-a' } });
  });
  afterAll(async () => {
    await server?.close();
    await driver.cleanup(config);
  });

  describe('a search that asks too much is refused up front (too-costly), not run for minutes', () => {
    const names = (n: number) => Array.from({ length: n }, (_, i) => `name=lim${i}`).join('&');

    it(`${MAX_SEARCH_CLAUSES} ANDed clauses run; one more is a 400 naming the parameter`, async () => {
      expect((await get(`Patient?${names(MAX_SEARCH_CLAUSES)}`)).status).toBe(200);
      await expect400(`Patient?${names(MAX_SEARCH_CLAUSES + 1)}`, 'name', 'too-costly');
      await expect400(`Patient?${names(1000)}`, 'name', 'too-costly');
    });

    it('each level of a chain or _has counts, and so do _include and _sort keys', async () => {
      const chains = (n: number) => Array.from({ length: n }, (_, i) => `subject:Patient.name=lim${i}`).join('&');
      expect((await get(`Condition?${chains(MAX_SEARCH_CLAUSES / 2)}`)).status).toBe(200);
      await expect400(`Condition?${chains(MAX_SEARCH_CLAUSES / 2)}&code=x`, 'code', 'too-costly');
      const includes = Array.from({ length: MAX_SEARCH_CLAUSES + 1 }, () => '_include=Condition:subject').join('&');
      await expect400(`Condition?${includes}`, '_include', 'too-costly');
    });

    it(`${MAX_SEARCH_VALUES} comma-separated values in all run (a long _id list); more are a 400`, async () => {
      const list = (n: number) => ['lim-a', ...Array.from({ length: n - 1 }, (_, i) => `x${i}`)].join(',');
      const ok = await raw(url('Patient/_search'), { method: 'POST', headers: { 'content-type': FORM }, body: new URLSearchParams({ _id: list(MAX_SEARCH_VALUES) }).toString() });
      expect(ok.status).toBe(200);
      expect(ids(ok.body)).toEqual(['lim-a']);
      const tooMany = await raw(url('Patient/_search?name=lim'), { method: 'POST', headers: { 'content-type': FORM }, body: new URLSearchParams({ _id: list(MAX_SEARCH_VALUES) }).toString() });
      expect(tooMany.status).toBe(400);
      expect(issue(tooMany.body).code).toBe('too-costly');
    });
  });

  describe('POST _search reads a form body, and refuses any other', () => {
    it('a FHIR JSON body is a 415, not a search for everything', async () => {
      const res = await raw(url('Patient/_search'), { method: 'POST', json: { resourceType: 'Parameters', parameter: [{ name: 'name', valueString: 'Limitsa' }] } });
      expect(res.status).toBe(415);
      expect(res.body.resourceType).toBe('OperationOutcome');
      const text = await raw(url('Patient/_search'), { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'name=Limitsa' });
      expect(text.status).toBe(415);
    });

    it('form parameters and URL parameters together still search', async () => {
      const res = await raw(url('Patient/_search?gender=female'), { method: 'POST', headers: { 'content-type': FORM }, body: 'name=Limits' });
      expect(res.status).toBe(200);
      expect(ids(res.body)).toEqual(['lim-a']);
      const empty = await raw(url('Patient/_search?name=Limitsb'), { method: 'POST' });
      expect(ids(empty.body)).toEqual(['lim-b']);
    });
  });

  describe('input that can only be a mistake is a 400 naming the parameter', () => {
    it('a boolean token with a value other than true or false', async () => {
      await expect400('Patient?active=maybe', 'active');
      await expect400('Patient?deceased=maybe', 'deceased');
      expect(ids((await get('Patient?active=true&name=Limits')).body)).toEqual(['lim-a']);
      expect(ids((await get('Patient?active=false,true&name=Limits')).body)).toEqual(['lim-a', 'lim-b']);
    });

    it('_total other than none, estimate or accurate', async () => {
      await expect400('Patient?_total=bogus', '_total');
      expect((await get('Patient?_total=estimate')).status).toBe(200);
    });

    it('a type the reference cannot refer to, in a modifier, a chain or an _include', async () => {
      await expect400('Condition?subject:Foo=1', 'subject:Foo');
      await expect400('Condition?subject:Foo.name=x', 'subject:Foo');
      await expect400('Condition?_include=Condition:subject:Foo', '_include');
      await expect400('Condition?_include=Foo:*', '_include');
      expect(ids((await get('Condition?subject:Patient=lim-a')).body)).toEqual(['lim-c1']);
      const included = await get('Condition?_id=lim-c1&_include=Condition:subject:Patient');
      expect(included.body.entry.map((e: { resource: { id: string } }) => e.resource.id)).toEqual(['lim-c1', 'lim-a']);
    });

    it('an unknown _include modifier; :iterate and :recurse work', async () => {
      await expect400('Condition?_include:foo=Condition:subject', '_include:foo');
      for (const modifier of ['iterate', 'recurse']) expect((await get(`Condition?_id=lim-c1&_include:${modifier}=Condition:subject`)).body.entry).toHaveLength(2);
    });

    it('_elements naming no element of the type (R4 takes element names, not paths)', async () => {
      await expect400('Patient?_elements=Patient.name', '_elements');
      const res = await get('Patient?_id=lim-a&_elements=name');
      expect(res.status).toBe(200);
      expect(res.body.entry[0].resource.name).toEqual([{ family: 'Limitsa' }]);
      expect(res.body.entry[0].resource.gender).toBeUndefined();
    });

    it('an unknown modifier on _id, _lastUpdated or _profile', async () => {
      await expect400('Patient?_id:foo=lim-a', '_id:foo');
      await expect400('Patient?_lastUpdated:foo=2020', '_lastUpdated:foo');
    });
  });

  describe('parameters with empty values are ignored, whatever their type', () => {
    it('birthdate=, name=, gender=, _id= and subject= search as if absent, and are left out of the self link', async () => {
      const all = ids((await get('Patient')).body);
      expect(all).toEqual(['lim-a', 'lim-b', 'lim-c']);
      for (const param of ['birthdate', 'name', 'gender', '_id', 'active', '_count', '_sort', '_include', '_summary']) {
        const res = await get(`Patient?${param}=`);
        expect(res.status, param).toBe(200);
        expect(ids(res.body), param).toEqual(all);
        expect(link(res.body, 'self'), param).toBe(url('Patient'));
      }
      expect(ids((await get('Condition?subject=')).body)).toEqual(['lim-c1']);
      expect(ids((await get('Patient?name=&gender=male')).body)).toEqual(['lim-b']);
    });

    it('as conditional criteria an empty value is a 400: ignored, it would update the one Condition there is', async () => {
      const res = await raw(url('Condition?code='), { method: 'PUT', json: { resourceType: 'Condition', subject: { reference: 'Patient/lim-b' } } });
      expect(res.status).toBe(400);
      expect(issue(res.body).expression).toEqual(['code']);
      expect((await get('Condition/lim-c1')).body.subject).toEqual({ reference: 'Patient/lim-a' });
      expect(ids((await get('Condition')).body)).toEqual(['lim-c1']);
    });
  });

  describe(':missing on the parameters of every resource', () => {
    it('_id and _lastUpdated: every resource has them', async () => {
      expect(ids((await get('Patient?_id:missing=false')).body)).toEqual(['lim-a', 'lim-b', 'lim-c']);
      expect(ids((await get('Patient?_id:missing=true')).body)).toEqual([]);
      expect(ids((await get('Patient?_lastUpdated:missing=false')).body)).toEqual(['lim-a', 'lim-b', 'lim-c']);
      expect(ids((await get('Patient?_lastUpdated:missing=true')).body)).toEqual([]);
      await expect400('Patient?_id:missing=maybe', '_id:missing');
    });

    it('_profile, _tag and _security: by whether meta has one', async () => {
      expect(ids((await get('Patient?_profile:missing=false')).body)).toEqual(['lim-a']);
      expect(ids((await get('Patient?_profile:missing=true')).body)).toEqual(['lim-b', 'lim-c']);
      expect(ids((await get('Patient?_tag:missing=false')).body)).toEqual(['lim-a']);
      expect(ids((await get('Patient?_security:missing=true')).body)).toEqual(['lim-a', 'lim-b', 'lim-c']);
    });
  });

  describe('paging links', () => {
    it('every page links to first (the search from the start) and last (read backwards from the end), whether or not the total is known', async () => {
      const page1 = (await get('Patient?_count=2')).body as Bundle;
      expect(link(page1, 'first')).toBe(url('Patient?_count=2'));
      expect(new URL(link(page1, 'next')!).searchParams.get('_cursor')).toBeTruthy();
      expect(ids((await get(link(page1, 'last')!.slice(url('').length))).body)).toEqual(['lim-b', 'lim-c']);
      const counted = (await get('Patient?_count=2&_total=accurate')).body as Bundle;
      expect(link(counted, 'last')).toBe(link(page1, 'last')!.replace('?', '?_total=accurate&'));
      const page2 = (await get('Patient?_count=2&_offset=2')).body as Bundle;
      expect([ids(page2), link(page2, 'next')]).toEqual([['lim-c'], undefined]);
      expect(link(page2, 'last')).toBe(link(page1, 'last'));
    });
  });
});
