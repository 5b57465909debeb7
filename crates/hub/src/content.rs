//! The content of one live document: the yrs `Doc`, and the checks every
//! update passes before yrs sees it, whoever sent it (a client, another
//! node, the log).
//!
//! One path for every update: [`update_scan::scan`] (bounded, refuses what
//! must never reach yrs), [`ItemIndex::admit`] (nesting depth, and whether
//! every dependency is here), the memory estimate against the document's
//! limit, then yrs's decode and apply, guarded against panics. An update
//! whose dependencies have not arrived is *parked* here instead of being
//! handed to yrs (which would keep it pending and integrate it later without
//! asking): it is retried each time another update adds items, and applied,
//! or refused, then. See `docs/security.md` for the limits.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;

use bytes::Bytes;
use quire_store::StoredDoc;
use yrs::updates::decoder::Decode;
use yrs::{ReadTxn, StateVector, Transact, Update};

use crate::item_index::{Blocked, ItemIndex};
use crate::update_scan::{self, Refusal, Scan};

/// Limits on one document's content.
#[derive(Debug, Clone, Copy)]
pub struct ContentLimits {
    /// Estimated memory of the decoded document (see
    /// [`update_scan::Struct::cost`]) past which client updates are refused.
    pub max_decoded_bytes: u64,
    /// Bytes of updates waiting for their dependencies; a client update that
    /// would park past it is refused.
    pub max_parked_bytes: usize,
}

/// Who sent an update, and whether its limits are enforced on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    /// A client of this node: refused past the document's limits.
    Client,
    /// Another node (which checked it at its own door) or the log (which
    /// holds only what was checked): every structural check still applies,
    /// but not the memory and parking budgets, which would drop what is
    /// already durable or live elsewhere.
    Peer,
}

/// Why an update did not apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Refused before anything of it was applied.
    Refused(Refusal),
    /// yrs panicked or failed part-way through: the document can no longer
    /// be trusted and must be reloaded from the store.
    Broken,
}

/// An update that was applied, or failed.
#[derive(Debug)]
pub struct Settled<T> {
    pub tag: T,
    pub update: Bytes,
    pub scan: Scan,
    /// `Ok(changed)`: whether it changed the document.
    pub result: Result<bool, Failure>,
}

/// What [`Content::offer`] did.
#[derive(Debug)]
pub struct Offered<T> {
    /// The offered update (unless it was parked), then the parked updates it
    /// unblocked, in the order they were applied.
    pub settled: Vec<Settled<T>>,
    /// The offered update waits for its dependencies.
    pub parked: bool,
}

struct Parked<T> {
    update: Bytes,
    scan: Scan,
    /// The first dependency found missing; retried once it is held.
    missing: update_scan::Id,
    trust: Trust,
    tag: T,
}

pub struct Content<T> {
    doc: yrs::Doc,
    index: ItemIndex,
    parked: VecDeque<Parked<T>>,
    parked_bytes: usize,
    decoded_bytes: u64,
    limits: ContentLimits,
}

/// Why a stored document cannot be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    #[error("the stored document is refused: {0}")]
    Refused(String),
    #[error(
        "the stored document needs about {needed} bytes of memory, over the limit of {limit} \
         (--max-document-memory-bytes)"
    )]
    TooLarge { needed: u64, limit: u64 },
    #[error("the stored document could not be applied")]
    Broken,
}

impl<T> Content<T> {
    pub fn new(limits: ContentLimits) -> Self {
        Content {
            doc: yrs::Doc::new(),
            index: ItemIndex::default(),
            parked: VecDeque::new(),
            parked_bytes: 0,
            decoded_bytes: 0,
            limits,
        }
    }

    /// Builds a document from the store: the snapshot, then every row, each
    /// through the same checks as a live update. A stored update that breaks
    /// the nesting limit, or a document over the memory limit, is refused
    /// with a clear error rather than loaded (it could crash the node).
    pub fn load(
        stored: &StoredDoc,
        limits: ContentLimits,
        tag: impl Fn() -> T,
    ) -> Result<Self, LoadError> {
        let mut content = Content::new(limits);
        content.apply_stored(stored, tag)?;
        if content.decoded_bytes > limits.max_decoded_bytes {
            return Err(LoadError::TooLarge {
                needed: content.decoded_bytes,
                limit: limits.max_decoded_bytes,
            });
        }
        Ok(content)
    }

