//! `coldload`: how long a client waits, from connect to synced, for a large
//! stored document the server has not loaded since it started.
//!
//! The generator cannot restart the server, so this runs in two phases with
//! the runner's restart in between:
//!
//! - `populate` stores the documents: the trace's final state sent as one
//!   update (`final`), the whole trace replayed keystroke by keystroke as one
//!   update per transaction (`history`: the store then holds what the
//!   server's compaction left of it, a snapshot and a log tail), and
//!   `--history-docs` small documents with a few hundred updates each, so the
//!   store is of a realistic size. Every update is durably acknowledged
//!   before `populate` ends. It prints the ids.
//! - `measure` (after the restart) connects a fresh client to each document
//!   `--runs` times, one after the other: the first run is the cold load,
//!   the others find the document in memory. Each run times the TCP and
//!   WebSocket handshake (on Quire the document is loaded before the upgrade
//!   is answered, so a cold load shows there) and connect → synced (the
//!   server's sync step 2 received and applied), then checks the text
//!   against the trace's `endContent`.

use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use futures_util::{StreamExt, stream};
use quire_protocol::encode_update;
use serde::Serialize;
use tokio::sync::watch;
use yrs::{ClientID, ReadTxn, StateVector, Transact};

use crate::client::{self, Replica, Target, TargetArgs};
use crate::connections::server_metric;
use crate::stats::{self, Epoch, Latency};
use crate::trace::{self, Flow, TraceArgs, run_tag};

