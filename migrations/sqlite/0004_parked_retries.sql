-- Events waiting for a retry later leave the fair index until they are due, so a claim never
-- walks past them: a location's outage that leaves thousands of events waiting to be retried
-- must not make every claim (for every other location) slower.
--
-- parked_key: the fair key of an event put aside until next_attempt_at (fair_key is NULL
-- meanwhile); a claim gives it back once due, so the event keeps its place at the head.
ALTER TABLE events ADD COLUMN parked_key INTEGER;

CREATE INDEX events_parked ON events (next_attempt_at) WHERE parked_key IS NOT NULL;

-- Park what already waits (next_attempt_at is in Unix milliseconds).
UPDATE events SET parked_key = fair_key, fair_key = NULL
    WHERE status IN ('pending', 'retrying') AND fair_key IS NOT NULL
      AND next_attempt_at > CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER);
