//! Fan-out between Quire nodes: a document's updates and awareness, published
//! by the node that received them, delivered to every other node that has the
//! document live.
//!
//! The bus is at-most-once (Redis pub/sub is): a subscriber learns that it may
//! have missed messages through [`BusEvent::MayHaveMissed`] or a gap in an
//! origin's counter, and heals from the store. CRDT updates are idempotent, so
//! a duplicate is harmless and a redelivery is never needed.

mod envelope;
mod local;
pub mod metrics;
mod redis_bus;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;

pub use envelope::EnvelopeError;
pub use local::{LocalBus, LocalBusNode};
pub use redis_bus::{RedisBus, RedisBusOptions, channel_name};

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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusMessage {
    pub origin: NodeId,
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

/// A live subscription to one document's channel; dropping it unsubscribes.
pub struct Subscription {
    pub events: tokio::sync::mpsc::Receiver<BusEvent>,
    _guard: Box<dyn Send + Sync>,
}

impl Subscription {
    pub fn new(
        events: tokio::sync::mpsc::Receiver<BusEvent>,
        guard: impl Send + Sync + 'static,
    ) -> Self {
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
    /// never restarts while the node runs (a restarted node has a new id), so
    /// a subscriber can tell any lost message from the next one's counter.
    fn publish(&self, doc: &DocId, payload: BusPayload) -> Result<u64, BusError>;
}
