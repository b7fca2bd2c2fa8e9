-- One generation of the `privacy_requests` read model, the deletion audit trail (P22): every
-- data-subject request with its state and deadline, every step with its attempts, times and
-- outcome, and each erasure certificate. Nothing personal: ids, codes, times and evidence only.
CREATE TABLE privacy_requests{g}
(
    request_id   text    NOT NULL PRIMARY KEY,
    person_id    text    NOT NULL,
    kind         text    NOT NULL,
    state        text    NOT NULL,
    before_pause text,
    opened_by    text    NOT NULL,
    opened_at    text    NOT NULL,
    deadline     text    NOT NULL,
    verified_at  text,
    completed_at text,
    updated_at   text    NOT NULL
);
CREATE INDEX privacy_requests{g}_person ON privacy_requests{g} (person_id);
CREATE TABLE privacy_request_steps{g}
(
    request_id  text    NOT NULL,
    step        text    NOT NULL,
    ordinal     integer NOT NULL,
    status      text    NOT NULL,
    attempts    integer NOT NULL,
    started_at  text,
    finished_at text,
    outcome     text,
    evidence    text,
    PRIMARY KEY (request_id, step)
);
CREATE TABLE erasure_certificates{g}
(
    request_id  text NOT NULL PRIMARY KEY,
    person_id   text NOT NULL,
    issued_at   text NOT NULL,
    certificate text NOT NULL,
    event_id    text NOT NULL,
    chain_hash  text
);
CREATE INDEX erasure_certificates{g}_person ON erasure_certificates{g} (person_id);
