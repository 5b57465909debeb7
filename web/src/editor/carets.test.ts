// @vitest-environment happy-dom
//
// Other people's carets are drawn for states the server bound to an account
// only: a state with a cursor but a user of its own making shows nothing.

import { Editor } from '@tiptap/core';
import Collaboration from '@tiptap/extension-collaboration';
import StarterKit from '@tiptap/starter-kit';
import { absolutePositionToRelativePosition, ySyncPluginKey } from '@tiptap/y-tiptap';
import { afterEach, describe, expect, it } from 'vitest';
import { Awareness, applyAwarenessUpdate, encodeAwarenessUpdate } from 'y-protocols/awareness';
import * as Y from 'yjs';

import { VerifiedCarets } from './carets';

let editor: Editor | null = null;

afterEach(() => {
  editor?.destroy();
  editor = null;
  document.body.innerHTML = '';
});

function receive(local: Awareness, clientId: number, state: Record<string, unknown>) {
  const doc = new Y.Doc();
  doc.clientID = clientId;
  const remote = new Awareness(doc);
  remote.setLocalState(state);
  applyAwarenessUpdate(local, encodeAwarenessUpdate(remote, [clientId]), 'server');
  remote.destroy();
}

const labels = () => [...document.querySelectorAll('.collaboration-carets__label')].map((l) => l.textContent);

/** Waits for y-tiptap's caret refresh, which it dispatches a timer tick after an awareness change. */
async function refreshed(expected: number) {
  for (let i = 0; i < 50 && labels().length !== expected; i++) await new Promise((r) => setTimeout(r, 0));
}

describe('VerifiedCarets', () => {
  it('draws the carets of bound accounts and not of states naming themselves', async () => {
    const doc = new Y.Doc();
    const awareness = new Awareness(doc);
    const element = document.createElement('div');
    document.body.append(element);
    editor = new Editor({
      element,
      extensions: [
        StarterKit.configure({ undoRedo: false }),
        Collaboration.configure({ document: doc }),
        VerifiedCarets.configure({ provider: { awareness }, user: { id: 'u-me', name: 'Me', color: '#000075' } }),
      ],
    });
    editor.commands.setContent('<p>some text to point at</p>');
    const ystate = ySyncPluginKey.getState(editor.state);
    const at = (pos: number) => Y.relativePositionToJSON(absolutePositionToRelativePosition(pos, ystate.type, ystate.binding.mapping));
    const cursor = { anchor: at(2), head: at(2) };

    receive(awareness, 11, { user: { id: 'u-bob', name: 'Bob', color: '#2e7d32' }, cursor });
    receive(awareness, 12, { user: { name: 'Alice (owner)', color: '#c2185b' }, cursor });
    receive(awareness, 13, { cursor });
    await refreshed(1);
    expect(labels()).toEqual(['Bob']);
    // The extension still publishes the local user, as the stock one does.
    expect(awareness.getLocalState()?.user).toEqual({ id: 'u-me', name: 'Me', color: '#000075' });
    awareness.destroy();
  });
});
