-- A submission's next revision number is read off this index (the highest `revision` of its
-- `revision_of`), so an edit costs the same with three revisions or three thousand; the old
-- index on `revision_of` alone made every edit walk all earlier revisions. Partial: first
-- revisions (nearly every delivery) are not in it, so ingest writes nothing more.
DROP INDEX events_revisions;
CREATE INDEX events_revisions ON events (revision_of, revision) WHERE revision_of IS NOT NULL;
