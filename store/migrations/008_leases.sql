-- Leases: work that must happen once across replicas (an outbox's delivery, ...) is done
-- by the holder of its lease. token grows by one at every change of holder: it is the
-- fencing token every write of the work carries, so a holder that lost its lease (it
-- stalled past expires_at and another took over) writes nothing.
CREATE TABLE leases (
  name       TEXT PRIMARY KEY,
  holder     TEXT NOT NULL,
  token      INTEGER NOT NULL,
  expires_at INTEGER NOT NULL
);
