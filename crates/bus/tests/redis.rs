//! [`RedisBus`] against the shared bus conformance suite, on the machine's
//! Redis (`redis://127.0.0.1:6379/` unless `QUIRE_TEST_REDIS_URL` says
//! otherwise). Each test uses its own channel prefix, so tests running at the
//! same time never hear each other, and cuts connections by id (found by the
//! connection's name), never all of Redis's clients: other tests share it.
//! If Redis can't be reached these tests fail rather than skip.

use std::sync::Arc;

use bytes::Bytes;
use quire_bus::conformance::Harness;
use quire_bus::redis_admin::kill_clients;
use quire_bus::{
    Bus, BusEvent, BusPayload, ControlEvent, RedisBus, RedisBusOptions, channel_name,
    control_channel_name,
};
use quire_types::{DocId, NodeId};

fn redis_url() -> String {
    std::env::var("QUIRE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".to_string())
}

struct RedisHarness {
    prefix: String,
    admin: redis::aio::MultiplexedConnection,
}

impl RedisHarness {
    async fn fresh() -> RedisHarness {
        let client = redis::Client::open(redis_url()).expect("redis url");
        let admin = client
            .get_multiplexed_async_connection()
            .await
            .unwrap_or_else(|e| panic!("Redis at {} is required by these tests: {e}", redis_url()));
        RedisHarness {
            prefix: format!("quire-test-{}", NodeId::generate()),
            admin,
        }
    }

    fn client_name(&self, node: &NodeId) -> String {
        format!("quire:{}:{}", self.prefix, node)
    }
}

#[async_trait::async_trait]
impl Harness for RedisHarness {
    async fn node(&self, id: &str) -> Arc<dyn Bus> {
        let bus = RedisBus::connect(RedisBusOptions {
            url: redis_url(),
            channel_prefix: self.prefix.clone(),
            node: NodeId(id.to_string()),
        })
        .await
        .unwrap_or_else(|e| panic!("Redis at {} is required by these tests: {e}", redis_url()));
        assert_eq!(bus.client_name(), self.client_name(&NodeId(id.to_string())));
        Arc::new(bus)
    }

    async fn disconnect(&self, node: &NodeId) {
        kill_clients(&mut self.admin.clone(), &self.client_name(node)).await;
    }

    async fn subscribers(&self, doc: &DocId) -> usize {
        let mut admin = self.admin.clone();
        let (_, n): (String, usize) = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(channel_name(&self.prefix, doc))
            .query_async(&mut admin)
            .await
            .expect("PUBSUB NUMSUB");
        n
    }
}

quire_bus::bus_conformance!(RedisHarness::fresh());

#[test]
fn an_unreachable_redis_is_an_error_not_a_hang() {
    quire_bus::conformance::run(async {
        let result = RedisBus::connect(RedisBusOptions {
            url: "redis://127.0.0.1:1/".to_string(),
            channel_prefix: "unreachable".to_string(),
            node: NodeId::generate(),
        })
        .await;
        assert!(result.is_err());
    });
}

/// Bytes that are not a control envelope (garbage, a document message, a
/// future version) are dropped, counted, and change nothing for the next
/// good message.
#[test]
fn garbage_on_the_control_channel_is_dropped_and_the_channel_goes_on() {
    quire_bus::conformance::run(async {
        let harness = RedisHarness::fresh().await;
        let (a, b) = (harness.node("a").await, harness.node("b").await);
        let mut sub = b.subscribe_control().await.expect("subscribe");
        let mut admin = harness.admin.clone();
        let future_version = {
            let mut v = vec![9u8; 27];
            v[26] = 0;
            v
        };
        for garbage in [
            &b""[..],
            b"not an envelope",
            // A version 1 (previous release) document message.
            &[
                1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, b'x',
            ],
            &future_version,
        ] {
            let _: () = redis::cmd("PUBLISH")
                .arg(control_channel_name(&harness.prefix))
                .arg(garbage)
                .query_async(&mut admin)
                .await
                .expect("PUBLISH");
        }
        a.publish_control(Bytes::from_static(b"good"))
            .expect("publish");
        let event = tokio::time::timeout(quire_bus::conformance::TIMEOUT, sub.events.recv())
            .await
            .expect("the good message arrives")
            .expect("subscription open");
        assert_eq!(
            event,
            ControlEvent::Message {
                origin: a.node_id().clone(),
                payload: Bytes::from_static(b"good"),
            }
        );
    });
}

/// A document message this node can't read (here one of the previous
/// envelope version, as a node not yet upgraded sends during a rolling
/// upgrade) is a change to the document it lost: its subscribers are told to
/// heal, and the next good message arrives as usual.
#[test]
fn an_unreadable_document_message_tells_subscribers_they_missed_one() {
    quire_bus::conformance::run(async {
        let harness = RedisHarness::fresh().await;
        let (a, b) = (harness.node("a").await, harness.node("b").await);
        let d: DocId = "mixed-versions".parse().unwrap();
        let mut sub = b.subscribe(&d).await.expect("subscribe");
        let mut admin = harness.admin.clone();
        let version_1: &[u8] = &[
            1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, b'x', b'u',
        ];
        let _: () = redis::cmd("PUBLISH")
            .arg(channel_name(&harness.prefix, &d))
            .arg(version_1)
            .query_async(&mut admin)
            .await
            .expect("PUBLISH");
        let next = async |sub: &mut quire_bus::Subscription| {
            tokio::time::timeout(quire_bus::conformance::TIMEOUT, sub.events.recv())
                .await
                .expect("an event arrives")
                .expect("subscription open")
        };
        assert_eq!(next(&mut sub).await, BusEvent::MayHaveMissed);
        a.publish(&d, BusPayload::Update(Bytes::from_static(b"good")))
            .expect("publish");
        match next(&mut sub).await {
            BusEvent::Message(m) => {
                assert_eq!(m.payload, BusPayload::Update(Bytes::from_static(b"good")))
            }
            other => panic!("expected the good message, got {other:?}"),
        }
    });
}
