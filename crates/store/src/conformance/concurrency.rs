//! Many writers, readers and compactors at once, over one or several
//! stores on the same storage (the nodes of a cluster).

use super::*;

/// The stores the concurrent checks spread their tasks over: one per node.
pub(super) async fn open_nodes(h: &dyn Harness) -> Vec<Arc<dyn DocStore>> {
    let mut nodes: Vec<Arc<dyn DocStore>> = Vec::new();
    for _ in 0..h.nodes().max(1) {
        nodes.push(h.open().await);
    }
    nodes
}

pub(super) async fn open_store_nodes(h: &dyn Harness) -> Vec<Arc<dyn Store>> {
    let mut nodes = Vec::new();
    for _ in 0..h.nodes().max(1) {
        nodes.push(h.open().await);
    }
    nodes
}

/// Spawns `tasks` tasks, each appending `per_task` single updates to `d`
/// (data `"{task}:{i}"`) through the nodes in turn, and returning every
/// (seq, data) it was given.
pub(super) fn spawn_appenders(
    set: &mut JoinSet<Vec<(Seq, Bytes)>>,
    nodes: &[Arc<dyn DocStore>],
    d: &DocId,
    tasks: usize,
    per_task: usize,
) {
    for task in 0..tasks {
        let store = Arc::clone(&nodes[task % nodes.len()]);
        let d = d.clone();
        set.spawn(async move {
            let mut given = Vec::with_capacity(per_task);
            for i in 0..per_task {
                let data = Bytes::from(format!("{task}:{i}"));
                let batch = [Append {
                    doc: d.clone(),
                    update: data.clone(),
                }];
                let got = numbered(store.append(&batch).await.expect("concurrent append"));
                given.push((got[0], data));
            }
            given
        });
    }
}

/// Checks that `given` (seq, data) pairs use seqs exactly 1..=n, each once,
/// and returns them keyed by seq.
pub(super) fn gap_free(
    given: impl IntoIterator<Item = (Seq, Bytes)>,
    n: usize,
) -> BTreeMap<i64, Bytes> {
    let mut rows = BTreeMap::new();
    for (seq, data) in given {
        assert!(
            rows.insert(seq.0, data).is_none(),
            "seq {} handed out twice",
            seq.0
        );
    }
    let expected: Vec<i64> = (1..=n as i64).collect();
    assert_eq!(
        rows.keys().copied().collect::<Vec<_>>(),
        expected,
        "seqs are not gap-free"
    );
    rows
}

/// Waits for the appenders and checks what they were given with [`gap_free`].
pub(super) async fn appended_rows(
    mut set: JoinSet<Vec<(Seq, Bytes)>>,
    n: usize,
) -> BTreeMap<i64, Bytes> {
    let mut given = Vec::new();
    while let Some(task) = set.join_next().await {
        given.extend(task.expect("appender task"));
    }
    gap_free(given, n)
}

pub(super) fn log_rows(stored: StoredDoc) -> BTreeMap<i64, Bytes> {
    stored
        .tail
        .into_iter()
        .map(|e| (e.seq.0, e.update))
        .collect()
}

pub async fn concurrent_appends_are_gap_free(h: &dyn Harness) {
    let nodes = open_nodes(h).await;
    let d = doc("busy");
    create(&*nodes[0], &[&d]).await;
    let (tasks, per_task) = (16, 20);
    let mut set = JoinSet::new();
    spawn_appenders(&mut set, &nodes, &d, tasks, per_task);
    let rows = appended_rows(set, tasks * per_task).await;
    for node in &nodes {
        let stored = log_rows(node.load(&d).await.expect("load"));
        assert_eq!(
            stored, rows,
            "the log differs from what the appenders were told"
        );
    }
}

