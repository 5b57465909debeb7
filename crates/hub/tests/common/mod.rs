//! What the hub's integration tests share: the real SQLite store with its
//! appends in the test's hands, and a node's bus on the machine's Redis.
// Each test binary uses a part of this.
#![allow(dead_code)]

use quire_bus::{RedisBus, RedisBusOptions};
use quire_store::{
    AccountUsage, Append, CompactOutcome, DocStore, DocumentMeta, ListQuery, Snapshot, SqliteStore,
    StoreResult, StoredDoc,
};
use quire_types::{DocId, NodeId, Seq, UserId};

/// What a test does with an append instead of (or before) the store's own.
#[async_trait::async_trait]
pub trait AppendHook: Send + Sync + 'static {
    async fn append(
        &self,
        store: &SqliteStore,
        batch: &[Append],
    ) -> StoreResult<Vec<StoreResult<Seq>>>;
}

/// The real SQLite store, except that every append goes through `hook`.
pub struct HookedStore<H> {
    pub inner: SqliteStore,
    pub hook: H,
}

#[async_trait::async_trait]
impl<H: AppendHook> DocStore for HookedStore<H> {
    async fn append(&self, batch: &[Append]) -> StoreResult<Vec<StoreResult<Seq>>> {
        self.hook.append(&self.inner, batch).await
    }
    async fn load(&self, doc: &DocId) -> StoreResult<StoredDoc> {
        self.inner.load(doc).await
    }
    async fn tail(&self, doc: &DocId, after: Seq) -> StoreResult<StoredDoc> {
        self.inner.tail(doc, after).await
    }
    async fn compact(
        &self,
        doc: &DocId,
        base: Option<Seq>,
        snapshot: Snapshot,
    ) -> StoreResult<CompactOutcome> {
        self.inner.compact(doc, base, snapshot).await
    }
    async fn create_document(&self, id: &DocId, title: &str) -> StoreResult<DocumentMeta> {
        self.inner.create_document(id, title).await
    }
    async fn document(&self, id: &DocId) -> StoreResult<Option<DocumentMeta>> {
        self.inner.document(id).await
    }
    async fn list_documents(&self, query: &ListQuery) -> StoreResult<Vec<DocumentMeta>> {
        self.inner.list_documents(query).await
    }
    async fn rename_document(&self, id: &DocId, title: &str) -> StoreResult<DocumentMeta> {
        self.inner.rename_document(id, title).await
    }
    async fn delete_document(&self, id: &DocId) -> StoreResult<()> {
        self.inner.delete_document(id).await
    }
    async fn stored_bytes(&self, id: &DocId) -> StoreResult<Option<u64>> {
        self.inner.stored_bytes(id).await
    }
    async fn account_usage(&self, owner: &UserId) -> StoreResult<AccountUsage> {
        self.inner.account_usage(owner).await
    }
    async fn ping(&self) -> StoreResult<()> {
        self.inner.ping().await
    }
    fn queries_executed(&self) -> u64 {
        self.inner.queries_executed()
    }
}

/// The machine's Redis (`QUIRE_TEST_REDIS_URL` to use another); the tests
/// that use it fail rather than skip without it.
pub fn redis_url() -> String {
    std::env::var("QUIRE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".to_string())
}

/// One process start of a node's Redis bus: a fresh connection whose
/// counters start at 1, as after a restart.
pub async fn redis_node(prefix: &str, id: &str) -> RedisBus {
    RedisBus::connect(RedisBusOptions {
        url: redis_url(),
        channel_prefix: prefix.to_string(),
        node: NodeId(id.into()),
    })
    .await
    .unwrap_or_else(|e| panic!("Redis at {} is required by this test: {e}", redis_url()))
}
