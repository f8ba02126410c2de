-- Replicas prepare disjoint batches: `unprepared` marks the events it hands out until this time
-- (unix ms, the database's clock), so another replica skips them instead of preparing them too;
-- a replica that dies mid-batch leaves them to the others once it passes.
ALTER TABLE events ADD COLUMN prepare_until BIGINT NOT NULL DEFAULT 0;
