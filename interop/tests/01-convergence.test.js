// Two stock y-websocket clients edit one document concurrently through Quire —
// a Y.Text and a Tiptap-shaped Y.XmlFragment('default') — and converge; a late
// joiner receives the full state.

import assert from 'node:assert/strict'
import { startServer, quireTest as test } from './helpers/server.js'
import { providerClient } from './helpers/clients.js'
import { waitFor, docName, prng } from './helpers/wait.js'
import { snapshot, stateVector, sameState, assertSameContent, pmText, paragraph, heading, bulletList, bold, italic, link, el, text } from './helpers/content.js'

test('two stock clients converge on concurrent Y.Text and Tiptap XmlFragment edits; a late joiner gets everything', async (t) => {
  const server = await startServer(t)
  const room = docName('converge')
  const a = providerClient(t, server, room, { name: 'A' })
  const b = providerClient(t, server, room, { name: 'B' })
  await Promise.all([a.synced(), b.synced()])
  assert.deepEqual(a.syncedEvents, [true], 'A: `synced` fired once with true')
  assert.deepEqual(b.syncedEvents, [true], 'B: `synced` fired once with true')

  const converged = (...cs) => waitFor(() => cs.every((c) => sameState(c.doc, cs[0].doc)), {
    message: `${cs.map((c) => c.name).join(', ')} converge`,
    describe: () => Object.fromEntries(cs.map((c) => [c.name, { sv: stateVector(c.doc), ...snapshot(c.doc) }]))
  })

  // Round 1: both type into the empty Y.Text and build the fragment in the same tick,
  // so neither has seen the other's edit: truly concurrent.
  a.text.insert(0, 'Hello from A. ')
  b.text.insert(0, 'Bonjour de B. ')
  a.fragment.insert(0, [heading(1, 'Title by ', bold('A')), paragraph('A writes ', italic('italic'), ' and ', link('a link', 'https://example.com/a'))])
  b.fragment.insert(0, [heading(2, 'Subtitle by B'), bulletList('first', ['second ', bold('bold')])])
  await converged(a, b)

  // Round 2: concurrent edits inside the same paragraph and the same text position,
  // attribute changes, formatting and deletions.
  const rnd = prng(1)
  for (let i = 0; i < 20; i++) {
    for (const c of [a, b]) {
      const len = c.text.length
      const op = rnd.int(3)
      if (op === 0 || len < 4) c.text.insert(rnd.int(len + 1), `${c.name}${i}`)
      else if (op === 1) c.text.delete(rnd.int(len - 2), 2)
      else c.text.format(rnd.int(len - 2), 2, { bold: true })
    }
  }
  const paraOf = (c) => c.fragment.toArray().find((n) => n.nodeName === 'paragraph')
  paraOf(a).get(0).insert(0, 'A-prefix ', { bold: {} })
  paraOf(b).get(0).insert(0, 'B-prefix ')
  paraOf(b).get(0).format(0, 1, { italic: {} })
  a.fragment.get(0).setAttribute('level', 3)
  b.fragment.get(0).setAttribute('textAlign', 'center')
  a.fragment.insert(a.fragment.length, [el('blockquote', {}, [paragraph('quoted by A')])])
  b.fragment.insert(b.fragment.length, [el('codeBlock', { language: 'rust' }, [text('fn main() {}')])])
  await converged(a, b)

  const s = snapshot(a.doc)
  const plain = pmText(s.pm)
  for (const needle of ['A-prefix', 'B-prefix', 'quoted by A', 'fn main() {}', 'Subtitle by B', 'Title by A']) {
    assert.ok(plain.includes(needle), `merged fragment keeps both sides' content: '${needle}' missing from ${JSON.stringify(plain)}`)
  }
  const headingNode = s.pm.content.find((n) => n.type === 'heading')
  assert.ok(headingNode, 'a heading survives')
  assert.equal(typeof s.pm.content.find((n) => n.type === 'heading' && n.attrs?.level === 3)?.attrs.level, 'number',
    'numeric heading attribute stays a number after the round trip through the server')
  assert.ok(s.text.includes('A') && s.text.includes('B'), `both clients' text survives: ${s.text}`)
  assertSameContent(b.doc, a.doc, 'B vs A')

  // A late joiner receives the full state from the server alone.
  const c = providerClient(t, server, room, { name: 'C' })
  await c.synced()
  assert.deepEqual(c.syncedEvents, [true], 'C: `synced` fired')
  await converged(a, b, c)
  assertSameContent(c.doc, a.doc, 'late joiner C vs A')
  assert.deepEqual(stateVector(c.doc), stateVector(a.doc), 'late joiner has the same state vector')

  // And edits keep flowing in all directions afterwards.
  c.text.insert(0, 'C! ')
  a.fragment.insert(0, [paragraph('after C joined')])
  await converged(a, b, c)
  assert.ok(b.text.toString().startsWith('C! '), 'B sees C\'s edit')
})
