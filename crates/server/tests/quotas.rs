//! Per-account quotas through the real server: documents refused at
//! creation past `--max-documents-per-account` or with `--max-account-bytes`
//! used up (403 naming the quota), and edits that would grow an account's
//! documents past its bytes closed with 4413 and the quota's reason, with
//! nothing stored of them. Everything over real sockets and the real store.

mod common;

use common::{TestClient, TestServer, TestUser};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use yrs::{Text, WriteTxn};

/// The reason the hub gives for an edit refused by the owner's quota.
const QUOTA_REASON: &str = "storage quota reached: the document's owner has no room left";

async fn create(user: &TestUser, id: &str) -> (StatusCode, Value) {
    let resp = user
        .request(Method::POST, "/api/documents")
        .json(&serde_json::json!({ "id": id, "title": id }))
        .send()
        .await
        .expect("create request");
    let status = resp.status();
    (status, resp.json().await.expect("a JSON body"))
}

async fn me(user: &TestUser) -> Value {
    let resp = user
        .request(Method::GET, "/api/me")
        .send()
        .await
        .expect("me request");
    assert_eq!(resp.status(), StatusCode::OK);
    resp.json().await.expect("a JSON body")
}

async fn delete(user: &TestUser, id: &str) {
    let resp = user
        .request(Method::DELETE, &format!("/api/documents/{id}"))
        .send()
        .await
        .expect("delete request");
    assert_eq!(resp.status(), StatusCode::NO_CONTENT, "deleting {id}");
}

async fn status_of_document(user: &TestUser, id: &str) -> StatusCode {
    user.request(Method::GET, &format!("/api/documents/{id}"))
        .send()
        .await
        .expect("get request")
        .status()
}

/// A socket with durable acks to `doc` as `user` (who must have access).
async fn editor(server: &TestServer, user: &TestUser, doc: &str) -> TestClient {
    let url = format!("{}?quire=1", server.ws_url(doc));
    let mut client = TestClient::connect_as(&url, user).await;
    client.wait_synced().await;
    client
}

/// Appends `len` bytes of text to the client's `t` and waits for the ack.
async fn type_acked(client: &mut TestClient, len: usize) {
    client.edit(|t| {
        let text = t.get_or_insert_text("t");
        let end = text.len(t);
        text.insert(t, end, &"x".repeat(len));
    });
    // Acks count every update-bearing message: the handshake's step 2 too.
    let n = client.sent_updates + 1;
    client.wait_acked(n).await;
}

/// Sends `len` more bytes and expects the socket to close for the quota.
async fn type_refused(client: &mut TestClient, len: usize) {
    client.edit(|t| t.get_or_insert_text("t").insert(t, 0, &"y".repeat(len)));
    let (code, reason) = client.wait_closed().await;
    assert_eq!((code, reason.as_str()), (4413, QUOTA_REASON));
}

/// What a fresh reader of the document gets: the text all can see.
async fn stored_text(server: &TestServer, user: &TestUser, doc: &str) -> String {
    let mut reader = TestClient::connect_as(&server.ws_url(doc), user).await;
    reader.wait_synced().await;
    reader.text("t")
}

