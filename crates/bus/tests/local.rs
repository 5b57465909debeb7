//! [`LocalBus`] against the shared bus conformance suite.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use quire_bus::conformance::Harness;
use quire_bus::{Bus, LocalBus, LocalBusNode};
use quire_types::{DocId, NodeId};

#[derive(Default)]
struct LocalHarness {
    bus: LocalBus,
    nodes: Mutex<HashMap<NodeId, LocalBusNode>>,
}

#[async_trait::async_trait]
impl Harness for LocalHarness {
    async fn node(&self, id: &str) -> Arc<dyn Bus> {
        let node = self.bus.node(NodeId(id.to_string()));
        self.nodes
            .lock()
            .unwrap()
            .insert(node.node_id().clone(), node.clone());
        Arc::new(node)
    }

    async fn disconnect(&self, node: &NodeId) {
        let node = self.nodes.lock().unwrap()[node].clone();
        node.simulate_reconnect();
    }

    async fn subscribers(&self, doc: &DocId) -> usize {
        self.bus.subscribers(doc)
    }
}

async fn fresh() -> LocalHarness {
    LocalHarness::default()
}

quire_bus::bus_conformance!(fresh());
