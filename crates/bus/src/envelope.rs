//! The wire format of one bus message on Redis: a small fixed header and the
//! payload bytes as they are, so that an update is never re-encoded (no JSON,
//! no base64) and decoding is a few bounds checks.
//!
//! ```text
//! version u8 = 2 · kind u8 · counter u64 BE · sent_at_micros u64 BE
//! · incarnation u64 BE · origin length u8 · origin (UTF-8) · body
//! ```
//! `kind` 1 is an update, 2 awareness (body: the bytes), 3 committed (body:
//! `covers` as u64 BE), 4 a control message (body: the bytes; the counter is
//! the origin's control-message count, for logs). Control messages travel on
//! their own channel and decode only through [`decode_control`], so neither
//! kind of channel can mistake the other's messages for its own. A version
//! other than 2 is refused, so a mixed-version cluster fails loudly instead
//! of misreading. (Version 1 had no incarnation: its nodes would take a
//! restarted node's counters, which start again at 1, for old ones.)

use bytes::Bytes;
use quire_types::NodeId;

use crate::{BusMessage, BusPayload, Origin};

const VERSION: u8 = 2;
const KIND_UPDATE: u8 = 1;
const KIND_AWARENESS: u8 = 2;
const KIND_COMMITTED: u8 = 3;
const KIND_CONTROL: u8 = 4;
const HEADER: usize = 1 + 1 + 8 + 8 + 8 + 1;
/// Where the incarnation starts; the origin's length is the header's last byte.
const INCARNATION: usize = 18;

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

fn header(
    out: &mut Vec<u8>,
    kind: u8,
    counter: u64,
    sent_at_micros: u64,
    origin: &Origin,
) -> Result<(), EnvelopeError> {
    let node = origin.node.0.as_bytes();
    let node_len = u8::try_from(node.len()).map_err(|_| EnvelopeError::OriginTooLong)?;
    out.push(VERSION);
    out.push(kind);
    out.extend_from_slice(&counter.to_be_bytes());
    out.extend_from_slice(&sent_at_micros.to_be_bytes());
    out.extend_from_slice(&origin.incarnation.to_be_bytes());
    out.push(node_len);
    out.extend_from_slice(node);
    Ok(())
}

pub(crate) fn encode(msg: &BusMessage) -> Result<Vec<u8>, EnvelopeError> {
    let (kind, body): (u8, &[u8]) = match &msg.payload {
        BusPayload::Update(b) => (KIND_UPDATE, b),
        BusPayload::Awareness(b) => (KIND_AWARENESS, b),
        BusPayload::Committed { .. } => (KIND_COMMITTED, &[]),
    };
    let mut out = Vec::with_capacity(HEADER + msg.origin.node.0.len() + body.len().max(8));
    header(&mut out, kind, msg.counter, msg.sent_at_micros, &msg.origin)?;
    match &msg.payload {
        BusPayload::Committed { covers } => out.extend_from_slice(&covers.to_be_bytes()),
        _ => out.extend_from_slice(body),
    }
    Ok(out)
}

/// A control message's envelope: the same header as a document message's,
/// with the bytes as its body.
pub(crate) fn encode_control(
    origin: &Origin,
    counter: u64,
    payload: &[u8],
) -> Result<Vec<u8>, EnvelopeError> {
    let mut out = Vec::with_capacity(HEADER + origin.node.0.len() + payload.len());
    header(&mut out, KIND_CONTROL, counter, crate::now_micros(), origin)?;
    out.extend_from_slice(payload);
    Ok(out)
}

/// A control message's origin node and bytes; anything else is refused.
pub(crate) fn decode_control(bytes: Bytes) -> Result<(NodeId, Bytes), EnvelopeError> {
    let parts = split(bytes)?;
    if parts.kind != KIND_CONTROL {
        return Err(EnvelopeError::Kind(parts.kind));
    }
    Ok((parts.origin.node, parts.body))
}

/// The header's fields and the body, checked for version and length only.
struct Parts {
    kind: u8,
    counter: u64,
    sent_at_micros: u64,
    origin: Origin,
    body: Bytes,
}

fn split(bytes: Bytes) -> Result<Parts, EnvelopeError> {
    if bytes.len() < HEADER {
        return Err(EnvelopeError::Truncated);
    }
    if bytes[0] != VERSION {
        return Err(EnvelopeError::Version(bytes[0]));
    }
    let origin_end = HEADER + bytes[HEADER - 1] as usize;
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
        origin: Origin {
            node: NodeId(origin),
            incarnation: u64::from_be_bytes(
                bytes[INCARNATION..INCARNATION + 8]
                    .try_into()
                    .expect("8 bytes"),
            ),
        },
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

/// Whether an encoded message was published by `origin` (this very run of
/// the node), without decoding the rest: echoes are dropped before anything
/// else is done with them. Another run of the same node id is another
/// publisher, heard like any other.
pub(crate) fn is_from(bytes: &[u8], origin: &Origin) -> bool {
    let Some(&len) = bytes.get(HEADER - 1) else {
        return false;
    };
    bytes[0] == VERSION
        && bytes[INCARNATION..INCARNATION + 8] == origin.incarnation.to_be_bytes()
        && bytes.get(HEADER..HEADER + len as usize) == Some(origin.node.0.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node_a() -> Origin {
        Origin {
            node: NodeId("node-a".into()),
            incarnation: 0x0102_0304_0506_0708,
        }
    }

    fn msg(payload: BusPayload) -> BusMessage {
        BusMessage {
            origin: node_a(),
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
            assert!(is_from(&bytes, &node_a()));
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
        assert!(!is_from(&good[..5], &node_a()));
    }

    #[test]
    fn another_run_of_the_same_node_is_another_origin() {
        let bytes = encode(&msg(BusPayload::Update(Bytes::from_static(b"u")))).unwrap();
        let restarted = Origin {
            incarnation: 9,
            ..node_a()
        };
        assert!(is_from(&bytes, &node_a()));
        assert!(!is_from(&bytes, &restarted));
        assert!(!is_from(
            &bytes,
            &Origin {
                node: NodeId("node-b".into()),
                ..node_a()
            }
        ));
        assert_eq!(decode(Bytes::from(bytes)).unwrap().origin, node_a());
    }

    #[test]
    fn a_version_1_message_is_refused() {
        // A node of the previous release: its header has no incarnation.
        let mut v1 = vec![1, KIND_UPDATE];
        v1.extend_from_slice(&7u64.to_be_bytes());
        v1.extend_from_slice(&0u64.to_be_bytes());
        v1.push(6);
        v1.extend_from_slice(b"node-a");
        v1.extend_from_slice(b"update bytes here");
        assert_eq!(decode(Bytes::from(v1)), Err(EnvelopeError::Version(1)));
    }

    #[test]
    fn control_messages_round_trip_and_stay_apart_from_document_messages() {
        let origin = node_a();
        for body in [&b""[..], b"{\"kind\":\"x\"}", &[0xff, 0x00, 0xfe]] {
            let bytes = Bytes::from(encode_control(&origin, 7, body).unwrap());
            assert!(is_from(&bytes, &origin));
            assert_eq!(
                decode_control(bytes.clone()).unwrap(),
                (origin.node.clone(), Bytes::copy_from_slice(body))
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
