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
use quire_store::{CompactOutcome, DocStore, Snapshot, StoredDoc};
use quire_types::{DocId, Seq};
use yrs::updates::decoder::Decode;
use yrs::{ReadTxn, StateVector, Transact, Update};

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

/// Rebuilds a document from a stored load. Every row is applied in order; a
/// row that does not decode is skipped with an error log rather than making
/// the whole document unloadable.
pub(crate) fn rebuild(doc: &yrs::Doc, stored: &StoredDoc, id: &DocId) {
    let mut txn = doc.transact_mut();
    let parts = stored
        .snapshot
        .iter()
        .map(|s| &s.data)
        .chain(stored.tail.iter().map(|e| &e.update));
    for bytes in parts {
        match Update::decode_v1(bytes) {
            Ok(u) => {
                if let Err(e) = txn.apply_update(u) {
                    tracing::error!(doc = %id, error = %e, "stored update failed to apply");
                }
            }
            Err(e) => tracing::error!(doc = %id, error = %e, "stored update does not decode"),
        }
    }
}

pub(crate) async fn compact(
    store: Arc<dyn DocStore>,
    id: DocId,
) -> Result<Option<CompactionResult>, quire_store::StoreError> {
    let stored = store.load(&id).await?;
    if stored.tail.is_empty() {
        return Ok(None);
    }
    let base = stored.snapshot.as_ref().map(|s| s.upto);
    let upto = stored.last_seq();
    let rows = stored.tail.len();
    let bytes = stored.tail_bytes();
    let id2 = id.clone();
    let data = tokio::task::spawn_blocking(move || {
        let doc = yrs::Doc::new();
        rebuild(&doc, &stored, &id2);
        let txn = doc.transact();
        txn.encode_state_as_update_v1(&StateVector::default())
    })
    .await
    .map_err(|e| quire_store::StoreError::Backend(format!("compaction task failed: {e}")))?;
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
