-- tried_at is when an item's call was first about to be sent (0: never). An item tried
-- before may have had its effect even though its answer never came back (a cut
-- connection, a server killed between the call and recording it): its sender looks for
-- that effect before sending it again.
ALTER TABLE outbox ADD COLUMN tried_at INTEGER NOT NULL DEFAULT 0;