#[derive(Debug, Clone, clap::Args)]
pub struct ColdloadArgs {
    #[command(subcommand)]
    pub command: ColdloadCommand,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum ColdloadCommand {
    /// Store the documents (before the restart); prints their ids.
    Populate(PopulateArgs),
    /// Connect → synced for stored documents (after the restart).
    Measure(MeasureArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct PopulateArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Sequential trace, gzipped JSON.
    #[arg(long, default_value = crate::DEFAULT_TRACE)]
    pub trace: PathBuf,
    /// Small documents with history stored beside the two measured ones.
    #[arg(long, default_value_t = 1000)]
    pub history_docs: usize,
    /// Updates (the trace's first transactions) in each small document.
    #[arg(long, default_value_t = 300)]
    pub history_updates: usize,
    /// Small documents written at once.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Most updates in flight per document (durable acks).
    #[arg(long, default_value_t = 1024)]
    pub window: u64,
    /// Give up on one document after this long.
    #[arg(long, default_value_t = 1200)]
    pub timeout_secs: u64,
}

#[derive(Debug, Clone, clap::Args)]
pub struct MeasureArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// A document to load, `ID` or `LABEL=ID` (repeat it; `populate` prints
    /// the list as `measure_args`).
    #[arg(long = "doc", required = true)]
    pub docs: Vec<String>,
    /// The trace whose `endContent` every document must hold.
    #[arg(long)]
    pub expect_trace: PathBuf,
    /// Connections per document; the first is the cold load.
    #[arg(long, default_value_t = 20)]
    pub runs: usize,
    /// Give up on one run after this long.
    #[arg(long, default_value_t = 60)]
    pub timeout_secs: u64,
}

pub async fn run(args: ColdloadArgs) -> anyhow::Result<bool> {
    match args.command {
        ColdloadCommand::Populate(a) => {
            let p = populate(&a).await?;
            let json = serde_json::to_value(&p)?;
            let mut rows = vec![(
                "scenario".to_string(),
                format!("coldload populate ({})", a.trace.display()),
            )];
            for d in &p.docs {
                rows.push((
                    d.label.clone(),
                    format!(
                        "{} ({} updates, {:.1} KiB sent)",
                        d.doc,
                        d.updates,
                        d.bytes as f64 / 1024.0
                    ),
                ));
            }
            rows.push((
                "history docs".into(),
                format!(
                    "{} written of {} ({} updates each)",
                    p.history_docs - p.history_failed,
                    p.history_docs,
                    p.history_updates_each
                ),
            ));
            if let Some(e) = &p.first_failure {
                rows.push(("first failure".into(), e.clone()));
            }
            rows.push((
                "took".into(),
                format!(
                    "{:.1} s (building the trace's updates {:.1} s)",
                    p.populate_s, p.build_s
                ),
            ));
            rows.push((
                "then".into(),
                format!("restart the server; measure {}", p.measure_args),
            ));
            stats::emit(&json, &rows);
            Ok(p.ok)
        }
        ColdloadCommand::Measure(a) => {
            let m = measure(&a).await?;
            let json = serde_json::to_value(&m)?;
            let mut rows = vec![("scenario".to_string(), "coldload measure".to_string())];
            if let Some(n) = m.documents_live_before
                && n > 0.0
            {
                rows.push((
                    "WARNING".into(),
                    format!("{n} documents were already loaded: the first run may not be cold"),
                ));
            }
            for d in &m.docs {
                rows.push((
                    d.label.clone(),
                    format!(
                        "cold {:.1} ms (handshake {:.1} ms) · warm p50 {:.1} ms p99 {:.1} ms (n={}) · {:.1} KiB · text {}",
                        d.cold_ms,
                        d.handshake_ms,
                        d.warm_ms.p50,
                        d.warm_ms.p99,
                        d.warm_ms.n,
                        d.bytes as f64 / 1024.0,
                        if d.text_ok { "== endContent" } else { "DIFFERS" }
                    ),
                ));
            }
            stats::emit(&json, &rows);
            Ok(m.ok)
        }
    }
}

/// One stored document `measure` should load.
#[derive(Debug, Clone, Serialize)]
pub struct PopulatedDoc {
    pub doc: String,
    pub label: String,
    /// Updates sent to build it.
    pub updates: usize,
    /// Update bytes sent.
    pub bytes: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Populated {
    pub scenario: &'static str,
    pub phase: &'static str,
    pub url: String,
    pub trace: String,
    pub docs: Vec<PopulatedDoc>,
    pub history_docs: usize,
    pub history_updates_each: usize,
    pub history_failed: usize,
    pub first_failure: Option<String>,
    /// `--doc LABEL=ID …` for `measure`.
    pub measure_args: String,
    pub build_s: f64,
    pub populate_s: f64,
    pub ok: bool,
}

/// Stores the documents (see the module documentation).
pub async fn populate(args: &PopulateArgs) -> anyhow::Result<Populated> {
    let started = Instant::now();
    let tr = trace::load(&args.trace)?;
    let built = trace::build(&tr, usize::MAX, ClientID::random())?;
    if built.text != tr.end_content {
        bail!(
            "local replay of the trace does not produce endContent: the trace or the replay is wrong"
        );
    }
    // The final state as one update: the replay applied to a replica.
    let replica = Replica::new(ClientID::random());
    for u in &built.updates {
        replica.apply(u)?;
    }
    if replica.string() != tr.end_content {
        bail!("the trace's updates applied to a replica do not produce endContent");
    }
    let state = replica
        .doc
        .transact()
        .encode_state_as_update_v1(&StateVector::default());
    drop(replica);
    let small = trace::build(&tr, args.history_updates, ClientID::random())?;
    let build_s = started.elapsed().as_secs_f64();

    let tag = run_tag();
    let final_doc = format!("coldload-final-{tag}");
    let history_doc = format!("coldload-history-{tag}");
    let target = args.target.target().await?;
    let trace_args = TraceArgs {
        target: args.target.clone(),
        trace: args.trace.clone(),
        window: args.window.max(1),
        flow: Flow::Ack,
        limit: None,
        doc: None,
        verify_reload: false,
        server_pid: None,
        timeout_secs: args.timeout_secs,
    };
    let timeout = Duration::from_secs(args.timeout_secs.max(1));

    let one = vec![encode_update(&state)];
    target.prepare(&final_doc).await?;
    write_doc(&target, &final_doc, &one, &trace_args, timeout)
        .await
        .context("storing the final state")?;
    let history: Vec<Bytes> = built.updates.iter().map(|u| encode_update(u)).collect();
    let history_bytes: usize = built.updates.iter().map(Vec::len).sum();
    drop(built);
    target.prepare(&history_doc).await?;
    write_doc(&target, &history_doc, &history, &trace_args, timeout)
        .await
        .context("replaying the trace keystroke by keystroke")?;
    drop(history);

    let small_frames: Vec<Bytes> = small.updates.iter().map(|u| encode_update(u)).collect();
    let results: Vec<anyhow::Result<()>> = stream::iter(0..args.history_docs)
        .map(|i| {
            let (target, frames, trace_args) = (&target, &small_frames, &trace_args);
            let doc = format!("coldload-ballast-{tag}-{i}");
            async move {
                target.prepare(&doc).await?;
                write_doc(target, &doc, frames, trace_args, timeout).await
            }
        })
        .buffer_unordered(args.concurrency.max(1))
        .collect()
        .await;
    let history_failed = results.iter().filter(|r| r.is_err()).count();
    let first_failure = results
        .iter()
        .find_map(|r| r.as_ref().err())
        .map(|e| format!("{e:#}"));

    let docs = vec![
        PopulatedDoc {
            doc: final_doc.clone(),
            label: "final".into(),
            updates: 1,
            bytes: state.len(),
        },
        PopulatedDoc {
            doc: history_doc.clone(),
            label: "history".into(),
            updates: tr.txns.len() + usize::from(!tr.start_content.is_empty()),
            bytes: history_bytes,
        },
    ];
    Ok(Populated {
        scenario: "coldload",
        phase: "populate",
        url: args.target.url[0].clone(),
        trace: args.trace.display().to_string(),
        measure_args: docs
            .iter()
            .map(|d| format!("--doc {}={}", d.label, d.doc))
            .collect::<Vec<_>>()
            .join(" "),
        docs,
        history_docs: args.history_docs,
        history_updates_each: small.updates.len(),
        history_failed,
        first_failure,
        build_s,
        populate_s: started.elapsed().as_secs_f64(),
        ok: history_failed == 0,
    })
}

/// Sends `frames` to `doc` through one connection with durable acks and
/// returns once all are committed (the trace scenario's writer).
async fn write_doc(
    target: &Target,
    doc: &str,
    frames: &[Bytes],
    trace_args: &TraceArgs,
    timeout: Duration,
) -> anyhow::Result<()> {
    tokio::time::timeout(timeout, async {
        let mut ws = target.connect(doc, true).await?;
        let hs = client::sync(&mut ws, &Replica::new(ClientID::random()))
            .await
            .context("handshake")?;
        // With acks the writer never waits on an observer.
        let (_observer, observed) = watch::channel(0u64);
        let sent_at: Vec<AtomicU64> = (0..frames.len()).map(|_| AtomicU64::new(0)).collect();
        trace::write(
            &mut ws,
            frames,
            trace_args,
            hs.update_messages_sent,
            hs.acked,
            observed,
            &sent_at,
            Epoch::now(),
        )
        .await?;
        let _ = ws.close(None).await;
        anyhow::Ok(())
    })
    .await
    .with_context(|| format!("{doc}: not stored within {} s", timeout.as_secs()))?
    .with_context(|| format!("storing {doc}"))
}

/// Warm figures: percentiles over every run but the first.
#[derive(Debug, Clone, Copy, Serialize, Default)]
pub struct Warm {
    pub p50: f64,
    pub p99: f64,
    pub n: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct MeasuredDoc {
    pub doc: String,
    pub label: String,
    /// The synced document's state, encoded as one update.
    pub bytes: usize,
    /// Connect → synced on the first connection after the restart.
    pub cold_ms: f64,
    /// Connect → synced on the later ones.
    pub warm_ms: Warm,
    /// TCP and WebSocket handshake of the cold run (on Quire this includes
    /// loading the document, which happens before the upgrade is answered).
    pub handshake_ms: f64,
    pub warm_handshake_ms: Warm,
    /// Every run's text equals the trace's `endContent`.
    pub text_ok: bool,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Measured {
    pub scenario: &'static str,
    pub phase: &'static str,
    pub url: String,
    pub runs: usize,
    /// `quire_documents_live_now` on the server's `/metrics` before the
    /// first run (0 after a restart; `None` where the server has no such
    /// page).
    pub documents_live_before: Option<f64>,
    pub docs: Vec<MeasuredDoc>,
    pub ok: bool,
}

/// Loads each document `--runs` times (see the module documentation).
pub async fn measure(args: &MeasureArgs) -> anyhow::Result<Measured> {
    let expected = trace::load(&args.expect_trace)?.end_content;
    let documents_live_before = server_metric(&args.target, "quire_documents_live_now").await;
    let target = args.target.target().await?;
    let timeout = Duration::from_secs(args.timeout_secs.max(1));
    let runs = args.runs.max(1);
    let mut docs = Vec::new();
    for spec in &args.docs {
        let (label, doc) = spec.split_once('=').unwrap_or((spec, spec));
        let mut m = MeasuredDoc {
            doc: doc.to_string(),
            label: label.to_string(),
            bytes: 0,
            cold_ms: f64::NAN,
            warm_ms: Warm::default(),
            handshake_ms: f64::NAN,
            warm_handshake_ms: Warm::default(),
            text_ok: true,
            error: None,
        };
        let (mut warm, mut warm_hs) = (Vec::new(), Vec::new());
        for run in 0..runs {
            let r = match tokio::time::timeout(timeout, load_once(&target, doc, &expected)).await {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => {
                    m.error = Some(format!("run {run}: {e:#}"));
                    m.text_ok = false;
                    break;
                }
                Err(_) => {
                    m.error = Some(format!(
                        "run {run}: not synced within {} s",
                        timeout.as_secs()
                    ));
                    m.text_ok = false;
                    break;
                }
            };
            m.text_ok &= r.text_ok;
            m.bytes = r.bytes;
            if run == 0 {
                m.cold_ms = ms(r.synced);
                m.handshake_ms = ms(r.handshake);
            } else {
                warm.push(r.synced.as_nanos() as u64);
                warm_hs.push(r.handshake.as_nanos() as u64);
            }
        }
        m.warm_ms = warm_of(&mut warm);
        m.warm_handshake_ms = warm_of(&mut warm_hs);
        docs.push(m);
    }
    let ok = docs.iter().all(|d| d.text_ok && d.error.is_none());
    Ok(Measured {
        scenario: "coldload",
        phase: "measure",
        url: args.target.url[0].clone(),
        runs,
        documents_live_before,
        docs,
        ok,
    })
}

struct Loaded {
    handshake: Duration,
    synced: Duration,
    bytes: usize,
    text_ok: bool,
}

/// One fresh client: connect, sync, check, close.
async fn load_once(target: &Target, doc: &str, expected: &str) -> anyhow::Result<Loaded> {
    let started = Instant::now();
    let mut ws = target.connect(doc, false).await?;
    let handshake = started.elapsed();
    let replica = Replica::new(ClientID::random());
    client::sync(&mut ws, &replica).await.context("sync")?;
    let synced = started.elapsed();
    let _ = ws.close(None).await;
    let text_ok = replica.string() == expected;
    let bytes = replica
        .doc
        .transact()
        .encode_state_as_update_v1(&StateVector::default())
        .len();
    Ok(Loaded {
        handshake,
        synced,
        bytes,
        text_ok,
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn warm_of(samples: &mut [u64]) -> Warm {
    let l = Latency::from_nanos(samples);
    Warm {
        p50: l.p50_ms,
        p99: l.p99_ms,
        n: l.count,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warm_percentiles() {
        let mut v = vec![3_000_000, 1_000_000, 2_000_000];
        let w = warm_of(&mut v);
        assert_eq!((w.p50, w.p99, w.n), (2.0, 3.0, 3));
        assert_eq!(warm_of(&mut []).n, 0);
    }
}
