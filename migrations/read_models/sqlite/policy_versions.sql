-- One generation of the `policy_versions` read model; `{g}` is the generation suffix.
CREATE TABLE policy_versions{g}
(
    document_id        TEXT    NOT NULL,
    version_number     INTEGER NOT NULL,
    label              TEXT    NOT NULL,
    effective_date     TEXT    NOT NULL,
    locale             TEXT    NOT NULL,
    text_sha256        TEXT    NOT NULL,
    summary_of_changes TEXT    NOT NULL,
    published_at       TEXT    NOT NULL,
    published_by       TEXT    NOT NULL,
    PRIMARY KEY (document_id, version_number)
);
CREATE INDEX policy_versions{g}_effective ON policy_versions{g} (locale, effective_date);
