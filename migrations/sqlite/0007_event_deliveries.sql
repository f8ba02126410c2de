-- The raw delivery is written once and never changes; it moves out of `events`, whose rows are
-- rewritten on every claim, step and finish (SQLite rewrites a whole row, overflow pages and
-- all, on any update), so those writes no longer copy the body each time.
CREATE TABLE event_deliveries (
    event_id     INTEGER PRIMARY KEY REFERENCES events (id) ON DELETE CASCADE,
    content_type TEXT,
    headers      TEXT NOT NULL,          -- JSON array of [name, value] pairs (safe subset)
    body         BLOB NOT NULL
);
INSERT INTO event_deliveries (event_id, content_type, headers, body)
    SELECT id, content_type, headers, body FROM events;
ALTER TABLE events DROP COLUMN body;
ALTER TABLE events DROP COLUMN headers;
ALTER TABLE events DROP COLUMN content_type;
