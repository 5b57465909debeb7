//! Client ids above 2^53 − 1, which stock Yjs clients read as imprecise
//! JavaScript numbers: an update or awareness update mentioning one costs its
//! sender the socket (4400) and nothing else: it is not applied, stored or
//! broadcast, and the other sessions on the document go on.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use quire_bus::LocalBus;
use quire_hub::{Hub, HubConfig, JoinOptions, Outgoing, Session};
use quire_protocol::{
    Message, SyncMessage, encode_awareness, encode_awareness_update, encode_sync_step2,
    encode_update, write_var_uint,
};
use quire_store::{DocStore, SqliteOptions, SqliteStore};
use quire_types::{DocId, NodeId};
use yrs::updates::decoder::Decode;
use yrs::{GetString, Text, Transact, Update, WriteTxn};

const TIMEOUT: Duration = Duration::from_secs(10);
const MAX_SAFE: u64 = (1 << 53) - 1;

/// `doc.clientID = client; doc.getText('text').insert(0, 'a')`, as Yjs writes it.
fn insert_by(client: u64) -> Vec<u8> {
    let mut u = vec![1, 1];
    write_var_uint(&mut u, client);
    u.extend_from_slice(&[0, 4, 1, 4, b't', b'e', b'x', b't', 1, b'a', 0]);
    u
}

/// No structs; a delete set naming one item of `client`.
fn deletion_by(client: u64) -> Vec<u8> {
    let mut u = vec![0, 1];
    write_var_uint(&mut u, client);
    u.extend_from_slice(&[1, 0, 1]);
    u
}

fn good_update(content: &str) -> Vec<u8> {
    let doc = yrs::Doc::with_client_id(42);
    let mut txn = doc.transact_mut();
    txn.get_or_insert_text("text").insert(&mut txn, 0, content);
    txn.encode_update_v1()
}

async fn setup(dir: &tempfile::TempDir, name: &str) -> (Hub, SqliteStore, DocId) {
    let st = SqliteStore::open(&dir.path().join("q.db"), SqliteOptions::default())
        .await
        .unwrap();
    let id: DocId = name.parse().unwrap();
    st.create_document(&id, name).await.unwrap();
    let hub = Hub::new(
        Arc::new(st.clone()),
        Arc::new(LocalBus::new().node(NodeId::generate())),
        HubConfig::default(),
    );
    (hub, st, id)
}

async fn next(s: &mut Session) -> Outgoing {
    tokio::time::timeout(TIMEOUT, s.next())
        .await
        .expect("timed out waiting for the hub")
}

/// Joins and consumes the server's sync step 1.
async fn joined(hub: &Hub, id: &DocId, opts: JoinOptions) -> Session {
    let mut s = hub.join(id, opts).await.unwrap();
    match next(&mut s).await {
        Outgoing::Frame(f) => assert!(matches!(
            Message::decode(&f).unwrap(),
            Message::Sync(SyncMessage::Step1(_))
        )),
        Outgoing::Close(c) => panic!("closed on join: {c:?}"),
    }
    s
}

/// Sends `frame` from a fresh session and expects it closed with 4400 and a
/// reason that names the problem.
async fn refused(hub: &Hub, id: &DocId, opts: JoinOptions, frame: Bytes) {
    let mut evil = joined(hub, id, opts).await;
    assert!(evil.receive(frame).await);
    loop {
        match next(&mut evil).await {
            Outgoing::Close(c) => {
                assert_eq!(c.code.code(), 4400, "{c:?}");
                assert!(c.reason.contains("2^53"), "reason: {:?}", c.reason);
                return;
            }
            Outgoing::Frame(f) => match Message::decode(&f).unwrap() {
                Message::Sync(SyncMessage::Step2(_)) | Message::Awareness(_) => {}
                other => panic!("expected a close, got {other:?}"),
            },
        }
    }
}

/// The bystander's text once it says `want`; panics if the bystander is
/// closed or hears any other update first.
async fn bystander_sees(s: &mut Session, want: &str) {
    let doc = yrs::Doc::new();
    let text = doc.transact_mut().get_or_insert_text("text");
    loop {
        match next(s).await {
            Outgoing::Close(c) => panic!("the bystander was closed: {c:?}"),
            Outgoing::Frame(f) => {
                if let Message::Sync(SyncMessage::Update(u) | SyncMessage::Step2(u)) =
                    Message::decode(&f).unwrap()
                {
                    let mut txn = doc.transact_mut();
                    txn.apply_update(Update::decode_v1(u).unwrap()).unwrap();
                    let got = text.get_string(&txn);
                    if got == want {
                        return;
                    }
                    assert!(got.is_empty(), "the bystander saw {got:?}");
                }
            }
        }
    }
}

#[tokio::test]
async fn updates_with_client_ids_above_2_pow_53_minus_1_close_only_their_sender() {
    let dir = tempfile::tempdir().unwrap();
    let (hub, store, id) = setup(&dir, "big-ids").await;
    let mut bystander = joined(&hub, &id, JoinOptions::default()).await;

    let writer = JoinOptions::default();
    let viewer = JoinOptions {
        can_write: false,
        ..JoinOptions::default()
    };
    for client in [MAX_SAFE + 1, 1 << 60, u64::MAX] {
        for update in [insert_by(client), deletion_by(client)] {
            refused(&hub, &id, writer.clone(), encode_update(&update)).await;
            refused(&hub, &id, writer.clone(), encode_sync_step2(&update)).await;
            refused(&hub, &id, viewer.clone(), encode_sync_step2(&update)).await;
        }
    }
    assert!(
        store.load(&id).await.unwrap().tail.is_empty(),
        "nothing refused was stored"
    );

    // The document and the bystander go on.
    let good = joined(&hub, &id, JoinOptions::default()).await;
    assert!(good.receive(encode_update(&good_update("fine"))).await);
    bystander_sees(&mut bystander, "fine").await;
}

#[tokio::test]
async fn the_largest_safe_client_id_is_applied() {
    let dir = tempfile::tempdir().unwrap();
    let (hub, _store, id) = setup(&dir, "safe-ids").await;
    let mut bystander = joined(&hub, &id, JoinOptions::default()).await;
    let sender = joined(&hub, &id, JoinOptions::default()).await;
    assert!(sender.receive(encode_update(&insert_by(MAX_SAFE))).await);
    bystander_sees(&mut bystander, "a").await;
}

#[tokio::test]
async fn awareness_with_a_client_id_above_2_pow_53_minus_1_closes_only_its_sender() {
    let dir = tempfile::tempdir().unwrap();
    let (hub, _store, id) = setup(&dir, "big-presence").await;
    let mut bystander = joined(&hub, &id, JoinOptions::default()).await;
    for client in [MAX_SAFE + 1, 1 << 60, u64::MAX] {
        let update = encode_awareness_update([(client, 1, r#"{"user":"x"}"#)].into_iter());
        refused(&hub, &id, JoinOptions::default(), encode_awareness(&update)).await;
    }
    // The bystander heard no presence of those ids, and still hears updates.
    let good = joined(&hub, &id, JoinOptions::default()).await;
    assert!(
        good.receive(encode_update(&good_update("still here")))
            .await
    );
    loop {
        match next(&mut bystander).await {
            Outgoing::Close(c) => panic!("the bystander was closed: {c:?}"),
            Outgoing::Frame(f) => match Message::decode(&f).unwrap() {
                Message::Awareness(a) => panic!("the bystander heard presence: {a:?}"),
                Message::Sync(SyncMessage::Update(_)) => break,
                _ => {}
            },
        }
    }
}
