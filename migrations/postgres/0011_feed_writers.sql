-- Only transactions that write events hold the feed back (issue 13, item 5).
--
-- Every statement that inserts into `events` first takes a shared transaction-level advisory
-- lock on the feed key (classid 1685679713 = 'dyna', objid 1: the two-key form, objsubid 2,
-- which no session lock of the projections uses). The feed's reader (eventlog/src/postgres.rs
-- FEED_HORIZON) waits for the open transactions that hold it, not for every open transaction of
-- the server: an admin's idle psql or a pg_dump in any database no longer freezes read models.
--
-- That is sound only when the lock is taken before the transaction has a transaction id (the
-- id an event row carries): a transaction that already wrote something else would get an id
-- the reader may have already passed. Such an insert is refused: events must be the first
-- rows a transaction writes (dynamoi's appends, and postgres-es's, are).
CREATE FUNCTION dynamoi_feed_writer() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF pg_current_xact_id_if_assigned() IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM pg_locks
        WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted
          AND classid = 1685679713 AND objid = 1 AND objsubid = 2
          AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
    ) THEN
        RAISE EXCEPTION 'events must be the first rows a transaction writes'
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'insert into events before any other write in the same transaction, or in a transaction of its own';
    END IF;
    PERFORM pg_advisory_xact_lock_shared(1685679713, 1);
    RETURN NULL;
END
$$;

CREATE TRIGGER events_feed_writer BEFORE INSERT ON events
    FOR EACH STATEMENT EXECUTE FUNCTION dynamoi_feed_writer();
