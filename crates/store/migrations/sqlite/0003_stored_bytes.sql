-- Each document's stored size, for per-account storage quotas: the bytes of
-- its snapshot plus those of its log rows. Kept here rather than summed on
-- demand so that a quota check reads one row per document: appends add to
-- it in the UPDATE that already reserves their sequence numbers, and
-- compaction sets it to the new snapshot plus the rows it left.
ALTER TABLE documents ADD COLUMN stored_bytes INTEGER NOT NULL DEFAULT 0;

-- Documents written before this column existed get their real size.
-- length() of a BLOB counts bytes.
UPDATE documents SET stored_bytes =
    COALESCE((SELECT SUM(length(u.data)) FROM updates u WHERE u.doc_id = documents.id), 0)
  + COALESCE((SELECT length(s.data) FROM snapshots s WHERE s.doc_id = documents.id), 0);
