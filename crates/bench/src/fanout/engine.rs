//! The fan-out's engine, shared by every scenario built on it (`fanout`,
//! `saturate`, `hot-document`, `soak`): D × C clients on real sockets, W
//! writers per document typing on the open-loop schedule, each received
//! update attributed to its keystroke, and the convergence check at the end.
//!
//! What a client keeps of each figure is the scenario's [`Samples`]: every
//! sample, for exact percentiles over a short run, or histograms whose size
//! does not grow with the run. Keystrokes' send times are kept in a window
//! per writer for the same reason: a delivery that arrives after its writer
//! has typed a whole window more cannot be attributed and counts as lost.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use yrs::ClientID;

pub use super::client_task::ClientResult;
use super::client_task::{ClientSpec, client_task};
use super::{Closes, FanoutArgs, Options};
use crate::client::{self, Closed, Replica, Target};
use crate::stats::Epoch;
use crate::trace::run_tag;

/// Where one client's figures go, on the run's clock (nanoseconds).
pub trait Samples: Send + 'static {
    /// A keystroke of another writer arrived.
    fn delivery(&mut self, d: &Delivery);
    /// One of this writer's keystrokes, due at `due`, went out `lag` late.
    fn sent(&mut self, due: u64, lag: u64);
    /// The server reported one of this writer's keystrokes durable.
    fn acked(&mut self, now: u64, latency: u64);
}

/// One received keystroke.
#[derive(Debug, Clone, Copy)]
pub struct Delivery {
    pub now: u64,
    /// When the keystroke was due by the schedule.
    pub due: u64,
    /// From the keystroke's actual send.
    pub latency: u64,
    /// From when it was due: counts the generator's own lag too, so a
    /// starved generator cannot hide a slow server (coordinated omission).
    pub from_schedule: u64,
    /// Its writer is connected to another node.
    pub cross_node: bool,
    /// This client had it already.
    pub duplicate: bool,
}

/// What a client will do, for sizing its samples before the clock starts.
#[derive(Debug, Clone, Copy)]
pub struct Role {
    /// Deliveries it receives if nothing is lost.
    pub expected_deliveries: usize,
    /// Keystrokes it sends.
    pub own_keystrokes: usize,
    /// Its keystrokes are acknowledged once durable.
    pub durable_acks: bool,
}

/// The node (index into `--url`) of client `c` of document `d`: all clients
/// round-robin, so one document's clients, writers included, are spread.
fn node_of(args: &FanoutArgs, d: usize, c: usize, nodes: usize) -> usize {
    (d * args.clients + c) % nodes.max(1)
}

/// Keystrokes each writer has room for: its rate over the duration, and one
/// more.
pub fn keystrokes_per_writer(args: &FanoutArgs) -> usize {
    (args.rate * args.duration).ceil() as usize + 1
}

/// One writer's latest keystrokes: keystroke k in slot `k % slots.len()`.
pub(super) struct WriterLog {
    doc: usize,
    /// Which `--url` the writer is connected to.
    pub(super) node: usize,
    /// Keystrokes sent so far.
    sent: AtomicU64,
    slots: Box<[Slot]>,
}

#[derive(Default)]
struct Slot {
    /// k + 1 once keystroke k's times are stored here (0: none yet).
    key: AtomicU64,
    sent: AtomicU64,
    due: AtomicU64,
}

impl WriterLog {
    fn new(doc: usize, node: usize, window: usize) -> WriterLog {
        WriterLog {
            doc,
            node,
            sent: AtomicU64::new(0),
            slots: (0..window.max(1)).map(|_| Slot::default()).collect(),
        }
    }

    /// Stores keystroke `k`'s times before it goes out, so a receiver always
    /// finds them.
    pub(super) fn record(&self, k: usize, sent: u64, due: u64) {
        let slot = &self.slots[k % self.slots.len()];
        slot.sent.store(sent, Ordering::Relaxed);
        slot.due.store(due, Ordering::Relaxed);
        slot.key.store(k as u64 + 1, Ordering::Release);
        self.sent.fetch_add(1, Ordering::AcqRel);
    }

    /// `(sent, due)` of keystroke `k` while it is in the window. (A reader
    /// racing the overwrite of its slot, a whole window later, may read the
    /// next keystroke's times: by then the delivery is late by the window.)
    pub(super) fn lookup(&self, k: u64) -> Option<(u64, u64)> {
        let slot = &self.slots[(k % self.slots.len() as u64) as usize];
        (slot.key.load(Ordering::Acquire) == k + 1).then(|| {
            (
                slot.sent.load(Ordering::Relaxed),
                slot.due.load(Ordering::Relaxed),
            )
        })
    }
}

