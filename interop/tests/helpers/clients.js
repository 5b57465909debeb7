// Clients for the interop tests:
//  - `providerClient`: a stock y-websocket `WebsocketProvider` in Node (the
//    `ws` package as WebSocketPolyfill), with every frame it receives and every
//    close it sees recorded;
//  - `RawClient`: a bare `ws` socket speaking the protocol by hand with
//    y-protocols/lib0 encoding, for the cases a stock client cannot produce.

import WebSocket from 'ws'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import { waitFor } from './wait.js'
import { FRAGMENT, TEXT } from './content.js'
import { ensureDoc, ownerOf } from './server.js'

export const MSG_SYNC = 0
export const MSG_AWARENESS = 1
export const MSG_AUTH = 2
export const MSG_QUERY_AWARENESS = 3
export const MSG_QUIRE_ACK = 100
export const SYNC_STEP1 = 0
export const SYNC_STEP2 = 1
export const SYNC_UPDATE = 2

/** The message types a stock y-websocket client understands. */
export const STOCK_TYPES = new Set([MSG_SYNC, MSG_AWARENESS, MSG_AUTH, MSG_QUERY_AWARENESS])

// ---------------------------------------------------------------- encoding

function message (write) {
  const e = encoding.createEncoder()
  write(e)
  return encoding.toUint8Array(e)
}

export const encodeStep1 = (sv) => message((e) => {
  encoding.writeVarUint(e, MSG_SYNC); encoding.writeVarUint(e, SYNC_STEP1); encoding.writeVarUint8Array(e, sv)
})
export const encodeStep2 = (update) => message((e) => {
  encoding.writeVarUint(e, MSG_SYNC); encoding.writeVarUint(e, SYNC_STEP2); encoding.writeVarUint8Array(e, update)
})
export const encodeUpdate = (update) => message((e) => {
  encoding.writeVarUint(e, MSG_SYNC); encoding.writeVarUint(e, SYNC_UPDATE); encoding.writeVarUint8Array(e, update)
})
export const encodeAwareness = (update) => message((e) => {
  encoding.writeVarUint(e, MSG_AWARENESS); encoding.writeVarUint8Array(e, update)
})
export const encodeQueryAwareness = () => message((e) => encoding.writeVarUint(e, MSG_QUERY_AWARENESS))

/**
 * Decodes one frame into `{ type, sub?, payload?, ack?, error? }`. Never throws.
 * @param {Uint8Array} bytes
 */
export function decodeFrame (bytes) {
  const out = { type: null, bytes }
  try {
    const d = decoding.createDecoder(bytes)
    out.type = decoding.readVarUint(d)
    switch (out.type) {
      case MSG_SYNC:
        out.sub = decoding.readVarUint(d)
        out.payload = decoding.readVarUint8Array(d)
        break
      case MSG_AWARENESS:
        out.payload = decoding.readVarUint8Array(d)
        out.awareness = decodeAwarenessUpdate(out.payload)
        break
      case MSG_AUTH:
        out.sub = decoding.readVarUint(d)
        out.reason = decoding.readVarString(d)
        break
      case MSG_QUIRE_ACK:
        out.ack = decoding.readVarUint(d)
        break
    }
    if (decoding.hasContent(d)) out.error = 'trailing bytes'
  } catch (e) {
    out.error = String(e)
  }
  return out
}

/** `[{ clientID, clock, state }]` of an awareness update (state parsed, null when removed). */
export function decodeAwarenessUpdate (payload) {
  const d = decoding.createDecoder(payload)
  const n = decoding.readVarUint(d)
  const entries = []
  for (let i = 0; i < n; i++) {
    const clientID = decoding.readVarUint(d)
    const clock = decoding.readVarUint(d)
    const state = JSON.parse(decoding.readVarString(d))
    entries.push({ clientID, clock, state })
  }
  return entries
}

export function encodeAwarenessUpdate (entries) {
  return message((e) => {
    encoding.writeVarUint(e, entries.length)
    for (const { clientID, clock, state } of entries) {
      encoding.writeVarUint(e, clientID)
      encoding.writeVarUint(e, clock)
      encoding.writeVarString(e, JSON.stringify(state))
    }
  })
}

const toBytes = (data) => (data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength))

// ---------------------------------------------------------------- stock provider

/** The port of a `ws://host:port/...` URL. */
const portOf = (url) => new URL(url).port

