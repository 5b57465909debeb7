//! `saturate`: the fan-out at a per-writer rate raised step by step (R0, R0·F,
//! R0·F², …) until the delivery p99 passes the limit, deliveries are lost, or
//! the server closes sockets; reports the highest delivered updates/s whose
//! p99 stayed under the limit.
//!
//! A step's p99 is measured from each keystroke's *scheduled* send time, not
//! from when the generator got to send it: a server that stalls the
//! generator (or a generator too slow for the rate) cannot hide the delay
//! by making the generator send later (coordinated omission). A failing step
//! with the generator's core nearly full is named *generator-bound*: there
//! the figures are the generator's, not the server's. (A send lag alone does
//! not say so: a server that reads slowly makes the generator's sends wait
//! too.) Each step reports the generator's CPU so a run can be checked.
//!
//! By default clients do not keep a yrs replica (see [`Options::replicas`]):
//! each delivery costs the generator one frame read and a header parse, and
//! each keystroke one append to the writer's own text, so one generator core
//! outruns one server core.

use std::sync::Arc;

use serde::Serialize;
use serde_json::json;

use crate::fanout::{self, FanoutArgs, Options, Outcome};
use crate::stats;

#[derive(Debug, Clone, clap::Args)]
#[command(
    mut_arg("rate", |a| a.hide(true)),
    mut_arg("duration", |a| a.hide(true)),
)]
pub struct SaturateArgs {
    /// Every fan-out option; `--rate` and `--duration` are replaced by the
    /// steps' rate and `--step-duration`.
    #[command(flatten)]
    pub fanout: FanoutArgs,
    /// Keystrokes/s per writer of the first step.
    #[arg(long, default_value_t = 20.0)]
    pub start_rate: f64,
    /// Each step's rate is the previous one's times this.
    #[arg(long, default_value_t = 1.5)]
    pub factor: f64,
    /// Seconds of typing per step.
    #[arg(long, default_value_t = 10.0)]
    pub step_duration: f64,
    /// The delivery p99 a step must stay under, in milliseconds.
    #[arg(long, default_value_t = 50.0)]
    pub p99_limit_ms: f64,
    /// Most steps.
    #[arg(long, default_value_t = 25)]
    pub max_steps: usize,
    /// Clients apply every update to a yrs replica (costs the generator a
    /// CRDT decode per delivery; the fan-out does this).
    #[arg(long)]
    pub replicas: bool,
}

/// A failing step with the generator's CPU at or above this share of one
/// core is blamed on the generator.
const GENERATOR_BUSY_PERCENT: f64 = 90.0;

#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub rate: f64,
    pub offered_per_sec: f64,
    pub delivered_per_sec: f64,
    pub p50_ms: f64,
    /// From the actual send.
    pub p99_ms: f64,
    /// From the scheduled send: what the limit applies to.
    pub p99_from_schedule_ms: f64,
    pub max_ms: f64,
    pub sent: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub closed: usize,
    pub send_lag_p99_ms: f64,
    pub generator_cpu_percent: f64,
    pub server_cpu_percent: Option<f64>,
    pub converged: bool,
    /// Why this step ends the climb, if it does.
    pub verdict: Option<&'static str>,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Best {
    pub rate: f64,
    pub delivered_per_sec: f64,
    pub p99_ms: f64,
    pub p99_from_schedule_ms: f64,
}

impl Step {
    fn from(rate: f64, o: &Outcome, args: &SaturateArgs) -> Step {
        let closed = o.closed_sockets();
        let send_lag_p99_ms = o.send_lag.p99_ms;
        let p99 = o.latency_from_schedule.p99_ms;
        let verdict = if closed > 0 {
            Some("server_closed_sockets")
        } else if o.lost > 0 {
            Some("lost_deliveries")
        } else if !o.converged {
            // Everything arrived, nothing was closed, and yet the texts
            // differ: a correctness failure, not a load limit.
            Some("diverged")
        } else if p99 > args.p99_limit_ms && o.usage.generator.cpu_percent >= GENERATOR_BUSY_PERCENT
        {
            Some("generator_bound")
        } else if p99 > args.p99_limit_ms {
            Some("p99_over_limit")
        } else {
            None
        };
        Step {
            rate,
            offered_per_sec: o.offered_per_sec,
            delivered_per_sec: o.delivered_per_sec,
            p50_ms: o.latency.p50_ms,
            p99_ms: o.latency.p99_ms,
            p99_from_schedule_ms: p99,
            max_ms: o.latency.max_ms,
            sent: o.sent,
            lost: o.lost,
            duplicates: o.duplicates,
            closed,
            send_lag_p99_ms,
            generator_cpu_percent: o.usage.generator.cpu_percent,
            server_cpu_percent: o.usage.server.map(|s| s.cpu_percent),
            converged: o.converged,
            verdict,
        }
    }
}

