//! The behaviour every [`DocStore`] must have, written once and run against
//! each backend (the idea of zed's `test_both_dbs!`). A backend passes if each
//! check returns; a check that finds a violation panics with what it saw.
//!
//! A backend's test file supplies a [`Harness`] (how to open *fresh* storage,
//! and the same storage again) and expands
//! [`doc_store_conformance!`](crate::doc_store_conformance), which writes one
//! `#[test]` per check:
//!
//! ```ignore
//! // Cargo.toml: [dev-dependencies] quire-store = { ..., features = ["conformance"] }
//! struct MyHarness { /* e.g. a temp dir */ }
//!
//! #[async_trait::async_trait]
//! impl quire_store::conformance::Harness for MyHarness {
//!     async fn open(&self) -> Arc<dyn Store> { /* ... */ }
//! }
//!
//! async fn fresh() -> MyHarness { /* new, empty storage */ }
//!
//! quire_store::doc_store_conformance!(fresh());
//! ```
//!
//! The checks are also plain `pub async fn`s, to call one by one.
//!
//! Checks never sleep: concurrent ones run real tasks on a multi-threaded
//! runtime and wait for them to finish.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use quire_types::{DocId, Seq, UnixMillis};
use tokio::task::JoinSet;

use quire_types::{AuthSessionId, DocRole, UserId, WorkspaceId, WorkspaceRole};

use crate::{
    Append, CompactOutcome, DocScope, DocStore, ListQuery, MemberChange, NewToken, NewUser,
    Rotation, Snapshot, Store, StoreError, StoreResult, StoredDoc, TokenKind,
};

mod usage;
pub use usage::*;

/// How the suite reaches the storage under test. Each test gets its own
/// harness over fresh, empty storage (a new file, a new schema ...).
#[async_trait::async_trait]
pub trait Harness: Send + Sync {
    /// Opens the harness's storage. Every call opens the *same* storage, so a
    /// store opened second sees what the first committed, as after a restart
    /// or on another node. Panics if the storage can't be opened: an
    /// unreachable database must fail the suite, not skip it.
    async fn open(&self) -> Arc<dyn Store>;

    /// Over how many stores opened on the same storage the concurrent checks
    /// spread their tasks, like nodes of a cluster sharing one database.
    /// Embedded storage with one writer per process keeps the default, 1.
    fn nodes(&self) -> usize {
        1
    }

    /// Releases the storage after a check passed (e.g. drops a schema).
    async fn cleanup(&self) {}
}

/// Runs one check on a fresh multi-threaded runtime, so that concurrent
/// checks really run in parallel.
pub fn run<F: Future>(check: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("building a tokio runtime")
        .block_on(check)
}

/// Writes one `#[test]` per conformance check, each on storage from
/// `$harness`: an expression evaluating to a future of a [`Harness`], e.g. a
/// call to an `async fn`. It is evaluated anew for every test. Expand it once
/// per module; the tests are named after the checks.
#[macro_export]
macro_rules! doc_store_conformance {
    ($harness:expr) => {
        $crate::doc_store_conformance!(@checks $harness;
            empty_batch_appends_nothing,
            append_assigns_gap_free_seqs_per_document,
            batch_spans_documents,
            unknown_document_loads_empty,
            tail_returns_only_later_rows,
            load_is_snapshot_then_tail,
            compaction_deletes_only_covered_rows,
            stale_compaction_is_superseded,
            compaction_is_idempotent,
            compaction_refuses_impossible_snapshots,
            seqs_continue_after_compaction,
            concurrent_appends_are_gap_free,
            opposing_batches_do_not_deadlock,
            large_batch_keeps_every_row,
            tail_readers_never_skip_rows,
            compaction_racing_appends_loses_no_row,
            concurrent_compactions_have_one_winner,
            document_metadata_lifecycle,
            append_never_creates_a_document,
            append_to_a_deleted_document_writes_nothing,
            batch_with_a_deleted_document_appends_the_others,
            delete_racing_appends_stays_deleted,
            list_documents_newest_first,
            list_documents_filters_and_limits,
            delete_removes_log_and_snapshot,
            data_survives_reopen,
            ping_answers,
            users_have_unique_emails_and_a_personal_workspace,
            refresh_rotation_has_one_winner_and_revocation_sticks,
            documents_are_private_until_shared,
            link_sharing_grants_and_withdraws,
            workspaces_have_members_and_roles,
            every_workspace_keeps_an_admin,
            deleting_a_document_removes_its_grants,
            expired_tokens_are_purged,
            stored_bytes_follow_appends_compaction_and_delete,
            stored_bytes_stay_exact_under_racing_appends_and_compactions,
            account_usage_counts_what_the_account_owns,
        );
    };
    (@checks $harness:expr; $($check:ident),* $(,)?) => {
        $(
            #[test]
            fn $check() {
                $crate::conformance::run(async {
                    let harness = $harness.await;
                    $crate::conformance::$check(&harness).await;
                    $crate::conformance::Harness::cleanup(&harness).await;
                });
            }
        )*
    };
}

fn doc(id: &str) -> DocId {
    DocId::new(id).expect("test document ids are valid")
}

fn append(d: &DocId, data: &str) -> Append {
    Append {
        doc: d.clone(),
        update: Bytes::copy_from_slice(data.as_bytes()),
    }
}

fn seqs(values: &[i64]) -> Vec<Seq> {
    values.iter().copied().map(Seq).collect()
}

/// The sequence numbers of an append whose documents all exist.
fn numbered(got: Vec<StoreResult<Seq>>) -> Vec<Seq> {
    got.into_iter()
        .map(|r| r.expect("append to an existing document"))
        .collect()
}

/// Creates each document: appends never do (see [`DocStore::append`]).
async fn create(store: &dyn DocStore, ids: &[&DocId]) {
    for id in ids {
        store
            .create_document(id, id.as_str())
            .await
            .expect("create document");
    }
}

fn is_not_found(r: &StoreResult<Seq>) -> bool {
    matches!(r, Err(StoreError::NotFound))
}

fn tail_seqs(stored: &StoredDoc) -> Vec<i64> {
    stored.tail.iter().map(|e| e.seq.0).collect()
}

fn tail_data(stored: &StoredDoc) -> Vec<String> {
    stored
        .tail
        .iter()
        .map(|e| String::from_utf8_lossy(&e.update).into_owned())
        .collect()
}

fn snapshot(upto: i64, data: &str) -> Snapshot {
    Snapshot {
        upto: Seq(upto),
        data: Bytes::copy_from_slice(data.as_bytes()),
    }
}

/// Appends `count` updates to `d` (which must exist), one call each, with
/// data `"{prefix}{i}"`.
async fn append_each(store: &dyn DocStore, d: &DocId, prefix: &str, count: usize) {
    for i in 0..count {
        numbered(
            store
                .append(&[append(d, &format!("{prefix}{i}"))])
                .await
                .expect("append"),
        );
    }
}

/// Returns once the wall clock has moved past `t`. Stores stamp times in
/// whole milliseconds from the same clock, so this is what makes "updated
/// later" observable; it waits at most a millisecond and for no event.
async fn past(t: UnixMillis) {
    while UnixMillis::now() <= t {
        tokio::task::yield_now().await;
    }
}

pub async fn empty_batch_appends_nothing(h: &dyn Harness) {
    let store = h.open().await;
    assert!(store.append(&[]).await.expect("empty append").is_empty());
    let listed = store
        .list_documents(&ListQuery::default())
        .await
        .expect("list");
    assert!(
        listed.is_empty(),
        "an empty batch created documents: {listed:?}"
    );
}

