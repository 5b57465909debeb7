//! [`PgStore`]: the scale-out backend. Many nodes share one PostgreSQL
//! database, so everything the embedded store gets for free from its single
//! writer is done here with row locks:
//!
//! - **Appends** bump `documents.last_seq` with an `UPDATE` inside the append
//!   transaction. The row lock that takes is held until commit, so two writers
//!   of one document, on any nodes, run one after the other: sequence numbers
//!   are gap-free and commit in order, and a reader catching up by sequence
//!   number never sees row n+1 before row n. A batch locks its documents in
//!   sorted order, so batches can't deadlock on each other. Not an upsert: an
//!   append that waited on a delete's lock finds no row once the delete
//!   commits, and the document stays deleted instead of coming back.
//! - **Compaction** locks the same row, then compares the snapshot's `upto`
//!   with the caller's base: per-document serialized and compare-and-swap.
//! - **Reads** are single statements, which PostgreSQL runs on one snapshot.
//!
//! Transient failures (serialization failure, deadlock, a dropped connection)
//! are retried a bounded number of times, but never when a commit may already
//! have happened: retrying then could apply a write twice.

use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use quire_types::{DocId, Seq, UnixMillis, UserId};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, Executor};

use crate::common::{self, GroupedBatch, QueryCounter};
use crate::{
    AccountUsage, Append, CompactOutcome, DocStore, DocumentMeta, ListQuery, Snapshot, StoreError,
    StoreResult, StoredDoc,
};

/// Attempts per operation, the first included.
const MAX_ATTEMPTS: u32 = 4;
/// First retry delay; doubled for each further attempt.
const RETRY_BACKOFF: Duration = Duration::from_millis(20);
/// How long an operation waits for a free pooled connection. Shorter than the
/// default 30 s so that readiness checks report an exhausted pool promptly.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// First key of the advisory lock behind [`PgStore::claim_node_role`]
/// ("QUIR" in ASCII); the second is the schema's hash.
const NODE_ROLE_LOCK_CLASS: i32 = 0x5155_4952;
/// How long [`PgStore::claim_node_role`] waits for a conflicting claim to go.
const NODE_ROLE_WAIT: Duration = Duration::from_secs(3);

/// How a node shares the database with others; see [`PgStore::claim_node_role`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeRole {
    /// The only node: no bus, so nobody else may write.
    Single,
    /// One of many nodes that talk through a bus.
    Clustered,
}

/// Holds a node's role claim; dropping it (or the process ending) releases it.
pub struct NodeRoleLock {
    _conn: sqlx::PgConnection,
}

impl std::fmt::Debug for NodeRoleLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodeRoleLock")
    }
}

/// Tuning for [`PgStore::connect`].
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// Schema to keep every table in, created if missing; every connection
    /// gets it as its only `search_path`. `None` uses the server's default
    /// search path. Tests give each run its own schema of one database.
    /// Must be a plain lowercase identifier (`[a-z_][a-z0-9_]*`).
    pub schema: Option<String>,
    pub max_connections: u32,
    /// Server-side limit on each statement, lock waits included, so that a
    /// stuck lock surfaces as an error instead of a hung append.
    pub statement_timeout: Duration,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            schema: None,
            max_connections: 10,
            statement_timeout: Duration::from_secs(30),
        }
    }
}

/// The scale-out store. Cheap to clone: clones share the pool and the counter.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    queries: QueryCounter,
}

/// How one attempt of an operation failed, which decides whether it may be
/// retried.
enum Failure {
    /// Nothing was committed: safe to retry if the error is transient.
    BeforeCommit(sqlx::Error),
    /// The commit (or an autocommitted statement) was sent, so the write may
    /// or may not have happened: retry only if the server said it rolled back.
    MaybeCommitted(sqlx::Error),
    /// A definite answer (not found, a refused snapshot): never retried.
    Store(StoreError),
}

