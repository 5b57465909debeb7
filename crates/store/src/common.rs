//! Pieces both SQL backends share: the query counter, how a batch is grouped
//! for locking, the rules a compaction must satisfy, LIKE escaping, the
//! assembly of a load from rows and of sizes read back. Nothing here talks
//! to a database.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use quire_types::{DocId, Seq, UnixMillis};

use crate::{
    AccountUsage, Append, DocumentMeta, LogEntry, Snapshot, StoreError, StoreResult, StoredDoc,
};

/// Counts the statements a store sends. It exists so that a test can prove the
/// server does not poll the database while idle, which no log level would show
/// cheaply. Shared by clones of a store, so every handle reports one total.
#[derive(Debug, Clone, Default)]
pub(crate) struct QueryCounter(Arc<AtomicU64>);

impl QueryCounter {
    pub(crate) fn add(&self, statements: u64) {
        // Relaxed: the count orders nothing; readers only compare totals.
        self.0.fetch_add(statements, Ordering::Relaxed);
    }

    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A batch regrouped by document. Documents come out sorted by id: writers
/// lock document rows in that order, so two batches touching the same
/// documents can never wait on each other in a cycle.
pub(crate) struct GroupedBatch<'a> {
    /// Each document with the positions of its updates in the caller's batch.
    pub(crate) docs: BTreeMap<&'a DocId, Vec<usize>>,
}

impl<'a> GroupedBatch<'a> {
    pub(crate) fn new(batch: &'a [Append]) -> Self {
        let mut docs: BTreeMap<&DocId, Vec<usize>> = BTreeMap::new();
        for (i, append) in batch.iter().enumerate() {
            docs.entry(&append.doc).or_default().push(i);
        }
        GroupedBatch { docs }
    }

    /// Given the document's `last_seq` after reserving `positions.len()`
    /// numbers, the sequence number of each of its updates, in batch order.
    pub(crate) fn seqs_ending_at(
        positions: &[usize],
        last_seq: i64,
    ) -> impl Iterator<Item = (usize, Seq)> + '_ {
        let first = last_seq - positions.len() as i64 + 1;
        positions
            .iter()
            .enumerate()
            .map(move |(k, &pos)| (pos, Seq(first + k as i64)))
    }
}

/// The bytes of update data a document's updates (at `positions` of the
/// batch) add to its stored size.
pub(crate) fn batch_bytes(batch: &[Append], positions: &[usize]) -> i64 {
    positions
        .iter()
        .map(|&p| batch[p].update.len() as i64)
        .sum()
}

