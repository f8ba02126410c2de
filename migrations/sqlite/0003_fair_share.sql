-- Start-time fair queuing between flows — one flow per (GHL location, source) — so one source's
-- flood cannot make another source's leads, or another location's, wait behind all of it.
--
-- fair_key: the event's start tag, set once when it is prepared (NULL before); claims go in
-- (fair_key, id) order.
ALTER TABLE events ADD COLUMN fair_key INTEGER;

-- The key last given to each flow.
CREATE TABLE fair_flows (
    location_id TEXT    NOT NULL,
    source      TEXT    NOT NULL,
    last_key    INTEGER NOT NULL,
    PRIMARY KEY (location_id, source)
);

-- The virtual time: the largest key claimed so far. One row.
CREATE TABLE fair_clock (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    vtime INTEGER NOT NULL
);

-- Claims walk prepared unfinished events in fair order (unprepared ones are not in it at all).
DROP INDEX events_open;
CREATE INDEX events_open_fair ON events (fair_key, id)
    WHERE status IN ('pending', 'processing', 'retrying') AND fair_key IS NOT NULL;

-- A backlog prepared before this migration: each flow's events keep their arrival order and
-- the flows take turns from the start.
UPDATE events SET fair_key = ranked.n
    FROM (SELECT id, ROW_NUMBER() OVER (PARTITION BY location_id, source ORDER BY id) AS n
          FROM events
          WHERE status IN ('pending', 'processing', 'retrying')
            AND plan IS NOT NULL AND location_id IS NOT NULL) AS ranked
    WHERE events.id = ranked.id;
INSERT INTO fair_flows (location_id, source, last_key)
    SELECT location_id, source, MAX(fair_key) FROM events
    WHERE fair_key IS NOT NULL
    GROUP BY location_id, source;
INSERT INTO fair_clock (id, vtime) VALUES (1, 0);