impl From<sqlx::Error> for Failure {
    fn from(e: sqlx::Error) -> Self {
        Failure::BeforeCommit(e)
    }
}

impl PgStore {
    /// Connects a pool to `url`, creates `opts.schema` if it is set and
    /// missing, and brings the schema up to date. Safe to run on many nodes
    /// at once: migrations take an advisory lock.
    pub async fn connect(url: &str, opts: PgOptions) -> StoreResult<PgStore> {
        let queries = QueryCounter::default();
        let mut connect = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Backend(format!("invalid database url: {e}")))?
            .options([(
                "statement_timeout",
                format!("{}ms", opts.statement_timeout.as_millis().max(1)),
            )]);

        if let Some(schema) = &opts.schema
            && !is_plain_identifier(schema)
        {
            return Err(StoreError::Backend(format!(
                "schema name {schema:?} must match [a-z_][a-z0-9_]* (at most 63 bytes)"
            )));
        }
        // One plain connection first: it reports an unreachable or refusing
        // server at once (a pool would keep retrying until its acquire
        // timeout), and it creates the schema the pool's connections expect.
        let mut probe = connect.connect().await.map_err(map_err)?;
        if let Some(schema) = &opts.schema {
            queries.add(1);
            let created = probe
                .execute(AssertSqlSafe(format!(
                    "CREATE SCHEMA IF NOT EXISTS {schema}"
                )))
                .await;
            // IF NOT EXISTS is not atomic: nodes starting together can both
            // try to create it, and the loser gets a duplicate error.
            if let Err(e) = created
                && !matches!(sqlstate(&e).as_deref(), Some("42P06" | "23505"))
            {
                return Err(map_err(e));
            }
            // A startup parameter rather than a `SET` after connecting: every
            // connection the pool ever opens, reconnections included, gets it
            // with no extra round trip. The name was checked above, so it
            // needs no quoting.
            connect = connect.options([("search_path", schema.as_str())]);
        }
        probe.close().await.map_err(map_err)?;

        let pool = PgPoolOptions::new()
            .max_connections(opts.max_connections.max(1))
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(connect)
            .await
            .map_err(map_err)?;

        sqlx::migrate!("./migrations/postgres")
            .run(&pool)
            .await
            .map_err(|e| StoreError::Backend(format!("migrating the database: {e}")))?;

