//! [`RedisBus`]: fan-out between nodes through Redis pub/sub.
//!
//! One channel per document (`{prefix}:doc:{id}`), subscribed while at least
//! one [`Subscription`] for it is alive on this node. Everything goes over one
//! RESP3 [`ConnectionManager`]: RESP3 allows ordinary commands (PUBLISH) on a
//! subscribed connection, and the manager reconnects and resubscribes by
//! itself. What it cannot do is replay: Redis pub/sub is at-most-once. So
//!
//! - every subscription of a channel is sent [`BusEvent::MayHaveMissed`] when
//!   Redis confirms its *re*subscription after a reconnect: from then on the
//!   channel is live again, so a heal started at that moment misses nothing
//!   that was committed before it;
//! - every message carries its origin's per-document counter, so the loss of
//!   a message whose origin was cut off (not us) shows as a gap.
//!
//! The node-wide control channel (`{prefix}:control`) is subscribed from
//! connect to drop, whether or not anything on this node listens, and gets
//! the same [`ControlEvent::MayHaveMissed`] after a resubscription. Its
//! messages are published by a task of their own that retries each one until
//! Redis takes it: a peer can tell a lost document update from the counters
//! and heal, but nobody could tell that a revocation never left this node.
//!
//! Four small tasks own the I/O: a publisher (one ordered pipeline per batch
//! of queued messages, so publish never waits for the network), the control
//! publisher, a subscription task (subscribes and unsubscribes one at a time,
//! so a drop racing a subscribe of the same document can't leave it
//! unsubscribed), and a health task (a PING every second, which also makes
//! the manager retry while Redis is down). Incoming messages are dispatched
//! right in the push callback: a lock, a decode and a `try_send`, nothing
//! that waits.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use quire_types::{DocId, NodeId};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{IntoConnectionInfo, ProtocolVersion, PushInfo, PushKind, Value};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::metrics as m;
use crate::{
    Bus, BusError, BusEvent, BusMessage, BusPayload, ControlEvent, Origin, Subscription, envelope,
};

/// Per-subscription queue bound, as for the local bus.
const QUEUE: usize = 4096;
/// Messages waiting for the publisher. When Redis is away this fills up and
/// further messages are dropped (and counted): peers see the counter gap and
/// heal from the store, so nothing is lost for good.
const PUBLISH_QUEUE: usize = 16 * 1024;
/// Most PUBLISH commands sent in one pipeline.
const PUBLISH_BATCH: usize = 256;
/// How often the health task pings Redis.
const HEALTH_INTERVAL: Duration = Duration::from_secs(1);
/// Longest wait between two attempts to publish a control message.
const CONTROL_RETRY_MAX: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct RedisBusOptions {
    /// `redis://host:port/` (RESP3 is switched on here, whatever the URL says).
    pub url: String,
    /// Starts every channel name, so that several clusters (or test runs) can
    /// share one Redis without hearing each other.
    pub channel_prefix: String,
    pub node: NodeId,
}

/// The scale-out bus. Dropping the last clone stops its tasks.
#[derive(Clone)]
pub struct RedisBus {
    shared: Arc<Shared>,
    publish_tx: mpsc::Sender<(String, Vec<u8>)>,
    /// Unbounded: control messages follow people's actions (a share removed,
    /// a sign-out), so they are few, and none may be dropped.
    control_publish_tx: mpsc::UnboundedSender<Vec<u8>>,
    conn_tx: mpsc::UnboundedSender<ConnCommand>,
    _stop: Arc<DropGuard>,
}

struct Shared {
    node: NodeId,
    /// This run of the node: what its messages carry, and how its own
    /// messages are told from those of another run under the same id.
    origin: Origin,
    prefix: String,
    /// The connection's name in `CLIENT LIST`, so operators (and tests) can
    /// tell which connection belongs to which node.
    client_name: String,
    control_channel: String,
    registry: Mutex<Registry>,
    counters: Mutex<HashMap<DocId, u64>>,
    control_counter: AtomicU64,
}

#[derive(Default)]
struct Registry {
    next_id: u64,
    channels: HashMap<String, Vec<(u64, mpsc::Sender<BusEvent>)>>,
    /// Channels whose messages may have been lost in a disconnection, until
    /// Redis confirms their resubscription.
    stale: HashSet<String>,
    control: Vec<(u64, mpsc::Sender<ControlEvent>)>,
    /// The control channel's `stale`.
    control_stale: bool,
}

