//! The in-process bus: every node handle made from one [`LocalBus`] sees the
//! others' messages. A single node (the embedded default) has nobody to talk
//! to, so publishing costs one map lookup. Tests use several handles to run
//! many hubs in one process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use quire_types::{DocId, NodeId};
use tokio::sync::mpsc;

use crate::{Bus, BusError, BusEvent, BusMessage, BusPayload, ControlEvent, Origin, Subscription};

/// Per-subscriber queue bound. A subscriber that falls this far behind is told
/// it may have missed messages (and heals from the store) instead of stalling
/// the publisher.
const QUEUE: usize = 4096;

#[derive(Default, Clone)]
pub struct LocalBus {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    next_sub: u64,
    subs: HashMap<DocId, Vec<(u64, Origin, mpsc::Sender<BusEvent>)>>,
    counters: HashMap<(Origin, DocId), u64>,
    control: Vec<(u64, Origin, mpsc::Sender<ControlEvent>)>,
}

impl LocalBus {
    pub fn new() -> Self {
        Self::default()
    }

    /// A node joining the bus: one run of its process. Calling this again
    /// with the same id is that node restarted (a new [`Origin`]); clones of
    /// the handle are the same run.
    pub fn node(&self, id: NodeId) -> LocalBusNode {
        LocalBusNode {
            bus: self.clone(),
            origin: Origin::start(id),
        }
    }
}

#[derive(Clone)]
pub struct LocalBusNode {
    bus: LocalBus,
    origin: Origin,
}

struct Unsubscribe {
    bus: LocalBus,
    doc: DocId,
    sub: u64,
}

impl Drop for Unsubscribe {
    fn drop(&mut self) {
        let mut inner = self.bus.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(list) = inner.subs.get_mut(&self.doc) {
            list.retain(|(id, _, _)| *id != self.sub);
            if list.is_empty() {
                inner.subs.remove(&self.doc);
            }
        }
    }
}

struct UnsubscribeControl {
    bus: LocalBus,
    sub: u64,
}

impl Drop for UnsubscribeControl {
    fn drop(&mut self) {
        let mut inner = self.bus.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.control.retain(|(id, _, _)| *id != self.sub);
    }
}

#[async_trait::async_trait]
impl Bus for LocalBusNode {
    fn node_id(&self) -> &NodeId {
        &self.origin.node
    }

    async fn subscribe(&self, doc: &DocId) -> Result<Subscription, BusError> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let mut inner = self.bus.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.next_sub += 1;
        let sub = inner.next_sub;
        inner
            .subs
            .entry(doc.clone())
            .or_default()
            .push((sub, self.origin.clone(), tx));
        drop(inner);
        Ok(Subscription::new(
            rx,
            Unsubscribe {
                bus: self.bus.clone(),
                doc: doc.clone(),
                sub,
            },
        ))
    }

    fn publish(&self, doc: &DocId, payload: BusPayload) -> Result<u64, BusError> {
        let mut inner = self.bus.inner.lock().unwrap_or_else(|e| e.into_inner());
        // Stamped even when nobody else listens: a node that subscribes later
        // sees a counter above 1 and knows something was published before it
        // arrived (and may have committed after it loaded).
        let counter = {
            let c = inner
                .counters
                .entry((self.origin.clone(), doc.clone()))
                .or_default();
            *c += 1;
            *c
        };
        let msg = BusMessage {
            origin: self.origin.clone(),
            counter,
            sent_at_micros: crate::now_micros(),
            payload,
        };
        for (_, node, tx) in inner.subs.get(doc).into_iter().flatten() {
            if *node == self.origin {
                continue;
            }
            if tx.try_send(BusEvent::Message(msg.clone())).is_err() {
                // Full: the subscriber is told to heal rather than silently
                // missing an update (the counter gap also reveals it).
                let _ = tx.try_send(BusEvent::MayHaveMissed);
            }
        }
        Ok(counter)
    }

    async fn subscribe_control(&self) -> Result<Subscription<ControlEvent>, BusError> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let mut inner = self.bus.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.next_sub += 1;
        let sub = inner.next_sub;
        inner.control.push((sub, self.origin.clone(), tx));
        drop(inner);
        Ok(Subscription::new(
            rx,
            UnsubscribeControl {
                bus: self.bus.clone(),
                sub,
            },
        ))
    }

    fn publish_control(&self, payload: Bytes) -> Result<(), BusError> {
        let inner = self.bus.inner.lock().unwrap_or_else(|e| e.into_inner());
        for (_, node, tx) in &inner.control {
            if *node == self.origin {
                continue;
            }
            let msg = ControlEvent::Message {
                origin: self.origin.node.clone(),
                payload: payload.clone(),
            };
            if tx.try_send(msg).is_err() {
                let _ = tx.try_send(ControlEvent::MayHaveMissed);
            }
        }
        Ok(())
    }
}

impl LocalBus {
    /// Nodes subscribed to `doc` (for tests).
    pub fn subscribers(&self, doc: &DocId) -> usize {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let nodes: std::collections::HashSet<&NodeId> = inner
            .subs
            .get(doc)
            .into_iter()
            .flatten()
            .map(|(_, origin, _)| &origin.node)
            .collect();
        nodes.len()
    }
}

impl LocalBusNode {
    /// What a reconnect to a real bus looks like to this node's subscribers
    /// (documents and control channel alike): each is told it may have missed
    /// messages. For tests.
    pub fn simulate_reconnect(&self) {
        let inner = self.bus.inner.lock().unwrap_or_else(|e| e.into_inner());
        for (_, node, tx) in inner.subs.values().flatten() {
            if *node == self.origin {
                let _ = tx.try_send(BusEvent::MayHaveMissed);
            }
        }
        for (_, node, tx) in &inner.control {
            if *node == self.origin {
                let _ = tx.try_send(ControlEvent::MayHaveMissed);
            }
        }
    }
}