        Ok(PgStore { pool, queries })
    }

    /// Statements this store (and its clones) has sent since it connected.
    pub fn queries_executed(&self) -> u64 {
        self.queries.get()
    }

    /// Claims this node's role in the database (its schema, precisely) for
    /// as long as the returned lock lives, or fails if another node holds
    /// an incompatible one: a [`NodeRole::Single`] node (no bus) must be the
    /// only node, so it takes an exclusive advisory lock, and every
    /// [`NodeRole::Clustered`] node takes the same lock shared. The lock
    /// lives on a connection of its own, taken out of the pool; should that
    /// connection drop (a database restart), the claim lapses silently
    /// until the node restarts.
    pub async fn claim_node_role(&self, role: NodeRole) -> StoreResult<NodeRoleLock> {
        let mut conn = self.pool.acquire().await.map_err(map_err)?.detach();
        let function = match role {
            NodeRole::Single => "pg_try_advisory_lock",
            NodeRole::Clustered => "pg_try_advisory_lock_shared",
        };
        // Advisory locks are per database; the key includes the schema so
        // that clusters in different schemas of one database don't collide.
        let sql = format!("SELECT {function}({NODE_ROLE_LOCK_CLASS}, hashtext(current_schema()))");
        // A node restarted right after a crash may find its previous life's
        // lock still held, until the server notices that connection is gone:
        // try for a little while before refusing.
        let deadline = tokio::time::Instant::now() + NODE_ROLE_WAIT;
        let granted = loop {
            self.queries.add(1);
            let granted: bool = sqlx::query_scalar(AssertSqlSafe(sql.clone()))
                .fetch_one(&mut conn)
                .await
                .map_err(map_err)?;
            if granted || tokio::time::Instant::now() >= deadline {
                break granted;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        if !granted {
            return Err(StoreError::Unavailable(match role {
                NodeRole::Single => "another Quire node is using this database; a --single-node node must be the only one (give every node --redis-url instead)".to_string(),
                NodeRole::Clustered => "a --single-node Quire node is using this database; stop it, or give it --redis-url too".to_string(),
            }));
        }
        Ok(NodeRoleLock { _conn: conn })
    }

    /// Closes the pool, waiting for in-flight statements; for graceful
    /// shutdown. Calls made afterwards fail with `Unavailable`.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Runs `attempt` until it succeeds, fails for good, or has been tried
    /// [`MAX_ATTEMPTS`] times.
    async fn retrying<T, F, Fut>(&self, what: &'static str, mut attempt: F) -> StoreResult<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        let mut tries = 1;
        loop {
            let err = match attempt().await {
                Ok(value) => return Ok(value),
                Err(Failure::Store(e)) => return Err(e),
                Err(Failure::BeforeCommit(e)) if is_transient(&e) => e,
                Err(Failure::MaybeCommitted(e)) if is_rolled_back(&e) => e,
                Err(Failure::BeforeCommit(e) | Failure::MaybeCommitted(e)) => {
                    return Err(map_err(e));
                }
            };
            if tries >= MAX_ATTEMPTS {
                return Err(map_err(err));
            }
            tracing::warn!(operation = what, attempt = tries, error = %err, "retrying after a transient database error");
            tokio::time::sleep(RETRY_BACKOFF * 2u32.pow(tries - 1)).await;
            tries += 1;
        }
    }

    async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, Failure> {
        self.queries.add(1);
        Ok(self.pool.begin().await?)
    }

    async fn commit(&self, tx: sqlx::Transaction<'static, sqlx::Postgres>) -> Result<(), Failure> {
        self.queries.add(1);
        tx.commit().await.map_err(Failure::MaybeCommitted)
    }

    async fn append_once(
        &self,
        batch: &[Append],
        grouped: &GroupedBatch<'_>,
    ) -> Result<Vec<StoreResult<Seq>>, Failure> {
        let now = UnixMillis::now().0;
        let mut seqs = vec![None; batch.len()];
        let mut doc_ids = Vec::with_capacity(batch.len());
        let mut row_seqs = Vec::with_capacity(batch.len());
        let mut data: Vec<&[u8]> = Vec::with_capacity(batch.len());

        let mut tx = self.begin().await?;
        for (doc, positions) in &grouped.docs {
            // Reserves positions.len() numbers and takes the row lock that
            // serializes this document's writers until commit. No row: the
            // document was deleted (or never created); its updates are not
            // written, the other documents' are.
            // The same statement adds the updates' bytes to the stored size.
            self.queries.add(1);
            let last_seq: Option<i64> = sqlx::query_scalar(
                "UPDATE documents SET last_seq = last_seq + $2, \
                   stored_bytes = stored_bytes + $4, \
                   updated_at = GREATEST(updated_at, $3) \
                 WHERE id = $1 RETURNING last_seq",
            )
            .bind(doc.as_str())
            .bind(positions.len() as i64)
            .bind(now)
            .bind(common::batch_bytes(batch, positions))
            .fetch_optional(&mut *tx)
            .await?;
            let Some(last_seq) = last_seq else {
                continue;
            };
            for (pos, seq) in GroupedBatch::seqs_ending_at(positions, last_seq) {
                seqs[pos] = Some(seq);
                doc_ids.push(doc.as_str());
                row_seqs.push(seq.0);
                data.push(batch[pos].update.as_ref());
            }
        }
        // Every row of the batch in one statement, whatever its size.
        if !doc_ids.is_empty() {
            self.queries.add(1);
            sqlx::query(
                "INSERT INTO updates (doc_id, seq, data) \
                 SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::bytea[])",
            )
            .bind(&doc_ids)
            .bind(&row_seqs)
            .bind(&data)
            .execute(&mut *tx)
            .await?;
        }
        self.commit(tx).await?;
        Ok(common::appended(seqs))
    }

    async fn compact_once(
        &self,
        doc: &DocId,
        base: Option<Seq>,
        snapshot: &Snapshot,
    ) -> Result<CompactOutcome, Failure> {
        let mut tx = self.begin().await?;
        // The lock comes first, in its own statement. Reading the snapshot in
        // the same statement (a join) would not do: after waiting for the lock,
        // PostgreSQL re-checks only the locked row and keeps the snapshot row
        // it saw before waiting, which may be one another compactor replaced.
        self.queries.add(1);
        let last_seq: Option<i64> =
            sqlx::query_scalar("SELECT last_seq FROM documents WHERE id = $1 FOR UPDATE")
                .bind(doc.as_str())
                .fetch_optional(&mut *tx)
                .await?;
        // Compacting a deleted document must not bring it back.
        let Some(last_seq) = last_seq else {
            return Err(Failure::Store(StoreError::NotFound));
        };
        self.queries.add(1);
        let current: Option<i64> =
            sqlx::query_scalar("SELECT upto FROM snapshots WHERE doc_id = $1")
                .bind(doc.as_str())
                .fetch_optional(&mut *tx)
                .await?;
        if !common::compaction_allowed(current.map(Seq), base, Seq(last_seq), snapshot)
            .map_err(Failure::Store)?
        {
            return Ok(CompactOutcome::Superseded);
        }
        self.queries.add(3);
        sqlx::query(
            "INSERT INTO snapshots (doc_id, upto, data, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (doc_id) DO UPDATE SET \
               upto = EXCLUDED.upto, data = EXCLUDED.data, created_at = EXCLUDED.created_at",
        )
        .bind(doc.as_str())
        .bind(snapshot.upto.0)
        .bind(snapshot.data.as_ref())
        .bind(UnixMillis::now().0)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM updates WHERE doc_id = $1 AND seq <= $2")
            .bind(doc.as_str())
            .bind(snapshot.upto.0)
            .execute(&mut *tx)
            .await?;
        // Recounted rather than adjusted: the rows left are the few appended
        // since the snapshot was read, and a recount can't drift. The row
        // lock taken above keeps appends out until commit, so the sum sees
        // every row there is.
        sqlx::query(
            "UPDATE documents SET stored_bytes = $2 + \
               COALESCE((SELECT SUM(octet_length(data)) FROM updates WHERE doc_id = $1), 0) \
             WHERE id = $1",
        )
        .bind(doc.as_str())
        .bind(snapshot.data.len() as i64)
        .execute(&mut *tx)
        .await?;
        self.commit(tx).await?;
        Ok(CompactOutcome::Compacted)
    }

    async fn rows_after(&self, doc: &DocId, after: Seq) -> StoreResult<StoredDoc> {
        // One statement, hence one MVCC snapshot: two separate reads under
        // READ COMMITTED could straddle a compaction and miss the rows it
        // folded into a snapshot we had not read.
        let rows = self
            .retrying("load", || async {
                self.queries.add(1);
                let rows: Vec<(i64, i64, Vec<u8>)> = sqlx::query_as(
                    "SELECT 1::bigint AS kind, upto AS seq, data FROM snapshots WHERE doc_id = $1 AND upto > $2 \
                     UNION ALL \
                     SELECT 2::bigint AS kind, seq, data FROM updates WHERE doc_id = $1 AND seq > $2 \
                     ORDER BY 1, 2",
                )
                .bind(doc.as_str())
                .bind(after.0)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows)
            })
            .await?;
        common::stored_doc(rows)
    }
}

