//! The soak's report: each interval's figures from the shared histograms and
//! the controller's readings, the verdict helper, the JSON line and the
//! tables.

use std::sync::atomic::Ordering;

use serde::Serialize;
use serde_json::json;

use super::{Interval, IntervalSamples, Intervals, Reading, SoakArgs, SoakOutcome, interval_end};
use crate::fanout::engine::Finished;
use crate::histogram::Histogram;
use crate::stats::{self, Latency, PhaseUsage};

/// The RSS readings the verdict looks at, and when they are flat.
pub const RSS_FLAT_RULE: &str = "the server's RSS at the start and end of each of the last three intervals (4 readings): max − min ≤ max(5 % of min, 4 MiB)";
const RSS_FLAT_SHARE: f64 = 0.05;
const RSS_FLAT_FLOOR_KIB: u64 = 4 * 1024;

/// One interval as reported.
#[derive(Debug, Clone, Serialize)]
pub struct IntervalReport {
    /// 1-based.
    pub index: usize,
    /// Seconds since typing started.
    pub start_s: f64,
    pub end_s: f64,
    pub delivered: u64,
    pub delivered_per_sec: f64,
    /// From each keystroke's scheduled send: the headline.
    pub latency_from_schedule: Latency,
    /// From its actual send.
    pub latency: Latency,
    pub send_lag: Latency,
    pub ack_latency: Option<Latency>,
    /// Keystrokes due in the interval, the deliveries they owe, and those
    /// that never arrived.
    pub sent: u64,
    pub expected: u64,
    pub lost: u64,
    /// At the interval's end.
    pub server_rss_kib: Option<u64>,
    /// Over the interval, in percent of one core.
    pub server_cpu_percent: Option<f64>,
    pub generator_rss_kib: u64,
    pub generator_cpu_percent: f64,
    pub machine_cpu_stall_percent: Option<f64>,
    /// Compactions the server counted during the interval (Quire only).
    pub compactions: Option<u64>,
}

/// Whether the run held steady; the figures to judge it by.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub rss_rule: &'static str,
    pub rss_last_mib: Vec<f64>,
    pub rss_spread_mib: Option<f64>,
    pub rss_tolerance_mib: Option<f64>,
    /// `None` without `--server-pid`, with fewer than three intervals, or
    /// when a reading is missing.
    pub rss_flat: Option<bool>,
    /// p99.9 from schedule of each interval, and the worst of them.
    pub p999_ms_per_interval: Vec<f64>,
    pub p999_ms_worst_interval: f64,
}

/// The whole run, as the controller ends it.
pub(super) struct Summary {
    pub fin: Finished<IntervalSamples>,
    pub connect_s: f64,
    pub usage: Option<PhaseUsage>,
    /// The server's RSS when typing started.
    pub rss_start_kib: Option<u64>,
    pub compactions_before: Option<f64>,
}

