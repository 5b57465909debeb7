//! The connection and save-state machine, as a pure reducer.
//!
//! The session feeds it facts (socket opened, update frame sent, durable ack
//! received, local edit made while disconnected, …) and the UI reads one
//! derived `SaveState`. Keeping it pure makes every transition unit-testable
//! without sockets or timers.
//!
//! "All changes saved" is only claimed when the server has said so: on the
//! current socket, every update-bearing frame we sent (our SyncStep2 reply and
//! every Update) is covered by the server's durable ack, and no local edit is
//! waiting for a socket. Our SyncStep2 reply must have been sent too, because
//! it is what carries edits made while offline (or before a reload).

import type { SessionError } from './closeCodes';

export type SocketStatus = 'connecting' | 'connected' | 'disconnected';

export interface SyncState {
  socket: SocketStatus;
  /** A socket has been open at least once in this session. */
  everConnected: boolean;
  /** The server's SyncStep2 arrived on the current socket. */
  synced: boolean;
  /** Our SyncStep2 (the diff the server lacked) went out on the current socket. */
  handshakeSent: boolean;
  /** Update-bearing frames sent on the current socket. */
  sent: number;
  /** How many of them the server reports durable. */
  acked: number;
  /** A local edit happened while no socket could carry it. */
  unsentLocal: boolean;
  /** The browser reports no network. */
  networkOffline: boolean;
  /** Set when the server refused us; reconnecting stops until retry. */
  error: SessionError | null;
  /** Unix ms of the next scheduled reconnect attempt, if any. */
  nextRetryAt: number | null;
}

export type SyncEvent =
  | { type: 'connecting' }
  | { type: 'open' }
  | { type: 'synced' }
  | { type: 'sent'; subtype: 1 | 2 }
  | { type: 'ack'; count: number }
  | { type: 'local-change'; socketCanCarry: boolean }
  | { type: 'closed' }
  | { type: 'retry-scheduled'; at: number }
  | { type: 'network'; online: boolean }
  | { type: 'error'; error: SessionError }
  | { type: 'clear-error' };

export const initialSyncState: SyncState = {
  socket: 'disconnected',
  everConnected: false,
  synced: false,
  handshakeSent: false,
  sent: 0,
  acked: 0,
  unsentLocal: false,
  networkOffline: false,
  error: null,
  nextRetryAt: null,
};

const FRESH_SOCKET = { synced: false, handshakeSent: false, sent: 0, acked: 0 } as const;

export function reduceSync(state: SyncState, event: SyncEvent): SyncState {
  switch (event.type) {
    case 'connecting':
      // Counters belong to one socket: the server counts per socket too.
      return { ...state, ...FRESH_SOCKET, socket: 'connecting', nextRetryAt: null };
    case 'open':
      return { ...state, ...FRESH_SOCKET, socket: 'connected', everConnected: true };
    case 'synced':
      return state.socket === 'connected' ? { ...state, synced: true } : state;
    case 'sent':
      if (state.socket !== 'connected') return state;
      return {
        ...state,
        sent: state.sent + 1,
        // Our SyncStep2 is a diff against the server's state vector, so it
        // carries every edit that was waiting for a socket.
        handshakeSent: state.handshakeSent || event.subtype === 1,
        unsentLocal: event.subtype === 1 ? false : state.unsentLocal,
      };
    case 'ack':
      if (state.socket !== 'connected') return state;
      // Acks only grow; clamp so a confused server cannot make us claim more.
      return { ...state, acked: Math.max(state.acked, Math.min(event.count, state.sent)) };
    case 'local-change':
      return event.socketCanCarry ? state : { ...state, unsentLocal: true };
    case 'closed':
      return { ...state, ...FRESH_SOCKET, socket: 'disconnected' };
    case 'retry-scheduled':
      return { ...state, nextRetryAt: event.at };
    case 'network':
      return { ...state, networkOffline: !event.online };
    case 'error':
      return { ...state, error: event.error, nextRetryAt: null };
    case 'clear-error':
      return { ...state, error: null };
  }
}

export type SaveState =
  | { kind: 'connecting' }
  | { kind: 'saving' }
  | { kind: 'saved' }
  | { kind: 'offline' }
  | { kind: 'error'; error: SessionError };

export function isAllSaved(s: SyncState): boolean {
  return (
    s.error === null &&
    s.socket === 'connected' &&
    s.synced &&
    s.handshakeSent &&
    s.acked >= s.sent &&
    !s.unsentLocal
  );
}

export function deriveSaveState(s: SyncState): SaveState {
  if (s.error) return { kind: 'error', error: s.error };
  if (s.socket !== 'connected') {
    // Before the first socket ever opened (and while the network is up) we are
    // simply starting; after that, a missing socket means offline.
    if (!s.everConnected && !s.networkOffline && s.nextRetryAt === null) return { kind: 'connecting' };
    return { kind: 'offline' };
  }
  return isAllSaved(s) ? { kind: 'saved' } : { kind: 'saving' };
}

export function saveStateLabel(state: SaveState): string {
  switch (state.kind) {
    case 'connecting':
      return 'Connecting…';
    case 'saving':
      return 'Saving…';
    case 'saved':
      return 'All changes saved';
    case 'offline':
      return 'Offline — changes kept on this device';
    case 'error':
      return state.error.message;
  }
}
