//! How many connections this node holds, in all and per client address, and
//! whether it takes one more.
//!
//! Each accepted connection gets a [`Slot`] that travels with its socket
//! (through a WebSocket upgrade too) and gives the place back when the
//! socket is dropped, however that happens. No socket I/O here: the accept
//! loop (`listener.rs`) asks, then acts on the answer.
//!
//! The per-address cap counts TCP connections, except from trusted proxies
//! (one proxy carries many clients): there it counts requests in flight and
//! live WebSockets per forwarded client address ([`Connections::forwarded`]),
//! in the same table, so a client has one budget however it arrives.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::metrics;

/// Connections past `--max-connections` that are still read and answered
/// 503 (rather than closed at once), at most: enough that a crowd arriving
/// at a full node learns when to come back, few enough that answering them
/// costs nothing noticeable.
pub const SHED_BUDGET: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub max_per_address: usize,
    pub shed_budget: usize,
}

/// What to do with a new connection.
#[derive(Debug)]
pub enum Admission {
    Serve(Slot),
    /// The node is full: answer its request 503 with `Retry-After`, then close.
    Shed(Slot),
    /// Close at once, without reading anything.
    Refuse(Refusal),
}

/// Why a connection or request was turned away: the limit it hit, named as
/// in `quire_limit{name}` and `quire_http_refused_total{limit}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    MaxConnections,
    MaxConnectionsPerAddress,
}

impl Refusal {
    pub fn limit(self) -> &'static str {
        match self {
            Refusal::MaxConnections => "max_connections",
            Refusal::MaxConnectionsPerAddress => "max_connections_per_address",
        }
    }

    pub fn count(self) {
        ::metrics::counter!(metrics::HTTP_REFUSED_TOTAL, "limit" => self.limit()).increment(1);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Served,
    Shed,
    /// A forwarded client's request or WebSocket (no TCP connection of its own).
    Forwarded,
}

#[derive(Debug, Default)]
struct Counts {
    served: usize,
    shed: usize,
    by_address: HashMap<IpAddr, usize>,
}

#[derive(Debug)]
pub struct Connections {
    limits: ConnectionLimits,
    counts: Mutex<Counts>,
}

/// A place held in [`Connections`]; dropping it gives the place back.
#[derive(Debug)]
pub struct Slot {
    table: Arc<Connections>,
    address: Option<IpAddr>,
    kind: Kind,
}

