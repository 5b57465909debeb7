//! The Prometheus recorder and the metric names this crate owns (the hub's
//! are in `quire_hub::metrics`).

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const BYTES_IN_TOTAL: &str = "quire_bytes_in_total";
pub const BYTES_OUT_TOTAL: &str = "quire_bytes_out_total";
pub const HTTP_REQUESTS_TOTAL: &str = "quire_http_requests_total";
/// Sign-ups, sign-ins (and failures, locks), refreshes (grace, reuse).
pub const AUTH_EVENTS_TOTAL: &str = "quire_auth_events_total";
/// WebSocket upgrades refused before the upgrade, by HTTP status.
pub const WS_REFUSED_TOTAL: &str = "quire_ws_refused_total";
pub const NODE_INFO: &str = "quire_node_info";
/// Open HTTP connections (WebSockets included), by `state`: `served`, or
/// `shed` (being answered 503 because the node is full).
pub const HTTP_CONNECTIONS: &str = "quire_http_connections";
/// Connections and requests turned away, by the `limit` they hit.
pub const HTTP_REFUSED_TOTAL: &str = "quire_http_refused_total";
/// Connections closed and requests answered 408 because the client was too
/// slow, by `during`: `request_head` (incl. idle keep-alive), `request_body`.
pub const HTTP_TIMEOUTS_TOTAL: &str = "quire_http_timeouts_total";
/// Each configured limit, by `name` (the flag's name in snake case).
pub const LIMIT: &str = "quire_limit";
pub const STORE_QUERIES_TOTAL: &str = "quire_store_queries_total";
/// Other nodes' access changes received, by result (applied, malformed).
pub const CONTROL_MESSAGES_TOTAL: &str = "quire_control_messages_total";
/// Re-checks of every live session after control messages may have been lost.
pub const CONTROL_RECHECKS_TOTAL: &str = "quire_control_rechecks_total";

/// `quire_node_info{node, store, bus} 1`: which node a scrape came from and
/// what it runs on (the usual Prometheus "info" pattern, so the id is not a
/// label on every series).
pub fn node_info(node: &crate::backends::NodeInfo) {
    metrics::gauge!(NODE_INFO, "node" => node.id.to_string(), "store" => node.store, "bus" => node.bus).set(1.0);
}

/// `quire_limit{name}`: the limits this node runs with, so that dashboards
/// can draw them beside what they bound.
pub fn limits(config: &crate::config::ServeConfig) {
    let limits = [
        ("max_connections", config.max_connections.into()),
        (
            "max_connections_per_address",
            config.max_connections_per_address.into(),
        ),
        (
            "http_header_timeout_secs",
            config.http_header_timeout_secs as f64,
        ),
        (
            "max_request_body_bytes",
            config.max_request_body_bytes as f64,
        ),
        ("max_frame_bytes", config.max_frame_bytes as f64),
        ("max_document_bytes", config.max_document_bytes as f64),
        ("outgoing_queue", config.outgoing_queue as f64),
        ("outgoing_queue_bytes", config.outgoing_queue_bytes as f64),
        ("inbound_queue_bytes", config.inbound_queue_bytes as f64),
        ("append_queue_bytes", config.append_queue_bytes as f64),
        (
            "max_document_memory_bytes",
            config.max_document_memory_bytes as f64,
        ),
        (
            "max_nesting_depth",
            quire_hub::update_scan::MAX_NESTING as f64,
        ),
        ("max_awareness_bytes", config.max_awareness_bytes as f64),
        (
            "ws_write_timeout_secs",
            config.ws_write_timeout().as_secs_f64(),
        ),
        ("pong_timeout_secs", config.pong_timeout().as_secs_f64()),
        // 0 for "no limit", as on the command line.
        (
            "max_documents_per_account",
            config.max_documents_per_account as f64,
        ),
        ("max_account_bytes", config.max_account_bytes as f64),
    ];
    for (name, value) in limits {
        metrics::gauge!(LIMIT, "name" => name).set(value);
    }
}

/// The recorder is process-global; tests that build several apps share it.
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let latency = [
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ];
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &latency)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(quire_hub::metrics::APPEND_BATCH_SIZE.into()),
                        &[
                            1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
                        ],
                    )
                })
                .and_then(|b| {
                    // Loopback fan-out takes a fraction of a millisecond.
                    b.set_buckets_for_metric(
                        Matcher::Full(quire_hub::metrics::BUS_LAG_SECONDS.into()),
                        &[
                            0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1,
                            0.25, 1.0,
                        ],
                    )
                })
                .expect("static bucket configuration is valid")
                .install_recorder()
                .expect("no other metrics recorder is installed");
            quire_hub::metrics::describe();
            quire_bus::metrics::describe();
            metrics::describe_gauge!(
                NODE_INFO,
                "Always 1; labels name this node and its store and bus"
            );
            metrics::describe_counter!(
                STORE_QUERIES_TOTAL,
                "Statements this node sent to its database (flat while idle: no polling)"
            );
            metrics::describe_counter!(
                CONTROL_MESSAGES_TOTAL,
                "Access changes received from other nodes over the bus, by result (applied, malformed)"
            );
            metrics::describe_counter!(
                CONTROL_RECHECKS_TOTAL,
                "Times every live session was re-checked against the store because access changes may have been missed"
            );
            metrics::describe_gauge!(
                HTTP_CONNECTIONS,
                "Open HTTP connections, WebSockets included, by state (served, or shed: answered 503)"
            );
            metrics::describe_counter!(
                HTTP_REFUSED_TOTAL,
                "HTTP connections and requests turned away, by the limit they hit"
            );
            metrics::describe_counter!(
                HTTP_TIMEOUTS_TOTAL,
                "Connections closed (request_head, incl. idle keep-alive) or requests answered 408 (request_body) because the client was too slow"
            );
            metrics::describe_gauge!(
                LIMIT,
                "Configured limits, by name (the flag's name in snake case)"
            );
            metrics::describe_counter!(
                BYTES_IN_TOTAL,
                metrics::Unit::Bytes,
                "WebSocket bytes received"
            );
            metrics::describe_counter!(
                BYTES_OUT_TOTAL,
                metrics::Unit::Bytes,
                "WebSocket bytes sent"
            );
            let upkeep = handle.clone();
            std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(std::time::Duration::from_secs(5));
                        upkeep.run_upkeep();
                    }
                })
                .expect("spawn metrics upkeep thread");
            handle
        })
        .clone()
}
