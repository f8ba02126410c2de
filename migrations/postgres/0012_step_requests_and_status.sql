-- The GHL requests a step made in its latest attempt, as JSON text: a list of
-- {"request": "POST /contacts/upsert", "status": 200 | "failure": "timeout", "ms": 41}
-- (method and path template only: no query, no body). NULL when none were recorded. The same
-- column as SQLite's 0017.
ALTER TABLE event_steps ADD COLUMN requests TEXT;

-- The counts per status (the admin stats and overview) read this narrow index alone (an
-- index-only scan, 19 ms at 100,000 events against 38 ms for the table's sequential scan);
-- `events_source_status` leads with the source. A status change already updates an index
-- (no HOT update), so this adds one index entry per change, no commit.
CREATE INDEX events_status ON events (status);
