//! A real `quire serve` process whose log lines the test can read.

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use crate::common::{TIMEOUT, announced_addr, http_client, wait_for};

pub struct QuireProcess {
    pub addr: SocketAddr,
    child: Child,
    logs: Arc<Mutex<Vec<String>>>,
}

impl QuireProcess {
    /// Starts `quire serve` on a port of its own choosing with `args` added,
    /// and returns once it prints where it listens.
    pub fn start(args: &[OsString]) -> QuireProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_quire"))
            .args([
                "serve",
                "--insecure-fast-password-hashing",
                "--listen",
                "127.0.0.1:0",
            ])
            .args(args)
            .env("QUIRE_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start quire");
        // The log goes to the test's output as well, so a failure shows it.
        let logs = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("piped stderr");
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("quire: {line}");
                sink.lock().unwrap().push(line);
            }
        });
        let addr = announced_addr(&mut child);
        QuireProcess { addr, child, logs }
    }

    pub fn ws(&self, doc: &str) -> String {
        format!("ws://{}/ws/{doc}?quire=1", self.addr)
    }

    /// Whether the process is still running (it has not exited or crashed).
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("query the process").is_none()
    }

    /// The log lines so far that contain `needle`.
    pub fn log_lines(&self, needle: &str) -> Vec<String> {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .cloned()
            .collect()
    }

    pub async fn wait_for_log(&self, needle: &str) {
        wait_for(&format!("a log line with {needle:?}"), || {
            !self.log_lines(needle).is_empty()
        })
        .await;
    }

    /// `/readyz`: its status and body.
    pub async fn readyz(&self) -> (u16, serde_json::Value) {
        self.get_json("/readyz").await
    }

    pub async fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        let resp = tokio::time::timeout(
            TIMEOUT,
            http_client()
                .get(format!("http://{}{path}", self.addr))
                .send(),
        )
        .await
        .unwrap_or_else(|_| panic!("{path} did not answer"))
        .unwrap_or_else(|e| panic!("{path}: {e}"));
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// Polls `/readyz` until its status is `status`; returns its body then.
    pub async fn wait_ready_status(&self, status: u16) -> serde_json::Value {
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            let (now, body) = self.readyz().await;
            if now == status {
                return body;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "/readyz never answered {status}; last {now} {body}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL: nothing is flushed, so whatever a restarted process finds
    /// was committed before.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for QuireProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
