//! Accounts, sign-in sessions, workspaces and per-document access: the
//! [`AuthStore`] boundary, and its one SQL implementation shared by both
//! backends (the statements are portable; [`impl_auth_store!`] expands them
//! over each backend's pools and error mapping).
//!
//! The store holds no secret that could be replayed: passwords are Argon2id
//! PHC strings and tokens are SHA-256 hashes, both computed by the caller.
//! Whether a token is expired, or a rotated refresh token is within its grace
//! window, is the caller's decision; the store only answers atomically.

use quire_types::{AuthSessionId, DocId, DocRole, UnixMillis, UserId, WorkspaceId, WorkspaceRole};
use serde::Serialize;

use crate::{DocumentMeta, ListQuery, StoreError, StoreResult};

/// An account as the rest of the system sees it (no password hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub name: String,
    /// Presence colour (`#rrggbb`), chosen at sign-up.
    pub color: String,
    pub created_at: UnixMillis,
}

/// Everything [`AuthStore::create_user`] writes: the account and its personal
/// workspace, of which it is the admin.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub id: UserId,
    /// Already normalised (trimmed, lower-cased) by the caller.
    pub email: String,
    pub name: String,
    pub color: String,
    pub password_hash: String,
    pub workspace: WorkspaceId,
    pub workspace_name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Access,
    Refresh,
}

impl TokenKind {
    fn as_str(self) -> &'static str {
        match self {
            TokenKind::Access => "access",
            TokenKind::Refresh => "refresh",
        }
    }

    fn parse(s: &str) -> StoreResult<Self> {
        match s {
            "access" => Ok(TokenKind::Access),
            "refresh" => Ok(TokenKind::Refresh),
            other => Err(StoreError::Backend(format!("unknown token kind {other:?}"))),
        }
    }
}

/// A token to store: its hash, never the token.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub hash: String,
    pub kind: TokenKind,
    pub expires_at: UnixMillis,
}

/// What a stored token hash stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    pub kind: TokenKind,
    pub session: AuthSessionId,
    pub user: UserId,
    pub expires_at: UnixMillis,
    /// When this refresh token was exchanged for a successor, if it was.
    pub rotated_at: Option<UnixMillis>,
    pub session_revoked: bool,
}

/// What [`AuthStore::rotate_refresh_token`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// The token was current; it is now rotated and the new tokens stored.
    Rotated,
    /// The token had already been rotated at `at`; nothing was stored.
    AlreadyRotated { at: UnixMillis },
    /// Unknown token, not a refresh token, or its session is revoked.
    Invalid,
}

/// A document together with what one user may do with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocAccess {
    pub meta: DocumentMeta,
    pub workspace: Option<WorkspaceId>,
    pub owner: Option<UserId>,
    pub role: DocRole,
}

/// Which documents [`AuthStore::list_accessible`] lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocScope {
    /// Documents the user owns.
    Owned,
    /// Documents others shared with the user ("Shared with me").
    SharedWithMe,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareEntry {
    pub user: User,
    pub role: DocRole,
    /// Granted by opening a share link (withdrawn when the link is turned off).
    pub via_link: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    pub role: DocRole,
    pub created_at: UnixMillis,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Workspace {
    pub id: WorkspaceId,
    pub name: String,
    pub created_at: UnixMillis,
    /// The asking user's role in it.
    pub role: WorkspaceRole,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub user: User,
    pub role: WorkspaceRole,
}

/// What a change of workspace membership did. Every workspace keeps at
/// least one admin: without one nobody could manage it again, and a user
/// whose personal workspace lost them would have nowhere to create
/// documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberChange {
    Done,
    /// The user is not a member (or there is no such workspace).
    NotMember,
    /// Refused: the user is the workspace's only admin.
    LastAdmin,
}

