//! React bindings for a CollabSession: save state and the people present.

import { useEffect, useState, useSyncExternalStore } from 'react';

import { peersFromAwareness, type Peer } from './awareness';
import { deriveSaveState, type SaveState, type SyncState } from './saveState';
import type { CollabSession } from './session';

export function useSyncState(session: CollabSession): SyncState {
  return useSyncExternalStore(session.subscribe, session.getSnapshot);
}

export function useSaveState(session: CollabSession): SaveState {
  return deriveSaveState(useSyncState(session));
}

export function usePeers(session: CollabSession): Peer[] {
  const [peers, setPeers] = useState<Peer[]>(() => peersFromAwareness(session.awareness));
  useEffect(() => {
    const update = () => setPeers(peersFromAwareness(session.awareness));
    update();
    session.awareness.on('change', update);
    return () => session.awareness.off('change', update);
  }, [session]);
  return peers;
}
