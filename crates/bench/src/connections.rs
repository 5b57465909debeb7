//! `connections`: N idle WebSocket connections, each on its own document
//! (`--layout spread`) or all on one (`--layout one`), and what they cost the
//! server in resident memory.
//!
//! Every connection does the y-websocket handshake as a real client (sync
//! step 1/2) and then stays idle, answering pings. The server's `VmRSS` is
//! read once before the first connect and once every connection is open, each
//! time after it has stopped changing, so `rss_per_connection_kib` is
//! `(after − before) / held`. At the end each socket must answer a ping of
//! ours, so "held" means open at the end, not just opened once.
//!
//! The generator side stays cheap enough for tens of thousands of sockets in
//! one process: one small task per socket, no CRDT replica kept after the
//! handshake, connects bounded by `--concurrency`, and the process's open-file
//! soft limit raised to its hard limit first.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::{SinkExt, StreamExt, stream};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use yrs::ClientID;

use crate::account::origin_of;
use crate::client::{self, Replica, Target, TargetArgs};
use crate::stats::{self, Proc};
use crate::trace::run_tag;

/// Where the connections go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// Each connection on a document of its own.
    Spread,
    /// Every connection on the same document.
    One,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ConnectionsArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Connections to open and hold.
    #[arg(long, default_value_t = 1000)]
    pub count: usize,
    /// `spread`: one document per connection; `one`: all on one document.
    #[arg(long, value_enum, default_value = "spread")]
    pub layout: Layout,
    /// Connects (and document creations) in flight at once.
    #[arg(long, default_value_t = 200)]
    pub concurrency: usize,
    /// Seconds to hold every connection once all are open (at least as long
    /// as the server's memory takes to settle).
    #[arg(long, default_value_t = 5.0)]
    pub hold_secs: f64,
    /// Longest wait for the server's RSS to stop changing, per reading.
    #[arg(long, default_value_t = 20.0)]
    pub settle_secs: f64,
    /// Give up on one connection (connect and handshake, after its turn
    /// came) after this long. Above the client's 120 s patience with HTTP 429
    /// so that a rate limit shows as itself.
    #[arg(long, default_value_t = 150)]
    pub connect_timeout_secs: u64,
    /// Server process to sample for RSS.
    #[arg(long)]
    pub server_pid: Option<u32>,
}

/// Failures of one kind.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Failure {
    pub reason: String,
    pub count: usize,
}

/// What a run found; [`run`] prints it.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectionsReport {
    pub scenario: &'static str,
    pub url: String,
    pub layout: Layout,
    pub requested: usize,
    /// Connections open at the end: handshake done, held, and answering a
    /// ping.
    pub held: usize,
    pub failed: usize,
    pub failures: Vec<Failure>,
    pub rss_before_kib: Option<u64>,
    pub rss_after_kib: Option<u64>,
    pub rss_per_connection_kib: Option<f64>,
    /// Whether both RSS readings stopped changing before `--settle-secs`.
    pub rss_settled: Option<bool>,
    /// The server's own count of open sockets (`quire_connections` on
    /// `/metrics`) while everything was held, where the server has it.
    pub server_connections_gauge: Option<f64>,
    /// Creating the documents through the API (with `--account`).
    pub prepare_s: f64,
    /// First connect to the last handshake done (or failed).
    pub connect_s: f64,
    /// How long every connection was held.
    pub hold_s: f64,
    /// The generator's RSS while holding, and per held connection.
    pub generator_rss_kib: u64,
    pub generator_rss_per_connection_kib: Option<f64>,
    /// The generator's open-file soft limit after raising it.
    pub nofile_limit: Option<u64>,
    pub ok: bool,
}

pub async fn run(args: ConnectionsArgs) -> anyhow::Result<bool> {
    let r = measure(&args).await?;
    let json = serde_json::to_value(&r)?;
    let mut rows = vec![
        (
            "scenario".to_string(),
            format!("connections: {} idle, layout {:?}", r.requested, r.layout),
        ),
        (
            "held".into(),
            format!("{} of {} ({} failed)", r.held, r.requested, r.failed),
        ),
    ];
    for f in &r.failures {
        rows.push(("  failure".into(), format!("{} × {}", f.count, f.reason)));
    }
    rows.push((
        "connect".into(),
        format!(
            "{:.2} s (documents created in {:.2} s before)",
            r.connect_s, r.prepare_s
        ),
    ));
    if let (Some(b), Some(a)) = (r.rss_before_kib, r.rss_after_kib) {
        rows.push((
            "server RSS".into(),
            format!(
                "{:.1} MiB → {:.1} MiB{}",
                b as f64 / 1024.0,
                a as f64 / 1024.0,
                if r.rss_settled == Some(true) {
                    ""
                } else {
                    " (still changing at the deadline)"
                }
            ),
        ));
    }
    if let Some(p) = r.rss_per_connection_kib {
        rows.push(("RSS per connection".into(), format!("{p:.1} KiB")));
    }
    if let Some(g) = r.server_connections_gauge {
        rows.push(("server's socket gauge".into(), format!("{g}")));
    }
    rows.push((
        "generator RSS".into(),
        format!(
            "{:.1} MiB{}",
            r.generator_rss_kib as f64 / 1024.0,
            r.generator_rss_per_connection_kib
                .map(|p| format!(" ({p:.1} KiB per connection)"))
                .unwrap_or_default()
        ),
    ));
    stats::emit(&json, &rows);
    Ok(r.ok)
}

