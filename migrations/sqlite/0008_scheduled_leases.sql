-- Leases on scheduled runs: the instance that claims a job's run for a day holds it until
-- `lease_until` and renews it while it works; a run left unfinished past its lease (the
-- instance died) is taken over by the next instance, or by the next start, the same day.
-- `attempts` counts the claims of the run. Times are RFC 3339 UTC text with microseconds, so
-- they compare as text.
ALTER TABLE scheduled_runs ADD COLUMN lease_until text;
ALTER TABLE scheduled_runs ADD COLUMN owner text;
ALTER TABLE scheduled_runs ADD COLUMN attempts integer NOT NULL DEFAULT 1;
