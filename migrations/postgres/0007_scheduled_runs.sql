-- Runs of scheduled jobs (the daily spend sync), one row per job and run key (a UTC day):
-- the instance whose insert creates the row runs the job, so two instances never run the same
-- day twice, and the row says when it finished and what it did.
CREATE TABLE scheduled_runs
(
    job         text NOT NULL,
    run_key     text NOT NULL,
    started_at  text NOT NULL,
    finished_at text,
    outcome     text,
    PRIMARY KEY (job, run_key)
);
