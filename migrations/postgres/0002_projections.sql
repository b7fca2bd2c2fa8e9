-- Projection checkpoints. Each projection has generations: one active (served through views
-- named after its tables), and at most one rebuilding beside it (blue/green). The checkpoint
-- is written in the same transaction as the read-model changes it covers.
CREATE TABLE projection_generations
(
    name              text    NOT NULL,
    generation        bigint  NOT NULL,
    version           integer NOT NULL,
    active            boolean NOT NULL DEFAULT false,
    -- rebuilding | running | stalled | retired
    state             text    NOT NULL,
    checkpoint_commit bigint  NOT NULL DEFAULT 0,
    checkpoint_global bigint  NOT NULL DEFAULT 0,
    events_applied    bigint  NOT NULL DEFAULT 0,
    last_error        text,
    error_position    text,
    updated_at        text    NOT NULL,
    PRIMARY KEY (name, generation)
);
CREATE UNIQUE INDEX projection_generations_one_active ON projection_generations (name) WHERE active;
