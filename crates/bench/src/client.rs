//! A y-websocket client for the load generator: one WebSocket, one yrs replica,
//! and the handshake. Message encoding comes from `quire-protocol`; this module
//! only adds the socket and the CRDT the scenarios need to check convergence.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use quire_protocol::{Message, Reader, SyncMessage, encode_sync_step1, encode_sync_step2};

use crate::account::{Account, origin_of};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{
    ClientID, Doc, GetString, OffsetKind, Options, ReadTxn, StateVector, Text, TextRef, Transact,
    Update,
};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

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
#[derive(Debug, Clone, clap::Args)]
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
        Ok(Target { nodes, account })
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
}

impl Target {
    /// How many nodes the clients are spread over.
    pub fn nodes(&self) -> usize {
        self.nodes.len()
    }

    pub fn url(&self, doc: &str, durable_acks: bool) -> String {
        doc_url(&self.nodes[0].base, doc, durable_acks)
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
        let node = &self.nodes[i % self.nodes.len()];
        let url = doc_url(&node.base, doc, durable_acks);
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
                other => return other.with_context(|| format!("connecting to {url}")),
            }
        }
    }
}

/// Opens a WebSocket with Nagle off: the scenarios measure latency of single
/// keystrokes, which Nagle would hold back behind unacknowledged segments.
async fn connect(req: Request) -> Result<Ws, WsError> {
    let config = WebSocketConfig::default()
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
/// pings itself on the next write or flush).
pub async fn next_frame(ws: &mut Ws) -> Result<Bytes, Closed> {
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
