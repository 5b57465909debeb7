//! One live document: an actor task that owns the yrs `Doc`, its presence and
//! its sessions. Everything that touches the document goes through this task,
//! so no lock is held across an await and the order of updates is the order
//! of the log.

use std::collections::{HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use tokio::time::Instant;

use bytes::Bytes;
use futures_util::FutureExt;
use quire_bus::{BusEvent, BusPayload, Origin, Subscription};
use quire_protocol::{
    AwarenessUpdate, Message, SyncMessage, decode_state_vector, encode_ack, encode_awareness,
    encode_permission_denied, encode_sync_step1, encode_sync_step2, encode_update,
};
use quire_store::{StoreError, StoredDoc};
use quire_types::{DocId, Seq, UserId};
use tokio::sync::{mpsc, oneshot};
use yrs::updates::encoder::Encode;
use yrs::{ClientID, ReadTxn, StateVector, Transact};

use crate::appender::{AppendFailure, AppendOutcome, AppendRequest};
use crate::awareness::{self, Awareness, RelayPayload};
use crate::compaction::{self, CompactionResult};
use crate::conn::{CloseCode, CloseFrame, ConnId};
use crate::content::{Content, Failure, Settled, Trust};
use crate::heal::{HealCause, HealTracker};
use crate::metrics as m;
use crate::queues::{InFrame, Inbox, Outbox, Refused};
use crate::update_scan::Refusal;
use crate::{AccessChange, HubError, HubInner, JoinOptions, LiveSession, Presence, SessionTarget};

/// Frames from all sessions of one document waiting for the actor. Small: a
/// full queue makes readers wait, which is the backpressure we want.
const FRAME_QUEUE: usize = 256;

/// Delay before retrying a heal whose log read failed.
const HEAL_RETRY: std::time::Duration = std::time::Duration::from_millis(500);

/// An update applied from the bus whose commit its origin has not announced.
struct PeerUpdate {
    /// The run of the node that published it: a `Committed` from a later
    /// run under the same id (counting from 1 again) says nothing about it.
    origin: Origin,
    counter: u64,
    /// Its lowest clock per Yjs client.
    lower: StateVector,
    update: Bytes,
    received: Instant,
}

/// Where an update applied to the live document came from, for what follows
/// its application (relay, append, acknowledgement).
#[derive(Debug)]
pub(crate) enum Source {
    /// A session's update: the `count`-th update-bearing message it sent,
    /// and, for a sync `Update` message, the frame to relay as it came.
    Client {
        conn: ConnId,
        count: u64,
        frame: Option<Bytes>,
        received_at: Instant,
    },
    /// Another node's.
    Bus {
        origin: Origin,
        counter: u64,
        received_at: Instant,
    },
    /// A row of the log (a load, or a heal).
    Log,
}

/// An acknowledgement a session waits for: `count` of its updates are
/// durable once `needed` appends have committed ([`PARKED`] while one of
/// them waits for its dependencies).
#[derive(Debug, Clone, Copy)]
struct AckWait {
    needed: u64,
    count: u64,
    at: Instant,
}

/// `AckWait::needed` of an update that is parked (see [`crate::content`]).
const PARKED: u64 = u64::MAX;

pub(crate) enum DocCommand {
    Join {
        conn: ConnId,
        opts: JoinOptions,
        out: Outbox,
        close: oneshot::Sender<CloseFrame>,
        reply: oneshot::Sender<Result<(), HubError>>,
    },
    Leave {
        conn: ConnId,
        /// Frames the session handed over before leaving.
        frames_sent: u64,
    },
    /// What the group commit did with this document's appends.
    Appended(AppendOutcome),
    Compacted(Result<Option<CompactionResult>, StoreError>),
    Healed(Result<StoredDoc, StoreError>),
    Presence {
        reply: oneshot::Sender<Vec<Presence>>,
    },
    Sessions {
        reply: oneshot::Sender<Vec<LiveSession>>,
    },
    Evict {
        frame: CloseFrame,
        done: oneshot::Sender<()>,
    },
    ChangeAccess {
        user: UserId,
        change: AccessChange,
        reply: oneshot::Sender<usize>,
    },
    CloseSessions {
        target: SessionTarget,
        frame: CloseFrame,
        reply: oneshot::Sender<usize>,
    },
    Shutdown,
}

impl From<AppendOutcome> for DocCommand {
    fn from(outcome: AppendOutcome) -> Self {
        DocCommand::Appended(outcome)
    }
}

#[derive(Clone)]
pub(crate) struct DocHandle {
    control: flume::Sender<DocCommand>,
    pub(crate) inbox: Inbox,
}

impl DocHandle {
    pub fn send(&self, cmd: DocCommand) {
        // The actor is gone only after it removed itself from the hub's map;
        // a command that races with that is answered by dropping its reply
        // channel, which callers treat as "gone".
        let _ = self.control.send(cmd);
    }
}

pub(crate) fn spawn(hub: Arc<HubInner>, id: DocId) -> DocHandle {
    // flume's queue allocates nothing until used; tokio's unbounded channel
    // allocates a block of 32 commands at once, kilobytes per idle document.
    let (control_tx, control_rx) = flume::unbounded();
    let (inbox, frames_rx) = Inbox::new(FRAME_QUEUE, hub.config.inbound_queue_bytes);
    let handle = DocHandle {
        control: control_tx.clone(),
        inbox,
    };
    let tracker = hub.tracker.clone();
    tracker.spawn(async move {
        let started = Instant::now();
        match load(&hub, &id).await {
            Ok((content, stored, sub)) => {
                metrics::counter!(m::DOCUMENT_LOADS_TOTAL, "outcome" => "ok").increment(1);
                metrics::histogram!(m::DOCUMENT_LOAD_SECONDS)
                    .record(started.elapsed().as_secs_f64());
                metrics::gauge!(m::DOCUMENTS_LIVE).increment(1.0);
                let (hub2, id2) = (hub.clone(), id.clone());
                let actor = DocActor::new(
                    hub, id, content, &stored, sub, control_tx, control_rx, frames_rx,
                );
                // Last line of defence: an actor that panics anyway must not
                // leave a dead entry that refuses every later join. Its
                // sessions see their channels close and reconnect; the next
                // join reloads from the store.
                if AssertUnwindSafe(actor.run()).catch_unwind().await.is_err() {
                    tracing::error!(doc = %id2, "document actor panicked; unloading it");
                    hub2.docs
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&id2);
                }
                metrics::gauge!(m::DOCUMENTS_LIVE).decrement(1.0);
            }
            Err(e) => {
                metrics::counter!(m::DOCUMENT_LOADS_TOTAL, "outcome" => "failed").increment(1);
                tracing::error!(doc = %id, error = %e, "document load failed");
                refuse_and_remove(&hub, &id, control_rx, e);
            }
        }
    });
    handle
}

