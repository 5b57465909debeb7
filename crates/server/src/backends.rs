//! Opens what the configuration asks for: the store (SQLite or PostgreSQL),
//! the bus (in-process or Redis), and this node's claim on the database.
//! Everything that differs between one embedded node and a cluster node is
//! decided here, once, at startup.

use std::fs::{File, TryLockError};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use quire_bus::{Bus, LocalBus, RedisBus, RedisBusOptions};
use quire_store::{NodeRole, NodeRoleLock, PgOptions, PgStore, SqliteOptions, SqliteStore, Store};
use quire_types::NodeId;

use crate::config::{BusConfig, MigrateConfig, ServeConfig, StoreConfig};

/// This node, as operators see it in logs and metrics.
#[derive(Debug)]
pub struct NodeInfo {
    pub id: NodeId,
    /// "sqlite" or "postgres".
    pub store: &'static str,
    /// "local" or "redis".
    pub bus: &'static str,
    /// No other process appends to this node's store (see
    /// [`quire_hub::HubConfig::sole_writer`]): it holds its data folder's
    /// lock (SQLite) or the single-node claim (PostgreSQL).
    pub sole_writer: bool,
    /// Held for the node's lifetime: see [`PgStore::claim_node_role`].
    _role: Option<NodeRoleLock>,
    /// Held for the node's lifetime: see [`lock_data_dir`].
    _data_dir: Option<File>,
}

impl NodeInfo {
    /// A node whose backends the caller chose; nothing is known of other
    /// writers, so it is not a sole writer.
    pub fn new(id: NodeId, store: &'static str, bus: &'static str) -> Self {
        NodeInfo {
            id,
            store,
            bus,
            sole_writer: false,
            _role: None,
            _data_dir: None,
        }
    }

    /// An embedded node that holds `lock`, from [`lock_data_dir`].
    pub fn embedded(id: NodeId, lock: File) -> Self {
        NodeInfo {
            id,
            store: "sqlite",
            bus: "local",
            sole_writer: true,
            _role: None,
            _data_dir: Some(lock),
        }
    }
}

/// Takes the data folder's lock (`quire.lock`, an advisory `flock` the OS
/// releases when the process exits, however it exits), so that two `quire
/// serve` on one folder fail at start instead of both writing its database.
/// One-off commands such as `quire user add` do not take it.
///
/// A holder that is on its way out (a server restarted within one process,
/// whose last tasks are still dropping) gets two seconds to let go.
pub async fn lock_data_dir(dir: &Path) -> anyhow::Result<File> {
    const PATIENCE: Duration = Duration::from_secs(2);
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("quire.lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(TryLockError::WouldBlock) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(TryLockError::WouldBlock) => anyhow::bail!(
                "another `quire serve` is using the data folder {}: stop it, or give this one another --data-dir",
                dir.display()
            ),
            Err(TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("locking {}", path.display()));
            }
        }
    }
}

pub struct Backends {
    pub store: Arc<dyn Store>,
    pub bus: Arc<dyn Bus>,
    pub node: NodeInfo,
}

/// The node id from the configuration, or a fresh random one.
pub fn node_id(config: &ServeConfig) -> NodeId {
    config
        .node_id
        .clone()
        .map(NodeId)
        .unwrap_or_else(NodeId::generate)
}

pub async fn open(config: &ServeConfig) -> anyhow::Result<Backends> {
    // Both decided before anything is opened: a refused combination fails
    // before it touches the database.
    let store_config = config.store_config()?;
    let bus_config = config.bus_config()?;
    let id = node_id(config);

    let data_dir_lock = match &store_config {
        StoreConfig::Sqlite { .. } => Some(lock_data_dir(&config.data_dir).await?),
        StoreConfig::Postgres { .. } => None,
    };
    let (store, pg): (Arc<dyn Store>, Option<PgStore>) = match &store_config {
        StoreConfig::Sqlite { path } => (Arc::new(open_sqlite(path).await?), None),
        StoreConfig::Postgres { url, schema } => {
            let pg = open_postgres(url, schema.clone(), config.database_max_connections).await?;
            (Arc::new(pg.clone()), Some(pg))
        }
    };
    let role = match (&pg, &bus_config) {
        (Some(pg), BusConfig::Local) => Some(pg.claim_node_role(NodeRole::Single).await?),
        (Some(pg), BusConfig::Redis { .. }) => Some(pg.claim_node_role(NodeRole::Clustered).await?),
        (None, _) => None,
    };
    let bus: Arc<dyn Bus> = match &bus_config {
        BusConfig::Local => Arc::new(LocalBus::new().node(id.clone())),
        BusConfig::Redis {
            url,
            channel_prefix,
        } => Arc::new(
            RedisBus::connect(RedisBusOptions {
                url: url.clone(),
                channel_prefix: channel_prefix.clone(),
                node: id.clone(),
            })
            .await
            .context("connecting to redis (--redis-url)")?,
        ),
    };
    let node = NodeInfo {
        id,
        store: if pg.is_some() { "postgres" } else { "sqlite" },
        bus: match bus_config {
            BusConfig::Local => "local",
            BusConfig::Redis { .. } => "redis",
        },
        // SQLite behind the folder lock, or PostgreSQL under the single-node
        // claim (which refuses any other node on the same schema).
        sole_writer: matches!(bus_config, BusConfig::Local),
        _role: role,
        _data_dir: data_dir_lock,
    };
    Ok(Backends { store, bus, node })
}

/// Opens a store on its own (for `quire user add`), migrated.
pub async fn open_store(
    config: &StoreConfig,
    max_connections: u32,
) -> anyhow::Result<Arc<dyn Store>> {
    Ok(match config {
        StoreConfig::Sqlite { path } => Arc::new(open_sqlite(path).await?),
        StoreConfig::Postgres { url, schema } => {
            Arc::new(open_postgres(url, schema.clone(), max_connections).await?)
        }
    })
}

/// `quire migrate`: opening a store brings its schema up to date.
pub async fn migrate(config: &MigrateConfig) -> anyhow::Result<()> {
    match config.store_config()? {
        StoreConfig::Sqlite { path } => {
            open_sqlite(&path).await?;
        }
        StoreConfig::Postgres { url, schema } => {
            open_postgres(&url, schema, 1).await?.close().await;
        }
    }
    Ok(())
}

async fn open_sqlite(path: &std::path::Path) -> anyhow::Result<SqliteStore> {
    SqliteStore::open(path, SqliteOptions::default())
        .await
        .with_context(|| format!("opening the embedded database {}", path.display()))
}

async fn open_postgres(
    url: &str,
    schema: Option<String>,
    max_connections: u32,
) -> anyhow::Result<PgStore> {
    let opts = PgOptions {
        schema,
        max_connections,
        ..PgOptions::default()
    };
    PgStore::connect(url, opts)
        .await
        .context("connecting to PostgreSQL (--database-url)")
}
