//! The behaviour every [`Bus`] must have, written once and run against each
//! backend, like the store's suite. A backend's test file supplies a
//! [`Harness`] and expands [`bus_conformance!`](crate::bus_conformance):
//!
//! ```ignore
//! // Cargo.toml: [dev-dependencies] quire-bus = { ..., features = ["conformance"] }
//! quire_bus::bus_conformance!(MyHarness::fresh());
//! ```
//!
//! Checks never sleep to wait for delivery: they wait for the events
//! themselves, each wait bounded by [`TIMEOUT`]. "Nothing arrived" is proven
//! by ordering instead (a later message arrives first), since pub/sub keeps
//! one publisher's order.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use quire_types::{DocId, NodeId};

use crate::{Bus, BusEvent, BusMessage, BusPayload, ControlEvent, Subscription};

pub const TIMEOUT: Duration = Duration::from_secs(10);

/// How the suite reaches the bus under test. Each test gets its own harness,
/// isolated from every other (e.g. its own channel prefix).
#[async_trait::async_trait]
pub trait Harness: Send + Sync {
    /// A new node on the harness's bus. Panics if the bus is unreachable: an
    /// unreachable Redis must fail the suite, not skip it.
    async fn node(&self, id: &str) -> Arc<dyn Bus>;

    /// Cuts `node`'s connection to the bus the way a network failure or a
    /// Redis restart would; the bus must notice and reconnect by itself.
    async fn disconnect(&self, node: &NodeId);

    /// How many nodes the bus itself has subscribed to `doc` (Redis: `PUBSUB
    /// NUMSUB`, one connection per node).
    async fn subscribers(&self, doc: &DocId) -> usize;
}

/// Runs one check on a fresh multi-threaded runtime.
pub fn run<F: Future>(check: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("building a tokio runtime")
        .block_on(check)
}

#[macro_export]
macro_rules! bus_conformance {
    ($harness:expr) => {
        $crate::bus_conformance!(@checks $harness;
            delivers_to_other_nodes_and_never_echoes,
            counters_increase_per_origin_and_document,
            a_node_restarted_under_its_id_is_a_new_incarnation,
            only_subscribed_documents_are_delivered,
            every_payload_kind_arrives_intact,
            dropping_subscriptions_unsubscribes,
            publishing_with_no_subscriber_is_fine,
            may_have_missed_after_a_lost_connection,
            control_messages_reach_every_other_node_and_never_echo,
            control_payloads_are_opaque_bytes,
            every_control_subscription_hears_and_dropping_one_stops_it,
            control_may_have_missed_after_a_lost_connection,
            a_control_message_published_as_the_connection_drops_still_arrives,
        );
    };
    (@checks $harness:expr; $($check:ident),* $(,)?) => {
        $(
            #[test]
            fn $check() {
                $crate::conformance::run(async {
                    let harness = $harness.await;
                    $crate::conformance::$check(&harness).await;
                });
            }
        )*
    };
}

fn doc(name: &str) -> DocId {
    DocId::new(name).expect("valid test document id")
}

fn update(bytes: &'static [u8]) -> BusPayload {
    BusPayload::Update(Bytes::from_static(bytes))
}

async fn next_event(sub: &mut Subscription, what: &str) -> BusEvent {
    tokio::time::timeout(TIMEOUT, sub.events.recv())
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
        .unwrap_or_else(|| panic!("subscription closed while waiting for {what}"))
}

async fn next_message(sub: &mut Subscription, what: &str) -> BusMessage {
    match next_event(sub, what).await {
        BusEvent::Message(m) => m,
        other => panic!("expected {what}, got {other:?}"),
    }
}

async fn subscribe(bus: &Arc<dyn Bus>, d: &DocId) -> Subscription {
    bus.subscribe(d).await.expect("subscribe")
}

pub async fn delivers_to_other_nodes_and_never_echoes(h: &impl Harness) {
    let (a, b, c) = (h.node("a").await, h.node("b").await, h.node("c").await);
    let d = doc("fanout");
    let mut sa = subscribe(&a, &d).await;
    let mut sb = subscribe(&b, &d).await;
    let mut sc = subscribe(&c, &d).await;
    a.publish(&d, update(b"from-a")).expect("publish");
    for (sub, name) in [(&mut sb, "b"), (&mut sc, "c")] {
        let m = next_message(sub, &format!("a's update on {name}")).await;
        assert_eq!(m.origin.node, *a.node_id());
        assert_eq!(m.payload, update(b"from-a"));
    }
    // b's message is the first thing a hears: its own never came back.
    b.publish(&d, update(b"from-b")).expect("publish");
    let m = next_message(&mut sa, "b's update on a").await;
    assert_eq!(
        (m.origin.node, m.payload),
        (b.node_id().clone(), update(b"from-b")),
        "a node heard its own message"
    );
    // Likewise on c: b's message directly follows a's.
    assert_eq!(
        next_message(&mut sc, "b's update on c").await.origin.node,
        *b.node_id()
    );
}

