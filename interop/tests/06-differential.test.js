// Differential checks of the server's own CRDT (yrs) against Yjs, for the
// known yrs↔Yjs divergences on XmlFragment (ECOSYSTEM.md: y-crdt #605, #632):
// the same updates are integrated by pure Yjs in Node (the reference) and by
// Quire; what Quire hands a fresh client — before and after a restart, i.e.
// re-encoded by yrs from its own integration — must be semantically
// identical (ProseMirror JSON deep-equal, same Y.Text, same state vector).

import assert from 'node:assert/strict'
import * as Y from 'yjs'
import { startServer, quireTest as test } from './helpers/server.js'
import { providerClient, RawClient, MSG_SYNC, SYNC_STEP1, SYNC_STEP2 } from './helpers/clients.js'
import { waitFor, docName, prng } from './helpers/wait.js'
import { snapshot, stateVector, sameState, assertSameContent, paragraph, heading, bulletList, bold, italic, link, el, text, FRAGMENT } from './helpers/content.js'
import { randomEdit } from './helpers/fuzz.js'

/** The whole document as the server has it now, via a raw step 1 with an empty state vector. */
async function serverState (t, server, room) {
  const raw = await RawClient.connect(t, server.wsUrl(room))
  const reply = await raw.barrier()
  raw.terminate()
  const doc = new Y.Doc()
  Y.applyUpdate(doc, reply.payload)
  return doc
}

/** Merges several docs' states with pure Yjs: the reference. */
function merged (...docs) {
  const ref = new Y.Doc()
  for (const d of docs) Y.applyUpdate(ref, Y.encodeStateAsUpdate(d))
  return ref
}

function assertMatchesReference (actual, ref, label) {
  assertSameContent(actual, ref, label)
  assert.deepEqual(stateVector(actual), stateVector(ref), `${label}: state vector`)
}

test('differential: concurrent Tiptap edits from several stock clients, incl. deleting each other\'s nodes and an offline step-2 diff, survive a restart', async (t) => {
  const server = await startServer(t)
  const room = docName('diff')
  const [a, b, c] = ['A', 'B', 'C'].map((name) => providerClient(t, server, room, { name }))
  const off = providerClient(t, server, room, { name: 'Offline' })
  const all = [a, b, c, off]
  const converged = (cs) => waitFor(() => cs.every((x) => sameState(x.doc, cs[0].doc)), {
    message: `${cs.map((x) => x.name)} converge`,
    describe: () => Object.fromEntries(cs.map((x) => [x.name, snapshot(x.doc).xml]))
  })
  await Promise.all(all.map((x) => x.synced()))

  a.fragment.insert(0, [
    heading(1, 'Doc by ', bold('A')),
    paragraph('A1 ', italic('it'), ' ', link('link', 'https://example.com/a1')),
    bulletList('A item 1', ['A item ', bold('2')])
  ])
  b.fragment.insert(0, [heading(2, 'B heading'), paragraph('B para ', bold('bold'))])
  c.text.insert(0, 'C text. ')
  await converged(all)

  // The offline client leaves, edits (deleting nodes others made), and later
  // comes back with a sync step 2 carrying all of it.
  off.provider.disconnect()
  await waitFor(() => !off.provider.wsconnected, 'Offline is disconnected')
  const find = (cl, name, pred = () => true) => cl.fragment.toArray().findIndex((n) => n.nodeName === name && pred(n))
  off.fragment.delete(find(off, 'heading', (n) => n.getAttribute('level') === 2), 1) // B's heading
  const list = off.fragment.get(find(off, 'bulletList'))
  list.get(0).setAttribute('checked', true) // attribute on A's node …
  list.delete(0, 1) // … then delete that node: a deleted cross-client XML segment
  off.fragment.insert(off.fragment.length, [paragraph('written offline ', bold('Off'))])
  off.text.insert(off.text.length, 'offline text. ')

  // Meanwhile, concurrently online: edits in the same nodes, same tick on A, B, C.
  const aPara = a.fragment.get(find(a, 'paragraph', (n) => n.toString().includes('A1')))
  aPara.get(0).insert(0, 'A-edit ', { bold: {} })
  b.fragment.get(find(b, 'paragraph', (n) => n.toString().includes('A1'))).get(0).insert(0, 'B-edit ')
  c.fragment.delete(find(c, 'heading', (n) => n.getAttribute('level') === 1), 1) // A's heading, deleted by C
  a.fragment.get(find(a, 'bulletList')).get(1).get(0).get(0).insert(0, 'A-in-item ')
  b.fragment.insert(0, [el('codeBlock', { language: 'rust' }, [text('fn b() {}')])])
  c.text.insert(0, 'C2. ')
  await converged([a, b, c])

  // Round of random concurrent edits by the online clients.
  const rnd = prng(606)
  for (let i = 0; i < 30; i++) for (const cl of [a, b, c]) randomEdit(cl.doc, rnd, `${cl.name}${i}`)
  await converged([a, b, c])

  off.provider.connect()
  await off.synced()
  await converged(all)

  const ref = merged(...all.map((x) => x.doc))
  for (const x of all) assertMatchesReference(x.doc, ref, `${x.name} vs pure-Yjs merge`)
  assertMatchesReference(await serverState(t, server, room), ref, 'server state (before restart) vs pure-Yjs merge')

  for (const x of all) x.destroy()
  await server.terminate()
  await server.start()
  const fresh = providerClient(t, server, room, { name: 'fresh' })
  await fresh.synced()
  assertMatchesReference(fresh.doc, ref, 'fresh client after restart vs pure-Yjs merge')
})

