//! How deep every item of a live document sits, so that an update nesting
//! shared types too deeply is refused before yrs integrates it.
//!
//! yrs deletes and garbage-collects nested types recursively: 20,000 nested
//! `Y.Map`s, accepted one update at a time, overflowed the stack (an abort of
//! the whole node) when the outermost was deleted, and from then on on every
//! node that loaded the document and touched it. Depth is not visible in an
//! update alone: an item names its parent by id, or not at all (it then has
//! its left or right neighbour's parent), and the parent may be anywhere in
//! the document. So the index keeps, for every client's run of clocks, the
//! depth of the parent its items hang in (and whether the items are shared
//! types), in runs: typing in one paragraph is one run.
//!
//! [`ItemIndex::admit`] resolves an update's structs against the index (and
//! against each other, in the order yrs's `BlockPicker` would find them) and
//! either stages what is new or says what is missing. A document never hands
//! yrs an update with a missing dependency (the caller parks it until the
//! dependency arrives: see [`crate::content`]), so everything yrs holds has
//! passed through here, and yrs's own pending queue, which would integrate
//! later without asking, stays empty.
//!
//! Unlike yrs, which integrates a client's struct ahead of that client's
//! earlier clocks (leaving a skip), the index requires each client's clocks
//! in order: Yjs clients never send a gap, and the stricter rule keeps every
//! run contiguous.

use std::collections::{HashMap, VecDeque};

use smallvec::SmallVec;

use crate::update_scan::{Content, Id, MAX_NESTING, Parent, Refusal, Scan, Struct};

/// What a run of clocks holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Text, values, formatting: not something items can be nested in.
    Content,
    /// Deleted content (its type, if it was one, is gone): items naming it as
    /// their parent are deleted on arrival.
    Deleted,
    /// Shared types (each one clock long).
    Type,
    /// Garbage-collected: attached to nothing.
    Gc,
}

#[derive(Debug, Clone, Copy)]
struct Run {
    /// One past the last clock of the run (it starts where the previous ends).
    end: u32,
    /// Depth of the type the run's items hang in: 0 for a root type.
    parent_depth: u16,
    kind: Kind,
}

/// One client's clocks from `start` on, without gaps (a document holds them
/// from 0; an update's new ones start where the document's end).
#[derive(Debug, Default)]
struct Runs {
    start: u32,
    runs: SmallVec<[Run; 1]>,
}

impl Runs {
    fn starting_at(start: u32) -> Self {
        Runs {
            start,
            runs: SmallVec::new(),
        }
    }

    fn end(&self) -> u32 {
        self.runs.last().map_or(self.start, |r| r.end)
    }

    fn at(&self, clock: u32) -> Option<(u16, Kind)> {
        if clock < self.start {
            return None;
        }
        let i = self.runs.partition_point(|r| r.end <= clock);
        self.runs.get(i).map(|r| (r.parent_depth, r.kind))
    }

    fn push(&mut self, len: u32, parent_depth: u16, kind: Kind) {
        let end = self.end() + len;
        match self.runs.last_mut() {
            Some(last) if last.parent_depth == parent_depth && last.kind == kind => last.end = end,
            _ => self.runs.push(Run {
                end,
                parent_depth,
                kind,
            }),
        }
    }
}

/// Every item of one document, by client, in runs. (hashbrown's default
/// hasher, randomly seeded, costs a fraction of SipHash on every update.)
#[derive(Debug, Default)]
pub struct ItemIndex {
    clients: hashbrown::HashMap<u64, Runs>,
}

/// What an update adds, ready to [`ItemIndex::commit`].
#[derive(Debug, Default)]
pub struct Admission {
    /// New runs, per client in clock order.
    staged: Staged,
    /// Estimated memory of the new structs (what the document already held
    /// costs nothing again).
    pub new_cost: u64,
    /// Deepest type the update creates (0: none).
    pub deepest: usize,
}

/// Why an update cannot be admitted yet, or ever.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Blocked {
    /// It depends on an item the document does not hold yet.
    Missing(Id),
    Refused(Refusal),
}

enum Step {
    Done,
    Wait(Id),
}

