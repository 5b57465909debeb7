//! The soak scenario end to end, with its "minutes" shortened to 2 s, against
//! an in-process Quire that compacts every 20 updates: the report must have
//! one entry per interval, each with deliveries, latencies, the server's RSS
//! (the server is this process) and its compactions, and the run must lose
//! nothing and converge. The figures themselves are not checked.
//! (Alone in its file: the compaction counter is process-wide.)

use std::time::Duration;

use clap::Parser;
use quire_bench::soak::{self, SoakArgs};
use quire_server::{AppState, ServeConfig, serve};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

const TIMEOUT: Duration = Duration::from_secs(120);
const METRICS_TOKEN: &str = "soak-test-metrics-token";

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: SoakArgs,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_soak_through_quire_reports_every_interval() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = ServeConfig::defaults();
    config.data_dir = tmp.path().join("data");
    config.insecure_fast_password_hashing = true;
    config.compact_after_updates = 20;
    // The generator reads the compaction counter on `/metrics` with it.
    config.metrics_token = Some(quire_server::ops::MetricsToken::parse(METRICS_TOKEN).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ws", listener.local_addr().unwrap());
    let state = AppState::embedded(config).await.unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        serve(listener, state, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });

    let pid = std::process::id().to_string();
    let args = Cli::parse_from([
        "quire-bench",
        "--url",
        &url,
        "--account",
        "bench@quire.test:bench-password",
        "--docs",
        "2",
        "--clients",
        "4",
        "--writers",
        "2",
        "--rate",
        "20",
        "--duration",
        "6",
        "--interval-secs",
        "2",
        "--drain",
        "10",
        "--server-pid",
        &pid,
        "--metrics-token",
        METRICS_TOKEN,
    ])
    .args;
    let o = tokio::time::timeout(TIMEOUT, soak::measure(&args))
        .await
        .unwrap()
        .unwrap();
    let j = &o.json;
    eprintln!("{j:#}");
    assert!(o.ok, "the soak lost deliveries, diverged or was closed");
    assert_eq!(j["scenario"], "soak");
    assert_eq!(j["converged"], true);
    assert_eq!(j["lost"], 0);

    let intervals = j["intervals"].as_array().unwrap();
    assert_eq!(intervals.len(), 3, "6 s in intervals of 2 s");
    let num = |v: &Value, k: &str| {
        v[k].as_f64()
            .unwrap_or_else(|| panic!("{k} missing in {v}"))
    };
    let (mut delivered, mut sent, mut samples) = (0.0, 0.0, 0.0);
    for (i, iv) in intervals.iter().enumerate() {
        assert_eq!(num(iv, "index"), (i + 1) as f64);
        assert_eq!(num(iv, "end_s"), 2.0 * (i + 1) as f64);
        assert!(num(iv, "delivered") > 0.0, "interval {i} delivered nothing");
        assert!(num(iv, "delivered_per_sec") > 0.0);
        assert!(num(iv, "sent") > 0.0, "interval {i} sent nothing");
        assert_eq!(num(iv, "expected"), 3.0 * num(iv, "sent"));
        assert_eq!(num(iv, "lost"), 0.0);
        let l = &iv["latency_from_schedule"];
        assert!(num(l, "count") > 0.0);
        assert!(num(l, "p50_ms") <= num(l, "p99_ms"));
        assert!(num(l, "p99_ms") <= num(l, "p999_ms"));
        assert!(num(l, "p999_ms") <= num(l, "max_ms"));
        assert!(num(&iv["send_lag"], "count") > 0.0);
        assert!(num(&iv["ack_latency"], "count") > 0.0, "acks are on");
        assert!(num(iv, "server_rss_kib") > 0.0);
        assert!(num(iv, "server_cpu_percent") >= 0.0);
        assert!(num(iv, "generator_rss_kib") > 0.0);
        assert!(iv["compactions"].as_u64().is_some(), "{iv}");
        delivered += num(iv, "delivered");
        sent += num(iv, "sent");
        samples += num(l, "count");
    }
    // Every delivery and keystroke is in exactly one interval.
    assert_eq!(delivered, num(j, "delivered"));
    assert_eq!(sent, num(j, "sent"));
    assert_eq!(samples, num(j, "delivered") + num(j, "duplicates"));
    assert_eq!(num(&j["latency_from_schedule"], "count"), samples);
    assert!(num(j, "compactions") > 0.0, "Quire compacted nothing: {j}");

    let v = &j["verdict"];
    assert!(v["rss_flat"].is_boolean(), "{v}");
    assert_eq!(v["rss_last_mib"].as_array().unwrap().len(), 4);
    assert_eq!(v["p999_ms_per_interval"].as_array().unwrap().len(), 3);
    assert!(num(v, "p999_ms_worst_interval") > 0.0);

    let table: Vec<&str> = o.rows.iter().map(|(k, _)| k.trim()).collect();
    for row in ["per interval", "1", "2", "3", "RSS flat", "compactions"] {
        assert!(table.contains(&row), "no {row:?} row in {table:?}");
    }

    let _ = stop.send(());
    tokio::time::timeout(TIMEOUT, server)
        .await
        .unwrap()
        .unwrap();
}
