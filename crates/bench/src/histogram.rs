//! A latency histogram of fixed size for runs too long to keep every sample:
//! log-linear buckets (HdrHistogram's layout: 128 linear sub-buckets per power
//! of two), so a percentile read from it is at most 1/128 (< 0.8 %) above the
//! exact one and never below it; the count, the mean and the maximum are
//! exact. Counters are atomic, so every client of a run can record into one
//! shared histogram from any thread; 35 KiB however many samples it holds.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::stats::Latency;

/// Linear sub-buckets per power of two: 2^7.
const SUB_BITS: u32 = 7;
const SUB: u64 = 1 << SUB_BITS;
/// Values from 2^40 ns (18 minutes) up share the last bucket; the maximum
/// stays exact.
const MAX_EXP: u32 = 40;
const BUCKETS: usize = ((MAX_EXP - SUB_BITS + 1) as usize) << SUB_BITS;

pub struct Histogram {
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    sum: AtomicU64,
    max: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram::new()
    }
}

impl Histogram {
    pub fn new() -> Histogram {
        Histogram {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0),
            max: AtomicU64::new(0),
        }
    }

    /// Records one sample, in nanoseconds.
    pub fn record(&self, nanos: u64) {
        self.buckets[index(nanos)].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(nanos, Ordering::Relaxed);
        self.max.fetch_max(nanos, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Adds `other`'s samples to this one's.
    pub fn merge(&self, other: &Histogram) {
        for (a, b) in self.buckets.iter().zip(other.buckets.iter()) {
            let n = b.load(Ordering::Relaxed);
            if n > 0 {
                a.fetch_add(n, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(other.count(), Ordering::Relaxed);
        self.sum
            .fetch_add(other.sum.load(Ordering::Relaxed), Ordering::Relaxed);
        self.max
            .fetch_max(other.max.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    /// Percentiles by nearest rank, as [`Latency::from_nanos`] computes them
    /// over every sample: each is the highest value its bucket can hold
    /// (capped at the exact maximum).
    pub fn latency(&self) -> Latency {
        let count = self.count();
        if count == 0 {
            return Latency::default();
        }
        let max = self.max.load(Ordering::Relaxed);
        let ms = |ns: u64| ns as f64 / 1e6;
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let at = |q: f64| {
            let rank = ((q * count as f64).ceil() as u64).clamp(1, count);
            let mut seen = 0;
            for (i, &n) in counts.iter().enumerate() {
                seen += n;
                if seen >= rank {
                    // The last bucket also holds everything above it.
                    let top = if i == BUCKETS - 1 { max } else { highest(i) };
                    return ms(top.min(max));
                }
            }
            ms(max)
        };
        Latency {
            count: count as usize,
            p50_ms: at(0.50),
            p99_ms: at(0.99),
            p999_ms: at(0.999),
            max_ms: ms(max),
            mean_ms: self.sum.load(Ordering::Relaxed) as f64 / count as f64 / 1e6,
        }
    }
}

/// The bucket of `v`: below 2^SUB_BITS one bucket per value; above, the
/// power of two and the SUB_BITS bits after the leading one.
fn index(v: u64) -> usize {
    if v < SUB {
        return v as usize;
    }
    let exp = (63 - v.leading_zeros()).min(MAX_EXP - 1);
    let shift = exp - SUB_BITS;
    let sub = (v >> shift).min(2 * SUB - 1) - SUB;
    (((shift + 1) as usize) << SUB_BITS) + sub as usize
}

/// The highest value bucket `i` holds.
fn highest(i: usize) -> u64 {
    let i = i as u64;
    if i < SUB {
        return i;
    }
    let shift = (i >> SUB_BITS) - 1;
    let sub = i & (SUB - 1);
    ((SUB + sub + 1) << shift) - 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_hold_their_values() {
        for v in (0..5000u64).chain([1 << 20, (1 << 20) + 12_345, 999_999_999, (1 << 40) - 1]) {
            let i = index(v);
            assert!(v <= highest(i), "{v} above its bucket {i}");
            assert!(
                i == 0 || v > highest(i - 1),
                "{v} belongs to bucket {}",
                i - 1
            );
        }
        assert_eq!(index(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn percentiles_are_the_exact_ones_within_a_bucket() {
        // 1 ms .. 1000 ms, as stats' nearest-rank test.
        let h = Histogram::new();
        let mut exact: Vec<u64> = (1..=1000).map(|i| i * 1_000_000).collect();
        for &v in &exact {
            h.record(v);
        }
        let got = h.latency();
        let want = Latency::from_nanos(&mut exact);
        for (g, w) in [
            (got.p50_ms, want.p50_ms),
            (got.p99_ms, want.p99_ms),
            (got.p999_ms, want.p999_ms),
        ] {
            assert!(g >= w && g <= w * (1.0 + 1.0 / 128.0), "{g} vs exact {w}");
        }
        assert_eq!(got.max_ms, 1000.0);
        assert_eq!(got.count, 1000);
        assert!((got.mean_ms - 500.5).abs() < 1e-9);
        assert_eq!(Histogram::new().latency().count, 0);
    }

    #[test]
    fn merged_histograms_read_as_one() {
        let (a, b, both) = (Histogram::new(), Histogram::new(), Histogram::new());
        for v in 0..10_000u64 {
            let ns = v * 7_919 % 50_000_000;
            (if v % 3 == 0 { &a } else { &b }).record(ns);
            both.record(ns);
        }
        let sum = Histogram::new();
        sum.merge(&a);
        sum.merge(&b);
        let (s, w) = (sum.latency(), both.latency());
        assert_eq!(
            (s.count, s.p50_ms, s.p99_ms, s.p999_ms, s.max_ms),
            (w.count, w.p50_ms, w.p99_ms, w.p999_ms, w.max_ms)
        );
    }
}
