// Awareness (presence) between stock clients, its clean-up when a client
// leaves, the echo that keeps a lone y-websocket client connected, and
// query-awareness on a raw socket. The server binds every state's `user` to
// the signed-in account (09-presence has the spoofing cases), so these tests
// follow a field of their own, `status`.

import assert from 'node:assert/strict'
import { startServer, quireTest as test } from './helpers/server.js'
import { providerClient, RawClient, MSG_AWARENESS, MSG_SYNC, SYNC_STEP1, summarize } from './helpers/clients.js'
import { waitFor, docName } from './helpers/wait.js'

const statusOf = (client, id) => client.awareness.getStates().get(id)?.status

test('awareness: B sees A\'s state, and its removal when A is destroyed or its connection dies', async (t) => {
  const server = await startServer(t)
  const room = docName('awareness')
  const a = providerClient(t, server, room, { name: 'A' })
  const b = providerClient(t, server, room, { name: 'B' })
  await Promise.all([a.synced(), b.synced()])
  const aId = a.doc.clientID

  a.awareness.setLocalState({ user: { name: 'Ada', color: '#ff0000' }, status: 'writing' })
  await waitFor(() => statusOf(b, aId) === 'writing', {
    message: 'B sees A\'s state',
    describe: () => [...b.awareness.getStates()]
  })
  const { id, name, color } = server.owner.user
  assert.deepEqual(b.awareness.getStates().get(aId), { user: { id, name, color }, status: 'writing' },
    'the user is the account A signed in with, the rest as A sent it')

  // A change is relayed too.
  a.awareness.setLocalStateField('status', 'reading')
  await waitFor(() => statusOf(b, aId) === 'reading', 'B sees A\'s changed state')

  // A clean exit: the provider sends a null state, then closes. B must not keep
  // a ghost until the 30 s awareness timeout.
  const destroyedAt = Date.now()
  a.destroy()
  await waitFor(() => !b.awareness.getStates().has(aId), {
    timeout: 5000,
    message: 'B sees A\'s awareness state removed after A\'s provider was destroyed',
    describe: () => [...b.awareness.getStates()]
  })
  assert.ok(Date.now() - destroyedAt < 5000)

  // An unclean exit: the TCP connection of C just dies (no null state sent).
  // The server must remove what that connection owned and broadcast it.
  const c = providerClient(t, server, room, { name: 'C' })
  await c.synced()
  const cId = c.doc.clientID
  c.awareness.setLocalStateField('status', 'Cy')
  await waitFor(() => statusOf(b, cId) === 'Cy', 'B sees C')
  c.kill()
  await waitFor(() => !b.awareness.getStates().has(cId), {
    timeout: 5000,
    message: 'B sees C\'s awareness state removed after C\'s connection was dropped without a close handshake',
    describe: () => [...b.awareness.getStates()]
  })

  // A joiner receives the presence of those already there.
  const d = providerClient(t, server, room, { name: 'D' })
  await d.synced()
  b.awareness.setLocalStateField('status', 'Bea')
  await waitFor(() => statusOf(d, b.doc.clientID) === 'Bea', 'D sees B')
  const e = providerClient(t, server, room, { name: 'E' })
  await e.synced()
  await waitFor(() => statusOf(e, b.doc.clientID) === 'Bea', {
    message: 'a late joiner E receives B\'s existing presence on join',
    describe: () => [...e.awareness.getStates()]
  })
  assert.ok(!e.awareness.getStates().has(aId) && !e.awareness.getStates().has(cId), 'no ghosts of A or C are handed to a joiner')
})

test('awareness: a lone client\'s own awareness updates are echoed back (what keeps y-websocket from its 30 s reconnect)', async (t) => {
  const server = await startServer(t)
  const a = providerClient(t, server, docName('lonely'), { name: 'A' })
  await a.synced()
  const me = a.doc.clientID
  const echoes = () => a.log.frames
    .filter((f) => f.type === MSG_AWARENESS)
    .flatMap((f) => f.awareness)
    .filter((e) => e.clientID === me)

  a.awareness.setLocalStateField('status', 'Solo')
  const clock1 = a.awareness.meta.get(me).clock
  await waitFor(() => echoes().some((e) => e.clock === clock1 && e.state?.status === 'Solo'), {
    timeout: 5000,
    message: `the server echoes A's own awareness update (clock ${clock1}) back to A`,
    describe: () => a.log.frames.map(summarize)
  })

  // y-protocols renews the local state every 15 s by re-setting the same state
  // (same content, clock + 1); that renewal must come back too.
  a.awareness.setLocalState(a.awareness.getLocalState())
  const clock2 = a.awareness.meta.get(me).clock
  assert.equal(clock2, clock1 + 1)
  await waitFor(() => echoes().some((e) => e.clock === clock2), {
    timeout: 5000,
    message: `the server echoes A's unchanged-state renewal (clock ${clock2}) back to A`,
    describe: () => a.log.frames.map(summarize)
  })
  assert.equal(a.log.sockets.length, 1, 'one connection, no reconnects')
  assert.deepEqual(a.log.closes, [], 'the socket was never closed')
})

test('awareness: query-awareness (type 3) on a raw socket gets the current states', async (t) => {
  const server = await startServer(t)
  const room = docName('query')
  const a = providerClient(t, server, room, { name: 'A' })
  await a.synced()
  a.awareness.setLocalStateField('status', 'Ada')
  const aId = a.doc.clientID

  // Wait until the server has A's state: a second provider sees it.
  const b = providerClient(t, server, room, { name: 'B' })
  await waitFor(() => statusOf(b, aId) === 'Ada', 'B sees A')

  const raw = await RawClient.connect(t, server.wsUrl(room))
  // The server opens with its own sync step 1 (and the presence it has).
  await raw.waitForFrame((f) => f.type === MSG_SYNC && f.sub === SYNC_STEP1, { message: 'server sync step 1 on join' })
  await raw.barrier() // everything sent on join has arrived
  const from = raw.frames.length
  raw.queryAwareness()
  const reply = await raw.waitForFrame((f) => f.type === MSG_AWARENESS && f.awareness.some((e) => e.clientID === aId), {
    from,
    timeout: 5000,
    message: 'an awareness reply containing A\'s state to our query-awareness message'
  })
  const entry = reply.awareness.find((e) => e.clientID === aId)
  assert.equal(entry.state.status, 'Ada')
  assert.equal(entry.state.user.id, server.owner.user.id)
  assert.equal(entry.clock, a.awareness.meta.get(aId).clock, 'the reply carries A\'s current clock')
  assert.equal(raw.close, null, 'the raw socket stays open')
})