#[tokio::test]
async fn creating_past_the_document_quota_is_refused_and_creates_nothing() {
    let server = TestServer::start_with(|c| c.max_documents_per_account = 3).await;
    let ada = &server.owner;
    for id in ["one", "two", "three"] {
        assert_eq!(create(ada, id).await.0, StatusCode::CREATED, "{id}");
    }
    let (status, body) = create(ada, "four").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "quota_exceeded");
    assert_eq!(
        body["error"]["message"],
        "You have 3 documents, the most this server allows. Delete some to create more."
    );
    assert_eq!(
        body["error"]["quota"],
        serde_json::json!({ "name": "documents", "used": 3, "limit": 3 })
    );
    // Nothing was created.
    assert_eq!(status_of_document(ada, "four").await, StatusCode::NOT_FOUND);
    let listed = ada
        .request(Method::GET, "/api/documents")
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(listed["documents"].as_array().map(Vec::len), Some(3));
    let mine = me(ada).await;
    assert_eq!(mine["usage"]["documents"], 3);
    assert_eq!(mine["quotas"]["documents"], 3);
    assert_eq!(mine["quotas"]["bytes"], 1u64 << 30);

    // The quota is per account: someone else still creates.
    let bob = server.user("bob@quire.test", "Bob").await;
    assert_eq!(create(&bob, "bobs").await.0, StatusCode::CREATED);
    // ...and his document counts for him alone.
    assert_eq!(me(&bob).await["usage"]["documents"], 1);

    // Deleting one makes room for one.
    delete(ada, "two").await;
    assert_eq!(create(ada, "four").await.0, StatusCode::CREATED);
    assert_eq!(create(ada, "five").await.0, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn zero_lifts_the_quotas() {
    let server = TestServer::start_with(|c| {
        c.max_documents_per_account = 0;
        c.max_account_bytes = 0;
    })
    .await;
    for i in 0..5 {
        assert_eq!(
            create(&server.owner, &format!("d{i}")).await.0,
            StatusCode::CREATED
        );
    }
    let mine = me(&server.owner).await;
    assert_eq!(
        mine["quotas"],
        serde_json::json!({ "documents": null, "bytes": null })
    );
    assert_eq!(mine["usage"]["documents"], 5);
    let metrics = server.state.metrics.render();
    for expected in [
        "quire_limit{name=\"max_documents_per_account\"} 0",
        "quire_limit{name=\"max_account_bytes\"} 0",
    ] {
        assert!(
            metrics.contains(expected),
            "{expected} missing from:\n{metrics}"
        );
    }
}

#[tokio::test]
async fn typing_past_the_byte_quota_closes_with_4413_and_deleting_makes_room() {
    // Compaction stays out of the way (its defaults are far above these
    // sizes), so each document's stored size is the sum of its updates.
    let server = TestServer::start_with(|c| c.max_account_bytes = 20_000).await;
    let ada = &server.owner;
    create(ada, "filler").await;
    create(ada, "essay").await;
    let mut filler = editor(&server, ada, "filler").await;
    type_acked(&mut filler, 8_000).await;
    drop(filler);

    let mut essay = editor(&server, ada, "essay").await;
    type_acked(&mut essay, 6_000).await;
    let used = me(ada).await["usage"]["bytes"]
        .as_u64()
        .expect("bytes used");
    assert!((14_000..14_500).contains(&used), "{used}");
    // 7,000 more would take the account past 20,000.
    type_refused(&mut essay, 7_000).await;

    // What was stored is intact, and the document still opens.
    let text = stored_text(&server, ada, "essay").await;
    assert_eq!(text, "x".repeat(6_000), "the refused edit was stored");
    assert_eq!(me(ada).await["usage"]["bytes"].as_u64(), Some(used));
    // A reconnect may not grow it past the quota either.
    let mut again = editor(&server, ada, "essay").await;
    type_refused(&mut again, 7_000).await;
    // Bytes left over still allow a new (empty) document.
    assert_eq!(create(ada, "notes").await.0, StatusCode::CREATED);

    // Deleting the filler frees its 8,000 bytes: the edit now fits.
    delete(ada, "filler").await;
    let mut after = editor(&server, ada, "essay").await;
    type_acked(&mut after, 7_000).await;
    assert!(after.snapshot().closed.is_none());
    assert_eq!(stored_text(&server, ada, "essay").await.len(), 13_000);
}

#[tokio::test]
async fn a_full_account_cannot_create_and_its_documents_cannot_grow() {
    // An operator lowers the quota below what an account already stores.
    let server = TestServer::start().await;
    let ada = server.owner.clone();
    create(&ada, "big").await;
    let mut big = editor(&server, &ada, "big").await;
    type_acked(&mut big, 3_000).await;
    drop(big);
    let dir = server.stop().await.expect("the data folder");
    let server = TestServer::start_in(dir.path(), |c| c.max_account_bytes = 2_000).await;
    let ada = server.owner.clone();

    let (status, body) = create(&ada, "another").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "quota_exceeded");
    assert_eq!(body["error"]["quota"]["name"], "bytes");
    assert_eq!(body["error"]["quota"]["limit"], 2_000);
    let used = body["error"]["quota"]["used"].as_u64().expect("used");
    assert!(used >= 3_000, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("Your documents take ")
            && message.ends_with(
                " of the 2.0 KiB this server allows each account. Delete some to make room."
            ),
        "{message}"
    );
    assert_eq!(
        status_of_document(&ada, "another").await,
        StatusCode::NOT_FOUND
    );

    // Over quota, the document keeps what it has and opens, but not one
    // byte more goes in.
    let mut big = editor(&server, &ada, "big").await;
    assert_eq!(big.text("t"), "x".repeat(3_000));
    type_refused(&mut big, 1).await;
    assert_eq!(stored_text(&server, &ada, "big").await, "x".repeat(3_000));
    drop(dir);
}

#[tokio::test]
async fn the_quota_is_the_owners_whoever_types() {
    let server = TestServer::start_with(|c| c.max_account_bytes = 10_000).await;
    let ada = &server.owner;
    let bob = server.user("bob@quire.test", "Bob").await;
    create(ada, "adas").await;
    create(&bob, "bobs").await;
    ada.share("adas", &bob.email, "editor").await;
    bob.share("bobs", &ada.email, "editor").await;

    let mut own = editor(&server, ada, "adas").await;
    type_acked(&mut own, 9_000).await;

    // Ada, nearly full, writes freely in Bob's document: it is charged to
    // Bob, whose quota has room.
    let mut in_bobs = editor(&server, ada, "bobs").await;
    type_acked(&mut in_bobs, 5_000).await;
    let (ada_used, bob_used) = (
        me(ada).await["usage"]["bytes"].as_u64().unwrap(),
        me(&bob).await["usage"]["bytes"].as_u64().unwrap(),
    );
    assert!((9_000..9_500).contains(&ada_used), "{ada_used}");
    assert!((5_000..5_500).contains(&bob_used), "{bob_used}");

    // Bob writing in Ada's document is held to Ada's quota.
    let mut bob_in_adas = editor(&server, &bob, "adas").await;
    type_refused(&mut bob_in_adas, 2_000).await;
    // Ada's other sockets are unaffected, and so is Bob's document.
    assert!(own.snapshot().closed.is_none());
    type_acked(&mut in_bobs, 1_000).await;
    assert_eq!(stored_text(&server, &bob, "bobs").await.len(), 6_000);
    assert_eq!(stored_text(&server, &bob, "adas").await.len(), 9_000);
}
