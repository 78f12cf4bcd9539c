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

In short, for each target missed (the bullets after the profile give the evidence and what was changed, with dates):

- **Audited read: 0.6× the peer, 0.45× Express, p99 under 20 ms.** Our read without its AuditEvent comes close to the
  peer's; the AuditEvent every read stores is what lowers the rate on PGlite, whose engine runs on the thread that
  serves requests (a CPU profile under load: about 28% of the CPU in the AuditEvent, 30% in HTTP, 11% in garbage
  collection). On PostgreSQL the read itself costs more (no cache shared between server processes, a round trip
  per read). What would close it: the audit trail off the request thread (an audit repository of its own, or
  PGlite's audit table on a worker thread), and, for a few percent, serving the stored JSON without parsing it again. The
  p99 follows the rate: with 50 requests in flight, 20 ms needs well over 2,500 answers per second.
- **Create: 0.5× the peer.** The peer writes to memory; a create here is a durable row, a history row and index
  rows, validated and audited, in an engine that on PGlite shares the request thread. Creates that arrive together
  already share one statement and one commit. What would close it: fewer rows per resource, or the engine off the
  request thread.
- **\`$submit\`: 500/s on PGlite, 1,000/s on PostgreSQL, p99 under 50 ms.** A case takes about 6 statements on
  either driver (since 2026-12-01 on PostgreSQL too), a lock and one insert; the rest of its CPU is spread over HTTP,
  checking what was sent, the decision and building the case. Probed on 2026-12-01 at 10k: about 4.4 ms of Node and
  2.2 ms of PostgreSQL per \`$submit\`, so two cores with no load generator on them would answer some 300 a second;
  on PGlite about half of 8-12 ms is the engine, which runs one transaction at a time. Group-committing whole
  cases, which this doc named as the way to close it, would save little: one case's four resources took 1.6 ms of
  engine time written alone and 0.6 ms per case in batches of ten, about 1 ms of a \`$submit\`'s 8-15. What would
  close it: more cores for the instances and the database than this machine has, or fewer rows per case.
- **Search p99 under 30 ms at 50 connections.** The plans use indexes only, and the 1M latencies stay within 1.5×
  of the 100k ones; the p99 is 50 clients queueing for one PGlite thread or two shared cores. Until 2026-12-01 PGlite's
  p99 read seconds where the server's own timings stayed under 0.85 s: the first requests of each run waited to be
  accepted (see the search bullet below; fixed that day). In the run of 06:30 that day, the first with the fix,
  autocannon's p99 and the server's own agreed within 0.1 s, and the PractitionerRole search met the target at 100k
  on both drivers (25 and 26 ms); in the run of 10:03 it missed again (50 and 42 ms, the server's own p99 29 and
  26 ms). What would close it: more cores, or fewer connections per instance.
- **1M within 1.5× of 100k (met by every search on both drivers in the run of 2026-12-01 10:03, the
  PractitionerRole search at 1.28× on PGlite and 1.38× on PostgreSQL; missed by PGlite's PractitionerRole search at
  06:30 that day).** Every other search
  met it in that run on both drivers, as every PGlite search did in the full runs of 2026-11-30 and at 04:12 on
  2026-12-01. The PractitionerRole search took 1.55× its 100k p50 on PGlite (1.50× on PostgreSQL): it is answered from
  the search cache at both sizes, and its 1M pages hold more roles (see the search bullet below). In the run of 04:53
  two PGlite searches went over (by patient 1.53×, PractitionerRole 1.61×), measured some 15 minutes after their 100k
  figures on a machine that moved.
- **PractitionerRole search at 50× the peer.** The peer scans only its PractitionerRoles (about 800 at 100k): 50×
  its rate would be some 10,000 searches per second, more than this server answers for any authenticated, audited
  request on two shared cores.
- **Peak RSS under 300 MB.** On PGlite the engine's WebAssembly memory (128 MB, the least its module accepts) and
  compiled code are held at rest (337 MB just after start on the 100k store), and V8's heap grows between
  collections under load; on PostgreSQL the figure is Node's heap alone (met there for the first time on 2026-12-01:
  232 MB). Since 2026-12-01 the server lets V8's old
  space grow to at most twice what survived each full collection (\`server/src/main.ts\`), which is no cap. What
  would close it on PGlite: fewer allocations per request (the stored JSON served as text); a heap cap
  (\`--max-old-space-size\`) would turn one large request into a crash.
- **Start-up under 1.5 s on PGlite** is met or missed with the machine's speed (1.1-1.7 s in the full runs of
  2026-11-30): what remains is work on the main thread (opening PGlite 0.6-0.9 s, loading modules 0.3 s).

Evidence: \`npm run bench:profile\` (run at the end of this benchmark, output below) counts the SQL statements of one
\`$submit\` and of one 20-entry transaction, times one AuditEvent, and times the phases of start-up, in one process
with no load generator.

\`\`\`
${profileOutput()}\`\`\`

- **The load generator (fixed 2026-11-30).** Runs before this date understated every figure of our server. The
  bench reads each server's start line from its standard output, but kept every later log line (our server logs one
  per request) in a string that it split and parsed again on each chunk. The load generator shares its process with
  the bench, so its CPU per request grew through a run: in probes of four 8 s audited reads in a row at 100k its cost
  went from 0.5 to 2.2 ms per request and the rate fell from about 1,650 to 460/s while the server sat idle up to 60%
  of the time; with the log drained unread, four rounds held 1,816 to 1,935/s and the client used 0.07 ms per request. The peer and the
  bare ceilings log nothing per request, so their figures were right. The tests' server helper had the same pattern.
- **Audited reads.** Every read stores an AuditEvent. Until 2026-11-30 the store indexed it like any resource: about
  35 index tokens, then a row, a history row and GIN, B-tree and date-index entries, written in batches of 50 (probed
  on the 100k PGlite store: about 61 µs of JavaScript to build and index it and 416 µs of SQL, of which 131 µs for the
  row, 127 µs for its 42 GIN entries, 85 µs for the history row and 73 µs for the string and date index rows). Since
  then AuditEvents are an append-only table of their own (\`audit_events\`, migration 4): one row each, no history row
  (an AuditEvent never changes; update, patch and delete answer 405), no string or date index rows, a B-tree on when
  it was recorded and a GIN index on the references it holds (patient, agent, entity); its tokens stay in the row as
  filters, and the search SQL of the clinical store runs there unchanged. \`bench:profile\` (above) times one at about
  120 µs, where it was 196 µs. An A/B probe at 10k, 50 connections, one machine, old and new build in turn: 3,203-3,423
  against 3,927-4,342 audited reads/s, 0.31-0.34 against 0.27-0.28 ms of server CPU per read. The unaudited read costs
  0.116 ms and the peer's read 0.100 ms, so auditing still more than doubles a read. Of the 0.155 ms it adds, a CPU
  profile under load puts about 61 µs in PGlite's WebAssembly (the insert: the row, three indexes, the token and
  reference arrays, checking the JSON), 29 µs in PGlite's JavaScript encoding the batch's parameters (each JSON
  document escaped into an array literal, its UTF-8 length counted twice), 11 µs indexing the event and the rest
  building it and collecting garbage. Later that day the 29 µs went: text, JSON and text[] parameters now go to
  PGlite in binary format (their UTF-8 bytes, and text[] as \`array_send\` lays it out; \`server/src/storage/sql/pglite.ts\`),
  where PGlite's text format counted each string's UTF-8 length twice in a JavaScript loop (8 ns a character against
  0.2 for \`Buffer.byteLength\`). A probe storing AuditEvents in batches of 50, on a machine running about 3× slower
  than in the morning's runs, went from 253 to 159 µs of CPU per event (median of 9 interleaved rounds), and an A/B at
  10k with 50 connections from 1,379 to 1,490 audited reads/s (0.79 to 0.745 ms of server CPU per read). The same
  probe puts most of the rest in compressing the row: an audit row (1.1 KB of JSON, 35 tokens) is over PostgreSQL's
  2 KB threshold, and stored uncompressed (\`toast_tuple_target = 8160\`) it cost 121 instead of 169 µs, for 1.62× the
  disk (2.84 against 1.75 KB per event). Not taken: the audit trail is the table that grows fastest. Probed again on the
  evening of 2026-11-30, neither the compression nor any index weighed much: storing AuditEvents in batches of 50 on a
  new PGlite store, two rounds of each, cost 104-128 µs of wall time per event as built, 112-125 without compression,
  105-114 without the GIN index on references, 112-121 without the index on \`last_updated\`, 100-117 with the
  primary key alone; and the server's audited reads at 100k, three interleaved rounds, were 2,371-2,515/s with
  compressed rows against 2,292-2,505/s without. The cost is in building, indexing and inserting each row itself. On this machine (autocannon takes most of the second core) the read's 0.6×
  the peer needs about 0.15 ms of CPU per audited read, so about 35 µs for its AuditEvent, and a table of bare
  columns (id, time, JSON) alone measured 35-45 µs per event on PGlite. What would close it is taking the audit trail
  off the thread that serves requests: an audit record repository of its own (IHE BALP), or PGlite's audit table on a
  worker thread, which needs one message per batch, unlike the whole store (tried, below). Untried.
  The p99 under 20 ms is a matter of rate at 50 connections: 50 requests always in flight wait 50 / rate seconds on
  average (25 ms at 2,000/s; 20 ms at 2,500/s), so a p99 under 20 ms needs well over 2,500 reads/s.
  The machine's speed also moves between minutes, and each workload is measured once per run: the peer read at
  2,658, 3,220, 4,930 and 10,356/s in the full runs of 2026-11-25 11:43 and 2026-11-30 09:17, 10:08 and 12:35, so the
  ratio moves with it; a negative "auditing costs" means the unaudited read, measured minutes later on a restarted
  server, met a slower machine.
  The full run of 2026-11-30 15:04 ran on another machine kind (2 × Intel Xeon; the runs before it on 2 × AMD EPYC),
  slower for every server: the peer read 4,524/s against 10,151 at 13:30, bare Express 5,172 against 13,756. There
  PGlite's audited read reached 0.6× the peer for the first time (2,724/s, 0.602×) and 0.45× Express (0.53×), and
  PostgreSQL's fell to 0.39×. On that machine HTTP weighs more against the rest (the peer read at 0.87× Express,
  against 0.74× at 13:30), which narrows every ratio to the peer; one run at the edge is not a target held, and the
  run to settle it is one on the earlier machine kind.
  The full run at 15:52 met a slower and noisier machine than the one at 15:04 (the same kind): our
  unaudited read fell from 5,911 to 3,400/s and PGlite's start-up rose from 1,002 to 1,680 ms, code paths no change
  between the runs touched, while bare Express rose from 5,172 to 7,675/s. Its ratios are that machine's; the change
  between the two runs (a transaction's creates in one statement) shows in the transaction row, 22 to 58/s on PGlite
  and 42 to 104/s on PostgreSQL. Interleaved A/B probes of the two builds after the run gave \`$submit\` 57-88 against
  63-70/s and audited reads 887-1,773 against 1,229-1,266/s: within that machine's noise, no regression.
  The evening's runs (18:20 and later) ran on 2 × AMD EPYC again, but on slower machines than the AMD EPYC ones of
  the morning: the peer read 4,748-5,035/s and bare Express 5,513-8,263/s (10,151 and 13,756 at 13:30). Two full
  runs of the same build 30 minutes apart (19:46 and 20:16) show how much a run moves:
  PGlite's create 800 and 1,269/s, its \`$submit\` in network 35 and 86/s, PostgreSQL's audited read 2,065 and
  1,533/s, bare Express 5,513 and 8,263/s. The run at 22:53 met the slowest machine of that day: the peer read
  2,629/s and bare Express 3,681/s, and PGlite's writes fell with them (create 621/s, \`$submit\` 46-83/s) while
  PostgreSQL's create reached 0.58× the peer. Its PGlite searches sorted by due had a p99 of 2.1-2.8 s at a p50 near
  0.2 s; interleaved probes at 10k an hour before, of the build without that night's two changes, gave that search a
  p99 of 0.3-3.2 s on the same machine: the tail was there before them.
  The run of 2026-12-01 04:12 met a machine that moved within the hour. The peer read 3,770/s and bare
  Express 5,298/s; PGlite's audited read 1,821/s (0.48× the peer) and PostgreSQL's 1,102/s (0.29×; 0.55× at 22:53),
  PostgreSQL's create 881/s (0.34×; 0.58× at 22:53). Interleaved probes right after the run, at 10k on PostgreSQL,
  three rounds each way, found no regression within that machine's noise: this build against the 22:53 build read
  at 792-870 against 798-1,004/s (1.19-1.29 against 1.01-1.26 ms of server CPU per read) and created 672-705
  against 600-734/s; this build with V8's default heap growth against its own setting read at 736-837 against
  765-869/s. The machine then ran at less than half the rate of an hour before (2,000-2,200 audited reads/s in the
  same probe). The same run put PostgreSQL's peak RSS at 232 MB (341 at 22:53), under 300 MB for the first time,
  and PGlite's at 457 MB (530). Its PostgreSQL PractitionerRole search at 1M went over the 1.5× line (1.88× the
  100k p50; 0.81× at 22:53): both sizes are answered from the search cache, the 1M pages hold 20 roles where the
  100k ones hold a handful, and the two rates (954 and 1,719/s) were measured minutes apart on that machine.
  The run of 04:53, of the same server code with that morning's two date fixes (a letter's date, a
  Coverage's dates), which cost no measurable time, met a still slower machine: the peer read 2,243/s and bare
  node:http answered 17,111/s (3,770 and 28,460 at 04:12). PGlite's audited read reached 0.81× the peer and 0.51×
  Express at 1,826/s (1,821 at 04:12), but its unaudited read, measured minutes later on a restarted server, was no
  faster (1,821/s): the peer's minutes moved the ratio, not the code, and one run at the edge is not a target held.
  PGlite's start-up took 2,040 ms (1,357 at 04:12), and two of its 1M searches went over 1.5× their 100k p50 (by
  patient 1.53×, PractitionerRole 1.61×; 0.98× and 1.14× at 04:12), the 1M figures measured some 15 minutes after
  the 100k ones. The server's own p99, new in this run (in brackets in the search table), was 0.25-0.63 s for the
  searches sorted by due where autocannon's p99 read 0.5-4.2 s.
  The run of 06:30 that day was the first with PostgreSQL's cached directory reads, the checks of what operations are
  sent and PGlite's one statement per turn, on a fast machine: the peer read 8,169/s and bare node:http answered
  75,080/s. Its PGlite searches sorted by due had a p99 of 183-228 ms (server 147-195 ms) where the run of 04:53 read
  2.5-3.9 s. \`$submit\` ran at 163-190/s on PGlite and 331-358/s on PostgreSQL, PGlite started in 731 ms, and the
  audited reads stayed near half the peer's rate (0.49× and 0.47×): on a fast machine the peer gains more than we do.
  The run of 10:03 (above) is the first with that day's security fixes (each resource-level check judged by the
  grants of its own interaction, every reference a $submit brings checked against the caller's access and the
  subject's compartment, review operations checking the case against the token, the R4 JSON and narrative rules in
  validation), on a slower machine: the peer read 4,567/s and bare node:http answered 45,326/s. $submit ran at
  78-118/s on PGlite and 143-157/s on PostgreSQL, 0.017-0.026 and 0.031-0.034 of the peer's read rate, where the run
  of 06:30 gave 0.020-0.023 and 0.041-0.044. Sequential probes in one process right after the run, three rounds
  interleaved with the build of the evening before, found 12.8-14.2 against 12.8-14.5 ms per $submit on PGlite and
  13.8-15.6 against 13.7-14.6 ms on PostgreSQL: the new checks cost a few percent at most; the rest is the machine
  and the run. The audited reads were 0.54× (PGlite) and 0.47× (PostgreSQL) the peer, PGlite started in 1,451 ms
  (met) and every 1M search stayed within 1.5× of its 100k p50. A full run at 09:14 that day, while other work ran
  on the machine (probes of a running server, a rebuild), is not kept: its PGlite $submit read 47-82/s.
  The AuditEvents of reads must also keep up with the reads: until 2026-11-30 the audit writer took one batch at a
  time and let the rest wait in memory, and the full run at 11:37 that day read at 4,792/s on PostgreSQL while its
  audit log fell behind (probed at 100k: after three 5 s rounds 31,200 AuditEvents were still in memory, and RSS
  grew with them, to 864 MB in that run). It now writes up to four batches at a time and makes requests wait before
  answering once 1,000 AuditEvents are unstored (\`server/src/fhir/audit.ts\`): the same probe then stored every
  round's AuditEvents within the round, read at 3,000-3,500/s and peaked at 253 MB. Batches of 100 or 200, or eight
  writers, did no better: PostgreSQL's share of the two cores is the limit. PGlite had kept up (3,600-3,800/s,
  every AuditEvent stored).
  Tried on 2026-11-30 and not kept: PGlite on a worker thread of its own, so that its SQL takes the second core as a
  PostgreSQL server's does. On a freshly started 100k server the audited read went from 3,500-3,700 to 7,300-7,700/s
  (0.17 ms of CPU per read instead of 0.30). But after the other workloads had run on the same server (a sequence
  like this benchmark's, each way on a fresh copy of the store) it read at 3,000-3,400/s against 3,900-4,000/s on
  one thread, \`$submit\` fell from 187-195 to 140-149/s, searches gained 15-45%, and peak RSS grew by about 110 MB
  (a second V8 heap, and every row copied between threads). Statements inside a transaction pay a round trip through
  the server thread's queue while PGlite, which runs one transaction at a time, waits for everyone; waiting for them
  synchronously (Atomics.wait) recovered creates but not \`$submit\`.
- **Unaudited reads against Express.** Each read verifies the token (cached), checks scopes and compartment, parses
  the stored JSON and serializes it again, through three router layers. A CPU profile of unaudited reads at 10k on
  PGlite (2026-12-01, 0.71 ms of server CPU per read in that hour) put 16% of the process's time in writing answers
  to the socket and 10% in Node's HTTP parser, which bare Express pays too, 11% in Express's routing through our
  three layers, and 3% in parsing the stored JSON (parsing and serializing the 1 KB Task again takes about 15 µs).
  Serving the stored text would save a few percent; most of the gap is the routing layers and our per-request checks.
- **Creates, updates, transactions, \`$submit\`.** The peer writes to memory; ours writes a durable row (on PostgreSQL flushed to disk at commit; PGlite writes its files without
  fsync, so its commits survive a killed process but not a power loss: see the README), a history row
  and index rows in one statement (about 2 ms in PGlite, which runs one statement at a time on one core), plus
  validation and the AuditEvent. Creates with server-assigned ids that arrive together are now written together
  (group commit, \`server/src/storage/sql/groupCommit.ts\`): while one batch is being written the next ones wait and go
  in one statement and one commit; probed at 100k with 50 connections, creates went from 173 to 429/s on PGlite and
  from 390 to 657/s on PostgreSQL. Every written version is indexed by its search parameters' expressions; since
  2026-12-01 more of them are evaluated by walking the JSON instead of through FHIRPath (a choice element as the last
  step, casts, value filters such as \`telecom.where(system='email')\`: \`server/src/fhir/search/simplePath.ts\`),
  which took a generated Patient's indexing from 287 to 38 µs in a probe; that day's machine (±40% between runs of
  one build) hid the effect on the create rate. A create inserts first and looks at the current version only if the id is taken, so
  the ids a transaction Bundle assigns to its \`urn:uuid\` entries no longer cost a \`SELECT … FOR UPDATE\` each (before
  this change a 20-entry transaction ran 20 of them beside its 20 inserts); the profile shows what one such
  transaction ran then: one statement per entry. Since later on 2026-11-30 a transaction's plain creates (POST to
  a type, no If-None-Exist, no conditional reference, no create interceptor) run side by side and the store writes
  the creates that reach it together in one statement, inside a savepoint: a taken or repeated id rolls the
  statement back and sends them one at a time, with a single create's 409 or revival
  (\`server/src/fhir/interactions/bundle.ts\`, \`SqlFhirStore.createTogether\`). An A/B at 10k with 50 connections on
  PGlite went from 15-20 to 53-54 transactions/s (61-82 to 24 ms of server CPU each). The 15:52 run checked the ids
  with a probe before the insert instead (the \`SELECT 1\` in its profile, about 1.6 ms); the savepoint and its
  release cost about 0.6 ms and also cover an id another process takes between a probe and the insert. A \`$submit\` writes the case (CoverageEligibilityRequest and Response,
  ServiceRequest, Task, Provenance) in one statement, since 2026-12-01 with an approval's letter and its Communications
  (before, the letter took a statement of its own; the profile counts 5.3 statements per \`$submit\` where it counted 6.2).
  Since 2026-11-30 each server process caches the provider directory's searches (PractitionerRole, Practitioner,
  Location, Organization: \`server/src/storage/sql/searchCache.ts\`; dropped on any write of the type, and on
  PostgreSQL on every process through LISTEN/NOTIFY), so the profile above counts about 7 statements per
  \`$submit\` where it counted 14. Probed at 100k with 50 connections: 100 to 176/s on PGlite (server CPU 11-12.7 to
  6-7 ms per \`$submit\`), 197-235 to 219-278/s on PostgreSQL. What remains is the member's own facts (Patient,
  Coverage, CareTeam, the identifier lookup that makes a resubmission idempotent), the lock, the insert, the
  decision's date arithmetic and HTTP. The deadlines (R9) took about 6% of a \`$submit\`'s server CPU in a profile
  on 2026-12-01, almost all of it Luxon's time-zone arithmetic (25-50 µs a step on this machine): business days are
  now walked as plain calendar dates and elapsed hours added in UTC, 430 to about 190 µs per computation. On PGlite a CPU profile still puts 58% of the server's time in
  the engine, which runs one transaction at a time: 500/s would need about 2 ms of server CPU per \`$submit\`, a
  third of what the engine alone spends. Group-committing whole cases would not close it: probed on 2026-12-01 on
  PGlite, a transaction writing one case's four resources took 1.6 ms, and batches of 2, 5, 10 and 20 cases took
  1.0, 0.9, 0.6 and 0.6 ms per case, a saving of about 1 ms of the 8-15 ms a \`$submit\` costs the server.
  On PostgreSQL a \`$submit\` ran 23 statements until 2026-12-01: without PGlite's cache of current versions every
  read by id went to the database, 11 of them for PractitionerRoles and 3 for Organizations, and the member's Patient
  and Coverage were read twice (to check the request's references, then for the facts). Reads by id of the rarely
  written types (the directory) are now cached under the same rule as their searches (dropped when the process hears
  a write of the type, read through while it cannot hear), and intake reads each referenced resource once: 7
  statements (the run of 06:30 also cached Subscriptions, 6 statements; taken out after it, because one process's
  outbound worker acts on a Subscription's status, which another may have changed a moment before). An A/B at 10k, 50 connections, three
  interleaved rounds: 125-183 against 219-233 \`$submit\`s/s on PostgreSQL, with 5.2-7.9 against 4.4-4.6 ms of
  server CPU and 3.1-4.7 against 2.2-2.4 ms of PostgreSQL's per \`$submit\`; on PGlite 129-146 against 117-176/s,
  the machine's noise. The same day operations began to check what they are sent against R4 (a \`$submit\`
  stored its resources unchecked): about 11% of a \`$submit\`'s Node CPU in a profile on PostgreSQL, 0.5 ms.
  Since the evening of 2026-11-30 the first 200 distinct SQL texts of each connection are named prepared statements
  (\`NAMED_STATEMENTS\`, \`server/src/storage/sql/connection.ts\`): each database session parses them once, and on
  PGlite a run is one call into the engine (bind, describe, execute, sync) where PGlite's \`query\` parsed and
  analysed the text again and called into the engine six times. They are planned for each run's values
  (\`plan_cache_mode = force_custom_plan\`): when PostgreSQL chose a generic plan after five runs, the UM desk's
  sort by due fell from 236 to 61-77 searches/s in a probe. Interleaved A/B probes, 50 connections: at 100k on
  PGlite \`$submit\` went from 81-92 to 99-114/s (server CPU 13.6-14.8 to 10.7-12.3 ms), reads, creates and
  searches unchanged within the machine's noise; at 10k on PostgreSQL the database's CPU per audited read went
  from 0.49-0.63 to 0.39-0.46 ms and per \`$submit\` from 11.4-15.9 to 10.4-13.6 ms (median reads 1,070 to
  1,136/s).
- **Tail latency on PGlite (fixed 2026-11-30).** Until then a \`$submit\` at 50 connections had a p99 of 3-4 s and a
  maximum of 7 s while the server's own log timed every \`$submit\` under 0.3 s from the moment it was read. PGlite
  hands its lock from one waiting statement or transaction to the next in promise callbacks, and Node reads no
  socket until those run out, so under load new requests sat unread in their sockets. Each statement outside a
  transaction, and each transaction, now starts on a new turn of the event loop
  (\`server/src/storage/sql/pglite.ts\`; a test fails without it). Probed at 100k: \`$submit\` p99 3,051 to 718 ms
  (maximum 6.8 s to 0.9 s) for 167 against 188/s, and the sort by due's p99 906 to 431 ms at the same rate.
- **Search latency at 50 connections.** The plans below use indexes only. A sort by \`due\` walks the date index in
  order (Index Scan on sp_date_lo, then Incremental Sort) and stops once the page is full, so it no longer grows with
  the number of matches; \`resources\` is partitioned by type, which gives the planner statistics per type (with one
  table it expected 159 open Tasks where there were 24,949, and sorted them all). A search naming an identifier, a
  reference or an id finds its matches through the index before sorting (the planner, unable to tell that a new
  identifier matches nothing, walked every ServiceRequest in id order: 170 ms at 100k, a third of a \`$submit\`).
  New GIN entries wait in a pending list that every search reads until it is merged; it is now kept to 256 kB and
  merged by VACUUM after bulk loads and, on PGlite, once a table has changed past autovacuum's thresholds (checked every minute; a one-patient search read 200 pages, 8 ms,
  before). PGlite runs with \`random_page_cost = 1.1\`: its files sit in the OS page cache, and at the default of 4
  the planner hashed every Task due date at 100k instead of walking the index (121 ms against 6.9 ms probed one at a
  time; the 10:02 run of 2026-11-25 showed the hash join in its 100k PGlite plan). What remains of the p99 is mostly queueing: 50
  clients waiting on one PGlite thread or two shared cores. Part of the rest was PGlite's statistics refresh, which
  runs on the request thread once a minute (PGlite has no autovacuum): its VACUUM (ANALYZE) of the audit table, one
  statement, held every request for 0.5-0.6 s at 40k-120k AuditEvents, most of it ANALYZE decompressing each sampled
  row's JSON and counting its tokens. Since the night of 2026-11-30 (the run above is the first full run with it) no
  statistics are kept of stored JSON or of the audit trail's tokens and compartments, which no search plans with
  (migration 5), and VACUUM and ANALYZE run as two statements with requests between them: probed on the 10k store
  after each 40k AuditEvents, the longest statement fell from 499-621 to 258-312 ms. The seconds-long p99 of some
  PGlite runs is not the server's handling: on 2026-12-01 the server's own timing of each request (its access log,
  from reading the request to writing the answer's last byte) was set beside autocannon's, sort by due on one 10k
  PGlite server, 50 connections, 8 s runs. In the runs where autocannon's p99 read 0.85 to 6.7 s, the slowest
  request by the server's clock took 0.24 to 0.81 s (over all the runs on one server, 14,102 searches: p50 169 ms,
  p99 433, maximum 448, where autocannon saw maxima of 2.4 to 3.9 s); in the other runs the two agreed within 0.1 s. It happened with autocannon in the benchmark's
  process and as a process of its own, and later that day with wrk. Timing every response by when its request was
  sent found the cause: every request over 0.4 s was the first of its connection, sent as the run began, and a probe
  of the server's \`connection\` events showed the run's 50 connections accepted one every 35-50 ms, over 1.7 s.
  libuv (1.45, in Node 20) accepts one connection per turn of the event loop, and PGlite's lock handed over from
  one waiting statement to the next in promise callbacks, so one turn ran every queued statement (a bare node:http
  server doing 3 ms of work per request shows the same: 50 connections accepted over 3 s). Since then each
  statement outside a transaction waits for a turn of its own once it holds the lock (\`server/src/storage/sql/pglite.ts\`).
  Probed at 10k, sort by due, three interleaved rounds each: the 50 accepts took 81 ms instead of 1.7 s, the p99 fell
  from 486-1,094 to 159-281 ms and the maximum from 1,527-2,056 to 224-378 ms, at the same rate. On PostgreSQL,
  where at most a pool's worth of answers is handled per turn, the same probe saw the 50 accepts over 236 ms and
  a p99 of 92-98 ms. The PractitionerRole search's 1M latency against 100k
  follows the size of its answers, not a scan: the generator's networks grow with the data, so at 1M a query matches
  dozens of roles and returns a full page of 20 where at 100k it matched a handful (in the plans below the 1M page
  reads 21 rows, the 100k one 7); both sizes use the same bitmap scans of the GIN indexes. The PractitionerRole search misses its ratio to the
  peer for another reason: the peer scans only its PractitionerRoles (about 800 at 100k, 80 at 10k, without the network
  condition), so its "linear scan" is a few milliseconds, and 50 times its rate would be some 10,000 searches per
  second, more than this server answers for any authenticated, audited request on two shared cores (see the reads).
  The ratio measures the peer's scan against our index only where the scanned type grows with the data (Tasks,
  ServiceRequests). Since 2026-11-30 repeated directory searches are answered from each process's search cache
  (see \`$submit\`), which the PractitionerRole row shows (1,461 to 6,300/s in a quick run at 10k on PGlite).
  The sort by \`due\` on PostgreSQL was the other near miss: the peer's scan of every Task ran at 2.00/s, 3.09/s and
  4.80/s in the full runs of 2026-11-25 11:43, 2026-11-30 09:17 and 10:08 (ratios on PostgreSQL 52.7, 33.2 and 23.1;
  ours ran at 105, 103 and 111/s). The plans showed why ours was slow: for three of the four business statuses
  PostgreSQL, at its default \`random_page_cost\` of 4, hashed every Task's due date and sorted all matches (6-8 ms at
  100k) instead of walking the date index in order (0.6 ms), and at 100k it added a parallel worker. Every session
  of the server now plans with \`random_page_cost = 1.1\`, as PGlite's did (\`server/src/storage/sql/connection.ts\`):
  a probe at 100k went from 283-302 to 1,085-1,277 searches/s. The remaining cost is a fetch per Task the walk passes
  to test its business status; the UM queue's own B-tree (business status, due) on the Task partition would remove
  it, and with it the PostgreSQL 1M latency's closeness to its 1.5× line (0.91×, 1.48× and 1.52× of the 100k p50 in
  the full runs before this change: the share of matching Tasks is the same at both sizes, so the time per fetch is
  what grows, most likely because fewer of the rows stay in PostgreSQL's 128 MB of shared buffers at 1M).
- **PGlite at 1M in an earlier full run (2026-11-24).** That run got almost no answers from the 1M PGlite server, even to the
  by-patient search that EXPLAIN timed at 5 ms. Probed one request at a time on that store, the sort by \`due\` took
  1.2 to 3.4 s, and a request arriving while the server ran its planned ANALYZE (one statement over the whole
  1M-row table, 10 s after start) waited 6 s. PGlite runs one statement at a time, so 50 connections queued behind
  those, and requests the load generator had given up on still ran, so the next search's requests waited behind them
  too. Fixed: the ordered date-index walk above, and VACUUM ANALYZE table by table (other statements run in
  between), at start only on tables that were never analyzed.
- **Start-up.** The server starts as \`npm start\` runs it: ES modules bundled by esbuild, so no TypeScript is
  compiled at start-up (module loading went from about 1.4 s to 0.6 s in a probe on the 100k PGlite store). The demo
  data and the conformance resources are compared with what is stored a type at a time (one search by \`_id\`) instead
  of one read each; migrations take their lock only when one is pending. The bench restarts each server at the address
  it had before, as a deployment does: a changed public URL rewrites the four criteria Libraries that link to it, and
  those first writes of a cold process took about 0.4 s. Three changes on the evening of 2026-11-30: the server now
  listens (answering 503 with an OperationOutcome until it is ready) before the database opens rather than after.
  With no socket or timer alive, Node drains every background task at each idle turn of its event loop
  (\`NodePlatform::DrainTasks\`, seen with perf), and after PGlite's first statements those tasks are V8's optimizing
  compilations of PGlite's WebAssembly: the first statement of the migrations waited 210-290 ms for them, and 20-30 ms
  once a listening socket kept the loop alive. \`main.ts\` starts opening the database before the rest of the server's
  modules load. And the bundle is split into modules loaded on demand, so that the driver not chosen and its package
  are really not loaded (in one file esbuild had hoisted the imports of both \`pg\` and PGlite to its top). Six
  interleaved pairs of starts on the 100k PGlite store: 1,838-2,114 ms before, 1,503-1,884 after. Then the FHIRPath
  engine and its R4 model (about 0.1 s to load) are loaded the first time a request needs a search parameter's
  expression (to index a write, or to check a patient compartment), and that request pays for it
  (\`server/src/fhir/search/fhirpathEngine.ts\`): six more pairs,
  1,538-1,692 ms before and 1,451-1,560 after. What remains is the main thread's own work, which no reordering
  shortens: about 0.2 s for Node and the configuration (zod), 0.3 s of module loading (zod, Express and jsonwebtoken
  take most of it), 0.6-0.9 s opening PGlite (unpacking its
  6 MB file-system bundle, instantiating the engine, and PostgreSQL's own start-up, where zeroing memory alone took
  150 ms in a profile) and 0.2 s for the migrations check, the conformance comparison and the wiring. Bundling the
  packages as well made no measurable difference in five interleaved pairs of starts, so they stay in node_modules.
  The figure moves with the machine: the same start-up code took 1,487 ms in the full run of 2026-11-25 11:43, 2,082
  ms in that of 2026-11-30 09:17 and 1,673 ms in that of 10:08, and 619 to 792 ms on a quiet machine at 11:00 that day.
- **Memory.** PGlite now runs with 32 MB of shared buffers instead of 128 (its WebAssembly memory never shrinks, and
  the pages it does not hold are one read away in the OS page cache). In an A/B on the 100k store (the four searches,
  then reads, at 50 connections, twice each way) peak RSS was 416-419 MB against 506-531 MB, for 4-8% fewer searches
  and reads per second (cache misses cost a file read through PGlite's file system layer). The rest is V8's heap
  growing between collections: in that probe the heap in use after a major collection stayed about 55 MB while the
  heap grew to 180 MB of short-lived request garbage before the next one. With \`--max-old-space-size=192\` the peak
  was 304 MB at the same throughput, but a hard heap cap turns one large request into a crash, so the server does not
  set it. Since 2026-12-01 it sets V8's heap growing factor instead (\`--heap-growing-percent=100\`: after each full
  collection the old space may grow to twice what survived, where V8 allowed up to four times). Probed at 10k,
  reads, creates, \`$submit\` and searches in turn, interleaved with the previous build: peak RSS on PostgreSQL 230 MB
  where the previous build reached 307, on PGlite 380-390 MB where it reached 436-466, the CPU per request within the machine's noise; a
  factor of 1.2 saved more (197-211 MB on PostgreSQL) but cost 13-25% more CPU per request. PGlite's WebAssembly
  memory cannot be made smaller than 128 MB: its module refuses a smaller initial memory. What would close it: fewer allocations per request (serving the stored JSON text without parsing and
  re-serializing it, and a leaner AuditEvent path); on PostgreSQL the engine's memory is not in the process, so its
  figure (353 MB in the run of 2026-11-25, 469 and 487 MB in those of 2026-11-30) is Node's alone: the later runs, their
  load generator fixed, drove about three times as many reads per second through the server, which leaves more garbage
  between collections. A larger young generation (\`--max-semi-space-size=64\`) raised the PGlite peak by about 100 MB in
  a probe (506-535 against 404-426 MB) for no gain in rate. On PGlite the target is below what the process holds at
  rest: just after start on the 100k store (2026-11-30) RSS was 337 MB, of which 139 MB is the engine's WebAssembly
  memory (V8's "external"), 41 MB the heap after a collection, and most of the rest compiled code. The first start on a
  new data folder held much more: PGlite runs initdb in WebAssembly instances of its own, and an idle server never
  collected them (713 MB RSS at rest after a first \`npm start\`, 268 MB after a restart). A new folder is now
  initialised on a worker thread, whose memory goes when it exits: 392 MB at rest after a first start (the rest is
  the demo data's writes, collected in time).
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
