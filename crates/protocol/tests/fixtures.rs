//! Byte fixtures produced by the JavaScript reference libraries (yjs,
//! y-protocols, lib0) — see `interop/scripts/protocol-fixtures.mjs`. Decoding
//! them and re-encoding must give the same bytes, and the payloads must mean
//! to yrs what they meant to Yjs.

use std::collections::HashMap;

use proptest::prelude::*;
use quire_protocol::*;
use yrs::updates::decoder::Decode;
use yrs::{GetString, ReadTxn, Text, Transact};

fn fixtures() -> HashMap<String, Vec<u8>> {
    include_str!("js_fixtures.txt")
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (name, hex) = l.split_once(' ').unwrap();
            let bytes = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect();
            (name.to_string(), bytes)
        })
        .collect()
}

#[test]
fn js_sync_messages_decode_and_reencode_identically() {
    let f = fixtures();
    for name in [
        "sync_step1",
        "sync_step2",
        "sync_update",
        "awareness",
        "awareness_removed",
        "query_awareness",
        "permission_denied",
        "awareness_bigint",
    ] {
        let bytes = &f[name];
        let msg = Message::decode(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            &msg.encode()[..],
            &bytes[..],
            "{name} re-encodes identically"
        );
    }
    match Message::decode(&f["sync_step1"]).unwrap() {
        Message::Sync(SyncMessage::Step1(sv)) => assert_eq!(sv, &f["raw_state_vector"][..]),
        other => panic!("{other:?}"),
    }
    match Message::decode(&f["sync_update"]).unwrap() {
        Message::Sync(SyncMessage::Update(u)) => assert_eq!(u, &f["raw_update"][..]),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        Message::decode(&f["permission_denied"]).unwrap(),
        Message::PermissionDenied {
            reason: "read-only document"
        }
    );
}

#[test]
fn js_step2_payload_is_a_yjs_update_yrs_understands() {
    let f = fixtures();
    let Message::Sync(SyncMessage::Step2(update)) = Message::decode(&f["sync_step2"]).unwrap()
    else {
        panic!("not step 2")
    };
    let doc = yrs::Doc::new();
    let text = doc.get_or_insert_text("t");
    doc.transact_mut()
        .apply_update(yrs::Update::decode_v1(update).unwrap())
        .unwrap();
    assert_eq!(text.get_string(&doc.transact()), "héllo!");
    let sv = doc.transact().state_vector();
    assert_eq!(sv.get(&yrs::block::ClientID::new(42)), 6);
}

#[test]
fn js_awareness_entries_parse() {
    let f = fixtures();
    let Message::Awareness(a) = Message::decode(&f["awareness"]).unwrap() else {
        panic!()
    };
    let up = AwarenessUpdate::decode(a).unwrap();
    assert_eq!(up.entries.len(), 1);
    assert_eq!(up.entries[0].client_id, 42);
    assert_eq!(up.entries[0].clock, 1);
    assert_eq!(
        up.entries[0].state,
        r##"{"user":{"name":"Ada","color":"#ff0000"}}"##
    );
    let Message::Awareness(a) = Message::decode(&f["awareness_removed"]).unwrap() else {
        panic!()
    };
    let up = AwarenessUpdate::decode(a).unwrap();
    assert!(up.entries[0].is_removal());
    assert_eq!(up.entries[0].clock, 2);
    let Message::Awareness(a) = Message::decode(&f["awareness_bigint"]).unwrap() else {
        panic!()
    };
    let up = AwarenessUpdate::decode(a).unwrap();
    assert_eq!(up.entries[0].client_id, (1u64 << 40) + 7);
    assert_eq!(up.entries[0].clock, 300);
    let reencoded =
        encode_awareness_update(up.entries.iter().map(|e| (e.client_id, e.clock, e.state)));
    assert_eq!(reencoded, a);
}

#[test]
fn yrs_encoded_messages_decode() {
    use yrs::sync::{Message as YMessage, SyncMessage as YSync};
    use yrs::updates::encoder::Encode;
    let doc = yrs::Doc::new();
    let text = doc.get_or_insert_text("t");
    text.insert(&mut doc.transact_mut(), 0, "abc");
    let sv = doc.transact().state_vector();
    let y = YMessage::Sync(YSync::SyncStep1(sv.clone())).encode_v1();
    assert_eq!(
        Message::decode(&y).unwrap(),
        Message::Sync(SyncMessage::Step1(&sv.encode_v1()))
    );
    let ours = encode_sync_step1(&sv.encode_v1());
    assert_eq!(&ours[..], &y[..]);
}

proptest! {
    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = Message::decode(&bytes);
        let _ = AwarenessUpdate::decode(&bytes);
    }

    #[test]
    fn sync_and_ack_round_trip(payload in proptest::collection::vec(any::<u8>(), 0..300), n in any::<u64>()) {
        for frame in [encode_update(&payload), encode_sync_step1(&payload), encode_sync_step2(&payload)] {
            let msg = Message::decode(&frame).unwrap();
            prop_assert!(matches!(msg, Message::Sync(_)));
            prop_assert_eq!(msg.encode(), frame);
        }
        let ack = encode_ack(n);
        prop_assert_eq!(Message::decode(&ack).unwrap(), Message::Ack { durable: n });
    }

    #[test]
    fn truncated_frames_are_errors(payload in proptest::collection::vec(any::<u8>(), 1..100), cut in 1usize..100) {
        let frame = encode_update(&payload);
        let cut = cut.min(frame.len() - 1);
        prop_assert!(Message::decode(&frame[..cut]).is_err());
    }

    #[test]
    fn awareness_round_trips(entries in proptest::collection::vec((0..=quire_protocol::MAX_CLIENT_ID, any::<u64>(), "[a-z{}\":]{0,20}"), 0..5)) {
        let bytes = encode_awareness_update(entries.iter().map(|(c, k, s)| (*c, *k, s.as_str())));
        let up = AwarenessUpdate::decode(&bytes).unwrap();
        let back: Vec<_> = up.entries.iter().map(|e| (e.client_id, e.clock, e.state.to_string())).collect();
        prop_assert_eq!(back, entries);
    }
}
