//! `/ws/{document}`: checks who is asking, joins the hub, upgrades, and pumps
//! bytes. Parsing, per-message permissions and persistence live in the hub;
//! close codes in `quire_hub::CloseCode`.
//!
//! Everything is decided before the upgrade, so a refused connection never
//! becomes a socket and sees no document byte: the id (400), the `Origin`
//! against the allowed origins (403; cross-site WebSocket hijacking, since
//! browsers send cookies on cross-site upgrades and CSRF middleware lets a
//! GET through), the access cookie (401), the per-user connect rate (429),
//! and the user's role on the document (404 for no access, as for a missing
//! document). The role decides whether the session may write.

use std::future::Future;
use std::time::Duration;

use axum::extract::ws::{
    CloseFrame as WsCloseFrame, Message as WsMessage, WebSocket, WebSocketUpgrade,
};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::SinkExt;
use quire_hub::{
    CloseCode, CloseFrame, JoinOptions, Offered, Outgoing, Principal, Session, SessionOutbound,
};
use quire_types::DocId;
use serde::Deserialize;
use tokio::time::Instant;

use crate::auth::CurrentUser;
use crate::error::ApiError;
use crate::{AppState, ServeConfig};

/// Frames written to a socket before one flush: fewer syscalls under fan-out
/// bursts, without holding back a lone update.
const WRITE_BATCH: usize = 64;

/// tungstenite's read buffer per socket. Its default, 128 KiB, is zeroed in
/// full before each read, so every socket, even an idle one, kept 128 KiB
/// resident and every read paid a 128 KiB memset. Sync frames are tens of
/// bytes; a larger frame grows the buffer to its own size while it is read
/// (in reads of this size). 1 KiB still takes dozens of keystroke frames per
/// read and is 1 KiB less per idle socket than 2 KiB.
const READ_BUFFER_BYTES: usize = 1024;

/// `quire_sockets_closed_total{reason}` for sockets dropped at the write
/// deadline. Not a [`CloseCode`]: no close frame can reach a client that
/// does not read.
const WRITE_TIMEOUT_LABEL: &str = "write_timeout";

#[derive(Debug, Deserialize)]
pub struct WsParams {
    /// `quire=1` opts in to the durable-ack extension.
    quire: Option<String>,
}

pub async fn sync_socket(
    State(state): State<AppState>,
    Path(doc): Path<String>,
    Query(params): Query<WsParams>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let doc = match DocId::new(doc) {
        Ok(d) => d,
        Err(e) => return ApiError::BadRequest(e.to_string()).into_response(),
    };
    let session = match admit(&state, &doc, &params, &headers).await {
        Ok(s) => s,
        Err(e) => {
            metrics::counter!(crate::metrics::WS_REFUSED_TOTAL, "status" => e.status_code().as_str().to_owned()).increment(1);
            return e.into_response();
        }
    };
    let limit = state.config.max_frame_bytes;
    let deadlines = Deadlines::from_config(&state.config);
    upgrade
        // Leave tungstenite room above our own limit so we can close an
        // oversized frame with a proper code instead of a broken connection.
        .max_message_size(limit.saturating_add(64 * 1024))
        .max_frame_size(limit.saturating_add(64 * 1024))
        .read_buffer_size(READ_BUFFER_BYTES)
        .on_upgrade(move |socket| pump(socket, session, limit, deadlines))
}