/// Work for the subscriptions task: the connection's subscriptions and name.
enum ConnCommand {
    /// Make Redis's subscription of the channel match the registry.
    Sync {
        channel: String,
        reply: Option<oneshot::Sender<Result<(), BusError>>>,
    },
    /// A new connection is (being) made: give it the node's name.
    Name,
}

impl RedisBus {
    /// Connects, and fails if Redis can't be reached now: a node that starts
    /// without its bus would silently partition the cluster.
    pub async fn connect(opts: RedisBusOptions) -> Result<RedisBus, BusError> {
        let info = opts
            .url
            .as_str()
            .into_connection_info()
            .map_err(|e| BusError::Unavailable(format!("invalid redis url: {e}")))?;
        let settings = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let client = redis::Client::open(info.set_redis_settings(settings))
            .map_err(|e| BusError::Unavailable(e.to_string()))?;

        // One plain connection first: it reports an unreachable Redis at once,
        // where the manager would retry with backoff for several seconds.
        tokio::time::timeout(
            Duration::from_secs(5),
            client.get_multiplexed_async_connection(),
        )
        .await
        .map_err(|_| BusError::Unavailable("timed out connecting to redis".into()))?
        .map_err(|e| BusError::Unavailable(e.to_string()))?;

        let (conn_tx, conn_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            client_name: format!("quire:{}:{}", opts.channel_prefix, opts.node),
            origin: Origin::start(opts.node.clone()),
            node: opts.node,
            control_channel: control_channel_name(&opts.channel_prefix),
            prefix: opts.channel_prefix,
            registry: Mutex::new(Registry::default()),
            counters: Mutex::new(HashMap::new()),
            control_counter: AtomicU64::new(0),
        });
        let on_push = {
            let shared = shared.clone();
            let commands = conn_tx.clone();
            move |info: PushInfo| -> Result<(), std::convert::Infallible> {
                if shared.on_push(info) {
                    let _ = commands.send(ConnCommand::Name);
                }
                Ok(())
            }
        };
        let config = ConnectionManagerConfig::new()
            .set_push_sender(on_push)
            .set_automatic_resubscription()
            .set_min_delay(Duration::from_millis(20))
            .set_max_delay(Duration::from_secs(1))
            .set_number_of_retries(10)
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(5)));
        let conn = tokio::time::timeout(
            Duration::from_secs(10),
            client.get_connection_manager_with_config(config),
        )
        .await
        .map_err(|_| BusError::Unavailable("timed out connecting to redis".into()))?
        .map_err(|e| BusError::Unavailable(e.to_string()))?;
        name_connection(&mut conn.clone(), &shared.client_name).await?;
        // Subscribed once, for the bus's whole life; the manager resubscribes
        // it after every reconnect, like the documents' channels.
        conn.clone()
            .subscribe(&shared.control_channel)
            .await
            .map_err(|e| BusError::Unavailable(e.to_string()))?;
        metrics::gauge!(m::REDIS_CONNECTED).set(1.0);

        let stop = CancellationToken::new();
        let (publish_tx, publish_rx) = mpsc::channel(PUBLISH_QUEUE);
        tokio::spawn(publisher(conn.clone(), publish_rx));
        let (control_publish_tx, control_publish_rx) = mpsc::unbounded_channel();
        tokio::spawn(control_publisher(
            conn.clone(),
            shared.control_channel.clone(),
            control_publish_rx,
            stop.clone(),
        ));
        tokio::spawn(subscriptions(
            conn.clone(),
            shared.clone(),
            conn_rx,
            stop.clone(),
        ));
        tokio::spawn(health(conn, stop.clone()));
        Ok(RedisBus {
            shared,
            publish_tx,
            control_publish_tx,
            conn_tx,
            _stop: Arc::new(stop.drop_guard()),
        })
    }

    /// The name this node's connection has in Redis's `CLIENT LIST`.
    pub fn client_name(&self) -> &str {
        &self.shared.client_name
    }

    fn channel(&self, doc: &DocId) -> String {
        channel_name(&self.shared.prefix, doc)
    }
}

