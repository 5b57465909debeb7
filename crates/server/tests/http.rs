//! The HTTP surface through the real router (`oneshot`): the documents API,
//! its errors, cache headers on every route class (F5), and operations
//! endpoints (F11).

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::*;
use serde_json::{Value, json};
use tower::ServiceExt;

async fn call(
    server: &TestServer,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, axum::http::HeaderMap, Value) {
    // Signed in as the server's owner, as the web app is.
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header(header::COOKIE, &server.owner.access);
    let body = match body {
        Some(v) => {
            req = req.header(header::CONTENT_TYPE, "application/json");
            Body::from(v.to_string())
        }
        None => Body::empty(),
    };
    let resp = quire_server::app(server.state.clone())
        .oneshot(req.body(body).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    let value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()))
    };
    (status, headers, value)
}

#[tokio::test]
async fn documents_can_be_created_listed_renamed_filtered_and_deleted() {
    let server = TestServer::start().await;
    let (s, h, v) = call(
        &server,
        Method::POST,
        "/api/documents",
        Some(json!({"title": "Plans for Q3"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(h[header::CACHE_CONTROL], "no-store");
    let id = v["document"]["id"].as_str().unwrap().to_string();
    assert_eq!(v["document"]["title"], "Plans for Q3");
    assert!(v["document"]["createdAt"].as_i64().unwrap() > 0);

    let (_, _, v) = call(&server, Method::POST, "/api/documents", None).await;
    assert_eq!(v["document"]["title"], "Untitled document");

    let (s, _, v) = call(&server, Method::GET, "/api/documents", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["documents"].as_array().unwrap().len(), 2);

    let (s, _, v) = call(
        &server,
        Method::PATCH,
        &format!("/api/documents/{id}"),
        Some(json!({"title": "  Plans for Q4 "})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["document"]["title"], "Plans for Q4");

    let (_, _, v) = call(&server, Method::GET, "/api/documents?q=q4", None).await;
    let docs = v["documents"].as_array().unwrap();
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0]["id"], id.as_str());

    let (s, _, _) = call(
        &server,
        Method::DELETE,
        &format!("/api/documents/{id}"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _, v) = call(&server, Method::GET, &format!("/api/documents/{id}"), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v["error"]["code"], "not_found");
}

#[tokio::test]
async fn bad_requests_get_clear_json_errors_and_change_nothing() {
    let server = TestServer::start().await;
    let (_, _, v) = call(
        &server,
        Method::POST,
        "/api/documents",
        Some(json!({"title": "Keep me"})),
    )
    .await;
    let id = v["document"]["id"].as_str().unwrap().to_string();
    let cases = [
        (
            Method::PATCH,
            format!("/api/documents/{id}"),
            Some(json!({"title": ""})),
        ),
        (
            Method::PATCH,
            format!("/api/documents/{id}"),
            Some(json!({"title": "x".repeat(201)})),
        ),
        (
            Method::PATCH,
            format!("/api/documents/{id}"),
            Some(json!({"title": "a\u{0007}b"})),
        ),
        (
            Method::PATCH,
            format!("/api/documents/{id}"),
            Some(json!({"nope": 1})),
        ),
        (
            Method::PATCH,
            "/api/documents/bad%2Fid".to_string(),
            Some(json!({"title": "x"})),
        ),
        (
            Method::POST,
            "/api/documents".to_string(),
            Some(json!({"title": 42})),
        ),
    ];
    for (method, path, body) in cases {
        let (s, h, v) = call(&server, method.clone(), &path, body.clone()).await;
        assert!(s.is_client_error(), "{method} {path} {body:?}: {s}");
        assert_eq!(h[header::CONTENT_TYPE], "application/json", "{path}");
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{v}"
        );
    }
    let (s, _, v) = call(
        &server,
        Method::PATCH,
        "/api/documents/missing",
        Some(json!({"title": "x"})),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    let (_, _, v) = call(&server, Method::GET, "/api/documents", None).await;
    assert_eq!(v["documents"].as_array().unwrap().len(), 1);
    assert_eq!(v["documents"][0]["title"], "Keep me");
}

#[tokio::test]
async fn every_route_class_has_the_right_cache_headers() {
    let server = TestServer::start().await;
    // API, operations and sync: never cached by anyone.
    for path in [
        "/api/documents",
        "/healthz",
        "/readyz",
        "/metrics",
        "/api/documents/none",
        "/ws/some-doc",
    ] {
        let (_, h, _) = call(&server, Method::GET, path, None).await;
        assert_eq!(h[header::CACHE_CONTROL], "no-store", "{path}");
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff", "{path}");
    }
    // The HTML shell (any app route): revalidated every time, with a CSP.
    for path in ["/", "/d/some-doc"] {
        let (s, h, _) = call(&server, Method::GET, path, None).await;
        assert_eq!(s, StatusCode::OK, "{path}");
        assert_eq!(h[header::CACHE_CONTROL], "no-cache", "{path}");
        assert!(
            h[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
    }
    // Hashed assets: immutable. Found through the built shell.
    let (_, _, shell) = call(&server, Method::GET, "/", None).await;
    let html = shell.as_str().unwrap_or_default().to_string();
    if let Some(start) = html.find("/assets/") {
        let end = html[start..].find('"').unwrap() + start;
        let asset = &html[start..end];
        let (s, h, _) = call(&server, Method::GET, asset, None).await;
        assert_eq!(s, StatusCode::OK, "{asset}");
        assert_eq!(
            h[header::CACHE_CONTROL],
            "public, max-age=31536000, immutable",
            "{asset}"
        );
        let (s, h, _) = call(&server, Method::GET, "/assets/missing-0000.js", None).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        assert_eq!(h[header::CACHE_CONTROL], "no-store");
    } else {
        // `make test` builds the web app first; without it the shell is the
        // "not built" page and there are no assets to check.
        assert!(html.contains("not built"), "shell without assets: {html}");
        assert!(
            std::env::var("CI").is_err(),
            "CI must test against the built web app"
        );
    }
}

#[tokio::test]
async fn health_readiness_and_metrics_are_served() {
    let server = TestServer::start().await;
    let (s, _, v) = call(&server, Method::GET, "/healthz", None).await;
    assert_eq!((s, v["status"].as_str()), (StatusCode::OK, Some("ok")));
    let (s, _, v) = call(&server, Method::GET, "/readyz", None).await;
    assert_eq!((s, v["status"].as_str()), (StatusCode::OK, Some("ready")));

    // Some traffic so that the write-path metrics exist.
    let mut a = TestClient::connect(&format!("{}?quire=1", server.ws_url("metrics-doc"))).await;
    a.wait_synced().await;
    a.edit(|t| {
        use yrs::{Text, WriteTxn};
        t.get_or_insert_text("t").insert(t, 0, "x")
    });
    a.wait_acked(2).await;
    // As an operator: the bearer token of `--metrics-token`.
    let resp = quire_server::app(server.state.clone())
        .oneshot(
            Request::get("/metrics")
                .header(header::AUTHORIZATION, format!("Bearer {METRICS_TOKEN}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    let text = std::str::from_utf8(&body).unwrap();
    for name in [
        "quire_connections",
        "quire_documents_live",
        "quire_updates_applied_total",
        "quire_bytes_in_total",
        "quire_bytes_out_total",
        "quire_append_batch_size",
        "quire_append_commit_seconds",
        "quire_ack_latency_seconds",
    ] {
        assert!(text.contains(name), "/metrics lacks {name}");
    }
}