pub async fn opposing_batches_do_not_deadlock(h: &dyn Harness) {
    // Batches naming the same documents in opposite orders, at once: a store
    // that locked documents in batch order could deadlock here.
    let nodes = open_nodes(h).await;
    let (a, b) = (doc("left"), doc("right"));
    create(&*nodes[0], &[&a, &b]).await;
    let (tasks, per_task) = (8, 15);
    let mut set = JoinSet::new();
    for task in 0..tasks {
        let store = Arc::clone(&nodes[task % nodes.len()]);
        let (a, b) = if task % 2 == 0 {
            (a.clone(), b.clone())
        } else {
            (b.clone(), a.clone())
        };
        set.spawn(async move {
            let mut given = Vec::new();
            for i in 0..per_task {
                let data = Bytes::from(format!("{task}:{i}"));
                let batch = [
                    Append {
                        doc: a.clone(),
                        update: data.clone(),
                    },
                    Append {
                        doc: b.clone(),
                        update: data.clone(),
                    },
                ];
                let got = numbered(store.append(&batch).await.expect("append"));
                given.push((a.clone(), got[0], data.clone()));
                given.push((b.clone(), got[1], data));
            }
            given
        });
    }
    let mut per_doc: BTreeMap<DocId, Vec<(Seq, Bytes)>> = BTreeMap::new();
    while let Some(task) = set.join_next().await {
        for (d, seq, data) in task.expect("appender task") {
            per_doc.entry(d).or_default().push((seq, data));
        }
    }
    for d in [&a, &b] {
        let given = per_doc.remove(d).unwrap_or_default();
        let rows = gap_free(given, tasks * per_task);
        assert_eq!(log_rows(nodes[0].load(d).await.expect("load")), rows);
    }
}

pub async fn tail_readers_never_skip_rows(h: &dyn Harness) {
    let nodes = open_nodes(h).await;
    let d = doc("followed");
    create(&*nodes[0], &[&d]).await;
    let (tasks, per_task) = (4, 40);
    let mut set = JoinSet::new();
    spawn_appenders(&mut set, &nodes, &d, tasks, per_task);
    let writers_done = Arc::new(AtomicBool::new(false));

    // A node healing from the log: it asks for rows after the last one it has
    // and must never see row n+1 while row n is still uncommitted.
    let reader = {
        let store = Arc::clone(&nodes[nodes.len() - 1]);
        let d = d.clone();
        let writers_done = Arc::clone(&writers_done);
        tokio::spawn(async move {
            let mut last = Seq(0);
            let mut seen = BTreeMap::new();
            loop {
                // Read the flag first: if the writers were done before this
                // tail, the tail holds every row.
                let done = writers_done.load(Ordering::Acquire);
                let t = store.tail(&d, last).await.expect("tail");
                assert_eq!(t.snapshot, None);
                for e in t.tail {
                    assert_eq!(
                        e.seq.0,
                        last.0 + 1,
                        "the reader skipped a row after {}",
                        last.0
                    );
                    last = e.seq;
                    seen.insert(e.seq.0, e.update);
                }
                if done {
                    return seen;
                }
                tokio::task::yield_now().await;
            }
        })
    };
    let rows = appended_rows(set, tasks * per_task).await;
    writers_done.store(true, Ordering::Release);
    let seen = reader.await.expect("reader task");
    assert_eq!(seen, rows);
}

/// One compactor: until `stop`, loads the document and folds its tail into a
/// new snapshot. The "merge" is concatenation, one line per update, so the
/// final snapshot shows exactly which rows it absorbed.
pub(super) fn spawn_compactor(
    set: &mut JoinSet<()>,
    store: &Arc<dyn DocStore>,
    d: &DocId,
    stop: &Arc<AtomicBool>,
) {
    let (store, d, stop) = (Arc::clone(store), d.clone(), Arc::clone(stop));
    set.spawn(async move {
        while !stop.load(Ordering::Acquire) {
            let loaded = store.load(&d).await.expect("load while compacting");
            let base = loaded.snapshot.as_ref().map(|s| s.upto);
            if loaded.tail.is_empty() {
                tokio::task::yield_now().await;
                continue;
            }
            let upto = loaded.last_seq();
            let mut data = loaded.snapshot.map(|s| s.data.to_vec()).unwrap_or_default();
            for entry in &loaded.tail {
                data.extend_from_slice(&entry.update);
                data.push(b'\n');
            }
            store
                .compact(
                    &d,
                    base,
                    Snapshot {
                        upto,
                        data: data.into(),
                    },
                )
                .await
                .expect("compact while appending");
        }
    });
}

