//! Smoke tests of the load scenarios through real sockets: `saturate` with a
//! tiny budget through the null server and an in-process Quire,
//! `hot-document` small through Quire, and a `burst` through a Quire whose
//! per-socket queue is so small that it closes the slow observer, which must
//! reconnect, resync and end with the writer's text.
//! The figures are not checked, only the verdicts.
//!
//! Arguments are parsed from command lines, as `quire-bench` would, so the
//! scenarios' defaults are exercised and new options need no change here.

use std::time::Duration;

use clap::Parser;
use quire_bench::{burst, fanout, hot_document, null_server, saturate};
use quire_server::{AppState, ServeConfig, serve};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const TIMEOUT: Duration = Duration::from_secs(120);
const ACCOUNT: &str = "bench@quire.test:bench-password";

#[derive(Parser)]
struct Cli<T: clap::Args> {
    #[command(flatten)]
    args: T,
}

fn parse<T: clap::Args>(line: &[&str]) -> T {
    Cli::<T>::parse_from(std::iter::once("quire-bench").chain(line.iter().copied())).args
}

/// An in-process Quire (SQLite in a temporary folder, durable acks on).
struct Quire {
    url: String,
    stop: oneshot::Sender<()>,
    server: JoinHandle<()>,
    _tmp: tempfile::TempDir,
}

impl Quire {
    async fn start(outgoing_queue: Option<usize>) -> Quire {
        let tmp = tempfile::tempdir().unwrap();
        let mut config = ServeConfig::defaults();
        config.data_dir = tmp.path().join("data");
        config.insecure_fast_password_hashing = true;
        if let Some(q) = outgoing_queue {
            config.outgoing_queue = q;
        }
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = AppState::embedded(config).await.unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            serve(listener, state, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        Quire {
            url: format!("ws://{addr}/ws"),
            stop,
            server,
            _tmp: tmp,
        }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(TIMEOUT, self.server)
            .await
            .unwrap()
            .unwrap();
    }
}

async fn null_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(null_server::serve(listener));
    format!("ws://{addr}/ws")
}

/// Two steps of one second, two writers per document (so no client's own
/// text is the document's); limits generous enough for a loaded test
/// machine, since only the verdict is checked.
const TINY_SATURATE: &[&str] = &[
    "--docs",
    "2",
    "--clients",
    "4",
    "--writers",
    "2",
    "--start-rate",
    "20",
    "--factor",
    "2",
    "--step-duration",
    "1",
    "--max-steps",
    "2",
    "--drain",
    "10",
    "--p99-limit-ms",
    "2000",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saturate_through_the_null_server_climbs() {
    let url = null_server().await;
    let mut line = vec!["--url", &url, "--no-acks", "--skip-server-check"];
    line.extend_from_slice(TINY_SATURATE);
    let args: saturate::SaturateArgs = parse(&line);
    assert_eq!(args.max_steps, 2);
    let ok = tokio::time::timeout(TIMEOUT, saturate::run(args))
        .await
        .unwrap()
        .unwrap();
    assert!(ok, "saturate through the null server found no good step");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saturate_through_quire_climbs() {
    let quire = Quire::start(None).await;
    let mut line = vec!["--url", &quire.url, "--account", ACCOUNT];
    line.extend_from_slice(TINY_SATURATE);
    let args: saturate::SaturateArgs = parse(&line);
    let ok = tokio::time::timeout(TIMEOUT, saturate::run(args))
        .await
        .unwrap()
        .unwrap();
    assert!(ok, "saturate through Quire found no good step");
    quire.stop().await;
}

#[test]
fn hot_document_defaults_are_one_document_of_200() {
    let args: hot_document::HotDocumentArgs = parse(&["--url", "ws://127.0.0.1:1/ws"]);
    let f = &args.fanout;
    assert_eq!(
        (f.docs, f.clients, f.writers, f.rate, f.duration),
        (1, 200, 20, 5.0, 20.0)
    );
    // The fan-out keeps its own defaults.
    let f: fanout::FanoutArgs = parse(&["--url", "ws://127.0.0.1:1/ws"]);
    assert_eq!((f.docs, f.clients, f.writers), (10, 10, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_document_through_quire_converges() {
    let quire = Quire::start(None).await;
    let args: hot_document::HotDocumentArgs = parse(&[
        "--url",
        &quire.url,
        "--account",
        ACCOUNT,
        "--clients",
        "20",
        "--writers",
        "4",
        "--duration",
        "1",
    ]);
    let ok = tokio::time::timeout(TIMEOUT, hot_document::run(args))
        .await
        .unwrap()
        .unwrap();
    assert!(ok, "hot document through Quire lost or diverged");
    quire.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_observer_closed_by_quire_reconnects_and_ends_identical() {
    // 16 frames per socket (the least Quire takes) and a 4 KiB receive
    // buffer: the backlog cannot hide in the kernel, so Quire closes the
    // slow observer (4429) and it must resync.
    let quire = Quire::start(Some(16)).await;
    let args: burst::BurstArgs = parse(&[
        "--url",
        &quire.url,
        "--account",
        ACCOUNT,
        "--keystrokes",
        "5000",
        "--observer-delay-us",
        "200",
        "--observer-rcvbuf",
        "4096",
        "--timeout-secs",
        "100",
    ]);
    let r = tokio::time::timeout(TIMEOUT, burst::measure(&args))
        .await
        .unwrap()
        .unwrap();
    eprintln!("{}", r.json);
    assert!(r.ok, "burst through Quire: observer not identical");
    assert!(
        r.json["observer_reconnects"].as_u64().unwrap() >= 1,
        "Quire never closed the slow observer, so the resync was not tested"
    );
    quire.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_through_the_null_server_reaches_the_observer() {
    let url = null_server().await;
    // Fewer keystrokes than the relay's per-socket queue (4,096 frames): it
    // keeps no state, so a burst is only sure to pass if the queue can hold
    // all of it while the observer's writer waits for its turn; past that it
    // closes the observer (4429), which cannot resync from a relay.
    let args: burst::BurstArgs = parse(&[
        "--url",
        &url,
        "--no-acks",
        "--keystrokes",
        "3000",
        "--observer-delay-us",
        "0",
        "--timeout-secs",
        "60",
    ]);
    let r = tokio::time::timeout(TIMEOUT, burst::measure(&args))
        .await
        .unwrap()
        .unwrap();
    assert!(r.ok, "burst through the null server: {}", r.json);
}
