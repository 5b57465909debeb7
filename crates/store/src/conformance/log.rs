//! The log: appends number their rows, loads return snapshot then tail,
//! compaction replaces covered rows and never loses one.

use super::*;

pub async fn empty_batch_appends_nothing(h: &dyn Harness) {
    let store = h.open().await;
    assert!(store.append(&[]).await.expect("empty append").is_empty());
    let listed = store
        .list_documents(&ListQuery::default())
        .await
        .expect("list");
    assert!(
        listed.is_empty(),
        "an empty batch created documents: {listed:?}"
    );
}

pub async fn append_assigns_gap_free_seqs_per_document(h: &dyn Harness) {
    let store = h.open().await;
    let (a, b) = (doc("a"), doc("b"));
    create(&*store, &[&a, &b]).await;
    for expected in 1..=3 {
        let got = store
            .append(&[append(&a, &format!("a{expected}"))])
            .await
            .expect("append");
        assert_eq!(numbered(got), seqs(&[expected]));
    }
    // Another document has its own sequence.
    let got = store
        .append(&[append(&b, "b1"), append(&b, "b2")])
        .await
        .expect("append");
    assert_eq!(numbered(got), seqs(&[1, 2]));
    let got = store
        .append(&[append(&a, "a4"), append(&a, "a5")])
        .await
        .expect("append");
    assert_eq!(numbered(got), seqs(&[4, 5]));

    let loaded = store.load(&a).await.expect("load");
    assert_eq!(loaded.snapshot, None);
    assert_eq!(tail_seqs(&loaded), vec![1, 2, 3, 4, 5]);
    assert_eq!(tail_data(&loaded), vec!["a1", "a2", "a3", "a4", "a5"]);
    assert_eq!(loaded.last_seq(), Seq(5));
    let loaded = store.load(&b).await.expect("load");
    assert_eq!(tail_data(&loaded), vec!["b1", "b2"]);
}

pub async fn batch_spans_documents(h: &dyn Harness) {
    let store = h.open().await;
    let (a, b, c) = (doc("doc-a"), doc("doc-b"), doc("doc-c"));
    create(&*store, &[&a, &b, &c]).await;
    append_each(&*store, &a, "a", 1).await;
    // Out of id order on purpose: results must follow batch order.
    let batch = [
        append(&c, "c1"),
        append(&a, "a2"),
        append(&b, "b1"),
        append(&a, "a3"),
        append(&c, "c2"),
    ];
    let got = store.append(&batch).await.expect("append");
    assert_eq!(numbered(got), seqs(&[1, 2, 1, 3, 2]));
    assert_eq!(
        tail_data(&store.load(&a).await.expect("load")),
        vec!["a0", "a2", "a3"]
    );
    assert_eq!(tail_data(&store.load(&b).await.expect("load")), vec!["b1"]);
    assert_eq!(
        tail_data(&store.load(&c).await.expect("load")),
        vec!["c1", "c2"]
    );
}

/// A batch as large as a busy group commit (backends may split it into
/// several statements) keeps batch order and every byte.
pub async fn large_batch_keeps_every_row(h: &dyn Harness) {
    let store = h.open().await;
    let docs = [doc("big-a"), doc("big-b"), doc("big-c")];
    create(&*store, &docs.iter().collect::<Vec<_>>()).await;
    let batch: Vec<Append> = (0..1_234)
        .map(|i| append(&docs[i % 3], &format!("u{i}")))
        .collect();
    let got = store.append(&batch).await.expect("append");
    let expected: Vec<Seq> = (0..1_234).map(|i| Seq((i / 3 + 1) as i64)).collect();
    assert_eq!(numbered(got), expected);
    for (k, d) in docs.iter().enumerate() {
        let want: Vec<String> = (k..1_234).step_by(3).map(|i| format!("u{i}")).collect();
        assert_eq!(tail_data(&store.load(d).await.expect("load")), want);
    }
}

pub async fn unknown_document_loads_empty(h: &dyn Harness) {
    let store = h.open().await;
    let nobody = doc("never-written");
    assert_eq!(
        store.load(&nobody).await.expect("load"),
        StoredDoc::default()
    );
    assert_eq!(
        store.tail(&nobody, Seq(0)).await.expect("tail"),
        StoredDoc::default()
    );
    assert_eq!(store.document(&nobody).await.expect("document"), None);
    // Reading must not create it.
    assert!(
        store
            .list_documents(&ListQuery::default())
            .await
            .expect("list")
            .is_empty()
    );
}

