//! The smaller items of issue 12, through real requests on real sockets:
//! headers of the HTML shell and of every route class, `/metrics` behind
//! the operator's token, a workspace always keeping an admin, and weak
//! passwords refused. `docs/security.md` maps each to its threat.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn send(req: reqwest::RequestBuilder) -> reqwest::Response {
    within("request", req.send()).await.expect("request")
}

async fn json_body(resp: reqwest::Response) -> Value {
    resp.json().await.expect("a JSON body")
}

#[tokio::test]
async fn every_html_path_carries_the_csp_and_is_revalidated() {
    let server = TestServer::start().await;
    let mut policies = Vec::new();
    // The root, the file itself, app routes (signed out and in).
    for path in ["/", "/index.html", "/d/some-doc", "/signin", "/shared"] {
        let resp = send(http_client().get(server.http(path))).await;
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        let h = resp.headers();
        assert!(
            h["content-type"].to_str().unwrap().starts_with("text/html"),
            "{path}"
        );
        assert_eq!(h["cache-control"], "no-cache", "{path}");
        let csp = h
            .get("content-security-policy")
            .unwrap_or_else(|| panic!("{path} has no CSP"))
            .to_str()
            .unwrap()
            .to_string();
        for directive in [
            "script-src 'self'",
            "frame-ancestors 'none'",
            "object-src 'none'",
        ] {
            assert!(csp.contains(directive), "{path}: {csp}");
        }
        policies.push(csp);
    }
    policies.dedup();
    assert_eq!(policies.len(), 1, "one policy for every HTML path");
}

