//! When a live document must re-read its log tail because bus messages may
//! have been lost. Pure bookkeeping (no I/O, time passed in), so every rule is
//! unit-tested here; the document actor does the reading.
//!
//! The difficulty: a node publishes an update *before* its append commits
//! (broadcast never waits for durability). A peer that notices it missed that
//! update and re-reads the log at once may be too early: the row is not
//! there yet, and nothing would ever tell it to look again. Two choices were
//! possible: heal again after a fixed delay (a guess: a slow commit still
//! slips through), or learn from the origin when its updates have committed.
//! We do the second. After each commit the origin publishes
//! `Committed { covers }` (every update it published with a counter up to
//! `covers` is durable), and a peer that detected a gap
//!
//! 1. heals at once (whatever *had* committed is picked up with no delay),
//! 2. remembers the highest missing counter, and heals again as soon as a
//!    `Committed` from that origin covers it (the read then starts after the
//!    commit, so it sees the row),
//! 3. and, should that notice be lost too, heals again after [`FALLBACK`],
//!    then after twice that, and so on, until the notice comes or
//!    [`GIVE_UP`] has passed (by then the update either committed long ago
//!    or never will: its origin died, and its author re-sends it elsewhere).
//!    A fallback does not end the wait: a commit slower than the fallback
//!    is still caught by its notice.
//!
//! An origin first heard from with a counter above 1 counts as a gap: it
//! published before we subscribed, and those updates may have committed
//! after we loaded. An origin is one run of a node ([`Origin`]): a node
//! restarted under the same id counts from 1 again as a new origin, while
//! its previous run is tracked on as a peer that went silent. A lost connection (`MayHaveMissed`) heals at once, when
//! the bus is live again; anything still uncommitted then is published
//! under a counter we will see exceed the last one we saw.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use quire_bus::Origin;

/// How long to wait for an origin's `Committed` notice before healing anyway
/// (doubled for each further fallback).
pub(crate) const FALLBACK: Duration = Duration::from_millis(500);
/// When to stop waiting for a `Committed` notice: longer than the store's
/// statement timeout, so a commit that is merely slow is never given up on.
pub(crate) const GIVE_UP: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HealCause {
    /// A counter jumped: messages from that origin were lost.
    Gap,
    /// The first message from an origin was not its first ever.
    FirstContact,
    /// An origin's commit now covers updates we missed.
    Committed,
    /// No commit notice came in time.
    Fallback,
    /// The bus connection was lost and re-established.
    Reconnect,
}

impl HealCause {
    pub(crate) fn label(self) -> &'static str {
        match self {
            HealCause::Gap => "gap",
            HealCause::FirstContact => "first_contact",
            HealCause::Committed => "committed",
            HealCause::Fallback => "fallback",
            HealCause::Reconnect => "bus_reconnect",
        }
    }
}

#[derive(Debug, Default)]
struct OriginState {
    /// Highest counter received.
    last: u64,
    /// Highest `covers` received.
    committed: u64,
    /// Highest missing counter whose commit we wait for.
    awaiting: Option<Awaiting>,
}

#[derive(Debug, Clone, Copy)]
struct Awaiting {
    needed: u64,
    since: Instant,
    /// When the next fallback heal is due, and the delay after that one.
    next: Instant,
    delay: Duration,
}

#[derive(Debug, Default)]
pub(crate) struct HealTracker {
    origins: HashMap<Origin, OriginState>,
}

impl HealTracker {
    /// Records a message; returns the heal to start now, if any.
    /// `committed` is the `covers` of a `Committed` message.
    pub(crate) fn on_message(
        &mut self,
        origin: &Origin,
        counter: u64,
        committed: Option<u64>,
        now: Instant,
    ) -> Option<HealCause> {
        let known = self.origins.contains_key(origin);
        let st = self.origins.entry(origin.clone()).or_default();
        let detected = if !known && counter > 1 {
            Some(HealCause::FirstContact)
        } else if known && counter > st.last + 1 {
            Some(HealCause::Gap)
        } else {
            None
        };
        st.last = st.last.max(counter);
        if let Some(c) = committed {
            st.committed = st.committed.max(c);
        }
        if let Some(cause) = detected {
            let missing = counter - 1;
            if st.committed < missing {
                st.awaiting = Some(match st.awaiting {
                    Some(a) => Awaiting {
                        needed: a.needed.max(missing),
                        ..a
                    },
                    None => Awaiting {
                        needed: missing,
                        since: now,
                        next: now + FALLBACK,
                        delay: FALLBACK * 2,
                    },
                });
            }
            return Some(cause);
        }
        match st.awaiting {
            Some(a) if st.committed >= a.needed => {
                st.awaiting = None;
                Some(HealCause::Committed)
            }
            _ => None,
        }
    }

