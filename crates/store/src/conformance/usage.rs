//! Conformance checks for what per-account quotas read: each document's
//! stored size ([`DocStore::stored_bytes`]) through appends, compaction and
//! deletion, and an account's usage ([`DocStore::account_usage`]).
//!
//! The stored size is always compared with what a load returns (snapshot
//! plus log rows), the definition it must keep to.

use std::sync::Arc;

use super::{
    Harness, append, append_each, create, doc, is_not_found, new_user, open_nodes,
    race_appends_and_compactions, snapshot,
};
use crate::{AccountUsage, CompactOutcome, DocStore, StoredDoc};
use quire_types::{DocId, UserId};

/// What a load of the document holds, in bytes: the size the column keeps.
async fn loaded_bytes(store: &dyn DocStore, d: &DocId) -> u64 {
    let loaded = store.load(d).await.expect("load");
    (loaded.snapshot.as_ref().map_or(0, |s| s.data.len()) + loaded.tail_bytes()) as u64
}

async fn bytes_of(store: &dyn DocStore, d: &DocId) -> Option<u64> {
    store.stored_bytes(d).await.expect("stored bytes")
}

pub async fn stored_bytes_follow_appends_compaction_and_delete(h: &dyn Harness) {
    let store = h.open().await;
    let (a, b) = (doc("sized-a"), doc("sized-b"));
    assert_eq!(bytes_of(&*store, &a).await, None, "no document, no size");
    create(&*store, &[&a, &b]).await;
    assert_eq!(bytes_of(&*store, &a).await, Some(0));

    // One batch over two documents: each gets its own rows' bytes.
    let got = store
        .append(&[append(&a, "abc"), append(&b, "1234567"), append(&a, "de")])
        .await
        .expect("append");
    assert!(got.iter().all(Result::is_ok), "{got:?}");
    assert_eq!(bytes_of(&*store, &a).await, Some(5));
    assert_eq!(bytes_of(&*store, &b).await, Some(7));

    // An append refused for a missing document counts nowhere.
    let missing = doc("sized-missing");
    let got = store
        .append(&[append(&missing, "zzzz"), append(&a, "f")])
        .await
        .expect("append");
    assert!(is_not_found(&got[0]), "{got:?}");
    assert_eq!(bytes_of(&*store, &a).await, Some(6));
    assert_eq!(bytes_of(&*store, &missing).await, None);

    // Compaction: the snapshot plus the rows after it.
    append_each(&*store, &a, "gh", 1).await; // seq 4, "gh0"
    let outcome = store
        .compact(&a, None, snapshot(3, "snapshot!"))
        .await
        .expect("compact");
    assert_eq!(outcome, CompactOutcome::Compacted);
    assert_eq!(bytes_of(&*store, &a).await, Some(9 + 3));
    assert_eq!(
        bytes_of(&*store, &a).await,
        Some(loaded_bytes(&*store, &a).await)
    );

    // A superseded compaction changes nothing.
    let outcome = store
        .compact(&a, None, snapshot(4, "a much larger snapshot"))
        .await
        .expect("compact");
    assert_eq!(outcome, CompactOutcome::Superseded);
    assert_eq!(bytes_of(&*store, &a).await, Some(12));

    // A snapshot replacing a snapshot: the old one no longer counts, and
    // compaction may shrink or grow the size.
    let outcome = store
        .compact(&a, Some(quire_types::Seq(3)), snapshot(4, "s"))
        .await
        .expect("compact");
    assert_eq!(outcome, CompactOutcome::Compacted);
    assert_eq!(bytes_of(&*store, &a).await, Some(1));
    append_each(&*store, &a, "x", 2).await;
    assert_eq!(bytes_of(&*store, &a).await, Some(1 + 2 + 2));
    assert_eq!(
        bytes_of(&*store, &a).await,
        Some(loaded_bytes(&*store, &a).await)
    );

    // Deleted: gone, and the other document keeps its size.
    store.delete_document(&a).await.expect("delete");
    assert_eq!(bytes_of(&*store, &a).await, None);
    assert_eq!(bytes_of(&*store, &b).await, Some(7));
    // Created again, it starts from nothing.
    create(&*store, &[&a]).await;
    assert_eq!(bytes_of(&*store, &a).await, Some(0));
    assert_eq!(store.load(&a).await.expect("load"), StoredDoc::default());

    // Kept across a reopen (another node, a restart).
    let again = h.open().await;
    assert_eq!(bytes_of(&*again, &b).await, Some(7));
}