async fn load(
    hub: &HubInner,
    id: &DocId,
) -> Result<(Content<Source>, StoredDoc, Subscription), HubError> {
    // Subscribe before loading: an update another node publishes while we
    // load is either in the load or delivered on the subscription. One
    // published before we subscribed but committed after we loaded is
    // caught by the first-contact heal (see `heal`).
    let sub = hub
        .bus
        .subscribe(id)
        .await
        .map_err(|e| HubError::LoadFailed(e.to_string()))?;
    let stored = hub
        .store
        .load(id)
        .await
        .map_err(|e| HubError::LoadFailed(e.to_string()))?;
    let limits = hub.config.content_limits();
    let (content, stored) = tokio::task::spawn_blocking(move || {
        let content = Content::load(&stored, limits, || Source::Log);
        (content, stored)
    })
    .await
    .map_err(|e| HubError::LoadFailed(e.to_string()))?;
    let content = content.map_err(|e| HubError::LoadFailed(e.to_string()))?;
    if content.parked() > 0 {
        tracing::warn!(doc = %id, parked = content.parked(),
            "stored updates wait for content the log does not have");
    }
    Ok((content, stored, sub))
}

/// A failed load answers every waiting joiner with the error and leaves no
/// document behind, so nothing empty can ever be written over the real one.
fn refuse_and_remove(
    hub: &HubInner,
    id: &DocId,
    control: flume::Receiver<DocCommand>,
    err: HubError,
) {
    let msg = err.to_string();
    let mut docs = hub.docs.lock().unwrap_or_else(|e| e.into_inner());
    docs.remove(id);
    while let Ok(cmd) = control.try_recv() {
        match cmd {
            DocCommand::Join { reply, .. } => {
                let _ = reply.send(Err(HubError::LoadFailed(msg.clone())));
            }
            DocCommand::Evict { done, .. } => {
                let _ = done.send(());
            }
            _ => {}
        }
    }
}

struct Conn {
    out: Outbox,
    close: Option<oneshot::Sender<CloseFrame>>,
    opts: JoinOptions,
    /// Update-bearing messages received from this session.
    received: u64,
    pending_acks: VecDeque<AckWait>,
    /// How many of `pending_acks` are [`PARKED`]: only then is the queue
    /// searched (it holds up to a window of acks, 1,024 for the bench).
    parked_acks: usize,
    frames_processed: u64,
    /// The session left after sending this many frames; remove it once they
    /// are processed.
    leaving_after: Option<u64>,
}

struct DocActor {
    hub: Arc<HubInner>,
    id: DocId,
    content: Content<Source>,
    conns: HashMap<ConnId, Conn>,
    awareness: Awareness,
    /// Appends handed to the appender, and those committed. Equal means the
    /// document has nothing that is not durable.
    submitted: u64,
    committed: u64,
    /// An append of this document failed or was refused: the live document
    /// holds updates no store has, and `committed` counts them all the same
    /// (so that the document can unload). From then on nothing is
    /// acknowledged: an ack waiting for those appends, or one for a no-op
    /// update that restates them (taken from the queue while closing),
    /// would promise an update that is nowhere durable. The sessions are
    /// closing; their clients re-send what was not acknowledged.
    unstored: bool,
    /// Estimated stored size, for the document size limit.
    doc_bytes: usize,
    snapshot_bytes: usize,
    /// The log row the stored snapshot covers up to (the compaction base).
    snapshot_upto: Option<Seq>,
    tail_rows: usize,
    tail_bytes: usize,
    compacting: bool,
    /// With a sole writer ([`HubConfig::sole_writer`]): every log row up to
    /// this one is in the live document, because it was loaded or committed
    /// here. `None` when that is not known (a cluster node, or a commit whose
    /// rows did not follow on, e.g. from an earlier incarnation of this
    /// document); compaction then re-reads the log.
    live_upto: Option<Seq>,
    bus_sub: Subscription,
    /// Which bus messages were lost, and when to re-read the log for them.
    heals: HealTracker,
    /// A heal (log read) is in flight; `heal_again` asks for another one
    /// when it returns, because it may have started before what we now wait
    /// for had committed.
    healing: bool,
    heal_again: bool,
    /// Every log row up to this one has been applied (from the load or a
    /// heal), so a heal reads only the rows after it.
    covered_seq: Seq,
    /// Updates applied from the bus that their origin has not yet announced
    /// committed: `(origin, counter, lowest clock per Yjs client)`. Until it
    /// does, they may exist nowhere but in memory (an origin that dies
    /// before its commit never makes them durable), so they must not count
    /// as stored when a client asks what we lack: see [`Self::durable_state_vector`].
    /// One still here after [`HubConfig::adopt_orphans_after`] is appended
    /// by this node ([`Self::adopt_orphans`]).
    ///
    /// [`HubConfig::adopt_orphans_after`]: crate::HubConfig::adopt_orphans_after
    peer_uncommitted: VecDeque<PeerUpdate>,
    /// Counter of the last message this node published for the document.
    last_counter: u64,
    /// Published updates not yet committed: `(append number, bus counter)`.
    /// When their appends commit, peers are told with `Committed`.
    uncommitted: VecDeque<(u64, u64)>,
    /// The last `covers` announced.
    announced: u64,
    idle_since: Option<tokio::time::Instant>,
    /// Set once the document is closing (eviction, shutdown, storage failure).
    closing: bool,
    /// `begin_close` is applying the frames still queued.
    draining: bool,
    exit_waiters: Vec<oneshot::Sender<()>>,
    control_tx: flume::Sender<DocCommand>,
    control: flume::Receiver<DocCommand>,
    frames: mpsc::Receiver<InFrame>,
}

enum Flow {
    Continue,
    Exit,
}

