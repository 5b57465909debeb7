//! The editor's schema and behaviour: StarterKit (minus its own history,
//! which would undo other people's edits), task lists, Yjs collaboration,
//! labelled carets of verified accounts (carets.ts), word count, our extra
//! shortcuts, and the guard that keeps the user's selection through other
//! people's edits (pageSelection.ts).

import { Extension, type AnyExtension } from '@tiptap/core';
import Collaboration from '@tiptap/extension-collaboration';
import { TaskItem, TaskList } from '@tiptap/extension-list';
import { CharacterCount, Placeholder } from '@tiptap/extensions';
import StarterKit from '@tiptap/starter-kit';

import type { UserIdentity } from '../collab/awareness';
import { EDITOR_FIELD, type CollabSession } from '../collab/session';
import { VerifiedCarets } from './carets';
import { PageSelection } from './pageSelection';

export interface ShortcutOptions {
  onLink: () => void;
}

/** Shortcuts StarterKit lacks: link (Mod-K), horizontal rule, plain paragraph. */
export const QuireShortcuts = Extension.create<ShortcutOptions>({
  name: 'quireShortcuts',
  // Ahead of StarterKit's keymaps, so these bindings win.
  priority: 10_000,
  addOptions() {
    return { onLink: () => {} };
  },
  addKeyboardShortcuts() {
    return {
      'Mod-k': () => {
        this.options.onLink();
        return true;
      },
      'Mod-Shift-h': () => this.editor.chain().focus().setHorizontalRule().run(),
      'Mod-Alt-0': () => this.editor.chain().focus().setParagraph().run(),
    };
  },
});

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
    VerifiedCarets.configure({ provider: session.provider, user }),
    CharacterCount,
    Placeholder.configure({ placeholder: 'Start writing…' }),
    QuireShortcuts.configure({ onLink }),
    PageSelection,
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
