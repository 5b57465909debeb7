//! A y-websocket client for the load generator: one WebSocket, one yrs replica,
//! and the handshake. Message encoding comes from `quire-protocol`; this module
//! only adds the socket and the CRDT the scenarios need to check convergence.
//!
//! Servers that speak another dialect of the Yjs sync protocol (Hocuspocus)
//! are reached through [`Ws`], which translates at the socket so that the
//! scenarios only ever see y-websocket frames; see [`hocuspocus`].

use std::pin::Pin;
use std::task::{Context as TaskContext, Poll, ready};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use quire_protocol::{Message, Reader, SyncMessage, encode_sync_step1, encode_sync_step2};

use crate::account::{Account, origin_of};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{
    ClientID, Doc, GetString, OffsetKind, Options, ReadTxn, StateVector, Text, TextRef, Transact,
    Update,
};

/// The WebSocket as tungstenite gives it.
pub type RawWs = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Which variant of the Yjs sync protocol the server speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Dialect {
    /// Plain y-websocket (Quire, the reference `y-websocket` server, the null
    /// server): one document per socket, named by the URL's last segment.
    #[default]
    #[value(name = "y-websocket")]
    YWebsocket,
    /// Hocuspocus (`@hocuspocus/server`): every frame starts with the
    /// document's name, an Auth message opens each document, and the server
    /// sends message types of its own. The URL is the server's, unchanged.
    Hocuspocus,
}

/// One client socket on one document. It is a `Sink` and a `Stream` of
/// WebSocket messages like tungstenite's, and always speaks y-websocket to
/// the scenarios: in the Hocuspocus dialect it prefixes every outgoing binary
/// frame with the document name, strips the prefix from incoming ones, maps
/// Hocuspocus' message types to y-websocket's and drops what a y-websocket
/// client would never see (see [`hocuspocus`]). In the y-websocket dialect it
/// is a pass-through: one well-predicted branch per message, no copy.
pub struct Ws {
    inner: RawWs,
    hocuspocus: Option<Box<hocuspocus::Session>>,
}

impl Ws {
    /// A plain y-websocket socket.
    pub fn y_websocket(inner: RawWs) -> Ws {
        Ws {
            inner,
            hocuspocus: None,
        }
    }

    /// A Hocuspocus socket on `doc`: sends the Auth message for `doc` with
    /// `token` (as the provider does right after the socket opens; the server
    /// queues every other message of the document until it has it).
    pub async fn hocuspocus(inner: RawWs, doc: &str, token: &str) -> Result<Ws, WsError> {
        let mut ws = Ws {
            inner,
            hocuspocus: Some(Box::new(hocuspocus::Session::new(doc, token))),
        };
        let auth = hocuspocus::auth_frame(doc, token);
        ws.inner.send(WsMessage::Binary(auth)).await?;
        Ok(ws)
    }

    pub fn dialect(&self) -> Dialect {
        if self.hocuspocus.is_some() {
            Dialect::Hocuspocus
        } else {
            Dialect::YWebsocket
        }
    }

    /// Sends a close frame and flushes (as `WebSocketStream::close`).
    pub async fn close(&mut self, msg: Option<CloseFrame>) -> Result<(), WsError> {
        self.inner.close(msg).await
    }

    /// The underlying stream (for socket options or addresses).
    pub fn get_ref(&self) -> &MaybeTlsStream<TcpStream> {
        self.inner.get_ref()
    }

    /// Hands a frame the server asked for (a token re-sync) to the socket
    /// once it can take it.
    fn poll_pending(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), WsError>> {
        let Some(hp) = self.hocuspocus.as_deref_mut() else {
            return Poll::Ready(Ok(()));
        };
        if hp.pending.is_none() {
            return Poll::Ready(Ok(()));
        }
        ready!(Pin::new(&mut self.inner).poll_ready(cx))?;
        if let Some(frame) = hp.pending.take() {
            Pin::new(&mut self.inner).start_send(WsMessage::Binary(frame))?;
        }
        Poll::Ready(Ok(()))
    }
}

