-- The first open event of each location in fair order, found with one seek: a claim that
-- leaves some locations out (paused, blocked on their token, at their concurrency cap) starts
-- its walk at the smallest key among the others, rather than walking past every waiting event
-- of the ones left out.
CREATE INDEX events_open_location ON events (location_id, fair_key)
    WHERE status IN ('pending', 'processing', 'retrying') AND fair_key IS NOT NULL;
