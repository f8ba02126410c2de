-- Replicas prepare disjoint batches of new deliveries instead of every replica preparing the
-- oldest ones (the first save stood, the rest was wasted work).
--
-- `prepared` marks an event whose preparation was saved (its `event_plans` row exists), so the
-- oldest unprepared pending event is one index seek away: claims never hand out an event newer
-- than it (it may be the same contact's earlier delivery, whose contact key is not known yet),
-- and preparation takes the oldest unprepared events not under another replica's lease
-- (`prepare_until`, on the database's clock).
--
-- Existing rows default to prepared; the few pending ones without a plan are then marked.
ALTER TABLE events ADD COLUMN prepared BOOLEAN NOT NULL DEFAULT true;
ALTER TABLE events ADD COLUMN prepare_until BIGINT;
UPDATE events SET prepared = false
    WHERE status = 'pending'
      AND NOT EXISTS (SELECT 1 FROM event_plans p WHERE p.event_id = events.id);
CREATE INDEX events_unprepared ON events (id) WHERE status = 'pending' AND NOT prepared;
