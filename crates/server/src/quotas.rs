//! Per-account quotas: how many documents an account may own
//! (`--max-documents-per-account`) and how many stored bytes those documents
//! may take (`--max-account-bytes`), whoever wrote them. 0 lifts a limit.
//!
//! Both are enforced where a document is created (403 `quota_exceeded`,
//! naming the quota and its numbers), and the byte quota also while editing:
//! each writing session joins the hub with the room its document's owner has
//! left ([`session_quota`]), and the hub closes a session whose update would
//! pass it (4413). That room is computed at the join, so documents of one
//! owner growing at the same time can each use it: the overshoot is at most
//! one quota's worth per document being written at once (docs/security.md).
//! Creation checks too are a read then a write, so concurrent creates by one
//! account can pass the document limit by as many as are in flight.

use std::fmt;

use quire_store::{AccountUsage, DocAccess};
use quire_types::{DocId, UserId};
use serde::Serialize;

use crate::AppState;
use crate::error::ApiError;

/// Which quota a refusal is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Quota {
    Documents,
    Bytes,
}

/// A refusal: the quota, what the account uses and what it may.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuotaExceeded {
    #[serde(rename = "name")]
    pub quota: Quota,
    pub used: u64,
    pub limit: u64,
}

impl fmt::Display for QuotaExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.quota {
            Quota::Documents => write!(
                f,
                "You have {} documents, the most this server allows. Delete some to create more.",
                self.used
            ),
            Quota::Bytes => write!(
                f,
                "Your documents take {} of the {} this server allows each account. Delete some to make room.",
                human_bytes(self.used),
                human_bytes(self.limit)
            ),
        }
    }
}

/// The configured limits, `None` where there is none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Limits {
    pub documents: Option<u64>,
    pub bytes: Option<u64>,
}

impl Limits {
    pub fn of(state: &AppState) -> Limits {
        let limit = |n: u64| (n > 0).then_some(n);
        Limits {
            documents: limit(state.config.max_documents_per_account),
            bytes: limit(state.config.max_account_bytes),
        }
    }

    /// The quota `usage` has reached, if any: the next document would be
    /// one too many, or the bytes are used up.
    fn reached(&self, usage: AccountUsage) -> Option<QuotaExceeded> {
        if let Some(limit) = self.documents
            && usage.documents >= limit
        {
            return Some(QuotaExceeded {
                quota: Quota::Documents,
                used: usage.documents,
                limit,
            });
        }
        if let Some(limit) = self.bytes
            && usage.bytes >= limit
        {
            return Some(QuotaExceeded {
                quota: Quota::Bytes,
                used: usage.bytes,
                limit,
            });
        }
        None
    }
}

/// What `GET /api/me` shows, so that the web app can warn before a refusal.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct AccountQuotas {
    pub usage: AccountUsage,
    pub quotas: Limits,
}

pub async fn of_account(state: &AppState, user: &UserId) -> Result<AccountQuotas, ApiError> {
    Ok(AccountQuotas {
        usage: state.hub.store().account_usage(user).await?,
        quotas: Limits::of(state),
    })
}

/// Refuses a new document for `owner` when it would pass a quota.
pub async fn check_create(state: &AppState, owner: &UserId) -> Result<(), ApiError> {
    let limits = Limits::of(state);
    if limits.documents.is_none() && limits.bytes.is_none() {
        return Ok(());
    }
    let usage = state.hub.store().account_usage(owner).await?;
    match limits.reached(usage) {
        Some(refusal) => Err(ApiError::QuotaExceeded(refusal)),
        None => Ok(()),
    }
}

/// The size a session may grow `doc` to ([`quire_hub::JoinOptions::quota_bytes`]):
/// its stored size now plus the room its owner has left. `None` when nothing
/// limits it: no byte quota, a session that cannot write, or a document
/// from before accounts, which has no owner to charge.
pub async fn session_quota(
    state: &AppState,
    doc: &DocId,
    access: &DocAccess,
) -> Result<Option<usize>, ApiError> {
    let (Some(limit), Some(owner)) = (Limits::of(state).bytes, access.owner.as_ref()) else {
        return Ok(None);
    };
    if !access.role.can_edit() {
        return Ok(None);
    }
    let store = state.hub.store();
    let usage = store.account_usage(owner).await?;
    let current = store.stored_bytes(doc).await?.unwrap_or(0);
    Ok(Some(room_to_grow(current, usage.bytes, limit)))
}

/// `current + (limit − used)`, never below `current` (compaction can leave
/// an account above its quota: the document keeps what it has, and grows
/// no further) and saturating rather than wrapping.
fn room_to_grow(current: u64, used: u64, limit: u64) -> usize {
    let total = current.saturating_add(limit.saturating_sub(used));
    usize::try_from(total).unwrap_or(usize::MAX)
}

/// `1.5 MiB`: sizes for people, in the binary units the flags use.
fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} bytes");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    let digits = if value < 10.0 { 1 } else { 0 };
    format!("{value:.digits$} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_people_write_them() {
        assert_eq!(human_bytes(0), "0 bytes");
        assert_eq!(human_bytes(1023), "1023 bytes");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(200 * 1024), "200 KiB");
        assert_eq!(human_bytes(1 << 30), "1.0 GiB");
        assert_eq!(human_bytes(u64::MAX), "16777216 TiB");
    }

    #[test]
    fn the_first_quota_reached_is_named_with_its_numbers() {
        let limits = Limits {
            documents: Some(3),
            bytes: Some(1000),
        };
        let usage = |documents, bytes| AccountUsage { documents, bytes };
        assert_eq!(limits.reached(usage(2, 999)), None);
        let refusal = limits.reached(usage(3, 10)).expect("documents");
        assert_eq!(
            (refusal.quota, refusal.used, refusal.limit),
            (Quota::Documents, 3, 3)
        );
        assert_eq!(
            refusal.to_string(),
            "You have 3 documents, the most this server allows. Delete some to create more."
        );
        let refusal = limits.reached(usage(1, 1000)).expect("bytes");
        assert_eq!(refusal.quota, Quota::Bytes);
        assert!(refusal.to_string().contains("1000 bytes of the 1000 bytes"));
        let unlimited = Limits {
            documents: None,
            bytes: None,
        };
        assert_eq!(unlimited.reached(usage(u64::MAX, u64::MAX)), None);
    }

    #[test]
    fn a_session_may_grow_its_document_by_the_room_left() {
        assert_eq!(room_to_grow(100, 400, 1000), 700);
        assert_eq!(room_to_grow(100, 1000, 1000), 100);
        assert_eq!(room_to_grow(100, 5000, 1000), 100, "over quota: no growth");
        assert_eq!(room_to_grow(u64::MAX, 0, u64::MAX), usize::MAX);
    }
}
