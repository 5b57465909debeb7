//! Presence (awareness) of one document, held as raw JSON per client id.
//!
//! Awareness is untrusted input:
//! - a session may only set states for client ids it owns (the first session
//!   to use an id owns it until it leaves), and only so many;
//! - a state is size-capped, then must be a JSON object (or `null`, the
//!   removal y-protocols sends): a stock client's `JSON.parse` throws on
//!   anything else and loses every other state of the same frame;
//! - a session that runs for a signed-in account ([`Identity`]) cannot pass
//!   as anyone else: its states' `user` field is replaced by exactly
//!   `{"id","name","color"}` of the account, every other top-level field
//!   (the caret and selection y-tiptap puts there) kept as sent;
//! - everything a session owned is removed, and the removal broadcast, when
//!   it leaves; a client that comes back is relayed with a clock past that
//!   removal, so that it is seen at once.
//!
//! States from other nodes were bound by the node their session is on; only
//! the object check is repeated, since they go on to this node's clients.
//! What a state may be is [`state`]'s concern.

mod state;

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use quire_protocol::{AwarenessUpdate, encode_awareness_update};

use quire_types::UserId;

use self::state::{bind, user_json};
use crate::conn::ConnId;
use crate::{Identity, Presence};

struct ClientState {
    clock: u64,
    /// JSON text; `None` once removed (the clock is kept so that an old
    /// update arriving late cannot resurrect the client).
    state: Option<String>,
    owner: Option<ConnId>,
    /// The account the client id belongs to (`None`: not known, or a
    /// session without an identity). Once its socket is gone, only a socket
    /// of the same account may take the id again: stock clients send back
    /// every state they hear, and an echo of someone who just left must not
    /// take their id (the caret, now labelled with the echoing account)
    /// and shut them out when they come back.
    account: Option<UserId>,
    /// Its `user` field was bound to an account, here or by the node it came
    /// from; only such states are listed by [`Awareness::presence`].
    bound: bool,
}

/// What one local session has published.
struct SessionPresence {
    owned: HashSet<u64>,
    /// The account's `{"id","name","color"}` as JSON, computed once: what the
    /// `user` field of the session's states becomes. `None` for a session
    /// without an identity.
    user: Option<Box<str>>,
}

#[derive(Default)]
pub(crate) struct Awareness {
    clients: HashMap<u64, ClientState>,
    sessions: HashMap<ConnId, SessionPresence>,
}

/// Where an awareness update comes from.
#[derive(Clone, Copy)]
pub(crate) enum Source<'i> {
    /// A session on this node, with the account it runs for, if any (tests
    /// and the load generator join without one).
    Session {
        conn: ConnId,
        identity: Option<&'i Identity>,
    },
    /// Another node, which checked and bound its own sessions' states.
    Bus,
}

/// Result of applying an awareness update.
pub(crate) struct Applied {
    /// The awareness payload to relay (`None`: nothing to relay).
    pub relay: Option<RelayPayload>,
    pub refused: usize,
}

pub(crate) enum RelayPayload {
    /// Every entry was accepted as sent: relay the frame as received.
    Unchanged,
    /// Some entries were refused or rewritten: relay this re-encoded update.
    Filtered(Vec<u8>),
}

