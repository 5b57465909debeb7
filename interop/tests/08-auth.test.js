// Accounts and roles as a stock y-websocket client meets them: without a
// cookie, or from a foreign origin, the upgrade is refused before any document
// byte; a viewer's stock provider syncs and receives edits, but what it types
// is refused with the y-protocols permission-denied message and never reaches
// the document or the other clients.

import assert from 'node:assert/strict'
import { startServer, signIn, quireTest as test } from './helpers/server.js'
import { providerClient, RawClient, MSG_AUTH } from './helpers/clients.js'
import { waitFor, docName } from './helpers/wait.js'
import { sameState, stateVector } from './helpers/content.js'

async function refusedStatus (url, user) {
  const raw = new RawClient(url, user)
  await waitFor(() => raw.status || raw.isOpen, { message: `upgrade of ${url} answered` })
  const status = raw.isOpen ? 101 : raw.status
  raw.terminate()
  return status
}

test('auth: no cookie, a forged cookie, or a foreign origin is refused before the upgrade', async (t) => {
  const server = await startServer(t)
  const room = docName('guarded')
  await server.ensureDoc(room)
  const url = server.wsUrl(room)
  assert.equal(await refusedStatus(url, { origin: server.httpUrl }), 401, 'no cookie')
  assert.equal(await refusedStatus(url, null), 403, 'no cookie and no origin')
  assert.equal(await refusedStatus(url, { cookie: 'quire_access=forged', origin: server.httpUrl }), 401, 'forged cookie')
  assert.equal(await refusedStatus(url, { ...server.owner, origin: 'https://evil.example' }), 403, 'foreign origin')
  assert.equal(await refusedStatus(url, { ...server.owner, origin: `${server.httpUrl}.evil.example` }), 403, 'look-alike origin')
  assert.equal(await refusedStatus(url, server.owner), 101, 'the owner from the app origin')
  const stranger = await signIn(server.httpUrl, 'stranger@interop.test')
  assert.equal(await refusedStatus(url, stranger), 404, 'an unshared document is not found')
})

test('auth: a viewer\'s stock provider receives edits, and its own are refused and never applied', async (t) => {
  const server = await startServer(t)
  const room = docName('viewer')
  const owner = providerClient(t, server, room, { name: 'owner' })
  await owner.synced()
  owner.text.insert(0, 'written by the owner')

  const viewer = await signIn(server.httpUrl, 'viewer@interop.test')
  const shared = await fetch(`${server.httpUrl}/api/documents/${room}/shares`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', cookie: server.owner.cookie, origin: server.owner.origin },
    body: JSON.stringify({ email: 'viewer@interop.test', role: 'viewer' })
  })
  assert.equal(shared.status, 200)
  const reader = providerClient(t, server, room, { name: 'viewer', user: viewer })
  await reader.synced()
  await waitFor(() => reader.text.toString() === 'written by the owner', 'the viewer receives the document')

  const before = stateVector(owner.doc)
  reader.text.insert(0, 'vandalism ')
  await waitFor(() => reader.log.frames.some((f) => f.type === MSG_AUTH && /read-only/.test(f.reason)),
    { message: 'permission denied sent to the viewer' })
  owner.text.insert(owner.text.length, ', still')
  await waitFor(() => reader.text.toString().endsWith(', still'), 'the viewer keeps receiving updates')
  assert.equal(owner.text.toString(), 'written by the owner, still', 'the owner never sees the refused edit')
  assert.notDeepEqual(stateVector(owner.doc), before)

  const fresh = providerClient(t, server, room, { name: 'fresh' })
  await fresh.synced()
  assert.ok(sameState(fresh.doc, owner.doc), 'the server holds exactly the owner\'s state')
  assert.equal(fresh.text.toString(), 'written by the owner, still')
})
