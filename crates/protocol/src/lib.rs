//! The y-websocket wire protocol, and Quire's durable-ack extension.
//!
//! Pure: bytes in, messages out, and back. No sockets, no tasks, no CRDT. Every
//! WebSocket binary frame carries exactly one message:
//!
//! | tag | message | payload |
//! |---|---|---|
//! | 0 | sync | sub-tag 0 step 1 (state vector), 1 step 2 (update), 2 update |
//! | 1 | awareness | one awareness update (var-bytes) |
//! | 2 | auth | sub-tag 0 permission denied (var-string reason) |
//! | 3 | query awareness | — |
//! | 100 | Quire ack (server → client, opt-in) | var-uint count of durable messages |
//!
//! See `docs/protocol.md` for the semantics of the extension.

mod awareness;
mod lib0;
mod state_vector;

pub use awareness::{AwarenessEntry, AwarenessUpdate, encode_awareness_update};
pub use lib0::{Reader, var_uint_len, write_var_bytes, write_var_uint};
pub use state_vector::decode_state_vector;

use bytes::Bytes;

pub const MSG_SYNC: u64 = 0;
pub const MSG_AWARENESS: u64 = 1;
pub const MSG_AUTH: u64 = 2;
pub const MSG_QUERY_AWARENESS: u64 = 3;
/// Quire's durable acknowledgement. Chosen far above the y-protocols and
/// Hocuspocus tags (0–8) so it never collides with a tag a stock client knows;
/// it is only ever sent to sockets that opted in.
pub const MSG_QUIRE_ACK: u64 = 100;

pub const SYNC_STEP1: u64 = 0;
pub const SYNC_STEP2: u64 = 1;
pub const SYNC_UPDATE: u64 = 2;

pub const AUTH_PERMISSION_DENIED: u64 = 0;

