//! Presence belongs to the signed-in account, through real sockets and the
//! real REST API: whatever `user` an awareness state claims, the others see
//! (and the documents API lists) the account that sent it; states a stock
//! y-protocols client cannot parse never reach it.

mod common;

use std::collections::HashMap;

use common::*;
use quire_protocol::{encode_awareness, encode_awareness_update};
use reqwest::Method;
use serde_json::{Value, json};

/// An account with a known presence colour.
async fn account(server: &TestServer, email: &str, name: &str, color: &str) -> TestUser {
    let user = server.user(email, name).await;
    let resp = user
        .request(Method::PATCH, "/api/me")
        .json(&json!({ "color": color }))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "setting {email}'s colour");
    user
}

fn bound_user(user: &TestUser, color: &str) -> Value {
    json!({ "id": user.id, "name": user.name, "color": color })
}

/// Alice owns `doc` and shares it with Mallory as `role`; both are connected
/// and synced.
async fn alice_and_mallory(
    server: &TestServer,
    doc: &str,
    role: &str,
) -> (TestUser, TestClient, TestUser, TestClient) {
    let alice = account(server, "alice@quire.test", "Alice", "#e6194b").await;
    let mallory = account(server, "mallory@quire.test", "Mallory", "#3cb44b").await;
    alice.create_document(doc).await;
    alice.share(doc, &mallory.email, role).await;
    let url = server.ws_url(doc);
    let mut a = TestClient::connect_as(&url, &alice).await;
    let mut m = TestClient::connect_as(&url, &mallory).await;
    a.wait_synced().await;
    m.wait_synced().await;
    (alice, a, mallory, m)
}

/// The awareness states `client` holds, parsed.
fn states(client: &TestClient) -> HashMap<u64, Value> {
    client
        .snapshot()
        .awareness
        .iter()
        .map(|(id, s)| (*id, serde_json::from_str(s).expect("a JSON state")))
        .collect()
}

/// Waits until `client` holds a state for `id` that satisfies `pred`; returns it.
async fn state_of(
    client: &mut TestClient,
    id: u64,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    within(
        what,
        client.state.wait_for(|s| {
            s.awareness
                .get(&id)
                .and_then(|j| serde_json::from_str::<Value>(j).ok())
                .is_some_and(|v| pred(&v))
        }),
    )
    .await
    .unwrap();
    states(client)[&id].clone()
}

async fn present(user: &TestUser, doc: &str) -> Value {
    let resp = user
        .request(Method::GET, &format!("/api/documents/{doc}"))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    let body: Value = resp.json().await.unwrap();
    body["document"]["present"].clone()
}