/// Opens, holds, checks and closes the connections.
pub async fn measure(args: &ConnectionsArgs) -> anyhow::Result<ConnectionsReport> {
    let nofile_limit = raise_nofile_limit();
    if let Some(limit) = nofile_limit
        && (limit as usize) < args.count + 64
    {
        eprintln!(
            "warning: this process may open {limit} files; {} sockets need more (raise the hard limit: ulimit -Hn)",
            args.count
        );
    }
    let concurrency = args.concurrency.max(1);
    let tag = run_tag();
    let doc_of = |i: usize| match args.layout {
        Layout::Spread => format!("bench-conn-{tag}-{i}"),
        Layout::One => format!("bench-conn-{tag}"),
    };
    let target = Arc::new(args.target.target().await?);

    // Documents first (not measured): one per connection, or the one.
    let prepared = Instant::now();
    let docs: Vec<String> = match args.layout {
        Layout::Spread => (0..args.count).map(doc_of).collect(),
        Layout::One => vec![doc_of(0)],
    };
    let created: Vec<Result<(), String>> = stream::iter(docs.iter())
        .map(|d| {
            let target = target.clone();
            async move {
                target
                    .prepare(d)
                    .await
                    .map_err(|e| format!("creating the document: {}", generic(&e, d)))
            }
        })
        .buffered(concurrency)
        .collect()
        .await;
    let prepare_s = prepared.elapsed().as_secs_f64();

    let server = args.server_pid.map(Proc::pid);
    let settle = Duration::from_secs_f64(args.settle_secs.max(0.0));
    let before = match &server {
        Some(p) => Some(settled_rss(p, settle).await?),
        None => None,
    };

    let (cmd_tx, cmd_rx) = watch::channel(Cmd::Hold);
    let (ev_tx, mut ev_rx) = mpsc::unbounded_channel::<Event>();
    let gate = Arc::new(Semaphore::new(concurrency));
    let timeout = Duration::from_secs(args.connect_timeout_secs.max(1));
    let mut failures: BTreeMap<String, usize> = BTreeMap::new();
    let mut tasks = Vec::with_capacity(args.count);
    let connect_started = Instant::now();
    for i in 0..args.count {
        let doc_index = match args.layout {
            Layout::Spread => i,
            Layout::One => 0,
        };
        if let Err(e) = &created[doc_index] {
            *failures.entry(e.clone()).or_default() += 1;
            continue;
        }
        tasks.push(tokio::spawn(hold_one(
            i,
            target.clone(),
            docs[doc_index].clone(),
            gate.clone(),
            timeout,
            ev_tx.clone(),
            cmd_rx.clone(),
        )));
    }
    drop(ev_tx);
    let spawned = tasks.len();

    // Every task reports its connect exactly once; each is bounded by
    // `timeout` after its turn, so this ends.
    let mut open = 0usize;
    let mut reported = 0usize;
    while reported < spawned {
        match ev_rx.recv().await {
            Some(Event::Connected(Ok(()))) => {
                open += 1;
                reported += 1;
            }
            Some(Event::Connected(Err(reason))) => {
                *failures.entry(reason).or_default() += 1;
                reported += 1;
            }
            Some(Event::Checked(_)) => {}
            None => break,
        }
    }
    let connect_s = connect_started.elapsed().as_secs_f64();
    let held_from = Instant::now();

    // Hold: the server's memory is read once it has settled, and the hold
    // lasts at least `--hold-secs`.
    let after = match &server {
        Some(p) => Some(settled_rss(p, settle).await?),
        None => None,
    };
    let hold = Duration::from_secs_f64(args.hold_secs.max(0.0));
    tokio::time::sleep(hold.saturating_sub(held_from.elapsed())).await;
    let generator_rss_kib = rss_kib(&Proc::this())?;

    // Check: every socket must still answer a ping.
    cmd_tx.send_replace(Cmd::Check);
    let mut held = 0usize;
    let mut checked = 0usize;
    while checked < open {
        match ev_rx.recv().await {
            Some(Event::Checked(Ok(()))) => {
                held += 1;
                checked += 1;
            }
            Some(Event::Checked(Err(reason))) => {
                *failures.entry(reason).or_default() += 1;
                checked += 1;
            }
            Some(Event::Connected(_)) => {}
            None => break,
        }
    }
    let hold_s = held_from.elapsed().as_secs_f64();
    let server_connections_gauge = server_metric(&args.target, "quire_connections").await;
    cmd_tx.send_replace(Cmd::Close);
    for t in tasks {
        let _ = t.await;
    }

    let failed = args.count - held;
    let counted: usize = failures.values().sum();
    if counted < failed {
        failures.insert("task ended without a report".into(), failed - counted);
    }
    let mut failures: Vec<Failure> = failures
        .into_iter()
        .map(|(reason, count)| Failure { reason, count })
        .collect();
    failures.sort_by(|a, b| b.count.cmp(&a.count).then(a.reason.cmp(&b.reason)));
    let per = |delta: f64| (held > 0).then(|| delta / held as f64);
    Ok(ConnectionsReport {
        scenario: "connections",
        url: args.target.url[0].clone(),
        layout: args.layout,
        requested: args.count,
        held,
        failed,
        failures,
        rss_before_kib: before.map(|b| b.0),
        rss_after_kib: after.map(|a| a.0),
        rss_per_connection_kib: match (before, after) {
            (Some(b), Some(a)) => per(a.0 as f64 - b.0 as f64),
            _ => None,
        },
        rss_settled: match (before, after) {
            (Some(b), Some(a)) => Some(b.1 && a.1),
            _ => None,
        },
        server_connections_gauge,
        prepare_s,
        connect_s,
        hold_s,
        generator_rss_kib,
        generator_rss_per_connection_kib: per(generator_rss_kib as f64),
        nofile_limit,
        ok: held == args.count,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmd {
    Hold,
    Check,
    Close,
}

enum Event {
    Connected(Result<(), String>),
    Checked(Result<(), String>),
}

/// One connection: its turn at the gate, connect and handshake, then idle
/// until told to check, then idle until told to close.
async fn hold_one(
    i: usize,
    target: Arc<Target>,
    doc: String,
    gate: Arc<Semaphore>,
    timeout: Duration,
    events: mpsc::UnboundedSender<Event>,
    mut cmd: watch::Receiver<Cmd>,
) {
    let opened = {
        let Ok(_permit) = gate.acquire().await else {
            return;
        };
        tokio::time::timeout(timeout, async {
            let mut ws = target.connect_on(i, &doc, false).await?;
            // The replica lives only for the handshake: an idle client
            // needs no CRDT.
            client::sync(&mut ws, &Replica::new(ClientID::random()))
                .await
                .context("handshake")?;
            anyhow::Ok(ws)
        })
        .await
    };
    let mut ws = match opened {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            let _ = events.send(Event::Connected(Err(generic(&e, &doc))));
            return;
        }
        Err(_) => {
            let _ = events.send(Event::Connected(Err(format!(
                "connect and handshake took over {} s",
                timeout.as_secs()
            ))));
            return;
        }
    };
    let _ = events.send(Event::Connected(Ok(())));

    // Idle: read (tungstenite answers the server's pings while we do) until
    // told to check or the socket ends.
    let mut lost: Option<String> = None;
    while *cmd.borrow_and_update() == Cmd::Hold {
        tokio::select! {
            changed = cmd.changed() => if changed.is_err() { return },
            frame = ws.next() => if let Err(why) = idle_frame(frame) {
                lost = Some(format!("lost while held: {why}"));
                break;
            },
        }
    }
    if lost.is_some() {
        while *cmd.borrow_and_update() == Cmd::Hold {
            if cmd.changed().await.is_err() {
                return;
            }
        }
    }
    let checked = match lost {
        Some(why) => Err(why),
        None => ping(&mut ws).await,
    };
    let alive = checked.is_ok();
    let _ = events.send(Event::Checked(checked));
    if !alive {
        return;
    }
    while *cmd.borrow_and_update() != Cmd::Close {
        tokio::select! {
            changed = cmd.changed() => if changed.is_err() { break },
            frame = ws.next() => if idle_frame(frame).is_err() { return },
        }
    }
    let _ = ws.close(None).await;
}

/// What an idle socket may receive: anything but its end.
fn idle_frame(
    frame: Option<Result<WsMessage, tokio_tungstenite::tungstenite::Error>>,
) -> Result<(), String> {
    match frame {
        Some(Ok(WsMessage::Close(cf))) => Err(match cf {
            Some(cf) => format!("closed by the server: {}", u16::from(cf.code)),
            None => "closed by the server".into(),
        }),
        Some(Ok(_)) => Ok(()),
        Some(Err(e)) => Err(format!("broken: {e}")),
        None => Err("stream ended".into()),
    }
}

/// Sends a ping and waits (bounded) for its pong.
async fn ping(ws: &mut client::Ws) -> Result<(), String> {
    const PAYLOAD: &[u8] = b"held?";
    ws.send(WsMessage::Ping(PAYLOAD.to_vec().into()))
        .await
        .map_err(|e| format!("ping not sent: {e}"))?;
    let waited = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match ws.next().await {
                Some(Ok(WsMessage::Pong(p))) if p.as_ref() == PAYLOAD => {
                    return Ok::<(), String>(());
                }
                other => idle_frame(other)?,
            }
        }
    })
    .await;
    match waited {
        Ok(r) => r.map_err(|why| format!("no pong: {why}")),
        Err(_) => Err("no pong within 30 s".into()),
    }
}

