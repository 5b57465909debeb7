//! A node that dies between publishing an update and committing it (F7).
//!
//! Its peers applied the update from the bus, so it lives on in their
//! memory only. When its author reconnects to a peer, the peer's sync step 1
//! must not count that update as stored: otherwise the author's diff leaves
//! it out, the peer acknowledges, and no store ever holds it (a node loading
//! the document later lacks it, and everything typed after it).

use std::sync::Arc;
use std::time::Duration;

mod common;
use common::redis_node;

use quire_bus::{Bus, BusPayload, LocalBus};
use quire_hub::{Hub, HubConfig, JoinOptions, Outgoing, Session};
use quire_protocol::{Message, SyncMessage, encode_sync_step2, encode_update};
use quire_store::{DocStore, SqliteOptions, SqliteStore};
use quire_types::{DocId, NodeId};
use yrs::updates::decoder::Decode;
use yrs::{GetString, ReadTxn, StateVector, Text, Transact, Update, WriteTxn};

const TIMEOUT: Duration = Duration::from_secs(10);

fn type_text(doc: &yrs::Doc, s: &str) -> Vec<u8> {
    let mut txn = doc.transact_mut();
    let text = txn.get_or_insert_text("t");
    let len = text.len(&txn);
    text.insert(&mut txn, len, s);
    txn.encode_update_v1()
}

fn text(doc: &yrs::Doc) -> String {
    let txn = doc.transact();
    txn.get_text("t")
        .map(|t| t.get_string(&txn))
        .unwrap_or_default()
}

