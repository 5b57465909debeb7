//! `/api/auth/*` and `/api/me`: sign-up, sign-in, token refresh, sign-out.
//!
//! Refresh-token rotation and reuse: every refresh replaces the presented
//! token. Presenting a replaced token again means two parties hold it, one of
//! them a thief, so the whole session (the token family) is revoked and its
//! sockets closed. The one exception is a short grace window after a
//! rotation, in which the replaced token gets a new pair of its own instead:
//! two tabs of one browser that both notice an expired access token refresh
//! at once, and the slower one must not sign the user out.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use quire_hub::{CloseCode, CloseFrame, SessionTarget};
use quire_store::{NewUser, Rotation, StoreError, TokenKind, User};
use quire_types::{AuthSessionId, UnixMillis, UserId, WorkspaceId};
use serde::Deserialize;
use serde_json::json;

use crate::AppState;
use crate::auth::{self, CurrentUser, IssuedTokens};
use crate::control::{self, ControlMessage};
use crate::error::ApiError;
use crate::password;

const MAX_NAME_CHARS: usize = 100;

/// Presence colours handed out at sign-up; readable on white, distinct.
const COLORS: [&str; 10] = [
    "#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#008080", "#9a6324", "#800000",
    "#808000", "#000075",
];

/// Routes limited per client address (the layer is added in `lib.rs`).
pub fn credential_router() -> Router<AppState> {
    Router::new()
        .route("/auth/signup", post(signup))
        .route("/auth/login", post(login))
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/refresh", post(refresh))
        .route("/auth/logout", post(logout))
        .route("/auth/logout-all", post(logout_all))
        .route("/me", get(me).patch(update_me))
}

#[derive(Debug, Deserialize)]
pub struct SignupBody {
    email: String,
    password: String,
    name: String,
}

#[derive(Debug, Deserialize)]
pub struct LoginBody {
    email: String,
    password: String,
}

/// Trimmed and lower-cased: one account per mailbox however it is typed.
pub fn normalize_email(raw: &str) -> Result<String, ApiError> {
    let email = raw.trim().to_lowercase();
    let valid = email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && !domain.is_empty() && !domain.contains('@')
        });
    if !valid {
        return Err(ApiError::BadRequest("enter a valid email address".into()));
    }
    Ok(email)
}

pub fn valid_name(raw: &str) -> Result<String, ApiError> {
    let name = raw.trim();
    if name.is_empty()
        || name.chars().count() > MAX_NAME_CHARS
        || name.chars().any(char::is_control)
    {
        return Err(ApiError::BadRequest(format!(
            "name must be 1 to {MAX_NAME_CHARS} characters"
        )));
    }
    Ok(name.to_string())
}

/// Creates an account (and its personal workspace). Shared by the sign-up
/// route and `quire user add`.
pub async fn create_account(
    store: &dyn quire_store::AuthStore,
    email: &str,
    name: &str,
    password: String,
    fast_hashing: bool,
) -> Result<User, ApiError> {
    let email = normalize_email(email)?;
    let name = valid_name(name)?;
    let password = judged_password(password, &email, &name).await?;
    let password_hash = auth::hash_password(password, fast_hashing).await?;
    let id = UserId::generate();
    let color = COLORS[(id.as_str().bytes().map(usize::from).sum::<usize>()) % COLORS.len()];
    let new = NewUser {
        id,
        email,
        workspace_name: format!("{name}'s workspace"),
        name,
        color: color.to_string(),
        password_hash,
        workspace: WorkspaceId::generate(),
    };
    match store.create_user(&new).await {
        Ok(u) => Ok(u),
        Err(StoreError::AlreadyExists) => Err(ApiError::Conflict(
            "an account with this email already exists".into(),
        )),
        Err(e) => Err(e.into()),
    }
}

/// [`password::check`], off the async runtime: matching a password
/// against zxcvbn's dictionaries takes milliseconds of CPU. The email, its
/// local part and the name count as known to an attacker.
async fn judged_password(password: String, email: &str, name: &str) -> Result<String, ApiError> {
    let local = email.split('@').next().unwrap_or_default().to_string();
    let (email, name) = (email.to_string(), name.to_string());
    tokio::task::spawn_blocking(move || {
        password::check(&password, &[&email, &local, &name]).map(|()| password)
    })
    .await
    .map_err(|e| ApiError::Internal(format!("judging a password: {e}")))?
}