impl Stream for Ws {
    type Item = Result<WsMessage, WsError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.hocuspocus.is_none() {
            return Pin::new(&mut this.inner).poll_next(cx);
        }
        loop {
            // Answer a token request as soon as the socket takes it; a
            // write error shows on the read side too.
            if let Poll::Ready(Ok(())) = this.poll_pending(cx) {
                let _ = Pin::new(&mut this.inner).poll_flush(cx);
            }
            let msg = ready!(Pin::new(&mut this.inner).poll_next(cx));
            let Some(Ok(WsMessage::Binary(frame))) = msg else {
                return Poll::Ready(msg);
            };
            let hp = this.hocuspocus.as_deref_mut().expect("hocuspocus dialect");
            match hp.incoming(frame) {
                hocuspocus::Incoming::Frame(f) => {
                    return Poll::Ready(Some(Ok(WsMessage::Binary(f))));
                }
                hocuspocus::Incoming::Close(reason) => {
                    return Poll::Ready(Some(Ok(WsMessage::Close(Some(CloseFrame {
                        code: CloseCode::Normal,
                        reason: reason.into(),
                    })))));
                }
                hocuspocus::Incoming::Swallowed => {}
            }
        }
    }
}

impl Sink<WsMessage> for Ws {
    type Error = WsError;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Result<(), WsError>> {
        let this = self.get_mut();
        if this.hocuspocus.is_some() {
            ready!(this.poll_pending(cx))?;
        }
        Pin::new(&mut this.inner).poll_ready(cx)
    }

    fn start_send(self: Pin<&mut Self>, item: WsMessage) -> Result<(), WsError> {
        let this = self.get_mut();
        let item = match (&this.hocuspocus, item) {
            (Some(hp), WsMessage::Binary(frame)) => WsMessage::Binary(hp.outgoing(&frame)),
            (_, item) => item,
        };
        Pin::new(&mut this.inner).start_send(item)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Result<(), WsError>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Result<(), WsError>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }
}

/// Name of the shared `Y.Text` every scenario edits. The server is agnostic of
/// shared types, so any name works; this one matches what a plain Yjs client
/// would call it.
pub const TEXT_NAME: &str = "text";

/// `{base}/{doc}`, with the durable-ack opt-in when asked. `base` is the
/// WebSocket prefix, e.g. `ws://127.0.0.1:7420/ws`.
pub fn doc_url(base: &str, doc: &str, durable_acks: bool) -> String {
    let mut url = format!("{}/{}", base.trim_end_matches('/'), doc);
    if durable_acks {
        url.push_str("?quire=1");
    }
    url
}

/// Which server to load, as every scenario takes it on the command line.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TargetArgs {
    /// WebSocket prefix; document names are appended (`{url}/{doc}`).
    /// Repeat it to spread clients over several nodes of one cluster
    /// (scenarios with many clients assign them round-robin; the others use
    /// the first).
    #[arg(long, required = true)]
    pub url: Vec<String>,
    /// For servers that require accounts: sign up (or in) as
    /// `EMAIL:PASSWORD`, create every document through the API first, and
    /// connect with the access cookie.
    #[arg(long, env = "QUIRE_BENCH_ACCOUNT")]
    pub account: Option<String>,
    /// The server's protocol: `y-websocket` (Quire, the reference server,
    /// the null server) or `hocuspocus` (`@hocuspocus/server`: `--url` is
    /// the server's WebSocket URL as is, the document name goes in every
    /// frame; it has no durable acks, so use `--no-acks` / `--flow observer`).
    #[arg(long, value_enum, default_value_t = Dialect::YWebsocket)]
    pub dialect: Dialect,
    /// The bearer token of Quire's `/metrics` (its `--metrics-token`), for
    /// the scenarios that report the server's own counters; without it
    /// they report them as unknown. From the environment so that it stays
    /// out of recorded command lines.
    #[arg(long, env = "QUIRE_BENCH_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
}

