import { describe, expect, it } from 'vitest';

import { backoffCeiling, backoffDelay, DEFAULT_BACKOFF } from './backoff';

const opts = { baseMs: 500, maxMs: 10_000, minMs: 100 };

describe('backoffCeiling', () => {
  it('doubles per attempt and stops at the maximum', () => {
    expect([0, 1, 2, 3, 4, 5, 6].map((a) => backoffCeiling(a, opts))).toEqual([
      500, 1000, 2000, 4000, 8000, 10_000, 10_000,
    ]);
  });

  it('survives huge, negative and fractional attempts', () => {
    expect(backoffCeiling(10_000, opts)).toBe(10_000);
    expect(backoffCeiling(-3, opts)).toBe(500);
    expect(backoffCeiling(1.7, opts)).toBe(1000);
  });
});

describe('backoffDelay', () => {
  it('spans [minMs, ceiling] as random goes from 0 to 1', () => {
    for (let attempt = 0; attempt < 8; attempt++) {
      expect(backoffDelay(attempt, () => 0, opts)).toBe(opts.minMs);
      expect(backoffDelay(attempt, () => 0.999999, opts)).toBe(backoffCeiling(attempt, opts));
    }
  });

  it('is deterministic for a pinned random source', () => {
    expect(backoffDelay(3, () => 0.5, opts)).toBe(100 + 0.5 * (4000 - 100));
  });

  it('clamps a misbehaving random source into the window', () => {
    expect(backoffDelay(2, () => 7, opts)).toBe(2000);
    expect(backoffDelay(2, () => -1, opts)).toBe(100);
  });

  it('spreads simultaneous clients over the whole window (no thundering herd)', () => {
    // 1000 clients lose the server at once and all are on their 4th attempt.
    let seed = 42;
    const lcg = () => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31);
    const delays = Array.from({ length: 1000 }, () => backoffDelay(3, lcg, opts)).sort((a, b) => a - b);
    const quartile = (q: number) => delays[Math.floor(q * (delays.length - 1))]!;
    // Uniform over [100, 4000]: quartiles near 1075, 2050, 3025.
    expect(quartile(0.25)).toBeGreaterThan(800);
    expect(quartile(0.25)).toBeLessThan(1350);
    expect(quartile(0.5)).toBeGreaterThan(1750);
    expect(quartile(0.5)).toBeLessThan(2350);
    expect(quartile(0.75)).toBeGreaterThan(2700);
    expect(quartile(0.75)).toBeLessThan(3350);
    // No 100 ms bucket holds more than 5% of the clients.
    const buckets = new Map<number, number>();
    for (const d of delays) buckets.set(Math.floor(d / 100), (buckets.get(Math.floor(d / 100)) ?? 0) + 1);
    expect(Math.max(...buckets.values())).toBeLessThanOrEqual(50);
  });

  it('uses sensible defaults', () => {
    expect(DEFAULT_BACKOFF.minMs).toBeGreaterThan(0);
    expect(backoffDelay(0)).toBeGreaterThanOrEqual(DEFAULT_BACKOFF.minMs);
    expect(backoffDelay(100)).toBeLessThanOrEqual(DEFAULT_BACKOFF.maxMs);
  });
});
