//! One client of the fan-out: connects and syncs, then receives and
//! attributes every update of its document and, for a writer, types on the
//! schedule the [`super::engine::Run`] started; it ends when the run stops
//! it or its socket closes.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::SinkExt;
use quire_protocol::{Message, SyncMessage, encode_update};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use yrs::ClientID;

use super::FanoutArgs;
use super::engine::{Delivery, Phase, Samples, Shared, keystrokes_per_writer};
use crate::client::{self, Closed, Replica, Target};

/// What one client saw.
pub struct ClientResult<S> {
    pub doc: usize,
    pub writer: bool,
    /// Whether `text` is a replica's (else only deliveries were counted).
    pub replica: bool,
    /// Keystrokes this client sent.
    pub own_sent: u64,
    pub text: String,
    pub delivered: u64,
    pub duplicates: u64,
    pub reordered: u64,
    pub unattributed: u64,
    pub closed: Option<Closed>,
    pub samples: S,
}

/// Who one client task is.
pub(super) struct ClientSpec {
    pub(super) doc_id: String,
    pub(super) doc: usize,
    pub(super) node: usize,
    pub(super) keep_replica: bool,
    /// Index into the writers, for a writer.
    pub(super) writer: Option<usize>,
    pub(super) client_id: ClientID,
}

pub(super) async fn client_task<S: Samples>(
    shared: Arc<Shared>,
    args: FanoutArgs,
    target: Arc<Target>,
    me: ClientSpec,
    samples: S,
    ready: mpsc::Sender<anyhow::Result<()>>,
    mut phase: watch::Receiver<Phase>,
) -> ClientResult<S> {
    let ClientSpec {
        doc_id,
        doc,
        node,
        keep_replica,
        writer,
        client_id,
    } = me;
    let mut out = ClientResult {
        doc,
        writer: writer.is_some(),
        replica: keep_replica,
        own_sent: 0,
        text: String::new(),
        delivered: 0,
        duplicates: 0,
        reordered: 0,
        unattributed: 0,
        closed: None,
        samples,
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
    let per_writer = keystrokes_per_writer(&args);
    let total_writers = shared.writers.len().max(1);
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
                            Some((w, k)) => match shared.writers[w].lookup(k) {
                                None => out.unattributed += 1,
                                Some((sent, due)) => {
                                    let duplicate = match max_seen[w] {
                                        Some(m) if k == m => {
                                            out.duplicates += 1;
                                            true
                                        }
                                        Some(m) if k < m => {
                                            out.reordered += 1;
                                            false
                                        }
                                        _ => {
                                            max_seen[w] = Some(k);
                                            false
                                        }
                                    };
                                    out.samples.delivery(&Delivery {
                                        now,
                                        due,
                                        latency: now.saturating_sub(sent),
                                        from_schedule: now.saturating_sub(due),
                                        cross_node: shared.writers[w].node != node,
                                        duplicate,
                                    });
                                    out.delivered += 1;
                                    shared.delivered.fetch_add(1, Ordering::AcqRel);
                                    shared.last_delivery.fetch_max(now, Ordering::AcqRel);
                                }
                            },
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
                                Some(t) => out.samples.acked(now, now.saturating_sub(t)),
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
                if due >= end || next_key >= per_writer {
                    writing_done = true;
                    shared.writers_done.fetch_add(1, Ordering::AcqRel);
                    continue;
                }
                let ch = (b'a' + (next_key % 26) as u8) as char;
                let update = replica.append(ch.encode_utf8(&mut [0; 4]));
                let now = Instant::now();
                let sent_at = epoch.nanos(now);
                let due_at = epoch.nanos(due);
                shared.writers[w].record(next_key, sent_at, due_at);
                shared.sent.fetch_add(1, Ordering::AcqRel);
                out.samples.sent(due_at, now.saturating_duration_since(due).as_nanos() as u64);
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
