// Prints byte fixtures for crates/protocol/tests/fixtures.rs, produced by the
// JavaScript reference libraries (yjs, y-protocols, lib0). Run:
//   node interop/scripts/protocol-fixtures.mjs > crates/protocol/tests/js_fixtures.txt
import * as Y from 'yjs'
import * as syncProtocol from 'y-protocols/sync'
import * as awarenessProtocol from 'y-protocols/awareness'
import * as authProtocol from 'y-protocols/auth'
import * as encoding from 'lib0/encoding'

const hex = (u8) => Buffer.from(u8).toString('hex')
const out = (name, u8) => console.log(`${name} ${hex(u8)}`)

const doc = new Y.Doc()
doc.clientID = 42
doc.getText('t').insert(0, 'héllo')
let update = null
doc.on('update', (u) => { update = u })
doc.getText('t').insert(5, '!')

let e = encoding.createEncoder()
encoding.writeVarUint(e, 0)
syncProtocol.writeSyncStep1(e, doc)
out('sync_step1', encoding.toUint8Array(e))

e = encoding.createEncoder()
encoding.writeVarUint(e, 0)
syncProtocol.writeSyncStep2(e, doc)
out('sync_step2', encoding.toUint8Array(e))

e = encoding.createEncoder()
encoding.writeVarUint(e, 0)
syncProtocol.writeUpdate(e, update)
out('sync_update', encoding.toUint8Array(e))
out('raw_update', update)
out('raw_state_vector', Y.encodeStateVector(doc))

const aw = new awarenessProtocol.Awareness(doc)
aw.setLocalState({ user: { name: 'Ada', color: '#ff0000' } })
e = encoding.createEncoder()
encoding.writeVarUint(e, 1)
encoding.writeVarUint8Array(e, awarenessProtocol.encodeAwarenessUpdate(aw, [doc.clientID]))
out('awareness', encoding.toUint8Array(e))
aw.setLocalState(null)
e = encoding.createEncoder()
encoding.writeVarUint(e, 1)
encoding.writeVarUint8Array(e, awarenessProtocol.encodeAwarenessUpdate(aw, [doc.clientID]))
out('awareness_removed', encoding.toUint8Array(e))
aw.destroy()

e = encoding.createEncoder()
encoding.writeVarUint(e, 3)
out('query_awareness', encoding.toUint8Array(e))

e = encoding.createEncoder()
encoding.writeVarUint(e, 2)
authProtocol.writePermissionDenied(e, 'read-only document')
out('permission_denied', encoding.toUint8Array(e))

// A client id above 2^32 and a large clock exercise multi-byte varints.
e = encoding.createEncoder()
encoding.writeVarUint(e, 1)
const inner = encoding.createEncoder()
encoding.writeVarUint(inner, 1)
encoding.writeVarUint(inner, 2 ** 40 + 7)
encoding.writeVarUint(inner, 300)
encoding.writeVarString(inner, '{"user":{"name":"Zoë"}}')
encoding.writeVarUint8Array(e, encoding.toUint8Array(inner))
out('awareness_bigint', encoding.toUint8Array(e))
