/** A Map that keeps at most `capacity` entries, dropping the least recently read or written. */
export class LruMap<K, V> {
  private readonly entries = new Map<K, V>();

  constructor(private readonly capacity: number) {}

  get(key: K): V | undefined {
    if (!this.entries.has(key)) return undefined;
    const value = this.entries.get(key) as V;
    this.entries.delete(key);
    this.entries.set(key, value); // most recently used last
    return value;
  }

  set(key: K, value: V): void {
    this.entries.delete(key);
    this.entries.set(key, value);
    if (this.entries.size > this.capacity) this.entries.delete(this.entries.keys().next().value as K);
  }

  delete(key: K): void {
    this.entries.delete(key);
  }

  /** Drops every entry `drop` says to (all of them without it). */
  clear(drop: (value: V) => boolean = () => true): void {
    for (const [key, value] of this.entries) if (drop(value)) this.entries.delete(key);
  }
}
