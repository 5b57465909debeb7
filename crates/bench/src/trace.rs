//! `trace`: replays a recorded sequential editing trace (Joseph Gentle's
//! editing-traces format) through the server from one writer while an
//! observer watches, and checks the observer ends with exactly `endContent`.
//!
//! The writer's updates are built before the clock starts, so the figure is
//! the server's (and the sockets'), not the generator's CRDT. In flight is
//! bounded by a window: by default the durable-ack count (`?quire=1`), or, for
//! servers without acks, what the observer has received.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use futures_util::SinkExt;
use quire_protocol::{Message, SyncMessage, encode_update};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use yrs::{ClientID, GetString, Text, Transact};

use crate::client::{self, Replica, TargetArgs, Ws};
use crate::stats::{self, Epoch, Latency, PhaseMeter};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TraceFile {
    #[serde(default)]
    pub start_content: String,
    pub end_content: String,
    pub txns: Vec<Txn>,
}

#[derive(Debug, Deserialize)]
pub struct Txn {
    /// `[position, deleteCount, insertText]`, positions in code points.
    pub patches: Vec<(usize, usize, String)>,
}

pub fn load(path: &Path) -> anyhow::Result<TraceFile> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut json = String::new();
    flate2::read::GzDecoder::new(file)
        .read_to_string(&mut json)
        .with_context(|| format!("gunzipping {}", path.display()))?;
    serde_json::from_str(&json).with_context(|| format!("parsing {}", path.display()))
}

/// The writer's updates, one per transaction, and the text they produce.
pub struct Built {
    pub updates: Vec<Vec<u8>>,
    pub patches: usize,
    pub text: String,
}

/// Applies the first `limit` transactions to a fresh replica with the given
/// client id, recording each transaction's update.
///
/// Trace positions count code points; the replica counts UTF-16 units (as a
/// browser does). While the text holds no character outside the BMP the two
/// agree and positions pass straight through; after one appears each position
/// is converted against the current text, which is slow but exact.
pub fn build(trace: &TraceFile, limit: usize, client_id: ClientID) -> anyhow::Result<Built> {
    let replica = Replica::new(client_id);
    let mut updates = Vec::with_capacity(limit.min(trace.txns.len()));
    let mut patches = 0;
    let mut len_cp = 0usize;
    let mut astral = false;
    if !trace.start_content.is_empty() {
        let mut txn = replica.doc.transact_mut();
        replica.text.insert(&mut txn, 0, &trace.start_content);
        updates.push(txn.encode_update_v1());
        len_cp = trace.start_content.chars().count();
        astral = has_astral(&trace.start_content);
    }
    for (i, t) in trace.txns.iter().take(limit).enumerate() {
        let mut txn = replica.doc.transact_mut();
        for (pos, del, ins) in &t.patches {
            let (pos, del) = (*pos, *del);
            if pos + del > len_cp {
                bail!("txn {i}: patch [{pos}, {del}] outside a text of {len_cp} code points");
            }
            let (at, n) = if astral {
                let s = replica.text.get_string(&txn);
                let at: usize = s.chars().take(pos).map(char::len_utf16).sum();
                let n: usize = s.chars().skip(pos).take(del).map(char::len_utf16).sum();
                (at, n)
            } else {
                (pos, del)
            };
            if n > 0 {
                replica.text.remove_range(&mut txn, at as u32, n as u32);
            }
            if !ins.is_empty() {
                replica.text.insert(&mut txn, at as u32, ins);
                astral |= has_astral(ins);
            }
            len_cp = len_cp - del + ins.chars().count();
            patches += 1;
        }
        updates.push(txn.encode_update_v1());
    }
    let text = replica.string();
    Ok(Built {
        updates,
        patches,
        text,
    })
}

fn has_astral(s: &str) -> bool {
    s.chars().any(|c| c.len_utf16() > 1)
}

/// How the writer bounds what it has in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Flow {
    /// Quire's durable acks (`?quire=1`): at most `window` updates not yet
    /// committed to storage.
    Ack,
    /// At most `window` updates the observer has not received (for servers
    /// without the ack extension).
    Observer,
}

