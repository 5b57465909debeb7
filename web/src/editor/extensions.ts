//! The editor's schema and behaviour: StarterKit (minus its own history,
//! which would undo other people's edits), task lists, Yjs collaboration,
//! labelled carets, word count, and our extra shortcuts.

import { Extension, type AnyExtension, type Editor } from '@tiptap/core';
import { Plugin, PluginKey, TextSelection } from '@tiptap/pm/state';
import Collaboration from '@tiptap/extension-collaboration';
import CollaborationCaret from '@tiptap/extension-collaboration-caret';
import { TaskItem, TaskList } from '@tiptap/extension-list';
import { CharacterCount, Placeholder } from '@tiptap/extensions';
import StarterKit from '@tiptap/starter-kit';

import type { UserIdentity } from '../collab/awareness';
import { EDITOR_FIELD, type CollabSession } from '../collab/session';

export interface ShortcutOptions {
  onLink: () => void;
}

/** Shortcuts StarterKit lacks: link (Mod-K), horizontal rule, plain paragraph. */
export const QuireShortcuts = Extension.create<ShortcutOptions>({
  name: 'quireShortcuts',
  // Runs before every other keymap, so the selection fix below comes first.
  priority: 10_000,
  addProseMirrorPlugins() {
    const editor = this.editor;
    return [
      new Plugin({
        key: new PluginKey('quireSelectionBeforeKeys'),
        props: {
          handleKeyDown: (view, event) => {
            // Keys sent in quick succession (automation, assistive tools)
            // can outrun 'selectionchange': act on what the page shows.
            if (!event.isComposing && event.keyCode !== 229 && !view.composing) syncSelectionFromDom(editor);
            return false;
          },
        },
      }),
    ];
  },
  addOptions() {
    return { onLink: () => {} };
  },
  addKeyboardShortcuts() {
    return {
      'Mod-k': () => {
        syncSelectionFromDom(this.editor);
        this.options.onLink();
        return true;
      },
      'Mod-Shift-h': () => this.editor.chain().focus().setHorizontalRule().run(),
      'Mod-Alt-0': () => this.editor.chain().focus().setParagraph().run(),
    };
  },
});

/**
 * ProseMirror learns about selection changes from the browser's
 * `selectionchange` event, which fires a task later. Until then its state
 * holds the old selection, so a shortcut pressed right after Shift+Home would
 * act on it, and a remote edit applied in that window would write it back to
 * the page (y-tiptap restores the state's selection after remote changes),
 * undoing what the user just selected. Calling this first closes the window.
 */
export function syncSelectionFromDom(editor: Editor): void {
  const { view } = editor;
  const selection = (view.root as Document).getSelection?.() ?? document.getSelection();
  if (!selection?.anchorNode || !selection.focusNode) return;
  if (!view.dom.contains(selection.anchorNode) || !view.dom.contains(selection.focusNode)) return;
  try {
    const anchor = view.posAtDOM(selection.anchorNode, selection.anchorOffset);
    const head = view.posAtDOM(selection.focusNode, selection.focusOffset);
    const current = view.state.selection;
    if (current.anchor === anchor && current.head === head) return;
    const { doc } = view.state;
    // Only plain text selections; node selections are ProseMirror's own business.
    if (!doc.resolve(anchor).parent.inlineContent || !doc.resolve(head).parent.inlineContent) return;
    view.dispatch(view.state.tr.setSelection(TextSelection.create(doc, anchor, head)));
  } catch {
    // A position inside a node view or widget: keep ProseMirror's own idea.
  }
}

export function buildExtensions(session: CollabSession, user: UserIdentity, onLink: () => void): AnyExtension[] {
  return [
    StarterKit.configure({
      // Collaboration brings a Yjs-aware undo that only undoes your own changes.
      undoRedo: false,
      heading: { levels: [1, 2, 3] },
      link: {
        openOnClick: false,
        autolink: true,
        linkOnPaste: true,
        defaultProtocol: 'https',
        HTMLAttributes: { rel: 'noopener noreferrer nofollow', target: '_blank' },
      },
    }),
    TaskList,
    TaskItem.configure({ nested: true }),
    Collaboration.configure({ document: session.doc, field: EDITOR_FIELD }),
    CollaborationCaret.configure({ provider: session.provider, user }),
    CharacterCount,
    Placeholder.configure({ placeholder: 'Start writing…' }),
    QuireShortcuts.configure({ onLink }),
  ];
}

/** Accept "example.com" as https, keep relative, anchor and mailto links; refuse scripts. */
export function normalizeHref(input: string): string | null {
  const value = input.trim();
  if (!value) return null;
  if (/^(javascript|data|vbscript):/i.test(value.replace(/\s/g, ''))) return null;
  if (/^[a-z][a-z0-9+.-]*:/i.test(value) || value.startsWith('/') || value.startsWith('#')) return value;
  if (/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(value)) return `mailto:${value}`;
  return `https://${value}`;
}
