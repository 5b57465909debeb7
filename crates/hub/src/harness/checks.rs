//! The invariants of the decoders and of one document's content path, one
//! input at a time: what the `protocol_message`, `awareness` and
//! `update_scan` fuzz targets check.
//!
//! Inputs holding several payloads (awareness updates from two sessions, a
//! sequence of updates) are length-prefixed parts: see [`split`].

use std::collections::HashMap;

use bytes::Bytes;
use quire_protocol::{
    AwarenessUpdate, Message, SyncMessage, decode_state_vector, encode_awareness_update,
    write_var_bytes,
};
use quire_store::{Snapshot as StoredSnapshot, StoredDoc};
use quire_types::{Seq, UserId};
use yrs::updates::decoder::Decode;
use yrs::{ClientID, ID, IdSet, ReadTxn, Snapshot, StateVector, Transact, Update};

use super::{Violation, panics};
use crate::Identity;
use crate::awareness::{Awareness, RelayPayload, Source};
use crate::content::{Content, ContentLimits, Failure, Trust};
use crate::update_scan::{self, Scan};

/// Awareness limits of the checks: small, so that inputs reach them.
pub const MAX_AWARENESS_STATE: usize = 64;
pub const MAX_AWARENESS_CLIENTS: usize = 4;

/// Content limits of the checks: small, so that inputs reach them.
pub const CONTENT_LIMITS: ContentLimits = ContentLimits {
    max_decoded_bytes: 8 << 20,
    max_parked_bytes: 64 << 10,
};

/// Splits `input` into parts, each a lib0 varint length and that many bytes
/// (the last part takes what is left when it is shorter).
pub fn split(mut input: &[u8]) -> Vec<&[u8]> {
    let mut parts = Vec::new();
    while !input.is_empty() {
        let mut len = 0usize;
        let mut shift = 0;
        while let Some((&b, rest)) = input.split_first() {
            input = rest;
            if shift < 64 {
                len |= usize::from(b & 0x7f).checked_shl(shift).unwrap_or(0);
            }
            shift += 7;
            if b & 0x80 == 0 {
                break;
            }
        }
        let (part, rest) = input.split_at(len.min(input.len()));
        parts.push(part);
        input = rest;
    }
    parts
}

/// The input [`split`] turns into `parts`.
pub fn join<P: AsRef<[u8]>>(parts: &[P]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in parts {
        write_var_bytes(&mut out, p.as_ref());
    }
    out
}

/// A frame that decodes re-encodes to one that decodes to the same message,
/// and no longer (lib0 has one shortest encoding); a sync step 1's state
/// vector decodes, or is refused, as the hub reads it (without a panic,
/// and reserving only what its bytes back).
pub fn check_message(frame: &[u8]) -> Result<(), Violation> {
    panics::counted(|| message(frame))
}

fn message(frame: &[u8]) -> Result<(), Violation> {
    let Ok(msg) = Message::decode(frame) else {
        return Ok(());
    };
    let again = msg.encode();
    match Message::decode(&again) {
        Ok(m) if m == msg && again.len() <= frame.len() => {}
        other => {
            return Err(Violation::RoundTrip(format!(
                "{msg:?} re-encoded as {again:?}, which decodes to {other:?}"
            )));
        }
    }
    if let Message::Sync(SyncMessage::Step1(sv)) = msg {
        let _ = decode_state_vector(sv);
    }
    Ok(())
}

/// Awareness updates from two sessions in turn (parts), then both leave:
/// session 1 runs for a signed-in account, session 2 for none. Whatever
/// decodes re-encodes to the same entries; a session's accepted entries
/// are within the limits and never name a client id another session owns;
/// the signed-in session's states all carry its account as `user`, however
/// they were sent; what is relayed decodes; leaving removes exactly what the
/// session owned.
pub fn check_awareness(input: &[u8]) -> Result<(), Violation> {
    panics::counted(|| awareness(input))
}