pub async fn append_assigns_gap_free_seqs_per_document(h: &dyn Harness) {
    let store = h.open().await;
    let (a, b) = (doc("a"), doc("b"));
    create(&*store, &[&a, &b]).await;
    for expected in 1..=3 {
        let got = store
            .append(&[append(&a, &format!("a{expected}"))])
            .await
            .expect("append");
        assert_eq!(numbered(got), seqs(&[expected]));
    }
    // Another document has its own sequence.
    let got = store
        .append(&[append(&b, "b1"), append(&b, "b2")])
        .await
        .expect("append");
    assert_eq!(numbered(got), seqs(&[1, 2]));
    let got = store
        .append(&[append(&a, "a4"), append(&a, "a5")])
        .await
        .expect("append");
    assert_eq!(numbered(got), seqs(&[4, 5]));

    let loaded = store.load(&a).await.expect("load");
    assert_eq!(loaded.snapshot, None);
    assert_eq!(tail_seqs(&loaded), vec![1, 2, 3, 4, 5]);
    assert_eq!(tail_data(&loaded), vec!["a1", "a2", "a3", "a4", "a5"]);
    assert_eq!(loaded.last_seq(), Seq(5));
    let loaded = store.load(&b).await.expect("load");
    assert_eq!(tail_data(&loaded), vec!["b1", "b2"]);
}

pub async fn batch_spans_documents(h: &dyn Harness) {
    let store = h.open().await;
    let (a, b, c) = (doc("doc-a"), doc("doc-b"), doc("doc-c"));
    create(&*store, &[&a, &b, &c]).await;
    append_each(&*store, &a, "a", 1).await;
    // Out of id order on purpose: results must follow batch order.
    let batch = [
        append(&c, "c1"),
        append(&a, "a2"),
        append(&b, "b1"),
        append(&a, "a3"),
        append(&c, "c2"),
    ];
    let got = store.append(&batch).await.expect("append");
    assert_eq!(numbered(got), seqs(&[1, 2, 1, 3, 2]));
    assert_eq!(
        tail_data(&store.load(&a).await.expect("load")),
        vec!["a0", "a2", "a3"]
    );
    assert_eq!(tail_data(&store.load(&b).await.expect("load")), vec!["b1"]);
    assert_eq!(
        tail_data(&store.load(&c).await.expect("load")),
        vec!["c1", "c2"]
    );
}

/// A batch as large as a busy group commit (backends may split it into
/// several statements) keeps batch order and every byte.
pub async fn large_batch_keeps_every_row(h: &dyn Harness) {
    let store = h.open().await;
    let docs = [doc("big-a"), doc("big-b"), doc("big-c")];
    create(&*store, &docs.iter().collect::<Vec<_>>()).await;
    let batch: Vec<Append> = (0..1_234)
        .map(|i| append(&docs[i % 3], &format!("u{i}")))
        .collect();
    let got = store.append(&batch).await.expect("append");
    let expected: Vec<Seq> = (0..1_234).map(|i| Seq((i / 3 + 1) as i64)).collect();
    assert_eq!(numbered(got), expected);
    for (k, d) in docs.iter().enumerate() {
        let want: Vec<String> = (k..1_234).step_by(3).map(|i| format!("u{i}")).collect();
        assert_eq!(tail_data(&store.load(d).await.expect("load")), want);
    }
}

pub async fn unknown_document_loads_empty(h: &dyn Harness) {
    let store = h.open().await;
    let nobody = doc("never-written");
    assert_eq!(
        store.load(&nobody).await.expect("load"),
        StoredDoc::default()
    );
    assert_eq!(
        store.tail(&nobody, Seq(0)).await.expect("tail"),
        StoredDoc::default()
    );
    assert_eq!(store.document(&nobody).await.expect("document"), None);
    // Reading must not create it.
    assert!(
        store
            .list_documents(&ListQuery::default())
            .await
            .expect("list")
            .is_empty()
    );
}

pub async fn tail_returns_only_later_rows(h: &dyn Harness) {
    let store = h.open().await;
    let d = doc("tailed");
    create(&*store, &[&d]).await;
    append_each(&*store, &d, "u", 5).await;
    let t = store.tail(&d, Seq(3)).await.expect("tail");
    assert_eq!(t.snapshot, None);
    assert_eq!(tail_seqs(&t), vec![4, 5]);
    assert_eq!(tail_data(&t), vec!["u3", "u4"]);
    assert_eq!(
        tail_seqs(&store.tail(&d, Seq(0)).await.expect("tail")),
        vec![1, 2, 3, 4, 5]
    );
    assert_eq!(
        store.tail(&d, Seq(5)).await.expect("tail"),
        StoredDoc::default()
    );
    assert_eq!(
        store.tail(&d, Seq(99)).await.expect("tail"),
        StoredDoc::default()
    );
}

pub async fn load_is_snapshot_then_tail(h: &dyn Harness) {
    let store = h.open().await;
    let d = doc("loaded");
    create(&*store, &[&d]).await;
    append_each(&*store, &d, "u", 5).await;
    let outcome = store
        .compact(&d, None, snapshot(3, "s0-2"))
        .await
        .expect("compact");
    assert_eq!(outcome, CompactOutcome::Compacted);

    let loaded = store.load(&d).await.expect("load");
    assert_eq!(loaded.snapshot, Some(snapshot(3, "s0-2")));
    assert_eq!(tail_seqs(&loaded), vec![4, 5]);
    assert_eq!(tail_data(&loaded), vec!["u3", "u4"]);
    assert_eq!(loaded.last_seq(), Seq(5));

    // A reader behind the snapshot gets it, since the rows it needs are gone.
    let behind = store.tail(&d, Seq(1)).await.expect("tail");
    assert_eq!(behind, loaded);
    // A reader at or past the snapshot gets only rows.
    let at = store.tail(&d, Seq(3)).await.expect("tail");
    assert_eq!(at.snapshot, None);
    assert_eq!(tail_seqs(&at), vec![4, 5]);
    let past_it = store.tail(&d, Seq(4)).await.expect("tail");
    assert_eq!(past_it.snapshot, None);
    assert_eq!(tail_seqs(&past_it), vec![5]);

    // Everything compacted: the snapshot alone.
    let outcome = store
        .compact(&d, Some(Seq(3)), snapshot(5, "s0-4"))
        .await
        .expect("compact");
    assert_eq!(outcome, CompactOutcome::Compacted);
    let loaded = store.load(&d).await.expect("load");
    assert_eq!(loaded.snapshot, Some(snapshot(5, "s0-4")));
    assert!(loaded.tail.is_empty());
    assert_eq!(loaded.last_seq(), Seq(5));
}

pub async fn compaction_deletes_only_covered_rows(h: &dyn Harness) {
    let store = h.open().await;
    let (d, other) = (doc("compacted"), doc("bystander"));
    create(&*store, &[&d, &other]).await;
    append_each(&*store, &d, "u", 4).await;
    append_each(&*store, &other, "o", 3).await;
    let outcome = store
        .compact(&d, None, snapshot(2, "s"))
        .await
        .expect("compact");
    assert_eq!(outcome, CompactOutcome::Compacted);
    // Rows past upto stay, with their data; rows of other documents stay.
    assert_eq!(
        tail_data(&store.tail(&d, Seq(2)).await.expect("tail")),
        vec!["u2", "u3"]
    );
    assert_eq!(
        tail_seqs(&store.load(&other).await.expect("load")),
        vec![1, 2, 3]
    );
    assert_eq!(store.load(&other).await.expect("load").snapshot, None);

    append_each(&*store, &d, "v", 2).await;
    let outcome = store
        .compact(&d, Some(Seq(2)), snapshot(4, "s2"))
        .await
        .expect("compact");
    assert_eq!(outcome, CompactOutcome::Compacted);
    let loaded = store.load(&d).await.expect("load");
    assert_eq!(loaded.snapshot, Some(snapshot(4, "s2")));
    assert_eq!(tail_seqs(&loaded), vec![5, 6]);
    assert_eq!(tail_data(&loaded), vec!["v0", "v1"]);
}

