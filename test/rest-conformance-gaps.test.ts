import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Basic, Bundle, BundleEntry, CapabilityStatement, CodeSystem, Measure, MeasureReport, TerminologyCapabilities } from 'fhir/r4.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CaseRecord, reportFigures } from '../server/src/domain/reporting.js';
import { publishCapabilityStatement } from '../server/src/fhir/capability.js';
import { PROFILES_DIR } from '../server/src/fhir/conformance.js';
import { BUSINESS_STATUSES, REASONS } from '../server/src/fhir/profiles/definitions.js';
import { generatedConformance } from '../server/src/fhir/profiles/generated.js';
import type { RunningServer } from '../server/src/server.js';
import { committeeMeasureReport } from '../server/src/workflow/reports.js';
import { raw } from './helpers/fhir.js';
import { STORE_DRIVERS } from './helpers/stores.js';
import { startFhirOnlyServer } from './helpers/testServer.js';

/**
 * REST conformance gaps a conformance suite would hit: the CapabilityStatement as a resource of its own, `/metadata`'s
 * `mode`, `_summary` and `_elements`, If-None-Match on PATCH and DELETE, `_since` as an instant, and the Measure the
 * committee MeasureReport names.
 */
const basic = (code: string, extra: Partial<Basic> = {}): Basic => ({ resourceType: 'Basic', code: { coding: [{ system: 'urn:test:gaps', code }] }, ...extra });
const base64 = (value: unknown) => Buffer.from(JSON.stringify(value), 'utf8').toString('base64');
const jsonPatch = (ops: unknown) => ({ resourceType: 'Binary', contentType: 'application/json-patch+json', data: base64(ops) });
const isSubsetted = (r: { meta?: { tag?: { code?: string }[] } }) => r.meta?.tag?.some((t) => t.code === 'SUBSETTED') ?? false;
const readProfile = <T>(file: string): T => JSON.parse(readFileSync(join(PROFILES_DIR, file), 'utf8')) as T;

