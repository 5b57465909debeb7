//! Who is asking: opaque session tokens in cookies, password hashing, and the
//! origin policy shared by CSRF and WebSocket checks. Handlers never read a
//! cookie themselves: they take a [`CurrentUser`], and the extractor refuses
//! the request (401) when there is none.
//!
//! Tokens are 32 random bytes, base64url; the store keeps only their SHA-256.
//! The access token lives at most 15 minutes; the refresh token is scoped to
//! `/api/auth/refresh` so that no other request carries it, and is replaced at
//! every use (see `auth_api::refresh` for reuse detection).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Argon2, Params};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use quire_store::{NewToken, TokenKind, User};
use quire_types::{AuthSessionId, UnixMillis};
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::config::ServeConfig;
use crate::error::ApiError;

/// Where the refresh cookie is sent: only to the one route that uses it.
pub const REFRESH_PATH: &str = "/api/auth/refresh";
/// The access token's longest lifetime, whatever the configuration says.
const MAX_ACCESS_TTL: Duration = Duration::from_secs(15 * 60);

/// Authentication settings, derived once from [`ServeConfig`].
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// Cookies get `Secure` and the `__Host-`/`__Secure-` name prefixes.
    pub secure: bool,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    pub refresh_grace: Duration,
    pub signup_open: bool,
    pub fast_hashing: bool,
    /// Exact origins (`scheme://host[:port]`) allowed besides the request's
    /// own. Empty: only same-origin requests.
    pub allowed_origins: Vec<String>,
}

impl AuthConfig {
    pub fn from_serve(c: &ServeConfig) -> anyhow::Result<AuthConfig> {
        let mut allowed = Vec::new();
        let mut https = false;
        if let Some(url) = &c.public_url {
            let origin = origin_of(url)
                .ok_or_else(|| anyhow::anyhow!("--public-url {url:?} is not an http(s) URL"))?;
            https = origin.starts_with("https://");
            allowed.push(origin);
        }
        for o in &c.allowed_origins {
            let o = o.trim();
            if o.is_empty() {
                continue;
            }
            let origin = origin_of(o)
                .ok_or_else(|| anyhow::anyhow!("allowed origin {o:?} is not an http(s) origin"))?;
            allowed.push(origin);
        }
        Ok(AuthConfig {
            secure: https || c.secure_cookies,
            access_ttl: Duration::from_secs(c.access_token_secs.max(1)).min(MAX_ACCESS_TTL),
            refresh_ttl: Duration::from_secs(c.refresh_token_days.max(1) * 86_400),
            refresh_grace: Duration::from_secs(c.refresh_grace_secs),
            signup_open: !c.disable_signup,
            fast_hashing: c.insecure_fast_password_hashing,
            allowed_origins: allowed,
        })
    }

    pub fn access_cookie(&self) -> &'static str {
        // `__Host-` pins the cookie to this exact host, path `/`, Secure.
        if self.secure {
            "__Host-quire_access"
        } else {
            "quire_access"
        }
    }

    pub fn refresh_cookie(&self) -> &'static str {
        // Path is not `/`, so `__Host-` is not allowed; `__Secure-` is.
        if self.secure {
            "__Secure-quire_refresh"
        } else {
            "quire_refresh"
        }
    }

    fn cookie(&self, name: &str, value: &str, path: &str, max_age: Duration) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        let v = format!(
            "{name}={value}; Path={path}; Max-Age={}; HttpOnly; SameSite=Lax{secure}",
            max_age.as_secs()
        );
        HeaderValue::from_str(&v).expect("cookie values are base64url")
    }

    /// `Set-Cookie` values that sign the browser in with these tokens.
    pub fn session_cookies(&self, tokens: &IssuedTokens) -> [HeaderValue; 2] {
        [
            self.cookie(self.access_cookie(), &tokens.access, "/", self.access_ttl),
            self.cookie(
                self.refresh_cookie(),
                &tokens.refresh,
                REFRESH_PATH,
                self.refresh_ttl,
            ),
        ]
    }

    /// `Set-Cookie` values that delete both cookies.
    pub fn clearing_cookies(&self) -> [HeaderValue; 2] {
        [
            self.cookie(self.access_cookie(), "", "/", Duration::ZERO),
            self.cookie(self.refresh_cookie(), "", REFRESH_PATH, Duration::ZERO),
        ]
    }

    /// Whether a browser request from `origin` may act on this server,
    /// reached as `host`. Exact comparison: a look-alike such as
    /// `http://quire.example.evil.test` never matches, and `null` (sandboxed
    /// frames, `file:` pages) never does either.
    pub fn origin_allowed(&self, origin: &str, host: Option<&str>) -> bool {
        if self.allowed_origins.iter().any(|o| o == origin) {
            return true;
        }
        if !self.allowed_origins.is_empty() {
            return false;
        }
        let Some(host) = host else { return false };
        origin == format!("http://{host}") || origin == format!("https://{host}")
    }
}

/// `scheme://host[:port]` of an http(s) URL, lower-cased, or `None`.
fn origin_of(url: &str) -> Option<String> {
    let url = url.trim().trim_end_matches('/');
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next()?;
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    Some(format!("{scheme}://{}", authority.to_ascii_lowercase()))
}

/// A fresh unguessable token: 256 random bits, base64url without padding.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random source works");
    URL_SAFE_NO_PAD.encode(bytes)
}

/// What the store keeps instead of a token: its SHA-256, in hex.
pub fn hash_token(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    let mut hex = String::with_capacity(64);
    for b in digest {
        hex.push_str(&format!("{b:02x}"));
    }
    hex
}

