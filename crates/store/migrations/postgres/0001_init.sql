-- Times are Unix milliseconds (BIGINT), never timestamptz, so that both
-- backends hold them identically.
--
-- Every table is keyed by document id first, so the schema can be distributed
-- by document (e.g. Citus, with the three tables colocated on that column).

-- One row per document: metadata plus the log's high-water mark. `last_seq`
-- lives here rather than being derived as MAX(seq) over `updates`: appends
-- bump it with UPDATE ... RETURNING, and the row lock that takes is what
-- serializes the writers of one document across nodes. It also survives
-- compaction, which deletes rows, so no sequence number is handed out twice.
CREATE TABLE documents (
    id         TEXT   PRIMARY KEY,
    title      TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    last_seq   BIGINT NOT NULL DEFAULT 0
);

-- Serves list_documents (newest first) without a sort.
CREATE INDEX documents_by_updated_at ON documents (updated_at DESC, id);

-- The update log. The foreign key makes a log row without its document
-- impossible and lets delete_document remove everything in one statement.
CREATE TABLE updates (
    doc_id TEXT   NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    seq    BIGINT NOT NULL,
    data   BYTEA  NOT NULL,
    PRIMARY KEY (doc_id, seq)
);

-- At most one snapshot per document: the merge of every row up to `upto`.
CREATE TABLE snapshots (
    doc_id     TEXT   PRIMARY KEY REFERENCES documents (id) ON DELETE CASCADE,
    upto       BIGINT NOT NULL,
    data       BYTEA  NOT NULL,
    created_at BIGINT NOT NULL
);
