-- Verified identities: locks, the audit log and region history are keyed by the actor's
-- stable id (slack:TEAM/USER, github:ID, token:NAME, local:USER), names are for display.
ALTER TABLE audit ADD COLUMN actor_id TEXT NOT NULL DEFAULT '';
ALTER TABLE locks ADD COLUMN holder_id TEXT NOT NULL DEFAULT '';
ALTER TABLE region_history ADD COLUMN actor_id TEXT NOT NULL DEFAULT '';
ALTER TABLE region_history ADD COLUMN via TEXT NOT NULL DEFAULT '';
ALTER TABLE stages ADD COLUMN approved_by_id TEXT NOT NULL DEFAULT '';
ALTER TABLE stages ADD COLUMN approved_via TEXT NOT NULL DEFAULT '';
CREATE INDEX audit_app_region ON audit (app, region);
CREATE INDEX audit_actor ON audit (actor_id);

-- Personal API tokens: only a SHA-256 of each token is kept; a revoked token keeps its row.
CREATE TABLE api_tokens (
  hash         TEXT PRIMARY KEY,
  name         TEXT NOT NULL,
  role         TEXT NOT NULL,             -- admin, member
  created_by   TEXT NOT NULL DEFAULT '',
  created_at   BIGINT NOT NULL,
  revoked_at   BIGINT NOT NULL DEFAULT 0,
  last_used_at BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX api_tokens_name ON api_tokens (name);

-- Dashboard sessions, by a SHA-256 of the cookie's value; csrf is the token every form of
-- the session carries.
CREATE TABLE sessions (
  hash       TEXT PRIMARY KEY,
  actor      TEXT NOT NULL,  -- the signed-in identity, as JSON
  token      TEXT NOT NULL DEFAULT '', -- the API token it was signed in with
  csrf       TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  expires_at BIGINT NOT NULL
);
