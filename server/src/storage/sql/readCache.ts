/**
 * Current-version cache for a store that has exactly one writer process (embedded PGlite).
 * Writes invalidate; a read fills the cache only if no write happened while it ran (the epoch
 * check), so a slow read never puts back a version older than the one just written.
 */
export class ReadCache {
  private readonly entries = new Map<string, string | null>();
  private epoch = 0;

  constructor(private readonly capacity: number) {}

  get(key: string): string | null | undefined {
    const hit = this.entries.get(key);
    if (hit === undefined) return undefined;
    this.entries.delete(key);
    this.entries.set(key, hit); // most recently used last
    return hit;
  }

  /** Marks the start of a read; pass the result to `fill`. */
  begin(): number {
    return this.epoch;
  }

  /** `null` records "deleted" (410). */
  fill(key: string, value: string | null, startedAt: number): void {
    if (startedAt !== this.epoch) return;
    this.entries.set(key, value);
    if (this.entries.size > this.capacity) this.entries.delete(this.entries.keys().next().value as string);
  }

  invalidate(key: string): void {
    this.epoch++;
    this.entries.delete(key);
  }
}
