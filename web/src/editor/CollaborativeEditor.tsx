//! The document body: Tiptap bound to the session's Yjs doc, with the
//! toolbar, link popover and word count. Knows nothing about sockets.

import { EditorContent, useEditor, useEditorState } from '@tiptap/react';
import { useEffect, useRef, useState } from 'react';

import type { UserIdentity } from '../collab/awareness';
import type { CollabSession } from '../collab/session';
import { buildExtensions } from './extensions';
import { LinkPopover } from './LinkPopover';
import { readPageSelection } from './pageSelection';
import { Toolbar } from './Toolbar';

interface Props {
  session: CollabSession;
  user: UserIdentity;
  readOnly?: boolean;
}

export function CollaborativeEditor({ session, user, readOnly = false }: Props) {
  const [linkOpen, setLinkOpen] = useState(false);
  // The extensions are built once per session; the user is read at that moment
  // and later changes go through updateUser below.
  const userAtStart = useRef(user);
  const openLink = useRef(() => setLinkOpen(true));

  const editor = useEditor(
    {
      extensions: buildExtensions(session, userAtStart.current, () => openLink.current()),
      editorProps: {
        attributes: {
          id: 'editor-content',
          class: 'prose',
          role: 'textbox',
          'aria-multiline': 'true',
          'aria-label': 'Document text',
          spellcheck: 'true',
        },
      },
      // Never seed content here: the Yjs doc (server + IndexedDB) is the only source.
    },
    [session],
  );

  useEffect(() => {
    if (!editor || editor.isDestroyed) return;
    editor.commands.updateUser(user);
  }, [editor, user]);

  useEffect(() => {
    editor?.setEditable(!readOnly);
  }, [editor, readOnly]);

  useEffect(() => {
    if (!editor) return;
    // y-tiptap restores, after a remote change, the selection the state held
    // when the change began: make that the page's (see pageSelection.ts).
    session.setBeforeRemoteChange(() => {
      if (!editor.isDestroyed) readPageSelection(editor.view);
    });
    return () => session.setBeforeRemoteChange(null);
  }, [editor, session]);

  const words = useEditorState({
    editor,
    selector: ({ editor: e }) => (e ? (e.storage.characterCount.words() as number) : 0),
  });

  if (!editor) return null;

  return (
    <>
      <div className="toolbar-wrap">
        <Toolbar editor={editor} onLink={() => setLinkOpen(true)} disabled={readOnly} />
        {linkOpen && <LinkPopover editor={editor} onClose={() => setLinkOpen(false)} />}
      </div>
      <div className="paper-wrap">
        <article className="paper">
          <EditorContent editor={editor} />
        </article>
      </div>
      <footer className="status-bar">
        <span data-testid="word-count" aria-live="off">
          {words === 1 ? '1 word' : `${words ?? 0} words`}
        </span>
      </footer>
    </>
  );
}
