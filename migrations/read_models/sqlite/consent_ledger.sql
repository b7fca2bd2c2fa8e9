-- One generation of the `consent_ledger` read model: each person's current state per purpose,
-- and every change in order.
CREATE TABLE consent_current{g}
(
    person_id      TEXT    NOT NULL,
    purpose        TEXT    NOT NULL,
    granted        BOOLEAN NOT NULL,
    notice_version TEXT    NOT NULL,
    notice_sha256  TEXT    NOT NULL,
    method         TEXT    NOT NULL,
    jurisdiction   TEXT    NOT NULL,
    changed_at     TEXT    NOT NULL,
    event_id       TEXT    NOT NULL,
    PRIMARY KEY (person_id, purpose)
);
CREATE TABLE consent_history{g}
(
    person_id      TEXT   NOT NULL,
    sequence       BIGINT NOT NULL,
    event_id       TEXT   NOT NULL,
    change         TEXT   NOT NULL,
    purpose        TEXT,
    notice_version TEXT,
    method         TEXT,
    recorded_at    TEXT   NOT NULL,
    PRIMARY KEY (person_id, sequence)
);
