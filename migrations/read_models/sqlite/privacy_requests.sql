-- One generation of the `privacy_requests` read model, the deletion audit trail (P22): every
-- data-subject request with its state and deadline, every step with its attempts, times and
-- outcome, and each erasure certificate. Nothing personal: ids, codes, times and evidence only.
CREATE TABLE privacy_requests{g}
(
    request_id   TEXT    NOT NULL PRIMARY KEY,
    person_id    TEXT    NOT NULL,
    kind         TEXT    NOT NULL,
    state        TEXT    NOT NULL,
    before_pause TEXT,
    opened_by    TEXT    NOT NULL,
    opened_at    TEXT    NOT NULL,
    deadline     TEXT    NOT NULL,
    verified_at  TEXT,
    completed_at TEXT,
    updated_at   TEXT    NOT NULL
);
CREATE INDEX privacy_requests{g}_person ON privacy_requests{g} (person_id);
CREATE TABLE privacy_request_steps{g}
(
    request_id  TEXT    NOT NULL,
    step        TEXT    NOT NULL,
    ordinal     INTEGER NOT NULL,
    status      TEXT    NOT NULL,
    attempts    INTEGER NOT NULL,
    started_at  TEXT,
    finished_at TEXT,
    outcome     TEXT,
    evidence    TEXT,
    PRIMARY KEY (request_id, step)
);
CREATE TABLE erasure_certificates{g}
(
    request_id  TEXT NOT NULL PRIMARY KEY,
    person_id   TEXT NOT NULL,
    issued_at   TEXT NOT NULL,
    certificate TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    chain_hash  TEXT
);
CREATE INDEX erasure_certificates{g}_person ON erasure_certificates{g} (person_id);
