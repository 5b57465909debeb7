//! Access changes that reach every node. A share removed or changed, a
//! sign-out, a deleted document: the affected sockets must close or turn
//! read-only wherever they are connected, not only on the node that handled
//! the request. That node applies the change to its own hub and waits for it
//! (so the request returns only once its sockets follow), then publishes it
//! on the bus's control channel; every other node applies it on receipt,
//! through the same [`ControlMessage::apply`].
//!
//! The bus is at-most-once. When it says control messages may have been
//! missed (Redis reconnected), the node re-checks every live session against
//! the store: the document still exists, the sign-in is still active, the
//! user's role still allows what the session does; whatever no longer holds
//! is closed or downgraded as the message would have done.
//!
//! On the wire a message is JSON, `{"v":1,"kind":…}`; one that does not parse
//! (or has another version) is logged and ignored. This module, not the hub,
//! owns that format and the listener: the hub knows no auth store, and
//! re-checking needs one.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use bytes::Bytes;
use quire_bus::{ControlEvent, Subscription};
use quire_hub::{AccessChange, CloseCode, CloseFrame, Hub, SessionTarget};
use quire_store::StoreError;
use quire_types::{AuthSessionId, DocId, DocRole, UserId};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::AppState;
use crate::metrics::{CONTROL_MESSAGES_TOTAL, CONTROL_RECHECKS_TOTAL};

const VERSION: u32 = 1;
/// Longest wait before re-checking again after the store failed a re-check.
const RECHECK_RETRY_MAX: Duration = Duration::from_secs(30);

