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

mod accounts;
mod concurrency;
mod documents;
mod log;
mod sharing;
mod usage;

pub use accounts::*;
pub use concurrency::*;
pub use documents::*;
pub use log::*;
pub use sharing::*;
pub use usage::*;

use concurrency::{open_nodes, race_appends_and_compactions};

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
