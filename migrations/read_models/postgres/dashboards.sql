-- One generation of the dashboard read models: campaigns, each campaign's metrics per day
-- (the latest reading: a restatement replaces the day), and the anonymous platform-wide
-- aggregate per platform, day and currency (P26: no artist, no person; kept after erasure),
-- and each artist's sums per platform, day and currency, which the dashboard reads.
CREATE TABLE campaigns{g}
(
    campaign_id text   NOT NULL PRIMARY KEY,
    artist_id   text   NOT NULL,
    platform    text   NOT NULL,
    objective   text   NOT NULL,
    stage       text   NOT NULL,
    currency    text   NOT NULL,
    start_date  text   NOT NULL,
    end_date    text,
    budget_kind text   NOT NULL,
    budget_micros bigint NOT NULL,
    platform_status text,
    -- Set once the campaign is linked to its campaign on the platform (spend syncs use it).
    connection_id   text,
    platform_account_id  text,
    platform_campaign_id text
);
CREATE INDEX campaigns{g}_artist ON campaigns{g} (artist_id);
CREATE TABLE campaign_daily{g}
(
    campaign_id  text   NOT NULL,
    day          text   NOT NULL,
    artist_id    text   NOT NULL,
    platform     text   NOT NULL,
    currency     text   NOT NULL,
    spend_micros bigint NOT NULL,
    impressions  bigint NOT NULL,
    reach        bigint NOT NULL,
    clicks       bigint NOT NULL,
    views        bigint NOT NULL,
    saves        bigint NOT NULL,
    reactions    bigint NOT NULL,
    comments     bigint NOT NULL,
    shares       bigint NOT NULL,
    follows      bigint NOT NULL,
    conversions  bigint NOT NULL,
    restatements bigint NOT NULL,
    PRIMARY KEY (campaign_id, day)
);
CREATE INDEX campaign_daily{g}_artist_day ON campaign_daily{g} (artist_id, day);
CREATE TABLE platform_daily{g}
(
    platform     text   NOT NULL,
    day          text   NOT NULL,
    currency     text   NOT NULL,
    spend_micros bigint NOT NULL,
    impressions  bigint NOT NULL,
    clicks       bigint NOT NULL,
    views        bigint NOT NULL,
    conversions  bigint NOT NULL,
    PRIMARY KEY (platform, day, currency)
);
-- Moved by differences. `days` counts the campaign-days in the row (a row at 0 shows nothing);
-- each sum is two columns, its millions (`_m`) and the rest (`_r`): exact whatever the number
-- of campaigns (engagement: reactions + comments + shares).
CREATE TABLE artist_daily{g}
(
    artist_id    text   NOT NULL,
    platform     text   NOT NULL,
    day          text   NOT NULL,
    currency     text   NOT NULL,
    days         bigint NOT NULL,
    spend_micros_m bigint NOT NULL,
    spend_micros_r bigint NOT NULL,
    impressions_m bigint NOT NULL,
    impressions_r bigint NOT NULL,
    reach_m bigint NOT NULL,
    reach_r bigint NOT NULL,
    clicks_m bigint NOT NULL,
    clicks_r bigint NOT NULL,
    views_m bigint NOT NULL,
    views_r bigint NOT NULL,
    saves_m bigint NOT NULL,
    saves_r bigint NOT NULL,
    follows_m bigint NOT NULL,
    follows_r bigint NOT NULL,
    conversions_m bigint NOT NULL,
    conversions_r bigint NOT NULL,
    engagement_m bigint NOT NULL,
    engagement_r bigint NOT NULL,
    PRIMARY KEY (artist_id, platform, day, currency)
);
