-- Accounts, sign-in sessions, workspaces and document access.
--
-- Tokens are never stored: only the SHA-256 of each (hex), so a leaked
-- database cannot be replayed as cookies. Every row about a document carries
-- its workspace and document keys (DESIGN.md F13); users, sessions and tokens
-- are small reference tables keyed by user.

CREATE TABLE users (
    id            TEXT    PRIMARY KEY,
    -- Lower-cased and trimmed by the server before it gets here.
    email         TEXT    NOT NULL UNIQUE,
    name          TEXT    NOT NULL,
    color         TEXT    NOT NULL,
    password_hash TEXT    NOT NULL,
    created_at    BIGINT NOT NULL
);

CREATE TABLE workspaces (
    id         TEXT    PRIMARY KEY,
    name       TEXT    NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE workspace_members (
    workspace_id TEXT    NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    user_id      TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role         TEXT    NOT NULL CHECK (role IN ('admin', 'member')),
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, user_id)
);
CREATE INDEX workspace_members_by_user ON workspace_members (user_id);

-- Documents created before accounts existed have no owner and no workspace;
-- they are reachable by nobody until an operator assigns them.
ALTER TABLE documents ADD COLUMN workspace_id TEXT;
ALTER TABLE documents ADD COLUMN owner_id TEXT;
CREATE INDEX documents_by_owner ON documents (owner_id, updated_at DESC);

-- People a document is shared with. `via_link` marks a grant obtained by
-- opening a share link, so that turning the link off withdraws it too.
CREATE TABLE document_shares (
    workspace_id TEXT    NOT NULL,
    doc_id       TEXT    NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    user_id      TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role         TEXT    NOT NULL CHECK (role IN ('owner', 'editor', 'commenter', 'viewer')),
    via_link     BIGINT  NOT NULL DEFAULT 0,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (doc_id, user_id)
);
CREATE INDEX document_shares_by_user ON document_shares (user_id);

-- At most one share link per document; only its token's hash is kept.
CREATE TABLE document_links (
    workspace_id TEXT    NOT NULL,
    doc_id       TEXT    PRIMARY KEY REFERENCES documents (id) ON DELETE CASCADE,
    token_hash   TEXT    NOT NULL UNIQUE,
    role         TEXT    NOT NULL CHECK (role IN ('editor', 'commenter', 'viewer')),
    created_at   BIGINT NOT NULL
);

-- One sign-in (a refresh-token family). Revoked, never deleted early, so that
-- a replayed token of a revoked family is still recognised as such.
CREATE TABLE auth_sessions (
    id         TEXT    PRIMARY KEY,
    user_id    TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX auth_sessions_by_user ON auth_sessions (user_id);

-- Access and refresh tokens of a session. `rotated_at` is set when a refresh
-- token is exchanged; presenting it again after the grace window is reuse.
CREATE TABLE auth_tokens (
    token_hash TEXT    PRIMARY KEY,
    kind       TEXT    NOT NULL CHECK (kind IN ('access', 'refresh')),
    session_id TEXT    NOT NULL REFERENCES auth_sessions (id) ON DELETE CASCADE,
    user_id    TEXT    NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    rotated_at BIGINT
);
CREATE INDEX auth_tokens_by_session ON auth_tokens (session_id);
CREATE INDEX auth_tokens_by_expiry ON auth_tokens (expires_at);
