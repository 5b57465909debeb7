//! Documents: their metadata, listing, deletion (and appends racing it),
//! and what survives reopening the storage.

use super::*;

pub async fn document_metadata_lifecycle(h: &dyn Harness) {
    let store = h.open().await;
    let d = doc("meta");
    let before = UnixMillis::now();
    let created = store.create_document(&d, "Plans").await.expect("create");
    let after = UnixMillis::now();
    assert_eq!(created.id, d);
    assert_eq!(created.title, "Plans");
    assert!(before <= created.created_at && created.created_at <= after);
    assert_eq!(created.updated_at, created.created_at);
    assert_eq!(
        store.document(&d).await.expect("document"),
        Some(created.clone())
    );

    let again = store.create_document(&d, "Other").await;
    assert!(matches!(again, Err(StoreError::AlreadyExists)), "{again:?}");
    assert_eq!(
        store.document(&d).await.expect("document").map(|m| m.title),
        Some("Plans".into())
    );

    past(created.updated_at).await;
    let renamed = store
        .rename_document(&d, "Plans for 2027")
        .await
        .expect("rename");
    assert_eq!(renamed.title, "Plans for 2027");
    assert_eq!(renamed.created_at, created.created_at);
    assert!(renamed.updated_at > created.updated_at);
    assert_eq!(store.document(&d).await.expect("document"), Some(renamed));

    let missing = doc("missing");
    let err = store.rename_document(&missing, "x").await;
    assert!(matches!(err, Err(StoreError::NotFound)), "{err:?}");
    assert_eq!(store.document(&missing).await.expect("document"), None);

    store.delete_document(&d).await.expect("delete");
    assert_eq!(store.document(&d).await.expect("document"), None);
    let err = store.delete_document(&d).await;
    assert!(matches!(err, Err(StoreError::NotFound)), "{err:?}");
    // The id is free again.
    store
        .create_document(&d, "Reborn")
        .await
        .expect("create after delete");
}

/// The store holds no document at all, and `d` has neither metadata nor
/// content.
async fn assert_no_documents(store: &dyn Store, d: &DocId, why: &str) {
    assert_eq!(store.document(d).await.expect("document"), None);
    assert_eq!(store.load(d).await.expect("load"), StoredDoc::default());
    assert!(
        store
            .list_documents(&ListQuery::default())
            .await
            .expect("list")
            .is_empty(),
        "{why}"
    );
}

pub async fn append_never_creates_a_document(h: &dyn Harness) {
    let store = h.open().await;
    let never = doc("never-created");
    let got = store
        .append(&[append(&never, "u"), append(&never, "v")])
        .await
        .expect("append");
    assert!(got.iter().all(is_not_found), "{got:?}");
    assert_no_documents(&*store, &never, "an append created a document").await;

    // An existing document keeps its metadata; only updated_at moves.
    let titled = doc("titled");
    let created = store
        .create_document(&titled, "Keep me")
        .await
        .expect("create");
    past(created.updated_at).await;
    append_each(&*store, &titled, "u", 1).await;
    let meta = store
        .document(&titled)
        .await
        .expect("document")
        .expect("document");
    assert_eq!(meta.title, "Keep me");
    assert_eq!(meta.created_at, created.created_at);
    assert!(
        meta.updated_at > created.updated_at,
        "append did not bump updated_at"
    );
}

/// A node that still had the document live when it was deleted appends
/// after the delete: refused, and the document stays deleted.
pub async fn append_to_a_deleted_document_writes_nothing(h: &dyn Harness) {
    let store = h.open().await;
    let d = doc("deleted");
    create(&*store, &[&d]).await;
    append_each(&*store, &d, "u", 3).await;
    store.delete_document(&d).await.expect("delete");

    for batch in [
        vec![append(&d, "late")],
        vec![append(&d, "a"), append(&d, "b")],
    ] {
        let got = store.append(&batch).await.expect("append");
        assert_eq!(got.len(), batch.len());
        assert!(got.iter().all(is_not_found), "{got:?}");
    }
    assert_no_documents(&*store, &d, "the deleted document came back").await;
    let err = store.compact(&d, None, snapshot(0, "s")).await;
    assert!(matches!(err, Err(StoreError::NotFound)), "{err:?}");
    assert_eq!(store.load(&d).await.expect("load"), StoredDoc::default());

    // Created again, the id starts afresh: nothing of the old document, and
    // numbering from 1.
    create(&*store, &[&d]).await;
    let got = store.append(&[append(&d, "new")]).await.expect("append");
    assert_eq!(numbered(got), seqs(&[1]));
    assert_eq!(tail_data(&store.load(&d).await.expect("load")), vec!["new"]);
}

