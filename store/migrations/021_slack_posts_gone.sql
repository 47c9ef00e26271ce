-- The posts a thread has had are outbox rows now (their dedupe key); slack_posts is unused.
DROP TABLE slack_posts;
