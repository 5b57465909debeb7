//! Input: a sequence of updates (length-prefixed parts).
//! `quire_hub::update_scan::scan`, then the whole content path
//! (`quire_hub::content::Content::offer`) as a client's and as a peer's.
//! Invariants: `quire_hub::harness::check_updates`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(violation) = quire_hub::harness::check_updates(data) {
        panic!("{violation}");
    }
});