describe.each(STORE_DRIVERS)('REST conformance gaps on $name', (driver) => {
  let server: RunningServer;
  const config = driver.config();
  const url = (path: string) => `${server.fhirBase}/${path}`;
  const post = (body: unknown) => raw(server.fhirBase, { method: 'POST', json: body });
  const create = async (b: Basic): Promise<Basic> => (await raw(url('Basic'), { method: 'POST', json: b })).body as Basic;
  const ids = (bundle: Bundle) => (bundle.entry ?? []).map((e) => e.resource?.id);

  beforeAll(async () => {
    server = await startFhirOnlyServer(config);
  });
  afterAll(async () => {
    await server?.close();
    await driver.cleanup(config);
  });

  describe('_since takes an instant (R4 http.html#history)', () => {
    it('a partial date, a time without its zone, or what R4\'s instant pattern refuses (year 0000, a zone past +14:00) is a 400 naming _since; an instant, with any offset, is taken', async () => {
      const created = await create(basic('since-instant'));
      for (const since of ['2026-11', '2026-11-30', '2026-11-30T10:00:00', '2026-11-30T10:00Z', '2026-13-01T00:00:00Z', 'ge2026-11-30T10:00:00Z', '0000-01-01T00:00:00Z', '2026-11-30T10:00:00+14:30', '2026-02-29T00:00:00Z']) {
        const res = await raw(url(`Basic/${created.id}/_history?_since=${encodeURIComponent(since)}`));
        expect(res.status, since).toBe(400);
        expect(res.body.issue[0].expression, since).toEqual(['_since']);
      }
      for (const since of ['2000-01-01T00:00:00Z', '1999-12-31T16:00:00.123-08:00']) {
        const res = await raw(url(`Basic/${created.id}/_history?_since=${encodeURIComponent(since)}`));
        expect([res.status, res.body.entry?.length], since).toEqual([200, 1]);
      }
      expect((await raw(url(`Basic/${created.id}/_history?_since=${encodeURIComponent('2999-01-01T00:00:00Z')}`))).body.entry).toBeUndefined();
      // `_at` is a dateTime: a partial one still names its period.
      expect((await raw(url(`Basic/${created.id}/_history?_at=2999-01`))).body.entry?.length).toBe(1);
    });

    it('year 0000 is no date (400), and an instant whose zone takes it outside the years 0001-9999 is read within them, never a 500', async () => {
      const created = await create(basic('year-edges'));
      for (const path of ['Basic?_lastUpdated=0000', `Basic/${created.id}/_history?_at=0000`, 'Basic/_history?_at=0000-06']) {
        const res = await raw(url(path));
        expect(res.status, path).toBe(400);
        expect(res.body.resourceType, path).toBe('OperationOutcome');
      }
      const earliest = await raw(url(`Basic/${created.id}/_history?_since=${encodeURIComponent('0001-01-01T00:00:00+14:00')}`));
      expect([earliest.status, earliest.body.entry?.length]).toEqual([200, 1]);
      const latest = await raw(url(`Basic?_lastUpdated=${encodeURIComponent('le9999-12-31T23:59:59-13:59')}&_id=${created.id}`));
      expect([latest.status, latest.body.entry?.length]).toEqual([200, 1]);
      expect((await raw(url(`Basic/_history?_since=${encodeURIComponent('9999-12-31T23:59:59-13:59')}`))).status).toBe(200);
      // Nor is an offset past what the database counts.
      for (const path of ['Basic/_history?_offset=1e20', 'Basic/_history?_offset=99999999999999999999', 'Basic/_history?_count=1.5']) expect((await raw(url(path))).status, path).toBe(400);
    });
  });

  describe('If-None-Match on PATCH and DELETE (RFC 9110 §13.1.2): 412 and nothing written when the condition is false', () => {
    const replaceLanguage = (value: string) => [{ op: 'add', path: '/language', value }];
    const patch = (id: string, headers: Record<string, string>) =>
      raw(url(`Basic/${id}`), { method: 'PATCH', body: JSON.stringify(replaceLanguage('fr')), headers: { 'content-type': 'application/json-patch+json', ...headers } });

    it('PATCH: a tag naming the current version, or *, is 412; another tag lets it through', async () => {
      const created = await create(basic('patch-inm'));
      for (const tag of ['*', 'W/"1"', '"1"', 'W/"7", W/"1"']) {
        const refused = await patch(created.id!, { 'If-None-Match': tag });
        expect(refused.status, tag).toBe(412);
        expect(refused.body.resourceType).toBe('OperationOutcome');
      }
      expect((await raw(url(`Basic/${created.id}`))).body.meta.versionId).toBe('1');
      const other = await patch(created.id!, { 'If-None-Match': 'W/"7"' });
      expect([other.status, other.body.language, other.body.meta.versionId]).toEqual([200, 'fr', '2']);
      expect((await patch(created.id!, { 'If-None-Match': 'nonsense, "' })).status).toBe(400);
    });

    it('DELETE: * or the current version is 412 and the resource stays; another tag deletes; a conditional DELETE too', async () => {
      const created = await create(basic('delete-inm'));
      for (const tag of ['*', 'W/"1"']) expect((await raw(url(`Basic/${created.id}`), { method: 'DELETE', headers: { 'If-None-Match': tag } })).status, tag).toBe(412);
      expect((await raw(url(`Basic/${created.id}`))).status).toBe(200);
      expect((await raw(url(`Basic/${created.id}`), { method: 'DELETE', headers: { 'If-None-Match': 'W/"9"' } })).status).toBe(204);
      expect((await raw(url(`Basic/${created.id}`))).status).toBe(410);
      // Nothing there: `*` holds, and deleting nothing answers as it does without the header.
      expect((await raw(url('Basic/never-there-inm'), { method: 'DELETE', headers: { 'If-None-Match': '*' } })).status).toBe(204);

      const matched = await create(basic('delete-inm-conditional'));
      const criteria = 'Basic?code=urn:test:gaps|delete-inm-conditional';
      expect((await raw(url(criteria), { method: 'DELETE', headers: { 'If-None-Match': '*' } })).status).toBe(412);
      expect((await raw(url(`Basic/${matched.id}`))).status).toBe(200);
      expect((await raw(url(criteria), { method: 'DELETE', headers: { 'If-None-Match': 'W/"2"' } })).status).toBe(204);
      expect((await raw(url(`Basic/${matched.id}`))).status).toBe(410);
    });

    it('DELETE honours If-Match: a stale version is 412 and the resource stays, the current one deletes', async () => {
      const created = await create(basic('delete-if-match'));
      await raw(url(`Basic/${created.id}`), { method: 'PUT', json: { ...created, language: 'es' } });
      const stale = await raw(url(`Basic/${created.id}`), { method: 'DELETE', headers: { 'If-Match': 'W/"1"' } });
      expect([stale.status, stale.body.resourceType]).toEqual([412, 'OperationOutcome']);
      expect((await raw(url(`Basic/${created.id}`))).body.meta.versionId).toBe('2');
      expect((await raw(url(`Basic/${created.id}`), { method: 'DELETE', headers: { 'If-Match': 'W/"2"' } })).status).toBe(204);
      expect((await raw(url('Basic/never-there-if-match'), { method: 'DELETE', headers: { 'If-Match': '*' } })).status).toBe(412);
    });

    it('in a transaction a false If-None-Match fails the whole Bundle (412, nothing written); in a batch, its own entry', async () => {
      const target = await create(basic('bundle-inm'));
      const transaction = await post({
        resourceType: 'Bundle',
        type: 'transaction',
        entry: [
          { resource: basic('bundle-inm-new'), request: { method: 'POST', url: 'Basic' } },
          { resource: jsonPatch(replaceLanguage('de')), request: { method: 'PATCH', url: `Basic/${target.id}`, ifNoneMatch: '*' } },
        ],
      });
      expect(transaction.status).toBe(412);
      expect(transaction.body.resourceType).toBe('OperationOutcome');
      expect((await raw(url('Basic?code=urn:test:gaps|bundle-inm-new&_summary=count'))).body.total).toBe(0);
      expect((await raw(url(`Basic/${target.id}`))).body.meta.versionId).toBe('1');

      const batch = await post({
        resourceType: 'Bundle',
        type: 'batch',
        entry: [
          { request: { method: 'DELETE', url: `Basic/${target.id}`, ifNoneMatch: 'W/"1"' } },
          { resource: jsonPatch(replaceLanguage('de')), request: { method: 'PATCH', url: `Basic/${target.id}`, ifNoneMatch: 'W/"1"' } },
          { resource: jsonPatch(replaceLanguage('it')), request: { method: 'PATCH', url: `Basic/${target.id}`, ifNoneMatch: 'W/"5"' } },
        ],
      });
      expect(batch.body.entry.map((e: BundleEntry) => e.response?.status)).toEqual(['412', '412', '200']);
      const after = (await raw(url(`Basic/${target.id}`))).body as Basic;
      expect([after.language, after.meta?.versionId]).toEqual(['it', '2']);
    });
  });

  describe('the CapabilityStatement is a resource the server serves', () => {
    it('GET CapabilityStatement/server answers what /metadata answers, ETag included; searches by url and _id find it', async () => {
      const metadata = await raw(url('metadata'));
      const read = await raw(url('CapabilityStatement/server'));
      expect(read.status).toBe(200);
      expect(read.body.id).toBe('server');
      expect(read.body.url).toBe('https://second-opinion.example.org/fhir/CapabilityStatement/server');
      expect(metadata.body).toEqual(read.body);
      expect(metadata.headers.get('etag')).toBe(read.headers.get('etag'));
      expect(metadata.headers.get('etag')).toMatch(/^W\/"\d+"$/);
      for (const query of [`url=${encodeURIComponent(read.body.url)}`, '_id=server']) {
        const found = await raw(url(`CapabilityStatement?${query}`));
        expect(ids(found.body), query).toEqual(['server']);
      }
    });

    it('what it declares for the CapabilityStatement type is what the server does: read, vread, history and its search parameters, no writes', async () => {
      const statement = (await raw(url('CapabilityStatement/server'))).body as CapabilityStatement;
      const declared = statement.rest![0].resource!.find((r) => r.type === 'CapabilityStatement')!;
      expect(declared.interaction!.map((i) => i.code).sort()).toEqual(['history-instance', 'history-type', 'read', 'search-type', 'vread']);
      const version = statement.meta!.versionId!;
      expect((await raw(url(`CapabilityStatement/server/_history/${version}`))).body).toEqual(statement);
      expect(ids((await raw(url('CapabilityStatement/server/_history'))).body)).toContain('server');
      expect(ids((await raw(url('CapabilityStatement/_history'))).body)).toContain('server');
      expect((await raw(url('CapabilityStatement/server'), { headers: { 'If-None-Match': `W/"${version}"` } })).status).toBe(304);
      // Each declared parameter, given the statement's own value, finds it.
      const byParam: [string, string][] = [
        ['name', statement.name!],
        ['title', statement.title!],
        ['status', statement.status],
        ['date', statement.date],
        ['publisher', statement.publisher!],
        ['software', statement.software!.name],
        ['format', 'json'],
        ['mode', 'server'],
        ['resource', 'TerminologyCapabilities'],
        ['guide', statement.implementationGuide![0]],
        ['resource-profile', 'http://hl7.org/fhir/StructureDefinition/Task'],
        ['supported-profile', 'https://second-opinion.example.org/fhir/StructureDefinition/second-opinion-task'],
      ];
      const names = declared.searchParam!.map((p) => p.name);
      for (const [name, value] of byParam) {
        expect(names, name).toContain(name);
        expect(ids((await raw(url(`CapabilityStatement?${name}=${encodeURIComponent(value)}`))).body), `${name}=${value}`).toEqual(['server']);
      }
      for (const [method, json] of [['PUT', statement], ['DELETE', undefined], ['PATCH', undefined]] as const) {
        const refused = await raw(url('CapabilityStatement/server'), { method, json, headers: method === 'PATCH' ? { 'content-type': 'application/json-patch+json' } : {} });
        expect(refused.status, method).toBe(405);
        expect(refused.body.resourceType).toBe('OperationOutcome');
      }
      expect((await raw(url('CapabilityStatement'), { method: 'POST', json: { ...statement, id: undefined } })).status).toBe(405);
      expect((await raw(url('CapabilityStatement/server'))).body.meta.versionId).toBe(version);
    });

    it('is published again only when its content changes, keeping the date it last changed', async () => {
      const before = (await raw(url('CapabilityStatement/server'))).body as CapabilityStatement;
      const { meta: _meta, ...content } = before;
      await publishCapabilityStatement(server.store, { ...content, date: '2099-01-01' });
      const same = (await raw(url('CapabilityStatement/server'))).body as CapabilityStatement;
      expect([same.meta?.versionId, same.date]).toEqual([before.meta?.versionId, before.date]);
      await publishCapabilityStatement(server.store, { ...content, title: `${content.title} (changed)`, date: '2099-01-01' });
      const changed = (await raw(url('CapabilityStatement/server'))).body as CapabilityStatement;
      expect([changed.meta?.versionId, changed.date]).toEqual([String(Number(before.meta!.versionId) + 1), '2099-01-01']);
      await publishCapabilityStatement(server.store, content);
      expect((await raw(url('metadata'))).body.title).toBe(before.title);
    });
  });

  describe('/metadata: mode, _summary and _elements (R4 http.html#capabilities)', () => {
    it('mode full and normative answer the full statement; an unknown mode is a 400, over HTTP and in a batch', async () => {
      const full = (await raw(url('metadata'))).body;
      for (const mode of ['full', 'normative']) expect((await raw(url(`metadata?mode=${mode}`))).body, mode).toEqual(full);
      for (const path of ['metadata?mode=bogus', 'metadata?mode=full&mode=terminology']) {
        const refused = await raw(url(path));
        expect(refused.status, path).toBe(400);
        expect(refused.body.resourceType).toBe('OperationOutcome');
        expect(refused.body.issue[0].expression).toEqual(['mode']);
      }
      const batch = await post({ resourceType: 'Bundle', type: 'batch', entry: [{ request: { method: 'GET', url: 'metadata?mode=bogus' } }, { request: { method: 'GET', url: 'metadata?mode=terminology' } }] });
      expect(batch.body.entry.map((e: BundleEntry) => e.response?.status)).toEqual(['400', '200']);
      expect(batch.body.entry[1].resource.resourceType).toBe('TerminologyCapabilities');
    });

    it('mode=terminology is the TerminologyCapabilities: every CodeSystem the server publishes, and no expansion or validate-code, which it does not do', async () => {
      const res = await raw(url('metadata?mode=terminology'));
      expect(res.status).toBe(200);
      const tc = res.body as TerminologyCapabilities;
      expect(tc.resourceType).toBe('TerminologyCapabilities');
      expect((await raw(url('TerminologyCapabilities/server'))).body).toEqual(tc);
      const published = ((await raw(url('CodeSystem?_count=100'))).body as Bundle).entry!.map((e) => (e.resource as CodeSystem).url).sort();
      expect(tc.codeSystem!.map((c) => c.uri).sort()).toEqual(published);
      expect([tc.expansion, tc.validateCode, tc.translation, tc.closure]).toEqual([undefined, undefined, undefined, undefined]);
      for (const op of ['ValueSet/$expand', 'CodeSystem/$validate-code', 'CodeSystem/$lookup']) expect((await raw(url(op))).status, op).toBe(404);
    });

    it('_summary=true and _elements shape the statement as a read does (SUBSETTED), over HTTP and in a batch; _summary=count is a 400', async () => {
      const full = (await raw(url('metadata'))).body as CapabilityStatement;
      // Every element the statement has is a summary element in R4 (rest included): only the tag differs.
      const summary = (await raw(url('metadata?_summary=true'))).body as CapabilityStatement;
      expect({ ...summary, meta: full.meta }).toEqual(full);
      expect(isSubsetted(summary)).toBe(true);
      const text = (await raw(url('metadata?_summary=text'))).body as CapabilityStatement;
      expect([text.rest, text.fhirVersion, isSubsetted(text)]).toEqual([undefined, '4.0.1', true]);
      const elements = (await raw(url('metadata?_elements=software'))).body as CapabilityStatement;
      expect(Object.keys(elements).sort()).toEqual(['date', 'fhirVersion', 'format', 'id', 'kind', 'meta', 'resourceType', 'software', 'status']);
      expect(isSubsetted(elements)).toBe(true);
      const terminology = (await raw(url('metadata?mode=terminology&_elements=codeSystem'))).body as TerminologyCapabilities;
      expect([terminology.resourceType, terminology.description, isSubsetted(terminology)]).toEqual(['TerminologyCapabilities', undefined, true]);
      expect(terminology.codeSystem?.length).toBeGreaterThan(0);
      const batch = await post({ resourceType: 'Bundle', type: 'batch', entry: [{ request: { method: 'GET', url: 'metadata?_summary=true' } }] });
      expect(batch.body.entry[0].resource).toEqual(summary);
      expect((await raw(url('metadata?_summary=count'))).status).toBe(400);
    });

    it('answers 304 to If-None-Match with its ETag', async () => {
      const etag = (await raw(url('metadata'))).headers.get('etag')!;
      const res = await raw(url('metadata'), { headers: { 'If-None-Match': etag } });
      expect([res.status, res.body]).toEqual([304, undefined]);
    });
  });

  describe('the Measure the committee MeasureReport names', () => {
    it('GET Measure/{id} and Measure?url= find the Measure the MeasureReport names', async () => {
      const report = committeeMeasureReport(reportFigures([], [], new Date()), '2026-Q3', undefined, new Date());
      const found = (await raw(url(`Measure?url=${encodeURIComponent(report.measure)}`))).body as Bundle;
      expect(found.entry?.length).toBe(1);
      const measure = found.entry![0].resource as Measure;
      expect((await raw(url(`Measure/${measure.id}`))).body).toEqual(measure);
      expect(measure.url).toBe(report.measure);
    });
  });
});

