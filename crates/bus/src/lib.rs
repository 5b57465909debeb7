//! Fan-out between Quire nodes: a document's updates and awareness, published
//! by the node that received them, delivered to every other node that has the
//! document live; and one node-wide control channel, whose messages (opaque
//! bytes here: the server decides what they mean) reach every other node.
//!
//! The bus is at-most-once (Redis pub/sub is): a subscriber learns that it may
//! have missed messages through [`BusEvent::MayHaveMissed`] or a gap in an
//! origin's counter, and heals from the store. CRDT updates are idempotent, so
//! a duplicate is harmless and a redelivery is never needed. The control
//! channel has the same notice, [`ControlEvent::MayHaveMissed`], after which a
//! subscriber re-checks against the store whatever a lost message could have
//! changed.

mod envelope;
mod local;
pub mod metrics;
mod redis_bus;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
#[cfg(any(test, feature = "conformance"))]
pub mod redis_admin;

pub use envelope::EnvelopeError;
pub use local::{LocalBus, LocalBusNode};
pub use redis_bus::{RedisBus, RedisBusOptions, channel_name, control_channel_name};

use bytes::Bytes;
use quire_types::{DocId, NodeId};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusPayload {
    /// A Yjs update (v1), exactly as applied on the origin node.
    Update(Bytes),
    /// An awareness update, as relayed on the origin node.
    Awareness(Bytes),
    /// Every update the origin published for this document with a counter up
    /// to and including `covers` is committed to the store. Published after
    /// each commit, because updates are published *before* they commit: a
    /// node that noticed a gap re-reads the log once the missing counters are
    /// covered, and so never reads it too early.
    Committed { covers: u64 },
}

/// Who published a message: a node, in one run of its process. A node
/// restarted under the same id (a fixed `--node-id`, a StatefulSet pod) is a
/// new incarnation: its counters start again at 1, and what its previous run
/// published belongs to that run, which will never say more (what it left
/// uncommitted is a lost peer's). So everything a subscriber tracks per
/// origin is keyed by both.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    pub node: NodeId,
    /// Drawn at random when the bus handle is made (once per process), so
    /// two runs of a node never share one.
    pub incarnation: u64,
}

impl Origin {
    /// A new run of `node`.
    pub fn start(node: NodeId) -> Origin {
        Origin {
            node,
            incarnation: uuid::Uuid::new_v4().as_u64_pair().0,
        }
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}#{:016x}", self.node, self.incarnation)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusMessage {
    pub origin: Origin,
    /// Per (origin, document) counter, starting at 1 when the origin first
    /// publishes for the document. A jump means messages were lost.
    pub counter: u64,
    /// When the origin published it, in microseconds since the Unix epoch;
    /// only for the bus lag metric (clocks of different machines may differ).
    pub sent_at_micros: u64,
    pub payload: BusPayload,
}

/// Now, in microseconds since the Unix epoch, for [`BusMessage::sent_at_micros`].
pub fn now_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or_default()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusEvent {
    Message(BusMessage),
    /// The connection to the bus was lost and re-established, or the local
    /// queue overflowed: messages may have been missed.
    MayHaveMissed,
}

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("bus unavailable: {0}")]
    Unavailable(String),
    #[error("bus is shut down")]
    Closed,
}

/// What a control-channel subscription receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlEvent {
    /// Another node's control message, its bytes exactly as published.
    Message { origin: NodeId, payload: Bytes },
    /// The connection to the bus was lost and re-established, or the local
    /// queue overflowed: control messages may have been missed.
    MayHaveMissed,
}

/// A live subscription to one document's channel (or, as
/// `Subscription<ControlEvent>`, to the control channel); dropping it
/// unsubscribes.
pub struct Subscription<E = BusEvent> {
    pub events: tokio::sync::mpsc::Receiver<E>,
    _guard: Box<dyn Send + Sync>,
}

impl<E> Subscription<E> {
    pub fn new(events: tokio::sync::mpsc::Receiver<E>, guard: impl Send + Sync + 'static) -> Self {
        Subscription {
            events,
            _guard: Box::new(guard),
        }
    }
}

#[async_trait::async_trait]
pub trait Bus: Send + Sync + 'static {
    fn node_id(&self) -> &NodeId;

    /// Starts delivering the document's messages from other nodes. Messages
    /// published before this returns may not be delivered; the caller loads
    /// the document from the store after subscribing to close that window.
    async fn subscribe(&self, doc: &DocId) -> Result<Subscription, BusError>;

    /// Publishes to the other nodes without waiting for the network; stamps the
    /// origin and the next per-(origin, document) counter, and returns that
    /// counter. Fails only if the bus is shut down. A counter starts at 1 and
    /// never restarts within an [`Origin`] (a restarted node, even under the
    /// same id, is a new incarnation), so a subscriber can tell any lost
    /// message from the next one's counter.
    fn publish(&self, doc: &DocId, payload: BusPayload) -> Result<u64, BusError>;

    /// Starts delivering the control channel: every control message another
    /// node publishes, to every control subscription of this node. A node
    /// never receives its own control messages (as with documents): the node
    /// that publishes one has already acted on it.
    async fn subscribe_control(&self) -> Result<Subscription<ControlEvent>, BusError>;

    /// Publishes opaque bytes to every other node's control subscriptions,
    /// without waiting for the network. Unlike a document message, which a
    /// peer can notice missing and heal, a control message that never left
    /// this node would be noticed by nobody: the bus keeps it until the
    /// transport has taken it (Redis: retried after a reconnect), so one
    /// sent just as the connection dropped may arrive twice: control messages
    /// must be safe to apply again. Fails only if the bus is shut down.
    fn publish_control(&self, payload: Bytes) -> Result<(), BusError>;
}