/// Decides whether this upgrade may join the document, and joins it.
async fn admit(
    state: &AppState,
    doc: &DocId,
    params: &WsParams,
    headers: &HeaderMap,
) -> Result<Session, ApiError> {
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    match origin {
        Some(o) if state.auth_config.origin_allowed(o, host) => {}
        Some(_) => {
            return Err(ApiError::Forbidden(
                "this origin may not open sockets here".into(),
            ));
        }
        None => return Err(ApiError::Forbidden("an Origin header is required".into())),
    }
    let me = CurrentUser::from_headers(state, headers).await?;
    if !state.ws_connects.try_take(me.user.id.as_str()) {
        return Err(ApiError::TooManyRequests(1));
    }
    let access = state
        .auth
        .document_access(doc, &me.user.id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let opts = JoinOptions {
        durable_acks: params.quire.as_deref() == Some("1"),
        can_write: access.role.can_edit(),
        principal: Some(Principal {
            user: me.user.id.clone(),
            auth_session: me.session.clone(),
        }),
        quota_bytes: crate::quotas::session_quota(state, doc, &access).await?,
        // Presence shows the account, whatever the client claims to be.
        identity: Some(quire_hub::Identity {
            user: me.user.id.clone(),
            name: me.user.name.clone(),
            color: me.user.color.clone(),
        }),
    };
    // Join before upgrading: a document that cannot be loaded refuses the
    // connection with an HTTP error instead of accepting a socket it cannot
    // serve.
    let session = state
        .hub
        .join(doc, opts)
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    // Access may have been revoked or changed, or the sign-in ended,
    // between the check and the join, and the hub, which was told before
    // this session existed, could not apply it. Now that the session is
    // registered, any later change reaches it; these second reads catch an
    // earlier one.
    if !state.auth.auth_session_active(&me.session).await? {
        return Err(ApiError::Unauthorized);
    }
    let now = state.auth.document_access(doc, &me.user.id).await?;
    match now {
        Some(a) if a.role.can_edit() == access.role.can_edit() => Ok(session),
        Some(_) => Err(ApiError::Conflict("access changed; reconnect".into())),
        None => Err(ApiError::NotFound),
    }
}

/// The pump's clocks. Without them a client that stops reading would hold
/// its socket, and everything queued for it, until it went away: a blocked
/// write stops the loop, and with it the hub's "too slow" close and the
/// pings.
#[derive(Debug, Clone, Copy)]
struct Deadlines {
    /// Between pings.
    ping: Duration,
    /// For one batch of frames (or a ping) to be taken by the socket.
    write: Duration,
    /// For the client to send anything at all (a pong will do).
    silence: Duration,
}

impl Deadlines {
    fn from_config(config: &ServeConfig) -> Deadlines {
        let silence = config.pong_timeout();
        // At least two pings per silence window, so that a client that
        // answers every ping is never closed, whatever the flags say.
        let ping = Duration::from_secs(config.ping_secs.max(1)).min(silence / 2);
        Deadlines {
            ping: ping.max(Duration::from_millis(100)),
            write: config.ws_write_timeout(),
            silence,
        }
    }
}

/// One task per socket, reading and writing in one loop (no split halves,
/// no second channel): an idle socket costs its buffers and this future.
/// A frame the document has no room for yet is held while outgoing frames
/// keep flowing, so a client that sends a burst still gets its acks.
async fn pump(mut socket: WebSocket, session: Session, max_frame: usize, deadlines: Deadlines) {
    let Session {
        inbound,
        mut outbound,
    } = session;
    let mut ping_timer = tokio::time::interval_at(Instant::now() + deadlines.ping, deadlines.ping);
    // Re-armed lazily, when it fires, from the time the client was last
    // heard: resetting a timer on every frame would cost a timer-wheel
    // update per frame on the hot path.
    let mut last_heard = Instant::now();
    let silence = tokio::time::sleep(deadlines.silence);
    tokio::pin!(silence);
    let mut held: Option<Bytes> = None;
    // Looked up once per socket, not once per frame.
    let bytes_in = metrics::counter!(crate::metrics::BYTES_IN_TOTAL);
    let bytes_out = metrics::counter!(crate::metrics::BYTES_OUT_TOTAL);
    loop {
        let step = tokio::select! {
            out = outbound.next() => match out {
                Outgoing::Frame(first) => within(
                    deadlines.write,
                    write_batch(&mut socket, &mut outbound, first, &bytes_out),
                )
                .await,
                Outgoing::Close(cf) => Step::Close(cf),
            },
            permit = inbound.reserve(held.as_ref().map_or(0, Bytes::len)), if held.is_some() => match (permit, held.take()) {
                (Some(p), Some(frame)) => {
                    p.send(frame);
                    // Nothing was read while the frame was held: the
                    // client's silence meanwhile was ours.
                    last_heard = Instant::now();
                    Step::Continue
                }
                _ => Step::Gone,
            },
            msg = socket.recv(), if held.is_none() => {
                last_heard = Instant::now();
                match read(msg, max_frame, &bytes_in) {
                    Read::Frame(b) => match inbound.offer(b) {
                        Offered::Taken => Step::Continue,
                        Offered::Busy(b) => {
                            held = Some(b);
                            Step::Continue
                        }
                        Offered::Gone => Step::Gone,
                    },
                    Read::Ignore => Step::Continue,
                    Read::Refuse(code, reason) => {
                        count_close(code);
                        Step::Close(CloseFrame::new(code, reason))
                    }
                    Read::Gone => Step::Gone,
                }
            },
            _ = ping_timer.tick() => within(deadlines.write, async {
                match socket.send(WsMessage::Ping(Default::default())).await {
                    Ok(()) => Step::Continue,
                    Err(_) => Step::Gone,
                }
            })
            .await,
            () = &mut silence => {
                let now = Instant::now();
                if held.is_some() {
                    last_heard = now;
                }
                let due = last_heard + deadlines.silence;
                if due > now {
                    silence.as_mut().reset(due);
                    Step::Continue
                } else {
                    count_close(CloseCode::PongTimeout);
                    Step::Close(CloseFrame::new(
                        CloseCode::PongTimeout,
                        "no pong or message in time",
                    ))
                }
            },
        };
        match step {
            Step::Continue => {}
            Step::Gone => return,
            Step::WriteTimedOut => {
                // No close frame: the socket takes nothing, and waiting to
                // tell it so is what this deadline ends. Dropping the
                // socket and the session frees the queue and leaves the
                // document.
                tracing::debug!("socket took no data within the write deadline; dropping it");
                metrics::counter!(quire_hub::metrics::SOCKETS_CLOSED_TOTAL, "reason" => WRITE_TIMEOUT_LABEL)
                    .increment(1);
                return;
            }
            Step::Close(cf) => {
                let frame = WsCloseFrame {
                    code: cf.code.code(),
                    reason: cf.reason.as_ref().into(),
                };
                let _ = tokio::time::timeout(
                    Duration::from_secs(1),
                    socket.send(WsMessage::Close(Some(frame))),
                )
                .await;
                return;
            }
        }
    }
}

/// `write`, or [`Step::WriteTimedOut`] if it takes longer than `deadline`.
async fn within(deadline: Duration, write: impl Future<Output = Step>) -> Step {
    tokio::time::timeout(deadline, write)
        .await
        .unwrap_or(Step::WriteTimedOut)
}

enum Step {
    Continue,
    /// The socket or the document is gone: nobody to tell.
    Gone,
    /// The socket took nothing for the whole write deadline.
    WriteTimedOut,
    /// Close the socket with this code.
    Close(CloseFrame),
}

enum Read {
    Frame(Bytes),
    Ignore,
    Refuse(CloseCode, &'static str),
    Gone,
}

fn read(
    msg: Option<Result<WsMessage, axum::Error>>,
    max_frame: usize,
    bytes_in: &metrics::Counter,
) -> Read {
    match msg {
        Some(Ok(WsMessage::Binary(b))) => {
            bytes_in.increment(b.len() as u64);
            if b.len() > max_frame {
                Read::Refuse(CloseCode::FrameTooLarge, "message too large")
            } else {
                Read::Frame(b)
            }
        }
        Some(Ok(WsMessage::Text(_))) => Read::Refuse(
            CloseCode::Malformed,
            "text frames are not part of the protocol",
        ),
        Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => Read::Ignore,
        Some(Ok(WsMessage::Close(_))) | None => Read::Gone,
        Some(Err(e)) => {
            // tungstenite reports a frame past its (slightly larger) limit as
            // a capacity error; anything else is a broken connection nobody
            // is left to tell.
            let text = e.to_string();
            if text.contains("too long") || text.contains("Space limit") {
                Read::Refuse(CloseCode::FrameTooLarge, "message too large")
            } else {
                tracing::debug!(error = %text, "websocket read failed");
                Read::Gone
            }
        }
    }
}

/// Writes `first` and whatever else is queued (up to [`WRITE_BATCH`] frames)
/// with one flush.
async fn write_batch(
    socket: &mut WebSocket,
    outbound: &mut SessionOutbound,
    first: Bytes,
    bytes_out: &metrics::Counter,
) -> Step {
    let mut bytes = first.len();
    if socket.feed(WsMessage::Binary(first)).await.is_err() {
        return Step::Gone;
    }
    for _ in 1..WRITE_BATCH {
        let Some(f) = outbound.try_next_frame() else {
            break;
        };
        bytes += f.len();
        if socket.feed(WsMessage::Binary(f)).await.is_err() {
            return Step::Gone;
        }
    }
    bytes_out.increment(bytes as u64);
    if socket.flush().await.is_err() {
        return Step::Gone;
    }
    Step::Continue
}

fn count_close(code: CloseCode) {
    metrics::counter!(quire_hub::metrics::SOCKETS_CLOSED_TOTAL, "reason" => code.label())
        .increment(1);
}
