-- Release artifacts kept in the database, so that every replica sharing it can deploy a
-- release another built (PostgreSQL without a shared artifacts_dir): chunks of at most
-- 1 MiB, each with its sha256, and the whole artifact's sha256, both checked on read.
CREATE TABLE artifacts (
  app        TEXT NOT NULL,
  sha        TEXT NOT NULL,
  checksum   TEXT NOT NULL,  -- sha256 of the whole artifact, hex
  size       INTEGER NOT NULL,
  chunks     INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (app, sha)
);

CREATE TABLE artifact_chunks (
  app  TEXT NOT NULL,
  sha  TEXT NOT NULL,
  n    INTEGER NOT NULL,  -- 0, 1, ...
  sum  TEXT NOT NULL,     -- sha256 of data, hex
  data BLOB NOT NULL,
  PRIMARY KEY (app, sha, n)
);
