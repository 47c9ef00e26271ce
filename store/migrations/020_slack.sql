-- Slack: one thread per run, and the thread posts already made (so a restart neither
-- starts a second thread nor repeats a post).
CREATE TABLE slack_threads (
  run_id     INTEGER PRIMARY KEY,
  channel    TEXT NOT NULL,
  ts         TEXT NOT NULL,  -- the root message's ts: the thread's id
  created_at INTEGER NOT NULL
);

CREATE TABLE slack_posts (
  run_id     INTEGER NOT NULL,
  key        TEXT NOT NULL,  -- what the post reports: stage/prod3/failed, run/succeeded
  ts         TEXT NOT NULL DEFAULT '',
  created_at INTEGER NOT NULL,
  PRIMARY KEY (run_id, key)
);
