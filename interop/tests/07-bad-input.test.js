// Bad input on a raw socket gets a clear close code (4400 malformed, 1009 too
// large) and touches nothing else: well-behaved clients on the same document
// keep working and keep syncing with each other.

import assert from 'node:assert/strict'
import * as Y from 'yjs'
import * as encoding from 'lib0/encoding'
import { startServer, quireTest as test } from './helpers/server.js'
import { providerClient, RawClient, encodeUpdate, encodeStep1, encodeStep2, MSG_SYNC, SYNC_STEP1 } from './helpers/clients.js'
import { waitFor, docName, prng } from './helpers/wait.js'
import { randomEdit } from './helpers/fuzz.js'

const bytes = (...b) => new Uint8Array(b)
const varBytes = (type, sub, payload) => {
  const e = encoding.createEncoder()
  encoding.writeVarUint(e, type)
  if (sub !== null) encoding.writeVarUint(e, sub)
  encoding.writeVarUint8Array(e, payload)
  return encoding.toUint8Array(e)
}

/**
 * A well-behaved writer and reader on `room`; `alive(label)` proves the
 * document still works: a new edit by the writer reaches the reader, and
 * neither was ever disconnected.
 */
async function bystanders (t, server, room) {
  const writer = providerClient(t, server, room, { name: 'writer' })
  const reader = providerClient(t, server, room, { name: 'reader' })
  await Promise.all([writer.synced(), reader.synced()])
  let n = 0
  const alive = async (label) => {
    const token = `[after ${label} #${n++}]`
    writer.text.insert(writer.text.length, token)
    await waitFor(() => reader.text.toString().includes(token), {
      timeout: 5000,
      message: `after ${label}: the writer's next edit reaches the reader`,
      describe: () => ({ reader: reader.text.toString(), writerCloses: writer.log.closes, readerCloses: reader.log.closes })
    })
    for (const c of [writer, reader]) {
      assert.deepEqual(c.log.closes, [], `after ${label}: ${c.name} was never disconnected`)
    }
  }
  await alive('setup')
  return { writer, reader, alive }
}

/** Opens a raw socket, waits for the server's opening step 1, sends `frame`, expects a close. */
async function expectClose (t, server, room, send, { code, label }) {
  const raw = await RawClient.connect(t, server.wsUrl(room))
  await raw.waitForFrame((f) => f.type === MSG_SYNC && f.sub === SYNC_STEP1, { message: 'server sync step 1' })
  send(raw)
  const close = await raw.waitClosed(5000)
  assert.equal(close.code, code, `${label}: close code ${code}, got ${close.code} '${close.reason}'`)
  assert.ok(close.reason.length > 0, `${label}: the close carries a reason`)
  return close
}

test('bad input: malformed frames, text frames and undecodable updates get 4400; other clients go on', async (t) => {
  const server = await startServer(t)
  const room = docName('bad')
  const { alive, reader } = await bystanders(t, server, room)

  const cases = [
    ['an empty binary frame', (r) => r.send(bytes())],
    ['a truncated sync message', (r) => r.send(bytes(0, 0, 5, 1))],
    ['an unknown message type', (r) => r.send(bytes(7))],
    ['an unknown sync sub-type', (r) => r.send(bytes(0, 9, 0))],
    ['trailing bytes after a message', (r) => r.send(bytes(3, 0))],
    ['an overlong varint', (r) => r.send(new Uint8Array(12).fill(0xff))],
    ['a malformed awareness update', (r) => r.send(varBytes(1, null, bytes(2, 0xff, 0xff)))],
    ['a text frame', (r) => r.sendText('hello')],
    ['a JSON text frame', (r) => r.sendText(JSON.stringify({ type: 'sync', data: [0, 0] }))],
    ['an undecodable update (sync update)', (r) => r.send(encodeUpdate(bytes(0xff, 0xff, 0xff, 0xff)))],
    ['an undecodable update (sync step 2)', (r) => r.send(encodeStep2(bytes(0x05, 0x01, 0x02)))],
    ['an update truncated mid-struct', (r) => {
      const d = new Y.Doc()
      d.getText('text').insert(0, 'truncated update content')
      const u = Y.encodeStateAsUpdate(d)
      r.send(encodeUpdate(u.slice(0, u.length - 8)))
    }],
    ['an undecodable state vector (sync step 1)', (r) => r.send(encodeStep1(bytes(0xff, 0xff)))]
  ]
  for (const [label, send] of cases) {
    await expectClose(t, server, room, send, { code: 4400, label })
    await alive(label)
  }
  assert.ok(!reader.text.toString().includes('truncated update content'), 'nothing of a refused update was applied')
})

