-- Claims walk unfinished events in id order; without this index they walk every done event too.
CREATE INDEX events_open ON events (id) WHERE status IN ('pending', 'processing', 'retrying');
