-- One generation of the `consent_ledger` read model: each person's current state per purpose,
-- and every change in order.
CREATE TABLE consent_current{g}
(
    person_id      text    NOT NULL,
    purpose        text    NOT NULL,
    granted        boolean NOT NULL,
    notice_version text    NOT NULL,
    notice_sha256  text    NOT NULL,
    method         text    NOT NULL,
    jurisdiction   text    NOT NULL,
    changed_at     text    NOT NULL,
    event_id       text    NOT NULL,
    PRIMARY KEY (person_id, purpose)
);
CREATE TABLE consent_history{g}
(
    person_id      text   NOT NULL,
    sequence       bigint NOT NULL,
    event_id       text   NOT NULL,
    change         text   NOT NULL,
    purpose        text,
    notice_version text,
    method         text,
    recorded_at    text   NOT NULL,
    PRIMARY KEY (person_id, sequence)
);
