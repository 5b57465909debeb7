//! The wire format of one bus message on Redis: a small fixed header and the
//! payload bytes as they are, so that an update is never re-encoded (no JSON,
//! no base64) and decoding is a few bounds checks.
//!
//! ```text
//! version u8 = 1 · kind u8 · counter u64 BE · sent_at_micros u64 BE
//! · origin length u8 · origin (UTF-8) · body
//! ```
//! `kind` 1 is an update, 2 awareness (body: the bytes), 3 committed (body:
//! `covers` as u64 BE), 4 a control message (body: the bytes; the counter is
//! the origin's control-message count, for logs). Control messages travel on
//! their own channel and decode only through [`decode_control`], so neither
//! kind of channel can mistake the other's messages for its own. A version
//! other than 1 is refused, so a mixed-version cluster fails loudly instead
//! of misreading.

use bytes::Bytes;
use quire_types::NodeId;

use crate::{BusMessage, BusPayload};

const VERSION: u8 = 1;
const KIND_UPDATE: u8 = 1;
const KIND_AWARENESS: u8 = 2;
const KIND_COMMITTED: u8 = 3;
const KIND_CONTROL: u8 = 4;
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

/// A control message's envelope: the same header as a document message's,
/// with the bytes as its body.
pub(crate) fn encode_control(
    origin: &NodeId,
    counter: u64,
    payload: &[u8],
) -> Result<Vec<u8>, EnvelopeError> {
    let origin = origin.0.as_bytes();
    let origin_len = u8::try_from(origin.len()).map_err(|_| EnvelopeError::OriginTooLong)?;
    let mut out = Vec::with_capacity(HEADER + origin.len() + payload.len());
    out.push(VERSION);
    out.push(KIND_CONTROL);
    out.extend_from_slice(&counter.to_be_bytes());
    out.extend_from_slice(&crate::now_micros().to_be_bytes());
    out.push(origin_len);
    out.extend_from_slice(origin);
    out.extend_from_slice(payload);
    Ok(out)
}

/// A control message's origin and bytes; anything else is refused.
pub(crate) fn decode_control(bytes: Bytes) -> Result<(NodeId, Bytes), EnvelopeError> {
    let parts = split(bytes)?;
    if parts.kind != KIND_CONTROL {
        return Err(EnvelopeError::Kind(parts.kind));
    }
    Ok((parts.origin, parts.body))
}

/// The header's fields and the body, checked for version and length only.
struct Parts {
    kind: u8,
    counter: u64,
    sent_at_micros: u64,
    origin: NodeId,
    body: Bytes,
}

fn split(bytes: Bytes) -> Result<Parts, EnvelopeError> {
    if bytes.len() < HEADER {
        return Err(EnvelopeError::Truncated);
    }
    if bytes[0] != VERSION {
        return Err(EnvelopeError::Version(bytes[0]));
    }
    let origin_end = HEADER + bytes[18] as usize;
    if bytes.len() < origin_end {
        return Err(EnvelopeError::Truncated);
    }
    let origin = std::str::from_utf8(&bytes[HEADER..origin_end])
        .map_err(|_| EnvelopeError::Origin)?
        .to_string();
    Ok(Parts {
        kind: bytes[1],
        counter: u64::from_be_bytes(bytes[2..10].try_into().expect("8 bytes")),
        sent_at_micros: u64::from_be_bytes(bytes[10..18].try_into().expect("8 bytes")),
        origin: NodeId(origin),
        body: bytes.slice(origin_end..),
    })
}

pub(crate) fn decode(bytes: Bytes) -> Result<BusMessage, EnvelopeError> {
    let Parts {
        kind,
        counter,
        sent_at_micros,
        origin,
        body,
    } = split(bytes)?;
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
        origin,
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

    #[test]
    fn control_messages_round_trip_and_stay_apart_from_document_messages() {
        let origin = NodeId("node-a".into());
        for body in [&b""[..], b"{\"kind\":\"x\"}", &[0xff, 0x00, 0xfe]] {
            let bytes = Bytes::from(encode_control(&origin, 7, body).unwrap());
            assert_eq!(origin_of(&bytes), Some(&b"node-a"[..]));
            assert_eq!(
                decode_control(bytes.clone()).unwrap(),
                (origin.clone(), Bytes::copy_from_slice(body))
            );
            assert_eq!(decode(bytes), Err(EnvelopeError::Kind(KIND_CONTROL)));
        }
        let update = encode(&msg(BusPayload::Update(Bytes::from_static(b"u")))).unwrap();
        assert_eq!(
            decode_control(Bytes::from(update)),
            Err(EnvelopeError::Kind(KIND_UPDATE))
        );
        let good = encode_control(&origin, 1, b"x").unwrap();
        for cut in 0..HEADER + 6 {
            assert!(decode_control(Bytes::copy_from_slice(&good[..cut])).is_err());
        }
    }
}
