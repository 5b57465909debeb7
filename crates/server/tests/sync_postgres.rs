//! The WebSocket suite of `sync.rs` again, with PostgreSQL as the store: the
//! same test bodies, compiled into a binary whose name makes
//! `common::use_postgres()` true (each server gets a fresh schema).

#[path = "sync.rs"]
mod suite;
