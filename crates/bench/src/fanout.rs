//! `fanout`: D documents × C clients, W of them per document typing one
//! character at R keystrokes/s each, open loop; everyone else receives.
//!
//! Latency is measured on the generator's one clock from the moment the
//! keystroke is handed to its socket to its receipt. Sends follow a wall-clock
//! schedule and never wait for the server; how late each send was against its
//! schedule ("send lag") is reported beside the latency, so a generator or a
//! socket that fell behind shows instead of hiding in the figure. (Tokio's
//! timer has 1 ms granularity, so a lag up to ~1 ms is the timer, not load.) A received update is attributed by its
//! `(client, clock)`: each writer has its own client id and inserts one
//! character per update, so the clock is the keystroke's index.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::SinkExt;
use quire_protocol::{Message, SyncMessage, encode_update};
use serde::Serialize;
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use yrs::ClientID;

use crate::client::{self, Closed, Replica, Target, TargetArgs};
use crate::stats::{self, Epoch, Latency, PhaseMeter, PhaseUsage};
use crate::trace::run_tag;

#[derive(Debug, Clone, clap::Args)]
pub struct FanoutArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Documents.
    #[arg(long, default_value_t = 10)]
    pub docs: usize,
    /// Clients per document (writers included).
    #[arg(long, default_value_t = 10)]
    pub clients: usize,
    /// Writers per document.
    #[arg(long, default_value_t = 2)]
    pub writers: usize,
    /// Keystrokes per second per writer.
    #[arg(long, default_value_t = 20.0)]
    pub rate: f64,
    /// Seconds of typing.
    #[arg(long, default_value_t = 20.0)]
    pub duration: f64,
    /// Seconds to wait after typing stops for the last deliveries.
    #[arg(long, default_value_t = 5.0)]
    pub drain: f64,
    /// Writers do not opt in to durable acks (for servers without them).
    #[arg(long)]
    pub no_acks: bool,
    /// Skip syncing a fresh client per document at the end to compare the
    /// server's state (a plain relay such as the null server keeps none).
    #[arg(long)]
    pub skip_server_check: bool,
    /// Server process to sample for RSS and CPU.
    #[arg(long)]
    pub server_pid: Option<u32>,
}

/// The node (index into `--url`) of client `c` of document `d`: all clients
/// round-robin, so one document's clients, writers included, are spread.
fn node_of(args: &FanoutArgs, d: usize, c: usize, nodes: usize) -> usize {
    (d * args.clients + c) % nodes.max(1)
}

/// One writer's keystrokes: scheduled send time per clock, on the run epoch.
struct WriterLog {
    doc: usize,
    /// Which `--url` the writer is connected to.
    node: usize,
    /// Send time + 1 ns (0 = not sent), indexed by clock.
    sends: Vec<AtomicU64>,
    /// When each keystroke was due by the schedule, indexed by clock (set
    /// with its send time): latency from here counts the generator's own lag
    /// too, so a starved generator cannot hide a slow server (coordinated
    /// omission).
    due: Vec<AtomicU64>,
}

struct Shared {
    epoch: Epoch,
    writers: Vec<WriterLog>,
    by_client: HashMap<u64, usize>,
    delivered: AtomicU64,
    sent: AtomicU64,
    writers_done: AtomicUsize,
    last_delivery: AtomicU64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Connecting,
    Run { start: u64 },
    Stop,
}

