//! What the hub's integration tests share: the real SQLite store with its
//! appends in the test's hands.

use quire_store::{
    Append, CompactOutcome, DocStore, DocumentMeta, ListQuery, Snapshot, SqliteStore, StoreResult,
    StoredDoc,
};
use quire_types::{DocId, Seq};

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
    async fn ping(&self) -> StoreResult<()> {
        self.inner.ping().await
    }
    fn queries_executed(&self) -> u64 {
        self.inner.queries_executed()
    }
}
