-- Slack: the root of a run's thread is claimed before it is posted, so replicas racing to
-- post it post it once. A row with ts '' is a claim: claimed_by is the replica posting it,
-- created_at when it claimed (a claim older than a lease may be taken over).
ALTER TABLE slack_threads ADD COLUMN claimed_by TEXT NOT NULL DEFAULT '';