/// A size or count read back from the database. Never negative there; a
/// negative one would mean a hand-edited database, and counts as nothing
/// rather than wrapping into a huge quota use.
pub(crate) fn unsigned(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

pub(crate) fn account_usage(documents: i64, bytes: i64) -> AccountUsage {
    AccountUsage {
        documents: unsigned(documents),
        bytes: unsigned(bytes),
    }
}

/// The result of an append from each update's sequence number, `None` for
/// the updates of a document that does not exist.
pub(crate) fn appended(seqs: Vec<Option<Seq>>) -> Vec<StoreResult<Seq>> {
    seqs.into_iter()
        .map(|seq| seq.ok_or(StoreError::NotFound))
        .collect()
}

/// Decides whether a compaction may go ahead, given the document's state read
/// under the write lock. `Ok(false)` means superseded.
///
/// The compare-and-swap comes first: a loser of a race learns it was
/// superseded rather than getting an error about a snapshot it no longer
/// needs. Then two guards against a caller bug that would lose data: a
/// snapshot claiming rows that don't exist yet would hide the rows later
/// appended under those numbers, and one older than its base would drop the
/// rows the base had already absorbed.
pub(crate) fn compaction_allowed(
    current: Option<Seq>,
    base: Option<Seq>,
    last_seq: Seq,
    snapshot: &Snapshot,
) -> StoreResult<bool> {
    if current != base {
        return Ok(false);
    }
    if snapshot.upto.0 < 0 || snapshot.upto > last_seq {
        return Err(StoreError::Backend(format!(
            "snapshot covers up to {} but the log ends at {}",
            snapshot.upto.0, last_seq.0
        )));
    }
    if let Some(base) = base
        && snapshot.upto < base
    {
        return Err(StoreError::Backend(format!(
            "snapshot covers up to {} but its base already covers up to {}",
            snapshot.upto.0, base.0
        )));
    }
    Ok(true)
}

/// `%needle%` for a LIKE with `ESCAPE '\'`, so that `%`, `_` and `\` typed by a
/// user match themselves instead of acting as wildcards.
pub(crate) fn contains_pattern(needle: &str) -> String {
    let mut pattern = String::with_capacity(needle.len() + 2);
    pattern.push('%');
    for c in needle.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// Which kind of row a load query returned; the query sorts by it, so the
/// snapshot comes before the log rows.
pub(crate) const ROW_SNAPSHOT: i64 = 1;
pub(crate) const ROW_UPDATE: i64 = 2;

/// `after` for a full load: lower than any snapshot's `upto`, so the snapshot
/// is always included.
pub(crate) const LOAD_ALL: Seq = Seq(-1);

/// Builds a [`StoredDoc`] from `(kind, seq, data)` rows sorted by kind, then seq.
pub(crate) fn stored_doc(rows: Vec<(i64, i64, Vec<u8>)>) -> StoreResult<StoredDoc> {
    let mut doc = StoredDoc::default();
    for (kind, seq, data) in rows {
        match kind {
            ROW_SNAPSHOT => {
                doc.snapshot = Some(Snapshot {
                    upto: Seq(seq),
                    data: Bytes::from(data),
                })
            }
            ROW_UPDATE => doc.tail.push(LogEntry {
                seq: Seq(seq),
                update: Bytes::from(data),
            }),
            other => return Err(StoreError::Backend(format!("unexpected row kind {other}"))),
        }
    }
    Ok(doc)
}

pub(crate) fn document_meta(
    id: String,
    title: String,
    created_at: i64,
    updated_at: i64,
) -> StoreResult<DocumentMeta> {
    // Ids are validated before they are stored, so a bad one means the
    // database was edited by hand; refuse it rather than hand it to the API.
    let id = DocId::new(id)
        .map_err(|e| StoreError::Backend(format!("stored document id is invalid: {e}")))?;
    Ok(DocumentMeta {
        id,
        title,
        created_at: UnixMillis(created_at),
        updated_at: UnixMillis(updated_at),
    })
}

/// Errors that mean "the database can't be reached right now" rather than
/// "this request is wrong", so that readiness checks and callers can tell a
/// retryable outage from a bug. Backend-specific codes are added by each
/// backend.
pub(crate) fn is_connection_error(e: &sqlx::Error) -> bool {
    matches!(
        e,
        sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_wildcards_are_escaped() {
        assert_eq!(contains_pattern("abc"), "%abc%");
        assert_eq!(contains_pattern("50%_a\\b"), "%50\\%\\_a\\\\b%");
        assert_eq!(contains_pattern(""), "%%");
    }

    #[test]
    fn batches_group_by_sorted_document() {
        let a = DocId::new("a").unwrap();
        let b = DocId::new("b").unwrap();
        let batch: Vec<Append> = [&b, &a, &b]
            .into_iter()
            .map(|d| Append {
                doc: d.clone(),
                update: Bytes::new(),
            })
            .collect();
        let grouped = GroupedBatch::new(&batch);
        let order: Vec<_> = grouped
            .docs
            .iter()
            .map(|(d, p)| (d.as_str(), p.clone()))
            .collect();
        assert_eq!(order, vec![("a", vec![1]), ("b", vec![0, 2])]);
        let seqs: Vec<_> = GroupedBatch::seqs_ending_at(&[0, 2], 7).collect();
        assert_eq!(seqs, vec![(0, Seq(6)), (2, Seq(7))]);
    }

    #[test]
    fn compaction_rules() {
        let snap = |upto| Snapshot {
            upto: Seq(upto),
            data: Bytes::new(),
        };
        assert!(compaction_allowed(None, None, Seq(5), &snap(5)).unwrap());
        assert!(!compaction_allowed(Some(Seq(3)), None, Seq(5), &snap(5)).unwrap());
        assert!(!compaction_allowed(None, Some(Seq(3)), Seq(5), &snap(5)).unwrap());
        assert!(compaction_allowed(Some(Seq(3)), Some(Seq(3)), Seq(5), &snap(3)).unwrap());
        assert!(compaction_allowed(None, None, Seq(5), &snap(6)).is_err());
        assert!(compaction_allowed(Some(Seq(3)), Some(Seq(3)), Seq(5), &snap(2)).is_err());
        assert!(compaction_allowed(None, None, Seq(5), &snap(-2)).is_err());
    }
}