/**
 * The shape of y-crdt #605: history with a deleted cross-client XML node, a
 * `before` state, then a state-vector diff replacing a node, both sent as
 * sync step 2 (what a reconnecting y-websocket client sends).
 */
function issue605Updates (variant) {
  const x1 = new Y.Doc()
  const x2 = new Y.Doc()
  const sync = () => {
    Y.applyUpdate(x2, Y.encodeStateAsUpdate(x1, Y.encodeStateVector(x2)))
    Y.applyUpdate(x1, Y.encodeStateAsUpdate(x2, Y.encodeStateVector(x1)))
  }
  const p = new Y.XmlElement('paragraph')
  x1.getXmlFragment(FRAGMENT).insert(0, [p])
  const tmp = new Y.XmlElement('tmp')
  p.insert(0, [tmp])
  if (variant === 1) tmp.insert(0, [new Y.XmlText('tmp text')])
  sync()
  const p2 = x2.getXmlFragment(FRAGMENT).get(0)
  p2.get(0).setAttribute('k', 'v')
  p2.delete(0, 1)
  sync()
  p.insert(p.length, [new Y.XmlElement('a')])
  if (variant === 2) p.insert(p.length, [new Y.XmlText('after')])
  sync()
  const before = Y.encodeStateAsUpdate(x1)
  const beforeDoc = new Y.Doc()
  Y.applyUpdate(beforeDoc, before)
  const y3 = new Y.Doc()
  Y.applyUpdate(y3, before)
  const p3 = y3.getXmlFragment(FRAGMENT).get(0)
  const ai = p3.toArray().findIndex((n) => n.nodeName === 'a')
  p3.delete(ai, 1)
  p3.insert(ai, [new Y.XmlElement('b')])
  const diff = Y.encodeStateAsUpdate(y3, Y.encodeStateVector(beforeDoc))
  return [before, diff]
}

test('differential: y-crdt #605 shape (deleted cross-client XML node, then a step-2 diff replacing a node)', async (t) => {
  const server = await startServer(t)
  const cases = []
  for (const variant of [0, 1, 2]) {
    const room = docName(`i605-${variant}`)
    const ref = new Y.Doc()
    for (const u of issue605Updates(variant)) {
      Y.applyUpdate(ref, u)
      const raw = await RawClient.connect(t, server.wsUrl(room))
      raw.sendStep2(u)
      await raw.barrier()
      raw.terminate()
    }
    const label = `variant ${variant} (Yjs: ${ref.getXmlFragment(FRAGMENT).toJSON()})`
    assertMatchesReference(await serverState(t, server, room), ref, `${label}: server state`)
    cases.push({ room, ref, label })
  }
  await server.restart({ signal: 'SIGKILL' })
  for (const { room, ref, label } of cases) {
    const fresh = providerClient(t, server, room, { name: 'fresh' })
    await fresh.synced()
    assertMatchesReference(fresh.doc, ref, `${label}: fresh stock client after restart`)
    fresh.destroy()
  }
})

