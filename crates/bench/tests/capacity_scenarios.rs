//! Smoke tests of the capacity scenarios against an in-process Quire with
//! accounts: `connections` holds a few hundred idle sockets in both layouts
//! (the server is this process, so its RSS is sampled through our own pid),
//! and `coldload` stores documents, the server restarts on the same data
//! folder, and a fresh client loads each one with the exact text.
//! The figures are not checked, only the verdicts.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use quire_bench::client::TargetArgs;
use quire_bench::coldload::{self, MeasureArgs, PopulateArgs};
use quire_bench::connections::{self, ConnectionsArgs, Layout};
use quire_server::{AppState, ServeConfig, serve};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const TIMEOUT: Duration = Duration::from_secs(120);
const ACCOUNT: &str = "bench@quire.test:bench-password";
/// The server's `--metrics-token`, which the generator presents to read the
/// server's own counters.
const METRICS_TOKEN: &str = "bench-test-metrics-token";

/// An in-process Quire on `data_dir`; stop it with [`Server::stop`].
struct Server {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Server {
    async fn start(data_dir: &Path) -> Server {
        let mut config = ServeConfig::defaults();
        config.data_dir = data_dir.to_path_buf();
        config.insecure_fast_password_hashing = true;
        // Hundreds of sockets from one user in a moment.
        config.ws_connect_burst = 10_000;
        // A short replay still leaves a snapshot and a log tail.
        config.compact_after_updates = 16;
        config.metrics_token = Some(quire_server::ops::MetricsToken::parse(METRICS_TOKEN).unwrap());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = AppState::embedded(config).await.unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            serve(listener, state, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        Server { addr, stop, task }
    }

    /// As the command line would give it (so options added later keep their
    /// defaults).
    fn target(&self) -> TargetArgs {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            target: TargetArgs,
        }
        let url = format!("ws://{}/ws", self.addr);
        <Cli as clap::Parser>::parse_from([
            "quire-bench",
            "--url",
            &url,
            "--account",
            ACCOUNT,
            "--metrics-token",
            METRICS_TOKEN,
        ])
        .target
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(TIMEOUT, self.task)
            .await
            .unwrap()
            .unwrap();
    }
}

async fn hold_idle(layout: Layout) {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("data")).await;
    let args = ConnectionsArgs {
        target: server.target(),
        count: 200,
        layout,
        concurrency: 50,
        hold_secs: 0.5,
        settle_secs: 5.0,
        connect_timeout_secs: 60,
        server_pid: Some(std::process::id()),
    };
    let r = tokio::time::timeout(TIMEOUT, connections::measure(&args))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.held, 200, "failures: {:?}", r.failures);
    assert_eq!(r.failed, 0);
    assert!(r.ok);
    assert!(r.rss_before_kib.is_some_and(|k| k > 0));
    assert!(r.rss_after_kib.is_some_and(|k| k > 0));
    assert!(r.rss_per_connection_kib.is_some());
    // The server counted our sockets while they were held.
    let gauge = r.server_connections_gauge.expect("Quire's /metrics");
    assert!(gauge >= 200.0, "quire_connections = {gauge}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_spread_holds_every_socket() {
    hold_idle(Layout::Spread).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_on_one_document_holds_every_socket() {
    hold_idle(Layout::One).await;
}

/// A short trace in the editing-traces format: typing, deletes, a paste, a
/// character outside the BMP.
fn write_trace(dir: &Path) -> PathBuf {
    let mut txns = Vec::new();
    let mut text: Vec<char> = Vec::new();
    let mut push = |pos: usize, del: usize, ins: &str, text: &mut Vec<char>| {
        txns.push(serde_json::json!({"time": "", "patches": [[pos, del, ins]]}));
        text.splice(pos..pos + del, ins.chars());
    };
    for (i, c) in "cold loads are 😀 fast".chars().enumerate() {
        push(i, 0, &c.to_string(), &mut text);
    }
    push(0, 1, "C", &mut text);
    push(5, 5, "", &mut text);
    push(5, 0, "starts ", &mut text);
    push(text.len(), 0, ", checked", &mut text);
    let end: String = text.iter().collect();
    let file = serde_json::json!({ "startContent": "", "endContent": end, "txns": txns });
    let path = dir.join("trace.json.gz");
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&path).unwrap(),
        flate2::Compression::fast(),
    );
    gz.write_all(file.to_string().as_bytes()).unwrap();
    gz.finish().unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coldload_after_a_restart_syncs_the_exact_text() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let trace = write_trace(tmp.path());

    let server = Server::start(&data).await;
    let populate = PopulateArgs {
        target: server.target(),
        trace: trace.clone(),
        history_docs: 20,
        history_updates: 10,
        concurrency: 8,
        window: 8,
        timeout_secs: 60,
    };
    let p = tokio::time::timeout(TIMEOUT, coldload::populate(&populate))
        .await
        .unwrap()
        .unwrap();
    assert!(p.ok, "populate failed: {:?}", p.first_failure);
    assert_eq!(p.docs.len(), 2);
    assert_eq!(p.history_failed, 0);
    server.stop().await;

    // The same data folder, a fresh process state: nothing is loaded.
    let server = Server::start(&data).await;
    let measure = MeasureArgs {
        target: server.target(),
        docs: p
            .docs
            .iter()
            .map(|d| format!("{}={}", d.label, d.doc))
            .collect(),
        expect_trace: trace,
        runs: 3,
        timeout_secs: 60,
    };
    let m = tokio::time::timeout(TIMEOUT, coldload::measure(&measure))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.documents_live_before, Some(0.0));
    assert_eq!(m.docs.len(), 2);
    for d in &m.docs {
        assert!(d.text_ok, "{}: text differs ({:?})", d.label, d.error);
        assert!(d.cold_ms.is_finite() && d.cold_ms > 0.0);
        assert_eq!(d.warm_ms.n, 2);
        assert!(d.bytes > 0);
    }
    assert!(m.ok);
    server.stop().await;
}
