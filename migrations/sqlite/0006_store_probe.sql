-- One row the store writer rewrites to test whether the database takes writes again after a
-- failed commit (a full disk, an I/O error): it writes `ballast` the size of a large delivery,
-- then empties it. See src/store/sqlite_writer.rs.
CREATE TABLE store_probe (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    probed_at INTEGER NOT NULL,
    ballast BLOB NOT NULL DEFAULT x''
);
