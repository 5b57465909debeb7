//! The accept loop: takes TCP connections, decides with [`Connections`]
//! whether to serve, shed or refuse each one, and serves HTTP/1.1 on it with
//! hyper, WebSocket upgrades included.
//!
//! It replaces `axum::serve`, which has no timeout on reading a request and
//! no connection limits: one address could hold thousands of half-sent
//! requests, forever. Here:
//!
//! - a connection must deliver each complete request head within
//!   `--http-header-timeout-secs`, counted from when the server starts
//!   waiting for it: the first request, and every later one on a kept-alive
//!   connection (so an idle keep-alive connection is closed after the same
//!   time); dripping bytes does not extend it;
//! - a request head is at most [`MAX_HEAD_BYTES`] (larger: 431);
//! - one client address holds at most `--max-connections-per-address`
//!   connections; past that, a new one is closed at once, unread (answering
//!   it would cost what the cap protects);
//! - the node serves at most `--max-connections`; past that, up to
//!   [`SHED_BUDGET`](crate::connections::SHED_BUDGET) more are read and answered 503 with `Retry-After`
//!   (an upgrade gets that 503 too), and beyond even that, closed at once.
//!   Nobody already connected is slowed down or dropped;
//! - connections from `--trusted-proxies` are not capped per address; each
//!   request they carry is, per forwarded client ([`ClientAddr`]), and a
//!   WebSocket keeps its client's place until it closes.
//!
//! A connection's [`Slot`] lives inside its socket ([`Counted`]), so it is
//! held exactly as long as the socket, including after a WebSocket upgrade
//! has taken the socket away from hyper.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures_util::future::BoxFuture;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::client_addr::{ClientAddr, TrustedProxies, canonical};
use crate::config::ServeConfig;
use crate::connections::{Admission, Connections, Refusal, Slot};
use crate::error::ApiError;
use crate::metrics;

/// Largest request head (request line and headers) read; a larger one is
/// answered 431. A browser's, cookies included, is a few KiB; hyper's
/// default (~400 KiB) would let every slow connection hold that much.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Once shutting down, how long requests in flight get to finish before
/// their connections are dropped. (WebSockets are closed by the hub first.)
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// After a failed `accept` that is not one connection's problem (out of
/// file descriptors, say), wait this long before the next, instead of
/// spinning; hyper's old server did the same.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_secs(1);

/// What the accept loop needs from the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub header_timeout: Duration,
    pub proxies: Arc<TrustedProxies>,
}

impl Settings {
    pub fn from_config(config: &ServeConfig) -> Self {
        Settings {
            header_timeout: Duration::from_secs(config.http_header_timeout_secs.max(1)),
            proxies: Arc::new(TrustedProxies::new(config.trusted_proxies.clone())),
        }
    }
}

pub struct Acceptor {
    router: Router,
    connections: Arc<Connections>,
    proxies: Arc<TrustedProxies>,
    http: http1::Builder,
    shed_http: http1::Builder,
    tracker: TaskTracker,
    /// Asks every connection to finish its request and close.
    graceful: CancellationToken,
    /// Drops every connection that is still open after [`DRAIN_TIMEOUT`].
    abort: CancellationToken,
}

/// The connections still open once accepting has stopped.
pub struct Draining {
    tracker: TaskTracker,
    abort: CancellationToken,
}

impl Acceptor {
    pub fn new(router: Router, connections: Arc<Connections>, settings: Settings) -> Self {
        let mut http = http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(settings.header_timeout)
            .max_buf_size(MAX_HEAD_BYTES);
        let mut shed_http = http.clone();
        shed_http.keep_alive(false);
        Acceptor {
            router,
            connections,
            proxies: settings.proxies,
            http,
            shed_http,
            tracker: TaskTracker::new(),
            graceful: CancellationToken::new(),
            abort: CancellationToken::new(),
        }
    }