/// Appenders and compactors on every node at once: the size each commit
/// leaves must still be exactly what a load holds.
pub async fn stored_bytes_stay_exact_under_racing_appends_and_compactions(h: &dyn Harness) {
    let nodes = open_nodes(h).await;
    let d = doc("sized-hot");
    create(&*nodes[0], &[&d]).await;
    let rows = race_appends_and_compactions(&nodes, &d, 4, 30).await;
    let loaded = loaded_bytes(&*nodes[0], &d).await;
    assert!(loaded > 0);
    for node in &nodes {
        assert_eq!(
            bytes_of(&**node, &d).await,
            Some(loaded),
            "the stored size drifted from the stored rows"
        );
    }
    // Compacting what is left leaves exactly the snapshot.
    let store = &nodes[0];
    let now = store.load(&d).await.expect("load");
    let last = *rows.keys().last().expect("rows were appended");
    let outcome = store
        .compact(
            &d,
            now.snapshot.as_ref().map(|s| s.upto),
            snapshot(last, "merged"),
        )
        .await
        .expect("compact");
    assert_eq!(outcome, CompactOutcome::Compacted);
    assert_eq!(bytes_of(&**store, &d).await, Some(6));
}

pub async fn account_usage_counts_what_the_account_owns(h: &dyn Harness) {
    let store = h.open().await;
    let (ada, bob) = (new_user("ada"), new_user("bob"));
    store.create_user(&ada).await.expect("ada");
    store.create_user(&bob).await.expect("bob");
    let usage = |user: &UserId| {
        let (store, user) = (Arc::clone(&store), user.clone());
        async move { store.account_usage(&user).await.expect("usage") }
    };
    assert_eq!(usage(&ada.id).await, AccountUsage::default());
    assert_eq!(
        usage(&UserId::generate()).await,
        AccountUsage::default(),
        "an unknown account uses nothing"
    );

    let (one, two, theirs) = (doc("ada-one"), doc("ada-two"), doc("bob-one"));
    for (d, who) in [(&one, &ada), (&two, &ada), (&theirs, &bob)] {
        store
            .create_owned_document(d, d.as_str(), &who.workspace, &who.id)
            .await
            .expect("create");
    }
    // Documents without an owner (made before accounts) count for nobody.
    let legacy = doc("nobodys");
    create(&*store, &[&legacy]).await;
    store
        .append(&[
            append(&one, "12345"),
            append(&two, "123"),
            append(&theirs, "1234567890"),
            append(&legacy, "1234567890"),
        ])
        .await
        .expect("append");
    assert_eq!(
        usage(&ada.id).await,
        AccountUsage {
            documents: 2,
            bytes: 8
        }
    );
    assert_eq!(
        usage(&bob.id).await,
        AccountUsage {
            documents: 1,
            bytes: 10
        }
    );

    // What is shared with Bob is still Ada's, whoever writes it.
    store
        .put_share(&one, &bob.id, quire_types::DocRole::Editor, false)
        .await
        .expect("share");
    store
        .append(&[append(&one, "67")])
        .await
        .expect("append by an editor");
    assert_eq!(usage(&ada.id).await.bytes, 10);
    assert_eq!(usage(&bob.id).await.bytes, 10);

    // Compaction and deletion show in the total at once.
    store
        .compact(&one, None, snapshot(2, "s"))
        .await
        .expect("compact");
    assert_eq!(
        usage(&ada.id).await,
        AccountUsage {
            documents: 2,
            bytes: 1 + 3
        }
    );
    store.delete_document(&two).await.expect("delete");
    assert_eq!(
        usage(&ada.id).await,
        AccountUsage {
            documents: 1,
            bytes: 1
        }
    );
}