/// The largest client id a stock Yjs client can hold: it reads ids as
/// JavaScript numbers, so above 2^53 − 1 (`Number.MAX_SAFE_INTEGER`) two ids
/// collapse into one and its copy of a document parts from the server's,
/// which keeps ids as exact `u64`s. Ids above it are refused on input.
pub const MAX_CLIENT_ID: u64 = (1 << 53) - 1;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("message is empty")]
    Empty,
    #[error("message ends before its declared length")]
    Truncated,
    #[error("malformed variable-length integer")]
    BadVarint,
    #[error("string is not valid UTF-8")]
    BadUtf8,
    #[error("unknown message type {0}")]
    UnknownMessage(u64),
    #[error("unknown sync message type {0}")]
    UnknownSync(u64),
    #[error("unknown auth message type {0}")]
    UnknownAuth(u64),
    #[error("trailing bytes after the message")]
    TrailingBytes,
    #[error("malformed awareness state: {0}")]
    BadAwareness(&'static str),
    #[error("malformed state vector: {0}")]
    BadStateVector(&'static str),
    #[error("client id {0} is above 2^53 - 1, which JavaScript clients cannot represent")]
    ClientIdTooLarge(u64),
}

/// One decoded message; payloads borrow from the frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message<'a> {
    Sync(SyncMessage<'a>),
    Awareness(&'a [u8]),
    PermissionDenied { reason: &'a str },
    QueryAwareness,
    Ack { durable: u64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMessage<'a> {
    /// The sender's state vector: "send me what I lack".
    Step1(&'a [u8]),
    /// An update answering a step 1.
    Step2(&'a [u8]),
    /// An incremental update.
    Update(&'a [u8]),
}

impl<'a> Message<'a> {
    pub fn decode(frame: &'a [u8]) -> Result<Self, ProtocolError> {
        if frame.is_empty() {
            return Err(ProtocolError::Empty);
        }
        let mut r = Reader::new(frame);
        let msg = match r.read_var_uint()? {
            MSG_SYNC => {
                let sub = r.read_var_uint()?;
                let payload = r.read_var_bytes()?;
                Message::Sync(match sub {
                    SYNC_STEP1 => SyncMessage::Step1(payload),
                    SYNC_STEP2 => SyncMessage::Step2(payload),
                    SYNC_UPDATE => SyncMessage::Update(payload),
                    other => return Err(ProtocolError::UnknownSync(other)),
                })
            }
            MSG_AWARENESS => Message::Awareness(r.read_var_bytes()?),
            MSG_AUTH => match r.read_var_uint()? {
                AUTH_PERMISSION_DENIED => Message::PermissionDenied {
                    reason: r.read_var_string()?,
                },
                other => return Err(ProtocolError::UnknownAuth(other)),
            },
            MSG_QUERY_AWARENESS => Message::QueryAwareness,
            MSG_QUIRE_ACK => Message::Ack {
                durable: r.read_var_uint()?,
            },
            other => return Err(ProtocolError::UnknownMessage(other)),
        };
        if !r.is_empty() {
            return Err(ProtocolError::TrailingBytes);
        }
        Ok(msg)
    }

    pub fn encode(&self) -> Bytes {
        match self {
            Message::Sync(SyncMessage::Step1(sv)) => encode_sync(SYNC_STEP1, sv),
            Message::Sync(SyncMessage::Step2(u)) => encode_sync(SYNC_STEP2, u),
            Message::Sync(SyncMessage::Update(u)) => encode_sync(SYNC_UPDATE, u),
            Message::Awareness(a) => encode_awareness(a),
            Message::PermissionDenied { reason } => encode_permission_denied(reason),
            Message::QueryAwareness => Bytes::from_static(&[MSG_QUERY_AWARENESS as u8]),
            Message::Ack { durable } => encode_ack(*durable),
        }
    }

    /// Whether this message can carry document content from a client: the
    /// messages a durable ack counts.
    pub fn carries_update(&self) -> bool {
        matches!(
            self,
            Message::Sync(SyncMessage::Step2(_) | SyncMessage::Update(_))
        )
    }
}

fn encode_sync(sub: u64, payload: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(2 + var_uint_len(payload.len() as u64) + payload.len());
    write_var_uint(&mut out, MSG_SYNC);
    write_var_uint(&mut out, sub);
    write_var_bytes(&mut out, payload);
    out.into()
}

pub fn encode_sync_step1(state_vector: &[u8]) -> Bytes {
    encode_sync(SYNC_STEP1, state_vector)
}

pub fn encode_sync_step2(update: &[u8]) -> Bytes {
    encode_sync(SYNC_STEP2, update)
}

/// The frame broadcast for an update: encoded once, shared by every socket.
pub fn encode_update(update: &[u8]) -> Bytes {
    encode_sync(SYNC_UPDATE, update)
}

pub fn encode_awareness(update: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(1 + var_uint_len(update.len() as u64) + update.len());
    write_var_uint(&mut out, MSG_AWARENESS);
    write_var_bytes(&mut out, update);
    out.into()
}

pub fn encode_permission_denied(reason: &str) -> Bytes {
    let mut out = Vec::with_capacity(3 + reason.len());
    write_var_uint(&mut out, MSG_AUTH);
    write_var_uint(&mut out, AUTH_PERMISSION_DENIED);
    write_var_bytes(&mut out, reason.as_bytes());
    out.into()
}

pub fn encode_ack(durable: u64) -> Bytes {
    let mut out = Vec::with_capacity(1 + var_uint_len(durable));
    write_var_uint(&mut out, MSG_QUIRE_ACK);
    write_var_uint(&mut out, durable);
    out.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_each_message() {
        let msgs = [
            Message::Sync(SyncMessage::Step1(&[1, 42, 6])),
            Message::Sync(SyncMessage::Step2(&[0, 0])),
            Message::Sync(SyncMessage::Update(&[1, 2, 3])),
            Message::Awareness(&[0]),
            Message::PermissionDenied { reason: "no" },
            Message::QueryAwareness,
            Message::Ack { durable: 1 << 40 },
        ];
        for m in msgs {
            let bytes = m.encode();
            assert_eq!(Message::decode(&bytes).unwrap(), m);
        }
    }

    #[test]
    fn rejects_malformed_frames() {
        assert_eq!(Message::decode(&[]), Err(ProtocolError::Empty));
        assert_eq!(
            Message::decode(&[0, 0, 5, 1]),
            Err(ProtocolError::Truncated)
        );
        assert_eq!(
            Message::decode(&[0, 9, 0]),
            Err(ProtocolError::UnknownSync(9))
        );
        assert_eq!(Message::decode(&[7]), Err(ProtocolError::UnknownMessage(7)));
        assert_eq!(Message::decode(&[3, 0]), Err(ProtocolError::TrailingBytes));
        assert_eq!(Message::decode(&[0xff; 12]), Err(ProtocolError::BadVarint));
        assert_eq!(
            Message::decode(&[2, 0, 1, 0xff]),
            Err(ProtocolError::BadUtf8)
        );
    }
}
