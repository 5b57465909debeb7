//! Metric names, in one place so dashboards and tests agree on them.

pub const CONNECTIONS: &str = "quire_connections";
pub const DOCUMENTS_LIVE: &str = "quire_documents_live";
pub const DOCUMENT_LOADS_TOTAL: &str = "quire_document_loads_total";
pub const DOCUMENT_LOAD_SECONDS: &str = "quire_document_load_seconds";
pub const UPDATES_APPLIED_TOTAL: &str = "quire_updates_applied_total";
pub const UPDATES_REFUSED_TOTAL: &str = "quire_updates_refused_total";
pub const BROADCAST_FRAMES_TOTAL: &str = "quire_broadcast_frames_total";
pub const APPEND_BATCH_SIZE: &str = "quire_append_batch_size";
pub const APPEND_COMMIT_SECONDS: &str = "quire_append_commit_seconds";
pub const APPEND_ROWS_TOTAL: &str = "quire_append_rows_total";
pub const APPEND_FAILURES_TOTAL: &str = "quire_append_failures_total";
pub const ACK_LATENCY_SECONDS: &str = "quire_ack_latency_seconds";
pub const SOCKETS_CLOSED_TOTAL: &str = "quire_sockets_closed_total";
pub const COMPACTIONS_TOTAL: &str = "quire_compactions_total";
pub const AWARENESS_REFUSED_TOTAL: &str = "quire_awareness_refused_total";
pub const BUS_MESSAGES_IN_TOTAL: &str = "quire_bus_messages_in_total";
pub const BUS_MESSAGES_OUT_TOTAL: &str = "quire_bus_messages_out_total";
pub const BUS_HEALS_TOTAL: &str = "quire_bus_heals_total";
pub const BUS_LAG_SECONDS: &str = "quire_bus_lag_seconds";
pub const HEALED_UPDATES_TOTAL: &str = "quire_bus_heals_found_missing_total";
pub const ORPHANS_ADOPTED_TOTAL: &str = "quire_bus_orphans_adopted_total";
pub const STEP1_COALESCED_TOTAL: &str = "quire_sync_step1_coalesced_total";
pub const UPDATES_PARKED_TOTAL: &str = "quire_updates_parked_total";

/// Handles for the series every update touches, registered once per hub:
/// `metrics::counter!` looks its series up by name (hashing the key and its
/// labels) on every call, and a few of those per keystroke add up. Built
/// after the recorder is installed; with none, they record nothing.
#[derive(Clone)]
pub(crate) struct Hot {
    pub applied_client: metrics::Counter,
    pub applied_bus: metrics::Counter,
    pub broadcast_frames: metrics::Counter,
    pub bus_out: metrics::Counter,
    pub bus_in: metrics::Counter,
    pub bus_lag: metrics::Histogram,
    pub ack_latency: metrics::Histogram,
}

impl Hot {
    pub(crate) fn register() -> Hot {
        Hot {
            applied_client: metrics::counter!(UPDATES_APPLIED_TOTAL, "source" => "client"),
            applied_bus: metrics::counter!(UPDATES_APPLIED_TOTAL, "source" => "bus"),
            broadcast_frames: metrics::counter!(BROADCAST_FRAMES_TOTAL),
            bus_out: metrics::counter!(BUS_MESSAGES_OUT_TOTAL),
            bus_in: metrics::counter!(BUS_MESSAGES_IN_TOTAL),
            bus_lag: metrics::histogram!(BUS_LAG_SECONDS),
            ack_latency: metrics::histogram!(ACK_LATENCY_SECONDS),
        }
    }
}

/// Registers descriptions so `/metrics` explains each series.
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(CONNECTIONS, "Open document sessions (sockets) on this node");
    describe_gauge!(DOCUMENTS_LIVE, "Documents loaded in memory on this node");
    describe_counter!(
        DOCUMENT_LOADS_TOTAL,
        "Document loads from the store, by outcome"
    );
    describe_histogram!(
        DOCUMENT_LOAD_SECONDS,
        Unit::Seconds,
        "Time to load a document from the store"
    );
    describe_counter!(
        UPDATES_APPLIED_TOTAL,
        "Updates that changed a document, by source (client, bus)"
    );
    describe_counter!(UPDATES_REFUSED_TOTAL, "Updates refused, by reason");
    describe_counter!(
        BROADCAST_FRAMES_TOTAL,
        "Frames queued to sockets by fan-out"
    );
    describe_histogram!(
        APPEND_BATCH_SIZE,
        "Updates per append transaction (group commit)"
    );
    describe_histogram!(
        APPEND_COMMIT_SECONDS,
        Unit::Seconds,
        "Duration of one append transaction"
    );
    describe_counter!(APPEND_ROWS_TOTAL, "Updates durably appended to the log");
    describe_counter!(
        APPEND_FAILURES_TOTAL,
        "Append transactions that failed after retries, by reason (full: no room on disk; failed)"
    );
    describe_histogram!(
        ACK_LATENCY_SECONDS,
        Unit::Seconds,
        "From receiving an update to acknowledging it durable"
    );
    describe_counter!(
        SOCKETS_CLOSED_TOTAL,
        "Sockets closed by the server, by reason"
    );
    describe_counter!(COMPACTIONS_TOTAL, "Compactions, by outcome");
    describe_counter!(
        STEP1_COALESCED_TOTAL,
        "Sync step 1 requests answered by a state reply still queued for the session"
    );
    describe_counter!(
        UPDATES_PARKED_TOTAL,
        "Updates held back until content they depend on arrives"
    );
    describe_counter!(
        AWARENESS_REFUSED_TOTAL,
        "Awareness entries refused (client id owned by another session, too many ids, too large, not a JSON object)"
    );
    describe_counter!(BUS_MESSAGES_IN_TOTAL, "Messages received from other nodes");
    describe_counter!(BUS_MESSAGES_OUT_TOTAL, "Messages published to other nodes");
    describe_counter!(
        BUS_HEALS_TOTAL,
        "Log-tail re-reads after possibly missed bus messages, by cause \
         (gap, first_contact, committed, fallback, bus_reconnect)"
    );
    describe_histogram!(
        BUS_LAG_SECONDS,
        Unit::Seconds,
        "From a peer publishing a message to this node handling it \
         (includes clock skew between machines)"
    );
    describe_counter!(
        HEALED_UPDATES_TOTAL,
        "Heals that found updates this node had missed"
    );
    describe_counter!(
        ORPHANS_ADOPTED_TOTAL,
        "Updates another node published but never announced committed, appended by this node"
    );
}
