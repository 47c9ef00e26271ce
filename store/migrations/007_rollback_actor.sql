-- Who asked for a rollback, by verified identity and door (as region_history keeps it).
ALTER TABLE rollbacks ADD COLUMN actor_id TEXT NOT NULL DEFAULT '';
ALTER TABLE rollbacks ADD COLUMN via TEXT NOT NULL DEFAULT '';
