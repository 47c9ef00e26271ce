-- The outbox: every effect on Slack or GitHub is a row here before it is sent, delivered
-- in order within its stream (one Slack thread, one run's check runs) by a worker that
-- retries until the API accepts it. A pending row with the same coalesce_key is replaced
-- rather than added to (only the newest state of a message is sent); a row with a
-- dedupe_key is added once ever (a thread's post).
CREATE TABLE outbox (
  id           INTEGER PRIMARY KEY AUTOINCREMENT,
  stream       TEXT NOT NULL,
  kind         TEXT NOT NULL,
  coalesce_key TEXT NOT NULL DEFAULT '',
  dedupe_key   TEXT,
  payload      TEXT NOT NULL,
  state        TEXT NOT NULL,              -- pending, sent, dropped
  attempts     INTEGER NOT NULL DEFAULT 0,
  not_before   INTEGER NOT NULL DEFAULT 0,
  last_error   TEXT NOT NULL DEFAULT '',
  created_at   INTEGER NOT NULL,
  sent_at      INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX outbox_pending ON outbox (state, stream, id);
CREATE UNIQUE INDEX outbox_coalesce ON outbox (coalesce_key) WHERE state = 'pending' AND coalesce_key <> '';
CREATE UNIQUE INDEX outbox_dedupe ON outbox (dedupe_key);