    /// Applies stored parts (a load, or a heal's log tail) as [`Trust::Peer`].
    /// Returns whether anything changed.
    pub fn apply_stored(
        &mut self,
        stored: &StoredDoc,
        tag: impl Fn() -> T,
    ) -> Result<bool, LoadError> {
        let parts = stored
            .snapshot
            .iter()
            .map(|s| &s.data)
            .chain(stored.tail.iter().map(|e| &e.update));
        let mut changed = false;
        for bytes in parts {
            for settled in self.offer(bytes.clone(), tag(), Trust::Peer).settled {
                match settled.result {
                    Ok(c) => changed |= c,
                    Err(Failure::Refused(r)) => return Err(LoadError::Refused(r.reason())),
                    Err(Failure::Broken) => return Err(LoadError::Broken),
                }
            }
        }
        Ok(changed)
    }

    pub fn doc(&self) -> &yrs::Doc {
        &self.doc
    }

    /// Estimated memory of the decoded document.
    pub fn decoded_bytes(&self) -> u64 {
        self.decoded_bytes
    }

    /// Updates waiting for their dependencies.
    pub fn parked(&self) -> usize {
        self.parked.len()
    }

    /// Checks `update` and applies it, or parks it until what it depends on
    /// arrives; then applies whatever parked updates it unblocked.
    pub fn offer(&mut self, update: Bytes, tag: T, trust: Trust) -> Offered<T> {
        let done = |tag, update, scan, result| Offered {
            settled: vec![Settled {
                tag,
                update,
                scan,
                result,
            }],
            parked: false,
        };
        let scan = match update_scan::scan(&update) {
            Ok(scan) => scan,
            Err(r) => return done(tag, update, Scan::default(), Err(Failure::Refused(r))),
        };
        match self.try_apply(&update, &scan, trust) {
            Attempt::Done(result) => {
                let grew = matches!(result, Ok(true)) && !self.parked.is_empty();
                let mut offered = done(tag, update, scan, result);
                if grew {
                    offered.settled.extend(self.retry_parked());
                }
                offered
            }
            Attempt::Missing(missing) => {
                if trust == Trust::Client
                    && self.parked_bytes + update.len() > self.limits.max_parked_bytes
                {
                    return done(
                        tag,
                        update,
                        scan,
                        Err(Failure::Refused(Refusal::Unresolvable)),
                    );
                }
                self.parked_bytes += update.len();
                self.parked.push_back(Parked {
                    update,
                    scan,
                    missing,
                    trust,
                    tag,
                });
                Offered {
                    settled: Vec::new(),
                    parked: true,
                }
            }
        }
    }

    /// Whether applying `update` would change the document: new or pending
    /// items, or deletions it does not have yet. Decides whether a read-only
    /// session's update is refused; it is never applied.
    pub fn would_change(&self, update: &[u8]) -> Result<bool, Refusal> {
        update_scan::scan(update)?;
        let update = decode_guarded(update)?;
        let txn = self.doc.transact();
        let have = txn.state_vector();
        if update.extends(&have) {
            return Ok(true);
        }
        // Items that start at or past what we have (a gap: they would wait).
        if update
            .state_vector_lower()
            .iter()
            .any(|(client, clock)| *clock >= have.get(client))
        {
            return Ok(true);
        }
        let deleted = txn.snapshot().delete_set;
        Ok(!update.delete_set().diff(&deleted).is_empty())
    }

