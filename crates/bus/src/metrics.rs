//! Metric names of the Redis bus (the hub counts messages per document in
//! `quire_hub::metrics`; these are about the connection itself).

pub const REDIS_RECONNECTS_TOTAL: &str = "quire_bus_reconnects_total";
pub const REDIS_CONNECTED: &str = "quire_bus_connected";
pub const PUBLISH_DROPPED_TOTAL: &str = "quire_bus_publish_dropped_total";
pub const BAD_MESSAGES_TOTAL: &str = "quire_bus_bad_messages_total";
pub const CHANNELS: &str = "quire_bus_channels";

/// Registers descriptions so `/metrics` explains each series.
pub fn describe() {
    use metrics::{describe_counter, describe_gauge};
    describe_counter!(
        REDIS_RECONNECTS_TOTAL,
        "Times the Redis connection was lost (each is followed by a reconnect and a heal of every live document)"
    );
    describe_gauge!(
        REDIS_CONNECTED,
        "1 while the Redis connection is up, 0 while it is being re-established"
    );
    describe_counter!(
        PUBLISH_DROPPED_TOTAL,
        "Messages that could not be published (Redis unreachable or the queue full); peers notice the gap and heal"
    );
    describe_counter!(
        BAD_MESSAGES_TOTAL,
        "Bus messages that did not decode and were dropped"
    );
    describe_gauge!(
        CHANNELS,
        "Redis channels (documents) this node is subscribed to"
    );
}
