//! Group commit: one task per node turns the appends of every live document
//! into as few store transactions as possible. Its queue is bounded in
//! updates and in bytes: when the store falls behind, documents wait to
//! queue more, and their sessions' sockets wait behind them.
//!
//! While a transaction commits, new appends queue up; the next transaction
//! takes all of them (up to `append_max_batch`). So under load the batch size
//! grows by itself, and an idle node commits a lone update at once. Appends of
//! one document stay in order because there is one task and batches commit one
//! after another.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use quire_store::{Append, DocStore, StoreError};
use quire_types::{DocId, Seq};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError, mpsc};
use tokio::time::Instant;
use tokio_util::task::TaskTracker;

use crate::HubConfig;
use crate::metrics as m;

/// Appends queued before a document's actor waits: bounds memory when the
/// store is slower than the clients, and pushes back on their sockets.
const QUEUE: usize = 16 * 1024;

/// Transient store errors are retried this many times before the document is
/// told its appends failed.
const RETRIES: u32 = 3;

/// Why a batch was not stored, as its documents tell their sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AppendFailure {
    /// The disk is full: nothing will be stored until someone makes room.
    Full,
    /// Anything else (the store unreachable after retries, an error).
    Failed,
}

impl AppendFailure {
    fn of(e: &StoreError) -> Self {
        match e {
            StoreError::Full(_) => AppendFailure::Full,
            _ => AppendFailure::Failed,
        }
    }

    fn label(self) -> &'static str {
        match self {
            AppendFailure::Full => "full",
            AppendFailure::Failed => "failed",
        }
    }
}

/// What became of one document's appends in a batch, as the appender tells
/// that document (through its own message type `R`, see [`Appender`]).
#[derive(Debug)]
pub(crate) enum AppendOutcome {
    /// Stored: `rows` updates of `bytes` bytes, with consecutive sequence
    /// numbers ending at `last_seq`.
    Committed {
        rows: usize,
        bytes: usize,
        last_seq: Seq,
    },
    /// Not stored; nothing of the batch was.
    Failed { rows: usize, why: AppendFailure },
    /// Refused because the document no longer exists (it was deleted while
    /// live here); nothing of them was written.
    DocumentGone { rows: usize },
}

/// One update to store, and where to tell its document the outcome.
pub(crate) struct AppendRequest<R> {
    pub doc: DocId,
    pub update: Bytes,
    pub reply: flume::Sender<R>,
}

/// The node's group-commit queue. `R` is the message type of the documents
/// it answers, built from an [`AppendOutcome`]: the appender knows nothing
/// of them but that.
pub(crate) struct Appender<R> {
    tx: mpsc::Sender<(AppendRequest<R>, OwnedSemaphorePermit)>,
    /// Bytes of queued and committing updates.
    bytes: Arc<Semaphore>,
    budget: usize,
}

impl<R> Clone for Appender<R> {
    fn clone(&self) -> Self {
        Appender {
            tx: self.tx.clone(),
            bytes: self.bytes.clone(),
            budget: self.budget,
        }
    }
}

impl<R: From<AppendOutcome> + Send + 'static> Appender<R> {
    pub fn start(store: Arc<dyn DocStore>, config: &HubConfig, _tracker: &TaskTracker) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        // Not tracked: documents wait for their own commits before they exit,
        // so once every document has shut down there is nothing left here.
        tokio::spawn(run(
            store,
            rx,
            config.append_window,
            config.append_max_batch.max(1),
        ));
        let budget = config
            .append_queue_bytes
            .clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
        Appender {
            tx,
            bytes: Arc::new(Semaphore::new(budget)),
            budget,
        }
    }

    /// Queues an append; waits only when the queue is full (in updates or
    /// in bytes). An update larger than the whole byte budget waits for an
    /// empty queue.
    ///
    /// Room is taken without awaiting when there is some: every await on a
    /// tokio semaphore or channel spends the document task's cooperative
    /// budget, and a task that runs out yields, so the appender would wake
    /// to commit smaller batches (more store transactions for the same
    /// updates).
    pub async fn append(&self, req: AppendRequest<R>) -> Result<(), ()> {
        let share = req.update.len().clamp(1, self.budget) as u32;
        let bytes = match self.bytes.clone().try_acquire_many_owned(share) {
            Ok(bytes) => bytes,
            Err(TryAcquireError::NoPermits) => self
                .bytes
                .clone()
                .acquire_many_owned(share)
                .await
                .map_err(|_| ())?,
            Err(TryAcquireError::Closed) => return Err(()),
        };
        match self.tx.try_send((req, bytes)) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(item)) => self.tx.send(item).await.map_err(|_| ()),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(()),
        }
    }
}

