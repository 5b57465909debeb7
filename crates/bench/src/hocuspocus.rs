//! The Hocuspocus dialect of the Yjs sync protocol, as `@hocuspocus/server`
//! and `@hocuspocus/provider` 3.x speak it (read from their source:
//! `OutgoingMessage`, `MessageReceiver`, `ClientConnection` and the
//! provider's messages).
//!
//! Every frame, both ways, is `varString(documentName)` followed by a
//! message: `varUint(type)` and the type's payload. One socket may carry
//! several documents; the generator opens one socket per document.
//!
//! | type | name | payload | y-websocket equivalent |
//! |---|---|---|---|
//! | 0 | Sync | y-protocols sync message (step 1, step 2, update) | 0 |
//! | 1 | Awareness | varUint8Array awareness update | 1 |
//! | 2 | Auth | varUint sub-type: 0 Token (client → server: varString token; server → client: "send your token again"), 1 PermissionDenied (varString reason), 2 Authenticated (varString scope) | 2/0 for PermissionDenied, none else |
//! | 3 | QueryAwareness | — | 3 |
//! | 4 | SyncReply | like Sync, but a step 1 in it asks for no step 1 back | 0 |
//! | 5 | Stateless | varString | none |
//! | 6 | BroadcastStateless | varString | none |
//! | 7 | CLOSE | varString reason (server → client: this document's connection is closed; client → server: close it) | a close frame, code 1000 |
//! | 8 | SyncStatus | varUint 1/0: the update was applied (sent after every step 2 or update a client sends) | none |
//!
//! The server queues every message of a document until that document's Auth
//! (Token) message arrives, runs its `onConnect` and `onAuthenticate` hooks,
//! answers Authenticated (or PermissionDenied), and only then handles the
//! queue. The provider sends Auth right after the socket opens, then its sync
//! step 1, without waiting for the answer; so does [`Ws::hocuspocus`]. The
//! server answers a client's step 1 (in a Sync message) with its own step 1
//! and then the step 2, both as Sync; it broadcasts each update as Sync to
//! every connection of the document, the author's included.

use bytes::Bytes;
use quire_protocol::{Reader, encode_permission_denied, write_var_bytes, write_var_uint};

pub const SYNC: u64 = 0;
pub const AWARENESS: u64 = 1;
pub const AUTH: u64 = 2;
pub const QUERY_AWARENESS: u64 = 3;
pub const SYNC_REPLY: u64 = 4;
pub const STATELESS: u64 = 5;
pub const BROADCAST_STATELESS: u64 = 6;
pub const CLOSE: u64 = 7;
pub const SYNC_STATUS: u64 = 8;

pub const AUTH_TOKEN: u64 = 0;
pub const AUTH_PERMISSION_DENIED: u64 = 1;
pub const AUTH_AUTHENTICATED: u64 = 2;

/// What one incoming frame becomes for a y-websocket client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// A y-websocket frame.
    Frame(Bytes),
    /// The server closed this document's connection (CLOSE, with its
    /// reason): shown as a close frame with code 1000, as the provider
    /// does.
    Close(String),
    /// Nothing a y-websocket client would see (auth and sync status
    /// replies, stateless messages, another document's frames).
    Swallowed,
}

/// The dialect's state on one socket.
#[derive(Debug)]
pub struct Session {
    doc: String,
    token: String,
    /// `varString(doc)`: the start of every frame.
    prefix: Vec<u8>,
    /// The Auth frame to send again because the server asked for the
    /// token, until the socket takes it.
    pub(crate) pending: Option<Bytes>,
}

impl Session {
    pub fn new(doc: &str, token: &str) -> Session {
        let mut prefix = Vec::with_capacity(doc.len() + 2);
        write_var_bytes(&mut prefix, doc.as_bytes());
        Session {
            doc: doc.to_string(),
            token: token.to_string(),
            prefix,
            pending: None,
        }
    }

    /// A y-websocket frame as the server expects it: the message types
    /// the generator sends (sync, awareness, query awareness) have the
    /// same numbers and payloads, so only the prefix is added.
    pub fn outgoing(&self, frame: &[u8]) -> Bytes {
        let mut out = Vec::with_capacity(self.prefix.len() + frame.len());
        out.extend_from_slice(&self.prefix);
        out.extend_from_slice(frame);
        out.into()
    }

    /// Translates one incoming frame; a token request queues the Auth
    /// frame to send back (as the provider's `sendToken`).
    pub fn incoming(&mut self, frame: Bytes) -> Incoming {
        match translate(&self.doc, frame) {
            Translated::TokenRequest => {
                self.pending = Some(auth_frame(&self.doc, &self.token));
                Incoming::Swallowed
            }
            Translated::Is(i) => i,
        }
    }
}

