/**
 * `npm run bench:profile`: where the time of one request goes, measured in this process on an
 * embedded PGlite store with the demo data (no load generator competing for the cores). Prints the
 * SQL statements a `$submit` runs, the cost of one AuditEvent (indexing and writing), and the
 * phases of start-up. The evidence behind the "why" column of docs/benchmarks.md.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import type { Resource } from 'fhir/r4.js';
import type { SqlConnection } from '../server/src/storage/sql/connection.js';
import { submissionFor, transactionBundle } from './generate.js';

const statements = new Map<string, { count: number; ms: number }>();
let counting = false;

/** The server's database connection, counting and timing every statement it runs (inside transactions too). */
function counted(conn: SqlConnection): SqlConnection {
  const wrapper: SqlConnection = {
    get inTransaction() {
      return conn.inTransaction;
    },
    changes: conn.changes,
    async query(sql, params) {
      const started = performance.now();
      try {
        return await conn.query(sql, params);
      } finally {
        if (counting) {
          const kind = sql.replace(/\s+/g, ' ').trim().slice(0, 60);
          const s = statements.get(kind) ?? { count: 0, ms: 0 };
          s.count++;
          s.ms += performance.now() - started;
          statements.set(kind, s);
        }
      }
    },
    transaction: (fn) => conn.transaction((tx) => fn(tx === conn ? wrapper : counted(tx))),
    close: () => conn.close(),
  };
  return wrapper;
}

const t0 = performance.now();
const lap = (label: string, since: number) => `${label.padEnd(44)} ${(performance.now() - since).toFixed(0).padStart(6)} ms`;
const { buildParts } = await import('../server/src/compose.js');
const modulesLoaded = performance.now();
const { fromEnv, EnvSchema } = await import('../server/src/config.js');
const { startServer } = await import('../server/src/server.js');
const { openConnection } = await import('../server/src/storage/connect.js');
const { createLogger } = await import('../server/src/log.js');
const { issueAccessToken } = await import('../server/src/auth/accessTokens.js');
const { loadSigningKey } = await import('../server/src/auth/signingKeys.js');
const { toAuditEvent } = await import('../server/src/fhir/audit.js');
const { Indexer } = await import('../server/src/fhir/search/indexer.js');
const { createResourceValidator } = await import('../server/src/fhir/resourceValidator.js');
const { readConformanceResources } = await import('../server/src/fhir/conformance.js');

const out: string[] = ['Start-up phases (this process):', lap('  loading the modules (tsx compiles TypeScript)', t0)];
let t = performance.now();
const probeDir = join(mkdtempSync(join(tmpdir(), 'so-profile-probe-')), 'pg');
await (await PGlite.create(probeDir)).close();
out.push(lap('  PGlite.create of a new folder (initdb)', t));
t = performance.now();
await (await PGlite.create(probeDir)).close();
out.push(lap('  PGlite.create of that existing folder', t));
t = performance.now();
const validator = createResourceValidator(readConformanceResources().filter((r) => r.resourceType === 'StructureDefinition') as never);
out.push(lap('  the resource validator, created', t));
t = performance.now();
validator.validate({ resourceType: 'Patient', name: [{ family: 'First' }] } as Resource);
out.push(lap('  its first validation (R4 types and Patient indexed)', t));

const dataDir = mkdtempSync(join(tmpdir(), 'so-profile-'));
const config = fromEnv(EnvSchema.parse({ PORT: '0', HOST: '127.0.0.1', DATA_DIR: dataDir, DEMO_MODE: 'true', OUTBOX_ENABLED: 'false', LOG_LEVEL: 'silent' }));
t = performance.now();
const server = await startServer(config, buildParts, createLogger('silent'), openConnection(config.store).then(counted));
out.push(lap('  startServer on a new data folder, demo data', t));
const token = issueAccessToken({ issuer: server.url, fhirBase: server.fhirBase, key: loadSigningKey(dataDir), accessTokenSeconds: 3600 }, { clientId: 'profile', scope: 'system/*.cruds', roles: [] }).token;
const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/fhir+json' };
const submission = () => submissionFor('member-hpsj-1', 'hpsj', true);
const submit = async () => {
  const res = await fetch(`${server.fhirBase}/ServiceRequest/$submit`, { method: 'POST', headers, body: submission() });
  if (res.status !== 201) throw new Error(`$submit answered ${res.status}: ${await res.text()}`);
  await res.arrayBuffer();
};
const read = async () => (await fetch(`${server.fhirBase}/Patient/member-hpsj-1`, { headers })).arrayBuffer();
const perOp = async (n: number, op: () => Promise<unknown>, warmUps = 10) => {
  for (let i = 0; i < warmUps; i++) await op();
  const started = performance.now();
  for (let i = 0; i < n; i++) await op();
  return (performance.now() - started) / n;
};

/** Times `n` sequential runs of `op` (after ten to warm up) and lists the SQL statements one run takes. */
async function statementBreakdown(title: string, n: number, op: () => Promise<unknown>): Promise<string[]> {
  for (let i = 0; i < 10; i++) await op();
  statements.clear();
  counting = true;
  const ms = await perOp(n, op, 0);
  counting = false;
  const all = [...statements.values()];
  const perRun = (x: number) => (x / n).toFixed(1);
  const lines = [`${title}: ${ms.toFixed(1)} ms, ${perRun(all.reduce((a, s) => a + s.count, 0))} SQL statements taking ${perRun(all.reduce((a, s) => a + s.ms, 0))} ms:`];
  for (const [kind, s] of [...statements.entries()].sort((a, b) => b[1].ms - a[1].ms).slice(0, 8)) {
    lines.push(`  ${perRun(s.count).padStart(5)} × ${(s.ms / s.count).toFixed(2)} ms  ${kind}`);
  }
  return lines;
}

out.push('', ...(await statementBreakdown('One $submit (in network, sequential, client in this process)', 100, submit)));
const transaction = async () => {
  const res = await fetch(server.fhirBase, { method: 'POST', headers, body: transactionBundle() });
  if (res.status !== 200) throw new Error(`transaction answered ${res.status}: ${await res.text()}`);
  await res.arrayBuffer();
};
out.push('', ...(await statementBreakdown('One transaction of 20 POSTs (sequential)', 30, transaction)));
out.push('', `One read by id, sequential, with its AuditEvent: ${(await perOp(2000, read)).toFixed(2)} ms`);

const registry = server.ctx.registry;
const indexer = new Indexer(registry);
const event = () => toAuditEvent({ interaction: 'read', resourceType: 'Patient', id: 'member-hpsj-1', status: 200, patient: 'Patient/member-hpsj-1', auth: { kind: 'user', clientId: 'app', scopes: ['user/*.rs'], fhirUser: 'Practitioner/hpsj-md-1', roles: ['plan-admin'], tokenId: randomUUID() } }, new Date());
t = performance.now();
for (let i = 0; i < 5000; i++) indexer.index(event());
const indexUs = ((performance.now() - t) / 5000) * 1000;
const sample = indexer.index(event());
t = performance.now();
for (let i = 0; i < 20; i++) await server.store.createMany(Array.from({ length: 50 }, event) as Resource[]);
const writeUs = ((performance.now() - t) / 1000) * 1000;
out.push(`One AuditEvent: ${sample.tokens.length} index tokens; indexing ${indexUs.toFixed(0)} µs; stored in batches of 50 ${writeUs.toFixed(0)} µs including indexing`);

await server.close();
process.stdout.write(`${out.join('\n')}\n`);