async fn run<R: From<AppendOutcome>>(
    store: Arc<dyn DocStore>,
    mut rx: mpsc::Receiver<(AppendRequest<R>, OwnedSemaphorePermit)>,
    window: Duration,
    max_batch: usize,
) {
    let mut batch: Vec<AppendRequest<R>> = Vec::with_capacity(max_batch);
    while let Some((first, mut held)) = rx.recv().await {
        // The document that queued this has usually just woken its sessions
        // to relay the same update; as the task woken last, this one would
        // run first and hand the store a commit that then competes with
        // those relays for the CPU. Let them go first (the batch can only
        // grow meanwhile).
        tokio::task::yield_now().await;
        // The batch's share of the byte budget, merged into one permit and
        // given back at once when the batch has committed.
        batch.push(first);
        if !window.is_zero() {
            let deadline = Instant::now() + window;
            while batch.len() < max_batch {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some((req, bytes))) => {
                        batch.push(req);
                        held.merge(bytes);
                    }
                    _ => break,
                }
            }
        }
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok((req, bytes)) => {
                    batch.push(req);
                    held.merge(bytes);
                }
                Err(_) => break,
            }
        }
        commit(&*store, &mut batch).await;
        drop(held);
    }
}

/// One document's share of a committed batch. Its rows got consecutive
/// sequence numbers ending at `last_seq` (see [`DocStore::append`]), or none
/// at all when the document no longer exists (`gone`).
struct PerDoc<R> {
    rows: usize,
    bytes: usize,
    last_seq: Seq,
    gone: bool,
    reply: flume::Sender<R>,
}

async fn commit<R: From<AppendOutcome>>(store: &dyn DocStore, batch: &mut Vec<AppendRequest<R>>) {
    let appends: Vec<Append> = batch
        .iter()
        .map(|r| Append {
            doc: r.doc.clone(),
            update: r.update.clone(),
        })
        .collect();
    let started = Instant::now();
    let mut attempt = 0;
    let result = loop {
        match store.append(&appends).await {
            Ok(seqs) => break Ok(seqs),
            Err(StoreError::Unavailable(e)) if attempt < RETRIES => {
                attempt += 1;
                tracing::warn!(error = %e, attempt, "append failed, retrying");
                tokio::time::sleep(Duration::from_millis(20 << attempt)).await;
            }
            Err(e) => break Err(e),
        }
    };
    metrics::histogram!(m::APPEND_COMMIT_SECONDS).record(started.elapsed().as_secs_f64());
    metrics::histogram!(m::APPEND_BATCH_SIZE).record(batch.len() as f64);

    // One reply per document and batch, in order: the document counts its
    // committed appends.
    let mut per_doc: HashMap<DocId, PerDoc<R>> = HashMap::new();
    for (i, req) in batch.drain(..).enumerate() {
        let e = per_doc.entry(req.doc).or_insert(PerDoc {
            rows: 0,
            bytes: 0,
            last_seq: Seq(0),
            gone: false,
            reply: req.reply,
        });
        e.rows += 1;
        e.bytes += req.update.len();
        match result.as_ref().map(|seqs| &seqs[i]) {
            Ok(Ok(seq)) => e.last_seq = e.last_seq.max(*seq),
            // The store answers per document: all its rows, or none.
            Ok(Err(_)) => e.gone = true,
            Err(_) => {}
        }
    }
    match result {
        Ok(_) => {
            let mut stored = 0;
            for (doc, d) in per_doc {
                let reply = if d.gone {
                    // Deleted while live here: other documents of the batch
                    // committed, this one's updates were not written.
                    tracing::info!(doc = %doc, rows = d.rows, "append refused: the document was deleted");
                    AppendOutcome::DocumentGone { rows: d.rows }
                } else {
                    stored += d.rows;
                    AppendOutcome::Committed {
                        rows: d.rows,
                        bytes: d.bytes,
                        last_seq: d.last_seq,
                    }
                };
                let _ = d.reply.send(R::from(reply));
            }
            metrics::counter!(m::APPEND_ROWS_TOTAL).increment(stored as u64);
        }
        Err(e) => {
            let why = AppendFailure::of(&e);
            tracing::error!(error = %e, rows = appends.len(), "append failed");
            metrics::counter!(m::APPEND_FAILURES_TOTAL, "reason" => why.label()).increment(1);
            for PerDoc { rows, reply, .. } in per_doc.into_values() {
                let _ = reply.send(R::from(AppendOutcome::Failed { rows, why }));
            }
        }
    }
}