/// The accounts-and-access boundary. Every method is one transaction (or one
/// statement).
#[async_trait::async_trait]
pub trait AuthStore: Send + Sync + 'static {
    /// Creates the account, its personal workspace and the admin membership.
    /// `AlreadyExists` if the email is taken.
    async fn create_user(&self, new: &NewUser) -> StoreResult<User>;
    /// The account and its password hash.
    async fn user_by_email(&self, email: &str) -> StoreResult<Option<(User, String)>>;
    async fn user(&self, id: &UserId) -> StoreResult<Option<User>>;
    /// Changes the account's display name and presence colour.
    /// `NotFound` if there is no such account.
    async fn update_profile(&self, id: &UserId, name: &str, color: &str) -> StoreResult<User>;

    /// Starts a sign-in session with its first tokens.
    async fn create_auth_session(
        &self,
        session: &AuthSessionId,
        user: &UserId,
        tokens: &[NewToken],
    ) -> StoreResult<()>;
    async fn token(&self, hash: &str) -> StoreResult<Option<TokenInfo>>;
    /// Atomically marks a current refresh token rotated and stores its
    /// successors, so that of two concurrent exchanges exactly one rotates.
    async fn rotate_refresh_token(
        &self,
        hash: &str,
        now: UnixMillis,
        issue: &[NewToken],
    ) -> StoreResult<Rotation>;
    /// Adds tokens to a session that is not revoked; `false` if it is.
    async fn issue_tokens(
        &self,
        session: &AuthSessionId,
        user: &UserId,
        tokens: &[NewToken],
    ) -> StoreResult<bool>;
    async fn revoke_auth_session(
        &self,
        session: &AuthSessionId,
        now: UnixMillis,
    ) -> StoreResult<()>;
    /// Whether the sign-in exists and is not revoked, i.e. whether sockets
    /// opened under it may stay open.
    async fn auth_session_active(&self, session: &AuthSessionId) -> StoreResult<bool>;
    /// Revokes every live session of the user; returns them.
    async fn revoke_user_sessions(
        &self,
        user: &UserId,
        now: UnixMillis,
    ) -> StoreResult<Vec<AuthSessionId>>;
    /// Deletes tokens that expired before `before`; returns how many.
    async fn purge_expired_tokens(&self, before: UnixMillis) -> StoreResult<u64>;

    async fn create_workspace(
        &self,
        id: &WorkspaceId,
        name: &str,
        creator: &UserId,
    ) -> StoreResult<Workspace>;
    async fn workspaces_of(&self, user: &UserId) -> StoreResult<Vec<Workspace>>;
    async fn workspace_role(
        &self,
        workspace: &WorkspaceId,
        user: &UserId,
    ) -> StoreResult<Option<WorkspaceRole>>;
    /// Adds the member or changes their role; `LastAdmin` (and nothing
    /// changed) for demoting the only admin.
    async fn set_workspace_member(
        &self,
        workspace: &WorkspaceId,
        user: &UserId,
        role: WorkspaceRole,
    ) -> StoreResult<MemberChange>;
    /// `LastAdmin` (and nothing changed) for the only admin.
    async fn remove_workspace_member(
        &self,
        workspace: &WorkspaceId,
        user: &UserId,
    ) -> StoreResult<MemberChange>;
    async fn workspace_members(&self, workspace: &WorkspaceId) -> StoreResult<Vec<Member>>;

    /// Creates a document in a workspace, owned by `owner`. `AlreadyExists`
    /// if the id is taken.
    async fn create_owned_document(
        &self,
        id: &DocId,
        title: &str,
        workspace: &WorkspaceId,
        owner: &UserId,
    ) -> StoreResult<DocumentMeta>;
    /// The document and the user's role on it; `None` if the document does
    /// not exist *or* the user has no access (callers must not tell them
    /// apart to the user).
    async fn document_access(&self, doc: &DocId, user: &UserId) -> StoreResult<Option<DocAccess>>;
    /// Most recently updated first.
    async fn list_accessible(
        &self,
        user: &UserId,
        scope: DocScope,
        query: &ListQuery,
    ) -> StoreResult<Vec<DocAccess>>;
    /// Shares the document with the user. A grant `via_link` never replaces
    /// an existing share (opening a viewer link must not demote an editor).
    async fn put_share(
        &self,
        doc: &DocId,
        user: &UserId,
        role: DocRole,
        via_link: bool,
    ) -> StoreResult<()>;
    async fn remove_share(&self, doc: &DocId, user: &UserId) -> StoreResult<bool>;
    async fn shares(&self, doc: &DocId) -> StoreResult<Vec<ShareEntry>>;
    /// Turns link sharing on with a new token (replacing any previous one).
    async fn set_link(&self, doc: &DocId, token_hash: &str, role: DocRole) -> StoreResult<()>;
    async fn link(&self, doc: &DocId) -> StoreResult<Option<LinkInfo>>;
    /// The link's role if `token_hash` is the document's current link.
    async fn link_role(&self, doc: &DocId, token_hash: &str) -> StoreResult<Option<DocRole>>;
    /// Turns link sharing off and withdraws the grants it made; returns the
    /// users who lost access.
    async fn remove_link(&self, doc: &DocId) -> StoreResult<Vec<UserId>>;
}

pub(crate) type UserRow = (String, String, String, String, i64);

pub(crate) fn user_from_row((id, email, name, color, created_at): UserRow) -> User {
    User {
        id: UserId(id),
        email,
        name,
        color,
        created_at: UnixMillis(created_at),
    }
}

pub(crate) fn doc_role(s: &str) -> StoreResult<DocRole> {
    s.parse()
        .map_err(|e| StoreError::Backend(format!("stored role: {e}")))
}

pub(crate) fn workspace_role(s: &str) -> StoreResult<WorkspaceRole> {
    s.parse()
        .map_err(|e| StoreError::Backend(format!("stored role: {e}")))
}

pub(crate) fn token_kind(s: &str) -> StoreResult<TokenKind> {
    TokenKind::parse(s)
}