/// An error's message with this connection's document name taken out, so
/// that equal failures group.
fn generic(e: &anyhow::Error, doc: &str) -> String {
    let s = format!("{e:#}").replace(doc, "{doc}");
    s.chars().take(300).collect()
}

/// Raises this process's open-file soft limit to its hard limit; returns the
/// soft limit now in force (`None` where unlimited or unknown).
pub fn raise_nofile_limit() -> Option<u64> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let l = getrlimit(Resource::Nofile);
    if let Some(max) = l.maximum
        && l.current != Some(max)
        && let Err(e) = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(max),
                maximum: Some(max),
            },
        )
    {
        eprintln!("warning: could not raise the open-file limit to {max}: {e}");
    }
    getrlimit(Resource::Nofile).current
}

fn rss_kib(p: &Proc) -> anyhow::Result<u64> {
    let s = p.sample()?;
    Ok(p.usage(&s, &s).rss_after_kib)
}

/// The process's RSS once it has stopped changing: read every 100 ms until
/// a second's readings stay within max(128 KiB, 0.1 %), or `max` passes.
/// Returns the last reading and whether it settled.
pub async fn settled_rss(p: &Proc, max: Duration) -> anyhow::Result<(u64, bool)> {
    const WINDOW: usize = 10;
    let deadline = Instant::now() + max;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut recent: std::collections::VecDeque<u64> = std::collections::VecDeque::new();
    loop {
        tick.tick().await;
        let rss = rss_kib(p)?;
        recent.push_back(rss);
        if recent.len() > WINDOW {
            recent.pop_front();
        }
        if recent.len() == WINDOW {
            let lo = recent.iter().min().copied().unwrap_or(rss);
            let hi = recent.iter().max().copied().unwrap_or(rss);
            if hi - lo <= (rss / 1000).max(128) {
                return Ok((rss, true));
            }
        }
        if Instant::now() >= deadline {
            return Ok((rss, false));
        }
    }
}

