//! WebSocket sync through a real server and real sockets.

mod common;

use common::*;
use futures_util::SinkExt;
use quire_protocol::encode_update;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use yrs::{Array, ReadTxn, Text, Transact, WriteTxn};

#[tokio::test]
async fn two_clients_converge_on_concurrent_edits() {
    let server = TestServer::start().await;
    let url = server.ws_url("converge");
    let mut a = TestClient::connect(&url).await;
    let mut b = TestClient::connect(&url).await;
    a.wait_synced().await;
    b.wait_synced().await;
    for i in 0..20 {
        a.edit(|t| t.get_or_insert_text("t").insert(t, 0, &format!("a{i} ")));
        b.edit(|t| t.get_or_insert_text("t").insert(t, 0, &format!("b{i} ")));
    }
    wait_for("both replicas converge", || {
        a.text("t") == b.text("t")
            && a.text("t").len() == b.text("t").len()
            && a.text("t").matches(' ').count() == 40
    })
    .await;
    assert_eq!(a.state_vector(), b.state_vector());
    let text = a.text("t");
    assert!(text.contains("a19 ") && text.contains("b0 "));
}

#[tokio::test]
async fn a_late_joiner_gets_the_full_state() {
    let server = TestServer::start().await;
    let url = server.ws_url("late");
    let mut a = TestClient::connect(&format!("{url}?quire=1")).await;
    a.wait_synced().await;
    for i in 0..50 {
        a.edit(|t| {
            let len = t.get_or_insert_text("t").len(t);
            t.get_or_insert_text("t").insert(t, len, &i.to_string())
        });
    }
    a.wait_acked(51).await; // 50 updates + the step 2 answering the server
    let mut late = TestClient::connect(&url).await;
    late.wait_synced().await;
    assert_eq!(late.text("t"), a.text("t"));
}

#[tokio::test]
async fn durable_acks_count_update_messages_and_stock_clients_never_see_them() {
    let server = TestServer::start().await;
    let mut acked = TestClient::connect(&format!("{}?quire=1", server.ws_url("acks"))).await;
    let mut stock = TestClient::connect(&server.ws_url("acks")).await;
    acked.wait_synced().await;
    stock.wait_synced().await;
    acked.wait_acked(1).await; // its sync step 2
    for i in 0..10 {
        acked.edit(|t| {
            t.get_or_insert_array("a").push_back(t, i as i64);
        });
        stock.edit(|t| {
            t.get_or_insert_array("a").push_back(t, -(i as i64));
        });
    }
    acked.wait_acked(11).await;
    wait_for("stock client sees all", || {
        let txn = stock.doc.transact();
        txn.get_array("a").map(|a| a.len(&txn)) == Some(20)
    })
    .await;
    assert!(
        stock.snapshot().message_types.iter().all(|t| *t <= 3),
        "stock client got {:?}",
        stock.snapshot().message_types
    );
    // What was acknowledged is in the store.
    let stored = server
        .state
        .hub
        .store()
        .load(&"acks".parse().unwrap())
        .await
        .unwrap();
    assert!(stored.tail.len() >= 20 || stored.snapshot.is_some());
}

