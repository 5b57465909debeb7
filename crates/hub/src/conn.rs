//! What names a connection on this node, and how the server ends one: the
//! close codes every layer shares (`docs/protocol.md`).

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};

pub(crate) type ConnId = u64;

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

pub(crate) fn next_conn_id() -> ConnId {
    NEXT_CONN.fetch_add(1, Ordering::Relaxed)
}

/// Why the server ends a session. Every close the server initiates goes
/// through this enum, so the codes live in one place (`docs/protocol.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseCode {
    /// 1001: the server is shutting down; reconnect (to any node).
    GoingAway,
    /// 1009: a frame exceeded the size limit.
    FrameTooLarge,
    /// 1011: the server failed (e.g. storage); reconnect later.
    InternalError,
    /// 4400: a frame or update could not be decoded.
    Malformed,
    /// 4401: not signed in.
    Unauthorized,
    /// 4403: no access to this document.
    Forbidden,
    /// 4404: the document does not exist (or was deleted).
    NotFound,
    /// 4408: the client sent nothing, not even a pong, for the silence
    /// deadline (a dead peer, or one that ignores pings).
    PongTimeout,
    /// 4409: the user's rights on the document changed; reconnect to get
    /// the new ones.
    AccessChanged,
    /// 4413: the update would make the document larger than allowed.
    DocumentTooLarge,
    /// 4429: the socket did not keep up with the document; reconnect to resync.
    TooSlow,
    /// 4503: the document could not be loaded right now.
    Unavailable,
}

impl CloseCode {
    pub fn code(self) -> u16 {
        match self {
            CloseCode::GoingAway => 1001,
            CloseCode::FrameTooLarge => 1009,
            CloseCode::InternalError => 1011,
            CloseCode::Malformed => 4400,
            CloseCode::Unauthorized => 4401,
            CloseCode::Forbidden => 4403,
            CloseCode::NotFound => 4404,
            CloseCode::PongTimeout => 4408,
            CloseCode::AccessChanged => 4409,
            CloseCode::DocumentTooLarge => 4413,
            CloseCode::TooSlow => 4429,
            CloseCode::Unavailable => 4503,
        }
    }

    /// The code for a number [`code`](Self::code) returned, e.g. one that
    /// travelled to another node.
    pub fn from_code(code: u16) -> Option<CloseCode> {
        [
            CloseCode::GoingAway,
            CloseCode::FrameTooLarge,
            CloseCode::InternalError,
            CloseCode::Malformed,
            CloseCode::Unauthorized,
            CloseCode::Forbidden,
            CloseCode::NotFound,
            CloseCode::PongTimeout,
            CloseCode::AccessChanged,
            CloseCode::DocumentTooLarge,
            CloseCode::TooSlow,
            CloseCode::Unavailable,
        ]
        .into_iter()
        .find(|c| c.code() == code)
    }

    /// Stable label for metrics.
    pub fn label(self) -> &'static str {
        match self {
            CloseCode::GoingAway => "going_away",
            CloseCode::FrameTooLarge => "frame_too_large",
            CloseCode::InternalError => "internal_error",
            CloseCode::Malformed => "malformed",
            CloseCode::Unauthorized => "unauthorized",
            CloseCode::Forbidden => "forbidden",
            CloseCode::NotFound => "not_found",
            CloseCode::PongTimeout => "pong_timeout",
            CloseCode::AccessChanged => "access_changed",
            CloseCode::DocumentTooLarge => "document_too_large",
            CloseCode::TooSlow => "too_slow",
            CloseCode::Unavailable => "unavailable",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseFrame {
    pub code: CloseCode,
    pub reason: Cow<'static, str>,
}

impl CloseFrame {
    pub fn new(code: CloseCode, reason: impl Into<Cow<'static, str>>) -> Self {
        CloseFrame {
            code,
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::CloseCode;

    #[test]
    fn close_codes_round_trip_through_their_numbers() {
        for code in [
            1001, 1009, 1011, 4400, 4401, 4403, 4404, 4408, 4409, 4413, 4429, 4503,
        ] {
            let c = CloseCode::from_code(code).unwrap_or_else(|| panic!("{code} is known"));
            assert_eq!(c.code(), code);
        }
        assert_eq!(CloseCode::from_code(1000), None);
        assert_eq!(CloseCode::from_code(4999), None);
    }
}
