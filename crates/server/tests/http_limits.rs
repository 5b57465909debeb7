//! HTTP-level limits through real sockets (issue 12): request-head and
//! keep-alive timeouts, connection caps per client address and per node
//! with load shedding, `X-Forwarded-For` only from trusted proxies, request
//! body limits, bounded shutdown, and the limits published in `/metrics`.
//!
//! Most tests run the real accept loop in-process (`TestServer`, which calls
//! `quire_server::serve`); one starts the `quire` binary to check that its
//! flags reach that loop. "Refused at once" is told apart from "timed out"
//! by giving those servers a header timeout (60 s) longer than any wait here.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::connect_async;

const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
/// A second client address: still loopback (Linux routes all of 127/8 to
/// `lo`), so the test leaves the machine no more than with 127.0.0.1.
const OTHER_CLIENT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));

async fn connect(addr: SocketAddr) -> TcpStream {
    within("tcp connect", TcpStream::connect(addr))
        .await
        .unwrap()
}

/// Reads until the server closes the connection (EOF or reset); returns
/// what it sent.
async fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return all,
            Ok(n) => all.extend_from_slice(&buf[..n]),
        }
    }
}

/// Reads one HTTP/1.1 response with a `Content-Length` body: status and body.
async fn read_response(stream: &mut TcpStream) -> (u16, String, Vec<u8>) {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&data[..end]).to_string();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            if data.len() >= end + 4 + len {
                let status = head.split(' ').nth(1).unwrap().parse().unwrap();
                return (status, head, data[end + 4..end + 4 + len].to_vec());
            }
        }
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "connection closed mid-response: {data:?}");
        data.extend_from_slice(&buf[..n]);
    }
}

fn error_code(body: &[u8]) -> String {
    let v: Value = serde_json::from_slice(body)
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(body)));
    v["error"]["code"].as_str().unwrap_or_default().to_string()
}

/// The server's own count of the limit's refusals (`quire_http_refused_total`).
fn refused(server: &TestServer, limit: &str) -> u64 {
    let needle = format!("quire_http_refused_total{{limit=\"{limit}\"}} ");
    server
        .state
        .metrics
        .render()
        .lines()
        .find_map(|l| l.strip_prefix(&needle)?.trim().parse().ok())
        .unwrap_or(0)
}

async fn no_connections_open(server: &TestServer) {
    let c = server.state.connections.clone();
    wait_for("earlier connections to close", || c.open() == 0).await;
}