fn awareness(input: &[u8]) -> Result<(), Violation> {
    let identity = Identity {
        user: UserId("u-ada".into()),
        name: "Ada \"<b>\"".into(),
        color: "#123456".into(),
    };
    let user = serde_json::json!({"id": "u-ada", "name": "Ada \"<b>\"", "color": "#123456"});
    let mut aw = Awareness::default();
    let mut owners: HashMap<u64, u64> = HashMap::new();
    for (i, part) in split(input).into_iter().enumerate() {
        let conn = 1 + (i as u64 % 2);
        let signed_in = conn == 1;
        let Ok(update) = AwarenessUpdate::decode(part) else {
            continue;
        };
        let again = encode_awareness_update(
            update
                .entries
                .iter()
                .map(|e| (e.client_id, e.clock, e.state)),
        );
        if AwarenessUpdate::decode(&again).as_ref() != Ok(&update) {
            return Err(Violation::RoundTrip(format!("{update:?}")));
        }
        let source = Source::Session {
            conn,
            identity: signed_in.then_some(&identity),
        };
        let applied = aw.apply(source, &update, MAX_AWARENESS_STATE, MAX_AWARENESS_CLIENTS);
        let accepted: Vec<(u64, String)> = match &applied.relay {
            None => Vec::new(),
            Some(RelayPayload::Unchanged) => update
                .entries
                .iter()
                .map(|e| (e.client_id, e.state.to_owned()))
                .collect(),
            Some(RelayPayload::Filtered(v)) => AwarenessUpdate::decode(v)
                .map_err(|e| Violation::Awareness(format!("relays an undecodable update: {e}")))?
                .entries
                .iter()
                .map(|e| (e.client_id, e.state.to_owned()))
                .collect(),
        };
        // Entries neither accepted nor refused can only be removals (the
        // echo of a removal a stock client heard is dropped quietly).
        let removals = update.entries.iter().filter(|e| e.is_removal()).count();
        let counted = accepted.len() + applied.refused <= update.entries.len()
            && update.entries.len() - accepted.len() - applied.refused <= removals;
        let labelled = match applied.relay {
            Some(RelayPayload::Unchanged) => {
                applied.refused == 0 && accepted.len() == update.entries.len()
            }
            _ => true,
        };
        if !counted || !labelled {
            return Err(Violation::Awareness(format!(
                "{} entries: {} accepted, {} refused",
                update.entries.len(),
                accepted.len(),
                applied.refused
            )));
        }
        for (_, state) in &accepted {
            if state == "null" {
                continue;
            }
            let value: serde_json::Value = serde_json::from_str(state).map_err(|e| {
                Violation::Awareness(format!("a state that is not JSON accepted ({e}): {state}"))
            })?;
            let Some(fields) = value.as_object() else {
                return Err(Violation::Awareness(format!(
                    "a non-object state accepted: {state}"
                )));
            };
            if signed_in && fields.get("user") != Some(&user) {
                return Err(Violation::Awareness(format!(
                    "the signed-in session published a state as someone else: {state}"
                )));
            }
        }
        // A signed-in session's states grow by the account it is bound to.
        let most = MAX_AWARENESS_STATE
            + if signed_in {
                user.to_string().len() + 16
            } else {
                0
            };
        let accepted: Vec<(u64, usize)> =
            accepted.into_iter().map(|(id, s)| (id, s.len())).collect();
        for (id, len) in accepted {
            if len > most {
                return Err(Violation::Awareness(format!("a {len}-byte state accepted")));
            }
            match owners.insert(id, conn) {
                Some(other) if other != conn => {
                    return Err(Violation::Awareness(format!(
                        "session {conn} set client {id}, which session {other} owns"
                    )));
                }
                _ => {}
            }
        }
        if owners.values().filter(|&&o| o == conn).count() > MAX_AWARENESS_CLIENTS {
            return Err(Violation::Awareness(format!(
                "session {conn} owns more than {MAX_AWARENESS_CLIENTS} clients"
            )));
        }
        if let Some(full) = aw.full_update() {
            AwarenessUpdate::decode(&full).map_err(|e| {
                Violation::Awareness(format!("the full presence does not decode: {e}"))
            })?;
        }
        aw.presence();
    }
    for conn in [1, 2] {
        if let Some(removal) = aw.remove_session(conn) {
            let removal = AwarenessUpdate::decode(&removal)
                .map_err(|e| Violation::Awareness(format!("a removal does not decode: {e}")))?;
            for e in &removal.entries {
                if !e.is_removal() || owners.get(&e.client_id) != Some(&conn) {
                    return Err(Violation::Awareness(format!(
                        "session {conn} leaving removed {e:?}"
                    )));
                }
            }
        }
        owners.retain(|_, o| *o != conn);
    }
    if let Some(full) = aw.full_update() {
        return Err(Violation::Awareness(format!(
            "states left after every session left: {full:?}"
        )));
    }
    Ok(())
}

