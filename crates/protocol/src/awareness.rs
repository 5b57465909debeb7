//! Awareness updates (presence: cursors, names). The hub treats awareness as
//! untrusted input, so it needs the client ids and sizes inside an update
//! without building a JSON tree: entries keep their state as the raw JSON text.

use crate::lib0::{Reader, write_var_bytes, write_var_uint};
use crate::{MAX_CLIENT_ID, ProtocolError};

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
    /// Decodes an update, refusing client ids above [`MAX_CLIENT_ID`].
    pub fn decode(bytes: &'a [u8]) -> Result<Self, ProtocolError> {
        let mut r = Reader::new(bytes);
        let n = r.read_var_uint()?;
        if n > MAX_ENTRIES {
            return Err(ProtocolError::BadAwareness("too many entries"));
        }
        let mut entries = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let client_id = r.read_var_uint()?;
            if client_id > MAX_CLIENT_ID {
                return Err(ProtocolError::ClientIdTooLarge(client_id));
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn one_entry(client_id: u64) -> Vec<u8> {
        encode_awareness_update([(client_id, 1, "{}")].into_iter())
    }

    #[test]
    fn accepts_the_largest_client_id_javascript_represents() {
        let bytes = one_entry(MAX_CLIENT_ID);
        let update = AwarenessUpdate::decode(&bytes).unwrap();
        assert_eq!(update.entries[0].client_id, MAX_CLIENT_ID);
    }

    #[test]
    fn refuses_client_ids_javascript_cannot_represent() {
        for id in [MAX_CLIENT_ID + 1, 1 << 60, u64::MAX] {
            assert_eq!(
                AwarenessUpdate::decode(&one_entry(id)),
                Err(ProtocolError::ClientIdTooLarge(id))
            );
        }
        // Behind an acceptable entry too.
        let bytes = encode_awareness_update([(7, 1, "{}"), (1 << 53, 1, "null")].into_iter());
        assert_eq!(
            AwarenessUpdate::decode(&bytes),
            Err(ProtocolError::ClientIdTooLarge(1 << 53))
        );
    }
}
