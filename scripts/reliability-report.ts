/**
 * `npm run reliability-report`: writes docs/reliability.md from what the suites recorded in
 * test-results/ (fuzz counts), so the figures are produced, not typed.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';

const file = 'test-results/fuzz-counts.json';
if (!existsSync(file)) {
  process.stderr.write(`${file} is missing: run the fuzz suite first (npx vitest run test/fuzz-fhir.test.ts)\n`);
  process.exit(2);
}
const { seed, runsPerProperty, counts } = JSON.parse(readFileSync(file, 'utf8')) as { seed: number; runsPerProperty: number; counts: Record<string, Record<string, number>> };
const families = Object.entries(counts).filter(([k]) => !['count', 'setup', 'read', 'alive'].includes(k));
const rows = families.map(([family, statuses]) => {
  const total = Object.values(statuses).reduce((a, b) => a + b, 0);
  const fivexx = Object.entries(statuses).filter(([s]) => Number(s) >= 500).reduce((a, [, n]) => a + n, 0);
  const detail = Object.entries(statuses).sort(([a], [b]) => Number(a) - Number(b)).map(([s, n]) => `${s}×${n}`).join(', ');
  return `| ${family} | ${total} | ${fivexx} | ${detail} |`;
});
const doc = `# Reliability

Written by \`npm run reliability-report\` on ${new Date().toISOString()} from \`${file}\`.

## Hostile input (\`test/fuzz-fhir.test.ts\`, fast-check seed ${seed}, ${runsPerProperty} runs per property)

Each request must answer with a correct success or a 4xx OperationOutcome (never a 5xx or a hang past
10 s); refused creates, transactions and \`$submit\` calls must leave the resource counts unchanged; the
server must still answer afterwards.

| endpoint family | requests | 5xx | statuses |
|---|---|---|---|
${rows.join('\n')}

Bugs the suite found and that are fixed: a NUL character in a search value or a body reached
PostgreSQL and answered 500 (now 400 at the HTTP boundary); a JSON Patch replacing the document root
answered 500 (now 422).

## Other suites
- Access attempts: \`test/auth-security.test.ts\` (30 refusals, each checked for status, nothing returned or changed, and an AuditEvent failure record).
- Races: \`test/fhir-api.test.ts\` (50 parallel If-Match updates, conditional-create races), \`test/submit-workflow.test.ts\` (duplicate \`$submit\`), \`test/review-workflow.test.ts\` (approve vs deny).
- Crash: \`test/outbound-crash.test.ts\` (SIGKILL of the server between write and send; PGlite folder reopens; delivered once).
- Shutdown: \`test/shutdown.test.ts\` (SIGTERM during 40 parallel writes: no 5xx, exit 0, every acknowledged write stored).

Not yet: PostgreSQL connection drops under load, a SIGKILL write-load suite on both drivers.
`;
writeFileSync('docs/reliability.md', doc);
process.stdout.write(doc);
