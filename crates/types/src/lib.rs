//! Newtypes shared by every layer: document ids, node ids, log sequence numbers
//! and times. They carry no behaviour beyond validation, so that the protocol,
//! store, bus and hub crates can agree on identities without depending on each
//! other.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Longest accepted document id, in bytes. Ids travel in URLs, log lines and
/// Redis channel names, so they stay short.
pub const MAX_DOC_ID_LEN: usize = 128;

/// A document's id, validated at the edge: 1–128 characters from
/// `[A-Za-z0-9_.-]`, not starting with a dot. Anything else is refused before it
/// reaches the hub or the store.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct DocId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocIdError {
    #[error("document id is empty")]
    Empty,
    #[error("document id is longer than {MAX_DOC_ID_LEN} bytes")]
    TooLong,
    #[error(
        "document id may contain only letters, digits, '-', '_' and '.', and may not start with '.'"
    )]
    BadCharacter,
}

impl DocId {
    pub fn new(id: impl Into<String>) -> Result<Self, DocIdError> {
        let id = id.into();
        if id.is_empty() {
            return Err(DocIdError::Empty);
        }
        if id.len() > MAX_DOC_ID_LEN {
            return Err(DocIdError::TooLong);
        }
        let ok = id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !ok || id.starts_with('.') {
            return Err(DocIdError::BadCharacter);
        }
        Ok(DocId(id))
    }

    /// A fresh random id, as the API hands out for new documents.
    pub fn generate() -> Self {
        DocId(uuid::Uuid::now_v7().simple().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for DocId {
    type Err = DocIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DocId::new(s)
    }
}

impl<'de> Deserialize<'de> for DocId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        DocId::new(s).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for DocId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for DocId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DocId({})", self.0)
    }
}

impl AsRef<str> for DocId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Position of an update in one document's log. Sequence numbers are per
/// document, start at 1, and have no gaps among committed rows that have not
/// been compacted away.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Seq(pub i64);

/// Identity of one running Quire node; it tags bus messages so that a node drops
/// its own echoes.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeId(pub String);

impl NodeId {
    pub fn generate() -> Self {
        NodeId(uuid::Uuid::new_v4().simple().to_string()[..12].to_string())
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({})", self.0)
    }
}

/// Milliseconds since the Unix epoch. Stored as a plain integer so both SQLite
/// and PostgreSQL hold it without time-zone conversions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UnixMillis(pub i64);

impl UnixMillis {
    pub fn now() -> Self {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        UnixMillis(d.as_millis() as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doc_ids_are_validated() {
        assert!(DocId::new("abc-DEF_1.2").is_ok());
        assert_eq!(DocId::new(""), Err(DocIdError::Empty));
        assert_eq!(DocId::new("a".repeat(129)), Err(DocIdError::TooLong));
        assert_eq!(DocId::new("a/b"), Err(DocIdError::BadCharacter));
        assert_eq!(DocId::new(".hidden"), Err(DocIdError::BadCharacter));
        assert_eq!(DocId::new("é"), Err(DocIdError::BadCharacter));
        assert!(DocId::new(DocId::generate().as_str()).is_ok());
    }
}
