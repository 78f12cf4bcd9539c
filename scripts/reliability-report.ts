/**
 * `npm run reliability-report`: writes docs/reliability.md from what the suites recorded in
 * test-results/ (fuzz counts, crash, outage and access figures), so the figures are produced, not typed.
 * Run the suites first (`npm test`, or `npm run soak` for the long fuzz run).
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

type Counts = Record<string, Record<string, number>>;
interface FuzzFile {
  seed: number;
  runsPerProperty: number;
  counts: Counts;
}
type Figures = Record<string, unknown> & { suite: string; key: string; recordedAt: string };

const RESULTS = 'test-results';
const readJson = <T>(file: string): T | undefined => (existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as T) : undefined);
const figures: Figures[] = existsSync(join(RESULTS, 'reliability'))
  ? readdirSync(join(RESULTS, 'reliability')).filter((f) => f.endsWith('.json')).map((f) => readJson<Figures>(join(RESULTS, 'reliability', f))!)
  : [];
const of = (suite: string) => figures.filter((f) => f.suite === suite).sort((a, b) => a.key.localeCompare(b.key));

/** Families that are bookkeeping of the suites, not hostile requests. */
const BOOKKEEPING = ['count', 'setup', 'read', 'alive', 'review-read'];

function fuzzSection(title: string, file: string, what: string): string {
  const data = readJson<FuzzFile>(join(RESULTS, file));
  if (!data) return `## ${title}\n\nNot run yet (\`${file}\` is missing).\n`;
  let requests = 0;
  let fivexx = 0;
  const rows = Object.entries(data.counts)
    .filter(([family]) => !BOOKKEEPING.includes(family))
    .map(([family, statuses]) => {
      const total = Object.values(statuses).reduce((a, b) => a + b, 0);
      const errors = Object.entries(statuses).filter(([s]) => Number(s) >= 500).reduce((a, [, n]) => a + n, 0);
      requests += total;
      fivexx += errors;
      const detail = Object.entries(statuses).sort(([a], [b]) => Number(a) - Number(b)).map(([s, n]) => `${s}×${n}`).join(', ');
      return `| ${family} | ${total} | ${errors} | ${detail} |`;
    });
  return `## ${title}

fast-check seed ${data.seed}, ${data.runsPerProperty} runs per property. ${what}

| endpoint family | requests | 5xx | statuses |
|---|---|---|---|
${rows.join('\n')}
| **all** | **${requests}** | **${fivexx}** | |
`;
}

function table(rows: Figures[], columns: [string, string][]): string {
  if (!rows.length) return 'Not run yet (no figures recorded; the PostgreSQL rows need TEST_DATABASE_URL).\n';
  return [`| ${columns.map(([, label]) => label).join(' | ')} |`, `|${columns.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${columns.map(([key]) => String(r[key] ?? '')).join(' | ')} |`)].join('\n') + '\n';
}

