// Presence belongs to the signed-in account, as stock y-protocols clients
// meet it: whatever `user` a stock client publishes, the others see its
// account's `{ id, name, color }` (the rest of its state as sent); an
// awareness state a stock client could not parse never reaches one, so it
// neither throws nor loses the other states of the same frame; and a client
// that reconnects (as the web app does to show a new name) is seen again at
// once.

import assert from 'node:assert/strict'
import * as encoding from 'lib0/encoding'
import { startServer, signIn, quireTest as test } from './helpers/server.js'
import { providerClient, RawClient, MSG_AWARENESS } from './helpers/clients.js'
import { waitFor, docName } from './helpers/wait.js'

const accountUser = ({ user }) => ({ id: user.id, name: user.name, color: user.color })

async function share (server, room, email, role) {
  const r = await fetch(`${server.httpUrl}/api/documents/${room}/shares`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', cookie: server.owner.cookie, origin: server.owner.origin },
    body: JSON.stringify({ email, role })
  })
  assert.equal(r.status, 200, `sharing ${room} with ${email}`)
}

/** An awareness frame with each state's JSON text exactly as given (even text that is not JSON). */
function rawAwarenessFrame (entries) {
  const update = encoding.createEncoder()
  encoding.writeVarUint(update, entries.length)
  for (const { clientID, clock, text } of entries) {
    encoding.writeVarUint(update, clientID)
    encoding.writeVarUint(update, clock)
    encoding.writeVarString(update, text)
  }
  const frame = encoding.createEncoder()
  encoding.writeVarUint(frame, MSG_AWARENESS)
  encoding.writeVarUint8Array(frame, encoding.toUint8Array(update))
  return encoding.toUint8Array(frame)
}

/** Exceptions nothing caught (a stock provider's message handler throwing lands here). */
function uncaught (t) {
  const errors = []
  const record = (e) => errors.push(e)
  process.on('uncaughtException', record)
  t.after(() => process.off('uncaughtException', record))
  return errors
}

test('presence: a stock client claiming to be the owner is seen under its own account', async (t) => {
  const server = await startServer(t)
  const room = docName('spoof')
  const owner = providerClient(t, server, room, { name: 'owner' })
  await owner.synced()
  const mallory = await signIn(server.httpUrl, 'mallory@interop.test', 'Mallory')
  await share(server, room, 'mallory@interop.test', 'viewer')
  const viewer = providerClient(t, server, room, { name: 'viewer', user: mallory })
  await viewer.synced()

  // What a hostile page would publish: the owner's name, colour and id.
  const cursor = { anchor: { type: { client: 1, clock: 0 }, tname: null, item: null, assoc: 0 }, head: null }
  viewer.awareness.setLocalState({
    user: { name: `${server.owner.user.name} (owner)`, color: server.owner.user.color, id: server.owner.user.id },
    cursor
  })
  const vid = viewer.doc.clientID
  await waitFor(() => owner.awareness.getStates().get(vid)?.cursor, {
    message: 'the owner sees the viewer\'s state',
    describe: () => [...owner.awareness.getStates()]
  })
  assert.deepEqual(owner.awareness.getStates().get(vid), { user: accountUser(mallory), cursor },
    'the owner sees the viewer\'s own account, and its caret as sent')

  // The owner's own stock client (no `user` at all) is shown as its account.
  owner.awareness.setLocalStateField('cursor', null)
  await waitFor(() => viewer.awareness.getStates().get(owner.doc.clientID), 'the viewer sees the owner')
  assert.deepEqual(viewer.awareness.getStates().get(owner.doc.clientID), { user: accountUser(server.owner), cursor: null })

  const { document } = await (await fetch(`${server.httpUrl}/api/documents/${room}`, {
    headers: { cookie: server.owner.cookie, origin: server.owner.origin }
  })).json()
  assert.deepEqual(document.present, [accountUser(server.owner), accountUser(mallory)].sort((a, b) => a.name.localeCompare(b.name)))
})

test('presence: a state that is not JSON never reaches a stock client, and the rest of its frame does', async (t) => {
  const errors = uncaught(t)
  const server = await startServer(t)
  const room = docName('junk')
  const watcher = providerClient(t, server, room, { name: 'watcher' })
  const other = providerClient(t, server, room, { name: 'other' })
  await Promise.all([watcher.synced(), other.synced()])
  other.awareness.setLocalStateField('status', 'here')
  await waitFor(() => watcher.awareness.getStates().get(other.doc.clientID)?.status === 'here', 'the watcher sees the other client')

  const raw = await RawClient.connect(t, server.wsUrl(room))
  raw.send(rawAwarenessFrame([
    { clientID: 901, clock: 1, text: '{"status":"before"}' },
    { clientID: 902, clock: 1, text: '{"status": not json' },
    { clientID: 903, clock: 1, text: '[1, 2, 3]' },
    { clientID: 904, clock: 1, text: '{"status":"after"}' }
  ]))
  await waitFor(() => watcher.awareness.getStates().get(904)?.status === 'after', {
    message: 'the state after the bad ones in the same frame reaches the stock client',
    describe: () => ({ states: [...watcher.awareness.getStates()], errors: errors.map(String) })
  })
  const states = watcher.awareness.getStates()
  assert.equal(states.get(901)?.status, 'before')
  assert.ok(!states.has(902) && !states.has(903), 'the refused states were not relayed')
  assert.equal(states.get(other.doc.clientID)?.status, 'here', 'the other client\'s state is still there')
  assert.deepEqual(errors.map(String), [], 'no stock client threw')
  assert.equal(raw.close, null, 'a refused state is not a protocol error: the socket stays open')
})

test('presence: a stock client that reconnects is seen again at once', async (t) => {
  const server = await startServer(t)
  const room = docName('back')
  const a = providerClient(t, server, room, { name: 'A' })
  const b = providerClient(t, server, room, { name: 'B' })
  await Promise.all([a.synced(), b.synced()])
  const aId = a.doc.clientID
  a.awareness.setLocalStateField('status', 'here')
  await waitFor(() => b.awareness.getStates().get(aId)?.status === 'here', 'B sees A')

  // B's provider sends the removal it hears back to the server, as stock
  // clients do with every change; that must not lock A out.
  a.provider.disconnect()
  await waitFor(() => !b.awareness.getStates().has(aId), 'B sees A leave')
  a.provider.connect()
  await a.synced()
  // A's provider announces its state with the clock it had, which is older
  // than the removal B holds; y-protocols' own renewal would take 15 to 30 s.
  await waitFor(() => b.awareness.getStates().get(aId)?.status === 'here', {
    timeout: 5000,
    message: 'B sees A again soon after it reconnected',
    describe: () => [...b.awareness.getStates()]
  })
  a.awareness.setLocalStateField('status', 'moving')
  await waitFor(() => b.awareness.getStates().get(aId)?.status === 'moving', { timeout: 5000, message: 'and hears its next change' })
})