/// A sequence of updates (parts) offered to one document as a client's,
/// then to another as a peer's. The scan reads what yrs reads; an update
/// the scan refuses is refused as such; a refused or parked update changes
/// nothing; nothing breaks yrs part-way; a client's updates stay within the
/// memory limit; and what the document holds in the end loads again, as it
/// is.
pub fn check_updates(input: &[u8]) -> Result<(), Violation> {
    panics::counted(|| content(input))
}

fn content(input: &[u8]) -> Result<(), Violation> {
    let parts = split(input);
    for trust in [Trust::Client, Trust::Peer] {
        let mut c: Content<usize> = Content::new(CONTENT_LIMITS);
        for (i, part) in parts.iter().enumerate() {
            let scanned = update_scan::scan(part);
            if let Ok(s) = &scanned {
                agrees_with_yrs(part, s)?;
            }
            let before = snapshot_of(&c);
            let (decoded, parked) = (c.decoded_bytes(), c.parked());
            let offered = c.offer(Bytes::copy_from_slice(part), i, trust);
            if offered
                .settled
                .iter()
                .any(|s| s.result == Err(Failure::Broken))
            {
                return Err(Violation::Broken { step: i });
            }
            let refused_outright = match offered.settled.first() {
                Some(s) if s.tag == i => matches!(s.result, Err(Failure::Refused(_))),
                _ => false,
            };
            if let Err(r) = scanned {
                let as_scanned = offered.settled.len() == 1
                    && offered.settled[0].result == Err(Failure::Refused(r.clone()));
                if !as_scanned || offered.parked {
                    return Err(Violation::Content(format!(
                        "update {i}: the scan refused it ({r:?}), the content path did not"
                    )));
                }
            }
            if refused_outright || offered.parked {
                let same_count = c.parked() == parked + usize::from(offered.parked);
                if snapshot_of(&c) != before || c.decoded_bytes() != decoded || !same_count {
                    return Err(Violation::RefusedChanged { step: i });
                }
            }
            if trust == Trust::Client && c.decoded_bytes() > CONTENT_LIMITS.max_decoded_bytes {
                return Err(Violation::Content(format!(
                    "update {i}: a client's updates grew the document to {} estimated bytes",
                    c.decoded_bytes()
                )));
            }
        }
        reloads(&c)?;
    }
    Ok(())
}

/// What the document holds, encoded (as compaction stores it) and loaded
/// again as a stored snapshot, is the same document.
fn reloads(c: &Content<usize>) -> Result<(), Violation> {
    let state = c
        .doc()
        .transact()
        .encode_state_as_update_v1(&StateVector::default());
    let stored = StoredDoc {
        snapshot: Some(StoredSnapshot {
            upto: Seq(1),
            data: Bytes::from(state),
        }),
        tail: Vec::new(),
    };
    let unlimited = ContentLimits {
        max_decoded_bytes: u64::MAX,
        max_parked_bytes: usize::MAX,
    };
    let loaded = Content::load(&stored, unlimited, || 0usize)
        .map_err(|e| Violation::NotReloadable(e.to_string()))?;
    if snapshot_of(&loaded) != snapshot_of(c) {
        return Err(Violation::ReloadDiffers);
    }
    Ok(())
}

/// The scan and yrs agree on where every struct of an update is: the
/// nesting and memory checks rest on it.
fn agrees_with_yrs(update: &[u8], scan: &Scan) -> Result<(), Violation> {
    // yrs refusing what the scan read is harmless: the content path then
    // refuses it too (`Refusal::Undecodable`).
    let Ok(decoded) = Update::decode_v1(update) else {
        return Ok(());
    };
    let mut ranges = IdSet::default();
    for s in &scan.structs {
        ranges.insert(ID::new(ClientID::new(s.id.client), s.id.clock), s.len);
    }
    if ranges != decoded.insertions(true) {
        return Err(Violation::ScanDisagrees(format!(
            "structs: the scan read {ranges:?}, yrs {:?}",
            decoded.insertions(true)
        )));
    }
    if scan.lower() != decoded.state_vector_lower() {
        return Err(Violation::ScanDisagrees(format!(
            "lowest clocks: the scan read {:?}, yrs {:?}",
            scan.lower(),
            decoded.state_vector_lower()
        )));
    }
    Ok(())
}

fn snapshot_of<T>(c: &Content<T>) -> Snapshot {
    c.doc().transact().snapshot()
}