const access = of('access')[0];
const doc = `# Reliability

Written by \`npm run reliability-report\` on ${new Date().toISOString()} from the figures the suites recorded in
\`test-results/\` during their last run. Every suite below runs in \`npm test\` (PostgreSQL rows when
\`TEST_DATABASE_URL\` is set, as in CI); \`npm run soak\` runs the fuzz suites with 2,000 runs per property.

${fuzzSection('Hostile input: FHIR API (`test/fuzz-fhir.test.ts`)', 'fuzz-counts.json', 'Create, update, broken bodies, search parameters (SQL and JSON-path injection, unicode, control characters, impossible dates, timezone edges), JSON Patch, transaction and batch Bundles (`urn:uuid` tricks, reference cycles) and `$submit`. Each answer is a correct success or a 4xx OperationOutcome within 10 s; refused creates, transactions and `$submit` calls leave the counts unchanged; the server answers afterwards.')}
${fuzzSection('Hostile input: review operations and the authorization server (`test/fuzz-auth-review.test.ts`)', 'fuzz-auth-review-counts.json', 'Every review operation (`Task/{id}/$approve` … `$post-report`) with Parameters of any value and shape, hostile ids and If-Match, unreadable, deep and oversized bodies; the token endpoint with arbitrary forms, Basic credentials, control characters, forged and malformed client assertions; the authorize endpoint with control characters and wrong redirect URIs. Refused review actions leave the Task version unchanged and store nothing; the token endpoint answers OAuth JSON and never issues a token; the authorize endpoint never redirects to an unregistered URI.')}
Bugs these suites found, all fixed: NUL in search values and bodies (500, now 400 at the HTTP boundary); a JSON
Patch replacing the document root (500, now 422); Parameters bodies of the wrong shape (500, now 400 from a zod
check); bodies nested thousands deep (stack overflow, now 400 past 64 levels); 15,000 repeated parameters read
in quadratic time (seconds of blocked event loop, now linear); Basic credentials with a bare \`%\` and NUL in OAuth
inputs (500, now \`invalid_client\` / \`invalid_request\`); body-parser errors on \`/auth\` answered as HTML with a stack
trace (now OAuth JSON); a stale If-Match on a review action answered 409 (now 412).

## Races and idempotency

- \`test/fhir-api.test.ts\`, both drivers: three rounds of 10 parallel \`If-Match\` updates of one Task (one 200 per round, nine 412 OperationOutcomes, history holds versions 1-4); 8 parallel conditional creates with the same criteria make one resource.
- \`test/storage.test.ts\`: 12 parallel PUTs creating one new id, five rounds, both drivers: all succeed with versions 1-12 and twelve history rows (on PostgreSQL this was a 500, found by the benchmark: the loser's INSERT now becomes an update).
- \`test/submit-workflow.test.ts\`: six parallel \`$submit\` of one request: one 201, every answer names the same single case.
- \`test/review-workflow.test.ts\`: approve and deny of one case in parallel by two reviewers: one 200, one 409; a stale If-Match is 412.
- The benchmark's scale-out run (\`npm run bench\`): read-modify-write with If-Match from two server processes on one PostgreSQL loses no update.

## Crashes and restarts

SIGKILL of \`server/src/main.ts\` after 1.5 s of six clients writing single creates and 5-entry transaction
Bundles (\`test/crash-writes.test.ts\`); then a restart on the same data folder or schema:

${table(of('sigkill'), [['key', 'store'], ['writesAttempted', 'writes attempted'], ['writesAcknowledged', 'acknowledged'], ['acknowledgedFoundAfterRestart', 'acknowledged found after restart'], ['transactionsAttempted', 'transactions attempted'], ['halfTransactionsFound', 'half transactions found']])}
The PGlite folder reopens without repair in every run. \`test/outbound-crash.test.ts\` kills the server between a
case's write and its delivery: after restart the outbox resumes and the provider receives the letter exactly once.
\`test/shutdown.test.ts\`: SIGTERM during 40 parallel writes answers the requests in flight (no 5xx), exits 0, and
every acknowledged write is stored.

## PostgreSQL outages under load (\`test/pg-outage.test.ts\`)

Eight clients create and read for about 3 s while the database goes away: the network to it is cut for 1.2 s
through a TCP proxy (connections reset, new ones refused), or PostgreSQL terminates the server's sessions four
times (\`pg_terminate_backend\`, SQLSTATE 57P01). Every answer must be 200/201 or 503 with \`Retry-After\` and a
\`transient\` OperationOutcome; the server recovers without a restart; every acknowledged write is there; the
AuditEvents of the acknowledged requests are written once the database is back.

The CapabilityStatement is served through an outage: \`/metadata\` (every mode, \`_summary\`, \`_elements\`, ETag) and
the reads of \`CapabilityStatement/server\` and \`TerminologyCapabilities/server\` read the store as any read does, and
while it answers 503 they answer with the statement as last read from it (each process reads both at start, after
publishing them, so a process that has started has one). A server starting while the database is away has nothing to
serve it from: it answers every request, \`/metadata\` too, with 503 and \`Retry-After\` while it opens the database,
and its start fails if the database cannot be reached (the process exits, for its supervisor to start it again). That
is deliberate: the statement's version and date are the stored ones, and one made up without the store could differ
from what clients read a moment later. The suite cuts the network and reads \`/metadata\` during the cut.

${table(of('pg-outage'), [['key', 'scenario'], ['requests', 'requests'], ['answered2xx', '2xx'], ['unavailable503WithRetryAfter', '503 + Retry-After'], ['otherStatuses', 'other statuses'], ['writesAcknowledged', 'writes acknowledged'], ['acknowledgedFoundAfterRecovery', 'found after recovery']])}
Bugs this suite found, fixed: an error emitted by a checked-out \`pg\` client whose server went away ended the
process (uncaught \`error\` event); "Client has encountered a connection error and is not queryable" answered 500;
audit batches written during the outage were dropped (now kept, up to 20,000, and retried).

## Access attempts (\`test/access-attempts.test.ts\`, with \`test/auth-security.test.ts\`)

${access ? `${access.attempts} attempts in ${access.categories} categories that must be refused: ${access.refusedWith4xx} refused with 400/401/403 or a 404 that hides what exists, ${access.answered200WithNothingOfTheTarget} answered 200 with nothing of the target (searches filtered to the caller's compartment, batches whose entries were each refused, a CORS preflight without \`Access-Control-Allow-Origin\`). Each row checks the status, that none of the target's data came back, and that nothing changed (counts of eleven resource types and the versions of the target's records). ${access.failureAuditEventsForValidTokens} refusals of valid tokens were each found in the AuditEvent log as failures by token id; ${access.loginFailureAuditEvents} DICOM Login failure AuditEvents were written for the refusals before authentication (bad tokens, the authorization server).` : 'Not run yet.'}

Categories: missing, expired, future (\`nbf\`, \`iat\`), tampered, \`alg: none\`, wrong-audience and wrong-issuer tokens;
replayed client assertions; PKCE mismatch; redirect-URI mismatch; scope escalation at refresh; a patient token
reading another patient by id, by search, by \`_include\`/\`_revinclude\`, inside batch and transaction Bundles and
through operations; a member reading another member's letters; a UM clinician denying; a second-opinion
professional posting a report on a case not theirs; another plan's staff acting on a case; writes with read-only
scopes; system tokens without system scopes; CORS from an unregistered origin.

Bugs this suite found, fixed: a token issued in the future (\`iat\`) was accepted; \`$answer-info\` by a member not
party to the case revealed the case's step (409 before 403); refused tokens and OAuth endpoint refusals left no
AuditEvent; refused batch entries were not audited; staff of one plan could act on another plan's cases.
`;
writeFileSync('docs/reliability.md', doc);
process.stdout.write(doc);