/// A new access + refresh pair: the tokens for the cookies, the hashes for
/// the store.
pub struct IssuedTokens {
    pub access: String,
    pub refresh: String,
    pub rows: [NewToken; 2],
}

impl IssuedTokens {
    pub fn new(config: &AuthConfig) -> IssuedTokens {
        let now = UnixMillis::now().0;
        let (access, refresh) = (new_token(), new_token());
        let rows = [
            NewToken {
                hash: hash_token(&access),
                kind: TokenKind::Access,
                expires_at: UnixMillis(now + config.access_ttl.as_millis() as i64),
            },
            NewToken {
                hash: hash_token(&refresh),
                kind: TokenKind::Refresh,
                expires_at: UnixMillis(now + config.refresh_ttl.as_millis() as i64),
            },
        ];
        IssuedTokens {
            access,
            refresh,
            rows,
        }
    }
}

/// Reads one cookie's value from the request headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

fn argon2(fast: bool) -> Argon2<'static> {
    if fast {
        // Test-only: the smallest parameters Argon2 accepts.
        Argon2::from(Params::new(8, 1, 1, None).expect("valid test parameters"))
    } else {
        // Argon2id, m = 19 MiB, t = 2, p = 1: the OWASP recommendation, and
        // the crate's defaults.
        Argon2::from(Params::DEFAULT)
    }
}

/// Hashes a password into a PHC string, off the async runtime: Argon2 is
/// built to take tens of milliseconds of CPU and memory.
pub async fn hash_password(password: String, fast: bool) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || {
        argon2(fast)
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| ApiError::Internal(format!("hashing a password: {e}")))
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?
}

/// Checks a password against a PHC string (its own parameters apply), off the
/// async runtime. With no stored hash (unknown email) it still spends the
/// same work on a dummy hash, so that timing does not tell whether an account
/// exists.
pub async fn verify_password(password: String, stored: Option<String>, fast: bool) -> bool {
    tokio::task::spawn_blocking(move || {
        let hash = stored.unwrap_or_else(|| dummy_hash(fast).to_string());
        argon2(fast)
            .verify_password(password.as_bytes(), hash.as_str())
            .is_ok()
    })
    .await
    .unwrap_or(false)
}

fn dummy_hash(fast: bool) -> &'static str {
    static SLOW: OnceLock<String> = OnceLock::new();
    static FAST: OnceLock<String> = OnceLock::new();
    let cell = if fast { &FAST } else { &SLOW };
    cell.get_or_init(|| {
        argon2(fast)
            .hash_password(b"quire-dummy-password")
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

/// The signed-in user of a request, from a valid, unexpired access cookie of
/// a session that is not revoked.
#[derive(Debug, Clone)]
pub struct CurrentUser {
    pub user: User,
    pub session: AuthSessionId,
}

impl CurrentUser {
    /// Authenticates from request headers (also used by the WebSocket
    /// upgrade, before it joins the document).
    pub async fn from_headers(
        state: &AppState,
        headers: &HeaderMap,
    ) -> Result<CurrentUser, ApiError> {
        let token =
            cookie(headers, state.auth_config.access_cookie()).ok_or(ApiError::Unauthorized)?;
        let info = state
            .auth
            .token(&hash_token(token))
            .await?
            .ok_or(ApiError::Unauthorized)?;
        if info.kind != TokenKind::Access
            || info.session_revoked
            || info.expires_at <= UnixMillis::now()
        {
            return Err(ApiError::Unauthorized);
        }
        let user = state
            .auth
            .user(&info.user)
            .await?
            .ok_or(ApiError::Unauthorized)?;
        Ok(CurrentUser {
            user,
            session: info.session,
        })
    }
}

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        CurrentUser::from_headers(state, &parts.headers).await
    }
}

/// Shared handle type for the auth store in [`AppState`].
pub type SharedAuthStore = Arc<dyn quire_store::AuthStore>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hashes_are_hex() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43, "32 bytes in base64url without padding");
        let h = hash_token(&a);
        assert_eq!(h.len(), 64);
        assert!(h.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(h, hash_token(&a));
    }

    #[test]
    fn cookies_are_parsed_by_exact_name() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("x_quire_access=no; quire_access=yes; other=1"),
        );
        assert_eq!(cookie(&h, "quire_access"), Some("yes"));
        assert_eq!(cookie(&h, "missing"), None);
    }

    #[test]
    fn origins_match_exactly() {
        let mut c = AuthConfig {
            secure: false,
            access_ttl: MAX_ACCESS_TTL,
            refresh_ttl: MAX_ACCESS_TTL,
            refresh_grace: Duration::ZERO,
            signup_open: true,
            fast_hashing: true,
            allowed_origins: vec![],
        };
        let host = Some("127.0.0.1:7420");
        assert!(c.origin_allowed("http://127.0.0.1:7420", host));
        assert!(!c.origin_allowed("http://127.0.0.1:7420.evil.test", host));
        assert!(!c.origin_allowed("null", host));
        assert!(!c.origin_allowed("http://127.0.0.1:7421", host));
        c.allowed_origins = vec![origin_of("https://Docs.Example.com/app").unwrap()];
        assert_eq!(c.allowed_origins[0], "https://docs.example.com");
        assert!(c.origin_allowed("https://docs.example.com", Some("internal:8080")));
        assert!(
            !c.origin_allowed("http://127.0.0.1:7420", host),
            "a configured list replaces same-host"
        );
        assert_eq!(origin_of("ftp://x"), None);
        assert_eq!(origin_of("https://user@x"), None);
    }
}
