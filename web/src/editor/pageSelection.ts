//! Keeps ProseMirror's selection in step with the page's, so that nothing
//! another person does can put back a selection the user has already left.
//!
//! ProseMirror reads a selection change from the browser's `selectionchange`
//! event, a task after the click or key that made it. Until then its state
//! holds the old selection, and any update of the view in that gap writes the
//! old selection back onto the page: the user's new one is lost. Two kinds of
//! update come from elsewhere, and each gets the page's selection read first:
//! - a remote document change: y-tiptap restores the selection it captured
//!   when the Yjs transaction began, so the session calls `readPageSelection`
//!   before it applies any sync or awareness message (CollaborativeEditor);
//! - a re-render with no change of its own, above all y-tiptap's caret
//!   refresh, which it dispatches a timer tick after the awareness message
//!   (outside that hook): `dispatchTransaction` below.
//! Keys get the same treatment, so a shortcut acts on what the page shows.

import { Extension } from '@tiptap/core';
import { Plugin, PluginKey, type Transaction } from '@tiptap/pm/state';
import type { EditorView } from '@tiptap/pm/view';

/** The one member of ProseMirror's DOM observer used here; it is internal, so not in the typings. */
interface DomObserver {
  flush(): void;
}

/**
 * Make ProseMirror read the page's selection (and any DOM change it has not
 * handled yet) now instead of at the next `selectionchange`. This is the
 * observer's own flush, which ProseMirror itself calls before a composition
 * starts, so the selection is read exactly as it would be a moment later.
 * @returns whether the editor state changed
 */
export function readPageSelection(view: EditorView): boolean {
  if (view.isDestroyed || view.composing) return false;
  const observer = (view as unknown as { domObserver?: DomObserver }).domObserver;
  if (!observer) return false;
  const before = view.state;
  observer.flush();
  return view.state !== before;
}

/** A transaction that changes nothing the user sees except through a re-render (plugin metadata only). */
function isRerenderOnly(tr: Transaction): boolean {
  return !tr.docChanged && !tr.selectionSet && !tr.storedMarksSet;
}

export const PageSelection = Extension.create({
  name: 'pageSelection',
  // Its keydown handler must run before every keymap, ours included.
  priority: 100_000,

  addProseMirrorPlugins() {
    return [
      new Plugin({
        key: new PluginKey('pageSelectionBeforeKeys'),
        props: {
          handleKeyDown: (view, event) => {
            // Keys sent in quick succession (automation, assistive tools)
            // can outrun 'selectionchange'. Never during a composition.
            if (!event.isComposing && event.keyCode !== 229) readPageSelection(view);
            return false;
          },
        },
      }),
    ];
  },

  dispatchTransaction({ transaction, next }) {
    const { view } = this.editor;
    // The transaction was made from the state before the page's selection
    // was read, so it carries the old selection: give it the new one. If
    // reading also brought in a DOM change, the transaction no longer fits
    // the document, and ProseMirror refuses it as it refuses any stale one
    // (y-tiptap's caret refresh then retries on the new state).
    if (isRerenderOnly(transaction) && readPageSelection(view) && view.state.doc === transaction.doc) {
      transaction.setSelection(view.state.selection);
    }
    next(transaction);
  },
});
