-- One row the readiness check rewrites: /readyz fails while the database cannot be written.
CREATE TABLE health (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    checked_at INTEGER NOT NULL
);
