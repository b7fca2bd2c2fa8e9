-- One generation of the `policy_versions` read model; `{g}` is the generation suffix.
CREATE TABLE policy_versions{g}
(
    document_id        text    NOT NULL,
    version_number     integer NOT NULL,
    label              text    NOT NULL,
    effective_date     text    NOT NULL,
    locale             text    NOT NULL,
    text_sha256        text    NOT NULL,
    summary_of_changes text    NOT NULL,
    published_at       text    NOT NULL,
    published_by       text    NOT NULL,
    PRIMARY KEY (document_id, version_number)
);
CREATE INDEX policy_versions{g}_effective ON policy_versions{g} (locale, effective_date);