pub async fn tail_returns_only_later_rows(h: &dyn Harness) {
    let store = h.open().await;
    let d = doc("tailed");
    create(&*store, &[&d]).await;
    append_each(&*store, &d, "u", 5).await;
    let t = store.tail(&d, Seq(3)).await.expect("tail");
    assert_eq!(t.snapshot, None);
    assert_eq!(tail_seqs(&t), vec![4, 5]);
    assert_eq!(tail_data(&t), vec!["u3", "u4"]);
    assert_eq!(
        tail_seqs(&store.tail(&d, Seq(0)).await.expect("tail")),
        vec![1, 2, 3, 4, 5]
    );
    assert_eq!(
        store.tail(&d, Seq(5)).await.expect("tail"),
        StoredDoc::default()
    );
    assert_eq!(
        store.tail(&d, Seq(99)).await.expect("tail"),
        StoredDoc::default()
    );
}

pub async fn load_is_snapshot_then_tail(h: &dyn Harness) {
    let store = h.open().await;
    let d = doc("loaded");
    create(&*store, &[&d]).await;
    append_each(&*store, &d, "u", 5).await;
    let outcome = store
        .compact(&d, None, snapshot(3, "s0-2"))
        .await
        .expect("compact");
    assert_eq!(outcome, CompactOutcome::Compacted);

    let loaded = store.load(&d).await.expect("load");
    assert_eq!(loaded.snapshot, Some(snapshot(3, "s0-2")));
    assert_eq!(tail_seqs(&loaded), vec![4, 5]);
    assert_eq!(tail_data(&loaded), vec!["u3", "u4"]);
    assert_eq!(loaded.last_seq(), Seq(5));

    // A reader behind the snapshot gets it, since the rows it needs are gone.
    let behind = store.tail(&d, Seq(1)).await.expect("tail");
    assert_eq!(behind, loaded);
    // A reader at or past the snapshot gets only rows.
    let at = store.tail(&d, Seq(3)).await.expect("tail");
    assert_eq!(at.snapshot, None);
    assert_eq!(tail_seqs(&at), vec![4, 5]);
    let past_it = store.tail(&d, Seq(4)).await.expect("tail");
    assert_eq!(past_it.snapshot, None);
    assert_eq!(tail_seqs(&past_it), vec![5]);

    // Everything compacted: the snapshot alone.
    let outcome = store
        .compact(&d, Some(Seq(3)), snapshot(5, "s0-4"))
        .await
        .expect("compact");
    assert_eq!(outcome, CompactOutcome::Compacted);
    let loaded = store.load(&d).await.expect("load");
    assert_eq!(loaded.snapshot, Some(snapshot(5, "s0-4")));
    assert!(loaded.tail.is_empty());
    assert_eq!(loaded.last_seq(), Seq(5));
}

pub async fn compaction_deletes_only_covered_rows(h: &dyn Harness) {
    let store = h.open().await;
    let (d, other) = (doc("compacted"), doc("bystander"));
    create(&*store, &[&d, &other]).await;
    append_each(&*store, &d, "u", 4).await;
    append_each(&*store, &other, "o", 3).await;
    let outcome = store
        .compact(&d, None, snapshot(2, "s"))
        .await
        .expect("compact");
    assert_eq!(outcome, CompactOutcome::Compacted);
    // Rows past upto stay, with their data; rows of other documents stay.
    assert_eq!(
        tail_data(&store.tail(&d, Seq(2)).await.expect("tail")),
        vec!["u2", "u3"]
    );
    assert_eq!(
        tail_seqs(&store.load(&other).await.expect("load")),
        vec![1, 2, 3]
    );
    assert_eq!(store.load(&other).await.expect("load").snapshot, None);

    append_each(&*store, &d, "v", 2).await;
    let outcome = store
        .compact(&d, Some(Seq(2)), snapshot(4, "s2"))
        .await
        .expect("compact");
    assert_eq!(outcome, CompactOutcome::Compacted);
    let loaded = store.load(&d).await.expect("load");
    assert_eq!(loaded.snapshot, Some(snapshot(4, "s2")));
    assert_eq!(tail_seqs(&loaded), vec![5, 6]);
    assert_eq!(tail_data(&loaded), vec!["v0", "v1"]);
}