impl TargetArgs {
    pub async fn target(&self) -> anyhow::Result<Target> {
        let account = match &self.account {
            Some(a) => {
                let (email, password) = a
                    .split_once(':')
                    .context("--account takes EMAIL:PASSWORD")?;
                Some(Account::sign_in(&self.url[0], email, password).await?)
            }
            None => None,
        };
        let nodes = self
            .url
            .iter()
            .map(|base| {
                Ok(Node {
                    base: base.clone(),
                    origin: origin_of(base)?,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Target {
            nodes,
            account,
            dialect: self.dialect,
        })
    }
}

/// One server (or one node of a cluster) and the `Origin` a browser loading
/// the app from it would send.
#[derive(Debug, Clone)]
struct Node {
    base: String,
    origin: String,
}

/// A server to connect to: every handshake carries the same-origin `Origin`
/// a browser would send (servers that check it refuse sockets without it),
/// and the access cookie when signed in.
/// With several `--url`s the account signs in on the first node; its cookie
/// is valid on every node of the cluster (they share the database).
#[derive(Debug, Clone)]
pub struct Target {
    nodes: Vec<Node>,
    account: Option<Account>,
    dialect: Dialect,
}

impl Target {
    /// How many nodes the clients are spread over.
    pub fn nodes(&self) -> usize {
        self.nodes.len()
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The URL a client of `doc` connects to: `{url}/{doc}` for
    /// y-websocket, the server's URL itself for Hocuspocus.
    pub fn url(&self, doc: &str, durable_acks: bool) -> String {
        self.url_on(0, doc, durable_acks)
    }

    fn url_on(&self, i: usize, doc: &str, durable_acks: bool) -> String {
        let node = &self.nodes[i % self.nodes.len()];
        match self.dialect {
            Dialect::YWebsocket => doc_url(&node.base, doc, durable_acks),
            Dialect::Hocuspocus => node.base.clone(),
        }
    }

    /// Makes sure `doc` exists and is ours (only on servers with accounts).
    pub async fn prepare(&self, doc: &str) -> anyhow::Result<()> {
        match &self.account {
            Some(a) => a.create_document(doc).await,
            None => Ok(()),
        }
    }

    /// Opens a socket on `doc`. A server that rate-limits connects (HTTP 429)
    /// is retried until `CONNECT_PATIENCE` has passed: the connect phase is
    /// not measured.
    pub async fn connect(&self, doc: &str, durable_acks: bool) -> anyhow::Result<Ws> {
        self.connect_on(0, doc, durable_acks).await
    }

    /// Like [`Target::connect`], on node `i % nodes()`.
    pub async fn connect_on(&self, i: usize, doc: &str, durable_acks: bool) -> anyhow::Result<Ws> {
        const CONNECT_PATIENCE: Duration = Duration::from_secs(120);
        if durable_acks && self.dialect == Dialect::Hocuspocus {
            bail!(
                "Hocuspocus has no durable acks: run the scenario with --no-acks or --flow observer"
            );
        }
        let node = &self.nodes[i % self.nodes.len()];
        let url = self.url_on(i, doc, durable_acks);
        let started = Instant::now();
        loop {
            let mut req = url.as_str().into_client_request()?;
            req.headers_mut().insert("Origin", node.origin.parse()?);
            if let Some(a) = &self.account {
                req.headers_mut().insert("Cookie", a.cookie.parse()?);
            }
            match connect(req).await {
                Err(WsError::Http(resp))
                    if resp.status() == 429 && started.elapsed() < CONNECT_PATIENCE =>
                {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(WsError::Http(resp)) => {
                    let body = resp
                        .body()
                        .as_deref()
                        .map(String::from_utf8_lossy)
                        .unwrap_or_default()
                        .into_owned();
                    bail!("connecting to {url}: HTTP {} {body}", resp.status());
                }
                Err(e) => return Err(e).with_context(|| format!("connecting to {url}")),
                Ok(raw) => {
                    return match self.dialect {
                        Dialect::YWebsocket => Ok(Ws::y_websocket(raw)),
                        // No token: what the provider sends without one.
                        Dialect::Hocuspocus => Ws::hocuspocus(raw, doc, "")
                            .await
                            .with_context(|| format!("authenticating for {doc} at {url}")),
                    };
                }
            }
        }
    }
}

/// Opens a WebSocket with Nagle off: the scenarios measure latency of single
/// keystrokes, which Nagle would hold back behind unacknowledged segments.
/// The read buffer is 16 KiB, not tungstenite's 128 KiB: tungstenite zeroes
/// the whole buffer before every read, which cost the generator 13 % of its
/// CPU in memset and 139 KiB of RSS per idle socket.
async fn connect(req: Request) -> Result<RawWs, WsError> {
    let config = WebSocketConfig::default()
        .read_buffer_size(16 << 10)
        .max_message_size(Some(256 << 20))
        .max_frame_size(Some(256 << 20));
    let (ws, _) = tokio_tungstenite::connect_async_with_config(req, Some(config), true).await?;
    Ok(ws)
}

/// Why a read ended without a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Closed {
    /// The server sent a close frame.
    ByServer { code: u16, reason: String },
    /// The stream ended or broke without a close frame.
    Broken(String),
}

impl std::fmt::Display for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Closed::ByServer { code, reason } => write!(f, "closed by server: {code} {reason}"),
            Closed::Broken(e) => write!(f, "connection broken: {e}"),
        }
    }
}

/// The next binary frame; pings and pongs are skipped (tungstenite answers
/// pings itself on the next write or flush). Works on a [`Ws`] and on the
/// read half of a split one.
pub async fn next_frame<S>(ws: &mut S) -> Result<Bytes, Closed>
where
    S: Stream<Item = Result<WsMessage, WsError>> + Unpin + ?Sized,
{
    loop {
        match ws.next().await {
            Some(Ok(WsMessage::Binary(b))) => return Ok(b),
            Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Frame(_))) => {}
            Some(Ok(WsMessage::Text(t))) => {
                return Err(Closed::Broken(format!("unexpected text frame: {t}")));
            }
            Some(Ok(WsMessage::Close(cf))) => {
                return Err(match cf {
                    Some(cf) => Closed::ByServer {
                        code: cf.code.into(),
                        reason: cf.reason.to_string(),
                    },
                    None => Closed::ByServer {
                        code: 1005,
                        reason: String::new(),
                    },
                });
            }
            Some(Err(e)) => return Err(Closed::Broken(e.to_string())),
            None => return Err(Closed::Broken("stream ended".into())),
        }
    }
}

