//! A session's outgoing queue is bounded in bytes as well as frames, and a
//! session that asks for the document's state again and again while the
//! last answer still waits in its queue gets that one answer: what a socket
//! that never reads can make the node hold is bounded.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use quire_bus::LocalBus;
use quire_hub::{CloseCode, Hub, HubConfig, JoinOptions, Outgoing, Session};
use quire_protocol::{Message, SyncMessage, encode_sync_step1, encode_update};
use quire_store::{DocStore, SqliteOptions, SqliteStore};
use quire_types::{DocId, NodeId};
use yrs::updates::encoder::Encode;
use yrs::{StateVector, Text, Transact, WriteTxn};

const TIMEOUT: Duration = Duration::from_secs(10);

/// A hub over a fresh store holding the documents `docs`.
async fn hub(dir: &tempfile::TempDir, config: HubConfig, docs: &[&str]) -> Hub {
    let store = SqliteStore::open(&dir.path().join("q.db"), SqliteOptions::default())
        .await
        .unwrap();
    for d in docs {
        store.create_document(&doc_id(d), d).await.unwrap();
    }
    Hub::new(
        Arc::new(store),
        Arc::new(LocalBus::new().node(NodeId::generate())),
        config,
    )
}

fn doc_id(s: &str) -> DocId {
    s.parse().unwrap()
}

fn text_update(client: u64, content: &str) -> Bytes {
    let doc = yrs::Doc::with_client_id(client);
    let mut txn = doc.transact_mut();
    txn.get_or_insert_text("t").insert(&mut txn, 0, content);
    encode_update(&txn.encode_update_v1())
}

async fn next_frame(s: &mut Session) -> Bytes {
    match tokio::time::timeout(TIMEOUT, s.next()).await.unwrap() {
        Outgoing::Frame(f) => f,
        Outgoing::Close(c) => panic!("closed: {c:?}"),
    }
}

#[tokio::test]
async fn repeated_state_requests_are_answered_by_the_reply_still_queued() {
    let dir = tempfile::tempdir().unwrap();
    let hub = hub(&dir, HubConfig::default(), &["big"]).await;
    let id = doc_id("big");
    let writer = hub.join(&id, JoinOptions::default()).await.unwrap();
    writer.receive(text_update(1, &"x".repeat(1_000_000))).await;

    let mut reader = hub.join(&id, JoinOptions::default()).await.unwrap();
    let step1 = encode_sync_step1(&StateVector::default().encode_v1());
    for _ in 0..100 {
        assert!(reader.receive(step1.clone()).await);
    }
    // A marker after them: frames of one document are handled in order.
    writer.receive(text_update(2, "marker")).await;

    let mut replies = 0;
    let mut queued_bytes = 0;
    loop {
        let f = next_frame(&mut reader).await;
        queued_bytes += f.len();
        match Message::decode(&f).unwrap() {
            Message::Sync(SyncMessage::Step2(_)) => replies += 1,
            Message::Sync(SyncMessage::Update(u)) if u.ends_with(b"marker\0") => break,
            _ => {}
        }
    }
    // Before: one 1 MB reply per request, 100 MB for a socket that reads
    // nothing.
    assert_eq!(replies, 1, "one reply for 100 requests");
    // (The document's first update reached the reader as a broadcast too.)
    assert!(queued_bytes < 2_100_000, "{queued_bytes} bytes queued");

    // Once the reply is taken, a new request gets a new one.
    assert!(reader.receive(step1).await);
    loop {
        let f = next_frame(&mut reader).await;
        if let Message::Sync(SyncMessage::Step2(_)) = Message::decode(&f).unwrap() {
            break;
        }
    }
}

#[tokio::test]
async fn a_session_past_its_queued_bytes_is_closed_as_too_slow() {
    let dir = tempfile::tempdir().unwrap();
    let config = HubConfig {
        outgoing_queue_bytes: 64 * 1024,
        ..HubConfig::default()
    };
    let hub = hub(&dir, config, &["flood"]).await;
    let id = doc_id("flood");
    let mut writer = hub.join(&id, JoinOptions::default()).await.unwrap();
    let mut slow = hub.join(&id, JoinOptions::default()).await.unwrap();
    let mut probe = hub.join(&id, JoinOptions::default()).await.unwrap();
    // 100 KiB of other people's edits for a session that reads nothing: far
    // under the 4,096 frames, over its 64 KiB. Sent in tens, each heard by a
    // session that reads before the next: the document may handle a whole
    // burst before the probe's reader runs, and the probe must stay under
    // the limit itself. After the last, the document has handled every
    // frame before `slow` looks at its queue.
    for chunk in 0..10u64 {
        for i in 0..10 {
            writer
                .receive(text_update(10 + chunk * 10 + i, &"y".repeat(1024)))
                .await;
        }
        let marker = format!("marker{chunk}");
        writer.receive(text_update(200 + chunk, &marker)).await;
        let tail = format!("{marker}\0");
        loop {
            let f = next_frame(&mut probe).await;
            if let Message::Sync(SyncMessage::Update(u)) = Message::decode(&f).unwrap()
                && u.ends_with(tail.as_bytes())
            {
                break;
            }
        }
    }
    let close = tokio::time::timeout(TIMEOUT, async {
        loop {
            if let Outgoing::Close(c) = slow.next().await {
                return c;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(close.code, CloseCode::TooSlow);
    // The writer is unaffected: it still hears the document.
    let other = hub.join(&id, JoinOptions::default()).await.unwrap();
    other.receive(text_update(999, "z")).await;
    loop {
        let f = next_frame(&mut writer).await;
        if let Message::Sync(SyncMessage::Update(_)) = Message::decode(&f).unwrap() {
            break;
        }
    }
}
