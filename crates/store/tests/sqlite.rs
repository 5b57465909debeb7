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
