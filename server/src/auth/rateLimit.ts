import type { Request, Response } from 'express';

/**
 * Token buckets per key (a client address), refilled continuously to `perMinute`. A bucket left alone
 * for a minute is full again, the same as no bucket: such buckets are dropped once a minute, and the
 * oldest are dropped past `maxKeys`, so the map stays bounded whatever the number of addresses.
 */
export class TokenBuckets {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private prunedAt: number;

  constructor(
    private readonly perMinute: number,
    private readonly maxKeys = 100_000,
    now = Date.now(),
  ) {
    this.prunedAt = now;
  }

  /** Takes one token for `key`; false when its bucket is empty. */
  take(key: string, now = Date.now()): boolean {
    this.prune(now);
    const b = this.buckets.get(key) ?? { tokens: this.perMinute, at: now };
    b.tokens = Math.min(this.perMinute, b.tokens + ((now - b.at) / 60_000) * this.perMinute);
    b.at = now;
    this.buckets.delete(key); // re-inserted last: the map's order is least recently used first
    this.buckets.set(key, b);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  get size(): number {
    return this.buckets.size;
  }

  private prune(now: number): void {
    if (now - this.prunedAt >= 60_000) {
      this.prunedAt = now;
      for (const [key, b] of this.buckets) if (now - b.at >= 60_000) this.buckets.delete(key);
    }
    while (this.buckets.size >= this.maxKeys) this.buckets.delete(this.buckets.keys().next().value as string);
  }
}

/** The token endpoint's limit per client address (in-process; each instance limits on its own). */
export function rateLimit(perMinute: number) {
  const buckets = new TokenBuckets(perMinute);
  return (req: Request, res: Response, next: () => void): void => {
    if (buckets.take(req.ip ?? 'unknown')) return next();
    res.setHeader('Retry-After', '10');
    res.status(429).json({ error: 'slow_down', error_description: 'Too many token requests' });
  };
}
