-- One generation of the dashboard read models: campaigns, each campaign's metrics per day
-- (the latest reading: a restatement replaces the day), and the anonymous platform-wide
-- aggregate per platform, day and currency (P26: no artist, no person; kept after erasure),
-- and each artist's sums per platform, day and currency, which the dashboard reads.
CREATE TABLE campaigns{g}
(
    campaign_id TEXT   NOT NULL PRIMARY KEY,
    artist_id   TEXT   NOT NULL,
    platform    TEXT   NOT NULL,
    objective   TEXT   NOT NULL,
    stage       TEXT   NOT NULL,
    currency    TEXT   NOT NULL,
    start_date  TEXT   NOT NULL,
    end_date    TEXT,
    budget_kind TEXT   NOT NULL,
    budget_micros BIGINT NOT NULL,
    platform_status TEXT,
    -- Set once the campaign is linked to its campaign on the platform (spend syncs use it).
    connection_id   TEXT,
    platform_account_id  TEXT,
    platform_campaign_id TEXT
);
CREATE INDEX campaigns{g}_artist ON campaigns{g} (artist_id);
CREATE TABLE campaign_daily{g}
(
    campaign_id  TEXT   NOT NULL,
    day          TEXT   NOT NULL,
    artist_id    TEXT   NOT NULL,
    platform     TEXT   NOT NULL,
    currency     TEXT   NOT NULL,
    spend_micros BIGINT NOT NULL,
    impressions  BIGINT NOT NULL,
    reach        BIGINT NOT NULL,
    clicks       BIGINT NOT NULL,
    views        BIGINT NOT NULL,
    saves        BIGINT NOT NULL,
    reactions    BIGINT NOT NULL,
    comments     BIGINT NOT NULL,
    shares       BIGINT NOT NULL,
    follows      BIGINT NOT NULL,
    conversions  BIGINT NOT NULL,
    restatements BIGINT NOT NULL,
    PRIMARY KEY (campaign_id, day)
);
CREATE INDEX campaign_daily{g}_artist_day ON campaign_daily{g} (artist_id, day);
CREATE TABLE platform_daily{g}
(
    platform     TEXT   NOT NULL,
    day          TEXT   NOT NULL,
    currency     TEXT   NOT NULL,
    spend_micros BIGINT NOT NULL,
    impressions  BIGINT NOT NULL,
    clicks       BIGINT NOT NULL,
    views        BIGINT NOT NULL,
    conversions  BIGINT NOT NULL,
    PRIMARY KEY (platform, day, currency)
);
-- Moved by differences. `days` counts the campaign-days in the row (a row at 0 shows nothing);
-- each sum is two columns, its millions (`_m`) and the rest (`_r`): exact whatever the number
-- of campaigns (engagement: reactions + comments + shares).
CREATE TABLE artist_daily{g}
(
    artist_id    TEXT   NOT NULL,
    platform     TEXT   NOT NULL,
    day          TEXT   NOT NULL,
    currency     TEXT   NOT NULL,
    days         BIGINT NOT NULL,
    spend_micros_m BIGINT NOT NULL,
    spend_micros_r BIGINT NOT NULL,
    impressions_m BIGINT NOT NULL,
    impressions_r BIGINT NOT NULL,
    reach_m BIGINT NOT NULL,
    reach_r BIGINT NOT NULL,
    clicks_m BIGINT NOT NULL,
    clicks_r BIGINT NOT NULL,
    views_m BIGINT NOT NULL,
    views_r BIGINT NOT NULL,
    saves_m BIGINT NOT NULL,
    saves_r BIGINT NOT NULL,
    follows_m BIGINT NOT NULL,
    follows_r BIGINT NOT NULL,
    conversions_m BIGINT NOT NULL,
    conversions_r BIGINT NOT NULL,
    engagement_m BIGINT NOT NULL,
    engagement_r BIGINT NOT NULL,
    PRIMARY KEY (artist_id, platform, day, currency)
);
