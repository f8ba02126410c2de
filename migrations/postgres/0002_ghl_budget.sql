-- The GHL rate budget every replica shares (see src/store/budget.rs): `burst` request slots per
-- location, each free from `free_at` (unix milliseconds, the database's clock) on.
CREATE TABLE ghl_budget_slots (
    location_id TEXT    NOT NULL,
    slot        INTEGER NOT NULL,
    free_at     BIGINT  NOT NULL DEFAULT 0,
    -- Who took it last: a late completion of an earlier taking does not free it early.
    ticket      BIGINT  NOT NULL DEFAULT 0,
    PRIMARY KEY (location_id, slot)
) WITH (fillfactor = 70);

-- A location-wide pause (after a 429, or with the daily quota spent), for every replica.
CREATE TABLE ghl_budget_pauses (
    location_id  TEXT   PRIMARY KEY,
    paused_until BIGINT NOT NULL
);
