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
    /// Manage accounts (works while the server runs, or without it).
    #[command(subcommand)]
    User(UserCommand),
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an account, e.g. when open sign-up is disabled. The password is
    /// read from standard input (one line), never from the command line,
    /// where other users of the machine could see it.
    Add(UserAddArgs),
}

#[derive(Debug, Clone, Args)]
pub struct UserAddArgs {
    #[arg(long)]
    pub email: String,
    #[arg(long)]
    pub name: String,
    /// Folder of the embedded database, as given to `quire serve`.
    #[arg(long, env = "QUIRE_DATA_DIR", default_value = "quire-data")]
    pub data_dir: PathBuf,
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

    /// The address people use to reach Quire, e.g. `https://docs.example.com`.
    /// Its origin is the one browsers may connect from (CSRF and WebSocket
    /// Origin checks), and an `https` URL makes every cookie `Secure` (and
    /// `__Host-`/`__Secure-` prefixed). Unset: same-origin requests only,
    /// judged by the `Host` header, and cookies without `Secure` so that
    /// `http://localhost` works.
    #[arg(long, env = "QUIRE_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// More origins allowed to call the API and open sockets (comma-separated).
    #[arg(long, env = "QUIRE_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,

    /// Mark cookies `Secure` even without an https public URL (TLS ends at a
    /// proxy in front of Quire).
    #[arg(long, env = "QUIRE_SECURE_COOKIES")]
    pub secure_cookies: bool,

    /// Refuse sign-up through the web; accounts are then created with
    /// `quire user add`.
    #[arg(long, env = "QUIRE_DISABLE_SIGNUP")]
    pub disable_signup: bool,

    /// Lifetime of the access cookie, in seconds (at most 900).
    #[arg(long, env = "QUIRE_ACCESS_TOKEN_SECS", default_value_t = 900)]
    pub access_token_secs: u64,

    /// Lifetime of a refresh token, in days; each use replaces it.
    #[arg(long, env = "QUIRE_REFRESH_TOKEN_DAYS", default_value_t = 30)]
    pub refresh_token_days: u64,

    /// How long a just-replaced refresh token may still be exchanged, in
    /// seconds, so that two tabs refreshing at once both stay signed in.
    /// Past it, presenting a replaced token counts as theft and signs that
    /// session out everywhere.
    #[arg(long, env = "QUIRE_REFRESH_GRACE_SECS", default_value_t = 20)]
    pub refresh_grace_secs: u64,

    /// Sign-in and sign-up requests one client address may burst …
    #[arg(long, env = "QUIRE_AUTH_BURST", default_value_t = 10)]
    pub auth_burst: u32,

    /// … and then one more every this many milliseconds.
    #[arg(long, env = "QUIRE_AUTH_PERIOD_MS", default_value_t = 6000)]
    pub auth_period_ms: u64,

    /// Failed sign-ins to one account before it is locked for a while.
    #[arg(long, env = "QUIRE_LOGIN_MAX_FAILURES", default_value_t = 5)]
    pub login_max_failures: u32,

    /// How long an account stays locked after too many failed sign-ins, in
    /// seconds; doubled for each further lock.
    #[arg(long, env = "QUIRE_LOGIN_LOCKOUT_SECS", default_value_t = 60)]
    pub login_lockout_secs: u64,

    /// WebSocket connections one user may open in a burst …
    #[arg(long, env = "QUIRE_WS_CONNECT_BURST", default_value_t = 60)]
    pub ws_connect_burst: u32,

    /// … and then one more every this many milliseconds.
    #[arg(long, env = "QUIRE_WS_CONNECT_PERIOD_MS", default_value_t = 250)]
    pub ws_connect_period_ms: u64,

    /// Test-only: hash passwords with tiny Argon2 parameters. Never use it in
    /// production; it exists so test suites can create many accounts fast.
    #[arg(long, env = "QUIRE_INSECURE_FAST_PASSWORD_HASHING", hide = true)]
    pub insecure_fast_password_hashing: bool,

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
            Command::User(_) => unreachable!("parsed a serve command"),
        }
    }
}
