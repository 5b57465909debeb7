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

/// Declares an opaque string id: generated server-side, compared and stored
/// as text, never parsed for meaning.
macro_rules! opaque_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            /// A fresh random id (UUID v7: time-ordered, so new rows append
            /// at the end of their index).
            pub fn generate() -> Self {
                $name(uuid::Uuid::now_v7().simple().to_string())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.0)
            }
        }
    };
}

opaque_id!(
    /// An account.
    UserId
);
opaque_id!(
    /// A workspace (organization): documents and members belong to one.
    WorkspaceId
);
opaque_id!(
    /// One sign-in: a refresh-token family and the access tokens it minted.
    /// Revoking it signs that browser out and closes its sockets.
    AuthSessionId
);

/// What a person may do with one document, weakest first, so that `>=`
/// compares privileges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DocRole {
    Viewer,
    Commenter,
    Editor,
    Owner,
}

impl DocRole {
    pub fn as_str(self) -> &'static str {
        match self {
            DocRole::Viewer => "viewer",
            DocRole::Commenter => "commenter",
            DocRole::Editor => "editor",
            DocRole::Owner => "owner",
        }
    }

    /// Whether this role may change the document's text. Commenters may not:
    /// comments are not part of the text (and are not built yet), so over the
    /// sync protocol a commenter is read-only.
    pub fn can_edit(self) -> bool {
        self >= DocRole::Editor
    }
}

impl FromStr for DocRole {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "viewer" => DocRole::Viewer,
            "commenter" => DocRole::Commenter,
            "editor" => DocRole::Editor,
            "owner" => DocRole::Owner,
            _ => return Err(UnknownRole(s.to_string())),
        })
    }
}

/// A member's role in a workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkspaceRole {
    Member,
    Admin,
}

impl WorkspaceRole {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkspaceRole::Member => "member",
            WorkspaceRole::Admin => "admin",
        }
    }
}

impl FromStr for WorkspaceRole {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "member" => WorkspaceRole::Member,
            "admin" => WorkspaceRole::Admin,
            _ => return Err(UnknownRole(s.to_string())),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?}")]
pub struct UnknownRole(pub String);

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

    #[test]
    fn roles_order_by_privilege_and_round_trip() {
        assert!(DocRole::Owner > DocRole::Editor && DocRole::Commenter > DocRole::Viewer);
        assert!(DocRole::Editor.can_edit() && !DocRole::Commenter.can_edit());
        for r in [
            DocRole::Viewer,
            DocRole::Commenter,
            DocRole::Editor,
            DocRole::Owner,
        ] {
            assert_eq!(r.as_str().parse::<DocRole>().unwrap(), r);
        }
        assert!("root".parse::<DocRole>().is_err());
        assert_eq!(
            "admin".parse::<WorkspaceRole>().unwrap(),
            WorkspaceRole::Admin
        );
    }
}