pub async fn stale_compaction_is_superseded(h: &dyn Harness) {
    let store = h.open().await;
    let d = doc("raced");
    create(&*store, &[&d]).await;
    append_each(&*store, &d, "u", 5).await;
    let outcome = store
        .compact(&d, None, snapshot(2, "first"))
        .await
        .expect("compact");
    assert_eq!(outcome, CompactOutcome::Compacted);
    let before = store.load(&d).await.expect("load");

    // Base "no snapshot" is stale now, and so is a wrong base.
    for stale in [None, Some(Seq(1)), Some(Seq(4))] {
        let outcome = store
            .compact(&d, stale, snapshot(4, "stale"))
            .await
            .expect("compact");
        assert_eq!(outcome, CompactOutcome::Superseded, "base {stale:?}");
        assert_eq!(
            store.load(&d).await.expect("load"),
            before,
            "a superseded compaction changed the document"
        );
    }

    // The right base still works.
    let outcome = store
        .compact(&d, Some(Seq(2)), snapshot(4, "second"))
        .await
        .expect("compact");
    assert_eq!(outcome, CompactOutcome::Compacted);
    assert_eq!(
        store.load(&d).await.expect("load").snapshot,
        Some(snapshot(4, "second"))
    );
}

pub async fn compaction_is_idempotent(h: &dyn Harness) {
    let store = h.open().await;
    let d = doc("twice");
    create(&*store, &[&d]).await;
    append_each(&*store, &d, "u", 4).await;
    let outcome = store
        .compact(&d, None, snapshot(3, "s"))
        .await
        .expect("compact");
    assert_eq!(outcome, CompactOutcome::Compacted);
    let after_first = store.load(&d).await.expect("load");

    // A retry of the same call (say, after a lost reply) changes nothing.
    let outcome = store
        .compact(&d, None, snapshot(3, "s"))
        .await
        .expect("compact");
    assert_eq!(outcome, CompactOutcome::Superseded);
    assert_eq!(store.load(&d).await.expect("load"), after_first);

    // Re-compacting onto the same upto replaces the data, deletes nothing.
    let outcome = store
        .compact(&d, Some(Seq(3)), snapshot(3, "s'"))
        .await
        .expect("compact");
    assert_eq!(outcome, CompactOutcome::Compacted);
    let loaded = store.load(&d).await.expect("load");
    assert_eq!(loaded.snapshot, Some(snapshot(3, "s'")));
    assert_eq!(tail_seqs(&loaded), vec![4]);
}

pub async fn compaction_refuses_impossible_snapshots(h: &dyn Harness) {
    let store = h.open().await;
    let d = doc("guarded");
    create(&*store, &[&d]).await;
    append_each(&*store, &d, "u", 3).await;
    store
        .compact(&d, None, snapshot(2, "s"))
        .await
        .expect("compact");
    let before = store.load(&d).await.expect("load");

    // Claims rows that don't exist yet: later appends would be hidden.
    assert!(
        store
            .compact(&d, Some(Seq(2)), snapshot(4, "x"))
            .await
            .is_err()
    );
    // Older than its base: rows the base absorbed would be lost.
    assert!(
        store
            .compact(&d, Some(Seq(2)), snapshot(1, "x"))
            .await
            .is_err()
    );
    assert_eq!(store.load(&d).await.expect("load"), before);

    // No document, no snapshot (and compaction must not create one).
    let ghost = doc("ghost");
    let err = store.compact(&ghost, None, snapshot(0, "x")).await;
    assert!(matches!(err, Err(StoreError::NotFound)), "{err:?}");
    assert_eq!(store.document(&ghost).await.expect("document"), None);
    assert_eq!(
        store.load(&ghost).await.expect("load"),
        StoredDoc::default()
    );
}

pub async fn seqs_continue_after_compaction(h: &dyn Harness) {
    let store = h.open().await;
    let d = doc("continued");
    create(&*store, &[&d]).await;
    append_each(&*store, &d, "u", 3).await;
    // Compacting every row empties the log; numbering must not restart.
    store
        .compact(&d, None, snapshot(3, "s"))
        .await
        .expect("compact");
    let got = store.append(&[append(&d, "next")]).await.expect("append");
    assert_eq!(numbered(got), seqs(&[4]));
    let loaded = store.load(&d).await.expect("load");
    assert_eq!(loaded.snapshot.as_ref().map(|s| s.upto), Some(Seq(3)));
    assert_eq!(tail_seqs(&loaded), vec![4]);
}

/// The stores the concurrent checks spread their tasks over: one per node.
async fn open_nodes(h: &dyn Harness) -> Vec<Arc<dyn DocStore>> {
    let mut nodes: Vec<Arc<dyn DocStore>> = Vec::new();
    for _ in 0..h.nodes().max(1) {
        nodes.push(h.open().await);
    }
    nodes
}

async fn open_store_nodes(h: &dyn Harness) -> Vec<Arc<dyn Store>> {
    let mut nodes = Vec::new();
    for _ in 0..h.nodes().max(1) {
        nodes.push(h.open().await);
    }
    nodes
}

/// Spawns `tasks` tasks, each appending `per_task` single updates to `d`
/// (data `"{task}:{i}"`) through the nodes in turn, and returning every
/// (seq, data) it was given.
fn spawn_appenders(
    set: &mut JoinSet<Vec<(Seq, Bytes)>>,
    nodes: &[Arc<dyn DocStore>],
    d: &DocId,
    tasks: usize,
    per_task: usize,
) {
    for task in 0..tasks {
        let store = Arc::clone(&nodes[task % nodes.len()]);
        let d = d.clone();
        set.spawn(async move {
            let mut given = Vec::with_capacity(per_task);
            for i in 0..per_task {
                let data = Bytes::from(format!("{task}:{i}"));
                let batch = [Append {
                    doc: d.clone(),
                    update: data.clone(),
                }];
                let got = numbered(store.append(&batch).await.expect("concurrent append"));
                given.push((got[0], data));
            }
            given
        });
    }
}

/// Checks that `given` (seq, data) pairs use seqs exactly 1..=n, each once,
/// and returns them keyed by seq.
fn gap_free(given: impl IntoIterator<Item = (Seq, Bytes)>, n: usize) -> BTreeMap<i64, Bytes> {
    let mut rows = BTreeMap::new();
    for (seq, data) in given {
        assert!(
            rows.insert(seq.0, data).is_none(),
            "seq {} handed out twice",
            seq.0
        );
    }
    let expected: Vec<i64> = (1..=n as i64).collect();
    assert_eq!(
        rows.keys().copied().collect::<Vec<_>>(),
        expected,
        "seqs are not gap-free"
    );
    rows
}

/// Waits for the appenders and checks what they were given with [`gap_free`].
async fn appended_rows(mut set: JoinSet<Vec<(Seq, Bytes)>>, n: usize) -> BTreeMap<i64, Bytes> {
    let mut given = Vec::new();
    while let Some(task) = set.join_next().await {
        given.extend(task.expect("appender task"));
    }
    gap_free(given, n)
}

fn log_rows(stored: StoredDoc) -> BTreeMap<i64, Bytes> {
    stored
        .tail
        .into_iter()
        .map(|e| (e.seq.0, e.update))
        .collect()
}

pub async fn concurrent_appends_are_gap_free(h: &dyn Harness) {
    let nodes = open_nodes(h).await;
    let d = doc("busy");
    create(&*nodes[0], &[&d]).await;
    let (tasks, per_task) = (16, 20);
    let mut set = JoinSet::new();
    spawn_appenders(&mut set, &nodes, &d, tasks, per_task);
    let rows = appended_rows(set, tasks * per_task).await;
    for node in &nodes {
        let stored = log_rows(node.load(&d).await.expect("load"));
        assert_eq!(
            stored, rows,
            "the log differs from what the appenders were told"
        );
    }
}