/**
 * Headers a browser on the app's page would send on the upgrade: the signed-in
 * user's cookie (by default the owner of the server `url` points at) and the
 * page's origin.
 */
export function authHeaders (url, user = ownerOf(portOf(url))) {
  if (!user) return {}
  const headers = {}
  if (user.cookie) headers.Cookie = user.cookie
  if (user.origin) headers.Origin = user.origin
  return headers
}

/**
 * A `ws` WebSocket class that records what its instances receive into `log`
 * and sends `user`'s cookie and origin on the upgrade (`null`: none).
 * The provider assigns `onmessage`/`onclose`; listeners added here coexist.
 */
function recordingWebSocket (log, user) {
  return class RecordingWebSocket extends WebSocket {
    constructor (url, protocols) {
      super(url, protocols, { headers: user === null ? {} : authHeaders(url, user) })
      const socket = log.sockets.length
      log.sockets.push(this)
      this.addEventListener('message', (ev) => {
        if (typeof ev.data === 'string') log.frames.push({ socket, type: 'text', text: ev.data })
        else log.frames.push({ socket, ...decodeFrame(toBytes(ev.data)) })
      })
      this.addEventListener('close', (ev) => log.closes.push({ socket, code: ev.code, reason: ev.reason }))
    }
  }
}

/**
 * A stock `WebsocketProvider` on `server`'s document `room`.
 * BroadcastChannel is disabled: Node 20 has a global BroadcastChannel, and
 * without this, providers in one process would sync with each other directly
 * and never test the server.
 *
 * @param {import('node:test').TestContext | null} t clean-up is registered on it
 * @param {{ wsBase: string }} server
 * @param {string} room
 * @param {object} [opts]
 */
export function providerClient (t, server, room, { doc = new Y.Doc(), params = {}, connect = true, maxBackoffTime, name = 'client', user } = {}) {
  const log = { frames: [], closes: [], sockets: [] }
  const provider = new WebsocketProvider(server.wsBase, room, doc, {
    WebSocketPolyfill: recordingWebSocket(log, user),
    disableBc: true,
    params,
    // Connects once the document exists (created by the owner through the
    // API, as the web app does before opening it).
    connect: false,
    ...(maxBackoffTime ? { maxBackoffTime } : {})
  })
  const ready = user === undefined && server.owner ? server.ensureDoc(room) : Promise.resolve()
  if (connect) ready.then(() => { if (!destroyed) provider.connect() })
  const syncedEvents = []
  provider.on('synced', (s) => syncedEvents.push(s))
  const statuses = []
  provider.on('status', ({ status }) => statuses.push(status))
  let destroyed = false
  const client = {
    name,
    doc,
    provider,
    awareness: provider.awareness,
    text: doc.getText(TEXT),
    fragment: doc.getXmlFragment(FRAGMENT),
    log,
    /** Resolves once the document exists on the server. */
    ready,
    syncedEvents,
    statuses,
    /** Waits for the provider's `synced` state (sync step 2 from the server received). */
    synced (timeout = 10_000) {
      return waitFor(() => provider.synced, { timeout, message: `${name}: provider synced`, describe: () => ({ statuses, closes: log.closes }) })
    },
    /** Drops the TCP connection without a close handshake and without reconnecting. */
    kill () {
      provider.shouldConnect = false
      provider.ws?.terminate()
    },
    destroy () {
      if (destroyed) return
      destroyed = true
      provider.destroy()
      doc.destroy() // also stops the awareness renewal timer
    }
  }
  t?.after(() => client.destroy())
  return client
}

// ---------------------------------------------------------------- raw socket

export class SocketClosed extends Error {
  constructor (message, close) {
    super(message)
    this.close = close
  }
}

