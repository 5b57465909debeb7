//! The doc hub: owns the live documents of one node.
//!
//! Each live document is an actor (one task) that owns the yrs `Doc`, the
//! presence (awareness) states and the set of connected sessions. A session is
//! bytes in, frames out: it never sees a socket, so the WebSocket handler, tests
//! and the bus all feed documents the same way.
//!
//! Life cycle: a document is loaded on first join (concurrent joiners wait for
//! the same load; a failed load refuses them and never leaves an empty document
//! behind that could overwrite storage), stays live while sessions are joined,
//! and unloads after an idle delay once its last append has committed.
//!
//! Write path: apply → broadcast (encoded once, shared bytes) → publish on the
//! bus → append to the store through the node-wide [`appender`] (group commit)
//! → acknowledge to the author once committed. Broadcast never waits for
//! durability, and durability never waits for broadcast.

mod appender;
mod awareness;
mod compaction;
mod conn;
pub mod content;
mod doc;
#[cfg(any(test, feature = "harness"))]
mod fixtures;
#[cfg(feature = "harness")]
pub mod harness;
mod heal;
pub mod item_index;
pub mod metrics;
mod queues;
mod session;
pub mod update_scan;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use quire_bus::Bus;
use quire_store::DocStore;
use quire_types::{AuthSessionId, DocId, UserId};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use conn::{CloseCode, CloseFrame};
pub use session::{InboundPermit, Offered, Outgoing, Session, SessionInbound, SessionOutbound};

use crate::appender::Appender;
use crate::doc::{DocCommand, DocHandle};

#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Largest document (bytes of its stored state and log) accepted; an update
    /// that would grow it past this is refused and its socket closed.
    pub max_document_bytes: usize,
    /// Frames queued for one socket before it counts as too slow and is closed.
    pub outgoing_queue: usize,
    /// Bytes queued for one socket before it counts as too slow and is
    /// closed, besides at most one reply carrying the document's state.
    pub outgoing_queue_bytes: usize,
    /// Estimated memory of one decoded document (see
    /// [`update_scan::Struct::cost`]) past which updates are refused and at
    /// which a stored document is refused at load.
    pub max_document_memory_bytes: u64,
    /// Bytes of a document's updates waiting for their dependencies (see
    /// [`content`]) past which a client's update that must wait is refused.
    pub max_parked_bytes: usize,
    /// Bytes of frames queued for one document from all its sessions; past
    /// it their sockets wait (TCP pushes back on the clients). At least the
    /// largest frame.
    pub inbound_queue_bytes: usize,
    /// Bytes of updates queued for the node's group commit; past it
    /// documents wait for the store (and their sessions for them).
    pub append_queue_bytes: usize,
    /// How long the appender waits for more updates before committing a batch.
    /// Zero commits as soon as the previous commit finished, which already
    /// batches everything that arrived meanwhile.
    pub append_window: Duration,
    /// Most updates in one append transaction.
    pub append_max_batch: usize,
    /// Compact a document once its log tail holds this many rows …
    pub compact_after_updates: usize,
    /// … or this many bytes.
    pub compact_after_bytes: usize,
    /// How long a document with no session stays loaded.
    pub idle_unload: Duration,
    /// Largest awareness state (JSON) one client may publish.
    pub max_awareness_state_bytes: usize,
    /// Awareness client ids one session may own (a tab has one; a few allow
    /// several editors on one socket).
    pub max_awareness_clients_per_session: usize,
    /// Only this hub appends to the store: one embedded node holding its data
    /// folder's lock, or a PostgreSQL node holding the single-node claim.
    /// Every log row then passed through this hub's live documents, so a
    /// compaction encodes the live document instead of re-reading and
    /// replaying the log. Never set it for a cluster node: a row another node
    /// appended might be missing from the live document and so from the
    /// snapshot that replaces it.
    pub sole_writer: bool,
    /// An update another node published is appended by this node too when
    /// that node has not announced its commit within this time (it most
    /// likely died in between; appending twice is harmless).
    pub adopt_orphans_after: Duration,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            max_document_bytes: 64 * 1024 * 1024,
            outgoing_queue: 4096,
            outgoing_queue_bytes: 16 * 1024 * 1024,
            max_document_memory_bytes: 512 * 1024 * 1024,
            max_parked_bytes: 16 * 1024 * 1024,
            inbound_queue_bytes: 64 * 1024 * 1024,
            append_queue_bytes: 256 * 1024 * 1024,
            append_window: Duration::ZERO,
            append_max_batch: 1024,
            compact_after_updates: 2000,
            compact_after_bytes: 8 * 1024 * 1024,
            idle_unload: Duration::from_secs(30),
            max_awareness_state_bytes: 16 * 1024,
            max_awareness_clients_per_session: 8,
            sole_writer: false,
            adopt_orphans_after: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("document could not be loaded: {0}")]
    LoadFailed(String),
    #[error("the server is shutting down")]
    ShuttingDown,
    #[error("the document is closing or reloading; retry shortly")]
    Unavailable,
}