impl DocActor {
    #[allow(clippy::too_many_arguments)]
    fn new(
        hub: Arc<HubInner>,
        id: DocId,
        content: Content<Source>,
        stored: &StoredDoc,
        bus_sub: Subscription,
        control_tx: flume::Sender<DocCommand>,
        control: flume::Receiver<DocCommand>,
        frames: mpsc::Receiver<InFrame>,
    ) -> Self {
        let snapshot_bytes = stored.snapshot.as_ref().map_or(0, |s| s.data.len());
        let tail_bytes = stored.tail_bytes();
        let live_upto = hub.config.sole_writer.then(|| stored.last_seq());
        DocActor {
            hub,
            id,
            content,
            conns: HashMap::new(),
            awareness: Awareness::default(),
            submitted: 0,
            committed: 0,
            unstored: false,
            doc_bytes: snapshot_bytes + tail_bytes,
            snapshot_bytes,
            snapshot_upto: stored.snapshot.as_ref().map(|s| s.upto),
            tail_rows: stored.tail.len(),
            tail_bytes,
            compacting: false,
            live_upto,
            bus_sub,
            heals: HealTracker::default(),
            healing: false,
            heal_again: false,
            covered_seq: stored.last_seq(),
            peer_uncommitted: VecDeque::new(),
            last_counter: 0,
            uncommitted: VecDeque::new(),
            announced: 0,
            idle_since: Some(Instant::now()),
            closing: false,
            draining: false,
            exit_waiters: Vec::new(),
            control_tx,
            control,
            frames,
        }
    }

    async fn run(mut self) {
        let cancel = self.hub.cancel.clone();
        self.maybe_compact();
        loop {
            let idle_deadline = self
                .idle_since
                .map(|t| t + self.hub.config.idle_unload)
                .unwrap_or_else(|| Instant::now() + std::time::Duration::from_secs(3600));
            let heal_deadline = self.heals.deadline();
            let adopt_deadline = self
                .peer_uncommitted
                .front()
                .map(|p| p.received + self.hub.config.adopt_orphans_after);
            let flow = tokio::select! {
                biased;
                Ok(cmd) = self.control.recv_async() => self.on_command(cmd).await,
                Some((conn, frame, _budget)) = self.frames.recv(), if !self.closing => {
                    // `_budget` returns the frame's bytes to the inbound
                    // queue once it is handled.
                    self.on_frame(conn, frame).await;
                    Flow::Continue
                }
                Some(ev) = self.bus_sub.events.recv() => {
                    self.on_bus(ev).await;
                    Flow::Continue
                }
                _ = sleep_until_some(heal_deadline), if heal_deadline.is_some() => {
                    if let Some(cause) = self.heals.on_deadline(Instant::now()) {
                        self.heal(cause);
                    }
                    Flow::Continue
                }
                _ = sleep_until_some(adopt_deadline), if adopt_deadline.is_some() => {
                    self.adopt_orphans().await;
                    Flow::Continue
                }
                _ = cancel.cancelled(), if !self.closing => {
                    self.begin_close(CloseFrame::new(CloseCode::GoingAway, "server shutting down")).await;
                    Flow::Continue
                }
                _ = tokio::time::sleep_until(idle_deadline), if self.idle_since.is_some() => {
                    // Unloading would forget updates only memory may hold.
                    if self.is_quiescent() && self.peer_uncommitted.is_empty() && self.try_unload() { Flow::Exit } else {
                        self.idle_since = self.conns.is_empty().then(Instant::now);
                        Flow::Continue
                    }
                }
            };
            if matches!(flow, Flow::Exit) {
                break;
            }
            if self.closing && self.is_quiescent() && self.try_unload() {
                break;
            }
        }
        for w in self.exit_waiters.drain(..) {
            let _ = w.send(());
        }
    }

    fn is_quiescent(&self) -> bool {
        self.conns.is_empty() && self.submitted == self.committed && !self.compacting
    }

    /// Removes the document from the hub unless a join is waiting. Joins are
    /// sent under the same lock, so after this returns `true` none can arrive.
    fn try_unload(&mut self) -> bool {
        let mut docs = self.hub.docs.lock().unwrap_or_else(|e| e.into_inner());
        if !self.control.is_empty() {
            return false;
        }
        docs.remove(&self.id);
        tracing::debug!(doc = %self.id, "document unloaded");
        true
    }

    /// Counts a batch's outcome for this document: acknowledges what is
    /// durable, or drops the live copy when what it holds was not stored.
    async fn on_appended(&mut self, outcome: AppendOutcome) {
        match outcome {
            AppendOutcome::Committed {
                rows,
                bytes,
                last_seq,
            } => {
                self.committed += rows as u64;
                self.live_upto = self
                    .live_upto
                    .filter(|upto| upto.0 + rows as i64 == last_seq.0)
                    .map(|_| last_seq);
                self.tail_rows += rows;
                self.tail_bytes += bytes;
                self.release_acks();
                self.announce_committed();
                self.maybe_compact();
            }
            AppendOutcome::Failed { rows, why } => {
                self.committed += rows as u64;
                self.unstored = true;
                // The live document now holds updates that are not durable.
                // Drop it: clients keep whatever was not acknowledged and
                // re-send it on reconnect, and the next load starts from what
                // storage really has.
                let reason = match why {
                    AppendFailure::Full => "storage full; reconnect to resync",
                    AppendFailure::Failed => "storage failed; reconnect to resync",
                };
                self.begin_close(CloseFrame::new(CloseCode::InternalError, reason))
                    .await;
            }
            AppendOutcome::DocumentGone { rows } => {
                // Counted so the document can unload, never acknowledged:
                // those updates were not stored. Closing without taking the
                // frames still queued (as `begin_close` otherwise does):
                // they would only be refused too.
                self.committed += rows as u64;
                self.unstored = true;
                if !self.closing {
                    tracing::info!(doc = %self.id, "document deleted while live; closing its sessions");
                    self.closing = true;
                    self.begin_close(CloseFrame::new(CloseCode::NotFound, "document deleted"))
                        .await;
                }
            }
        }
    }