/// New runs by client: a list (an update usually holds one or two
/// clients), indexed once it grows, so a crafted update with many clients
/// stays linear.
#[derive(Debug, Default)]
struct Staged {
    runs: SmallVec<[(u64, Runs); 1]>,
    by_client: hashbrown::HashMap<u64, usize>,
}

impl Staged {
    const LIST: usize = 8;

    fn get(&self, client: u64) -> Option<&Runs> {
        if self.runs.len() <= Self::LIST {
            self.runs.iter().find(|(c, _)| *c == client).map(|(_, r)| r)
        } else {
            self.by_client.get(&client).map(|&i| &self.runs[i].1)
        }
    }

    fn get_or_start(&mut self, client: u64, start: u32) -> &mut Runs {
        let found = if self.runs.len() <= Self::LIST {
            self.runs.iter().position(|(c, _)| *c == client)
        } else {
            self.by_client.get(&client).copied()
        };
        let i = match found {
            Some(i) => i,
            None => {
                self.runs.push((client, Runs::starting_at(start)));
                let i = self.runs.len() - 1;
                if self.runs.len() == Self::LIST + 1 {
                    self.by_client = self
                        .runs
                        .iter()
                        .enumerate()
                        .map(|(i, (c, _))| (*c, i))
                        .collect();
                } else if self.runs.len() > Self::LIST + 1 {
                    self.by_client.insert(client, i);
                }
                i
            }
        };
        &mut self.runs[i].1
    }
}

impl ItemIndex {
    /// Clocks of `client` held (every clock below this one).
    pub fn end(&self, client: u64) -> u32 {
        self.clients.get(&client).map_or(0, Runs::end)
    }

    /// Whether the document holds the item `id`.
    pub fn holds(&self, id: Id) -> bool {
        id.clock < self.end(id.client)
    }

    /// Resolves `scan` against the document: every struct either is held
    /// already, or has its parent (and its client's earlier clocks) held or
    /// in the same update. Changes nothing; [`commit`](Self::commit) does.
    pub fn admit(&self, scan: &Scan) -> Result<Admission, Blocked> {
        // Most updates are one client's own edits, each struct resolving
        // in order: try that first, without building any queue.
        let mut a = Admission::default();
        let mut in_order = true;
        for s in &scan.structs {
            match self.step(s, &mut a).map_err(Blocked::Refused)? {
                Step::Done => {}
                Step::Wait(_) => {
                    in_order = false;
                    break;
                }
            }
        }
        if in_order {
            return Ok(a);
        }
        let mut a = Admission::default();
        // Each client's structs in encoded order (yrs keeps the same order,
        // appending a client listed twice to its first list).
        let mut queues: HashMap<u64, VecDeque<usize>> = HashMap::new();
        for (i, s) in scan.structs.iter().enumerate() {
            queues.entry(s.id.client).or_default().push_back(i);
        }
        let mut on_stack = vec![false; scan.structs.len()];
        let mut stack: Vec<usize> = Vec::new();
        let clients: Vec<u64> = queues.keys().copied().collect();
        for client in clients {
            while let Some(&head) = queues.get(&client).and_then(VecDeque::front) {
                stack.push(head);
                on_stack[head] = true;
                // Depth-first through dependencies on other clients' structs
                // of this update; every struct is pushed once and each retry
                // either resolves it or pushes a new one, so this is linear.
                while let Some(&top) = stack.last() {
                    let s = &scan.structs[top];
                    match self.step(s, &mut a).map_err(Blocked::Refused)? {
                        Step::Done => {
                            stack.pop();
                            on_stack[top] = false;
                            if let Some(q) = queues.get_mut(&s.id.client) {
                                q.pop_front();
                            }
                        }
                        Step::Wait(dep) => {
                            let next = queues.get(&dep.client).and_then(VecDeque::front);
                            match next {
                                Some(&n) if !on_stack[n] => {
                                    stack.push(n);
                                    on_stack[n] = true;
                                }
                                // Nothing of that client left in the update,
                                // or a cycle: it is not here.
                                _ => return Err(Blocked::Missing(dep)),
                            }
                        }
                    }
                }
            }
        }
        Ok(a)
    }