    fn try_apply(&mut self, update: &[u8], scan: &Scan, trust: Trust) -> Attempt {
        let admission = match self.index.admit(scan) {
            Ok(a) => a,
            Err(Blocked::Missing(id)) => return Attempt::Missing(id),
            Err(Blocked::Refused(r)) => return Attempt::Done(Err(Failure::Refused(r))),
        };
        if trust == Trust::Client
            && admission.new_cost > 0
            && self.decoded_bytes + admission.new_cost > self.limits.max_decoded_bytes
        {
            return Attempt::Done(Err(Failure::Refused(Refusal::TooLargeInMemory)));
        }
        let decoded = match decode_guarded(update) {
            Ok(u) => u,
            Err(r) => return Attempt::Done(Err(Failure::Refused(r))),
        };
        let new_cost = admission.new_cost;
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
            let mut txn = self.doc.transact_mut();
            txn.apply_update(decoded).map(|()| {
                !txn.insert_set().is_empty()
                    || !txn.delete_set().is_empty()
                    || txn.has_missing_updates()
            })
        }));
        match result {
            Ok(Ok(changed)) => {
                self.index.commit(admission);
                self.decoded_bytes += new_cost;
                Attempt::Done(Ok(changed))
            }
            // yrs fails part-way (the index ruled out the one error it
            // has, an invalid parent, so this is a yrs bug) or panicked:
            // some of the update may be in the document.
            Ok(Err(e)) => {
                tracing::error!(error = %e, "applying a checked update failed");
                Attempt::Done(Err(Failure::Broken))
            }
            Err(_) => Attempt::Done(Err(Failure::Broken)),
        }
    }

    /// Retries parked updates whose missing dependency is now held, until
    /// none makes progress.
    fn retry_parked(&mut self) -> Vec<Settled<T>> {
        let mut settled = Vec::new();
        loop {
            let Some(i) = self.parked.iter().position(|p| self.index.holds(p.missing)) else {
                return settled;
            };
            let Some(mut p) = self.parked.remove(i) else {
                return settled;
            };
            match self.try_apply(&p.update, &p.scan, p.trust) {
                Attempt::Missing(missing) => {
                    p.missing = missing;
                    self.parked.push_back(p);
                }
                Attempt::Done(result) => {
                    self.parked_bytes -= p.update.len();
                    let broken = matches!(result, Err(Failure::Broken));
                    settled.push(Settled {
                        tag: p.tag,
                        update: p.update,
                        scan: p.scan,
                        result,
                    });
                    if broken {
                        return settled;
                    }
                }
            }
        }
    }

    /// The document's state vector.
    pub fn state_vector(&self) -> StateVector {
        self.doc.transact().state_vector()
    }
}

enum Attempt {
    Done(Result<bool, Failure>),
    Missing(update_scan::Id),
}

