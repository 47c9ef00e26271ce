-- Rollback plans: which hosts of a region go from which release to which, written before
-- the first host is touched, so a restart completes a rollback instead of forgetting it.
-- stage_id is the failed production stage an automatic rollback belongs to (0: a rollback
-- asked for by a person).
CREATE TABLE rollbacks (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  app         TEXT NOT NULL,
  region      TEXT NOT NULL,
  run_id      INTEGER NOT NULL DEFAULT 0,
  stage_id    INTEGER NOT NULL DEFAULT 0,
  actor       TEXT NOT NULL DEFAULT '',
  reason      TEXT NOT NULL DEFAULT '',
  state       TEXT NOT NULL,             -- planned, done, failed
  message     TEXT NOT NULL DEFAULT '',
  created_at  INTEGER NOT NULL,
  finished_at INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX rollbacks_state ON rollbacks (state);

CREATE TABLE rollback_hosts (
  rollback_id INTEGER NOT NULL REFERENCES rollbacks(id),
  host        TEXT NOT NULL,
  position    INTEGER NOT NULL,
  from_sha    TEXT NOT NULL DEFAULT '', -- what the host ran (or may have run) when planned
  to_sha      TEXT NOT NULL,
  step        TEXT NOT NULL,             -- pending, uploading, switching, restarting, checking, done, failed
  message     TEXT NOT NULL DEFAULT '',
  updated_at  INTEGER NOT NULL,
  PRIMARY KEY (rollback_id, host)
);
