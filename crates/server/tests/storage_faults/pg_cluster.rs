//! A private PostgreSQL cluster for one test, so that the test may stop and
//! restart it: the machine's shared server (127.0.0.1:5432) is used by
//! other suites at the same time and is never touched.
//!
//! `initdb` into a temporary folder, then `pg_ctl` on a free port, listening
//! on 127.0.0.1 and on a Unix socket in that folder, with trust
//! authentication. PostgreSQL refuses to run as root, so when the test runs
//! as root the cluster runs as the `postgres` account. Dropping the cluster
//! stops it (immediately) and removes its folder, also when the test fails.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

pub struct PgCluster {
    ctl: Arc<Ctl>,
    port: u16,
    /// Removed after the server has stopped (fields drop after `drop`).
    dir: tempfile::TempDir,
}

impl PgCluster {
    /// Creates and starts a cluster. Panics, saying what is missing, when
    /// the PostgreSQL server binaries are not installed.
    pub async fn start() -> PgCluster {
        tokio::task::spawn_blocking(Self::start_blocking)
            .await
            .expect("start the cluster")
    }

    fn start_blocking() -> PgCluster {
        let bin = server_binaries().unwrap_or_else(|| {
            panic!(
                "this test needs the PostgreSQL server binaries (initdb, pg_ctl), found in \
                 $QUIRE_TEST_PG_BIN or /usr/lib/postgresql/<version>/bin; install Debian's \
                 `postgresql` package (.ci/run does)"
            )
        });
        let dir = tempfile::tempdir().expect("a temporary folder");
        let run_as = if rustix::process::geteuid().is_root() {
            let ids = postgres_account().expect(
                "running as root, and PostgreSQL refuses to: the `postgres` account is needed",
            );
            std::os::unix::fs::chown(dir.path(), Some(ids.0), Some(ids.1))
                .expect("hand the folder to postgres");
            Some(ids)
        } else {
            None
        };
        let port = free_port();
        // fsync off: the faults here are process restarts, not power cuts,
        // and a committed transaction is in the WAL file (the page cache)
        // either way; it spares the machine's shared disk.
        let opts = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=40 \
             -c shared_buffers=16MB",
            dir.path().display()
        );
        let ctl = Arc::new(Ctl {
            bin,
            data: dir.path().join("data").display().to_string(),
            log: dir.path().join("server.log").display().to_string(),
            opts,
            run_as,
        });
        ctl.run(
            "initdb",
            &[
                "-D",
                &ctl.data,
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-sync",
                "--no-instructions",
            ],
        );
        ctl.pg_ctl(&["start", "-o", &ctl.opts]);
        PgCluster { ctl, port, dir }
    }

    /// A URL that reaches the cluster over TCP.
    pub fn tcp_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// A URL that reaches the cluster over its Unix socket.
    pub fn socket_url(&self) -> String {
        format!(
            "postgres://postgres@localhost/postgres?host={}&port={}",
            self.dir.path().display(),
            self.port
        )
    }

    /// `pg_ctl restart -m <mode>`: `fast` ends every session and shuts down
    /// cleanly; `immediate` is a crash (recovery from the WAL at start).
    pub async fn restart(&self, mode: &'static str) {
        self.pg_ctl(vec!["restart", "-m", mode]).await;
    }

    pub async fn stop(&self, mode: &'static str) {
        self.pg_ctl(vec!["stop", "-m", mode]).await;
    }

    /// Starts the stopped cluster again.
    pub async fn start_again(&self) {
        let ctl = self.ctl.clone();
        tokio::task::spawn_blocking(move || ctl.pg_ctl(&["start", "-o", &ctl.opts]))
            .await
            .unwrap();
    }

    async fn pg_ctl(&self, args: Vec<&'static str>) {
        let ctl = self.ctl.clone();
        tokio::task::spawn_blocking(move || ctl.pg_ctl(&args))
            .await
            .unwrap();
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        // The server must not outlive the test (nor keep its folder busy).
        let ctl = &self.ctl;
        let out = ctl.command(
            "pg_ctl",
            &["stop", "-D", &ctl.data, "-m", "immediate", "-w"],
        );
        if let Ok(out) = out
            && !out.status.success()
            && Path::new(&ctl.data).join("postmaster.pid").exists()
        {
            eprintln!(
                "could not stop the test's PostgreSQL cluster: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// What running the cluster's tools takes (shared with blocking threads).
struct Ctl {
    bin: PathBuf,
    data: String,
    log: String,
    /// The server's options (`pg_ctl start -o`).
    opts: String,
    run_as: Option<(u32, u32)>,
}

impl Ctl {
    fn command(&self, tool: &str, args: &[&str]) -> std::io::Result<Output> {
        let mut cmd = Command::new(self.bin.join(tool));
        cmd.args(args);
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid);
            // Its own home folder, not root's, which it may not read.
            cmd.current_dir("/").env("HOME", "/tmp");
        }
        cmd.output()
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let out = self
            .command(tool, args)
            .unwrap_or_else(|e| panic!("run {tool}: {e}"));
        if !out.status.success() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            panic!(
                "{tool} {args:?} failed: {}\n{}\nserver log:\n{log}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    /// `pg_ctl <args>` on this cluster, waiting (`-w`, up to 60 s) until the
    /// server is up or down.
    fn pg_ctl(&self, args: &[&str]) {
        let mut all = vec!["-D", &self.data, "-l", &self.log, "-w", "-t", "60"];
        all.extend_from_slice(args);
        self.run("pg_ctl", &all);
    }
}

/// The folder holding `initdb` and `pg_ctl`: `$QUIRE_TEST_PG_BIN`, or the
/// newest `/usr/lib/postgresql/<version>/bin` (Debian's layout).
fn server_binaries() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("QUIRE_TEST_PG_BIN") {
        return Some(PathBuf::from(dir)).filter(|d| d.join("pg_ctl").exists());
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("pg_ctl").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// The `postgres` account's uid and gid, from /etc/passwd.
fn postgres_account() -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        if fields.next()? != "postgres" {
            return None;
        }
        let uid = fields.nth(1)?.parse().ok()?;
        let gid = fields.next()?.parse().ok()?;
        Some((uid, gid))
    })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}