    /// Accepts until `shutdown` resolves, then stops accepting (the
    /// listener is closed) and asks every connection to finish.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Draining {
        let mut shutdown = pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = &mut shutdown => break,
            };
            match accepted {
                Ok((tcp, peer)) => self.connection(tcp, peer),
                Err(e) if is_connection_error(&e) => {}
                Err(e) => {
                    tracing::error!(error = %e, "accept failed");
                    tokio::select! {
                        () = tokio::time::sleep(ACCEPT_ERROR_BACKOFF) => {}
                        () = &mut shutdown => break,
                    }
                }
            }
        }
        drop(listener);
        self.graceful.cancel();
        self.tracker.close();
        Draining {
            tracker: self.tracker,
            abort: self.abort,
        }
    }

    fn connection(&self, tcp: TcpStream, peer: SocketAddr) {
        let ip = canonical(peer.ip());
        let from_proxy = self.proxies.trusts(ip);
        match self.connections.admit(ip, !from_proxy) {
            // Dropped unread: the kernel closes it (a reset if the client
            // had already sent something).
            Admission::Refuse(refusal) => refusal.count(),
            Admission::Shed(slot) => {
                Refusal::MaxConnections.count();
                let io = TokioIo::new(Counted::new(tcp, slot));
                let conn = self
                    .shed_http
                    .serve_connection(io, hyper::service::service_fn(shed));
                let abort = self.abort.clone();
                self.tracker.spawn(async move {
                    tokio::select! {
                        result = conn => note_end(result),
                        () = abort.cancelled() => {}
                    }
                });
            }
            Admission::Serve(slot) => {
                // Small frames (an ack, then another user's keystroke) must
                // not wait for Nagle's algorithm: with it, p99 fan-out
                // latency was ~40 ms (docs/benchmarks.md). The pump already
                // batches frames per flush.
                if let Err(e) = tcp.set_nodelay(true) {
                    tracing::debug!(error = %e, "could not set TCP_NODELAY");
                }
                let io = Counted::new(tcp, slot);
                let service = ConnectionService {
                    router: self.router.clone(),
                    peer,
                    forwarded: from_proxy.then(|| Forwarded {
                        proxies: self.proxies.clone(),
                        connections: self.connections.clone(),
                    }),
                    upgraded_client: io.upgraded_client.clone(),
                };
                let conn = self
                    .http
                    .serve_connection(TokioIo::new(io), service)
                    .with_upgrades();
                let graceful = self.graceful.clone();
                let abort = self.abort.clone();
                self.tracker.spawn(async move {
                    let mut conn = pin!(conn);
                    let mut asked = false;
                    loop {
                        tokio::select! {
                            result = conn.as_mut() => {
                                note_end(result);
                                break;
                            }
                            () = graceful.cancelled(), if !asked => {
                                asked = true;
                                conn.as_mut().graceful_shutdown();
                            }
                            () = abort.cancelled() => break,
                        }
                    }
                });
            }
        }
    }
}

impl Draining {
    /// Waits for the connections to finish, [`DRAIN_TIMEOUT`] at most, then
    /// drops the rest.
    pub async fn finish(self) {
        if tokio::time::timeout(DRAIN_TIMEOUT, self.tracker.wait())
            .await
            .is_ok()
        {
            return;
        }
        tracing::warn!(
            open = self.tracker.len(),
            "connections still open after the drain timeout; dropping them"
        );
        self.abort.cancel();
        // Each task drops its connection as soon as it sees the token.
        if tokio::time::timeout(DRAIN_TIMEOUT, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::error!(open = self.tracker.len(), "connection tasks did not stop");
        }
    }
}

fn note_end(result: hyper::Result<()>) {
    match result {
        Ok(()) => {}
        Err(e) if e.is_timeout() => {
            ::metrics::counter!(metrics::HTTP_TIMEOUTS_TOTAL, "during" => "request_head")
                .increment(1);
        }
        Err(e) => tracing::debug!(error = %e, "connection ended with an error"),
    }
}

/// Per axum's `serve`: errors that concern one connection, not the listener.
fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

/// The whole service of a connection the node has no room for.
async fn shed(_req: hyper::Request<Incoming>) -> Result<Response, Infallible> {
    Ok(ApiError::Overloaded.into_response())
}

/// What a connection from a trusted proxy needs to cap its clients.
#[derive(Clone)]
struct Forwarded {
    proxies: Arc<TrustedProxies>,
    connections: Arc<Connections>,
}

/// Serves one connection's requests with the router, telling it who they
/// come from ([`ConnectInfo`], [`ClientAddr`]).
#[derive(Clone)]
struct ConnectionService {
    router: Router,
    peer: SocketAddr,
    /// Set when the peer is a trusted proxy.
    forwarded: Option<Forwarded>,
    /// Where a forwarded client's slot goes when its request becomes a
    /// WebSocket: into the socket, to live as long as it.
    upgraded_client: Arc<Mutex<Option<Slot>>>,
}

impl hyper::service::Service<hyper::Request<Incoming>> for ConnectionService {
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn call(&self, req: hyper::Request<Incoming>) -> Self::Future {
        let mut req = req.map(Body::new);
        req.extensions_mut().insert(ConnectInfo(self.peer));
        let (client, slot) = match &self.forwarded {
            None => (canonical(self.peer.ip()), None),
            Some(f) => {
                let client = f.proxies.client_of(self.peer.ip(), req.headers());
                match f.connections.forwarded(client) {
                    Some(slot) => (client, Some(slot)),
                    None => {
                        Refusal::MaxConnectionsPerAddress.count();
                        let refused = ApiError::TooManyConnections.into_response();
                        return Box::pin(std::future::ready(Ok(refused)));
                    }
                }
            }
        };
        req.extensions_mut().insert(ClientAddr(client));
        let router = self.router.clone();
        let upgraded_client = self.upgraded_client.clone();
        Box::pin(async move {
            let response = router.oneshot(req).await?;
            if response.status() == StatusCode::SWITCHING_PROTOCOLS
                && let Some(slot) = slot
            {
                *upgraded_client.lock().unwrap_or_else(|e| e.into_inner()) = Some(slot);
            }
            Ok(response)
        })
    }
}

/// A TCP stream that holds its connection's places in [`Connections`] and
/// gives them back when it is dropped (by hyper, or by the WebSocket that
/// took it over).
struct Counted {
    tcp: TcpStream,
    _slot: Slot,
    upgraded_client: Arc<Mutex<Option<Slot>>>,
}

impl Counted {
    fn new(tcp: TcpStream, slot: Slot) -> Self {
        Counted {
            tcp,
            _slot: slot,
            upgraded_client: Arc::default(),
        }
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}