/// yrs's decode, after [`update_scan::scan`] accepted the bytes. A panic in
/// it touches no document, so it only refuses the update.
fn decode_guarded(update: &[u8]) -> Result<Update, Refusal> {
    std::panic::catch_unwind(|| Update::decode_v1(update))
        .ok()
        .and_then(Result::ok)
        .ok_or(Refusal::Undecodable)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::update_scan::MAX_NESTING;
    use yrs::{Array, Map, MapPrelim, MapRef, Text, WriteTxn, XmlElementPrelim, XmlFragment};

    const LIMITS: ContentLimits = ContentLimits {
        max_decoded_bytes: 64 * 1024 * 1024,
        max_parked_bytes: 1024 * 1024,
    };

    /// `n` maps nested in each other under the root map "m", one update each.
    fn nested_maps(n: usize) -> (yrs::Doc, Vec<Bytes>) {
        let doc = yrs::Doc::with_client_id(1);
        let mut cur: MapRef = doc.get_or_insert_map("m");
        let mut updates = Vec::new();
        for _ in 0..n {
            let mut txn = doc.transact_mut();
            cur = cur.insert(&mut txn, "k", MapPrelim::default());
            updates.push(Bytes::from(txn.encode_update_v1()));
        }
        (doc, updates)
    }

    fn offer(
        c: &mut Content<usize>,
        update: &Bytes,
        tag: usize,
        trust: Trust,
    ) -> Vec<(usize, Result<bool, Failure>)> {
        c.offer(update.clone(), tag, trust)
            .settled
            .into_iter()
            .map(|s| (s.tag, s.result))
            .collect()
    }

    #[test]
    fn shared_types_nest_up_to_the_limit_and_deleting_the_outermost_is_safe() {
        let (src, updates) = nested_maps(MAX_NESTING + 1);
        let mut c = Content::new(LIMITS);
        for (i, u) in updates.iter().enumerate() {
            let r = offer(&mut c, u, i, Trust::Client);
            if i < MAX_NESTING {
                assert_eq!(r, vec![(i, Ok(true))], "level {}", i + 1);
            } else {
                assert_eq!(r, vec![(i, Err(Failure::Refused(Refusal::TypesTooDeep)))]);
            }
        }
        // yrs deletes recursively: the deepest document allowed must be
        // deleted on an ordinary thread's stack (tests run on 2 MiB ones).
        let root = src.get_or_insert_map("m");
        let mut txn = src.transact_mut();
        root.remove(&mut txn, "k");
        let delete = Bytes::from(txn.encode_update_v1());
        drop(txn);
        assert_eq!(
            offer(&mut c, &delete, 0, Trust::Client),
            vec![(0, Ok(true))]
        );
    }

    #[test]
    fn a_deep_chain_in_one_update_is_refused_whoever_sends_it() {
        let (src, _) = nested_maps(MAX_NESTING + 1);
        let all = Bytes::from(
            src.transact()
                .encode_state_as_update_v1(&StateVector::default()),
        );
        for trust in [Trust::Client, Trust::Peer] {
            let mut c = Content::new(LIMITS);
            assert_eq!(
                offer(&mut c, &all, 0, trust),
                vec![(0, Err(Failure::Refused(Refusal::TypesTooDeep)))]
            );
            assert_eq!(c.state_vector(), StateVector::default(), "nothing applied");
        }
        // And a stored document holding one is refused at load.
        let stored = StoredDoc {
            snapshot: Some(quire_store::Snapshot {
                upto: quire_types::Seq(1),
                data: all,
            }),
            tail: Vec::new(),
        };
        let err = Content::load(&stored, LIMITS, || ()).err().unwrap();
        assert!(err.to_string().contains("nested deeper than 256"), "{err}");
    }

    #[test]
    fn updates_that_arrive_before_what_they_depend_on_wait_for_it() {
        let (_, updates) = nested_maps(MAX_NESTING + 2);
        let mut c = Content::new(LIMITS);
        // Children first: each waits for its parent; nothing reaches yrs.
        for (i, u) in updates.iter().enumerate().skip(1) {
            assert!(c.offer(u.clone(), i, Trust::Client).parked);
        }
        assert_eq!(c.state_vector(), StateVector::default());
        // The outermost arrives: the chain applies in order until the limit,
        // and the update that would pass it is refused, not the one that
        // unblocked it.
        let settled = offer(&mut c, &updates[0], 0, Trust::Client);
        // The last one hangs in the refused one: it waits on.
        assert_eq!(settled.len(), updates.len() - 1);
        for (i, (tag, result)) in settled.iter().enumerate() {
            assert_eq!(*tag, i);
            if i < MAX_NESTING {
                assert_eq!(*result, Ok(true), "level {}", i + 1);
            } else {
                assert_eq!(*result, Err(Failure::Refused(Refusal::TypesTooDeep)));
            }
        }
        assert_eq!(c.parked(), 1);
    }

    /// Found by the property tests: an update whose structs start inside
    /// clocks the document holds, the new rest hanging in an item nobody
    /// sent. yrs would keep that rest pending (its state vector and its
    /// encoding then disagree); it must wait here like any update missing
    /// its parent.
    #[test]
    fn a_struct_overlapping_held_clocks_needs_its_declared_parent() {
        // Client 1000: a map entry (clock 0), a paragraph with "a" (1-3), a
        // paragraph with "aa" (4-7).
        let held: [&[u8]; 3] = [
            &[1, 1, 232, 7, 0, 40, 1, 1, 109, 0, 1, 125, 0, 0],
            &[
                1, 3, 232, 7, 1, 7, 1, 7, 100, 101, 102, 97, 117, 108, 116, 3, 9, 112, 97, 114, 97,
                103, 114, 97, 112, 104, 7, 0, 232, 7, 1, 6, 4, 0, 232, 7, 2, 1, 97, 0,
            ],
            &[
                1, 3, 232, 7, 4, 135, 232, 7, 1, 3, 9, 113, 97, 114, 97, 103, 114, 97, 112, 104, 7,
                0, 232, 7, 4, 6, 4, 0, 232, 7, 5, 2, 97, 97, 0,
            ],
        ];
        // Clocks 3-8, the last one new, its text hanging in <1000#9>.
        let forged: &[u8] = &[
            1, 3, 232, 7, 3, 135, 232, 7, 4, 3, 9, 112, 97, 114, 97, 103, 114, 97, 112, 104, 7, 0,
            232, 7, 8, 6, 4, 0, 232, 7, 9, 4, 97, 97, 97, 97, 0,
        ];
        let mut c = Content::new(LIMITS);
        for (i, u) in held.iter().enumerate() {
            let u = Bytes::from_static(u);
            assert_eq!(offer(&mut c, &u, i, Trust::Client), vec![(i, Ok(true))]);
        }
        let before = c.doc().transact().snapshot();
        let offered = c.offer(Bytes::from_static(forged), 3, Trust::Peer);
        assert!(offered.parked, "{:?}", offered.settled.len());
        assert!(!c.doc().transact().has_missing_updates());
        assert_eq!(c.doc().transact().snapshot(), before);
    }

    #[test]
    fn siblings_share_their_parents_depth() {
        let doc = yrs::Doc::with_client_id(7);
        let frag = doc.get_or_insert_xml_fragment("default");
        let mut c = Content::new(LIMITS);
        for i in 0..1000 {
            let mut txn = doc.transact_mut();
            frag.insert(&mut txn, i, XmlElementPrelim::empty("paragraph"));
            let u = Bytes::from(txn.encode_update_v1());
            drop(txn);
            assert_eq!(offer(&mut c, &u, 0, Trust::Client), vec![(0, Ok(true))]);
        }
    }

    #[test]
    fn an_item_whose_parent_is_not_a_type_is_refused() {
        let doc = yrs::Doc::with_client_id(1);
        let mut txn = doc.transact_mut();
        txn.get_or_insert_text("t").insert(&mut txn, 0, "abc");
        let text = Bytes::from(txn.encode_update_v1());
        drop(txn);
        // Client 2 puts a map inside client 1's character "a".
        let bad = Bytes::from_static(&[1, 1, 2, 0, 7, 0, 1, 0, 1, 0]);
        let mut c = Content::new(LIMITS);
        assert_eq!(offer(&mut c, &text, 0, Trust::Client), vec![(0, Ok(true))]);
        assert_eq!(
            offer(&mut c, &bad, 1, Trust::Client),
            vec![(1, Err(Failure::Refused(Refusal::InvalidParent)))]
        );
    }

    #[test]
    fn the_memory_limit_refuses_clients_but_not_what_is_already_durable() {
        let doc = yrs::Doc::with_client_id(1);
        let mut txn = doc.transact_mut();
        let a = txn.get_or_insert_array("a");
        a.insert_range(&mut txn, 0, vec![yrs::Any::Null; 1_000_000]);
        let nulls = Bytes::from(txn.encode_update_v1());
        drop(txn);
        let limits = ContentLimits {
            max_decoded_bytes: 16 * 1024 * 1024,
            ..LIMITS
        };
        let mut c = Content::new(limits);
        assert_eq!(
            offer(&mut c, &nulls, 0, Trust::Client),
            vec![(0, Err(Failure::Refused(Refusal::TooLargeInMemory)))]
        );
        assert_eq!(c.decoded_bytes(), 0);
        assert_eq!(offer(&mut c, &nulls, 1, Trust::Peer), vec![(1, Ok(true))]);
        assert!(c.decoded_bytes() >= 24_000_000);
        // Sent again, it costs nothing more.
        let before = c.decoded_bytes();
        assert_eq!(
            offer(&mut c, &nulls, 2, Trust::Client),
            vec![(2, Ok(false))]
        );
        assert_eq!(c.decoded_bytes(), before);
        let stored = StoredDoc {
            snapshot: None,
            tail: vec![quire_store::LogEntry {
                seq: quire_types::Seq(1),
                update: nulls,
            }],
        };
        assert!(matches!(
            Content::load(&stored, limits, || ()),
            Err(LoadError::TooLarge { .. })
        ));
    }

    #[test]
    fn values_at_the_nesting_limit_apply_encode_and_drop_on_an_ordinary_stack() {
        let mut u = vec![1, 1, 1, 0, 8, 1, 1, b'a', 1];
        for _ in 0..MAX_NESTING - 1 {
            u.extend_from_slice(&[117, 1]);
        }
        u.extend_from_slice(&[126, 0]);
        let mut c = Content::new(LIMITS);
        assert_eq!(
            offer(&mut c, &Bytes::from(u), 0, Trust::Client),
            vec![(0, Ok(true))]
        );
        let state = c
            .doc()
            .transact()
            .encode_state_as_update_v1(&StateVector::default());
        assert!(!state.is_empty());
        drop(c);
    }

    #[test]
    fn a_read_only_check_never_applies() {
        let doc = yrs::Doc::with_client_id(3);
        let mut txn = doc.transact_mut();
        txn.get_or_insert_text("t").insert(&mut txn, 0, "x");
        let u = txn.encode_update_v1();
        drop(txn);
        let c: Content<()> = Content::new(LIMITS);
        assert_eq!(c.would_change(&u), Ok(true));
        assert_eq!(c.would_change(Update::EMPTY_V1), Ok(false));
        assert_eq!(c.state_vector(), StateVector::default());
        let deep = crate::update_scan::tests::nested_any(10_000);
        assert_eq!(c.would_change(&deep), Err(Refusal::ValueTooDeep));
    }
}