/// Group commit puts many documents in one batch: one of them being deleted
/// must not cost the others their writes.
pub async fn batch_with_a_deleted_document_appends_the_others(h: &dyn Harness) {
    let store = h.open().await;
    let (a, gone, b) = (doc("batch-a"), doc("batch-gone"), doc("batch-b"));
    create(&*store, &[&a, &gone, &b]).await;
    append_each(&*store, &a, "a", 1).await;
    append_each(&*store, &gone, "g", 2).await;
    store.delete_document(&gone).await.expect("delete");

    let batch = [
        append(&gone, "g-late"),
        append(&a, "a1"),
        append(&b, "b0"),
        append(&gone, "g-later"),
        append(&a, "a2"),
    ];
    let got = store.append(&batch).await.expect("append");
    assert!(is_not_found(&got[0]) && is_not_found(&got[3]), "{got:?}");
    let kept: Vec<Seq> = [1, 2, 4]
        .into_iter()
        .map(|i| *got[i].as_ref().expect("existing documents are appended"))
        .collect();
    assert_eq!(kept, seqs(&[2, 1, 3]));
    assert_eq!(
        tail_data(&store.load(&a).await.expect("load")),
        vec!["a0", "a1", "a2"]
    );
    assert_eq!(tail_data(&store.load(&b).await.expect("load")), vec!["b0"]);
    assert_eq!(store.load(&gone).await.expect("load"), StoredDoc::default());
    assert_eq!(store.document(&gone).await.expect("document"), None);

    // A batch of nothing but deleted documents commits nothing either.
    let got = store.append(&[append(&gone, "x")]).await.expect("append");
    assert!(is_not_found(&got[0]), "{got:?}");
    assert_eq!(store.document(&gone).await.expect("document"), None);
}

/// Writers on every node keep appending while the document is deleted: each
/// append commits before the delete (and goes with it) or is refused after
/// it; nothing brings the document back.
pub async fn delete_racing_appends_stays_deleted(h: &dyn Harness) {
    let nodes = open_nodes(h).await;
    let d = doc("contested-delete");
    create(&*nodes[0], &[&d]).await;
    append_each(&*nodes[0], &d, "u", 1).await;
    let deleted = Arc::new(AtomicBool::new(false));
    let mut set = JoinSet::new();
    for task in 0..4 {
        let store = Arc::clone(&nodes[task % nodes.len()]);
        let (d, deleted) = (d.clone(), Arc::clone(&deleted));
        set.spawn(async move {
            // Appends until refused; once refused, refused for good.
            loop {
                let done = deleted.load(Ordering::Acquire);
                let got = store.append(&[append(&d, "w")]).await.expect("append");
                match &got[0] {
                    Ok(_) => assert!(!done, "an append after the delete was numbered"),
                    Err(StoreError::NotFound) => break,
                    Err(e) => panic!("append failed: {e}"),
                }
                tokio::task::yield_now().await;
            }
            let got = store.append(&[append(&d, "w")]).await.expect("append");
            assert!(is_not_found(&got[0]), "{got:?}");
        });
    }
    // Let the writers get going, then delete through the last node.
    append_each(&*nodes[0], &d, "v", 5).await;
    nodes[nodes.len() - 1]
        .delete_document(&d)
        .await
        .expect("delete");
    deleted.store(true, Ordering::Release);
    while let Some(task) = set.join_next().await {
        task.expect("writer task");
    }
    for node in &nodes {
        assert_eq!(node.document(&d).await.expect("document"), None);
        assert_eq!(node.load(&d).await.expect("load"), StoredDoc::default());
    }
}

pub async fn list_documents_newest_first(h: &dyn Harness) {
    let store = h.open().await;
    let mut last = UnixMillis(0);
    for (id, title) in [("first", "One"), ("second", "Two"), ("third", "Three")] {
        past(last).await;
        last = store
            .create_document(&doc(id), title)
            .await
            .expect("create")
            .updated_at;
    }
    let ids = |listed: Vec<crate::DocumentMeta>| {
        listed
            .into_iter()
            .map(|m| m.id.to_string())
            .collect::<Vec<_>>()
    };
    let listed = store
        .list_documents(&ListQuery::default())
        .await
        .expect("list");
    assert_eq!(ids(listed), vec!["third", "second", "first"]);

    // Editing a document moves it to the top.
    past(last).await;
    store
        .append(&[append(&doc("first"), "edit")])
        .await
        .expect("append");
    let listed = store
        .list_documents(&ListQuery::default())
        .await
        .expect("list");
    assert_eq!(ids(listed), vec!["first", "third", "second"]);

    let query = ListQuery {
        title_contains: None,
        limit: Some(2),
    };
    assert_eq!(
        ids(store.list_documents(&query).await.expect("list")),
        vec!["first", "third"]
    );
    let query = ListQuery {
        title_contains: None,
        limit: Some(0),
    };
    assert!(store.list_documents(&query).await.expect("list").is_empty());
}

