import type { Basic, Bundle, BundleLink, CapabilityStatement, Organization, OperationOutcome, Task } from 'fhir/r4.js';
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

const task = (code: string, due: string | undefined, extra: Partial<Task> = {}): Task => ({
  resourceType: 'Task',
  status: 'requested',
  intent: 'order',
  code: { coding: [{ system: 'urn:test:paging', code }] },
  ...(due ? { restriction: { period: { end: due } } } : {}),
  ...extra,
});
const idsOf = (bundle: Bundle): string[] => (bundle.entry ?? []).filter((e) => e.search?.mode === 'match').map((e) => e.resource!.id!);
const cursorOf = (url: string | undefined): string | null => (url ? new URL(url).searchParams.get('_cursor') : null);

describe.each(STORE_DRIVERS)('REST search and history paging, summary counts, CapabilityStatement includes and content negotiation on $name', (driver) => {
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

  describe('search paging by cursor', () => {
    const create = async <T extends Task | Organization>(resource: T): Promise<T> => {
      const res = await raw(url(resource.resourceType), { method: 'POST', json: resource });
      expect(res.status).toBe(201);
      return res.body as T;
    };
    const put = async (resource: Task | Organization) => expect((await raw(url(`${resource.resourceType}/${resource.id}`), { method: 'PUT', json: resource })).status).toBe(200);
    const get = async (path: string): Promise<Bundle> => {
      const res = await raw(path.startsWith('http') ? path : url(path));
      expect(res.status, JSON.stringify(res.body).slice(0, 300)).toBe(200);
      return res.body as Bundle;
    };
    /** The first page, then `change`, then every later page by its next link: the ids each page held. */
    const walkWhile = async (query: string, change: (first: Bundle) => Promise<void>): Promise<string[][]> => {
      const first = await get(query);
      await change(first);
      const pages = [idsOf(first)];
      for (let next = link(first, 'next'); next && pages.length < 50; ) {
        const page = await get(next);
        pages.push(idsOf(page));
        next = link(page, 'next');
      }
      return pages;
    };
    /** Tasks of one code, stored in order; `dues[i]` undefined: that Task has no due date. */
    const tasks = async (code: string, dues: (string | undefined)[], extra: (i: number) => Partial<Task> = () => ({})) => {
      const created: Task[] = [];
      for (const [i, due] of dues.entries()) created.push(await create(task(code, due, extra(i))));
      return created;
    };

    it('a record that stops matching between pages (a Task approved while the clerk reads page 1): every record still matching is seen exactly once', async () => {
      const code = `skip-${driver.name}`;
      const stored = await tasks(code, ['2026-03-01', '2026-03-02', '2026-03-03', '2026-03-04', '2026-03-05', '2026-03-06', '2026-03-07']);
      const pages = await walkWhile(`Task?code=urn:test:paging|${code}&status=requested&_sort=due&_count=3`, async (first) => {
        const approved = first.entry![0].resource as Task;
        await put({ ...approved, status: 'completed' });
      });
      expect(pages[0]).toEqual(stored.slice(0, 3).map((t) => t.id));
      expect(pages.slice(1).flat()).toEqual(stored.slice(3).map((t) => t.id));
    });

    it('a record added before the cursor between pages: no record is seen twice', async () => {
      const code = `repeat-${driver.name}`;
      const stored = await tasks(code, ['2026-04-02', '2026-04-03', '2026-04-04', '2026-04-05', '2026-04-06']);
      const pages = await walkWhile(`Task?code=urn:test:paging|${code}&_sort=due&_count=2`, async () => {
        await create(task(code, '2026-04-01'));
      });
      expect(pages.flat()).toEqual(stored.map((t) => t.id));
    });

    // Each walk changes the search under it: the first match of page 1 stops matching before page 2 is read.
    const dues = ['2026-05-03', '2026-05-01', undefined, '2026-05-03', '2026-05-02', undefined, '2026-05-03', '2026-05-01', undefined];
    const authored = ['2026-01-02', '2026-01-01', '2026-01-03', undefined, '2026-01-01', '2026-01-02', '2026-01-01', '2026-01-03', undefined];
    it.each([
      ['due', false],
      ['-due', false],
      ['due,-authored-on', false],
      ['-due,authored-on,-_id', false],
      ['-authored-on,due', false],
      ['_lastUpdated', false],
      ['-_lastUpdated', false],
      ['-_id', false],
      ['status,due', false],
      ['', false],
      ['due', true],
      ['-authored-on,due', true],
    ])('_sort=%s, by _id list %s (descending, several keys, ties, missing values): the walk holds every remaining match once, in the order of one page; previous links walk it back from last', async (sort, byIds) => {
      const code = `sort-${driver.name}-${sort.replace(/\W/g, '_') || 'default'}-${byIds}`;
      const stored = await tasks(code, dues, (i) => (authored[i] ? { authoredOn: authored[i] } : {}));
      // A list of ids is found through its index, then sorted (namesFewResources): the other way to read a page.
      const query = `Task?code=urn:test:paging|${code}&status=requested${byIds ? `&_id=${stored.map((t) => t.id).join(',')}` : ''}${sort ? `&_sort=${sort}` : ''}`;
      const pages = await walkWhile(`${query}&_count=2`, async (first) => {
        await put({ ...(first.entry![0].resource as Task), status: 'cancelled' });
      });
      const remaining = idsOf(await get(`${query}&_count=100`));
      expect(remaining).toHaveLength(dues.length - 1);
      expect(pages.slice(1).flat()).toEqual(remaining.slice(1));
      const backwards: string[][] = [];
      for (let at = link(await get(`${query}&_count=2`), 'last'); at && backwards.length < 10; ) {
        const page = await get(at);
        backwards.unshift(idsOf(page));
        at = link(page, 'previous');
      }
      expect(backwards.flat()).toEqual(remaining);
    });

    it.each(['due', '-due', 'due,-authored-on', '-authored-on,due', '_id', '-_lastUpdated', ''])('_sort=%s: previous from each page reached by next gives the page before it (ties, missing values, descending)', async (sort) => {
      const code = `prev-${driver.name}-${sort.replace(/\W/g, '_') || 'default'}`;
      await tasks(code, [...dues, '2026-05-03', undefined], (i) => (authored[i % authored.length] ? { authoredOn: authored[i % authored.length] } : {}));
      const query = `Task?code=urn:test:paging|${code}${sort ? `&_sort=${sort}` : ''}&_count=2`;
      const pages = [await get(query)];
      for (let next = link(pages[0], 'next'); next && pages.length < 20; next = link(pages[pages.length - 1], 'next')) pages.push(await get(next));
      expect(pages.flatMap(idsOf)).toHaveLength(dues.length + 2);
      for (let i = 1; i < pages.length; i++) expect(idsOf(await get(link(pages[i], 'previous')!)), `page ${i + 1}`).toEqual(idsOf(pages[i - 1]));
    });

    it('previous after every match before a page stopped matching: the first page of what remains, not an empty page without links', async () => {
      const code = `prev-gone-${driver.name}`;
      const stored = await tasks(code, ['2026-10-01', '2026-10-02', '2026-10-03', '2026-10-04', '2026-10-05', undefined]);
      const query = `Task?code=urn:test:paging|${code}&status=requested&_sort=due&_count=2`;
      const page2 = await get(link(await get(query), 'next')!);
      for (const gone of stored.slice(0, 2)) await put({ ...gone, status: 'cancelled' });
      const previous = await get(link(page2, 'previous')!);
      expect(idsOf(previous)).toEqual(stored.slice(2, 4).map((t) => t.id));
      expect(link(previous, 'previous')).toBeUndefined();
      expect(idsOf(await get(link(previous, 'next')!))).toEqual(stored.slice(4).map((t) => t.id));
      // One left before the page: a short page, as where a walk back from last ends.
      await put({ ...stored[1], status: 'requested' });
      const short = await get(link(page2, 'previous')!);
      expect([idsOf(short), link(short, 'previous')]).toEqual([[stored[1].id], undefined]);
      expect(idsOf(await get(link(short, 'next')!))).toEqual(stored.slice(2, 4).map((t) => t.id));
    });

    it('ties on the sort key are broken by id: a page boundary inside a run of equal dues neither skips nor repeats', async () => {
      const code = `ties-${driver.name}`;
      await tasks(code, Array.from({ length: 6 }, () => '2026-06-01'));
      const query = `Task?code=urn:test:paging|${code}&status=requested&_sort=due`;
      const pages = await walkWhile(`${query}&_count=2`, async (first) => {
        await put({ ...(first.entry![1].resource as Task), status: 'cancelled' });
      });
      const remaining = idsOf(await get(`${query}&_count=100`));
      expect(pages.flat().filter((id) => remaining.includes(id))).toEqual(remaining);
      expect(new Set(pages.flat()).size).toBe(pages.flat().length);
    });

    it('a cached type (the provider directory): a cursor page is read afresh after a write, not served from the cache', async () => {
      const name = `Paging ${driver.name}`;
      const stored: Organization[] = [];
      for (let i = 0; i < 5; i++) stored.push(await create<Organization>({ resourceType: 'Organization', active: true, name: `${name} ${i}` }));
      const query = `Organization?name=${encodeURIComponent(name)}&active=true&_sort=name&_count=2`;
      const warm = await get(query);
      await get(link(warm, 'next')!); // page 2 now cached
      const pages = await walkWhile(query, async () => put({ ...stored[0], active: false }));
      expect(pages.flat()).toEqual(stored.map((o) => o.id));
    });

    it('links: next and previous carry a cursor and every other parameter; previous and last read backwards; first starts over', async () => {
      const code = `links-${driver.name}`;
      const stored = await tasks(code, ['2026-07-01', '2026-07-02', '2026-07-03', '2026-07-04', '2026-07-05']);
      const query = `Task?code=urn:test:paging|${code}&_sort=due&_count=2&_total=accurate&_include=Task:focus`;
      const page1 = await get(query);
      expect(link(page1, 'previous')).toBeUndefined();
      expect(link(page1, 'first')).toBe(url(`Task?code=${encodeURIComponent(`urn:test:paging|${code}`)}&_sort=due&_total=accurate&_include=${encodeURIComponent('Task:focus')}&_count=2`));
      const page2 = await get(link(page1, 'next')!);
      const next = new URL(link(page1, 'next')!);
      expect([next.searchParams.get('code'), next.searchParams.get('_sort'), next.searchParams.get('_total'), next.searchParams.get('_include'), next.searchParams.get('_offset')]).toEqual([`urn:test:paging|${code}`, 'due', 'accurate', 'Task:focus', null]);
      expect(cursorOf(link(page1, 'next'))).toBeTruthy();
      expect([idsOf(page2), page2.total]).toEqual([stored.slice(2, 4).map((t) => t.id), 5]);
      expect(idsOf(await get(link(page2, 'previous')!))).toEqual(stored.slice(0, 2).map((t) => t.id));
      const last = await get(link(page1, 'last')!);
      expect([idsOf(last), link(last, 'next')]).toEqual([stored.slice(3).map((t) => t.id), undefined]);
      const before = await get(link(last, 'previous')!);
      expect(idsOf(before)).toEqual(stored.slice(1, 3).map((t) => t.id));
      expect(idsOf(await get(link(before, 'previous')!))).toEqual([stored[0].id]);
      expect(idsOf(await get(link(last, 'first')!))).toEqual(stored.slice(0, 2).map((t) => t.id));
    });

    it('_offset sent by a client is still honoured, and its next link continues by cursor where it ended', async () => {
      const code = `offset-${driver.name}`;
      const stored = await tasks(code, ['2026-08-01', '2026-08-02', '2026-08-03', '2026-08-04', undefined, undefined]);
      const all = idsOf(await get(`Task?code=urn:test:paging|${code}&_sort=due&_count=100`));
      expect(all.slice(0, 4)).toEqual(stored.slice(0, 4).map((t) => t.id)); // then the two without a due, by id
      const page = await get(`Task?code=urn:test:paging|${code}&_sort=due&_count=2&_offset=3`);
      expect(idsOf(page)).toEqual(all.slice(3, 5));
      expect(new URL(link(page, 'next')!).searchParams.get('_offset')).toBeNull();
      expect(idsOf(await get(link(page, 'next')!))).toEqual([all[5]]);
      expect(idsOf(await get(link(page, 'previous')!))).toEqual(all.slice(1, 3));
    });

    it('a tampered or malformed cursor is refused with 400 and an OperationOutcome, never a 500', async () => {
      const code = `tamper-${driver.name}`;
      await tasks(code, ['2026-09-01', '2026-09-02', '2026-09-03']);
      const query = `Task?code=urn:test:paging|${code}&_sort=due&_count=1`;
      const good = cursorOf(link(await get(query), 'next'))!;
      const decoded = JSON.parse(Buffer.from(good, 'base64url').toString()) as { d: string; s: string; p: (string | null)[] };
      const forge = (change: Record<string, unknown>) => Buffer.from(JSON.stringify({ ...decoded, ...change })).toString('base64url');
      const bad: [string, string][] = [
        ['not base64url', 'abc$def'],
        ['not JSON', Buffer.from('{nope').toString('base64url')],
        ['another shape', forge({ d: 'sideways' })],
        ['an extra field', forge({ sql: 'DROP TABLE resources' })],
        ['an impossible date', forge({ p: ['2026-02-30T00:00:00.000000Z', decoded.p[1]] })],
        ['a date in another form', forge({ p: ['2026-09-01', decoded.p[1]] })],
        ['a bad id', forge({ p: [decoded.p[0], "x' OR 1=1 --"] })],
        ['too few keys', forge({ p: [decoded.p[1]] })],
        ['another sort', forge({ s: '-due' })],
        ['year 0000, which no database stores', forge({ p: ['0000-01-01T00:00:00.000000Z', decoded.p[1]] })],
      ];
      for (const [why, cursor] of bad) {
        const res = await raw(url(`${query}&_cursor=${cursor}`));
        expect([why, res.status, res.body.resourceType]).toEqual([why, 400, 'OperationOutcome']);
        expect((res.body as OperationOutcome).issue[0].expression).toEqual(['_cursor']);
      }
      const byId = Buffer.from(JSON.stringify({ d: 'a', s: '_id', p: ['a\u0000b', 'x'] })).toString('base64url');
      const nul = await raw(url(`Task?code=urn:test:paging|${code}&_sort=_id&_count=1&_cursor=${byId}`));
      expect([nul.status, nul.body.resourceType]).toEqual([400, 'OperationOutcome']);
      const sorted = await raw(url(`Task?code=urn:test:paging|${code}&_sort=-due&_count=1&_cursor=${good}`));
      expect(sorted.status).toBe(400);
      const both = await raw(url(`${query}&_cursor=${good}&_offset=1`));
      expect([both.status, both.body.resourceType]).toEqual([400, 'OperationOutcome']);
    });
  });

  it('open-ended periods are stored (at FHIR\'s first and last instants), found and paged by cursor in either order', async () => {
    const code = `open-${Date.now()}`;
    const periods = [{ end: '2026-01-01' }, { start: '2026-06-01' }, { start: '2026-03-01', end: '2026-03-02' }];
    for (const executionPeriod of periods) {
      const res = await raw(url('Task'), { method: 'POST', json: task(code, undefined, { executionPeriod }) });
      expect([res.status, res.body.resourceType]).toEqual([201, 'Task']);
    }
    expect((await raw(url(`Task?code=urn:test:paging|${code}&period=lt2025`))).body.total ?? (await raw(url(`Task?code=urn:test:paging|${code}&period=lt2025&_total=accurate`))).body.total).toBe(1);
    for (const sort of ['period', '-period']) {
      const pages = await walk(url(`Task?code=urn:test:paging|${code}&_sort=${sort}&_count=1`));
      expect(pages.flatMap((p) => (p.entry ?? []).map((e) => (e.resource as Task).executionPeriod)), sort).toHaveLength(3);
    }
  });

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
        expect([next.searchParams.get('_since'), next.searchParams.get('_count'), next.searchParams.get('_offset'), next.searchParams.has('_cursor')]).toEqual([since, '1', null, true]);
      }
    });

    it('_cursor pages instance, type and system history: next then previous gives the page again, whatever is written between requests', async () => {
      for (const path of [`Basic/${id}/_history`, 'Basic/_history', '_history']) {
        const page1 = (await raw(url(`${path}?_count=2`))).body as Bundle;
        expect([link(page1, 'previous'), link(page1, 'first')], path).toEqual([undefined, undefined]);
        await raw(url('Basic'), { method: 'POST', json: basic('history-cursor') });
        const page2 = (await raw(link(page1, 'next')!)).body as Bundle;
        const next = new URL(link(page1, 'next')!);
        expect([next.searchParams.get('_offset'), next.searchParams.get('_before'), cursorOf(next.href) !== null], path).toEqual([null, null, true]);
        expect(versionsOf(page2).filter((v) => versionsOf(page1).includes(v)), path).toEqual([]);
        await raw(url('Basic'), { method: 'POST', json: basic('history-cursor') });
        const back = (await raw(link(page2, 'previous')!)).body as Bundle;
        expect(versionsOf(back), path).toEqual(versionsOf(page1));
        const page3 = (await raw(link(page2, 'next')!)).body as Bundle;
        expect(versionsOf(page3).filter((v) => [...versionsOf(page1), ...versionsOf(page2)].includes(v)), path).toEqual([]);
        expect(link(page2, 'first'), path).toBe(url(`${path}?_count=2`));
      }
      const walked = (await walk(url(`Basic/${id}/_history?_count=3`))).flatMap(versionsOf);
      expect(walked).toEqual([7, 6, 5, 4, 3, 2, 1].map((v) => `Basic/${id}/${v}`));
    });

    it('a malformed or foreign _cursor on history is 400 with an OperationOutcome, never ignored or a 500', async () => {
      const good = cursorOf(link((await raw(url(`Basic/${id}/_history?_count=1`))).body as Bundle, 'next'))!;
      const decoded = JSON.parse(Buffer.from(good, 'base64url').toString()) as { d: string; s: string; p: (string | null)[] };
      const forge = (change: Record<string, unknown>) => Buffer.from(JSON.stringify({ ...decoded, ...change })).toString('base64url');
      const searchCursor = cursorOf(link((await raw(url('Basic?_count=1&_sort=-_lastUpdated'))).body as Bundle, 'next'))!;
      const bad: [string, string][] = [
        ['not base64url', 'abc$def'],
        ['a search cursor', searchCursor],
        ['no position', forge({ p: undefined })],
        ['a null key', forge({ p: [null, ...decoded.p.slice(1)] })],
        ['an impossible instant', forge({ p: ['2026-02-30T00:00:00.000000Z', ...decoded.p.slice(1)] })],
        ['a version that is no number', forge({ p: [decoded.p[0], '1; DROP TABLE resources', ...decoded.p.slice(2)] })],
        ['a fractional version', forge({ p: [decoded.p[0], '1.5', ...decoded.p.slice(2)] })],
      ];
      for (const [why, cursor] of bad) {
        const res = await raw(url(`Basic/${id}/_history?_count=1&_cursor=${cursor}`));
        if (why === 'a fractional version') {
          expect([why, res.status]).toEqual([why, 200]); // a position between versions: the database compares it as a number
          continue;
        }
        expect([why, res.status, res.body.resourceType]).toEqual([why, 400, 'OperationOutcome']);
        expect((res.body as OperationOutcome).issue[0].expression).toEqual(['_cursor']);
      }
      const both = await raw(url(`_history?_count=1&_offset=1&_cursor=${good}`));
      expect([both.status, both.body.resourceType]).toEqual([400, 'OperationOutcome']);
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
