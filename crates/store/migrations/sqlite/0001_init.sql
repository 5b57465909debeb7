-- Times are Unix milliseconds (i64), never SQL timestamps, so that both
-- backends hold them identically.

-- One row per document: metadata plus the log's high-water mark. `last_seq`
-- lives here rather than being derived as MAX(seq) over `updates`, because
-- compaction deletes rows and a derived maximum could then hand a sequence
-- number out twice.
CREATE TABLE documents (
    id         TEXT    PRIMARY KEY NOT NULL,
    title      TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    last_seq   INTEGER NOT NULL DEFAULT 0
);

-- Serves list_documents (newest first) without a sort.
CREATE INDEX documents_by_updated_at ON documents (updated_at DESC, id);

-- The update log. The foreign key makes a log row without its document
-- impossible and lets delete_document remove everything in one statement.
-- A rowid table (not WITHOUT ROWID) because a pasted update can be large.
CREATE TABLE updates (
    doc_id TEXT    NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    seq    INTEGER NOT NULL,
    data   BLOB    NOT NULL,
    PRIMARY KEY (doc_id, seq)
);

-- At most one snapshot per document: the merge of every row up to `upto`.
CREATE TABLE snapshots (
    doc_id     TEXT    PRIMARY KEY NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    upto       INTEGER NOT NULL,
    data       BLOB    NOT NULL,
    created_at INTEGER NOT NULL
);
