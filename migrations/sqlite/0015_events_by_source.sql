-- A source's newest events (`WHERE source = ? ORDER BY id DESC LIMIT n`: the mapping
-- playground's "last N deliveries", the events list filtered by source) read through an index
-- in id order instead of sorting every event of the source: 60 ms → under 1 ms at 100,000.
CREATE INDEX events_by_source ON events (source, id);