async fn signup(
    State(state): State<AppState>,
    body: Result<Json<SignupBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    if !state.auth_config.signup_open {
        return Err(ApiError::Forbidden(
            "sign-up is disabled on this server; ask an administrator for an account".into(),
        ));
    }
    let Json(body) = body?;
    let user = create_account(
        state.auth.as_ref(),
        &body.email,
        &body.name,
        body.password,
        state.auth_config.fast_hashing,
    )
    .await?;
    metrics::counter!(crate::metrics::AUTH_EVENTS_TOTAL, "event" => "signup").increment(1);
    sign_in(&state, user, StatusCode::CREATED).await
}

async fn login(
    State(state): State<AppState>,
    body: Result<Json<LoginBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body?;
    let email = normalize_email(&body.email).map_err(|_| wrong_credentials())?;
    if let Some(wait) = state.login_attempts.locked(&email) {
        metrics::counter!(crate::metrics::AUTH_EVENTS_TOTAL, "event" => "login_locked")
            .increment(1);
        return Err(ApiError::TooManyRequests(wait.as_secs().max(1)));
    }
    let found = state.auth.user_by_email(&email).await?;
    let (user, hash) = match found {
        Some((u, h)) => (Some(u), Some(h)),
        None => (None, None),
    };
    let ok = auth::verify_password(body.password, hash, state.auth_config.fast_hashing).await;
    match (ok, user) {
        (true, Some(user)) => {
            state.login_attempts.record_success(&email);
            metrics::counter!(crate::metrics::AUTH_EVENTS_TOTAL, "event" => "login").increment(1);
            sign_in(&state, user, StatusCode::OK).await
        }
        _ => {
            state.login_attempts.record_failure(&email);
            metrics::counter!(crate::metrics::AUTH_EVENTS_TOTAL, "event" => "login_failed")
                .increment(1);
            Err(wrong_credentials())
        }
    }
}

fn wrong_credentials() -> ApiError {
    ApiError::SignInFailed("wrong email or password")
}

/// Starts a session for `user` and answers with its cookies and the user.
async fn sign_in(state: &AppState, user: User, status: StatusCode) -> Result<Response, ApiError> {
    let tokens = IssuedTokens::new(&state.auth_config);
    state
        .auth
        .create_auth_session(&AuthSessionId::generate(), &user.id, &tokens.rows)
        .await?;
    Ok(with_cookies(
        status,
        state.auth_config.session_cookies(&tokens),
        json!({ "user": user }),
    ))
}

fn with_cookies(
    status: StatusCode,
    cookies: [HeaderValue; 2],
    body: serde_json::Value,
) -> Response {
    let mut response = (status, Json(body)).into_response();
    for c in cookies {
        response.headers_mut().append(SET_COOKIE, c);
    }
    response
}

/// Signs the browser out locally: both cookies cleared, with the error.
fn signed_out(state: &AppState, message: &'static str) -> Response {
    let mut response = ApiError::SignInFailed(message).into_response();
    for c in state.auth_config.clearing_cookies() {
        response.headers_mut().append(SET_COOKIE, c);
    }
    response
}

async fn refresh(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let Some(presented) = auth::cookie(&headers, state.auth_config.refresh_cookie()) else {
        return Ok(signed_out(&state, "not signed in"));
    };
    let hash = auth::hash_token(presented);
    let now = UnixMillis::now();
    let Some(info) = state.auth.token(&hash).await? else {
        return Ok(signed_out(&state, "not signed in"));
    };
    if info.kind != TokenKind::Refresh || info.session_revoked || info.expires_at <= now {
        return Ok(signed_out(&state, "session ended; sign in again"));
    }
    let tokens = IssuedTokens::new(&state.auth_config);
    match state
        .auth
        .rotate_refresh_token(&hash, now, &tokens.rows)
        .await?
    {
        Rotation::Rotated => {}
        Rotation::AlreadyRotated { at }
            if now.0.saturating_sub(at.0) <= state.auth_config.refresh_grace.as_millis() as i64 =>
        {
            // A concurrent refresh (another tab) rotated it a moment ago.
            if !state
                .auth
                .issue_tokens(&info.session, &info.user, &tokens.rows)
                .await?
            {
                return Ok(signed_out(&state, "session ended; sign in again"));
            }
            metrics::counter!(crate::metrics::AUTH_EVENTS_TOTAL, "event" => "refresh_grace")
                .increment(1);
        }
        Rotation::AlreadyRotated { .. } => {
            tracing::warn!(user = %info.user, session = %info.session, "refresh token reused; revoking its session");
            metrics::counter!(crate::metrics::AUTH_EVENTS_TOTAL, "event" => "refresh_reuse")
                .increment(1);
            end_session(&state, &info.session, "signed out: session revoked").await?;
            return Ok(signed_out(
                &state,
                "this sign-in was revoked; sign in again",
            ));
        }
        Rotation::Invalid => return Ok(signed_out(&state, "session ended; sign in again")),
    }
    let user = state
        .auth
        .user(&info.user)
        .await?
        .ok_or(ApiError::Unauthorized)?;
    metrics::counter!(crate::metrics::AUTH_EVENTS_TOTAL, "event" => "refresh").increment(1);
    Ok(with_cookies(
        StatusCode::OK,
        state.auth_config.session_cookies(&tokens),
        json!({ "user": user }),
    ))
}

