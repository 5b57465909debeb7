//! [`Rig`]: one in-process hub over the real SQLite store (in a temporary
//! folder) and the in-process bus, and a fresh document per [`Script`].
//!
//! Each run joins a probe (a viewer that only ever asks for the whole
//! state) and the three sessions of [`ROLES`], plays the script, and checks
//! after every frame, with the probe's sync step 1 as a barrier (the
//! document takes every session's frames from one queue, in order): what
//! the sender must have been told ([`oracle::expect`]), that no other
//! session was closed for it, and that the document is unchanged whenever
//! a viewer sent the frame or it was refused outright. At the end the
//! document is unloaded and loaded again from the store (it must load, and
//! be what was live), and a well-behaved writer must be served.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use quire_bus::LocalBus;
use quire_protocol::{Message, SyncMessage, encode_sync_step1, encode_update};
use quire_store::{DocStore, SqliteOptions, SqliteStore};
use quire_types::{DocId, NodeId};
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{ReadTxn, Snapshot, StateVector, Text, Transact, Update, WriteTxn};

use super::client::Client;
use super::oracle::{self, Expect, REFUSAL_CODES, Sent};
use super::script::{Action, Role, SESSIONS, Script, Step};
use super::{Violation, panics};
use crate::update_scan;
use crate::{CloseCode, CloseFrame, Hub, HubConfig, HubError, JoinOptions, Outgoing, Session};

/// The longest the rig waits for the hub to do anything.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// Client id of the well-behaved writer checked after each script.
const WELL_BEHAVED: u64 = 999_999;

/// Limits small enough that a short input reaches them: documents of 4 MiB
/// stored, 32 MiB estimated in memory, 64 KiB of parked updates.
pub fn rig_config() -> HubConfig {
    HubConfig {
        max_document_bytes: 4 << 20,
        max_document_memory_bytes: 32 << 20,
        max_parked_bytes: 64 << 10,
        ..HubConfig::default()
    }
}

pub struct Rig {
    // Dropped in this order: the hub before its runtime and its folder.
    hub: Hub,
    store: SqliteStore,
    runtime: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

impl Rig {
    /// A hub with [`rig_config`]. Panics if the machine cannot provide one
    /// (no temporary folder, no thread): that is no finding.
    pub fn new() -> Rig {
        Rig::with_config(rig_config())
    }

    pub fn with_config(config: HubConfig) -> Rig {
        panics::install();
        // Documents run on a worker thread with tokio's default 2 MiB
        // stack (the server gives its workers 8 MiB): whatever recursion
        // fits here has room to spare in production.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let dir = tempfile::tempdir().expect("a temporary folder");
        let store = runtime
            .block_on(SqliteStore::open(
                &dir.path().join("quire.db"),
                SqliteOptions::default(),
            ))
            .expect("the SQLite store opens");
        let hub = {
            let _guard = runtime.enter();
            Hub::new(
                Arc::new(store.clone()),
                Arc::new(LocalBus::new().node(NodeId::generate())),
                config,
            )
        };
        Rig {
            hub,
            store,
            runtime,
            _dir: dir,
        }
    }

    /// Plays `script` on a fresh document and checks every invariant; the
    /// document is deleted afterwards, whatever the outcome.
    pub fn run(&self, script: &Script) -> Result<(), Violation> {
        let panics_before = panics::count();
        let result = self.runtime.block_on(async {
            let id = DocId::generate();
            self.store
                .create_document(&id, "hostile frames")
                .await
                .expect("the store creates a document");
            let result = self.play(&id, script).await;
            let gone = CloseFrame::new(CloseCode::GoingAway, "run over");
            let evicted = within(script.steps.len(), "unloading", self.hub.evict(&id, gone)).await;
            let _ = self.store.delete_document(&id).await;
            result.and(evicted)
        });
        match panics::count() - panics_before {
            0 => result,
            n => Err(Violation::Panicked(n)),
        }
    }