pub(super) struct Shared {
    pub(super) epoch: Epoch,
    pub(super) writers: Vec<WriterLog>,
    pub(super) by_client: HashMap<u64, usize>,
    pub(super) delivered: AtomicU64,
    pub(super) sent: AtomicU64,
    pub(super) writers_done: AtomicUsize,
    pub(super) last_delivery: AtomicU64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Phase {
    Connecting,
    Run { start: u64 },
    Stop,
}

/// A fan-out whose clients are connected: [`Run::start`] starts the typing,
/// [`Run::finish`] stops it and checks the result.
pub struct Run<S> {
    shared: Arc<Shared>,
    phase: watch::Sender<Phase>,
    tasks: Vec<JoinHandle<ClientResult<S>>>,
    tag: String,
    docs: usize,
    clients: usize,
    start: Option<u64>,
    /// Seconds the clients took to connect and sync.
    pub connect_s: f64,
}

/// A finished run: every client's result and the run's counts.
pub struct Finished<S> {
    pub clients: Vec<ClientResult<S>>,
    /// Keystrokes sent.
    pub sent: u64,
    pub expected: u64,
    /// Unique deliveries.
    pub delivered: u64,
    pub duplicates: u64,
    pub reordered: u64,
    pub unattributed: u64,
    pub lost: u64,
    /// Sockets the server closed (or that broke), by close code.
    pub closed: Vec<Closes>,
    pub diverged_docs: Vec<usize>,
    /// From the start of typing to the last delivery.
    pub span_s: f64,
}

/// Distinguishes the documents of several runs in one process.
static RUNS: AtomicUsize = AtomicUsize::new(0);

fn doc_name(tag: &str, d: usize) -> String {
    format!("bench-fanout-{tag}-{d}")
}

impl<S: Samples> Run<S> {
    /// Creates the documents, connects and syncs every client. Each writer
    /// keeps the times of its last `window` keystrokes; `samples` makes each
    /// client's figures.
    pub async fn connect(
        args: &FanoutArgs,
        target: Arc<Target>,
        opts: &Options,
        window: usize,
        mut samples: impl FnMut(Role) -> S,
    ) -> anyhow::Result<Run<S>> {
        if args.writers > args.clients || args.docs == 0 || args.clients < 2 || args.rate <= 0.0 {
            bail!("need docs ≥ 1, clients ≥ 2, writers ≤ clients and rate > 0");
        }
        let tag = format!(
            "{}-{}-{}",
            opts.scenario,
            run_tag(),
            RUNS.fetch_add(1, Ordering::Relaxed)
        );
        let per_writer = keystrokes_per_writer(args);
        let window = window.min(per_writer);
        let nodes = args.target.url.len();
        let mut writers = Vec::new();
        let mut by_client = HashMap::new();
        let mut ids = Vec::new();
        for d in 0..args.docs {
            for c in 0..args.writers {
                let id = ClientID::random();
                by_client.insert(id.get(), writers.len());
                ids.push(id);
                writers.push(WriterLog::new(d, node_of(args, d, c, nodes), window));
            }
        }
        let shared = Arc::new(Shared {
            epoch: Epoch::now(),
            writers,
            by_client,
            delivered: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            writers_done: AtomicUsize::new(0),
            last_delivery: AtomicU64::new(0),
        });
        for d in 0..args.docs {
            target.prepare(&doc_name(&tag, d)).await?;
        }
        let (phase_tx, phase_rx) = watch::channel(Phase::Connecting);
        let (ready_tx, mut ready_rx) = mpsc::channel::<anyhow::Result<()>>(64);
        let mut tasks = Vec::new();
        for d in 0..args.docs {
            for c in 0..args.clients {
                let writer = (c < args.writers).then(|| d * args.writers + c);
                let client_id = writer.map_or_else(ClientID::random, |w| ids[w]);
                // Room for every figure the run will record, taken now,
                // before the clock starts (see `EverySample`).
                let role = Role {
                    expected_deliveries: (args.writers - usize::from(writer.is_some()))
                        * per_writer,
                    own_keystrokes: if writer.is_some() { per_writer } else { 0 },
                    durable_acks: writer.is_some() && !args.no_acks,
                };
                tasks.push(tokio::spawn(client_task(
                    shared.clone(),
                    args.clone(),
                    target.clone(),
                    ClientSpec {
                        doc_id: doc_name(&tag, d),
                        doc: d,
                        node: node_of(args, d, c, nodes),
                        keep_replica: opts.replicas,
                        writer,
                        client_id,
                    },
                    samples(role),
                    ready_tx.clone(),
                    phase_rx.clone(),
                )));
            }
        }
        drop(ready_tx);
        let n_clients = args.docs * args.clients;
        let connect_started = Instant::now();
        for _ in 0..n_clients {
            match tokio::time::timeout(Duration::from_secs(150), ready_rx.recv()).await {
                Ok(Some(Ok(()))) => {}
                Ok(Some(Err(e))) => {
                    phase_tx.send_replace(Phase::Stop);
                    return Err(e.context("a client failed to connect"));
                }
                Ok(None) | Err(_) => {
                    phase_tx.send_replace(Phase::Stop);
                    bail!("clients did not all connect within 150 s");
                }
            }
        }
        Ok(Run {
            shared,
            phase: phase_tx,
            tasks,
            tag,
            docs: args.docs,
            clients: args.clients,
            start: None,
            connect_s: connect_started.elapsed().as_secs_f64(),
        })
    }

