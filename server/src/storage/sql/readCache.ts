import { LruMap } from './lru.js';

/**
 * Current-version cache for a store that has exactly one writer process (embedded PGlite).
 * Writes invalidate; a read fills the cache only if no write happened while it ran (the epoch
 * check), so a slow read never puts back a version older than the one just written.
 */
export class ReadCache {
  private readonly entries: LruMap<string, string | null>;
  private epoch = 0;

  constructor(capacity: number) {
    this.entries = new LruMap(capacity);
  }

  get(key: string): string | null | undefined {
    return this.entries.get(key);
  }

  /** Marks the start of a read; pass the result to `fill`. */
  begin(): number {
    return this.epoch;
  }

  /** `null` records "deleted" (410). */
  fill(key: string, value: string | null, startedAt: number): void {
    if (startedAt === this.epoch) this.entries.set(key, value);
  }

  invalidate(key: string): void {
    this.epoch++;
    this.entries.delete(key);
  }
}
