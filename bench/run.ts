/**
 * `npm run bench` (quick, 10k resources) and `npm run bench -- --full` (workloads at 100k; searches at
 * 10k, 100k and 1M): the server loaded the way a plan would load it, on PGlite and on PostgreSQL,
 * next to the peer (Medplum's FHIR router in memory) and the ceilings (bare Express, bare node:http),
 * all as child processes loaded by autocannon from this one. Every figure is the median of repeated
 * runs and every comparison a ratio from the same run. Writes docs/benchmarks.md.
 */
import { execSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import type autocannon from 'autocannon';
import pg from 'pg';
import { issueAccessToken } from '../server/src/auth/accessTokens.js';
import { loadSigningKey } from '../server/src/auth/signingKeys.js';
import { PLANS, SPECIALTIES } from '../server/src/demo/demoData.js';
import { ourSearchParameters, readConformanceResources } from '../server/src/fhir/conformance.js';
import { SearchParamRegistry } from '../server/src/fhir/search/registry.js';
import { parseSearch } from '../server/src/fhir/search/parse.js';
import type { StoreConfig } from '../server/src/storage/connect.js';
import { openStore } from '../server/src/storage/openStore.js';
import type { SqlFhirStore } from '../server/src/storage/sql/SqlFhirStore.js';
import { buildServer, SERVER_BUNDLE } from '../scripts/build-server.js';
import { countsFor, loadGenerated, submissionFor, transactionBundle, writeNdjson } from './generate.js';
import { type ChildServer, cpuMs, type Figure, freePort, load, median, peakRssMb, percentile, postgresCpuMs, startChild } from './lib.js';

const FULL = process.argv.includes('--full');
const CONNECTIONS = 50;
const RUNS = 3;
const SECONDS = Number(process.env.BENCH_SECONDS ?? (FULL ? 5 : 2));
const WORKLOAD_SIZE = FULL ? 100_000 : 10_000;
const SEARCH_SIZES = FULL ? [10_000, 100_000, 1_000_000] : [10_000];
const DATABASE_URL = process.env.BENCH_DATABASE_URL ?? process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

type Driver = 'pglite' | 'postgres';
const conformance = readConformanceResources();
const registry = SearchParamRegistry.withStandard(ourSearchParameters(conformance));
const log = (line: string) => process.stderr.write(`${line}\n`);
const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

// ── the workloads ──────────────────────────────────────────────────────────────

const random = (n: number) => Math.floor(Math.random() * n);
const STEPS = ['um-review', 'received', 'info-requested', 'medical-director-review'];
const SEARCH_SPECIALTIES = [SPECIALTIES.cardiology.code, SPECIALTIES.orthopaedics.code, SPECIALTIES.oncology.code, SPECIALTIES.neurology.code];

interface SearchWorkload {
  name: string;
  ours: (members: number) => string;
  /** The closest query the peer supports (it has neither our `due` nor Plan-Net's `network`). */
  peer: (members: number) => string;
}

const SEARCHES: SearchWorkload[] = [
  {
    name: 'open Tasks by business status, by due date',
    ours: () => `/fhir/Task?business-status=${STEPS[random(4)]}&status=requested,in-progress&_sort=due&_count=20`,
    peer: () => `/fhir/Task?business-status=${STEPS[random(4)]}&status=requested,in-progress&_sort=authored-on&_count=20`,
  },
  {
    name: 'ServiceRequests by patient',
    ours: (m) => `/fhir/ServiceRequest?patient=Patient/gen-member-${2 * random(Math.floor(m / 2))}`,
    peer: (m) => `/fhir/ServiceRequest?patient=Patient/gen-member-${2 * random(Math.floor(m / 2))}`,
  },
  {
    name: 'qualified PractitionerRoles by specialty and network',
    ours: () => `/fhir/PractitionerRole?specialty=${SEARCH_SPECIALTIES[random(4)]}&network=Organization/${PLANS[random(4)].id}-network&active=true`,
    peer: () => `/fhir/PractitionerRole?specialty=${SEARCH_SPECIALTIES[random(4)]}&active=true`,
  },
  {
    name: 'Tasks in UM review with their ServiceRequests (_include)',
    ours: () => `/fhir/Task?business-status=um-review&_include=Task:focus&_sort=due&_count=20`,
    peer: () => `/fhir/Task?business-status=um-review&_include=Task:focus&_sort=authored-on&_count=20`,
  },
];

const READ_TARGET = '/fhir/Task/gen-task-0';

function submitBundle(members: number, inNetwork: boolean): string {
  const k = random(members);
  return submissionFor(`gen-member-${k}`, PLANS[k % PLANS.length].id, inNetwork);
}

const CREATE_BODY = JSON.stringify({ resourceType: 'Patient', active: true, name: [{ family: 'Bench', given: ['Create'] }], birthDate: '1970-05-05', gender: 'female', address: [{ city: 'Stockton', state: 'CA' }] });

const base = (connections = CONNECTIONS) => ({ connections, seconds: SECONDS, runs: RUNS });
/** Workloads slower than 100/s need longer runs for their latency percentiles to mean anything (3 s keeps the quick run under 5 minutes). */
const slow = () => ({ connections: CONNECTIONS, seconds: Math.max(SECONDS, FULL ? 5 : 3), runs: RUNS });
const varied = (make: () => Partial<autocannon.Request>) => (req: autocannon.Request) => ({ ...req, ...make() }) as autocannon.Request;

// ── our server ─────────────────────────────────────────────────────────────────

interface StoreUnderTest {
  driver: Driver;
  size: number;
  dataDir: string;
  /** Every server on this store listens here, as a deployment keeps its address across restarts. */
  port: number;
  env: Record<string, string>;
  storeConfig: StoreConfig;
  cleanup(): Promise<void>;
}

async function prepareStore(driver: Driver, size: number): Promise<StoreUnderTest> {
  const dataDir = mkdtempSync(join(tmpdir(), `so-bench-${driver}-`));
  const schema = `bench_${size}`;
  const storeConfig: StoreConfig = driver === 'pglite' ? { driver, dataDir: join(dataDir, 'pg') } : { driver, databaseUrl: DATABASE_URL, schema, poolSize: 10 };
  const dropSchema = async () => {
    const client = new pg.Client({ connectionString: DATABASE_URL });
    await client.connect();
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await client.end();
  };
  if (driver === 'postgres') await dropSchema();
  log(`${driver}: generating ${fmt(size)} resources`);
  const store = await openStore(storeConfig, registry);
  await loadGenerated(store, size, driver === 'postgres' ? 3 : 1);
  await store.analyze(); // as after any bulk import; the server also refreshes PGlite's statistics itself
  await store.close();
  return {
    driver,
    size,
    dataDir,
    storeConfig,
    port: await freePort(),
    env: { DATA_DIR: dataDir, ...(driver === 'postgres' ? { DATABASE_URL, DATABASE_SCHEMA: schema } : {}) },
    async cleanup() {
      rmSync(dataDir, { recursive: true, force: true });
      if (driver === 'postgres') await dropSchema();
    },
  };
}

interface OurServer extends ChildServer {
  userToken: string;
  systemToken: string;
}

async function startOurs(s: StoreUnderTest, env: Record<string, string> = {}): Promise<OurServer> {
  const child = await startChild(SERVER_BUNDLE, [], { PORT: String(s.port), DEMO_MODE: 'true', OUTBOX_ENABLED: 'false', AUDIT_ENABLED: 'true', ...s.env, ...env }, 'server_started');
  const issuer = { issuer: child.url, fhirBase: `${child.url}/fhir`, key: loadSigningKey(s.dataDir), accessTokenSeconds: 3600 };
  return {
    ...child,
    userToken: issueAccessToken(issuer, { clientId: 'bench', scope: 'user/*.cruds', fhirUser: 'Practitioner/hpsj-md-1', roles: ['plan-admin'] }).token,
    systemToken: issueAccessToken(issuer, { clientId: 'bench-system', scope: 'system/*.cruds', roles: [] }).token,
  };
}

const authOf = (token: string) => ({ authorization: `Bearer ${token}` });
const jsonAuth = (token: string) => ({ ...authOf(token), 'content-type': 'application/fhir+json' });

/** The peer's searches scan every resource (about a second each at 10k): one connection, one longer run. */
const PEER_SEARCH = { connections: 1, seconds: Math.max(6, SECONDS * 2), runs: 1 };

async function searchFigures(server: ChildServer, headers: Record<string, string>, members: number, which: 'ours' | 'peer'): Promise<Figure[]> {
  const figures: Figure[] = [];
  for (const s of SEARCHES) {
    log(`  search (${which}): ${s.name}`);
    const shape = which === 'ours' ? base() : PEER_SEARCH;
    const timed = which === 'ours' ? server.requestTimes() : undefined;
    const figure = await load({ url: server.url, headers, ...shape, setupRequest: varied(() => ({ method: 'GET', path: s[which](members) })) });
    const serverTimes = timed?.() ?? [];
    figures.push(serverTimes.length ? { ...figure, serverP99: percentile(serverTimes, 0.99) } : figure);
    if (which === 'peer') await fetch(`${server.url}/fhir/metadata`); // the last scan has finished
  }
  return figures;
}

interface DriverResults {
  driver: Driver;
  workloads: Map<string, Figure>;
  searchesBySize: Map<number, Figure[]>;
  plansBySize: Map<number, string[]>;
  startup?: Startup;
  peakRssMb?: number;
  scaleOut?: ScaleOut;
}

async function benchDriver(driver: Driver): Promise<DriverResults> {
  const results: DriverResults = { driver, workloads: new Map(), searchesBySize: new Map(), plansBySize: new Map() };
  for (const size of [...new Set([...SEARCH_SIZES, WORKLOAD_SIZE])].sort((a, b) => a - b)) {
    const s = await prepareStore(driver, size);
    try {
      const members = countsFor(size).members;
      const server = await startOurs(s);
      try {
        results.searchesBySize.set(size, await searchFigures(server, authOf(server.userToken), members, 'ours'));
        if (size === WORKLOAD_SIZE) {
          await ourWorkloads(server, members, results.workloads);
          results.peakRssMb = peakRssMb(server.pid);
        }
      } finally {
        await server.stop();
      }
      results.plansBySize.set(size, await explainSearches(s, members));
      if (size === WORKLOAD_SIZE) {
        const plain = await startOurs(s, { AUDIT_ENABLED: 'false' });
        log('  read by id, audit off');
        results.workloads.set('read-plain', await load({ url: `${plain.url}${READ_TARGET}`, headers: authOf(plain.userToken), ...base() }));
        await plain.stop();
        results.startup = await startups(s);
        if (driver === 'postgres') results.scaleOut = await scaleOut(s, members);
      }
    } finally {
      await s.cleanup();
    }
  }
  return results;
}

interface Startup {
  /** Medians of the starts, and the range of startupMs. */
  startupMs: number;
  spawnToReadyMs: number;
  range: [number, number];
  starts: number;
}

/** Start-up moves with the machine's minute, so it is the median of several restarts, as every other figure is. */
async function startups(s: StoreUnderTest, starts = 3): Promise<Startup> {
  const figures: { startupMs: number; spawnToReadyMs: number }[] = [];
  for (let i = 0; i < starts; i++) {
    const restarted = await startOurs(s, { DEMO_MODE: 'false' });
    figures.push({ startupMs: Number(restarted.started.startupMs), spawnToReadyMs: restarted.spawnToReadyMs });
    await restarted.stop();
  }
  const ms = figures.map((f) => f.startupMs);
  return { startupMs: median(ms), spawnToReadyMs: median(figures.map((f) => f.spawnToReadyMs)), range: [Math.min(...ms), Math.max(...ms)], starts };
}

async function ourWorkloads(server: OurServer, members: number, into: Map<string, Figure>): Promise<void> {
  const sys = jsonAuth(server.systemToken);
  log('  read by id, audited');
  into.set('read', await load({ url: `${server.url}${READ_TARGET}`, headers: authOf(server.userToken), ...base() }));
  log('  create');
  into.set('create', await load({ url: `${server.url}/fhir/Patient`, method: 'POST', headers: sys, body: CREATE_BODY, ...base() }));
  log('  update (200 resources, history grows)');
  into.set('update', await load({
    url: server.url, headers: sys, ...base(),
    setupRequest: varied(() => {
      const id = `bench-upd-${random(200)}`;
      return { method: 'PUT', path: `/fhir/Basic/${id}`, body: JSON.stringify({ resourceType: 'Basic', id, code: { text: `v${Date.now()}` } }) };
    }),
  }));
  log('  transaction of 20 entries');
  into.set('transaction', await load({ url: server.url, headers: sys, ...slow(), setupRequest: varied(() => ({ method: 'POST', path: '/fhir', body: transactionBundle() })) }));
  log('  $submit in network');
  into.set('submit-in', await load({ url: server.url, headers: sys, ...slow(), setupRequest: varied(() => ({ method: 'POST', path: '/fhir/ServiceRequest/$submit', body: submitBundle(members, true) })) }));
  log('  $submit, half out of network');
  into.set('submit-mix', await load({ url: server.url, headers: sys, ...slow(), setupRequest: varied(() => ({ method: 'POST', path: '/fhir/ServiceRequest/$submit', body: submitBundle(members, Math.random() < 0.5) })) }));
}

/** EXPLAIN ANALYZE of each search as the server would run it (first page), on the stopped server's store. */
async function explainSearches(s: StoreUnderTest, members: number): Promise<string[]> {
  const store = (await openStore(s.storeConfig, registry)) as SqlFhirStore;
  try {
    const plans: string[] = [];
    for (const search of SEARCHES) {
      const url = new URL(search.ours(members), 'http://x');
      const type = url.pathname.split('/')[2];
      const parsed = parseSearch(type, [...url.searchParams.entries()], registry, { strict: false, baseUrl: 'http://x/fhir' });
      plans.push(`${url.pathname}${url.search}\n${await store.explainSearch(parsed.query)}`);
    }
    return plans;
  } finally {
    await store.close();
  }
}

// ── scale-out: two stateless instances on one PostgreSQL ──────────────────────

interface ScaleOut {
  sameAnswers: boolean;
  crossInstanceReads: boolean;
  counterUpdates: number;
  counterValue: number;
  conflictsRetried: number;
  nodeMsPerRequest: number;
  postgresMsPerRequest: number;
  requests: number;
  rps: number;
}

async function scaleOut(s: StoreUnderTest, members: number): Promise<ScaleOut> {
  log('  scale-out: two instances on one PostgreSQL schema');
  const a = await startOurs(s, { DEMO_MODE: 'false', PORT: '0' });
  const b = await startOurs(s, { DEMO_MODE: 'false', PORT: '0' });
  try {
    const headers = authOf(a.userToken);
    const ids = async (server: OurServer, path: string) => {
      const body = (await (await fetch(`${server.url}${path}`, { headers: authOf(server.userToken) })).json()) as { entry?: { resource: { id: string } }[] };
      return JSON.stringify((body.entry ?? []).map((e) => e.resource.id));
    };
    let sameAnswers = true;
    for (const search of SEARCHES) {
      const path = search.ours(members);
      if ((await ids(a, path)) !== (await ids(b, path))) sameAnswers = false;
    }
    const created = (await (await fetch(`${a.url}/fhir/Patient`, { method: 'POST', headers: jsonAuth(a.systemToken), body: CREATE_BODY })).json()) as { id: string };
    const crossInstanceReads = (await fetch(`${b.url}/fhir/Patient/${created.id}`, { headers: authOf(b.userToken) })).status === 200;

    // Read-modify-write with If-Match from both instances at once: no update may be lost.
    const counter = { resourceType: 'Basic', id: 'bench-counter', code: { text: 'counter' }, extension: [{ url: 'urn:bench:count', valueInteger: 0 }] };
    await fetch(`${a.url}/fhir/Basic/bench-counter`, { method: 'PUT', headers: jsonAuth(a.systemToken), body: JSON.stringify(counter) });
    let updates = 0;
    let conflicts = 0;
    const until = Date.now() + SECONDS * 2000;
    await Promise.all([a, b].flatMap((server) => Array.from({ length: 8 }, async () => {
      while (Date.now() < until) {
        const res = await fetch(`${server.url}/fhir/Basic/bench-counter`, { headers: authOf(server.userToken) });
        const current = (await res.json()) as typeof counter;
        current.extension[0].valueInteger += 1;
        const put = await fetch(`${server.url}/fhir/Basic/bench-counter`, { method: 'PUT', headers: { ...jsonAuth(server.systemToken), 'if-match': res.headers.get('etag') ?? '' }, body: JSON.stringify(current) });
        await put.arrayBuffer();
        if (put.status === 200) updates++;
        else if (put.status === 412 || put.status === 409) conflicts++;
        else throw new Error(`counter update answered ${put.status}`);
      }
    })));
    const final = (await (await fetch(`${a.url}/fhir/Basic/bench-counter`, { headers })).json()) as typeof counter;

    // CPU per request of each tier under a read + search mix spread over both instances.
    const node0 = cpuMs(a.pid) + cpuMs(b.pid);
    const pg0 = postgresCpuMs();
    const mix = (server: OurServer) => load({
      url: server.url, headers: authOf(server.userToken), connections: CONNECTIONS / 2, seconds: SECONDS * 2, runs: 1,
      setupRequest: varied(() => ({ method: 'GET', path: Math.random() < 0.5 ? READ_TARGET : SEARCHES[random(SEARCHES.length)].ours(members) })),
    });
    const [fa, fb] = await Promise.all([mix(a), mix(b)]);
    const requests = fa.requests + fb.requests;
    return {
      sameAnswers,
      crossInstanceReads,
      counterUpdates: updates,
      counterValue: final.extension[0].valueInteger,
      conflictsRetried: conflicts,
      nodeMsPerRequest: (cpuMs(a.pid) + cpuMs(b.pid) - node0) / requests,
      postgresMsPerRequest: (postgresCpuMs() - pg0) / requests,
      requests,
      rps: fa.rps + fb.rps,
    };
  } finally {
    await Promise.all([a.stop(), b.stop()]);
  }
}

// ── the peer and the ceilings ─────────────────────────────────────────────────

interface PeerResults {
  /** The read target as the peer serves it: the JSON the bare ceilings serve. */
  sample: string;
  read: Figure;
  create: Figure;
  searches: Figure[];
}

async function benchPeer(size: number): Promise<PeerResults> {
  const file = join(mkdtempSync(join(tmpdir(), 'so-bench-peer-')), 'data.ndjson');
  await writeNdjson(file, size);
  log(`peer: Medplum FHIR router in memory, ${fmt(size)} resources`);
  const peer = await startChild('bench/peer-medplum.ts', [file], {}, 'peer_started');
  try {
    const members = countsFor(size).members;
    const sample = await (await fetch(`${peer.url}${READ_TARGET}`)).text();
    const read = await load({ url: `${peer.url}${READ_TARGET}`, ...base() });
    const create = await load({ url: `${peer.url}/fhir/Patient`, method: 'POST', headers: { 'content-type': 'application/fhir+json' }, body: CREATE_BODY, ...base() });
    const searches = await searchFigures(peer, {}, members, 'peer');
    return { sample, read, create, searches };
  } finally {
    await peer.stop();
    rmSync(file, { force: true });
  }
}

async function benchCeilings(json: string): Promise<{ express: Figure; http: Figure }> {
  const file = join(mkdtempSync(join(tmpdir(), 'so-bench-sample-')), 'sample.json');
  writeFileSync(file, json);
  const run = async (mode: string) => {
    const server = await startChild('bench/bare.ts', [mode, file], {}, 'bare_started');
    try {
      return await load({ url: `${server.url}/r`, ...base() });
    } finally {
      await server.stop();
    }
  };
  return { express: await run('express'), http: await run('http') };
}

// ── the report ─────────────────────────────────────────────────────────────────

const verdict = (ok: boolean) => (ok ? '**met**' : '**missed**');
/** A median run with answers (a median of zero means most runs got none). */
const answered = (f: Figure) => f.requests > 0 && f.p50 > 0;
const ratio = (a: number, b: number) => (b > 0 ? (a / b).toFixed(2) : 'n/a');

function profileOutput(): string {
  try {
    return execSync(`"${process.execPath}" --import tsx bench/profile.ts`, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  } catch (err) {
    return `bench/profile.ts failed: ${err instanceof Error ? err.message : String(err)}\n`;
  }
}

async function postgresAvailable(): Promise<boolean> {
  const client = new pg.Client({ connectionString: DATABASE_URL, connectionTimeoutMillis: 2000 });
  try {
    await client.connect();
    await client.end();
    return true;
  } catch {
    return false;
  }
}

function versions(): string {
  const psql = (() => {
    try {
      return execSync('psql --version', { encoding: 'utf8' }).trim();
    } catch {
      return 'psql n/a';
    }
  })();
  return `Node ${process.version}; ${psql}; PGlite (PostgreSQL 17 in WASM); @medplum/fhir-router 4.5.2; autocannon 8`;
}

function report(all: DriverResults[], peer: PeerResults, ceilings: { express: Figure; http: Figure }, sampleBytes: number, started: Date, elapsedS: number): string {
  const lines: string[] = [];
  const w = (d: DriverResults, k: string) => d.workloads.get(k)!;
  lines.push(`# Benchmarks

Written by \`npm run bench${FULL ? ' -- --full' : ''}\` on ${started.toISOString()} (${fmt(elapsedS)} s).

Machine: ${cpus().length} × ${cpus()[0]?.model ?? 'CPU'}, ${fmt(totalmem() / 2 ** 30)} GiB. ${versions()}.
Load: autocannon on loopback, ${CONNECTIONS} connections unless noted, each figure the median of ${RUNS} runs of ${SECONDS} s. Every server (ours,
the peer, the bare ceilings) runs as its own process; the load generator shares the 2 cores with it, so the ratios (measured in
the same run) matter more than the absolute numbers. Workloads run at ${fmt(WORKLOAD_SIZE)} generated resources (\`bench/generate.ts\`:
members with Coverage, CareTeam and Condition, professionals with Plan-Net roles, second-opinion cases at every review step) on top
of the demo data. Our server checks a SMART token on every request and writes an AuditEvent for each; the peer does neither.
`);
  lines.push('## Reads, writes and `$submit`\n');
  lines.push(`| workload (${fmt(WORKLOAD_SIZE)} resources) | ${all.map((d) => `${d.driver} req/s | p99 ms`).join(' | ')} | target |`);
  lines.push(`|---|${all.map(() => '---|---').join('|')}|---|`);
  const row = (label: string, key: string, target: (d: DriverResults) => string) =>
    lines.push(`| ${label} | ${all.map((d) => `${fmt(w(d, key).rps)} | ${fmt(w(d, key).p99)}`).join(' | ')} | ${all.map((d) => `${d.driver}: ${target(d)}`).join('; ')} |`);
  row('read by id (Task, SMART token, AuditEvent)', 'read', (d) => `${ratio(w(d, 'read').rps, peer.read.rps)}× peer (≥ 0.6 ${verdict(w(d, 'read').rps >= 0.6 * peer.read.rps)}), ${ratio(w(d, 'read').rps, ceilings.express.rps)}× Express (≥ 0.45 ${verdict(w(d, 'read').rps >= 0.45 * ceilings.express.rps)}), p99 < 20 ms ${verdict(w(d, 'read').p99 < 20)}`);
  row('read by id, auditing off', 'read-plain', (d) => `auditing costs ${fmt(100 * (1 - w(d, 'read').rps / w(d, 'read-plain').rps))}%`);
  row('create Patient (durable, history, audit)', 'create', (d) => `${ratio(w(d, 'create').rps, peer.create.rps)}× peer (≥ 0.5 ${verdict(w(d, 'create').rps >= 0.5 * peer.create.rps)})`);
  row('update (PUT, 200 resources, history)', 'update', (d) => `${ratio(w(d, 'update').rps, w(d, 'create').rps)}× our create (no target set)`);
  row('transaction, 20 entries', 'transaction', (d) => `${fmt(20 * w(d, 'transaction').rps)} entries/s (no target set)`);
  row('`$submit`, in network', 'submit-in', (d) => `≥ ${d.driver === 'pglite' ? 500 : 1000}/s ${verdict(w(d, 'submit-in').rps >= (d.driver === 'pglite' ? 500 : 1000))}, p99 < 50 ms ${verdict(w(d, 'submit-in').p99 < 50)}`);
  row('`$submit`, half out of network', 'submit-mix', (d) => `≥ ${d.driver === 'pglite' ? 500 : 1000}/s ${verdict(w(d, 'submit-mix').rps >= (d.driver === 'pglite' ? 500 : 1000))}, p99 < 50 ms ${verdict(w(d, 'submit-mix').p99 < 50)}`);
  lines.push(`\nReferences in the same run: the peer (Medplum FHIR router, MemoryRepository, Express) read ${fmt(peer.read.rps)}/s (p99 ${fmt(peer.read.p99)} ms), create ${fmt(peer.create.rps)}/s; bare Express 5 serving the same ${fmt(sampleBytes)}-byte Task ${fmt(ceilings.express.rps)}/s (p99 ${fmt(ceilings.express.p99)} ms); bare node:http ${fmt(ceilings.http.rps)}/s.\n`);

  lines.push('## Searches a UM desk runs\n');
  const sizes = [...all[0].searchesBySize.keys()];
  lines.push(`| search | ${all.flatMap((d) => sizes.map((n) => `${d.driver} ${fmt(n / 1000)}k req/s · p50 · p99 ms (server's p99)`)).join(' | ')} | peer (${fmt(WORKLOAD_SIZE / 1000)}k, 1 conn.) req/s | ratio to peer at ${fmt(WORKLOAD_SIZE / 1000)}k (≥ 50) |`);
  lines.push(`|---|${all.flatMap(() => sizes.map(() => '---')).join('|')}|---|---|`);
  SEARCHES.forEach((s, i) => {
    const cells = all.flatMap((d) => sizes.map((n) => {
      const f = d.searchesBySize.get(n)![i];
      return answered(f) ? `${fmt(f.rps)} · ${fmt(f.p50)} · ${fmt(f.p99)} (${f.serverP99 === undefined ? '–' : fmt(f.serverP99)})` : `no answer within ${SECONDS} s`;
    }));
    // No answer within the run: the peer's rate is below one per run, and the ratio at least this.
    const finished = peer.searches[i].requests > 0;
    const peerRps = finished ? peer.searches[i].rps : 1 / PEER_SEARCH.seconds;
    const ratios = all.map((d) => `${d.driver} ${finished ? '' : '> '}${ratio(d.searchesBySize.get(WORKLOAD_SIZE)![i].rps, peerRps)} ${verdict(d.searchesBySize.get(WORKLOAD_SIZE)![i].rps >= 50 * peerRps)}`);
    lines.push(`| ${s.name} | ${cells.join(' | ')} | ${finished ? fmt(peerRps, 2) : `< ${fmt(peerRps, 2)}`} | ${ratios.join('; ')} |`);
  });
  lines.push('\nThe p50 and p99 are autocannon\'s (the median of the runs); in brackets the p99 of the server\'s own timing of the same requests over all runs (its access log: from reading a request to writing the last byte of its answer), which leaves out any wait before the server reads a request.\n');
  lines.push('Targets: p99 under 30 ms at 100k; at 1M no more than 1.5× the 100k latency. The peer has neither our `due` nor Plan-Net\'s `network` search parameter: it runs the closest query it supports (sorted by `authored-on`; specialty without network).\n');
  for (const d of all) {
    const big = d.searchesBySize.get(1_000_000);
    const mid = d.searchesBySize.get(100_000);
    if (mid) lines.push(`- ${d.driver}, p99 under 30 ms at 100k: ${SEARCHES.map((s, i) => `${s.name} ${verdict(mid[i].p99 < 30)}`).join('; ')}.`);
    if (big && mid) {
      const scaling = (i: number) =>
        answered(big[i]) && answered(mid[i]) ? `${ratio(big[i].p50, mid[i].p50)}× ${verdict(big[i].p50 <= 1.5 * mid[i].p50)}` : `no answer within ${SECONDS} s at ${answered(big[i]) ? '100k' : '1M'} ${verdict(false)}`;
      lines.push(`- ${d.driver}, 1M p50 against 100k p50: ${SEARCHES.map((s, i) => `${s.name} ${scaling(i)}`).join('; ')}.`);
    }
  }

  lines.push('\n## Start-up, memory and scale-out\n');
  for (const d of all) {
    if (d.startup) lines.push(`- ${d.driver}: start-up on the existing ${fmt(WORKLOAD_SIZE)}-resource store ${fmt(d.startup.startupMs)} ms from process start to serving (median of ${d.startup.starts} starts, ${fmt(d.startup.range[0])}-${fmt(d.startup.range[1])} ms; ${fmt(d.startup.spawnToReadyMs)} ms from spawn; the bundled server, as \`npm start\` runs it) — target < 1.5 s ${verdict(d.startup.startupMs < 1500)}; peak RSS under the workloads above ${fmt(d.peakRssMb ?? 0)} MB — target < 300 MB ${verdict((d.peakRssMb ?? 0) < 300)}.`);
  }
  const so = all.find((d) => d.scaleOut)?.scaleOut;
  if (so) {
    lines.push(`- Scale-out, two server processes on one PostgreSQL schema: the same answers to the four searches from both ${verdict(so.sameAnswers)}; a create on one is read on the other at once ${verdict(so.crossInstanceReads)}; ${fmt(so.counterUpdates)} read-modify-write updates with If-Match from 16 clients over both instances (${fmt(so.conflictsRetried)} answered 412 and retried) left the counter at ${fmt(so.counterValue)}: no update lost ${verdict(so.counterValue === so.counterUpdates)}.`);
    lines.push(`- CPU per request under a read + search mix over both instances (${fmt(so.requests)} requests, ${fmt(so.rps)}/s): Node ${so.nodeMsPerRequest.toFixed(2)} ms, PostgreSQL ${so.postgresMsPerRequest.toFixed(2)} ms. One core of each tier therefore serves about ${fmt(1000 / so.nodeMsPerRequest)} (Node) and ${fmt(1000 / so.postgresMsPerRequest)} (PostgreSQL) such requests per second; N instances on N cores scale until PostgreSQL's cores are the limit (no speed-up is measured here: the machine has 2 cores shared with the load generator).`);
  }

  lines.push(`\n## Why the missed targets are missed, and what would close them

The verdicts of this run are in the tables above. Every target still missed is bound by CPU: the server, its
database and the load generator share two cores. The figures below were measured outside the benchmark runs (the
dates are those of the entries in [benchmarks-history.md](benchmarks-history.md), which give the evidence):

- **Audited read: 0.6× the peer, 0.45× Express, p99 under 20 ms.** Our read without its AuditEvent runs near the
  peer's rate (the row "auditing off"); the AuditEvent every read must store is the difference. On PGlite the engine
  runs on the thread that serves requests (CPU profile under load: about 28% of the CPU in the AuditEvent, 30% in
  HTTP, 11% in garbage collection). On PostgreSQL each read is also a round trip to a database on the same two cores:
  only the provider directory is cached in the process (kept coherent across instances by LISTEN/NOTIFY); other
  types are read through so that every instance answers the current version. What would close it: the audit trail
  written off the request thread, by an audit repository of its own (IHE BALP). PGlite's audit table in a second
  engine on a worker thread gave about 28% more audited reads at 10k (2026-12-01), but 240 MB more RSS and the SQL
  that joins the audit trail to the records split over two databases; not kept. The p99 follows the rate: 50
  requests in flight wait about 50 / rate seconds each, so 20 ms needs well over 2,500 answers per second.
- **Create: 0.5× the peer.** The peer writes to memory. A create here is validated against R4 (Medplum's validator,
  about 0.1 ms for the benchmark's Patient), indexed, written as a durable row with its history and index rows, and
  audited: about 1.1 ms of CPU per create on PGlite at 10k, of which about 40% in the engine, 13% validating and 6%
  indexing (CPU profile under load, 2026-12-02). 0.5× the peer needs about 0.75 ms. Creates that arrive together
  already share one statement and one commit. What would close it: fewer rows per resource, or the engine off the
  request thread.
- **\`$submit\`: 500/s on PGlite, 1,000/s on PostgreSQL, p99 under 50 ms.** A case takes about 6 SQL statements, a
  lock and one insert of its four resources (the profile below); the rest of its CPU is spread over HTTP, checking
  what was sent, the decision and building the case, none of it over 10% (2026-12-01). About 4.4 ms of Node and
  2.2 ms of PostgreSQL per \`$submit\` (2026-12-01, 10k): 1,000/s needs about 7 cores, and two cores with no load
  generator on them would answer some 300/s. On PGlite about half of 8-12 ms is the engine, which runs one
  transaction at a time. Group-committing whole cases would save about 1 ms of the 8-15. What would close it: more
  cores for the instances and the database than this machine has.
- **Search p99 under 30 ms at 50 connections.** The plans below use indexes only. The p99 is queueing: 50 searches
  in flight at a rate r wait about 50 / r seconds, so 30 ms needs well over 1,700 searches per second from one
  PGlite thread, or from two cores shared with PostgreSQL and the load generator. The server's own p99 (in brackets)
  leaves out the wait before a request is read. What would close it: more cores, or fewer connections per instance.
- **1M within 1.5× of 100k.** The plans at both sizes are the same index walks (below). Where a search goes over
  1.5×, compare the execution times in its plans: on 2026-12-01 the open-Task search on PostgreSQL took 1.78× in
  the run while its plan executed faster at 1M (14.8 against 37.0 ms), and measured again on a new 1M store it
  answered within 1.0× of the run's 100k figure. The machine moves between the phases of a run.
- **PractitionerRole search at 50× the peer.** The peer scans only its PractitionerRoles (about 800 at 100k), fast:
  50× its rate is over 10,000 searches per second, more than this machine answers for any authenticated, audited
  request (see bare Express above).
- **Peak RSS under 300 MB on PGlite.** The engine's WebAssembly memory (128 MB, the least its module accepts) and
  its compiled code are held at rest (337 MB just after start on the 100k store), and V8's heap grows between
  collections under load; on PostgreSQL the figure is Node's heap alone. The server lets V8's old space grow to
  twice what survived each full collection (\`server/src/main.ts\`), which is no cap. What would close it on
  PGlite: fewer allocations per request (the stored JSON served as text). A heap cap
  (\`--max-old-space-size\`) would turn one large request into a crash; PGlite's code kept at V8's baseline tier
  (\`--liftoff-only\`) held about 60 MB less but cost searches 25% more CPU (2026-12-01).
- **Start-up under 1.5 s on PGlite** is met or missed with the machine's speed (1.1-1.7 s in the full runs):
  the work left is on the main thread, opening PGlite (0.6-0.9 s) and loading the modules (0.3 s). V8 already
  compiles WebAssembly lazily (its default).

Evidence: \`npm run bench:profile\` (run at the end of this benchmark, output below) counts the SQL statements of one
\`$submit\` and of one 20-entry transaction, times one AuditEvent, and times the phases of start-up, in one process
with no load generator.

\`\`\`
${profileOutput()}\`\`\`

The measurements behind these bullets, each change made to close a target and what it did, and the runs that
met or missed each target, with dates, are in [benchmarks-history.md](benchmarks-history.md).
`);
  lines.push('\n## Query plans\n');
  for (const d of all) {
    for (const [size, plans] of d.plansBySize) {
      lines.push(`<details><summary>${d.driver}, ${fmt(size)} resources</summary>\n\n\`\`\`\n${plans.join('\n\n')}\n\`\`\`\n</details>\n`);
    }
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const started = new Date();
  await buildServer(); // the server as `npm start` runs it: bundled JavaScript
  const drivers: Driver[] = ['pglite', ...((await postgresAvailable()) ? ['postgres' as const] : [])];
  if (drivers.length === 1) log(`PostgreSQL at ${DATABASE_URL} does not answer: PGlite only`);
  const peer = await benchPeer(WORKLOAD_SIZE);
  log('ceilings: bare Express, bare node:http');
  const ceilings = await benchCeilings(peer.sample);
  const all: DriverResults[] = [];
  for (const driver of drivers) all.push(await benchDriver(driver));
  const doc = report(all, peer, ceilings, Buffer.byteLength(peer.sample), started, (Date.now() - started.getTime()) / 1000);
  writeFileSync(new URL(`../docs/${FULL ? 'benchmarks.md' : 'benchmarks-quick.md'}`, import.meta.url), `${doc}\n`);
  process.stdout.write(`${doc}\n`);
}

main().catch((err) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