#[derive(Debug, Clone, clap::Args)]
pub struct TraceArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Sequential trace, gzipped JSON.
    #[arg(long, default_value = crate::DEFAULT_TRACE)]
    pub trace: PathBuf,
    /// Most updates in flight.
    #[arg(long, default_value_t = 1024)]
    pub window: u64,
    /// What counts as no longer in flight.
    #[arg(long, value_enum, default_value = "ack")]
    pub flow: Flow,
    /// Replay only the first N transactions (the check is then against the
    /// locally replayed text, not `endContent`).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Document name (default: a fresh one per run).
    #[arg(long)]
    pub doc: Option<String>,
    /// After the replay, a fresh connection syncs the document and must read
    /// the same text.
    #[arg(long)]
    pub verify_reload: bool,
    /// Server process to sample for RSS and CPU.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Give up after this long.
    #[arg(long, default_value_t = 600)]
    pub timeout_secs: u64,
}

pub async fn run(args: TraceArgs) -> anyhow::Result<bool> {
    let loaded = Instant::now();
    let trace = load(&args.trace)?;
    let limit = args.limit.unwrap_or(trace.txns.len());
    let full = limit >= trace.txns.len();
    let built = build(&trace, limit, ClientID::random())?;
    let expected = if full {
        if built.text != trace.end_content {
            bail!(
                "local replay of the trace does not produce endContent: the trace or the replay is wrong"
            );
        }
        trace.end_content.clone()
    } else {
        built.text.clone()
    };
    let prepare_s = loaded.elapsed().as_secs_f64();
    let frames: Vec<Bytes> = built.updates.iter().map(|u| encode_update(u)).collect();
    let update_bytes: usize = built.updates.iter().map(Vec::len).sum();
    drop(built.updates);
    let total = frames.len() as u64;
    let doc = args
        .doc
        .clone()
        .unwrap_or_else(|| format!("bench-trace-{}", run_tag()));

    let target = args.target.target().await?;
    target.prepare(&doc).await?;
    // Connect the observer first so that it sees every update as a broadcast.
    let mut obs_ws = target.connect(&doc, false).await?;
    let obs_replica = Replica::new(ClientID::random());
    client::sync(&mut obs_ws, &obs_replica)
        .await
        .context("observer handshake")?;
    let acks = args.flow == Flow::Ack;
    let mut ws = target.connect(&doc, acks).await?;
    // The writer's updates were built offline; it joins with an empty replica
    // so the handshake does not send the whole trace in one step 2.
    let hs = client::sync(&mut ws, &Replica::new(ClientID::random()))
        .await
        .context("writer handshake")?;

    let epoch = Epoch::now();
    let sent_at: Arc<Vec<AtomicU64>> = Arc::new((0..total).map(|_| AtomicU64::new(0)).collect());
    let (obs_tx, obs_rx) = watch::channel(0u64);
    let observer = tokio::spawn(observe(
        obs_ws,
        obs_replica,
        total,
        obs_tx,
        sent_at.clone(),
        epoch,
    ));

    let meter = PhaseMeter::start(args.server_pid)?;
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.timeout_secs);
    let writer = tokio::time::timeout_at(
        deadline,
        write(
            &mut ws,
            &frames,
            &args,
            hs.update_messages_sent,
            hs.acked,
            obs_rx,
            &sent_at,
            epoch,
        ),
    )
    .await;
    let writer = match writer {
        Ok(r) => r?,
        Err(_) => bail!("timed out after {} s while writing", args.timeout_secs),
    };
    let observed = match tokio::time::timeout_at(deadline, observer).await {
        Ok(r) => r??,
        Err(_) => bail!(
            "timed out after {} s waiting for the observer",
            args.timeout_secs
        ),
    };
    let usage = meter.finish()?;

    let end_to_end = observed.done_at.duration_since(started).as_secs_f64();
    let durable = writer
        .all_acked_at
        .map(|t| t.duration_since(started).as_secs_f64());
    let text_ok = observed.text == expected;
    let mut ok = text_ok;

    let reload = if args.verify_reload {
        let mut ws = target.connect(&doc, false).await?;
        let r = Replica::new(ClientID::random());
        let hs = client::sync(&mut ws, &r)
            .await
            .context("reload handshake")?;
        let same = r.string() == expected;
        ok &= same;
        let _ = ws.close(None).await;
        Some((same, hs.took))
    } else {
        None
    };
    let _ = ws.close(None).await;

    let json = json!({
        "scenario": "trace",
        "url": args.target.url[0],
        "doc": doc,
        "trace": args.trace.display().to_string(),
        "txns": total,
        "patches": built.patches,
        "update_bytes": update_bytes,
        "flow": args.flow,
        "window": args.window,
        "prepare_s": prepare_s,
        "elapsed_s": end_to_end,
        "keystrokes_per_sec": built.patches as f64 / end_to_end,
        "durable_elapsed_s": durable,
        "durable_keystrokes_per_sec": durable.map(|d| built.patches as f64 / d),
        "delivery_latency": observed.latency,
        "ack_latency": writer.ack_latency,
        "observer_text_ok": text_ok,
        "observer_chars": observed.text.chars().count(),
        "expected_chars": expected.chars().count(),
        "reload_ok": reload.map(|r| r.0),
        "reload_sync_ms": reload.map(|r| r.1.as_secs_f64() * 1e3),
        "usage": usage,
        "ok": ok,
    });
    let mut rows = vec![
        (
            "scenario".into(),
            format!("trace {} ({} patches)", args.trace.display(), built.patches),
        ),
        (
            "window".into(),
            format!("{} updates ({:?} flow)", args.window, args.flow),
        ),
        (
            "end to end".into(),
            format!(
                "{:.0} keystrokes/s ({end_to_end:.2} s, observer has everything)",
                built.patches as f64 / end_to_end
            ),
        ),
    ];
    if let Some(d) = durable {
        rows.push((
            "durable".into(),
            format!(
                "{:.0} keystrokes/s ({d:.2} s, all acked)",
                built.patches as f64 / d
            ),
        ));
    }
    rows.push((
        "delivery latency".into(),
        stats::fmt_latency(&observed.latency),
    ));
    if let Some(a) = &writer.ack_latency {
        rows.push(("ack latency".into(), stats::fmt_latency(a)));
    }
    rows.push((
        "observer text".into(),
        if text_ok {
            "== expected".into()
        } else {
            format!(
                "DIFFERS ({} chars, expected {})",
                observed.text.chars().count(),
                expected.chars().count()
            )
        },
    ));
    if let Some((same, took)) = reload {
        rows.push((
            "fresh connection".into(),
            format!(
                "{} (synced in {:.1} ms)",
                if same { "== expected" } else { "DIFFERS" },
                took.as_secs_f64() * 1e3
            ),
        ));
    }
    stats::fmt_usage(&mut rows, &usage);
    stats::emit(&json, &rows);
    Ok(ok)
}