test('differential: randomized multi-client XmlFragment histories synced by sync-step-2 diffs match pure Yjs, before and after restart', async (t) => {
  const server = await startServer(t, { args: ['--compact-after-updates', '7'] })
  // More with e.g. FUZZ_SEEDS=200 FUZZ_STEPS=120 (default: a quick run).
  const SEEDS = Array.from({ length: Number(process.env.FUZZ_SEEDS ?? 6) }, (_, i) => Number(process.env.FUZZ_SEED_BASE ?? 1) + i)
  const STEPS = Number(process.env.FUZZ_STEPS ?? 40)
  const CLIENTS = 3
  const rooms = []
  const runSeed = async (seed) => {
    const room = docName(`fuzz-s${seed}`)
    const rnd = prng(seed)
    // Client ids from the seed too: they decide the order of concurrent
    // inserts, so a failure replays exactly.
    const docs = Array.from({ length: CLIENTS }, () => new Y.Doc())
    for (const d of docs) d.clientID = 1 + rnd.int(2 ** 31)
    // What the server was sent, integrated by Yjs in the same order.
    const model = new Y.Doc()
    const log = []
    const syncThroughServer = async (i) => {
      const raw = await RawClient.connect(t, server.wsUrl(room))
      const step1 = await raw.waitForFrame((f) => f.type === MSG_SYNC && f.sub === SYNC_STEP1, { message: 'server step 1' })
      const diff = Y.encodeStateAsUpdate(docs[i], step1.payload)
      raw.sendStep2(diff) // what a reconnecting y-websocket client sends
      Y.applyUpdate(model, diff)
      const from = raw.frames.length
      raw.sendStep1(Y.encodeStateVector(docs[i]))
      const step2 = await raw.waitForFrame((f) => f.type === MSG_SYNC && f.sub === SYNC_STEP2, { from, message: 'server step 2' })
      Y.applyUpdate(docs[i], step2.payload)
      raw.terminate()
    }
    for (let step = 0; step < STEPS; step++) {
      const i = rnd.int(CLIENTS)
      log.push(`c${i}: ${randomEdit(docs[i], rnd, `s${seed}c${i}e${step}`)}`)
      const r = rnd.int(10)
      if (r < 3) {
        await syncThroughServer(i)
        log.push(`c${i}: sync`)
      } else if (r === 3) {
        // Two clients sync with each other directly (e.g. over another
        // channel): the server later receives items from clients it never
        // talked to, mixed into someone else's step 2.
        const j = (i + 1) % CLIENTS
        Y.applyUpdate(docs[j], Y.encodeStateAsUpdate(docs[i], Y.encodeStateVector(docs[j])))
        log.push(`c${i} -> c${j} peer sync`)
      }
    }
    for (let i = 0; i < CLIENTS; i++) await syncThroughServer(i)
    for (let i = 0; i < CLIENTS; i++) await syncThroughServer(i)
    const ref = merged(...docs)
    assertMatchesReference(model, ref, `seed ${seed}: (sanity) Yjs model of what was sent`)
    for (let i = 0; i < CLIENTS; i++) assertMatchesReference(docs[i], ref, `seed ${seed}: client ${i} after syncing through Quire`)
    const fromServer = await serverState(t, server, room)
    assertMatchesReference(fromServer, ref, `seed ${seed}: server state vs pure Yjs\n  ops: ${log.join('; ')}\n`)
    rooms.push({ room, ref, seed, log })
  }
  for (const seed of SEEDS) {
    try {
      await runSeed(seed)
    } catch (e) {
      e.message = `seed ${seed} (re-run with FUZZ_SEED_BASE=${seed} FUZZ_SEEDS=1): ${e.message}`
      throw e
    }
  }

  await server.restart({ signal: 'SIGKILL' })
  for (const { room, ref, seed, log } of rooms) {
    const fresh = providerClient(t, server, room, { name: `fresh-s${seed}` })
    await fresh.synced()
    assertMatchesReference(fresh.doc, ref, `seed ${seed}: fresh stock client after restart vs pure Yjs\n  ops: ${log.join('; ')}\n`)
    fresh.destroy()
  }
})

