//! Command line and environment configuration, parsed once in `main` and
//! passed down. Every flag has a `QUIRE_*` environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use quire_hub::HubConfig;

use crate::client_addr::Cidr;

/// Quire: a self-hosted real-time collaborative document editor.
#[derive(Debug, Parser)]
#[command(name = "quire", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once at startup and moved out at once: the size is irrelevant, and
// boxing would only clutter every `Command::Serve(config)` pattern.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: web app, WebSocket sync, HTTP API and storage.
    Serve(ServeConfig),
    /// Manage accounts (works while the server runs, or without it).
    #[command(subcommand)]
    User(UserCommand),
    /// Create or update the database schema, then exit. `serve` does this
    /// too; run it first when nodes should not race to migrate at startup.
    Migrate(MigrateConfig),
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
    /// PostgreSQL holding the accounts, as given to `quire serve`.
    #[arg(long, env = "QUIRE_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Schema of that database, as given to `quire serve`.
    #[arg(long, env = "QUIRE_DATABASE_SCHEMA")]
    pub database_schema: Option<String>,
}

impl UserAddArgs {
    /// The store `quire serve` with the same flags would use.
    pub fn store_config(&self) -> Result<StoreConfig, ConfigError> {
        store_config(
            &self.data_dir,
            self.database_url.as_deref(),
            self.database_schema.as_deref(),
        )
    }
}

/// Where documents are stored, decided once from the flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreConfig {
    /// The embedded database, a file in the data folder.
    Sqlite { path: PathBuf },
    /// A PostgreSQL database shared by every node.
    Postgres { url: String, schema: Option<String> },
}

/// How nodes hear each other's edits, decided once from the flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusConfig {
    /// Nobody else to talk to: this node is alone.
    Local,
    /// Redis pub/sub, shared by every node of the cluster.
    Redis { url: String, channel_prefix: String },
}

/// A combination of flags that would make a broken deployment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "--database-url points at PostgreSQL, but no --redis-url is set: several nodes sharing the \
         database would never see each other's edits. Set --redis-url (QUIRE_REDIS_URL) on every node, \
         or pass --single-node (QUIRE_SINGLE_NODE=true) if this is the only node"
    )]
    PostgresWithoutBus,
    #[error(
        "--redis-url needs a shared database: nodes with their own embedded SQLite file can't serve \
         each other's documents. Set --database-url postgres://… (QUIRE_DATABASE_URL) too"
    )]
    BusWithoutSharedStore,
    #[error("--single-node and --redis-url contradict each other; pass one of them")]
    SingleNodeWithBus,
    #[error(
        "unsupported --database-url {0:?}: use postgres://… (or leave it out for the embedded database)"
    )]
    UnsupportedDatabase(String),
    #[error("--database-schema needs --database-url postgres://…")]
    SchemaWithoutPostgres,
}

/// Arguments of `quire migrate`.
#[derive(Debug, Clone, Args)]
pub struct MigrateConfig {
    /// Folder for the embedded database (used without --database-url).
    #[arg(long, env = "QUIRE_DATA_DIR", default_value = "quire-data")]
    pub data_dir: PathBuf,
    /// PostgreSQL to migrate, `postgres://user@host:port/database`.
    #[arg(long, env = "QUIRE_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Schema to migrate (see `serve --help`).
    #[arg(long, env = "QUIRE_DATABASE_SCHEMA")]
    pub database_schema: Option<String>,
}

impl MigrateConfig {
    pub fn store_config(&self) -> Result<StoreConfig, ConfigError> {
        store_config(
            &self.data_dir,
            self.database_url.as_deref(),
            self.database_schema.as_deref(),
        )
    }
}