/// What a session may do and which extensions it opted in to.
#[derive(Debug, Clone)]
pub struct JoinOptions {
    /// Send Quire durable acks (message 100) to this session.
    pub durable_acks: bool,
    /// Whether updates from this session are applied. A read-only session's
    /// updates are refused with a permission-denied message.
    pub can_write: bool,
    /// On whose behalf the session runs, so that revoking that user's access
    /// or sign-in can find it. The hub never interprets it.
    pub principal: Option<Principal>,
    /// The most stored bytes this session's updates may grow the document
    /// to, when that is less than [`HubConfig::max_document_bytes`]: e.g.
    /// what its owner's storage quota leaves. Updates past it are refused
    /// (4413) with a reason saying so.
    pub quota_bytes: Option<usize>,
    /// The account the session's presence belongs to: the `user` field of
    /// every awareness state it sends is replaced by this one's. `None`
    /// (tests, the load generator) leaves states as sent.
    pub identity: Option<Identity>,
}

impl Default for JoinOptions {
    fn default() -> Self {
        JoinOptions {
            durable_acks: false,
            can_write: true,
            principal: None,
            quota_bytes: None,
            identity: None,
        }
    }
}

/// Who a session's presence shows, taken from the signed-in account (plain
/// data: the hub knows no accounts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: UserId,
    /// Display name.
    pub name: String,
    /// Presence colour, `#rrggbb`.
    pub color: String,
}

/// The user and sign-in a session was opened under. Opaque ids: the hub
/// knows nothing of cookies or tokens, only which sessions to close or
/// downgrade when the HTTP layer says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user: UserId,
    pub auth_session: AuthSessionId,
}

/// A change to what one user may do in one document, applied to their live
/// sessions there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessChange {
    /// Updates are refused from now on (permission-denied, with a reason
    /// saying so), while the session keeps receiving everyone else's.
    ReadOnly,
    /// Closed with [`CloseCode::AccessChanged`]: the client reconnects and
    /// joins with its new (greater) rights.
    Reconnect,
    /// Closed with [`CloseCode::Forbidden`]: access is gone.
    Revoked,
}

/// Which sessions [`Hub::close_sessions`] closes, on every live document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionTarget {
    /// Those opened under one sign-in (sign-out, refresh-token reuse).
    AuthSession(AuthSessionId),
    /// Every session of a user (sign out everywhere).
    User(UserId),
}

impl SessionTarget {
    pub(crate) fn matches(&self, p: &Principal) -> bool {
        match self {
            SessionTarget::AuthSession(s) => &p.auth_session == s,
            SessionTarget::User(u) => &p.user == u,
        }
    }
}

/// One live session's principal and rights, for checking them again against
/// the store (after this node may have missed a change of them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveSession {
    pub principal: Principal,
    pub can_write: bool,
}

/// A present account, read from the `user` field the hub bound to an
/// awareness state.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Presence {
    pub id: UserId,
    pub name: String,
    /// `#rrggbb`.
    pub color: String,
}

/// Cheap-clone handle to the node's live documents.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<HubInner>,
}

pub(crate) struct HubInner {
    pub(crate) store: Arc<dyn DocStore>,
    pub(crate) bus: Arc<dyn Bus>,
    pub(crate) config: HubConfig,
    pub(crate) docs: Mutex<HashMap<DocId, DocHandle>>,
    pub(crate) appender: Appender<DocCommand>,
    pub(crate) cancel: CancellationToken,
    pub(crate) tracker: TaskTracker,
    pub(crate) metrics: crate::metrics::Hot,
}

impl Hub {
    pub fn new(store: Arc<dyn DocStore>, bus: Arc<dyn Bus>, config: HubConfig) -> Hub {
        let tracker = TaskTracker::new();
        let appender = Appender::start(store.clone(), &config, &tracker);
        Hub {
            inner: Arc::new(HubInner {
                store,
                bus,
                config,
                docs: Mutex::new(HashMap::new()),
                appender,
                cancel: CancellationToken::new(),
                tracker,
                metrics: crate::metrics::Hot::register(),
            }),
        }
    }

    pub fn config(&self) -> &HubConfig {
        &self.inner.config
    }

    pub fn store(&self) -> &Arc<dyn DocStore> {
        &self.inner.store
    }

    pub fn bus(&self) -> &Arc<dyn Bus> {
        &self.inner.bus
    }

