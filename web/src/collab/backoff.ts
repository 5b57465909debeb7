//! Reconnect delays: exponential backoff with "full jitter".
//!
//! When a server restarts, every client it had loses its socket at the same
//! instant. Without jitter they would all come back on the same schedule
//! (200 ms, 400 ms, …) and hit the new process in synchronized waves. Full
//! jitter draws each delay uniformly from [floor, ceiling(attempt)], which
//! spreads the herd over the whole window (see the AWS Architecture Blog,
//! "Exponential Backoff and Jitter"). Pure: the random source is injected so
//! tests can pin it.

export interface BackoffOptions {
  /** Ceiling of the first retry window, in ms. */
  baseMs: number;
  /** No window grows beyond this, in ms. */
  maxMs: number;
  /** Never retry sooner than this, so a flapping server is not hammered. */
  minMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { baseMs: 500, maxMs: 10_000, minMs: 100 };

/** Upper bound of the retry window for the given attempt (0-based). */
export function backoffCeiling(attempt: number, opts: BackoffOptions = DEFAULT_BACKOFF): number {
  const n = Math.max(0, Math.floor(attempt));
  // 2 ** 40 already dwarfs any sane maxMs; clamping the exponent avoids Infinity.
  const exp = opts.baseMs * 2 ** Math.min(n, 40);
  return Math.max(opts.minMs, Math.min(opts.maxMs, exp));
}

/**
 * Delay before reconnect attempt `attempt` (0 = first retry after a drop).
 * `random` must return a number in [0, 1), like Math.random.
 */
export function backoffDelay(
  attempt: number,
  random: () => number = Math.random,
  opts: BackoffOptions = DEFAULT_BACKOFF,
): number {
  const ceiling = backoffCeiling(attempt, opts);
  const r = Math.min(Math.max(random(), 0), 1);
  return Math.round(opts.minMs + r * (ceiling - opts.minMs));
}
