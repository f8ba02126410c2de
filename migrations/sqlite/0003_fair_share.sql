-- Start-time fair queuing between the sources (flows) of each GHL location, so one source's
-- flood cannot make another source's leads wait behind all of it.
--
-- fair_key: the event's start tag, set once when it is prepared (NULL before); claims go in
-- (fair_key, id) order. Keys are on the scale of ids: never above the event's id.
ALTER TABLE events ADD COLUMN fair_key INTEGER;

-- The key last given to each flow (location, source).
CREATE TABLE fair_flows (
    location_id TEXT    NOT NULL,
    source      TEXT    NOT NULL,
    last_key    INTEGER NOT NULL,
    PRIMARY KEY (location_id, source)
);

-- Claims walk prepared unfinished events in fair order (unprepared ones are not in it at all).
DROP INDEX events_open;
CREATE INDEX events_open_fair ON events (fair_key, id)
    WHERE status IN ('pending', 'processing', 'retrying') AND fair_key IS NOT NULL;

-- The head of each location's queue (its virtual time): smallest key not waiting for a retry.
CREATE INDEX events_head ON events (location_id, fair_key)
    WHERE status IN ('pending', 'processing') AND fair_key IS NOT NULL;

-- A backlog prepared before this migration keeps its arrival order.
UPDATE events SET fair_key = id
    WHERE status IN ('pending', 'processing', 'retrying')
      AND plan IS NOT NULL AND location_id IS NOT NULL;
INSERT INTO fair_flows (location_id, source, last_key)
    SELECT location_id, source, MAX(fair_key) FROM events
    WHERE fair_key IS NOT NULL
    GROUP BY location_id, source;
