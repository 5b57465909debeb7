//! Decoding a client's update, refusing what stock Yjs clients cannot hold.
//!
//! Yjs reads client ids as JavaScript numbers; above 2^53 − 1 they lose
//! precision there, while yrs keeps them as `u64`s (with its debug
//! assertions on it panics on them; without, as in our builds, it silently
//! keeps only the low 53 bits). Either way an
//! update that mentions such an id would make the server's document and every
//! JavaScript replica disagree for good, so it is refused before anything of
//! it is applied.
//!
//! The check rides along the one decode the hot path already does: a lib0 v1
//! decoder that looks at every client id as yrs reads it (item ids, origins,
//! parents, delete set), so a valid update costs no second pass.

use quire_protocol::MAX_CLIENT_ID;
use yrs::encoding::read::{Cursor, Error, Read};
use yrs::updates::decoder::{Decode, Decoder};
use yrs::{Any, ClientID, ID, Update};

/// Why a client's update was refused before it was applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Not a lib0 v1 update.
    Undecodable,
    /// It mentions a client id above [`MAX_CLIENT_ID`].
    ClientIdTooLarge(u64),
    /// A yrs-only weak link: Yjs cannot read it, and its quoted ids bypass
    /// the decoder's client-id hooks.
    WeakLink,
}

impl Refusal {
    pub(crate) fn reason(&self) -> String {
        match self {
            Refusal::Undecodable => "undecodable update".to_owned(),
            Refusal::ClientIdTooLarge(id) => format!(
                "update refused: client id {id} is above 2^53 - 1, which JavaScript clients cannot represent"
            ),
            Refusal::WeakLink => "update refused: weak links are not part of Yjs".to_owned(),
        }
    }

    pub(crate) fn metric_label(&self) -> &'static str {
        match self {
            Refusal::Undecodable => "undecodable",
            Refusal::ClientIdTooLarge(_) => "client_id_too_large",
            Refusal::WeakLink => "weak_link",
        }
    }
}

/// Decodes a v1 update from a client, refusing client ids JavaScript cannot
/// represent.
pub(crate) fn decode_client_update(bytes: &[u8]) -> Result<Update, Refusal> {
    let mut decoder = CheckedDecoderV1 {
        cursor: Cursor::new(bytes),
        refused: None,
    };
    let decoded = Update::decode(&mut decoder);
    match (decoder.refused, decoded) {
        (Some(refusal), _) => Err(refusal),
        (None, Ok(update)) => Ok(update),
        (None, Err(_)) => Err(Refusal::Undecodable),
    }
}

const TYPE_REFS_WEAK: u8 = 7;

/// yrs's `DecoderV1`, plus a look at each client id before yrs turns it into
/// a [`ClientID`] (which would assert or truncate). Once something is refused
/// every further read fails, so yrs stops before it sees the id.
struct CheckedDecoderV1<'a> {
    cursor: Cursor<'a>,
    refused: Option<Refusal>,
}

impl CheckedDecoderV1<'_> {
    fn refuse(&mut self, refusal: Refusal) -> Error {
        self.refused.get_or_insert(refusal);
        Error::UnexpectedValue
    }

    fn checked_client(&mut self, client: u64) -> Result<ClientID, Error> {
        if client > MAX_CLIENT_ID {
            return Err(self.refuse(Refusal::ClientIdTooLarge(client)));
        }
        Ok(ClientID::new(client))
    }

    fn read_id(&mut self) -> Result<ID, Error> {
        let client: u64 = self.read_var()?;
        let client = self.checked_client(client)?;
        let clock: u32 = self.read_var()?;
        Ok(ID::new(client, clock))
    }
}

impl Read for CheckedDecoderV1<'_> {
    fn read_exact(&mut self, len: usize) -> Result<&[u8], Error> {
        if self.refused.is_some() {
            return Err(Error::UnexpectedValue);
        }
        self.cursor.read_exact(len)
    }

    fn read_u8(&mut self) -> Result<u8, Error> {
        if self.refused.is_some() {
            return Err(Error::UnexpectedValue);
        }
        self.cursor.read_u8()
    }
}

