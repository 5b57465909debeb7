//! Limits keyed by account rather than by client address (those are
//! `tower_governor` layers in `lib.rs`): failed sign-ins per account, which
//! lock the account for a growing while, and WebSocket connects per user.
//!
//! Both are per node and in memory. Behind a load balancer an attacker spread
//! over N nodes gets N times the attempts; the per-address limit and
//! Argon2's cost still bound the rate, and `docs/security.md` says so.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failed sign-ins of one account.
#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    /// Locks applied so far; each doubles the next one.
    locks: u32,
    locked_until: Option<Instant>,
    last: Instant,
}

/// Counts failed sign-ins per account (by normalised email, whether or not
/// the account exists, so that locking does not reveal which do).
pub struct LoginAttempts {
    max_failures: u32,
    lockout: Duration,
    by_account: Mutex<HashMap<String, Failures>>,
}

/// Failures older than this are forgotten.
const FAILURE_MEMORY: Duration = Duration::from_secs(15 * 60);
/// The longest lock, however many times an account was locked.
const MAX_LOCK: Duration = Duration::from_secs(60 * 60);

impl LoginAttempts {
    pub fn new(max_failures: u32, lockout: Duration) -> Self {
        LoginAttempts {
            max_failures: max_failures.max(1),
            lockout,
            by_account: Mutex::new(HashMap::new()),
        }
    }

    /// `Some(wait)` if the account is locked now.
    pub fn locked(&self, account: &str) -> Option<Duration> {
        let map = self.by_account.lock().unwrap_or_else(|e| e.into_inner());
        let until = map.get(account)?.locked_until?;
        until.checked_duration_since(Instant::now())
    }

    pub fn record_failure(&self, account: &str) {
        let now = Instant::now();
        let mut map = self.by_account.lock().unwrap_or_else(|e| e.into_inner());
        let f = map.entry(account.to_string()).or_insert(Failures {
            count: 0,
            locks: 0,
            locked_until: None,
            last: now,
        });
        if now.duration_since(f.last) > FAILURE_MEMORY {
            f.count = 0;
        }
        f.count += 1;
        f.last = now;
        if f.count >= self.max_failures {
            let lock = self
                .lockout
                .saturating_mul(1u32 << f.locks.min(16))
                .min(MAX_LOCK);
            f.locked_until = Some(now + lock);
            f.locks += 1;
            f.count = 0;
        }
    }

    pub fn record_success(&self, account: &str) {
        self.by_account
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(account);
    }

    /// Drops entries nobody has touched for a while.
    pub fn retain_recent(&self) {
        let now = Instant::now();
        self.by_account
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, f| {
                f.locked_until.is_some_and(|u| u > now)
                    || now.duration_since(f.last) < FAILURE_MEMORY
            });
    }
}

/// A token bucket per key: `burst` at once, then one per `period`.
pub struct KeyedBucket {
    burst: f64,
    period: Duration,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl KeyedBucket {
    pub fn new(burst: u32, period: Duration) -> Self {
        KeyedBucket {
            burst: f64::from(burst.max(1)),
            period: period.max(Duration::from_millis(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token; `false` if the key has none left.
    pub fn try_take(&self, key: &str) -> bool {
        let now = Instant::now();
        let mut map = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let (tokens, at) = map.entry(key.to_string()).or_insert((self.burst, now));
        let refill = now.duration_since(*at).as_secs_f64() / self.period.as_secs_f64();
        *tokens = (*tokens + refill).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }

    pub fn retain_recent(&self) {
        let now = Instant::now();
        let full_after = self.period.mul_f64(self.burst);
        self.buckets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, (_, at)| now.duration_since(*at) < full_after);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_lock_after_repeated_failures_and_unlock_on_success() {
        let a = LoginAttempts::new(3, Duration::from_secs(60));
        for _ in 0..2 {
            a.record_failure("ada@x");
        }
        assert!(a.locked("ada@x").is_none());
        a.record_failure("ada@x");
        assert!(a.locked("ada@x").is_some());
        assert!(a.locked("bob@x").is_none());
        a.record_success("ada@x");
        assert!(a.locked("ada@x").is_none());
    }

    #[test]
    fn buckets_allow_a_burst_then_refuse() {
        let b = KeyedBucket::new(3, Duration::from_secs(3600));
        assert!((0..3).all(|_| b.try_take("u")));
        assert!(!b.try_take("u"));
        assert!(b.try_take("v"));
    }
}
