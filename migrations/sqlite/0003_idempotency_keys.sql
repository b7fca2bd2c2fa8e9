-- Idempotency-Key records of command endpoints: the first request with a key claims it; a
-- repeat with the same body gets the stored answer; another body with the same key is refused.
CREATE TABLE idempotency_keys
(
    scope          TEXT   NOT NULL,
    key            TEXT   NOT NULL,
    request_sha256 TEXT   NOT NULL,
    state          TEXT   NOT NULL,
    status         INTEGER,
    body           text,
    claimed_at     BIGINT NOT NULL,
    PRIMARY KEY (scope, key)
);