impl Decoder for CheckedDecoderV1<'_> {
    /// yrs calls this right before it reads each client id of a delete set
    /// with a plain varint read; peek at that id here.
    fn reset_ds_cur_val(&mut self) {
        let mut peek = Cursor {
            buf: self.cursor.buf,
            next: self.cursor.next,
        };
        if let Ok(client) = peek.read_var::<u64>()
            && client > MAX_CLIENT_ID
        {
            self.refuse(Refusal::ClientIdTooLarge(client));
        }
    }

    fn read_ds_clock(&mut self) -> Result<u32, Error> {
        self.read_var()
    }

    fn read_ds_len(&mut self) -> Result<u32, Error> {
        self.read_var()
    }

    fn read_left_id(&mut self) -> Result<ID, Error> {
        self.read_id()
    }

    fn read_right_id(&mut self) -> Result<ID, Error> {
        self.read_id()
    }

    fn read_client(&mut self) -> Result<ClientID, Error> {
        let client: u64 = self.read_var()?;
        self.checked_client(client)
    }

    fn read_info(&mut self) -> Result<u8, Error> {
        self.read_u8()
    }

    fn read_parent_info(&mut self) -> Result<bool, Error> {
        let info: u32 = self.read_var()?;
        Ok(info == 1)
    }

    fn read_type_ref(&mut self) -> Result<u8, Error> {
        let type_ref = self.read_u8()?;
        if type_ref == TYPE_REFS_WEAK {
            return Err(self.refuse(Refusal::WeakLink));
        }
        Ok(type_ref)
    }

    fn read_len(&mut self) -> Result<u32, Error> {
        self.read_var()
    }

    fn read_any(&mut self) -> Result<Any, Error> {
        Any::decode(self)
    }

    fn read_json(&mut self) -> Result<Any, Error> {
        let src = self.read_string()?;
        Any::from_json(src)
    }

    fn read_key(&mut self) -> Result<std::sync::Arc<str>, Error> {
        Ok(self.read_string()?.into())
    }

    fn read_to_end(&mut self) -> Result<&[u8], Error> {
        Ok(&self.cursor.buf[self.cursor.next..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quire_protocol::write_var_uint;
    use yrs::updates::encoder::Encode;
    use yrs::{GetString, Map, ReadTxn, Text, Transact, WriteTxn};

    /// One client's insert of "a" into the root text "text": what Yjs writes
    /// for `doc.clientID = client; doc.getText('text').insert(0, 'a')`.
    fn insert_by(client: u64) -> Vec<u8> {
        let mut u = vec![1, 1];
        write_var_uint(&mut u, client);
        // clock 0; info 4 (a string, no origins); parent: the root named
        // "text"; the string "a"; an empty delete set
        u.extend_from_slice(&[0, 4, 1, 4, b't', b'e', b'x', b't', 1, b'a', 0]);
        u
    }

    /// An update with no structs whose delete set deletes one item of `client`.
    fn deletion_by(client: u64) -> Vec<u8> {
        let mut u = vec![0, 1];
        write_var_uint(&mut u, client);
        u.extend_from_slice(&[1, 0, 1]);
        u
    }

    /// An insert by client 1 whose left origin is an item of `client`.
    fn insert_after(client: u64) -> Vec<u8> {
        // structs: 1 client; 1 block; client 1, clock 0;
        // info 0x84 (has origin, content string); origin (client, 0); "b"
        let mut u = vec![1, 1, 1, 0, 0x84];
        write_var_uint(&mut u, client);
        u.extend_from_slice(&[0, 1, b'b', 0]);
        u
    }

    fn text_of(update: Update) -> String {
        let doc = yrs::Doc::new();
        let mut txn = doc.transact_mut();
        let text = txn.get_or_insert_text("text");
        txn.apply_update(update).unwrap();
        text.get_string(&txn)
    }

    #[test]
    fn the_insert_fixture_is_what_yrs_writes() {
        let doc = yrs::Doc::with_client_id(1);
        let mut txn = doc.transact_mut();
        txn.get_or_insert_text("text").insert(&mut txn, 0, "a");
        assert_eq!(txn.encode_update_v1(), insert_by(1));
    }

    #[test]
    fn accepts_client_ids_up_to_2_pow_53_minus_1() {
        for id in [1, 1 << 32, MAX_CLIENT_ID] {
            let update = decode_client_update(&insert_by(id)).unwrap();
            assert_eq!(text_of(update), "a");
            let update = decode_client_update(&deletion_by(id)).unwrap();
            assert!(update.delete_set().contains(&ID::new(ClientID::new(id), 0)));
            assert!(decode_client_update(&insert_after(id)).is_ok());
        }
    }

    #[test]
    fn refuses_item_ids_javascript_cannot_represent() {
        for id in [MAX_CLIENT_ID + 1, 1 << 60, u64::MAX] {
            assert_eq!(
                decode_client_update(&insert_by(id)).unwrap_err(),
                Refusal::ClientIdTooLarge(id)
            );
        }
    }

    #[test]
    fn refuses_such_ids_in_the_delete_set_alone() {
        for id in [MAX_CLIENT_ID + 1, 1 << 60, u64::MAX] {
            assert_eq!(
                decode_client_update(&deletion_by(id)).unwrap_err(),
                Refusal::ClientIdTooLarge(id)
            );
        }
    }

    #[test]
    fn refuses_such_ids_in_an_origin() {
        for id in [MAX_CLIENT_ID + 1, u64::MAX] {
            assert_eq!(
                decode_client_update(&insert_after(id)).unwrap_err(),
                Refusal::ClientIdTooLarge(id)
            );
        }
    }

    #[test]
    fn decodes_real_updates_like_yrs() {
        let doc = yrs::Doc::with_client_id(MAX_CLIENT_ID);
        let mut txn = doc.transact_mut();
        let text = txn.get_or_insert_text("text");
        text.insert(&mut txn, 0, "hello world");
        text.remove_range(&mut txn, 2, 3);
        let map = txn.get_or_insert_map("m");
        map.insert(&mut txn, "k", yrs::Any::from(vec![1.5, 2.0]));
        let bytes = txn.encode_state_as_update_v1(&yrs::StateVector::default());
        let ours = decode_client_update(&bytes).unwrap();
        let theirs = Update::decode_v1(&bytes).unwrap();
        assert_eq!(ours.encode_v1(), theirs.encode_v1());
    }

    #[test]
    fn garbage_is_undecodable() {
        assert_eq!(
            decode_client_update(&[0xff, 0xff]).unwrap_err(),
            Refusal::Undecodable
        );
        assert_eq!(decode_client_update(&[]).unwrap_err(), Refusal::Undecodable);
    }
}
