//! The Quire server: HTTP routes, the WebSocket endpoint, the embedded web
//! app, and operations endpoints, on top of the hub.
//!
//! `app(state)` builds the router and `serve(listener, state, shutdown)` runs
//! it, so tests start the real server in-process on port 0.

pub mod api;
pub mod assets;
pub mod auth;
pub mod auth_api;
pub mod backends;
pub mod client_addr;
pub mod config;
pub mod connections;
pub mod control;
pub mod error;
pub mod limits;
pub mod listener;
pub mod metrics;
pub mod ops;
pub mod password;
pub mod quotas;
pub mod request_limits;
pub mod sharing;
pub mod workspaces;
pub mod ws;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::routing::{any, get};
use metrics_exporter_prometheus::PrometheusHandle;
use quire_bus::{Bus, LocalBus};
use quire_hub::Hub;
use quire_store::{AuthStore, SqliteOptions, SqliteStore, Store};
use quire_types::NodeId;
use tokio::net::TcpListener;
use tower_governor::GovernorLayer;
use tower_governor::governor::GovernorConfigBuilder;
use tower_http::csrf::CsrfLayer;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::auth::AuthConfig;
use crate::backends::NodeInfo;
use crate::client_addr::ClientKeyExtractor;
use crate::connections::{ConnectionLimits, Connections, SHED_BUDGET};
use crate::limits::{KeyedBucket, LoginAttempts};

pub use config::{Cli, Command, ServeConfig};

#[derive(Clone)]
pub struct AppState {
    pub hub: Hub,
    /// The same store as the hub's, seen through its accounts-and-access side.
    pub auth: Arc<dyn AuthStore>,
    pub config: Arc<ServeConfig>,
    pub auth_config: Arc<AuthConfig>,
    pub login_attempts: Arc<LoginAttempts>,
    pub ws_connects: Arc<KeyedBucket>,
    /// Open connections, in all and per client address (`listener.rs`).
    pub connections: Arc<Connections>,
    pub metrics: PrometheusHandle,
    pub node: Arc<NodeInfo>,
}

impl AppState {
    /// The embedded configuration: SQLite in `config.data_dir`, in-process bus.
    pub async fn embedded(config: ServeConfig) -> anyhow::Result<AppState> {
        let lock = backends::lock_data_dir(&config.data_dir).await?;
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::open(&config.data_dir.join("quire.db"), SqliteOptions::default()).await?,
        );
        let id = NodeId::generate();
        let bus: Arc<dyn Bus> = Arc::new(LocalBus::new().node(id.clone()));
        Self::with_node(config, store, bus, NodeInfo::embedded(id, lock))
    }

    /// What the configuration asks for: embedded by default, PostgreSQL
    /// and Redis for a cluster node (see [`backends`]).
    pub async fn open(config: ServeConfig) -> anyhow::Result<AppState> {
        let b = backends::open(&config).await?;
        Self::with_node(config, b.store, b.bus, b.node)
    }

    pub fn new(
        config: ServeConfig,
        store: Arc<dyn Store>,
        bus: Arc<dyn Bus>,
    ) -> anyhow::Result<AppState> {
        let node = NodeInfo::new(bus.node_id().clone(), "custom", "custom");
        Self::with_node(config, store, bus, node)
    }

    fn with_node(
        config: ServeConfig,
        store: Arc<dyn Store>,
        bus: Arc<dyn Bus>,
        node: NodeInfo,
    ) -> anyhow::Result<AppState> {
        let metrics = metrics::handle();
        metrics::node_info(&node);
        metrics::limits(&config);
        let auth_config = AuthConfig::from_serve(&config)?;
        let mut hub_config = config.hub_config();
        hub_config.sole_writer = node.sole_writer;
        let hub = Hub::new(store.clone(), bus, hub_config);
        Ok(AppState {
            hub,
            auth: store,
            login_attempts: Arc::new(LoginAttempts::new(
                config.login_max_failures,
                std::time::Duration::from_secs(config.login_lockout_secs),
            )),
            ws_connects: Arc::new(KeyedBucket::new(
                config.ws_connect_burst,
                std::time::Duration::from_millis(config.ws_connect_period_ms),
            )),
            connections: Connections::new(ConnectionLimits {
                max_connections: config.max_connections as usize,
                max_per_address: config.max_connections_per_address as usize,
                shed_budget: SHED_BUDGET,
            }),
            auth_config: Arc::new(auth_config),
            config: Arc::new(config),
            metrics,
            node: Arc::new(node),
        })
    }
}

