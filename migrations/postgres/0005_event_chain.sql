-- Tamper evidence: each event's hash links it to the previous event of its stream
-- (eventlog/src/chain.rs defines what the hash covers). NULL for rows written by other tools.
ALTER TABLE events ADD COLUMN chain_hash text;