/// The Redis channel of a document's messages.
pub fn channel_name(prefix: &str, doc: &DocId) -> String {
    format!("{prefix}:doc:{doc}")
}

/// The Redis channel of the cluster's control messages. Apart from every
/// document's: `:control` is not `:doc:…`.
pub fn control_channel_name(prefix: &str) -> String {
    format!("{prefix}:control")
}

impl Shared {
    /// Handles one push from Redis; returns `true` when the connection was
    /// lost (the new one must be named).
    fn on_push(&self, info: PushInfo) -> bool {
        match info.kind {
            PushKind::Message => {
                let mut data = info.data.into_iter();
                let (Some(Value::BulkString(channel)), Some(Value::BulkString(payload))) =
                    (data.next(), data.next())
                else {
                    return false;
                };
                if channel == self.control_channel.as_bytes() {
                    self.on_control_message(payload);
                } else {
                    self.on_message(&channel, payload);
                }
            }
            PushKind::Disconnection => {
                metrics::counter!(m::REDIS_RECONNECTS_TOTAL).increment(1);
                metrics::gauge!(m::REDIS_CONNECTED).set(0.0);
                let mut reg = self.registry.lock().unwrap_or_else(|e| e.into_inner());
                let channels: Vec<String> = reg.channels.keys().cloned().collect();
                tracing::warn!(node = %self.node, channels = channels.len(), "lost the redis connection; reconnecting");
                reg.stale.extend(channels);
                reg.control_stale = true;
                return true;
            }
            PushKind::Subscribe => {
                metrics::gauge!(m::REDIS_CONNECTED).set(1.0);
                let Some(Value::BulkString(channel)) = info.data.first() else {
                    return false;
                };
                let Ok(channel) = std::str::from_utf8(channel) else {
                    return false;
                };
                let mut reg = self.registry.lock().unwrap_or_else(|e| e.into_inner());
                if channel == self.control_channel {
                    if std::mem::take(&mut reg.control_stale) {
                        tracing::info!(node = %self.node, "control channel resubscribed after reconnect; re-checking");
                        for (_, tx) in &reg.control {
                            notify_missed(tx, ControlEvent::MayHaveMissed);
                        }
                    }
                } else if reg.stale.remove(channel) {
                    tracing::info!(node = %self.node, channel, "resubscribed after reconnect; healing");
                    for (_, tx) in reg.channels.get(channel).into_iter().flatten() {
                        notify_missed(tx, BusEvent::MayHaveMissed);
                    }
                }
            }
            _ => {}
        }
        false
    }

    fn on_message(&self, channel: &[u8], payload: Vec<u8>) {
        // Our own messages come back to us: drop them before decoding.
        if envelope::is_from(&payload, &self.origin) {
            return;
        }
        let Ok(channel) = std::str::from_utf8(channel) else {
            return;
        };
        let decoded = envelope::decode(Bytes::from(payload));
        let reg = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        let msg = match decoded {
            Ok(msg) => msg,
            Err(e) => {
                metrics::counter!(m::BAD_MESSAGES_TOTAL).increment(1);
                tracing::warn!(error = %e, channel, "dropping an undecodable bus message");
                // Most likely a node of another release (another envelope
                // version) during a rolling upgrade: a change to the
                // document that we can't read, so its subscribers heal
                // from the log. That node's commit notices, refused alike,
                // bring them back once its updates are stored.
                for (_, tx) in reg.channels.get(channel).into_iter().flatten() {
                    notify_missed(tx, BusEvent::MayHaveMissed);
                }
                return;
            }
        };
        for (_, tx) in reg.channels.get(channel).into_iter().flatten() {
            if tx.try_send(BusEvent::Message(msg.clone())).is_err() {
                notify_missed(tx, BusEvent::MayHaveMissed);
            }
        }
    }

    fn on_control_message(&self, payload: Vec<u8>) {
        if envelope::is_from(&payload, &self.origin) {
            return;
        }
        let (origin, payload) = match envelope::decode_control(Bytes::from(payload)) {
            Ok(decoded) => decoded,
            Err(e) => {
                metrics::counter!(m::BAD_MESSAGES_TOTAL).increment(1);
                tracing::warn!(error = %e, "dropping an undecodable control message");
                return;
            }
        };
        let reg = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        for (_, tx) in &reg.control {
            let msg = ControlEvent::Message {
                origin: origin.clone(),
                payload: payload.clone(),
            };
            if tx.try_send(msg).is_err() {
                notify_missed(tx, ControlEvent::MayHaveMissed);
            }
        }
    }
}