pub(super) fn report(
    args: &SoakArgs,
    intervals: &Intervals,
    readings: &[Reading],
    s: Summary,
) -> SoakOutcome {
    let f = &args.fanout;
    let receivers = f.clients as u64 - 1;
    let mut reports = Vec::with_capacity(intervals.slots.len());
    let mut previous = s.compactions_before;
    for (i, (slot, reading)) in intervals.slots.iter().zip(readings).enumerate() {
        let start_s = i as f64 * args.interval_secs;
        let end_s = interval_end(i, args.interval_secs, f.duration);
        let delivered = slot.received.load(Ordering::Relaxed);
        let sent = slot.sent.load(Ordering::Relaxed);
        let server = reading.usage.and_then(|u| u.server);
        reports.push(IntervalReport {
            index: i + 1,
            start_s,
            end_s,
            delivered,
            delivered_per_sec: delivered as f64 / (end_s - start_s).max(1e-9),
            latency_from_schedule: slot.from_schedule.latency(),
            latency: slot.from_send.latency(),
            send_lag: slot.send_lag.latency(),
            ack_latency: (slot.ack.count() > 0).then(|| slot.ack.latency()),
            sent,
            expected: sent * receivers,
            lost: (sent * receivers).saturating_sub(slot.delivered_of_sent.load(Ordering::Relaxed)),
            server_rss_kib: server.map(|u| u.rss_after_kib),
            server_cpu_percent: server.map(|u| u.cpu_percent),
            generator_rss_kib: reading.usage.map_or(0, |u| u.generator.rss_after_kib),
            generator_cpu_percent: reading.usage.map_or(0.0, |u| u.generator.cpu_percent),
            machine_cpu_stall_percent: reading.usage.and_then(|u| u.machine_cpu_stall_percent),
            compactions: counted(previous, reading.compactions),
        });
        previous = reading.compactions.or(previous);
    }
    let verdict = verdict(s.rss_start_kib, &reports);

    let whole = |pick: fn(&Interval) -> &Histogram| {
        let h = Histogram::new();
        for slot in &intervals.slots {
            h.merge(pick(slot));
        }
        h.latency()
    };
    let latency_from_schedule = whole(|i| &i.from_schedule);
    let latency = whole(|i| &i.from_send);
    let send_lag = whole(|i| &i.send_lag);
    let ack_latency = Some(whole(|i| &i.ack)).filter(|l| l.count > 0);
    let compactions = counted(
        s.compactions_before,
        readings.iter().rev().find_map(|r| r.compactions),
    );
    let fin = &s.fin;
    let offered = f.rate * (f.docs * f.writers) as f64 * receivers as f64;
    let ok = fin.lost == 0 && fin.diverged_docs.is_empty() && fin.closed.is_empty();
    let json = json!({
        "scenario": "soak",
        "url": f.target.url,
        "docs": f.docs,
        "clients": f.clients,
        "writers": f.writers,
        "rate": f.rate,
        "duration_s": f.duration,
        "interval_s": args.interval_secs,
        "replicas": args.replicas,
        "connect_s": s.connect_s,
        "sent": fin.sent,
        "expected_deliveries": fin.expected,
        "delivered": fin.delivered,
        "duplicates": fin.duplicates,
        "reordered": fin.reordered,
        "unattributed": fin.unattributed,
        "lost": fin.lost,
        "offered_deliveries_per_sec": offered,
        "delivered_per_sec": fin.delivered as f64 / fin.span_s,
        "latency": latency,
        "latency_from_schedule": latency_from_schedule,
        "ack_latency": ack_latency,
        "send_lag": send_lag,
        "closed": fin.closed,
        "converged": fin.diverged_docs.is_empty(),
        "diverged_docs": fin.diverged_docs,
        "server_checked": !f.skip_server_check,
        "compactions": compactions,
        "usage": s.usage,
        "intervals": reports,
        "verdict": verdict,
        "ok": ok,
    });

    let mut rows = vec![
        (
            "scenario".to_string(),
            format!(
                "soak {} docs × {} clients, {} writers/doc at {} keys/s, {} s in intervals of {} s",
                f.docs, f.clients, f.writers, f.rate, f.duration, args.interval_secs
            ),
        ),
        (
            "delivered".into(),
            format!(
                "{} of {} ({:.0}/s, offered {offered:.0}/s), lost {}",
                fin.delivered,
                fin.expected,
                fin.delivered as f64 / fin.span_s,
                fin.lost
            ),
        ),
        (
            "latency from schedule".into(),
            stats::fmt_latency(&latency_from_schedule),
        ),
        ("  from send".into(), stats::fmt_latency(&latency)),
    ];
    if let Some(a) = &ack_latency {
        rows.push(("ack latency".into(), stats::fmt_latency(a)));
    }
    rows.push(("generator send lag".into(), stats::fmt_latency(&send_lag)));
    rows.push((
        "per interval".into(),
        format!(
            "{:>7} {:>9} {:>7} {:>7} {:>8} {:>8} {:>8} {:>6} {:>8} {:>6} {:>8} {:>7}",
            "end s",
            "deliv/s",
            "p50 ms",
            "p99 ms",
            "p99.9 ms",
            "max ms",
            "lag p99",
            "lost",
            "srv MiB",
            "srv %",
            "gen MiB",
            "compact"
        ),
    ));
    for r in &reports {
        rows.push((format!("  {}", r.index), fmt_interval(r)));
    }
    rows.push(("RSS flat".into(), fmt_verdict(&verdict)));
    rows.push((
        "compactions".into(),
        compactions.map_or_else(
            || "— (the server has no quire_compactions_total)".into(),
            |c| c.to_string(),
        ),
    ));
    rows.push((
        "converged".into(),
        if fin.diverged_docs.is_empty() {
            format!("yes ({} docs)", f.docs)
        } else {
            format!("NO: docs {:?}", fin.diverged_docs)
        },
    ));
    if !fin.closed.is_empty() {
        rows.push((
            "sockets closed".into(),
            fin.closed
                .iter()
                .map(|c| format!("{}× {}", c.count, c.code))
                .collect::<Vec<_>>()
                .join("; "),
        ));
    }
    if let Some(u) = &s.usage {
        stats::fmt_usage(&mut rows, u);
    }
    SoakOutcome { json, rows, ok }
}

