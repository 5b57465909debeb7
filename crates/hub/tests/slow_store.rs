//! A slow disk: every commit of the real SQLite store takes [`COMMIT`]
//! longer (no real slow device is at hand, so the store's append waits
//! first). Broadcast does not wait for durability: readers keep hearing
//! updates at once while the writer's acks wait for the disk. Under more
//! load than the disk can take, back-pressure reaches the writer (its
//! frames are taken only as fast as commits free room) and what the node
//! holds that is not yet committed stays within the queues' bounds.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

mod common;
use common::{AppendHook, HookedStore};

use bytes::Bytes;
use quire_bus::LocalBus;
use quire_hub::{
    Hub, HubConfig, JoinOptions, Offered, Outgoing, Session, SessionInbound, SessionOutbound,
};
use quire_protocol::{Message, SyncMessage, encode_update};
use quire_store::{Append, DocStore, SqliteOptions, SqliteStore, StoreResult};
use quire_types::{DocId, NodeId, Seq};
use tokio::sync::mpsc;
use yrs::{Array, Transact, WriteTxn};

/// What the disk adds to every commit.
const COMMIT: Duration = Duration::from_millis(200);
const TIMEOUT: Duration = Duration::from_secs(20);

/// The queues between a writer's socket and the store, and what they hold
/// at most (see `crates/hub/src/doc.rs` and `appender.rs`): the
/// document's frame queue, the one frame its actor is applying, the
/// node's appender queue, and the batch being committed.
const FRAME_QUEUE: u64 = 256;
const APPENDER_QUEUE: u64 = 16 * 1024;
/// Smaller than the default (1,024) so that this disk takes about 640
/// updates a second, far fewer than a debug build's document applies even
/// on a machine busy with other tests: the queues fill.
const MAX_BATCH: u64 = 128;
const MOST_UNCOMMITTED: u64 = FRAME_QUEUE + 1 + APPENDER_QUEUE + MAX_BATCH;

/// The real store behind a slow disk; counts what it committed.
#[derive(Default)]
struct SlowDisk {
    committed: AtomicU64,
    largest_batch: AtomicUsize,
}

#[async_trait::async_trait]
impl AppendHook for Arc<SlowDisk> {
    async fn append(
        &self,
        store: &SqliteStore,
        batch: &[Append],
    ) -> StoreResult<Vec<StoreResult<Seq>>> {
        tokio::time::sleep(COMMIT).await;
        let result = store.append(batch).await;
        if result.is_ok() {
            self.committed
                .fetch_add(batch.len() as u64, Ordering::AcqRel);
            self.largest_batch.fetch_max(batch.len(), Ordering::AcqRel);
        }
        result
    }
}

async fn slow_hub(dir: &tempfile::TempDir, doc: &DocId) -> (Hub, Arc<SlowDisk>) {
    let config = HubConfig {
        append_max_batch: MAX_BATCH as usize,
        ..HubConfig::default()
    };
    slow_hub_with(dir, doc, config).await
}

async fn slow_hub_with(
    dir: &tempfile::TempDir,
    doc: &DocId,
    config: HubConfig,
) -> (Hub, Arc<SlowDisk>) {
    let store = SqliteStore::open(&dir.path().join("q.db"), SqliteOptions::default())
        .await
        .unwrap();
    store.create_document(doc, "Slow").await.unwrap();
    let disk = Arc::new(SlowDisk::default());
    let hub = Hub::new(
        Arc::new(HookedStore {
            inner: store,
            hook: disk.clone(),
        }),
        Arc::new(LocalBus::new().node(NodeId::generate())),
        config,
    );
    (hub, disk)
}

/// A writer with durable acks and a read-only reader of `id`.
async fn writer_and_reader(hub: &Hub, id: &DocId) -> (Session, Session) {
    let writer = hub
        .join(
            id,
            JoinOptions {
                durable_acks: true,
                ..JoinOptions::default()
            },
        )
        .await
        .unwrap();
    let reader = hub
        .join(
            id,
            JoinOptions {
                can_write: false,
                ..JoinOptions::default()
            },
        )
        .await
        .unwrap();
    (writer, reader)
}

/// Hands a frame to the document as the WebSocket pump does: offer, and
/// when the document is busy, wait for room (the socket is not read
/// meanwhile). Returns whether it had to wait.
async fn hand_over(inbound: &SessionInbound, frame: Bytes) -> bool {
    match inbound.offer(frame) {
        Offered::Taken => false,
        Offered::Busy(frame) => {
            let permit = tokio::time::timeout(TIMEOUT, inbound.reserve(frame.len()))
                .await
                .expect("room within a commit or two")
                .expect("the document is live");
            permit.send(frame);
            true
        }
        Offered::Gone => panic!("the document went away"),
    }
}

/// Consecutive updates of one Yjs client: each appends a number to a list.
struct Typing {
    doc: yrs::Doc,
    next: i64,
}

impl Typing {
    fn new() -> Self {
        Typing {
            doc: yrs::Doc::new(),
            next: 0,
        }
    }