/// Tells a subscriber it may have missed messages (`missed` is that notice),
/// even when its queue is full: the notice must not be lost, or the
/// subscriber would never heal.
fn notify_missed<E: Send + 'static>(tx: &mpsc::Sender<E>, missed: E) {
    if let Err(mpsc::error::TrySendError::Full(ev)) = tx.try_send(missed) {
        let tx = tx.clone();
        tokio::spawn(async move {
            let _ = tx.send(ev).await;
        });
    }
}

async fn name_connection(conn: &mut ConnectionManager, name: &str) -> Result<(), BusError> {
    redis::cmd("CLIENT")
        .arg("SETNAME")
        .arg(name)
        .exec_async(conn)
        .await
        .map_err(|e| BusError::Unavailable(e.to_string()))
}

async fn publisher(mut conn: ConnectionManager, mut rx: mpsc::Receiver<(String, Vec<u8>)>) {
    let mut batch = Vec::with_capacity(PUBLISH_BATCH);
    while rx.recv_many(&mut batch, PUBLISH_BATCH).await > 0 {
        let mut pipe = redis::pipe();
        for (channel, payload) in &batch {
            pipe.publish(channel, payload).ignore();
        }
        if let Err(e) = pipe.exec_async(&mut conn).await {
            metrics::counter!(m::PUBLISH_DROPPED_TOTAL).increment(batch.len() as u64);
            tracing::warn!(error = %e, messages = batch.len(), "publishing to redis failed; peers will heal");
        }
        batch.clear();
    }
}

/// Publishes control messages one at a time, in order, each retried until
/// Redis takes it (the connection manager reconnects meanwhile).
async fn control_publisher(
    mut conn: ConnectionManager,
    channel: String,
    mut rx: mpsc::UnboundedReceiver<Vec<u8>>,
    stop: CancellationToken,
) {
    loop {
        let payload = tokio::select! {
            p = rx.recv() => p,
            _ = stop.cancelled() => None,
        };
        let Some(payload) = payload else { return };
        let mut delay = Duration::from_millis(20);
        loop {
            let publish = redis::cmd("PUBLISH")
                .arg(&channel)
                .arg(&payload)
                .exec_async(&mut conn)
                .await;
            match publish {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "publishing a control message failed; retrying");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = stop.cancelled() => return,
            }
            delay = (delay * 2).min(CONTROL_RETRY_MAX);
        }
    }
}

async fn subscriptions(
    mut conn: ConnectionManager,
    shared: Arc<Shared>,
    mut rx: mpsc::UnboundedReceiver<ConnCommand>,
    stop: CancellationToken,
) {
    let mut subscribed: HashSet<String> = HashSet::new();
    loop {
        let cmd = tokio::select! {
            cmd = rx.recv() => cmd,
            _ = stop.cancelled() => None,
        };
        match cmd {
            None => return,
            Some(ConnCommand::Name) => {
                if let Err(e) = name_connection(&mut conn, &shared.client_name).await {
                    tracing::debug!(error = %e, "naming the new redis connection failed");
                }
            }
            Some(ConnCommand::Sync { channel, reply }) => {
                let wanted = shared
                    .registry
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .channels
                    .contains_key(&channel);
                let result = if wanted && !subscribed.contains(&channel) {
                    let r = conn.subscribe(&channel).await;
                    if r.is_ok() {
                        subscribed.insert(channel);
                    }
                    r
                } else if !wanted && subscribed.contains(&channel) {
                    // Forgotten even if Redis did not answer: the tracker
                    // that resubscribes after a reconnect has dropped it.
                    subscribed.remove(&channel);
                    conn.unsubscribe(&channel).await
                } else {
                    Ok(())
                };
                metrics::gauge!(m::CHANNELS).set(subscribed.len() as f64);
                if let Some(reply) = reply {
                    let _ = reply.send(result.map_err(|e| BusError::Unavailable(e.to_string())));
                } else if let Err(e) = result {
                    tracing::debug!(error = %e, "unsubscribing failed");
                }
            }
        }
    }
}