    async fn on_command(&mut self, cmd: DocCommand) -> Flow {
        match cmd {
            DocCommand::Join {
                conn,
                opts,
                out,
                close,
                reply,
            } => {
                if self.closing {
                    let _ = reply.send(Err(HubError::Unavailable));
                    return Flow::Continue;
                }
                self.join(conn, opts, out, close);
                let _ = reply.send(Ok(()));
            }
            DocCommand::Leave { conn, frames_sent } => match self.conns.get_mut(&conn) {
                // Frames it sent are still queued: apply them first.
                Some(c) if c.frames_processed < frames_sent => c.leaving_after = Some(frames_sent),
                Some(_) => self.remove_conn(conn),
                None => {}
            },
            DocCommand::Appended(outcome) => self.on_appended(outcome).await,
            DocCommand::Compacted(result) => {
                self.compacting = false;
                match result {
                    Ok(Some(r)) => {
                        self.snapshot_upto = Some(r.upto);
                        self.tail_rows = self.tail_rows.saturating_sub(r.rows);
                        self.tail_bytes = self.tail_bytes.saturating_sub(r.bytes);
                        self.snapshot_bytes = r.snapshot_bytes;
                        self.doc_bytes = r.snapshot_bytes + self.tail_bytes;
                    }
                    Ok(None) => {}
                    Err(e) => tracing::warn!(doc = %self.id, error = %e, "compaction failed"),
                }
            }
            DocCommand::Healed(result) => {
                self.healing = false;
                match result {
                    Ok(stored) => self.apply_healed(stored).await,
                    Err(e) => {
                        // Try again (paced by the heal task): a missed update
                        // must not stay missing because the store hiccupped.
                        tracing::warn!(doc = %self.id, error = %e, "heal failed");
                        self.heal_again = true;
                    }
                }
                if std::mem::take(&mut self.heal_again) && !self.closing {
                    self.start_heal();
                }
            }
            DocCommand::Presence { reply } => {
                let _ = reply.send(self.awareness.presence());
            }
            DocCommand::Sessions { reply } => {
                let live = self
                    .conns
                    .values()
                    .filter_map(|c| {
                        Some(LiveSession {
                            principal: c.opts.principal.clone()?,
                            can_write: c.opts.can_write,
                        })
                    })
                    .collect();
                let _ = reply.send(live);
            }
            DocCommand::Evict { frame, done } => {
                self.exit_waiters.push(done);
                self.begin_close(frame).await;
            }
            DocCommand::ChangeAccess {
                user,
                change,
                reply,
            } => {
                let _ = reply.send(self.change_access(&user, change));
            }
            DocCommand::CloseSessions {
                target,
                frame,
                reply,
            } => {
                let matching: Vec<ConnId> = self
                    .conns
                    .iter()
                    .filter(|(_, c)| c.opts.principal.as_ref().is_some_and(|p| target.matches(p)))
                    .map(|(id, _)| *id)
                    .collect();
                for id in &matching {
                    self.close_conn(*id, frame.clone());
                }
                let _ = reply.send(matching.len());
            }
            DocCommand::Shutdown => {
                self.begin_close(CloseFrame::new(
                    CloseCode::GoingAway,
                    "server shutting down",
                ))
                .await;
            }
        }
        Flow::Continue
    }

