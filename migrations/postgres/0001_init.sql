-- The PostgreSQL store (several replicas on one database). Times are unix milliseconds (UTC)
-- as BIGINT, like the SQLite store's, so both share one representation (store/types.rs).
--
-- Rows that change often stay small: `events` holds only the queue state (status, lease,
-- keys), updated on every claim, step and finish; the raw delivery (`event_deliveries`,
-- written once at insert) and the prepared plan (`event_plans`, written at prepare) live in
-- their own tables, so an update never copies a body and the old row versions autovacuum
-- reclaims stay small.

CREATE TABLE events (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source          TEXT    NOT NULL,
    dedupe_key      TEXT    NOT NULL,
    status          TEXT    NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'processing', 'done', 'retrying', 'dead')),
    attempts        BIGINT  NOT NULL DEFAULT 0,
    next_attempt_at BIGINT  NOT NULL,
    -- The lease token of the claim that holds the event (one per claim, see store::Claim),
    -- and until when, by the database's clock.
    lease_owner     TEXT,
    lease_until     BIGINT,
    contact_key     TEXT,
    location_id     TEXT,
    -- Start-time fair queuing key (see store/sqlite_queue.rs), and the key of an event parked
    -- until its next attempt is due.
    fair_key        BIGINT,
    parked_key      BIGINT,
    last_error      TEXT,
    received_at     BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL,
    CONSTRAINT events_dedupe UNIQUE (source, dedupe_key)
) WITH (fillfactor = 80); -- room on each page so status and lease updates are HOT updates

-- Claims walk prepared open events in fair order.
CREATE INDEX events_open_fair ON events (fair_key, id)
    WHERE status IN ('pending', 'processing', 'retrying') AND fair_key IS NOT NULL;
-- The first open event of each location in fair order (the claim's floor).
CREATE INDEX events_open_location ON events (location_id, fair_key)
    WHERE status IN ('pending', 'processing', 'retrying') AND fair_key IS NOT NULL;
-- Events parked until a retry is due.
CREATE INDEX events_parked ON events (next_attempt_at) WHERE parked_key IS NOT NULL;
-- One contact at a time: the open events of a contact.
CREATE INDEX events_contact ON events (contact_key, id)
    WHERE status IN ('pending', 'processing', 'retrying');
-- Preparation takes pending events without a plan (no `event_plans` row) in arrival order.
CREATE INDEX events_pending ON events (id) WHERE status = 'pending';
-- Admin lists and the oldest-unfinished gauge filter by receive time.
CREATE INDEX events_received ON events (received_at);
-- Retention deletes done events finished before a time, oldest first.
CREATE INDEX events_done ON events (updated_at) WHERE status = 'done';

-- The raw delivery, written once when it is acknowledged.
CREATE TABLE event_deliveries (
    event_id     BIGINT PRIMARY KEY REFERENCES events (id) ON DELETE CASCADE,
    content_type TEXT,
    headers      JSONB NOT NULL,              -- array of [name, value] pairs (safe subset)
    body         BYTEA NOT NULL
);

-- What preparation made of the delivery: one row per prepared event, none before (or after a
-- replay). Its presence is what "prepared" means, so two replicas preparing the same event
-- save only one preparation (the second insert conflicts and changes nothing).
CREATE TABLE event_plans (
    event_id   BIGINT PRIMARY KEY REFERENCES events (id) ON DELETE CASCADE,
    submission JSONB,
    plan       JSONB
);

-- Result of each plan step, recorded as soon as GHL answers.
CREATE TABLE event_steps (
    event_id   BIGINT  NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    step_index BIGINT  NOT NULL,
    kind       TEXT    NOT NULL,
    status     TEXT    NOT NULL CHECK (status IN ('started', 'done')),
    ghl_id     TEXT,
    updated_at BIGINT  NOT NULL,
    PRIMARY KEY (event_id, step_index)
);

-- One row per processing attempt that did not finish the event, and the final outcome.
CREATE TABLE event_attempts (
    event_id BIGINT  NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    attempt  BIGINT  NOT NULL,
    at       BIGINT  NOT NULL,
    outcome  TEXT    NOT NULL,
    error    TEXT,
    PRIMARY KEY (event_id, attempt)
);

-- OAuth tokens per GHL location; the rotated refresh token is saved before use.
CREATE TABLE oauth_tokens (
    location_id   TEXT PRIMARY KEY,
    access_token  TEXT   NOT NULL,
    refresh_token TEXT   NOT NULL,
    expires_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);

-- The fair key last given to each flow (GHL location, source).
CREATE TABLE fair_flows (
    location_id TEXT   NOT NULL,
    source      TEXT   NOT NULL,
    last_key    BIGINT NOT NULL,
    PRIMARY KEY (location_id, source)
);

-- The virtual time: the largest fair key claimed so far. One row.
CREATE TABLE fair_clock (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    vtime BIGINT NOT NULL
);
INSERT INTO fair_clock (id, vtime) VALUES (1, 0);
