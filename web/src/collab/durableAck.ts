//! Quire's durable-ack extension to the y-websocket protocol, client side.
//!
//! Opted into with the `quire=1` query parameter. The server sends
//! `[varUint 100][varUint n]`: n update-bearing frames that this socket sent
//! are now committed to storage. "Update-bearing" means a sync message
//! (type 0) of subtype 1 (SyncStep2) or 2 (Update). We count those frames
//! as they leave, in a WebSocket subclass, because the stock provider
//! exposes no send hook.

import * as decoding from 'lib0/decoding';
import * as encoding from 'lib0/encoding';

export const MESSAGE_DURABLE_ACK = 100;
export const MESSAGE_SYNC = 0;
export const SYNC_STEP_2 = 1;
export const SYNC_UPDATE = 2;

/** 1 or 2 for an update-bearing sync frame, else 0. */
export function updateSubtype(data: unknown): 0 | 1 | 2 {
  let bytes: Uint8Array | null = null;
  if (data instanceof Uint8Array) bytes = data;
  else if (data instanceof ArrayBuffer) bytes = new Uint8Array(data, 0, Math.min(2, data.byteLength));
  else if (ArrayBuffer.isView(data)) bytes = new Uint8Array(data.buffer, data.byteOffset, Math.min(2, data.byteLength));
  if (!bytes || bytes.length < 2 || bytes[0] !== MESSAGE_SYNC) return 0;
  return bytes[1] === SYNC_STEP_2 ? 1 : bytes[1] === SYNC_UPDATE ? 2 : 0;
}

export type SendObserver = (socket: WebSocket, subtype: 1 | 2) => void;

/**
 * A WebSocket class that reports each update-bearing frame it sends. Pass it
 * as the provider's `WebSocketPolyfill`. `Base` is injectable for tests.
 */
export function countingWebSocket(Base: typeof WebSocket, onSend: SendObserver): typeof WebSocket {
  return class CountingWebSocket extends Base {
    override send(data: string | ArrayBufferLike | Blob | ArrayBufferView): void {
      // send() throws while CONNECTING; only count what actually went out.
      super.send(data as never);
      const subtype = updateSubtype(data);
      if (subtype !== 0) onSend(this, subtype);
    }
  };
}

/** Encode an ack frame (used by tests and fake servers). */
export function encodeDurableAck(count: number): Uint8Array {
  const encoder = encoding.createEncoder();
  encoding.writeVarUint(encoder, MESSAGE_DURABLE_ACK);
  encoding.writeVarUint(encoder, count);
  return encoding.toUint8Array(encoder);
}

/** Read the count from a decoder positioned after the message type. */
export function readDurableAck(decoder: decoding.Decoder): number {
  return decoding.readVarUint(decoder);
}
