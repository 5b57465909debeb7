//! The few lib0 primitives the y-websocket framing uses: unsigned varints,
//! length-prefixed byte strings and UTF-8 strings. Reading borrows from the
//! input so that a decoded message points into the received frame.

use crate::ProtocolError;

/// lib0 writes JavaScript numbers, so no valid varint exceeds 2^53; ten bytes
/// would be needed for a full u64 and anything longer is malformed.
const MAX_VARINT_BYTES: usize = 10;

pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub fn is_empty(&self) -> bool {
        self.pos == self.buf.len()
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn read_var_uint(&mut self) -> Result<u64, ProtocolError> {
        let mut value: u64 = 0;
        for i in 0..MAX_VARINT_BYTES {
            let byte = *self.buf.get(self.pos).ok_or(ProtocolError::Truncated)?;
            self.pos += 1;
            let bits = u64::from(byte & 0x7f);
            let shift = 7 * i as u32;
            if shift >= 64 || (shift > 0 && bits >> (64 - shift) != 0) {
                return Err(ProtocolError::BadVarint);
            }
            value |= bits << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(ProtocolError::BadVarint)
    }

    pub fn read_var_bytes(&mut self) -> Result<&'a [u8], ProtocolError> {
        let len = self.read_var_uint()?;
        let len = usize::try_from(len).map_err(|_| ProtocolError::Truncated)?;
        let end = self.pos.checked_add(len).ok_or(ProtocolError::Truncated)?;
        let bytes = self
            .buf
            .get(self.pos..end)
            .ok_or(ProtocolError::Truncated)?;
        self.pos = end;
        Ok(bytes)
    }

    pub fn read_var_string(&mut self) -> Result<&'a str, ProtocolError> {
        std::str::from_utf8(self.read_var_bytes()?).map_err(|_| ProtocolError::BadUtf8)
    }
}

pub fn write_var_uint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

pub fn write_var_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    write_var_uint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

pub fn var_uint_len(mut value: u64) -> usize {
    let mut n = 1;
    while value >= 0x80 {
        value >>= 7;
        n += 1;
    }
    n
}
