//! The web app, embedded in the binary (release builds) or read from
//! `web/dist` (debug builds). Hashed files under `/assets/` never change, so
//! they are cached forever; the HTML shell must be revalidated so a deploy
//! takes effect at once.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "../../web/dist"]
#[allow_missing = true]
struct WebApp;

const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const REVALIDATE: &str = "no-cache";

/// Shown when the binary was built before the web app.
const NOT_BUILT: &str = "<!doctype html><html><head><meta charset=\"utf-8\"><title>Quire</title></head>\
<body style=\"font-family:sans-serif;max-width:40em;margin:4em auto\"><h1>Quire</h1>\
<p>The server is running, but the web app was not built into this binary.</p>\
<p>Build it with <code>make web</code> (or <code>npm --prefix web ci &amp;&amp; npm --prefix web run build</code>) and rebuild the server.</p>\
</body></html>";

/// Content-Security-Policy for the HTML shell: scripts only from us; inline
/// styles are allowed because ProseMirror sets style attributes.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
img-src 'self' data: blob:; connect-src 'self' ws: wss:; font-src 'self' data:; \
object-src 'none'; base-uri 'self'; frame-ancestors 'none'; form-action 'self'";

pub async fn static_or_app(uri: Uri) -> Response {
    let path = uri.path().trim_start_matches('/');
    if !path.is_empty()
        && let Some(file) = WebApp::get(path)
    {
        return file_response(path, file);
    }
    if path.starts_with("assets/") || path.starts_with("api/") {
        return (
            StatusCode::NOT_FOUND,
            [(header::CACHE_CONTROL, "no-store")],
            "not found",
        )
            .into_response();
    }
    // Every other path is a page of the single-page app.
    match WebApp::get("index.html") {
        Some(file) => file_response("index.html", file),
        None => html_shell(Body::from(NOT_BUILT)),
    }
}

/// An embedded file with the headers its kind needs.
fn file_response(path: &str, file: rust_embed::EmbeddedFile) -> Response {
    let mime = file.metadata.mimetype();
    let etag = format!("\"{}\"", hex(&file.metadata.sha256_hash()));
    let body = Body::from(file.data.into_owned());
    let mut resp = if mime.starts_with("text/html") {
        html_shell(body)
    } else {
        let cache = if path.starts_with("assets/") {
            IMMUTABLE
        } else {
            REVALIDATE
        };
        let mut resp = Response::new(body);
        let h = resp.headers_mut();
        if let Ok(v) = HeaderValue::from_str(mime) {
            h.insert(header::CONTENT_TYPE, v);
        }
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
        resp
    };
    if let Ok(v) = HeaderValue::from_str(&etag) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    resp
}

/// The one place that decides the headers of an HTML page, however it was
/// reached (`/`, `/index.html`, an app route, the "not built" page): every
/// HTML response can run script, so every one carries the CSP, and none may
/// be cached without revalidation.
fn html_shell(body: Body) -> Response {
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(REVALIDATE));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    resp
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
