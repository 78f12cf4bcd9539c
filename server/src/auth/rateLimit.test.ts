import { describe, expect, it } from 'vitest';
import { TokenBuckets } from './rateLimit.js';

describe('token-endpoint rate limit buckets', () => {
  it('limits each key to its rate and refills over a minute', () => {
    const b = new TokenBuckets(3, 1000, 0);
    expect([b.take('a', 0), b.take('a', 0), b.take('a', 0), b.take('a', 0)]).toEqual([true, true, true, false]);
    expect(b.take('b', 0)).toBe(true);
    expect(b.take('a', 20_000)).toBe(true);
  });

  it('drops the buckets of addresses not seen for a minute', () => {
    const b = new TokenBuckets(10, 100_000, 0);
    for (let i = 0; i < 1000; i++) b.take(`10.0.${i >> 8}.${i & 255}`, i);
    expect(b.size).toBe(1000);
    b.take('192.0.2.1', 61_000);
    expect(b.size).toBeLessThan(10);
  });

  it('never holds more than maxKeys buckets, however many addresses come within a minute', () => {
    const b = new TokenBuckets(10, 100, 0);
    for (let i = 0; i < 1000; i++) b.take(`k${i}`, 0);
    expect(b.size).toBeLessThanOrEqual(100);
  });
});
