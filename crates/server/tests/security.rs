//! Accounts, sessions and access, through real requests and real sockets:
//! the tests `docs/security.md` maps each threat to.

mod common;

use std::time::{Duration, Instant};

use common::*;
use quire_protocol::encode_sync_step2;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use yrs::{Text, Transact, WriteTxn};

async fn status_of(req: reqwest::RequestBuilder) -> StatusCode {
    req.send().await.expect("request").status()
}

async fn json_of(req: reqwest::RequestBuilder) -> Value {
    let resp = req.send().await.expect("request");
    assert!(resp.status().is_success(), "{}", resp.status());
    resp.json().await.expect("json body")
}

fn cookie_header(resp: &reqwest::Response, name: &str) -> String {
    set_cookie(resp, name)
        .unwrap_or_else(|| panic!("no {name} cookie"))
        .1
}

#[tokio::test]
async fn cookies_are_httponly_samesite_and_short_lived() {
    let server = TestServer::start().await;
    let resp = http_client()
        .post(server.http("/api/auth/login"))
        .json(&json!({ "email": OWNER_EMAIL, "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let access = cookie_header(&resp, "quire_access");
    let refresh = cookie_header(&resp, "quire_refresh");
    for c in [&access, &refresh] {
        assert!(c.contains("; HttpOnly"), "{c}");
        assert!(c.contains("; SameSite=Lax"), "{c}");
        assert!(!c.contains("Secure"), "plain http on localhost: {c}");
    }
    assert!(
        access.starts_with("quire_access=") && access.contains("; Path=/;"),
        "{access}"
    );
    let max_age: u64 = access
        .split("Max-Age=")
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        max_age <= 900,
        "access cookie lives at most 15 minutes: {access}"
    );
    assert!(refresh.contains("; Path=/api/auth/refresh;"), "{refresh}");
    // Signing out clears both.
    let out = server
        .owner
        .request(Method::POST, "/api/auth/logout")
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    assert!(cookie_header(&out, "quire_access").contains("Max-Age=0"));
    assert!(cookie_header(&out, "quire_refresh").contains("Max-Age=0"));
}

#[tokio::test]
async fn https_public_url_makes_cookies_secure_and_prefixed() {
    let server = TestServer::start_with(|c| {
        c.public_url = Some("https://docs.example.test".into());
        c.allowed_origins = vec!["http://127.0.0.1".into()];
    })
    .await;
    // The test owner signed in through plain http (the client does not care
    // about Secure); the names prove the prefixes.
    let resp = http_client()
        .post(server.http("/api/auth/signup"))
        .header("Origin", "https://docs.example.test")
        .json(&json!({ "email": "sec@x.test", "password": PASSWORD, "name": "Sec" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let access = cookie_header(&resp, "quire_access");
    let refresh = cookie_header(&resp, "quire_refresh");
    assert!(
        access.starts_with("__Host-quire_access=") && access.contains("; Secure"),
        "{access}"
    );
    assert!(
        refresh.starts_with("__Secure-quire_refresh=") && refresh.contains("; Secure"),
        "{refresh}"
    );
    assert!(
        access.contains("; Path=/;") && !access.contains("Domain"),
        "{access}"
    );
}

#[tokio::test]
async fn signup_validates_and_can_be_disabled() {
    let server = TestServer::start().await;
    let dup = http_client()
        .post(server.http("/api/auth/signup"))
        .json(&json!({ "email": " OWNER@quire.test ", "password": PASSWORD, "name": "Again" }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        dup.status(),
        StatusCode::CONFLICT,
        "emails are case-insensitive"
    );
    let short = http_client()
        .post(server.http("/api/auth/signup"))
        .json(&json!({ "email": "s@x.test", "password": "short", "name": "S" }))
        .send()
        .await
        .unwrap();
    assert_eq!(short.status(), StatusCode::BAD_REQUEST);
    let me = json_of(server.owner.request(Method::GET, "/api/me")).await;
    assert_eq!(me["user"]["email"], OWNER_EMAIL);
    assert!(me["user"]["color"].as_str().unwrap().starts_with('#'));
    assert_eq!(me["workspaces"].as_array().unwrap().len(), 1);
    assert!(me["user"].get("passwordHash").is_none());
    // The profile (name and presence colour) can be changed.
    let updated = json_of(
        server
            .owner
            .request(Method::PATCH, "/api/me")
            .json(&json!({ "name": "Owner Two", "color": "#1E6FD9" })),
    )
    .await;
    assert_eq!(updated["user"]["name"], "Owner Two");
    assert_eq!(updated["user"]["color"], "#1e6fd9");
    let bad = server
        .owner
        .request(Method::PATCH, "/api/me")
        .json(&json!({ "color": "red; background:url(x)" }))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);

    // With sign-up disabled the API refuses it; accounts an operator made
    // (here the test owner, as `quire user add` makes them) sign in.
    let closed = TestServer::start_with(|c| c.disable_signup = true).await;
    let refused = http_client()
        .post(closed.http("/api/auth/signup"))
        .json(&json!({ "email": "new@x.test", "password": PASSWORD, "name": "New" }))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        status_of(closed.owner.request(Method::GET, "/api/me")).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn quire_user_add_creates_an_account_from_the_command_line() {
    use std::io::Write;
    let dir = TestDataDir::new();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_quire"))
        .args([
            "user",
            "add",
            "--email",
            "Ops@X.test",
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
    writeln!(child.stdin.take().unwrap(), "{PASSWORD}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ops@x.test"));
    let server = TestServer::start_in(dir.path(), |c| c.disable_signup = true).await;
    let ops = TestUser::sign_in(server.addr, "ops@x.test").await;
    assert_eq!(
        status_of(ops.request(Method::GET, "/api/me")).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn refresh_rotates_both_tokens() {
    let server = TestServer::start().await;
    let owner = &server.owner;
    let resp = http_client()
        .post(server.http("/api/auth/refresh"))
        .header("Cookie", &owner.refresh)
        .header("Origin", owner.origin())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let (access, _) = set_cookie(&resp, "quire_access").unwrap();
    let (refresh, _) = set_cookie(&resp, "quire_refresh").unwrap();
    assert_ne!(access, owner.access);
    assert_ne!(refresh, owner.refresh);
    let me = http_client()
        .get(server.http("/api/me"))
        .header("Cookie", &access)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::OK);
    // No token in the body: cookies only.
    let body: Value = resp.json().await.unwrap();
    let text = body.to_string();
    assert!(!text.contains(access.split('=').nth(1).unwrap()), "{text}");
}

#[tokio::test]
async fn refresh_token_reuse_revokes_the_family_and_closes_its_sockets() {
    let server = TestServer::start_with(|c| c.refresh_grace_secs = 0).await;
    let owner = server.owner.clone();
    let other_device = TestUser::sign_in(server.addr, OWNER_EMAIL).await;
    let doc = owner.create_document("stolen").await;
    let url = server.ws_url(&doc);
    let mut socket = TestClient::connect_as(&url, &owner).await;
    let mut elsewhere = TestClient::connect_as(&url, &other_device).await;
    socket.wait_synced().await;
    elsewhere.wait_synced().await;

    let refresh = |cookie: String| {
        http_client()
            .post(server.http("/api/auth/refresh"))
            .header("Cookie", cookie)
            .header("Origin", owner.origin())
            .send()
    };
    // The legitimate client rotates r0 -> r1.
    let first = refresh(owner.refresh.clone()).await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let r1 = set_cookie(&first, "quire_refresh").unwrap().0;
    let a1 = set_cookie(&first, "quire_access").unwrap().0;
    // Someone replays r0: the whole family is revoked.
    let replay = refresh(owner.refresh.clone()).await.unwrap();
    assert_eq!(replay.status(), StatusCode::UNAUTHORIZED);
    assert!(cookie_header(&replay, "quire_refresh").contains("Max-Age=0"));
    let (code, reason) = socket.wait_closed().await;
    assert_eq!(code, 4401, "{reason}");
    for (what, cookie) in [("r1", r1.clone())] {
        assert_eq!(
            refresh(cookie).await.unwrap().status(),
            StatusCode::UNAUTHORIZED,
            "{what}"
        );
    }
    for access in [&owner.access, &a1] {
        let me = http_client()
            .get(server.http("/api/me"))
            .header("Cookie", access)
            .send()
            .await
            .unwrap();
        assert_eq!(me.status(), StatusCode::UNAUTHORIZED);
    }
    // Another sign-in of the same user is a different family: untouched.
    assert!(elsewhere.snapshot().closed.is_none());
    assert_eq!(
        status_of(other_device.request(Method::GET, "/api/me")).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn concurrent_refresh_from_two_tabs_keeps_the_user_signed_in() {
    let server = TestServer::start().await;
    let owner = server.owner.clone();
    let tab = || {
        http_client()
            .post(server.http("/api/auth/refresh"))
            .header("Cookie", owner.refresh.clone())
            .header("Origin", owner.origin())
            .send()
    };
    let (a, b) = tokio::join!(tab(), tab());
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!((a.status(), b.status()), (StatusCode::OK, StatusCode::OK));
    for resp in [&a, &b] {
        let access = set_cookie(resp, "quire_access").unwrap().0;
        let me = http_client()
            .get(server.http("/api/me"))
            .header("Cookie", access)
            .send()
            .await
            .unwrap();
        assert_eq!(me.status(), StatusCode::OK);
        // Each tab's new refresh token works in turn.
        let r = set_cookie(resp, "quire_refresh").unwrap().0;
        let next = http_client()
            .post(server.http("/api/auth/refresh"))
            .header("Cookie", r)
            .header("Origin", owner.origin())
            .send()
            .await
            .unwrap();
        assert_eq!(next.status(), StatusCode::OK);
    }
}

#[tokio::test]
async fn cross_site_requests_to_every_state_changing_route_are_refused() {
    let server = TestServer::start().await;
    let owner = server.owner.clone();
    let bob = server.user("bob@x.test", "Bob").await;
    let doc = owner.create_document("csrf-target").await;
    owner.share(&doc, &bob.email, "viewer").await;
    let ws = json_of(owner.request(Method::GET, "/api/me")).await["workspaces"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let routes: Vec<(Method, String, Value)> = vec![
        (
            Method::POST,
            "/api/auth/signup".into(),
            json!({ "email": "m@x.test", "password": PASSWORD, "name": "M" }),
        ),
        (
            Method::POST,
            "/api/auth/login".into(),
            json!({ "email": OWNER_EMAIL, "password": PASSWORD }),
        ),
        (Method::POST, "/api/auth/refresh".into(), json!({})),
        (Method::POST, "/api/auth/logout".into(), json!({})),
        (Method::POST, "/api/auth/logout-all".into(), json!({})),
        (
            Method::POST,
            "/api/documents".into(),
            json!({ "title": "forged" }),
        ),
        (
            Method::PATCH,
            format!("/api/documents/{doc}"),
            json!({ "title": "forged" }),
        ),
        (Method::DELETE, format!("/api/documents/{doc}"), json!({})),
        (
            Method::POST,
            format!("/api/documents/{doc}/shares"),
            json!({ "email": "bob@x.test", "role": "owner" }),
        ),
        (
            Method::DELETE,
            format!("/api/documents/{doc}/shares/{}", bob.id),
            json!({}),
        ),
        (
            Method::POST,
            format!("/api/documents/{doc}/link"),
            json!({ "role": "editor" }),
        ),
        (
            Method::DELETE,
            format!("/api/documents/{doc}/link"),
            json!({}),
        ),
        (
            Method::POST,
            format!("/api/documents/{doc}/link/redeem"),
            json!({ "token": "x" }),
        ),
        (
            Method::POST,
            "/api/workspaces".into(),
            json!({ "name": "forged" }),
        ),
        (
            Method::POST,
            format!("/api/workspaces/{ws}/members"),
            json!({ "email": "bob@x.test", "role": "admin" }),
        ),
        (
            Method::DELETE,
            format!("/api/workspaces/{ws}/members/{}", bob.id),
            json!({}),
        ),
        (Method::PUT, format!("/api/documents/{doc}"), json!({})),
        (Method::PATCH, "/api/me".into(), json!({ "name": "forged" })),
    ];
    for (method, path, body) in &routes {
        for (origin, site) in [
            ("https://evil.example", "cross-site"),
            ("http://127.0.0.1.evil.example", "cross-site"),
            ("null", "cross-site"),
        ] {
            let resp = http_client()
                .request(method.clone(), server.http(path))
                .header("Cookie", format!("{}; {}", owner.access, owner.refresh))
                .header("Origin", origin)
                .header("Sec-Fetch-Site", site)
                .json(body)
                .send()
                .await
                .unwrap();
            assert_eq!(
                resp.status(),
                StatusCode::FORBIDDEN,
                "{method} {path} from {origin}"
            );
        }
        // Origin alone (an older browser without Sec-Fetch-Site) is refused too.
        let resp = http_client()
            .request(method.clone(), server.http(path))
            .header("Cookie", owner.access.clone())
            .header("Origin", "https://evil.example")
            .json(body)
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            StatusCode::FORBIDDEN,
            "{method} {path} with a foreign Origin"
        );
    }
    // Nothing changed.
    let got = json_of(owner.request(Method::GET, &format!("/api/documents/{doc}"))).await;
    assert_eq!(got["document"]["title"], "csrf-target");
    let shares = json_of(owner.request(Method::GET, &format!("/api/documents/{doc}/shares"))).await;
    assert_eq!(shares["shares"][0]["role"], "viewer");
    assert_eq!(
        status_of(owner.request(Method::GET, "/api/me")).await,
        StatusCode::OK
    );
    // The same requests from the app's own origin work.
    let same = owner
        .request(Method::PATCH, &format!("/api/documents/{doc}"))
        .header("Sec-Fetch-Site", "same-origin")
        .json(&json!({ "title": "renamed" }))
        .send()
        .await
        .unwrap();
    assert_eq!(same.status(), StatusCode::OK);
}

#[tokio::test]
async fn websocket_upgrades_without_a_valid_cookie_or_origin_are_refused() {
    let server = TestServer::start_with(|c| c.access_token_secs = 1).await;
    let owner = server.owner.clone();
    let doc = owner.create_document("guarded").await;
    let url = server.ws_url(&doc);
    let with = |cookie: Option<&str>, origin: Option<&str>| {
        let mut req = url.as_str().into_client_request().unwrap();
        if let Some(c) = cookie {
            req.headers_mut().insert("Cookie", c.parse().unwrap());
        }
        if let Some(o) = origin {
            req.headers_mut().insert("Origin", o.parse().unwrap());
        }
        req
    };
    let origin = owner.origin();
    let lookalike = format!("http://{}.evil.example", server.addr);
    assert_eq!(
        refused_status(with(None, Some(&origin))).await,
        401,
        "no cookie"
    );
    assert_eq!(
        refused_status(with(Some("quire_access=forged"), Some(&origin))).await,
        401,
        "forged cookie"
    );
    assert_eq!(
        refused_status(with(Some(&owner.access), Some("null"))).await,
        403,
        "null origin"
    );
    assert_eq!(
        refused_status(with(Some(&owner.access), Some(&lookalike))).await,
        403,
        "look-alike origin"
    );
    assert_eq!(
        refused_status(with(Some(&owner.access), Some("https://evil.example"))).await,
        403,
        "foreign origin"
    );
    assert_eq!(
        refused_status(with(Some(&owner.access), None)).await,
        403,
        "no origin"
    );
    // The same cookie and origin are accepted...
    let mut ok = TestClient::connect_as(&url, &owner).await;
    ok.wait_synced().await;
    // ... until the access token expires (1 s here): wait for the API to say
    // so, then the upgrade is refused too.
    wait_for_async("the access token expires", || async {
        status_of(owner.request(Method::GET, "/api/me")).await == StatusCode::UNAUTHORIZED
    })
    .await;
    assert_eq!(
        refused_status(with(Some(&owner.access), Some(&origin))).await,
        401,
        "expired cookie"
    );
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
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn nobody_opens_an_unshared_document_by_id() {
    let server = TestServer::start().await;
    let owner = server.owner.clone();
    let mallory = server.user("mallory@x.test", "Mallory").await;
    let doc = owner.create_document("private").await;
    let mut writer = TestClient::connect_as(&server.ws_url(&doc), &owner).await;
    writer.wait_synced().await;
    writer.edit(|t| t.get_or_insert_text("t").insert(t, 0, "secret"));

    for (method, path, body) in [
        (Method::GET, format!("/api/documents/{doc}"), json!(null)),
        (
            Method::PATCH,
            format!("/api/documents/{doc}"),
            json!({ "title": "pwned" }),
        ),
        (Method::DELETE, format!("/api/documents/{doc}"), json!(null)),
        (
            Method::GET,
            format!("/api/documents/{doc}/shares"),
            json!(null),
        ),
        (
            Method::POST,
            format!("/api/documents/{doc}/shares"),
            json!({ "email": "mallory@x.test", "role": "owner" }),
        ),
        (
            Method::POST,
            format!("/api/documents/{doc}/link"),
            json!({ "role": "editor" }),
        ),
        (
            Method::POST,
            format!("/api/documents/{doc}/link/redeem"),
            json!({ "token": "guess" }),
        ),
    ] {
        let resp = mallory
            .request(method.clone(), &path)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{method} {path}");
        // Exactly what a missing document answers: existence does not leak.
        let missing = mallory
            .request(method.clone(), &path.replace("private", "no-such-doc"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        assert_eq!(resp.text().await.unwrap(), missing.text().await.unwrap());
    }
    let list = json_of(mallory.request(Method::GET, "/api/documents")).await;
    assert!(list["documents"].as_array().unwrap().is_empty());
    let shared = json_of(mallory.request(Method::GET, "/api/documents?scope=shared")).await;
    assert!(shared["documents"].as_array().unwrap().is_empty());
    assert_eq!(
        refused_status(mallory.ws_request(&server.ws_url(&doc))).await,
        404
    );
    assert_eq!(
        refused_status(mallory.ws_request(&server.ws_url("no-such-doc"))).await,
        404
    );
    // Unauthenticated, the API refuses everything.
    assert_eq!(
        status_of(http_client().get(server.http("/api/documents"))).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(writer.text("t"), "secret");
}

/// Owner and a second user with `role` on one document, both connected.
async fn owner_and(role: &str) -> (TestServer, TestClient, TestClient, TestUser, String) {
    let server = TestServer::start().await;
    let owner = server.owner.clone();
    let other = server.user(&format!("{role}@x.test"), role).await;
    let doc = owner.create_document(&format!("{role}-doc")).await;
    owner.share(&doc, &other.email, role).await;
    let url = format!("{}?quire=1", server.ws_url(&doc));
    let mut a = TestClient::connect_as(&url, &owner).await;
    a.wait_synced().await;
    a.edit(|t| t.get_or_insert_text("t").insert(t, 0, "hello"));
    a.wait_acked(2).await;
    let mut b = TestClient::connect_as(&url, &other).await;
    b.wait_synced().await;
    b.wait_text("t", "hello").await;
    (server, a, b, other, doc)
}

async fn read_only_role_changes_nothing(role: &str) {
    let (server, mut owner, mut other, _, doc) = owner_and(role).await;
    // Its sync step 2 answering the server changed nothing: not refused.
    assert!(
        other.snapshot().permission_denied.is_empty(),
        "{:?}",
        other.snapshot().permission_denied
    );
    let before = owner.state_vector();
    // An update, and a sync step 2 carrying content: both refused.
    other.edit(|t| t.get_or_insert_text("t").insert(t, 0, "evil "));
    let step2 = {
        let d = yrs::Doc::new();
        let mut txn = d.transact_mut();
        txn.get_or_insert_text("t")
            .insert(&mut txn, 0, "more evil ");
        txn.encode_update_v1()
    };
    other.send_raw(encode_sync_step2(&step2));
    within(
        "two refusals",
        other.state.wait_for(|s| s.permission_denied.len() >= 2),
    )
    .await
    .unwrap();
    assert!(other.snapshot().permission_denied[0].contains("read-only"));
    // The owner keeps editing; the read-only client still receives it.
    owner.edit(|t| {
        let text = t.get_or_insert_text("t");
        let len = text.len(t);
        text.insert(t, len, " world")
    });
    owner.wait_acked(3).await;
    wait_for("the reader receives updates", || {
        other.text("t").ends_with("hello world")
    })
    .await;
    assert!(owner.snapshot().closed.is_none() && other.snapshot().closed.is_none());
    assert!(!owner.text("t").contains("evil"));
    // A fresh client sees exactly the owner's state: nothing else was applied
    // or stored.
    let mut fresh = TestClient::connect_as(&server.ws_url(&doc), &server.owner).await;
    fresh.wait_synced().await;
    assert_eq!(fresh.text("t"), "hello world");
    assert_eq!(fresh.state_vector(), owner.state_vector());
    assert_ne!(
        before,
        owner.state_vector(),
        "the owner's own edit went through"
    );
    let stored = server
        .state
        .hub
        .store()
        .load(&doc.parse().unwrap())
        .await
        .unwrap();
    assert_eq!(
        stored.tail.len(),
        2,
        "only the owner's two updates are stored"
    );
}

#[tokio::test]
async fn a_viewers_updates_and_sync_step_2_change_nothing() {
    read_only_role_changes_nothing("viewer").await;
}

#[tokio::test]
async fn a_commenter_cannot_edit_the_text() {
    read_only_role_changes_nothing("commenter").await;
}

#[tokio::test]
async fn removing_access_closes_the_socket_within_5_seconds_and_nothing_after_applies() {
    let (server, mut owner, mut other, editor, doc) = owner_and("editor").await;
    other.edit(|t| t.get_or_insert_text("t").insert(t, 0, "ok "));
    owner.wait_text("t", "ok hello").await;
    let started = Instant::now();
    let resp = server
        .owner
        .request(
            Method::DELETE,
            &format!("/api/documents/{doc}/shares/{}", editor.id),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    // Sent right after the revocation: must not be applied.
    other.edit(|t| t.get_or_insert_text("t").insert(t, 0, "late "));
    let (code, reason) = other.wait_closed().await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "closed after {:?}",
        started.elapsed()
    );
    assert_eq!(code, 4403, "{reason}");
    let mut fresh = TestClient::connect_as(&server.ws_url(&doc), &server.owner).await;
    fresh.wait_synced().await;
    assert_eq!(fresh.text("t"), "ok hello");
    assert_eq!(owner.text("t"), "ok hello");
    assert_eq!(
        refused_status(editor.ws_request(&server.ws_url(&doc))).await,
        404
    );
}

#[tokio::test]
async fn lowering_a_role_makes_open_sockets_read_only_at_once() {
    let (server, mut owner, mut other, editor, doc) = owner_and("editor").await;
    server.owner.share(&doc, &editor.email, "viewer").await;
    within(
        "told",
        other.state.wait_for(|s| !s.permission_denied.is_empty()),
    )
    .await
    .unwrap();
    other.edit(|t| t.get_or_insert_text("t").insert(t, 0, "nope "));
    within(
        "refused",
        other.state.wait_for(|s| s.permission_denied.len() >= 2),
    )
    .await
    .unwrap();
    owner.edit(|t| t.get_or_insert_text("t").insert(t, 0, "yes "));
    wait_for("the viewer still receives", || {
        other.text("t").contains("yes ")
    })
    .await;
    assert!(!owner.text("t").contains("nope"));
    // Raised again, the socket is told to reconnect with its new rights.
    server.owner.share(&doc, &editor.email, "editor").await;
    let (code, _) = other.wait_closed().await;
    assert_eq!(code, 4409);
}

#[tokio::test]
async fn signing_out_closes_that_sessions_sockets_and_logout_all_closes_all() {
    let server = TestServer::start().await;
    let owner = server.owner.clone();
    let laptop = TestUser::sign_in(server.addr, OWNER_EMAIL).await;
    let doc = owner.create_document("sessions").await;
    let url = server.ws_url(&doc);
    let mut here = TestClient::connect_as(&url, &owner).await;
    let mut there = TestClient::connect_as(&url, &laptop).await;
    here.wait_synced().await;
    there.wait_synced().await;
    assert_eq!(
        status_of(owner.request(Method::POST, "/api/auth/logout")).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(here.wait_closed().await.0, 4401);
    assert_eq!(
        status_of(owner.request(Method::GET, "/api/me")).await,
        StatusCode::UNAUTHORIZED
    );
    assert!(there.snapshot().closed.is_none());
    assert_eq!(
        status_of(laptop.request(Method::POST, "/api/auth/logout-all")).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(there.wait_closed().await.0, 4401);
    assert_eq!(
        status_of(laptop.request(Method::GET, "/api/me")).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn repeated_bad_passwords_lock_the_account_and_addresses_are_limited() {
    let server = TestServer::start_with(|c| {
        c.login_max_failures = 3;
        c.auth_burst = 50;
    })
    .await;
    let login = |password: &'static str| {
        http_client()
            .post(server.http("/api/auth/login"))
            .json(&json!({ "email": OWNER_EMAIL, "password": password }))
            .send()
    };
    for _ in 0..3 {
        assert_eq!(
            login("wrong password").await.unwrap().status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let locked = login(PASSWORD).await.unwrap();
    assert_eq!(
        locked.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "even the right password waits"
    );
    assert!(locked.headers().get("retry-after").is_some());
    // Unknown accounts lock the same way (no account enumeration).
    for _ in 0..3 {
        let r = http_client()
            .post(server.http("/api/auth/login"))
            .json(&json!({ "email": "ghost@x.test", "password": "whatever1" }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }

    // Per client address: a burst, then 429 whatever the account.
    let tight = TestServer::start_with(|c| {
        c.auth_burst = 3;
        c.auth_period_ms = 60_000;
    })
    .await;
    let mut statuses = Vec::new();
    for i in 0..5 {
        let r = http_client()
            .post(tight.http("/api/auth/login"))
            .json(&json!({ "email": format!("u{i}@x.test"), "password": "whatever1" }))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
}

#[tokio::test]
async fn link_sharing_grants_its_role_and_turning_it_off_withdraws_it() {
    let server = TestServer::start().await;
    let owner = server.owner.clone();
    let bob = server.user("bob@x.test", "Bob").await;
    let doc = owner.create_document("linked").await;
    let link = json_of(
        owner
            .request(Method::POST, &format!("/api/documents/{doc}/link"))
            .json(&json!({ "role": "viewer" })),
    )
    .await;
    let token = link["token"].as_str().unwrap().to_string();
    assert!(token.len() >= 43, "256-bit token");
    assert_eq!(link["path"], format!("/d/{doc}#link={token}"));
    let bad = bob
        .request(Method::POST, &format!("/api/documents/{doc}/link/redeem"))
        .json(&json!({ "token": "wrong" }))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::NOT_FOUND);
    let got = json_of(
        bob.request(Method::POST, &format!("/api/documents/{doc}/link/redeem"))
            .json(&json!({ "token": token })),
    )
    .await;
    assert_eq!(got["document"]["role"], "viewer");
    let shared = json_of(bob.request(Method::GET, "/api/documents?scope=shared")).await;
    assert_eq!(shared["documents"][0]["id"], doc.as_str());
    let mut b = TestClient::connect_as(&server.ws_url(&doc), &bob).await;
    b.wait_synced().await;
    let off = owner
        .request(Method::DELETE, &format!("/api/documents/{doc}/link"))
        .send()
        .await
        .unwrap();
    assert_eq!(off.status(), StatusCode::NO_CONTENT);
    assert_eq!(b.wait_closed().await.0, 4403);
    assert_eq!(
        status_of(bob.request(Method::GET, &format!("/api/documents/{doc}"))).await,
        StatusCode::NOT_FOUND
    );
    let again = bob
        .request(Method::POST, &format!("/api/documents/{doc}/link/redeem"))
        .json(&json!({ "token": token }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        again.status(),
        StatusCode::NOT_FOUND,
        "a revoked link opens nothing"
    );
}

#[tokio::test]
async fn workspaces_have_admins_and_members() {
    let server = TestServer::start().await;
    let owner = server.owner.clone();
    let bob = server.user("bob@x.test", "Bob").await;
    let created = owner
        .request(Method::POST, "/api/workspaces")
        .json(&json!({ "name": "Team" }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let ws = created.json::<Value>().await.unwrap()["workspace"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let add = owner
        .request(Method::POST, &format!("/api/workspaces/{ws}/members"))
        .json(&json!({ "email": "bob@x.test", "role": "member" }))
        .send()
        .await
        .unwrap();
    assert_eq!(add.status(), StatusCode::OK);
    let members = json_of(bob.request(Method::GET, &format!("/api/workspaces/{ws}/members"))).await;
    assert_eq!(members["members"].as_array().unwrap().len(), 2);
    // A member is not an admin.
    let denied = bob
        .request(Method::POST, &format!("/api/workspaces/{ws}/members"))
        .json(&json!({ "email": OWNER_EMAIL, "role": "member" }))
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), StatusCode::FORBIDDEN);
    // A document in the workspace is still private to its owner.
    let made = json_of(
        owner
            .request(Method::POST, "/api/documents")
            .json(&json!({ "title": "Team plan", "workspace": ws })),
    )
    .await;
    let id = made["document"]["id"].as_str().unwrap();
    assert_eq!(made["document"]["workspace"], ws.as_str());
    assert_eq!(
        status_of(bob.request(Method::GET, &format!("/api/documents/{id}"))).await,
        StatusCode::NOT_FOUND
    );
    // Nobody creates documents in a workspace they do not belong to.
    let mallory = server.user("mallory@x.test", "Mallory").await;
    let foreign = mallory
        .request(Method::POST, "/api/documents")
        .json(&json!({ "workspace": ws }))
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn ws_connects_are_rate_limited_per_user() {
    let server = TestServer::start_with(|c| {
        c.ws_connect_burst = 3;
        c.ws_connect_period_ms = 60_000;
    })
    .await;
    let owner = server.owner.clone();
    let doc = owner.create_document("busy").await;
    let url = server.ws_url(&doc);
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(TestClient::connect_as(&url, &owner).await);
    }
    assert_eq!(refused_status(owner.ws_request(&url)).await, 429);
    let bob = server.user("bob@x.test", "Bob").await;
    owner.share(&doc, &bob.email, "viewer").await;
    let mut b = TestClient::connect_as(&url, &bob).await;
    b.wait_synced().await;
}
