import { describe, expect, it } from 'vitest';

import { deriveSaveState, initialSyncState, reduceSync, saveStateLabel, type SyncEvent, type SyncState } from './saveState';

const run = (events: SyncEvent[], from: SyncState = initialSyncState) => events.reduce(reduceSync, from);
const kind = (s: SyncState) => deriveSaveState(s).kind;

const handshake: SyncEvent[] = [{ type: 'connecting' }, { type: 'open' }, { type: 'synced' }, { type: 'sent', subtype: 1 }];

describe('save state machine', () => {
  it('starts as connecting, then saving until the handshake is acked', () => {
    expect(kind(initialSyncState)).toBe('connecting');
    expect(kind(run([{ type: 'connecting' }]))).toBe('connecting');
    expect(kind(run([{ type: 'connecting' }, { type: 'open' }]))).toBe('saving');
    // Server's SyncStep2 arrived but our reply has not gone out yet.
    expect(kind(run([{ type: 'connecting' }, { type: 'open' }, { type: 'synced' }]))).toBe('saving');
    const s = run(handshake);
    expect(kind(s)).toBe('saving');
    expect(kind(run([{ type: 'ack', count: 1 }], s))).toBe('saved');
  });

  it('shows saving while an edit is in flight and saved once it is durable', () => {
    let s = run([...handshake, { type: 'ack', count: 1 }]);
    s = run([{ type: 'sent', subtype: 2 }, { type: 'local-change', socketCanCarry: true }], s);
    expect(kind(s)).toBe('saving');
    s = run([{ type: 'sent', subtype: 2 }], s);
    s = run([{ type: 'ack', count: 2 }], s);
    expect(kind(s)).toBe('saving'); // one of two edits still pending
    s = run([{ type: 'ack', count: 3 }], s);
    expect(kind(s)).toBe('saved');
    expect(saveStateLabel(deriveSaveState(s))).toBe('All changes saved');
  });

  it('never claims more than was sent, and acks never go backwards', () => {
    let s = run([...handshake, { type: 'ack', count: 5 }]);
    expect(s.acked).toBe(1);
    s = run([{ type: 'sent', subtype: 2 }, { type: 'ack', count: 0 }], s);
    expect(s.acked).toBe(1);
    expect(kind(s)).toBe('saving');
  });

  it('counts per socket: a new socket starts from zero and ignores stale acks', () => {
    let s = run([...handshake, { type: 'sent', subtype: 2 }, { type: 'closed' }]);
    expect(kind(s)).toBe('offline');
    s = run([{ type: 'ack', count: 2 }], s); // late frame from the dead socket
    expect(s.acked).toBe(0);
    s = run([{ type: 'connecting' }, { type: 'open' }], s);
    expect([s.sent, s.acked, s.synced, s.handshakeSent]).toEqual([0, 0, false, false]);
  });

  it('keeps offline edits pending until a SyncStep2 carries them and is acked', () => {
    let s = run([...handshake, { type: 'ack', count: 1 }, { type: 'closed' }]);
    s = run([{ type: 'local-change', socketCanCarry: false }], s);
    expect(s.unsentLocal).toBe(true);
    expect(saveStateLabel(deriveSaveState(s))).toBe('Offline — changes kept on this device');
    s = run([{ type: 'connecting' }, { type: 'open' }, { type: 'synced' }], s);
    expect(kind(s)).toBe('saving');
    s = run([{ type: 'sent', subtype: 2 }, { type: 'ack', count: 1 }], s);
    expect(kind(s)).toBe('saving'); // an Update alone does not cover the offline edit
    s = run([{ type: 'sent', subtype: 1 }], s);
    expect(s.unsentLocal).toBe(false);
    s = run([{ type: 'ack', count: 2 }], s);
    expect(kind(s)).toBe('saved');
  });

  it('ignores sends and syncs reported while no socket is open', () => {
    const s = run([{ type: 'sent', subtype: 2 }, { type: 'synced' }]);
    expect(s).toEqual(initialSyncState);
  });

  it('says offline when the network is down, even before the first connect', () => {
    const s = run([{ type: 'network', online: false }]);
    expect(kind(s)).toBe('offline');
    expect(kind(run([{ type: 'retry-scheduled', at: 5 }]))).toBe('offline');
  });

  it('lets a refusal win over everything until it is cleared', () => {
    const error = { code: 'deleted' as const, message: 'This document was deleted or does not exist.', retryable: false };
    let s = run([...handshake, { type: 'ack', count: 1 }, { type: 'error', error }]);
    expect(deriveSaveState(s)).toEqual({ kind: 'error', error });
    expect(saveStateLabel(deriveSaveState(s))).toBe(error.message);
    s = run([{ type: 'clear-error' }], s);
    expect(kind(s)).toBe('saved');
  });

  it('returns the same object for no-op events', () => {
    const s = run(handshake);
    expect(reduceSync(s, { type: 'local-change', socketCanCarry: true })).toBe(s);
  });
});
