-- Until when GHL may still carry out a step's request that got no answer (unix ms; NULL once
-- GHL answered): the dispatcher looks for what it made only after this. The same column as
-- SQLite's 0013.
ALTER TABLE event_steps ADD COLUMN in_doubt_until BIGINT;
