// @vitest-environment happy-dom
//
// The moment the e2e selection test races for, made to happen every time:
// the page's selection has moved, ProseMirror has not had `selectionchange`
// yet, and a caret re-render (a metadata-only transaction that changes
// decorations, as y-tiptap's caret refresh does) arrives first.

import { Editor, Extension } from '@tiptap/core';
import Collaboration from '@tiptap/extension-collaboration';
import { Plugin, PluginKey } from '@tiptap/pm/state';
import { Decoration, DecorationSet } from '@tiptap/pm/view';
import StarterKit from '@tiptap/starter-kit';
import { afterEach, describe, expect, it } from 'vitest';
import * as Y from 'yjs';

import { PageSelection, readPageSelection } from './pageSelection';

/** Stands in for another person's caret: a widget moved by metadata-only transactions. */
const caretKey = new PluginKey<DecorationSet>('otherCaret');
const OtherCaret = Extension.create({
  name: 'otherCaret',
  addProseMirrorPlugins() {
    return [
      new Plugin<DecorationSet>({
        key: caretKey,
        state: {
          init: () => DecorationSet.empty,
          apply(tr, set) {
            const at = tr.getMeta(caretKey) as number | undefined;
            if (at === undefined) return set.map(tr.mapping, tr.doc);
            const caret = document.createElement('span');
            caret.className = 'other-caret';
            return DecorationSet.create(tr.doc, [Decoration.widget(at, caret)]);
          },
        },
        props: { decorations: (state) => caretKey.getState(state) },
      }),
    ];
  },
});

let editor: Editor | null = null;

/**
 * Holds back 'selectionchange' from ProseMirror: a browser delivers it a task
 * later, happy-dom at once. Registered before the editor's own listener, so
 * it runs first and can stop it.
 */
let holdSelectionChange = false;
const hold = (event: Event) => {
  if (holdSelectionChange) event.stopImmediatePropagation();
};

afterEach(() => {
  editor?.destroy();
  editor = null;
  holdSelectionChange = false;
  document.removeEventListener('selectionchange', hold);
  document.body.innerHTML = '';
});

function open(guarded: boolean, doc?: Y.Doc): Editor {
  document.addEventListener('selectionchange', hold);
  const element = document.createElement('div');
  document.body.append(element);
  editor = new Editor({
    element,
    extensions: [
      StarterKit.configure({ undoRedo: false }),
      OtherCaret,
      ...(guarded ? [PageSelection] : []),
      ...(doc ? [Collaboration.configure({ document: doc })] : []),
    ],
    content: doc ? undefined : '<p>first line</p><p>second line</p>',
  });
  if (doc) editor.commands.setContent('<p>first line</p><p>second line</p>');
  editor.view.focus();
  editor.commands.setTextSelection(1);
  return editor;
}

/** Select "second line" on the page only, as a click, End and Shift+Home do before 'selectionchange'. */
function selectSecondLineOnPage(e: Editor): void {
  const line = e.view.dom.querySelectorAll('p')[1]!.firstChild!;
  holdSelectionChange = true;
  document.getSelection()!.setBaseAndExtent(line, line.textContent!.length, line, 0);
}

/** The page's selection in document positions. */
function pageSelection(e: Editor): [number, number] {
  const s = document.getSelection()!;
  return [e.view.posAtDOM(s.anchorNode!, s.anchorOffset), e.view.posAtDOM(s.focusNode!, s.focusOffset)];
}

/** Another person types "New " at the start of the first line, in their own copy of the doc. */
function otherPersonTypes(doc: Y.Doc): void {
  const theirs = new Y.Doc();
  Y.applyUpdate(theirs, Y.encodeStateAsUpdate(doc));
  const firstLine = theirs.getXmlFragment('default').get(0) as Y.XmlElement;
  (firstLine.get(0) as Y.XmlText).insert(0, 'New ');
  Y.applyUpdate(doc, Y.encodeStateAsUpdate(theirs, Y.encodeStateVector(doc)), 'remote');
}

/** The other person's caret moves: what y-tiptap dispatches a tick after an awareness message. */
function otherCaretMoves(e: Editor): void {
  e.view.dispatch(e.state.tr.setMeta(caretKey, 3));
}

describe('the page selection guard', () => {
  it('without it, a caret re-render puts the old selection back on the page', () => {
    const e = open(false);
    selectSecondLineOnPage(e);
    expect(e.state.selection.anchor).toBe(1); // ProseMirror has not read it yet
    otherCaretMoves(e);
    expect(pageSelection(e)).toEqual([1, 1]);
  });

  it('reads the page selection before a caret re-render, which then keeps it', () => {
    const e = open(true);
    selectSecondLineOnPage(e);
    expect(e.state.selection.anchor).toBe(1);
    otherCaretMoves(e);
    expect([e.state.selection.anchor, e.state.selection.head]).toEqual([24, 13]);
    expect(pageSelection(e)).toEqual([24, 13]);
    // A shortcut now acts on the line the user selected.
    e.commands.toggleBold();
    expect(e.getHTML()).toBe('<p>first line</p><p><strong>second line</strong></p>');
  });

  it('reads the page selection on a key before any keymap acts on it', () => {
    const e = open(true);
    selectSecondLineOnPage(e);
    e.view.dom.dispatchEvent(new KeyboardEvent('keydown', { key: 'b', keyCode: 66, ctrlKey: true, bubbles: true }));
    expect(e.getHTML()).toBe('<p>first line</p><p><strong>second line</strong></p>');
  });

  it('without reading it first, a remote edit restores the old selection', () => {
    const doc = new Y.Doc();
    const e = open(false, doc);
    selectSecondLineOnPage(e);
    otherPersonTypes(doc);
    expect(e.getText({ blockSeparator: '|' })).toBe('New first line|second line');
    // The caret from before the click, at the start of the first line, on the page too.
    expect([e.state.selection.anchor, e.state.selection.head]).toEqual([1, 1]);
    expect(pageSelection(e)).toEqual([1, 1]);
  });

  it('read before a remote edit (the session hook), the selection follows the text', () => {
    const doc = new Y.Doc();
    const e = open(true, doc);
    selectSecondLineOnPage(e);
    readPageSelection(e.view);
    otherPersonTypes(doc);
    expect([e.state.selection.anchor, e.state.selection.head]).toEqual([28, 17]);
    expect(pageSelection(e)).toEqual([28, 17]);
  });
});