/// `tasks` × `per_task` appends to `d` spread over the nodes while two
/// compactors run until the last append returns; the appended rows.
pub(super) async fn race_appends_and_compactions(
    nodes: &[Arc<dyn DocStore>],
    d: &DocId,
    tasks: usize,
    per_task: usize,
) -> BTreeMap<i64, Bytes> {
    let mut appenders = JoinSet::new();
    spawn_appenders(&mut appenders, nodes, d, tasks, per_task);
    let stop = Arc::new(AtomicBool::new(false));
    let mut compactors = JoinSet::new();
    for i in 0..2 {
        spawn_compactor(&mut compactors, &nodes[i % nodes.len()], d, &stop);
    }
    let rows = appended_rows(appenders, tasks * per_task).await;
    stop.store(true, Ordering::Release);
    while let Some(done) = compactors.join_next().await {
        done.expect("compactor task");
    }
    rows
}

pub async fn compaction_racing_appends_loses_no_row(h: &dyn Harness) {
    let nodes = open_nodes(h).await;
    let d = doc("hot");
    create(&*nodes[0], &[&d]).await;
    let rows = race_appends_and_compactions(&nodes, &d, 4, 40).await;

    let loaded = nodes[0].load(&d).await.expect("load");
    let upto = loaded.snapshot.as_ref().map_or(0, |s| s.upto.0);
    let absorbed: Vec<Bytes> = loaded.snapshot.as_ref().map_or_else(Vec::new, |s| {
        s.data
            .split(|b| *b == b'\n')
            .filter(|line| !line.is_empty())
            .map(Bytes::copy_from_slice)
            .collect()
    });
    let expected_absorbed: Vec<Bytes> = rows.range(..=upto).map(|(_, data)| data.clone()).collect();
    assert_eq!(
        absorbed, expected_absorbed,
        "the snapshot did not absorb exactly rows 1..={upto}"
    );
    let expected_tail: BTreeMap<i64, Bytes> = rows
        .range(upto + 1..)
        .map(|(s, d)| (*s, d.clone()))
        .collect();
    assert_eq!(
        log_rows(loaded),
        expected_tail,
        "rows after the snapshot were lost or changed"
    );
}

pub async fn concurrent_compactions_have_one_winner(h: &dyn Harness) {
    let nodes = open_nodes(h).await;
    let d = doc("contested");
    create(&*nodes[0], &[&d]).await;
    append_each(&*nodes[0], &d, "u", 10).await;
    let mut set = JoinSet::new();
    for i in 0..8 {
        let (store, d) = (Arc::clone(&nodes[i % nodes.len()]), d.clone());
        set.spawn(async move {
            let snap = snapshot(10, &format!("by-{i}"));
            let outcome = store
                .compact(&d, None, snap.clone())
                .await
                .expect("compact");
            (outcome, snap)
        });
    }
    let mut winners = Vec::new();
    while let Some(result) = set.join_next().await {
        let (outcome, snap) = result.expect("compactor task");
        if outcome == CompactOutcome::Compacted {
            winners.push(snap);
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "exactly one compaction from the same base may win"
    );
    let loaded = nodes[0].load(&d).await.expect("load");
    assert_eq!(loaded.snapshot.as_ref(), winners.first());
    assert!(loaded.tail.is_empty());
}
