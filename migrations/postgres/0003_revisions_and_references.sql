-- Edited submissions and follow-ups (as the SQLite store's migration 0008).
--
-- A delivery that repeats an earlier one's tool id (Jotform `submissionID`) with other content
-- is an edit: it is stored as a new revision of that submission (`revision_of` = the first
-- revision's id, `dedupe_key` = the tool id and the content hash), so an identical resend of
-- any revision stays a duplicate. `content_hash` is of the parsed content (a multipart
-- boundary does not count); events stored before this migration have none.
ALTER TABLE events ADD COLUMN content_hash TEXT;
ALTER TABLE events ADD COLUMN revision_of BIGINT;
ALTER TABLE events ADD COLUMN revision BIGINT NOT NULL DEFAULT 1;
CREATE INDEX events_revisions ON events (revision_of) WHERE revision_of IS NOT NULL;

-- What ties deliveries of one lead together (`mapping.references`), as
-- `<location>/<tool>/<key>:<value>`, written when an event is prepared.
CREATE TABLE event_references (
    reference TEXT   NOT NULL,
    event_id  BIGINT NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    PRIMARY KEY (reference, event_id)
);
CREATE INDEX event_references_event ON event_references (event_id);