pub async fn counters_increase_per_origin_and_document(h: &impl Harness) {
    let (a, b) = (h.node("a").await, h.node("b").await);
    let (d1, d2) = (doc("count-1"), doc("count-2"));
    let mut s1 = subscribe(&b, &d1).await;
    let mut s2 = subscribe(&b, &d2).await;
    let mut published = Vec::new();
    for _ in 0..3 {
        published.push(a.publish(&d1, update(b"x")).expect("publish"));
    }
    for _ in 0..2 {
        published.push(a.publish(&d2, update(b"y")).expect("publish"));
    }
    assert_eq!(
        published,
        [1, 2, 3, 1, 2],
        "publish returns the stamped counter"
    );
    for expected in 1..=3 {
        assert_eq!(
            next_message(&mut s1, "doc 1 message").await.counter,
            expected
        );
    }
    for expected in 1..=2 {
        assert_eq!(
            next_message(&mut s2, "doc 2 message").await.counter,
            expected
        );
    }
    // Another origin counts on its own.
    let c = h.node("c").await;
    c.publish(&d1, update(b"z")).expect("publish");
    let m = next_message(&mut s1, "c's message").await;
    assert_eq!((m.origin.node, m.counter), (c.node_id().clone(), 1));
}

/// A node restarted under the same id (the harness's `node` called again
/// with it) is another run: its counters start again at 1 under a new
/// incarnation, so subscribers can tell its messages from its previous
/// run's, and the two runs, should they overlap, hear each other.
pub async fn a_node_restarted_under_its_id_is_a_new_incarnation(h: &impl Harness) {
    let (first_run, b) = (h.node("a").await, h.node("b").await);
    let d = doc("restarted");
    let mut sb = subscribe(&b, &d).await;
    let mut s_first = subscribe(&first_run, &d).await;
    for _ in 0..3 {
        first_run.publish(&d, update(b"before")).expect("publish");
    }
    let mut before = Vec::new();
    for _ in 0..3 {
        before.push(next_message(&mut sb, "the first run's message").await);
    }
    let second_run = h.node("a").await;
    assert_eq!(second_run.node_id(), first_run.node_id());
    assert_eq!(
        second_run.publish(&d, update(b"after")).expect("publish"),
        1,
        "a new run counts from 1"
    );
    let after = next_message(&mut sb, "the second run's message").await;
    assert_eq!((after.counter, after.payload), (1, update(b"after")));
    assert_eq!(after.origin.node, before[0].origin.node);
    assert_ne!(
        after.origin, before[0].origin,
        "the runs have different incarnations"
    );
    assert!(before.iter().all(|m| m.origin == before[0].origin));
    // Not an echo: the first run hears the second.
    let m = next_message(&mut s_first, "the second run's message on the first").await;
    assert_eq!(m.origin, after.origin);
}

pub async fn only_subscribed_documents_are_delivered(h: &impl Harness) {
    let (a, b) = (h.node("a").await, h.node("b").await);
    let (wanted, other) = (doc("wanted"), doc("other"));
    let mut sub = subscribe(&b, &wanted).await;
    a.publish(&other, update(b"not for b")).expect("publish");
    a.publish(&wanted, update(b"for b")).expect("publish");
    let m = next_message(&mut sub, "the subscribed document's message").await;
    assert_eq!(m.payload, update(b"for b"));
}

pub async fn every_payload_kind_arrives_intact(h: &impl Harness) {
    let (a, b) = (h.node("a").await, h.node("b").await);
    let d = doc("kinds");
    let mut sub = subscribe(&b, &d).await;
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let payloads = [
        BusPayload::Update(Bytes::from(big)),
        BusPayload::Awareness(Bytes::from_static(b"\x01\x02awareness")),
        BusPayload::Committed { covers: 2 },
        BusPayload::Update(Bytes::new()),
    ];
    let before = crate::now_micros();
    for p in &payloads {
        a.publish(&d, p.clone()).expect("publish");
    }
    for p in &payloads {
        let m = next_message(&mut sub, "a payload").await;
        assert_eq!(&m.payload, p);
        assert!(m.sent_at_micros >= before && m.sent_at_micros <= crate::now_micros());
    }
}