    /// When [`Self::on_deadline`] must next be called.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.origins
            .values()
            .filter_map(|o| o.awaiting.map(|a| a.next))
            .min()
    }

    /// Heals for commit notices that are overdue (`Fallback`), and stops
    /// waiting for those older than [`GIVE_UP`].
    pub(crate) fn on_deadline(&mut self, now: Instant) -> Option<HealCause> {
        let mut due = false;
        for o in self.origins.values_mut() {
            let Some(a) = &mut o.awaiting else { continue };
            if now < a.next {
                continue;
            }
            due = true;
            if now >= a.since + GIVE_UP {
                o.awaiting = None;
            } else {
                a.next = now + a.delay;
                a.delay *= 2;
            }
        }
        due.then_some(HealCause::Fallback)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quire_types::NodeId;

    /// A node's run; every test here but the restart one has one run each.
    fn node(n: &str) -> Origin {
        Origin {
            node: NodeId(n.into()),
            incarnation: 1,
        }
    }

    #[test]
    fn an_unbroken_stream_needs_no_heal() {
        let mut t = HealTracker::default();
        let now = Instant::now();
        for c in 1..=5 {
            assert_eq!(t.on_message(&node("a"), c, None, now), None);
        }
        assert_eq!(t.on_message(&node("a"), 6, Some(5), now), None);
        assert_eq!(t.deadline(), None);
    }

    #[test]
    fn a_gap_heals_now_and_again_once_committed() {
        let mut t = HealTracker::default();
        let now = Instant::now();
        t.on_message(&node("a"), 1, None, now);
        // 2 and 3 lost.
        assert_eq!(t.on_message(&node("a"), 4, None, now), Some(HealCause::Gap));
        assert!(t.deadline().is_some());
        // A commit that does not cover 3 yet changes nothing.
        assert_eq!(t.on_message(&node("a"), 5, Some(2), now), None);
        assert_eq!(
            t.on_message(&node("a"), 6, Some(3), now),
            Some(HealCause::Committed)
        );
        assert_eq!(t.deadline(), None);
        assert_eq!(t.on_message(&node("a"), 7, Some(6), now), None);
    }

    #[test]
    fn a_gap_already_covered_heals_once() {
        let mut t = HealTracker::default();
        let now = Instant::now();
        t.on_message(&node("a"), 1, None, now);
        // The message revealing the gap is itself the commit notice.
        assert_eq!(
            t.on_message(&node("a"), 3, Some(2), now),
            Some(HealCause::Gap)
        );
        assert_eq!(t.deadline(), None);
    }

    #[test]
    fn first_contact_past_one_counts_as_a_gap() {
        let mut t = HealTracker::default();
        let now = Instant::now();
        assert_eq!(t.on_message(&node("a"), 1, None, now), None);
        assert_eq!(
            t.on_message(&node("b"), 9, None, now),
            Some(HealCause::FirstContact)
        );
        assert_eq!(
            t.on_message(&node("b"), 10, Some(8), now),
            Some(HealCause::Committed)
        );
    }

    #[test]
    fn a_lost_commit_notice_falls_back_with_growing_delays() {
        let mut t = HealTracker::default();
        let start = Instant::now();
        t.on_message(&node("a"), 1, None, start);
        assert_eq!(
            t.on_message(&node("a"), 3, None, start),
            Some(HealCause::Gap)
        );
        let first = t.deadline().expect("waiting for a commit");
        assert_eq!(first, start + FALLBACK);
        assert_eq!(t.on_deadline(start + FALLBACK / 2), None);
        assert_eq!(t.on_deadline(first), Some(HealCause::Fallback));
        // Still waiting, and less eagerly.
        let second = t.deadline().expect("still waiting");
        assert_eq!(second, first + FALLBACK * 2);
        assert_eq!(t.on_deadline(second), Some(HealCause::Fallback));
        assert_eq!(t.deadline(), Some(second + FALLBACK * 4));
        // Given up on at last.
        let late = start + GIVE_UP;
        assert_eq!(t.on_deadline(late), Some(HealCause::Fallback));
        assert_eq!(t.deadline(), None);
    }

    #[test]
    fn a_commit_slower_than_the_fallback_is_still_caught() {
        let mut t = HealTracker::default();
        let start = Instant::now();
        t.on_message(&node("a"), 1, None, start);
        assert_eq!(
            t.on_message(&node("a"), 3, None, start),
            Some(HealCause::Gap)
        );
        assert_eq!(t.on_deadline(start + FALLBACK), Some(HealCause::Fallback));
        // The notice arrives after the fallback: it still triggers a heal.
        assert_eq!(
            t.on_message(&node("a"), 4, Some(3), start + FALLBACK * 2),
            Some(HealCause::Committed)
        );
        assert_eq!(t.deadline(), None);
    }

    #[test]
    fn origins_are_tracked_apart() {
        let mut t = HealTracker::default();
        let now = Instant::now();
        t.on_message(&node("a"), 1, None, now);
        t.on_message(&node("b"), 1, None, now);
        assert_eq!(t.on_message(&node("a"), 2, None, now), None);
        assert_eq!(t.on_message(&node("b"), 3, None, now), Some(HealCause::Gap));
        // a's commit does not satisfy the wait for b.
        assert_eq!(t.on_message(&node("a"), 3, Some(9), now), None);
        assert_eq!(
            t.on_message(&node("b"), 4, Some(2), now),
            Some(HealCause::Committed)
        );
    }

    #[test]
    fn a_node_restarted_under_its_id_is_a_new_origin() {
        let mut t = HealTracker::default();
        let now = Instant::now();
        let first_run = node("a");
        let second_run = Origin {
            incarnation: 2,
            ..node("a")
        };
        for c in 1..=5 {
            t.on_message(&first_run, c, None, now);
        }
        assert_eq!(t.on_message(&first_run, 6, Some(5), now), None);
        // The restart counts from 1 again: no gap, as for any new origin …
        assert_eq!(t.on_message(&second_run, 1, None, now), None);
        // … and its losses show, though its counters are below the first
        // run's.
        assert_eq!(
            t.on_message(&second_run, 3, None, now),
            Some(HealCause::Gap)
        );
        // Its first run's commit notices don't answer for it.
        assert_eq!(t.on_message(&first_run, 7, Some(6), now), None);
        assert_eq!(
            t.on_message(&second_run, 4, Some(2), now),
            Some(HealCause::Committed)
        );
    }
}
