//! Replays a real editing session (259,778 keystrokes of the automerge paper)
//! through the server from one client while another watches. Both must end
//! with exactly the trace's final text, and so must the document reloaded
//! from storage after a restart.

mod common;

use std::io::Read;
use std::path::PathBuf;
use std::time::Instant;

use common::*;
use serde::Deserialize;
use yrs::{Text, WriteTxn};

#[derive(Deserialize)]
struct Trace {
    #[serde(rename = "endContent")]
    end_content: String,
    txns: Vec<Txn>,
}

#[derive(Deserialize)]
struct Txn {
    patches: Vec<(u32, u32, String)>,
}

fn traces_dir() -> PathBuf {
    std::env::var_os("QUIRE_TRACES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../bench/traces"))
}

fn load(name: &str) -> Trace {
    let path = traces_dir().join(name);
    let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut json = String::new();
    flate2::read::GzDecoder::new(file)
        .read_to_string(&mut json)
        .unwrap();
    serde_json::from_str(&json).unwrap()
}

/// Most updates in flight (sent, not yet acknowledged durable): fast, without
/// burying the socket.
const WINDOW: u64 = 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automerge_paper_trace_replays_exactly_and_reloads_exactly() {
    let trace = load("automerge-paper.json.gz");
    // Positions are in code points; yrs' default offsets are UTF-8 bytes. The
    // two agree on ASCII, which this trace is (checked, not assumed).
    assert!(trace.end_content.is_ascii());
    assert!(
        trace
            .txns
            .iter()
            .all(|t| t.patches.iter().all(|p| p.2.is_ascii()))
    );

    let server = TestServer::start().await;
    let dir = server.data_dir.clone();
    let url = server.ws_url("automerge-paper");
    let mut writer = TestClient::connect(&format!("{url}?quire=1")).await;
    let mut observer = TestClient::connect(&url).await;
    writer.wait_synced().await;
    observer.wait_synced().await;

    let started = Instant::now();
    let mut keystrokes = 0u64;
    for txn in &trace.txns {
        writer.edit(|t| {
            let text = t.get_or_insert_text("text");
            for (pos, del, ins) in &txn.patches {
                if *del > 0 {
                    text.remove_range(t, *pos, *del);
                }
                if !ins.is_empty() {
                    text.insert(t, *pos, ins);
                }
            }
        });
        keystrokes += 1;
        if writer.sent_updates > writer.snapshot().acked + WINDOW {
            let want = writer.sent_updates - WINDOW;
            writer.wait_acked(want).await;
        }
    }
    writer.wait_acked(writer.sent_updates + 1).await;
    observer.wait_text("text", &trace.end_content).await;
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "replayed {keystrokes} keystrokes in {secs:.1}s ({:.0}/s, debug build)",
        keystrokes as f64 / secs
    );
    assert_eq!(writer.text("text"), trace.end_content);
    assert!(
        observer.snapshot().closed.is_none(),
        "observer stayed connected"
    );
    drop(writer);
    drop(observer);

    let guard = server.stop().await;
    let server = TestServer::start_in(&dir, |_| {}).await;
    let mut fresh = TestClient::connect(&server.ws_url("automerge-paper")).await;
    fresh.wait_synced().await;
    assert_eq!(
        fresh.text("text"),
        trace.end_content,
        "reloaded from storage"
    );
    drop(guard);
}