    async fn play(&self, id: &DocId, script: &Script) -> Result<(), Violation> {
        let mut run = Run::start(&self.hub, id).await?;
        for (i, step) in script.steps.iter().enumerate() {
            run.step(i, step).await?;
        }
        let end = script.steps.len();
        let live = run.observe(end).await?;
        drop(run);
        self.reload_matches(id, end, &live).await?;
        self.serves_a_writer(id, end).await
    }

    /// Unloads the document and loads it again from the store: it must
    /// load, and hold exactly what was live.
    async fn reload_matches(
        &self,
        id: &DocId,
        end: usize,
        live: &Snapshot,
    ) -> Result<(), Violation> {
        let gone = CloseFrame::new(CloseCode::GoingAway, "reloading");
        within(end, "unloading", self.hub.evict(id, gone)).await?;
        let mut probe = match within(end, "a join", self.hub.join(id, viewer())).await? {
            Ok(s) => s,
            Err(HubError::LoadFailed(e)) => return Err(Violation::NotReloadable(e)),
            Err(e) => return Err(Violation::NotServed(format!("joining after a reload: {e}"))),
        };
        let loaded = observe(&mut probe, end).await?;
        if &loaded != live {
            return Err(Violation::ReloadDiffers);
        }
        Ok(())
    }

    /// A writer with durable acks gets its update acknowledged, on this
    /// document, or (if the script filled it up: 4413) on a fresh one.
    async fn serves_a_writer(&self, id: &DocId, end: usize) -> Result<(), Violation> {
        match self.write_once(id, end).await? {
            None => Ok(()),
            Some(close) if close.code == CloseCode::DocumentTooLarge => {
                let fresh = DocId::generate();
                self.store
                    .create_document(&fresh, "well-behaved")
                    .await
                    .expect("the store creates a document");
                let served = self.write_once(&fresh, end).await;
                let gone = CloseFrame::new(CloseCode::GoingAway, "run over");
                within(end, "unloading", self.hub.evict(&fresh, gone)).await?;
                let _ = self.store.delete_document(&fresh).await;
                match served? {
                    None => Ok(()),
                    Some(c) => Err(Violation::NotServed(format!("{c:?} on a fresh document"))),
                }
            }
            Some(close) => Err(Violation::NotServed(format!("{close:?}"))),
        }
    }

    /// Sends one well-formed update with durable acks; `Some(close)` if the
    /// session was closed instead of acknowledged.
    async fn write_once(&self, id: &DocId, end: usize) -> Result<Option<CloseFrame>, Violation> {
        let opts = JoinOptions {
            durable_acks: true,
            ..JoinOptions::default()
        };
        let mut s = within(end, "a join", self.hub.join(id, opts))
            .await?
            .map_err(|e| Violation::NotServed(format!("joining: {e}")))?;
        let doc = yrs::Doc::with_client_id(WELL_BEHAVED);
        let update = {
            let mut txn = doc.transact_mut();
            txn.get_or_insert_text("served").insert(&mut txn, 0, "ok");
            txn.encode_update_v1()
        };
        if !s.receive(encode_update(&update)).await {
            return Err(Violation::NotServed("the document is gone".into()));
        }
        loop {
            match within(end, "an acknowledgement", s.next()).await? {
                Outgoing::Close(c) => return Ok(Some(c)),
                Outgoing::Frame(f) => {
                    if let Ok(Message::Ack { durable: 1 }) = Message::decode(&f) {
                        return Ok(None);
                    }
                }
            }
        }
    }
}

impl Default for Rig {
    fn default() -> Self {
        Rig::new()
    }
}

fn viewer() -> JoinOptions {
    JoinOptions {
        can_write: false,
        ..JoinOptions::default()
    }
}

/// One script's sessions on one document.
struct Run<'h> {
    hub: &'h Hub,
    id: &'h DocId,
    probe: Session,
    /// What the probe has heard of the document: its step 1s ask only for
    /// what is new, so a step costs what it changed, not the document's size.
    replica: yrs::Doc,
    clients: Vec<Client>,
    /// The document as last observed.
    state: Snapshot,
}

