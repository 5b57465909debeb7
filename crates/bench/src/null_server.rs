//! `null-server`: the thinnest WebSocket relay that y-websocket clients accept.
//! No CRDT, no storage: every binary frame goes to the other sockets of the
//! same path, except a sync step 1, which is answered with an empty step 2 so
//! clients consider themselves synced. It marks the ceiling the machine and
//! the WebSocket stack allow; a real server is measured as a fraction of it.
//!
//! It keeps the same socket discipline as Quire so the comparison is fair:
//! one shared `Bytes` per broadcast, a bounded queue per socket (closed with
//! 4429 when full, never silently skipped), one task and one loop per socket,
//! batched writes, Nagle off.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use quire_protocol::{MSG_SYNC, SYNC_STEP1, encode_sync_step2};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// Frames queued for one socket before it is closed as too slow (Quire's
/// default too).
const OUT_QUEUE: usize = 4096;
/// Frames written before one flush.
const WRITE_BATCH: usize = 64;
/// An empty Yjs update: no structs, empty delete set.
const EMPTY_UPDATE: &[u8] = &[0, 0];

#[derive(Debug, Clone, clap::Args)]
pub struct NullServerArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7421")]
    pub listen: SocketAddr,
}

struct Member {
    id: u64,
    tx: flume::Sender<Bytes>,
    /// Raised when the queue overflowed: the writer closes with 4429.
    too_slow: Arc<Notify>,
}

#[derive(Default)]
struct Rooms {
    rooms: Mutex<HashMap<String, Arc<Room>>>,
    next_id: AtomicU64,
}

#[derive(Default)]
struct Room {
    members: Mutex<Vec<Member>>,
}

pub async fn run(args: NullServerArgs) -> anyhow::Result<bool> {
    let listener = TcpListener::bind(args.listen).await?;
    eprintln!(
        "null server listening on ws://{}/ (any path is a room)",
        listener.local_addr()?
    );
    serve(listener).await;
    Ok(true)
}

/// Accepts connections until the listener fails. Tests call it on a port-0
/// listener they bound themselves.
pub async fn serve(listener: TcpListener) {
    let rooms = Arc::new(Rooms::default());
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let rooms = rooms.clone();
        tokio::spawn(async move {
            let _ = connection(stream, rooms).await;
        });
    }
}

async fn connection(stream: TcpStream, rooms: Arc<Rooms>) -> anyhow::Result<()> {
    stream.set_nodelay(true)?;
    let mut path = String::new();
    // The callback's error type is tungstenite's (large) HTTP response; we
    // never build one, so its size does not matter here.
    #[allow(clippy::result_large_err)]
    let remember_path = |req: &Request, resp: Response| {
        path = req.uri().path().to_string();
        Ok(resp)
    };
    // The same 1 KiB read buffer as Quire's sockets (crates/server/src/ws.rs):
    // tungstenite zeroes its whole read buffer, 128 KiB by default, before
    // every read.
    let config = WebSocketConfig::default().read_buffer_size(1 << 10);
    let ws = tokio_tungstenite::accept_hdr_async_with_config(stream, remember_path, Some(config))
        .await?;
    let room = rooms
        .rooms
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(path.clone())
        .or_default()
        .clone();
    let id = rooms.next_id.fetch_add(1, Ordering::Relaxed);
    let (tx, rx) = flume::bounded::<Bytes>(OUT_QUEUE);
    let too_slow = Arc::new(Notify::new());
    room.members
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(Member {
            id,
            tx,
            too_slow: too_slow.clone(),
        });

    // One loop reads and writes, as Quire's sockets do (crates/server/src/ws.rs):
    // split halves share a lock, and a writer holding it keeps the reader
    // from draining the socket, which stalled the generator's sends here
    // while the relay idled (saturate failed at 38 % CPU).
    let mut ws = ws;
    let result = async {
        loop {
            // Unbiased: under load the queue always has frames, and a loop
            // that polled it first would stop reading the client.
            tokio::select! {
                _ = too_slow.notified() => {
                    ws.send(WsMessage::Close(Some(CloseFrame {
                        code: CloseCode::from(4429),
                        reason: "socket too slow".into(),
                    })))
                    .await?;
                    return anyhow::Ok(());
                }
                f = rx.recv_async() => {
                    let Ok(first) = f else { return Ok(()) };
                    ws.feed(WsMessage::Binary(first)).await?;
                    for _ in 1..WRITE_BATCH {
                        let Ok(f) = rx.try_recv() else { break };
                        ws.feed(WsMessage::Binary(f)).await?;
                    }
                    ws.flush().await?;
                }
                msg = ws.next() => {
                    let frame = match msg {
                        Some(m) => match m? {
                            WsMessage::Binary(b) => b,
                            WsMessage::Close(_) => return Ok(()),
                            _ => continue,
                        },
                        None => return Ok(()),
                    };
                    if frame.len() >= 2 && frame[0] as u64 == MSG_SYNC && frame[1] as u64 == SYNC_STEP1 {
                        ws.send(WsMessage::Binary(encode_sync_step2(EMPTY_UPDATE))).await?;
                        continue;
                    }
                    broadcast(&room, id, &frame);
                }
            }
        }
    }
    .await;
    room.members
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|m| m.id != id);
    let mut all = rooms.rooms.lock().unwrap_or_else(|e| e.into_inner());
    if room
        .members
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .is_empty()
    {
        all.remove(&path);
    }
    result
}

fn broadcast(room: &Room, from: u64, frame: &Bytes) {
    let mut members = room.members.lock().unwrap_or_else(|e| e.into_inner());
    members.retain(|m| {
        if m.id == from {
            return true;
        }
        match m.tx.try_send(frame.clone()) {
            Ok(()) => true,
            Err(flume::TrySendError::Full(_)) => {
                m.too_slow.notify_one();
                false
            }
            Err(flume::TrySendError::Disconnected(_)) => false,
        }
    });
}
