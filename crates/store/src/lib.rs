//! Durable storage for Quire: the per-document update log, snapshots made by
//! compaction, document metadata, and (in [`auth`]) accounts, sessions,
//! workspaces and who may open which document.
//!
//! The store knows nothing of Yjs: an update or a snapshot is an opaque byte
//! string. Merging updates into a snapshot is the hub's job; the store only
//! guarantees the atomicity that makes compaction safe (see [`DocStore::compact`]).
//!
//! Two implementations, [`SqliteStore`] (embedded, the default) and
//! [`PgStore`] (scale-out), pass the same conformance suite.

use bytes::Bytes;
use quire_types::{DocId, Seq, UnixMillis, UserId};
use serde::Serialize;

pub mod auth;
mod common;
mod postgres;
mod sqlite;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;

pub use auth::{
    AuthStore, DocAccess, DocScope, LinkInfo, Member, MemberChange, NewToken, NewUser, Rotation,
    ShareEntry, TokenInfo, TokenKind, User, Workspace,
};
pub use postgres::{NodeRole, NodeRoleLock, PgOptions, PgStore};
pub use sqlite::{SqliteOptions, SqliteStore};

/// One update to append to a document's log.
#[derive(Debug, Clone)]
pub struct Append {
    pub doc: DocId,
    pub update: Bytes,
}

/// One committed row of a document's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub seq: Seq,
    pub update: Bytes,
}

/// The compacted state of a document: the merge of every log row with a
/// sequence number up to and including `upto`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub upto: Seq,
    pub data: Bytes,
}

/// Everything needed to rebuild a document: its latest snapshot (if any) and
/// every log row after it, in sequence order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredDoc {
    pub snapshot: Option<Snapshot>,
    pub tail: Vec<LogEntry>,
}

impl StoredDoc {
    /// Highest sequence number this load covers (0 for an empty document).
    pub fn last_seq(&self) -> Seq {
        self.tail
            .last()
            .map(|e| e.seq)
            .or(self.snapshot.as_ref().map(|s| s.upto))
            .unwrap_or_default()
    }

    pub fn tail_bytes(&self) -> usize {
        self.tail.iter().map(|e| e.update.len()).sum()
    }
}

/// What [`DocStore::compact`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompactOutcome {
    /// The snapshot was stored and the rows it covers were deleted.
    Compacted,
    /// The document's snapshot was no longer the expected base (another node or
    /// task compacted first); nothing was changed.
    Superseded,
}

/// Document metadata, as listed by the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DocumentMeta {
    pub id: DocId,
    pub title: String,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
}

/// What one account's documents take up: the documents it owns and their
/// stored bytes (see [`DocStore::stored_bytes`]), for per-account quotas.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct AccountUsage {
    pub documents: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// Case-insensitive substring of the title; `None` lists everything.
    pub title_contains: Option<String>,
    pub limit: Option<u32>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("document not found")]
    NotFound,
    #[error("document already exists")]
    AlreadyExists,
    #[error("storage is unavailable: {0}")]
    Unavailable(String),
    /// The disk (or the database's own size limit) has no room for the
    /// write. Nothing of it was stored. Not worth retrying at once: it lasts
    /// until an operator makes room, and writes work again by themselves
    /// from then on.
    #[error("storage is full: {0}")]
    Full(String),
    #[error("storage error: {0}")]
    Backend(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Everything a Quire node stores: documents and their logs ([`DocStore`]),
/// and accounts and access ([`AuthStore`]). One object implements both so
/// that a document and the rows that guard it live in one database.
pub trait Store: DocStore + AuthStore {}

impl<T: DocStore + AuthStore> Store for T {}

/// The storage boundary. Every method is one transaction (or none).
#[async_trait::async_trait]
pub trait DocStore: Send + Sync + 'static {
    /// Appends every update of the batch in **one** transaction (group commit)
    /// and returns, in batch order, each update's sequence number, or
    /// `Err(NotFound)` for an update whose document does not exist. When the
    /// outer result is `Ok`, every numbered row is durable. Appends to one
    /// document are serialized across connections and nodes, so sequence
    /// numbers are gap-free and a reader that catches up by sequence number
    /// never skips a row that commits late.
    ///
    /// Appending never creates a document ([`DocStore::create_document`]
    /// does): a document deleted while a node still had it live would
    /// otherwise come back, ownerless, with the next write. Nothing is written
    /// for a missing document, and the other documents of the batch are
    /// appended as usual: one document's deletion fails no one else's writes.
    async fn append(&self, batch: &[Append]) -> StoreResult<Vec<StoreResult<Seq>>>;

    /// The latest snapshot and every row after it. An unknown document loads as
    /// empty (no snapshot, no rows).
    async fn load(&self, doc: &DocId) -> StoreResult<StoredDoc>;

    /// Rows with a sequence number greater than `after`, in order. Used by a
    /// node to heal after it may have missed bus messages. If `after` is older
    /// than the latest snapshot, the snapshot is returned too.
    async fn tail(&self, doc: &DocId, after: Seq) -> StoreResult<StoredDoc>;

    /// Atomically replaces the document's snapshot with `snapshot` (the merge of
    /// every row up to `snapshot.upto`) and deletes the rows it covers — but
    /// only if the current snapshot's `upto` is still `base` (`None`: no
    /// snapshot yet). Otherwise changes nothing and returns `Superseded`. Rows
    /// after `snapshot.upto` are never touched. Idempotent and safe to race.
    /// `NotFound` if the document does not exist: a snapshot never creates one.
    async fn compact(
        &self,
        doc: &DocId,
        base: Option<Seq>,
        snapshot: Snapshot,
    ) -> StoreResult<CompactOutcome>;

    async fn create_document(&self, id: &DocId, title: &str) -> StoreResult<DocumentMeta>;
    async fn document(&self, id: &DocId) -> StoreResult<Option<DocumentMeta>>;
    /// Most recently updated first.
    async fn list_documents(&self, query: &ListQuery) -> StoreResult<Vec<DocumentMeta>>;
    async fn rename_document(&self, id: &DocId, title: &str) -> StoreResult<DocumentMeta>;
    /// Deletes metadata, log and snapshot. `NotFound` if there was no document.
    async fn delete_document(&self, id: &DocId) -> StoreResult<()>;

    /// The document's stored size: its snapshot plus its log rows, in bytes
    /// of update data. Kept in a column by [`DocStore::append`] and
    /// [`DocStore::compact`] inside their own transactions, so it is exact
    /// at every commit and reading it costs one row. `None` if there is no
    /// such document.
    async fn stored_bytes(&self, id: &DocId) -> StoreResult<Option<u64>>;

    /// How many documents `owner` owns and their stored bytes in total.
    async fn account_usage(&self, owner: &UserId) -> StoreResult<AccountUsage>;

    /// Cheap round trip for readiness checks. The embedded store also
    /// answers [`StoreError::Full`] when its disk is all but full, which no
    /// read would show; it answers `Ok` again as soon as there is room.
    async fn ping(&self) -> StoreResult<()>;

    /// Statements sent to the database since the store was opened (shared by
    /// clones). Exported as a metric, so that "no polling while idle" can be
    /// checked on a running node.
    fn queries_executed(&self) -> u64;
}
