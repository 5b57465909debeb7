//! Command line and environment configuration, parsed once in `main` and
//! passed down. Every flag has a `QUIRE_*` environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use quire_hub::HubConfig;

/// Quire: a self-hosted real-time collaborative document editor.
#[derive(Debug, Parser)]
#[command(name = "quire", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: web app, WebSocket sync, HTTP API and storage.
    Serve(ServeConfig),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    /// Address and port to listen on. The default only accepts connections
    /// from this machine; use 0.0.0.0:7420 to serve a network.
    #[arg(long, env = "QUIRE_LISTEN", default_value = "127.0.0.1:7420")]
    pub listen: SocketAddr,

    /// Folder for the embedded database (created if missing).
    #[arg(long, env = "QUIRE_DATA_DIR", default_value = "quire-data")]
    pub data_dir: PathBuf,

    /// Largest WebSocket message accepted, in bytes. Larger frames close the
    /// socket with code 1009. A pasted chapter is well under 1 MiB.
    #[arg(long, env = "QUIRE_MAX_FRAME_BYTES", default_value_t = 8 * 1024 * 1024)]
    pub max_frame_bytes: usize,

    /// Largest document, in stored bytes. Updates past it are refused (4413).
    #[arg(long, env = "QUIRE_MAX_DOCUMENT_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub max_document_bytes: usize,

    /// Frames queued for one socket before it is closed as too slow (4429).
    #[arg(long, env = "QUIRE_OUTGOING_QUEUE", default_value_t = 4096)]
    pub outgoing_queue: usize,

    /// Group commit: how long to wait for more updates before committing a
    /// batch, in milliseconds. 0 commits as soon as the previous commit ends
    /// (batching whatever arrived meanwhile).
    #[arg(long, env = "QUIRE_APPEND_WINDOW_MS", default_value_t = 0)]
    pub append_window_ms: u64,

    /// Group commit: most updates in one transaction.
    #[arg(long, env = "QUIRE_APPEND_MAX_BATCH", default_value_t = 1024)]
    pub append_max_batch: usize,

    /// Compact a document's log into a snapshot after this many updates.
    #[arg(long, env = "QUIRE_COMPACT_AFTER_UPDATES", default_value_t = 2000)]
    pub compact_after_updates: usize,

    /// Compact a document's log into a snapshot after this many bytes.
    #[arg(long, env = "QUIRE_COMPACT_AFTER_BYTES", default_value_t = 8 * 1024 * 1024)]
    pub compact_after_bytes: usize,

    /// Seconds a document with nobody connected stays in memory.
    #[arg(long, env = "QUIRE_IDLE_UNLOAD_SECS", default_value_t = 30)]
    pub idle_unload_secs: u64,

    /// Largest awareness (presence) state one client may publish, in bytes.
    #[arg(long, env = "QUIRE_MAX_AWARENESS_BYTES", default_value_t = 16 * 1024)]
    pub max_awareness_bytes: usize,

    /// Seconds between WebSocket pings (detects dead connections).
    #[arg(long, env = "QUIRE_PING_SECS", default_value_t = 30)]
    pub ping_secs: u64,

    /// Log format: human-readable text or one JSON object per line.
    #[arg(long, env = "QUIRE_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

impl ServeConfig {
    pub fn hub_config(&self) -> HubConfig {
        HubConfig {
            max_document_bytes: self.max_document_bytes,
            outgoing_queue: self.outgoing_queue.max(16),
            append_window: Duration::from_millis(self.append_window_ms),
            append_max_batch: self.append_max_batch.max(1),
            compact_after_updates: self.compact_after_updates.max(1),
            compact_after_bytes: self.compact_after_bytes.max(1),
            idle_unload: Duration::from_secs(self.idle_unload_secs),
            max_awareness_state_bytes: self.max_awareness_bytes,
            ..HubConfig::default()
        }
    }

    /// Defaults, as `quire serve` with no flags would have them (for tests).
    pub fn defaults() -> Self {
        match Cli::parse_from(["quire", "serve"]).command {
            Command::Serve(c) => c,
        }
    }
}
