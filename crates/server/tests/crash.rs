//! Crash test: a client types through a real `quire` process that is killed
//! with SIGKILL at random moments, many times. After every restart, every
//! update the server had acknowledged as durable must be there.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::*;
use rand::{Rng, SeedableRng};
use yrs::{Array, Out, ReadTxn, Transact, WriteTxn};

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts the real binary and waits for its "running" line.
fn start(dir: &Path, port: u16) -> Proc {
    let mut child = Command::new(env!("CARGO_BIN_EXE_quire"))
        .args([
            "serve",
            "--insecure-fast-password-hashing",
            // Compact often, so that kills also land around compactions
            // (which, as the sole writer, encode the live document).
            "--compact-after-updates",
            "50",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(dir)
        .args(store_args(dir))
        .env("QUIRE_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start quire");
    announced_addr(&mut child);
    Proc(child)
}

/// Signs the owner up (first start) or in (later starts), for the plain
/// `TestClient::connect` calls.
async fn sign_in_owner(port: u16) {
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let owner = TestUser::sign_up(addr, OWNER_EMAIL, "Owner").await;
    register_owner(&owner);
}

fn stored_numbers(client: &TestClient) -> BTreeSet<i64> {
    let txn = client.doc.transact();
    let Some(arr) = txn.get_array("log") else {
        return BTreeSet::new();
    };
    arr.iter(&txn)
        .filter_map(|v| match v {
            Out::Any(yrs::Any::Number(n)) => n.as_i64(),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_never_loses_an_acknowledged_update() {
    let seed: u64 = std::env::var("QUIRE_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::rng().random());
    eprintln!("crash test seed: {seed} (set QUIRE_CRASH_SEED to replay)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dir = TestDataDir::new();
    let port = free_port();
    let url = format!("ws://127.0.0.1:{port}/ws/crash?quire=1");
    let mut acknowledged: BTreeSet<i64> = BTreeSet::new();
    let mut next: i64 = 0;
    let rounds = 15;
    let mut total_lost_unacked = 0usize;

    for round in 0..rounds {
        let mut server = start(dir.path(), port);
        sign_in_owner(port).await;
        let mut client = TestClient::connect(&url).await;
        client.wait_synced().await;
        let present = stored_numbers(&client);
        let missing: Vec<_> = acknowledged.difference(&present).collect();
        assert!(
            missing.is_empty(),
            "round {round}: acknowledged updates lost: {missing:?}"
        );

        // Type until a random number of acks arrived, then kill mid-stream.
        let kill_after = rng.random_range(1..200u64);
        let mut sent: Vec<i64> = Vec::new();
        while client.snapshot().acked < 1 + kill_after && sent.len() < 20_000 {
            let n = next;
            next += 1;
            client.edit(|t| {
                t.get_or_insert_array("log").push_back(t, n);
            });
            sent.push(n);
            if sent.len().is_multiple_of(8) {
                tokio::task::yield_now().await;
            }
        }
        let acked = client.snapshot().acked;
        server.0.kill().unwrap();
        let _ = server.0.wait();
        // Ack n covers the step 2 (message 1) and the first n-1 edits.
        let durable = (acked.saturating_sub(1) as usize).min(sent.len());
        acknowledged.extend(&sent[..durable]);
        total_lost_unacked += sent.len() - durable;
        drop(client);
        drop(server);
    }

    let _server = start(dir.path(), port);
    sign_in_owner(port).await;
    let mut client = TestClient::connect(&url).await;
    client.wait_synced().await;
    let present = stored_numbers(&client);
    let missing: Vec<_> = acknowledged.difference(&present).collect();
    assert!(missing.is_empty(), "acknowledged updates lost: {missing:?}");
    eprintln!(
        "{rounds} kills: {} acknowledged updates all present; {} present in total; {total_lost_unacked} sent but unacknowledged at a kill",
        acknowledged.len(),
        present.len()
    );
}
