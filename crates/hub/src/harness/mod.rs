//! Hostile input, and what the hub must do with it (feature `harness`).
//!
//! One harness for two drivers: the coverage-guided fuzz targets in `fuzz/`
//! (nightly, `cargo fuzz`; see `docs/fuzzing.md`) and the property tests in
//! `tests/hostile_frames.rs` (stable, part of `make test`), which also
//! replay the committed corpus. Each target is a function from bytes to
//! `Result<(), Violation>`:
//!
//! | target | function | input |
//! |---|---|---|
//! | `protocol_message` | [`check_message`] | one frame |
//! | `awareness` | [`check_awareness`] | awareness updates from two sessions, [`split`] |
//! | `update_scan` | [`check_updates`] | a sequence of updates, [`split`] |
//! | `hub_sessions` | [`Rig::run`] of [`Script::decode`] | a script |
//!
//! The invariants (issue 12): nothing a client sends panics or aborts the
//! node; a read-only session never changes a document; every refusal is a
//! close with a [`CloseCode`](crate::CloseCode) (or, for a viewer's update,
//! a permission-denied message), never a silent drop; a refused update
//! changes nothing; and the hub goes on serving a well-behaved client.

mod checks;
mod client;
mod oracle;
mod panics;
mod rig;
mod script;
mod seeds;

pub use checks::{
    CONTENT_LIMITS, MAX_AWARENESS_CLIENTS, MAX_AWARENESS_STATE, check_awareness, check_message,
    check_updates, join, split,
};
pub use client::updates;
pub use rig::{DEADLINE, Rig, rig_config};
pub use script::{
    Action, ClientRef, Edit, Payload, Presence, ROLES, Role, SESSIONS, Script, State, Step, caps,
};
pub use seeds::{Seed, Target, seeds};

/// An invariant the hub broke. Each names the step (frame) of the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    #[error("the hub panicked {0} time(s) (it may have caught them)")]
    Panicked(usize),
    #[error("step {step}: a frame the hub must refuse left session {session} open")]
    NotClosed { step: usize, session: usize },
    #[error("step {step}: session {session} (3: the probe) closed with {close:?}")]
    UnexpectedClose {
        step: usize,
        session: usize,
        close: crate::CloseFrame,
    },
    #[error("step {step}: a viewer's update message got no permission-denied")]
    NotDenied { step: usize },
    #[error("step {step}: a read-only session's frame changed the document")]
    ReadOnlyChanged { step: usize },
    #[error("step {step}: a refused or parked update changed the document")]
    RefusedChanged { step: usize },
    #[error("step {step}: yrs failed part-way through an update the checks let through")]
    Broken { step: usize },
    #[error("step {step}: waited more than {DEADLINE:?} for {what}")]
    Hung { step: usize, what: &'static str },
    #[error("step {step}: the document is gone")]
    DocumentGone { step: usize },
    #[error("step {step}: joining failed: {error}")]
    JoinFailed { step: usize, error: String },
    #[error("session {session} was acknowledged {durable} after {acked}, having sent {sent}")]
    BadAck {
        session: usize,
        durable: u64,
        acked: u64,
        sent: u64,
    },
    #[error("the hub sent {0}")]
    SentBadFrame(String),
    #[error("the stored document does not load: {0}")]
    NotReloadable(String),
    #[error("the document loaded again differs from the live one")]
    ReloadDiffers,
    #[error("a well-behaved writer was not served afterwards: {0}")]
    NotServed(String),
    #[error("does not round-trip: {0}")]
    RoundTrip(String),
    #[error("awareness: {0}")]
    Awareness(String),
    #[error("content: {0}")]
    Content(String),
    #[error("the scan and yrs read an update differently: {0}")]
    ScanDisagrees(String),
}