    fn next_frame(&mut self) -> Bytes {
        let mut txn = self.doc.transact_mut();
        txn.get_or_insert_array("log")
            .push_back(&mut txn, self.next);
        self.next += 1;
        encode_update(&txn.encode_update_v1())
    }
}

/// Frames of one kind a session received, with when they arrived.
enum Heard {
    Update(Instant),
    Ack(u64, Instant),
    Closed(quire_hub::CloseFrame),
}

/// Reads a session as fast as it can, as a healthy socket would, and
/// reports updates and acks.
fn listen(mut s: SessionOutbound) -> mpsc::UnboundedReceiver<Heard> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let heard = match s.next().await {
                Outgoing::Frame(f) => match Message::decode(&f).unwrap() {
                    Message::Sync(SyncMessage::Update(_)) => Heard::Update(Instant::now()),
                    Message::Ack { durable } => Heard::Ack(durable, Instant::now()),
                    _ => continue,
                },
                Outgoing::Close(c) => Heard::Closed(c),
            };
            let closed = matches!(heard, Heard::Closed(_));
            if tx.send(heard).is_err() || closed {
                return;
            }
        }
    });
    rx
}

async fn heard(rx: &mut mpsc::UnboundedReceiver<Heard>) -> Heard {
    tokio::time::timeout(TIMEOUT, rx.recv())
        .await
        .expect("the session heard something")
        .expect("the listener is running")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_disk_delays_acks_but_not_broadcasts() {
    let dir = tempfile::tempdir().unwrap();
    let id: DocId = "slow".parse().unwrap();
    let (hub, disk) = slow_hub(&dir, &id).await;
    let (writer, reader) = writer_and_reader(&hub, &id).await;
    let Session { inbound, outbound } = writer;
    let mut acks = listen(outbound);
    let mut updates = listen(reader.outbound);

    // A steady typist, well within what group commit can absorb: a dozen
    // updates per commit.
    let mut typing = Typing::new();
    let mut sent = Vec::new();
    for _ in 0..48 {
        let frame = typing.next_frame();
        sent.push(Instant::now());
        assert!(inbound.receive(frame).await);
        tokio::time::sleep(Duration::from_millis(15)).await;
    }

    let mut broadcast = Vec::new();
    while broadcast.len() < sent.len() {
        match heard(&mut updates).await {
            Heard::Update(at) => broadcast.push(at.duration_since(sent[broadcast.len()])),
            Heard::Ack(..) => {}
            Heard::Closed(c) => panic!("the reader was closed: {c:?}"),
        }
    }
    let mut acked = vec![None; sent.len()];
    let mut covered = 0usize;
    while covered < sent.len() {
        match heard(&mut acks).await {
            Heard::Ack(n, at) => {
                for slot in &mut acked[covered..n as usize] {
                    *slot = Some(at);
                }
                covered = n as usize;
            }
            Heard::Update(_) => {}
            Heard::Closed(c) => panic!("the writer was closed: {c:?}"),
        }
    }
    let ack_latency: Vec<Duration> = acked
        .iter()
        .zip(&sent)
        .map(|(at, sent)| at.unwrap().duration_since(*sent))
        .collect();
    broadcast.sort();
    let fastest_ack = ack_latency.iter().min().unwrap();
    eprintln!(
        "commit {COMMIT:?}: broadcast p50 {:?} p90 {:?} max {:?}; ack min {fastest_ack:?}; \
         largest batch {}",
        percentile(&broadcast, 0.5),
        percentile(&broadcast, 0.9),
        broadcast.last().unwrap(),
        disk.largest_batch.load(Ordering::Acquire)
    );
    // Every ack waited for its commit; readers did not.
    assert!(
        *fastest_ack >= COMMIT,
        "an ack came before its commit could end"
    );
    assert!(
        percentile(&broadcast, 0.9) < COMMIT / 4,
        "readers waited for the disk: {broadcast:?}"
    );
    assert!(
        disk.largest_batch.load(Ordering::Acquire) > 1,
        "updates that arrived during a commit shared the next one"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_pressure_from_a_slow_disk_reaches_the_writer_and_memory_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let id: DocId = "flooded".parse().unwrap();
    let (hub, disk) = slow_hub(&dir, &id).await;
    let (writer, reader) = writer_and_reader(&hub, &id).await;
    let Session { inbound, outbound } = writer;
    let mut updates = listen(reader.outbound);
    // The writer's acks are read too (a stalled outbox would be closed).
    let mut acks = listen(outbound);

    // A writer faster than the disk (its updates are made beforehand),
    // handing frames over the way the WebSocket pump does: offer, and when
    // the document is busy, wait for room (the socket is not read
    // meanwhile, so TCP pushes back on the client). Once the queues are
    // full it sends a few batches more, which can only get through as fast
    // as the disk commits them.
    let mut typing = Typing::new();
    let frames: Vec<Bytes> = (0..2 * MOST_UNCOMMITTED)
        .map(|_| typing.next_frame())
        .collect();
    let mut taken = 0u64;
    let mut most_uncommitted = 0u64;
    let mut full: Option<(Instant, u64)> = None;
    let mut after_full = None;
    let started = Instant::now();
    for frame in frames {
        hand_over(&inbound, frame).await;
        taken += 1;
        let uncommitted = taken - disk.committed.load(Ordering::Acquire);
        most_uncommitted = most_uncommitted.max(uncommitted);
        assert!(
            uncommitted <= MOST_UNCOMMITTED,
            "{uncommitted} updates taken and not committed: more than the queues hold"
        );
        if full.is_none() && uncommitted >= APPENDER_QUEUE + FRAME_QUEUE {
            full = Some((Instant::now(), taken));
        }
        if let Some((at, n)) = full
            && taken >= n + 4 * MAX_BATCH
        {
            after_full = Some(at.elapsed());
            break;
        }
    }
    let flood = started.elapsed();
    let after_full = after_full.unwrap_or_else(|| {
        panic!("the queues never filled (at most {most_uncommitted} uncommitted): no back-pressure")
    });
    eprintln!(
        "{taken} updates in {flood:?} against a {COMMIT:?} disk: at most {most_uncommitted} \
         uncommitted (bound {MOST_UNCOMMITTED}); once the queues were full, {} more took \
         {after_full:?}; largest batch {}",
        4 * MAX_BATCH,
        disk.largest_batch.load(Ordering::Acquire)
    );
    // Four batches' worth past (nearly) full queues needed three or four
    // commits to end first.
    assert!(
        after_full >= 2 * COMMIT,
        "the writer was not held to the disk's pace ({after_full:?})"
    );

    // The reader was never dropped as too slow and hears every update the
    // document applied (all but those still in its frame queue); the
    // writer's acks keep coming, a batch at a time.
    let mut heard_updates = 0;
    while heard_updates < taken - FRAME_QUEUE - 1 {
        match heard(&mut updates).await {
            Heard::Update(_) => heard_updates += 1,
            Heard::Ack(..) => {}
            Heard::Closed(c) => panic!("the reader was closed: {c:?}"),
        }
    }
    let target = disk.committed.load(Ordering::Acquire) + 2 * MAX_BATCH;
    let mut last_ack = 0;
    while last_ack < target {
        match heard(&mut acks).await {
            Heard::Ack(n, _) => last_ack = n,
            Heard::Update(_) => {}
            Heard::Closed(c) => panic!("the writer was closed: {c:?}"),
        }
    }
}

/// Large frames fill the queues' byte budgets long before their frame
/// counts: 64 KiB updates against 256 KiB for the document's inbound queue
/// and 1 MiB for the appender's hold about twenty updates, not the 17,000
/// (over a gigabyte) the counts alone would let in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_frames_are_held_to_the_queues_byte_budgets() {
    const FRAME: usize = 64 * 1024;
    const INBOUND: usize = 256 * 1024;
    const APPEND: usize = 1024 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let id: DocId = "heavy".parse().unwrap();
    let config = HubConfig {
        inbound_queue_bytes: INBOUND,
        append_queue_bytes: APPEND,
        ..HubConfig::default()
    };
    let (hub, disk) = slow_hub_with(&dir, &id, config).await;
    let (Session { inbound, outbound }, _) = writer_and_reader(&hub, &id).await;
    let mut acks = listen(outbound);

    let doc = yrs::Doc::new();
    let frames: Vec<Bytes> = (0..60)
        .map(|i| {
            let mut txn = doc.transact_mut();
            let text = format!("{i:04}{}", "x".repeat(FRAME - 4));
            txn.get_or_insert_array("log").push_back(&mut txn, text);
            encode_update(&txn.encode_update_v1())
        })
        .collect();
    // Each byte budget holds whole frames only, plus the one frame the
    // document is applying.
    let bound = (INBOUND / FRAME + APPEND / FRAME + 1) as u64;
    let mut taken = 0u64;
    let mut most_uncommitted = 0u64;
    let mut waited = 0;
    for frame in frames {
        if hand_over(&inbound, frame).await {
            waited += 1;
        }
        taken += 1;
        let uncommitted = taken - disk.committed.load(Ordering::Acquire);
        most_uncommitted = most_uncommitted.max(uncommitted);
        assert!(
            uncommitted <= bound,
            "{uncommitted} frames of 64 KiB taken and not committed: more than the byte budgets hold ({bound})"
        );
    }
    eprintln!(
        "at most {most_uncommitted} large frames uncommitted (bound {bound}); the writer waited {waited} times"
    );
    assert!(
        waited > 0,
        "the writer never waited: the budgets were never reached"
    );
    // Everything is stored and acknowledged in the end.
    let mut last_ack = 0;
    while last_ack < taken {
        match heard(&mut acks).await {
            Heard::Ack(n, _) => last_ack = n,
            Heard::Update(_) => {}
            Heard::Closed(c) => panic!("the writer was closed: {c:?}"),
        }
    }
}
