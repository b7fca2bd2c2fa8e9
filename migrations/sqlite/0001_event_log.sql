-- The event log: sqlite-es's `events` and `snapshots` tables, extended with the columns the
-- global feed and the event metadata need.
CREATE TABLE events
(
    aggregate_type  TEXT                         NOT NULL,
    aggregate_id    TEXT                         NOT NULL,
    sequence        BIGINT CHECK (sequence >= 0) NOT NULL,
    event_type      TEXT                         NOT NULL,
    event_version   TEXT                         NOT NULL,
    payload         TEXT                         NOT NULL,
    metadata        TEXT                         NOT NULL,
    -- Assigned inside the writing statement (SQLite has one writer at a time), so it is
    -- gap-free and in commit order. Not the implicit rowid, which may reuse values.
    global_position INTEGER,
    recorded_at     TEXT                         NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')),
    event_id        TEXT                         NOT NULL DEFAULT (lower(hex(randomblob(16)))),
    PRIMARY KEY (aggregate_type, aggregate_id, sequence)
);

CREATE UNIQUE INDEX events_global_position ON events (global_position);

-- Rows written by other tools (sqlite-es's own repository) get their position here.
CREATE TRIGGER events_assign_global_position AFTER INSERT ON events
    WHEN NEW.global_position IS NULL
BEGIN
    UPDATE events
    SET global_position = (SELECT COALESCE(MAX(global_position), 0) + 1 FROM events)
    WHERE rowid = NEW.rowid;
END;

CREATE TABLE snapshots
(
    aggregate_type   TEXT                                 NOT NULL,
    aggregate_id     TEXT                                 NOT NULL,
    last_sequence    BIGINT CHECK (last_sequence >= 0)    NOT NULL,
    current_snapshot BIGINT CHECK (current_snapshot >= 0) NOT NULL,
    payload          TEXT                                 NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id, last_sequence)
);
