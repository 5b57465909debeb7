//! [`PgStore`] against the shared conformance suite, each test in a new schema
//! of the test database, with two stores ("nodes") sharing it for the
//! concurrent checks; plus what only PostgreSQL has.
//!
//! The database is `postgres://postgres@127.0.0.1:5432/test` unless
//! `QUIRE_TEST_DATABASE_URL` says otherwise. The user is spelled out because
//! without one the driver falls back to the OS user name, which test machines
//! (and CI) may not expose. If it can't be reached these
//! tests fail rather than skip: CI starts PostgreSQL, and a silently skipped
//! backend would hide exactly the multi-node bugs this suite exists for.

use std::sync::Arc;

use quire_store::conformance::Harness;
use quire_store::{Append, DocStore, PgOptions, PgStore, Store, StoreError};
use quire_types::{DocId, Seq};
use sqlx::{Connection, Executor};

fn database_url() -> String {
    std::env::var("QUIRE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

struct PgHarness {
    url: String,
    schema: String,
}

impl PgHarness {
    fn options(&self) -> PgOptions {
        PgOptions {
            schema: Some(self.schema.clone()),
            max_connections: 4,
            ..PgOptions::default()
        }
    }

    async fn connect(&self) -> PgStore {
        PgStore::connect(&self.url, self.options()).await.unwrap_or_else(|e| {
            panic!(
                "PostgreSQL at {} is required by these tests (set QUIRE_TEST_DATABASE_URL to use another): {e}",
                self.url
            )
        })
    }
}

#[async_trait::async_trait]
impl Harness for PgHarness {
    async fn open(&self) -> Arc<dyn Store> {
        Arc::new(self.connect().await)
    }

    fn nodes(&self) -> usize {
        2
    }
}

/// The schema goes when the harness does, also while a failing test unwinds
/// (an explicit cleanup at the end of a test body never ran after a failed
/// assertion). Blocking, on a thread of its own: drops run inside the test's
/// runtime.
impl Drop for PgHarness {
    fn drop(&mut self) {
        let url = self.url.clone();
        let drop = format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema);
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let mut conn = sqlx::PgConnection::connect(&url).await?;
                conn.execute(sqlx::AssertSqlSafe(drop)).await?;
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
            })
        })
        .join();
        // Never a panic here: it would abort a test that is already failing.
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test schema {}: {dropped:?}", self.schema);
        }
    }
}

async fn fresh() -> PgHarness {
    PgHarness {
        url: database_url(),
        schema: format!("quire_test_{}", uuid::Uuid::new_v4().simple()),
    }
}

quire_store::doc_store_conformance!(fresh());

fn one_update(d: &DocId) -> [Append; 1] {
    [Append {
        doc: d.clone(),
        update: "x".into(),
    }]
}

#[tokio::test]
async fn queries_are_counted_and_idle_costs_nothing() {
    let h = fresh().await;
    let store = h.connect().await;
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
    store.append(&one_update(&d)).await.expect("append");
    // BEGIN, the sequence update, the rows, COMMIT.
    assert_eq!(store.queries_executed() - idle, 4);
    let before = store.queries_executed();
    store.clone().load(&d).await.expect("load");
    assert_eq!(
        store.queries_executed(),
        before + 1,
        "clones share one counter"
    );
}

#[tokio::test]
async fn schemas_isolate_stores() {
    let (one, two) = (fresh().await, fresh().await);
    let (a, b) = (one.connect().await, two.connect().await);
    let d = DocId::new("isolated").unwrap();
    a.create_document(&d, "Isolated").await.expect("create");
    a.append(&one_update(&d)).await.expect("append");
    assert!(b.load(&d).await.expect("load").tail.is_empty());
    assert_eq!(b.document(&d).await.expect("document"), None);
}

#[tokio::test]
async fn unreachable_database_is_unavailable() {
    // Port 1 on loopback: nothing listens, the connection is refused at once.
    let result = PgStore::connect("postgres://127.0.0.1:1/test", PgOptions::default()).await;
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "{result:?}"
    );
}

#[tokio::test]
async fn unsafe_schema_names_are_refused() {
    let opts = PgOptions {
        schema: Some("x; DROP SCHEMA public".to_string()),
        ..PgOptions::default()
    };
    let result = PgStore::connect(&database_url(), opts).await;
    assert!(matches!(result, Err(StoreError::Backend(_))), "{result:?}");
}