/** lib0 varUint of a BigInt: exact above 2^53, where JS numbers are not. */
const varUintBig = (n) => {
  const out = []
  for (n = BigInt(n); n >= 0x80n; n >>= 7n) out.push(Number(n & 0x7fn) | 0x80)
  out.push(Number(n))
  return out
}
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER)

/** Client ids in a Yjs doc's state vector, as the BigInts they were read as. */
const stateVectorClients = (doc) => [...Y.decodeStateVector(Y.encodeStateVector(doc)).keys()].map(BigInt)

test('bad input: updates and awareness with client ids above 2^53 - 1 get 4400 and touch nothing; stock clients and the server still agree', async (t) => {
  // Yjs reads client ids as JS numbers: above 2^53 - 1 they lose precision
  // (2^60 + 1 reads as 2^60) while the server's yrs keeps every u64 (its
  // debug build asserts, its release build drops the high bits). Applying
  // such an update would part the server's copy from every stock client's
  // for good, so the server refuses it, and nothing of it reaches anyone.
  const server = await startServer(t)
  const room = docName('bad-client-id')
  const { alive, writer, reader } = await bystanders(t, server, room)
  const d = new Y.Doc()
  d.clientID = 1
  d.getText('text').insert(0, 'big id content')
  const valid = Y.encodeStateAsUpdate(d) // 01 01 01 00 …: one client, one struct, client 1
  assert.equal(valid[2], 1)
  const insertBy = (client) => new Uint8Array([...valid.slice(0, 2), ...varUintBig(client), ...valid.slice(3)])
  // No structs; a delete set naming item (client, 0).
  const deletionBy = (client) => new Uint8Array([0, 1, ...varUintBig(client), 1, 0, 1])
  const awarenessBy = (client) => {
    const state = new TextEncoder().encode(JSON.stringify({ user: { name: 'big' } }))
    return varBytes(1, null, new Uint8Array([1, ...varUintBig(client), 1, ...varUintBig(state.length), ...state]))
  }

  const lossy = 2n ** 60n + 1n
  // Yjs takes such an update, and reads a different client id than was sent.
  const seen = new Y.Doc()
  Y.applyUpdate(seen, insertBy(lossy))
  assert.equal(seen.getText('text').toString(), 'big id content')
  assert.notDeepEqual(stateVectorClients(seen), [lossy], 'JS decoding loses precision on 2^60 + 1')

  const cases = []
  for (const [name, id] of [['2^53', 2n ** 53n], ['2^60 + 1', lossy], ['2^64 - 1', 2n ** 64n - 1n]]) {
    cases.push(
      [`an update (sync update) by client ${name}`, (r) => r.send(encodeUpdate(insertBy(id)))],
      [`an update (sync step 2) by client ${name}`, (r) => r.send(encodeStep2(insertBy(id)))],
      [`a delete set naming client ${name}`, (r) => r.send(encodeUpdate(deletionBy(id)))],
      [`awareness of client ${name}`, (r) => r.send(awarenessBy(id))]
    )
  }
  for (const [label, send] of cases) {
    const close = await expectClose(t, server, room, send, { code: 4400, label })
    assert.match(close.reason, /2\^53/, `${label}: the reason names the limit`)
    await alive(label)
  }

  // Nothing of it reached the stock clients, and a newcomer syncing from the
  // server sees exactly what they see.
  const newcomer = providerClient(t, server, room, { name: 'newcomer' })
  await newcomer.synced()
  await waitFor(() => newcomer.text.toString() === writer.text.toString(), {
    message: 'the newcomer has the writer\'s text',
    describe: () => ({ newcomer: newcomer.text.toString(), writer: writer.text.toString() })
  })
  for (const c of [writer, reader, newcomer]) {
    assert.ok(!c.text.toString().includes('big id content'), `${c.name}: nothing of a refused update was applied`)
    assert.ok(stateVectorClients(c.doc).every((id) => id <= MAX_SAFE), `${c.name}: only safe client ids`)
    assert.deepEqual(Y.encodeStateVector(c.doc), Y.encodeStateVector(writer.doc), `${c.name} agrees with the writer`)
    assert.deepEqual(Y.encodeStateVector(c.doc), Y.encodeStateVector(newcomer.doc), `${c.name} agrees with the server`)
    for (const id of c.awareness.getStates().keys()) {
      assert.ok(BigInt(id) <= MAX_SAFE, `${c.name}: no presence of client ${id}`)
    }
  }
})