impl Awareness {
    /// Applies an update; see the module docs for what is refused or
    /// rewritten. `max_state_bytes` and `max_clients` apply to sessions.
    pub fn apply(
        &mut self,
        source: Source<'_>,
        update: &AwarenessUpdate<'_>,
        max_state_bytes: usize,
        max_clients: usize,
    ) -> Applied {
        let mut accepted: Vec<(u64, u64, Cow<'_, str>)> = Vec::with_capacity(update.entries.len());
        let mut refused = 0;
        // Entries left out or changed: the frame cannot be relayed as is.
        let mut rewritten = false;
        let (from, bound) = match source {
            Source::Session { conn, identity } => (Some(conn), identity.is_some()),
            Source::Bus => (None, true),
        };
        for e in &update.entries {
            let mut clock = e.clock;
            let mut bus_account = None;
            let state = match source {
                Source::Session { conn, identity } => {
                    if e.state.len() > max_state_bytes {
                        refused += 1;
                        continue;
                    }
                    let known = self.clients.get(&e.client_id);
                    let owner = known.and_then(|c| c.owner);
                    if owner.is_some_and(|o| o != conn) {
                        refused += 1;
                        continue;
                    }
                    if owner.is_none() && e.is_removal() {
                        // A stock client sends back every change it hears,
                        // removals too: an echo, which nobody needs and
                        // which must not make its session the owner.
                        rewritten = true;
                        continue;
                    }
                    let account = identity.map(|i| &i.user);
                    if known.is_some_and(|c| owner.is_none() && c.account.as_ref() != account) {
                        refused += 1;
                        continue;
                    }
                    if let Some(c) = known
                        && owner.is_none()
                        && c.state.is_none()
                        && clock <= c.clock
                    {
                        // The client is back (a reconnect, a rename, another
                        // node) with the clock it had when its session left,
                        // but the removal sent then carried a newer one:
                        // y-protocols would ignore it until its renewals
                        // outgrow that. Relayed a step past the removal, it
                        // is seen at once (the sender adopts the clock).
                        clock = c.clock + 1;
                    }
                    let session = self
                        .sessions
                        .entry(conn)
                        .or_insert_with(|| SessionPresence::new(identity));
                    if owner.is_none()
                        && !session.owned.contains(&e.client_id)
                        && session.owned.len() >= max_clients
                    {
                        refused += 1;
                        continue;
                    }
                    let Some(state) = bind(e.state, session.user.as_deref()) else {
                        refused += 1;
                        continue;
                    };
                    session.owned.insert(e.client_id);
                    state
                }
                Source::Bus => {
                    if !e.is_removal() {
                        let Some(bound_to) = state::account(e.state) else {
                            refused += 1;
                            continue;
                        };
                        bus_account = bound_to;
                    }
                    Cow::Borrowed(e.state)
                }
            };
            rewritten |= matches!(state, Cow::Owned(_)) || clock != e.clock;
            let entry = self.clients.entry(e.client_id).or_insert(ClientState {
                clock: 0,
                state: None,
                owner: None,
                account: None,
                bound,
            });
            if let Source::Session { identity, .. } = source
                && entry.owner != from
            {
                entry.owner = from;
                entry.account = identity.map(|i| i.user.clone());
            }
            // Same rule as y-protocols: newer clocks win; an equal clock may
            // only remove.
            if clock > entry.clock || (clock == entry.clock && e.is_removal()) || entry.clock == 0 {
                entry.clock = clock;
                entry.state = (!e.is_removal()).then(|| state.to_string());
                entry.bound = bound;
                if let Source::Bus = source
                    && !e.is_removal()
                {
                    entry.account = bus_account.take();
                }
            }
            accepted.push((e.client_id, clock, state));
        }
        let relay = if accepted.is_empty() {
            None
        } else if refused == 0 && !rewritten {
            Some(RelayPayload::Unchanged)
        } else {
            Some(RelayPayload::Filtered(encode_awareness_update(
                accepted.iter().map(|(id, clock, s)| (*id, *clock, &**s)),
            )))
        };
        Applied { relay, refused }
    }

    /// Removes every state the session owned; returns the removal update to
    /// broadcast, if there was anything to remove.
    pub fn remove_session(&mut self, conn: ConnId) -> Option<Vec<u8>> {
        let session = self.sessions.remove(&conn)?;
        let mut removed = Vec::new();
        for id in session.owned {
            if let Some(c) = self.clients.get_mut(&id) {
                c.owner = None;
                if c.state.take().is_some() {
                    c.clock += 1;
                    removed.push((id, c.clock));
                }
            }
        }
        if removed.is_empty() {
            return None;
        }
        Some(encode_awareness_update(
            removed.into_iter().map(|(id, clock)| (id, clock, "null")),
        ))
    }

    /// Every present client's state, for a joining session or a query.
    pub fn full_update(&self) -> Option<Vec<u8>> {
        let present: Vec<_> = self
            .clients
            .iter()
            .filter_map(|(id, c)| c.state.as_deref().map(|s| (*id, c.clock, s)))
            .collect();
        if present.is_empty() {
            return None;
        }
        Some(encode_awareness_update(present.into_iter()))
    }

    /// The accounts present, one entry per account (two tabs are one
    /// person), by name. Only bound states count: a session without an
    /// identity could name anyone.
    pub fn presence(&self) -> Vec<Presence> {
        #[derive(serde::Deserialize)]
        struct State {
            user: Option<Presence>,
        }
        let mut out: Vec<Presence> = self
            .clients
            .values()
            .filter(|c| c.bound)
            .filter_map(|c| c.state.as_deref())
            .filter_map(|s| serde_json::from_str::<State>(s).ok()?.user)
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out.dedup_by(|a, b| a.id == b.id);
        out.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.id.cmp(&b.id)));
        out
    }
}

