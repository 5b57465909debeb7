//! One error type for the HTTP API, mapped to status codes in one place.
//! Bodies are `{"error":{"code","message"}}` (a quota refusal adds
//! `"quota":{"name","used","limit"}`); 5xx bodies are generic and the
//! details go to the log.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use quire_store::StoreError;

/// `Retry-After` on a 503 for load: long enough for a crowd to thin out,
/// short enough that nobody gives up.
pub const RETRY_AFTER_SECS: u64 = 5;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("not signed in")]
    Unauthorized,
    /// 401 with a specific reason (wrong password, session revoked ...).
    #[error("{0}")]
    SignInFailed(&'static str),
    #[error("{0}")]
    Forbidden(String),
    /// 403: the account has reached a quota (`quotas.rs`); the body names it.
    #[error("{0}")]
    QuotaExceeded(crate::quotas::QuotaExceeded),
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Conflict(String),
    #[error("too many attempts; try again in {0} seconds")]
    TooManyRequests(u64),
    /// 413: the request body is larger than `--max-request-body-bytes`.
    #[error("the request body is too large")]
    PayloadTooLarge,
    /// 408: a request body stalled for longer than the request timeout.
    #[error("the request body did not arrive in time")]
    RequestTimeout,
    /// 503: the node holds `--max-connections` and takes no more for now.
    #[error("this server is busy; try again in {RETRY_AFTER_SECS} seconds")]
    Overloaded,
    /// 503: this client address holds `--max-connections-per-address`.
    #[error("too many connections from your address; close some and try again")]
    TooManyConnections,
    #[error("storage unavailable")]
    Unavailable(String),
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized | ApiError::SignInFailed(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) | ApiError::QuotaExceeded(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::Overloaded | ApiError::TooManyConnections | ApiError::Unavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Unauthorized | ApiError::SignInFailed(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::QuotaExceeded(_) => "quota_exceeded",
            ApiError::NotFound => "not_found",
            ApiError::Conflict(_) => "conflict",
            ApiError::TooManyRequests(_) => "too_many_requests",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::RequestTimeout => "request_timeout",
            ApiError::Overloaded => "overloaded",
            ApiError::TooManyConnections => "too_many_connections",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::NotFound,
            StoreError::AlreadyExists => ApiError::Conflict("it already exists".into()),
            // A full disk is an outage to the client too; the log says which.
            StoreError::Unavailable(m) | StoreError::Full(m) => ApiError::Unavailable(m),
            StoreError::Backend(m) => ApiError::Internal(m),
        }
    }
}

impl From<axum::extract::rejection::JsonRejection> for ApiError {
    /// A body cut off by the request limits (`request_limits.rs`) reaches
    /// the handler as a rejection; it is answered as the limit it hit.
    fn from(e: axum::extract::rejection::JsonRejection) -> Self {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return crate::request_limits::body_too_large();
        }
        if crate::request_limits::timed_out(&e) {
            return crate::request_limits::body_timed_out();
        }
        ApiError::BadRequest(e.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let message = match &self {
            ApiError::Unavailable(detail) | ApiError::Internal(detail) => {
                tracing::error!(error = %detail, "request failed");
                match self {
                    ApiError::Unavailable(_) => {
                        "storage is unavailable, try again shortly".to_string()
                    }
                    _ => "internal server error".to_string(),
                }
            }
            other => other.to_string(),
        };
        let mut error = serde_json::json!({ "code": self.code(), "message": message });
        if let ApiError::QuotaExceeded(refusal) = &self {
            // Which quota and its numbers, for clients that show more than
            // the message.
            error["quota"] = serde_json::json!(refusal);
        }
        let body = serde_json::json!({ "error": error });
        let mut response = (self.status_code(), Json(body)).into_response();
        let retry_after = match self {
            ApiError::TooManyRequests(secs) => Some(secs),
            ApiError::Overloaded | ApiError::TooManyConnections => Some(RETRY_AFTER_SECS),
            _ => None,
        };
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        // The router's layers give every response this header; the listener
        // answers some connections (load shedding) without the router.
        response.headers_mut().insert(
            axum::http::header::X_FRAME_OPTIONS,
            axum::http::HeaderValue::from_static("DENY"),
        );
        response
    }
}
