//! An in-memory stand-in for `quire serve`, for unit tests of the session.
//!
//! It speaks the same y-websocket protocol through a fake WebSocket class, and
//! lets a test decide when updates become "durable" (acked), when sockets
//! drop and with which close code. Messages are delivered asynchronously, as
//! a real network would.

import * as decoding from 'lib0/decoding';
import * as encoding from 'lib0/encoding';
import * as awarenessProtocol from 'y-protocols/awareness';
import * as syncProtocol from 'y-protocols/sync';
import * as Y from 'yjs';

import { encodeDurableAck, updateSubtype } from '../durableAck';
import type { Clock } from '../reconnect';

type Listener = ((event: any) => void) | null;

export class FakeServer {
  readonly doc = new Y.Doc();
  readonly awareness = new awarenessProtocol.Awareness(this.doc);
  readonly sockets: ServerSide[] = [];
  /** Ack every update-bearing frame as soon as it arrives. */
  autoAck = false;
  /** Refuse new connections (as if the server were down). */
  down = false;
  /** Frames received, for assertions. */
  readonly received: Uint8Array[] = [];

  constructor() {
    this.awareness.setLocalState(null);
  }

  /** A WebSocket class bound to this server. */
  socketClass(): typeof WebSocket {
    const server = this;
    class FakeWebSocket {
      static readonly CONNECTING = 0;
      static readonly OPEN = 1;
      static readonly CLOSING = 2;
      static readonly CLOSED = 3;
      readonly CONNECTING = 0;
      readonly OPEN = 1;
      readonly CLOSING = 2;
      readonly CLOSED = 3;
      readyState = 0;
      binaryType = 'blob';
      onopen: Listener = null;
      onmessage: Listener = null;
      onclose: Listener = null;
      onerror: Listener = null;
      readonly side: ServerSide;
      constructor(readonly url: string) {
        this.side = new ServerSide(server, this);
        deliver(() => server.accept(this.side));
      }
      send(data: Uint8Array | ArrayBuffer) {
        if (this.readyState !== 1) throw new Error('InvalidStateError: not open');
        const bytes = data instanceof Uint8Array ? data.slice() : new Uint8Array(data.slice(0));
        deliver(() => this.side.receive(bytes));
      }
      close(code = 1000, reason = '') {
        if (this.readyState >= 2) return;
        this.readyState = 2;
        deliver(() => this.side.closed(code, reason, true));
      }
    }
    return FakeWebSocket as unknown as typeof WebSocket;
  }

  get openSockets(): ServerSide[] {
    return this.sockets.filter((s) => s.open);
  }

  accept(side: ServerSide) {
    if (this.down) {
      side.closed(1006, '', false);
      return;
    }
    this.sockets.push(side);
    side.open = true;
    side.client.readyState = 1;
    side.client.onopen?.({});
    // Like the reference server: our SyncStep1 first, then awareness.
    const encoder = encoding.createEncoder();
    encoding.writeVarUint(encoder, 0);
    syncProtocol.writeSyncStep1(encoder, this.doc);
    side.send(encoding.toUint8Array(encoder));
  }

  /** Ack everything each open socket has sent so far. */
  ackAll() {
    for (const s of this.openSockets) s.ack();
  }

  /** Drop every socket with this close code, as a crash (1006) or shutdown (1001) would. */
  dropAll(code = 1006, reason = '') {
    for (const s of this.openSockets) s.drop(code, reason);
  }

  text(): string {
    return this.doc.getXmlFragment('default').toString();
  }
}

export class ServerSide {
  open = false;
  updatesReceived = 0;
  /** Frames this socket received. */
  readonly received: Uint8Array[] = [];
  constructor(
    readonly server: FakeServer,
    readonly client: any,
  ) {}

  send(bytes: Uint8Array) {
    if (!this.open) return;
    const data = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
    deliver(() => {
      if (this.open) this.client.onmessage?.({ data });
    });
  }

  ack(count = this.updatesReceived) {
    this.send(encodeDurableAck(count));
  }

  sendAuthDenied(reason: string) {
    const encoder = encoding.createEncoder();
    encoding.writeVarUint(encoder, 2);
    encoding.writeVarUint(encoder, 0); // permission denied
    encoding.writeVarString(encoder, reason);
    this.send(encoding.toUint8Array(encoder));
  }

  drop(code: number, reason = '') {
    this.closed(code, reason, false);
  }

  closed(code: number, reason: string, wasClean: boolean) {
    const wasOpen = this.open;
    this.open = false;
    if (this.client.readyState === 3) return;
    this.client.readyState = 3;
    if (wasOpen) {
      awarenessProtocol.removeAwarenessStates(
        this.server.awareness,
        [...this.server.awareness.getStates().keys()],
        this,
      );
    }
    this.client.onclose?.({ code, reason, wasClean });
  }

  receive(bytes: Uint8Array) {
    if (!this.open) return;
    this.server.received.push(bytes);
    this.received.push(bytes);
    const decoder = decoding.createDecoder(bytes);
    const type = decoding.readVarUint(decoder);
    if (type === 0) {
      const encoder = encoding.createEncoder();
      encoding.writeVarUint(encoder, 0);
      syncProtocol.readSyncMessage(decoder, encoder, this.server.doc, this);
      if (encoding.length(encoder) > 1) this.send(encoding.toUint8Array(encoder));
      if (updateSubtype(bytes) !== 0) {
        this.updatesReceived += 1;
        if (this.server.autoAck) this.ack();
        // Fan out to the others, as the real hub does.
        const update = Y.encodeStateAsUpdate(this.server.doc);
        for (const other of this.server.openSockets) {
          if (other === this) continue;
          const e = encoding.createEncoder();
          encoding.writeVarUint(e, 0);
          syncProtocol.writeUpdate(e, update);
          other.send(encoding.toUint8Array(e));
        }
      }
    } else if (type === 1) {
      // Relay awareness to everyone, the sender included.
      const update = decoding.readVarUint8Array(decoder);
      awarenessProtocol.applyAwarenessUpdate(this.server.awareness, update, this);
      for (const s of this.server.openSockets) s.send(bytes);
    }
  }
}

function deliver(fn: () => void) {
  queueMicrotask(fn);
}

/** Let queued deliveries (and what they trigger) run. */
export async function flush(rounds = 20): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise<void>((resolve) => setTimeout(resolve, 0));
}

/** A clock whose time only moves when the test says so. */
export class ManualClock implements Clock {
  private time = 1_000_000;
  private seq = 0;
  private timers = new Map<number, { at: number; fn: () => void }>();

  now() {
    return this.time;
  }
  setTimeout(fn: () => void, ms: number) {
    const id = ++this.seq;
    this.timers.set(id, { at: this.time + ms, fn });
    return id;
  }
  clearTimeout(handle: unknown) {
    this.timers.delete(handle as number);
  }
  /** Delays of the pending timers, relative to now. */
  pendingDelays(): number[] {
    return [...this.timers.values()].map((t) => t.at - this.time);
  }
  advance(ms: number) {
    const target = this.time + ms;
    for (;;) {
      const due = [...this.timers.entries()].filter(([, t]) => t.at <= target).sort((a, b) => a[1].at - b[1].at)[0];
      if (!due) break;
      this.timers.delete(due[0]);
      this.time = due[1].at;
      due[1].fn();
    }
    this.time = target;
  }
}

export class FakeNetwork {
  online = true;
  private listeners = new Set<(online: boolean) => void>();
  isOnline = () => this.online;
  subscribe = (listener: (online: boolean) => void) => {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  };
  set(online: boolean) {
    this.online = online;
    for (const l of this.listeners) l(online);
  }
}