#[tokio::test]
async fn a_viewer_spoofing_alice_is_seen_and_listed_as_the_viewer() {
    let server = TestServer::start().await;
    let (alice, mut a, mallory, mut m) = alice_and_mallory(&server, "spoof", "viewer").await;
    let alice_user = bound_user(&alice, "#e6194b");
    let mallory_user = bound_user(&mallory, "#3cb44b");

    let cursor = json!({ "anchor": { "type": { "client": 1, "clock": 2 }, "tname": null, "item": null, "assoc": 0 }, "head": null });
    let spoof = json!({ "user": { "name": "Alice (owner)", "color": "#e6194b", "id": alice.id }, "cursor": cursor });
    m.set_awareness(66, 1, &spoof.to_string());
    let seen = state_of(&mut a, 66, "Alice sees the viewer's state", |_| true).await;
    assert_eq!(
        seen,
        json!({ "user": mallory_user, "cursor": cursor }),
        "Alice sees the viewer's own account, and the caret as sent"
    );
    // The sender hears the bound state too (stock clients rely on the echo).
    let echoed = state_of(&mut m, 66, "the viewer's echo", |_| true).await;
    assert_eq!(echoed["user"], mallory_user);

    // Alice's own tab publishes no `user` at all: it gets her account's.
    a.set_awareness(11, 1, "{}");
    state_of(&mut m, 11, "the viewer sees Alice", |_| true).await;
    assert_eq!(states(&m)[&11], json!({ "user": alice_user }));

    let listed = present(&alice, "spoof").await;
    assert_eq!(listed, json!([alice_user, mallory_user]), "{listed}");
    let all: Value = alice
        .request(Method::GET, "/api/documents")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let row = all["documents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == "spoof")
        .unwrap();
    assert_eq!(row["present"], listed, "the list shows the same people");
    assert!(!listed.to_string().contains("(owner)"));
}

#[tokio::test]
async fn a_state_naming_another_user_id_is_rewritten_and_tabs_of_one_account_are_one_person() {
    let server = TestServer::start().await;
    let (alice, mut a, mallory, m) = alice_and_mallory(&server, "ids", "editor").await;
    let alice_user = bound_user(&alice, "#e6194b");
    let mallory_user = bound_user(&mallory, "#3cb44b");

    // Exactly the form the server binds, but naming Alice: rewritten all the
    // same, and a second `user` key cannot smuggle her in either.
    m.set_awareness(5, 1, &json!({ "user": alice_user }).to_string());
    let duplicate = format!(r#"{{"user":{mallory_user},"user":{alice_user},"x":1}}"#);
    m.set_awareness(6, 1, &duplicate);
    let five = state_of(&mut a, 5, "Alice sees tab 5", |_| true).await;
    let six = state_of(&mut a, 6, "Alice sees tab 6", |_| true).await;
    assert_eq!(five, json!({ "user": mallory_user }));
    assert_eq!(six, json!({ "user": mallory_user, "x": 1 }));
    // A second socket of Mallory's.
    let mut m2 = TestClient::connect_as(&server.ws_url("ids"), &mallory).await;
    m2.wait_synced().await;
    m2.set_awareness(7, 1, r#"{"user":{"name":"Someone else"}}"#);
    state_of(&mut a, 7, "Alice sees Mallory's second socket", |v| {
        v["user"] == mallory_user
    })
    .await;

    assert_eq!(
        present(&alice, "ids").await,
        json!([mallory_user]),
        "three states of one account are listed once"
    );
    drop(m);
}

#[tokio::test]
async fn states_that_are_not_json_objects_are_refused_and_the_rest_of_the_frame_goes_through() {
    let server = TestServer::start().await;
    let (_alice, mut a, mallory, m) = alice_and_mallory(&server, "junk", "viewer").await;
    let frame = encode_awareness_update(
        [
            (1, 1, "{not json"),
            (2, 1, "[1,2,3]"),
            (3, 1, "\"Alice\""),
            (4, 1, "{} trailing"),
            (5, 1, r#"{"cursor":null}"#),
        ]
        .into_iter(),
    );
    m.send_raw(encode_awareness(&frame));
    state_of(&mut a, 5, "Alice sees the valid state", |_| true).await;
    let got = states(&a);
    for refused in 1..=4 {
        assert!(
            !got.contains_key(&refused),
            "entry {refused} was relayed: {got:?}"
        );
    }
    assert_eq!(got[&5]["user"], bound_user(&mallory, "#3cb44b"));
    // Refused entries are not a protocol error: the socket stays open, and
    // a joiner is handed only the valid state.
    assert_eq!(m.snapshot().closed, None);
    let mut late = TestClient::connect_as(&server.ws_url("junk"), &mallory).await;
    late.wait_synced().await;
    within(
        "the joiner gets the presence",
        late.state.wait_for(|s| s.awareness.contains_key(&5)),
    )
    .await
    .unwrap();
    assert_eq!(late.snapshot().awareness.len(), 1);
    m.set_awareness(5, 2, "null");
    within(
        "still heard after the refusals",
        a.state.wait_for(|s| !s.awareness.contains_key(&5)),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn removal_and_leaving_take_the_account_out_of_the_listing() {
    let server = TestServer::start().await;
    let (alice, mut a, mallory, m) = alice_and_mallory(&server, "leave", "viewer").await;
    let mallory_user = bound_user(&mallory, "#3cb44b");

    // A removal (`null`) is passed on as y-protocols sends it.
    m.set_awareness(8, 1, "{}");
    state_of(&mut a, 8, "Alice sees Mallory", |_| true).await;
    assert_eq!(present(&alice, "leave").await, json!([mallory_user]));
    m.set_awareness(8, 2, "null");
    within(
        "the removal reaches Alice",
        a.state.wait_for(|s| !s.awareness.contains_key(&8)),
    )
    .await
    .unwrap();
    assert_eq!(present(&alice, "leave").await, json!([]));

    // Leaving removes whatever the session still had, without a timeout.
    m.set_awareness(9, 1, "{}");
    m.set_awareness(10, 1, "{}");
    within(
        "Alice sees both states",
        a.state
            .wait_for(|s| s.awareness.contains_key(&9) && s.awareness.contains_key(&10)),
    )
    .await
    .unwrap();
    m.close();
    within(
        "Mallory's states are removed when she leaves",
        a.state
            .wait_for(|s| !s.awareness.contains_key(&9) && !s.awareness.contains_key(&10)),
    )
    .await
    .unwrap();
    assert_eq!(present(&alice, "leave").await, json!([]));
}

#[tokio::test]
async fn a_client_that_comes_back_is_not_locked_out_by_an_echo_of_its_removal() {
    let server = TestServer::start().await;
    let (alice, mut a, mallory, m) = alice_and_mallory(&server, "back", "viewer").await;
    m.set_awareness(42, 3, r#"{"status":"here"}"#);
    state_of(&mut a, 42, "Alice sees Mallory", |_| true).await;
    m.close();
    within(
        "Mallory's state is removed when she leaves",
        a.state.wait_for(|s| !s.awareness.contains_key(&42)),
    )
    .await
    .unwrap();
    // A stock client sends back every change it hears: Mallory's last
    // state (which arrives after she left) and her removal. Neither may
    // take her client id.
    a.set_awareness(42, 3, r#"{"status":"here"}"#);
    a.set_awareness(42, 4, "null");
    // Mallory's tab reconnects with the same client id and clock.
    let mut back = TestClient::connect_as(&server.ws_url("back"), &mallory).await;
    back.wait_synced().await;
    back.set_awareness(42, 3, r#"{"status":"back"}"#);
    let seen = state_of(&mut a, 42, "Alice sees Mallory again", |v| {
        v["status"] == "back"
    })
    .await;
    assert_eq!(seen["user"], bound_user(&mallory, "#3cb44b"));
    assert_eq!(
        present(&alice, "back").await,
        json!([bound_user(&mallory, "#3cb44b")])
    );
}
