// A stock client keeps editing while the server is down (SIGKILL, then
// SIGTERM) and its edits reach the server once it is back on the same port and
// data directory. Graceful shutdown closes sockets with 1001 and loses nothing.

import assert from 'node:assert/strict'
import * as Y from 'yjs'
import { startServer, quireTest as test } from './helpers/server.js'
import { providerClient, RawClient } from './helpers/clients.js'
import { waitFor, docName } from './helpers/wait.js'
import { snapshot, sameState, assertSameContent, pmText, paragraph, heading, bold } from './helpers/content.js'

const hasText = (c, s) => c.text.toString().includes(s)
const hasBlock = (c, s) => pmText(snapshot(c.doc).pm).includes(s)

test('offline edits made while the server is killed (SIGKILL) reach it after a restart on the same port', async (t) => {
  const server = await startServer(t)
  const room = docName('offline')
  const a = providerClient(t, server, room, { name: 'A' })
  await a.synced()

  // Online edits, confirmed by an observer.
  a.text.insert(0, 'online;')
  a.fragment.insert(0, [heading(1, 'Online heading'), paragraph('online ', bold('para'))])
  const o = providerClient(t, server, room, { name: 'observer' })
  await waitFor(() => hasText(o, 'online;') && hasBlock(o, 'online para'), 'the observer sees A\'s online edits')
  o.destroy()
  // And one more that may or may not reach the server before the crash.
  a.text.insert(a.text.length, 'racing-the-crash;')

  await server.crash()
  await waitFor(() => !a.provider.wsconnected, { message: 'A notices the server is gone', timeout: 5000 })

  // Offline edits: text, new blocks, an attribute change and a deletion.
  a.text.insert(a.text.length, 'offline-1;')
  a.fragment.insert(a.fragment.length, [paragraph('written ', bold('offline'))])
  a.fragment.get(0).setAttribute('level', 2)
  a.text.insert(0, 'offline-2;')
  a.fragment.delete(1, 1) // the online paragraph
  // The provider keeps retrying while the server is down.
  const socketsBefore = a.log.sockets.length
  await waitFor(() => a.log.sockets.length > socketsBefore, { message: 'A retries the connection while the server is down', timeout: 5000 })

  await server.start()
  await a.synced(15_000)

  const b = providerClient(t, server, room, { name: 'B' })
  await b.synced()
  await waitFor(() => sameState(b.doc, a.doc), {
    timeout: 10_000,
    message: 'fresh client B has everything A wrote before and during the outage',
    describe: () => ({ a: snapshot(a.doc).text, b: snapshot(b.doc).text, bXml: snapshot(b.doc).xml })
  })
  assertSameContent(b.doc, a.doc, 'B vs A')
  const s = snapshot(b.doc)
  for (const needle of ['online;', 'racing-the-crash;', 'offline-1;', 'offline-2;']) assert.ok(s.text.includes(needle), `B's text has '${needle}': ${s.text}`)
  assert.ok(pmText(s.pm).includes('written offline'))
  assert.ok(!pmText(s.pm).includes('online para'), 'the offline deletion of a block reached the server')
  assert.equal(s.pm.content[0].attrs.level, 2, 'the offline attribute change reached the server')

  // The re-sent edits were stored, not just relayed: crash again, nobody connected.
  a.destroy()
  b.destroy()
  await server.crash()
  await server.start()
  const c = providerClient(t, server, room, { name: 'C' })
  await c.synced()
  await waitFor(() => JSON.stringify(snapshot(c.doc)) === JSON.stringify(s), {
    message: 'after another crash, a fresh client gets the same document',
    describe: () => snapshot(c.doc).text
  })
})

test('graceful shutdown (SIGTERM): sockets closed with 1001, pending writes flushed, offline edits merged after restart', async (t) => {
  // A long group-commit window keeps appends pending when SIGTERM arrives:
  // only a shutdown that flushes them keeps them.
  const server = await startServer(t, { args: ['--append-window-ms', '1500'] })
  const room = docName('sigterm')
  const a = providerClient(t, server, room, { name: 'A' })
  const b = providerClient(t, server, room, { name: 'B' })
  await Promise.all([a.synced(), b.synced()])
  a.text.insert(0, 'before-term;')
  a.fragment.insert(0, [paragraph('before ', bold('term'))])
  await waitFor(() => sameState(a.doc, b.doc), 'B sees A\'s edits')

  // A raw writer on a second document, whose updates only the server holds
  // (its only observer leaves before the restart, and the raw socket never
  // re-sends): they survive only if the shutdown flushes them.
  const room2 = docName('sigterm-flush')
  const raw = await RawClient.connect(t, server.wsUrl(room2))
  const rawDoc = new Y.Doc()
  rawDoc.on('update', (u) => raw.sendUpdate(u))
  for (let i = 0; i < 5; i++) rawDoc.getText('text').insert(i * 3, `r${i};`)
  const expected = rawDoc.getText('text').toString()
  const watcher = providerClient(t, server, room2, { name: 'watcher' })
  await waitFor(() => watcher.text.toString() === expected, 'the watcher sees the raw writer\'s updates (applied by the server)')
  watcher.destroy()

  const { code, signal, ms } = await server.terminate(10_000)
  assert.equal(code, 0, `quire exits with status 0 on SIGTERM (got code ${code}, signal ${signal})\n${server.logTail()}`)
  t.diagnostic(`SIGTERM to exit: ${ms} ms`)

  for (const c of [a, b]) {
    await waitFor(() => c.log.closes.length > 0, `${c.name} sees its socket closed`)
    assert.equal(c.log.closes[0].code, 1001, `${c.name}: graceful shutdown closes with 1001 (going away), got ${JSON.stringify(c.log.closes[0])}`)
  }
  await raw.waitClosed()
  assert.equal(raw.close.code, 1001, `raw socket: close code 1001, got ${JSON.stringify(raw.close)}`)

  // Offline edits on A while the server is down; B leaves for good.
  b.destroy()
  a.text.insert(a.text.length, 'during-restart;')
  a.fragment.insert(a.fragment.length, [paragraph('during restart')])

  await server.start()
  await a.synced(15_000)
  const c = providerClient(t, server, room, { name: 'C' })
  await c.synced()
  await waitFor(() => sameState(c.doc, a.doc), {
    message: 'fresh client C has A\'s edits from before the shutdown and from while it was down',
    describe: () => ({ a: snapshot(a.doc).xml, c: snapshot(c.doc).xml })
  })
  assertSameContent(c.doc, a.doc, 'C vs A')
  assert.ok(c.text.toString().includes('before-term;') && c.text.toString().includes('during-restart;'))

  const check = providerClient(t, server, room2, { name: 'check' })
  await check.synced()
  await waitFor(() => check.text.toString() === expected, {
    timeout: 5000,
    message: `updates still pending in the group-commit window at SIGTERM were flushed (expected '${expected}')`,
    describe: () => check.text.toString()
  })
})