/// What the sessions were told during one step.
#[derive(Default)]
struct Heard {
    closes: Vec<(usize, CloseFrame)>,
    denied: Vec<usize>,
}

impl<'h> Run<'h> {
    async fn start(hub: &'h Hub, id: &'h DocId) -> Result<Run<'h>, Violation> {
        let probe = join(hub, id, viewer(), 0).await?;
        let mut run = Run {
            hub,
            id,
            probe,
            replica: yrs::Doc::new(),
            clients: (0..SESSIONS).map(Client::new).collect(),
            state: Snapshot::default(),
        };
        for k in 0..SESSIONS {
            run.rejoin(k, 0).await?;
        }
        run.state = run.observe(0).await?;
        Ok(run)
    }

    async fn rejoin(&mut self, k: usize, step: usize) -> Result<(), Violation> {
        self.clients[k].session = None; // leaves first, as a reconnecting client
        let opts = self.clients[k].join_options();
        let s = join(self.hub, self.id, opts, step).await?;
        self.clients[k].joined(s);
        Ok(())
    }

    /// The document now: the probe asks for what its replica lacks.
    async fn observe(&mut self, step: usize) -> Result<Snapshot, Violation> {
        let known = self.replica.transact().state_vector();
        let diff = ask(&mut self.probe, &known, step).await?;
        apply_state(&self.replica, &diff)?;
        Ok(self.replica.transact().snapshot())
    }

    async fn step(&mut self, i: usize, step: &Step) -> Result<(), Violation> {
        let me = step.session;
        if step.action == Action::Reconnect || self.clients[me].session.is_none() {
            self.rejoin(me, i).await?;
            if step.action == Action::Reconnect {
                return Ok(());
            }
        }
        let client = &mut self.clients[me];
        let Some(frame) = client.frame(&step.action, me) else {
            return Ok(());
        };
        let expect = oracle::expect(client.role, &frame);
        let carries_update = Message::decode(&frame).is_ok_and(|m| m.carries_update());
        let session = client.session.as_ref().expect("joined above");
        if !within(i, "room in the document's queue", session.receive(frame)).await? {
            return Err(Violation::DocumentGone { step: i });
        }
        if carries_update {
            client.updates_sent += 1;
        }
        let after = self.observe(i).await?;
        let heard = self.drain()?;
        self.check(i, me, expect, carries_update, &after, &heard)?;
        self.state = after;
        Ok(())
    }

    /// Takes everything the hub has queued for the sessions (it has
    /// processed the step's frame: the probe's barrier came after it).
    fn drain(&mut self) -> Result<Heard, Violation> {
        let mut heard = Heard::default();
        for (k, c) in self.clients.iter_mut().enumerate() {
            while let Some(s) = c.session.as_mut() {
                match s.next().now_or_never() {
                    None => break,
                    Some(Outgoing::Close(close)) => {
                        heard.closes.push((k, close));
                        c.session = None;
                    }
                    Some(Outgoing::Frame(f)) => match oracle::check_sent(&f)? {
                        Some(Sent::Update(u)) => c.receive_update(u),
                        Some(Sent::Ack(durable)) => {
                            if durable < c.acked || durable > c.updates_sent {
                                return Err(Violation::BadAck {
                                    session: k,
                                    durable,
                                    acked: c.acked,
                                    sent: c.updates_sent,
                                });
                            }
                            c.acked = durable;
                        }
                        Some(Sent::Denied) => heard.denied.push(k),
                        None => {}
                    },
                }
            }
        }
        Ok(heard)
    }

    fn check(
        &self,
        step: usize,
        me: usize,
        expect: Expect,
        carries_update: bool,
        after: &Snapshot,
        heard: &Heard,
    ) -> Result<(), Violation> {
        let unexpected = |session: usize, close: &CloseFrame| Violation::UnexpectedClose {
            step,
            session,
            close: close.clone(),
        };
        let mut sender_closed = None;
        for (k, close) in &heard.closes {
            if oracle::is_failure(close) {
                return Err(unexpected(*k, close));
            }
            if *k == me {
                sender_closed = Some(close);
                continue;
            }
            // A writer's update parked earlier is retried when this one
            // applies, and may be refused then.
            let parked_refusal = carries_update
                && self.clients[*k].role != Role::Reader
                && REFUSAL_CODES.contains(&close.code);
            if !parked_refusal {
                return Err(unexpected(*k, close));
            }
        }
        let unchanged = after == &self.state;
        match (expect, sender_closed) {
            (Expect::Refused, None) => return Err(Violation::NotClosed { step, session: me }),
            (Expect::Refused, Some(c)) if !REFUSAL_CODES.contains(&c.code) => {
                return Err(unexpected(me, c));
            }
            (Expect::Refused, Some(_)) if !unchanged => {
                return Err(Violation::RefusedChanged { step });
            }
            (Expect::Denied, _) if !heard.denied.contains(&me) => {
                return Err(Violation::NotDenied { step });
            }
            (Expect::Denied | Expect::Open, Some(c)) => return Err(unexpected(me, c)),
            (Expect::Anything, Some(c)) if !REFUSAL_CODES.contains(&c.code) => {
                return Err(unexpected(me, c));
            }
            _ => {}
        }
        if self.clients[me].role == Role::Reader && !unchanged {
            return Err(Violation::ReadOnlyChanged { step });
        }
        Ok(())
    }
}

