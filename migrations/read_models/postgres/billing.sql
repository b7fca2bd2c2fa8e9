-- One generation of the billing read models: accounts (plan, subscription, payment method
-- summary: never a card number), the artists each pays for, each campaign's artist, every
-- spend ledger's latest reading with the position of its last event (usage per account,
-- period and currency is summed from it), closed periods with their statements and what was
-- reported to Stripe, and the Stripe facts (the transaction history).
CREATE TABLE billing_accounts{g}
(
    account_id            text NOT NULL PRIMARY KEY,
    owner                 text NOT NULL,
    stripe_customer_id    text NOT NULL,
    currency              text NOT NULL,
    time_zone             text NOT NULL,
    monthly_fee_micros    bigint NOT NULL,
    included_spend_micros bigint NOT NULL,
    fee_basis_points      bigint NOT NULL,
    subscription          text NOT NULL,
    payment_brand         text,
    payment_last4         text,
    payment_expiry        text
);
CREATE INDEX billing_accounts{g}_owner ON billing_accounts{g} (owner);
CREATE TABLE billing_artists{g}
(
    artist_id  text NOT NULL PRIMARY KEY,
    account_id text NOT NULL
);
CREATE TABLE billing_campaigns{g}
(
    campaign_id text NOT NULL PRIMARY KEY,
    artist_id   text NOT NULL
);
CREATE INDEX billing_campaigns{g}_artist ON billing_campaigns{g} (artist_id);
CREATE TABLE billing_readings{g}
(
    ledger_id     text NOT NULL PRIMARY KEY,
    campaign_id   text NOT NULL,
    period        text NOT NULL,
    currency      text NOT NULL,
    spend_micros  bigint NOT NULL,
    last_commit   bigint NOT NULL,
    last_global   bigint NOT NULL
);
CREATE INDEX billing_readings{g}_campaign ON billing_readings{g} (campaign_id, period);
CREATE TABLE billing_periods{g}
(
    account_id      text NOT NULL,
    period          text NOT NULL,
    statement       text NOT NULL,
    closed_commit   bigint NOT NULL,
    closed_global   bigint NOT NULL,
    reported_id     text,
    reported_minor  bigint,
    PRIMARY KEY (account_id, period)
);
CREATE TABLE billing_facts{g}
(
    stripe_event_id text NOT NULL PRIMARY KEY,
    account_id      text NOT NULL,
    event_type      text NOT NULL,
    object_id       text NOT NULL,
    amount_minor    bigint,
    currency        text,
    status          text,
    created         bigint NOT NULL
);
CREATE INDEX billing_facts{g}_account ON billing_facts{g} (account_id, created);
