//! A client that types numbers into a document's `log` array through a real
//! socket with durable acks, reconnects whenever the server closes or
//! refuses it, and records which of its numbers were acknowledged.
//!
//! Ack `n` on a connection covers its sync step 2 (the first update-bearing
//! message, sent before typing starts) and its first `n - 1` edits.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;
use yrs::{Array, Doc, Out, ReadTxn, Transact, WriteTxn};

use crate::common::{TestClient, TestUser, within};

/// Edits sent and not yet acknowledged before the typist waits.
const WINDOW: u64 = 64;
/// At most one edit per tick: a fast typist, not a flood.
const PACE: Duration = Duration::from_millis(2);
/// Reconnect backoff, doubling, as the web client does.
const MIN_BACKOFF: Duration = Duration::from_millis(25);
const MAX_BACKOFF: Duration = Duration::from_millis(500);
/// Longest the server may refuse every reconnect before the test fails.
const REFUSED_AT_MOST: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Memory {
    /// Reconnects with a fresh document, so whatever a connection sent and
    /// did not get acknowledged is never sent again. An acknowledged number
    /// missing from storage is then a false ack that no re-send can mask.
    Forgets,
    /// Reconnects with its document, as a browser does: the handshake
    /// re-sends whatever the server lacks, so nothing it typed may be lost.
    Keeps,
}

pub struct Typist {
    pub name: String,
    pub url: String,
    pub user: TestUser,
    pub memory: Memory,
    /// Its first number; its others follow.
    pub first: i64,
}

/// What the test watches while a typist runs.
#[derive(Default)]
pub struct Progress {
    acked: AtomicU64,
    connects: AtomicU64,
    closes: Mutex<Vec<(u16, String)>>,
    refusals: Mutex<Vec<String>>,
}

impl Progress {
    /// Numbers acknowledged so far.
    pub fn acked(&self) -> u64 {
        self.acked.load(Ordering::Acquire)
    }

    pub fn connects(&self) -> u64 {
        self.connects.load(Ordering::Acquire)
    }

    /// Every close the server sent: code and reason.
    pub fn closes(&self) -> Vec<(u16, String)> {
        self.closes.lock().unwrap().clone()
    }

    /// Every refused reconnect (the handshake's error).
    pub fn refusals(&self) -> Vec<String> {
        self.refusals.lock().unwrap().clone()
    }
}

pub struct Report {
    pub name: String,
    pub memory: Memory,
    pub sent: BTreeSet<i64>,
    pub acked: BTreeSet<i64>,
    /// Its last connection, still open, every edit acknowledged.
    pub client: TestClient,
}

impl Typist {
    /// Types until `stop` turns true, then has its last edits acknowledged
    /// (reconnecting if it must) and reports.
    pub fn spawn(self, stop: watch::Receiver<bool>) -> (Arc<Progress>, JoinHandle<Report>) {
        let progress = Arc::new(Progress::default());
        let task = tokio::spawn(self.run(progress.clone(), stop));
        (progress, task)
    }

    async fn run(self, progress: Arc<Progress>, mut stop: watch::Receiver<bool>) -> Report {
        let mut doc = Arc::new(Doc::new());
        let mut next = self.first;
        let mut sent = BTreeSet::new();
        let mut acked = BTreeSet::new();
        let mut backoff = MIN_BACKOFF;
        let mut refused_since: Option<Instant> = None;
        loop {
            let stopping = *stop.borrow();
            let mut client =
                match TestClient::try_connect_as(&self.url, &self.user, doc.clone()).await {
                    Ok(c) => c,
                    Err(e) => {
                        let since = *refused_since.get_or_insert_with(Instant::now);
                        assert!(
                            since.elapsed() < REFUSED_AT_MOST,
                            "{}: every reconnect refused for {REFUSED_AT_MOST:?}; last: {e}",
                            self.name
                        );
                        progress.refusals.lock().unwrap().push(e.to_string());
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        continue;
                    }
                };
            refused_since = None;
            backoff = MIN_BACKOFF;
            progress.connects.fetch_add(1, Ordering::AcqRel);
            let synced = within(
                "the handshake",
                client.state.wait_for(|s| s.synced || s.closed.is_some()),
            )
            .await
            .unwrap()
            .clone();
            let mut here = Vec::new();
            if synced.closed.is_none() && !stopping {
                self.type_until_closed_or_stopped(
                    &mut client,
                    &mut here,
                    &mut next,
                    &progress,
                    &acked,
                    &mut stop,
                )
                .await;
            }
            // Every edit acknowledged, or the connection gone.
            let last = within(
                &format!("{}'s last acks", self.name),
                client
                    .state
                    .wait_for(|s| s.acked > here.len() as u64 || s.closed.is_some()),
            )
            .await
            .unwrap()
            .clone();
            if last.acked >= 1 && self.memory == Memory::Keeps {
                // Its step 2 held everything the server lacked of it.
                acked.extend(sent.iter().copied());
            }
            let edits_acked = (last.acked.saturating_sub(1) as usize).min(here.len());
            acked.extend(&here[..edits_acked]);
            sent.extend(here.iter().copied());
            progress.acked.store(acked.len() as u64, Ordering::Release);
            match last.closed {
                Some(close) => {
                    progress.closes.lock().unwrap().push(close);
                    if self.memory == Memory::Forgets {
                        doc = Arc::new(Doc::new());
                    }
                }
                None if *stop.borrow() => {
                    return Report {
                        name: self.name,
                        memory: self.memory,
                        sent,
                        acked,
                        client,
                    };
                }
                None => {}
            }
        }
    }

    async fn type_until_closed_or_stopped(
        &self,
        client: &mut TestClient,
        here: &mut Vec<i64>,
        next: &mut i64,
        progress: &Progress,
        acked_before: &BTreeSet<i64>,
        stop: &mut watch::Receiver<bool>,
    ) {
        let mut tick = tokio::time::interval(PACE);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if *stop.borrow() {
                return;
            }
            tokio::select! {
                _ = stop.changed() => return,
                _ = tick.tick() => {}
            }
            let s = client.snapshot();
            let edits_acked = s.acked.saturating_sub(1).min(here.len() as u64);
            progress
                .acked
                .store(acked_before.len() as u64 + edits_acked, Ordering::Release);
            if s.closed.is_some() {
                return;
            }
            if here.len() as u64 - edits_acked >= WINDOW {
                continue;
            }
            let n = *next;
            *next += 1;
            client.edit(|t| {
                t.get_or_insert_array("log").push_back(t, n);
            });
            here.push(n);
        }
    }
}

/// The numbers in a client's copy of the document.
pub fn numbers(client: &TestClient) -> BTreeSet<i64> {
    let txn = client.doc.transact();
    let Some(arr) = txn.get_array("log") else {
        return BTreeSet::new();
    };
    arr.iter(&txn)
        .filter_map(|v| match v {
            Out::Any(yrs::Any::Number(n)) => n.as_i64(),
            _ => None,
        })
        .collect()
}

/// Waits until every client holds exactly what `reference` holds.
pub async fn wait_converged(reference: &TestClient, clients: &[&TestClient]) {
    crate::common::wait_for("every client converged", || {
        let expected = numbers(reference);
        clients.iter().all(|c| numbers(c) == expected)
    })
    .await;
}
