//! Reconnect scheduling on top of `backoffDelay`.
//!
//! The stock y-websocket provider retries on a fixed exponential schedule
//! without jitter. The session switches that off (it clears
//! `provider.shouldConnect` whenever a socket drops) and asks this scheduler
//! instead. Timers and randomness are injected so tests drive time by hand.

import { backoffDelay, DEFAULT_BACKOFF, type BackoffOptions } from './backoff';

export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const realClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
  clearTimeout: (h) => globalThis.clearTimeout(h as ReturnType<typeof setTimeout>),
};

export class ReconnectScheduler {
  private attempt = 0;
  private handle: unknown = null;

  constructor(
    private readonly connect: () => void,
    private readonly clock: Clock = realClock,
    private readonly random: () => number = Math.random,
    private readonly options: BackoffOptions = DEFAULT_BACKOFF,
  ) {}

  /** Attempts made since the last successful sync. */
  get attempts(): number {
    return this.attempt;
  }

  get pending(): boolean {
    return this.handle !== null;
  }

  /** Schedule the next attempt; returns the Unix ms it will fire at. */
  schedule(): number {
    this.cancel();
    const delay = backoffDelay(this.attempt, this.random, this.options);
    this.attempt += 1;
    this.handle = this.clock.setTimeout(() => {
      this.handle = null;
      this.connect();
    }, delay);
    return this.clock.now() + delay;
  }

  /** A connection synced: the next drop starts from the smallest window again. */
  reset(): void {
    this.attempt = 0;
  }

  cancel(): void {
    if (this.handle !== null) {
      this.clock.clearTimeout(this.handle);
      this.handle = null;
    }
  }
}
