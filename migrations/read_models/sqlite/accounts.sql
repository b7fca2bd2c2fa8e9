-- One generation of the `accounts` read model: one row per person. Personal fields are kept
-- as the sealed JSON of the events (ciphertext), opened by the API with the person's key.
CREATE TABLE accounts{g}
(
    person_id               TEXT    NOT NULL PRIMARY KEY,
    provider                TEXT    NOT NULL,
    country                 TEXT    NOT NULL,
    -- The minimum age of the country that the age gate checked at sign-up, and whether it was
    -- met (always true: an under-age sign-up records nothing).
    minimum_age             INTEGER NOT NULL,
    minimum_age_met         BOOLEAN NOT NULL,
    provider_subject_sealed TEXT    NOT NULL,
    name_sealed             TEXT    NOT NULL,
    email_sealed            TEXT    NOT NULL,
    avatar_url_sealed       TEXT,
    child                   BOOLEAN NOT NULL,
    signed_up_at            TEXT    NOT NULL,
    updated_at              TEXT    NOT NULL,
    -- When the account was closed (RFC 3339, UTC); NULL while open.
    closed_at               TEXT
);