fn store_config(
    data_dir: &std::path::Path,
    url: Option<&str>,
    schema: Option<&str>,
) -> Result<StoreConfig, ConfigError> {
    match url {
        None if schema.is_some() => Err(ConfigError::SchemaWithoutPostgres),
        None => Ok(StoreConfig::Sqlite {
            path: data_dir.join("quire.db"),
        }),
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            Ok(StoreConfig::Postgres {
                url: url.to_string(),
                schema: schema.map(str::to_string),
            })
        }
        // The URL may hold a password: only its scheme is echoed back.
        Some(url) => Err(ConfigError::UnsupportedDatabase(
            url.split("://").next().unwrap_or_default().to_string(),
        )),
    }
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

    /// Folder for the embedded database (created if missing). Unused with
    /// --database-url.
    #[arg(long, env = "QUIRE_DATA_DIR", default_value = "quire-data")]
    pub data_dir: PathBuf,

    /// PostgreSQL shared by every node, `postgres://user:password@host:5432/db`.
    /// Without it, documents live in an embedded SQLite file in --data-dir and
    /// this node is necessarily alone.
    #[arg(long, env = "QUIRE_DATABASE_URL")]
    pub database_url: Option<String>,

    /// PostgreSQL schema holding Quire's tables (created if missing); the
    /// server's default search path when absent. Lets several clusters (or
    /// test runs) share one database.
    #[arg(long, env = "QUIRE_DATABASE_SCHEMA")]
    pub database_schema: Option<String>,

    /// Most PostgreSQL connections this node opens.
    #[arg(long, env = "QUIRE_DATABASE_MAX_CONNECTIONS", default_value_t = 10)]
    pub database_max_connections: u32,

    /// Redis for fan-out between nodes, `redis://host:6379/`. Required with
    /// PostgreSQL unless --single-node.
    #[arg(long, env = "QUIRE_REDIS_URL")]
    pub redis_url: Option<String>,

    /// Starts every Redis channel name, so several clusters can share a Redis.
    #[arg(long, env = "QUIRE_REDIS_CHANNEL_PREFIX", default_value = "quire")]
    pub redis_channel_prefix: String,

    /// Run on PostgreSQL without Redis, as the only node. Checked, not
    /// trusted: the node holds an exclusive lock on the database schema, so a
    /// second node (single or clustered) refuses to start beside it.
    #[arg(long, env = "QUIRE_SINGLE_NODE")]
    pub single_node: bool,

    /// This node's name in logs, metrics and bus messages (at most 64
    /// characters from [A-Za-z0-9_.-]). Random when absent; it must differ
    /// between nodes, so don't set the same value on all of them. Restarting
    /// a node under the same id (e.g. a StatefulSet pod's name) is safe: each
    /// process start is a new incarnation on the bus.
    #[arg(long, env = "QUIRE_NODE_ID", value_parser = parse_node_id)]
    pub node_id: Option<String>,

    /// Largest WebSocket message accepted, in bytes. Larger frames close the
    /// socket with code 1009. A pasted chapter is well under 1 MiB.
    #[arg(long, env = "QUIRE_MAX_FRAME_BYTES", default_value_t = 8 * 1024 * 1024)]
    pub max_frame_bytes: usize,

    /// Largest document, in stored bytes. Updates past it are refused (4413).
    #[arg(long, env = "QUIRE_MAX_DOCUMENT_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub max_document_bytes: usize,

    /// Documents one account may own; creating one more is refused (403).
    /// 0 means no limit.
    #[arg(long, env = "QUIRE_MAX_DOCUMENTS_PER_ACCOUNT", default_value_t = 1000)]
    pub max_documents_per_account: u64,

    /// Stored bytes (snapshots and update logs) of all the documents one
    /// account owns, whoever wrote them. When they are used up, creating a
    /// document is refused (403) and an edit that would grow one of the
    /// account's documents closes the editor's socket (4413); deleting
    /// documents makes room again. Checked as each socket joins, so several
    /// documents growing at once can overshoot it (docs/security.md).
    /// 0 means no limit.
    #[arg(long, env = "QUIRE_MAX_ACCOUNT_BYTES", default_value_t = 1024 * 1024 * 1024)]
    pub max_account_bytes: u64,

    /// Frames queued for one socket before it is closed as too slow (4429).
    #[arg(long, env = "QUIRE_OUTGOING_QUEUE", default_value_t = 4096)]
    pub outgoing_queue: usize,

    /// Bytes queued for one socket before it is closed as too slow (4429),
    /// besides one reply carrying the document's state (a client joining a
    /// large document is not "slow"). Must be at least --max-frame-bytes.
    #[arg(long, env = "QUIRE_OUTGOING_QUEUE_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub outgoing_queue_bytes: usize,

    /// Estimated memory of one decoded document, in bytes. The encoded size
    /// says little (a million nulls take 1 MB in an update and ~24 MB in
    /// memory); updates past this are refused (4413), and a stored document
    /// past it is refused at load with an error naming this flag.
    #[arg(long, env = "QUIRE_MAX_DOCUMENT_MEMORY_BYTES", default_value_t = 512 * 1024 * 1024)]
    pub max_document_memory_bytes: u64,

    /// Bytes of frames queued for one document from all its sockets; past
    /// it they wait, and TCP pushes back on their clients. At least
    /// --max-frame-bytes.
    #[arg(long, env = "QUIRE_INBOUND_QUEUE_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub inbound_queue_bytes: usize,

    /// Bytes of updates queued for the node's group commit; past it
    /// documents wait for the store. At least --max-frame-bytes.
    #[arg(long, env = "QUIRE_APPEND_QUEUE_BYTES", default_value_t = 256 * 1024 * 1024)]
    pub append_queue_bytes: usize,

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

    /// Seconds a client has to send a complete request head (request line
    /// and headers). The clock starts when the server begins waiting for a
    /// request, so this is also how long an idle keep-alive connection is
    /// kept, and it is not extended by bytes trickling in. It is also the
    /// longest pause allowed inside a request body (408).
    #[arg(long, env = "QUIRE_HTTP_HEADER_TIMEOUT_SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub http_header_timeout_secs: u64,

    /// Connections this node serves at once (WebSockets included). Past it,
    /// new requests and upgrades are answered 503 with `Retry-After`; those
    /// already connected are not affected. Keep the open-files limit
    /// (`ulimit -n`) above this plus 1,100.
    #[arg(long, env = "QUIRE_MAX_CONNECTIONS", default_value_t = 20_000,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,

    /// Connections one client address may hold at once. Past it, a new
    /// connection is closed at once. Behind --trusted-proxies, counted per
    /// forwarded client (requests in flight and open WebSockets).
    #[arg(long, env = "QUIRE_MAX_CONNECTIONS_PER_ADDRESS", default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections_per_address: u32,

    /// Proxies whose `X-Forwarded-For` is believed (comma-separated
    /// addresses or blocks, e.g. `10.0.0.0/8,192.0.2.7`). Their clients'
    /// address is the right-most `X-Forwarded-For` entry that is not a
    /// trusted proxy. Default: none, the header is ignored.
    #[arg(long, env = "QUIRE_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<Cidr>,

    /// Largest request body, in bytes, on every route (413). The API's
    /// bodies are small JSON objects; documents travel over the WebSocket.
    #[arg(long, env = "QUIRE_MAX_REQUEST_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_request_body_bytes: usize,

    /// Test-only: hash passwords with tiny Argon2 parameters. Never use it in
    /// production; it exists so test suites can create many accounts fast.
    #[arg(long, env = "QUIRE_INSECURE_FAST_PASSWORD_HASHING", hide = true)]
    pub insecure_fast_password_hashing: bool,

    /// Log format: human-readable text or one JSON object per line.
    #[arg(long, env = "QUIRE_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// Seconds a socket may take to accept one batch of outgoing frames.
    /// A client that stops reading is disconnected after this, and what was
    /// queued for it is freed.
    #[arg(long, env = "QUIRE_WS_WRITE_TIMEOUT_SECS", default_value_t = 10)]
    pub ws_write_timeout_secs: u64,

    /// Seconds a socket may stay silent (no frame, no pong) before it is
    /// closed (4408). Browsers and y-websocket answer the server's pings
    /// (every --ping-secs) by themselves. Default: twice --ping-secs.
    #[arg(long, env = "QUIRE_PONG_TIMEOUT_SECS")]
    pub pong_timeout_secs: Option<u64>,

    /// Bearer token that `/metrics` requires (`Authorization: Bearer …`; at
    /// least 16 characters). Unset, `/metrics` answers 404: the page names
    /// the node and its load, which is not for every visitor.
    #[arg(long, env = "QUIRE_METRICS_TOKEN", hide_env_values = true, value_parser = crate::ops::MetricsToken::parse)]
    pub metrics_token: Option<crate::ops::MetricsToken>,
}