/// Revokes one sign-in and closes the sockets opened under it.
async fn end_session(
    state: &AppState,
    session: &AuthSessionId,
    reason: &'static str,
) -> Result<(), ApiError> {
    state
        .auth
        .revoke_auth_session(session, UnixMillis::now())
        .await?;
    let message = ControlMessage::CloseSessions {
        target: SessionTarget::AuthSession(session.clone()),
        frame: CloseFrame::new(CloseCode::Unauthorized, reason),
    };
    control::apply_everywhere(state, message).await;
    Ok(())
}

/// Signs this browser out. An expired access cookie still names its
/// session, which is enough to end it: ending a session grants nothing.
async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    if let Some(token) = auth::cookie(&headers, state.auth_config.access_cookie())
        && let Some(info) = state.auth.token(&auth::hash_token(token)).await?
        && info.kind == TokenKind::Access
    {
        end_session(&state, &info.session, "signed out").await?;
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    for c in state.auth_config.clearing_cookies() {
        response.headers_mut().append(SET_COOKIE, c);
    }
    Ok(response)
}

/// Signs the user out on every device and closes all their sockets.
async fn logout_all(State(state): State<AppState>, me: CurrentUser) -> Result<Response, ApiError> {
    state
        .auth
        .revoke_user_sessions(&me.user.id, UnixMillis::now())
        .await?;
    let message = ControlMessage::CloseSessions {
        target: SessionTarget::User(me.user.id.clone()),
        frame: CloseFrame::new(CloseCode::Unauthorized, "signed out everywhere"),
    };
    control::apply_everywhere(&state, message).await;
    let mut response = StatusCode::NO_CONTENT.into_response();
    for c in state.auth_config.clearing_cookies() {
        response.headers_mut().append(SET_COOKIE, c);
    }
    Ok(response)
}

async fn me(State(state): State<AppState>, me: CurrentUser) -> Result<impl IntoResponse, ApiError> {
    let workspaces = state.auth.workspaces_of(&me.user.id).await?;
    let quotas = crate::quotas::of_account(&state, &me.user.id).await?;
    Ok(Json(json!({
        "user": me.user,
        "workspaces": workspaces,
        "signupOpen": state.auth_config.signup_open,
        "usage": quotas.usage,
        "quotas": quotas.quotas,
    })))
}

#[derive(Debug, Deserialize)]
struct ProfileBody {
    name: Option<String>,
    color: Option<String>,
}

/// Changes the signed-in user's display name and presence colour.
async fn update_me(
    State(state): State<AppState>,
    me: CurrentUser,
    body: Result<Json<ProfileBody>, axum::extract::rejection::JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Json(body) = body?;
    let name = match body.name {
        Some(n) => valid_name(&n)?,
        None => me.user.name.clone(),
    };
    let color = match body.color {
        Some(c) => valid_color(&c)?,
        None => me.user.color.clone(),
    };
    let user = state
        .auth
        .update_profile(&me.user.id, &name, &color)
        .await?;
    Ok(Json(json!({ "user": user })))
}

/// `#rrggbb`: the only form Tiptap's caret extension accepts.
fn valid_color(raw: &str) -> Result<String, ApiError> {
    let c = raw.trim();
    let ok = c.len() == 7 && c.starts_with('#') && c[1..].bytes().all(|b| b.is_ascii_hexdigit());
    if !ok {
        return Err(ApiError::BadRequest("colour must look like #1e6fd9".into()));
    }
    Ok(c.to_ascii_lowercase())
}
