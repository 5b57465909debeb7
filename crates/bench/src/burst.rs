//! `burst`: one writer sends N keystrokes at once — no window, no flow
//! control, as fast as its socket accepts — while an observer that reads
//! slowly watches. The observer must end with exactly the writer's text.
//!
//! A server may close a socket that cannot keep up (Quire closes one whose
//! queue overflows with 4429); the observer then reconnects and resyncs with
//! its replica's state vector, as a y-websocket client does, and the closes
//! and reconnects are counted. Closing and resyncing is acceptable; a
//! silently dropped frame (the observer never reaching the writer's text
//! without having been closed) is the failure.
//!
//! A relay without state (the null server) cannot resync a reconnected
//! observer: there the run passes only if the observer was never closed.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use quire_protocol::{Message, SyncMessage, encode_sync_step1, encode_sync_step2, encode_update};
use serde_json::json;
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use yrs::updates::decoder::Decode;
use yrs::{ClientID, ReadTxn, Transact, Update};

use crate::account::{Account, origin_of};
use crate::client::{Closed, Replica, Target, TargetArgs, doc_url, first_item_id, next_frame};
use crate::stats::{self, PhaseMeter};
use crate::trace::{self, run_tag};

#[derive(Debug, Clone, clap::Args)]
pub struct BurstArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Keystrokes the writer sends at once.
    #[arg(long, default_value_t = 100_000)]
    pub keystrokes: usize,
    /// Take the keystrokes from the first N transactions of this sequential
    /// trace (gzipped JSON) instead of appending one character each.
    #[arg(long)]
    pub trace: Option<PathBuf>,
    /// The observer sleeps this long after each frame it reads (0: reads as
    /// fast as it can).
    #[arg(long, default_value_t = 50)]
    pub observer_delay_us: u64,
    /// The observer's socket receive buffer in bytes (`SO_RCVBUF`) and its
    /// WebSocket read buffer; default: the system's. Small values make the
    /// server's queue, not the kernel, hold the backlog.
    #[arg(long)]
    pub observer_rcvbuf: Option<u32>,
    /// Most times the observer reconnects.
    #[arg(long, default_value_t = 1000)]
    pub max_reconnects: usize,
    /// Give up after this many seconds from the first write: on the writes,
    /// the acknowledgements and the observer alike.
    #[arg(long, default_value_t = 120)]
    pub timeout_secs: u64,
    /// The writer does not opt in to durable acks (for servers without them).
    #[arg(long)]
    pub no_acks: bool,
    /// Server process to sample for RSS and CPU.
    #[arg(long)]
    pub server_pid: Option<u32>,
}

/// What the observer saw.
#[derive(Debug, Default)]
struct Observed {
    /// When its text became the writer's.
    identical_at: Option<Instant>,
    reconnects: usize,
    closes: Vec<String>,
    frames: u64,
    chars: usize,
    error: Option<String>,
}

/// A run's JSON line and table, not yet printed.
#[derive(Debug, Clone)]
pub struct Report {
    pub json: serde_json::Value,
    pub rows: Vec<(String, String)>,
    pub ok: bool,
}

/// `burst` as a command: prints the JSON line and the table.
pub async fn run(args: BurstArgs) -> anyhow::Result<bool> {
    let r = measure(&args).await?;
    stats::emit(&r.json, &r.rows);
    Ok(r.ok)
}