    /// Adds what [`admit`](Self::admit) staged.
    pub fn commit(&mut self, a: Admission) {
        for (client, staged) in a.staged.runs {
            let held = self.clients.entry(client).or_default();
            debug_assert_eq!(held.end(), staged.start);
            let mut start = staged.start;
            for r in staged.runs {
                held.push(r.end - start, r.parent_depth, r.kind);
                start = r.end;
            }
        }
    }

    fn end_with(&self, a: &Admission, client: u64) -> u32 {
        match a.staged.get(client) {
            Some(staged) => staged.end(),
            None => self.end(client),
        }
    }

    fn at_with(&self, a: &Admission, id: Id) -> Option<(u16, Kind)> {
        let held = self.clients.get(&id.client);
        if id.clock < held.map_or(0, Runs::end) {
            return held.and_then(|r| r.at(id.clock));
        }
        a.staged.get(id.client).and_then(|r| r.at(id.clock))
    }

    fn step(&self, s: &Struct, a: &mut Admission) -> Result<Step, Refusal> {
        let client = s.id.client;
        let end = self.end_with(a, client);
        let last = s.id.clock.saturating_add(s.len);
        if last <= end {
            return Ok(Step::Done); // held already
        }
        if s.id.clock > end {
            return Ok(Step::Wait(Id { client, clock: end }));
        }
        let offset = end - s.id.clock;
        let kind = match s.content {
            Content::Value => Kind::Content,
            Content::Deleted => Kind::Deleted,
            Content::Type => Kind::Type,
            Content::Gc => Kind::Gc,
        };
        // yrs checks the dependencies a struct declares before it cuts off
        // what is held already, so the new rest of an overlapping struct
        // needs them too: a re-sent item has them, a forged one that
        // overlaps held clocks with another parent must wait or be refused
        // like any other (yrs would keep it pending).
        let declared = match self.parent_depth(s.parent, a) {
            Ok(d) => d,
            Err(Some(dep)) => return Ok(Step::Wait(dep)),
            Err(None) => return Err(Refusal::InvalidParent),
        };
        let parent_depth = if offset > 0 {
            // The rest hangs after the held item: the deeper of the two.
            let held = Id {
                client,
                clock: end - 1,
            };
            declared.max(self.at_with(a, held).map_or(0, |(d, _)| d))
        } else {
            declared
        };
        if kind == Kind::Type {
            let depth = usize::from(parent_depth) + 1;
            if depth > MAX_NESTING {
                return Err(Refusal::TypesTooDeep);
            }
            a.deepest = a.deepest.max(depth);
        }
        let new_len = s.len - offset;
        a.new_cost += s.cost * u64::from(new_len) / u64::from(s.len);
        a.staged
            .get_or_start(client, end)
            .push(new_len, parent_depth, kind);
        Ok(Step::Done)
    }

    /// The depth of the type a new item hangs in; `Err(Some(id))` if that
    /// depends on an item not held, `Err(None)` if its parent is not a type.
    fn parent_depth(&self, parent: Parent, a: &Admission) -> Result<u16, Option<Id>> {
        match parent {
            Parent::Gc | Parent::Root => Ok(0),
            Parent::Type(p) => match self.at_with(a, p) {
                None => Err(Some(p)),
                Some((d, Kind::Type)) => Ok(d + 1),
                // yrs deletes an item whose parent was deleted.
                Some((_, Kind::Deleted | Kind::Gc)) => Ok(0),
                Some((_, Kind::Content)) => Err(None),
            },
            Parent::Sibling { left, right } => {
                // yrs takes the left neighbour's parent, or the right's when
                // the left is garbage-collected; the deeper of the two can
                // only overstate the depth.
                let mut depth = 0;
                for id in [left, right].into_iter().flatten() {
                    match self.at_with(a, id) {
                        None => return Err(Some(id)),
                        Some((_, Kind::Gc)) => {}
                        Some((d, _)) => depth = depth.max(d),
                    }
                }
                Ok(depth)
            }
        }
    }
}
