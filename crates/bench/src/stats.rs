//! Figures: latency percentiles, process CPU and memory from `/proc`, and the
//! two outputs every scenario prints (one JSON line on stdout, a human table
//! on stderr, so `quire-bench … > result.json` keeps only the data).

use std::time::{Duration, Instant};

use serde::Serialize;

/// Exact percentiles over every sample: a run holds at most a few million
/// samples, so sorting them is cheaper than getting a histogram's error bars
/// right.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Latency {
    pub count: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl Latency {
    /// From samples in nanoseconds (sorted in place).
    pub fn from_nanos(samples: &mut [u64]) -> Latency {
        if samples.is_empty() {
            return Latency::default();
        }
        samples.sort_unstable();
        let ms = |ns: u64| ns as f64 / 1e6;
        let at = |q: f64| {
            // Nearest rank: the smallest sample with at least q of all at or
            // below it.
            let rank = (q * samples.len() as f64).ceil() as usize;
            ms(samples[rank.clamp(1, samples.len()) - 1])
        };
        let sum: u128 = samples.iter().map(|&s| s as u128).sum();
        Latency {
            count: samples.len(),
            p50_ms: at(0.50),
            p99_ms: at(0.99),
            p999_ms: at(0.999),
            max_ms: ms(*samples.last().unwrap_or(&0)),
            mean_ms: sum as f64 / samples.len() as f64 / 1e6,
        }
    }
}

/// One reading of a process's memory and CPU time.
#[derive(Debug, Clone, Copy)]
pub struct ProcSample {
    at: Instant,
    rss_kib: u64,
    hwm_kib: u64,
    cpu_ticks: u64,
}

/// What a process used between two samples.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ProcUsage {
    pub rss_before_kib: u64,
    pub rss_after_kib: u64,
    /// Peak RSS over the process's life (VmHWM) at the second sample.
    pub rss_peak_kib: u64,
    pub cpu_seconds: f64,
    /// CPU time over wall time, in percent of one core.
    pub cpu_percent: f64,
}

/// A process to sample: `/proc/<pid>` or `/proc/self`.
#[derive(Debug, Clone)]
pub struct Proc {
    dir: String,
    ticks_per_second: f64,
}

impl Proc {
    pub fn pid(pid: u32) -> Proc {
        Proc {
            dir: format!("/proc/{pid}"),
            ticks_per_second: clock_ticks(),
        }
    }

    pub fn this() -> Proc {
        Proc {
            dir: "/proc/self".into(),
            ticks_per_second: clock_ticks(),
        }
    }

    pub fn sample(&self) -> anyhow::Result<ProcSample> {
        let status = std::fs::read_to_string(format!("{}/status", self.dir))?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let stat = std::fs::read_to_string(format!("{}/stat", self.dir))?;
        // Fields after the command name, which is in parentheses and may hold
        // spaces: state is field 3, utime 14 and stime 15.
        let rest = stat
            .rsplit_once(')')
            .map(|(_, r)| r)
            .ok_or_else(|| anyhow::anyhow!("unexpected /proc stat format"))?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let num = |i: usize| {
            fields
                .get(i)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        Ok(ProcSample {
            at: Instant::now(),
            rss_kib: field("VmRSS:"),
            hwm_kib: field("VmHWM:"),
            cpu_ticks: num(11) + num(12),
        })
    }

    pub fn usage(&self, before: &ProcSample, after: &ProcSample) -> ProcUsage {
        let cpu = after.cpu_ticks.saturating_sub(before.cpu_ticks) as f64 / self.ticks_per_second;
        let wall = after.at.duration_since(before.at).as_secs_f64().max(1e-9);
        ProcUsage {
            rss_before_kib: before.rss_kib,
            rss_after_kib: after.rss_kib,
            rss_peak_kib: after.hwm_kib,
            cpu_seconds: cpu,
            cpu_percent: 100.0 * cpu / wall,
        }
    }
}

/// `CLK_TCK` without unsafe code: ask `getconf`, fall back to Linux's usual 100.
fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// Samples an optional server process and this generator over one phase.
pub struct PhaseMeter {
    server: Option<(Proc, ProcSample)>,
    generator: (Proc, ProcSample),
    stall: Option<(Instant, u64)>,
}

/// Usage over one phase: the server's (when its pid was given) and ours.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct PhaseUsage {
    pub server: Option<ProcUsage>,
    pub generator: ProcUsage,
    /// Share of the phase during which some runnable task on the machine
    /// waited for a CPU (Linux PSI `cpu some`): other load on a shared machine
    /// shows here. `None` where PSI is unavailable.
    pub machine_cpu_stall_percent: Option<f64>,
    /// 1-minute load average at the end of the phase.
    pub machine_loadavg: Option<f64>,
}

/// Cumulative microseconds some task waited for a CPU (`/proc/pressure/cpu`).
fn cpu_stall_micros() -> Option<u64> {
    let psi = std::fs::read_to_string("/proc/pressure/cpu").ok()?;
    let some = psi.lines().find(|l| l.starts_with("some "))?;
    some.split_whitespace()
        .find_map(|f| f.strip_prefix("total="))
        .and_then(|v| v.parse().ok())
}

fn loadavg() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

