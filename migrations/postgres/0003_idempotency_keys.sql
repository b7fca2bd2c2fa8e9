-- Idempotency-Key records of command endpoints: the first request with a key claims it; a
-- repeat with the same body gets the stored answer; another body with the same key is refused.
CREATE TABLE idempotency_keys
(
    scope          text   NOT NULL,
    key            text   NOT NULL,
    request_sha256 text   NOT NULL,
    state          text   NOT NULL,
    status         integer,
    body           text,
    claimed_at     bigint NOT NULL,
    PRIMARY KEY (scope, key)
);
