-- Find a lead (admin `GET /admin/search`): the keys each event can be found by, written when
-- the event is prepared (by dispatch, not at ingress): `email:` + the address lower-cased,
-- `phone:` + the number in E.164, `sid:` + the tool's submission id. The mapped contact's email
-- and phone and every answer that parses as an email or a phone are indexed, so a lead
-- dead-lettered because the mapping missed its phone field is still found by that phone.
-- One seek per key; pages go by event id (keyset, newest first).
CREATE TABLE event_lead_keys (
    lead_key TEXT    NOT NULL,
    event_id INTEGER NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    PRIMARY KEY (lead_key, event_id)
) WITHOUT ROWID;
CREATE INDEX event_lead_keys_event ON event_lead_keys (event_id);

-- Backfill of the events prepared before this migration: their parsed contact (already
-- normalized: lower-cased email, E.164 phone) and submission id. Answers that were not mapped
-- are not parsed here (phone parsing is not SQL): replay an old event to index those too.
INSERT OR IGNORE INTO event_lead_keys (lead_key, event_id)
    SELECT 'email:' || json_extract(submission, '$.contact.email'), event_id FROM event_plans
    WHERE json_valid(submission) AND json_extract(submission, '$.contact.email') IS NOT NULL;
INSERT OR IGNORE INTO event_lead_keys (lead_key, event_id)
    SELECT 'phone:' || json_extract(submission, '$.contact.phone'), event_id FROM event_plans
    WHERE json_valid(submission) AND json_extract(submission, '$.contact.phone') IS NOT NULL;
INSERT OR IGNORE INTO event_lead_keys (lead_key, event_id)
    SELECT 'sid:' || json_extract(submission, '$.submission_id'), event_id FROM event_plans
    WHERE json_valid(submission) AND json_extract(submission, '$.submission_id') IS NOT NULL;

-- The admin overview (`GET /admin/overview`): dead letters by source and location, and the
-- 429s of the last hours, each read through a small partial index instead of a table scan.
CREATE INDEX events_dead ON events (source, location_id) WHERE status = 'dead';
CREATE INDEX event_attempts_rate_limited ON event_attempts (at) WHERE outcome = 'rate_limited';

-- Listings and counts filtered by source (the admin's events list and "find a lead" without a
-- query): one index range per (source, status) instead of a walk of every event of the status
-- (151 ms at 100,000 events before, benches/cockpit.rs).
CREATE INDEX events_source_status ON events (source, status, id);
