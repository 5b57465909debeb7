//! Input: one WebSocket frame. `quire_protocol::Message::decode`, and what
//! decodes re-encodes to the same message.
//! Invariants: `quire_hub::harness::check_message`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(violation) = quire_hub::harness::check_message(data) {
        panic!("{violation}");
    }
});
