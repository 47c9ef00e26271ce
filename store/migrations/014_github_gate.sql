-- GitHub Actions deployments waiting for Immunity, their custom deployment protection
-- rule: each deployment_protection_rule request as received, before it is answered. state
-- moves once from waiting to approved or rejected (the review is then a row of the outbox
-- with a dedupe key: it is sent once ever); reports counts the status reports sent while
-- it waited (GitHub takes at most 10).
CREATE TABLE github_gate_requests (
  id             INTEGER PRIMARY KEY AUTOINCREMENT,
  repo           TEXT NOT NULL,             -- owner/name, lower case
  installation   INTEGER NOT NULL,
  environment    TEXT NOT NULL,
  deployment_id  INTEGER NOT NULL DEFAULT 0, -- 0: the job made no deployment
  sha            TEXT NOT NULL,
  ref            TEXT NOT NULL DEFAULT '',
  callback_url   TEXT NOT NULL,
  actions_run_id INTEGER NOT NULL,          -- the workflow run, from callback_url
  app            TEXT NOT NULL DEFAULT '',  -- the Immunity app gating it ('' when none does)
  state          TEXT NOT NULL DEFAULT 'waiting' CHECK (state IN ('waiting', 'approved', 'rejected')),
  reason         TEXT NOT NULL DEFAULT '',
  reports        INTEGER NOT NULL DEFAULT 0 CHECK (reports BETWEEN 0 AND 10),
  last_report    TEXT NOT NULL DEFAULT '',
  received_at    INTEGER NOT NULL,
  decided_at     INTEGER NOT NULL DEFAULT 0,
  UNIQUE (repo, actions_run_id, environment, deployment_id)
);
CREATE INDEX github_gate_waiting ON github_gate_requests (state, id);