/// The sum of a metric's samples on the first node's Prometheus `/metrics`
/// (Quire's, read with `--metrics-token`), or `None` where there is no such
/// page or metric, or it refuses us.
pub async fn server_metric(target: &TargetArgs, name: &str) -> Option<f64> {
    let origin = origin_of(&target.url[0]).ok()?;
    let host = origin.strip_prefix("http://")?.to_string();
    let auth = target
        .metrics_token
        .as_deref()
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let fetch = async {
        let mut s = tokio::net::TcpStream::connect(&host).await.ok()?;
        let req =
            format!("GET /metrics HTTP/1.1\r\nHost: {host}\r\n{auth}Connection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.ok()?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.ok()?;
        Some(raw)
    };
    let raw = tokio::time::timeout(Duration::from_secs(10), fetch)
        .await
        .ok()??;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.1 200") {
        return None;
    }
    let mut found = None;
    for line in body.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with(' ') || rest.starts_with('{')) {
            continue;
        }
        if let Some(v) = rest
            .rsplit(' ')
            .next()
            .and_then(|v| v.trim().parse::<f64>().ok())
        {
            *found.get_or_insert(0.0) += v;
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_failures_without_the_document_name() {
        let a = anyhow::anyhow!("connecting to ws://h/ws/bench-conn-1-2-17: HTTP 429");
        assert_eq!(
            generic(&a, "bench-conn-1-2-17"),
            "connecting to ws://h/ws/{doc}: HTTP 429"
        );
    }

    #[test]
    fn raises_the_open_file_limit_to_the_hard_limit() {
        let soft = raise_nofile_limit();
        let hard = rustix::process::getrlimit(rustix::process::Resource::Nofile).maximum;
        assert_eq!(soft, hard);
    }
}
