import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const RESULTS_DIR = 'test-results/reliability';

/** Figures a reliability suite measured, for scripts/reliability-report.ts to put in docs/reliability.md. */
export function recordResult(suite: string, key: string, figures: Record<string, unknown>): void {
  mkdirSync(RESULTS_DIR, { recursive: true });
  writeFileSync(join(RESULTS_DIR, `${suite}-${key}.json`), JSON.stringify({ suite, key, recordedAt: new Date().toISOString(), ...figures }, null, 2));
}
