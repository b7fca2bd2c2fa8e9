-- Checkpoints of the outboxes: workers that read the feed and cause effects outside dynamoi
-- (emails). Kept apart from projection checkpoints so that no rebuild ever moves them back.
CREATE TABLE outbox_checkpoints
(
    name              text   NOT NULL PRIMARY KEY,
    checkpoint_commit bigint NOT NULL,
    checkpoint_global bigint NOT NULL,
    updated_at        text   NOT NULL
);