#[tokio::test]
async fn every_route_class_forbids_framing() {
    // One sign-in or sign-up per address (the owner's sign-up takes it), so
    // that a rate-limited answer is among the responses checked.
    let server = TestServer::start_with(|c| {
        c.auth_burst = 1;
        c.auth_period_ms = 60_000;
    })
    .await;
    let owner = server.owner.clone();
    let doc = owner.create_document("framed").await;
    let mut checked: Vec<(String, reqwest::Response)> = Vec::new();
    let get = |path: &str| http_client().get(server.http(path));
    for (what, req, status) in [
        // API: success, and each kind of error.
        ("api", owner.request(Method::GET, "/api/documents"), 200),
        ("api 401", get("/api/me"), 401),
        (
            "api 404",
            owner.request(Method::GET, "/api/documents/none"),
            404,
        ),
        (
            "api 400",
            owner
                .request(Method::PATCH, &format!("/api/documents/{doc}"))
                .json(&json!({ "title": "" })),
            400,
        ),
        (
            "api 403 (cross-site)",
            http_client()
                .post(server.http("/api/documents"))
                .header("Cookie", &owner.access)
                .header("Origin", "https://evil.example"),
            403,
        ),
        ("api 405", owner.request(Method::PUT, "/api/documents"), 405),
        (
            "api 429",
            http_client()
                .post(server.http("/api/auth/login"))
                .json(&json!({ "email": OWNER_EMAIL, "password": PASSWORD })),
            429,
        ),
        // Operations.
        ("health", get("/healthz"), 200),
        ("readiness", get("/readyz"), 200),
        ("metrics", get("/metrics").bearer_auth(METRICS_TOKEN), 200),
        ("metrics 401", get("/metrics"), 401),
        // HTML and assets.
        ("html", get("/"), 200),
        ("html file", get("/index.html"), 200),
        ("html route", get("/d/framed"), 200),
        ("asset 404", get("/assets/missing-0000.js"), 404),
        // The socket route, without an upgrade and with a refused one.
        ("ws without upgrade", get("/ws/framed"), 400),
        (
            "ws refused",
            get("/ws/framed")
                .header("Connection", "Upgrade")
                .header("Upgrade", "websocket")
                .header("Sec-WebSocket-Version", "13")
                .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
                .header("Origin", "https://evil.example"),
            403,
        ),
    ] {
        let resp = send(req).await;
        assert_eq!(resp.status().as_u16(), status, "{what}");
        checked.push((what.to_string(), resp));
    }
    // A hashed asset, where the web app is built (`make test` builds it).
    let shell = send(get("/")).await.text().await.unwrap();
    if let Some(start) = shell.find("/assets/") {
        let end = shell[start..].find('"').unwrap() + start;
        let resp = send(get(&shell[start..end])).await;
        assert_eq!(resp.status(), StatusCode::OK);
        checked.push(("asset".into(), resp));
    }
    for (what, resp) in &checked {
        assert_eq!(
            resp.headers()
                .get("x-frame-options")
                .unwrap_or_else(|| panic!("{what}: no X-Frame-Options")),
            "DENY",
            "{what}"
        );
    }
    // The upgrade's own answer too.
    let (_ws, resp) = within(
        "upgrade",
        tokio_tungstenite::connect_async(owner.ws_request(&server.ws_url(&doc))),
    )
    .await
    .expect("upgrade");
    assert_eq!(resp.headers()["x-frame-options"], "DENY");

    // A node that sheds load answers without its router: that 503 too.
    let full = TestServer::start_with(|c| {
        c.max_connections = 1;
        c.http_header_timeout_secs = 60;
    })
    .await;
    let conns = full.state.connections.clone();
    wait_for("the owner's connections to close", || conns.open() == 0).await;
    let _held = tokio::net::TcpStream::connect(full.addr).await.unwrap();
    wait_for("the node to be full", || conns.open() == 1).await;
    let shed = send(http_client().get(full.http("/healthz"))).await;
    assert_eq!(shed.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(shed.headers()["x-frame-options"], "DENY");
}

#[tokio::test]
async fn metrics_answer_only_the_operators_token() {
    let server = TestServer::start().await;
    let metrics = || http_client().get(server.http("/metrics"));
    let wrong = "quire-test-metrics-tokeN";
    for (what, req) in [
        ("no credentials", metrics()),
        (
            "a wrong token of the same length",
            metrics().bearer_auth(wrong),
        ),
        ("a prefix", metrics().bearer_auth(&METRICS_TOKEN[..10])),
        (
            "basic auth",
            metrics().basic_auth("operator", Some(METRICS_TOKEN)),
        ),
        (
            "a signed-in user",
            server.owner.request(Method::GET, "/metrics"),
        ),
    ] {
        let resp = send(req).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{what}");
        assert_eq!(
            resp.headers()["www-authenticate"],
            "Bearer realm=\"metrics\""
        );
        let body = json_body(resp).await;
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("bearer token"),
            "{body}"
        );
    }
    let text = send(metrics().bearer_auth(METRICS_TOKEN))
        .await
        .text()
        .await
        .unwrap();
    assert!(text.contains("quire_node_info"), "{text}");

    // No token configured: there is no `/metrics` on this listener.
    let closed = TestServer::start_with(|c| c.metrics_token = None).await;
    for req in [
        http_client().get(closed.http("/metrics")),
        http_client()
            .get(closed.http("/metrics"))
            .bearer_auth(METRICS_TOKEN),
    ] {
        let resp = send(req).await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        assert_eq!(json_body(resp).await["error"]["code"], "not_found");
    }
}

