//! Smoke tests of the scenarios through real sockets: a short fan-out through
//! the null server, and a small trace with characters outside the BMP through
//! an in-process Quire with accounts (its positions are code points, yrs
//! counts UTF-16).
//! The figures are not checked, only the correctness verdicts.

use std::io::Write;
use std::time::Duration;

use quire_bench::client::TargetArgs;
use quire_bench::{fanout, null_server, trace};
use quire_server::{AppState, ServeConfig, serve};
use tokio::net::TcpListener;

const TIMEOUT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_through_the_null_server_delivers_everything() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(null_server::serve(listener));
    let args = fanout::FanoutArgs {
        target: TargetArgs {
            url: vec![format!("ws://{addr}/ws")],
            account: None,
            dialect: Default::default(),
            metrics_token: None,
        },
        docs: 2,
        clients: 3,
        writers: 2,
        rate: 50.0,
        duration: 0.5,
        drain: 5.0,
        no_acks: true,
        skip_server_check: true,
        server_pid: None,
    };
    let ok = tokio::time::timeout(TIMEOUT, fanout::run(args))
        .await
        .unwrap()
        .unwrap();
    assert!(ok, "fan-out through the null server lost or diverged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_with_astral_characters_replays_exactly_through_quire() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = ServeConfig::defaults();
    config.data_dir = tmp.path().join("data");
    config.insecure_fast_password_hashing = true;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = AppState::embedded(config).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        serve(listener, state, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });

    // "héllo 😀 wörld", typed, then edited around and inside the emoji.
    let mut txns = Vec::new();
    for (i, c) in "héllo 😀 wörld".chars().enumerate() {
        txns.push(serde_json::json!({"time": "", "patches": [[i, 0, c.to_string()]]}));
    }
    txns.push(serde_json::json!({"time": "", "patches": [[7, 0, "!"]]}));
    txns.push(serde_json::json!({"time": "", "patches": [[6, 1, "🎉"]]}));
    txns.push(serde_json::json!({"time": "", "patches": [[0, 1, "H"]]}));
    let file = serde_json::json!({
        "startContent": "",
        "endContent": "Héllo 🎉! wörld",
        "txns": txns,
    });
    let path = tmp.path().join("trace.json.gz");
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&path).unwrap(),
        flate2::Compression::fast(),
    );
    gz.write_all(file.to_string().as_bytes()).unwrap();
    gz.finish().unwrap();

    // Quire requires an account: the generator signs up and creates the
    // document through the API, then connects with the cookie.
    let args = trace::TraceArgs {
        target: TargetArgs {
            url: vec![format!("ws://{addr}/ws")],
            account: Some("bench@quire.test:bench-password".into()),
            dialect: Default::default(),
            metrics_token: None,
        },
        trace: path,
        window: 4,
        flow: trace::Flow::Ack,
        limit: None,
        doc: None,
        verify_reload: true,
        server_pid: None,
        timeout_secs: 60,
    };
    let ok = tokio::time::timeout(TIMEOUT, trace::run(args))
        .await
        .unwrap()
        .unwrap();
    assert!(ok, "trace replay through Quire did not end with endContent");
    let _ = stop.send(());
    tokio::time::timeout(TIMEOUT, server)
        .await
        .unwrap()
        .unwrap();
}
