//! Input: a script (`quire_hub::harness::Script::decode`) of frames sent by
//! a writer with durable acks, a writer without, and a viewer, to one fresh
//! document of a whole in-process hub (real SQLite store, in-process bus).
//! Invariants: `quire_hub::harness::Rig::run`.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use quire_hub::harness::{Rig, Script};

/// One hub for the whole fuzzing process, as a node serves many documents.
static RIG: LazyLock<Rig> = LazyLock::new(Rig::new);

fuzz_target!(|data: &[u8]| {
    if let Err(violation) = RIG.run(&Script::decode(data)) {
        panic!("{violation}");
    }
});