export class RawClient {
  /**
   * Opens a raw socket and waits until it is open.
   * @param {import('node:test').TestContext | null} t
   * @param {string} url
   */
  static async connect (t, url, { timeout = 10_000, user } = {}) {
    if (user === undefined) {
      const owner = ownerOf(portOf(url))
      const doc = decodeURIComponent(new URL(url).pathname.replace(/^\/ws\//, ''))
      if (owner) await ensureDoc(owner, doc)
    }
    const c = new RawClient(url, user)
    t?.after(() => c.terminate())
    await c.opened(timeout)
    return c
  }

  /** `user`: whose cookie to send (default: the server's owner; `null`: none). */
  constructor (url, user) {
    this.url = url
    this.frames = []
    this.close = null // { code, reason } once closed
    this.error = null
    this.status = null // HTTP status of a refused upgrade
    this.ws = new WebSocket(url, { headers: user === null ? {} : authHeaders(url, user) })
    this.ws.on('unexpected-response', (_req, res) => {
      this.status = res.statusCode
      this.error = new Error(`upgrade refused with HTTP ${res.statusCode}`)
      this.ws.terminate()
    })
    this.ws.binaryType = 'nodebuffer'
    this.ws.on('message', (data, isBinary) => {
      if (!isBinary) this.frames.push({ type: 'text', text: data.toString() })
      else this.frames.push(decodeFrame(toBytes(data)))
    })
    this.ws.on('close', (code, reason) => { this.close = { code, reason: reason.toString() } })
    this.ws.on('error', (e) => { this.error = e })
  }

  opened (timeout = 10_000) {
    return waitFor(() => {
      if (this.ws.readyState === WebSocket.OPEN) return true
      if (this.close || this.error) throw new SocketClosed(`socket to ${this.url} failed: ${this.error?.message ?? JSON.stringify(this.close)}`, this.close)
      return false
    }, { timeout, message: `raw socket open: ${this.url}`, failFast: (e) => e instanceof SocketClosed })
  }

  get isOpen () { return this.ws.readyState === WebSocket.OPEN }

  send (bytes) { this.ws.send(bytes, { binary: true }) }
  sendText (s) { this.ws.send(s, { binary: false }) }
  sendUpdate (update) { this.send(encodeUpdate(update)) }
  sendStep1 (sv) { this.send(encodeStep1(sv)) }
  sendStep2 (update) { this.send(encodeStep2(update)) }
  sendAwareness (entries) { this.send(encodeAwareness(encodeAwarenessUpdate(entries))) }
  queryAwareness () { this.send(encodeQueryAwareness()) }

  framesOfType (type) { return this.frames.filter((f) => f.type === type) }
  get acks () { return this.framesOfType(MSG_QUIRE_ACK).map((f) => f.ack) }

  /** Waits for a frame at index ≥ `from` matching `pred`; returns it. */
  waitForFrame (pred, { from = 0, timeout = 10_000, message = 'a matching frame' } = {}) {
    return waitFor(() => {
      const f = this.frames.slice(from).find(pred)
      if (f) return f
      // A closed socket gets no more frames: fail now, not at the timeout.
      if (this.close) throw new SocketClosed(`socket closed by the server with ${this.close.code} '${this.close.reason}' before ${message}`, this.close)
      return undefined
    }, {
      failFast: (e) => e instanceof SocketClosed,
      timeout,
      message,
      describe: () => ({ close: this.close, frames: this.frames.map(summarize) })
    })
  }

  /** Waits until the server closed the socket; returns `{ code, reason }`. */
  waitClosed (timeout = 10_000) {
    return waitFor(() => this.close, {
      timeout,
      message: `server to close ${this.url}`,
      describe: () => ({ readyState: this.ws.readyState, frames: this.frames.map(summarize) })
    })
  }

  /**
   * A round trip through the document: sends sync step 1 with an empty state
   * vector and waits for the step 2 answer. Frames the server queued for this
   * socket before it handled the step 1 have then arrived.
   */
  async barrier (timeout = 10_000) {
    const from = this.frames.length
    this.sendStep1(Y.encodeStateVector(new Y.Doc()))
    return this.waitForFrame((f) => f.type === MSG_SYNC && f.sub === SYNC_STEP2, { from, timeout, message: 'sync step 2 answering our step 1' })
  }

  terminate () {
    if (this.ws.readyState !== WebSocket.CLOSED) this.ws.terminate()
  }
}

export function summarize (f) {
  if (f.type === 'text') return `text(${f.text.length})`
  const parts = [`type=${f.type}`]
  if (f.sub !== undefined) parts.push(`sub=${f.sub}`)
  if (f.payload) parts.push(`payload=${f.payload.length}B`)
  if (f.ack !== undefined) parts.push(`ack=${f.ack}`)
  if (f.awareness) parts.push(`awareness=${JSON.stringify(f.awareness)}`)
  if (f.error) parts.push(`error=${f.error}`)
  return parts.join(' ')
}
