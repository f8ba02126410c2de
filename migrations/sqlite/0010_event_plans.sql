-- One schema for both backends: the SQLite store takes the PostgreSQL store's layout.
--
-- What preparation made of a delivery moves out of `events` into `event_plans` (one row per
-- prepared event, none before it is prepared or after a replay), and `prepared` marks an event
-- whose preparation was saved, as on PostgreSQL (migrations/postgres/0001 and 0004).
-- `prepare_until` is PostgreSQL's prepare lease (replicas); the SQLite store, one process's,
-- leaves it NULL. `event_steps.detail` was never written.
CREATE TABLE event_plans (
    event_id   INTEGER PRIMARY KEY REFERENCES events (id) ON DELETE CASCADE,
    submission TEXT,                  -- JSON
    plan       TEXT                   -- JSON
);
-- Every event past preparation has its row (a dead letter of preparation has no plan); a
-- pending event without a plan was not prepared yet (or was replayed).
INSERT INTO event_plans (event_id, submission, plan)
    SELECT id, submission, plan FROM events
    WHERE plan IS NOT NULL OR status <> 'pending';

ALTER TABLE events ADD COLUMN prepared BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE events ADD COLUMN prepare_until INTEGER;
UPDATE events SET prepared = TRUE WHERE plan IS NOT NULL OR status <> 'pending';

-- No index, view or trigger names these columns.
ALTER TABLE events DROP COLUMN submission;
ALTER TABLE events DROP COLUMN plan;
ALTER TABLE event_steps DROP COLUMN detail;

-- As on PostgreSQL: the oldest unprepared event is one index seek away, and retention finds
-- the done events finished before a time without walking the others.
CREATE INDEX events_unprepared ON events (id) WHERE status = 'pending' AND NOT prepared;
CREATE INDEX events_done ON events (updated_at) WHERE status = 'done';