/// A local Yjs document with one `Y.Text`. Offsets are UTF-16 so that a
/// position means the same as in a JavaScript client.
pub struct Replica {
    pub doc: Doc,
    pub text: TextRef,
}

impl Replica {
    pub fn new(client_id: ClientID) -> Self {
        let mut opts = Options::with_client_id(client_id);
        opts.offset_kind = OffsetKind::Utf16;
        let doc = Doc::with_options(opts);
        let text = doc.get_or_insert_text(TEXT_NAME);
        Replica { doc, text }
    }

    pub fn client_id(&self) -> u64 {
        self.doc.client_id().get()
    }

    pub fn apply(&self, update: &[u8]) -> anyhow::Result<()> {
        let u = Update::decode_v1(update).context("undecodable update")?;
        self.doc
            .transact_mut()
            .apply_update(u)
            .context("update does not apply")?;
        Ok(())
    }

    pub fn string(&self) -> String {
        self.text.get_string(&self.doc.transact())
    }

    pub fn state_vector(&self) -> Vec<u8> {
        self.doc.transact().state_vector().encode_v1()
    }

    /// What a peer with state vector `sv` lacks, as a step 2 payload.
    pub fn diff(&self, sv: &[u8]) -> anyhow::Result<Vec<u8>> {
        let sv = StateVector::decode_v1(sv).context("undecodable state vector")?;
        Ok(self.doc.transact().encode_diff_v1(&sv))
    }

    /// Appends `s` at the end of the text; returns the update to send.
    pub fn append(&self, s: &str) -> Vec<u8> {
        let mut txn = self.doc.transact_mut();
        let len = self.text.len(&txn);
        self.text.insert(&mut txn, len, s);
        txn.encode_update_v1()
    }
}

/// What the handshake saw.
#[derive(Debug, Clone, Default)]
pub struct Handshake {
    /// Update-bearing messages (step 2) we sent: durable acks count them too.
    pub update_messages_sent: u64,
    /// Highest durable-ack count seen during the handshake.
    pub acked: u64,
    /// Time from sending our step 1 to receiving the server's step 2.
    pub took: Duration,
}