async fn health(mut conn: ConnectionManager, stop: CancellationToken) {
    let mut tick = tokio::time::interval(HEALTH_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        let cmd = redis::cmd("PING");
        let ping = cmd.exec_async(&mut conn);
        match tokio::time::timeout(HEALTH_INTERVAL * 2, ping).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::debug!(error = %e, "redis ping failed"),
            Err(_) => tracing::debug!("redis ping timed out"),
        }
    }
}

struct Unsubscribe {
    shared: Arc<Shared>,
    commands: mpsc::UnboundedSender<ConnCommand>,
    channel: String,
    id: u64,
}

impl Drop for Unsubscribe {
    fn drop(&mut self) {
        let mut reg = self
            .shared
            .registry
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(list) = reg.channels.get_mut(&self.channel) {
            list.retain(|(id, _)| *id != self.id);
            if list.is_empty() {
                reg.channels.remove(&self.channel);
                reg.stale.remove(&self.channel);
                drop(reg);
                let _ = self.commands.send(ConnCommand::Sync {
                    channel: std::mem::take(&mut self.channel),
                    reply: None,
                });
            }
        }
    }
}

#[async_trait::async_trait]
impl Bus for RedisBus {
    fn node_id(&self) -> &NodeId {
        &self.shared.node
    }

    async fn subscribe(&self, doc: &DocId) -> Result<Subscription, BusError> {
        let channel = self.channel(doc);
        let (tx, rx) = mpsc::channel(QUEUE);
        let id = {
            let mut reg = self
                .shared
                .registry
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            reg.next_id += 1;
            let id = reg.next_id;
            reg.channels
                .entry(channel.clone())
                .or_default()
                .push((id, tx));
            id
        };
        // From here on the guard undoes the registration, whatever happens.
        let guard = Unsubscribe {
            shared: self.shared.clone(),
            commands: self.conn_tx.clone(),
            channel: channel.clone(),
            id,
        };
        let (reply_tx, reply_rx) = oneshot::channel();
        self.conn_tx
            .send(ConnCommand::Sync {
                channel,
                reply: Some(reply_tx),
            })
            .map_err(|_| BusError::Closed)?;
        reply_rx.await.map_err(|_| BusError::Closed)??;
        Ok(Subscription::new(rx, guard))
    }

    fn publish(&self, doc: &DocId, payload: BusPayload) -> Result<u64, BusError> {
        let counter = {
            let mut counters = self
                .shared
                .counters
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let c = counters.entry(doc.clone()).or_default();
            *c += 1;
            *c
        };
        let msg = BusMessage {
            origin: self.shared.origin.clone(),
            counter,
            sent_at_micros: crate::now_micros(),
            payload,
        };
        let bytes = envelope::encode(&msg).map_err(|e| BusError::Unavailable(e.to_string()))?;
        match self.publish_tx.try_send((self.channel(doc), bytes)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                // Not silent: counted, and the counter gap tells every peer.
                metrics::counter!(m::PUBLISH_DROPPED_TOTAL).increment(1);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return Err(BusError::Closed),
        }
        Ok(counter)
    }

    async fn subscribe_control(&self) -> Result<Subscription<ControlEvent>, BusError> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let mut reg = self
            .shared
            .registry
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        reg.next_id += 1;
        let id = reg.next_id;
        reg.control.push((id, tx));
        Ok(Subscription::new(
            rx,
            UnsubscribeControl {
                shared: self.shared.clone(),
                id,
            },
        ))
    }

    fn publish_control(&self, payload: Bytes) -> Result<(), BusError> {
        let counter = self.shared.control_counter.fetch_add(1, Ordering::Relaxed) + 1;
        let bytes = envelope::encode_control(&self.shared.origin, counter, &payload)
            .map_err(|e| BusError::Unavailable(e.to_string()))?;
        self.control_publish_tx
            .send(bytes)
            .map_err(|_| BusError::Closed)
    }
}

/// Ends a control subscription; the channel itself stays subscribed.
struct UnsubscribeControl {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for UnsubscribeControl {
    fn drop(&mut self) {
        let mut reg = self
            .shared
            .registry
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        reg.control.retain(|(id, _)| *id != self.id);
    }
}