test('bad input: a frame over --max-frame-bytes gets 1009; other clients go on', async (t) => {
  const server = await startServer(t, { args: ['--max-frame-bytes', '4096'] })
  const room = docName('big')
  const { alive, reader } = await bystanders(t, server, room)
  const d = new Y.Doc()
  d.getText('text').insert(0, 'x'.repeat(10_000))
  await expectClose(t, server, room, (r) => r.sendUpdate(Y.encodeStateAsUpdate(d)), { code: 1009, label: 'a 10 kB update' })
  await alive('an oversized frame')
  assert.ok(!reader.text.toString().includes('xxxxxxxx'), 'the oversized update was not applied')
  // Just under the limit is fine.
  const ok = new Y.Doc()
  ok.getText('text').insert(0, 'y'.repeat(3000))
  const raw = await RawClient.connect(t, server.wsUrl(room))
  raw.sendUpdate(Y.encodeStateAsUpdate(ok))
  await raw.barrier()
  assert.equal(raw.close, null)
  await waitFor(() => reader.text.toString().includes('y'.repeat(3000)), 'an update under the limit is applied and relayed')
})

test('bad input: mutated (bit-flipped) Yjs updates are applied or refused with 4400, and never take their document down', async (t) => {
  const server = await startServer(t)
  const rnd = prng(Number(process.env.MUTATION_SEED ?? 9))
  const COUNT = Number(process.env.MUTATION_COUNT ?? 60)
  const outcomes = {}
  for (let i = 0; i < COUNT; i++) {
    const d = new Y.Doc()
    for (let k = 0, n = 1 + rnd.int(6); k < n; k++) randomEdit(d, rnd, `m${k}`)
    const update = Y.encodeStateAsUpdate(d)
    for (let k = 0, n = 1 + rnd.int(3); k < n; k++) {
      const at = rnd.int(update.length)
      update[at] = rnd.int(3) === 0 ? rnd.int(256) : update[at] ^ (1 << rnd.int(8))
    }
    const room = docName(`mut${i}`)
    const raw = await RawClient.connect(t, server.wsUrl(room))
    raw.sendUpdate(update)
    const outcome = await raw.barrier(5000).then(() => 'applied', () => raw.close)
    raw.terminate()
    const hex = Buffer.from(update).toString('hex')
    assert.ok(outcome === 'applied' || outcome?.code === 4400,
      `mutated update #${i} (${hex}): applied or refused with 4400, got ${JSON.stringify(outcome)}`)
    const check = await RawClient.connect(t, server.wsUrl(room)).then((c) => c.barrier(5000).then(() => { c.terminate(); return 'served' }))
      .catch((e) => `not served: ${e.message}`)
    assert.equal(check, 'served', `after mutated update #${i} (${hex}) the document is still served`)
    const key = outcome === 'applied' ? 'applied' : `${outcome.code} ${outcome.reason}`
    outcomes[key] = (outcomes[key] ?? 0) + 1
  }
  t.diagnostic(`outcomes: ${JSON.stringify(outcomes)}`)
})
