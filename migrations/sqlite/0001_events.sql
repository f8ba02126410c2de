-- Raw deliveries and their processing state. Times are unix milliseconds (UTC).
CREATE TABLE events (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    source          TEXT    NOT NULL,
    dedupe_key      TEXT    NOT NULL,
    content_type    TEXT,
    headers         TEXT    NOT NULL,          -- JSON array of [name, value] pairs (safe subset)
    body            BLOB    NOT NULL,
    received_at     INTEGER NOT NULL,
    status          TEXT    NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'processing', 'done', 'retrying', 'dead')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    lease_owner     TEXT,
    lease_until     INTEGER,
    contact_key     TEXT,
    location_id     TEXT,
    submission      TEXT,                      -- JSON, filled by the worker
    plan            TEXT,                      -- JSON, filled by the worker
    last_error      TEXT,
    updated_at      INTEGER NOT NULL,
    UNIQUE (source, dedupe_key)
);
CREATE INDEX events_due ON events (status, next_attempt_at);
CREATE INDEX events_contact ON events (contact_key, id);
CREATE INDEX events_received ON events (received_at);

-- Result of each plan step, recorded as soon as GHL answers.
CREATE TABLE event_steps (
    event_id    INTEGER NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    step_index  INTEGER NOT NULL,
    kind        TEXT    NOT NULL,
    status      TEXT    NOT NULL CHECK (status IN ('started', 'done')),
    ghl_id      TEXT,
    detail      TEXT,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (event_id, step_index)
);

-- One row per processing attempt that did not finish the event.
CREATE TABLE event_attempts (
    event_id    INTEGER NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    attempt     INTEGER NOT NULL,
    at          INTEGER NOT NULL,
    outcome     TEXT    NOT NULL,
    error       TEXT,
    PRIMARY KEY (event_id, attempt)
);

-- OAuth tokens per GHL location; the rotated refresh token is saved before use.
CREATE TABLE oauth_tokens (
    location_id   TEXT PRIMARY KEY,
    access_token  TEXT    NOT NULL,
    refresh_token TEXT    NOT NULL,
    expires_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