#[derive(Default)]
struct ClientResult {
    doc: usize,
    writer: bool,
    /// Whether `text` is a replica's (else only deliveries were counted).
    replica: bool,
    /// Keystrokes this client sent.
    own_sent: u64,
    /// Latencies of updates whose writer is on another node (only with
    /// several `--url`s); also counted in `latencies`.
    cross_node: Vec<u64>,
    text: String,
    latencies: Vec<u64>,
    /// Receipt minus the keystroke's scheduled send time.
    from_schedule: Vec<u64>,
    ack_latencies: Vec<u64>,
    send_lag: Vec<u64>,
    delivered: u64,
    duplicates: u64,
    reordered: u64,
    unattributed: u64,
    closed: Option<Closed>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Closes {
    pub code: String,
    pub count: usize,
}

/// How a scenario built on the fan-out runs it.
#[derive(Debug, Clone)]
pub struct Options {
    /// `"scenario"` in the JSON line (and the documents' names).
    pub scenario: &'static str,
    /// Every client applies every update it receives to its yrs replica,
    /// and convergence compares their texts. Without, a client only
    /// attributes each update by its `(client, clock)` header (no yrs decode
    /// on the read path, so the generator spends its CPU on sockets) and
    /// converges when it received every update of its document but its own:
    /// the CRDT's state is a function of the set of updates, and the server
    /// check still syncs a real replica. A writer then types at the end of
    /// its own text (its keystrokes squash into one block, so an append
    /// stays O(1) instead of walking the interleaved text), like a person
    /// typing in their own paragraph.
    pub replicas: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            scenario: "fanout",
            replicas: true,
        }
    }
}

/// One run's figures, its JSON line and its table (not yet printed).
#[derive(Debug, Clone)]
pub struct Outcome {
    pub json: serde_json::Value,
    pub rows: Vec<(String, String)>,
    pub ok: bool,
    pub sent: u64,
    pub expected: u64,
    /// Unique deliveries.
    pub delivered: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub delivered_per_sec: f64,
    pub offered_per_sec: f64,
    pub latency: Latency,
    /// Receipt minus scheduled send time: `latency` plus the generator's
    /// lag behind its schedule.
    pub latency_from_schedule: Latency,
    pub send_lag: Latency,
    /// Sockets the server closed (or that broke), by close code.
    pub closed: Vec<Closes>,
    pub converged: bool,
    pub usage: PhaseUsage,
}

impl Outcome {
    pub fn closed_sockets(&self) -> usize {
        self.closed.iter().map(|c| c.count).sum()
    }
}

/// `fanout` as a command: one run, its JSON line on stdout and table on
/// stderr.
pub async fn run(args: FanoutArgs) -> anyhow::Result<bool> {
    run_as(args, Options::default()).await
}

/// A fan-out run printed under another scenario's name.
pub async fn run_as(args: FanoutArgs, opts: Options) -> anyhow::Result<bool> {
    let target = Arc::new(args.target.target().await?);
    let o = measure(&args, target, &opts).await?;
    stats::emit(&o.json, &o.rows);
    Ok(o.ok)
}

/// Distinguishes the documents of several runs in one process.
static RUNS: AtomicUsize = AtomicUsize::new(0);

