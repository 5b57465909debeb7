//! The SIGKILL crash test of `crash.rs` again, with PostgreSQL as the store
//! (`quire serve --database-url … --single-node`): the same test body,
//! compiled into a binary whose name makes `common::use_postgres()` true.

#[path = "crash.rs"]
mod suite;
