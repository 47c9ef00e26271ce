-- The Check Run that shows each region stage of a run on its commit. digest is a hash of
-- what was last sent, so a restart updates (or leaves alone) instead of duplicating.
CREATE TABLE github_check_runs (
  run_id       INTEGER NOT NULL,
  region       TEXT NOT NULL,
  repo         TEXT NOT NULL,
  check_run_id INTEGER NOT NULL,
  status       TEXT NOT NULL DEFAULT '',  -- queued, in_progress, completed
  digest       TEXT NOT NULL DEFAULT '',
  updated_at   INTEGER NOT NULL,
  PRIMARY KEY (run_id, region)
);
CREATE INDEX github_check_runs_id ON github_check_runs (check_run_id);