#[tokio::test]
async fn a_stuck_lock_times_out_instead_of_hanging() {
    // Another session holds the document's row lock and never lets go; an
    // append must give up at the statement timeout, not wait forever.
    // Not much shorter than a second: connecting migrates, and sqlx's
    // migration lock is per database, so this waits there for the other
    // tests' schemas being migrated at the same time, under the same limit.
    let h = fresh().await;
    let store = PgStore::connect(
        &h.url,
        PgOptions {
            statement_timeout: std::time::Duration::from_millis(1000),
            ..h.options()
        },
    )
    .await
    .expect("connect");
    let d = DocId::new("locked").unwrap();
    store.create_document(&d, "Locked").await.expect("create");
    store.append(&one_update(&d)).await.expect("append");

    let mut holder = sqlx::PgConnection::connect(&h.url).await.expect("connect");
    holder
        .execute(sqlx::AssertSqlSafe(format!(
            "BEGIN; SELECT * FROM {}.documents WHERE id = 'locked' FOR UPDATE",
            h.schema
        )))
        .await
        .expect("take the row lock");
    let result = store.append(&one_update(&d)).await;
    assert!(
        result.is_err(),
        "append went through a held row lock: {result:?}"
    );
    holder.execute("ROLLBACK").await.expect("release");
    let got = store.append(&one_update(&d)).await.expect("append");
    assert_eq!(*got[0].as_ref().expect("numbered"), Seq(2));
}

#[tokio::test]
async fn a_single_node_excludes_every_other_node() {
    use quire_store::NodeRole;
    let h = fresh().await;
    let (a, b) = (h.connect().await, h.connect().await);
    let single = a
        .claim_node_role(NodeRole::Single)
        .await
        .expect("first claim");
    assert!(b.claim_node_role(NodeRole::Single).await.is_err());
    assert!(b.claim_node_role(NodeRole::Clustered).await.is_err());
    // Another schema of the same database is another cluster.
    let other = fresh().await;
    let c = other.connect().await;
    let _elsewhere = c
        .claim_node_role(NodeRole::Single)
        .await
        .expect("other schema");
    drop(single);
    let one = b
        .claim_node_role(NodeRole::Clustered)
        .await
        .expect("clustered after release");
    let _two = a
        .claim_node_role(NodeRole::Clustered)
        .await
        .expect("clustered nodes share");
    assert!(a.claim_node_role(NodeRole::Single).await.is_err());
    drop(one);
}

#[tokio::test]
async fn upgrading_sizes_existing_documents() {
    // A schema from before stored sizes existed (migrations 1 and 2),
    // holding a compacted document, an empty one and binary rows.
    use std::str::FromStr;
    let h = fresh().await;
    let mut admin = sqlx::PgConnection::connect(&h.url).await.expect("connect");
    admin
        .execute(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {}", h.schema)))
        .await
        .expect("schema");
    let connect = sqlx::postgres::PgConnectOptions::from_str(&h.url)
        .expect("url")
        .options([("search_path", h.schema.as_str())]);
    let old = sqlx::PgPool::connect_with(connect).await.expect("pool");
    sqlx::migrate!("./migrations/postgres")
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
    sqlx::query("INSERT INTO updates (doc_id, seq, data) VALUES ('old', 2, $1), ('old', 3, $2)")
        .bind(&b"ab\0d"[..])
        .bind(vec![0u8; 300])
        .execute(&old)
        .await
        .expect("rows");
    sqlx::query("INSERT INTO snapshots (doc_id, upto, data, created_at) VALUES ('old', 1, $1, 1)")
        .bind(vec![0xffu8; 1000])
        .execute(&old)
        .await
        .expect("snapshot");
    old.close().await;

    let store = h.connect().await;
    let old_doc = DocId::new("old").unwrap();
    assert_eq!(
        store.stored_bytes(&old_doc).await.expect("size"),
        Some(1000 + 4 + 300)
    );
    assert_eq!(
        store
            .stored_bytes(&DocId::new("empty").unwrap())
            .await
            .expect("size"),
        Some(0)
    );
    store.append(&one_update(&old_doc)).await.expect("append");
    assert_eq!(
        store.stored_bytes(&old_doc).await.expect("size"),
        Some(1305)
    );
}
