//! Document life cycle in the hub, against the real SQLite store: one load
//! for concurrent joiners, a failed load leaves nothing behind, idle
//! documents unload only after their last append committed.

use std::sync::Arc;
use std::time::Duration;

mod common;
use common::{AppendHook, HookedStore};

use bytes::Bytes;
use quire_bus::LocalBus;
use quire_hub::{Hub, HubConfig, JoinOptions, Outgoing, Session};
use quire_protocol::{Message, SyncMessage, encode_update};
use quire_store::{Append, DocStore, SqliteOptions, SqliteStore, StoreError, StoreResult};
use quire_types::{DocId, NodeId, Seq};
use tokio::sync::{Semaphore, mpsc};
use yrs::updates::decoder::Decode;
use yrs::{GetString, ReadTxn, Text, Transact, Update, WriteTxn};

const TIMEOUT: Duration = Duration::from_secs(10);

async fn store(dir: &tempfile::TempDir) -> SqliteStore {
    SqliteStore::open(&dir.path().join("q.db"), SqliteOptions::default())
        .await
        .unwrap()
}

fn hub(store: SqliteStore, config: HubConfig) -> Hub {
    hub_on(Arc::new(store), config)
}

fn hub_on(store: Arc<dyn DocStore>, config: HubConfig) -> Hub {
    Hub::new(
        store,
        Arc::new(LocalBus::new().node(NodeId::generate())),
        config,
    )
}

fn doc_id(s: &str) -> DocId {
    s.parse().unwrap()
}

/// The server's sync step 1 is always a session's first frame.
async fn first_state_vector(s: &mut Session) -> Vec<u8> {
    match tokio::time::timeout(TIMEOUT, s.next()).await.unwrap() {
        Outgoing::Frame(f) => match Message::decode(&f).unwrap() {
            Message::Sync(SyncMessage::Step1(sv)) => sv.to_vec(),
            other => panic!("expected step 1, got {other:?}"),
        },
        Outgoing::Close(c) => panic!("closed: {c:?}"),
    }
}

fn raw_text_update(content: &str) -> Vec<u8> {
    let doc = yrs::Doc::new();
    let mut txn = doc.transact_mut();
    txn.get_or_insert_text("t").insert(&mut txn, 0, content);
    txn.encode_update_v1()
}

