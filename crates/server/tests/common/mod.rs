//! Test support: an in-process server on port 0 and a minimal Yjs client
//! speaking the y-websocket protocol through a real socket.
//!
//! Every server has a signed-in owner ([`TestServer::owner`]), signed up
//! through the real API. [`TestClient::connect`] and [`raw_socket`] connect as
//! the owner of the server the URL points at (its cookie and an `Origin`
//! header on the upgrade), creating the named document through the API first
//! if it does not exist yet, so that tests written before accounts existed
//! run authenticated for real. Tests about access use [`TestUser`]s and
//! [`TestClient::connect_as`], which does neither.
#![allow(dead_code)]

mod process;
#[allow(unused_imports)]
pub use process::*;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use quire_protocol::{
    AwarenessUpdate, Message, SyncMessage, encode_awareness, encode_awareness_update,
    encode_sync_step1, encode_sync_step2, encode_update,
};
use quire_server::{AppState, ServeConfig};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{Doc, ReadTxn, StateVector, Transact, TransactionMut, Update};

pub const TIMEOUT: Duration = Duration::from_secs(20);

/// Polls `cond` until it holds or the timeout passes (then panics with `what`).
pub async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    eventually(what, TIMEOUT, || std::future::ready(cond())).await
}

/// Polls the async `cond` until it holds, or panics with `what` once `limit`
/// has passed: the one polling loop of these tests.
pub async fn eventually<F, Fut>(what: &str, limit: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !cond().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(TIMEOUT, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// The owner every test server signs up (or, on a restarted data folder,
/// signs in).
pub const OWNER_EMAIL: &str = "owner@quire.test";
pub const PASSWORD: &str = "correct horse battery staple";

/// The operator token every test server's `/metrics` asks for.
pub const METRICS_TOKEN: &str = "quire-test-metrics-token";

/// A signed-in account: its cookies, as a browser would hold them.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub addr: SocketAddr,
    pub id: String,
    pub email: String,
    pub name: String,
    /// `name=value` of the access cookie.
    pub access: String,
    /// `name=value` of the refresh cookie.
    pub refresh: String,
}

/// The owners of running test servers, by address (see the module docs).
static OWNERS: Mutex<Option<HashMap<SocketAddr, TestUser>>> = Mutex::new(None);

pub fn owner_of(addr: SocketAddr) -> Option<TestUser> {
    OWNERS
        .lock()
        .unwrap()
        .as_ref()
        .and_then(|m| m.get(&addr).cloned())
}

/// Makes `user` the account that plain [`TestClient::connect`] calls use for
/// their server.
pub fn register_owner(user: &TestUser) {
    OWNERS
        .lock()
        .unwrap()
        .get_or_insert_with(HashMap::new)
        .insert(user.addr, user.clone());
}

pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// `name=value` of the cookie called `name` among a response's Set-Cookie
/// headers (its full header in `.1`).
pub fn set_cookie(resp: &reqwest::Response, prefix: &str) -> Option<(String, String)> {
    resp.headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| {
            v.contains(prefix)
                && v.split(';')
                    .next()
                    .is_some_and(|kv| kv.split('=').next().unwrap_or("").ends_with(prefix))
        })
        .map(|v| {
            (
                v.split(';').next().unwrap().trim().to_string(),
                v.to_string(),
            )
        })
}

impl TestUser {
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Signs up through the API (sign-in if the account exists).
    pub async fn sign_up(addr: SocketAddr, email: &str, name: &str) -> TestUser {
        let client = http_client();
        let resp = client
            .post(format!("http://{addr}/api/auth/signup"))
            .header("Origin", format!("http://{addr}"))
            .json(&serde_json::json!({ "email": email, "password": PASSWORD, "name": name }))
            .send()
            .await
            .expect("sign-up request");
        if resp.status() == reqwest::StatusCode::CONFLICT {
            return Self::sign_in(addr, email).await;
        }
        assert_eq!(
            resp.status(),
            reqwest::StatusCode::CREATED,
            "sign-up of {email}"
        );
        user_from_response(addr, resp, email).await
    }

    pub async fn sign_in(addr: SocketAddr, email: &str) -> TestUser {
        let resp = http_client()
            .post(format!("http://{addr}/api/auth/login"))
            .header("Origin", format!("http://{addr}"))
            .json(&serde_json::json!({ "email": email, "password": PASSWORD }))
            .send()
            .await
            .expect("sign-in request");
        assert_eq!(resp.status(), reqwest::StatusCode::OK, "sign-in of {email}");
        user_from_response(addr, resp, email).await
    }