pub struct Written {
    all_acked_at: Option<Instant>,
    ack_latency: Option<Latency>,
}

/// Sends every frame, keeping at most `window` in flight, then (with acks)
/// waits until all are durable.
#[allow(clippy::too_many_arguments)]
pub async fn write(
    ws: &mut Ws,
    frames: &[Bytes],
    args: &TraceArgs,
    handshake_updates: u64,
    handshake_acked: u64,
    mut observed: watch::Receiver<u64>,
    sent_at: &[AtomicU64],
    epoch: Epoch,
) -> anyhow::Result<Written> {
    let total = frames.len() as u64;
    let window = args.window.max(1);
    let acks = args.flow == Flow::Ack;
    // Ack counts include the handshake's step 2; ours start after it.
    let mut acked = handshake_acked.saturating_sub(handshake_updates);
    let mut ack_samples = Vec::with_capacity(if acks { frames.len() } else { 0 });
    let mut next = 0u64;
    loop {
        let confirmed = if acks { acked } else { *observed.borrow() };
        if next < total && next - confirmed < window {
            while next < total && next - confirmed < window {
                let now = epoch.nanos(Instant::now());
                sent_at[next as usize].store(now, Ordering::Relaxed);
                ws.feed(WsMessage::Binary(frames[next as usize].clone()))
                    .await?;
                next += 1;
            }
            ws.flush().await?;
            continue;
        }
        if next == total && (!acks || acked >= total) {
            let ack_latency = acks.then(|| Latency::from_nanos(&mut ack_samples));
            return Ok(Written {
                all_acked_at: acks.then(Instant::now),
                ack_latency,
            });
        }
        tokio::select! {
            frame = client::next_frame(ws) => {
                let frame = frame.map_err(|c| anyhow::anyhow!("writer: {c}"))?;
                if let Ok(Message::Ack { durable }) = Message::decode(&frame) {
                    let n = durable.saturating_sub(handshake_updates).min(next);
                    let now = epoch.nanos(Instant::now());
                    for i in acked..n {
                        ack_samples.push(now.saturating_sub(sent_at[i as usize].load(Ordering::Relaxed)));
                    }
                    acked = acked.max(n);
                }
            }
            changed = observed.changed(), if !acks => {
                if changed.is_err() {
                    bail!("observer stopped before the replay finished");
                }
            }
        }
    }
}