    /// Applies a change of rights to one user's sessions. Frames of theirs
    /// still queued are judged afterwards, by the new rights: the actor
    /// takes control commands before frames.
    fn change_access(&mut self, user: &UserId, change: AccessChange) -> usize {
        let matching: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| c.opts.principal.as_ref().is_some_and(|p| &p.user == user))
            .map(|(id, _)| *id)
            .collect();
        for id in &matching {
            match change {
                AccessChange::ReadOnly => {
                    if let Some(c) = self.conns.get_mut(id) {
                        c.opts.can_write = false;
                    }
                    self.send_to(*id, encode_permission_denied("access changed: read-only"));
                }
                AccessChange::Reconnect => self.close_conn(
                    *id,
                    CloseFrame::new(CloseCode::AccessChanged, "access changed; reconnect"),
                ),
                AccessChange::Revoked => {
                    self.close_conn(*id, CloseFrame::new(CloseCode::Forbidden, "access revoked"))
                }
            }
        }
        matching.len()
    }

    /// Stops taking frames and closes every session with `frame`. Frames
    /// already received are applied first: on a graceful shutdown nothing a
    /// client managed to send is dropped.
    ///
    /// A frame applied here may close the document itself (its append finds
    /// storage shut down): that inner close does not drain again, and the
    /// rest of the queue is dropped. (Draining in each inner close nested
    /// one close per queued frame: 256 levels of futures overflowed a
    /// worker's stack when a runtime shut down under a full queue.)
    async fn begin_close(&mut self, frame: CloseFrame) {
        if !self.closing && !self.draining {
            self.draining = true;
            while let Ok((conn, f, _budget)) = self.frames.try_recv() {
                self.on_frame(conn, f).await;
                if self.closing {
                    break;
                }
            }
            self.draining = false;
        }
        self.closing = true;
        let conns: Vec<ConnId> = self.conns.keys().copied().collect();
        for c in conns {
            self.close_conn(c, frame.clone());
        }
    }

    fn join(
        &mut self,
        conn: ConnId,
        opts: JoinOptions,
        out: Outbox,
        close: oneshot::Sender<CloseFrame>,
    ) {
        let sv = self.durable_state_vector().encode_v1();
        // The queue is empty; a presence too large for it is left for the
        // client to ask again (query-awareness).
        let _ = out.send(encode_sync_step1(&sv));
        if let Some(a) = self.awareness.full_update() {
            let _ = out.send(encode_awareness(&a));
        }
        self.conns.insert(
            conn,
            Conn {
                out,
                close: Some(close),
                opts,
                received: 0,
                pending_acks: VecDeque::new(),
                parked_acks: 0,
                frames_processed: 0,
                leaving_after: None,
            },
        );
        self.idle_since = None;
        metrics::gauge!(m::CONNECTIONS).increment(1.0);
    }

    async fn on_frame(&mut self, conn: ConnId, frame: Bytes) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return; // closed earlier; its last frames are moot
        };
        c.frames_processed += 1;
        self.handle_frame(conn, frame).await;
        if let Some(c) = self.conns.get(&conn)
            && c.leaving_after.is_some_and(|n| c.frames_processed >= n)
        {
            self.remove_conn(conn);
        }
    }

    /// The session is gone (its socket closed): forget it and its presence.
    fn remove_conn(&mut self, conn: ConnId) {
        if self.conns.remove(&conn).is_some() {
            metrics::gauge!(m::CONNECTIONS).decrement(1.0);
            self.remove_presence(conn);
        }
        if self.conns.is_empty() {
            self.idle_since = Some(Instant::now());
        }
    }

    async fn handle_frame(&mut self, conn: ConnId, frame: Bytes) {
        let msg = match Message::decode(&frame) {
            Ok(m) => m,
            Err(e) => {
                self.close_conn(
                    conn,
                    CloseFrame::new(CloseCode::Malformed, format!("malformed message: {e}")),
                );
                return;
            }
        };
        match msg {
            Message::Sync(SyncMessage::Step1(sv)) => {
                // Not yrs's decoder: it reserves for the declared count first.
                let sv: StateVector = match decode_state_vector(sv) {
                    Ok(entries) => entries
                        .into_iter()
                        .map(|(client, clock)| (ClientID::new(client), clock))
                        .collect(),
                    Err(e) => {
                        self.close_conn(
                            conn,
                            CloseFrame::new(
                                CloseCode::Malformed,
                                format!("malformed sync step 1: {e}"),
                            ),
                        );
                        return;
                    }
                };
                self.answer_step1(conn, &sv);
            }
            Message::Sync(SyncMessage::Step2(u)) => {
                let u = frame.slice_ref(u);
                self.on_client_update(conn, u, None).await;
            }
            Message::Sync(SyncMessage::Update(u)) => {
                let u = frame.slice_ref(u);
                // The received frame already is the broadcast encoding.
                self.on_client_update(conn, u, Some(frame.clone())).await;
            }
            Message::Awareness(a) => {
                let update = match AwarenessUpdate::decode(a) {
                    Ok(update) => update,
                    Err(e) => {
                        self.close_conn(
                            conn,
                            CloseFrame::new(
                                CloseCode::Malformed,
                                format!("malformed awareness update: {e}"),
                            ),
                        );
                        return;
                    }
                };
                let cfg = &self.hub.config;
                let identity = self.conns.get(&conn).and_then(|c| c.opts.identity.as_ref());
                let applied = self.awareness.apply(
                    awareness::Source::Session { conn, identity },
                    &update,
                    cfg.max_awareness_state_bytes,
                    cfg.max_awareness_clients_per_session,
                );
                if applied.refused > 0 {
                    metrics::counter!(m::AWARENESS_REFUSED_TOTAL).increment(applied.refused as u64);
                }
                let (out_frame, payload) = match applied.relay {
                    None => return,
                    Some(RelayPayload::Unchanged) => (frame.clone(), frame.slice_ref(a)),
                    Some(RelayPayload::Filtered(v)) => (encode_awareness(&v), Bytes::from(v)),
                };
                // Including the sender: stock clients drop a socket that hears
                // nothing for 30 s and rely on their own renewals coming back.
                self.broadcast(&out_frame, None);
                self.publish(BusPayload::Awareness(payload));
            }
            Message::QueryAwareness => {
                if let Some(a) = self.awareness.full_update() {
                    self.send_to(conn, encode_awareness(&a));
                }
            }
            // Server-to-client messages; a client has no business sending them.
            Message::PermissionDenied { .. } | Message::Ack { .. } => {}
        }
    }

    /// Answers a sync step 1 with everything the client lacks. One such
    /// reply at a time per session: while one is still queued, a further
    /// step 1 is answered by it (it holds everything up to when it was made,
    /// and everything since reaches the session as updates), so a client
    /// that asks again and again without reading costs one reply, not one
    /// per ask.
    fn answer_step1(&mut self, conn: ConnId, sv: &StateVector) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        if c.out.full_state_queued() {
            metrics::counter!(m::STEP1_COALESCED_TOTAL).increment(1);
            return;
        }
        let diff = self.content.doc().transact().encode_diff_v1(sv);
        if let Err(Refused::Full) = c.out.send_full_state(encode_sync_step2(&diff)) {
            self.close_conn(
                conn,
                CloseFrame::new(CloseCode::TooSlow, "socket too slow; reconnect to resync"),
            );
        }
    }

    /// An update from a session: sync step 2, or a sync update (`frame` is
    /// then the message as received, relayed as it is).
    async fn on_client_update(&mut self, conn: ConnId, update: Bytes, frame: Option<Bytes>) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.received += 1;
        let count = c.received;
        let can_write = c.opts.can_write;
        let quota = c.opts.quota_bytes;
        let received_at = Instant::now();
        if !can_write {
            self.on_read_only_update(conn, count, &update, frame.is_some(), received_at);
            return;
        }
        let size = self.doc_bytes + update.len();
        let refused = if size > self.hub.config.max_document_bytes {
            Some(("document_too_large", "document size limit reached"))
        } else if quota.is_some_and(|q| size > q) {
            Some((
                "quota",
                "storage quota reached: the document's owner has no room left",
            ))
        } else {
            None
        };
        if let Some((label, reason)) = refused {
            metrics::counter!(m::UPDATES_REFUSED_TOTAL, "reason" => label).increment(1);
            self.close_conn(conn, CloseFrame::new(CloseCode::DocumentTooLarge, reason));
            return;
        }
        let source = Source::Client {
            conn,
            count,
            frame,
            received_at,
        };
        self.ingest(update, source, Trust::Client, false).await;
    }

    /// A read-only session may answer the server's sync step 1 with a step 2
    /// of whatever it holds: normally nothing new (though Yjs puts the whole
    /// delete set in it). That is a harmless no-op and is acknowledged like
    /// one; an update that would change the document is refused, and never
    /// applied. A sync update message is something only a writer sends: it
    /// is refused without being decoded at all.
    fn on_read_only_update(
        &mut self,
        conn: ConnId,
        count: u64,
        update: &[u8],
        is_update_message: bool,
        received_at: Instant,
    ) {
        let changes = if is_update_message {
            Ok(true)
        } else {
            self.content.would_change(update)
        };
        match changes {
            Ok(false) => self.acknowledge(conn, count, received_at),
            Ok(true) => {
                metrics::counter!(m::UPDATES_REFUSED_TOTAL, "reason" => "read_only").increment(1);
                self.send_to(
                    conn,
                    encode_permission_denied("read-only access: update refused"),
                );
            }
            Err(refusal) => self.refuse(conn, &refusal),
        }
    }

    /// Offers an update to the content (see [`crate::content`]) and carries
    /// out what follows for it and for every parked update it unblocked.
    /// Returns whether any of them changed the document.
    async fn ingest(&mut self, update: Bytes, source: Source, trust: Trust, in_heal: bool) -> bool {
        let waiting = match &source {
            Source::Client {
                conn,
                count,
                received_at,
                ..
            } => Some((*conn, *count, *received_at)),
            _ => None,
        };
        let offered = self.content.offer(update, source, trust);
        if offered.parked {
            metrics::counter!(m::UPDATES_PARKED_TOTAL).increment(1);
            if let Some((conn, count, at)) = waiting
                && let Some(c) = self.conns.get_mut(&conn)
            {
                c.pending_acks.push_back(AckWait {
                    needed: PARKED,
                    count,
                    at,
                });
                c.parked_acks += 1;
            }
        }
        let mut changed = false;
        for settled in offered.settled {
            changed |= Box::pin(self.settle(settled, in_heal)).await;
            if self.closing && self.unstored {
                break;
            }
        }
        changed
    }

    /// What follows an update's application (or refusal): relay it, store
    /// it, acknowledge it. Returns whether it changed the document.
    async fn settle(&mut self, s: Settled<Source>, in_heal: bool) -> bool {
        let Settled {
            tag: source,
            update,
            scan,
            result,
        } = s;
        let changed = match result {
            Ok(changed) => changed,
            Err(Failure::Refused(refusal)) => {
                match source {
                    Source::Client { conn, .. } => self.refuse(conn, &refusal),
                    Source::Bus { origin, .. } => {
                        metrics::counter!(m::UPDATES_REFUSED_TOTAL, "reason" => refusal.metric_label())
                            .increment(1);
                        tracing::warn!(doc = %self.id, %origin, reason = %refusal.reason(), "update from another node refused");
                    }
                    Source::Log => {
                        tracing::error!(doc = %self.id, reason = %refusal.reason(), "stored update refused");
                    }
                }
                return false;
            }
            Err(Failure::Broken) => {
                // yrs failed part-way through: the in-memory document can't
                // be trusted. The update was neither stored nor relayed, so
                // the store and the other clients are consistent; close
                // everyone and let the next join reload from the store.
                tracing::error!(doc = %self.id, "applying an update failed; reloading the document");
                metrics::counter!(m::UPDATES_REFUSED_TOTAL, "reason" => "panic").increment(1);
                if let Source::Client { conn, .. } = source {
                    self.close_conn(
                        conn,
                        CloseFrame::new(
                            CloseCode::Malformed,
                            "update rejected: it could not be applied",
                        ),
                    );
                }
                Box::pin(self.begin_close(CloseFrame::new(
                    CloseCode::InternalError,
                    "document reloading after an internal error",
                )))
                .await;
                return false;
            }
        };
        match source {
            Source::Client {
                conn,
                count,
                frame,
                received_at,
            } => {
                // An update that changed nothing may still carry content we
                // hold only because another node published it, uncommitted:
                // store it too.
                let restates_uncommitted =
                    !changed && !self.peer_uncommitted.is_empty() && !scan.is_empty();
                if changed || restates_uncommitted {
                    if restates_uncommitted {
                        tracing::debug!(doc = %self.id, conn, "storing a client update that restates updates another node has not committed");
                    }
                    let mut counter = None;
                    if changed {
                        self.hub.metrics.applied_client.increment(1);
                        let frame = frame.unwrap_or_else(|| encode_update(&update));
                        self.broadcast(&frame, Some(conn));
                        counter = self.publish(BusPayload::Update(update.clone()));
                    }
                    if !self.append(update).await {
                        return changed;
                    }
                    if let Some(counter) = counter {
                        self.uncommitted.push_back((self.submitted, counter));
                    }
                }
                self.acknowledge(conn, count, received_at);
            }
            Source::Bus {
                origin,
                counter,
                received_at,
            } => {
                if changed {
                    self.peer_uncommitted.push_back(PeerUpdate {
                        origin,
                        counter,
                        lower: scan.lower(),
                        update: update.clone(),
                        received: received_at,
                    });
                    self.hub.metrics.applied_bus.increment(1);
                    self.doc_bytes += update.len();
                    self.broadcast(&encode_update(&update), None);
                }
            }
            Source::Log => {
                // A heal relays one diff of everything it found; a stored
                // update that waited and is applied later is relayed itself.
                if changed && !in_heal {
                    self.broadcast(&encode_update(&update), None);
                }
            }
        }
        changed
    }

    /// Hands an update to the appender. `false` if storage is shut down (the
    /// document is then closing).
    async fn append(&mut self, update: Bytes) -> bool {
        self.doc_bytes += update.len();
        let req = AppendRequest {
            doc: self.id.clone(),
            update,
            reply: self.control_tx.clone(),
        };
        if self.hub.appender.append(req).await.is_err() {
            Box::pin(self.begin_close(CloseFrame::new(
                CloseCode::InternalError,
                "storage is shut down",
            )))
            .await;
            return false;
        }
        self.submitted += 1;
        true
    }

    /// Closes a session whose update was refused, with the code its reason
    /// calls for.
    fn refuse(&mut self, conn: ConnId, refusal: &Refusal) {
        metrics::counter!(m::UPDATES_REFUSED_TOTAL, "reason" => refusal.metric_label())
            .increment(1);
        let code = match refusal {
            Refusal::TooLargeInMemory => CloseCode::DocumentTooLarge,
            _ => CloseCode::Malformed,
        };
        self.close_conn(conn, CloseFrame::new(code, refusal.reason()));
    }

    /// Acknowledges the first `count` updates `conn` sent (if it opted in)
    /// once everything submitted so far has committed: an update that
    /// changed nothing may duplicate content that is itself still on its way
    /// to the store. An update of theirs that was parked is acknowledged
    /// once it was applied and stored ([`PARKED`]). Never once an append
    /// failed ([`Self::unstored`]).
    fn acknowledge(&mut self, conn: ConnId, count: u64, received_at: Instant) {
        if self.unstored {
            return;
        }
        let needed = self.submitted;
        let committed = self.committed;
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if !c.opts.durable_acks {
            return;
        }
        // This update waited: its place in the queue was kept.
        if c.parked_acks > 0
            && let Some(w) = c
                .pending_acks
                .iter_mut()
                .find(|w| w.count == count && w.needed == PARKED)
        {
            w.needed = needed;
            c.parked_acks -= 1;
            self.release_acks();
            return;
        }
        if needed <= committed && c.pending_acks.is_empty() {
            self.hub
                .metrics
                .ack_latency
                .record(received_at.elapsed().as_secs_f64());
            self.send_to(conn, encode_ack(count));
        } else {
            c.pending_acks.push_back(AckWait {
                needed,
                count,
                at: received_at,
            });
        }
    }

    fn release_acks(&mut self) {
        if self.unstored {
            return;
        }
        let committed = self.committed;
        let mut acks = Vec::new();
        for (id, c) in &mut self.conns {
            let mut last = None;
            while let Some(w) = c.pending_acks.front() {
                if w.needed > committed {
                    break;
                }
                self.hub
                    .metrics
                    .ack_latency
                    .record(w.at.elapsed().as_secs_f64());
                last = Some(w.count);
                c.pending_acks.pop_front();
            }
            if let Some(n) = last {
                acks.push((*id, n));
            }
        }
        for (id, n) in acks {
            self.send_to(id, encode_ack(n));
        }
    }

    async fn on_bus(&mut self, ev: BusEvent) {
        match ev {
            BusEvent::Message(msg) => {
                self.hub.metrics.bus_in.increment(1);
                let lag_micros = quire_bus::now_micros().saturating_sub(msg.sent_at_micros);
                self.hub.metrics.bus_lag.record(lag_micros as f64 / 1e6);
                let committed = match msg.payload {
                    BusPayload::Committed { covers } => Some(covers),
                    _ => None,
                };
                let now = Instant::now();
                if let Some(cause) = self
                    .heals
                    .on_message(&msg.origin, msg.counter, committed, now)
                {
                    self.heal(cause);
                }
                match msg.payload {
                    BusPayload::Update(u) => {
                        // The same checks as a client's update (its node ran
                        // them too), without the budgets: see `Trust::Peer`.
                        let source = Source::Bus {
                            origin: msg.origin.clone(),
                            counter: msg.counter,
                            received_at: now,
                        };
                        self.ingest(u, source, Trust::Peer, false).await;
                    }
                    BusPayload::Awareness(a) => {
                        let Ok(update) = AwarenessUpdate::decode(&a) else {
                            return;
                        };
                        let cfg = &self.hub.config;
                        let applied = self.awareness.apply(
                            awareness::Source::Bus,
                            &update,
                            cfg.max_awareness_state_bytes,
                            usize::MAX,
                        );
                        if applied.refused > 0 {
                            metrics::counter!(m::AWARENESS_REFUSED_TOTAL)
                                .increment(applied.refused as u64);
                        }
                        match applied.relay {
                            None => {}
                            Some(RelayPayload::Unchanged) => {
                                self.broadcast(&encode_awareness(&a), None)
                            }
                            Some(RelayPayload::Filtered(v)) => {
                                self.broadcast(&encode_awareness(&v), None)
                            }
                        }
                    }
                    BusPayload::Committed { covers } => {
                        self.peer_uncommitted
                            .retain(|p| p.origin != msg.origin || p.counter > covers);
                    }
                }
            }
            BusEvent::MayHaveMissed => self.heal(HealCause::Reconnect),
        }
    }

    /// Re-reads the log after bus messages may have been lost (see
    /// [`crate::heal`] for when). Re-applying what we already have is
    /// harmless. A heal asked for while one is in flight runs after it.
    fn heal(&mut self, cause: HealCause) {
        metrics::counter!(m::BUS_HEALS_TOTAL, "cause" => cause.label()).increment(1);
        tracing::debug!(doc = %self.id, cause = cause.label(), "healing from the log");
        if self.healing {
            self.heal_again = true;
        } else {
            self.start_heal();
        }
    }

    fn start_heal(&mut self) {
        self.healing = true;
        let store = self.hub.store.clone();
        let id = self.id.clone();
        let after = self.covered_seq;
        let reply = self.control_tx.clone();
        self.hub.tracker.spawn(async move {
            let r = store.tail(&id, after).await;
            if r.is_err() {
                tokio::time::sleep(HEAL_RETRY).await;
            }
            let _ = reply.send(DocCommand::Healed(r));
        });
    }

    async fn apply_healed(&mut self, stored: StoredDoc) {
        self.covered_seq = self.covered_seq.max(stored.last_seq());
        let before = self.content.state_vector();
        let parts: Vec<Bytes> = stored
            .snapshot
            .into_iter()
            .map(|s| s.data)
            .chain(stored.tail.into_iter().map(|e| e.update))
            .collect();
        let mut changed = false;
        for bytes in parts {
            changed |= self.ingest(bytes, Source::Log, Trust::Peer, true).await;
            if self.closing {
                return;
            }
        }
        if changed {
            metrics::counter!(m::HEALED_UPDATES_TOTAL).increment(1);
            let diff = self.content.doc().transact().encode_diff_v1(&before);
            self.broadcast(&encode_update(&diff), None);
        }
    }

    /// Appends the updates from other nodes whose commit was not announced
    /// within [`HubConfig::adopt_orphans_after`]: their origin most likely
    /// died between publishing and committing, and if their author never
    /// comes back to re-send them, this node's memory (and its peers') is
    /// the only place they exist, while updates typed after them, stored and
    /// acknowledged, cannot be shown without them. Every survivor does this;
    /// appending an update twice is harmless. No acknowledgement waits on
    /// these appends.
    ///
    /// [`HubConfig::adopt_orphans_after`]: crate::HubConfig::adopt_orphans_after
    async fn adopt_orphans(&mut self) {
        let cutoff = Instant::now()
            .checked_sub(self.hub.config.adopt_orphans_after)
            .unwrap_or_else(Instant::now);
        while self
            .peer_uncommitted
            .front()
            .is_some_and(|p| p.received <= cutoff)
        {
            let Some(p) = self.peer_uncommitted.pop_front() else {
                break;
            };
            tracing::warn!(doc = %self.id, origin = %p.origin, counter = p.counter,
                "storing an update its origin published but never announced committed");
            metrics::counter!(m::ORPHANS_ADOPTED_TOTAL).increment(1);
            let req = AppendRequest {
                doc: self.id.clone(),
                update: p.update,
                reply: self.control_tx.clone(),
            };
            if self.hub.appender.append(req).await.is_err() {
                return;
            }
            self.submitted += 1;
        }
    }

    /// The state vector offered to a joining client (sync step 1): what we
    /// hold, less whatever another node published but has not committed. A
    /// client answers with everything past it, so an author whose node died
    /// before committing re-sends those updates here and we append them;
    /// offering the in-memory state instead would make its diff skip them,
    /// and acknowledge it, while no store held them (F7). Re-sent content we
    /// already hold is appended again, which is harmless: updates are
    /// idempotent.
    fn durable_state_vector(&self) -> StateVector {
        let mut sv = self.content.state_vector();
        for p in &self.peer_uncommitted {
            for (client, clock) in p.lower.iter() {
                // A client we hold nothing of is sent in full anyway.
                if sv.contains_client(client) {
                    sv.set_min(*client, *clock);
                }
            }
        }
        sv
    }

    /// Tells peers which of our published updates are now durable, so that
    /// one waiting to re-read the log for them knows it is time.
    fn announce_committed(&mut self) {
        let mut advanced = false;
        while let Some(&(n, _)) = self.uncommitted.front() {
            if n > self.committed {
                break;
            }
            self.uncommitted.pop_front();
            advanced = true;
        }
        if !advanced {
            return;
        }
        let covers = match self.uncommitted.front() {
            Some(&(_, counter)) => counter - 1,
            None => self.last_counter,
        };
        if covers > self.announced {
            self.announced = covers;
            self.publish(BusPayload::Committed { covers });
        }
    }

    fn maybe_compact(&mut self) {
        let cfg = &self.hub.config;
        let due = self.tail_rows >= cfg.compact_after_updates
            || self.tail_bytes >= cfg.compact_after_bytes;
        // Rewriting the snapshot costs its whole size. Waiting until the tail
        // is at least half of it keeps the total compaction work linear in a
        // document's history instead of quadratic (docs/benchmarks.md).
        let worth_it = self.tail_bytes * 2 >= self.snapshot_bytes;
        // Parked updates are not in the document (nor, from a client, in the
        // log yet); a snapshot made now could cover log rows it lacks.
        if self.compacting || !due || !worth_it || self.content.parked() > 0 {
            return;
        }
        self.compacting = true;
        let store = self.hub.store.clone();
        let id = self.id.clone();
        let reply = self.control_tx.clone();
        // Everything up to `upto` is in the live document: encode it (no log
        // read, no replay). Updates applied here but not committed yet may be
        // in it too; they come again in the tail after `upto`, and applying an
        // update twice changes nothing. Otherwise rebuild from the store.
        let live = match self.live_upto {
            Some(upto) if self.snapshot_upto.is_none_or(|base| base < upto) => {
                Some(compaction::Replacement {
                    base: self.snapshot_upto,
                    upto,
                    rows: self.tail_rows,
                    bytes: self.tail_bytes,
                    data: self
                        .content
                        .doc()
                        .transact()
                        .encode_state_as_update_v1(&StateVector::default()),
                })
            }
            _ => None,
        };
        let limits = self.hub.config.content_limits();
        self.hub.tracker.spawn(async move {
            let r = match live {
                Some(new) => compaction::store_snapshot(store, id, new).await,
                None => compaction::compact(store, id, limits).await,
            };
            let _ = reply.send(DocCommand::Compacted(r));
        });
    }

    /// Publishes to the other nodes; returns the message's counter.
    fn publish(&mut self, payload: BusPayload) -> Option<u64> {
        self.hub.metrics.bus_out.increment(1);
        match self.hub.bus.publish(&self.id, payload) {
            Ok(counter) => {
                self.last_counter = counter;
                Some(counter)
            }
            Err(e) => {
                tracing::warn!(doc = %self.id, error = %e, "bus publish failed");
                None
            }
        }
    }

    /// Queues one shared frame to every session but `except`. A session whose
    /// queue is full is closed (it resyncs on reconnect): an update is never
    /// silently skipped for a socket that stays open.
    fn broadcast(&mut self, frame: &Bytes, except: Option<ConnId>) {
        let mut slow = Vec::new();
        let mut sent = 0u64;
        for (id, c) in &self.conns {
            if Some(*id) == except {
                continue;
            }
            match c.out.send(frame.clone()) {
                Ok(()) => sent += 1,
                Err(Refused::Full) => slow.push(*id),
                Err(Refused::Gone) => {}
            }
        }
        self.hub.metrics.broadcast_frames.increment(sent);
        for id in slow {
            self.close_conn(
                id,
                CloseFrame::new(CloseCode::TooSlow, "socket too slow; reconnect to resync"),
            );
        }
    }

    fn send_to(&mut self, conn: ConnId, frame: Bytes) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        if let Err(Refused::Full) = c.out.send(frame) {
            self.close_conn(
                conn,
                CloseFrame::new(CloseCode::TooSlow, "socket too slow; reconnect to resync"),
            );
        }
    }

    fn close_conn(&mut self, conn: ConnId, frame: CloseFrame) {
        let Some(mut c) = self.conns.remove(&conn) else {
            return;
        };
        metrics::gauge!(m::CONNECTIONS).decrement(1.0);
        metrics::counter!(m::SOCKETS_CLOSED_TOTAL, "reason" => frame.code.label()).increment(1);
        if frame.code != CloseCode::GoingAway {
            tracing::info!(doc = %self.id, conn, code = frame.code.code(), reason = %frame.reason, "closing socket");
        }
        if let Some(close) = c.close.take() {
            let _ = close.send(frame);
        }
        self.remove_presence(conn);
        if self.conns.is_empty() {
            self.idle_since = Some(Instant::now());
        }
    }

    fn remove_presence(&mut self, conn: ConnId) {
        if let Some(removal) = self.awareness.remove_session(conn) {
            self.broadcast(&encode_awareness(&removal), None);
            self.publish(BusPayload::Awareness(Bytes::from(removal)));
        }
    }
}

/// `sleep_until` for an optional deadline; never fires for `None`.
async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