fn parse_node_id(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(s.to_string())
    } else {
        Err("use 1-64 characters from [A-Za-z0-9_.-]".to_string())
    }
}

impl ServeConfig {
    /// Where documents are stored.
    pub fn store_config(&self) -> Result<StoreConfig, ConfigError> {
        store_config(
            &self.data_dir,
            self.database_url.as_deref(),
            self.database_schema.as_deref(),
        )
    }

    /// How this node reaches the others. PostgreSQL without Redis is refused
    /// unless --single-node says this node is alone (which startup then
    /// enforces with a lock): several nodes on one database with no bus
    /// would each show stale documents and nobody would notice.
    pub fn bus_config(&self) -> Result<BusConfig, ConfigError> {
        let store = self.store_config()?;
        match (&store, &self.redis_url, self.single_node) {
            (_, Some(_), true) => Err(ConfigError::SingleNodeWithBus),
            (StoreConfig::Sqlite { .. }, Some(_), false) => Err(ConfigError::BusWithoutSharedStore),
            (StoreConfig::Postgres { .. }, Some(url), false) => Ok(BusConfig::Redis {
                url: url.clone(),
                channel_prefix: self.redis_channel_prefix.clone(),
            }),
            (StoreConfig::Postgres { .. }, None, false) => Err(ConfigError::PostgresWithoutBus),
            (_, None, _) => Ok(BusConfig::Local),
        }
    }