#[async_trait::async_trait]
impl DocStore for PgStore {
    async fn append(&self, batch: &[Append]) -> StoreResult<Vec<StoreResult<Seq>>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let grouped = GroupedBatch::new(batch);
        self.retrying("append", || self.append_once(batch, &grouped))
            .await
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
        self.retrying("compact", || self.compact_once(doc, base, &snapshot))
            .await
    }

    async fn create_document(&self, id: &DocId, title: &str) -> StoreResult<DocumentMeta> {
        let row = self
            .retrying("create_document", || async {
                self.queries.add(1);
                sqlx::query_as::<_, (String, String, i64, i64)>(
                    "INSERT INTO documents (id, title, created_at, updated_at) VALUES ($1, $2, $3, $3) \
                     ON CONFLICT (id) DO NOTHING \
                     RETURNING id, title, created_at, updated_at",
                )
                .bind(id.as_str())
                .bind(title)
                .bind(UnixMillis::now().0)
                .fetch_optional(&self.pool)
                .await
                .map_err(Failure::MaybeCommitted)
            })
            .await?;
        let (id, title, created_at, updated_at) = row.ok_or(StoreError::AlreadyExists)?;
        common::document_meta(id, title, created_at, updated_at)
    }

    async fn document(&self, id: &DocId) -> StoreResult<Option<DocumentMeta>> {
        let row = self
            .retrying("document", || async {
                self.queries.add(1);
                let row: Option<(String, String, i64, i64)> = sqlx::query_as(
                    "SELECT id, title, created_at, updated_at FROM documents WHERE id = $1",
                )
                .bind(id.as_str())
                .fetch_optional(&self.pool)
                .await?;
                Ok(row)
            })
            .await?;
        row.map(|(id, title, created_at, updated_at)| {
            common::document_meta(id, title, created_at, updated_at)
        })
        .transpose()
    }

    async fn list_documents(&self, query: &ListQuery) -> StoreResult<Vec<DocumentMeta>> {
        let pattern = query
            .title_contains
            .as_deref()
            .map(common::contains_pattern);
        let limit = query.limit.map(i64::from);
        let rows = self
            .retrying("list_documents", || async {
                self.queries.add(1);
                // ILIKE folds case by the database's locale, non-ASCII
                // letters included. `LIMIT NULL` means no limit.
                let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(
                    "SELECT id, title, created_at, updated_at FROM documents \
                     WHERE $1::text IS NULL OR title ILIKE $1 ESCAPE '\\' \
                     ORDER BY updated_at DESC, id LIMIT $2",
                )
                .bind(pattern.as_deref())
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows)
            })
            .await?;
        rows.into_iter()
            .map(|(id, title, created_at, updated_at)| {
                common::document_meta(id, title, created_at, updated_at)
            })
            .collect()
    }

    async fn rename_document(&self, id: &DocId, title: &str) -> StoreResult<DocumentMeta> {
        let row = self
            .retrying("rename_document", || async {
                self.queries.add(1);
                sqlx::query_as::<_, (String, String, i64, i64)>(
                    "UPDATE documents SET title = $2, updated_at = GREATEST(updated_at, $3) WHERE id = $1 \
                     RETURNING id, title, created_at, updated_at",
                )
                .bind(id.as_str())
                .bind(title)
                .bind(UnixMillis::now().0)
                .fetch_optional(&self.pool)
                .await
                .map_err(Failure::MaybeCommitted)
            })
            .await?;
        let (id, title, created_at, updated_at) = row.ok_or(StoreError::NotFound)?;
        common::document_meta(id, title, created_at, updated_at)
    }

    async fn delete_document(&self, id: &DocId) -> StoreResult<()> {
        // The log and the snapshot go with the row (ON DELETE CASCADE), in
        // this one statement's implicit transaction. Taking the row lock, it
        // waits for an append or compaction of the document in flight.
        let deleted = self
            .retrying("delete_document", || async {
                self.queries.add(1);
                sqlx::query("DELETE FROM documents WHERE id = $1")
                    .bind(id.as_str())
                    .execute(&self.pool)
                    .await
                    .map(|r| r.rows_affected())
                    .map_err(Failure::MaybeCommitted)
            })
            .await?;
        if deleted == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn stored_bytes(&self, id: &DocId) -> StoreResult<Option<u64>> {
        let bytes = self
            .retrying("stored_bytes", || async {
                self.queries.add(1);
                let bytes: Option<i64> =
                    sqlx::query_scalar("SELECT stored_bytes FROM documents WHERE id = $1")
                        .bind(id.as_str())
                        .fetch_optional(&self.pool)
                        .await?;
                Ok(bytes)
            })
            .await?;
        Ok(bytes.map(common::unsigned))
    }

    async fn account_usage(&self, owner: &UserId) -> StoreResult<AccountUsage> {
        let (documents, bytes) = self
            .retrying("account_usage", || async {
                self.queries.add(1);
                // SUM of BIGINT is NUMERIC in PostgreSQL, which the driver
                // would not read as an i64.
                let row: (i64, i64) = sqlx::query_as(
                    "SELECT COUNT(*), COALESCE(SUM(stored_bytes), 0)::bigint \
                     FROM documents WHERE owner_id = $1",
                )
                .bind(owner.as_str())
                .fetch_one(&self.pool)
                .await?;
                Ok(row)
            })
            .await?;
        Ok(common::account_usage(documents, bytes))
    }

    fn queries_executed(&self) -> u64 {
        self.queries.get()
    }

    async fn ping(&self) -> StoreResult<()> {
        // Not retried: readiness should see the outage, not hide it.
        self.queries.add(1);
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }
}