impl SessionPresence {
    fn new(identity: Option<&Identity>) -> Self {
        SessionPresence {
            owned: HashSet::new(),
            user: identity.map(user_json),
        }
    }
}

#[cfg(test)]
mod tests {
    use quire_types::UserId;

    use super::*;

    fn update(entries: &[(u64, u64, &str)]) -> Vec<u8> {
        encode_awareness_update(entries.iter().copied())
    }

    fn alice() -> Identity {
        Identity {
            user: UserId("u-alice".into()),
            name: "Alice".into(),
            color: "#e6194b".into(),
        }
    }

    fn session(conn: ConnId, identity: Option<&Identity>) -> Source<'_> {
        Source::Session { conn, identity }
    }

    fn apply(a: &mut Awareness, source: Source<'_>, entries: &[(u64, u64, &str)]) -> Applied {
        let u = update(entries);
        a.apply(source, &AwarenessUpdate::decode(&u).unwrap(), 1024, 4)
    }

    /// The states a relay carries, as `(client id, JSON value)`.
    fn relayed(applied: &Applied, sent: &[(u64, u64, &str)]) -> Vec<(u64, serde_json::Value)> {
        let bytes = match applied.relay.as_ref().expect("something relayed") {
            RelayPayload::Unchanged => update(sent),
            RelayPayload::Filtered(v) => v.clone(),
        };
        AwarenessUpdate::decode(&bytes)
            .unwrap()
            .entries
            .iter()
            .map(|e| (e.client_id, serde_json::from_str(e.state).unwrap()))
            .collect()
    }

    #[test]
    fn a_session_cannot_set_another_sessions_client() {
        let mut a = Awareness::default();
        let r = apply(
            &mut a,
            session(1, None),
            &[(7, 1, r#"{"user":{"name":"Ada"}}"#)],
        );
        assert!(matches!(r.relay, Some(RelayPayload::Unchanged)));
        let r = apply(
            &mut a,
            session(2, None),
            &[(7, 2, r#"{"user":{"name":"Mallory"}}"#)],
        );
        assert!(r.relay.is_none());
        assert_eq!(r.refused, 1);
        assert!(a.full_update().unwrap().windows(3).any(|w| w == b"Ada"));
    }

    #[test]
    fn oversized_states_and_too_many_ids_are_refused() {
        let mut a = Awareness::default();
        let big = format!("{{\"x\":\"{}\"}}", "a".repeat(100));
        let u = update(&[(1, 1, &big), (2, 1, "{}"), (3, 1, "{}"), (4, 1, "{}")]);
        let r = a.apply(
            session(1, None),
            &AwarenessUpdate::decode(&u).unwrap(),
            50,
            2,
        );
        assert_eq!(r.refused, 2);
        let Some(RelayPayload::Filtered(f)) = r.relay else {
            panic!()
        };
        assert_eq!(AwarenessUpdate::decode(&f).unwrap().entries.len(), 2);
    }

    #[test]
    fn leaving_removes_owned_states() {
        let mut a = Awareness::default();
        let me = alice();
        apply(
            &mut a,
            session(5, Some(&me)),
            &[(9, 3, r#"{"user":{"name":"Bo"}}"#)],
        );
        assert!(a.full_update().is_some());
        assert_eq!(a.presence().len(), 1);
        let removal = a.remove_session(5).unwrap();
        let dec = AwarenessUpdate::decode(&removal).unwrap();
        assert_eq!(dec.entries[0].client_id, 9);
        assert_eq!(dec.entries[0].clock, 4);
        assert!(dec.entries[0].is_removal());
        assert!(a.full_update().is_none());
        assert!(a.presence().is_empty());
    }

    #[test]
    fn an_echoed_removal_claims_nothing_and_a_returning_client_is_seen_at_once() {
        let mut a = Awareness::default();
        let me = alice();
        apply(&mut a, session(1, Some(&me)), &[(9, 3, "{}")]);
        let removal = a.remove_session(1).unwrap();
        assert_eq!(
            AwarenessUpdate::decode(&removal).unwrap().entries[0].clock,
            4
        );
        // Another stock client sends back the removal it heard, and the
        // state before it: neither may take the id.
        let bob = Identity {
            user: UserId("u-bob".into()),
            name: "Bob".into(),
            color: "#3cb44b".into(),
        };
        let r = apply(&mut a, session(2, Some(&bob)), &[(9, 4, "null")]);
        assert!(r.relay.is_none());
        assert_eq!(r.refused, 0, "an echo is not an attack");
        let r = apply(&mut a, session(2, Some(&bob)), &[(9, 3, "{}")]);
        assert!(r.relay.is_none());
        assert!(a.presence().is_empty());
        // The client reconnects (session 3) with the clock it had.
        let sent = [(9, 3, "{}")];
        let r = apply(&mut a, session(3, Some(&me)), &sent);
        let Some(RelayPayload::Filtered(f)) = &r.relay else {
            panic!("relayed with a new clock")
        };
        let entry = &AwarenessUpdate::decode(f).unwrap().entries[0];
        assert_eq!((entry.client_id, entry.clock), (9, 5));
        assert_eq!(a.presence().len(), 1);
        // From then on its own clocks count again.
        let r = apply(&mut a, session(3, Some(&me)), &[(9, 6, "{}")]);
        assert_eq!(r.refused, 0);
        let full = a.full_update().unwrap();
        assert_eq!(AwarenessUpdate::decode(&full).unwrap().entries[0].clock, 6);
        // An echoed removal is not relayed beside a state of the echoing
        // session's own either.
        let own = r##"{"user":{"id":"u-bob","name":"Bob","color":"#3cb44b"}}"##;
        let sent = [(77, 1, "null"), (10, 1, own)];
        let r = apply(&mut a, session(2, Some(&bob)), &sent);
        let ids: Vec<u64> = relayed(&r, &sent).iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, [10]);
    }

    #[test]
    fn a_client_id_seen_from_another_node_is_taken_only_by_its_own_account() {
        let mut a = Awareness::default();
        let bob_state = r##"{"user":{"id":"u-bob","name":"Bob","color":"#3cb44b"}}"##;
        a.apply(
            Source::Bus,
            &AwarenessUpdate::decode(&update(&[(20, 1, bob_state)])).unwrap(),
            1024,
            1,
        );
        let me = alice();
        let r = apply(&mut a, session(1, Some(&me)), &[(20, 2, "{}")]);
        assert_eq!(r.refused, 1, "Alice's echo of Bob");
        let bob = Identity {
            user: UserId("u-bob".into()),
            name: "Bob".into(),
            color: "#3cb44b".into(),
        };
        let r = apply(&mut a, session(2, Some(&bob)), &[(20, 2, "{}")]);
        assert_eq!(r.refused, 0, "Bob's tab, moved to this node");
        assert_eq!(a.presence()[0].name, "Bob");
    }

    #[test]
    fn a_spoofed_user_becomes_the_account_and_other_fields_are_kept() {
        let mut a = Awareness::default();
        let me = alice();
        let sent = [
            (
                1,
                1,
                r##"{"user":{"name":"Bob (owner)","color":"#000000","id":"u-bob"},"cursor":{"anchor":{"x":[1,{"y":null}]},"head":2},"a\"b":true}"##,
            ),
            (2, 1, r#"{"cursor":null}"#),
            (
                3,
                1,
                r##"{"user":1,"user":{"id":"u-alice","name":"Alice","color":"#e6194b"}}"##,
            ),
        ];
        let r = apply(&mut a, session(1, Some(&me)), &sent);
        assert_eq!(r.refused, 0);
        assert!(matches!(r.relay, Some(RelayPayload::Filtered(_))));
        let user = serde_json::json!({"id": "u-alice", "name": "Alice", "color": "#e6194b"});
        assert_eq!(
            relayed(&r, &sent),
            vec![
                (
                    1,
                    serde_json::json!({"user": user, "cursor": {"anchor": {"x": [1, {"y": null}]}, "head": 2}, "a\"b": true})
                ),
                (2, serde_json::json!({"user": user, "cursor": null})),
                (3, serde_json::json!({"user": user})),
            ]
        );
        // What a joiner gets is the rewritten state too.
        let full = a.full_update().unwrap();
        for e in AwarenessUpdate::decode(&full).unwrap().entries {
            let v: serde_json::Value = serde_json::from_str(e.state).unwrap();
            assert_eq!(v["user"], user);
        }
        let p = a.presence();
        assert_eq!(p.len(), 1, "three tabs of one account are one person");
        assert_eq!(
            (p[0].id.as_str(), p[0].name.as_str(), p[0].color.as_str()),
            ("u-alice", "Alice", "#e6194b")
        );
    }

    #[test]
    fn a_state_already_naming_the_account_is_relayed_as_received() {
        let mut a = Awareness::default();
        let me = alice();
        let state =
            r##"{"user":{"id":"u-alice","name":"Alice","color":"#e6194b"},"cursor":{"anchor":1}}"##;
        let r = apply(
            &mut a,
            session(1, Some(&me)),
            &[(1, 1, state), (1, 2, "null")],
        );
        assert!(matches!(r.relay, Some(RelayPayload::Unchanged)));
        assert_eq!(r.refused, 0);
    }

    #[test]
    fn states_that_are_not_json_objects_are_refused_and_the_rest_relayed() {
        let me = alice();
        for identity in [None, Some(&me)] {
            let mut a = Awareness::default();
            let deep = format!("{{\"x\":{}1{}}}", "[".repeat(200), "]".repeat(200));
            let sent = [
                (1, 1, "not json"),
                (2, 1, "[1,2]"),
                (3, 1, "\"a string\""),
                (4, 1, "{\"a\":1} trailing"),
                (
                    5,
                    1,
                    r##"{"user":{"id":"u-alice","name":"Alice","color":"#e6194b"}}"##,
                ),
                (6, 1, "{\"ok\":\"[{\"}"),
                (5, 2, "null"),
                (8, 1, deep.as_str()),
            ];
            let r = a.apply(
                session(1, identity),
                &AwarenessUpdate::decode(&update(&sent)).unwrap(),
                1024,
                100,
            );
            assert_eq!(r.refused, 5, "{identity:?}");
            let ids: Vec<u64> = relayed(&r, &sent).iter().map(|(id, _)| *id).collect();
            assert_eq!(ids, [5, 6, 5], "{identity:?}");
            // A refused entry claims no client id: another session may use it.
            let r = apply(&mut a, session(2, None), &[(1, 2, "{}")]);
            assert_eq!(r.refused, 0);
        }
    }

    #[test]
    fn states_from_other_nodes_are_kept_as_bound_there_but_must_be_objects() {
        let mut a = Awareness::default();
        let bob = r##"{"user":{"id":"u-bob","name":"Bob","color":"#3cb44b"}}"##;
        let sent = [(1, 1, bob), (2, 1, "[]"), (3, 1, "null"), (4, 1, "{")];
        let r = a.apply(
            Source::Bus,
            &AwarenessUpdate::decode(&update(&sent)).unwrap(),
            1024,
            1,
        );
        assert_eq!(r.refused, 2);
        let ids: Vec<u64> = relayed(&r, &sent).iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, [1, 3]);
        assert_eq!(a.presence()[0].name, "Bob");
    }

    #[test]
    fn unbound_states_are_relayed_but_not_listed_as_present() {
        let mut a = Awareness::default();
        let forged = r##"{"user":{"id":"u-alice","name":"Alice","color":"#e6194b"}}"##;
        let r = apply(&mut a, session(1, None), &[(1, 1, forged)]);
        assert!(matches!(r.relay, Some(RelayPayload::Unchanged)));
        assert!(a.presence().is_empty());
    }
}
