-- Work items of the durable workflows (process managers): each reaction that calls a processor
-- or spans several commands (a meter event to Stripe, an invitation email, campaigns held for a
-- past-due subscription, a privacy request's steps, a retention action) is one item, created
-- from the feed (with the workflow's checkpoint in `outbox_checkpoints`, in the same
-- transaction) or by the use case that runs it at once. An item is tried, backed off and
-- retried on its own; after `DYNAMOI_WORKFLOW_MAX_ATTEMPTS` failures it is parked with its
-- error until an operator retries or resolves it. Times are RFC 3339 UTC text (microseconds).
CREATE TABLE workflow_items
(
    workflow        text    NOT NULL,
    item            text    NOT NULL,
    payload         text    NOT NULL,
    -- pending | done | parked
    state           text    NOT NULL,
    attempts        integer NOT NULL,
    -- Bumped whenever the item is put back to work (re-armed): an attempt that began before a
    -- re-arm does not close the item, so what the re-arm asked for is handled.
    arms            integer NOT NULL DEFAULT 0,
    next_attempt_at text    NOT NULL,
    -- The instance working on it, until when (a dead instance's lease lapses).
    lease_owner     text,
    lease_until     text,
    last_error      text,
    outcome         text,
    created_at      text    NOT NULL,
    updated_at      text    NOT NULL,
    PRIMARY KEY (workflow, item)
);
CREATE INDEX workflow_items_due ON workflow_items (workflow, state, next_attempt_at);