fn is_plain_identifier(name: &str) -> bool {
    let mut bytes = name.bytes();
    let starts_well = bytes
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b == b'_');
    starts_well
        && name.len() <= 63
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn sqlstate(e: &sqlx::Error) -> Option<String> {
    e.as_database_error()
        .and_then(|db| db.code())
        .map(|c| c.into_owned())
}

/// The server reports that it rolled the transaction back and a new attempt
/// may succeed: serialization failure or deadlock.
fn is_rolled_back(e: &sqlx::Error) -> bool {
    matches!(sqlstate(e).as_deref(), Some("40001" | "40P01"))
}

/// The connection failed or the server is going away (class 08 connection
/// exceptions; 57P01–57P03 shutdown and restart; 53300 too many connections).
fn is_connection_failure(e: &sqlx::Error) -> bool {
    common::is_connection_error(e)
        || sqlstate(e).is_some_and(|code| {
            code.starts_with("08") || matches!(code.as_str(), "57P01" | "57P02" | "57P03" | "53300")
        })
}

/// Worth another attempt when nothing can have been committed. A pool timeout
/// is not: the attempt already waited for a connection as long as we allow.
fn is_transient(e: &sqlx::Error) -> bool {
    is_rolled_back(e)
        || (is_connection_failure(e)
            && !matches!(e, sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed))
}

/// 53100 `disk_full`: the database server's disk has no room for the write.
fn map_err(e: sqlx::Error) -> StoreError {
    if is_connection_failure(&e) {
        StoreError::Unavailable(e.to_string())
    } else if sqlstate(&e).as_deref() == Some("53100") {
        StoreError::Full(e.to_string())
    } else {
        StoreError::Backend(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_plain_identifiers() {
        assert!(is_plain_identifier("quire"));
        assert!(is_plain_identifier("_t_0123abc"));
        assert!(!is_plain_identifier(""));
        assert!(!is_plain_identifier("0abc"));
        assert!(!is_plain_identifier("Quire"));
        assert!(!is_plain_identifier("a; DROP SCHEMA public"));
        assert!(!is_plain_identifier(&"a".repeat(64)));
    }
}

crate::auth::impl_auth_store!(PgStore, db = sqlx::Postgres, read = pool, write = pool);