    /// The run's clock.
    pub fn epoch(&self) -> Epoch {
        self.shared.epoch
    }

    /// Starts the typing 20 ms from now (time for every client to hear of
    /// it); returns that start on the run's clock.
    pub fn start(&mut self) -> u64 {
        let start = self.shared.epoch.nanos(Instant::now()) + 20_000_000;
        self.start_at(start);
        start
    }

    /// Starts the typing at `start` on the run's clock.
    pub fn start_at(&mut self, start: u64) {
        self.start = Some(start);
        self.phase.send_replace(Phase::Run { start });
    }

    /// Every writer has finished and every delivery it owes has arrived.
    pub fn complete(&self) -> bool {
        let done = self.shared.writers_done.load(Ordering::Acquire) == self.shared.writers.len();
        let expected = self.shared.sent.load(Ordering::Acquire) * (self.clients as u64 - 1);
        done && self.shared.delivered.load(Ordering::Acquire) >= expected
    }

    /// Waits until the run is complete or `deadline` has passed; whether it
    /// is complete.
    pub async fn wait(&self, deadline: Instant) -> bool {
        let mut ticker = tokio::time::interval(Duration::from_millis(5));
        loop {
            ticker.tick().await;
            if self.complete() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
        }
    }

    /// Stops every client (they close their sockets).
    pub fn stop(&self) {
        self.phase.send_replace(Phase::Stop);
    }

    /// Stops the clients, gathers their results and checks convergence:
    /// unless `--skip-server-check`, a fresh client per document syncs the
    /// server's state, and every live client of a document must hold the
    /// same text (or, without replicas, every update of its document).
    pub async fn finish(self, args: &FanoutArgs, target: &Target) -> anyhow::Result<Finished<S>> {
        self.stop();
        let mut results = Vec::with_capacity(self.tasks.len());
        for t in self.tasks {
            results.push(t.await.context("client task panicked")?);
        }

        // Server state: a fresh client per document must read what the others do.
        let mut server_texts: Vec<Option<String>> = vec![None; self.docs];
        if !args.skip_server_check {
            for (d, slot) in server_texts.iter_mut().enumerate() {
                let mut ws = target.connect(&doc_name(&self.tag, d), false).await?;
                let r = Replica::new(ClientID::random());
                client::sync(&mut ws, &r)
                    .await
                    .context("server check handshake")?;
                *slot = Some(r.string());
                let _ = ws.close(None).await;
            }
        }

        let shared = &self.shared;
        let sent: u64 = shared.sent.load(Ordering::Acquire);
        let expected = sent * (self.clients as u64 - 1);
        let mut diverged_docs = Vec::new();
        for (d, server_text) in server_texts.iter().enumerate() {
            let texts: Vec<&ClientResult<S>> = results.iter().filter(|r| r.doc == d).collect();
            let live: Vec<&&ClientResult<S>> =
                texts.iter().filter(|r| r.closed.is_none()).collect();
            let reference = server_text
                .as_deref()
                .or(live.iter().find(|r| r.replica).map(|r| r.text.as_str()));
            let doc_sent: u64 = shared
                .writers
                .iter()
                .filter(|w| w.doc == d)
                .map(|w| w.sent.load(Ordering::Acquire))
                .sum();
            // A client without a replica converges when it has every update.
            // Without a text to compare (no server check, no replicas) the
            // counts below are the whole check.
            let no_text = reference.is_none() && !live.iter().any(|r| r.replica);
            let converged = (no_text
                || reference.is_some_and(|t| t.chars().count() as u64 == doc_sent))
                && live.iter().all(|r| {
                    if r.replica {
                        Some(r.text.as_str()) == reference
                    } else {
                        r.delivered - r.duplicates + r.own_sent == doc_sent
                    }
                });
            if !converged {
                diverged_docs.push(d);
            }
        }
        let (mut delivered, mut duplicates, mut reordered, mut unattributed) = (0, 0, 0, 0);
        let mut closes: HashMap<String, usize> = HashMap::new();
        for r in &results {
            delivered += r.delivered;
            duplicates += r.duplicates;
            reordered += r.reordered;
            unattributed += r.unattributed;
            if let Some(c) = &r.closed {
                let key = match c {
                    Closed::ByServer { code, reason } => format!("{code} {reason}"),
                    Closed::Broken(e) => format!("broken: {e}"),
                };
                *closes.entry(key).or_default() += 1;
            }
        }
        let unique = delivered - duplicates;
        let start = shared.epoch.instant(self.start.unwrap_or(0));
        let last = shared
            .epoch
            .instant(shared.last_delivery.load(Ordering::Acquire));
        Ok(Finished {
            clients: results,
            sent,
            expected,
            delivered: unique,
            duplicates,
            reordered,
            unattributed,
            lost: expected.saturating_sub(unique),
            closed: closes
                .into_iter()
                .map(|(code, count)| Closes { code, count })
                .collect(),
            diverged_docs,
            span_s: last
                .saturating_duration_since(start)
                .as_secs_f64()
                .max(1e-9),
        })
    }
}
