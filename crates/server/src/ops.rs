//! Health, readiness and metrics for operators and load balancers.
//!
//! Health and readiness are public: a load balancer asks without
//! credentials, and they tell nothing. `/metrics` tells a lot (connection
//! counts, documents loaded, refusals by reason, the node's id, store and
//! bus), so it answers only the operator's bearer token (`--metrics-token`),
//! and is not served at all when none is configured.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use quire_store::StoreError;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::error::ApiError;

/// Fewer characters than this would be guessable over the network.
const MIN_METRICS_TOKEN_CHARS: usize = 16;

/// Liveness: the process answers.
pub async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

/// Readiness: the store answers within two seconds and has room to write
/// (see [`quire_store::DocStore::ping`]).
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    match tokio::time::timeout(Duration::from_secs(2), state.hub.store().ping()).await {
        Ok(Ok(())) => (StatusCode::OK, Json(json!({ "status": "ready" }))),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness check failed");
            let reason = match e {
                StoreError::Full(_) => "storage full",
                _ => "store unreachable",
            };
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "unavailable", "reason": reason })),
            )
        }
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unavailable", "reason": "store timed out" })),
        ),
    }
}

pub async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some(token) = &state.config.metrics_token else {
        return ApiError::NotFound.into_response();
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if !presented.is_some_and(|p| token.matches(p.trim())) {
        let mut resp =
            ApiError::SignInFailed("/metrics needs the operator's bearer token").into_response();
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"metrics\""),
        );
        return resp;
    }
    metrics::gauge!("quire_documents_live_now").set(state.hub.live_documents() as f64);
    metrics::counter!(crate::metrics::STORE_QUERIES_TOTAL)
        .absolute(state.hub.store().queries_executed());
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

/// The operator's token for `/metrics`, kept only as its SHA-256: a guess
/// is hashed and the digests compared in full, so how long a refusal takes
/// tells nothing about how much of the guess was right. Its `Debug` never
/// shows it.
#[derive(Clone)]
pub struct MetricsToken {
    digest: [u8; 32],
}

impl MetricsToken {
    /// For clap: refuses tokens short enough to guess.
    pub fn parse(raw: &str) -> Result<MetricsToken, String> {
        if raw.chars().count() < MIN_METRICS_TOKEN_CHARS {
            return Err(format!(
                "use at least {MIN_METRICS_TOKEN_CHARS} characters (e.g. `openssl rand -hex 32`)"
            ));
        }
        Ok(MetricsToken {
            digest: Sha256::digest(raw.as_bytes()).into(),
        })
    }

    pub fn matches(&self, presented: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        digest
            .iter()
            .zip(self.digest.iter())
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
    }
}

impl std::fmt::Debug for MetricsToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MetricsToken(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::MetricsToken;

    #[test]
    fn metrics_tokens_match_exactly_and_short_ones_are_refused() {
        let t = MetricsToken::parse("0123456789abcdef-operator").unwrap();
        assert!(t.matches("0123456789abcdef-operator"));
        for wrong in [
            "",
            "0123456789abcdef-operato",
            "0123456789abcdef-operator!",
            "x",
        ] {
            assert!(!t.matches(wrong), "{wrong:?}");
        }
        assert!(MetricsToken::parse("short").is_err());
        assert!(!format!("{t:?}").contains("0123"));
    }
}