describe('the committee Measure (profiles/) and the MeasureReport it describes', () => {
  const measure = readProfile<Measure>('Measure-second-opinion-committee-report.json');
  const now = new Date('2026-09-30T12:00:00Z');
  /** A case for every reason and every outcome, one in a medical group, so that the report names every code it can. */
  const cases: CaseRecord[] = REASONS.flatMap(([reason], r) =>
    BUSINESS_STATUSES.map(([outcome], o): CaseRecord => ({
      plan: 'bsp',
      reasons: [reason as CaseRecord['reasons'][number]],
      outcome,
      expedited: (r + o) % 2 === 0,
      receivedAt: '2026-08-01T10:00:00-07:00',
      dueAt: '2026-08-08T10:00:00-07:00',
      decidedAt: o % 3 ? '2026-08-03T10:00:00-07:00' : undefined,
      opinionDueAt: '2026-08-20T10:00:00-07:00',
      reportedAt: o % 4 ? undefined : '2026-08-19T10:00:00-07:00',
      extended: o % 5 === 0,
      providerGroup: o === 1 ? 'ipa-1' : undefined,
    })),
  );
  const report: MeasureReport = committeeMeasureReport(reportFigures(cases, [], now), '2026-Q3', 'bsp', now);
  const groupOf = (code: string | undefined) => measure.group?.find((g) => g.code?.coding?.[0]?.code === code);

  it('profiles/ holds what build-profiles generates for the Measure and the TerminologyCapabilities', () => {
    for (const generated of generatedConformance().filter((r) => r.resourceType === 'Measure' || r.resourceType === 'TerminologyCapabilities')) {
      expect(readProfile(`${generated.resourceType}-${generated.id}.json`)).toEqual(JSON.parse(JSON.stringify(generated)));
    }
  });

  it('every group, population and stratifier code the MeasureReport emits is defined in the Measure, with the committee-report codes', () => {
    expect(report.measure).toBe(measure.url);
    const codeSystem = readProfile<CodeSystem>('CodeSystem-committee-report.json');
    expect(measure.group!.map((g) => g.code?.coding?.[0])).toEqual(codeSystem.concept!.map((c) => ({ system: codeSystem.url, code: c.code, display: c.display })));
    const undefinedCodes: string[] = [];
    for (const group of report.group!) {
      const defined = groupOf(group.code?.coding?.[0]?.code);
      expect(defined, group.code?.text).toBeDefined();
      const populations = new Set(defined!.population?.map((p) => p.code?.text));
      const emitted = [...(group.population ?? []), ...(group.stratifier ?? []).flatMap((s) => (s.stratum ?? []).flatMap((st) => st.population ?? []))];
      for (const p of emitted) if (!populations.has(p.code?.text)) undefinedCodes.push(`${group.code?.coding?.[0]?.code}/${p.code?.text}`);
      for (const s of group.stratifier ?? []) {
        expect(defined!.stratifier?.map((d) => d.code?.text)).toContain(s.code?.[0]?.text);
        for (const stratum of s.stratum ?? []) expect(REASONS.map(([code]) => code)).toContain(stratum.value?.text);
      }
    }
    // A provider group's population is named by its Organization id, which no definition can list.
    expect(undefinedCodes).toEqual(['by-provider-group/ipa-1']);
    // The cases above reach every outcome and reason population the Measure defines.
    expect(report.group!.find((g) => g.code?.coding?.[0]?.code === 'by-outcome')!.population!.length).toBe(BUSINESS_STATUSES.length);
    expect(report.group!.find((g) => g.code?.coding?.[0]?.code === 'by-reason')!.population!.length).toBe(REASONS.length);
  });

  it('each group says how it is scored, and the description cites BSP D.X and F', () => {
    const scoring = (code: string) => groupOf(code)!.extension!.find((e) => e.url.endsWith('cqfm-scoring'))!.valueCodeableConcept!.coding![0].code;
    expect(['cases', 'timeliness', 'decision-hours'].map(scoring)).toEqual(['cohort', 'proportion', 'continuous-variable']);
    expect(measure.scoring).toBeUndefined();
    expect(measure.description).toContain('BSP D.X');
    expect(measure.description).toContain('BSP F');
    expect(measure.guidance).toContain('Pacific');
  });
});
