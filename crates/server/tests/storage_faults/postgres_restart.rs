//! PostgreSQL restarted, crashed and stopped for a while under a
//! `quire serve --single-node` process while clients type.
//!
//! Over TCP an outage makes the pool wait for the server (sqlx retries a
//! refused connection until its acquire timeout, 10 s), so short outages
//! only delay acks; over a Unix socket a stopped server's socket file is
//! gone, every attempt fails at once, and after its retries the document
//! closes its sockets (1011) and clients reconnect. Both run.

use std::ffi::OsString;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::common::{OWNER_EMAIL, TestClient, TestUser, wait_for};
use crate::pg_cluster::PgCluster;
use crate::process::QuireProcess;
use crate::typist::{Memory, Progress, Typist, numbers, wait_converged};

#[derive(Debug, Clone, Copy)]
enum Transport {
    Tcp,
    UnixSocket,
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    /// `pg_ctl restart -m <mode>`.
    Restart(&'static str),
    /// Stopped (`-m immediate`: a crash) and started again after `outage`.
    Down { outage: Duration },
}

/// How long the store stays down in [`Fault::Down`]: long enough for the
/// appender's retries to give up over a Unix socket (about a second).
const OUTAGE: Duration = Duration::from_millis(2500);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarts_over_tcp_lose_no_acknowledged_edit() {
    restarts_while_clients_type(Transport::Tcp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarts_over_a_unix_socket_lose_no_acknowledged_edit() {
    restarts_while_clients_type(Transport::UnixSocket).await;
}

async fn restarts_while_clients_type(transport: Transport) {
    let started = Instant::now();
    let pg = PgCluster::start().await;
    let url = match transport {
        Transport::Tcp => pg.tcp_url(),
        Transport::UnixSocket => pg.socket_url(),
    };
    let data = tempfile::tempdir().unwrap();
    let args: Vec<OsString> = vec![
        "--database-url".into(),
        url.into(),
        "--single-node".into(),
        "--data-dir".into(),
        data.path().into(),
    ];
    let server = QuireProcess::start(&args);
    let owner = TestUser::sign_up(server.addr, OWNER_EMAIL, "Owner").await;
    for doc in ["forgetful", "browser"] {
        owner.create_document(doc).await;
    }

    // Two typists whose unacknowledged edits die with their connection (a
    // false ack would show as a loss), and one that keeps them, as a browser
    // does, on a document of its own so that its re-sends cannot hide the
    // others' losses.
    let (stop_tx, stop) = watch::channel(false);
    let typists = [
        ("forgets-1", "forgetful", Memory::Forgets),
        ("forgets-2", "forgetful", Memory::Forgets),
        ("keeps", "browser", Memory::Keeps),
    ];
    let mut running = Vec::new();
    for (i, (name, doc, memory)) in typists.into_iter().enumerate() {
        let typist = Typist {
            name: name.into(),
            url: server.ws(doc),
            user: owner.clone(),
            memory,
            first: (i as i64 + 1) * 1_000_000,
        };
        running.push(typist.spawn(stop.clone()));
    }
    let progress: Vec<&Progress> = running.iter().map(|(p, _)| &**p).collect();
    wait_for("every typist had edits acknowledged", || {
        progress.iter().all(|p| p.acked() >= 20)
    })
    .await;

    let faults = [
        Fault::Restart("fast"),
        Fault::Down { outage: OUTAGE },
        Fault::Restart("immediate"),
        Fault::Down { outage: OUTAGE },
    ];
    for fault in faults {
        let before: Vec<u64> = progress.iter().map(|p| p.acked()).collect();
        let at = Instant::now();
        match fault {
            Fault::Restart(mode) => pg.restart(mode).await,
            Fault::Down { outage } => {
                pg.stop("immediate").await;
                let body = server.wait_ready_status(503).await;
                eprintln!("store down: /readyz says {body}");
                // The fault itself: the store stays away this long while
                // the clients keep typing.
                tokio::time::sleep(outage).await;
                pg.start_again().await;
            }
        }
        server.wait_ready_status(200).await;
        // Recovered without a restart of its own: every typist has more
        // acknowledged than before the fault.
        wait_for(&format!("typing resumed after {fault:?}"), || {
            progress
                .iter()
                .zip(&before)
                .all(|(p, b)| p.acked() > *b + 5)
        })
        .await;
        eprintln!(
            "{fault:?}: typing resumed {:?} after it began",
            at.elapsed()
        );
    }

    stop_tx.send(true).unwrap();
    let mut reports = Vec::new();
    for (p, task) in running {
        let report = task.await.expect("typist");
        eprintln!(
            "{}: {} typed, {} acknowledged, {} connections, closes {:?}, {} refused reconnects ({:?}…)",
            report.name,
            report.sent.len(),
            report.acked.len(),
            p.connects(),
            p.closes(),
            p.refusals().len(),
            p.refusals().first()
        );
        reports.push(report);
    }

    // Every client of a document converges with a fresh one.
    for doc in ["forgetful", "browser"] {
        let mut fresh = TestClient::connect_as(&server.ws(doc), &owner).await;
        fresh.wait_synced().await;
        let clients: Vec<&TestClient> = reports
            .iter()
            .filter(|r| (r.memory == Memory::Keeps) == (doc == "browser"))
            .map(|r| &r.client)
            .collect();
        wait_converged(&fresh, &clients).await;
    }

    // A fresh process finds everything acknowledged, and the browser-like
    // typist's every edit (its handshakes re-sent what was not).
    server.kill();
    let server = QuireProcess::start(&args);
    let owner = TestUser::sign_in(server.addr, OWNER_EMAIL).await;
    for doc in ["forgetful", "browser"] {
        let mut reader = TestClient::connect_as(&server.ws(doc), &owner).await;
        reader.wait_synced().await;
        let stored = numbers(&reader);
        for r in reports
            .iter()
            .filter(|r| (r.memory == Memory::Keeps) == (doc == "browser"))
        {
            let lost: Vec<_> = r.acked.difference(&stored).collect();
            assert!(
                lost.is_empty(),
                "{}: acknowledged but not stored: {lost:?}",
                r.name
            );
            if r.memory == Memory::Keeps {
                let lost: Vec<_> = r.sent.difference(&stored).collect();
                assert!(
                    lost.is_empty(),
                    "{}: typed and never stored: {lost:?}",
                    r.name
                );
            }
        }
    }
    eprintln!("{transport:?}: done in {:?}", started.elapsed());
}