#[tokio::test]
async fn a_workspace_keeps_its_last_admin_and_creating_a_document_always_works() {
    let server = TestServer::start().await;
    let owner = server.owner.clone();
    let me = json_body(send(owner.request(Method::GET, "/api/me")).await).await;
    let personal = me["workspaces"][0]["id"].as_str().unwrap().to_string();
    let create = || {
        owner
            .request(Method::POST, "/api/documents")
            .json(&json!({ "title": "After" }))
    };

    // The sole admin leaving their personal workspace (which used to
    // succeed, and made every document create answer 500 afterwards), or
    // stepping down: refused, with what to do instead.
    let leave = send(owner.request(
        Method::DELETE,
        &format!("/api/workspaces/{personal}/members/{}", owner.id),
    ))
    .await;
    assert_eq!(leave.status(), StatusCode::CONFLICT);
    let body = json_body(leave).await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("make another member admin"),
        "{body}"
    );
    let step_down = send(
        owner
            .request(Method::POST, &format!("/api/workspaces/{personal}/members"))
            .json(&json!({ "email": OWNER_EMAIL, "role": "member" })),
    )
    .await;
    assert_eq!(step_down.status(), StatusCode::CONFLICT);
    let me = json_body(send(owner.request(Method::GET, "/api/me")).await).await;
    assert_eq!(me["workspaces"][0]["role"], "admin");
    assert_eq!(send(create()).await.status(), StatusCode::CREATED);

    // Another admin may still remove them, leaving them in no workspace at
    // all; their next document gets a new personal workspace, not an error.
    let bob = server.user("bob@x.test", "Bob").await;
    let added = send(
        owner
            .request(Method::POST, &format!("/api/workspaces/{personal}/members"))
            .json(&json!({ "email": "bob@x.test", "role": "admin" })),
    )
    .await;
    assert_eq!(added.status(), StatusCode::OK);
    let removed = send(bob.request(
        Method::DELETE,
        &format!("/api/workspaces/{personal}/members/{}", owner.id),
    ))
    .await;
    assert_eq!(removed.status(), StatusCode::NO_CONTENT);
    let me = json_body(send(owner.request(Method::GET, "/api/me")).await).await;
    assert_eq!(me["workspaces"], json!([]));
    let made = send(create()).await;
    assert_eq!(made.status(), StatusCode::CREATED);
    let made = json_body(made).await;
    let me = json_body(send(owner.request(Method::GET, "/api/me")).await).await;
    assert_eq!(me["workspaces"].as_array().unwrap().len(), 1);
    assert_eq!(me["workspaces"][0]["role"], "admin");
    assert_eq!(me["workspaces"][0]["name"], "Owner's workspace");
    assert_eq!(made["document"]["workspace"], me["workspaces"][0]["id"]);
    assert_ne!(made["document"]["workspace"], personal.as_str());
    // Bob is now that workspace's only admin, and stays.
    let leave = send(bob.request(
        Method::DELETE,
        &format!("/api/workspaces/{personal}/members/{}", bob.id),
    ))
    .await;
    assert_eq!(leave.status(), StatusCode::CONFLICT);
}

#[tokio::test]
async fn weak_passwords_are_refused_at_sign_up_with_advice() {
    let server = TestServer::start_with(|c| c.auth_burst = 50).await;
    let signup = |password: &str| {
        http_client()
            .post(server.http("/api/auth/signup"))
            .json(&json!({ "email": "ada@x.test", "password": password, "name": "Ada Lovelace" }))
    };
    for (password, advice) in [
        ("password", "This is a top-10 common password."),
        (
            "Password123!",
            "This is similar to a commonly used password.",
        ),
        ("qwertyuiop", "This is a top-100 common password."),
        // Built from the account's own email and name.
        ("ada@x.test", "Add another word or two."),
        ("adalovelace", "Add another word or two."),
    ] {
        let resp = send(signup(password)).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{password:?}");
        let body = json_body(resp).await;
        assert_eq!(body["error"]["code"], "bad_request");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with("This password is too easy to guess."),
            "{message}"
        );
        assert!(message.contains(advice), "{password:?}: {message}");
    }
    // Nothing was created: the address is still free for a strong password.
    assert_eq!(send(signup(PASSWORD)).await.status(), StatusCode::CREATED);

    // `quire user add` applies the same rule.
    let dir = TestDataDir::new();
    let add = |password: &str| {
        use std::io::Write;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_quire"))
            .args([
                "user",
                "add",
                "--email",
                "ops@x.test",
                "--name",
                "Ops",
                "--data-dir",
            ])
            .arg(dir.path())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
        child.wait_with_output().unwrap()
    };
    let weak = add("password");
    assert!(!weak.status.success());
    let stderr = String::from_utf8_lossy(&weak.stderr);
    assert!(stderr.contains("top-10 common password"), "{stderr}");
    let strong = add(PASSWORD);
    assert!(
        strong.status.success(),
        "the weak attempt created nothing: {}",
        String::from_utf8_lossy(&strong.stderr)
    );
}
