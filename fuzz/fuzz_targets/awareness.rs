//! Input: awareness updates from two sessions in turn (length-prefixed
//! parts). `AwarenessUpdate::decode`, then the hub's presence handling:
//! ownership of client ids, size limits, leaving.
//! Invariants: `quire_hub::harness::check_awareness`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(violation) = quire_hub::harness::check_awareness(data) {
        panic!("{violation}");
    }
});
