-- A source's newest events (`WHERE source = $1 ORDER BY id DESC LIMIT n`: the mapping
-- playground's "last N deliveries", the events list filtered by source), as the SQLite store's
-- 0015: an index in id order instead of sorting every event of the source.
CREATE INDEX events_by_source ON events (source, id);
