-- The GHL requests a step made in its latest attempt, as JSON text: a list of
-- {"request": "POST /contacts/upsert", "status": 200 | "failure": "timeout", "ms": 41}
-- (method and path template only: no query, no body). NULL when none were recorded. The same
-- column as PostgreSQL's 0012.
ALTER TABLE event_steps ADD COLUMN requests TEXT;
