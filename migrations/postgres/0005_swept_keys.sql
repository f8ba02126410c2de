-- Dedupe keys of the events retention deleted (tombstones): a delivery that repeats one is still
-- a duplicate, so a captured delivery replayed after its event was swept is not accepted as new.
-- `content_hash` is the swept event's (an edit with other content is stored, as a new event).
-- Forgotten a year after the sweep (`store::SWEPT_KEYS_KEPT`).
CREATE TABLE swept_keys (
    source       TEXT    NOT NULL,
    dedupe_key   TEXT    NOT NULL,
    content_hash TEXT,
    event_id     BIGINT  NOT NULL,
    swept_at     BIGINT  NOT NULL,
    PRIMARY KEY (source, dedupe_key)
);
CREATE INDEX swept_keys_by_age ON swept_keys (swept_at);
