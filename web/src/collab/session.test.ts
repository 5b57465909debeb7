import 'fake-indexeddb/auto';

import * as decoding from 'lib0/decoding';
import * as encoding from 'lib0/encoding';
import { afterEach, describe, expect, it } from 'vitest';
import * as awarenessProtocol from 'y-protocols/awareness';
import * as Y from 'yjs';

import { deriveSaveState } from './saveState';
import { CollabSession, type SessionOptions } from './session';
import { FakeNetwork, FakeServer, flush, ManualClock } from './test-support/fakeServer';

const backoff = { baseMs: 500, maxMs: 10_000, minMs: 100 };
const sessions: CollabSession[] = [];

function open(server: FakeServer, extra: Partial<SessionOptions> = {}) {
  const clock = extra.clock ?? new ManualClock();
  const network = extra.network ?? new FakeNetwork();
  const session = new CollabSession({
    docId: 'doc1',
    wsBase: 'ws://quire.test/ws',
    user: { id: 'u-ada', name: 'Ada', color: '#1e6fd9' },
    WebSocketImpl: server.socketClass(),
    localStore: null,
    disableBroadcastChannel: true,
    backoff,
    random: () => 0.5,
    ...extra,
    clock,
    network,
  });
  sessions.push(session);
  return { session, clock: clock as ManualClock, network: network as FakeNetwork };
}

const kind = (s: CollabSession) => deriveSaveState(s.getSnapshot()).kind;

function type(session: CollabSession, text: string) {
  const fragment = session.fragment;
  session.doc.transact(() => {
    let paragraph = fragment.get(0) as Y.XmlElement | undefined;
    if (!paragraph) {
      paragraph = new Y.XmlElement('paragraph');
      fragment.insert(0, [paragraph]);
    }
    let textNode = paragraph.get(0) as Y.XmlText | undefined;
    if (!textNode) {
      textNode = new Y.XmlText();
      paragraph.insert(0, [textNode]);
    }
    textNode.insert(textNode.length, text);
  });
}

// y-websocket adds a process 'exit' listener per provider under Node.
process.setMaxListeners(100);

afterEach(() => {
  while (sessions.length) sessions.pop()!.destroy();
});