pub async fn opposing_batches_do_not_deadlock(h: &dyn Harness) {
    // Batches naming the same documents in opposite orders, at once: a store
    // that locked documents in batch order could deadlock here.
    let nodes = open_nodes(h).await;
    let (a, b) = (doc("left"), doc("right"));
    create(&*nodes[0], &[&a, &b]).await;
    let (tasks, per_task) = (8, 15);
    let mut set = JoinSet::new();
    for task in 0..tasks {
        let store = Arc::clone(&nodes[task % nodes.len()]);
        let (a, b) = if task % 2 == 0 {
            (a.clone(), b.clone())
        } else {
            (b.clone(), a.clone())
        };
        set.spawn(async move {
            let mut given = Vec::new();
            for i in 0..per_task {
                let data = Bytes::from(format!("{task}:{i}"));
                let batch = [
                    Append {
                        doc: a.clone(),
                        update: data.clone(),
                    },
                    Append {
                        doc: b.clone(),
                        update: data.clone(),
                    },
                ];
                let got = numbered(store.append(&batch).await.expect("append"));
                given.push((a.clone(), got[0], data.clone()));
                given.push((b.clone(), got[1], data));
            }
            given
        });
    }
    let mut per_doc: BTreeMap<DocId, Vec<(Seq, Bytes)>> = BTreeMap::new();
    while let Some(task) = set.join_next().await {
        for (d, seq, data) in task.expect("appender task") {
            per_doc.entry(d).or_default().push((seq, data));
        }
    }
    for d in [&a, &b] {
        let given = per_doc.remove(d).unwrap_or_default();
        let rows = gap_free(given, tasks * per_task);
        assert_eq!(log_rows(nodes[0].load(d).await.expect("load")), rows);
    }
}

pub async fn tail_readers_never_skip_rows(h: &dyn Harness) {
    let nodes = open_nodes(h).await;
    let d = doc("followed");
    create(&*nodes[0], &[&d]).await;
    let (tasks, per_task) = (4, 40);
    let mut set = JoinSet::new();
    spawn_appenders(&mut set, &nodes, &d, tasks, per_task);
    let writers_done = Arc::new(AtomicBool::new(false));

    // A node healing from the log: it asks for rows after the last one it has
    // and must never see row n+1 while row n is still uncommitted.
    let reader = {
        let store = Arc::clone(&nodes[nodes.len() - 1]);
        let d = d.clone();
        let writers_done = Arc::clone(&writers_done);
        tokio::spawn(async move {
            let mut last = Seq(0);
            let mut seen = BTreeMap::new();
            loop {
                // Read the flag first: if the writers were done before this
                // tail, the tail holds every row.
                let done = writers_done.load(Ordering::Acquire);
                let t = store.tail(&d, last).await.expect("tail");
                assert_eq!(t.snapshot, None);
                for e in t.tail {
                    assert_eq!(
                        e.seq.0,
                        last.0 + 1,
                        "the reader skipped a row after {}",
                        last.0
                    );
                    last = e.seq;
                    seen.insert(e.seq.0, e.update);
                }
                if done {
                    return seen;
                }
                tokio::task::yield_now().await;
            }
        })
    };
    let rows = appended_rows(set, tasks * per_task).await;
    writers_done.store(true, Ordering::Release);
    let seen = reader.await.expect("reader task");
    assert_eq!(seen, rows);
}

/// One compactor: until `stop`, loads the document and folds its tail into a
/// new snapshot. The "merge" is concatenation, one line per update, so the
/// final snapshot shows exactly which rows it absorbed.
fn spawn_compactor(
    set: &mut JoinSet<()>,
    store: &Arc<dyn DocStore>,
    d: &DocId,
    stop: &Arc<AtomicBool>,
) {
    let (store, d, stop) = (Arc::clone(store), d.clone(), Arc::clone(stop));
    set.spawn(async move {
        while !stop.load(Ordering::Acquire) {
            let loaded = store.load(&d).await.expect("load while compacting");
            let base = loaded.snapshot.as_ref().map(|s| s.upto);
            if loaded.tail.is_empty() {
                tokio::task::yield_now().await;
                continue;
            }
            let upto = loaded.last_seq();
            let mut data = loaded.snapshot.map(|s| s.data.to_vec()).unwrap_or_default();
            for entry in &loaded.tail {
                data.extend_from_slice(&entry.update);
                data.push(b'\n');
            }
            store
                .compact(
                    &d,
                    base,
                    Snapshot {
                        upto,
                        data: data.into(),
                    },
                )
                .await
                .expect("compact while appending");
        }
    });
}

pub async fn compaction_racing_appends_loses_no_row(h: &dyn Harness) {
    let nodes = open_nodes(h).await;
    let d = doc("hot");
    create(&*nodes[0], &[&d]).await;
    let (tasks, per_task) = (4, 40);
    let mut appenders = JoinSet::new();
    spawn_appenders(&mut appenders, &nodes, &d, tasks, per_task);
    let stop = Arc::new(AtomicBool::new(false));
    let mut compactors = JoinSet::new();
    for i in 0..2 {
        spawn_compactor(&mut compactors, &nodes[i % nodes.len()], &d, &stop);
    }
    let rows = appended_rows(appenders, tasks * per_task).await;
    stop.store(true, Ordering::Release);
    while let Some(done) = compactors.join_next().await {
        done.expect("compactor task");
    }

    let loaded = nodes[0].load(&d).await.expect("load");
    let upto = loaded.snapshot.as_ref().map_or(0, |s| s.upto.0);
    let absorbed: Vec<Bytes> = loaded.snapshot.as_ref().map_or_else(Vec::new, |s| {
        s.data
            .split(|b| *b == b'\n')
            .filter(|line| !line.is_empty())
            .map(Bytes::copy_from_slice)
            .collect()
    });
    let expected_absorbed: Vec<Bytes> = rows.range(..=upto).map(|(_, data)| data.clone()).collect();
    assert_eq!(
        absorbed, expected_absorbed,
        "the snapshot did not absorb exactly rows 1..={upto}"
    );
    let expected_tail: BTreeMap<i64, Bytes> = rows
        .range(upto + 1..)
        .map(|(s, d)| (*s, d.clone()))
        .collect();
    assert_eq!(
        log_rows(loaded),
        expected_tail,
        "rows after the snapshot were lost or changed"
    );
}

