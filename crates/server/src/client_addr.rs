//! Who a request comes from: the TCP peer, unless that peer is a proxy the
//! operator trusts (`--trusted-proxies`), in which case the client is read
//! from `X-Forwarded-For`.
//!
//! Anybody can write `X-Forwarded-For`, so the header is believed only as far
//! as trusted proxies wrote it: each proxy appends the address it received
//! the request from, so reading from the right, the first address that is
//! not itself a trusted proxy is the one the nearest untrusted party used.
//! Whatever a client put further left is its own claim and is ignored.
//!
//! The answer is a [`ClientAddr`] request extension, set by the accept loop
//! (`listener.rs`) and read by the per-address limits: the connection cap
//! behind a proxy and the sign-in rate limit ([`ClientKeyExtractor`]).

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Request};
use tower_governor::GovernorError;
use tower_governor::key_extractor::KeyExtractor;

/// The address a request is attributed to (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

/// An address block, `10.0.0.0/8` or `fd00::/8`; a bare address is a block of
/// one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is neither an IP address nor an address block like 10.0.0.0/8 or fd00::/8")]
pub struct BadCidr(String);

impl FromStr for Cidr {
    type Err = BadCidr;

    fn from_str(s: &str) -> Result<Self, BadCidr> {
        let bad = || BadCidr(s.to_string());
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let network = canonical(addr.parse::<IpAddr>().map_err(|_| bad())?);
        let bits = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= bits)
                .ok_or_else(bad)?,
            None => bits,
        };
        Ok(Cidr { network, prefix })
    }
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                same_prefix(u32::from(net).into(), u32::from(ip).into(), self.prefix, 32)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                same_prefix(u128::from(net), u128::from(ip), self.prefix, 128)
            }
            _ => false,
        }
    }
}

fn same_prefix(a: u128, b: u128, prefix: u8, bits: u32) -> bool {
    let host_bits = bits - u32::from(prefix);
    // A shift by the type's full width overflows: a /0 matches everything.
    (a ^ b).checked_shr(host_bits).unwrap_or(0) == 0
}

/// A dual-stack listener reports IPv4 clients as `::ffff:a.b.c.d`; they are
/// the same client as `a.b.c.d`, for the limits and for matching proxies.
pub fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// The proxies whose `X-Forwarded-For` is believed; none by default.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    pub fn new(blocks: Vec<Cidr>) -> Self {
        TrustedProxies(blocks)
    }

    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(ip))
    }

    /// The client behind `peer`: `peer` itself unless it is trusted, else the
    /// right-most `X-Forwarded-For` address that is not a trusted proxy. If
    /// every listed address is trusted, the left-most of them; if the header
    /// is missing, or an entry written by a trusted proxy is not an address
    /// (a misconfigured proxy), the nearest trusted hop, so that a client
    /// cannot make itself anonymous by writing nonsense.
    pub fn client_of(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return peer;
        }
        // Several X-Forwarded-For headers count as one list, in order.
        let values: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        let mut nearest_trusted = peer;
        for entry in values.iter().rev().flat_map(|v| v.rsplit(',')) {
            let Some(ip) = parse_forwarded(entry) else {
                return nearest_trusted;
            };
            if !self.trusts(ip) {
                return ip;
            }
            nearest_trusted = ip;
        }
        nearest_trusted
    }
}

/// One `X-Forwarded-For` entry: an address, possibly with a port
/// (`1.2.3.4:5678`, `[2001:db8::1]:443`).
fn parse_forwarded(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    entry
        .parse::<IpAddr>()
        .or_else(|_| entry.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()
        .map(canonical)
}

/// Keys `tower_governor`'s sign-in and sign-up limits by [`ClientAddr`], so
/// that behind a trusted proxy each client has its own budget (with the
/// peer address they would all share the proxy's) and elsewhere no header
/// buys a fresh one.
#[derive(Debug, Clone, Copy)]
pub struct ClientKeyExtractor;

impl KeyExtractor for ClientKeyExtractor {
    type Key = IpAddr;

    fn extract<T>(&self, req: &Request<T>) -> Result<IpAddr, GovernorError> {
        let ext = req.extensions();
        ext.get::<ClientAddr>()
            .map(|c| c.0)
            .or_else(|| {
                ext.get::<ConnectInfo<SocketAddr>>()
                    .map(|c| canonical(c.0.ip()))
            })
            .ok_or(GovernorError::UnableToExtractKey)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn proxies(list: &[&str]) -> TrustedProxies {
        TrustedProxies::new(list.iter().map(|s| s.parse().unwrap()).collect())
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    #[test]
    fn blocks_parse_and_match() {
        let c: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(c.contains(ip("10.255.1.2")));
        assert!(!c.contains(ip("11.0.0.1")));
        assert!(
            c.contains(ip("::ffff:10.0.0.1")),
            "v4-mapped is the same client"
        );
        let one: Cidr = "192.0.2.7".parse().unwrap();
        assert!(one.contains(ip("192.0.2.7")) && !one.contains(ip("192.0.2.8")));
        let v6: Cidr = "fd00::/8".parse().unwrap();
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        assert!(!v6.contains(ip("10.0.0.1")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.9")));
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "example.com",
            "10.0.0.0/x",
            "10.0.0/8",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn forwarded_for_is_ignored_from_an_untrusted_peer() {
        let p = proxies(&[]);
        assert_eq!(
            p.client_of(ip("198.51.100.1"), &xff(&["203.0.113.7"])),
            ip("198.51.100.1")
        );
        let p = proxies(&["10.0.0.1"]);
        assert_eq!(
            p.client_of(ip("10.0.0.2"), &xff(&["203.0.113.7"])),
            ip("10.0.0.2")
        );
    }

    #[test]
    fn behind_trusted_proxies_the_right_most_untrusted_address_is_the_client() {
        let p = proxies(&["127.0.0.1", "10.0.0.0/8"]);
        let peer = ip("127.0.0.1");
        // What the client wrote itself (left) does not count.
        assert_eq!(
            p.client_of(peer, &xff(&["1.1.1.1, 203.0.113.7"])),
            ip("203.0.113.7")
        );
        // Trusted hops are skipped, across several headers too.
        assert_eq!(
            p.client_of(peer, &xff(&["198.51.100.1, 10.0.0.5", "10.1.1.1"])),
            ip("198.51.100.1")
        );
        assert_eq!(
            p.client_of(peer, &xff(&["[2001:db8::1]:443", "203.0.113.8:5555"])),
            ip("203.0.113.8")
        );
        // No header: the proxy itself. Every hop trusted: the first.
        assert_eq!(p.client_of(peer, &HeaderMap::new()), peer);
        assert_eq!(
            p.client_of(peer, &xff(&["10.0.0.9, 10.0.0.5"])),
            ip("10.0.0.9")
        );
        // Nonsense where a trusted proxy should have written an address:
        // attributed to the nearest trusted hop, never to the nonsense.
        assert_eq!(p.client_of(peer, &xff(&["203.0.113.7, unknown"])), peer);
        assert_eq!(
            p.client_of(peer, &xff(&["203.0.113.7, garbage, 10.0.0.5"])),
            ip("10.0.0.5")
        );
    }
}
