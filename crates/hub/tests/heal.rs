//! Two hubs ("nodes") on one store and one in-process bus, with the bus made
//! to lose a message and the store made to commit late: the case that a heal
//! reading the log at once cannot fix, because an update is published
//! before its append commits.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

mod common;
use common::{AppendHook, HookedStore, redis_node};

use bytes::Bytes;
use quire_bus::{Bus, BusError, BusEvent, BusPayload, ControlEvent, LocalBus, Subscription};
use quire_hub::{Hub, HubConfig, JoinOptions, Outgoing, Session};
use quire_protocol::{Message, SyncMessage, encode_update};
use quire_store::{Append, DocStore, SqliteOptions, SqliteStore, StoreResult};
use quire_types::{DocId, NodeId, Seq};
use tokio::sync::{Semaphore, mpsc};
use yrs::updates::decoder::Decode;
use yrs::{GetString, ReadTxn, Text, Transact, Update, WriteTxn};

const TIMEOUT: Duration = Duration::from_secs(10);

/// Appends wait while the gate is closed: a slow commit.
struct Gate(Arc<Semaphore>);

#[async_trait::async_trait]
impl AppendHook for Gate {
    async fn append(
        &self,
        store: &SqliteStore,
        batch: &[Append],
    ) -> StoreResult<Vec<StoreResult<Seq>>> {
        let _permit = self.0.acquire().await.expect("gate open");
        store.append(batch).await
    }
}

/// A node's bus that loses the next `drop_updates` incoming updates, as
/// Redis pub/sub does during a disconnection.
struct LossyBus {
    inner: Arc<dyn Bus>,
    drop_updates: Arc<AtomicUsize>,
}

#[async_trait::async_trait]
impl Bus for LossyBus {
    fn node_id(&self) -> &NodeId {
        self.inner.node_id()
    }

    async fn subscribe(&self, doc: &DocId) -> Result<Subscription, BusError> {
        let inner = self.inner.subscribe(doc).await?;
        let (tx, rx) = mpsc::channel(1024);
        let drop_updates = self.drop_updates.clone();
        let forward = tokio::spawn(async move {
            // The whole subscription moves here: its guard must live too.
            let mut inner = inner;
            while let Some(ev) = inner.events.recv().await {
                let lost = matches!(&ev, BusEvent::Message(m) if matches!(m.payload, BusPayload::Update(_)))
                    && drop_updates
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                        .is_ok();
                if !lost && tx.send(ev).await.is_err() {
                    return;
                }
            }
        });
        Ok(Subscription::new(rx, AbortOnDrop(forward)))
    }

    fn publish(&self, doc: &DocId, payload: BusPayload) -> Result<u64, BusError> {
        self.inner.publish(doc, payload)
    }

    async fn subscribe_control(&self) -> Result<Subscription<ControlEvent>, BusError> {
        self.inner.subscribe_control().await
    }