pub async fn list_documents_filters_and_limits(h: &dyn Harness) {
    let store = h.open().await;
    let titles = [
        ("r1", "Quarterly Report"),
        ("r2", "report draft"),
        ("p1", "100% done"),
        ("p2", "100 percent"),
        ("u1", "a_b"),
        ("u2", "axb"),
        ("b1", "back\\slash"),
    ];
    for (id, title) in titles {
        store
            .create_document(&doc(id), title)
            .await
            .expect("create");
    }
    let titles_matching = |needle: &str, limit: Option<u32>| {
        let store = Arc::clone(&store);
        let query = ListQuery {
            title_contains: Some(needle.to_string()),
            limit,
        };
        async move {
            let mut titles: Vec<String> = store
                .list_documents(&query)
                .await
                .expect("list")
                .into_iter()
                .map(|m| m.title)
                .collect();
            titles.sort();
            titles
        }
    };
    assert_eq!(
        titles_matching("REPORT", None).await,
        vec!["Quarterly Report", "report draft"]
    );
    assert_eq!(titles_matching("rEpOrT", Some(1)).await.len(), 1);
    // LIKE wildcards typed by a user match literally.
    assert_eq!(titles_matching("%", None).await, vec!["100% done"]);
    assert_eq!(titles_matching("_", None).await, vec!["a_b"]);
    assert_eq!(titles_matching("\\", None).await, vec!["back\\slash"]);
    assert!(titles_matching("nothing like it", None).await.is_empty());
    assert_eq!(titles_matching("", None).await.len(), titles.len());
}

pub async fn delete_removes_log_and_snapshot(h: &dyn Harness) {
    let store = h.open().await;
    let (d, kept) = (doc("doomed"), doc("kept"));
    create(&*store, &[&d, &kept]).await;
    append_each(&*store, &d, "u", 4).await;
    store
        .compact(&d, None, snapshot(2, "s"))
        .await
        .expect("compact");
    append_each(&*store, &kept, "k", 2).await;

    store.delete_document(&d).await.expect("delete");
    assert_eq!(store.load(&d).await.expect("load"), StoredDoc::default());
    assert_eq!(
        store.tail(&d, Seq(0)).await.expect("tail"),
        StoredDoc::default()
    );
    assert_eq!(store.document(&d).await.expect("document"), None);
    assert_eq!(
        tail_data(&store.load(&kept).await.expect("load")),
        vec!["k0", "k1"]
    );

    // Writing again does not bring it back.
    let got = store.append(&[append(&d, "new")]).await.expect("append");
    assert!(is_not_found(&got[0]), "{got:?}");
    assert_eq!(store.load(&d).await.expect("load"), StoredDoc::default());
    // Creating it again starts a new document, with nothing of the old one.
    create(&*store, &[&d]).await;
    append_each(&*store, &d, "new", 1).await;
    let loaded = store.load(&d).await.expect("load");
    assert_eq!(loaded.snapshot, None);
    assert_eq!(tail_data(&loaded), vec!["new0"]);
}

pub async fn data_survives_reopen(h: &dyn Harness) {
    let d = doc("durable");
    let (loaded, meta) = {
        let store = h.open().await;
        store.create_document(&d, "Durable").await.expect("create");
        append_each(&*store, &d, "u", 3).await;
        store
            .compact(&d, None, snapshot(2, "s"))
            .await
            .expect("compact");
        append_each(&*store, &d, "v", 1).await;
        (
            store.load(&d).await.expect("load"),
            store.document(&d).await.expect("document"),
        )
    };
    let store = h.open().await;
    assert_eq!(store.load(&d).await.expect("load after reopening"), loaded);
    assert_eq!(
        store.document(&d).await.expect("document after reopening"),
        meta
    );
    let got = store.append(&[append(&d, "w")]).await.expect("append");
    assert_eq!(
        numbered(got),
        seqs(&[5]),
        "numbering restarted after reopening"
    );
}

pub async fn ping_answers(h: &dyn Harness) {
    let store = h.open().await;
    store.ping().await.expect("ping");
}