async fn join(hub: &Hub, id: &DocId, opts: JoinOptions, step: usize) -> Result<Session, Violation> {
    within(step, "a join", hub.join(id, opts))
        .await?
        .map_err(|e| Violation::JoinFailed {
            step,
            error: e.to_string(),
        })
}

/// The whole document, as a sync step 1 of a new client gets it.
async fn observe(probe: &mut Session, step: usize) -> Result<Snapshot, Violation> {
    let state = ask(probe, &StateVector::default(), step).await?;
    let doc = yrs::Doc::new();
    apply_state(&doc, &state)?;
    let snapshot = doc.transact().snapshot();
    Ok(snapshot)
}

/// The sync step 2 the hub answers a step 1 of `known` with.
async fn ask(
    probe: &mut Session,
    known: &StateVector,
    step: usize,
) -> Result<bytes::Bytes, Violation> {
    let ask = encode_sync_step1(&known.encode_v1());
    if !within(step, "room in the document's queue", probe.receive(ask)).await? {
        return Err(Violation::DocumentGone { step });
    }
    loop {
        match within(step, "the probe's sync step 2", probe.next()).await? {
            Outgoing::Close(close) => {
                return Err(Violation::UnexpectedClose {
                    step,
                    session: SESSIONS,
                    close,
                });
            }
            Outgoing::Frame(f) => {
                oracle::check_sent(&f)?;
                if let Ok(Message::Sync(SyncMessage::Step2(state))) = Message::decode(&f) {
                    return Ok(f.slice_ref(state));
                }
            }
        }
    }
}

/// Applies a state the hub sent to `doc`: it must scan, decode and apply
/// whole (nothing left waiting for what `doc` lacks).
fn apply_state(doc: &yrs::Doc, state: &[u8]) -> Result<(), Violation> {
    let bad = |what: String| Violation::SentBadFrame(format!("its state {what}"));
    update_scan::scan(state).map_err(|r| bad(r.reason()))?;
    let update = Update::decode_v1(state).map_err(|e| bad(format!("does not decode: {e}")))?;
    let mut txn = doc.transact_mut();
    txn.apply_update(update)
        .map_err(|e| bad(format!("does not apply: {e}")))?;
    if txn.has_missing_updates() {
        return Err(bad("depends on content it did not send".to_owned()));
    }
    Ok(())
}

async fn within<T>(
    step: usize,
    what: &'static str,
    f: impl Future<Output = T>,
) -> Result<T, Violation> {
    tokio::time::timeout(DEADLINE, f)
        .await
        .map_err(|_| Violation::Hung { step, what })
}