/// The y-websocket handshake: send our step 1, answer the server's step 1 with
/// a step 2, and return once the server's step 2 is applied ("synced").
pub async fn sync(ws: &mut Ws, replica: &Replica) -> anyhow::Result<Handshake> {
    let started = Instant::now();
    ws.send(WsMessage::Binary(encode_sync_step1(
        &replica.state_vector(),
    )))
    .await
    .context("sending sync step 1")?;
    let mut hs = Handshake::default();
    loop {
        let frame = next_frame(ws)
            .await
            .map_err(|c| anyhow::anyhow!("during handshake: {c}"))?;
        match Message::decode(&frame).context("undecodable frame during handshake")? {
            Message::Sync(SyncMessage::Step1(sv)) => {
                let diff = replica.diff(sv)?;
                ws.send(WsMessage::Binary(encode_sync_step2(&diff))).await?;
                hs.update_messages_sent += 1;
            }
            Message::Sync(SyncMessage::Step2(u)) => {
                replica.apply(u)?;
                hs.took = started.elapsed();
                return Ok(hs);
            }
            Message::Sync(SyncMessage::Update(u)) => replica.apply(u)?,
            Message::Ack { durable } => hs.acked = hs.acked.max(durable),
            Message::PermissionDenied { reason } => bail!("permission denied: {reason}"),
            Message::Awareness(_) | Message::QueryAwareness => {}
        }
    }
}

/// `(client, clock)` of the first item in a v1 update, read from its header
/// without decoding the rest: for a one-character insert that is exactly the
/// keystroke. `None` for updates with no items or several clients.
pub fn first_item_id(update: &[u8]) -> Option<(u64, u64)> {
    let mut r = Reader::new(update);
    if r.read_var_uint().ok()? != 1 {
        return None;
    }
    let _structs = r.read_var_uint().ok()?;
    let client = r.read_var_uint().ok()?;
    let clock = r.read_var_uint().ok()?;
    Some((client, clock))
}

/// The Hocuspocus dialect of the Yjs sync protocol, as `@hocuspocus/server`
/// and `@hocuspocus/provider` 3.x speak it (read from their source:
/// `OutgoingMessage`, `MessageReceiver`, `ClientConnection` and the
/// provider's messages).
///
/// Every frame, both ways, is `varString(documentName)` followed by a
/// message: `varUint(type)` and the type's payload. One socket may carry
/// several documents; the generator opens one socket per document.
///
/// | type | name | payload | y-websocket equivalent |
/// |---|---|---|---|
/// | 0 | Sync | y-protocols sync message (step 1, step 2, update) | 0 |
/// | 1 | Awareness | varUint8Array awareness update | 1 |
/// | 2 | Auth | varUint sub-type: 0 Token (client → server: varString token; server → client: "send your token again"), 1 PermissionDenied (varString reason), 2 Authenticated (varString scope) | 2/0 for PermissionDenied, none else |
/// | 3 | QueryAwareness | — | 3 |
/// | 4 | SyncReply | like Sync, but a step 1 in it asks for no step 1 back | 0 |
/// | 5 | Stateless | varString | none |
/// | 6 | BroadcastStateless | varString | none |
/// | 7 | CLOSE | varString reason (server → client: this document's connection is closed; client → server: close it) | a close frame, code 1000 |
/// | 8 | SyncStatus | varUint 1/0: the update was applied (sent after every step 2 or update a client sends) | none |
///
/// The server queues every message of a document until that document's Auth
/// (Token) message arrives, runs its `onConnect` and `onAuthenticate` hooks,
/// answers Authenticated (or PermissionDenied), and only then handles the
/// queue. The provider sends Auth right after the socket opens, then its sync
/// step 1, without waiting for the answer; so does [`Ws::hocuspocus`]. The
/// server answers a client's step 1 (in a Sync message) with its own step 1
/// and then the step 2, both as Sync; it broadcasts each update as Sync to
/// every connection of the document, the author's included.
pub mod hocuspocus {
    use bytes::Bytes;
    use quire_protocol::{encode_permission_denied, write_var_bytes, write_var_uint};

    pub const SYNC: u64 = 0;
    pub const AWARENESS: u64 = 1;
    pub const AUTH: u64 = 2;
    pub const QUERY_AWARENESS: u64 = 3;
    pub const SYNC_REPLY: u64 = 4;
    pub const STATELESS: u64 = 5;
    pub const BROADCAST_STATELESS: u64 = 6;
    pub const CLOSE: u64 = 7;
    pub const SYNC_STATUS: u64 = 8;

    pub const AUTH_TOKEN: u64 = 0;
    pub const AUTH_PERMISSION_DENIED: u64 = 1;
    pub const AUTH_AUTHENTICATED: u64 = 2;