// A UTF-16 surrogate pair (an emoji) split by an insert between its halves —
// legal in Yjs, whose indices are UTF-16 code units — and then deleted. Yjs
// integrates this fine (the halves become U+FFFD); the server must too, and
// must never take the document down for everyone because of it.

test('differential: an emoji split by an insert between its UTF-16 halves, then deleted, is integrated like Yjs and the document stays up', async (t) => {
  const server = await startServer(t)
  const room = docName('surrogate')
  const a = providerClient(t, server, room, { name: 'A' })
  const b = providerClient(t, server, room, { name: 'B' })
  const observer = providerClient(t, server, room, { name: 'observer' })
  await Promise.all([a.synced(), b.synced(), observer.synced()])
  const all = [a, b, observer]
  const converged = (msg) => waitFor(() => all.every((x) => sameState(x.doc, a.doc)), {
    message: msg,
    timeout: 5000,
    describe: () => Object.fromEntries(all.map((x) => [x.name, { text: x.text.toString(), closes: x.log.closes.map((c) => `${c.code} ${c.reason}`).join(', ') }]))
  })

  a.text.insert(0, '😀x')
  a.fragment.insert(0, [paragraph('hi 😀 there')])
  await converged('B and the observer get A\'s emoji')
  b.text.insert(1, 'Z') // between the two halves of 😀
  b.fragment.get(0).get(0).insert(4, 'Z')
  await converged('everyone gets B\'s insert between the surrogate halves')
  a.text.delete(0, a.text.length)
  a.fragment.delete(0, 1)
  await converged('everyone gets A\'s deletion')

  for (const x of all) {
    assert.deepEqual(x.log.closes, [], `${x.name} was never disconnected (a server-side failure on this document closes every socket on it)`)
  }
  const ref = merged(a.doc, b.doc)
  assertMatchesReference(await serverState(t, server, room), ref, 'server state vs pure Yjs')
  // The document is still served to newcomers, and after a restart.
  const late = providerClient(t, server, room, { name: 'late' })
  await late.synced(5000)
  assertMatchesReference(late.doc, ref, 'late joiner')
  for (const x of [...all, late]) x.destroy()
  await server.restart({ signal: 'SIGTERM' })
  const fresh = providerClient(t, server, room, { name: 'fresh' })
  await fresh.synced(5000)
  assertMatchesReference(fresh.doc, ref, 'fresh client after restart')
})

test('differential: surrogate split, minimal form: one raw client, three updates', async (t) => {
  const server = await startServer(t)
  const room = docName('surrogate-raw')
  const raw = await RawClient.connect(t, server.wsUrl(room))
  const doc = new Y.Doc()
  doc.clientID = 1 // fixed bytes: 01 01 01 00 04 01 04 74 65 78 74 05 f0 9f 98 80 78 00 | … (see README)
  const text = doc.getText('text')
  doc.on('update', (u) => raw.sendUpdate(u))
  text.insert(0, '😀x') // 1. an emoji and a letter
  text.insert(1, 'Z') //   2. a letter between the emoji's UTF-16 halves
  text.delete(0, text.length) // 3. delete everything
  await raw.barrier(5000).catch((e) => {
    throw new Error(`the server stopped answering after three valid Yjs updates; socket closed with ${JSON.stringify(raw.close)} (${e.message.split('\n')[0]})`)
  })
  assert.equal(raw.close, null, 'socket still open')
  assertMatchesReference(await serverState(t, server, room), doc, 'server state vs Yjs')
})