    fn publish_control(&self, payload: Bytes) -> Result<(), BusError> {
        self.inner.publish_control(payload)
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A session with the client's side of the document.
struct Client {
    session: Session,
    doc: yrs::Doc,
}

impl Client {
    async fn join(hub: &Hub, id: &DocId) -> Client {
        let session = hub.join(id, JoinOptions::default()).await.expect("join");
        Client {
            session,
            doc: yrs::Doc::new(),
        }
    }

    /// Types `s` at the end, as its own update (and its own yrs client).
    async fn type_text(&self, s: &str) {
        let update = {
            let mut txn = self.doc.transact_mut();
            let text = txn.get_or_insert_text("t");
            let len = text.len(&txn);
            text.insert(&mut txn, len, s);
            txn.encode_update_v1()
        };
        assert!(self.session.receive(encode_update(&update)).await);
    }

    fn text(&self) -> String {
        let txn = self.doc.transact();
        txn.get_text("t")
            .map(|t| t.get_string(&txn))
            .unwrap_or_default()
    }

    /// Applies what the hub sends until `cond` holds.
    async fn wait_text(&mut self, what: &str, cond: impl Fn(&str) -> bool) {
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        while !cond(&self.text()) {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let out = tokio::time::timeout(left, self.session.next())
                .await
                .unwrap_or_else(|_| panic!("timed out: {what}; text is {:?}", self.text()));
            let Outgoing::Frame(frame) = out else {
                panic!("closed while waiting: {what}")
            };
            let update = match Message::decode(&frame).unwrap() {
                Message::Sync(SyncMessage::Update(u) | SyncMessage::Step2(u)) => u.to_vec(),
                _ => continue,
            };
            self.doc
                .transact_mut()
                .apply_update(Update::decode_v1(&update).unwrap())
                .unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_lost_on_the_bus_and_committed_late_still_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("q.db"), SqliteOptions::default())
        .await
        .unwrap();
    let bus = LocalBus::new();
    // One permit: appends take it in turn; the test takes it to stall them.
    let gate = Arc::new(Semaphore::new(1));
    let a = Hub::new(
        Arc::new(HookedStore {
            inner: store.clone(),
            hook: Gate(gate.clone()),
        }),
        Arc::new(bus.node(NodeId("a".into()))),
        HubConfig::default(),
    );
    let drop_updates = Arc::new(AtomicUsize::new(0));
    let b = Hub::new(
        Arc::new(store.clone()),
        Arc::new(LossyBus {
            inner: Arc::new(bus.node(NodeId("b".into()))),
            drop_updates: drop_updates.clone(),
        }),
        HubConfig::default(),
    );
    let id: DocId = "late".parse().unwrap();
    store.create_document(&id, "late").await.unwrap();
    let on_a = Client::join(&a, &id).await;
    let mut on_b = Client::join(&b, &id).await;

    // Contact: b has heard from a, and a's first update is durable.
    on_a.type_text("one ").await;
    on_b.wait_text("the first update", |t| t == "one ").await;

    // Commits stall; the next update is lost on its way to b; the one
    // after it arrives and reveals the gap. b's immediate heal finds
    // nothing: the lost update is not in the log yet.
    let held = gate.acquire().await.unwrap();
    drop_updates.store(1, Ordering::SeqCst);
    on_a.type_text("two ").await;
    let other = Client {
        session: a.join(&id, JoinOptions::default()).await.unwrap(),
        doc: yrs::Doc::new(),
    };
    other.type_text("three").await; // independent of "two": b can apply it
    on_b.wait_text("the update after the lost one", |t| t.contains("three"))
        .await;
    assert!(
        !on_b.text().contains("two"),
        "the lost update can't be there yet"
    );

    // A slow database: longer than the first two fallback heals (0.5 s and
    // 1.5 s after the gap), which find nothing. (A deliberate delay standing
    // in for a slow commit, not a wait for sync.)
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert!(!on_b.text().contains("two"));
    drop(held);
    let committed = tokio::time::Instant::now();

    // The commit notice brings it at once; the next fallback would only
    // come at 3.5 s.
    on_b.wait_text("the lost update, once committed", |t| t.contains("two"))
        .await;
    let after = committed.elapsed();
    assert!(
        after < Duration::from_secs(1),
        "arrived {after:?} after the commit"
    );
    assert!(
        on_b.text().contains("one ") && on_b.text().contains("three"),
        "{:?}",
        on_b.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_heals_from_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("q.db"), SqliteOptions::default())
        .await
        .unwrap();
    let bus = LocalBus::new();
    let node_b = bus.node(NodeId("b".into()));
    let drop_updates = Arc::new(AtomicUsize::new(0));
    let a = Hub::new(
        Arc::new(store.clone()),
        Arc::new(bus.node(NodeId("a".into()))),
        HubConfig::default(),
    );
    let b = Hub::new(
        Arc::new(store.clone()),
        Arc::new(LossyBus {
            inner: Arc::new(node_b.clone()),
            drop_updates: drop_updates.clone(),
        }),
        HubConfig::default(),
    );
    let id: DocId = "reconnect".parse().unwrap();
    store.create_document(&id, "reconnect").await.unwrap();
    let on_a = Client::join(&a, &id).await;
    let mut on_b = Client::join(&b, &id).await;
    on_a.type_text("before ").await;
    on_b.wait_text("contact", |t| t == "before ").await;

    // The only update after it is lost, and nothing follows to reveal a
    // gap: only the reconnect notice can bring it.
    drop_updates.store(1, Ordering::SeqCst);
    on_a.type_text("lost").await;
    // Committed before the "reconnect", as it would be by then.
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while store.load(&id).await.unwrap().tail.len() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the update never committed"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    node_b.simulate_reconnect();
    on_b.wait_text("the update missed while disconnected", |t| {
        t.contains("lost")
    })
    .await;
}

fn update_typing(s: &str) -> Vec<u8> {
    let doc = yrs::Doc::new();
    let mut txn = doc.transact_mut();
    txn.get_or_insert_text("t").insert(&mut txn, 0, s);
    txn.encode_update_v1()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_lost_from_a_node_restarted_under_the_same_id_is_healed() {
    // Node "b" restarts under the same --node-id, so its counters start at
    // 1 again, below the last one "a" heard from its previous run. The new
    // run's first update is lost on its way to "a"; its second reveals the
    // loss only if "a" tells the runs apart.
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("q.db"), SqliteOptions::default())
        .await
        .unwrap();
    let prefix = format!("quire-test-{}", NodeId::generate());
    let drop_updates = Arc::new(AtomicUsize::new(0));
    let a = Hub::new(
        Arc::new(store.clone()),
        Arc::new(LossyBus {
            inner: Arc::new(redis_node(&prefix, "a").await),
            drop_updates: drop_updates.clone(),
        }),
        HubConfig::default(),
    );
    let id: DocId = "restart-gap".parse().unwrap();
    store.create_document(&id, "restart-gap").await.unwrap();
    let mut on_a = Client::join(&a, &id).await;

    // The first run publishes three updates (counters 1 to 3).
    let first_run = redis_node(&prefix, "b").await;
    for word in ["one ", "two ", "three "] {
        first_run
            .publish(&id, BusPayload::Update(update_typing(word).into()))
            .unwrap();
    }
    on_a.wait_text("the first run's updates", |t| {
        ["one", "two", "three"].iter().all(|w| t.contains(w))
    })
    .await;
    drop(first_run);

    // The second run commits an update (here the test appends it for it)
    // and publishes it as counter 1, which "a" loses; counter 2 arrives.
    let second_run = redis_node(&prefix, "b").await;
    let lost = update_typing("lost ");
    store
        .append(&[Append {
            doc: id.clone(),
            update: Bytes::from(lost.clone()),
        }])
        .await
        .unwrap();
    drop_updates.store(1, Ordering::SeqCst);
    second_run
        .publish(&id, BusPayload::Update(lost.into()))
        .unwrap();
    second_run
        .publish(&id, BusPayload::Update(update_typing("after ").into()))
        .unwrap();
    on_a.wait_text("the update after the lost one", |t| t.contains("after"))
        .await;
    on_a.wait_text("the lost update, healed from the log", |t| {
        t.contains("lost")
    })
    .await;
}