pub async fn concurrent_compactions_have_one_winner(h: &dyn Harness) {
    let nodes = open_nodes(h).await;
    let d = doc("contested");
    create(&*nodes[0], &[&d]).await;
    append_each(&*nodes[0], &d, "u", 10).await;
    let mut set = JoinSet::new();
    for i in 0..8 {
        let (store, d) = (Arc::clone(&nodes[i % nodes.len()]), d.clone());
        set.spawn(async move {
            let snap = snapshot(10, &format!("by-{i}"));
            let outcome = store
                .compact(&d, None, snap.clone())
                .await
                .expect("compact");
            (outcome, snap)
        });
    }
    let mut winners = Vec::new();
    while let Some(result) = set.join_next().await {
        let (outcome, snap) = result.expect("compactor task");
        if outcome == CompactOutcome::Compacted {
            winners.push(snap);
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "exactly one compaction from the same base may win"
    );
    let loaded = nodes[0].load(&d).await.expect("load");
    assert_eq!(loaded.snapshot.as_ref(), winners.first());
    assert!(loaded.tail.is_empty());
}

pub async fn document_metadata_lifecycle(h: &dyn Harness) {
    let store = h.open().await;
    let d = doc("meta");
    let before = UnixMillis::now();
    let created = store.create_document(&d, "Plans").await.expect("create");
    let after = UnixMillis::now();
    assert_eq!(created.id, d);
    assert_eq!(created.title, "Plans");
    assert!(before <= created.created_at && created.created_at <= after);
    assert_eq!(created.updated_at, created.created_at);
    assert_eq!(
        store.document(&d).await.expect("document"),
        Some(created.clone())
    );

    let again = store.create_document(&d, "Other").await;
    assert!(matches!(again, Err(StoreError::AlreadyExists)), "{again:?}");
    assert_eq!(
        store.document(&d).await.expect("document").map(|m| m.title),
        Some("Plans".into())
    );

    past(created.updated_at).await;
    let renamed = store
        .rename_document(&d, "Plans for 2027")
        .await
        .expect("rename");
    assert_eq!(renamed.title, "Plans for 2027");
    assert_eq!(renamed.created_at, created.created_at);
    assert!(renamed.updated_at > created.updated_at);
    assert_eq!(store.document(&d).await.expect("document"), Some(renamed));

    let missing = doc("missing");
    let err = store.rename_document(&missing, "x").await;
    assert!(matches!(err, Err(StoreError::NotFound)), "{err:?}");
    assert_eq!(store.document(&missing).await.expect("document"), None);

    store.delete_document(&d).await.expect("delete");
    assert_eq!(store.document(&d).await.expect("document"), None);
    let err = store.delete_document(&d).await;
    assert!(matches!(err, Err(StoreError::NotFound)), "{err:?}");
    // The id is free again.
    store
        .create_document(&d, "Reborn")
        .await
        .expect("create after delete");
}

pub async fn append_never_creates_a_document(h: &dyn Harness) {
    let store = h.open().await;
    let never = doc("never-created");
    let got = store
        .append(&[append(&never, "u"), append(&never, "v")])
        .await
        .expect("append");
    assert!(got.iter().all(is_not_found), "{got:?}");
    assert_eq!(store.document(&never).await.expect("document"), None);
    assert_eq!(
        store.load(&never).await.expect("load"),
        StoredDoc::default()
    );
    assert!(
        store
            .list_documents(&ListQuery::default())
            .await
            .expect("list")
            .is_empty(),
        "an append created a document"
    );

    // An existing document keeps its metadata; only updated_at moves.
    let titled = doc("titled");
    let created = store
        .create_document(&titled, "Keep me")
        .await
        .expect("create");
    past(created.updated_at).await;
    append_each(&*store, &titled, "u", 1).await;
    let meta = store
        .document(&titled)
        .await
        .expect("document")
        .expect("document");
    assert_eq!(meta.title, "Keep me");
    assert_eq!(meta.created_at, created.created_at);
    assert!(
        meta.updated_at > created.updated_at,
        "append did not bump updated_at"
    );
}

/// A node that still had the document live when it was deleted appends
/// after the delete: refused, and the document stays deleted.
pub async fn append_to_a_deleted_document_writes_nothing(h: &dyn Harness) {
    let store = h.open().await;
    let d = doc("deleted");
    create(&*store, &[&d]).await;
    append_each(&*store, &d, "u", 3).await;
    store.delete_document(&d).await.expect("delete");

    for batch in [
        vec![append(&d, "late")],
        vec![append(&d, "a"), append(&d, "b")],
    ] {
        let got = store.append(&batch).await.expect("append");
        assert_eq!(got.len(), batch.len());
        assert!(got.iter().all(is_not_found), "{got:?}");
    }
    assert_eq!(store.document(&d).await.expect("document"), None);
    assert_eq!(store.load(&d).await.expect("load"), StoredDoc::default());
    assert!(
        store
            .list_documents(&ListQuery::default())
            .await
            .expect("list")
            .is_empty(),
        "the deleted document came back"
    );
    let err = store.compact(&d, None, snapshot(0, "s")).await;
    assert!(matches!(err, Err(StoreError::NotFound)), "{err:?}");
    assert_eq!(store.load(&d).await.expect("load"), StoredDoc::default());

    // Created again, the id starts afresh: nothing of the old document, and
    // numbering from 1.
    create(&*store, &[&d]).await;
    let got = store.append(&[append(&d, "new")]).await.expect("append");
    assert_eq!(numbered(got), seqs(&[1]));
    assert_eq!(tail_data(&store.load(&d).await.expect("load")), vec!["new"]);
}

/// Group commit puts many documents in one batch: one of them being deleted
/// must not cost the others their writes.
pub async fn batch_with_a_deleted_document_appends_the_others(h: &dyn Harness) {
    let store = h.open().await;
    let (a, gone, b) = (doc("batch-a"), doc("batch-gone"), doc("batch-b"));
    create(&*store, &[&a, &gone, &b]).await;
    append_each(&*store, &a, "a", 1).await;
    append_each(&*store, &gone, "g", 2).await;
    store.delete_document(&gone).await.expect("delete");

    let batch = [
        append(&gone, "g-late"),
        append(&a, "a1"),
        append(&b, "b0"),
        append(&gone, "g-later"),
        append(&a, "a2"),
    ];
    let got = store.append(&batch).await.expect("append");
    assert!(is_not_found(&got[0]) && is_not_found(&got[3]), "{got:?}");
    let kept: Vec<Seq> = [1, 2, 4]
        .into_iter()
        .map(|i| *got[i].as_ref().expect("existing documents are appended"))
        .collect();
    assert_eq!(kept, seqs(&[2, 1, 3]));
    assert_eq!(
        tail_data(&store.load(&a).await.expect("load")),
        vec!["a0", "a1", "a2"]
    );
    assert_eq!(tail_data(&store.load(&b).await.expect("load")), vec!["b0"]);
    assert_eq!(store.load(&gone).await.expect("load"), StoredDoc::default());
    assert_eq!(store.document(&gone).await.expect("document"), None);

    // A batch of nothing but deleted documents commits nothing either.
    let got = store.append(&[append(&gone, "x")]).await.expect("append");
    assert!(is_not_found(&got[0]), "{got:?}");
    assert_eq!(store.document(&gone).await.expect("document"), None);
}

/// Writers on every node keep appending while the document is deleted: each
/// append commits before the delete (and goes with it) or is refused after
/// it; nothing brings the document back.
pub async fn delete_racing_appends_stays_deleted(h: &dyn Harness) {
    let nodes = open_nodes(h).await;
    let d = doc("contested-delete");
    create(&*nodes[0], &[&d]).await;
    append_each(&*nodes[0], &d, "u", 1).await;
    let deleted = Arc::new(AtomicBool::new(false));
    let mut set = JoinSet::new();
    for task in 0..4 {
        let store = Arc::clone(&nodes[task % nodes.len()]);
        let (d, deleted) = (d.clone(), Arc::clone(&deleted));
        set.spawn(async move {
            // Appends until refused; once refused, refused for good.
            loop {
                let done = deleted.load(Ordering::Acquire);
                let got = store.append(&[append(&d, "w")]).await.expect("append");
                match &got[0] {
                    Ok(_) => assert!(!done, "an append after the delete was numbered"),
                    Err(StoreError::NotFound) => break,
                    Err(e) => panic!("append failed: {e}"),
                }
                tokio::task::yield_now().await;
            }
            let got = store.append(&[append(&d, "w")]).await.expect("append");
            assert!(is_not_found(&got[0]), "{got:?}");
        });
    }
    // Let the writers get going, then delete through the last node.
    append_each(&*nodes[0], &d, "v", 5).await;
    nodes[nodes.len() - 1]
        .delete_document(&d)
        .await
        .expect("delete");
    deleted.store(true, Ordering::Release);
    while let Some(task) = set.join_next().await {
        task.expect("writer task");
    }
    for node in &nodes {
        assert_eq!(node.document(&d).await.expect("document"), None);
        assert_eq!(node.load(&d).await.expect("load"), StoredDoc::default());
    }
}

pub async fn list_documents_newest_first(h: &dyn Harness) {
    let store = h.open().await;
    let mut last = UnixMillis(0);
    for (id, title) in [("first", "One"), ("second", "Two"), ("third", "Three")] {
        past(last).await;
        last = store
            .create_document(&doc(id), title)
            .await
            .expect("create")
            .updated_at;
    }
    let ids = |listed: Vec<crate::DocumentMeta>| {
        listed
            .into_iter()
            .map(|m| m.id.to_string())
            .collect::<Vec<_>>()
    };
    let listed = store
        .list_documents(&ListQuery::default())
        .await
        .expect("list");
    assert_eq!(ids(listed), vec!["third", "second", "first"]);

    // Editing a document moves it to the top.
    past(last).await;
    store
        .append(&[append(&doc("first"), "edit")])
        .await
        .expect("append");
    let listed = store
        .list_documents(&ListQuery::default())
        .await
        .expect("list");
    assert_eq!(ids(listed), vec!["first", "third", "second"]);

    let query = ListQuery {
        title_contains: None,
        limit: Some(2),
    };
    assert_eq!(
        ids(store.list_documents(&query).await.expect("list")),
        vec!["first", "third"]
    );
    let query = ListQuery {
        title_contains: None,
        limit: Some(0),
    };
    assert!(store.list_documents(&query).await.expect("list").is_empty());
}

pub async fn list_documents_filters_and_limits(h: &dyn Harness) {
    let store = h.open().await;
    let titles = [
        ("r1", "Quarterly Report"),
        ("r2", "report draft"),
        ("p1", "100% done"),
        ("p2", "100 percent"),
        ("u1", "a_b"),
        ("u2", "axb"),
        ("b1", "back\\slash"),
    ];
    for (id, title) in titles {
        store
            .create_document(&doc(id), title)
            .await
            .expect("create");
    }
    let titles_matching = |needle: &str, limit: Option<u32>| {
        let store = Arc::clone(&store);
        let query = ListQuery {
            title_contains: Some(needle.to_string()),
            limit,
        };
        async move {
            let mut titles: Vec<String> = store
                .list_documents(&query)
                .await
                .expect("list")
                .into_iter()
                .map(|m| m.title)
                .collect();
            titles.sort();
            titles
        }
    };
    assert_eq!(
        titles_matching("REPORT", None).await,
        vec!["Quarterly Report", "report draft"]
    );
    assert_eq!(titles_matching("rEpOrT", Some(1)).await.len(), 1);
    // LIKE wildcards typed by a user match literally.
    assert_eq!(titles_matching("%", None).await, vec!["100% done"]);
    assert_eq!(titles_matching("_", None).await, vec!["a_b"]);
    assert_eq!(titles_matching("\\", None).await, vec!["back\\slash"]);
    assert!(titles_matching("nothing like it", None).await.is_empty());
    assert_eq!(titles_matching("", None).await.len(), titles.len());
}

pub async fn delete_removes_log_and_snapshot(h: &dyn Harness) {
    let store = h.open().await;
    let (d, kept) = (doc("doomed"), doc("kept"));
    create(&*store, &[&d, &kept]).await;
    append_each(&*store, &d, "u", 4).await;
    store
        .compact(&d, None, snapshot(2, "s"))
        .await
        .expect("compact");
    append_each(&*store, &kept, "k", 2).await;

    store.delete_document(&d).await.expect("delete");
    assert_eq!(store.load(&d).await.expect("load"), StoredDoc::default());
    assert_eq!(
        store.tail(&d, Seq(0)).await.expect("tail"),
        StoredDoc::default()
    );
    assert_eq!(store.document(&d).await.expect("document"), None);
    assert_eq!(
        tail_data(&store.load(&kept).await.expect("load")),
        vec!["k0", "k1"]
    );

    // Writing again does not bring it back.
    let got = store.append(&[append(&d, "new")]).await.expect("append");
    assert!(is_not_found(&got[0]), "{got:?}");
    assert_eq!(store.load(&d).await.expect("load"), StoredDoc::default());
    // Creating it again starts a new document, with nothing of the old one.
    create(&*store, &[&d]).await;
    append_each(&*store, &d, "new", 1).await;
    let loaded = store.load(&d).await.expect("load");
    assert_eq!(loaded.snapshot, None);
    assert_eq!(tail_data(&loaded), vec!["new0"]);
}

pub async fn data_survives_reopen(h: &dyn Harness) {
    let d = doc("durable");
    let (loaded, meta) = {
        let store = h.open().await;
        store.create_document(&d, "Durable").await.expect("create");
        append_each(&*store, &d, "u", 3).await;
        store
            .compact(&d, None, snapshot(2, "s"))
            .await
            .expect("compact");
        append_each(&*store, &d, "v", 1).await;
        (
            store.load(&d).await.expect("load"),
            store.document(&d).await.expect("document"),
        )
    };
    let store = h.open().await;
    assert_eq!(store.load(&d).await.expect("load after reopening"), loaded);
    assert_eq!(
        store.document(&d).await.expect("document after reopening"),
        meta
    );
    let got = store.append(&[append(&d, "w")]).await.expect("append");
    assert_eq!(
        numbered(got),
        seqs(&[5]),
        "numbering restarted after reopening"
    );
}

pub async fn ping_answers(h: &dyn Harness) {
    let store = h.open().await;
    store.ping().await.expect("ping");
}

// ---------------------------------------------------------------------------
// Accounts and access (AuthStore).

fn new_user(tag: &str) -> NewUser {
    NewUser {
        id: UserId::generate(),
        email: format!("{tag}@example.test"),
        name: tag.to_string(),
        color: "#336699".to_string(),
        password_hash: format!("$argon2id$fake${tag}"),
        workspace: WorkspaceId::generate(),
        workspace_name: format!("{tag}'s workspace"),
    }
}

fn token(hash: &str, kind: TokenKind, expires_at: i64) -> NewToken {
    NewToken {
        hash: hash.to_string(),
        kind,
        expires_at: UnixMillis(expires_at),
    }
}

pub async fn users_have_unique_emails_and_a_personal_workspace(h: &dyn Harness) {
    let store = h.open().await;
    let ada = new_user("ada");
    let user = store.create_user(&ada).await.expect("create user");
    assert_eq!(user.email, "ada@example.test");
    let again = NewUser {
        id: UserId::generate(),
        workspace: WorkspaceId::generate(),
        ..ada.clone()
    };
    assert!(
        matches!(
            store.create_user(&again).await,
            Err(StoreError::AlreadyExists)
        ),
        "a second account with the same email"
    );
    let (found, hash) = store
        .user_by_email("ada@example.test")
        .await
        .expect("by email")
        .expect("found");
    assert_eq!(found, user);
    assert_eq!(hash, ada.password_hash);
    assert_eq!(
        store.user(&ada.id).await.expect("by id"),
        Some(user.clone())
    );
    let renamed = store
        .update_profile(&ada.id, "Ada L.", "#112233")
        .await
        .expect("update profile");
    assert_eq!(
        (renamed.name.as_str(), renamed.color.as_str()),
        ("Ada L.", "#112233")
    );
    assert_eq!(renamed.email, user.email);
    assert_eq!(store.user(&ada.id).await.expect("by id"), Some(renamed));
    assert!(matches!(
        store
            .update_profile(&UserId::generate(), "x", "#000000")
            .await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.user_by_email("nobody@x").await.expect("lookup"), None);
    let spaces = store.workspaces_of(&ada.id).await.expect("workspaces");
    assert_eq!(spaces.len(), 1);
    assert_eq!(spaces[0].id, ada.workspace);
    assert_eq!(spaces[0].role, WorkspaceRole::Admin);
}

pub async fn refresh_rotation_has_one_winner_and_revocation_sticks(h: &dyn Harness) {
    let stores = open_store_nodes(h).await;
    let store = &stores[0];
    let ada = new_user("ada");
    store.create_user(&ada).await.expect("user");
    let session = AuthSessionId::generate();
    let far = UnixMillis::now().0 + 3_600_000;
    store
        .create_auth_session(
            &session,
            &ada.id,
            &[
                token("a0", TokenKind::Access, far),
                token("r0", TokenKind::Refresh, far),
            ],
        )
        .await
        .expect("session");
    let info = store.token("r0").await.expect("token").expect("known");
    assert_eq!(
        (info.kind, &info.session, &info.user),
        (TokenKind::Refresh, &session, &ada.id)
    );
    assert!(info.rotated_at.is_none() && !info.session_revoked);
    assert_eq!(store.token("nope").await.expect("token"), None);

    // Many concurrent exchanges of one refresh token, across nodes: one wins.
    let mut set = JoinSet::new();
    for i in 0..8 {
        let s = stores[i % stores.len()].clone();
        set.spawn(async move {
            let issue = [token(&format!("r1-{i}"), TokenKind::Refresh, far)];
            s.rotate_refresh_token("r0", UnixMillis::now(), &issue)
                .await
                .expect("rotate")
        });
    }
    let mut winners = 0;
    while let Some(r) = set.join_next().await {
        match r.expect("task") {
            Rotation::Rotated => winners += 1,
            Rotation::AlreadyRotated { .. } => {}
            Rotation::Invalid => panic!("a rotated token reported invalid"),
        }
    }
    assert_eq!(winners, 1, "exactly one exchange rotates the token");
    let stored: Vec<_> = {
        let mut v = Vec::new();
        for i in 0..8 {
            if store
                .token(&format!("r1-{i}"))
                .await
                .expect("token")
                .is_some()
            {
                v.push(i);
            }
        }
        v
    };
    assert_eq!(stored.len(), 1, "only the winner's successor is stored");
    assert!(
        store
            .token("r0")
            .await
            .expect("t")
            .expect("k")
            .rotated_at
            .is_some()
    );
    // An access token cannot be rotated.
    assert_eq!(
        store
            .rotate_refresh_token("a0", UnixMillis::now(), &[])
            .await
            .expect("rotate"),
        Rotation::Invalid
    );
    // Extra tokens (the grace path) go to live sessions only.
    assert!(
        store
            .issue_tokens(&session, &ada.id, &[token("a2", TokenKind::Access, far)])
            .await
            .expect("issue")
    );

    assert!(store.auth_session_active(&session).await.expect("active"));
    assert!(
        !store
            .auth_session_active(&AuthSessionId::generate())
            .await
            .expect("active"),
        "an unknown sign-in is not active"
    );
    store
        .revoke_auth_session(&session, UnixMillis::now())
        .await
        .expect("revoke");
    assert!(!store.auth_session_active(&session).await.expect("active"));
    assert!(
        store
            .token("a2")
            .await
            .expect("t")
            .expect("k")
            .session_revoked
    );
    let live_successor = format!("r1-{}", stored[0]);
    assert_eq!(
        store
            .rotate_refresh_token(&live_successor, UnixMillis::now(), &[])
            .await
            .expect("rotate"),
        Rotation::Invalid,
        "a revoked family cannot be refreshed"
    );
    assert!(
        !store
            .issue_tokens(&session, &ada.id, &[token("a3", TokenKind::Access, far)])
            .await
            .expect("issue")
    );

    // Signing out everywhere revokes every live session and names them.
    let (s2, s3) = (AuthSessionId::generate(), AuthSessionId::generate());
    for s in [&s2, &s3] {
        store
            .create_auth_session(s, &ada.id, &[])
            .await
            .expect("session");
    }
    let mut revoked = store
        .revoke_user_sessions(&ada.id, UnixMillis::now())
        .await
        .expect("revoke all");
    revoked.sort();
    let mut want = vec![s2, s3];
    want.sort();
    assert_eq!(revoked, want);
    for s in &want {
        assert!(!store.auth_session_active(s).await.expect("active"));
    }
}

pub async fn documents_are_private_until_shared(h: &dyn Harness) {
    let store = h.open().await;
    let (ada, bob) = (new_user("ada"), new_user("bob"));
    store.create_user(&ada).await.expect("ada");
    let bob_user = store.create_user(&bob).await.expect("bob");
    let d = doc("private-doc");
    store
        .create_owned_document(&d, "Plans", &ada.workspace, &ada.id)
        .await
        .expect("create");
    assert!(matches!(
        store
            .create_owned_document(&d, "Again", &ada.workspace, &ada.id)
            .await,
        Err(StoreError::AlreadyExists)
    ));
    let own = store
        .document_access(&d, &ada.id)
        .await
        .expect("access")
        .expect("owner sees it");
    assert_eq!(own.role, DocRole::Owner);
    assert_eq!(own.workspace.as_ref(), Some(&ada.workspace));
    assert_eq!(own.owner.as_ref(), Some(&ada.id));
    assert_eq!(
        store.document_access(&d, &bob.id).await.expect("access"),
        None
    );
    assert_eq!(
        store
            .document_access(&doc("missing"), &ada.id)
            .await
            .expect("access"),
        None
    );
    // An ownerless (pre-accounts) document is nobody's.
    store
        .create_document(&doc("legacy"), "Old")
        .await
        .expect("legacy");
    assert_eq!(
        store
            .document_access(&doc("legacy"), &ada.id)
            .await
            .expect("access"),
        None
    );

    let q = ListQuery::default();
    let owned = store
        .list_accessible(&ada.id, DocScope::Owned, &q)
        .await
        .expect("list");
    assert_eq!(
        owned.iter().map(|a| a.meta.id.as_str()).collect::<Vec<_>>(),
        vec!["private-doc"]
    );
    assert!(
        store
            .list_accessible(&bob.id, DocScope::SharedWithMe, &q)
            .await
            .expect("list")
            .is_empty()
    );

    store
        .put_share(&d, &bob.id, DocRole::Viewer, false)
        .await
        .expect("share");
    let seen = store
        .document_access(&d, &bob.id)
        .await
        .expect("access")
        .expect("shared");
    assert_eq!(seen.role, DocRole::Viewer);
    let shared = store
        .list_accessible(&bob.id, DocScope::SharedWithMe, &q)
        .await
        .expect("list");
    assert_eq!(shared.len(), 1);
    assert_eq!(
        (shared[0].meta.title.as_str(), shared[0].role),
        ("Plans", DocRole::Viewer)
    );
    let filtered = ListQuery {
        title_contains: Some("PLA".into()),
        limit: None,
    };
    assert_eq!(
        store
            .list_accessible(&bob.id, DocScope::SharedWithMe, &filtered)
            .await
            .expect("list")
            .len(),
        1
    );
    let none = ListQuery {
        title_contains: Some("zzz".into()),
        limit: None,
    };
    assert!(
        store
            .list_accessible(&bob.id, DocScope::SharedWithMe, &none)
            .await
            .expect("list")
            .is_empty()
    );

    // Changing the role replaces it; a link grant never demotes it.
    store
        .put_share(&d, &bob.id, DocRole::Editor, false)
        .await
        .expect("promote");
    store
        .put_share(&d, &bob.id, DocRole::Viewer, true)
        .await
        .expect("link grant");
    let entries = store.shares(&d).await.expect("shares");
    assert_eq!(entries.len(), 1);
    assert_eq!(
        (&entries[0].user, entries[0].role, entries[0].via_link),
        (&bob_user, DocRole::Editor, false)
    );
    assert!(matches!(
        store
            .put_share(&doc("missing"), &bob.id, DocRole::Viewer, false)
            .await,
        Err(StoreError::NotFound)
    ));

    assert!(store.remove_share(&d, &bob.id).await.expect("unshare"));
    assert!(
        !store
            .remove_share(&d, &bob.id)
            .await
            .expect("unshare twice")
    );
    assert_eq!(
        store.document_access(&d, &bob.id).await.expect("access"),
        None
    );
}

pub async fn link_sharing_grants_and_withdraws(h: &dyn Harness) {
    let store = h.open().await;
    let (ada, bob, cy) = (new_user("ada"), new_user("bob"), new_user("cy"));
    for u in [&ada, &bob, &cy] {
        store.create_user(u).await.expect("user");
    }
    let d = doc("linked");
    store
        .create_owned_document(&d, "Linked", &ada.workspace, &ada.id)
        .await
        .expect("create");
    assert_eq!(store.link(&d).await.expect("link"), None);
    store
        .set_link(&d, "h1", DocRole::Viewer)
        .await
        .expect("link on");
    assert_eq!(
        store.link(&d).await.expect("link").map(|l| l.role),
        Some(DocRole::Viewer)
    );
    assert_eq!(
        store.link_role(&d, "h1").await.expect("role"),
        Some(DocRole::Viewer)
    );
    assert_eq!(store.link_role(&d, "h2").await.expect("role"), None);
    assert_eq!(
        store.link_role(&doc("other"), "h1").await.expect("role"),
        None
    );
    // A new link replaces the old token.
    store
        .set_link(&d, "h2", DocRole::Editor)
        .await
        .expect("new link");
    assert_eq!(store.link_role(&d, "h1").await.expect("role"), None);
    assert_eq!(
        store.link_role(&d, "h2").await.expect("role"),
        Some(DocRole::Editor)
    );
    assert!(matches!(
        store.set_link(&doc("missing"), "h3", DocRole::Viewer).await,
        Err(StoreError::NotFound)
    ));

    store
        .put_share(&d, &bob.id, DocRole::Editor, true)
        .await
        .expect("bob via link");
    store
        .put_share(&d, &cy.id, DocRole::Viewer, false)
        .await
        .expect("cy invited");
    let entries = store.shares(&d).await.expect("shares");
    assert!(entries.iter().any(|e| e.user.id == bob.id && e.via_link));

    let withdrawn = store.remove_link(&d).await.expect("link off");
    assert_eq!(withdrawn, vec![bob.id.clone()]);
    assert_eq!(store.link(&d).await.expect("link"), None);
    assert_eq!(store.link_role(&d, "h2").await.expect("role"), None);
    assert_eq!(
        store.document_access(&d, &bob.id).await.expect("access"),
        None
    );
    assert!(
        store
            .document_access(&d, &cy.id)
            .await
            .expect("access")
            .is_some(),
        "invited people keep access"
    );
}

pub async fn workspaces_have_members_and_roles(h: &dyn Harness) {
    let store = h.open().await;
    let (ada, bob) = (new_user("ada"), new_user("bob"));
    store.create_user(&ada).await.expect("ada");
    store.create_user(&bob).await.expect("bob");
    let team = WorkspaceId::generate();
    let ws = store
        .create_workspace(&team, "Team", &ada.id)
        .await
        .expect("create");
    assert_eq!(ws.role, WorkspaceRole::Admin);
    assert_eq!(
        store.workspace_role(&team, &ada.id).await.expect("role"),
        Some(WorkspaceRole::Admin)
    );
    assert_eq!(
        store.workspace_role(&team, &bob.id).await.expect("role"),
        None
    );
    assert_eq!(
        store
            .set_workspace_member(&team, &bob.id, WorkspaceRole::Member)
            .await
            .expect("invite"),
        MemberChange::Done
    );
    assert_eq!(
        store.workspace_role(&team, &bob.id).await.expect("role"),
        Some(WorkspaceRole::Member)
    );
    assert_eq!(
        store
            .set_workspace_member(&team, &bob.id, WorkspaceRole::Admin)
            .await
            .expect("promote"),
        MemberChange::Done
    );
    let members = store.workspace_members(&team).await.expect("members");
    assert_eq!(
        members
            .iter()
            .map(|m| (m.user.email.as_str(), m.role))
            .collect::<Vec<_>>(),
        vec![
            ("ada@example.test", WorkspaceRole::Admin),
            ("bob@example.test", WorkspaceRole::Admin)
        ]
    );
    assert_eq!(store.workspaces_of(&bob.id).await.expect("of bob").len(), 2);
    assert_eq!(
        store
            .remove_workspace_member(&team, &bob.id)
            .await
            .expect("remove"),
        MemberChange::Done
    );
    assert_eq!(
        store
            .remove_workspace_member(&team, &bob.id)
            .await
            .expect("remove again"),
        MemberChange::NotMember
    );
    assert_eq!(store.workspaces_of(&bob.id).await.expect("of bob").len(), 1);
}

pub async fn every_workspace_keeps_an_admin(h: &dyn Harness) {
    let store = h.open().await;
    let (ada, bob) = (new_user("ada"), new_user("bob"));
    store.create_user(&ada).await.expect("ada");
    store.create_user(&bob).await.expect("bob");
    // The sole admin of a personal workspace can neither leave nor step down.
    assert_eq!(
        store
            .remove_workspace_member(&ada.workspace, &ada.id)
            .await
            .expect("leave"),
        MemberChange::LastAdmin
    );
    assert_eq!(
        store
            .set_workspace_member(&ada.workspace, &ada.id, WorkspaceRole::Member)
            .await
            .expect("step down"),
        MemberChange::LastAdmin
    );
    assert_eq!(
        store
            .workspace_role(&ada.workspace, &ada.id)
            .await
            .expect("role"),
        Some(WorkspaceRole::Admin)
    );
    assert_eq!(
        store
            .remove_workspace_member(&ada.workspace, &bob.id)
            .await
            .expect("not a member"),
        MemberChange::NotMember
    );
    // With a second admin, one may go; of two admins removing each other at
    // once, exactly one succeeds.
    for _ in 0..5 {
        store
            .set_workspace_member(&ada.workspace, &bob.id, WorkspaceRole::Admin)
            .await
            .expect("second admin");
        let (a, b) = tokio::join!(
            store.remove_workspace_member(&ada.workspace, &ada.id),
            store.remove_workspace_member(&ada.workspace, &bob.id),
        );
        let mut outcomes = vec![a.expect("remove ada"), b.expect("remove bob")];
        outcomes.sort_by_key(|o| *o == MemberChange::Done);
        assert_eq!(outcomes, vec![MemberChange::LastAdmin, MemberChange::Done]);
        let admins: Vec<_> = store
            .workspace_members(&ada.workspace)
            .await
            .expect("members")
            .into_iter()
            .filter(|m| m.role == WorkspaceRole::Admin)
            .collect();
        assert_eq!(admins.len(), 1);
        // Back to Ada alone, for the next round.
        let stayed = admins[0].user.id.clone();
        if stayed != ada.id {
            store
                .set_workspace_member(&ada.workspace, &ada.id, WorkspaceRole::Admin)
                .await
                .expect("ada back");
            assert_eq!(
                store
                    .remove_workspace_member(&ada.workspace, &bob.id)
                    .await
                    .expect("bob out"),
                MemberChange::Done
            );
        }
    }
}

pub async fn deleting_a_document_removes_its_grants(h: &dyn Harness) {
    let store = h.open().await;
    let (ada, bob) = (new_user("ada"), new_user("bob"));
    store.create_user(&ada).await.expect("ada");
    store.create_user(&bob).await.expect("bob");
    let d = doc("short-lived");
    store
        .create_owned_document(&d, "Doomed", &ada.workspace, &ada.id)
        .await
        .expect("create");
    store
        .put_share(&d, &bob.id, DocRole::Editor, false)
        .await
        .expect("share");
    store
        .set_link(&d, "hx", DocRole::Viewer)
        .await
        .expect("link");
    store.delete_document(&d).await.expect("delete");
    assert!(store.shares(&d).await.expect("shares").is_empty());
    assert_eq!(store.link(&d).await.expect("link"), None);
    // Re-created under the same id without an owner, it is nobody's.
    create(&*store, &[&d]).await;
    assert_eq!(
        store.document_access(&d, &bob.id).await.expect("access"),
        None
    );
    assert_eq!(
        store.document_access(&d, &ada.id).await.expect("access"),
        None
    );
}

pub async fn expired_tokens_are_purged(h: &dyn Harness) {
    let store = h.open().await;
    let ada = new_user("ada");
    store.create_user(&ada).await.expect("ada");
    let now = UnixMillis::now().0;
    store
        .create_auth_session(
            &AuthSessionId::generate(),
            &ada.id,
            &[
                token("old", TokenKind::Access, now - 1000),
                token("new", TokenKind::Access, now + 60_000),
            ],
        )
        .await
        .expect("session");
    assert_eq!(
        store
            .purge_expired_tokens(UnixMillis(now))
            .await
            .expect("purge"),
        1
    );
    assert_eq!(store.token("old").await.expect("t"), None);
    assert!(store.token("new").await.expect("t").is_some());
}
