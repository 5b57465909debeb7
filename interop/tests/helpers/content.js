// Tiptap-shaped document content, built the way @tiptap/extension-collaboration
// (y-prosemirror / @tiptap/y-tiptap) stores it: a Y.XmlFragment named
// 'default' holding Y.XmlElement nodes named after ProseMirror node types,
// node attributes as element attributes (numbers stay numbers), and text as
// Y.XmlText whose formatting attributes are the marks (`{ bold: {} }`,
// `{ link: { href, target } }`).

import assert from 'node:assert/strict'
import * as Y from 'yjs'

export const FRAGMENT = 'default'
export const TEXT = 'text'

/**
 * A text node: runs of `[string, marks?]`.
 * @param {...(string | [string, object?])} runs
 */
export function text (...runs) {
  const t = new Y.XmlText()
  let at = 0
  for (const run of runs) {
    const [s, marks] = typeof run === 'string' ? [run, undefined] : run
    // An explicit `{}`: without it Y.Text continues the formatting on the left.
    t.insert(at, s, marks ?? {})
    at += s.length
  }
  return t
}

/**
 * An element node. Children may be strings (plain text) or Y.Xml nodes.
 * @param {string} name
 * @param {Record<string, any>} [attrs]
 * @param {Array<Y.XmlElement | Y.XmlText | string>} [children]
 */
export function el (name, attrs = {}, children = []) {
  const e = new Y.XmlElement(name)
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v)
  e.insert(0, children.map((c) => (typeof c === 'string' ? text(c) : c)))
  return e
}

export const paragraph = (...runs) => el('paragraph', {}, [text(...runs)])
export const heading = (level, ...runs) => el('heading', { level }, [text(...runs)])
export const bulletList = (...items) =>
  el('bulletList', {}, items.map((i) => el('listItem', {}, [paragraph(...[].concat(i))])))
export const bold = (s) => [s, { bold: {} }]
export const italic = (s) => [s, { italic: {} }]
export const link = (s, href) => [s, { link: { href, target: '_blank', rel: 'noopener noreferrer nofollow', class: null } }]

/**
 * ProseMirror JSON of a fragment, as y-prosemirror's
 * `yXmlFragmentToProsemirrorJSON` produces it (minus schema defaults): the
 * structure, attributes (with their JSON types) and marks are all compared.
 * @param {Y.XmlFragment} fragment
 */
export function fragmentToPM (fragment) {
  return { type: 'doc', content: fragment.toArray().flatMap(nodeToPM) }
}

function nodeToPM (node) {
  if (node instanceof Y.XmlText) {
    return node.toDelta().map((d) => {
      const out = { type: 'text', text: d.insert }
      const marks = Object.entries(d.attributes ?? {}).map(([type, attrs]) => (
        attrs && typeof attrs === 'object' && Object.keys(attrs).length ? { type, attrs: canonical(attrs) } : { type }
      ))
      if (marks.length) out.marks = marks.sort((a, b) => a.type.localeCompare(b.type))
      return out
    })
  }
  if (node instanceof Y.XmlElement) {
    const out = { type: node.nodeName }
    const attrs = node.getAttributes()
    if (Object.keys(attrs).length) out.attrs = canonical(attrs)
    const content = node.toArray().flatMap(nodeToPM)
    if (content.length) out.content = content
    return [out]
  }
  return [{ type: 'unknown', value: String(node) }]
}

/**
 * A copy with object keys sorted, recursively. yrs re-encodes attribute maps
 * (e.g. link mark attributes) in a different key order than Yjs, which is
 * semantically irrelevant (see ECOSYSTEM.md): compare values, not key order.
 */
export function canonical (v) {
  if (Array.isArray(v)) return v.map(canonical)
  if (v && typeof v === 'object' && !(v instanceof Uint8Array)) {
    return Object.fromEntries(Object.keys(v).sort().map((k) => [k, canonical(v[k])]))
  }
  return v
}

/** The plain text of a ProseMirror JSON tree, blocks separated by newlines. */
export function pmText (node) {
  if (node.type === 'text') return node.text
  const inner = (node.content ?? []).map(pmText)
  return node.content?.some((c) => c.type === 'text') ? inner.join('') : inner.join('\n')
}

/** Everything the tests compare about a document. */
export function snapshot (doc) {
  const fragment = doc.getXmlFragment(FRAGMENT)
  return {
    text: doc.getText(TEXT).toString(),
    xml: fragment.toJSON(),
    pm: fragmentToPM(fragment)
  }
}

/** State vector as a sorted `[[client, clock], …]` array. */
export function stateVector (doc) {
  return [...Y.decodeStateVector(Y.encodeStateVector(doc)).entries()].sort((a, b) => a[0] - b[0])
}

export function sameState (a, b) {
  return JSON.stringify(stateVector(a)) === JSON.stringify(stateVector(b)) &&
    JSON.stringify(snapshot(a)) === JSON.stringify(snapshot(b))
}

/** Asserts `actual` holds exactly the content of `expected` (text, XML, ProseMirror JSON). */
export function assertSameContent (actual, expected, label = 'document') {
  const a = snapshot(actual)
  const e = snapshot(expected)
  assert.equal(a.text, e.text, `${label}: Y.Text differs`)
  assert.deepEqual(a.pm, e.pm, `${label}: ProseMirror JSON of XmlFragment('${FRAGMENT}') differs`)
  assert.equal(a.xml, e.xml, `${label}: XmlFragment.toJSON() differs`)
}