/// One burst; prints nothing.
pub async fn measure(args: &BurstArgs) -> anyhow::Result<Report> {
    let writer_id = ClientID::random();
    let (updates, expected) = match &args.trace {
        Some(path) => {
            let t = trace::load(path)?;
            let b = trace::build(&t, args.keystrokes, writer_id)?;
            (b.updates, b.text)
        }
        None => {
            let r = Replica::new(writer_id);
            let mut updates = Vec::with_capacity(args.keystrokes);
            for i in 0..args.keystrokes {
                let ch = (b'a' + (i % 26) as u8) as char;
                updates.push(r.append(ch.encode_utf8(&mut [0; 4])));
            }
            (updates, r.string())
        }
    };
    // The writer's clock after the last insert: the observer compares texts
    // once its state vector has reached it.
    let target_clock = updates
        .iter()
        .rev()
        .find_map(|u| {
            let sv = Update::decode_v1(u).ok()?.state_vector();
            Some(sv.get(&writer_id)).filter(|&c| c > 0)
        })
        .unwrap_or(0);
    // The first clock of the writer's last insert: the observer only
    // compares texts once an update at or past it arrives.
    let last_start = updates
        .iter()
        .rev()
        .find_map(|u| first_item_id(u).filter(|&(c, _)| c == writer_id.get()))
        .map_or(0, |(_, k)| k);
    let frames: Vec<Bytes> = updates.iter().map(|u| encode_update(u)).collect();
    drop(updates);
    let keystrokes = frames.len();

    let doc = format!("bench-burst-{}", run_tag());
    let target = Arc::new(args.target.target().await?);
    target.prepare(&doc).await?;
    let cookie = match (&args.observer_rcvbuf, &args.target.account) {
        (Some(_), Some(a)) => {
            let (email, password) = a
                .split_once(':')
                .context("--account takes EMAIL:PASSWORD")?;
            Some(
                Account::sign_in(&args.target.url[0], email, password)
                    .await?
                    .cookie,
            )
        }
        _ => None,
    };
    let dial = Dial {
        target: target.clone(),
        url: doc_url(&args.target.url[0], &doc, false),
        origin: origin_of(&args.target.url[0])?,
        cookie,
        rcvbuf: args.observer_rcvbuf,
        doc: doc.clone(),
    };

    // The observer first, on a thread of its own: it sleeps between frames
    // (blocking, so the delay is microseconds, not the timer's millisecond),
    // which must not hold up the writer.
    let replica = Replica::new(ClientID::random());
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let (start_tx, start_rx) = tokio::sync::oneshot::channel::<Instant>();
    let delay = Duration::from_micros(args.observer_delay_us);
    let timeout = Duration::from_secs(args.timeout_secs);
    let max_reconnects = args.max_reconnects;
    let want = expected.clone();
    let observer = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(observe(
            dial,
            replica,
            writer_id,
            target_clock,
            last_start,
            want,
            delay,
            timeout,
            max_reconnects,
            ready_tx,
            start_rx,
        ))
    });
    match tokio::time::timeout(Duration::from_secs(150), ready_rx).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => bail!("observer could not connect: {e}"),
        _ => bail!("observer did not connect within 150 s"),
    }

    let acks = !args.no_acks;
    let mut ws = target.connect(&doc, acks).await?;
    // Joins with an empty replica: the updates were built offline.
    let hs = crate::client::sync(&mut ws, &Replica::new(ClientID::random()))
        .await
        .context("writer handshake")?;
    let (mut sink, mut stream) = ws.split();
    let durable = Arc::new(AtomicU64::new(0));
    let durable_at = Arc::new(OnceLock::<Instant>::new());
    // Wakes the wait for acks: everything durable, or the reader ended.
    let acked_or_ended = Arc::new(tokio::sync::Notify::new());
    let base = hs.update_messages_sent;
    let total = keystrokes as u64;
    // Reads what the server sends the writer (acks) while it writes, so a
    // server never finds the writer's queue full.
    let reader = {
        let (durable, durable_at, wake) =
            (durable.clone(), durable_at.clone(), acked_or_ended.clone());
        tokio::spawn(async move {
            loop {
                match next_frame(&mut stream).await {
                    Ok(f) => {
                        if let Ok(Message::Ack { durable: d }) = Message::decode(&f) {
                            let n = d.saturating_sub(base);
                            durable.fetch_max(n, Ordering::AcqRel);
                            if n >= total {
                                let _ = durable_at.set(Instant::now());
                                wake.notify_one();
                            }
                        }
                    }
                    Err(c) => {
                        wake.notify_one();
                        return c;
                    }
                }
            }
        })
    };

    let meter = PhaseMeter::start(args.server_pid)?;
    let started = Instant::now();
    let _ = start_tx.send(started);
    // A server that stops reading blocks the writer in `feed`: the writes
    // race the deadline like every other wait here, so the run still ends
    // (and reports) when the server stalls.
    let write = async {
        for f in &frames {
            sink.feed(WsMessage::Binary(f.clone())).await?;
        }
        sink.flush().await
    };
    let write_error = match tokio::time::timeout_at((started + timeout).into(), write).await {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some(format!(
            "the server took no more frames for {} s (timeout)",
            args.timeout_secs
        )),
    };
    let written_s = started.elapsed().as_secs_f64();

    let observed = tokio::task::spawn_blocking(move || observer.join())
        .await?
        .map_err(|_| anyhow::anyhow!("observer thread panicked"))??;
    let durable_s = if acks {
        let wait = async {
            while durable.load(Ordering::Acquire) < total && !reader.is_finished() {
                acked_or_ended.notified().await;
            }
        };
        let _ = tokio::time::timeout_at((started + timeout).into(), wait).await;
        durable_at
            .get()
            .map(|t| t.duration_since(started).as_secs_f64())
    } else {
        None
    };
    let usage = meter.finish()?;
    let _ = tokio::time::timeout(Duration::from_secs(5), sink.close()).await;
    // The reader ends on our close; a close the server sent earlier is what
    // it returns.
    let writer_closed = match tokio::time::timeout(Duration::from_secs(5), reader).await {
        Ok(Ok(Closed::ByServer { code, reason })) if code != 1000 && code != 1005 => {
            Some(format!("{code} {reason}"))
        }
        Ok(Ok(Closed::Broken(e))) if write_error.is_some() => Some(format!("broken: {e}")),
        _ => write_error.clone().map(|e| format!("write failed: {e}")),
    };

    let identical = observed.identical_at.is_some();
    let seconds_to_identical = observed
        .identical_at
        .map(|t| t.duration_since(started).as_secs_f64());
    let ok = identical && writer_closed.is_none() && (!acks || durable_s.is_some());
    let json = json!({
        "scenario": "burst",
        "url": args.target.url[0],
        "doc": doc,
        "keystrokes": keystrokes,
        "source": args.trace.as_ref().map_or("appends".to_string(), |p| p.display().to_string()),
        "observer_delay_us": args.observer_delay_us,
        "observer_rcvbuf": args.observer_rcvbuf,
        "written_s": written_s,
        "write_error": write_error,
        "seconds_to_identical": seconds_to_identical,
        "seconds_to_durable": durable_s,
        "identical": identical,
        "observer_reconnects": observed.reconnects,
        "observer_closes": observed.closes,
        "observer_frames": observed.frames,
        "observer_chars": observed.chars,
        "expected_chars": expected.chars().count(),
        "observer_error": observed.error,
        "writer_closed": writer_closed.is_some(),
        "writer_close": writer_closed,
        "acks": acks,
        "usage": usage,
        "ok": ok,
    });
    let mut rows = vec![
        (
            "scenario".to_string(),
            format!(
                "burst of {keystrokes} keystrokes, observer sleeping {} µs per frame",
                args.observer_delay_us
            ),
        ),
        (
            "written".into(),
            match &write_error {
                None => format!("in {written_s:.2} s"),
                Some(e) => format!("NOT all written after {written_s:.2} s: {e}"),
            },
        ),
        (
            "observer".into(),
            match seconds_to_identical {
                Some(s) => format!("identical after {s:.2} s"),
                None => format!(
                    "NOT identical after {} s ({} of {} chars){}",
                    args.timeout_secs,
                    observed.chars,
                    expected.chars().count(),
                    observed
                        .error
                        .as_ref()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default()
                ),
            },
        ),
        (
            "observer closes".into(),
            if observed.closes.is_empty() {
                "none".into()
            } else {
                format!(
                    "{} ({} reconnects): {}",
                    observed.closes.len(),
                    observed.reconnects,
                    observed.closes.join("; ")
                )
            },
        ),
        (
            "writer".into(),
            writer_closed
                .as_ref()
                .map_or("not closed".into(), |c| format!("CLOSED: {c}")),
        ),
    ];
    if acks {
        rows.push((
            "durable".into(),
            durable_s.map_or("NOT all acked".into(), |d| {
                format!("all acked after {d:.2} s")
            }),
        ));
    }
    stats::fmt_usage(&mut rows, &usage);
    Ok(Report { json, rows, ok })
}