#[tokio::test]
async fn partial_request_headers_are_dropped_after_the_header_timeout() {
    let server = TestServer::start_with(|c| c.http_header_timeout_secs = 1).await;
    let mut stream = connect(server.addr).await;
    let started = Instant::now();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: quire\r\nX-Slow: ")
        .await
        .unwrap();
    let (mut rd, mut wr) = stream.split();
    // One more header byte every 200 ms: progress must not buy more time.
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let mut buf = [0u8; 1024];
    let mut closed = false;
    for _ in 0..50 {
        tokio::select! {
            r = rd.read(&mut buf) => match r {
                Ok(0) | Err(_) => { closed = true; break; }
                Ok(n) => panic!("answered a partial head: {:?}", String::from_utf8_lossy(&buf[..n])),
            },
            _ = tick.tick() => {
                if wr.write_all(b"a").await.is_err() {
                    closed = true;
                    break;
                }
            }
        }
    }
    let elapsed = started.elapsed();
    assert!(closed, "a trickled request head was held for 10 s");
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(5),
        "closed after {elapsed:?}, expected about 1 s"
    );
    // Other clients are served as usual.
    let ok = http_client()
        .get(server.http("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed_after_the_header_timeout() {
    let server = TestServer::start_with(|c| c.http_header_timeout_secs = 1).await;
    let mut stream = connect(server.addr).await;
    for _ in 0..2 {
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: quire\r\n\r\n")
            .await
            .unwrap();
        let (status, head, _) = within("response", read_response(&mut stream)).await;
        assert_eq!(status, 200);
        assert!(!head.to_ascii_lowercase().contains("connection: close"));
    }
    let idle_since = Instant::now();
    let rest = within(
        "the idle connection to be closed",
        read_to_close(&mut stream),
    )
    .await;
    let idle = idle_since.elapsed();
    assert!(rest.is_empty(), "unexpected bytes: {rest:?}");
    assert!(
        idle >= Duration::from_millis(900) && idle < Duration::from_secs(5),
        "closed after {idle:?} idle, expected about 1 s"
    );
}

#[tokio::test]
async fn a_slowloris_from_one_address_is_capped_and_others_are_served_at_once() {
    const CAP: usize = 8;
    let server = TestServer::start_with(|c| {
        c.max_connections_per_address = CAP as u32;
        c.http_header_timeout_secs = 60;
    })
    .await;
    no_connections_open(&server).await;
    let mut slow = Vec::new();
    for _ in 0..CAP {
        let mut s = connect(server.addr).await;
        s.write_all(b"GET / HTTP/1.1\r\nHost: quire\r\n")
            .await
            .unwrap();
        slow.push(s);
    }
    let conns = server.state.connections.clone();
    wait_for("the slow connections to be held", || {
        conns.open_from(LOOPBACK) == CAP
    })
    .await;
    // Past the cap: closed at once, long before any timeout could.
    for _ in 0..4 {
        let mut s = connect(server.addr).await;
        let _ = s
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: quire\r\n\r\n")
            .await;
        let answer = within("refused at once", read_to_close(&mut s)).await;
        assert!(answer.is_empty(), "answered past the cap: {answer:?}");
    }
    assert_eq!(refused(&server, "max_connections_per_address"), 4);
    assert_eq!(conns.open_from(LOOPBACK), CAP, "the capped ones stay");
    // Another address is served at once.
    let other = reqwest::Client::builder()
        .local_address(OTHER_CLIENT)
        .build()
        .unwrap();
    let resp = within("another client", other.get(server.http("/healthz")).send())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    // And the capped address gets its places back as its connections go.
    drop(slow);
    wait_for("the slow connections to be released", || {
        conns.open_from(LOOPBACK) == 0
    })
    .await;
    let resp = http_client()
        .get(server.http("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn over_max_connections_requests_get_503_and_upgrades_are_refused_until_load_drops() {
    const MAX: usize = 4;
    let server = TestServer::start_with(|c| {
        c.max_connections = MAX as u32;
        c.http_header_timeout_secs = 60;
    })
    .await;
    let doc = server.owner.create_document("crowded").await;
    no_connections_open(&server).await;
    let mut idle = Vec::new();
    for _ in 0..MAX {
        idle.push(connect(server.addr).await);
    }
    let conns = server.state.connections.clone();
    wait_for("the node to be full", || conns.open() == MAX).await;

    let resp = within(
        "a request to a full node",
        server
            .owner
            .request(reqwest::Method::GET, "/api/documents")
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(resp.headers()["retry-after"], "5");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "overloaded", "{body}");

    let upgrade = server.owner.ws_request(&server.ws_url(&doc));
    assert_eq!(refused_status(upgrade).await, 503);
    assert_eq!(refused(&server, "max_connections"), 2);
    assert_eq!(conns.open(), MAX, "those connected are untouched");

    drop(idle);
    wait_for("load to drop", || conns.open() == 0).await;
    let resp = server
        .owner
        .request(reqwest::Method::GET, "/api/documents")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut client = TestClient::connect(&server.ws_url(&doc)).await;
    client.wait_synced().await;
}

/// Sign-in attempts with a wrong password from `xff` (if any); each uses a
/// fresh email, so that no account lock interferes with the per-address
/// limit.
async fn sign_in_status(server: &TestServer, n: usize, xff: Option<&str>) -> StatusCode {
    let mut req = http_client()
        .post(server.http("/api/auth/login"))
        .header("Origin", server.owner.origin())
        .json(&json!({ "email": format!("nobody{n}@quire.test"), "password": "wrong" }));
    if let Some(xff) = xff {
        req = req.header("X-Forwarded-For", xff);
    }
    req.send().await.unwrap().status()
}

#[tokio::test]
async fn x_forwarded_for_is_ignored_from_untrusted_peers() {
    let server = TestServer::start_with(|c| {
        c.auth_burst = 3;
        c.auth_period_ms = 3_600_000;
    })
    .await;
    // The owner's sign-up took one of 127.0.0.1's three.
    assert_eq!(
        sign_in_status(&server, 1, Some("203.0.113.1")).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        sign_in_status(&server, 2, Some("203.0.113.2")).await,
        StatusCode::UNAUTHORIZED
    );
    // A new X-Forwarded-For does not buy a new budget.
    for (n, xff) in [(3, Some("203.0.113.3")), (4, None)] {
        assert_eq!(
            sign_in_status(&server, n, xff).await,
            StatusCode::TOO_MANY_REQUESTS
        );
    }
}

#[tokio::test]
async fn x_forwarded_for_is_honoured_from_a_trusted_proxy() {
    let server = TestServer::start_with(|c| {
        c.auth_burst = 2;
        c.auth_period_ms = 3_600_000;
        c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    let client = "203.0.113.7";
    for n in 0..2 {
        assert_eq!(
            sign_in_status(&server, n, Some(client)).await,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        sign_in_status(&server, 2, Some(client)).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // What the client prepends itself is not believed...
    assert_eq!(
        sign_in_status(&server, 3, Some("198.51.100.9, 203.0.113.7")).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // ...while another client behind the same proxy has its own budget.
    assert_eq!(
        sign_in_status(&server, 4, Some("203.0.113.8")).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_cap_applies_per_forwarded_client() {
    let server = TestServer::start_with(|c| {
        c.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
        c.max_connections_per_address = 2;
    })
    .await;
    let doc = server.owner.create_document("proxied").await;
    let url = server.ws_url(&doc);
    let via_proxy = |xff: &str| {
        let mut req = server.owner.ws_request(&url);
        req.headers_mut()
            .insert("x-forwarded-for", xff.parse().unwrap());
        req
    };
    let a = "203.0.113.7";
    let first = within("upgrade", connect_async(via_proxy(a)))
        .await
        .unwrap()
        .0;
    let _second = within("upgrade", connect_async(via_proxy(a)))
        .await
        .unwrap()
        .0;
    let conns = server.state.connections.clone();
    let a_ip: IpAddr = a.parse().unwrap();
    assert_eq!(
        conns.open_from(a_ip),
        2,
        "an open WebSocket keeps its place"
    );
    assert_eq!(refused_status(via_proxy(a)).await, 503);
    // A plain request of that client is refused the same way, in JSON.
    let resp = http_client()
        .get(server.http("/healthz"))
        .header("X-Forwarded-For", a)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(resp.headers()["retry-after"], "5");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_connections", "{body}");
    // Other clients of the proxy, and the proxy itself (already holding
    // more than two connections), are served.
    let _other = within("upgrade", connect_async(via_proxy("203.0.113.8")))
        .await
        .unwrap()
        .0;
    assert!(conns.open_from(LOOPBACK) == 0 && conns.open() >= 3);
    // Closing a socket gives its client's place back.
    drop(first);
    wait_for("the closed socket's place", || conns.open_from(a_ip) == 1).await;
    let _third = within("upgrade", connect_async(via_proxy(a)))
        .await
        .unwrap()
        .0;
    assert_eq!(refused(&server, "max_connections_per_address"), 2);
}

#[tokio::test]
async fn oversized_bodies_get_a_json_413_on_every_route_and_change_nothing() {
    let server = TestServer::start_with(|c| c.max_request_body_bytes = 1024).await;
    let owner = &server.owner;
    let big_title = "x".repeat(2000);

    // A JSON route, with the length declared.
    let resp = owner
        .request(reqwest::Method::POST, "/api/documents")
        .json(&json!({ "id": "too-big", "title": big_title }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        error_code(&resp.bytes().await.unwrap()),
        "payload_too_large"
    );

    // The same, chunked: no length up front, cut off while read.
    let body = json!({ "id": "too-big", "title": big_title }).to_string();
    let mut raw = format!(
        "POST /api/documents HTTP/1.1\r\nHost: {addr}\r\nOrigin: http://{addr}\r\n\
         Cookie: {cookie}\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\n\r\n",
        addr = server.addr,
        cookie = owner.access
    )
    .into_bytes();
    for chunk in body.as_bytes().chunks(256) {
        raw.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        raw.extend_from_slice(chunk);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    let mut stream = connect(server.addr).await;
    stream.write_all(&raw).await.unwrap();
    let (status, _, body) = within("chunked response", read_response(&mut stream)).await;
    assert_eq!(status, 413);
    assert_eq!(error_code(&body), "payload_too_large");

    // A route that takes no body at all.
    let resp = owner
        .request(reqwest::Method::GET, "/api/documents")
        .body(vec![b'a'; 2000])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        error_code(&resp.bytes().await.unwrap()),
        "payload_too_large"
    );

    // Under the limit, the same route works; nothing refused was created.
    let resp = owner
        .request(reqwest::Method::POST, "/api/documents")
        .json(&json!({ "id": "small", "title": "small" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let list: Value = owner
        .request(reqwest::Method::GET, "/api/documents")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let text = list.to_string();
    assert!(
        text.contains("\"small\"") && !text.contains("too-big"),
        "{text}"
    );
    assert_eq!(refused(&server, "max_request_body_bytes"), 3);
}

#[tokio::test]
async fn a_stalled_request_body_is_answered_408_after_the_timeout() {
    let server = TestServer::start_with(|c| c.http_header_timeout_secs = 1).await;
    let mut stream = connect(server.addr).await;
    let head = format!(
        "POST /api/documents HTTP/1.1\r\nHost: {addr}\r\nOrigin: http://{addr}\r\n\
         Cookie: {cookie}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n\
         {{\"title\":",
        addr = server.addr,
        cookie = server.owner.access
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let (status, _, body) =
        within("an answer to the stalled body", read_response(&mut stream)).await;
    assert_eq!(status, 408, "{}", String::from_utf8_lossy(&body));
    assert_eq!(error_code(&body), "request_timeout");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn shutdown_does_not_wait_for_a_stalled_request() {
    let server = TestServer::start_with(|c| c.http_header_timeout_secs = 60).await;
    no_connections_open(&server).await;
    let mut stalled = connect(server.addr).await;
    stalled
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: quire\r\n")
        .await
        .unwrap();
    let conns = server.state.connections.clone();
    wait_for("the stalled connection", || conns.open() == 1).await;
    let started = Instant::now();
    // `stop` itself fails the test if shutdown takes longer than 20 s.
    let _data = server.stop().await;
    assert!(started.elapsed() < Duration::from_secs(15));
    let rest = within(
        "the stalled connection to be closed",
        read_to_close(&mut stalled),
    )
    .await;
    assert!(rest.is_empty());
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn the_binary_publishes_its_limits_and_enforces_them() {
    let dir = TestDataDir::new();
    let mut child = Command::new(env!("CARGO_BIN_EXE_quire"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--max-connections-per-address",
            "3",
            "--max-connections",
            "1234",
            "--data-dir",
        ])
        .arg(dir.path())
        .args(store_args(dir.path()))
        .env("QUIRE_HTTP_HEADER_TIMEOUT_SECS", "60")
        .env("QUIRE_MAX_REQUEST_BODY_BYTES", "4096")
        .env("QUIRE_LOG", "warn")
        .env("QUIRE_METRICS_TOKEN", METRICS_TOKEN)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start quire");
    let addr = announced_addr(&mut child);
    let proc = Proc(child);

    // Three connections, kept alive and served (the first reads the
    // metrics, so no other connection is around to skew the count)...
    let mut held = Vec::new();
    for path in ["/metrics", "/healthz", "/healthz"] {
        let mut s = connect(addr).await;
        let auth = format!("Authorization: Bearer {METRICS_TOKEN}\r\n");
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: quire\r\n{auth}\r\n").as_bytes())
            .await
            .unwrap();
        let (status, _, body) = within("a response", read_response(&mut s)).await;
        assert_eq!(status, 200, "{path}");
        if path == "/metrics" {
            let metrics = String::from_utf8(body).unwrap();
            for expected in [
                "quire_limit{name=\"max_connections\"} 1234",
                "quire_limit{name=\"max_connections_per_address\"} 3",
                "quire_limit{name=\"http_header_timeout_secs\"} 60",
                "quire_limit{name=\"max_request_body_bytes\"} 4096",
            ] {
                assert!(
                    metrics.contains(expected),
                    "{expected} missing from:\n{metrics}"
                );
            }
        }
        held.push(s);
    }
    // ...then the fourth from the same address is closed at once.
    let mut fourth = connect(addr).await;
    let answer = within("refused at once", read_to_close(&mut fourth)).await;
    assert!(answer.is_empty());
    drop(held);
    drop(proc);
}
