//! The SQLite store's own settings and failure handling; the behaviour it
//! shares with PostgreSQL is in the conformance suite.

use super::*;
use sqlx::AssertSqlSafe;

/// A per-connection setting, read back from a connection of `pool`.
async fn pragma(pool: &SqlitePool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.expect(sql)
}

#[tokio::test]
async fn connections_are_durable_and_readers_read_only() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let opts = SqliteOptions {
        max_readers: 2,
        busy_timeout: Duration::from_millis(1500),
    };
    let store = SqliteStore::open(&dir.path().join("q.db"), opts)
        .await
        .expect("open");
    for pool in [&store.writer, &store.readers] {
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(pool)
            .await
            .expect("journal_mode");
        assert_eq!(mode, "wal");
        // 2 = FULL: the WAL is synced at every commit.
        assert_eq!(pragma(pool, "PRAGMA synchronous").await, 2);
        assert_eq!(pragma(pool, "PRAGMA foreign_keys").await, 1);
        assert_eq!(pragma(pool, "PRAGMA busy_timeout").await, 1500);
    }
    assert_eq!(pragma(&store.writer, "PRAGMA query_only").await, 0);
    assert_eq!(pragma(&store.readers, "PRAGMA query_only").await, 1);
}

/// A write that fails because the database is full must leave the single
/// writer usable once there is room again. `max_page_count` makes SQLite
/// answer `SQLITE_FULL` exactly as a full disk does, without needing one.
#[tokio::test]
async fn the_writer_recovers_from_a_full_database() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let store = SqliteStore::open(&dir.path().join("q.db"), SqliteOptions::default())
        .await
        .expect("open");
    let doc = DocId::new("full").unwrap();
    store.create_document(&doc, "Full").await.unwrap();
    let append = |bytes: usize| Append {
        doc: doc.clone(),
        update: bytes::Bytes::from(vec![7u8; bytes]),
    };
    store.append(&[append(100)]).await.expect("room at first");

    // The writer pool's one connection: the limit applies to it.
    let pages = pragma(&store.writer, "PRAGMA page_count").await;
    sqlx::query(AssertSqlSafe(format!(
        "PRAGMA max_page_count = {}",
        pages + 1
    )))
    .execute(&store.writer)
    .await
    .unwrap();
    match store.append(&[append(64 * 1024)]).await {
        Err(StoreError::Full(_)) => {}
        other => panic!("expected a full database, got {other:?}"),
    }

    // Room again (on whichever connection is the writer now).
    sqlx::query("PRAGMA max_page_count = 4294967294")
        .execute(&store.writer)
        .await
        .unwrap();
    store
        .append(&[append(64 * 1024)])
        .await
        .expect("writes work again once there is room");
    let stored = store.load(&doc).await.unwrap();
    assert_eq!(
        stored.tail.len(),
        2,
        "the refused writes left nothing behind"
    );
}