/// How the observer (re)connects: through the target like every client, or
/// with a small receive buffer of its own.
struct Dial {
    target: Arc<Target>,
    url: String,
    origin: String,
    cookie: Option<String>,
    rcvbuf: Option<u32>,
    doc: String,
}

trait WsLike:
    Stream<Item = Result<WsMessage, WsError>> + Sink<WsMessage, Error = WsError> + Unpin + Send
{
}
impl<S> WsLike for S where
    S: Stream<Item = Result<WsMessage, WsError>> + Sink<WsMessage, Error = WsError> + Unpin + Send
{
}

impl Dial {
    async fn connect(&self) -> anyhow::Result<Box<dyn WsLike>> {
        let Some(rcvbuf) = self.rcvbuf else {
            return Ok(Box::new(self.target.connect(&self.doc, false).await?));
        };
        let mut req = self.url.as_str().into_client_request()?;
        req.headers_mut().insert("Origin", self.origin.parse()?);
        if let Some(c) = &self.cookie {
            req.headers_mut().insert("Cookie", c.parse()?);
        }
        let host = req.uri().host().context("no host")?.to_string();
        let port = req.uri().port_u16().unwrap_or(80);
        let addr = tokio::net::lookup_host((host.as_str(), port))
            .await?
            .next()
            .context("host does not resolve")?;
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_recv_buffer_size(rcvbuf)?;
        let stream = socket.connect(addr).await?;
        stream.set_nodelay(true)?;
        let config = WebSocketConfig::default()
            .read_buffer_size(rcvbuf as usize)
            .max_message_size(Some(256 << 20))
            .max_frame_size(Some(256 << 20));
        let (ws, _) = tokio_tungstenite::client_async_with_config(req, stream, Some(config))
            .await
            .with_context(|| format!("connecting to {}", self.url))?;
        Ok(Box::new(ws))
    }
}

