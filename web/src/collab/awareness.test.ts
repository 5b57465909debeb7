import { describe, expect, it } from 'vitest';
import { Awareness, applyAwarenessUpdate, encodeAwarenessUpdate } from 'y-protocols/awareness';
import * as Y from 'yjs';

import { isVerifiedState, peersFromAwareness, verifiedPeople, verifiedUser } from './awareness';

const ada = { id: 'u-ada', name: 'Ada', color: '#1e6fd9' };
const bob = { id: 'u-bob', name: 'Bob', color: '#2e7d32' };

function awarenessOf(clientId: number): Awareness {
  const doc = new Y.Doc();
  doc.clientID = clientId;
  return new Awareness(doc);
}

/** `local` as it would be after receiving `state` from client `clientId` through the server. */
function receive(local: Awareness, clientId: number, state: Record<string, unknown>) {
  const remote = awarenessOf(clientId);
  remote.setLocalState(state);
  applyAwarenessUpdate(local, encodeAwarenessUpdate(remote, [clientId]), 'server');
  remote.destroy();
}

describe('peersFromAwareness', () => {
  it('lists self first, then one entry per account, whatever the number of tabs', () => {
    const local = awarenessOf(50);
    local.setLocalState({ user: ada, cursor: null });
    receive(local, 90, { user: bob });
    receive(local, 10, { user: bob, cursor: { anchor: 1 } });
    receive(local, 70, { user: ada }); // another tab of mine
    // Two people who happen to share a name and colour are two people.
    receive(local, 30, { user: { id: 'u-sam1', name: 'Sam', color: '#00838f' } });
    receive(local, 31, { user: { id: 'u-sam2', name: 'Sam', color: '#00838f' } });
    expect(peersFromAwareness(local)).toEqual([
      { ...ada, clientId: 50, isSelf: true },
      { ...bob, clientId: 10, isSelf: false },
      { id: 'u-sam1', name: 'Sam', color: '#00838f', clientId: 30, isSelf: false },
      { id: 'u-sam2', name: 'Sam', color: '#00838f', clientId: 31, isSelf: false },
    ]);
    local.destroy();
  });

  it('shows nobody whose state has no server-bound account', () => {
    const local = awarenessOf(1);
    local.setLocalState({ user: ada });
    receive(local, 2, { user: { name: 'Ada (owner)', color: '#1e6fd9' } }); // no id: not bound by Quire
    receive(local, 3, { user: { id: '', name: 'Empty', color: '#1e6fd9' } });
    receive(local, 4, { user: { id: 'u-x', name: '   ', color: '#1e6fd9' } });
    receive(local, 5, { user: { id: 'u-y', name: 'Bad colour', color: 'red' } });
    receive(local, 6, { cursor: { anchor: 1 } });
    receive(local, 7, { user: 'u-bob' });
    expect(peersFromAwareness(local).map((p) => p.clientId)).toEqual([1]);
    local.destroy();
  });
});

describe('verified presence', () => {
  it('keeps only entries naming an account, one per account, in order', () => {
    const listed = [bob, { name: 'Old server', color: '#000075' }, ada, { ...bob, name: 'Bob (tab 2)' }];
    expect(verifiedPeople(listed)).toEqual([bob, ada]);
  });

  it('reads an account only from a complete user field', () => {
    expect(verifiedUser({ ...ada, extra: 1 })).toEqual(ada);
    expect(verifiedUser(null)).toBeNull();
    expect(verifiedUser({ id: 7, name: 'Ada', color: '#1e6fd9' })).toBeNull();
    expect(isVerifiedState({ user: ada, cursor: null })).toBe(true);
    expect(isVerifiedState({ user: { name: 'Ada', color: '#1e6fd9' } })).toBe(false);
    expect(isVerifiedState(null)).toBe(false);
  });
});
