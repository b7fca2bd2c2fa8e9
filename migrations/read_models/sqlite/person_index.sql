-- One generation of the `person_index` read model: every stream a person owns (`subject`) or
-- recorded events in (`author`), with where it starts in the feed. The access export and the
-- erasure read it instead of scanning the event log; `{g}` is the generation suffix.
CREATE TABLE person_index{g}
(
    person_id      text   NOT NULL,
    aggregate_type text   NOT NULL,
    aggregate_id   text   NOT NULL,
    role           text   NOT NULL,
    first_commit   bigint NOT NULL,
    first_global   bigint NOT NULL,
    PRIMARY KEY (person_id, aggregate_type, aggregate_id, role)
);
