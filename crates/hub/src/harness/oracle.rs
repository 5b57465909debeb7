//! What the hub must answer to each frame, decided before it is sent, and
//! the checks of what it did answer.

use bytes::Bytes;
use quire_protocol::{AwarenessUpdate, Message, SyncMessage, decode_state_vector};
use yrs::updates::decoder::Decode;

use super::Violation;
use super::script::Role;
use crate::update_scan;
use crate::{CloseCode, CloseFrame};

/// The codes a refused update closes its sender with.
pub(crate) const REFUSAL_CODES: [CloseCode; 2] =
    [CloseCode::Malformed, CloseCode::DocumentTooLarge];

/// What the hub must do with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expect {
    /// Refuse it before applying anything: close the sender with one of
    /// [`REFUSAL_CODES`], and leave the document as it was.
    Refused,
    /// Answer permission-denied and keep the session open (a viewer's
    /// update message).
    Denied,
    /// Keep the session open.
    Open,
    /// A writer's update that passed the scan: applied, parked, or refused
    /// by a check that needs the document (nesting, memory, size).
    Anything,
}

/// The answer the hub owes `frame` from a session of `role`.
pub(crate) fn expect(role: Role, frame: &[u8]) -> Expect {
    let Ok(msg) = Message::decode(frame) else {
        return Expect::Refused;
    };
    match msg {
        Message::Sync(SyncMessage::Step1(sv)) => match decode_state_vector(sv) {
            Ok(_) => Expect::Open,
            Err(_) => Expect::Refused,
        },
        Message::Sync(SyncMessage::Update(_)) if role == Role::Reader => Expect::Denied,
        Message::Sync(SyncMessage::Update(u) | SyncMessage::Step2(u)) => {
            if update_scan::scan(u).is_err() {
                Expect::Refused
            } else if role == Role::Reader {
                // A viewer's step 2 is decoded to see whether it changes
                // anything: refused if yrs cannot, else denied or a no-op.
                match yrs::Update::decode_v1(u) {
                    Ok(_) => Expect::Open,
                    Err(_) => Expect::Refused,
                }
            } else {
                Expect::Anything
            }
        }
        Message::Awareness(a) => match AwarenessUpdate::decode(a) {
            Ok(_) => Expect::Open,
            Err(_) => Expect::Refused,
        },
        Message::QueryAwareness | Message::PermissionDenied { .. } | Message::Ack { .. } => {
            Expect::Open
        }
    }
}

/// A close no input may cause: the document failed (yrs broke part-way, or
/// its actor died) rather than refusing one session.
pub(crate) fn is_failure(close: &CloseFrame) -> bool {
    matches!(
        close.code,
        CloseCode::InternalError | CloseCode::GoingAway | CloseCode::Unavailable
    ) || close.reason.contains("could not be applied")
}

/// Checks a frame the hub sent to a client: everything it relays or
/// replies must be something it would accept itself.
pub(crate) fn check_sent(frame: &Bytes) -> Result<Option<Sent<'_>>, Violation> {
    let msg = Message::decode(frame)
        .map_err(|e| Violation::SentBadFrame(format!("undecodable frame: {e}")))?;
    Ok(Some(match msg {
        Message::Sync(SyncMessage::Update(u) | SyncMessage::Step2(u)) => {
            update_scan::scan(u).map_err(|r| {
                Violation::SentBadFrame(format!("an update it refuses: {}", r.reason()))
            })?;
            Sent::Update(u)
        }
        Message::Awareness(a) => {
            AwarenessUpdate::decode(a).map_err(|e| {
                Violation::SentBadFrame(format!("an awareness update it refuses: {e}"))
            })?;
            return Ok(None);
        }
        Message::Ack { durable } => Sent::Ack(durable),
        Message::PermissionDenied { .. } => Sent::Denied,
        Message::Sync(SyncMessage::Step1(_)) | Message::QueryAwareness => return Ok(None),
    }))
}

/// What a client does something with, of what the hub sent it.
pub(crate) enum Sent<'a> {
    Update(&'a [u8]),
    Ack(u64),
    Denied,
}
