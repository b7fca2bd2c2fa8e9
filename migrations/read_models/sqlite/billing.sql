-- One generation of the billing read models: accounts (plan, subscription, payment method
-- summary: never a card number), the artists each pays for, each campaign's artist, every
-- spend ledger's latest reading with the position of its last event (usage per account,
-- period and currency is summed from it), closed periods with their statements and what was
-- reported to Stripe, and the Stripe facts (the transaction history).
CREATE TABLE billing_accounts{g}
(
    account_id            TEXT NOT NULL PRIMARY KEY,
    owner                 TEXT NOT NULL,
    stripe_customer_id    TEXT NOT NULL,
    currency              TEXT NOT NULL,
    time_zone             TEXT NOT NULL,
    monthly_fee_micros    INTEGER NOT NULL,
    included_spend_micros INTEGER NOT NULL,
    fee_basis_points      INTEGER NOT NULL,
    subscription          TEXT NOT NULL,
    payment_brand         TEXT,
    payment_last4         TEXT,
    payment_expiry        TEXT
);
CREATE INDEX billing_accounts{g}_owner ON billing_accounts{g} (owner);
CREATE TABLE billing_artists{g}
(
    artist_id  TEXT NOT NULL PRIMARY KEY,
    account_id TEXT NOT NULL
);
CREATE TABLE billing_campaigns{g}
(
    campaign_id TEXT NOT NULL PRIMARY KEY,
    artist_id   TEXT NOT NULL
);
CREATE INDEX billing_campaigns{g}_artist ON billing_campaigns{g} (artist_id);
CREATE TABLE billing_readings{g}
(
    ledger_id     TEXT NOT NULL PRIMARY KEY,
    campaign_id   TEXT NOT NULL,
    period        TEXT NOT NULL,
    currency      TEXT NOT NULL,
    spend_micros  INTEGER NOT NULL,
    last_commit   INTEGER NOT NULL,
    last_global   INTEGER NOT NULL
);
CREATE INDEX billing_readings{g}_campaign ON billing_readings{g} (campaign_id, period);
CREATE TABLE billing_periods{g}
(
    account_id      TEXT NOT NULL,
    period          TEXT NOT NULL,
    statement       TEXT NOT NULL,
    closed_commit   INTEGER NOT NULL,
    closed_global   INTEGER NOT NULL,
    reported_id     TEXT,
    reported_minor  INTEGER,
    PRIMARY KEY (account_id, period)
);
CREATE TABLE billing_facts{g}
(
    stripe_event_id TEXT NOT NULL PRIMARY KEY,
    account_id      TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    object_id       TEXT NOT NULL,
    amount_minor    INTEGER,
    currency        TEXT,
    status          TEXT,
    created         INTEGER NOT NULL
);
CREATE INDEX billing_facts{g}_account ON billing_facts{g} (account_id, created);