/// The next message the hub sends the session.
async fn next_message(session: &mut Session, what: &str) -> Vec<u8> {
    match tokio::time::timeout(TIMEOUT, session.next()).await {
        Ok(Outgoing::Frame(f)) => f.to_vec(),
        Ok(Outgoing::Close(c)) => panic!("closed while waiting for {what}: {c:?}"),
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

/// What a fresh load of the document from the store shows.
async fn stored_text(store: &SqliteStore, id: &DocId) -> String {
    let stored = store.load(id).await.unwrap();
    let doc = yrs::Doc::new();
    {
        let mut txn = doc.transact_mut();
        for bytes in stored
            .snapshot
            .iter()
            .map(|s| &s.data)
            .chain(stored.tail.iter().map(|e| &e.update))
        {
            txn.apply_update(Update::decode_v1(bytes).unwrap()).unwrap();
        }
    }
    text(&doc)
}

/// A surviving node's hub on a fresh SQLite store and a local bus, with the
/// document `orphaned` created; the temporary folder lives as long as the
/// first value.
async fn survivor(config: HubConfig) -> (tempfile::TempDir, SqliteStore, LocalBus, Hub, DocId) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("q.db"), SqliteOptions::default())
        .await
        .unwrap();
    let bus = LocalBus::new();
    let hub = Hub::new(
        Arc::new(store.clone()),
        Arc::new(bus.node(NodeId("survivor".into()))),
        config,
    );
    let id: DocId = "orphaned".parse().unwrap();
    store.create_document(&id, "orphaned").await.unwrap();
    (dir, store, bus, hub, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_whose_origin_died_uncommitted_is_stored_when_its_author_returns() {
    let (_dir, store, bus, hub, id) = survivor(HubConfig::default()).await;
    let mut watcher = hub.join(&id, JoinOptions::default()).await.unwrap();

    // The author typed on the node that died: it published the update on
    // the bus and was killed before its append committed. Only the
    // surviving node's memory holds it.
    let author = yrs::Doc::new();
    let lost = type_text(&author, "lost ");
    let dead = bus.node(NodeId("dead".into()));
    dead.publish(&id, BusPayload::Update(lost.into())).unwrap();
    let watched = yrs::Doc::new();
    watch_until(&mut watcher, &watched, "lost").await;

    // The author reconnects here with what it holds, as a Yjs client does:
    // it answers the node's step 1 with a diff against it, and types on.
    let mut session = hub
        .join(
            &id,
            JoinOptions {
                durable_acks: true,
                ..JoinOptions::default()
            },
        )
        .await
        .unwrap();
    let offered = loop {
        let frame = next_message(&mut session, "sync step 1").await;
        if let Message::Sync(SyncMessage::Step1(sv)) = Message::decode(&frame).unwrap() {
            break StateVector::decode_v1(sv).unwrap();
        }
    };
    let diff = author.transact().encode_diff_v1(&offered);
    assert!(session.receive(encode_sync_step2(&diff)).await);
    let more = type_text(&author, "more");
    assert!(session.receive(encode_update(&more)).await);
    loop {
        let frame = next_message(&mut session, "the ack").await;
        if let Message::Ack { durable } = Message::decode(&frame).unwrap()
            && durable >= 2
        {
            break;
        }
    }

    // Acknowledged means stored: a node loading the document now sees it all.
    assert_eq!(stored_text(&store, &id).await, "lost more");
}

/// Waits until a fresh load from the store shows `want`.
async fn wait_stored(store: &SqliteStore, id: &DocId, want: &str) {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let got = stored_text(store, id).await;
        if got == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the store shows {got:?}, not {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Reads frames until the watcher's replica contains `what`.
async fn watch_until(watcher: &mut Session, watched: &yrs::Doc, what: &str) {
    while !text(watched).contains(what) {
        let frame = next_message(watcher, what).await;
        if let Message::Sync(SyncMessage::Update(u) | SyncMessage::Step2(u)) =
            Message::decode(&frame).unwrap()
        {
            watched
                .transact_mut()
                .apply_update(Update::decode_v1(u).unwrap())
                .unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_whose_origin_died_uncommitted_is_stored_by_a_survivor_when_its_author_never_returns()
 {
    let (_dir, store, bus, hub, id) = survivor(HubConfig {
        adopt_orphans_after: Duration::from_millis(300),
        ..HubConfig::default()
    })
    .await;
    let mut watcher = hub.join(&id, JoinOptions::default()).await.unwrap();
    let watched = yrs::Doc::new();

    // A live node publishes an update and announces its commit at once (it
    // appended it itself; here nobody does, so the store shows whether the
    // survivor appended it too, which it must not).
    let alive = bus.node(NodeId("alive".into()));
    let author = yrs::Doc::new();
    let committed = type_text(&author, "kept ");
    let counter = alive
        .publish(&id, BusPayload::Update(committed.into()))
        .unwrap();
    alive
        .publish(&id, BusPayload::Committed { covers: counter })
        .unwrap();
    watch_until(&mut watcher, &watched, "kept").await;

    // Another node publishes an update and dies before committing it; its
    // author never comes back.
    let dead = bus.node(NodeId("dead".into()));
    let other = yrs::Doc::new();
    let lost = type_text(&other, "orphan");
    dead.publish(&id, BusPayload::Update(lost.into())).unwrap();
    watch_until(&mut watcher, &watched, "orphan").await;

    // The survivor stores the orphan once its origin stayed silent past the
    // limit, and only the orphan.
    wait_stored(&store, &id, "orphan").await;
    let stored = store.load(&id).await.unwrap();
    assert_eq!(stored.tail.len(), 1, "only the orphan is appended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restarted_under_the_same_id_is_heard_and_its_predecessors_orphans_are_stored() {
    // A StatefulSet restarts node "b" under the same --node-id: its bus
    // counters start again at 1. Its previous run published an update and
    // died before committing it. The survivor must deliver the new run's
    // updates live, and must not take the new run's commit notices for the
    // old run's: the old update is still an orphan, and is stored.
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("q.db"), SqliteOptions::default())
        .await
        .unwrap();
    let prefix = format!("quire-test-{}", NodeId::generate());
    let hub = Hub::new(
        Arc::new(store.clone()),
        Arc::new(redis_node(&prefix, "survivor").await),
        HubConfig {
            adopt_orphans_after: Duration::from_millis(1000),
            ..HubConfig::default()
        },
    );
    let id: DocId = "restarted".parse().unwrap();
    store.create_document(&id, "restarted").await.unwrap();
    let mut watcher = hub.join(&id, JoinOptions::default()).await.unwrap();
    let watched = yrs::Doc::new();

    // The first run: one update committed (it appended it itself; here
    // nobody does, so the store shows only what the survivor appends), then
    // one published as it was killed, never committed (counters 1, 2, 3).
    let first_run = redis_node(&prefix, "b").await;
    let author = yrs::Doc::new();
    let kept = type_text(&author, "kept ");
    let c = first_run
        .publish(&id, BusPayload::Update(kept.into()))
        .unwrap();
    first_run
        .publish(&id, BusPayload::Committed { covers: c })
        .unwrap();
    let dying = yrs::Doc::new();
    let orphan = type_text(&dying, "orphan ");
    assert_eq!(
        first_run
            .publish(&id, BusPayload::Update(orphan.into()))
            .unwrap(),
        3
    );
    watch_until(&mut watcher, &watched, "orphan").await;
    drop(first_run);

    // The second run, same id, its counters from 1 again: updates that it
    // commits at once (counters 1 to 4, then `covers` 4, past the orphan's 3).
    let second_run = redis_node(&prefix, "b").await;
    let other = yrs::Doc::new();
    for word in ["new ", "and ", "more ", "last"] {
        let u = type_text(&other, word);
        second_run
            .publish(&id, BusPayload::Update(u.into()))
            .unwrap();
    }
    second_run
        .publish(&id, BusPayload::Committed { covers: 4 })
        .unwrap();
    watch_until(&mut watcher, &watched, "last").await;

    // The orphan is stored once its limit passed, and only the orphan.
    wait_stored(&store, &id, "orphan ").await;
    let stored = store.load(&id).await.unwrap();
    assert_eq!(stored.tail.len(), 1, "only the orphan is appended");
}
