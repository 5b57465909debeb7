//! Faults on the storage side, made for real where this machine allows:
//! a private PostgreSQL cluster restarted while clients type
//! ([`postgres_restart`]), and the embedded SQLite store's filesystem
//! filled up ([`disk_full`]). Each runs a real `quire serve` process and
//! real WebSocket clients, and checks the durability contract (DESIGN.md
//! §3): nothing acknowledged is lost, nothing is acknowledged that was not
//! committed, and the server recovers by itself once storage is back.
//!
//! The slow-disk case needs no process: `crates/hub/tests/slow_store.rs`.

#[path = "../common/mod.rs"]
mod common;

mod disk_full;
mod pg_cluster;
mod postgres_restart;
mod process;
mod small_fs;
mod typist;
