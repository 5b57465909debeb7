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
use crate::hocuspocus;
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
}
