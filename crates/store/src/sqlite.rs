//! [`SqliteStore`]: the embedded backend, one SQLite file in WAL mode. It is
//! what `quire serve` uses with no configuration, so it must be as durable as
//! the PostgreSQL backend: an acknowledged edit survives a process kill and a
//! power loss.
//!
//! SQLite has a single writer. Rather than let concurrent writers collide and
//! retry on `SQLITE_BUSY`, every write goes through a pool of exactly one
//! connection, so writes queue in the pool (in process) instead of in SQLite's
//! busy handler. Reads use a separate pool: in WAL mode readers don't block the
//! writer and see a consistent snapshot per statement.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use quire_types::{DocId, Seq, UnixMillis, UserId};
use sqlx::Connection;
use sqlx::QueryBuilder;
use sqlx::sqlite::{
    Sqlite, SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool,
    SqlitePoolOptions, SqliteSynchronous,
};

use crate::common::{self, GroupedBatch, QueryCounter};
use crate::{
    AccountUsage, Append, CompactOutcome, DocStore, DocumentMeta, ListQuery, Snapshot, StoreError,
    StoreResult, StoredDoc,
};

/// Rows per multi-row `INSERT` into `updates`: three bound parameters each,
/// well under SQLite's limit (32,766 since 3.32; sqlx bundles a newer one).
const ROWS_PER_INSERT: usize = 500;

/// Free space under which [`DocStore::ping`] reports the disk full. A commit
/// appends pages to the WAL and a checkpoint grows the database file; with
/// less than this left, either may fail at any moment.
const MIN_FREE_BYTES: u64 = 1024 * 1024;

/// Tuning for [`SqliteStore::open`].
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// Connections in the read pool. WAL lets them all read while the single
    /// writer commits, so this bounds concurrent loads, not appends.
    pub max_readers: u32,
    /// How long a statement waits for a lock held by *another process* on the
    /// same file (within this process, writes queue on the writer pool).
    pub busy_timeout: Duration,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            max_readers: 4,
            busy_timeout: Duration::from_secs(5),
        }
    }
}

/// The embedded store. Cheap to clone: clones share the pools and the counter.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// Exactly one connection: SQLite's single writer, made explicit.
    writer: SqlitePool,
    readers: SqlitePool,
    queries: QueryCounter,
    /// The folder holding the database, whose free space readiness checks.
    dir: Arc<PathBuf>,
}

impl SqliteStore {
    /// Opens (creating it and its folder if absent) the database at `path` and
    /// brings its schema up to date.
    pub async fn open(path: &Path, opts: SqliteOptions) -> StoreResult<SqliteStore> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(dir).await.map_err(|e| {
                StoreError::Unavailable(format!("cannot create {}: {e}", dir.display()))
            })?;
        }

        let connect = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .foreign_keys(true)
            .busy_timeout(opts.busy_timeout)
            // FULL, not NORMAL. In WAL mode NORMAL skips the fsync at each
            // commit and syncs only at checkpoints: a process kill loses
            // nothing, but a power loss or OS crash can roll back the last
            // commits, and we will already have acknowledged them to their
            // authors (durability contract, DESIGN.md §3). FULL syncs the WAL
            // on every commit; group commit in the hub amortises that cost.
            .synchronous(SqliteSynchronous::Full);

        // The writer opens first: switching to WAL needs an exclusive lock and
        // is persistent, so the readers opened afterwards find the file in WAL
        // mode already and need not (and must not race to) set it.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            // Reopening the single writer costs a WAL recovery check; keep it.
            .idle_timeout(None)
            .max_lifetime(None)
            .after_release(|conn, _| Box::pin(retire_if_stuck_in_transaction(conn)))
            .connect_with(connect.clone().journal_mode(SqliteJournalMode::Wal))
            .await
            .map_err(map_err)?;

        sqlx::migrate!("./migrations/sqlite")
            .run(&writer)
            .await
            .map_err(|e| StoreError::Backend(format!("migrating {}: {e}", path.display())))?;

        // query_only turns an accidental write through the read pool into an
        // error instead of a second writer contending for the lock.
        let readers = SqlitePoolOptions::new()
            .max_connections(opts.max_readers.max(1))
            .connect_with(connect.pragma("query_only", "ON"))
            .await
            .map_err(map_err)?;

        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        Ok(SqliteStore {
            writer,
            readers,
            queries: QueryCounter::default(),
            dir: Arc::new(dir.to_path_buf()),
        })
    }

    /// Statements this store (and its clones) has sent since it was opened.
    pub fn queries_executed(&self) -> u64 {
        self.queries.get()
    }

    /// `Full` when the filesystem holding the database has less than
    /// [`MIN_FREE_BYTES`] left for an unprivileged writer. A filesystem
    /// that cannot say is taken to have room.
    fn check_free_space(&self) -> StoreResult<()> {
        let Ok(fs) = rustix::fs::statvfs(self.dir.as_path()) else {
            return Ok(());
        };
        let free = fs.f_bavail.saturating_mul(fs.f_frsize);
        if free < MIN_FREE_BYTES {
            return Err(StoreError::Full(format!(
                "{free} bytes free on the filesystem holding {}",
                self.dir.display()
            )));
        }
        Ok(())
    }

    /// Closes both pools, waiting for in-flight statements; for graceful
    /// shutdown. Calls made afterwards fail with `Unavailable`.
    pub async fn close(&self) {
        self.writer.close().await;
        self.readers.close().await;
    }

    /// Starts a write transaction. `BEGIN IMMEDIATE` takes the write lock up
    /// front: a deferred transaction that reads and then writes could fail
    /// with `SQLITE_BUSY_SNAPSHOT` if another process wrote in between, which
    /// no busy timeout cures.
    async fn begin_write(&self) -> StoreResult<sqlx::Transaction<'static, sqlx::Sqlite>> {
        self.queries.add(1);
        self.writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(map_err)
    }

    async fn commit(&self, tx: sqlx::Transaction<'static, sqlx::Sqlite>) -> StoreResult<()> {
        self.queries.add(1);
        tx.commit().await.map_err(map_err)
    }

    async fn rows_after(&self, doc: &DocId, after: Seq) -> StoreResult<StoredDoc> {
        // One statement, so the snapshot and the rows come from one read
        // snapshot of the database: a compaction committing between two
        // separate reads could otherwise delete rows newer than the snapshot
        // we had just read.
        self.queries.add(1);
        let rows: Vec<(i64, i64, Vec<u8>)> = sqlx::query_as(
            "SELECT 1 AS kind, upto AS seq, data FROM snapshots WHERE doc_id = $1 AND upto > $2 \
             UNION ALL \
             SELECT 2 AS kind, seq, data FROM updates WHERE doc_id = $1 AND seq > $2 \
             ORDER BY 1, 2",
        )
        .bind(doc.as_str())
        .bind(after.0)
        .fetch_all(&self.readers)
        .await
        .map_err(map_err)?;
        common::stored_doc(rows)
    }
}

