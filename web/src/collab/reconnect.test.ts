import { describe, expect, it } from 'vitest';

import { ReconnectScheduler } from './reconnect';
import { ManualClock } from './test-support/fakeServer';

const opts = { baseMs: 500, maxMs: 10_000, minMs: 100 };

describe('ReconnectScheduler', () => {
  it('waits a jittered, growing delay before each attempt', () => {
    const clock = new ManualClock();
    let connects = 0;
    const scheduler = new ReconnectScheduler(() => connects++, clock, () => 0.999999, opts);
    const start = clock.now();
    expect(scheduler.schedule()).toBe(start + 500);
    clock.advance(499);
    expect(connects).toBe(0);
    clock.advance(1);
    expect(connects).toBe(1);
    scheduler.schedule();
    expect(clock.pendingDelays()).toEqual([1000]);
    scheduler.schedule(); // rescheduling replaces, never stacks timers
    expect(clock.pendingDelays()).toEqual([2000]);
    expect(scheduler.attempts).toBe(3);
  });

  it('starts over after reset and does nothing after cancel', () => {
    const clock = new ManualClock();
    let connects = 0;
    const scheduler = new ReconnectScheduler(() => connects++, clock, () => 0.999999, opts);
    scheduler.schedule();
    scheduler.schedule();
    scheduler.reset();
    scheduler.schedule();
    expect(clock.pendingDelays()).toEqual([500]);
    scheduler.cancel();
    expect(scheduler.pending).toBe(false);
    clock.advance(60_000);
    expect(connects).toBe(0);
  });
});