/// `[doc][Auth][Token][token]`: what the provider sends first.
pub fn auth_frame(doc: &str, token: &str) -> Bytes {
    let mut out = Vec::with_capacity(doc.len() + token.len() + 6);
    write_var_bytes(&mut out, doc.as_bytes());
    write_var_uint(&mut out, AUTH);
    write_var_uint(&mut out, AUTH_TOKEN);
    write_var_bytes(&mut out, token.as_bytes());
    out.into()
}

enum Translated {
    Is(Incoming),
    TokenRequest,
}

fn translate(doc: &str, frame: Bytes) -> Translated {
    use Translated::Is;
    let mut r = Reader::new(&frame);
    let Ok(name) = r.read_var_bytes() else {
        // Not Hocuspocus framing: hand it on, the scenario's decoder
        // reports it.
        return Is(Incoming::Frame(frame));
    };
    if name != doc.as_bytes() {
        return Is(Incoming::Swallowed);
    }
    let type_at = frame.len() - r.remaining();
    let Ok(kind) = r.read_var_uint() else {
        return Is(Incoming::Frame(frame.slice(type_at..)));
    };
    match kind {
        // Same tag, same payload: no copy.
        SYNC | AWARENESS | QUERY_AWARENESS => Is(Incoming::Frame(frame.slice(type_at..))),
        SYNC_REPLY => {
            let payload = &frame[frame.len() - r.remaining()..];
            let mut out = Vec::with_capacity(1 + payload.len());
            write_var_uint(&mut out, SYNC);
            out.extend_from_slice(payload);
            Is(Incoming::Frame(out.into()))
        }
        AUTH => match r.read_var_uint().ok() {
            Some(AUTH_TOKEN) => Translated::TokenRequest,
            Some(AUTH_PERMISSION_DENIED) => {
                let reason = r.read_var_bytes().unwrap_or_default();
                Is(Incoming::Frame(encode_permission_denied(
                    &String::from_utf8_lossy(reason),
                )))
            }
            _ => Is(Incoming::Swallowed),
        },
        CLOSE => {
            let reason = r.read_var_bytes().unwrap_or_default();
            Is(Incoming::Close(
                String::from_utf8_lossy(reason).into_owned(),
            ))
        }
        SYNC_STATUS | STATELESS | BROADCAST_STATELESS => Is(Incoming::Swallowed),
        // Unknown to both dialects: hand it on without the prefix, the
        // scenario's decoder reports the type.
        _ => Is(Incoming::Frame(frame.slice(type_at..))),
    }
}

#[cfg(test)]
mod tests {
    use futures_util::{SinkExt, StreamExt};
    use quire_protocol::{Message, encode_sync_step2};
    use tokio_tungstenite::tungstenite::Message as WsMessage;
    use yrs::ClientID;

    use super::*;
    use crate::client::*;

    /// `[len]d1`: the prefix of document "d1".
    const D1: &[u8] = &[2, b'd', b'1'];

    fn hp(rest: &[u8]) -> Bytes {
        [D1, rest].concat().into()
    }

    fn incoming(frame: &[u8]) -> Incoming {
        Session::new("d1", "tok").incoming(hp(frame))
    }

    #[test]
    fn outgoing_frames_get_the_document_name() {
        let s = Session::new("d1", "");
        // sync step 1 with an empty state vector
        assert_eq!(&s.outgoing(&[0, 0, 1, 0])[..], &[2, b'd', b'1', 0, 0, 1, 0]);
        // update
        assert_eq!(&s.outgoing(&[0, 2, 2, 7, 8])[..], &hp(&[0, 2, 2, 7, 8])[..]);
        // awareness
        assert_eq!(&s.outgoing(&[1, 1, 9])[..], &hp(&[1, 1, 9])[..]);
    }

    #[test]
    fn the_auth_frame_is_the_providers() {
        // [doc][Auth=2][Token=0][varString token]
        assert_eq!(&auth_frame("d1", "")[..], &hp(&[2, 0, 0])[..]);
        assert_eq!(&auth_frame("d1", "ab")[..], &hp(&[2, 0, 2, b'a', b'b'])[..]);
    }

    #[test]
    fn sync_awareness_and_query_lose_only_the_prefix() {
        for msg in [
            &[0u8, 0, 1, 0][..], // step 1
            &[0, 1, 2, 0, 0],    // step 2
            &[0, 2, 3, 1, 2, 3], // update
            &[1, 2, 5, 6],       // awareness
            &[3],                // query awareness
        ] {
            assert_eq!(incoming(msg), Incoming::Frame(Bytes::copy_from_slice(msg)));
        }
    }

    #[test]
    fn sync_reply_becomes_sync() {
        assert_eq!(
            incoming(&[4, 0, 1, 0]),
            Incoming::Frame(Bytes::from_static(&[0, 0, 1, 0]))
        );
        assert_eq!(
            incoming(&[4, 1, 2, 0, 0]),
            Incoming::Frame(Bytes::from_static(&[0, 1, 2, 0, 0]))
        );
    }

