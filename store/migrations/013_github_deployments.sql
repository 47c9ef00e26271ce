-- One GitHub Deployment per region per release (and one per rollback), with the last
-- status sent. key is run/RUN/REGION for a run's stage, rollback/APP/REGION/SHA/NS for a
-- rollback or a deploy outside a run.
CREATE TABLE github_deployments (
  key           TEXT PRIMARY KEY,
  app           TEXT NOT NULL,
  region        TEXT NOT NULL,
  sha           TEXT NOT NULL,
  run_id        INTEGER NOT NULL DEFAULT 0,
  repo          TEXT NOT NULL,
  deployment_id INTEGER NOT NULL,
  production    INTEGER NOT NULL DEFAULT 0,
  state         TEXT NOT NULL DEFAULT '',  -- last status: queued, in_progress, success, failure, error, inactive
  updated_at    INTEGER NOT NULL
);
CREATE INDEX github_deployments_env ON github_deployments (repo, region, state);