/// The y-websocket handshake from an existing replica (a resync after a
/// reconnect sends what it has, and receives what it lacks).
async fn handshake(ws: &mut Box<dyn WsLike>, replica: &Replica) -> anyhow::Result<()> {
    ws.send(WsMessage::Binary(encode_sync_step1(
        &replica.state_vector(),
    )))
    .await?;
    loop {
        let frame = next_frame(ws)
            .await
            .map_err(|c| anyhow::anyhow!("during handshake: {c}"))?;
        match Message::decode(&frame).context("undecodable frame during handshake")? {
            Message::Sync(SyncMessage::Step1(sv)) => {
                let diff = replica.diff(sv)?;
                ws.send(WsMessage::Binary(encode_sync_step2(&diff))).await?;
            }
            Message::Sync(SyncMessage::Step2(u)) => {
                replica.apply(u)?;
                return Ok(());
            }
            Message::Sync(SyncMessage::Update(u)) => replica.apply(u)?,
            Message::PermissionDenied { reason } => bail!("permission denied: {reason}"),
            _ => {}
        }
    }
}

/// Whether the replica holds the writer's text; the text is only compared
/// once the state vector says every insert has arrived.
fn caught_up(replica: &Replica, writer: ClientID, clock: u32, want: &str) -> bool {
    let have = replica.doc.transact().state_vector().get(&writer);
    have >= clock && replica.string() == want
}