    /// What one incoming frame becomes for a y-websocket client.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Incoming {
        /// A y-websocket frame.
        Frame(Bytes),
        /// The server closed this document's connection (CLOSE, with its
        /// reason): shown as a close frame with code 1000, as the provider
        /// does.
        Close(String),
        /// Nothing a y-websocket client would see (auth and sync status
        /// replies, stateless messages, another document's frames).
        Swallowed,
    }

    /// The dialect's state on one socket.
    #[derive(Debug)]
    pub struct Session {
        doc: String,
        token: String,
        /// `varString(doc)`: the start of every frame.
        prefix: Vec<u8>,
        /// The Auth frame to send again because the server asked for the
        /// token, until the socket takes it.
        pub(super) pending: Option<Bytes>,
    }

    impl Session {
        pub fn new(doc: &str, token: &str) -> Session {
            let mut prefix = Vec::with_capacity(doc.len() + 2);
            write_var_bytes(&mut prefix, doc.as_bytes());
            Session {
                doc: doc.to_string(),
                token: token.to_string(),
                prefix,
                pending: None,
            }
        }

        /// A y-websocket frame as the server expects it: the message types
        /// the generator sends (sync, awareness, query awareness) have the
        /// same numbers and payloads, so only the prefix is added.
        pub fn outgoing(&self, frame: &[u8]) -> Bytes {
            let mut out = Vec::with_capacity(self.prefix.len() + frame.len());
            out.extend_from_slice(&self.prefix);
            out.extend_from_slice(frame);
            out.into()
        }

        /// Translates one incoming frame; a token request queues the Auth
        /// frame to send back (as the provider's `sendToken`).
        pub fn incoming(&mut self, frame: Bytes) -> Incoming {
            match translate(&self.doc, frame) {
                Translated::TokenRequest => {
                    self.pending = Some(auth_frame(&self.doc, &self.token));
                    Incoming::Swallowed
                }
                Translated::Is(i) => i,
            }
        }
    }

    /// `[doc][Auth][Token][token]`: what the provider sends first.
    pub fn auth_frame(doc: &str, token: &str) -> Bytes {
        let mut out = Vec::with_capacity(doc.len() + token.len() + 6);
        write_var_bytes(&mut out, doc.as_bytes());
        write_var_uint(&mut out, AUTH);
        write_var_uint(&mut out, AUTH_TOKEN);
        write_var_bytes(&mut out, token.as_bytes());
        out.into()
    }

    enum Translated {
        Is(Incoming),
        TokenRequest,
    }

    fn translate(doc: &str, frame: Bytes) -> Translated {
        use Translated::Is;
        let mut pos = 0;
        let Some(name) = read_string(&frame, &mut pos) else {
            // Not Hocuspocus framing: hand it on, the scenario's decoder
            // reports it.
            return Is(Incoming::Frame(frame));
        };
        if name != doc.as_bytes() {
            return Is(Incoming::Swallowed);
        }
        let type_at = pos;
        let Some(kind) = read_uint(&frame, &mut pos) else {
            return Is(Incoming::Frame(frame.slice(type_at..)));
        };
        match kind {
            // Same tag, same payload: no copy.
            SYNC | AWARENESS | QUERY_AWARENESS => Is(Incoming::Frame(frame.slice(type_at..))),
            SYNC_REPLY => {
                let mut out = Vec::with_capacity(1 + frame.len() - pos);
                write_var_uint(&mut out, SYNC);
                out.extend_from_slice(&frame[pos..]);
                Is(Incoming::Frame(out.into()))
            }
            AUTH => match read_uint(&frame, &mut pos) {
                Some(AUTH_TOKEN) => Translated::TokenRequest,
                Some(AUTH_PERMISSION_DENIED) => {
                    let reason = read_string(&frame, &mut pos).unwrap_or_default();
                    Is(Incoming::Frame(encode_permission_denied(
                        &String::from_utf8_lossy(reason),
                    )))
                }
                _ => Is(Incoming::Swallowed),
            },
            CLOSE => {
                let reason = read_string(&frame, &mut pos).unwrap_or_default();
                Is(Incoming::Close(
                    String::from_utf8_lossy(reason).into_owned(),
                ))
            }
            SYNC_STATUS | STATELESS | BROADCAST_STATELESS => Is(Incoming::Swallowed),
            // Unknown to both dialects: hand it on without the prefix, the
            // scenario's decoder reports the type.
            _ => Is(Incoming::Frame(frame.slice(type_at..))),
        }
    }

    /// lib0 `readVarUint`.
    fn read_uint(buf: &[u8], pos: &mut usize) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *buf.get(*pos)?;
            *pos += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    /// lib0 `readVarString` (bytes; callers compare or decode lossily).
    fn read_string<'a>(buf: &'a [u8], pos: &mut usize) -> Option<&'a [u8]> {
        let len = usize::try_from(read_uint(buf, pos)?).ok()?;
        let s = buf.get(*pos..pos.checked_add(len)?)?;
        *pos += len;
        Some(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_keystroke_id_of_an_update() {
        let r = Replica::new(ClientID::new(4242));
        r.append("ab");
        let u = r.append("c");
        assert_eq!(first_item_id(&u), Some((4242, 2)));
    }

    #[test]
    fn builds_urls() {
        assert_eq!(doc_url("ws://h/ws/", "d", true), "ws://h/ws/d?quire=1");
        assert_eq!(doc_url("ws://h/ws", "d", false), "ws://h/ws/d");
    }

    mod hocuspocus_framing {
        use super::super::hocuspocus::{Incoming, Session, auth_frame};
        use super::*;

        /// `[len]d1`: the prefix of document "d1".
        const D1: &[u8] = &[2, b'd', b'1'];

        fn hp(rest: &[u8]) -> Bytes {
            [D1, rest].concat().into()
        }

        fn incoming(frame: &[u8]) -> Incoming {
            Session::new("d1", "tok").incoming(hp(frame))
        }

        #[test]
        fn outgoing_frames_get_the_document_name() {
            let s = Session::new("d1", "");
            // sync step 1 with an empty state vector
            assert_eq!(&s.outgoing(&[0, 0, 1, 0])[..], &[2, b'd', b'1', 0, 0, 1, 0]);
            // update
            assert_eq!(&s.outgoing(&[0, 2, 2, 7, 8])[..], &hp(&[0, 2, 2, 7, 8])[..]);
            // awareness
            assert_eq!(&s.outgoing(&[1, 1, 9])[..], &hp(&[1, 1, 9])[..]);
        }

        #[test]
        fn the_auth_frame_is_the_providers() {
            // [doc][Auth=2][Token=0][varString token]
            assert_eq!(&auth_frame("d1", "")[..], &hp(&[2, 0, 0])[..]);
            assert_eq!(&auth_frame("d1", "ab")[..], &hp(&[2, 0, 2, b'a', b'b'])[..]);
        }

        #[test]
        fn sync_awareness_and_query_lose_only_the_prefix() {
            for msg in [
                &[0u8, 0, 1, 0][..], // step 1
                &[0, 1, 2, 0, 0],    // step 2
                &[0, 2, 3, 1, 2, 3], // update
                &[1, 2, 5, 6],       // awareness
                &[3],                // query awareness
            ] {
                assert_eq!(incoming(msg), Incoming::Frame(Bytes::copy_from_slice(msg)));
            }
        }

        #[test]
        fn sync_reply_becomes_sync() {
            assert_eq!(
                incoming(&[4, 0, 1, 0]),
                Incoming::Frame(Bytes::from_static(&[0, 0, 1, 0]))
            );
            assert_eq!(
                incoming(&[4, 1, 2, 0, 0]),
                Incoming::Frame(Bytes::from_static(&[0, 1, 2, 0, 0]))
            );
        }

        #[test]
        fn replies_a_y_websocket_client_would_not_see_are_swallowed() {
            let mut authenticated = vec![2, 2, 10];
            authenticated.extend_from_slice(b"read-write");
            for msg in [
                &authenticated[..],  // Auth: Authenticated "read-write"
                &[8, 1],             // SyncStatus: applied
                &[8, 0],             // SyncStatus: not applied
                &[5, 2, b'h', b'i'], // Stateless "hi"
                &[6, 2, b'h', b'i'], // BroadcastStateless "hi"
            ] {
                assert_eq!(incoming(msg), Incoming::Swallowed, "{msg:?}");
            }
            // Another document's frame (one socket may carry several).
            let other = [&[2, b'd', b'2'][..], &[0, 2, 1, 0]].concat();
            assert_eq!(
                Session::new("d1", "").incoming(other.into()),
                Incoming::Swallowed
            );
        }

        #[test]
        fn permission_denied_becomes_y_websockets() {
            let out = incoming(&[2, 1, 4, b'n', b'o', b'p', b'e']);
            let Incoming::Frame(f) = out else {
                panic!("{out:?}")
            };
            assert_eq!(&f[..], &[2, 0, 4, b'n', b'o', b'p', b'e']);
            assert!(matches!(
                Message::decode(&f),
                Ok(Message::PermissionDenied { reason: "nope" })
            ));
        }

        #[test]
        fn close_becomes_a_close_frame_with_its_reason() {
            assert_eq!(incoming(&[7, 2, b'b', b'y']), Incoming::Close("by".into()));
        }

        #[test]
        fn a_token_request_is_answered_with_the_token() {
            let mut s = Session::new("d1", "tok");
            assert_eq!(s.incoming(hp(&[2, 0])), Incoming::Swallowed);
            assert_eq!(s.pending.as_deref(), Some(&auth_frame("d1", "tok")[..]));
        }

        #[test]
        fn long_document_names_round_trip() {
            let name = "x".repeat(300); // two-byte length
            let mut s = Session::new(&name, "");
            let out = s.outgoing(&[0, 2, 1, 9]);
            assert_eq!(&out[..3], &[0xac, 0x02, b'x']);
            assert_eq!(
                s.incoming(out),
                Incoming::Frame(Bytes::from_static(&[0, 2, 1, 9]))
            );
        }

        #[test]
        fn malformed_frames_are_handed_on() {
            let mut s = Session::new("d1", "");
            assert_eq!(
                s.incoming(Bytes::from_static(&[9])),
                Incoming::Frame(Bytes::from_static(&[9]))
            );
        }

        /// A fake Hocuspocus server on a real socket: the client's first
        /// frame must be Auth, then its step 1, prefixed; the server's
        /// Authenticated and SyncStatus never reach the handshake.
        #[tokio::test]
        async fn a_handshake_through_the_dialect() {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let server = tokio::spawn(async move {
                let (tcp, _) = listener.accept().await.unwrap();
                let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
                let mut got = Vec::new();
                while got.len() < 2 {
                    if let Some(Ok(WsMessage::Binary(b))) = ws.next().await {
                        got.push(b);
                    }
                }
                let mut authenticated = vec![2, b'd', b'1', 2, 2, 10];
                authenticated.extend_from_slice(b"read-write");
                let server_doc = Replica::new(ClientID::new(7));
                let step2 = server_doc.diff(&[0]).unwrap();
                let mut step2_frame = vec![2, b'd', b'1'];
                step2_frame.extend_from_slice(&encode_sync_step2(&step2));
                for f in [
                    authenticated,
                    vec![2, b'd', b'1', 8, 1],
                    vec![2, b'd', b'1', 0, 0, 1, 0],
                    step2_frame,
                ] {
                    ws.send(WsMessage::Binary(f.into())).await.unwrap();
                }
                // The client's step 2, prefixed.
                let reply = loop {
                    if let Some(Ok(WsMessage::Binary(b))) = ws.next().await {
                        break b;
                    }
                };
                (got, reply)
            });
            let args = TargetArgs {
                url: vec![format!("ws://{addr}")],
                account: None,
                dialect: Dialect::Hocuspocus,
                metrics_token: None,
            };
            let target = args.target().await.unwrap();
            assert_eq!(target.url("d1", false), format!("ws://{addr}"));
            assert!(target.connect("d1", true).await.is_err(), "no acks");
            let mut ws = target.connect("d1", false).await.unwrap();
            let replica = Replica::new(ClientID::new(5));
            let hs = sync(&mut ws, &replica).await.unwrap();
            assert_eq!(hs.update_messages_sent, 1);
            let (got, reply) = server.await.unwrap();
            assert_eq!(&got[0][..], &auth_frame("d1", "")[..]);
            assert_eq!(&got[1][..], &[2, b'd', b'1', 0, 0, 1, 0]);
            assert_eq!(&reply[..5], &[2, b'd', b'1', 0, 1]);
            let _ = ws.close(None).await;
        }
    }
}
