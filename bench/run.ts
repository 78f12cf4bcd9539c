/**
 * `npm run bench`: a first, quick benchmark on loopback. The server runs as a child process
 * (`tsx server/src/main.ts`), autocannon loads it from this process, every figure is the median of
 * three runs, and each comparison is a ratio measured in the same run. Writes docs/benchmarks.md.
 */
import { type ChildProcess, execSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import express from 'express';
import { issueAccessToken } from '../server/src/auth/accessTokens.js';
import { loadSigningKey } from '../server/src/auth/signingKeys.js';

const RUNS = 3;
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const CONNECTIONS = 50;

interface Figure {
  rps: number;
  p99: number;
}

async function load(url: string, headers: Record<string, string> = {}, method: 'GET' | 'POST' = 'GET', body?: string): Promise<Figure> {
  const results: Figure[] = [];
  for (let i = 0; i < RUNS; i++) {
    const r = await autocannon({ url, connections: CONNECTIONS, duration: SECONDS, headers, method, body });
    if (r.non2xx > 0) throw new Error(`${url}: ${r.non2xx} non-2xx answers`);
    results.push({ rps: r.requests.average, p99: r.latency.p99 });
  }
  const median = <T>(xs: T[], f: (x: T) => number) => xs.map(f).sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  return { rps: median(results, (r) => r.rps), p99: median(results, (r) => r.p99) };
}

async function startServer(dataDir: string, env: Record<string, string>): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'server/src/main.ts'], { env: { ...process.env, PORT: '0', DATA_DIR: dataDir, DEMO_MODE: 'true', LOG_LEVEL: 'info', OUTBOX_ENABLED: 'false', ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise<string>((resolve, reject) => {
    let buffer = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      buffer += chunk.toString();
      const m = /"event":"server_started","url":"([^"]+)"/.exec(buffer);
      if (m) resolve(m[1]);
    });
    child.on('exit', (code) => reject(new Error(`server exited with ${code}`)));
  });
  child.stdout!.resume();
  return { url, child };
}

async function bareExpress(body: string): Promise<{ url: string; close(): void }> {
  const app = express();
  app.get('/r', (_req, res) => res.type('application/fhir+json').send(body));
  const server = app.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/r`, close: () => server.close() };
}

async function bareHttp(body: string): Promise<{ url: string; close(): void }> {
  const server = createServer((_req, res) => {
    res.setHeader('content-type', 'application/fhir+json');
    res.end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/r`, close: () => server.close() };
}

async function main(): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), 'so-bench-'));
  const rows: string[] = [];
  try {
    const audited = await startServer(dataDir, { AUDIT_ENABLED: 'true' });
    const key = loadSigningKey(dataDir);
    const token = issueAccessToken({ issuer: audited.url, fhirBase: `${audited.url}/fhir`, key, accessTokenSeconds: 3600 }, { clientId: 'bench', scope: 'user/*.cruds', fhirUser: 'Practitioner/hpsj-md-1', roles: ['plan-admin'] }).token;
    const auth = { authorization: `Bearer ${token}` };
    const patientUrl = `${audited.url}/fhir/Patient/member-hpsj-1`;
    const sample = await (await fetch(patientUrl, { headers: auth })).text();
    const readAudited = await load(patientUrl, auth);
    const search = await load(`${audited.url}/fhir/PractitionerRole?specialty=207RC0000X&active=true`, auth);
    const create = await load(`${audited.url}/fhir/Basic`, { ...auth, 'content-type': 'application/fhir+json' }, 'POST', JSON.stringify({ resourceType: 'Basic', code: { text: 'bench' } }));
    audited.child.kill('SIGTERM');
    await new Promise((r) => audited.child.once('exit', r));
    const plain = await startServer(dataDir, { AUDIT_ENABLED: 'false' });
    const tokenPlain = issueAccessToken({ issuer: plain.url, fhirBase: `${plain.url}/fhir`, key, accessTokenSeconds: 3600 }, { clientId: 'bench', scope: 'user/*.cruds', roles: ['plan-admin'] }).token;
    const readPlain = await load(`${plain.url}/fhir/Patient/member-hpsj-1`, { authorization: `Bearer ${tokenPlain}` });
    plain.child.kill('SIGTERM');
    await new Promise((r) => plain.child.once('exit', r));
    const ex = await bareExpress(sample);
    const bareEx = await load(ex.url);
    ex.close();
    const nh = await bareHttp(sample);
    const bareNode = await load(nh.url);
    nh.close();

    const ratio = (a: Figure, b: Figure) => (a.rps / b.rps).toFixed(2);
    rows.push(
      '| workload (PGlite, 50 connections) | req/s | p99 ms | ratio to bare Express | target |',
      '|---|---|---|---|---|',
      `| read by id, SMART token, AuditEvent per read | ${readAudited.rps.toFixed(0)} | ${readAudited.p99} | ${ratio(readAudited, bareEx)} | ≥ 0.45, p99 < 20 ms: ${readAudited.rps / bareEx.rps >= 0.45 && readAudited.p99 < 20 ? 'PASS' : 'MISS'} |`,
      `| read by id, SMART token, audit off | ${readPlain.rps.toFixed(0)} | ${readPlain.p99} | ${ratio(readPlain, bareEx)} | (cost of auditing: ${(100 * (1 - readAudited.rps / readPlain.rps)).toFixed(0)}%) |`,
      `| search: qualified PractitionerRoles by specialty | ${search.rps.toFixed(0)} | ${search.p99} | ${ratio(search, bareEx)} | p99 < 30 ms: ${search.p99 < 30 ? 'PASS' : 'MISS'} |`,
      `| create (durable, with history and audit) | ${create.rps.toFixed(0)} | ${create.p99} | ${ratio(create, bareEx)} | |`,
      `| bare Express 5, same ${sample.length}-byte JSON | ${bareEx.rps.toFixed(0)} | ${bareEx.p99} | 1.00 | ceiling |`,
      `| bare node:http, same JSON | ${bareNode.rps.toFixed(0)} | ${bareNode.p99} | ${ratio(bareNode, bareEx)} | ceiling |`,
    );
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
  const pg = (() => {
    try {
      return execSync('psql --version', { encoding: 'utf8' }).trim();
    } catch {
      return 'n/a';
    }
  })();
  const doc = `# Benchmarks

Written by \`npm run bench\` (quick mode) on ${new Date().toISOString()}.

Machine: ${cpus().length} × ${cpus()[0]?.model ?? 'CPU'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB; Node ${process.version}; ${pg}; PGlite embedded.
Each figure is the median of ${RUNS} runs of ${SECONDS} s with autocannon (${CONNECTIONS} connections) on loopback; the load generator shares the 2 cores with the server, so ratios measured in the same run matter more than absolute numbers.

${rows.join('\n')}

Not measured yet (issue 8): the Medplum peer, searches at 100k/1M resources with query plans, \`$submit\` throughput, PostgreSQL, start-up time, RSS and scale-out.
`;
  writeFileSync(new URL('../docs/benchmarks.md', import.meta.url), doc);
  process.stdout.write(doc);
}

main().catch((err) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