impl Connections {
    pub fn new(limits: ConnectionLimits) -> Arc<Self> {
        Arc::new(Connections {
            limits,
            counts: Mutex::new(Counts::default()),
        })
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Decides about a connection from `peer`. `per_address` is false for a
    /// trusted proxy, whose clients are counted per request instead.
    pub fn admit(self: &Arc<Self>, peer: IpAddr, per_address: bool) -> Admission {
        let mut c = self.counts();
        let from_peer = c.by_address.get(&peer).copied().unwrap_or(0);
        if per_address && from_peer >= self.limits.max_per_address {
            return Admission::Refuse(Refusal::MaxConnectionsPerAddress);
        }
        let kind = if c.served < self.limits.max_connections {
            Kind::Served
        } else if c.shed < self.limits.shed_budget {
            Kind::Shed
        } else {
            return Admission::Refuse(Refusal::MaxConnections);
        };
        let address = per_address.then_some(peer);
        self.take(&mut c, address, kind);
        drop(c);
        let slot = Slot {
            table: self.clone(),
            address,
            kind,
        };
        match kind {
            Kind::Shed => Admission::Shed(slot),
            _ => Admission::Serve(slot),
        }
    }

    /// A place for one request or WebSocket of `client`, forwarded by a
    /// trusted proxy; `None` if that client is at its cap.
    pub fn forwarded(self: &Arc<Self>, client: IpAddr) -> Option<Slot> {
        let mut c = self.counts();
        if c.by_address.get(&client).copied().unwrap_or(0) >= self.limits.max_per_address {
            return None;
        }
        self.take(&mut c, Some(client), Kind::Forwarded);
        Some(Slot {
            table: self.clone(),
            address: Some(client),
            kind: Kind::Forwarded,
        })
    }

    fn take(&self, c: &mut Counts, address: Option<IpAddr>, kind: Kind) {
        if let Some(a) = address {
            *c.by_address.entry(a).or_insert(0) += 1;
        }
        match kind {
            Kind::Served => {
                c.served += 1;
                ::metrics::gauge!(metrics::HTTP_CONNECTIONS, "state" => "served").increment(1.0);
            }
            Kind::Shed => {
                c.shed += 1;
                ::metrics::gauge!(metrics::HTTP_CONNECTIONS, "state" => "shed").increment(1.0);
            }
            Kind::Forwarded => {}
        }
    }

    fn give_back(&self, address: Option<IpAddr>, kind: Kind) {
        let mut c = self.counts();
        if let Some(a) = address
            && let Some(n) = c.by_address.get_mut(&a)
        {
            *n -= 1;
            if *n == 0 {
                c.by_address.remove(&a);
            }
        }
        match kind {
            Kind::Served => {
                c.served -= 1;
                ::metrics::gauge!(metrics::HTTP_CONNECTIONS, "state" => "served").decrement(1.0);
            }
            Kind::Shed => {
                c.shed -= 1;
                ::metrics::gauge!(metrics::HTTP_CONNECTIONS, "state" => "shed").decrement(1.0);
            }
            Kind::Forwarded => {}
        }
    }

    /// Connections being served (not counting those being answered 503).
    pub fn open(&self) -> usize {
        self.counts().served
    }

    /// Connections (and forwarded requests and sockets) held for `address`.
    pub fn open_from(&self, address: IpAddr) -> usize {
        self.counts().by_address.get(&address).copied().unwrap_or(0)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.table.give_back(self.address, self.kind);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(
        max_connections: usize,
        max_per_address: usize,
        shed_budget: usize,
    ) -> Arc<Connections> {
        Connections::new(ConnectionLimits {
            max_connections,
            max_per_address,
            shed_budget,
        })
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn each_address_is_capped_and_its_places_come_back() {
        let t = table(100, 2, 0);
        let a = ip("192.0.2.1");
        let first = t.admit(a, true);
        let second = t.admit(a, true);
        assert!(matches!(first, Admission::Serve(_)) && matches!(second, Admission::Serve(_)));
        assert!(matches!(
            t.admit(a, true),
            Admission::Refuse(Refusal::MaxConnectionsPerAddress)
        ));
        assert!(matches!(
            t.admit(ip("192.0.2.2"), true),
            Admission::Serve(_)
        ));
        drop(first);
        assert_eq!(t.open_from(a), 1);
        assert!(matches!(t.admit(a, true), Admission::Serve(_)));
    }

    #[test]
    fn a_full_node_sheds_within_its_budget_then_refuses() {
        let t = table(1, 10, 1);
        let served = t.admit(ip("192.0.2.1"), true);
        assert!(matches!(served, Admission::Serve(_)));
        let shed = t.admit(ip("192.0.2.2"), true);
        assert!(matches!(shed, Admission::Shed(_)));
        assert!(matches!(
            t.admit(ip("192.0.2.3"), true),
            Admission::Refuse(Refusal::MaxConnections)
        ));
        assert_eq!(t.open(), 1);
        drop(served);
        assert!(matches!(
            t.admit(ip("192.0.2.3"), true),
            Admission::Serve(_)
        ));
    }

    #[test]
    fn proxies_are_not_capped_per_address_but_their_clients_are() {
        let t = table(100, 1, 0);
        let proxy = ip("10.0.0.1");
        let conns: Vec<_> = (0..3).map(|_| t.admit(proxy, false)).collect();
        assert!(conns.iter().all(|a| matches!(a, Admission::Serve(_))));
        assert_eq!(t.open_from(proxy), 0);
        let client = ip("203.0.113.7");
        let held = t.forwarded(client).expect("first request");
        assert!(t.forwarded(client).is_none());
        assert!(t.forwarded(ip("203.0.113.8")).is_some());
        drop(held);
        assert!(t.forwarded(client).is_some());
        assert_eq!(t.open(), 3);
    }
}
