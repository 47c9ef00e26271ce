-- Core model: releases, runs, stages, per-host steps, what is live, locks, events, audit.
CREATE TABLE releases (
  app        TEXT NOT NULL,
  sha        TEXT NOT NULL,
  subject    TEXT NOT NULL DEFAULT '',
  author     TEXT NOT NULL DEFAULT '',
  artifact   TEXT NOT NULL DEFAULT '',
  checksum   TEXT NOT NULL DEFAULT '',
  state      TEXT NOT NULL,             -- building, ready, failed
  message    TEXT NOT NULL DEFAULT '',
  created_at INTEGER NOT NULL,
  PRIMARY KEY (app, sha)
);

CREATE TABLE runs (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  app         TEXT NOT NULL,
  sha         TEXT NOT NULL,
  branch      TEXT NOT NULL DEFAULT '',
  subject     TEXT NOT NULL DEFAULT '',
  author      TEXT NOT NULL DEFAULT '',
  trigger     TEXT NOT NULL DEFAULT '',  -- push, cli, demo, deploy, rollback
  actor       TEXT NOT NULL DEFAULT '',
  state       TEXT NOT NULL,             -- building, running, waiting, succeeded, failed, superseded, cancelled
  message     TEXT NOT NULL DEFAULT '',
  created_at  INTEGER NOT NULL,
  updated_at  INTEGER NOT NULL
);
CREATE INDEX runs_app_state ON runs (app, state);

CREATE TABLE stages (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  run_id      INTEGER NOT NULL REFERENCES runs(id),
  region      TEXT NOT NULL,
  position    INTEGER NOT NULL,
  state       TEXT NOT NULL,  -- pending, awaiting_approval, approved, deploying, testing, monitoring, succeeded, failed, skipped, cancelled, rolled_back
  message     TEXT NOT NULL DEFAULT '',
  approved_by TEXT NOT NULL DEFAULT '',
  tests       TEXT NOT NULL DEFAULT '', -- test output tail
  verdict     TEXT NOT NULL DEFAULT '', -- judge.Verdict as JSON
  started_at  INTEGER NOT NULL DEFAULT 0,
  finished_at INTEGER NOT NULL DEFAULT 0,
  updated_at  INTEGER NOT NULL,
  UNIQUE (run_id, region)
);
CREATE INDEX stages_state ON stages (state);

CREATE TABLE host_steps (
  stage_id    INTEGER NOT NULL REFERENCES stages(id),
  host        TEXT NOT NULL,
  position    INTEGER NOT NULL,
  step        TEXT NOT NULL,  -- pending, uploading, switching, testing, monitoring, done, failed, rolling_back, rolled_back
  prev_sha    TEXT NOT NULL DEFAULT '', -- what was live before this step switched the host
  message     TEXT NOT NULL DEFAULT '',
  updated_at  INTEGER NOT NULL,
  PRIMARY KEY (stage_id, host)
);

-- What is live on each host, as Immunity last switched it.
CREATE TABLE live (
  app        TEXT NOT NULL,
  region     TEXT NOT NULL,
  host       TEXT NOT NULL,
  sha        TEXT NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (app, region, host)
);

-- Every release that went live in a region, newest last: history and rollback targets.
CREATE TABLE region_history (
  id         INTEGER PRIMARY KEY AUTOINCREMENT,
  app        TEXT NOT NULL,
  region     TEXT NOT NULL,
  sha        TEXT NOT NULL,
  action     TEXT NOT NULL,  -- deploy, promote, rollback, seed
  actor      TEXT NOT NULL DEFAULT '',
  run_id     INTEGER NOT NULL DEFAULT 0,
  at         INTEGER NOT NULL
);
CREATE INDEX region_history_app ON region_history (app, region, id);

CREATE TABLE locks (
  app        TEXT NOT NULL,
  region     TEXT NOT NULL,
  holder     TEXT NOT NULL,
  reason     TEXT NOT NULL DEFAULT '',
  at         INTEGER NOT NULL,
  PRIMARY KEY (app, region)
);

CREATE TABLE events (
  id         INTEGER PRIMARY KEY AUTOINCREMENT,
  run_id     INTEGER NOT NULL DEFAULT 0,
  app        TEXT NOT NULL DEFAULT '',
  region     TEXT NOT NULL DEFAULT '',
  host       TEXT NOT NULL DEFAULT '',
  kind       TEXT NOT NULL,
  message    TEXT NOT NULL,
  at         INTEGER NOT NULL
);
CREATE INDEX events_run ON events (run_id, id);

CREATE TABLE audit (
  id         INTEGER PRIMARY KEY AUTOINCREMENT,
  at         INTEGER NOT NULL,
  actor      TEXT NOT NULL,
  via        TEXT NOT NULL,   -- cli, slack, github, button, demo
  action     TEXT NOT NULL,
  app        TEXT NOT NULL DEFAULT '',
  region     TEXT NOT NULL DEFAULT '',
  sha        TEXT NOT NULL DEFAULT '',
  args       TEXT NOT NULL DEFAULT '',
  outcome    TEXT NOT NULL,   -- ok, refused, failed
  detail     TEXT NOT NULL DEFAULT ''
);
