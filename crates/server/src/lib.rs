//! The Quire server: HTTP routes, the WebSocket endpoint, the embedded web
//! app, and operations endpoints, on top of the hub.
//!
//! `app(state)` builds the router and `serve(listener, state, shutdown)` runs
//! it, so tests start the real server in-process on port 0.

pub mod api;
pub mod assets;
pub mod config;
pub mod error;
pub mod metrics;
pub mod ops;
pub mod ws;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::routing::{any, get};
use metrics_exporter_prometheus::PrometheusHandle;
use quire_bus::{Bus, LocalBus};
use quire_hub::Hub;
use quire_store::{DocStore, SqliteOptions, SqliteStore};
use quire_types::NodeId;
use tokio::net::TcpListener;
use tower_http::set_header::SetResponseHeaderLayer;

pub use config::{Cli, Command, ServeConfig};

#[derive(Clone)]
pub struct AppState {
    pub hub: Hub,
    pub config: Arc<ServeConfig>,
    pub metrics: PrometheusHandle,
}

impl AppState {
    /// The embedded configuration: SQLite in `config.data_dir`, in-process bus.
    pub async fn embedded(config: ServeConfig) -> anyhow::Result<AppState> {
        std::fs::create_dir_all(&config.data_dir)?;
        let store: Arc<dyn DocStore> = Arc::new(
            SqliteStore::open(&config.data_dir.join("quire.db"), SqliteOptions::default()).await?,
        );
        let bus: Arc<dyn Bus> = Arc::new(LocalBus::new().node(NodeId::generate()));
        Ok(Self::new(config, store, bus))
    }

    pub fn new(config: ServeConfig, store: Arc<dyn DocStore>, bus: Arc<dyn Bus>) -> AppState {
        let metrics = metrics::handle();
        let hub = Hub::new(store, bus, config.hub_config());
        AppState {
            hub,
            config: Arc::new(config),
            metrics,
        }
    }
}

pub fn app(state: AppState) -> Router {
    let no_store = SetResponseHeaderLayer::overriding(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    let dynamic = Router::new()
        .nest("/api", api::router())
        .route("/ws/{document}", any(ws::sync_socket))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .layer(no_store);
    Router::new()
        .merge(dynamic)
        .fallback(assets::static_or_app)
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ))
        .with_state(state)
}

/// Serves until `shutdown` resolves, then shuts down gracefully: stop
/// accepting, close every socket with "going away", commit every pending
/// append.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let hub = state.hub.clone();
    let router = app(state);
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown.await;
        tracing::info!("shutting down: closing sockets and flushing pending writes");
        hub.shutdown().await;
    })
    .await?;
    Ok(())
}
