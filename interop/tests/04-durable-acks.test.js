// Quire's opt-in durable-ack extension (`?quire=1`, message type 100), spoken
// from a raw socket, and the guarantee that stock clients never see it.

import assert from 'node:assert/strict'
import * as Y from 'yjs'
import { startServer, quireTest as test } from './helpers/server.js'
import { providerClient, RawClient, STOCK_TYPES, MSG_QUIRE_ACK, MSG_SYNC, SYNC_STEP1, summarize } from './helpers/clients.js'
import { waitFor, docName } from './helpers/wait.js'

/** A Y.Doc whose every local change is sent on `raw` as a sync update. */
function writer (raw) {
  const doc = new Y.Doc()
  const sent = []
  doc.on('update', (u) => { sent.push(u); raw.sendUpdate(u) })
  return { doc, text: doc.getText('text'), sent }
}

function assertAcksSane (acks, max, label) {
  for (let i = 1; i < acks.length; i++) {
    assert.ok(acks[i] >= acks[i - 1], `${label}: acks never go backwards: ${acks.join(',')}`)
  }
  assert.ok(acks.every((n) => n <= max), `${label}: no ack exceeds the ${max} update-bearing messages sent: ${acks.join(',')}`)
}

test('durable acks: N updates on ?quire=1 are acknowledged with n == N; step 2 and no-op updates count too', async (t) => {
  const server = await startServer(t)
  const room = docName('acks')
  const raw = await RawClient.connect(t, server.wsUrl(room, 'quire=1'))
  await raw.waitForFrame((f) => f.type === MSG_SYNC && f.sub === SYNC_STEP1, { message: 'server sync step 1' })

  const w = writer(raw)
  const N = 50
  for (let i = 0; i < N; i++) w.text.insert(w.text.length, `${i},`)
  assert.equal(w.sent.length, N)
  await waitFor(() => raw.acks.at(-1) === N, {
    message: `ack n == ${N}`,
    describe: () => ({ acks: raw.acks, close: raw.close })
  })
  assertAcksSane(raw.acks, N, 'updates')

  // A sync step 2 is update-bearing too (it is how offline edits come back).
  const extra = new Y.Doc()
  extra.getText('text').insert(0, 'via step 2;')
  raw.sendStep2(Y.encodeStateAsUpdate(extra))
  await waitFor(() => raw.acks.at(-1) === N + 1, { message: `ack n == ${N + 1} after a sync step 2`, describe: () => raw.acks })

  // A duplicate update changes nothing but is still acknowledged (the client
  // may be re-sending something it never saw acknowledged).
  raw.sendUpdate(w.sent[0])
  await waitFor(() => raw.acks.at(-1) === N + 2, { message: `ack n == ${N + 2} after a duplicate update`, describe: () => raw.acks })
  assertAcksSane(raw.acks, N + 2, 'all')
  assert.equal(raw.close, null, 'the socket stays open')

  // The acknowledged content is on the server: a stock client reads it back.
  const reader = providerClient(t, server, room, { name: 'reader' })
  await reader.synced()
  await waitFor(() => reader.text.toString() === 'via step 2;' + w.text.toString() ||
    reader.text.toString() === w.text.toString() + 'via step 2;', {
    message: 'a stock client reads back everything that was acknowledged',
    describe: () => reader.text.toString()
  })
})

test('durable acks: acknowledged updates survive kill -9', async (t) => {
  const server = await startServer(t)
  const room = docName('acks-crash')
  const raw = await RawClient.connect(t, server.wsUrl(room, 'quire=1'))
  const w = writer(raw)
  const N = 30
  for (let i = 0; i < N; i++) w.text.insert(w.text.length, `<${i}>`)
  await waitFor(() => raw.acks.at(-1) === N, { message: `ack n == ${N}`, describe: () => raw.acks })
  await server.crash() // immediately after the last ack
  raw.terminate()
  await server.start()
  const reader = providerClient(t, server, room, { name: 'reader' })
  await reader.synced()
  assert.equal(reader.text.toString(), w.text.toString(), 'every acknowledged update is there after kill -9 and restart')
})

test('durable acks: without ?quire=1 no type-100 message is ever sent; only stock message types', async (t) => {
  const server = await startServer(t)
  const room = docName('no-acks')

  // A raw socket that did not opt in, and a stock provider on the same document.
  const plain = await RawClient.connect(t, server.wsUrl(room))
  const other = await RawClient.connect(t, server.wsUrl(room, 'quire=0')) // only "1" opts in
  const stock = providerClient(t, server, room, { name: 'stock' })
  await stock.synced()

  const w = writer(plain)
  for (let i = 0; i < 20; i++) w.text.insert(0, `p${i};`)
  const w2 = writer(other)
  for (let i = 0; i < 5; i++) w2.text.insert(0, `q${i};`)
  stock.text.insert(0, 'stock;')
  stock.awareness.setLocalStateField('user', { name: 'Stock' })

  // Barrier: an opted-in socket's update is acknowledged only once every
  // append submitted before it has committed, so by then any ack owed to the
  // others would have been queued; a step 1 round trip on each socket then
  // flushes its queue up to that point.
  const optedIn = await RawClient.connect(t, server.wsUrl(room, 'quire=1'))
  const w3 = writer(optedIn)
  w3.text.insert(0, 'opted-in;')
  await waitFor(() => optedIn.acks.at(-1) === 1, { message: 'the opted-in socket gets its ack', describe: () => optedIn.frames.map(summarize) })
  await plain.barrier()
  await other.barrier()
  await waitFor(() => stock.text.toString().includes('opted-in;'), 'the stock client got the last update')

  for (const [label, frames] of [['raw socket without ?quire', plain.frames], ['raw socket with ?quire=0', other.frames], ['stock provider', stock.log.frames]]) {
    assert.ok(frames.length > 0, `${label} received frames`)
    const bad = frames.filter((f) => !STOCK_TYPES.has(f.type) || f.error)
    assert.deepEqual(bad.map(summarize), [], `${label}: every frame has a stock message type (0-3) and decodes`)
    assert.ok(!frames.some((f) => f.type === MSG_QUIRE_ACK), `${label}: no ack (type 100)`)
  }
  assert.equal(stock.log.closes.length, 0, 'the stock provider was never disconnected')
})
