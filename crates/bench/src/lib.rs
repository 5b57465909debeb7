//! Quire's load generator: scenarios that speak the y-websocket protocol over
//! real sockets, all clients in one process so every latency is read on one
//! clock, plus a null relay server that marks the machine's ceiling.
//!
//! Each scenario prints one JSON line of results on stdout and a short table
//! on stderr, and returns whether its correctness checks passed.

pub mod account;
pub mod burst;
pub mod client;
pub mod coldload;
pub mod connections;
pub mod fanout;
pub mod histogram;
pub mod hocuspocus;
pub mod hot_document;
pub mod null_server;
pub mod saturate;
pub mod soak;
pub mod stats;
pub mod trace;

/// The automerge-paper trace kept in the repository (`bench/traces`), found
/// from any working directory of a build made in this checkout.
pub const DEFAULT_TRACE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../bench/traces/automerge-paper.json.gz"
);