/// One fan-out run against `target` (signed in once by the caller, so a
/// scenario made of several runs does not sign in for each); prints nothing.
pub async fn measure(
    args: &FanoutArgs,
    target: Arc<Target>,
    opts: &Options,
) -> anyhow::Result<Outcome> {
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
    let nodes = args.target.url.len();
    let mut writers = Vec::new();
    let mut by_client = HashMap::new();
    let mut ids = Vec::new();
    for d in 0..args.docs {
        for c in 0..args.writers {
            let id = ClientID::random();
            by_client.insert(id.get(), writers.len());
            ids.push(id);
            writers.push(WriterLog {
                doc: d,
                node: node_of(args, d, c, nodes),
                sends: (0..per_writer).map(|_| AtomicU64::new(0)).collect(),
                due: (0..per_writer).map(|_| AtomicU64::new(0)).collect(),
            });
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
            tasks.push(tokio::spawn(client_task(
                shared.clone(),
                args.clone(),
                target.clone(),
                doc_name(&tag, d),
                d,
                node_of(args, d, c, nodes),
                opts.replicas,
                writer,
                client_id,
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
    let connect_s = connect_started.elapsed().as_secs_f64();

    let meter = PhaseMeter::start(args.server_pid)?;
    let start = shared.epoch.nanos(Instant::now()) + 20_000_000;
    phase_tx.send_replace(Phase::Run { start });
    let total_writers = args.docs * args.writers;
    let deadline =
        shared.epoch.instant(start) + Duration::from_secs_f64(args.duration + args.drain);
    let mut ticker = tokio::time::interval(Duration::from_millis(5));
    loop {
        ticker.tick().await;
        let done = shared.writers_done.load(Ordering::Acquire) == total_writers;
        let expected = shared.sent.load(Ordering::Acquire) * (args.clients as u64 - 1);
        if (done && shared.delivered.load(Ordering::Acquire) >= expected)
            || Instant::now() >= deadline
        {
            break;
        }
    }
    phase_tx.send_replace(Phase::Stop);
    let usage = meter.finish()?;

    let mut results = Vec::with_capacity(tasks.len());
    for t in tasks {
        results.push(t.await.context("client task panicked")?);
    }

    // Server state: a fresh client per document must read what the others do.
    let mut server_texts: Vec<Option<String>> = vec![None; args.docs];
    if !args.skip_server_check {
        for (d, slot) in server_texts.iter_mut().enumerate() {
            let mut ws = target.connect(&doc_name(&tag, d), false).await?;
            let r = Replica::new(ClientID::random());
            client::sync(&mut ws, &r)
                .await
                .context("server check handshake")?;
            *slot = Some(r.string());
            let _ = ws.close(None).await;
        }
    }

    let sent: u64 = shared.sent.load(Ordering::Acquire);
    let expected = sent * (args.clients as u64 - 1);
    let mut lat = Vec::new();
    let mut sched = Vec::new();
    let (mut at_writers, mut at_readers) = (Vec::new(), Vec::new());
    let mut ack = Vec::new();
    let mut lag = Vec::new();
    let mut cross = Vec::new();
    let (mut delivered, mut dups, mut reordered, mut unattributed) = (0, 0, 0, 0);
    let mut closes: HashMap<String, usize> = HashMap::new();
    let mut diverged_docs = Vec::new();
    for (d, server_text) in server_texts.iter().enumerate() {
        let texts: Vec<&ClientResult> = results.iter().filter(|r| r.doc == d).collect();
        let live: Vec<&&ClientResult> = texts.iter().filter(|r| r.closed.is_none()).collect();
        let reference = server_text
            .as_deref()
            .or(live.iter().find(|r| r.replica).map(|r| r.text.as_str()));
        let doc_sent: usize = shared
            .writers
            .iter()
            .filter(|w| w.doc == d)
            .map(|w| {
                w.sends
                    .iter()
                    .filter(|s| s.load(Ordering::Relaxed) > 0)
                    .count()
            })
            .sum();
        // A client without a replica converges when it has every update.
        // Without a text to compare (no server check, no replicas) the
        // counts below are the whole check.
        let no_text = reference.is_none() && !live.iter().any(|r| r.replica);
        let converged = (no_text || reference.is_some_and(|t| t.chars().count() == doc_sent))
            && live.iter().all(|r| {
                if r.replica {
                    Some(r.text.as_str()) == reference
                } else {
                    r.delivered - r.duplicates + r.own_sent == doc_sent as u64
                }
            });
        if !converged {
            diverged_docs.push(d);
        }
    }
    for mut r in results {
        if r.writer {
            at_writers.extend_from_slice(&r.latencies);
        } else {
            at_readers.extend_from_slice(&r.latencies);
        }
        lat.append(&mut r.latencies);
        sched.append(&mut r.from_schedule);
        cross.append(&mut r.cross_node);
        ack.append(&mut r.ack_latencies);
        lag.append(&mut r.send_lag);
        delivered += r.delivered;
        dups += r.duplicates;
        reordered += r.reordered;
        unattributed += r.unattributed;
        if let Some(c) = r.closed {
            let key = match c {
                Closed::ByServer { code, reason } => format!("{code} {reason}"),
                Closed::Broken(e) => format!("broken: {e}"),
            };
            *closes.entry(key).or_default() += 1;
        }
    }
    let unique = delivered - dups;
    let lost = expected.saturating_sub(unique);
    let start_i = shared.epoch.instant(start);
    let last = shared
        .epoch
        .instant(shared.last_delivery.load(Ordering::Acquire));
    let span = last
        .saturating_duration_since(start_i)
        .as_secs_f64()
        .max(1e-9);
    let latency = Latency::from_nanos(&mut lat);
    let latency_from_schedule = Latency::from_nanos(&mut sched);
    // Writers also send, which changes how their TCP stack acknowledges what
    // they receive (delayed ACKs), so their latency is reported apart.
    let latency_at_writers = Latency::from_nanos(&mut at_writers);
    let latency_at_readers = Latency::from_nanos(&mut at_readers);
    let latency_cross_node = (nodes > 1).then(|| Latency::from_nanos(&mut cross));
    let ack_latency = (!ack.is_empty()).then(|| Latency::from_nanos(&mut ack));
    let send_lag = Latency::from_nanos(&mut lag);
    let offered = args.rate * total_writers as f64 * (args.clients - 1) as f64;
    let closes: Vec<Closes> = closes
        .into_iter()
        .map(|(code, count)| Closes { code, count })
        .collect();
    let ok = lost == 0 && diverged_docs.is_empty() && closes.is_empty();

    let json = json!({
        "scenario": opts.scenario,
        "url": args.target.url,
        "nodes": nodes,
        "docs": args.docs,
        "clients": args.clients,
        "writers": args.writers,
        "rate": args.rate,
        "duration_s": args.duration,
        "connect_s": connect_s,
        "sent": sent,
        "expected_deliveries": expected,
        "delivered": unique,
        "duplicates": dups,
        "reordered": reordered,
        "unattributed": unattributed,
        "lost": lost,
        "offered_deliveries_per_sec": offered,
        "delivered_per_sec": unique as f64 / span,
        "latency": latency,
        "latency_from_schedule": latency_from_schedule,
        "latency_at_writers": latency_at_writers,
        "latency_at_readers": latency_at_readers,
        "latency_cross_node": latency_cross_node,
        "ack_latency": ack_latency,
        "send_lag": send_lag,
        "closed": closes,
        "converged": diverged_docs.is_empty(),
        "diverged_docs": diverged_docs,
        "server_checked": !args.skip_server_check,
        "replicas": opts.replicas,
        "usage": usage,
        "ok": ok,
    });
    let mut rows = vec![
        (
            "scenario".into(),
            format!(
                "{} {} docs × {} clients, {} writers/doc at {} keys/s, {} s",
                opts.scenario, args.docs, args.clients, args.writers, args.rate, args.duration
            ),
        ),
        ("sent".into(), format!("{sent} keystrokes")),
        (
            "delivered".into(),
            format!(
                "{unique} of {expected} ({:.0}/s, offered {offered:.0}/s), lost {lost}",
                unique as f64 / span
            ),
        ),
        ("latency".into(), stats::fmt_latency(&latency)),
        (
            "  at readers".into(),
            stats::fmt_latency(&latency_at_readers),
        ),
        (
            "  at writers".into(),
            stats::fmt_latency(&latency_at_writers),
        ),
        (
            "  from schedule".into(),
            stats::fmt_latency(&latency_from_schedule),
        ),
    ];
    if let Some(c) = &latency_cross_node {
        rows.push((format!("  across nodes ({nodes})"), stats::fmt_latency(c)));
    }
    if let Some(a) = &ack_latency {
        rows.push(("ack latency".into(), stats::fmt_latency(a)));
    }
    rows.push(("generator send lag".into(), stats::fmt_latency(&send_lag)));
    rows.push((
        "converged".into(),
        if diverged_docs.is_empty() {
            format!(
                "yes ({} docs{})",
                args.docs,
                if args.skip_server_check {
                    ""
                } else {
                    ", server state too"
                }
            )
        } else {
            format!("NO: docs {diverged_docs:?}")
        },
    ));
    if !closes.is_empty() {
        rows.push((
            "sockets closed".into(),
            closes
                .iter()
                .map(|c| format!("{}× {}", c.count, c.code))
                .collect::<Vec<_>>()
                .join("; "),
        ));
    }
    stats::fmt_usage(&mut rows, &usage);
    Ok(Outcome {
        json,
        rows,
        ok,
        sent,
        expected,
        delivered: unique,
        lost,
        duplicates: dups,
        delivered_per_sec: unique as f64 / span,
        offered_per_sec: offered,
        latency,
        latency_from_schedule,
        send_lag,
        closed: closes,
        converged: diverged_docs.is_empty(),
        usage,
    })
}

fn doc_name(tag: &str, d: usize) -> String {
    format!("bench-fanout-{tag}-{d}")
}

/// Keystrokes each writer has room for: its rate over the duration, and one
/// more.
fn keystrokes_per_writer(args: &FanoutArgs) -> usize {
    (args.rate * args.duration).ceil() as usize + 1
}

#[allow(clippy::too_many_arguments)]
async fn client_task(
    shared: Arc<Shared>,
    args: FanoutArgs,
    target: Arc<Target>,
    doc_id: String,
    doc: usize,
    node: usize,
    keep_replica: bool,
    writer: Option<usize>,
    client_id: ClientID,
    ready: mpsc::Sender<anyhow::Result<()>>,
    mut phase: watch::Receiver<Phase>,
) -> ClientResult {
    // Room for every figure the step will record, taken now: a vector that
    // grows while the step runs copies itself on this one thread (once the
    // allocator serves large blocks from its heap, which it does after the
    // first steps freed some), and those copies made the generator's sends
    // late in the last steps of a long climb.
    let per_writer = keystrokes_per_writer(&args);
    let expected = (args.writers - usize::from(writer.is_some())) * per_writer;
    let own = if writer.is_some() { per_writer } else { 0 };
    let mut out = ClientResult {
        doc,
        writer: writer.is_some(),
        replica: keep_replica,
        latencies: Vec::with_capacity(expected),
        from_schedule: Vec::with_capacity(expected),
        send_lag: Vec::with_capacity(own),
        ack_latencies: Vec::with_capacity(if args.no_acks { 0 } else { own }),
        ..ClientResult::default()
    };
    let replica = Replica::new(client_id);
    let connected = async {
        let acks = writer.is_some() && !args.no_acks;
        let mut ws = target.connect_on(node, &doc_id, acks).await?;
        let hs = client::sync(&mut ws, &replica).await?;
        anyhow::Ok((ws, hs))
    }
    .await;
    let (mut ws, hs) = match connected {
        Ok(v) => {
            let _ = ready.send(Ok(())).await;
            v
        }
        Err(e) => {
            out.closed = Some(Closed::Broken(e.to_string()));
            let _ = ready.send(Err(e)).await;
            return out;
        }
    };
    drop(ready);

    let epoch = shared.epoch;
    let period = Duration::from_secs_f64(1.0 / args.rate);
    let total_writers = (args.docs * args.writers).max(1);
    let mut max_seen: Vec<Option<u64>> = vec![None; shared.writers.len()];
    // Writer state: next keystroke index, its schedule, sends awaiting an ack.
    let mut next_key = 0usize;
    let mut schedule: Option<(Instant, Instant)> = None; // (first send, end)
    let mut acked = hs.acked.saturating_sub(hs.update_messages_sent);
    let mut unacked: VecDeque<u64> = VecDeque::new();
    let mut writing_done = writer.is_none();

    loop {
        let now_phase = *phase.borrow_and_update();
        match now_phase {
            Phase::Stop => break,
            Phase::Run { start } if schedule.is_none() => {
                if let Some(w) = writer {
                    // Spread the writers evenly over one period.
                    let offset = period.mul_f64(w as f64 / total_writers as f64);
                    let first = epoch.instant(start) + offset;
                    let end = epoch.instant(start) + Duration::from_secs_f64(args.duration);
                    schedule = Some((first, end));
                }
            }
            _ => {}
        }
        let due = match (writer, schedule, writing_done) {
            (Some(_), Some((first, _)), false) => Some(first + period * next_key as u32),
            _ => None,
        };
        tokio::select! {
            frame = client::next_frame(&mut ws) => {
                let frame = match frame {
                    Ok(f) => f,
                    Err(c) => { out.closed = Some(c); break; }
                };
                let now = epoch.nanos(Instant::now());
                match Message::decode(&frame) {
                    Ok(Message::Sync(SyncMessage::Update(u))) => {
                        match client::first_item_id(u).and_then(|(c, k)| shared.by_client.get(&c).map(|&w| (w, k))) {
                            // Our own keystroke echoed back (the y-websocket
                            // reference server and Hocuspocus send an update
                            // to its author too): not a delivery.
                            Some((w, _)) if Some(w) == writer => {}
                            Some((w, k)) => {
                                let sent = shared.writers[w].sends.get(k as usize).map_or(0, |s| s.load(Ordering::Acquire));
                                if sent == 0 {
                                    out.unattributed += 1;
                                } else {
                                    match max_seen[w] {
                                        Some(m) if k == m => out.duplicates += 1,
                                        Some(m) if k < m => out.reordered += 1,
                                        _ => max_seen[w] = Some(k),
                                    }
                                    let latency = now.saturating_sub(sent - 1);
                                    out.latencies.push(latency);
                                    let due = shared.writers[w].due[k as usize].load(Ordering::Acquire);
                                    out.from_schedule.push(now.saturating_sub(due));
                                    if shared.writers[w].node != node {
                                        out.cross_node.push(latency);
                                    }
                                    out.delivered += 1;
                                    shared.delivered.fetch_add(1, Ordering::AcqRel);
                                    shared.last_delivery.fetch_max(now, Ordering::AcqRel);
                                }
                            }
                            None => out.unattributed += 1,
                        }
                        if keep_replica && let Err(e) = replica.apply(u) {
                            out.closed = Some(Closed::Broken(format!("bad update from server: {e}")));
                            break;
                        }
                    }
                    Ok(Message::Ack { durable }) => {
                        let n = durable.saturating_sub(hs.update_messages_sent);
                        while acked < n {
                            match unacked.pop_front() {
                                Some(t) => out.ack_latencies.push(now.saturating_sub(t)),
                                None => break,
                            }
                            acked += 1;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        out.closed = Some(Closed::Broken(format!("undecodable frame: {e}")));
                        break;
                    }
                }
            }
            _ = async { tokio::time::sleep_until(due.unwrap_or_else(Instant::now).into()).await }, if due.is_some() => {
                let (Some(w), Some((_, end)), Some(due)) = (writer, schedule, due) else { continue };
                if due >= end || next_key >= shared.writers[w].sends.len() {
                    writing_done = true;
                    shared.writers_done.fetch_add(1, Ordering::AcqRel);
                    continue;
                }
                let ch = (b'a' + (next_key % 26) as u8) as char;
                let update = replica.append(ch.encode_utf8(&mut [0; 4]));
                let now = Instant::now();
                let sent_at = epoch.nanos(now);
                shared.writers[w].due[next_key].store(epoch.nanos(due), Ordering::Release);
                shared.writers[w].sends[next_key].store(sent_at + 1, Ordering::Release);
                shared.sent.fetch_add(1, Ordering::AcqRel);
                out.send_lag.push(now.saturating_duration_since(due).as_nanos() as u64);
                if !args.no_acks {
                    unacked.push_back(sent_at);
                }
                next_key += 1;
                out.own_sent += 1;
                if let Err(e) = ws.send(WsMessage::Binary(encode_update(&update))).await {
                    out.closed = Some(Closed::Broken(e.to_string()));
                    break;
                }
            }
            changed = phase.changed() => {
                if changed.is_err() { break; }
            }
        }
    }
    if writer.is_some() && !writing_done {
        shared.writers_done.fetch_add(1, Ordering::AcqRel);
    }
    out.text = replica.string();
    let _ = ws.close(None).await;
    out
}
