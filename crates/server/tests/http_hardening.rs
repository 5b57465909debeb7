//! The smaller items of issue 12, through real requests on real sockets:
//! headers of the HTML shell and of every route class, `/metrics` behind
//! the operator's token, a workspace always keeping an admin, and weak
//! passwords refused. `docs/security.md` maps each to its threat.

mod common;

use common::*;
use reqwest::StatusCode;

async fn send(req: reqwest::RequestBuilder) -> reqwest::Response {
    within("request", req.send()).await.expect("request")
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