    /// A request carrying this user's access cookie and a same-origin
    /// `Origin`, as the web app sends it.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        http_client()
            .request(method, self.url(path))
            .header("Cookie", &self.access)
            .header("Origin", self.origin())
    }

    /// Creates a document (with a chosen id) and returns its id.
    pub async fn create_document(&self, id: &str) -> String {
        let resp = self
            .request(reqwest::Method::POST, "/api/documents")
            .json(&serde_json::json!({ "id": id, "title": id }))
            .send()
            .await
            .unwrap();
        assert!(
            resp.status() == reqwest::StatusCode::CREATED
                || resp.status() == reqwest::StatusCode::CONFLICT,
            "creating {id}: {}",
            resp.status()
        );
        id.to_string()
    }

    /// Shares a document with `email` as `role`.
    pub async fn share(&self, doc: &str, email: &str, role: &str) {
        let resp = self
            .request(
                reqwest::Method::POST,
                &format!("/api/documents/{doc}/shares"),
            )
            .json(&serde_json::json!({ "email": email, "role": role }))
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            reqwest::StatusCode::OK,
            "sharing {doc} with {email}"
        );
    }

    /// The WebSocket handshake request for `url`, with this user's cookie and
    /// origin.
    pub fn ws_request(
        &self,
        url: &str,
    ) -> tokio_tungstenite::tungstenite::handshake::client::Request {
        let mut req = url.into_client_request().unwrap();
        req.headers_mut()
            .insert("Cookie", self.access.parse().unwrap());
        req.headers_mut()
            .insert("Origin", self.origin().parse().unwrap());
        req
    }
}

/// Builds the user from a sign-up or sign-in response (cookies from the
/// headers, identity from the JSON body).
pub async fn user_from_response(
    addr: SocketAddr,
    resp: reqwest::Response,
    email: &str,
) -> TestUser {
    let access = set_cookie(&resp, "quire_access");
    let refresh = set_cookie(&resp, "quire_refresh");
    let body: serde_json::Value = resp.json().await.unwrap_or_else(|e| panic!("{email}: {e}"));
    TestUser {
        addr,
        id: body["user"]["id"].as_str().unwrap().to_string(),
        email: body["user"]["email"].as_str().unwrap().to_string(),
        name: body["user"]["name"].as_str().unwrap().to_string(),
        access: access.expect("an access cookie").0,
        refresh: refresh.expect("a refresh cookie").0,
    }
}

/// The document id in a `ws://host/ws/{doc}?...` URL.
fn doc_of(url: &str) -> &str {
    let path = url.split("/ws/").nth(1).unwrap_or("");
    path.split('?').next().unwrap_or("")
}

fn addr_of(url: &str) -> Option<SocketAddr> {
    let rest = url.split("://").nth(1)?;
    rest.split('/').next()?.parse().ok()
}

