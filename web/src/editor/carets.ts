//! Other people's carets and selections, labelled with their names: Tiptap's
//! CollaborationCaret, drawing only states whose `user` the server bound to
//! an account (see collab/awareness.ts). The stock extension draws every
//! state with a `cursor`, whatever name it claims.

import CollaborationCaret from '@tiptap/extension-collaboration-caret';
import { yCursorPlugin, yCursorPluginKey } from '@tiptap/y-tiptap';

import { isVerifiedState } from '../collab/awareness';

export const VerifiedCarets = CollaborationCaret.extend({
  addProseMirrorPlugins() {
    // The parent's own plugins: one publishes the local user and keeps
    // `storage.users`; the caret plugin is replaced by one with a filter.
    const inherited = (this.parent?.() ?? []).filter((plugin) => plugin.spec.key !== yCursorPluginKey);
    const { provider, render, selectionRender } = this.options;
    return [
      ...inherited,
      yCursorPlugin(provider.awareness, {
        awarenessStateFilter: (own: number, clientId: number, state: unknown) => own !== clientId && isVerifiedState(state),
        // A bound colour is always #rrggbb, which is all the stock builders check for.
        cursorBuilder: (user: Record<string, unknown>) => render(user),
        selectionBuilder: (user: Record<string, unknown>) => selectionRender(user),
      }),
    ];
  },
});