    #[test]
    fn replies_a_y_websocket_client_would_not_see_are_swallowed() {
        let mut authenticated = vec![2, 2, 10];
        authenticated.extend_from_slice(b"read-write");
        for msg in [
            &authenticated[..],  // Auth: Authenticated "read-write"
            &[8, 1],             // SyncStatus: applied
            &[8, 0],             // SyncStatus: not applied
            &[5, 2, b'h', b'i'], // Stateless "hi"
            &[6, 2, b'h', b'i'], // BroadcastStateless "hi"
        ] {
            assert_eq!(incoming(msg), Incoming::Swallowed, "{msg:?}");
        }
        // Another document's frame (one socket may carry several).
        let other = [&[2, b'd', b'2'][..], &[0, 2, 1, 0]].concat();
        assert_eq!(
            Session::new("d1", "").incoming(other.into()),
            Incoming::Swallowed
        );
    }

    #[test]
    fn permission_denied_becomes_y_websockets() {
        let out = incoming(&[2, 1, 4, b'n', b'o', b'p', b'e']);
        let Incoming::Frame(f) = out else {
            panic!("{out:?}")
        };
        assert_eq!(&f[..], &[2, 0, 4, b'n', b'o', b'p', b'e']);
        assert!(matches!(
            Message::decode(&f),
            Ok(Message::PermissionDenied { reason: "nope" })
        ));
    }

    #[test]
    fn close_becomes_a_close_frame_with_its_reason() {
        assert_eq!(incoming(&[7, 2, b'b', b'y']), Incoming::Close("by".into()));
    }

    #[test]
    fn a_token_request_is_answered_with_the_token() {
        let mut s = Session::new("d1", "tok");
        assert_eq!(s.incoming(hp(&[2, 0])), Incoming::Swallowed);
        assert_eq!(s.pending.as_deref(), Some(&auth_frame("d1", "tok")[..]));
    }

    #[test]
    fn long_document_names_round_trip() {
        let name = "x".repeat(300); // two-byte length
        let mut s = Session::new(&name, "");
        let out = s.outgoing(&[0, 2, 1, 9]);
        assert_eq!(&out[..3], &[0xac, 0x02, b'x']);
        assert_eq!(
            s.incoming(out),
            Incoming::Frame(Bytes::from_static(&[0, 2, 1, 9]))
        );
    }

    #[test]
    fn malformed_frames_are_handed_on() {
        let mut s = Session::new("d1", "");
        assert_eq!(
            s.incoming(Bytes::from_static(&[9])),
            Incoming::Frame(Bytes::from_static(&[9]))
        );
    }

    /// A fake Hocuspocus server on a real socket: the client's first
    /// frame must be Auth, then its step 1, prefixed; the server's
    /// Authenticated and SyncStatus never reach the handshake.
    #[tokio::test]
    async fn a_handshake_through_the_dialect() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
            let mut got = Vec::new();
            while got.len() < 2 {
                if let Some(Ok(WsMessage::Binary(b))) = ws.next().await {
                    got.push(b);
                }
            }
            let mut authenticated = vec![2, b'd', b'1', 2, 2, 10];
            authenticated.extend_from_slice(b"read-write");
            let server_doc = Replica::new(ClientID::new(7));
            let step2 = server_doc.diff(&[0]).unwrap();
            let mut step2_frame = vec![2, b'd', b'1'];
            step2_frame.extend_from_slice(&encode_sync_step2(&step2));
            for f in [
                authenticated,
                vec![2, b'd', b'1', 8, 1],
                vec![2, b'd', b'1', 0, 0, 1, 0],
                step2_frame,
            ] {
                ws.send(WsMessage::Binary(f.into())).await.unwrap();
            }
            // The client's step 2, prefixed.
            let reply = loop {
                if let Some(Ok(WsMessage::Binary(b))) = ws.next().await {
                    break b;
                }
            };
            (got, reply)
        });
        let args = TargetArgs {
            url: vec![format!("ws://{addr}")],
            account: None,
            dialect: Dialect::Hocuspocus,
            metrics_token: None,
        };
        let target = args.target().await.unwrap();
        assert_eq!(target.url("d1", false), format!("ws://{addr}"));
        assert!(target.connect("d1", true).await.is_err(), "no acks");
        let mut ws = target.connect("d1", false).await.unwrap();
        let replica = Replica::new(ClientID::new(5));
        let hs = sync(&mut ws, &replica).await.unwrap();
        assert_eq!(hs.update_messages_sent, 1);
        let (got, reply) = server.await.unwrap();
        assert_eq!(&got[0][..], &auth_frame("d1", "")[..]);
        assert_eq!(&got[1][..], &[2, b'd', b'1', 0, 0, 1, 0]);
        assert_eq!(&reply[..5], &[2, b'd', b'1', 0, 1]);
        let _ = ws.close(None).await;
    }
}