/// The owner's handshake for `url`, creating the document first if needed.
async fn owner_request(url: &str) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    let Some(owner) = addr_of(url).and_then(owner_of) else {
        return url.into_client_request().unwrap();
    };
    let doc = doc_of(url);
    if quire_types::DocId::new(doc).is_ok() {
        owner.create_document(doc).await;
    }
    owner.ws_request(url)
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub state: AppState,
    pub data_dir: PathBuf,
    /// The signed-in account that plain `TestClient::connect` uses.
    pub owner: TestUser,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    /// The data folder (and schema) this server made, unless `stop` handed
    /// it on for a restart.
    _tmp: Option<TestDataDir>,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut ServeConfig)) -> TestServer {
        let tmp = TestDataDir::new();
        let dir = tmp.path().to_path_buf();
        let mut s = Self::start_in(&dir, tweak).await;
        s._tmp = Some(tmp);
        s
    }

    /// Starts on an existing data folder (for restart tests).
    pub async fn start_in(dir: &Path, tweak: impl FnOnce(&mut ServeConfig)) -> TestServer {
        let mut config = ServeConfig::defaults();
        config.data_dir = dir.to_path_buf();
        config.listen = "127.0.0.1:0".parse().unwrap();
        // Test-only cheap Argon2: tests create many accounts.
        config.insecure_fast_password_hashing = true;
        config.metrics_token = Some(quire_server::ops::MetricsToken::parse(METRICS_TOKEN).unwrap());
        if use_postgres() {
            let schema = pg_schema_for(dir);
            config.database_url = Some(schema_database_url(&schema));
            config.database_schema = Some(schema);
            config.single_node = true;
        }
        tweak(&mut config);
        let listener = tokio::net::TcpListener::bind(config.listen).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = AppState::open(config).await.unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let st = state.clone();
        let task = tokio::spawn(async move {
            quire_server::serve(listener, st, async move {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        let owner = if state.auth_config.signup_open {
            TestUser::sign_up(addr, OWNER_EMAIL, "Owner").await
        } else {
            // As `quire user add` would, when sign-up is closed.
            let made = quire_server::auth_api::create_account(
                state.auth.as_ref(),
                OWNER_EMAIL,
                "Owner",
                PASSWORD.into(),
                true,
            )
            .await;
            assert!(
                made.is_ok() || matches!(made, Err(quire_server::error::ApiError::Conflict(_)))
            );
            TestUser::sign_in(addr, OWNER_EMAIL).await
        };
        register_owner(&owner);
        TestServer {
            addr,
            state,
            owner,
            data_dir: dir.to_path_buf(),
            shutdown: Some(tx),
            task: Some(task),
            _tmp: None,
        }
    }

    pub fn ws_url(&self, doc: &str) -> String {
        format!("ws://{}/ws/{doc}", self.addr)
    }

    pub fn http(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `/metrics`, fetched as an operator would (with the bearer token).
    pub async fn metrics(&self) -> String {
        let resp = http_client()
            .get(self.http("/metrics"))
            .bearer_auth(METRICS_TOKEN)
            .send()
            .await
            .expect("metrics request");
        assert_eq!(resp.status(), reqwest::StatusCode::OK, "GET /metrics");
        resp.text().await.unwrap()
    }

    /// The sum of a metric's series on `/metrics` whose labels contain
    /// `labels` (e.g. `reason="write_timeout"`; empty for all); 0 if none.
    pub async fn metric(&self, name: &str, labels: &str) -> f64 {
        metric_sum(&self.metrics().await, name, labels)
    }

    /// Signs up another account on this server.
    pub async fn user(&self, email: &str, name: &str) -> TestUser {
        TestUser::sign_up(self.addr, email, name).await
    }

    /// Graceful shutdown; returns the data folder's guard (with its schema)
    /// so the data survives for a restart.
    pub async fn stop(mut self) -> Option<TestDataDir> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            within("server shutdown", task).await.unwrap();
        }
        self._tmp.take()
    }
}

/// The sum of a metric's series in Prometheus text whose labels contain
/// `labels` (empty for all); 0 if there are none.
pub fn metric_sum(text: &str, name: &str, labels: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.starts_with(name) && matches!(l.as_bytes().get(name.len()), Some(b' ' | b'{'))
        })
        .filter(|l| labels.is_empty() || l.contains(labels))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A temporary data folder, and the PostgreSQL schema that stands in for it
/// if one was chosen ([`pg_schema_for`] writes its name into the folder).
/// Dropping it removes both, also while a failing test unwinds, so the
/// schema lives exactly as long as the folder it stands for: across a
/// restart (whoever holds the guard), and for servers started as processes.
pub struct TestDataDir {
    tmp: tempfile::TempDir,
}

impl TestDataDir {
    #[allow(clippy::new_without_default)]
    pub fn new() -> TestDataDir {
        TestDataDir {
            tmp: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self) -> &Path {
        self.tmp.path()
    }
}

impl Drop for TestDataDir {
    fn drop(&mut self) {
        if let Ok(schema) = std::fs::read_to_string(self.tmp.path().join(PG_SCHEMA_FILE)) {
            drop_schema(&schema);
        }
    }
}

/// Whether in-process test servers store in PostgreSQL instead of SQLite:
/// in test binaries named `*_postgres` (which include another suite's test
/// bodies, so both variants run in every `cargo nextest run`), or everywhere
/// with `QUIRE_TEST_STORE=postgres`. Decided by the binary's name at compile
/// time, so no test has to change the environment.
pub fn use_postgres() -> bool {
    env!("CARGO_CRATE_NAME").ends_with("_postgres")
        || std::env::var("QUIRE_TEST_STORE").is_ok_and(|v| v == "postgres")
}

/// The test database (PostgreSQL at 127.0.0.1:5432, database `test`, unless
/// `QUIRE_TEST_DATABASE_URL` says otherwise).
pub fn database_url() -> String {
    std::env::var("QUIRE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// The test Redis (`QUIRE_TEST_REDIS_URL`, default 127.0.0.1:6379).
pub fn redis_url() -> String {
    std::env::var("QUIRE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".to_string())
}

/// The test database, for servers using `schema`: their connections carry
/// the schema's name as `application_name`, so that [`drop_schema`] can end
/// them first.
pub fn schema_database_url(schema: &str) -> String {
    let url = database_url();
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}application_name={schema}")
}

/// A fresh schema name, unique to this test.
pub fn fresh_schema() -> String {
    format!("quire_test_{}", quire_types::NodeId::generate())
}

const PG_SCHEMA_FILE: &str = "pg-schema";

/// The PostgreSQL schema that stands in for a data folder: chosen on first
/// use and written into the folder, so a restart on the same folder finds
/// the same documents.
pub fn pg_schema_for(dir: &Path) -> String {
    let file = dir.join(PG_SCHEMA_FILE);
    match std::fs::read_to_string(&file) {
        Ok(schema) => schema,
        Err(_) => {
            let schema = fresh_schema();
            std::fs::write(&file, &schema).unwrap();
            schema
        }
    }
}

/// Flags that make a `quire serve` process store where in-process test
/// servers of this binary do (nothing for SQLite: `--data-dir` says it).
pub fn store_args(dir: &Path) -> Vec<String> {
    if !use_postgres() {
        return Vec::new();
    }
    let schema = pg_schema_for(dir);
    vec![
        "--database-url".into(),
        schema_database_url(&schema),
        "--database-schema".into(),
        schema,
        "--single-node".into(),
    ]
}

/// Opens the storage behind a (stopped) test server's data folder.
pub async fn open_store(dir: &Path) -> Arc<dyn quire_store::DocStore> {
    if use_postgres() {
        let opts = quire_store::PgOptions {
            schema: Some(pg_schema_for(dir)),
            max_connections: 2,
            ..Default::default()
        };
        Arc::new(
            quire_store::PgStore::connect(&database_url(), opts)
                .await
                .unwrap(),
        )
    } else {
        Arc::new(
            quire_store::SqliteStore::open(&dir.join("quire.db"), Default::default())
                .await
                .unwrap(),
        )
    }
}

/// Drops a test schema. Blocking (drops run in `Drop`), on a thread of its
/// own so it works inside or outside a runtime. The connections of servers
/// that used it are ended first: one may be in the middle of a transaction
/// that can't finish while this blocks its (current-thread) runtime, and
/// DROP would wait for its locks forever.
pub fn drop_schema(schema: &str) {
    let terminate = format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '{schema}' AND pid <> pg_backend_pid()"
    );
    let drop = format!("DROP SCHEMA IF EXISTS {schema} CASCADE");
    let url = database_url();
    let schema = schema.to_owned();
    let _ = std::thread::spawn(move || {
        use sqlx::{Connection, Executor};
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let dropped = async {
                let mut conn = sqlx::PgConnection::connect(&url).await?;
                conn.execute(sqlx::AssertSqlSafe(terminate)).await?;
                conn.execute(sqlx::AssertSqlSafe(drop)).await?;
                Ok::<_, sqlx::Error>(())
            };
            // Never a panic here: this runs in `Drop`, maybe while unwinding.
            if let Err(e) = dropped.await {
                eprintln!("could not drop test schema {schema}: {e}");
            }
        });
    })
    .join();
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

#[derive(Debug, Default, Clone)]
pub struct ClientState {
    pub synced: bool,
    pub acked: u64,
    pub awareness: std::collections::HashMap<u64, String>,
    pub permission_denied: Vec<String>,
    pub closed: Option<(u16, String)>,
    pub frames_received: u64,
    pub message_types: std::collections::BTreeSet<u64>,
}

/// A Yjs client: a yrs doc kept in sync over one WebSocket.
pub struct TestClient {
    pub doc: Arc<Doc>,
    pub state: watch::Receiver<ClientState>,
    out: mpsc::UnboundedSender<WsMessage>,
    pub sent_updates: u64,
    reader: tokio::task::JoinHandle<()>,
}

impl TestClient {
    pub async fn connect(url: &str) -> TestClient {
        Self::connect_with_doc(url, Doc::new()).await
    }

    pub async fn connect_with_doc(url: &str, doc: Doc) -> TestClient {
        Self::connect_shared(url, Arc::new(doc)).await
    }

    /// Connects (as the owner of the URL's server) with a document another,
    /// dead connection used: whatever it holds that the server lacks goes
    /// out in the sync handshake, as a reconnecting browser's
    /// unacknowledged edits do.
    pub async fn connect_shared(url: &str, doc: Arc<Doc>) -> TestClient {
        let req = owner_request(url).await;
        let (ws, _) = within("connect", connect_async(req))
            .await
            .expect("websocket connects");
        Self::run(ws, doc)
    }

    /// Connects as `user`, to a document that must already exist and be
    /// open to them.
    pub async fn connect_as(url: &str, user: &TestUser) -> TestClient {
        let (ws, _) = within("connect", connect_async(user.ws_request(url)))
            .await
            .expect("websocket connects");
        Self::run(ws, Arc::new(Doc::new()))
    }

    /// Connects as `user` with `doc` (a fresh one, or one a dead connection
    /// used), or says why the handshake failed: for tests whose server may
    /// refuse for a while, as it does during a storage outage.
    pub async fn try_connect_as(
        url: &str,
        user: &TestUser,
        doc: Arc<Doc>,
    ) -> Result<TestClient, tokio_tungstenite::tungstenite::Error> {
        let (ws, _) = within("connect", connect_async(user.ws_request(url))).await?;
        Ok(Self::run(ws, doc))
    }

    fn run(ws: Ws, doc: Arc<Doc>) -> TestClient {
        let (mut sink, mut stream) = ws.split();
        let (out_tx, mut out_rx) = mpsc::unbounded_channel::<WsMessage>();
        let (state_tx, state_rx) = watch::channel(ClientState::default());
        tokio::spawn(async move {
            while let Some(m) = out_rx.recv().await {
                if sink.send(m).await.is_err() {
                    break;
                }
            }
        });
        let sv = doc.transact().state_vector().encode_v1();
        let _ = out_tx.send(WsMessage::Binary(encode_sync_step1(&sv)));
        let d = doc.clone();
        let out = out_tx.clone();
        let reader = tokio::spawn(async move {
            while let Some(Ok(msg)) = stream.next().await {
                match msg {
                    WsMessage::Binary(b) => handle_frame(&d, &b, &out, &state_tx),
                    WsMessage::Close(cf) => {
                        let cf = cf
                            .map(|c| (u16::from(c.code), c.reason.to_string()))
                            .unwrap_or((1005, String::new()));
                        state_tx.send_modify(|s| s.closed = Some(cf));
                        return;
                    }
                    _ => {}
                }
            }
            state_tx.send_modify(|s| {
                if s.closed.is_none() {
                    s.closed = Some((1006, "connection lost".into()));
                }
            });
        });
        TestClient {
            doc,
            state: state_rx,
            out: out_tx,
            sent_updates: 0,
            reader,
        }
    }

    /// Makes a local change and sends it as one update message.
    pub fn edit(&mut self, f: impl FnOnce(&mut TransactionMut)) {
        let update = {
            let mut txn = self.doc.transact_mut();
            f(&mut txn);
            txn.encode_update_v1()
        };
        self.send_raw(encode_update(&update));
        self.sent_updates += 1;
    }

    pub fn send_raw(&self, frame: Bytes) {
        let _ = self.out.send(WsMessage::Binary(frame));
    }

    pub fn send_message(&self, msg: WsMessage) {
        let _ = self.out.send(msg);
    }

    pub fn set_awareness(&self, client_id: u64, clock: u64, json: &str) {
        let u = encode_awareness_update([(client_id, clock, json)].into_iter());
        self.send_raw(encode_awareness(&u));
    }

    pub fn snapshot(&self) -> ClientState {
        self.state.borrow().clone()
    }

    pub fn text(&self, name: &str) -> String {
        use yrs::GetString;
        let txn = self.doc.transact();
        txn.get_text(name)
            .map(|t| t.get_string(&txn))
            .unwrap_or_default()
    }

    pub fn state_vector(&self) -> StateVector {
        self.doc.transact().state_vector()
    }

    pub async fn wait_synced(&mut self) {
        within("synced", self.state.wait_for(|s| s.synced))
            .await
            .unwrap();
    }

    /// Waits until the sync completes (`true`) or the server closes the
    /// socket before it does (`false`).
    pub async fn synced_or_closed(&mut self) -> bool {
        let state = within(
            "synced or closed",
            self.state.wait_for(|s| s.synced || s.closed.is_some()),
        )
        .await
        .unwrap();
        state.synced
    }

    pub async fn wait_acked(&mut self, n: u64) {
        within("acked", self.state.wait_for(|s| s.acked >= n))
            .await
            .unwrap();
    }

    pub async fn wait_closed(&mut self) -> (u16, String) {
        let s = within("closed", self.state.wait_for(|s| s.closed.is_some()))
            .await
            .unwrap();
        s.closed.clone().unwrap()
    }

    pub async fn wait_text(&mut self, name: &str, expected: &str) {
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            if self.text(name) == expected {
                return;
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "text {name:?} never became {expected:?}; is {:?}",
                    self.text(name)
                );
            }
            let _ = tokio::time::timeout(Duration::from_millis(50), self.state.changed()).await;
        }
    }

    pub fn close(&self) {
        let _ = self.out.send(WsMessage::Close(None));
    }
}

