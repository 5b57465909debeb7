//! Signing in to a server that requires accounts (Quire since accounts
//! landed): sign up or sign in once, keep the access cookie, and create the
//! benchmark's documents before any client connects.
//!
//! A few JSON requests over plain HTTP/1.1 (`Connection: close`) are all the
//! generator needs, so they are written by hand rather than pulling an HTTP
//! client into the workspace.

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Where to send HTTP requests and how to look like the web app: the
/// server's `host:port`, the same-origin `Origin`, and the access cookie once
/// signed in.
#[derive(Debug, Clone)]
pub struct Account {
    host: String,
    origin: String,
    pub cookie: String,
}

/// `http://host:port` for a `ws://host:port/…` URL (and https for wss), the
/// `Origin` a browser on that server would send.
pub fn origin_of(ws_url: &str) -> anyhow::Result<String> {
    let (scheme, rest) = ws_url
        .split_once("://")
        .with_context(|| format!("not a URL: {ws_url}"))?;
    let scheme = match scheme {
        "ws" => "http",
        "wss" => "https",
        other => bail!("not a WebSocket URL scheme: {other}"),
    };
    let host = rest.split(['/', '?']).next().unwrap_or_default();
    Ok(format!("{scheme}://{host}"))
}

impl Account {
    /// Signs up as `email` with `password`, or signs in if the account
    /// exists.
    pub async fn sign_in(ws_url: &str, email: &str, password: &str) -> anyhow::Result<Account> {
        let origin = origin_of(ws_url)?;
        let Some(host) = origin.strip_prefix("http://") else {
            bail!(
                "signing in over https is not supported by the generator; use a plain http server"
            );
        };
        let mut account = Account {
            host: host.to_string(),
            origin: origin.clone(),
            cookie: String::new(),
        };
        let name = email.split('@').next().unwrap_or("bench");
        let signup = serde_json::json!({ "email": email, "password": password, "name": name });
        let mut resp = account.post("/api/auth/signup", &signup).await?;
        if resp.status == 409 {
            let login = serde_json::json!({ "email": email, "password": password });
            resp = account.post("/api/auth/login", &login).await?;
        }
        if !(200..300).contains(&resp.status) {
            bail!("signing in as {email}: HTTP {} {}", resp.status, resp.body);
        }
        account.cookie = resp
            .set_cookies
            .iter()
            .filter_map(|c| c.split(';').next())
            .find(|c| {
                c.split('=')
                    .next()
                    .is_some_and(|n| n.ends_with("quire_access"))
            })
            .map(str::to_string)
            .context("the sign-in response set no access cookie")?;
        Ok(account)
    }

    /// Creates a document with this id (an existing one is fine).
    pub async fn create_document(&self, id: &str) -> anyhow::Result<()> {
        let body = serde_json::json!({ "id": id, "title": id });
        let resp = self.post("/api/documents", &body).await?;
        if !(200..300).contains(&resp.status) && resp.status != 409 {
            bail!("creating document {id}: HTTP {} {}", resp.status, resp.body);
        }
        Ok(())
    }

    async fn post(&self, path: &str, body: &serde_json::Value) -> anyhow::Result<HttpResponse> {
        let body = body.to_string();
        let mut req = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nOrigin: {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n",
            self.host,
            self.origin,
            body.len()
        );
        if !self.cookie.is_empty() {
            req.push_str(&format!("Cookie: {}\r\n", self.cookie));
        }
        req.push_str("\r\n");
        req.push_str(&body);
        let mut stream = TcpStream::connect(&self.host)
            .await
            .with_context(|| format!("connecting to {}", self.host))?;
        stream.write_all(req.as_bytes()).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        HttpResponse::parse(&raw)
    }
}

#[derive(Debug)]
struct HttpResponse {
    status: u16,
    set_cookies: Vec<String>,
    body: String,
}

impl HttpResponse {
    fn parse(raw: &[u8]) -> anyhow::Result<HttpResponse> {
        let text = String::from_utf8_lossy(raw);
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .context("malformed HTTP response")?;
        let set_cookies = lines
            .filter_map(|l| l.split_once(':'))
            .filter(|(k, _)| k.trim().eq_ignore_ascii_case("set-cookie"))
            .map(|(_, v)| v.trim().to_string())
            .collect();
        Ok(HttpResponse {
            status,
            set_cookies,
            body: body.chars().take(200).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derives_the_origin() {
        assert_eq!(
            origin_of("ws://127.0.0.1:7420/ws").unwrap(),
            "http://127.0.0.1:7420"
        );
        assert_eq!(
            origin_of("wss://q.example/ws/x").unwrap(),
            "https://q.example"
        );
        assert!(origin_of("http://x").is_err());
    }

    #[test]
    fn parses_a_response() {
        let r = HttpResponse::parse(
            b"HTTP/1.1 201 Created\r\nset-cookie: quire_access=abc; HttpOnly\r\nSet-Cookie: quire_refresh=d\r\n\r\n{}",
        )
        .unwrap();
        assert_eq!(r.status, 201);
        assert_eq!(r.set_cookies.len(), 2);
        assert_eq!(r.body, "{}");
    }
}