pub async fn run(args: SaturateArgs) -> anyhow::Result<bool> {
    if args.start_rate <= 0.0 || args.factor <= 1.0 || args.step_duration <= 0.0 {
        anyhow::bail!("need --start-rate > 0, --factor > 1 and --step-duration > 0");
    }
    let target = Arc::new(args.fanout.target.target().await?);
    let opts = Options {
        scenario: "saturate",
        replicas: args.replicas,
    };
    let mut steps: Vec<Step> = Vec::new();
    let mut stopped_because = String::from("max_steps");
    let mut rate = args.start_rate;
    for i in 0..args.max_steps {
        let mut step_args = args.fanout.clone();
        step_args.rate = rate;
        step_args.duration = args.step_duration;
        let outcome = match fanout::measure(&step_args, target.clone(), &opts).await {
            Ok(o) => o,
            Err(e) => {
                stopped_because = format!("error: {e:#}");
                eprintln!("  step {i}: {stopped_because}");
                break;
            }
        };
        let step = Step::from(rate, &outcome, &args);
        eprintln!("  step {i}: {}", fmt_step(&step));
        let verdict = step.verdict;
        steps.push(step);
        if let Some(v) = verdict {
            stopped_because = v.to_string();
            break;
        }
        rate *= args.factor;
    }
    let best = steps
        .iter()
        .filter(|s| s.verdict.is_none())
        .max_by(|a, b| a.delivered_per_sec.total_cmp(&b.delivered_per_sec))
        .map(|s| Best {
            rate: s.rate,
            delivered_per_sec: s.delivered_per_sec,
            p99_ms: s.p99_ms,
            p99_from_schedule_ms: s.p99_from_schedule_ms,
        });
    let diverged = steps.iter().any(|s| s.verdict == Some("diverged"));
    let ok = best.is_some() && !diverged;
    let f = &args.fanout;
    let json = json!({
        "scenario": "saturate",
        "url": f.target.url,
        "docs": f.docs,
        "clients": f.clients,
        "writers": f.writers,
        "start_rate": args.start_rate,
        "factor": args.factor,
        "step_duration_s": args.step_duration,
        "p99_limit_ms": args.p99_limit_ms,
        "replicas": args.replicas,
        "best": best,
        "stopped_because": stopped_because,
        "steps": steps,
        "ok": ok,
    });
    let mut rows = vec![(
        "scenario".to_string(),
        format!(
            "saturate {} docs × {} clients, {} writers/doc, from {} keys/s ×{} per step of {} s, p99 limit {} ms",
            f.docs,
            f.clients,
            f.writers,
            args.start_rate,
            args.factor,
            args.step_duration,
            args.p99_limit_ms
        ),
    )];
    for (i, s) in steps.iter().enumerate() {
        rows.push((format!("step {i}"), fmt_step(s)));
    }
    rows.push((
        "best".into(),
        match &best {
            Some(b) => format!(
                "{:.0} delivered/s at {:.1} keys/s per writer (p99 {:.2} ms from schedule, {:.2} ms from send)",
                b.delivered_per_sec, b.rate, b.p99_from_schedule_ms, b.p99_ms
            ),
            None => "none: the first step already failed".into(),
        },
    ));
    rows.push(("stopped because".into(), stopped_because));
    stats::emit(&json, &rows);
    Ok(ok)
}

fn fmt_step(s: &Step) -> String {
    format!(
        "R {:.1}: {:.0}/s delivered (offered {:.0}), p99 {:.2} ms from schedule ({:.2} from send), lost {}, closed {}, send lag p99 {:.2} ms, generator CPU {:.0} %{}{}",
        s.rate,
        s.delivered_per_sec,
        s.offered_per_sec,
        s.p99_from_schedule_ms,
        s.p99_ms,
        s.lost,
        s.closed,
        s.send_lag_p99_ms,
        s.generator_cpu_percent,
        s.server_cpu_percent
            .map(|c| format!(", server CPU {c:.0} %"))
            .unwrap_or_default(),
        s.verdict.map(|v| format!(" → {v}")).unwrap_or_default(),
    )
}