pub async fn stale_compaction_is_superseded(h: &dyn Harness) {
    let store = h.open().await;
    let d = doc("raced");
    create(&*store, &[&d]).await;
    append_each(&*store, &d, "u", 5).await;
    let outcome = store
        .compact(&d, None, snapshot(2, "first"))
        .await
        .expect("compact");
    assert_eq!(outcome, CompactOutcome::Compacted);
    let before = store.load(&d).await.expect("load");

    // Base "no snapshot" is stale now, and so is a wrong base.
    for stale in [None, Some(Seq(1)), Some(Seq(4))] {
        let outcome = store
            .compact(&d, stale, snapshot(4, "stale"))
            .await
            .expect("compact");
        assert_eq!(outcome, CompactOutcome::Superseded, "base {stale:?}");
        assert_eq!(
            store.load(&d).await.expect("load"),
            before,
            "a superseded compaction changed the document"
        );
    }

    // The right base still works.
    let outcome = store
        .compact(&d, Some(Seq(2)), snapshot(4, "second"))
        .await
        .expect("compact");
    assert_eq!(outcome, CompactOutcome::Compacted);
    assert_eq!(
        store.load(&d).await.expect("load").snapshot,
        Some(snapshot(4, "second"))
    );
}

pub async fn compaction_is_idempotent(h: &dyn Harness) {
    let store = h.open().await;
    let d = doc("twice");
    create(&*store, &[&d]).await;
    append_each(&*store, &d, "u", 4).await;
    let outcome = store
        .compact(&d, None, snapshot(3, "s"))
        .await
        .expect("compact");
    assert_eq!(outcome, CompactOutcome::Compacted);
    let after_first = store.load(&d).await.expect("load");

    // A retry of the same call (say, after a lost reply) changes nothing.
    let outcome = store
        .compact(&d, None, snapshot(3, "s"))
        .await
        .expect("compact");
    assert_eq!(outcome, CompactOutcome::Superseded);
    assert_eq!(store.load(&d).await.expect("load"), after_first);

    // Re-compacting onto the same upto replaces the data, deletes nothing.
    let outcome = store
        .compact(&d, Some(Seq(3)), snapshot(3, "s'"))
        .await
        .expect("compact");
    assert_eq!(outcome, CompactOutcome::Compacted);
    let loaded = store.load(&d).await.expect("load");
    assert_eq!(loaded.snapshot, Some(snapshot(3, "s'")));
    assert_eq!(tail_seqs(&loaded), vec![4]);
}

pub async fn compaction_refuses_impossible_snapshots(h: &dyn Harness) {
    let store = h.open().await;
    let d = doc("guarded");
    create(&*store, &[&d]).await;
    append_each(&*store, &d, "u", 3).await;
    store
        .compact(&d, None, snapshot(2, "s"))
        .await
        .expect("compact");
    let before = store.load(&d).await.expect("load");

    // Claims rows that don't exist yet: later appends would be hidden.
    assert!(
        store
            .compact(&d, Some(Seq(2)), snapshot(4, "x"))
            .await
            .is_err()
    );
    // Older than its base: rows the base absorbed would be lost.
    assert!(
        store
            .compact(&d, Some(Seq(2)), snapshot(1, "x"))
            .await
            .is_err()
    );
    assert_eq!(store.load(&d).await.expect("load"), before);

    // No document, no snapshot (and compaction must not create one).
    let ghost = doc("ghost");
    let err = store.compact(&ghost, None, snapshot(0, "x")).await;
    assert!(matches!(err, Err(StoreError::NotFound)), "{err:?}");
    assert_eq!(store.document(&ghost).await.expect("document"), None);
    assert_eq!(
        store.load(&ghost).await.expect("load"),
        StoredDoc::default()
    );
}

pub async fn seqs_continue_after_compaction(h: &dyn Harness) {
    let store = h.open().await;
    let d = doc("continued");
    create(&*store, &[&d]).await;
    append_each(&*store, &d, "u", 3).await;
    // Compacting every row empties the log; numbering must not restart.
    store
        .compact(&d, None, snapshot(3, "s"))
        .await
        .expect("compact");
    let got = store.append(&[append(&d, "next")]).await.expect("append");
    assert_eq!(numbered(got), seqs(&[4]));
    let loaded = store.load(&d).await.expect("load");
    assert_eq!(loaded.snapshot.as_ref().map(|s| s.upto), Some(Seq(3)));
    assert_eq!(tail_seqs(&loaded), vec![4]);
}
