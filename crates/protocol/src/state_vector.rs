//! The state vector a sync step 1 carries: per Yjs client, the clock up to
//! which the sender holds its updates.
//!
//! Read here rather than by yrs, whose decoder reserves room for the
//! declared number of entries before reading any: five bytes declaring 2^29
//! made it reserve 16 GiB and touch 1 GiB (found by the `protocol_message`
//! fuzz target). Here a count is believed only as far as the bytes that
//! follow can hold that many entries (two bytes at least each).

use crate::lib0::Reader;
use crate::{MAX_CLIENT_ID, ProtocolError};

/// Decodes a lib0 v1 state vector into `(client id, clock)` pairs, in the
/// order sent. Bytes after the last entry are ignored, as Yjs and yrs do.
pub fn decode_state_vector(bytes: &[u8]) -> Result<Vec<(u64, u32)>, ProtocolError> {
    let mut r = Reader::new(bytes);
    let n = r.read_var_uint()?;
    if n > (r.remaining() / 2) as u64 {
        return Err(ProtocolError::BadStateVector(
            "more entries than its bytes can hold",
        ));
    }
    let mut entries = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let client = r.read_var_uint()?;
        if client > MAX_CLIENT_ID {
            return Err(ProtocolError::ClientIdTooLarge(client));
        }
        let clock = u32::try_from(r.read_var_uint()?)
            .map_err(|_| ProtocolError::BadStateVector("a clock above 2^32 - 1"))?;
        entries.push((client, clock));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::write_var_uint;

    #[test]
    fn reads_what_yrs_writes() {
        let doc = yrs::Doc::with_client_id(MAX_CLIENT_ID);
        {
            use yrs::{Text, Transact, WriteTxn};
            let mut txn = doc.transact_mut();
            txn.get_or_insert_text("t").insert(&mut txn, 0, "hello");
        }
        let sv = {
            use yrs::updates::encoder::Encode;
            use yrs::{ReadTxn, Transact};
            doc.transact().state_vector().encode_v1()
        };
        assert_eq!(decode_state_vector(&sv), Ok(vec![(MAX_CLIENT_ID, 5)]));
        assert_eq!(decode_state_vector(&[0]), Ok(vec![]));
    }

    #[test]
    fn a_count_its_bytes_cannot_hold_is_refused_before_anything_is_reserved() {
        for count in [2u64, 1 << 29, u64::from(u32::MAX), u64::MAX] {
            let mut sv = Vec::new();
            write_var_uint(&mut sv, count);
            sv.extend_from_slice(&[1, 1]); // room for one entry
            assert_eq!(
                decode_state_vector(&sv),
                Err(ProtocolError::BadStateVector(
                    "more entries than its bytes can hold"
                )),
                "{count}"
            );
        }
    }

    #[test]
    fn refuses_client_ids_and_clocks_out_of_range() {
        let mut sv = vec![1];
        write_var_uint(&mut sv, MAX_CLIENT_ID + 1);
        sv.push(0);
        assert_eq!(
            decode_state_vector(&sv),
            Err(ProtocolError::ClientIdTooLarge(MAX_CLIENT_ID + 1))
        );
        let mut sv = vec![1, 7];
        write_var_uint(&mut sv, 1 << 32);
        assert!(matches!(
            decode_state_vector(&sv),
            Err(ProtocolError::BadStateVector(_))
        ));
        assert_eq!(
            decode_state_vector(&[1, 7, 0x80]),
            Err(ProtocolError::Truncated)
        );
    }
}