impl PhaseMeter {
    pub fn start(server_pid: Option<u32>) -> anyhow::Result<PhaseMeter> {
        let server = match server_pid {
            Some(pid) => {
                let p = Proc::pid(pid);
                let s = p.sample()?;
                Some((p, s))
            }
            None => None,
        };
        let me = Proc::this();
        let s = me.sample()?;
        Ok(PhaseMeter {
            server,
            generator: (me, s),
            stall: cpu_stall_micros().map(|t| (Instant::now(), t)),
        })
    }

    /// Usage since the previous lap (or the start), which becomes the
    /// reference of the next one: one phase after another without a gap.
    /// The server's part is `None` once its process can no longer be read
    /// (it died), so a long run still reports what came before.
    pub fn lap(&mut self) -> anyhow::Result<PhaseUsage> {
        let server = match &mut self.server {
            Some((p, before)) => match p.sample() {
                Ok(now) => {
                    let usage = p.usage(before, &now);
                    *before = now;
                    Some(usage)
                }
                Err(_) => None,
            },
            None => None,
        };
        let (me, before) = &mut self.generator;
        let now = me.sample()?;
        let generator = me.usage(before, &now);
        *before = now;
        let stall_now = cpu_stall_micros().map(|t| (Instant::now(), t));
        let stall = match (self.stall, stall_now) {
            (Some((at, before)), Some((now, after))) => {
                let wall = now.duration_since(at).as_secs_f64().max(1e-9);
                Some(100.0 * after.saturating_sub(before) as f64 / 1e6 / wall)
            }
            _ => None,
        };
        self.stall = stall_now;
        Ok(PhaseUsage {
            server,
            generator,
            machine_cpu_stall_percent: stall,
            machine_loadavg: loadavg(),
        })
    }

    pub fn finish(&self) -> anyhow::Result<PhaseUsage> {
        let server = match &self.server {
            Some((p, before)) => Some(p.usage(before, &p.sample()?)),
            None => None,
        };
        let (me, before) = &self.generator;
        let stall = match (self.stall, cpu_stall_micros()) {
            (Some((at, before)), Some(after)) => {
                let wall = at.elapsed().as_secs_f64().max(1e-9);
                Some(100.0 * after.saturating_sub(before) as f64 / 1e6 / wall)
            }
            _ => None,
        };
        Ok(PhaseUsage {
            server,
            generator: me.usage(before, &me.sample()?),
            machine_cpu_stall_percent: stall,
            machine_loadavg: loadavg(),
        })
    }
}

/// Nanoseconds on the run's one clock.
#[derive(Debug, Clone, Copy)]
pub struct Epoch(pub Instant);

impl Epoch {
    pub fn now() -> Epoch {
        Epoch(Instant::now())
    }

    pub fn nanos(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.0).as_nanos() as u64
    }

    pub fn instant(&self, nanos: u64) -> Instant {
        self.0 + Duration::from_nanos(nanos)
    }
}

/// Prints the JSON line on stdout and the table on stderr.
pub fn emit(json: &serde_json::Value, rows: &[(String, String)]) {
    println!("{json}");
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in rows {
        eprintln!("  {k:<width$}  {v}");
    }
}

pub fn fmt_usage(rows: &mut Vec<(String, String)>, usage: &PhaseUsage) {
    if let Some(s) = &usage.server {
        rows.push((
            "server CPU".into(),
            format!(
                "{:.2} s ({:.0} % of one core)",
                s.cpu_seconds, s.cpu_percent
            ),
        ));
        rows.push((
            "server RSS".into(),
            format!(
                "{:.1} MiB → {:.1} MiB (peak {:.1} MiB)",
                s.rss_before_kib as f64 / 1024.0,
                s.rss_after_kib as f64 / 1024.0,
                s.rss_peak_kib as f64 / 1024.0
            ),
        ));
    }
    rows.push((
        "generator CPU".into(),
        format!(
            "{:.2} s ({:.0} % of one core)",
            usage.generator.cpu_seconds, usage.generator.cpu_percent
        ),
    ));
    if let (Some(stall), Some(load)) = (usage.machine_cpu_stall_percent, usage.machine_loadavg) {
        rows.push((
            "machine".into(),
            format!("load {load:.1}; a task waited for a CPU {stall:.0} % of the time"),
        ));
    }
}

pub fn fmt_latency(l: &Latency) -> String {
    format!(
        "p50 {:.3} ms · p99 {:.3} ms · p99.9 {:.3} ms · max {:.3} ms (n={})",
        l.p50_ms, l.p99_ms, l.p999_ms, l.max_ms, l.count
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut v: Vec<u64> = (1..=1000).map(|i| i * 1_000_000).collect();
        let l = Latency::from_nanos(&mut v);
        assert_eq!(l.p50_ms, 500.0);
        assert_eq!(l.p99_ms, 990.0);
        assert_eq!(l.p999_ms, 999.0);
        assert_eq!(l.max_ms, 1000.0);
        assert_eq!(Latency::from_nanos(&mut []).count, 0);
    }

    #[test]
    fn samples_this_process() {
        let p = Proc::this();
        let s = p.sample().unwrap();
        assert!(s.rss_kib > 0);
    }
}