/// Reconnects and resyncs until a handshake completes, as a y-websocket
/// client does: the first attempt at once, later ones after its backoff
/// (100 ms doubling up to 2.5 s). A close during the handshake is another
/// close.
async fn reconnect(
    dial: &Dial,
    replica: &Replica,
    out: &mut Observed,
    max_reconnects: usize,
    deadline: tokio::time::Instant,
) -> Result<Box<dyn WsLike>, String> {
    let mut failed = 0u32;
    loop {
        if out.reconnects >= max_reconnects {
            return Err(format!("gave up after {max_reconnects} reconnects"));
        }
        out.reconnects += 1;
        let again = tokio::time::timeout_at(deadline, async {
            let mut ws = dial.connect().await?;
            handshake(&mut ws, replica).await?;
            anyhow::Ok(ws)
        })
        .await;
        match again {
            Ok(Ok(ws)) => return Ok(ws),
            Ok(Err(e)) => out.closes.push(format!("during resync: {e:#}")),
            Err(_) => return Err("timed out reconnecting".into()),
        }
        let backoff = Duration::from_millis(100 << failed.min(5)).min(Duration::from_millis(2500));
        failed += 1;
        if tokio::time::timeout_at(deadline, tokio::time::sleep(backoff))
            .await
            .is_err()
        {
            return Err("timed out reconnecting".into());
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn observe(
    dial: Dial,
    replica: Replica,
    writer: ClientID,
    clock: u32,
    last_start: u64,
    want: String,
    delay: Duration,
    timeout: Duration,
    max_reconnects: usize,
    ready: tokio::sync::oneshot::Sender<anyhow::Result<()>>,
    start: tokio::sync::oneshot::Receiver<Instant>,
) -> anyhow::Result<Observed> {
    let mut out = Observed::default();
    let connected = async {
        let mut ws = dial.connect().await?;
        handshake(&mut ws, &replica).await?;
        anyhow::Ok(ws)
    }
    .await;
    let mut ws = match connected {
        Ok(ws) => {
            let _ = ready.send(Ok(()));
            ws
        }
        Err(e) => {
            let msg = format!("{e:#}");
            let _ = ready.send(Err(e));
            bail!(msg);
        }
    };
    let Ok(started) = start.await else {
        bail!("the writer did not start");
    };
    let deadline = tokio::time::Instant::from_std(started + timeout);
    let mut checked = false;
    loop {
        if checked && caught_up(&replica, writer, clock, &want) {
            out.identical_at = Some(Instant::now());
            break;
        }
        checked = false;
        let frame = match tokio::time::timeout_at(deadline, next_frame(&mut ws)).await {
            Err(_) => break,
            Ok(Ok(f)) => f,
            Ok(Err(closed)) => {
                out.closes.push(match closed {
                    Closed::ByServer { code, reason } => format!("{code} {reason}"),
                    Closed::Broken(e) => format!("broken: {e}"),
                });
                match reconnect(&dial, &replica, &mut out, max_reconnects, deadline).await {
                    Ok(w) => ws = w,
                    Err(e) => {
                        out.error = Some(e);
                        break;
                    }
                }
                checked = true;
                continue;
            }
        };
        out.frames += 1;
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        match Message::decode(&frame) {
            Ok(Message::Sync(m @ (SyncMessage::Update(u) | SyncMessage::Step2(u)))) => {
                // Compare only once the writer's last inserts can be here: a
                // step 2, an update without an insert of the writer's
                // (deletes), or one whose first item is at or past the last
                // insert's.
                checked = match first_item_id(u) {
                    Some((c, k)) if c == writer.get() && matches!(m, SyncMessage::Update(_)) => {
                        k >= last_start
                    }
                    _ => true,
                };
                if let Err(e) = replica.apply(u) {
                    out.error = Some(format!("{e:#}"));
                    break;
                }
            }
            Ok(_) => {}
            Err(e) => {
                out.error = Some(format!("undecodable frame: {e}"));
                break;
            }
        }
    }
    out.chars = replica.string().chars().count();
    let _ = ws.close().await;
    Ok(out)
}
