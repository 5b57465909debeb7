//! Presence (awareness) of one document, held as raw JSON per client id.
//!
//! Awareness is untrusted input: a session may only set states for client ids
//! it owns (the first session to use an id owns it until it leaves), states are
//! size-capped, and everything a session owned is removed — and the removal
//! broadcast — when it leaves.

use std::collections::{HashMap, HashSet};

use quire_protocol::{AwarenessUpdate, encode_awareness_update};

use crate::Presence;
use crate::session::ConnId;

struct ClientState {
    clock: u64,
    /// JSON text; `None` once removed (the clock is kept so that an old
    /// update arriving late cannot resurrect the client).
    state: Option<String>,
    owner: Option<ConnId>,
}

#[derive(Default)]
pub(crate) struct Awareness {
    clients: HashMap<u64, ClientState>,
    owned: HashMap<ConnId, HashSet<u64>>,
}

/// Result of applying a session's awareness update.
pub(crate) struct Applied {
    /// The awareness payload to relay (`None`: nothing to relay).
    pub relay: Option<RelayPayload>,
    pub refused: usize,
}

pub(crate) enum RelayPayload {
    /// Every entry was accepted: relay the frame as received.
    Unchanged,
    /// Some entries were refused: relay this re-encoded update.
    Filtered(Vec<u8>),
}

impl Awareness {
    /// Applies an update from a local session (`Some(conn)`) or from another
    /// node (`None`, trusted: that node already checked it).
    pub fn apply(
        &mut self,
        from: Option<ConnId>,
        update: &AwarenessUpdate<'_>,
        max_state_bytes: usize,
        max_clients: usize,
    ) -> Applied {
        let mut accepted = Vec::with_capacity(update.entries.len());
        let mut refused = 0;
        for e in &update.entries {
            if let Some(conn) = from {
                if e.state.len() > max_state_bytes {
                    refused += 1;
                    continue;
                }
                let owner = self.clients.get(&e.client_id).and_then(|c| c.owner);
                match owner {
                    Some(o) if o != conn => {
                        refused += 1;
                        continue;
                    }
                    Some(_) => {}
                    None => {
                        let owned = self.owned.entry(conn).or_default();
                        if !owned.contains(&e.client_id) && owned.len() >= max_clients {
                            refused += 1;
                            continue;
                        }
                        owned.insert(e.client_id);
                    }
                }
            }
            let entry = self.clients.entry(e.client_id).or_insert(ClientState {
                clock: 0,
                state: None,
                owner: from,
            });
            if from.is_some() {
                entry.owner = from;
            }
            // Same rule as y-protocols: newer clocks win; an equal clock may
            // only remove.
            if e.clock > entry.clock
                || (e.clock == entry.clock && e.is_removal())
                || entry.clock == 0
            {
                entry.clock = e.clock;
                entry.state = (!e.is_removal()).then(|| e.state.to_string());
            }
            accepted.push((e.client_id, e.clock, e.state));
        }
        let relay = if accepted.is_empty() {
            None
        } else if refused == 0 {
            Some(RelayPayload::Unchanged)
        } else {
            Some(RelayPayload::Filtered(encode_awareness_update(
                accepted.into_iter(),
            )))
        };
        Applied { relay, refused }
    }

    /// Removes every state the session owned; returns the removal update to
    /// broadcast, if there was anything to remove.
    pub fn remove_session(&mut self, conn: ConnId) -> Option<Vec<u8>> {
        let owned = self.owned.remove(&conn)?;
        let mut removed = Vec::new();
        for id in owned {
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

    pub fn presence(&self) -> Vec<Presence> {
        #[derive(serde::Deserialize)]
        struct State {
            user: Option<User>,
        }
        #[derive(serde::Deserialize)]
        struct User {
            name: Option<String>,
            color: Option<String>,
        }
        let mut out: Vec<Presence> = self
            .clients
            .values()
            .filter_map(|c| c.state.as_deref())
            .filter_map(|s| serde_json::from_str::<State>(s).ok())
            .filter_map(|s| s.user)
            .filter_map(|u| {
                Some(Presence {
                    name: u.name?,
                    color: u.color,
                })
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(entries: &[(u64, u64, &str)]) -> Vec<u8> {
        encode_awareness_update(entries.iter().copied())
    }

    #[test]
    fn a_session_cannot_set_another_sessions_client() {
        let mut a = Awareness::default();
        let u = update(&[(7, 1, r#"{"user":{"name":"Ada"}}"#)]);
        let r = a.apply(Some(1), &AwarenessUpdate::decode(&u).unwrap(), 1024, 4);
        assert!(matches!(r.relay, Some(RelayPayload::Unchanged)));
        let spoof = update(&[(7, 2, r#"{"user":{"name":"Mallory"}}"#)]);
        let r = a.apply(Some(2), &AwarenessUpdate::decode(&spoof).unwrap(), 1024, 4);
        assert!(r.relay.is_none());
        assert_eq!(r.refused, 1);
        assert_eq!(a.presence()[0].name, "Ada");
    }

    #[test]
    fn oversized_states_and_too_many_ids_are_refused() {
        let mut a = Awareness::default();
        let big = format!("{{\"x\":\"{}\"}}", "a".repeat(100));
        let u = update(&[(1, 1, &big), (2, 1, "{}"), (3, 1, "{}"), (4, 1, "{}")]);
        let r = a.apply(Some(1), &AwarenessUpdate::decode(&u).unwrap(), 50, 2);
        assert_eq!(r.refused, 2);
        let Some(RelayPayload::Filtered(f)) = r.relay else {
            panic!()
        };
        assert_eq!(AwarenessUpdate::decode(&f).unwrap().entries.len(), 2);
    }

    #[test]
    fn leaving_removes_owned_states() {
        let mut a = Awareness::default();
        let u = update(&[(9, 3, r##"{"user":{"name":"Bo","color":"#123"}}"##)]);
        a.apply(Some(5), &AwarenessUpdate::decode(&u).unwrap(), 1024, 4);
        assert!(a.full_update().is_some());
        let removal = a.remove_session(5).unwrap();
        let dec = AwarenessUpdate::decode(&removal).unwrap();
        assert_eq!(dec.entries[0].client_id, 9);
        assert_eq!(dec.entries[0].clock, 4);
        assert!(dec.entries[0].is_removal());
        assert!(a.full_update().is_none());
        assert!(a.presence().is_empty());
    }
}