#[tokio::test]
async fn awareness_propagates_including_the_sender_and_is_removed_on_close() {
    let server = TestServer::start().await;
    let url = server.ws_url("presence");
    let mut a = TestClient::connect(&format!("{url}?quire=1")).await;
    let mut b = TestClient::connect(&url).await;
    a.wait_synced().await;
    b.wait_synced().await;
    a.edit(|t| t.get_or_insert_text("t").insert(t, 0, "hi"));
    a.wait_acked(2).await; // the document now exists in the store
    a.set_awareness(
        1001,
        1,
        r##"{"user":{"name":"Ada","color":"#f00"},"tab":"a"}"##,
    );
    within(
        "b sees Ada",
        b.state.wait_for(|s| s.awareness.contains_key(&1001)),
    )
    .await
    .unwrap();
    // The sender hears its own state back (stock clients rely on it).
    within(
        "a hears itself",
        a.state.wait_for(|s| s.awareness.contains_key(&1001)),
    )
    .await
    .unwrap();
    // The documents API shows who is present: the account, whatever name
    // the state claimed (tests/presence.rs has the rest).
    let list: serde_json::Value = reqwest_get(&server.http("/api/documents/presence")).await;
    assert_eq!(list["document"]["present"][0]["name"], "Owner", "{list}");
    // b may not spoof a's client id.
    b.set_awareness(1001, 5, r#"{"user":{"name":"Mallory"},"tab":"b"}"#);
    b.set_awareness(2002, 1, r#"{"user":{"name":"Bo"}}"#);
    within(
        "a sees Bo",
        a.state.wait_for(|s| s.awareness.contains_key(&2002)),
    )
    .await
    .unwrap();
    assert!(a.snapshot().awareness[&1001].contains(r#""tab":"a""#));
    // Closing a removes Ada for b without any timeout.
    a.close();
    drop(a);
    within(
        "Ada removed",
        b.state.wait_for(|s| !s.awareness.contains_key(&1001)),
    )
    .await
    .unwrap();
    // Query awareness answers with the current states.
    b.send_raw(bytes::Bytes::from_static(&[3]));
    let before = b.snapshot().frames_received;
    within(
        "query answered",
        b.state.wait_for(|s| s.frames_received > before),
    )
    .await
    .unwrap();
}

async fn reqwest_get(url: &str) -> serde_json::Value {
    // A tiny HTTP/1.1 GET over a TcpStream keeps the test free of an HTTP client.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let u = url.strip_prefix("http://").unwrap();
    let (host, path) = u.split_at(u.find('/').unwrap());
    let mut s = tokio::net::TcpStream::connect(host).await.unwrap();
    let owner = owner_of(host.parse().unwrap()).expect("the server's owner");
    s.write_all(
        format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nCookie: {}\r\nConnection: close\r\n\r\n",
            owner.access
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).await.unwrap();
    let body = buf.split("\r\n\r\n").nth(1).unwrap();
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {buf}"))
}

#[tokio::test]
async fn everything_survives_a_restart() {
    let server = TestServer::start().await;
    let dir = server.data_dir.clone();
    let mut a = TestClient::connect(&format!("{}?quire=1", server.ws_url("restart"))).await;
    a.wait_synced().await;
    for i in 0..30 {
        a.edit(|t| t.get_or_insert_text("t").insert(t, 0, &format!("{i},")));
    }
    a.wait_acked(31).await;
    let expected = a.text("t");
    drop(a);
    let guard = server.stop().await;
    let server = TestServer::start_in(&dir, |_| {}).await;
    let mut b = TestClient::connect(&server.ws_url("restart")).await;
    b.wait_synced().await;
    assert_eq!(b.text("t"), expected);
    drop(guard);
}

#[tokio::test]
async fn graceful_shutdown_says_going_away_and_keeps_what_was_sent() {
    let server = TestServer::start().await;
    let dir = server.data_dir.clone();
    let mut a = TestClient::connect(&server.ws_url("bye")).await;
    a.wait_synced().await;
    a.edit(|t| t.get_or_insert_text("t").insert(t, 0, "kept"));
    // Wait until the server has the update (b sees it), then stop.
    let mut b = TestClient::connect(&server.ws_url("bye")).await;
    b.wait_text("t", "kept").await;
    let guard = server.stop().await;
    let (code, _) = a.wait_closed().await;
    assert_eq!(code, 1001);
    let server = TestServer::start_in(&dir, |_| {}).await;
    let mut c = TestClient::connect(&server.ws_url("bye")).await;
    c.wait_text("t", "kept").await;
    drop(guard);
}

#[tokio::test]
async fn a_second_server_on_the_same_data_folder_is_refused() {
    if use_postgres() {
        return; // PostgreSQL nodes have the single-node claim instead.
    }
    let server = TestServer::start().await;
    let dir = server.data_dir.clone();
    let mut config = quire_server::ServeConfig::defaults();
    config.data_dir = dir.clone();
    let err = quire_server::AppState::open(config)
        .await
        .err()
        .expect("a second server on the folder is refused");
    assert!(
        err.to_string().contains("another `quire serve`"),
        "unclear error: {err:#}"
    );
    // The lock goes with the server that held it.
    let guard = server.stop().await;
    let server = TestServer::start_in(&dir, |_| {}).await;
    drop(server);
    drop(guard);
}

#[tokio::test]
async fn compaction_keeps_the_exact_state() {
    let server = TestServer::start_with(|c| c.compact_after_updates = 25).await;
    let dir = server.data_dir.clone();
    let mut a = TestClient::connect(&format!("{}?quire=1", server.ws_url("compact"))).await;
    a.wait_synced().await;
    for i in 0..200 {
        a.edit(|t| {
            let text = t.get_or_insert_text("t");
            if i % 7 == 3 {
                text.remove_range(t, 0, 1);
            } else {
                text.insert(t, 0, &format!("{}", i % 10));
            }
        });
    }
    a.wait_acked(201).await;
    let expected = a.text("t");
    let store = server.state.hub.store().clone();
    let id: quire_types::DocId = "compact".parse().unwrap();
    wait_for_async("a snapshot exists", || {
        let store = store.clone();
        let id = id.clone();
        async move { store.load(&id).await.unwrap().snapshot.is_some() }
    })
    .await;
    drop(a);
    let guard = server.stop().await;
    let stored = open_store(&dir).await;
    let loaded = stored.load(&id).await.unwrap();
    assert!(loaded.snapshot.is_some());
    assert!(loaded.tail.len() < 200, "the log was compacted");
    drop(stored);
    let server = TestServer::start_in(&dir, |_| {}).await;
    let mut b = TestClient::connect(&server.ws_url("compact")).await;
    b.wait_synced().await;
    assert_eq!(b.text("t"), expected);
    drop(guard);
}

async fn wait_for_async<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while !cond().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn bad_frames_close_only_their_own_socket() {
    let server = TestServer::start_with(|c| c.max_frame_bytes = 64 * 1024).await;
    let url = server.ws_url("bad");
    let mut good = TestClient::connect(&url).await;
    let mut watcher = TestClient::connect(&url).await;
    good.wait_synced().await;
    watcher.wait_synced().await;
    good.edit(|t| t.get_or_insert_text("t").insert(t, 0, "before "));
    watcher.wait_text("t", "before ").await;

    let cases: Vec<(&str, WsMessage, u16)> = vec![
        (
            "unknown message type",
            WsMessage::Binary(vec![42u8, 0].into()),
            4400,
        ),
        (
            "truncated sync",
            WsMessage::Binary(vec![0u8, 2, 200].into()),
            4400,
        ),
        (
            "undecodable update",
            WsMessage::Binary(encode_update(&[0xff, 0xff, 0xff, 0x01])),
            4400,
        ),
        ("text frame", WsMessage::Text("hello".into()), 4400),
        (
            "oversized frame",
            WsMessage::Binary(vec![0u8; 100 * 1024].into()),
            1009,
        ),
    ];
    for (what, frame, code) in cases {
        let mut raw = raw_socket(&url).await;
        raw.send(frame).await.unwrap();
        let (got, reason) = expect_close(&mut raw).await;
        assert_eq!(got, code, "{what}: closed with {got} {reason:?}");
        assert!(!reason.is_empty(), "{what}: a reason is given");
    }
    // The document and its other sockets go on.
    good.edit(|t| {
        let text = t.get_or_insert_text("t");
        let len = text.len(t);
        text.insert(t, len, "after")
    });
    watcher.wait_text("t", "before after").await;
    assert!(good.snapshot().closed.is_none());
    // Invalid document ids are refused before the upgrade.
    let err = tokio_tungstenite::connect_async(server.ws_url("bad%2Fid"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("400"), "{err}");
}

#[tokio::test]
async fn a_slow_reader_is_closed_not_silently_starved() {
    let server = TestServer::start_with(|c| c.outgoing_queue = 16).await;
    let url = server.ws_url("slow");
    let mut writer = TestClient::connect(&format!("{url}?quire=1")).await;
    writer.wait_synced().await;
    // A socket that never reads after the handshake.
    let mut slow = raw_socket(&url).await;
    let chunk = "x".repeat(60 * 1024);
    let mut n: u64 = 0;
    // Enough data to fill the kernel buffers and then the 16-frame queue.
    while n < 400 {
        writer.edit(|t| t.get_or_insert_text("t").insert(t, 0, &chunk));
        n += 1;
        if n.is_multiple_of(50) {
            writer.wait_acked(n + 1).await;
        }
    }
    writer.wait_acked(401).await;
    // Now read: after whatever was queued, the socket must end with 4429.
    let (code, reason) = expect_close(&mut slow).await;
    assert_eq!(code, 4429, "{reason}");
    // The writer is unaffected.
    assert!(writer.snapshot().closed.is_none());
}

#[tokio::test]
async fn the_document_size_limit_refuses_growth_past_it() {
    let server = TestServer::start_with(|c| c.max_document_bytes = 10_000).await;
    let url = server.ws_url("big");
    let mut a = TestClient::connect(&url).await;
    a.wait_synced().await;
    a.edit(|t| t.get_or_insert_text("t").insert(t, 0, &"y".repeat(6_000)));
    a.edit(|t| t.get_or_insert_text("t").insert(t, 0, &"z".repeat(6_000)));
    let (code, _) = a.wait_closed().await;
    assert_eq!(code, 4413);
    let mut b = TestClient::connect(&url).await;
    b.wait_synced().await;
    assert_eq!(
        b.text("t").len(),
        6_000,
        "the refused update was not applied"
    );
}
