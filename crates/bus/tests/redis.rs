//! [`RedisBus`] against the shared bus conformance suite, on the machine's
//! Redis (`redis://127.0.0.1:6379/` unless `QUIRE_TEST_REDIS_URL` says
//! otherwise). Each test uses its own channel prefix, so tests running at the
//! same time never hear each other, and cuts connections by id (found by the
//! connection's name), never all of Redis's clients: other tests share it.
//! If Redis can't be reached these tests fail rather than skip.

use std::sync::Arc;

use quire_bus::conformance::Harness;
use quire_bus::{Bus, RedisBus, RedisBusOptions, channel_name};
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

/// Ids of the clients named `name` in `CLIENT LIST`.
async fn client_ids(admin: &mut redis::aio::MultiplexedConnection, name: &str) -> Vec<String> {
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(admin)
        .await
        .expect("CLIENT LIST");
    list.lines()
        .filter(|line| line.split(' ').any(|f| f == format!("name={name}")))
        .filter_map(|line| {
            line.split(' ')
                .find_map(|f| f.strip_prefix("id="))
                .map(str::to_string)
        })
        .collect()
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
        let mut admin = self.admin.clone();
        let ids = client_ids(&mut admin, &self.client_name(node)).await;
        assert!(
            !ids.is_empty(),
            "no redis connection named {}",
            self.client_name(node)
        );
        for id in ids {
            let _: () = redis::cmd("CLIENT")
                .arg("KILL")
                .arg("ID")
                .arg(&id)
                .query_async(&mut admin)
                .await
                .expect("CLIENT KILL");
        }
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
