-- What a step did beyond its GHL id, for operators (an uploaded file's name, size and SHA-256,
-- or why a file was not uploaded). The same column as SQLite's 0011.
ALTER TABLE event_steps ADD COLUMN detail TEXT;
