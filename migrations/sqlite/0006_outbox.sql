-- Checkpoints of the outboxes: workers that read the feed and cause effects outside dynamoi
-- (emails). Kept apart from projection checkpoints so that no rebuild ever moves them back.
CREATE TABLE outbox_checkpoints
(
    name              TEXT   NOT NULL PRIMARY KEY,
    checkpoint_commit BIGINT NOT NULL,
    checkpoint_global BIGINT NOT NULL,
    updated_at        TEXT   NOT NULL
);
