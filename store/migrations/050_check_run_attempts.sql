-- A stage's check run is created again when the stage starts again after its check run
-- completed; attempt counts them (1 for the first), and is part of the check run's
-- external id, so a create whose answer was lost is found again at GitHub by it. A row
-- with status 'creating' is the intent to create attempt's check run, written before the
-- request: its outcome is not known until GitHub is asked.
ALTER TABLE github_check_runs ADD COLUMN attempt INTEGER NOT NULL DEFAULT 1;
