-- Deploy freezes with an expiry: of some regions of an app, of every region of an app
-- (region ''), or of every app (app '', `freeze --all`). A lifted freeze is kept, with who
-- lifted it. A stage promoted with --force past a freeze or window remembers it (forced).
CREATE TABLE freezes (
  id           INTEGER PRIMARY KEY AUTOINCREMENT,
  app          TEXT NOT NULL,
  region       TEXT NOT NULL,
  until_at     INTEGER NOT NULL,
  reason       TEXT NOT NULL,
  actor        TEXT NOT NULL,
  actor_id     TEXT NOT NULL,
  via          TEXT NOT NULL DEFAULT '',
  at           INTEGER NOT NULL,
  lifted_at    INTEGER NOT NULL DEFAULT 0,
  lifted_by    TEXT NOT NULL DEFAULT '',
  lifted_by_id TEXT NOT NULL DEFAULT ''
);
CREATE INDEX freezes_open ON freezes (lifted_at, until_at);

ALTER TABLE stages ADD COLUMN forced INTEGER NOT NULL DEFAULT 0;
