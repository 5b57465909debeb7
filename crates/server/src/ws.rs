//! `/ws/{document}`: upgrades, joins the hub, and pumps bytes. Parsing,
//! permissions and persistence live in the hub; close codes in
//! `quire_hub::CloseCode`.

use std::time::Duration;

use axum::extract::ws::{
    CloseFrame as WsCloseFrame, Message as WsMessage, WebSocket, WebSocketUpgrade,
};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use quire_hub::{CloseCode, CloseFrame, JoinOptions, Outgoing, Session};
use quire_types::DocId;
use serde::Deserialize;

use crate::AppState;
use crate::error::ApiError;

/// Frames written to a socket before one flush: fewer syscalls under fan-out
/// bursts, without holding back a lone update.
const WRITE_BATCH: usize = 64;

#[derive(Debug, Deserialize)]
pub struct WsParams {
    /// `quire=1` opts in to the durable-ack extension.
    quire: Option<String>,
}

pub async fn sync_socket(
    State(state): State<AppState>,
    Path(doc): Path<String>,
    Query(params): Query<WsParams>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let doc = match DocId::new(doc) {
        Ok(d) => d,
        Err(e) => return ApiError::BadRequest(e.to_string()).into_response(),
    };
    let opts = JoinOptions {
        durable_acks: params.quire.as_deref() == Some("1"),
        can_write: true,
    };
    // Join before upgrading: a document that cannot be loaded refuses the
    // connection with an HTTP error instead of accepting a socket it cannot
    // serve.
    let session = match state.hub.join(&doc, opts).await {
        Ok(s) => s,
        Err(e) => return ApiError::Unavailable(e.to_string()).into_response(),
    };
    let limit = state.config.max_frame_bytes;
    let ping = Duration::from_secs(state.config.ping_secs.max(1));
    upgrade
        // Leave tungstenite room above our own limit so we can close an
        // oversized frame with a proper code instead of a broken connection.
        .max_message_size(limit.saturating_add(64 * 1024))
        .max_frame_size(limit.saturating_add(64 * 1024))
        .on_upgrade(move |socket| pump(socket, session, limit, ping))
}

async fn pump(socket: WebSocket, session: Session, max_frame: usize, ping: Duration) {
    let (mut sink, mut stream) = socket.split();
    let Session {
        inbound,
        mut outbound,
    } = session;
    let (close_tx, mut close_rx) = tokio::sync::mpsc::channel::<CloseFrame>(1);

    let writer = async {
        let mut ping_timer = tokio::time::interval_at(tokio::time::Instant::now() + ping, ping);
        loop {
            let next = tokio::select! {
                out = outbound.next() => out,
                Some(cf) = close_rx.recv() => Outgoing::Close(cf),
                _ = ping_timer.tick() => {
                    if sink.send(WsMessage::Ping(Default::default())).await.is_err() { return; }
                    continue;
                }
            };
            match next {
                Outgoing::Frame(first) => {
                    let mut bytes = first.len();
                    if sink.feed(WsMessage::Binary(first)).await.is_err() {
                        return;
                    }
                    for _ in 1..WRITE_BATCH {
                        let Some(f) = outbound.try_next_frame() else {
                            break;
                        };
                        bytes += f.len();
                        if sink.feed(WsMessage::Binary(f)).await.is_err() {
                            return;
                        }
                    }
                    metrics::counter!(crate::metrics::BYTES_OUT_TOTAL).increment(bytes as u64);
                    if sink.flush().await.is_err() {
                        return;
                    }
                }
                Outgoing::Close(cf) => {
                    let _ = sink
                        .send(WsMessage::Close(Some(WsCloseFrame {
                            code: cf.code.code(),
                            reason: cf.reason.as_ref().into(),
                        })))
                        .await;
                    return;
                }
            }
        }
    };

    let reader = async {
        while let Some(msg) = stream.next().await {
            match msg {
                Ok(WsMessage::Binary(b)) => {
                    metrics::counter!(crate::metrics::BYTES_IN_TOTAL).increment(b.len() as u64);
                    if b.len() > max_frame {
                        close(&close_tx, CloseCode::FrameTooLarge, "message too large").await;
                        return;
                    }
                    if !inbound.receive(b).await {
                        return;
                    }
                }
                Ok(WsMessage::Text(_)) => {
                    close(
                        &close_tx,
                        CloseCode::Malformed,
                        "text frames are not part of the protocol",
                    )
                    .await;
                    return;
                }
                Ok(WsMessage::Close(_)) => return,
                Ok(WsMessage::Ping(_) | WsMessage::Pong(_)) => {}
                Err(e) => {
                    // tungstenite reports a frame past its (slightly larger)
                    // limit as a capacity error; anything else is a broken
                    // connection nobody is left to tell.
                    let text = e.to_string();
                    if text.contains("too long") || text.contains("Space limit") {
                        close(&close_tx, CloseCode::FrameTooLarge, "message too large").await;
                    } else {
                        tracing::debug!(error = %text, "websocket read failed");
                    }
                    return;
                }
            }
        }
    };

    // The writer owns the close handshake; the reader ending (client gone)
    // ends the session at once.
    tokio::pin!(writer);
    tokio::select! {
        _ = &mut writer => {}
        _ = reader => {
            // Give the writer a moment to send a close we asked for.
            let _ = tokio::time::timeout(Duration::from_secs(1), &mut writer).await;
        }
    }
}

async fn close(tx: &tokio::sync::mpsc::Sender<CloseFrame>, code: CloseCode, reason: &'static str) {
    metrics::counter!(quire_hub::metrics::SOCKETS_CLOSED_TOTAL, "reason" => code.label())
        .increment(1);
    let _ = tx.send(CloseFrame::new(code, reason)).await;
}