/// Compactions between two readings of the counter.
fn counted(before: Option<f64>, after: Option<f64>) -> Option<u64> {
    match (before, after) {
        (Some(a), Some(b)) => Some((b - a).max(0.0) as u64),
        _ => None,
    }
}

/// The RSS verdict over the last three intervals and the p99.9s.
fn verdict(rss_start_kib: Option<u64>, reports: &[IntervalReport]) -> Verdict {
    let p999: Vec<f64> = reports
        .iter()
        .map(|r| r.latency_from_schedule.p999_ms)
        .collect();
    let worst = p999.iter().copied().fold(0.0, f64::max);
    // Readings when typing started, then at each interval's end.
    let readings: Vec<Option<u64>> = std::iter::once(rss_start_kib)
        .chain(reports.iter().map(|r| r.server_rss_kib))
        .collect();
    let last: Option<Vec<u64>> = (reports.len() >= 3)
        .then(|| readings[readings.len() - 4..].iter().copied().collect())
        .flatten();
    let (spread, tolerance, flat) = match &last {
        Some(v) => {
            let lo = v.iter().min().copied().unwrap_or(0);
            let hi = v.iter().max().copied().unwrap_or(0);
            let tolerance = ((lo as f64 * RSS_FLAT_SHARE) as u64).max(RSS_FLAT_FLOOR_KIB);
            (Some(hi - lo), Some(tolerance), Some(hi - lo <= tolerance))
        }
        None => (None, None, None),
    };
    let mib = |kib: u64| kib as f64 / 1024.0;
    Verdict {
        rss_rule: RSS_FLAT_RULE,
        rss_last_mib: last.unwrap_or_default().into_iter().map(mib).collect(),
        rss_spread_mib: spread.map(mib),
        rss_tolerance_mib: tolerance.map(mib),
        rss_flat: flat,
        p999_ms_per_interval: p999,
        p999_ms_worst_interval: worst,
    }
}

fn fmt_verdict(v: &Verdict) -> String {
    match (v.rss_flat, v.rss_spread_mib, v.rss_tolerance_mib) {
        (Some(flat), Some(spread), Some(tol)) => format!(
            "{} over the last three intervals: {} MiB, spread {spread:.1} MiB (tolerance {tol:.1} MiB)",
            if flat { "yes" } else { "NO" },
            v.rss_last_mib
                .iter()
                .map(|m| format!("{m:.1}"))
                .collect::<Vec<_>>()
                .join(" → ")
        ),
        _ => "— (needs --server-pid and at least three intervals)".into(),
    }
}

fn fmt_interval(r: &IntervalReport) -> String {
    let l = &r.latency_from_schedule;
    let mib = |kib: Option<u64>| kib.map_or("—".into(), |k| format!("{:.1}", k as f64 / 1024.0));
    format!(
        "{:>7.0} {:>9.0} {:>7.3} {:>7.3} {:>8.3} {:>8.3} {:>8.3} {:>6} {:>8} {:>6} {:>8} {:>7}",
        r.end_s,
        r.delivered_per_sec,
        l.p50_ms,
        l.p99_ms,
        l.p999_ms,
        l.max_ms,
        r.send_lag.p99_ms,
        r.lost,
        mib(r.server_rss_kib),
        r.server_cpu_percent
            .map_or("—".into(), |c| format!("{c:.0}")),
        mib(Some(r.generator_rss_kib)),
        r.compactions.map_or("—".into(), |c| c.to_string()),
    )
}