/// One access change, as the hub applies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlMessage {
    ChangeAccess {
        doc: DocId,
        user: UserId,
        change: AccessChange,
    },
    CloseSessions {
        target: SessionTarget,
        frame: CloseFrame,
    },
    Evict {
        doc: DocId,
        frame: CloseFrame,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("control message is not valid: {0}")]
    Json(#[from] serde_json::Error),
    #[error("control message has unsupported version {0}")]
    Version(u32),
    #[error("control message has unknown close code {0}")]
    CloseCode(u16),
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Wire {
    ChangeAccess {
        doc: DocId,
        user: UserId,
        change: WireChange,
    },
    CloseSessions {
        target: WireTarget,
        code: u16,
        reason: String,
    },
    Evict {
        doc: DocId,
        code: u16,
        reason: String,
    },
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum WireChange {
    ReadOnly,
    Reconnect,
    Revoked,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum WireTarget {
    AuthSession(AuthSessionId),
    User(UserId),
}

#[derive(Serialize, Deserialize)]
struct Envelope<W> {
    v: u32,
    #[serde(flatten)]
    message: W,
}

impl ControlMessage {
    pub fn encode(&self) -> Bytes {
        let message = match self.clone() {
            ControlMessage::ChangeAccess { doc, user, change } => Wire::ChangeAccess {
                doc,
                user,
                change: match change {
                    AccessChange::ReadOnly => WireChange::ReadOnly,
                    AccessChange::Reconnect => WireChange::Reconnect,
                    AccessChange::Revoked => WireChange::Revoked,
                },
            },
            ControlMessage::CloseSessions { target, frame } => Wire::CloseSessions {
                target: match target {
                    SessionTarget::AuthSession(s) => WireTarget::AuthSession(s),
                    SessionTarget::User(u) => WireTarget::User(u),
                },
                code: frame.code.code(),
                reason: frame.reason.into_owned(),
            },
            ControlMessage::Evict { doc, frame } => Wire::Evict {
                doc,
                code: frame.code.code(),
                reason: frame.reason.into_owned(),
            },
        };
        let json = serde_json::to_vec(&Envelope {
            v: VERSION,
            message,
        })
        .expect("ids and strings always serialize");
        Bytes::from(json)
    }

    pub fn decode(bytes: &[u8]) -> Result<ControlMessage, ControlError> {
        // The version first, so that a newer node's message is reported as
        // such rather than as an unknown kind.
        let Envelope { v, .. } = serde_json::from_slice::<Envelope<serde::de::IgnoredAny>>(bytes)?;
        if v != VERSION {
            return Err(ControlError::Version(v));
        }
        let frame = |code: u16, reason: String| {
            CloseCode::from_code(code)
                .map(|c| CloseFrame::new(c, reason))
                .ok_or(ControlError::CloseCode(code))
        };
        let Envelope { message, .. } = serde_json::from_slice::<Envelope<Wire>>(bytes)?;
        Ok(match message {
            Wire::ChangeAccess { doc, user, change } => ControlMessage::ChangeAccess {
                doc,
                user,
                change: match change {
                    WireChange::ReadOnly => AccessChange::ReadOnly,
                    WireChange::Reconnect => AccessChange::Reconnect,
                    WireChange::Revoked => AccessChange::Revoked,
                },
            },
            Wire::CloseSessions {
                target,
                code,
                reason,
            } => ControlMessage::CloseSessions {
                target: match target {
                    WireTarget::AuthSession(s) => SessionTarget::AuthSession(s),
                    WireTarget::User(u) => SessionTarget::User(u),
                },
                frame: frame(code, reason)?,
            },
            Wire::Evict { doc, code, reason } => ControlMessage::Evict {
                doc,
                frame: frame(code, reason)?,
            },
        })
    }

    /// Applies the change to this node's sessions; returns once they follow
    /// it, with how many sessions it touched (an eviction counts as one,
    /// whatever it closed: the hub does not count them).
    pub async fn apply(&self, hub: &Hub) -> usize {
        match self {
            ControlMessage::ChangeAccess { doc, user, change } => {
                hub.change_access(doc, user, *change).await
            }
            ControlMessage::CloseSessions { target, frame } => {
                hub.close_sessions(target.clone(), frame.clone()).await
            }
            ControlMessage::Evict { doc, frame } => {
                hub.evict(doc, frame.clone()).await;
                1
            }
        }
    }
}

/// Applies `message` on this node and waits until its sessions follow, then
/// tells the other nodes (who apply it without this node waiting).
pub async fn apply_everywhere(state: &AppState, message: ControlMessage) {
    message.apply(&state.hub).await;
    publish(state, &message);
}

/// Tells the other nodes only.
pub fn publish(state: &AppState, message: &ControlMessage) {
    if let Err(e) = state.hub.bus().publish_control(message.encode()) {
        // Only a bus that is shutting down refuses, and so is this node.
        tracing::warn!(error = %e, ?message, "could not publish an access change to the other nodes");
    }
}

/// Applies the other nodes' control messages and re-checks live sessions
/// after a possible loss, until the subscription ends or the task is
/// aborted (on shutdown).
pub async fn run(state: AppState, mut events: Subscription<ControlEvent>) {
    // Re-checks run beside the listener, so messages keep being applied
    // meanwhile; a notice that arrives during one starts another after it
    // (the permit `Notify` keeps), since the store may have changed since
    // the first one read it.
    let recheck_wanted = Notify::new();
    let listen = async {
        while let Some(event) = events.events.recv().await {
            match event {
                ControlEvent::Message { origin, payload } => {
                    match ControlMessage::decode(&payload) {
                        Ok(message) => {
                            let touched = message.apply(&state.hub).await;
                            tracing::debug!(%origin, ?message, touched, "applied another node's access change");
                            metrics::counter!(CONTROL_MESSAGES_TOTAL, "result" => "applied")
                                .increment(1);
                        }
                        Err(e) => {
                            tracing::warn!(%origin, error = %e, "ignoring a malformed control message");
                            metrics::counter!(CONTROL_MESSAGES_TOTAL, "result" => "malformed")
                                .increment(1);
                        }
                    }
                }
                ControlEvent::MayHaveMissed => recheck_wanted.notify_one(),
            }
        }
    };
    let recheck_loop = async {
        loop {
            recheck_wanted.notified().await;
            let mut delay = Duration::from_secs(1);
            loop {
                match recheck(&state).await {
                    Ok(changed) => {
                        tracing::info!(
                            changed,
                            "re-checked live sessions after possibly missed access changes"
                        );
                        metrics::counter!(CONTROL_RECHECKS_TOTAL).increment(1);
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, retry_in = ?delay, "re-checking live sessions failed");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(RECHECK_RETRY_MAX);
                    }
                }
            }
        }
    };
    tokio::select! {
        _ = listen => {}
        _ = recheck_loop => {}
    }
}

/// Brings every live session in line with the store, as the control
/// messages this node may have missed would have; returns how many changes
/// (evictions, sign-ins closed, access changes) it applied.
pub async fn recheck(state: &AppState) -> Result<usize, StoreError> {
    let live = state.hub.live_sessions().await;
    let mut changed = 0;
    let mut auth_sessions = BTreeSet::new();
    for (doc, sessions) in &live {
        if state.hub.store().document(doc).await?.is_none() {
            ControlMessage::Evict {
                doc: doc.clone(),
                frame: CloseFrame::new(CloseCode::NotFound, "document deleted"),
            }
            .apply(&state.hub)
            .await;
            changed += 1;
            continue;
        }
        // Per user: do they have a session that may write, one that may not?
        let mut users: HashMap<&UserId, (bool, bool)> = HashMap::new();
        for s in sessions {
            auth_sessions.insert(s.principal.auth_session.clone());
            let entry = users.entry(&s.principal.user).or_default();
            if s.can_write {
                entry.0 = true;
            } else {
                entry.1 = true;
            }
        }
        for (user, (writes, reads)) in users {
            let role = state.auth.document_access(doc, user).await?.map(|a| a.role);
            if let Some(change) = access_change(writes, reads, role) {
                let message = ControlMessage::ChangeAccess {
                    doc: doc.clone(),
                    user: user.clone(),
                    change,
                };
                changed += usize::from(message.apply(&state.hub).await > 0);
            }
        }
    }
    for session in auth_sessions {
        if !state.auth.auth_session_active(&session).await? {
            let message = ControlMessage::CloseSessions {
                target: SessionTarget::AuthSession(session),
                frame: CloseFrame::new(CloseCode::Unauthorized, "signed out"),
            };
            changed += usize::from(message.apply(&state.hub).await > 0);
        }
    }
    Ok(changed)
}

/// What a user's open sessions on a document must undergo now that their
/// role is `now`: those that may write (`writes`) lose it on a downgrade,
/// those that may only read (`reads`) reconnect to gain it; no role at all
/// closes both.
pub(crate) fn access_change(
    writes: bool,
    reads: bool,
    now: Option<DocRole>,
) -> Option<AccessChange> {
    match now {
        None => Some(AccessChange::Revoked),
        Some(r) if writes && !r.can_edit() => Some(AccessChange::ReadOnly),
        Some(r) if reads && r.can_edit() => Some(AccessChange::Reconnect),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> DocId {
        DocId::new("plans").unwrap()
    }

    #[test]
    fn every_message_round_trips() {
        let messages = [
            ControlMessage::ChangeAccess {
                doc: doc(),
                user: UserId("u1".into()),
                change: AccessChange::ReadOnly,
            },
            ControlMessage::ChangeAccess {
                doc: doc(),
                user: UserId("u1".into()),
                change: AccessChange::Reconnect,
            },
            ControlMessage::ChangeAccess {
                doc: doc(),
                user: UserId("u1".into()),
                change: AccessChange::Revoked,
            },
            ControlMessage::CloseSessions {
                target: SessionTarget::AuthSession(AuthSessionId("s1".into())),
                frame: CloseFrame::new(CloseCode::Unauthorized, "signed out"),
            },
            ControlMessage::CloseSessions {
                target: SessionTarget::User(UserId("u1".into())),
                frame: CloseFrame::new(CloseCode::Unauthorized, "signed out everywhere"),
            },
            ControlMessage::Evict {
                doc: doc(),
                frame: CloseFrame::new(CloseCode::NotFound, "document deleted"),
            },
        ];
        for m in messages {
            assert_eq!(ControlMessage::decode(&m.encode()).unwrap(), m);
        }
    }

    #[test]
    fn the_wire_format_is_versioned_json_with_a_kind() {
        let m = ControlMessage::Evict {
            doc: doc(),
            frame: CloseFrame::new(CloseCode::NotFound, "document deleted"),
        };
        let v: serde_json::Value = serde_json::from_slice(&m.encode()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({ "v": 1, "kind": "evict", "doc": "plans", "code": 4404, "reason": "document deleted" })
        );
        let m = ControlMessage::CloseSessions {
            target: SessionTarget::AuthSession(AuthSessionId("s1".into())),
            frame: CloseFrame::new(CloseCode::Unauthorized, "signed out"),
        };
        let v: serde_json::Value = serde_json::from_slice(&m.encode()).unwrap();
        assert_eq!(v["kind"], "close_sessions");
        assert_eq!(v["target"], serde_json::json!({ "auth_session": "s1" }));
    }

    #[test]
    fn malformed_messages_are_refused() {
        for bad in [
            &b""[..],
            b"\xff\xfe",
            b"{}",
            b"{\"v\":1}",
            b"{\"v\":1,\"kind\":\"launch\"}",
            b"{\"v\":1,\"kind\":\"evict\",\"doc\":\"no/such id\",\"code\":4404,\"reason\":\"\"}",
            b"{\"v\":1,\"kind\":\"evict\",\"doc\":\"plans\",\"code\":1234,\"reason\":\"\"}",
            b"{\"v\":1,\"kind\":\"change_access\",\"doc\":\"plans\",\"user\":\"u\",\"change\":\"owner\"}",
        ] {
            assert!(
                ControlMessage::decode(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(matches!(
            ControlMessage::decode(b"{\"v\":2,\"kind\":\"evict\"}"),
            Err(ControlError::Version(2))
        ));
    }
}