describe('CollabSession against a fake server', () => {
  it('connects with the opt-in parameter and is saved only after the durable ack', async () => {
    const server = new FakeServer();
    const { session } = open(server);
    expect(session.provider.url).toBe('ws://quire.test/ws/doc1?quire=1');
    expect(kind(session)).toBe('connecting');
    await session.start();
    await flush();
    expect(session.getSnapshot().synced).toBe(true);
    expect(session.getSnapshot().handshakeSent).toBe(true);
    expect(kind(session)).toBe('saving');
    server.ackAll();
    await flush();
    expect(kind(session)).toBe('saved');
  });

  it('goes saving → saved around each edit, and the ack sends nothing back', async () => {
    const server = new FakeServer();
    server.autoAck = true;
    const { session } = open(server);
    await session.start();
    await flush();
    expect(kind(session)).toBe('saved');
    server.autoAck = false;
    type(session, 'hello');
    expect(kind(session)).toBe('saving');
    await flush();
    expect(server.text()).toContain('hello');
    expect(kind(session)).toBe('saving');
    const framesBefore = server.received.length;
    server.ackAll();
    await flush();
    expect(kind(session)).toBe('saved');
    expect(server.received.length).toBe(framesBefore);
  });

  it('after a crash: offline, jittered reconnect, offline edits re-sent, saved again', async () => {
    const server = new FakeServer();
    server.autoAck = true;
    const { session, clock } = open(server);
    await session.start();
    await flush();
    type(session, 'before ');
    await flush();
    expect(kind(session)).toBe('saved');

    server.down = true;
    server.dropAll(1006);
    await flush();
    expect(kind(session)).toBe('offline');
    // random() = 0.5 on attempt 0: 100 + 0.5 * (500 - 100) = 300 ms.
    expect(clock.pendingDelays()).toEqual([300]);

    type(session, 'during');
    expect(session.getSnapshot().unsentLocal).toBe(true);

    clock.advance(300); // server still down: the attempt fails
    await flush();
    expect(kind(session)).toBe('offline');
    expect(clock.pendingDelays()).toEqual([550]); // attempt 1: 100 + 0.5 * 900

    // The server lost its unacked state; it comes back with what it had.
    server.down = false;
    clock.advance(550);
    await flush();
    expect(server.text()).toContain('before during');
    expect(kind(session)).toBe('saved');
    expect(session.getSnapshot().unsentLocal).toBe(false);

    // A synced connection resets the backoff.
    server.dropAll(1001);
    await flush();
    expect(clock.pendingDelays()).toEqual([300]);
  });

  it('reconnects after "too slow" (4429) but stops on "deleted" (4404)', async () => {
    const server = new FakeServer();
    server.autoAck = true;
    const { session, clock } = open(server);
    await session.start();
    await flush();
    server.dropAll(4429);
    await flush();
    expect(clock.pendingDelays()).toHaveLength(1);
    clock.advance(10_000);
    await flush();
    expect(kind(session)).toBe('saved');

    server.dropAll(4404, 'document deleted');
    await flush();
    const state = deriveSaveState(session.getSnapshot());
    expect(state.kind).toBe('error');
    expect(state.kind === 'error' && state.error.code).toBe('deleted');
    clock.advance(60_000);
    await flush();
    expect(server.openSockets).toHaveLength(0);
  });

  it("stops calmly when the owner's storage is full, keeps the edit, and retry() sends it", async () => {
    const server = new FakeServer();
    const { session, clock } = open(server);
    await session.start();
    await flush();
    server.ackAll();
    await flush();
    type(session, 'one word too many');
    await flush();
    server.dropAll(4413, "storage quota reached: the document's owner has no room left");
    await flush();
    const state = deriveSaveState(session.getSnapshot());
    expect(state.kind === 'error' && state.error.code).toBe('quota');
    // No reconnect loop: the same edit would only be refused again.
    clock.advance(60_000);
    await flush();
    expect(server.openSockets).toHaveLength(0);
    expect(session.fragment.toString()).toContain('one word too many');

    // The owner made room: trying again sends the kept edit, and it is saved.
    server.autoAck = true;
    session.retry();
    await flush();
    expect(server.text()).toContain('one word too many');
    expect(kind(session)).toBe('saved');
  });

  it('stops and explains when permission is denied, and retry() reconnects', async () => {
    const server = new FakeServer();
    server.autoAck = true;
    const { session } = open(server);
    await session.start();
    await flush();
    server.openSockets[0]!.sendAuthDenied('read-only');
    await flush();
    const state = deriveSaveState(session.getSnapshot());
    expect(state.kind).toBe('error');
    expect(state.kind === 'error' && state.error.message).toContain('read-only');
    expect(server.openSockets).toHaveLength(0);

    session.retry();
    await flush();
    expect(kind(session)).toBe('saved');
  });

  it('reconnects when the account is renamed, since the server binds presence at connect', async () => {
    const server = new FakeServer();
    server.autoAck = true;
    const { session } = open(server);
    await session.start();
    await flush();
    session.setUser({ id: 'u-ada', name: 'Ada', color: '#1e6fd9' }); // unchanged
    await flush();
    expect(server.sockets).toHaveLength(1);
    // The editor's caret extension publishes the new name first (React runs
    // the child's effect before the page's); the session must still reconnect.
    session.awareness.setLocalStateField('user', { id: 'u-ada', name: 'Ada L.', color: '#1e6fd9' });

    session.setUser({ id: 'u-ada', name: 'Ada L.', color: '#1e6fd9' });
    await flush();
    expect(server.sockets).toHaveLength(2);
    expect(server.openSockets).toEqual([server.sockets[1]]);
    // The new socket announces the new name.
    const heard = new awarenessProtocol.Awareness(new Y.Doc());
    for (const frame of server.sockets[1]!.received) {
      const decoder = decoding.createDecoder(frame);
      if (decoding.readVarUint(decoder) !== 1) continue;
      awarenessProtocol.applyAwarenessUpdate(heard, decoding.readVarUint8Array(decoder), null);
    }
    expect(heard.getStates().get(session.doc.clientID)?.user).toEqual({ id: 'u-ada', name: 'Ada L.', color: '#1e6fd9' });
    expect(kind(session)).toBe('saved');
  });

  it('shows the others again as soon as a new socket hands over their presence', async () => {
    const server = new FakeServer();
    server.autoAck = true;
    const { session, clock } = open(server);
    await session.start();
    await flush();
    // Bob, as the server relays him: the same frame before and after.
    const bob = new awarenessProtocol.Awareness(new Y.Doc());
    bob.setLocalState({ user: { id: 'u-bob', name: 'Bob', color: '#2e7d32' } });
    const encoder = encoding.createEncoder();
    encoding.writeVarUint(encoder, 1);
    encoding.writeVarUint8Array(encoder, awarenessProtocol.encodeAwarenessUpdate(bob, [bob.clientID]));
    const frame = encoding.toUint8Array(encoder);
    server.openSockets[0]!.send(frame);
    await flush();
    expect(session.awareness.getStates().has(bob.clientID)).toBe(true);

    server.dropAll(1006);
    await flush();
    expect(session.awareness.getStates().has(bob.clientID)).toBe(false);
    clock.advance(300);
    await flush();
    expect(server.openSockets).toHaveLength(1);
    server.openSockets[0]!.send(frame);
    await flush();
    expect(session.awareness.getStates().get(bob.clientID)?.user.name).toBe('Bob');
    bob.destroy();
  });

  it('drops the socket when the browser goes offline and returns when it is back', async () => {
    const server = new FakeServer();
    server.autoAck = true;
    const { session, clock, network } = open(server);
    await session.start();
    await flush();
    network.set(false);
    await flush();
    expect(kind(session)).toBe('offline');
    expect(server.openSockets).toHaveLength(0);
    type(session, 'offline words');
    clock.advance(60_000);
    await flush();
    expect(server.openSockets).toHaveLength(0); // no attempts while offline

    network.set(true);
    clock.advance(500);
    await flush();
    expect(server.text()).toContain('offline words');
    expect(kind(session)).toBe('saved');
  });

  it('lets the editor catch up before each remote change is applied', async () => {
    const server = new FakeServer();
    server.autoAck = true;
    const { session } = open(server);
    const seen: string[] = [];
    session.setBeforeRemoteChange(() => seen.push(session.fragment.toString()));
    await session.start();
    await flush();
    const other = open(server, { docId: 'doc1' }).session;
    await other.start();
    await flush();
    seen.length = 0;
    type(other, 'remote words');
    await flush();
    // The hook ran at least once while the remote words were not yet applied.
    expect(seen.length).toBeGreaterThan(0);
    expect(seen[0]).not.toContain('remote words');
    expect(session.fragment.toString()).toContain('remote words');
  });

  it('spreads reconnects of many clients after a server restart', async () => {
    const server = new FakeServer();
    server.autoAck = true;
    const clock = new ManualClock();
    let seed = 7;
    const random = () => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31);
    for (let i = 0; i < 40; i++) await open(server, { clock, random }).session.start();
    await flush();
    expect(server.openSockets).toHaveLength(40);
    server.dropAll(1001);
    await flush();
    const delays = clock.pendingDelays();
    expect(delays).toHaveLength(40);
    expect(new Set(delays).size).toBeGreaterThan(30);
    expect(Math.min(...delays)).toBeGreaterThanOrEqual(100);
    expect(Math.max(...delays)).toBeLessThanOrEqual(500);
  });

  it('keeps edits in IndexedDB across a reload and never inserts default content', async () => {
    const server = new FakeServer();
    const network = new FakeNetwork();
    network.online = false;
    const first = open(server, { network, localStore: undefined, docId: 'idb-doc' }).session;
    await first.start();
    expect(first.fragment.length).toBe(0);
    type(first, 'kept locally');
    await flush();
    first.destroy();
    sessions.splice(sessions.indexOf(first), 1);

    const second = open(server, { network, localStore: undefined, docId: 'idb-doc' }).session;
    await second.start();
    expect(second.fragment.toString()).toContain('kept locally');
    expect(second.fragment.length).toBe(1);
    expect(kind(second)).toBe('offline');

    server.autoAck = true;
    network.set(true);
    second['scheduler'].cancel();
    second.retry();
    await flush();
    expect(server.text()).toContain('kept locally');
    expect(kind(second)).toBe('saved');
  });
});
