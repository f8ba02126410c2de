-- Find a lead (admin `GET /admin/search`), as the SQLite store's 0014: the keys each event can
-- be found by (`email:…`, `phone:+…` E.164, `sid:…`), written when it is prepared.
CREATE TABLE event_lead_keys (
    lead_key TEXT   NOT NULL,
    event_id BIGINT NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    PRIMARY KEY (lead_key, event_id)
);
CREATE INDEX event_lead_keys_event ON event_lead_keys (event_id);

-- Backfill from the parsed contact and submission id of the events prepared before (answers
-- that were not mapped are not parsed here: replay an old event to index those too).
INSERT INTO event_lead_keys (lead_key, event_id)
    SELECT k, event_id FROM (
        SELECT 'email:' || (submission->'contact'->>'email') AS k, event_id FROM event_plans
        UNION ALL
        SELECT 'phone:' || (submission->'contact'->>'phone'), event_id FROM event_plans
        UNION ALL
        SELECT 'sid:' || (submission->>'submission_id'), event_id FROM event_plans
    ) keys
    WHERE k IS NOT NULL
    ON CONFLICT DO NOTHING;

-- The admin overview (`GET /admin/overview`): dead letters by source and location, and the
-- 429s of the last hours, each read through a small partial index instead of a table scan.
CREATE INDEX events_dead ON events (source, location_id) WHERE status = 'dead';
CREATE INDEX event_attempts_rate_limited ON event_attempts (at) WHERE outcome = 'rate_limited';

-- Listings and counts filtered by source (the admin's events list and "find a lead" without a
-- query): one index range per (source, status) instead of a walk of every event of the status
-- (151 ms at 100,000 events before, benches/cockpit.rs).
CREATE INDEX events_source_status ON events (source, status, id);

-- The open events (what `GET /admin/stats`, the overview and the queue metrics read): SQLite
-- has had this index since its 0002; without it PostgreSQL read the whole table (96 ms for the
-- stats at 100,000 events, benches/cockpit.rs).
CREATE INDEX events_open ON events (id) WHERE status IN ('pending', 'processing', 'retrying');
