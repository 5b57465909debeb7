//! Sockets that stop reading or go silent are evicted (issue 12): through
//! real sockets, against a server whose deadlines are shortened by its
//! flags. Each test also checks that the other sessions of the document go
//! on and that the hub forgets the evicted one.

mod common;

use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;
use yrs::{Map, Text, WriteTxn};

/// Open sessions on `doc`, as the hub counts them.
async fn sessions_on(server: &TestServer, doc: &str) -> usize {
    server
        .state
        .hub
        .live_sessions()
        .await
        .into_iter()
        .filter(|(d, _)| d.as_str() == doc)
        .map(|(_, s)| s.len())
        .sum()
}

/// A TCP connection to the server with a small receive buffer, so that a
/// client that does not read fills it (and the server's send buffer) soon.
async fn small_window(server: &TestServer) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(server.addr).await.unwrap()
}

#[tokio::test]
async fn a_socket_that_stops_reading_is_dropped_at_the_write_deadline() {
    const WRITE_TIMEOUT: Duration = Duration::from_secs(1);
    let server =
        TestServer::start_with(|c| c.ws_write_timeout_secs = WRITE_TIMEOUT.as_secs()).await;
    assert_eq!(
        server
            .metric("quire_limit", r#"name="ws_write_timeout_secs""#)
            .await,
        WRITE_TIMEOUT.as_secs_f64()
    );
    let doc = server.owner.create_document("flood").await;
    let url = server.ws_url(&doc);

    // The client that never reads: upgraded, then its stream is never polled.
    let (stuck, _) = within(
        "stuck client's handshake",
        tokio_tungstenite::client_async(server.owner.ws_request(&url), small_window(&server).await),
    )
    .await
    .expect("upgrade");
    let mut writer = TestClient::connect(&format!("{url}?quire=1")).await;
    writer.wait_synced().await;
    let mut reader = TestClient::connect(&url).await;
    reader.wait_synced().await;
    eventually("three sessions", TIMEOUT, || async {
        sessions_on(&server, &doc).await == 3
    })
    .await;
    assert_eq!(server.metric("quire_connections", "").await, 3.0);

    // 16 MiB of updates, far more than the kernel buffers between the
    // server and a client that does not read; each is acknowledged.
    let big = "x".repeat(64 * 1024);
    for _ in 0..256 {
        writer.edit(|t| {
            t.get_or_insert_map("m").insert(t, "k", big.clone());
        });
    }
    // Acks count its sync step 2 too.
    writer.wait_acked(writer.sent_updates + 1).await;
    let all_acked = Instant::now();

    // Its write has been blocked since well before the last ack; the
    // deadline ends it, with a little slack for a loaded machine.
    eventually(
        "the stuck socket counted as a write timeout",
        WRITE_TIMEOUT + Duration::from_secs(5),
        || async {
            server
                .metric("quire_sockets_closed_total", r#"reason="write_timeout""#)
                .await
                == 1.0
        },
    )
    .await;
    let dropped_after = all_acked.elapsed();
    // The hub forgot it: its queue and presence are gone.
    eventually("the hub forgets the stuck session", TIMEOUT, || async {
        sessions_on(&server, &doc).await == 2
    })
    .await;
    assert_eq!(server.metric("quire_connections", "").await, 2.0);
    // The connection is over: what the kernel still held arrives, then the
    // end of the stream.
    let mut stuck = stuck;
    within("the stuck socket ends", async {
        while let Some(Ok(_)) = stuck.next().await {}
    })
    .await;

    // Everyone else carries on.
    writer.edit(|t| t.get_or_insert_text("t").insert(t, 0, "still here"));
    reader.wait_text("t", "still here").await;
    assert_eq!(reader.snapshot().closed, None);
    assert_eq!(writer.snapshot().closed, None);
    eprintln!("stuck socket dropped {dropped_after:?} after the last ack");
}

/// Reads one frame the server sent (servers do not mask): opcode, payload.
async fn read_frame(s: &mut TcpStream) -> std::io::Result<(u8, Vec<u8>)> {
    let mut head = [0u8; 2];
    s.read_exact(&mut head).await?;
    let mut len = u64::from(head[1] & 0x7f);
    if len == 126 {
        let mut b = [0u8; 2];
        s.read_exact(&mut b).await?;
        len = u64::from(u16::from_be_bytes(b));
    } else if len == 127 {
        let mut b = [0u8; 8];
        s.read_exact(&mut b).await?;
        len = u64::from_be_bytes(b);
    }
    assert!(len < 1 << 24, "a frame of {len} bytes");
    let mut payload = vec![0u8; len as usize];
    s.read_exact(&mut payload).await?;
    Ok((head[0] & 0x0f, payload))
}

/// Upgrades by hand, as the owner: the connection then belongs to the test
/// byte for byte (nothing answers pings for it).
async fn raw_upgrade(server: &TestServer, doc: &str) -> TcpStream {
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let req = format!(
        "GET /ws/{doc} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Origin: {origin}\r\nCookie: {cookie}\r\n\r\n",
        addr = server.addr,
        origin = server.owner.origin(),
        cookie = server.owner.access,
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        assert!(head.len() < 8192, "an endless response head");
        let mut b = [0u8; 1];
        within("upgrade response", s.read_exact(&mut b))
            .await
            .unwrap();
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    s
}

#[tokio::test]
async fn a_socket_that_never_answers_pings_is_closed_at_the_pong_deadline() {
    const SILENCE: Duration = Duration::from_secs(3);
    let server = TestServer::start_with(|c| {
        c.ping_secs = 1;
        c.pong_timeout_secs = Some(SILENCE.as_secs());
    })
    .await;
    // The deadline is published beside what it bounds.
    assert_eq!(
        server
            .metric("quire_limit", r#"name="pong_timeout_secs""#)
            .await,
        SILENCE.as_secs_f64()
    );
    let doc = server.owner.create_document("quiet").await;
    let url = server.ws_url(&doc);
    // A stock client that only listens: it answers pings (tungstenite does,
    // as browsers and the `ws` package do) and sends nothing else. It
    // connects first, so its deadline passes before the silent one's.
    let mut idle = TestClient::connect(&url).await;
    idle.wait_synced().await;

    let mut silent = raw_upgrade(&server, &doc).await;
    let upgraded = Instant::now();
    eventually("two sessions", TIMEOUT, || async {
        sessions_on(&server, &doc).await == 2
    })
    .await;
    let mut pings = 0;
    let (code, reason) = within("a close frame", async {
        loop {
            match read_frame(&mut silent).await.expect("a frame") {
                (0x8, payload) => {
                    let code = u16::from_be_bytes([payload[0], payload[1]]);
                    break (code, String::from_utf8_lossy(&payload[2..]).into_owned());
                }
                (0x9, _) => pings += 1,
                _ => {}
            }
        }
    })
    .await;
    let closed_after = upgraded.elapsed();
    assert_eq!(code, 4408, "{reason}");
    assert!(pings >= 2, "the server pinged first ({pings} pings)");
    assert!(
        closed_after >= SILENCE - Duration::from_millis(100),
        "closed after {closed_after:?}, before its deadline"
    );
    assert!(
        closed_after <= SILENCE + Duration::from_secs(4),
        "closed only after {closed_after:?}"
    );
    // Then the server hangs up.
    within("the silent socket ends", async {
        while read_frame(&mut silent).await.is_ok() {}
    })
    .await;
    assert_eq!(
        server
            .metric("quire_sockets_closed_total", r#"reason="pong_timeout""#)
            .await,
        1.0
    );
    eventually("the hub forgets the silent session", TIMEOUT, || async {
        sessions_on(&server, &doc).await == 1
    })
    .await;
    assert_eq!(server.metric("quire_connections", "").await, 1.0);

    // The client that answered its pings, silent otherwise for longer than
    // the deadline, is still there and in sync.
    let mut writer = TestClient::connect(&url).await;
    writer.wait_synced().await;
    writer.edit(|t| t.get_or_insert_text("t").insert(t, 0, "hello"));
    idle.wait_text("t", "hello").await;
    assert_eq!(idle.snapshot().closed, None);
}
