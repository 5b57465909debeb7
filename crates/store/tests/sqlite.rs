//! [`SqliteStore`] against the shared conformance suite, each test on a new
//! database file in its own temporary folder, plus what only SQLite has.

use std::sync::Arc;

use quire_store::conformance::Harness;
use quire_store::{Append, DocStore, SqliteOptions, SqliteStore, Store};
use quire_types::DocId;

struct SqliteHarness {
    dir: tempfile::TempDir,
}

impl SqliteHarness {
    fn path(&self) -> std::path::PathBuf {
        // A folder that doesn't exist yet: open must create it.
        self.dir.path().join("data").join("quire.db")
    }
}

#[async_trait::async_trait]
impl Harness for SqliteHarness {
    async fn open(&self) -> Arc<dyn Store> {
        let store = SqliteStore::open(&self.path(), SqliteOptions::default())
            .await
            .expect("opening the SQLite store");
        Arc::new(store)
    }
}

async fn fresh() -> SqliteHarness {
    SqliteHarness {
        dir: tempfile::tempdir().expect("temporary folder"),
    }
}

quire_store::doc_store_conformance!(fresh());

#[tokio::test]
async fn queries_are_counted_and_idle_costs_nothing() {
    let h = fresh().await;
    let store = SqliteStore::open(&h.path(), SqliteOptions::default())
        .await
        .expect("open");
    let idle = store.queries_executed();
    tokio::task::yield_now().await;
    assert_eq!(
        store.queries_executed(),
        idle,
        "the store issued statements on its own"
    );

    let d = DocId::new("counted").unwrap();
    store.create_document(&d, "Counted").await.expect("create");
    let idle = store.queries_executed();
    store
        .append(&[Append {
            doc: d.clone(),
            update: "x".into(),
        }])
        .await
        .expect("append");
    let after_append = store.queries_executed();
    // BEGIN, the sequence update, one row, COMMIT.
    assert_eq!(after_append - idle, 4);
    let clone = store.clone();
    clone.load(&d).await.expect("load");
    assert_eq!(
        store.queries_executed(),
        after_append + 1,
        "clones share one counter"
    );
}

#[tokio::test]
async fn opening_twice_shares_the_file() {
    // Two stores on one file stand for two processes: the second's writer
    // waits on the first's lock (busy_timeout) instead of failing.
    let h = fresh().await;
    let first = h.open().await;
    let second = h.open().await;
    let d = DocId::new("shared").unwrap();
    first.create_document(&d, "Shared").await.expect("create");
    let batch = [Append {
        doc: d.clone(),
        update: "a".into(),
    }];
    let (x, y) = tokio::join!(first.append(&batch), second.append(&batch));
    let mut seqs = vec![
        x.expect("first append")[0].as_ref().expect("numbered").0,
        y.expect("second append")[0].as_ref().expect("numbered").0,
    ];
    seqs.sort();
    assert_eq!(seqs, vec![1, 2]);
    assert_eq!(second.load(&d).await.expect("load").tail.len(), 2);
}

#[tokio::test]
async fn upgrading_sizes_existing_documents() {
    // A database from before stored sizes existed (migrations 1 and 2),
    // holding a compacted document, an empty one and binary rows.
    let h = fresh().await;
    std::fs::create_dir_all(h.path().parent().unwrap()).unwrap();
    let connect = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(h.path())
        .create_if_missing(true);
    let old = sqlx::SqlitePool::connect_with(connect).await.expect("open");
    sqlx::migrate!("./migrations/sqlite")
        .run_to(2, &old)
        .await
        .expect("the old schema");
    sqlx::query(
        "INSERT INTO documents (id, title, created_at, updated_at, last_seq) \
         VALUES ('old', 'Old', 1, 1, 3), ('empty', 'Empty', 1, 1, 0)",
    )
    .execute(&old)
    .await
    .expect("documents");
    // NUL bytes: a size counted as text would stop at the first.
    sqlx::query(
        "INSERT INTO updates (doc_id, seq, data) VALUES ('old', 2, $1), ('old', 3, $2); \
         INSERT INTO snapshots (doc_id, upto, data, created_at) VALUES ('old', 1, $3, 1)",
    )
    .bind(&b"ab\0d"[..])
    .bind(vec![0u8; 300])
    .bind(vec![0xffu8; 1000])
    .execute(&old)
    .await
    .expect("rows");
    old.close().await;

    let store = h.open().await;
    let size = |id: &'static str| {
        let store = store.clone();
        async move {
            store
                .stored_bytes(&DocId::new(id).unwrap())
                .await
                .expect("stored bytes")
        }
    };
    assert_eq!(size("old").await, Some(1000 + 4 + 300));
    assert_eq!(size("empty").await, Some(0));
    // And it is kept from there on.
    let d = DocId::new("old").unwrap();
    store
        .append(&[Append {
            doc: d.clone(),
            update: "xyz".into(),
        }])
        .await
        .expect("append");
    assert_eq!(size("old").await, Some(1307));
}
