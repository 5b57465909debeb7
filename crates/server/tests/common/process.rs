//! A real `quire serve` process, for tests about what a node survives and
//! what it costs: its pid (for resident memory), whether it still runs, its
//! own data folder. Killed on drop.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use super::{METRICS_TOKEN, TestDataDir, store_args};

pub struct QuireProcess {
    child: Child,
    pub addr: SocketAddr,
    pub dir: TestDataDir,
}

impl QuireProcess {
    /// Starts the binary on port 0 of 127.0.0.1 with a fresh data folder,
    /// cheap password hashing, the tests' metrics token and `extra` flags,
    /// and waits for its "running" line.
    pub fn start(extra: &[&str]) -> QuireProcess {
        Self::start_in(TestDataDir::new(), extra)
    }

    /// Starts on an existing data folder (a restart over the same data).
    pub fn start_in(dir: TestDataDir, extra: &[&str]) -> QuireProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_quire"))
            .args([
                "serve",
                "--insecure-fast-password-hashing",
                "--listen",
                "127.0.0.1:0",
                "--metrics-token",
                METRICS_TOKEN,
                "--data-dir",
            ])
            .arg(dir.path())
            .args(store_args(dir.path()))
            .args(extra)
            .env("QUIRE_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start quire");
        let addr = announced_addr(&mut child);
        QuireProcess { child, addr, dir }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process still runs (it did not crash or abort).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Resident memory, in bytes (`VmRSS` of `/proc/<pid>/status`).
    pub fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("the process is alive");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .expect("VmRSS in /proc/<pid>/status")
    }

    pub fn ws_url(&self, doc: &str) -> String {
        format!("ws://{}/ws/{doc}", self.addr)
    }

    pub fn http(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `/metrics`, read with the operator token.
    pub async fn metrics(&self) -> String {
        super::http_client()
            .get(self.http("/metrics"))
            .bearer_auth(METRICS_TOKEN)
            .send()
            .await
            .expect("metrics request")
            .text()
            .await
            .expect("metrics body")
    }
}

impl Drop for QuireProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads a `quire serve` child's first line ("Quire is running at
/// http://ADDR/", printed once it listens) and returns the address; the
/// child's stdout must be piped.
pub fn announced_addr(child: &mut Child) -> SocketAddr {
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("a piped stdout"))
        .read_line(&mut line)
        .expect("read quire's first line");
    line.trim()
        .strip_prefix("Quire is running at http://")
        .and_then(|rest| rest.trim_end_matches('/').parse().ok())
        .unwrap_or_else(|| panic!("quire did not start: {line:?}"))
}
