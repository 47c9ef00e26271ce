-- GitHub webhook deliveries: every signed delivery is recorded before it is acted on.
-- dedupe_key catches the same event arriving under two delivery ids (a comment id, a
-- push's head sha); a duplicate is recorded with state 'duplicate' and no key.
CREATE TABLE github_deliveries (
  id          TEXT PRIMARY KEY,          -- X-GitHub-Delivery
  event       TEXT NOT NULL,             -- X-GitHub-Event
  action      TEXT NOT NULL DEFAULT '',
  repo        TEXT NOT NULL DEFAULT '',  -- owner/name
  dedupe_key  TEXT,
  state       TEXT NOT NULL,             -- received, done, failed, duplicate
  detail      TEXT NOT NULL DEFAULT '',
  received_at INTEGER NOT NULL,
  finished_at INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX github_deliveries_dedupe ON github_deliveries (dedupe_key) WHERE dedupe_key IS NOT NULL;