    /// Joins a session to a document, loading it if needed. The session's
    /// first outgoing frames are the server's sync step 1 and the current
    /// presence.
    pub async fn join(&self, doc: &DocId, opts: JoinOptions) -> Result<Session, HubError> {
        if self.inner.cancel.is_cancelled() {
            return Err(HubError::ShuttingDown);
        }
        let (reply_tx, reply_rx) = oneshot::channel();
        let (out_tx, out_rx) = queues::Outbox::new(
            self.inner.config.outgoing_queue,
            self.inner.config.outgoing_queue_bytes,
        );
        let (close_tx, close_rx) = oneshot::channel();
        let conn = conn::next_conn_id();
        let handle = {
            let mut docs = self.inner.docs.lock().unwrap_or_else(|e| e.into_inner());
            let handle = docs
                .entry(doc.clone())
                .or_insert_with(|| doc::spawn(self.inner.clone(), doc.clone()))
                .clone();
            // Sent under the map lock: an actor that decides to unload takes the
            // same lock and looks for pending joins first, so none is lost.
            handle.send(DocCommand::Join {
                conn,
                opts,
                out: out_tx,
                close: close_tx,
                reply: reply_tx,
            });
            handle
        };
        match reply_rx.await {
            Ok(Ok(())) => Ok(Session::new(conn, handle, out_rx, close_rx)),
            Ok(Err(e)) => Err(e),
            Err(_) if self.inner.cancel.is_cancelled() => Err(HubError::ShuttingDown),
            Err(_) => Err(HubError::Unavailable),
        }
    }

    /// Number of documents loaded on this node.
    pub fn live_documents(&self) -> usize {
        self.inner
            .docs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Who is in a document now, one entry per account (empty when it is
    /// not live here).
    pub async fn presence(&self, doc: &DocId) -> Vec<Presence> {
        let Some(handle) = self.handle(doc) else {
            return Vec::new();
        };
        let (tx, rx) = oneshot::channel();
        handle.send(DocCommand::Presence { reply: tx });
        rx.await.unwrap_or_default()
    }

    /// Every live document with the sessions on it that have a principal.
    /// A document still loading answers once it has loaded; one that is
    /// going away is left out.
    pub async fn live_sessions(&self) -> Vec<(DocId, Vec<LiveSession>)> {
        let handles: Vec<(DocId, DocHandle)> = self
            .inner
            .docs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(id, h)| (id.clone(), h.clone()))
            .collect();
        let mut replies = Vec::with_capacity(handles.len());
        for (id, h) in handles {
            let (tx, rx) = oneshot::channel();
            h.send(DocCommand::Sessions { reply: tx });
            replies.push((id, rx));
        }
        let mut live = Vec::with_capacity(replies.len());
        for (id, rx) in replies {
            if let Ok(sessions) = rx.await {
                live.push((id, sessions));
            }
        }
        live
    }

    /// Applies an access change to `user`'s live sessions on `doc`; returns
    /// how many sessions it touched, once the document has applied it (so a
    /// frame the client sends after this returns is judged by the new rights).
    pub async fn change_access(&self, doc: &DocId, user: &UserId, change: AccessChange) -> usize {
        let Some(handle) = self.handle(doc) else {
            return 0;
        };
        let (tx, rx) = oneshot::channel();
        handle.send(DocCommand::ChangeAccess {
            user: user.clone(),
            change,
            reply: tx,
        });
        rx.await.unwrap_or(0)
    }

    /// Closes the matching sessions on every live document with `frame`;
    /// returns how many, once every document has closed them.
    pub async fn close_sessions(&self, target: SessionTarget, frame: CloseFrame) -> usize {
        let handles: Vec<DocHandle> = self
            .inner
            .docs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        let mut replies = Vec::with_capacity(handles.len());
        for h in handles {
            let (tx, rx) = oneshot::channel();
            h.send(DocCommand::CloseSessions {
                target: target.clone(),
                frame: frame.clone(),
                reply: tx,
            });
            replies.push(rx);
        }
        let mut closed = 0;
        for rx in replies {
            closed += rx.await.unwrap_or(0);
        }
        closed
    }

    /// Closes every session of a live document with `frame` and unloads it
    /// once its pending appends have committed; returns when it is gone. Used
    /// before deleting a document.
    pub async fn evict(&self, doc: &DocId, frame: CloseFrame) {
        let Some(handle) = self.handle(doc) else {
            return;
        };
        let (tx, rx) = oneshot::channel();
        handle.send(DocCommand::Evict { frame, done: tx });
        let _ = rx.await;
    }

    fn handle(&self, doc: &DocId) -> Option<DocHandle> {
        self.inner
            .docs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(doc)
            .cloned()
    }

    /// Graceful shutdown: refuses new joins, closes every session with "going
    /// away" (clients reconnect elsewhere), commits every pending append, and
    /// returns when all of that is done.
    pub async fn shutdown(&self) {
        self.inner.cancel.cancel();
        let handles: Vec<DocHandle> = self
            .inner
            .docs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        for h in handles {
            h.send(DocCommand::Shutdown);
        }
        self.inner.tracker.close();
        self.inner.tracker.wait().await;
    }
}

impl Drop for HubInner {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl HubConfig {
    pub(crate) fn content_limits(&self) -> content::ContentLimits {
        content::ContentLimits {
            max_decoded_bytes: self.max_document_memory_bytes,
            max_parked_bytes: self.max_parked_bytes,
        }
    }
}
