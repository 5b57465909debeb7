//! What a few bytes from a client may cost a node: every count read from
//! the wire is backed by bytes that are really there before anything is
//! reserved for it. Measured as the process's peak resident memory (Linux:
//! `/proc/self/status`, whose peak `clear_refs` resets), so each test here
//! runs alone in its process under nextest.

use std::sync::Arc;
use std::time::Duration;

use quire_bus::LocalBus;
use quire_hub::{CloseCode, Hub, HubConfig, JoinOptions, Outgoing, Session};
use quire_protocol::encode_sync_step1;
use quire_store::{DocStore, SqliteOptions, SqliteStore};
use quire_types::{DocId, NodeId};

const TIMEOUT: Duration = Duration::from_secs(10);

/// Far more than a few bytes could ever justify; far less than what the
/// unbounded decode reserved (1 GiB).
const MAX_GROWTH_KIB: u64 = 64 * 1024;

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/self/status"))
}

/// Resets the peak to the current resident size; returns that size.
fn reset_peak() -> u64 {
    std::fs::write("/proc/self/clear_refs", "5").expect("clear_refs resets the peak");
    status_kib("VmRSS:")
}

async fn viewer_on_a_document() -> (tempfile::TempDir, Hub, Session) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("q.db"), SqliteOptions::default())
        .await
        .unwrap();
    let id = DocId::generate();
    store.create_document(&id, "bounds").await.unwrap();
    let hub = Hub::new(
        Arc::new(store),
        Arc::new(LocalBus::new().node(NodeId::generate())),
        HubConfig::default(),
    );
    let viewer = JoinOptions {
        can_write: false,
        ..JoinOptions::default()
    };
    let session = hub.join(&id, viewer).await.unwrap();
    (dir, hub, session)
}

/// Found by the `protocol_message` fuzz target: yrs's state vector decode
/// reserves the declared number of entries up front. Five bytes declaring
/// 2^29 made it reserve 16 GiB (touching 1 GiB) for seconds, in the
/// document's task, from a viewer.
#[tokio::test]
async fn a_state_vector_declaring_2_pow_29_entries_reserves_nothing_for_them() {
    let (_dir, _hub, mut viewer) = viewer_on_a_document().await;
    let before = reset_peak();
    // 2^29 as a lib0 varint, and nothing after it.
    assert!(
        viewer
            .receive(encode_sync_step1(&[0x80, 0x80, 0x80, 0x80, 0x02]))
            .await
    );
    loop {
        match tokio::time::timeout(TIMEOUT, viewer.next()).await.unwrap() {
            Outgoing::Close(c) => {
                assert_eq!(c.code, CloseCode::Malformed, "{c:?}");
                break;
            }
            Outgoing::Frame(_) => {}
        }
    }
    let growth = status_kib("VmHWM:").saturating_sub(before);
    assert!(
        growth < MAX_GROWTH_KIB,
        "the peak grew by {growth} KiB for a 5-byte state vector"
    );
}
