// After every client has left and the server restarted (gracefully, or killed),
// a new client gets exactly the same document: Y.Text and XmlFragment.

import assert from 'node:assert/strict'
import * as Y from 'yjs'
import { METRICS_TOKEN, startServer, quireTest as test } from './helpers/server.js'
import { providerClient } from './helpers/clients.js'
import { waitFor, docName, prng } from './helpers/wait.js'
import { snapshot, sameState, assertSameContent, paragraph, heading, bulletList, bold, italic, link, el, text } from './helpers/content.js'

/** Prometheus text → value of the first sample of `name` (labels ignored, summed). */
async function metric (server, name) {
  const response = await fetch(`${server.httpUrl}/metrics`, { headers: { Authorization: `Bearer ${METRICS_TOKEN}` } })
  assert.equal(response.status, 200, 'GET /metrics with the operator token')
  const body = await response.text()
  let sum = null
  for (const line of body.split('\n')) {
    if (line.startsWith('#')) continue
    const m = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)/.exec(line)
    if (m && m[1] === name) sum = (sum ?? 0) + Number(m[3])
  }
  return sum
}

/** Two clients write a rich document; returns a detached copy of the result. */
async function writeDocument (t, server, room) {
  const a = providerClient(t, server, room, { name: 'A' })
  const b = providerClient(t, server, room, { name: 'B' })
  await Promise.all([a.synced(), b.synced()])
  a.fragment.insert(0, [
    heading(1, 'Persistence ', italic('matters')),
    paragraph('Plain, ', bold('bold'), ', and ', link('linked', 'https://quire.example/x?y=1'), '.'),
    bulletList('one', ['two ', bold('2')], 'three')
  ])
  b.text.insert(0, 'The quick brown fox. ')
  await waitFor(() => sameState(a.doc, b.doc), 'A and B converge (1)')
  const rnd = prng(5)
  for (let i = 0; i < 40; i++) {
    const c = i % 2 ? a : b
    const len = c.text.length
    if (rnd.int(4) === 0 && len > 3) c.text.delete(rnd.int(len - 2), 2)
    else c.text.insert(rnd.int(len + 1), `${c.name}${i} `)
    if (i % 10 === 0) c.fragment.insert(c.fragment.length, [paragraph(`${c.name} block ${i} `, bold('b'))])
  }
  b.fragment.get(0).setAttribute('level', 2)
  a.fragment.insert(1, [el('codeBlock', { language: 'js' }, [text('const x = 1')])])
  b.fragment.delete(2, 1) // A's "Plain, bold…" paragraph, deleted by B
  await waitFor(() => sameState(a.doc, b.doc), 'A and B converge (2)')
  const ref = new Y.Doc()
  Y.applyUpdate(ref, Y.encodeStateAsUpdate(a.doc))
  a.destroy()
  b.destroy()
  return ref
}

async function readBack (t, server, room, name) {
  const c = providerClient(t, server, room, { name })
  await c.synced()
  return c
}

for (const variant of [
  { label: 'default settings', args: [] },
  { label: 'aggressive compaction and idle unload', args: ['--compact-after-updates', '5', '--idle-unload-secs', '1'] }
]) {
  test(`persistence (${variant.label}): after all clients leave and restarts, a new client gets the exact same document`, async (t) => {
    const server = await startServer(t, { args: variant.args })
    const room = docName('persist')
    const ref = await writeDocument(t, server, room)
    const expected = snapshot(ref)
    assert.ok(expected.text.length > 20 && expected.pm.content.length >= 5, 'the reference document is not trivial')

    if (variant.args.length) {
      // The log was compacted into a snapshot and the idle document unloaded:
      // the next client is served from what is stored.
      await waitFor(async () => (await metric(server, 'quire_compactions_total')) > 0, 'at least one compaction ran')
      await waitFor(async () => (await metric(server, 'quire_documents_live')) === 0, { timeout: 10_000, message: 'the idle document is unloaded' })
      const c = await readBack(t, server, room, 'after-unload')
      assertSameContent(c.doc, ref, 'after compaction and unload, before any restart')
      c.destroy()
    }

    const { code } = await server.terminate()
    assert.equal(code, 0, 'graceful exit')
    await server.start()
    const c = await readBack(t, server, room, 'after-SIGTERM')
    assertSameContent(c.doc, ref, 'after SIGTERM + restart')
    c.destroy()

    await server.crash()
    await server.start()
    const d = await readBack(t, server, room, 'after-SIGKILL')
    assertSameContent(d.doc, ref, 'after SIGKILL + restart')
    assert.deepEqual(snapshot(d.doc), expected)
  })
}