pub async fn dropping_subscriptions_unsubscribes(h: &impl Harness) {
    let (a, b) = (h.node("a").await, h.node("b").await);
    let d = doc("dropped");
    let first = subscribe(&b, &d).await;
    let mut second = subscribe(&b, &d).await;
    wait_subscribers(h, &d, 1, "b's subscription").await;
    drop(first);
    // The other subscription of the same document stays live.
    a.publish(&d, update(b"still here")).expect("publish");
    assert_eq!(
        next_message(&mut second, "message after a sibling dropped")
            .await
            .payload,
        update(b"still here")
    );
    drop(second);
    wait_subscribers(h, &d, 0, "unsubscribed after the last drop").await;
    // And subscribing again works.
    let mut again = subscribe(&b, &d).await;
    a.publish(&d, update(b"again")).expect("publish");
    assert_eq!(
        next_message(&mut again, "message after resubscribing")
            .await
            .payload,
        update(b"again")
    );
}

async fn wait_subscribers(h: &impl Harness, d: &DocId, expected: usize, what: &str) {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let n = h.subscribers(d).await;
        if n == expected {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: {n} subscribers, expected {expected}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub async fn publishing_with_no_subscriber_is_fine(h: &impl Harness) {
    let a = h.node("a").await;
    let d = doc("lonely");
    assert_eq!(a.publish(&d, update(b"x")).expect("publish"), 1);
    assert_eq!(a.publish(&d, update(b"y")).expect("publish"), 2);
}

pub async fn may_have_missed_after_a_lost_connection(h: &impl Harness) {
    let (a, b) = (h.node("a").await, h.node("b").await);
    let (d1, d2) = (doc("missed-1"), doc("missed-2"));
    let mut s1 = subscribe(&b, &d1).await;
    let mut s2 = subscribe(&b, &d2).await;
    let mut s1b = subscribe(&b, &d1).await;
    h.disconnect(b.node_id()).await;
    // Every live subscription hears it, and only once the channel is live
    // again: a publish after the notice is delivered.
    for (sub, name) in [
        (&mut s1, "doc 1"),
        (&mut s2, "doc 2"),
        (&mut s1b, "doc 1, second"),
    ] {
        match next_event(sub, &format!("may-have-missed on {name}")).await {
            BusEvent::MayHaveMissed => {}
            BusEvent::Message(m) => panic!("unexpected message {m:?}"),
        }
    }
    let counter = a.publish(&d1, update(b"after")).expect("publish");
    let m = next_message(&mut s1, "a message after the reconnect").await;
    assert_eq!((m.counter, m.payload), (counter, update(b"after")));
    // And b can still publish.
    let mut sa = subscribe(&a, &d2).await;
    b.publish(&d2, update(b"from b")).expect("publish");
    assert_eq!(
        next_message(&mut sa, "b's message after its reconnect")
            .await
            .payload,
        update(b"from b")
    );
}

async fn next_control(sub: &mut Subscription<ControlEvent>, what: &str) -> ControlEvent {
    tokio::time::timeout(TIMEOUT, sub.events.recv())
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
        .unwrap_or_else(|| panic!("control subscription closed while waiting for {what}"))
}

/// The next control message's origin and bytes (panics on a notice).
async fn next_control_message(sub: &mut Subscription<ControlEvent>, what: &str) -> (NodeId, Bytes) {
    match next_control(sub, what).await {
        ControlEvent::Message { origin, payload } => (origin, payload),
        other => panic!("expected {what}, got {other:?}"),
    }
}

async fn subscribe_control(bus: &Arc<dyn Bus>) -> Subscription<ControlEvent> {
    bus.subscribe_control().await.expect("subscribe to control")
}

pub async fn control_messages_reach_every_other_node_and_never_echo(h: &impl Harness) {
    let (a, b, c) = (h.node("a").await, h.node("b").await, h.node("c").await);
    let mut sa = subscribe_control(&a).await;
    let mut sb = subscribe_control(&b).await;
    let mut sc = subscribe_control(&c).await;
    a.publish_control(Bytes::from_static(b"from-a"))
        .expect("publish");
    for (sub, name) in [(&mut sb, "b"), (&mut sc, "c")] {
        assert_eq!(
            next_control_message(sub, &format!("a's control message on {name}")).await,
            (a.node_id().clone(), Bytes::from_static(b"from-a"))
        );
    }
    // b's message is the first thing a hears: its own never came back.
    b.publish_control(Bytes::from_static(b"from-b"))
        .expect("publish");
    assert_eq!(
        next_control_message(&mut sa, "b's control message on a").await,
        (b.node_id().clone(), Bytes::from_static(b"from-b")),
        "a node heard its own control message"
    );
    assert_eq!(
        next_control_message(&mut sc, "b's control message on c")
            .await
            .0,
        *b.node_id()
    );
    // Control messages and document messages don't mix.
    let d = doc("control-apart");
    let mut doc_sub = subscribe(&b, &d).await;
    a.publish_control(Bytes::from_static(b"control"))
        .expect("publish");
    a.publish(&d, update(b"document")).expect("publish");
    assert_eq!(
        next_message(&mut doc_sub, "the document's message")
            .await
            .payload,
        update(b"document")
    );
    assert_eq!(
        next_control_message(&mut sb, "the control message").await.1,
        Bytes::from_static(b"control")
    );
}

pub async fn control_payloads_are_opaque_bytes(h: &impl Harness) {
    let (a, b) = (h.node("a").await, h.node("b").await);
    let mut sub = subscribe_control(&b).await;
    let big: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
    let payloads = [
        Bytes::new(),
        Bytes::from_static(&[0xff, 0xfe, 0x00, 0x01]),
        Bytes::from_static(b"not json {"),
        Bytes::from(big),
    ];
    for p in &payloads {
        a.publish_control(p.clone()).expect("publish");
    }
    for p in &payloads {
        assert_eq!(&next_control_message(&mut sub, "a payload").await.1, p);
    }
}

pub async fn every_control_subscription_hears_and_dropping_one_stops_it(h: &impl Harness) {
    let (a, b) = (h.node("a").await, h.node("b").await);
    let first = subscribe_control(&b).await;
    let mut second = subscribe_control(&b).await;
    drop(first);
    a.publish_control(Bytes::from_static(b"one"))
        .expect("publish");
    assert_eq!(
        next_control_message(&mut second, "a message after a sibling dropped")
            .await
            .1,
        Bytes::from_static(b"one")
    );
    let mut third = subscribe_control(&b).await;
    a.publish_control(Bytes::from_static(b"two"))
        .expect("publish");
    for sub in [&mut second, &mut third] {
        assert_eq!(
            next_control_message(sub, "a message to both").await.1,
            Bytes::from_static(b"two")
        );
    }
}

pub async fn control_may_have_missed_after_a_lost_connection(h: &impl Harness) {
    let (a, b) = (h.node("a").await, h.node("b").await);
    let mut sub = subscribe_control(&b).await;
    h.disconnect(b.node_id()).await;
    // Told once the channel is live again: a publish after the notice arrives.
    match next_control(&mut sub, "may-have-missed on the control channel").await {
        ControlEvent::MayHaveMissed => {}
        other => panic!("unexpected {other:?}"),
    }
    a.publish_control(Bytes::from_static(b"after"))
        .expect("publish");
    assert_eq!(
        next_control_message(&mut sub, "a control message after the reconnect").await,
        (a.node_id().clone(), Bytes::from_static(b"after"))
    );
    // And b can still publish.
    let mut sa = subscribe_control(&a).await;
    b.publish_control(Bytes::from_static(b"from b"))
        .expect("publish");
    assert_eq!(
        next_control_message(&mut sa, "b's control message after its reconnect")
            .await
            .1,
        Bytes::from_static(b"from b")
    );
}

/// A lost control message is noticed by nobody (unlike a document update,
/// whose counter gap its peers see), so the publisher must not lose one to
/// its own disconnection. Many are queued before the cut, so that the cut
/// lands while they are being sent. One that was sent just as the
/// connection dropped may arrive twice (the publisher can't know it went
/// out); none may be missing or out of order.
pub async fn a_control_message_published_as_the_connection_drops_still_arrives(h: &impl Harness) {
    const N: u32 = 200;
    let (a, b) = (h.node("a").await, h.node("b").await);
    let mut sub = subscribe_control(&b).await;
    for i in 0..N {
        a.publish_control(Bytes::copy_from_slice(&i.to_be_bytes()))
            .expect("publish");
    }
    h.disconnect(a.node_id()).await;
    let mut last = None;
    while last != Some(N - 1) {
        let (origin, payload) =
            next_control_message(&mut sub, "the messages published across the cut").await;
        assert_eq!(origin, *a.node_id());
        let i = u32::from_be_bytes(payload[..].try_into().expect("4 bytes"));
        let expected = last.map_or(0, |l| l + 1);
        assert!(
            Some(i) == last || i == expected,
            "got message {i} after {last:?}: one was lost or reordered"
        );
        last = Some(i);
    }
}
