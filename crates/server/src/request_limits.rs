//! Limits on every request body, whatever the route: its size
//! (`--max-request-body-bytes`, 413) and how long it may stall between two
//! pieces (`--http-header-timeout-secs`, 408). The request head is bounded
//! by the accept loop (`listener.rs`); the WebSocket route takes no body.
//!
//! A body that declares its length is refused before any handler runs; one
//! that does not (chunked) is cut off when it passes the limit, and the
//! handler's JSON extractor turns that into the same answer
//! (`ApiError::from(JsonRejection)`). A route that takes no body never
//! reads one: hyper closes the connection rather than drain it.

use std::error::Error as _;
use std::time::Duration;

use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutError};

use crate::error::ApiError;
use crate::metrics;

/// Wraps every route of `router` in the body limits.
pub fn apply<S>(router: Router<S>, max_body_bytes: usize, stall: Duration) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    router
        // axum's own 2 MB per extractor would otherwise still apply, and
        // would silently win over a larger configured limit.
        .layer(DefaultBodyLimit::disable())
        .layer(RequestBodyLimitLayer::new(max_body_bytes))
        .layer(RequestBodyTimeoutLayer::new(stall))
        .layer(middleware::from_fn_with_state(
            max_body_bytes,
            refuse_declared_oversize,
        ))
}

/// Answers 413 (JSON, like every other error) to a body that says up front
/// it is too large, instead of tower-http's plain-text one.
async fn refuse_declared_oversize(
    State(limit): State<usize>,
    req: Request,
    next: Next,
) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return body_too_large().into_response();
    }
    next.run(req).await
}

pub(crate) fn body_too_large() -> ApiError {
    ::metrics::counter!(metrics::HTTP_REFUSED_TOTAL, "limit" => "max_request_body_bytes")
        .increment(1);
    ApiError::PayloadTooLarge
}

pub(crate) fn body_timed_out() -> ApiError {
    ::metrics::counter!(metrics::HTTP_TIMEOUTS_TOTAL, "during" => "request_body").increment(1);
    ApiError::RequestTimeout
}

/// Whether the body under this rejection was cut off by the stall timeout.
pub(crate) fn timed_out(rejection: &JsonRejection) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = rejection.source();
    // A handful of wrappers at most (rejection, axum's error, the body's);
    // bounded all the same.
    for _ in 0..16 {
        match cause {
            Some(e) if e.is::<TimeoutError>() => return true,
            Some(e) => cause = e.source(),
            None => return false,
        }
    }
    false
}