#[async_trait::async_trait]
impl DocStore for SqliteStore {
    async fn append(&self, batch: &[Append]) -> StoreResult<Vec<StoreResult<Seq>>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let grouped = GroupedBatch::new(batch);
        let now = UnixMillis::now().0;
        let mut seqs = vec![None; batch.len()];
        let mut rows = Vec::with_capacity(batch.len());
        let mut tx = self.begin_write().await?;
        // Reserves each document's numbers and adds its bytes to its stored
        // size, all documents in one statement (each statement is a round
        // trip to sqlx's worker thread). An update, never an upsert: a
        // document that is not there was deleted (or never created) and must
        // stay gone; it returns no row.
        let docs: Vec<(&DocId, &Vec<usize>)> = grouped.docs.iter().map(|(d, p)| (*d, p)).collect();
        for chunk in docs.chunks(ROWS_PER_INSERT) {
            self.queries.add(1);
            let mut update = QueryBuilder::<Sqlite>::new(
                "UPDATE documents SET last_seq = last_seq + v.column2, \
                 stored_bytes = stored_bytes + v.column3, updated_at = max(updated_at, ",
            );
            update.push_bind(now);
            update.push(") FROM (");
            update.push_values(chunk, |mut row, (doc, positions)| {
                row.push_bind(doc.as_str())
                    .push_bind(positions.len() as i64)
                    .push_bind(common::batch_bytes(batch, positions));
            });
            update.push(") AS v WHERE documents.id = v.column1 RETURNING id, last_seq");
            let reserved: Vec<(String, i64)> = update
                .build_query_as()
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err)?;
            let by_id: HashMap<&str, (&DocId, &Vec<usize>)> =
                chunk.iter().map(|&(d, p)| (d.as_str(), (d, p))).collect();
            for (id, last_seq) in reserved {
                let Some(&(doc, positions)) = by_id.get(id.as_str()) else {
                    continue;
                };
                for (pos, seq) in GroupedBatch::seqs_ending_at(positions, last_seq) {
                    rows.push((doc, seq, pos));
                    seqs[pos] = Some(seq);
                }
            }
        }
        // Multi-row INSERTs: each statement is a round trip to sqlx's SQLite
        // worker thread, so one per row made a large batch cost hundreds of
        // thread hand-offs. Chunked under SQLite's bound-parameter limit.
        for chunk in rows.chunks(ROWS_PER_INSERT) {
            self.queries.add(1);
            let mut insert =
                QueryBuilder::<Sqlite>::new("INSERT INTO updates (doc_id, seq, data) ");
            insert.push_values(chunk, |mut row, &(doc, seq, pos)| {
                row.push_bind(doc.as_str())
                    .push_bind(seq.0)
                    .push_bind(batch[pos].update.as_ref());
            });
            insert.build().execute(&mut *tx).await.map_err(map_err)?;
        }
        self.commit(tx).await?;
        Ok(common::appended(seqs))
    }

    async fn load(&self, doc: &DocId) -> StoreResult<StoredDoc> {
        self.rows_after(doc, common::LOAD_ALL).await
    }

    async fn tail(&self, doc: &DocId, after: Seq) -> StoreResult<StoredDoc> {
        self.rows_after(doc, after).await
    }

    async fn compact(
        &self,
        doc: &DocId,
        base: Option<Seq>,
        snapshot: Snapshot,
    ) -> StoreResult<CompactOutcome> {
        // The write transaction is the per-document serialization: nothing
        // else writes while it runs, so the state read here is still true at
        // commit.
        let mut tx = self.begin_write().await?;
        self.queries.add(1);
        let state: Option<(i64, Option<i64>)> = sqlx::query_as(
            "SELECT d.last_seq, s.upto FROM documents d \
             LEFT JOIN snapshots s ON s.doc_id = d.id WHERE d.id = $1",
        )
        .bind(doc.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
        // A snapshot needs its document row (the foreign key): compacting a
        // deleted document must not bring it back.
        let Some((last_seq, current)) = state else {
            return Err(StoreError::NotFound);
        };
        if !common::compaction_allowed(current.map(Seq), base, Seq(last_seq), &snapshot)? {
            return Ok(CompactOutcome::Superseded);
        }
        self.queries.add(3);
        sqlx::query(
            "INSERT INTO snapshots (doc_id, upto, data, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (doc_id) DO UPDATE SET \
               upto = excluded.upto, data = excluded.data, created_at = excluded.created_at",
        )
        .bind(doc.as_str())
        .bind(snapshot.upto.0)
        .bind(snapshot.data.as_ref())
        .bind(UnixMillis::now().0)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        sqlx::query("DELETE FROM updates WHERE doc_id = $1 AND seq <= $2")
            .bind(doc.as_str())
            .bind(snapshot.upto.0)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        // Recounted rather than adjusted: the rows left are the few appended
        // since the snapshot was read, and a recount can't drift.
        sqlx::query(
            "UPDATE documents SET stored_bytes = $2 + \
               COALESCE((SELECT SUM(length(data)) FROM updates WHERE doc_id = $1), 0) \
             WHERE id = $1",
        )
        .bind(doc.as_str())
        .bind(snapshot.data.len() as i64)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        self.commit(tx).await?;
        Ok(CompactOutcome::Compacted)
    }

    async fn create_document(&self, id: &DocId, title: &str) -> StoreResult<DocumentMeta> {
        let now = UnixMillis::now().0;
        self.queries.add(1);
        let row: Option<(String, String, i64, i64)> = sqlx::query_as(
            "INSERT INTO documents (id, title, created_at, updated_at) VALUES ($1, $2, $3, $3) \
             ON CONFLICT (id) DO NOTHING \
             RETURNING id, title, created_at, updated_at",
        )
        .bind(id.as_str())
        .bind(title)
        .bind(now)
        .fetch_optional(&self.writer)
        .await
        .map_err(map_err)?;
        let (id, title, created_at, updated_at) = row.ok_or(StoreError::AlreadyExists)?;
        common::document_meta(id, title, created_at, updated_at)
    }

    async fn document(&self, id: &DocId) -> StoreResult<Option<DocumentMeta>> {
        self.queries.add(1);
        let row: Option<(String, String, i64, i64)> =
            sqlx::query_as("SELECT id, title, created_at, updated_at FROM documents WHERE id = $1")
                .bind(id.as_str())
                .fetch_optional(&self.readers)
                .await
                .map_err(map_err)?;
        row.map(|(id, title, created_at, updated_at)| {
            common::document_meta(id, title, created_at, updated_at)
        })
        .transpose()
    }

    async fn list_documents(&self, query: &ListQuery) -> StoreResult<Vec<DocumentMeta>> {
        // SQLite's LIKE ignores case for ASCII letters only, so "ü" does not
        // find "Ü". Accepted for the embedded store: folding in Rust instead
        // would mean reading every row to apply the LIMIT afterwards.
        let pattern = query
            .title_contains
            .as_deref()
            .map(common::contains_pattern);
        // A negative LIMIT means "no limit" in SQLite.
        let limit = query.limit.map_or(-1, i64::from);
        self.queries.add(1);
        let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(
            "SELECT id, title, created_at, updated_at FROM documents \
             WHERE $1 IS NULL OR title LIKE $1 ESCAPE '\\' \
             ORDER BY updated_at DESC, id LIMIT $2",
        )
        .bind(pattern)
        .bind(limit)
        .fetch_all(&self.readers)
        .await
        .map_err(map_err)?;
        rows.into_iter()
            .map(|(id, title, created_at, updated_at)| {
                common::document_meta(id, title, created_at, updated_at)
            })
            .collect()
    }

    async fn rename_document(&self, id: &DocId, title: &str) -> StoreResult<DocumentMeta> {
        self.queries.add(1);
        let row: Option<(String, String, i64, i64)> = sqlx::query_as(
            "UPDATE documents SET title = $2, updated_at = max(updated_at, $3) WHERE id = $1 \
             RETURNING id, title, created_at, updated_at",
        )
        .bind(id.as_str())
        .bind(title)
        .bind(UnixMillis::now().0)
        .fetch_optional(&self.writer)
        .await
        .map_err(map_err)?;
        let (id, title, created_at, updated_at) = row.ok_or(StoreError::NotFound)?;
        common::document_meta(id, title, created_at, updated_at)
    }

    async fn delete_document(&self, id: &DocId) -> StoreResult<()> {
        // The log and the snapshot go with the row (ON DELETE CASCADE), in
        // this one statement's implicit transaction.
        self.queries.add(1);
        let deleted = sqlx::query("DELETE FROM documents WHERE id = $1")
            .bind(id.as_str())
            .execute(&self.writer)
            .await
            .map_err(map_err)?
            .rows_affected();
        if deleted == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn stored_bytes(&self, id: &DocId) -> StoreResult<Option<u64>> {
        self.queries.add(1);
        let bytes: Option<i64> =
            sqlx::query_scalar("SELECT stored_bytes FROM documents WHERE id = $1")
                .bind(id.as_str())
                .fetch_optional(&self.readers)
                .await
                .map_err(map_err)?;
        Ok(bytes.map(common::unsigned))
    }

    async fn account_usage(&self, owner: &UserId) -> StoreResult<AccountUsage> {
        self.queries.add(1);
        let (documents, bytes): (i64, i64) = sqlx::query_as(
            "SELECT COUNT(*), COALESCE(SUM(stored_bytes), 0) FROM documents WHERE owner_id = $1",
        )
        .bind(owner.as_str())
        .fetch_one(&self.readers)
        .await
        .map_err(map_err)?;
        Ok(common::account_usage(documents, bytes))
    }

    fn queries_executed(&self) -> u64 {
        self.queries.get()
    }

    async fn ping(&self) -> StoreResult<()> {
        self.queries.add(1);
        sqlx::query("SELECT 1")
            .execute(&self.readers)
            .await
            .map_err(map_err)?;
        self.check_free_space()
    }
}

/// Whether the writer may go back to the pool (`false` closes it, and the
/// pool opens a fresh one).
///
/// A write that fails with `SQLITE_FULL` (a full disk) or an I/O error may
/// have been rolled back by SQLite itself. sqlx's ROLLBACK then fails
/// ("no transaction is active") and it goes on counting the transaction as
/// open, so every later `BEGIN` on that connection would fail with
/// "non-zero transaction depth": writes would stay broken after the disk
/// had room again, until the process restarted. Only a failed transaction
/// gets here with a depth; the ping first lets the connection's worker run
/// the rollback queued when it was dropped.
async fn retire_if_stuck_in_transaction(conn: &mut SqliteConnection) -> Result<bool, sqlx::Error> {
    if !conn.is_in_transaction() {
        return Ok(true);
    }
    conn.ping().await?;
    if conn.is_in_transaction() {
        tracing::warn!("the SQLite writer was left inside a failed transaction; reopening it");
        return Ok(false);
    }
    Ok(true)
}

/// `SQLITE_BUSY` and `SQLITE_LOCKED` (with their extended codes) mean another
/// process held the file longer than the busy timeout: an outage, not a bug.
/// `SQLITE_FULL`: no room on the disk (ENOSPC, or a disk quota).
fn map_err(e: sqlx::Error) -> StoreError {
    let primary = e
        .as_database_error()
        .and_then(|db| db.code())
        .and_then(|code| code.parse::<i32>().ok())
        .map(|code| code & 0xff);
    match primary {
        Some(13) => StoreError::Full(e.to_string()),
        Some(5 | 6) => StoreError::Unavailable(e.to_string()),
        _ if common::is_connection_error(&e) => StoreError::Unavailable(e.to_string()),
        _ => StoreError::Backend(e.to_string()),
    }
}

#[cfg(test)]
mod tests;

crate::auth::impl_auth_store!(
    SqliteStore,
    db = sqlx::Sqlite,
    read = readers,
    write = writer
);
