-- One generation of the `accounts` read model: one row per person. Personal fields are kept
-- as the sealed JSON of the events (ciphertext), opened by the API with the person's key.
CREATE TABLE accounts{g}
(
    person_id               text    NOT NULL PRIMARY KEY,
    provider                text    NOT NULL,
    country                 text    NOT NULL,
    -- The minimum age of the country that the age gate checked at sign-up, and whether it was
    -- met (always true: an under-age sign-up records nothing).
    minimum_age             integer NOT NULL,
    minimum_age_met         boolean NOT NULL,
    provider_subject_sealed text    NOT NULL,
    name_sealed             text    NOT NULL,
    email_sealed            text    NOT NULL,
    avatar_url_sealed       text,
    child                   boolean NOT NULL,
    signed_up_at            text    NOT NULL,
    updated_at              text    NOT NULL,
    -- When the account was closed (RFC 3339, UTC); NULL while open.
    closed_at               text
);
