//! `soak`: the fan-out held steady for minutes and reported per interval
//! (a "minute", `--interval-secs`), to show what grows with time and what a
//! short run cannot: memory, latency tails, lost deliveries. The defaults
//! are fanout's shape on 50 documents (50 × 10 clients, 2 writers each at 20
//! keys/s: 18,000 deliveries/s offered) for 5 minutes.
//!
//! Per interval it reports delivered updates/s, latency p50 / p99 / p99.9 /
//! max from each keystroke's *scheduled* send (as `saturate` judges it, so a
//! generator held back by the server cannot hide the delay), the send lag,
//! deliveries lost, and at the interval's end the server's RSS and its CPU
//! over the interval (with `--server-pid`), and Quire's compactions (from
//! its `/metrics`). A delivery counts in the interval it arrived in (a lost
//! one in the interval its keystroke was due in); the last interval also
//! gets the few that arrive during the drain. The verdict helper says
//! whether the server's RSS stayed flat over the last three intervals (see
//! [`RSS_FLAT_RULE`]) and gives each interval's p99.9. The report is built
//! in [`report`].
//!
//! Hours of samples do not fit in vectors (18,000 deliveries/s is 86 MB of
//! latencies per 5 minutes), so clients record into one set of histograms per
//! interval ([`Histogram`]), and writers remember their keystrokes' send
//! times for [`ATTRIBUTION_WINDOW_SECS`] only: the generator's memory does
//! not grow with the run, and its own RSS is reported per interval to show
//! it. By default clients keep no yrs replica (`--replicas` brings them
//! back), as in `saturate`: 500 replicas of documents growing for minutes
//! would be the generator's memory growing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;

use crate::client::TargetArgs;
use crate::connections::server_metric;
use crate::fanout::engine::{Delivery, Run, Samples};
use crate::fanout::{FanoutArgs, Options};
use crate::histogram::Histogram;
use crate::stats::{self, PhaseMeter, PhaseUsage};

mod report;

pub use report::{IntervalReport, RSS_FLAT_RULE, Verdict};
use report::{Summary, fmt_progress, report};

#[derive(Debug, Clone, clap::Args)]
#[command(
    mut_arg("docs", |a| a.default_value("50")),
    mut_arg("duration", |a| a.default_value("300")),
)]
pub struct SoakArgs {
    /// Every fan-out option; the defaults are fanout's shape on 50
    /// documents for 300 s: 50 × 2 writers × 20 keys/s × 9 receivers =
    /// 18,000 deliveries/s.
    #[command(flatten)]
    pub fanout: FanoutArgs,
    /// Seconds per reported interval (a "minute"; shorten it for a quick
    /// run).
    #[arg(long, default_value_t = 60.0)]
    pub interval_secs: f64,
    /// Clients apply every update to a yrs replica and convergence compares
    /// texts (costs the generator a CRDT decode per delivery and memory
    /// growing with the documents).
    #[arg(long)]
    pub replicas: bool,
}

/// How long a writer remembers a keystroke's send time: a delivery later
/// than this is not attributed and counts as lost.
pub const ATTRIBUTION_WINDOW_SECS: f64 = 120.0;

/// Quire's counter of compactions (`quire-hub`'s `COMPACTIONS_TOTAL`), and
/// a gauge every Quire node has from its start (`quire-server`'s
/// `NODE_INFO`).
const COMPACTIONS_METRIC: &str = "quire_compactions_total";
const NODE_INFO_METRIC: &str = "quire_node_info";

/// Compactions the server has counted: `None` where it has no such metrics
/// page (the peers); 0 until the first one, while the counter is not on the
/// page yet.
async fn compactions(target: &TargetArgs) -> Option<f64> {
    match server_metric(target, COMPACTIONS_METRIC).await {
        Some(c) => Some(c),
        None => server_metric(target, NODE_INFO_METRIC).await.map(|_| 0.0),
    }
}

/// One interval's figures, recorded into by every client.
#[derive(Default)]
struct Interval {
    /// Unique deliveries that arrived in it.
    received: AtomicU64,
    /// Keystrokes due in it that were sent, and their unique deliveries
    /// (whenever they arrived): the difference, times the receivers, is
    /// what was lost.
    sent: AtomicU64,
    delivered_of_sent: AtomicU64,
    from_schedule: Histogram,
    from_send: Histogram,
    send_lag: Histogram,
    ack: Histogram,
}

struct Intervals {
    /// When typing starts, on the run's clock (set before it starts).
    start: AtomicU64,
    len_ns: u64,
    slots: Vec<Interval>,
}

impl Intervals {
    /// The interval holding time `t`; times after the last one (the drain)
    /// fall in the last.
    fn at(&self, t: u64) -> &Interval {
        let i = t.saturating_sub(self.start.load(Ordering::Relaxed)) / self.len_ns;
        &self.slots[(i as usize).min(self.slots.len() - 1)]
    }
}

/// A client's [`Samples`]: straight into the shared intervals.
struct IntervalSamples(Arc<Intervals>);

impl Samples for IntervalSamples {
    fn delivery(&mut self, d: &Delivery) {
        let now = self.0.at(d.now);
        if !d.duplicate {
            now.received.fetch_add(1, Ordering::Relaxed);
            self.0
                .at(d.due)
                .delivered_of_sent
                .fetch_add(1, Ordering::Relaxed);
        }
        now.from_schedule.record(d.from_schedule);
        now.from_send.record(d.latency);
    }