pub(crate) fn token_kind_str(k: TokenKind) -> &'static str {
    k.as_str()
}

/// `(id, title, created_at, updated_at, workspace_id, owner_id, role)`.
pub(crate) type AccessRow = (
    String,
    String,
    i64,
    i64,
    Option<String>,
    Option<String>,
    String,
);

pub(crate) fn access_from_row(
    (id, title, created_at, updated_at, workspace, owner, role): AccessRow,
) -> StoreResult<DocAccess> {
    Ok(DocAccess {
        meta: crate::common::document_meta(id, title, created_at, updated_at)?,
        workspace: workspace.map(WorkspaceId),
        owner: owner.map(UserId),
        role: doc_role(&role)?,
    })
}

/// Writes the [`AuthStore`] implementation for a backend. Invoked inside the
/// backend's module, where `map_err` is its error mapping; `$read` and
/// `$write` are the pools to read from and write through, `$greatest` the
/// SQL spelling of a two-argument maximum.
///
/// The statements are written once for both databases: `$n` placeholders,
/// `ON CONFLICT`, `RETURNING` and i64/TEXT columns behave the same on
/// SQLite ≥ 3.35 and PostgreSQL. Unlike document appends, these are not
/// retried on transient PostgreSQL errors: they are one user's request, and a
/// 503 that the user retries is the honest answer.
macro_rules! impl_auth_store {
    ($store:ty, db = $db:ty, read = $read:ident, write = $write:ident) => {
        /// Stores one token row inside a transaction of [`AuthStore`](crate::AuthStore).
        async fn insert_token(
            tx: &mut sqlx::Transaction<'static, $db>,
            token: &$crate::auth::NewToken,
            session: &quire_types::AuthSessionId,
            user: &quire_types::UserId,
            now: i64,
        ) -> $crate::StoreResult<()> {
            sqlx::query(
                "INSERT INTO auth_tokens (token_hash, kind, session_id, user_id, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&token.hash)
            .bind($crate::auth::token_kind_str(token.kind))
            .bind(session.as_str())
            .bind(user.as_str())
            .bind(now)
            .bind(token.expires_at.0)
            .execute(&mut **tx)
            .await
            .map_err(map_err)?;
            Ok(())
        }

        /// Whether `user` is the only admin of `workspace`, inside a
        /// transaction that is about to demote or remove them. Touching the
        /// workspace row first serializes this against every other change
        /// of the same workspace's members (a row lock on PostgreSQL, the
        /// write lock on SQLite), so two admins removing each other at once
        /// cannot both succeed and leave none.
        async fn last_admin(
            tx: &mut sqlx::Transaction<'static, $db>,
            workspace: &quire_types::WorkspaceId,
            user: &quire_types::UserId,
        ) -> $crate::StoreResult<bool> {
            sqlx::query("UPDATE workspaces SET name = name WHERE id = $1")
                .bind(workspace.as_str())
                .execute(&mut **tx)
                .await
                .map_err(map_err)?;
            let (mine, admins): (i64, i64) = sqlx::query_as(
                "SELECT \
                   COUNT(CASE WHEN user_id = $2 AND role = 'admin' THEN 1 END), \
                   COUNT(CASE WHEN role = 'admin' THEN 1 END) \
                 FROM workspace_members WHERE workspace_id = $1",
            )
            .bind(workspace.as_str())
            .bind(user.as_str())
            .fetch_one(&mut **tx)
            .await
            .map_err(map_err)?;
            Ok(mine == 1 && admins == 1)
        }

        #[async_trait::async_trait]
        impl $crate::auth::AuthStore for $store {
            async fn create_user(
                &self,
                new: &$crate::auth::NewUser,
            ) -> $crate::StoreResult<$crate::auth::User> {
                let now = quire_types::UnixMillis::now().0;
                self.queries.add(5);
                let mut tx = self.$write.begin().await.map_err(map_err)?;
                let inserted = sqlx::query(
                    "INSERT INTO users (id, email, name, color, password_hash, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(new.id.as_str())
                .bind(&new.email)
                .bind(&new.name)
                .bind(&new.color)
                .bind(&new.password_hash)
                .bind(now)
                .execute(&mut *tx)
                .await;
                if let Err(e) = inserted {
                    let unique = e.as_database_error().is_some_and(|d| d.is_unique_violation());
                    return Err(if unique { $crate::StoreError::AlreadyExists } else { map_err(e) });
                }
                sqlx::query("INSERT INTO workspaces (id, name, created_at) VALUES ($1, $2, $3)")
                    .bind(new.workspace.as_str())
                    .bind(&new.workspace_name)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                sqlx::query(
                    "INSERT INTO workspace_members (workspace_id, user_id, role, created_at) \
                     VALUES ($1, $2, 'admin', $3)",
                )
                .bind(new.workspace.as_str())
                .bind(new.id.as_str())
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                tx.commit().await.map_err(map_err)?;
                Ok($crate::auth::User {
                    id: new.id.clone(),
                    email: new.email.clone(),
                    name: new.name.clone(),
                    color: new.color.clone(),
                    created_at: quire_types::UnixMillis(now),
                })
            }

            async fn user_by_email(
                &self,
                email: &str,
            ) -> $crate::StoreResult<Option<($crate::auth::User, String)>> {
                self.queries.add(1);
                let row: Option<(String, String, String, String, i64, String)> = sqlx::query_as(
                    "SELECT id, email, name, color, created_at, password_hash FROM users WHERE email = $1",
                )
                .bind(email)
                .fetch_optional(&self.$read)
                .await
                .map_err(map_err)?;
                Ok(row.map(|(id, email, name, color, created_at, hash)| {
                    ($crate::auth::user_from_row((id, email, name, color, created_at)), hash)
                }))
            }

            async fn user(
                &self,
                id: &quire_types::UserId,
            ) -> $crate::StoreResult<Option<$crate::auth::User>> {
                self.queries.add(1);
                let row: Option<$crate::auth::UserRow> = sqlx::query_as(
                    "SELECT id, email, name, color, created_at FROM users WHERE id = $1",
                )
                .bind(id.as_str())
                .fetch_optional(&self.$read)
                .await
                .map_err(map_err)?;
                Ok(row.map($crate::auth::user_from_row))
            }

            async fn update_profile(
                &self,
                id: &quire_types::UserId,
                name: &str,
                color: &str,
            ) -> $crate::StoreResult<$crate::auth::User> {
                self.queries.add(1);
                let row: Option<$crate::auth::UserRow> = sqlx::query_as(
                    "UPDATE users SET name = $2, color = $3 WHERE id = $1 \
                     RETURNING id, email, name, color, created_at",
                )
                .bind(id.as_str())
                .bind(name)
                .bind(color)
                .fetch_optional(&self.$write)
                .await
                .map_err(map_err)?;
                row.map($crate::auth::user_from_row)
                    .ok_or($crate::StoreError::NotFound)
            }

            async fn create_auth_session(
                &self,
                session: &quire_types::AuthSessionId,
                user: &quire_types::UserId,
                tokens: &[$crate::auth::NewToken],
            ) -> $crate::StoreResult<()> {
                let now = quire_types::UnixMillis::now().0;
                self.queries.add(3 + tokens.len() as u64);
                let mut tx = self.$write.begin().await.map_err(map_err)?;
                sqlx::query("INSERT INTO auth_sessions (id, user_id, created_at) VALUES ($1, $2, $3)")
                    .bind(session.as_str())
                    .bind(user.as_str())
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                for t in tokens {
                    insert_token(&mut tx, t, session, user, now).await?;
                }
                tx.commit().await.map_err(map_err)?;
                Ok(())
            }

            async fn token(
                &self,
                hash: &str,
            ) -> $crate::StoreResult<Option<$crate::auth::TokenInfo>> {
                self.queries.add(1);
                let row: Option<(String, String, String, i64, Option<i64>, Option<i64>)> =
                    sqlx::query_as(
                        "SELECT t.kind, t.session_id, t.user_id, t.expires_at, t.rotated_at, s.revoked_at \
                         FROM auth_tokens t JOIN auth_sessions s ON s.id = t.session_id \
                         WHERE t.token_hash = $1",
                    )
                    .bind(hash)
                    .fetch_optional(&self.$read)
                    .await
                    .map_err(map_err)?;
                row.map(|(kind, session, user, expires_at, rotated_at, revoked_at)| {
                    Ok($crate::auth::TokenInfo {
                        kind: $crate::auth::token_kind(&kind)?,
                        session: quire_types::AuthSessionId(session),
                        user: quire_types::UserId(user),
                        expires_at: quire_types::UnixMillis(expires_at),
                        rotated_at: rotated_at.map(quire_types::UnixMillis),
                        session_revoked: revoked_at.is_some(),
                    })
                })
                .transpose()
            }

            async fn rotate_refresh_token(
                &self,
                hash: &str,
                now: quire_types::UnixMillis,
                issue: &[$crate::auth::NewToken],
            ) -> $crate::StoreResult<$crate::auth::Rotation> {
                self.queries.add(3 + issue.len() as u64);
                let mut tx = self.$write.begin().await.map_err(map_err)?;
                // The compare-and-swap: only a token not yet rotated, of a
                // live session, flips. Of two racing exchanges one matches.
                let rotated: Option<(String, String)> = sqlx::query_as(
                    "UPDATE auth_tokens SET rotated_at = $2 \
                     WHERE token_hash = $1 AND kind = 'refresh' AND rotated_at IS NULL \
                       AND session_id IN (SELECT id FROM auth_sessions WHERE revoked_at IS NULL) \
                     RETURNING session_id, user_id",
                )
                .bind(hash)
                .bind(now.0)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
                let Some((session, user)) = rotated else {
                    let prior: Option<(Option<i64>, String, Option<i64>)> = sqlx::query_as(
                        "SELECT t.rotated_at, t.kind, s.revoked_at FROM auth_tokens t \
                         JOIN auth_sessions s ON s.id = t.session_id WHERE t.token_hash = $1",
                    )
                    .bind(hash)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(map_err)?;
                    tx.rollback().await.map_err(map_err)?;
                    return Ok(match prior {
                        Some((Some(at), kind, None)) if kind == "refresh" => {
                            $crate::auth::Rotation::AlreadyRotated { at: quire_types::UnixMillis(at) }
                        }
                        _ => $crate::auth::Rotation::Invalid,
                    });
                };
                let session = quire_types::AuthSessionId(session);
                let user = quire_types::UserId(user);
                for t in issue {
                    insert_token(&mut tx, t, &session, &user, now.0).await?;
                }
                tx.commit().await.map_err(map_err)?;
                Ok($crate::auth::Rotation::Rotated)
            }

            async fn issue_tokens(
                &self,
                session: &quire_types::AuthSessionId,
                user: &quire_types::UserId,
                tokens: &[$crate::auth::NewToken],
            ) -> $crate::StoreResult<bool> {
                let now = quire_types::UnixMillis::now().0;
                self.queries.add(3 + tokens.len() as u64);
                let mut tx = self.$write.begin().await.map_err(map_err)?;
                // Touching the session row first orders this against a
                // concurrent revocation of the same session.
                let live = sqlx::query(
                    "UPDATE auth_sessions SET created_at = created_at \
                     WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL",
                )
                .bind(session.as_str())
                .bind(user.as_str())
                .execute(&mut *tx)
                .await
                .map_err(map_err)?
                .rows_affected();
                if live == 0 {
                    tx.rollback().await.map_err(map_err)?;
                    return Ok(false);
                }
                for t in tokens {
                    insert_token(&mut tx, t, session, user, now).await?;
                }
                tx.commit().await.map_err(map_err)?;
                Ok(true)
            }

            async fn revoke_auth_session(
                &self,
                session: &quire_types::AuthSessionId,
                now: quire_types::UnixMillis,
            ) -> $crate::StoreResult<()> {
                self.queries.add(1);
                sqlx::query(
                    "UPDATE auth_sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
                )
                .bind(session.as_str())
                .bind(now.0)
                .execute(&self.$write)
                .await
                .map_err(map_err)?;
                Ok(())
            }

            async fn auth_session_active(
                &self,
                session: &quire_types::AuthSessionId,
            ) -> $crate::StoreResult<bool> {
                self.queries.add(1);
                let row: Option<(String,)> = sqlx::query_as(
                    "SELECT id FROM auth_sessions WHERE id = $1 AND revoked_at IS NULL",
                )
                .bind(session.as_str())
                .fetch_optional(&self.$read)
                .await
                .map_err(map_err)?;
                Ok(row.is_some())
            }

            async fn revoke_user_sessions(
                &self,
                user: &quire_types::UserId,
                now: quire_types::UnixMillis,
            ) -> $crate::StoreResult<Vec<quire_types::AuthSessionId>> {
                self.queries.add(1);
                let rows: Vec<(String,)> = sqlx::query_as(
                    "UPDATE auth_sessions SET revoked_at = $2 \
                     WHERE user_id = $1 AND revoked_at IS NULL RETURNING id",
                )
                .bind(user.as_str())
                .bind(now.0)
                .fetch_all(&self.$write)
                .await
                .map_err(map_err)?;
                Ok(rows.into_iter().map(|(id,)| quire_types::AuthSessionId(id)).collect())
            }

            async fn purge_expired_tokens(
                &self,
                before: quire_types::UnixMillis,
            ) -> $crate::StoreResult<u64> {
                self.queries.add(1);
                let n = sqlx::query("DELETE FROM auth_tokens WHERE expires_at < $1")
                    .bind(before.0)
                    .execute(&self.$write)
                    .await
                    .map_err(map_err)?
                    .rows_affected();
                Ok(n)
            }

            async fn create_workspace(
                &self,
                id: &quire_types::WorkspaceId,
                name: &str,
                creator: &quire_types::UserId,
            ) -> $crate::StoreResult<$crate::auth::Workspace> {
                let now = quire_types::UnixMillis::now().0;
                self.queries.add(4);
                let mut tx = self.$write.begin().await.map_err(map_err)?;
                sqlx::query("INSERT INTO workspaces (id, name, created_at) VALUES ($1, $2, $3)")
                    .bind(id.as_str())
                    .bind(name)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                sqlx::query(
                    "INSERT INTO workspace_members (workspace_id, user_id, role, created_at) \
                     VALUES ($1, $2, 'admin', $3)",
                )
                .bind(id.as_str())
                .bind(creator.as_str())
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                tx.commit().await.map_err(map_err)?;
                Ok($crate::auth::Workspace {
                    id: id.clone(),
                    name: name.to_string(),
                    created_at: quire_types::UnixMillis(now),
                    role: quire_types::WorkspaceRole::Admin,
                })
            }

            async fn workspaces_of(
                &self,
                user: &quire_types::UserId,
            ) -> $crate::StoreResult<Vec<$crate::auth::Workspace>> {
                self.queries.add(1);
                let rows: Vec<(String, String, i64, String)> = sqlx::query_as(
                    "SELECT w.id, w.name, w.created_at, m.role FROM workspaces w \
                     JOIN workspace_members m ON m.workspace_id = w.id \
                     WHERE m.user_id = $1 ORDER BY w.created_at, w.id",
                )
                .bind(user.as_str())
                .fetch_all(&self.$read)
                .await
                .map_err(map_err)?;
                rows.into_iter()
                    .map(|(id, name, created_at, role)| {
                        Ok($crate::auth::Workspace {
                            id: quire_types::WorkspaceId(id),
                            name,
                            created_at: quire_types::UnixMillis(created_at),
                            role: $crate::auth::workspace_role(&role)?,
                        })
                    })
                    .collect()
            }

            async fn workspace_role(
                &self,
                workspace: &quire_types::WorkspaceId,
                user: &quire_types::UserId,
            ) -> $crate::StoreResult<Option<quire_types::WorkspaceRole>> {
                self.queries.add(1);
                let role: Option<String> = sqlx::query_scalar(
                    "SELECT role FROM workspace_members WHERE workspace_id = $1 AND user_id = $2",
                )
                .bind(workspace.as_str())
                .bind(user.as_str())
                .fetch_optional(&self.$read)
                .await
                .map_err(map_err)?;
                role.map(|r| $crate::auth::workspace_role(&r)).transpose()
            }

            async fn set_workspace_member(
                &self,
                workspace: &quire_types::WorkspaceId,
                user: &quire_types::UserId,
                role: quire_types::WorkspaceRole,
            ) -> $crate::StoreResult<$crate::auth::MemberChange> {
                self.queries.add(4);
                let mut tx = self.$write.begin().await.map_err(map_err)?;
                if role != quire_types::WorkspaceRole::Admin
                    && last_admin(&mut tx, workspace, user).await?
                {
                    tx.rollback().await.map_err(map_err)?;
                    return Ok($crate::auth::MemberChange::LastAdmin);
                }
                sqlx::query(
                    "INSERT INTO workspace_members (workspace_id, user_id, role, created_at) \
                     VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (workspace_id, user_id) DO UPDATE SET role = excluded.role",
                )
                .bind(workspace.as_str())
                .bind(user.as_str())
                .bind(role.as_str())
                .bind(quire_types::UnixMillis::now().0)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                tx.commit().await.map_err(map_err)?;
                Ok($crate::auth::MemberChange::Done)
            }

            async fn remove_workspace_member(
                &self,
                workspace: &quire_types::WorkspaceId,
                user: &quire_types::UserId,
            ) -> $crate::StoreResult<$crate::auth::MemberChange> {
                self.queries.add(4);
                let mut tx = self.$write.begin().await.map_err(map_err)?;
                if last_admin(&mut tx, workspace, user).await? {
                    tx.rollback().await.map_err(map_err)?;
                    return Ok($crate::auth::MemberChange::LastAdmin);
                }
                let n = sqlx::query(
                    "DELETE FROM workspace_members WHERE workspace_id = $1 AND user_id = $2",
                )
                .bind(workspace.as_str())
                .bind(user.as_str())
                .execute(&mut *tx)
                .await
                .map_err(map_err)?
                .rows_affected();
                tx.commit().await.map_err(map_err)?;
                Ok(if n > 0 {
                    $crate::auth::MemberChange::Done
                } else {
                    $crate::auth::MemberChange::NotMember
                })
            }

            async fn workspace_members(
                &self,
                workspace: &quire_types::WorkspaceId,
            ) -> $crate::StoreResult<Vec<$crate::auth::Member>> {
                self.queries.add(1);
                let rows: Vec<(String, String, String, String, i64, String)> = sqlx::query_as(
                    "SELECT u.id, u.email, u.name, u.color, u.created_at, m.role \
                     FROM workspace_members m JOIN users u ON u.id = m.user_id \
                     WHERE m.workspace_id = $1 ORDER BY u.email",
                )
                .bind(workspace.as_str())
                .fetch_all(&self.$read)
                .await
                .map_err(map_err)?;
                rows.into_iter()
                    .map(|(id, email, name, color, created_at, role)| {
                        Ok($crate::auth::Member {
                            user: $crate::auth::user_from_row((id, email, name, color, created_at)),
                            role: $crate::auth::workspace_role(&role)?,
                        })
                    })
                    .collect()
            }

            async fn create_owned_document(
                &self,
                id: &quire_types::DocId,
                title: &str,
                workspace: &quire_types::WorkspaceId,
                owner: &quire_types::UserId,
            ) -> $crate::StoreResult<$crate::DocumentMeta> {
                self.queries.add(1);
                let row: Option<(String, String, i64, i64)> = sqlx::query_as(
                    "INSERT INTO documents (id, title, created_at, updated_at, workspace_id, owner_id) \
                     VALUES ($1, $2, $3, $3, $4, $5) \
                     ON CONFLICT (id) DO NOTHING \
                     RETURNING id, title, created_at, updated_at",
                )
                .bind(id.as_str())
                .bind(title)
                .bind(quire_types::UnixMillis::now().0)
                .bind(workspace.as_str())
                .bind(owner.as_str())
                .fetch_optional(&self.$write)
                .await
                .map_err(map_err)?;
                let (id, title, created_at, updated_at) =
                    row.ok_or($crate::StoreError::AlreadyExists)?;
                $crate::common::document_meta(id, title, created_at, updated_at)
            }

            async fn document_access(
                &self,
                doc: &quire_types::DocId,
                user: &quire_types::UserId,
            ) -> $crate::StoreResult<Option<$crate::auth::DocAccess>> {
                self.queries.add(1);
                // The owner column wins over a share row for the same user.
                let row: Option<$crate::auth::AccessRow> = sqlx::query_as(
                    "SELECT d.id, d.title, d.created_at, d.updated_at, d.workspace_id, d.owner_id, \
                       CASE WHEN d.owner_id = $2 THEN 'owner' ELSE s.role END AS role \
                     FROM documents d \
                     LEFT JOIN document_shares s ON s.doc_id = d.id AND s.user_id = $2 \
                     WHERE d.id = $1 AND (d.owner_id = $2 OR s.user_id IS NOT NULL)",
                )
                .bind(doc.as_str())
                .bind(user.as_str())
                .fetch_optional(&self.$read)
                .await
                .map_err(map_err)?;
                row.map($crate::auth::access_from_row).transpose()
            }

            async fn list_accessible(
                &self,
                user: &quire_types::UserId,
                scope: $crate::auth::DocScope,
                query: &$crate::ListQuery,
            ) -> $crate::StoreResult<Vec<$crate::auth::DocAccess>> {
                let pattern = query
                    .title_contains
                    .as_ref()
                    .map(|q| $crate::common::contains_pattern(&q.to_lowercase()));
                let limit = query.limit.map_or(10_000, i64::from);
                let sql = match scope {
                    $crate::auth::DocScope::Owned => {
                        "SELECT d.id, d.title, d.created_at, d.updated_at, d.workspace_id, d.owner_id, 'owner' AS role \
                         FROM documents d WHERE d.owner_id = $1 \
                           AND (CAST($2 AS TEXT) IS NULL OR LOWER(d.title) LIKE $2 ESCAPE '\\') \
                         ORDER BY d.updated_at DESC, d.id LIMIT $3"
                    }
                    $crate::auth::DocScope::SharedWithMe => {
                        "SELECT d.id, d.title, d.created_at, d.updated_at, d.workspace_id, d.owner_id, s.role \
                         FROM document_shares s JOIN documents d ON d.id = s.doc_id \
                         WHERE s.user_id = $1 AND (d.owner_id IS NULL OR d.owner_id <> $1) \
                           AND (CAST($2 AS TEXT) IS NULL OR LOWER(d.title) LIKE $2 ESCAPE '\\') \
                         ORDER BY d.updated_at DESC, d.id LIMIT $3"
                    }
                };
                self.queries.add(1);
                let rows: Vec<$crate::auth::AccessRow> = sqlx::query_as(sql)
                    .bind(user.as_str())
                    .bind(pattern)
                    .bind(limit)
                    .fetch_all(&self.$read)
                    .await
                    .map_err(map_err)?;
                rows.into_iter().map($crate::auth::access_from_row).collect()
            }

            async fn put_share(
                &self,
                doc: &quire_types::DocId,
                user: &quire_types::UserId,
                role: quire_types::DocRole,
                via_link: bool,
            ) -> $crate::StoreResult<()> {
                let conflict = if via_link {
                    "ON CONFLICT (doc_id, user_id) DO NOTHING"
                } else {
                    "ON CONFLICT (doc_id, user_id) DO UPDATE SET role = excluded.role, via_link = 0"
                };
                let sql = format!(
                    "INSERT INTO document_shares (workspace_id, doc_id, user_id, role, via_link, created_at) \
                     SELECT COALESCE(d.workspace_id, ''), d.id, $2, $3, $4, $5 FROM documents d WHERE d.id = $1 \
                     {conflict}"
                );
                self.queries.add(1);
                let n = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(doc.as_str())
                    .bind(user.as_str())
                    .bind(role.as_str())
                    .bind(i64::from(via_link))
                    .bind(quire_types::UnixMillis::now().0)
                    .execute(&self.$write)
                    .await
                    .map_err(map_err)?
                    .rows_affected();
                if n == 0 && !via_link {
                    return Err($crate::StoreError::NotFound);
                }
                Ok(())
            }

            async fn remove_share(
                &self,
                doc: &quire_types::DocId,
                user: &quire_types::UserId,
            ) -> $crate::StoreResult<bool> {
                self.queries.add(1);
                let n = sqlx::query("DELETE FROM document_shares WHERE doc_id = $1 AND user_id = $2")
                    .bind(doc.as_str())
                    .bind(user.as_str())
                    .execute(&self.$write)
                    .await
                    .map_err(map_err)?
                    .rows_affected();
                Ok(n > 0)
            }

            async fn shares(
                &self,
                doc: &quire_types::DocId,
            ) -> $crate::StoreResult<Vec<$crate::auth::ShareEntry>> {
                self.queries.add(1);
                let rows: Vec<(String, String, String, String, i64, String, i64)> = sqlx::query_as(
                    "SELECT u.id, u.email, u.name, u.color, u.created_at, s.role, s.via_link \
                     FROM document_shares s JOIN users u ON u.id = s.user_id \
                     WHERE s.doc_id = $1 ORDER BY s.created_at, u.email",
                )
                .bind(doc.as_str())
                .fetch_all(&self.$read)
                .await
                .map_err(map_err)?;
                rows.into_iter()
                    .map(|(id, email, name, color, created_at, role, via_link)| {
                        Ok($crate::auth::ShareEntry {
                            user: $crate::auth::user_from_row((id, email, name, color, created_at)),
                            role: $crate::auth::doc_role(&role)?,
                            via_link: via_link != 0,
                        })
                    })
                    .collect()
            }

            async fn set_link(
                &self,
                doc: &quire_types::DocId,
                token_hash: &str,
                role: quire_types::DocRole,
            ) -> $crate::StoreResult<()> {
                self.queries.add(1);
                let n = sqlx::query(
                    "INSERT INTO document_links (workspace_id, doc_id, token_hash, role, created_at) \
                     SELECT COALESCE(d.workspace_id, ''), d.id, $2, $3, $4 FROM documents d WHERE d.id = $1 \
                     ON CONFLICT (doc_id) DO UPDATE SET token_hash = excluded.token_hash, \
                       role = excluded.role, created_at = excluded.created_at",
                )
                .bind(doc.as_str())
                .bind(token_hash)
                .bind(role.as_str())
                .bind(quire_types::UnixMillis::now().0)
                .execute(&self.$write)
                .await
                .map_err(map_err)?
                .rows_affected();
                if n == 0 {
                    return Err($crate::StoreError::NotFound);
                }
                Ok(())
            }

            async fn link(
                &self,
                doc: &quire_types::DocId,
            ) -> $crate::StoreResult<Option<$crate::auth::LinkInfo>> {
                self.queries.add(1);
                let row: Option<(String, i64)> =
                    sqlx::query_as("SELECT role, created_at FROM document_links WHERE doc_id = $1")
                        .bind(doc.as_str())
                        .fetch_optional(&self.$read)
                        .await
                        .map_err(map_err)?;
                row.map(|(role, created_at)| {
                    Ok($crate::auth::LinkInfo {
                        role: $crate::auth::doc_role(&role)?,
                        created_at: quire_types::UnixMillis(created_at),
                    })
                })
                .transpose()
            }

            async fn link_role(
                &self,
                doc: &quire_types::DocId,
                token_hash: &str,
            ) -> $crate::StoreResult<Option<quire_types::DocRole>> {
                self.queries.add(1);
                let role: Option<String> = sqlx::query_scalar(
                    "SELECT role FROM document_links WHERE doc_id = $1 AND token_hash = $2",
                )
                .bind(doc.as_str())
                .bind(token_hash)
                .fetch_optional(&self.$read)
                .await
                .map_err(map_err)?;
                role.map(|r| $crate::auth::doc_role(&r)).transpose()
            }

            async fn remove_link(
                &self,
                doc: &quire_types::DocId,
            ) -> $crate::StoreResult<Vec<quire_types::UserId>> {
                self.queries.add(4);
                let mut tx = self.$write.begin().await.map_err(map_err)?;
                sqlx::query("DELETE FROM document_links WHERE doc_id = $1")
                    .bind(doc.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                let gone: Vec<(String,)> = sqlx::query_as(
                    "DELETE FROM document_shares WHERE doc_id = $1 AND via_link = 1 RETURNING user_id",
                )
                .bind(doc.as_str())
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err)?;
                tx.commit().await.map_err(map_err)?;
                Ok(gone.into_iter().map(|(u,)| quire_types::UserId(u)).collect())
            }
        }
    };
}

pub(crate) use impl_auth_store;
