-- The vault (crate `vault`). Data keys, each wrapped (XChaCha20-Poly1305, the key id as
-- associated data) by a master key that never lives in the database. A subject (`key_ref`:
-- `person:<id>`, `purpose:<person id>:<purpose>`, `connection:<id>`) has at most one live key,
-- the one sealing uses; destroying it lets a later key of the next generation be created.
-- Key ids are `<key_ref>#<generation>.<16 random hex digits>` and are never reused.
CREATE TABLE vault_keys
(
    key_id        text   PRIMARY KEY,
    key_ref       text   NOT NULL,
    generation    bigint NOT NULL,
    -- xchacha20poly1305 | aes256gcm: the algorithm the data key seals with
    algorithm     text   NOT NULL,
    master_key_id text   NOT NULL,
    wrap_nonce    BLOB   NOT NULL,
    wrapped_key   BLOB   NOT NULL,
    created_at    text   NOT NULL
);
-- One live key per subject: two concurrent creators end with one key
-- (INSERT … ON CONFLICT DO NOTHING, then read).
CREATE UNIQUE INDEX vault_keys_one_per_subject ON vault_keys (key_ref);

-- The erasure ledger: every destroyed key id, with no personal data (ids and a reason code).
-- Re-applied at start-up (rows of vault_keys whose key_id is here are deleted), so restoring
-- an old copy of vault_keys cannot bring an erased person back.
CREATE TABLE vault_erasures
(
    key_id       text   PRIMARY KEY,
    key_ref      text   NOT NULL,
    generation   bigint NOT NULL,
    destroyed_at text   NOT NULL,
    reason       text   NOT NULL
);
CREATE INDEX vault_erasures_by_subject ON vault_erasures (key_ref, generation);