    fn sent(&mut self, due: u64, lag: u64) {
        let i = self.0.at(due);
        i.sent.fetch_add(1, Ordering::Relaxed);
        i.send_lag.record(lag);
    }

    fn acked(&mut self, now: u64, latency: u64) {
        self.0.at(now).ack.record(latency);
    }
}

/// A soak's JSON line and table (not yet printed).
pub struct SoakOutcome {
    pub json: serde_json::Value,
    pub rows: Vec<(String, String)>,
    pub ok: bool,
}

pub async fn run(args: SoakArgs) -> anyhow::Result<bool> {
    let o = measure(&args).await?;
    stats::emit(&o.json, &o.rows);
    Ok(o.ok)
}

/// What the controller read at the end of an interval.
struct Reading {
    usage: Option<PhaseUsage>,
    compactions: Option<f64>,
}

pub async fn measure(args: &SoakArgs) -> anyhow::Result<SoakOutcome> {
    let f = &args.fanout;
    if !(args.interval_secs > 0.0 && f.duration > 0.0) {
        bail!("need --interval-secs > 0 and --duration > 0");
    }
    let target = Arc::new(f.target.target().await?);
    let n = (f.duration / args.interval_secs).ceil().max(1.0) as usize;
    let intervals = Arc::new(Intervals {
        start: AtomicU64::new(0),
        len_ns: (args.interval_secs * 1e9) as u64,
        slots: (0..n).map(|_| Interval::default()).collect(),
    });
    let opts = Options {
        scenario: "soak",
        replicas: args.replicas,
    };
    let window = (f.rate * ATTRIBUTION_WINDOW_SECS).ceil() as usize + 1;
    let mut run = Run::connect(f, target.clone(), &opts, window, |_| {
        IntervalSamples(intervals.clone())
    })
    .await?;
    let server = &f.target;
    let whole = PhaseMeter::start(f.server_pid)?;
    let mut lap = PhaseMeter::start(f.server_pid)?;
    let compactions_before = compactions(server).await;
    let mut rss_start_kib = None;

    let epoch = run.epoch();
    let start = epoch.nanos(Instant::now()) + 20_000_000;
    intervals.start.store(start, Ordering::Relaxed);
    run.start_at(start);
    let start_i = epoch.instant(start);
    eprintln!(
        "  soak: {} intervals of {} s, {} docs × {} clients, {} writers/doc at {} keys/s",
        n, args.interval_secs, f.docs, f.clients, f.writers, f.rate
    );
    let mut readings: Vec<Reading> = Vec::with_capacity(n);
    let mut last_compactions = compactions_before;
    for i in 0..n {
        let end = interval_end(i, args.interval_secs, f.duration);
        tokio::time::sleep_until((start_i + Duration::from_secs_f64(end)).into()).await;
        let usage = lap.lap().ok();
        if i == 0 {
            rss_start_kib = usage.and_then(|u| u.server).map(|s| s.rss_before_kib);
        }
        let reading = Reading {
            usage,
            compactions: compactions(server).await,
        };
        eprintln!(
            "  {}",
            fmt_progress(
                i,
                n,
                end,
                &intervals.slots[i],
                &reading,
                last_compactions,
                args
            )
        );
        last_compactions = reading.compactions.or(last_compactions);
        readings.push(reading);
    }
    let deadline = start_i + Duration::from_secs_f64(f.duration + f.drain);
    run.wait(deadline).await;
    run.stop();
    let usage = whole.finish().ok();
    let connect_s = run.connect_s;
    let fin = run.finish(f, &target).await?;
    Ok(report(
        args,
        &intervals,
        &readings,
        Summary {
            fin,
            connect_s,
            usage,
            rss_start_kib,
            compactions_before,
        },
    ))
}

/// Seconds from the start of typing to the end of interval `i`.
fn interval_end(i: usize, interval: f64, duration: f64) -> f64 {
    ((i + 1) as f64 * interval).min(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_land_in_the_interval_they_happen_in() {
        let ivs = Intervals {
            start: AtomicU64::new(1_000),
            len_ns: 100,
            slots: (0..3).map(|_| Interval::default()).collect(),
        };
        let ivs = Arc::new(ivs);
        let mut s = IntervalSamples(ivs.clone());
        s.sent(1_050, 7); // due in the first
        let d = Delivery {
            now: 1_150, // arrived in the second
            due: 1_050,
            latency: 90,
            from_schedule: 100,
            cross_node: false,
            duplicate: false,
        };
        s.delivery(&d);
        s.delivery(&Delivery {
            duplicate: true,
            ..d
        });
        s.acked(9_999, 5); // after the end: the last interval
        let count =
            |i: usize, f: fn(&Interval) -> &AtomicU64| f(&ivs.slots[i]).load(Ordering::Relaxed);
        assert_eq!(count(0, |i| &i.sent), 1);
        assert_eq!(count(0, |i| &i.delivered_of_sent), 1);
        assert_eq!(
            count(1, |i| &i.received),
            1,
            "a duplicate is not a delivery"
        );
        assert_eq!(ivs.slots[1].from_schedule.count(), 2);
        assert_eq!(ivs.slots[0].send_lag.count(), 1);
        assert_eq!(ivs.slots[2].ack.count(), 1);
    }
}
