-- Which GitHub App installation serves which repo (from installation events and every
-- delivery's installation field).
CREATE TABLE github_installations (
  repo            TEXT PRIMARY KEY,   -- owner/name, lower case
  installation_id INTEGER NOT NULL,
  account         TEXT NOT NULL DEFAULT '',
  updated_at      INTEGER NOT NULL
);
CREATE INDEX github_installations_id ON github_installations (installation_id);
