//! Compaction: merge a document's snapshot and log tail into a new snapshot.
//!
//! On a cluster node it reads from the store, not from the live document, so
//! that rows other nodes appended (and this node may not have applied yet)
//! are never left out of a snapshot that deletes them. A sole writer
//! ([`crate::HubConfig::sole_writer`]) knows its live document holds every
//! row, and stores that document's encoding instead ([`store_snapshot`]): no log
//! read, no replay into a fresh document. The store's compare-and-swap on the
//! snapshot base makes both idempotent and safe to race.

use std::sync::Arc;

use bytes::Bytes;
use quire_store::{CompactOutcome, DocStore, Snapshot};
use quire_types::{DocId, Seq};
use yrs::{ReadTxn, StateVector, Transact};

use crate::content::{Content, ContentLimits, LoadError};

use crate::metrics as m;

#[derive(Debug)]
pub(crate) struct CompactionResult {
    /// The last log row the new snapshot covers.
    pub upto: Seq,
    /// Rows and bytes the new snapshot covers (removed from the tail).
    pub rows: usize,
    pub bytes: usize,
    /// Size of the new snapshot.
    pub snapshot_bytes: usize,
}

pub(crate) async fn compact(
    store: Arc<dyn DocStore>,
    id: DocId,
    limits: ContentLimits,
) -> Result<Option<CompactionResult>, quire_store::StoreError> {
    let stored = store.load(&id).await?;
    if stored.tail.is_empty() {
        return Ok(None);
    }
    let base = stored.snapshot.as_ref().map(|s| s.upto);
    let upto = stored.last_seq();
    let rows = stored.tail.len();
    let bytes = stored.tail_bytes();
    // Every row goes through the checks a live update passes (the log holds
    // nothing else, but a rebuild must not be the one place that trusts it).
    // The memory limit is for documents being loaded to serve clients; this
    // one is already live.
    let limits = ContentLimits {
        max_decoded_bytes: u64::MAX,
        ..limits
    };
    let data = tokio::task::spawn_blocking(move || {
        let content = Content::load(&stored, limits, || ())?;
        // A row waiting for content the log lacks is not in the rebuilt
        // document, and the snapshot would delete it.
        if content.parked() > 0 {
            return Err(LoadError::Refused(format!(
                "{} stored updates wait for content the log does not have",
                content.parked()
            )));
        }
        let txn = content.doc().transact();
        Ok::<_, LoadError>(txn.encode_state_as_update_v1(&StateVector::default()))
    })
    .await
    .map_err(|e| quire_store::StoreError::Backend(format!("compaction task failed: {e}")))?
    .map_err(|e| quire_store::StoreError::Backend(format!("compaction refused: {e}")))?;
    store_snapshot(
        store,
        id,
        Replacement {
            base,
            upto,
            rows,
            bytes,
            data,
        },
    )
    .await
}

/// A new snapshot, holding every log row up to `upto`, and the tail it
/// replaces.
#[derive(Debug)]
pub(crate) struct Replacement {
    pub base: Option<Seq>,
    pub upto: Seq,
    pub rows: usize,
    pub bytes: usize,
    pub data: Vec<u8>,
}

/// Replaces the tail up to `new.upto` with `new.data`, unless another
/// compaction got there first.
pub(crate) async fn store_snapshot(
    store: Arc<dyn DocStore>,
    id: DocId,
    new: Replacement,
) -> Result<Option<CompactionResult>, quire_store::StoreError> {
    let Replacement {
        base,
        upto,
        rows,
        bytes,
        data,
    } = new;
    let snapshot_bytes = data.len();
    let outcome = store
        .compact(
            &id,
            base,
            Snapshot {
                upto,
                data: Bytes::from(data),
            },
        )
        .await?;
    match outcome {
        CompactOutcome::Compacted => {
            metrics::counter!(m::COMPACTIONS_TOTAL, "outcome" => "compacted").increment(1);
            Ok(Some(CompactionResult {
                upto,
                rows,
                bytes,
                snapshot_bytes,
            }))
        }
        CompactOutcome::Superseded => {
            metrics::counter!(m::COMPACTIONS_TOTAL, "outcome" => "superseded").increment(1);
            Ok(None)
        }
    }
}
