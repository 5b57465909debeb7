//! The wire format of one bus message on Redis: a small fixed header and the
//! payload bytes as they are, so that an update is never re-encoded (no JSON,
//! no base64) and decoding is a few bounds checks.
//!
//! ```text
//! version u8 = 1 · kind u8 · counter u64 BE · sent_at_micros u64 BE
//! · origin length u8 · origin (UTF-8) · body
//! ```
//! `kind` 1 is an update, 2 awareness (body: the bytes), 3 committed (body:
//! `covers` as u64 BE). A version other than 1 is refused, so a mixed-version
//! cluster fails loudly instead of misreading.

use bytes::Bytes;
use quire_types::NodeId;

use crate::{BusMessage, BusPayload};

const VERSION: u8 = 1;
const KIND_UPDATE: u8 = 1;
const KIND_AWARENESS: u8 = 2;
const KIND_COMMITTED: u8 = 3;
const HEADER: usize = 1 + 1 + 8 + 8 + 1;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("bus message is truncated")]
    Truncated,
    #[error("bus message has unknown version {0}")]
    Version(u8),
    #[error("bus message has unknown kind {0}")]
    Kind(u8),
    #[error("bus message origin is not UTF-8")]
    Origin,
    #[error("node id is longer than 255 bytes")]
    OriginTooLong,
}

pub(crate) fn encode(msg: &BusMessage) -> Result<Vec<u8>, EnvelopeError> {
    let origin = msg.origin.0.as_bytes();
    let origin_len = u8::try_from(origin.len()).map_err(|_| EnvelopeError::OriginTooLong)?;
    let (kind, body): (u8, &[u8]) = match &msg.payload {
        BusPayload::Update(b) => (KIND_UPDATE, b),
        BusPayload::Awareness(b) => (KIND_AWARENESS, b),
        BusPayload::Committed { .. } => (KIND_COMMITTED, &[]),
    };
    let mut out = Vec::with_capacity(HEADER + origin.len() + body.len().max(8));
    out.push(VERSION);
    out.push(kind);
    out.extend_from_slice(&msg.counter.to_be_bytes());
    out.extend_from_slice(&msg.sent_at_micros.to_be_bytes());
    out.push(origin_len);
    out.extend_from_slice(origin);
    match &msg.payload {
        BusPayload::Committed { covers } => out.extend_from_slice(&covers.to_be_bytes()),
        _ => out.extend_from_slice(body),
    }
    Ok(out)
}

pub(crate) fn decode(bytes: Bytes) -> Result<BusMessage, EnvelopeError> {
    if bytes.len() < HEADER {
        return Err(EnvelopeError::Truncated);
    }
    if bytes[0] != VERSION {
        return Err(EnvelopeError::Version(bytes[0]));
    }
    let kind = bytes[1];
    let counter = u64::from_be_bytes(bytes[2..10].try_into().expect("8 bytes"));
    let sent_at_micros = u64::from_be_bytes(bytes[10..18].try_into().expect("8 bytes"));
    let origin_end = HEADER + bytes[18] as usize;
    if bytes.len() < origin_end {
        return Err(EnvelopeError::Truncated);
    }
    let origin = std::str::from_utf8(&bytes[HEADER..origin_end])
        .map_err(|_| EnvelopeError::Origin)?
        .to_string();
    let body = bytes.slice(origin_end..);
    let payload = match kind {
        KIND_UPDATE => BusPayload::Update(body),
        KIND_AWARENESS => BusPayload::Awareness(body),
        KIND_COMMITTED => {
            let covers: [u8; 8] = body[..].try_into().map_err(|_| EnvelopeError::Truncated)?;
            BusPayload::Committed {
                covers: u64::from_be_bytes(covers),
            }
        }
        other => return Err(EnvelopeError::Kind(other)),
    };
    Ok(BusMessage {
        origin: NodeId(origin),
        counter,
        sent_at_micros,
        payload,
    })
}

/// The origin of an encoded message, without decoding the rest: echoes are
/// dropped before anything else is done with them.
pub(crate) fn origin_of(bytes: &[u8]) -> Option<&[u8]> {
    let end = HEADER + *bytes.get(18)? as usize;
    bytes.get(HEADER..end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(payload: BusPayload) -> BusMessage {
        BusMessage {
            origin: NodeId("node-a".into()),
            counter: 42,
            sent_at_micros: 1_700_000_000_000_000,
            payload,
        }
    }

    #[test]
    fn every_kind_round_trips() {
        for payload in [
            BusPayload::Update(Bytes::from_static(b"\x01\x02\x03")),
            BusPayload::Update(Bytes::new()),
            BusPayload::Awareness(Bytes::from_static(b"{}")),
            BusPayload::Committed { covers: 41 },
        ] {
            let m = msg(payload);
            let bytes = Bytes::from(encode(&m).unwrap());
            assert_eq!(origin_of(&bytes), Some(&b"node-a"[..]));
            assert_eq!(decode(bytes).unwrap(), m);
        }
    }

    #[test]
    fn the_header_is_small_and_fixed() {
        let bytes = encode(&msg(BusPayload::Update(Bytes::from_static(b"u")))).unwrap();
        assert_eq!(bytes.len(), HEADER + "node-a".len() + 1);
        assert_eq!(&bytes[..2], &[VERSION, KIND_UPDATE]);
    }

    #[test]
    fn bad_envelopes_are_refused() {
        let good = encode(&msg(BusPayload::Committed { covers: 1 })).unwrap();
        for cut in 0..good.len() {
            assert!(
                decode(Bytes::copy_from_slice(&good[..cut])).is_err(),
                "cut at {cut}"
            );
        }
        let mut v = good.clone();
        v[0] = 9;
        assert_eq!(decode(Bytes::from(v)), Err(EnvelopeError::Version(9)));
        let mut k = good.clone();
        k[1] = 7;
        assert_eq!(decode(Bytes::from(k)), Err(EnvelopeError::Kind(7)));
        assert_eq!(origin_of(&good[..5]), None);
    }
}