    pub fn hub_config(&self) -> HubConfig {
        HubConfig {
            max_document_bytes: self.max_document_bytes,
            outgoing_queue: self.outgoing_queue.max(16),
            outgoing_queue_bytes: self.outgoing_queue_bytes.max(self.max_frame_bytes),
            max_document_memory_bytes: self.max_document_memory_bytes,
            inbound_queue_bytes: self.inbound_queue_bytes.max(self.max_frame_bytes),
            append_queue_bytes: self.append_queue_bytes.max(self.max_frame_bytes),
            append_window: Duration::from_millis(self.append_window_ms),
            append_max_batch: self.append_max_batch.max(1),
            compact_after_updates: self.compact_after_updates.max(1),
            compact_after_bytes: self.compact_after_bytes.max(1),
            idle_unload: Duration::from_secs(self.idle_unload_secs),
            max_awareness_state_bytes: self.max_awareness_bytes,
            ..HubConfig::default()
        }
    }

    /// How long a socket may take to accept one batch of frames.
    pub fn ws_write_timeout(&self) -> Duration {
        Duration::from_secs(self.ws_write_timeout_secs.max(1))
    }

    /// How long a socket may stay silent: twice the ping interval unless
    /// set, so that one lost pong is not enough to close it.
    pub fn pong_timeout(&self) -> Duration {
        let secs = self
            .pong_timeout_secs
            .unwrap_or(self.ping_secs.saturating_mul(2));
        Duration::from_secs(secs.max(1))
    }