fn text_update(content: &str) -> Bytes {
    encode_update(&raw_text_update(content))
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn concurrent_joiners_share_one_load() {
    let dir = tempfile::tempdir().unwrap();
    let st = store(&dir).await;
    st.create_document(&doc_id("shared"), "Shared")
        .await
        .unwrap();
    st.append(&[quire_store::Append {
        doc: doc_id("shared"),
        update: Bytes::from(raw_text_update("x")),
    }])
    .await
    .unwrap();
    let counter = st.clone();
    let hub = hub(st, HubConfig::default());

    // What one load costs, measured on another document.
    let before = counter.queries_executed();
    let mut s = hub
        .join(&doc_id("probe"), JoinOptions::default())
        .await
        .unwrap();
    first_state_vector(&mut s).await;
    let one_load = counter.queries_executed() - before;

    let before = counter.queries_executed();
    let joins = (0..20).map(|_| {
        let hub = hub.clone();
        tokio::spawn(async move {
            hub.join(&doc_id("shared"), JoinOptions::default())
                .await
                .unwrap()
        })
    });
    let mut sessions = Vec::new();
    for j in joins {
        sessions.push(j.await.unwrap());
    }
    assert_eq!(
        counter.queries_executed() - before,
        one_load,
        "twenty joiners, one load"
    );
    let mut svs = Vec::new();
    for s in &mut sessions {
        svs.push(first_state_vector(s).await);
    }
    assert!(svs.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(hub.live_documents(), 2);
}

#[tokio::test]
async fn a_failed_load_refuses_joiners_and_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let st = store(&dir).await;
    let closer = st.clone();
    let hub = hub(st, HubConfig::default());
    closer.close().await;
    let err = hub
        .join(&doc_id("broken"), JoinOptions::default())
        .await
        .err()
        .expect("join must fail");
    assert!(err.to_string().contains("could not be loaded"), "{err}");
    assert_eq!(hub.live_documents(), 0, "no empty document was left live");
    // Storage is back: the real (empty) document loads normally.
    let st2 = store(&dir).await;
    assert!(st2.load(&doc_id("broken")).await.unwrap().tail.is_empty());
}

#[tokio::test]
async fn idle_documents_unload_after_their_last_append_committed() {
    let dir = tempfile::tempdir().unwrap();
    let st = store(&dir).await;
    let reader = st.clone();
    let hub = hub(
        st,
        HubConfig {
            idle_unload: Duration::from_millis(20),
            ..HubConfig::default()
        },
    );
    let id = doc_id("idle");
    reader.create_document(&id, "Idle").await.unwrap();
    let s = hub.join(&id, JoinOptions::default()).await.unwrap();
    let doc = yrs::Doc::new();
    for i in 0..200 {
        let mut txn = doc.transact_mut();
        let t = txn.get_or_insert_text("t");
        t.insert(&mut txn, 0, &i.to_string());
        let u = txn.encode_update_v1();
        drop(txn);
        assert!(s.receive(encode_update(&u)).await);
    }
    drop(s); // leave at once, with appends still in flight
    wait_until("document unloaded", || hub.live_documents() == 0).await;
    // Everything the session sent is in the store.
    let stored = reader.load(&id).await.unwrap();
    let rebuilt = yrs::Doc::new();
    {
        let mut txn = rebuilt.transact_mut();
        for e in stored
            .snapshot
            .iter()
            .map(|s| &s.data)
            .chain(stored.tail.iter().map(|e| &e.update))
        {
            txn.apply_update(Update::decode_v1(e).unwrap()).unwrap();
        }
    }
    let expected = doc
        .transact()
        .get_text("t")
        .unwrap()
        .get_string(&doc.transact());
    let txn = rebuilt.transact();
    assert_eq!(txn.get_text("t").unwrap().get_string(&txn), expected);
}

#[tokio::test]
async fn shutdown_closes_sessions_with_going_away_and_flushes() {
    let dir = tempfile::tempdir().unwrap();
    let st = store(&dir).await;
    let reader = st.clone();
    let hub = hub(st, HubConfig::default());
    let id = doc_id("bye");
    reader.create_document(&id, "Bye").await.unwrap();
    let mut s = hub.join(&id, JoinOptions::default()).await.unwrap();
    first_state_vector(&mut s).await;
    assert!(s.receive(text_update("persist me")).await);
    tokio::time::timeout(TIMEOUT, hub.shutdown())
        .await
        .expect("shutdown completes");
    match tokio::time::timeout(TIMEOUT, s.next()).await.unwrap() {
        Outgoing::Close(c) => assert_eq!(c.code.code(), 1001),
        Outgoing::Frame(_) => {
            // A frame queued before the close is fine; the close follows.
            assert!(matches!(s.next().await, Outgoing::Close(c) if c.code.code() == 1001));
        }
    }
    assert_eq!(reader.load(&id).await.unwrap().tail.len(), 1);
    assert!(
        hub.join(&id, JoinOptions::default()).await.is_err(),
        "no joins after shutdown"
    );
}

/// The next ack's count, or the close; other frames are skipped.
async fn next_ack_or_close(s: &mut Session) -> Result<u64, quire_hub::CloseFrame> {
    loop {
        match tokio::time::timeout(TIMEOUT, s.next()).await.unwrap() {
            Outgoing::Frame(f) => {
                if let Message::Ack { durable } = Message::decode(&f).unwrap() {
                    return Ok(durable);
                }
            }
            Outgoing::Close(c) => return Err(c),
        }
    }
}

/// Every ack the session was given and the close that ended it. A session
/// hands out its close before frames still queued (a transport stops
/// writing), but a transport may have written those frames already: an ack
/// queued at all counts as told.
async fn acks_then_close(s: &mut Session) -> (Vec<u64>, quire_hub::CloseFrame) {
    let mut acks = Vec::new();
    let mut ack_of = |f: &Bytes| {
        if let Message::Ack { durable } = Message::decode(f).unwrap() {
            acks.push(durable);
        }
    };
    loop {
        match tokio::time::timeout(TIMEOUT, s.next()).await.unwrap() {
            Outgoing::Frame(f) => ack_of(&f),
            Outgoing::Close(c) => {
                while let Some(f) = s.try_next_frame() {
                    ack_of(&f);
                }
                return (acks, c);
            }
        }
    }
}

#[tokio::test]
async fn a_document_deleted_while_live_closes_its_sessions_and_stays_deleted() {
    // Another node deleted the document (straight in the store, no eviction
    // reached this one) while a session here keeps writing: the append is
    // refused, the sessions close with 4404, nothing is acknowledged and
    // the document does not come back. Another document's update, in the
    // same group commit, is stored and acknowledged.
    let dir = tempfile::tempdir().unwrap();
    let st = store(&dir).await;
    let reader = st.clone();
    let hub = hub(
        st,
        HubConfig {
            // Long enough for both updates below to share one batch.
            append_window: Duration::from_millis(200),
            ..HubConfig::default()
        },
    );
    let (id, bystander) = (doc_id("doomed"), doc_id("bystander"));
    for d in [&id, &bystander] {
        reader.create_document(d, d.as_str()).await.unwrap();
    }
    let acks = JoinOptions {
        durable_acks: true,
        ..JoinOptions::default()
    };
    let mut writer = hub.join(&id, acks.clone()).await.unwrap();
    let mut watcher = hub.join(&id, acks.clone()).await.unwrap();
    let mut other = hub.join(&bystander, acks.clone()).await.unwrap();
    for s in [&mut writer, &mut watcher, &mut other] {
        first_state_vector(s).await;
    }
    assert!(writer.receive(text_update("kept")).await);
    assert_eq!(next_ack_or_close(&mut writer).await.unwrap(), 1);

    reader.delete_document(&id).await.unwrap();
    assert!(writer.receive(text_update("too late")).await);
    assert!(other.receive(text_update("unaffected")).await);
    for s in [&mut writer, &mut watcher] {
        match next_ack_or_close(s).await {
            Err(c) => assert_eq!(c.code.code(), 4404, "{c:?}"),
            Ok(n) => panic!("acknowledged {n} after the delete"),
        }
    }
    wait_until("document unloaded", || hub.live_documents() == 1).await;
    assert_eq!(reader.document(&id).await.unwrap(), None);
    assert!(reader.load(&id).await.unwrap().tail.is_empty());

    assert_eq!(next_ack_or_close(&mut other).await.unwrap(), 1);
    assert_eq!(reader.load(&bystander).await.unwrap().tail.len(), 1);
}

/// Every append says it started and then waits for the test's word to fail
/// with an error no retry cures (a full disk): the test decides what is
/// queued at the document when the failure reaches it.
struct FailOnSignal {
    entered: mpsc::UnboundedSender<()>,
    fail: Arc<Semaphore>,
}

#[async_trait::async_trait]
impl AppendHook for FailOnSignal {
    async fn append(
        &self,
        _store: &SqliteStore,
        _batch: &[Append],
    ) -> StoreResult<Vec<StoreResult<Seq>>> {
        let _ = self.entered.send(());
        self.fail.acquire().await.expect("gate open").forget();
        Err(StoreError::Backend("database or disk is full".into()))
    }
}

#[tokio::test]
async fn a_failed_append_acknowledges_nothing_it_held() {
    // A sends U, whose append is in flight. B sends the same U: a no-op for
    // the live document, so B's acknowledgement is only as good as the
    // append holding U. The append fails while B's frame is still queued at
    // the document (the runtime has one thread and runs the appender before
    // the document, so that order is certain): the document takes the
    // failure first, then the frames already received. Neither session may
    // be told that U is durable; both close with 1011 and re-send U when
    // they reconnect.
    let dir = tempfile::tempdir().unwrap();
    let reader = store(&dir).await;
    let id = doc_id("unstored");
    reader.create_document(&id, "Unstored").await.unwrap();
    let (entered_tx, mut entered) = mpsc::unbounded_channel();
    let fail = Arc::new(Semaphore::new(0));
    let hub = hub_on(
        Arc::new(HookedStore {
            inner: reader.clone(),
            hook: FailOnSignal {
                entered: entered_tx,
                fail: fail.clone(),
            },
        }),
        HubConfig::default(),
    );
    let acks = JoinOptions {
        durable_acks: true,
        ..JoinOptions::default()
    };
    let mut a = hub.join(&id, acks.clone()).await.unwrap();
    let mut b = hub.join(&id, acks).await.unwrap();
    for s in [&mut a, &mut b] {
        first_state_vector(s).await;
    }
    let u = text_update("never stored");
    assert!(a.receive(u.clone()).await);
    tokio::time::timeout(TIMEOUT, entered.recv())
        .await
        .expect("U's append started")
        .unwrap();

    // No await in between that could let the document run first.
    fail.add_permits(1);
    assert!(b.receive(u).await);

    for (name, s) in [("A", &mut a), ("B", &mut b)] {
        let (acks, close) = acks_then_close(s).await;
        assert_eq!(close.code.code(), 1011, "{name}: {close:?}");
        assert!(
            acks.is_empty(),
            "{name} was acknowledged {acks:?} update(s) that no store holds"
        );
    }
    assert!(reader.load(&id).await.unwrap().tail.is_empty());
}