pub fn app(state: AppState) -> Router {
    let no_store = SetResponseHeaderLayer::overriding(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    // Sign-in and sign-up, limited per client address: the peer's, or behind
    // a trusted proxy the client it forwards (`client_addr.rs`; elsewhere
    // X-Forwarded-For can be forged, so it is ignored). Failed sign-ins are
    // also counted per account, in `auth_api::login`.
    let per_address = GovernorConfigBuilder::default()
        .key_extractor(ClientKeyExtractor)
        .period(std::time::Duration::from_millis(
            state.config.auth_period_ms.max(1),
        ))
        .burst_size(state.config.auth_burst.max(1))
        .finish()
        .expect("a positive period and burst");
    let credentials = auth_api::credential_router().layer(GovernorLayer::new(per_address));
    // Cross-site state-changing requests are refused (Sec-Fetch-Site, then
    // Origin against the request's host or the configured origins). Safe
    // methods pass, so the WebSocket upgrade checks Origin itself.
    let mut csrf = CsrfLayer::new();
    for origin in &state.auth_config.allowed_origins {
        csrf = csrf
            .add_trusted_origin(origin)
            .expect("origins were validated when the configuration was read");
    }
    let api = Router::new()
        .merge(api::router())
        .merge(auth_api::router())
        .merge(credentials)
        .merge(sharing::router())
        .merge(workspaces::router());
    let dynamic = Router::new()
        .nest("/api", api)
        .route("/ws/{document}", any(ws::sync_socket))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .layer(no_store);
    let routes = Router::new().merge(dynamic).fallback(assets::static_or_app);
    request_limits::apply(
        routes,
        state.config.max_request_body_bytes,
        std::time::Duration::from_secs(state.config.http_header_timeout_secs.max(1)),
    )
    .layer(csrf)
    .layer(SetResponseHeaderLayer::if_not_present(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    ))
    .layer(SetResponseHeaderLayer::if_not_present(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    ))
    // Clickjacking, for browsers that predate the CSP's frame-ancestors: no
    // response of ours is ever meant to be framed, errors included.
    .layer(SetResponseHeaderLayer::overriding(
        header::X_FRAME_OPTIONS,
        HeaderValue::from_static("DENY"),
    ))
    .with_state(state)
}

/// Serves until `shutdown` resolves, then shuts down gracefully: stop
/// accepting, close every socket with "going away", commit every pending
/// append, and give requests in flight a bounded time to finish
/// (`listener::DRAIN_TIMEOUT`).
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let hub = state.hub.clone();
    // Subscribed before the first socket is accepted, so no access change
    // published by another node from then on can miss this node's sessions.
    let control_events = hub
        .bus()
        .subscribe_control()
        .await
        .map_err(std::io::Error::other)?;
    let control = tokio::spawn(control::run(state.clone(), control_events));
    let housekeeping = tokio::spawn(housekeeping(state.clone()));
    let acceptor = listener::Acceptor::new(
        app(state.clone()),
        state.connections.clone(),
        listener::Settings::from_config(&state.config),
    );
    drop(state);
    let draining = acceptor.run(listener, shutdown).await;
    tracing::info!("shutting down: closing sockets and flushing pending writes");
    hub.shutdown().await;
    draining.finish().await;
    // Awaited, not only aborted: the task holds a clone of the state, and with
    // it the data folder's lock, until it is dropped. A server started again
    // in this process right after `serve` returns must find the lock free.
    housekeeping.abort();
    control.abort();
    let _ = housekeeping.await;
    let _ = control.await;
    Ok(())
}

/// Forgets what the in-memory limiters no longer need and deletes expired
/// tokens, once a minute.
async fn housekeeping(state: AppState) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
    loop {
        tick.tick().await;
        state.login_attempts.retain_recent();
        state.ws_connects.retain_recent();
        // A day of slack: a replayed, expired refresh token is still
        // recognised (and refused) as one of its family for a while.
        let before = quire_types::UnixMillis(quire_types::UnixMillis::now().0 - 86_400_000);
        if let Err(e) = state.auth.purge_expired_tokens(before).await {
            tracing::warn!(error = %e, "purging expired tokens failed");
        }
    }
}