    /// Defaults, as `quire serve` with no flags would have them (for tests).
    pub fn defaults() -> Self {
        match Cli::parse_from(["quire", "serve"]).command {
            Command::Serve(c) => c,
            Command::User(_) | Command::Migrate(_) => unreachable!("parsed a serve command"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve(args: &[&str]) -> ServeConfig {
        let mut argv = vec!["quire", "serve"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv).expect("parses").command {
            Command::Serve(c) => c,
            _ => unreachable!(),
        }
    }

    const PG: &str = "postgres://postgres@127.0.0.1/quire";

    #[test]
    fn no_flags_is_embedded_and_alone() {
        let c = serve(&[]);
        assert_eq!(
            c.store_config(),
            Ok(StoreConfig::Sqlite {
                path: PathBuf::from("quire-data/quire.db")
            })
        );
        assert_eq!(c.bus_config(), Ok(BusConfig::Local));
    }

    #[test]
    fn postgres_and_redis_make_a_cluster_node() {
        let c = serve(&[
            "--database-url",
            PG,
            "--redis-url",
            "redis://127.0.0.1/",
            "--database-schema",
            "team",
        ]);
        assert_eq!(
            c.store_config(),
            Ok(StoreConfig::Postgres {
                url: PG.into(),
                schema: Some("team".into())
            })
        );
        assert_eq!(
            c.bus_config(),
            Ok(BusConfig::Redis {
                url: "redis://127.0.0.1/".into(),
                channel_prefix: "quire".into()
            })
        );
    }

    #[test]
    fn postgres_without_redis_is_refused_unless_single_node() {
        assert_eq!(
            serve(&["--database-url", PG]).bus_config(),
            Err(ConfigError::PostgresWithoutBus)
        );
        assert!(
            ConfigError::PostgresWithoutBus
                .to_string()
                .contains("--single-node")
        );
        assert_eq!(
            serve(&["--database-url", PG, "--single-node"]).bus_config(),
            Ok(BusConfig::Local)
        );
    }

    #[test]
    fn contradictions_are_refused() {
        assert_eq!(
            serve(&["--redis-url", "redis://x/"]).bus_config(),
            Err(ConfigError::BusWithoutSharedStore)
        );
        assert_eq!(
            serve(&[
                "--database-url",
                PG,
                "--redis-url",
                "redis://x/",
                "--single-node"
            ])
            .bus_config(),
            Err(ConfigError::SingleNodeWithBus)
        );
        assert_eq!(
            serve(&["--database-url", "mysql://root:secret@db/x"]).store_config(),
            Err(ConfigError::UnsupportedDatabase("mysql".into()))
        );
        assert_eq!(
            serve(&["--database-schema", "x"]).store_config(),
            Err(ConfigError::SchemaWithoutPostgres)
        );
        assert!(Cli::try_parse_from(["quire", "serve", "--node-id", "a b"]).is_err());
        assert!(Cli::try_parse_from(["quire", "serve", "--metrics-token", "short"]).is_err());
    }

    #[test]
    fn account_quotas_have_defaults_and_zero_lifts_them() {
        let c = serve(&[]);
        assert_eq!(c.max_documents_per_account, 1000);
        assert_eq!(c.max_account_bytes, 1 << 30);
        let c = serve(&[
            "--max-documents-per-account",
            "0",
            "--max-account-bytes",
            "5000",
        ]);
        assert_eq!(c.max_documents_per_account, 0);
        assert_eq!(c.max_account_bytes, 5000);
        assert!(Cli::try_parse_from(["quire", "serve", "--max-account-bytes", "-1"]).is_err());
    }

    #[test]
    fn http_limits_have_defaults_and_parse() {
        let c = serve(&[]);
        assert_eq!(c.http_header_timeout_secs, 10);
        assert_eq!(c.max_connections, 20_000);
        assert_eq!(c.max_connections_per_address, 256);
        assert_eq!(c.max_request_body_bytes, 1024 * 1024);
        assert!(c.trusted_proxies.is_empty());
        let c = serve(&["--trusted-proxies", "10.0.0.0/8,192.0.2.7,fd00::/8"]);
        assert_eq!(c.trusted_proxies.len(), 3);
        for bad in [
            &["--trusted-proxies", "10.0.0.0/40"][..],
            &["--trusted-proxies", "proxy.internal"],
            &["--max-connections-per-address", "0"],
            &["--http-header-timeout-secs", "0"],
        ] {
            let mut argv = vec!["quire", "serve"];
            argv.extend_from_slice(bad);
            assert!(Cli::try_parse_from(argv).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn socket_deadlines_default_from_the_ping_interval() {
        let c = serve(&[]);
        assert_eq!(c.ws_write_timeout(), Duration::from_secs(10));
        assert_eq!(c.pong_timeout(), Duration::from_secs(60));
        let c = serve(&["--ping-secs", "5", "--ws-write-timeout-secs", "3"]);
        assert_eq!(c.pong_timeout(), Duration::from_secs(10));
        assert_eq!(c.ws_write_timeout(), Duration::from_secs(3));
        let c = serve(&["--pong-timeout-secs", "7"]);
        assert_eq!(c.pong_timeout(), Duration::from_secs(7));
        assert!(c.metrics_token.is_none());
        let c = serve(&["--metrics-token", "0123456789abcdef"]);
        assert!(
            c.metrics_token
                .is_some_and(|t| t.matches("0123456789abcdef"))
        );
    }
}
