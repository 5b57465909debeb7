import * as decoding from 'lib0/decoding';
import * as encoding from 'lib0/encoding';
import * as awarenessProtocol from 'y-protocols/awareness';
import * as syncProtocol from 'y-protocols/sync';
import { describe, expect, it } from 'vitest';
import * as Y from 'yjs';

import { countingWebSocket, encodeDurableAck, MESSAGE_DURABLE_ACK, readDurableAck, updateSubtype } from './durableAck';

function frame(write: (encoder: encoding.Encoder) => void): Uint8Array {
  const encoder = encoding.createEncoder();
  write(encoder);
  return encoding.toUint8Array(encoder);
}

describe('updateSubtype', () => {
  const doc = new Y.Doc();
  doc.getText('t').insert(0, 'hello');
  const step1 = frame((e) => (encoding.writeVarUint(e, 0), syncProtocol.writeSyncStep1(e, doc)));
  const step2 = frame((e) => (encoding.writeVarUint(e, 0), syncProtocol.writeSyncStep2(e, doc)));
  const update = frame((e) => (encoding.writeVarUint(e, 0), syncProtocol.writeUpdate(e, Y.encodeStateAsUpdate(doc))));
  const awareness = frame((e) => {
    encoding.writeVarUint(e, 1);
    encoding.writeVarUint8Array(e, awarenessProtocol.encodeAwarenessUpdate(new awarenessProtocol.Awareness(doc), [doc.clientID]));
  });

  it('recognises the frames that carry document updates', () => {
    expect(updateSubtype(step1)).toBe(0);
    expect(updateSubtype(step2)).toBe(1);
    expect(updateSubtype(update)).toBe(2);
    expect(updateSubtype(awareness)).toBe(0);
  });

  it('accepts ArrayBuffers and views, and ignores strings and short frames', () => {
    expect(updateSubtype(update.buffer.slice(update.byteOffset, update.byteOffset + update.byteLength))).toBe(2);
    expect(updateSubtype(new DataView(step2.buffer, step2.byteOffset, step2.byteLength))).toBe(1);
    expect(updateSubtype('\u0000\u0002')).toBe(0);
    expect(updateSubtype(new Uint8Array([0]))).toBe(0);
    expect(updateSubtype(new Uint8Array([]))).toBe(0);
  });
});

describe('durable ack frames', () => {
  it('round-trips through lib0 encoding', () => {
    for (const n of [0, 1, 127, 128, 300, 2 ** 31]) {
      const decoder = decoding.createDecoder(encodeDurableAck(n));
      expect(decoding.readVarUint(decoder)).toBe(MESSAGE_DURABLE_ACK);
      expect(readDurableAck(decoder)).toBe(n);
    }
  });
});

describe('countingWebSocket', () => {
  class StubSocket {
    readyState = 1;
    sent: unknown[] = [];
    send(data: unknown) {
      if (this.readyState !== 1) throw new Error('not open');
      this.sent.push(data);
    }
  }

  it('reports update-bearing frames only, after they went out', () => {
    const seen: number[] = [];
    const Counting = countingWebSocket(StubSocket as unknown as typeof WebSocket, (_s, t) => seen.push(t));
    const ws = new (Counting as unknown as new () => WebSocket & StubSocket)();
    ws.send(new Uint8Array([0, 0, 1]));
    ws.send(new Uint8Array([0, 1, 0]));
    ws.send(new Uint8Array([0, 2, 0]));
    ws.send(new Uint8Array([1, 2, 0]));
    expect(seen).toEqual([1, 2]);
    expect(ws.sent).toHaveLength(4);
    ws.readyState = 0;
    expect(() => ws.send(new Uint8Array([0, 2, 0]))).toThrow();
    expect(seen).toEqual([1, 2]);
  });
});
