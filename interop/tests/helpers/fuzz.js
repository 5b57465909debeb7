// Random Tiptap-shaped edits on a Y.Doc, reproducible from a seed: block
// inserts, nested lists, attribute changes, text inserts/deletes/formatting,
// and deletions of any node — including nodes other clients created.

import * as Y from 'yjs'
import { FRAGMENT, TEXT, paragraph, heading, bulletList, el, text, bold, italic, link } from './content.js'

const WORDS = ['alpha', 'beta', 'gamma', 'delta', 'quire', 'yjs', 'yrs', 'tiptap', 'ünïcödé', '日本語', '😀 emoji']

// Astral characters (emoji) are UTF-16 surrogate pairs, and Yjs indices are
// UTF-16 code units. Editors never put a position between the two halves
// (lib0's diff avoids it), and yrs 0.28.1 mishandles it (see the surrogate
// tests in 06-differential.test.js), so by default random positions are moved
// off a pair's middle. FUZZ_SPLIT_SURROGATES=1 allows splitting.
const SPLIT_SURROGATES = process.env.FUZZ_SPLIT_SURROGATES === '1'

function plainText (t) {
  return t.toDelta().map((d) => (typeof d.insert === 'string' ? d.insert : ' ')).join('')
}

/** `pos`, moved forward if it falls between the halves of a surrogate pair in `t`. */
function safe (t, pos) {
  if (SPLIT_SURROGATES) return pos
  const s = plainText(t)
  const high = (c) => c >= 0xd800 && c <= 0xdbff
  return pos > 0 && pos < s.length && high(s.charCodeAt(pos - 1)) ? pos + 1 : pos
}

function allNodes (type, out = []) {
  for (const child of type.toArray()) {
    out.push(child)
    if (child instanceof Y.XmlElement) allNodes(child, out)
  }
  return out
}

function randomRuns (rnd, tag) {
  const word = () => `${rnd.pick(WORDS)}-${tag} `
  const kinds = [(s) => s, bold, italic, (s) => link(s, `https://example.com/${rnd.int(100)}`)]
  const runs = []
  for (let i = 0, n = 1 + rnd.int(3); i < n; i++) runs.push(rnd.pick(kinds)(word()))
  return runs
}

function randomBlock (rnd, tag) {
  switch (rnd.int(5)) {
    case 0: return heading(1 + rnd.int(3), ...randomRuns(rnd, tag))
    case 1: return bulletList(randomRuns(rnd, tag), randomRuns(rnd, tag))
    case 2: return el('blockquote', {}, [paragraph(...randomRuns(rnd, tag))])
    case 3: return el('codeBlock', { language: rnd.pick(['js', 'rust', null]) }, [text(`code ${tag}`)])
    default: return paragraph(...randomRuns(rnd, tag))
  }
}

/**
 * Applies one random edit to `doc`. `tag` marks the content (e.g. client and
 * step) so lost or duplicated pieces are easy to spot in a failure.
 * @returns {string} what was done
 */
export function randomEdit (doc, rnd, tag) {
  const fragment = doc.getXmlFragment(FRAGMENT)
  const ytext = doc.getText(TEXT)
  const nodes = allNodes(fragment)
  const elements = nodes.filter((n) => n instanceof Y.XmlElement)
  const texts = nodes.filter((n) => n instanceof Y.XmlText)
  const op = rnd.int(10)
  if (op <= 1 || nodes.length === 0) {
    const at = rnd.int(fragment.length + 1)
    fragment.insert(at, [randomBlock(rnd, tag)])
    return `insert block @${at}`
  }
  if (op === 2) {
    // delete one or two top-level blocks, whoever made them
    const at = rnd.int(fragment.length)
    const n = Math.min(1 + rnd.int(2), fragment.length - at)
    fragment.delete(at, n)
    return `delete ${n} blocks @${at}`
  }
  if (op === 3 && elements.length) {
    // delete a nested child (a list item, a text node, …)
    const parent = rnd.pick(elements)
    if (parent.length > 0) {
      const at = rnd.int(parent.length)
      parent.delete(at, 1)
      return `delete child @${at} of <${parent.nodeName}>`
    }
  }
  if (op === 4 && elements.length) {
    const e = rnd.pick(elements)
    const [k, v] = rnd.pick([['level', 1 + rnd.int(6)], ['textAlign', rnd.pick(['left', 'center', 'right'])], ['id', tag], ['checked', rnd.int(2) === 0]])
    e.setAttribute(k, v)
    return `set ${k}=${v} on <${e.nodeName}>`
  }
  if (op === 5 && elements.length) {
    // insert a block inside a nested element (a new list item, a quoted paragraph)
    const e = rnd.pick(elements.filter((x) => x.nodeName !== 'paragraph' && x.nodeName !== 'heading' && x.nodeName !== 'codeBlock').concat([fragment]))
    const at = rnd.int(e.length + 1)
    e.insert(at, [e.nodeName === 'bulletList' ? el('listItem', {}, [paragraph(...randomRuns(rnd, tag))]) : paragraph(...randomRuns(rnd, tag))])
    return `insert nested @${at} in <${e.nodeName ?? 'fragment'}>`
  }
  if (op === 6 && texts.length) {
    const t = rnd.pick(texts)
    const len = t.length
    if (len > 2) {
      const at = safe(t, rnd.int(len - 1))
      const n = safe(t, Math.min(len, at + 1 + rnd.int(5))) - at
      if (n <= 0) return 'nothing'
      t.delete(at, n)
      return `delete ${n} chars`
    }
  }
  if (op === 7 && texts.length) {
    const t = rnd.pick(texts)
    if (t.length > 1) {
      const at = safe(t, rnd.int(t.length - 1))
      const end = safe(t, Math.min(t.length, at + 1 + rnd.int(t.length - at)))
      if (end <= at) return 'nothing'
      t.format(at, end - at, rnd.pick([{ bold: {} }, { italic: {} }, { bold: null }, { link: { href: `https://x/${tag}` } }]))
      return 'format'
    }
  }
  if (op === 8) {
    const len = ytext.length
    if (len > 3 && rnd.int(3) === 0) {
      const at = safe(ytext, rnd.int(len - 2))
      ytext.delete(at, safe(ytext, Math.min(len, at + 2)) - at)
      return 'Y.Text delete'
    }
    ytext.insert(safe(ytext, rnd.int(len + 1)), `${tag} `)
    return 'Y.Text insert'
  }
  if (texts.length) {
    const t = rnd.pick(texts)
    const at = safe(t, rnd.int(t.length + 1))
    t.insert(at, `${tag} `, rnd.pick([{}, { bold: {} }, { italic: {} }]))
    return `insert text @${at}`
  }
  fragment.insert(0, [paragraph(tag)])
  return 'insert paragraph @0'
}
