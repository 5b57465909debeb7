//! The smaller items of issue 12, through real requests on real sockets:
//! headers of the HTML shell and of every route class, `/metrics` behind
//! the operator's token, a workspace always keeping an admin, and weak
//! passwords refused. `docs/security.md` maps each to its threat.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::Value;

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
