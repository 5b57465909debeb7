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
//! character per update, so the clock is the keystroke's index. The clients
//! and the schedule are the [`engine`]'s; this module keeps every sample of a
//! run and reports exact percentiles over them.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::json;

use crate::client::{Target, TargetArgs};
use crate::stats::{self, Latency, PhaseMeter, PhaseUsage};

mod client_task;
pub mod engine;

use engine::{Delivery, Finished, Role, Run, Samples, keystrokes_per_writer};

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

/// One fan-out run against `target` (signed in once by the caller, so a
/// scenario made of several runs does not sign in for each); prints nothing.
pub async fn measure(
    args: &FanoutArgs,
    target: Arc<Target>,
    opts: &Options,
) -> anyhow::Result<Outcome> {
    let mut run = Run::connect(
        args,
        target.clone(),
        opts,
        keystrokes_per_writer(args),
        EverySample::new,
    )
    .await?;
    let connect_s = run.connect_s;
    let meter = PhaseMeter::start(args.server_pid)?;
    let start = run.start();
    let deadline = run.epoch().instant(start) + Duration::from_secs_f64(args.duration + args.drain);
    run.wait(deadline).await;
    run.stop();
    let usage = meter.finish()?;
    let Finished {
        clients,
        sent,
        expected,
        delivered: unique,
        duplicates: dups,
        reordered,
        unattributed,
        lost,
        closed: closes,
        diverged_docs,
        span_s: span,
    } = run.finish(args, &target).await?;

    let nodes = args.target.url.len();
    let total_writers = args.docs * args.writers;
    let mut lat = Vec::new();
    let mut sched = Vec::new();
    let (mut at_writers, mut at_readers) = (Vec::new(), Vec::new());
    let mut ack = Vec::new();
    let mut lag = Vec::new();
    let mut cross = Vec::new();
    for r in clients {
        let mut s = r.samples;
        if r.writer {
            at_writers.extend_from_slice(&s.latencies);
        } else {
            at_readers.extend_from_slice(&s.latencies);
        }
        lat.append(&mut s.latencies);
        sched.append(&mut s.from_schedule);
        cross.append(&mut s.cross_node);
        ack.append(&mut s.ack_latencies);
        lag.append(&mut s.send_lag);
    }
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

/// Every sample of one client, for exact percentiles over a run short enough
/// to hold them all.
struct EverySample {
    latencies: Vec<u64>,
    /// Receipt minus the keystroke's scheduled send time.
    from_schedule: Vec<u64>,
    /// Latencies of updates whose writer is on another node (only with
    /// several `--url`s); also counted in `latencies`.
    cross_node: Vec<u64>,
    ack_latencies: Vec<u64>,
    send_lag: Vec<u64>,
}

impl EverySample {
    /// Room for every figure the run will record, taken before the clock
    /// starts: a vector that grows while the run goes copies itself on the
    /// generator's one thread (once the allocator serves large blocks from
    /// its heap, which it does after the first steps freed some), and those
    /// copies made the generator's sends late in the last steps of a long
    /// climb.
    fn new(role: Role) -> EverySample {
        EverySample {
            latencies: Vec::with_capacity(role.expected_deliveries),
            from_schedule: Vec::with_capacity(role.expected_deliveries),
            cross_node: Vec::new(),
            ack_latencies: Vec::with_capacity(if role.durable_acks {
                role.own_keystrokes
            } else {
                0
            }),
            send_lag: Vec::with_capacity(role.own_keystrokes),
        }
    }
}

impl Samples for EverySample {
    fn delivery(&mut self, d: &Delivery) {
        self.latencies.push(d.latency);
        self.from_schedule.push(d.from_schedule);
        if d.cross_node {
            self.cross_node.push(d.latency);
        }
    }

    fn sent(&mut self, _due: u64, lag: u64) {
        self.send_lag.push(lag);
    }

    fn acked(&mut self, _now: u64, latency: u64) {
        self.ack_latencies.push(latency);
    }
}
