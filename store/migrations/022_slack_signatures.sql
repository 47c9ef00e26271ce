-- Slack: the signatures of the verified requests of the last minutes, so a captured
-- request replayed while its timestamp is still accepted is refused by every replica
-- sharing the database, and after a restart. expires_at is when a signature may be
-- forgotten (its timestamp is no longer accepted).
CREATE TABLE slack_signatures (
  signature TEXT PRIMARY KEY,
  expires_at INTEGER NOT NULL
);