/// The line printed as interval `i` of `n` ends, `end` seconds into the
/// run (its losses are known only after the drain).
pub(super) fn fmt_progress(
    i: usize,
    n: usize,
    end: f64,
    slot: &Interval,
    reading: &Reading,
    compactions_before: Option<f64>,
    args: &SoakArgs,
) -> String {
    let start = i as f64 * args.interval_secs;
    let l = slot.from_schedule.latency();
    let server = reading.usage.and_then(|u| u.server);
    let compactions = counted(compactions_before, reading.compactions)
        .map_or(String::new(), |c| format!(", {c} compactions"));
    format!(
        "interval {}/{n} ({end:.0} s): {:.0} delivered/s, from schedule p50 {:.3} · p99 {:.3} · p99.9 {:.3} · max {:.3} ms, send lag p99 {:.3} ms{}{compactions}",
        i + 1,
        slot.received.load(Ordering::Relaxed) as f64 / (end - start).max(1e-9),
        l.p50_ms,
        l.p99_ms,
        l.p999_ms,
        l.max_ms,
        slot.send_lag.latency().p99_ms,
        server.map_or(String::new(), |s| format!(
            ", server RSS {:.1} MiB, CPU {:.0} %",
            s.rss_after_kib as f64 / 1024.0,
            s.cpu_percent
        )),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at_rss(rss_mib: &[f64]) -> Vec<IntervalReport> {
        rss_mib
            .iter()
            .enumerate()
            .map(|(i, &m)| IntervalReport {
                index: i + 1,
                start_s: 0.0,
                end_s: 0.0,
                delivered: 0,
                delivered_per_sec: 0.0,
                latency_from_schedule: Latency {
                    p999_ms: i as f64,
                    ..Latency::default()
                },
                latency: Latency::default(),
                send_lag: Latency::default(),
                ack_latency: None,
                sent: 0,
                expected: 0,
                lost: 0,
                server_rss_kib: Some((m * 1024.0) as u64),
                server_cpu_percent: None,
                generator_rss_kib: 0,
                generator_cpu_percent: 0.0,
                machine_cpu_stall_percent: None,
                compactions: None,
            })
            .collect()
    }

    const MIB: u64 = 1024;

    #[test]
    fn rss_is_flat_within_five_percent_or_four_mib() {
        // Growth in the first two minutes does not count; the last three
        // (readings at the end of minute 2 and of 3, 4, 5) do.
        let v = verdict(
            Some(10 * MIB),
            &at_rss(&[50.0, 100.0, 103.0, 104.75, 101.0]),
        );
        assert_eq!(v.rss_flat, Some(true), "{v:?}");
        assert_eq!(v.rss_last_mib, vec![100.0, 103.0, 104.75, 101.0]);
        assert_eq!(v.p999_ms_per_interval, vec![0.0, 1.0, 2.0, 3.0, 4.0]);
        assert_eq!(v.p999_ms_worst_interval, 4.0);
        // 5 % of 100 MiB is 5 MiB: 5.25 is over.
        let v = verdict(
            Some(10 * MIB),
            &at_rss(&[50.0, 100.0, 103.0, 105.25, 101.0]),
        );
        assert_eq!(v.rss_flat, Some(false), "{v:?}");
        // Below 80 MiB the 4 MiB floor applies, and with three intervals
        // the reading when typing started is the first of the four.
        let v = verdict(Some(10 * MIB), &at_rss(&[20.0, 23.75, 21.0]));
        assert_eq!(v.rss_last_mib, vec![10.0, 20.0, 23.75, 21.0]);
        assert_eq!(v.rss_flat, Some(false), "{v:?}");
        let v = verdict(Some(20 * MIB), &at_rss(&[20.0, 23.75, 21.0]));
        assert_eq!(v.rss_flat, Some(true), "{v:?}");
    }

    #[test]
    fn rss_verdict_needs_three_intervals_and_every_reading() {
        assert_eq!(verdict(Some(MIB), &at_rss(&[1.0, 1.0])).rss_flat, None);
        let mut r = at_rss(&[1.0, 1.0, 1.0, 1.0]);
        r[2].server_rss_kib = None;
        assert_eq!(verdict(Some(MIB), &r).rss_flat, None);
        assert_eq!(
            verdict(Some(MIB), &at_rss(&[1.0, 1.0, 1.0, 1.0])).rss_flat,
            Some(true)
        );
    }
}
