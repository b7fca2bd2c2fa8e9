-- One generation of the `stream_index` read model: every stream (aggregate) in the log, with its
-- event count and last sequence. Auditors list streams from it; `{g}` is the generation suffix.
CREATE TABLE stream_index{g}
(
    aggregate_type   text   NOT NULL,
    aggregate_id     text   NOT NULL,
    events           bigint NOT NULL,
    last_sequence    bigint NOT NULL,
    last_recorded_at text   NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id)
);