impl Drop for TestClient {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

fn handle_frame(
    doc: &Doc,
    frame: &[u8],
    out: &mpsc::UnboundedSender<WsMessage>,
    state: &watch::Sender<ClientState>,
) {
    let msg = Message::decode(frame).expect("server sends well-formed messages");
    let ty = frame[0] as u64;
    state.send_modify(|s| {
        s.frames_received += 1;
        s.message_types.insert(ty);
    });
    match msg {
        Message::Sync(SyncMessage::Step1(sv)) => {
            let sv = StateVector::decode_v1(sv).unwrap();
            let diff = doc.transact().encode_diff_v1(&sv);
            let _ = out.send(WsMessage::Binary(encode_sync_step2(&diff)));
        }
        Message::Sync(SyncMessage::Step2(u)) => {
            doc.transact_mut()
                .apply_update(Update::decode_v1(u).unwrap())
                .unwrap();
            state.send_modify(|s| s.synced = true);
        }
        Message::Sync(SyncMessage::Update(u)) => {
            doc.transact_mut()
                .apply_update(Update::decode_v1(u).unwrap())
                .unwrap();
            state.send_modify(|_| {});
        }
        Message::Awareness(a) => {
            let up = AwarenessUpdate::decode(a).unwrap();
            state.send_modify(|s| {
                for e in up.entries {
                    if e.is_removal() {
                        s.awareness.remove(&e.client_id);
                    } else {
                        s.awareness.insert(e.client_id, e.state.to_string());
                    }
                }
            });
        }
        Message::PermissionDenied { reason } => {
            let r = reason.to_string();
            state.send_modify(|s| s.permission_denied.push(r));
        }
        Message::Ack { durable } => state.send_modify(|s| s.acked = s.acked.max(durable)),
        Message::QueryAwareness => {}
    }
}

/// A raw socket for sending arbitrary bytes (as the server's owner).
pub async fn raw_socket(url: &str) -> Ws {
    let req = owner_request(url).await;
    within("connect", connect_async(req)).await.unwrap().0
}

/// The HTTP status a refused WebSocket handshake got (panics if it was
/// accepted).
pub async fn refused_status(
    req: tokio_tungstenite::tungstenite::handshake::client::Request,
) -> u16 {
    match within("handshake", connect_async(req)).await {
        Ok(_) => panic!("the upgrade was accepted"),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => resp.status().as_u16(),
        Err(e) => panic!("unexpected handshake error: {e}"),
    }
}

/// Reads frames until a close frame arrives; returns its code and reason.
pub async fn expect_close(ws: &mut Ws) -> (u16, String) {
    within("close frame", async {
        while let Some(msg) = ws.next().await {
            match msg {
                Ok(WsMessage::Close(Some(cf))) => {
                    return (u16::from(cf.code), cf.reason.to_string());
                }
                Ok(WsMessage::Close(None)) => return (1005, String::new()),
                Ok(_) => continue,
                Err(e) => panic!("socket failed before a close frame: {e}"),
            }
        }
        panic!("socket ended without a close frame")
    })
    .await
}