struct Observed {
    done_at: Instant,
    text: String,
    latency: Latency,
}

/// Applies every broadcast update until `total` have arrived.
async fn observe(
    mut ws: Ws,
    replica: Replica,
    total: u64,
    progress: watch::Sender<u64>,
    sent_at: Arc<Vec<AtomicU64>>,
    epoch: Epoch,
) -> anyhow::Result<Observed> {
    let mut received = 0u64;
    let mut latencies = Vec::with_capacity(total as usize);
    while received < total {
        let frame = client::next_frame(&mut ws)
            .await
            .map_err(|c| anyhow::anyhow!("observer after {received} of {total} updates: {c}"))?;
        let now = epoch.nanos(Instant::now());
        let msg = Message::decode(&frame).context("observer: undecodable frame")?;
        if let Message::Sync(SyncMessage::Update(u)) = msg {
            replica.apply(u)?;
            // One writer, one document actor: broadcasts arrive in send order.
            if let Some(sent) = sent_at.get(received as usize) {
                latencies.push(now.saturating_sub(sent.load(Ordering::Relaxed)));
            }
            received += 1;
            progress.send_replace(received);
        }
    }
    let done_at = Instant::now();
    let _ = ws.close(None).await;
    Ok(Observed {
        done_at,
        text: replica.string(),
        latency: Latency::from_nanos(&mut latencies),
    })
}

/// A short tag that makes document names unique per run.
pub fn run_tag() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}-{}", t.as_millis(), std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trace(patches: &[(usize, usize, &str)], end: &str) -> TraceFile {
        TraceFile {
            start_content: String::new(),
            end_content: end.into(),
            txns: patches
                .iter()
                .map(|(p, d, s)| Txn {
                    patches: vec![(*p, *d, s.to_string())],
                })
                .collect(),
        }
    }

    #[test]
    fn replays_code_point_positions() {
        // "a😀c", then insert after the emoji (code point 2, UTF-16 unit 3),
        // then delete the emoji (one code point, two UTF-16 units).
        let t = trace(&[(0, 0, "a😀c"), (2, 0, "b"), (1, 1, "")], "abc");
        let b = build(&t, usize::MAX, ClientID::new(7)).unwrap();
        assert_eq!(b.text, "abc");
        assert_eq!(b.updates.len(), 3);
    }

    #[test]
    fn refuses_patches_past_the_end() {
        let t = trace(&[(0, 0, "ab"), (3, 0, "x")], "");
        assert!(build(&t, usize::MAX, ClientID::new(7)).is_err());
    }
}
