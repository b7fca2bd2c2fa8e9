-- An Idempotency-Key's claim carries a token (a takeover replaces it, so the request that lost
-- its claim cannot commit), and the command's first append records its effect in the same
-- transaction as its events (state 'applied'), so a retry finds the effect even when the
-- answer was never stored. Keys expire: claimed_at is indexed for the purge.
ALTER TABLE idempotency_keys
    ADD COLUMN claim_token text,
    ADD COLUMN effect text,
    ADD COLUMN effect_position text;
CREATE INDEX idempotency_keys_claimed_at ON idempotency_keys (claimed_at);
