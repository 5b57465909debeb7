//! Awareness updates (presence: cursors, names). The hub treats awareness as
//! untrusted input, so it needs the client ids and sizes inside an update
//! without building a JSON tree: entries keep their state as the raw JSON text.

use crate::ProtocolError;
use crate::lib0::{Reader, write_var_bytes, write_var_uint};

/// One client's state inside an awareness update. `state` is JSON text;
/// `"null"` means the client went away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwarenessEntry<'a> {
    pub client_id: u64,
    pub clock: u64,
    pub state: &'a str,
}

impl AwarenessEntry<'_> {
    pub fn is_removal(&self) -> bool {
        self.state == "null"
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwarenessUpdate<'a> {
    pub entries: Vec<AwarenessEntry<'a>>,
}

/// More entries than any real awareness update carries; bounds the allocation
/// a hostile length prefix can cause.
const MAX_ENTRIES: u64 = 10_000;

impl<'a> AwarenessUpdate<'a> {
    pub fn decode(bytes: &'a [u8]) -> Result<Self, ProtocolError> {
        let mut r = Reader::new(bytes);
        let n = r.read_var_uint()?;
        if n > MAX_ENTRIES {
            return Err(ProtocolError::BadAwareness("too many entries"));
        }
        let mut entries = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let client_id = r.read_var_uint()?;
            let clock = r.read_var_uint()?;
            let state = r.read_var_string()?;
            entries.push(AwarenessEntry {
                client_id,
                clock,
                state,
            });
        }
        if !r.is_empty() {
            return Err(ProtocolError::TrailingBytes);
        }
        Ok(AwarenessUpdate { entries })
    }
}

/// Encodes an awareness update from `(client id, clock, JSON state)` triples.
pub fn encode_awareness_update<'s>(
    entries: impl ExactSizeIterator<Item = (u64, u64, &'s str)>,
) -> Vec<u8> {
    let mut out = Vec::new();
    write_var_uint(&mut out, entries.len() as u64);
    for (client_id, clock, state) in entries {
        write_var_uint(&mut out, client_id);
        write_var_uint(&mut out, clock);
        write_var_bytes(&mut out, state.as_bytes());
    }
    out
}
