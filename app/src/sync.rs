//! The spend sync (P1, P10): reads every linked campaign's daily metrics from its ad platform
//! over the platform's restatement window (Meta 28 days, Google Ads 14) and hands them to bulk
//! ingestion, which records new days, restates changed ones and ignores repeats.
//!
//! One platform call per ad account: campaigns are grouped by (connection, account) and each
//! account is read once at campaign level, one row per campaign and day; rows are matched to
//! our campaigns by the platform campaign id recorded when the campaign was linked. A token the
//! platform rejects invalidates the connection (its key is destroyed at once, P25); any other
//! failure of one account is reported and the others go on. The daily scheduler
//! ([`run_daily`]) and `dynamoi sync` both call [`sync`].

use crate::connections::{invalidate, live_details, open_token};
use crate::disclosure;
use crate::ingest::{self, IngestReading, Outcome};
use crate::{App, AppError};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use connectors::ad_reporting::CampaignDay;
use connectors::ConnectorError;
use domain::campaign::{AdPlatform, Campaign, CampaignEvent, PlatformLink, Stage};
use domain::connection::ConnectionDetails;
use domain::disclosure::{Processor, Purpose};
use domain::Aggregate;
use eventlog::{EventLog, EventMetadata};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// Days Meta revises (its attribution windows): every sync re-reads them.
pub const META_LOOKBACK_DAYS: i64 = 28;
/// Days Google Ads revises conversions: every sync re-reads them.
pub const GOOGLE_ADS_LOOKBACK_DAYS: i64 = 14;
/// Readings per ingestion batch (one statement each).
const INGEST_BATCH: usize = 5_000;

/// Which campaigns, and the last day to read.
#[derive(Clone, Debug)]
pub struct SyncScope {
    /// `None`: every linked campaign that is live, paused, or ended within the lookback.
    pub campaigns: Option<Vec<String>>,
    /// The last day read (today, UTC, unless asked otherwise).
    pub until: NaiveDate,
    /// Who asked, for the events' metadata (`system:spend-sync`, `service:…`).
    pub actor: String,
}

/// One account that could not be read, and why (no token, no personal data).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct SyncFailure {
    pub platform: &'static str,
    pub account_id: String,
    pub campaigns: Vec<String>,
    pub reason: String,
}

/// What a sync did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SyncReport {
    pub accounts: usize,
    pub campaigns: usize,
    /// Rows the platforms returned for linked campaigns.
    pub readings: usize,
    pub recorded: usize,
    pub restated: usize,
    pub unchanged: usize,
    /// Readings fetched before the one a ledger holds: not recorded.
    pub stale: usize,
    pub rejected: usize,
    /// Rejection reasons with their counts.
    pub rejections: BTreeMap<String, usize>,
    /// Rows for platform campaigns that no campaign of ours is linked to.
    pub unmatched_rows: usize,
    pub invalidated_connections: usize,
    pub failures: Vec<SyncFailure>,
    /// Consistency token of the last ingestion batch.
    pub position: Option<String>,
}

impl SyncReport {
    /// One line for logs and `scheduled_runs` (counts only).
    pub fn summary(&self) -> String {
        format!(
            "{} accounts, {} campaigns, {} readings: {} recorded, {} restated, {} unchanged, {} stale, {} rejected; \
             {} unmatched rows; {} failed accounts; {} connections invalidated",
            self.accounts,
            self.campaigns,
            self.readings,
            self.recorded,
            self.restated,
            self.unchanged,
            self.stale,
            self.rejected,
            self.unmatched_rows,
            self.failures.len(),
            self.invalidated_connections
        )
    }
}

/// Progress of a sync, reported after each account.
#[derive(Clone, Copy, Debug)]
pub struct SyncProgress {
    pub accounts_done: usize,
    pub accounts_total: usize,
    pub readings: usize,
}

/// A campaign to read: its id, link and life.
struct Target {
    campaign_id: String,
    link: PlatformLink,
    platform: AdPlatform,
    start: NaiveDate,
    end: Option<NaiveDate>,
}

fn lookback(platform: AdPlatform) -> i64 {
    match platform {
        AdPlatform::Meta => META_LOOKBACK_DAYS,
        AdPlatform::GoogleAds => GOOGLE_ADS_LOOKBACK_DAYS,
    }
}

/// The campaigns to read, judged on their own streams (the write side).
async fn targets(log: &EventLog, ids: &[String], until: NaiveDate) -> Result<Vec<Target>, AppError> {
    let mut campaigns: HashMap<String, Campaign> = HashMap::new();
    for stored in log.load_many(Campaign::TYPE, ids).await? {
        let event: CampaignEvent = stored.decode().map_err(|_| AppError::Internal)?;
        campaigns.entry(stored.aggregate_id.clone()).or_default().apply(event);
    }
    let mut targets = Vec::new();
    for id in ids {
        let Some(campaign) = campaigns.get(id) else { continue };
        let (Some(details), Some(link)) = (campaign.details(), campaign.link()) else {
            continue;
        };
        let first_day = until - Duration::days(lookback(details.platform) - 1);
        let readable = match campaign.stage() {
            Stage::Live | Stage::Paused | Stage::SubscriptionPaused => true,
            // An ended campaign's last days are still restated for a while.
            Stage::Ended => details
                .schedule
                .end
                .is_none_or(|end| end + Duration::days(1) >= first_day),
            Stage::None | Stage::Draft | Stage::Archived => false,
        };
        if readable {
            targets.push(Target {
                campaign_id: id.clone(),
                link: link.clone(),
                platform: details.platform,
                start: details.schedule.start,
                end: details.schedule.end,
            });
        }
    }
    Ok(targets)
}

/// Syncs the campaigns in `scope`; `progress` is called after each account.
pub async fn sync(
    app: &App,
    scope: &SyncScope,
    progress: &(dyn Fn(SyncProgress) + Sync),
) -> Result<SyncReport, AppError> {
    let ids = match &scope.campaigns {
        Some(ids) => ids.clone(),
        None => projections::read_models::dashboards::linked_campaign_ids(app.log.db()).await?,
    };
    let targets = targets(&app.log, &ids, scope.until).await?;
    if let Some(asked) = &scope.campaigns {
        if let Some(missing) = asked.iter().find(|id| !targets.iter().any(|t| &t.campaign_id == *id)) {
            return Err(AppError::Conflict(format!(
                "campaign {missing} cannot be synced: it does not exist, is not linked to its platform campaign, \
                 or is not live, paused or recently ended"
            )));
        }
    }
    let mut groups: BTreeMap<(String, String), Vec<&Target>> = BTreeMap::new();
    for target in &targets {
        groups
            .entry((target.link.connection_id.clone(), target.link.account_id.clone()))
            .or_default()
            .push(target);
    }
    let metadata = EventMetadata {
        actor: scope.actor.clone(),
        request_id: None,
        causation_id: None,
    };
    let mut report = SyncReport {
        accounts: groups.len(),
        campaigns: targets.len(),
        ..SyncReport::default()
    };
    let total = groups.len();
    for (done, ((connection_id, account_id), group)) in groups.into_iter().enumerate() {
        let platform = group[0].platform;
        let fail = |reason: String| SyncFailure {
            platform: platform.as_str(),
            account_id: account_id.clone(),
            campaigns: group.iter().map(|t| t.campaign_id.clone()).collect(),
            reason,
        };
        // The account's window: the lookback, cut to the campaigns' lives (a day of slack).
        let lookback_start = scope.until - Duration::days(lookback(platform) - 1);
        let since = group
            .iter()
            .map(|t| t.start - Duration::days(1))
            .min()
            .map_or(lookback_start, |start| start.max(lookback_start));
        let until = if group.iter().any(|t| t.end.is_none()) {
            scope.until
        } else {
            let last = group.iter().filter_map(|t| t.end).max().unwrap_or(scope.until);
            (last + Duration::days(1)).min(scope.until)
        };
        // The connection's owner restricted processing of their data (P22): not read, and said so.
        let owner = disclosure::connection_owner(&connection_id);
        match crate::restriction::ensure_processing_allowed(&app.log, owner).await {
            Ok(()) => {}
            Err(AppError::Restricted(reason)) => {
                report.failures.push(fail(reason));
                continue;
            }
            Err(other) => return Err(other),
        }
        if since > until {
            progress(SyncProgress {
                accounts_done: done + 1,
                accounts_total: total,
                readings: report.readings,
            });
            continue;
        }
        let rows = match read_account(app, &connection_id, &account_id, platform, since, until, &metadata).await {
            Ok(rows) => rows,
            Err(AccountError::TokenRejected) => {
                invalidate(&app.log, &app.vault, &connection_id, &metadata).await?;
                report.invalidated_connections += 1;
                report.failures.push(fail(
                    "the platform rejected the connection's token; the connection was invalidated and must be \
                     connected again"
                        .into(),
                ));
                continue;
            }
            Err(AccountError::Skipped(reason)) => {
                report.failures.push(fail(reason));
                continue;
            }
            Err(AccountError::Fatal(error)) => return Err(error),
        };
        let fetched_at = app.now();
        let source = match platform {
            AdPlatform::Meta => "meta_insights",
            AdPlatform::GoogleAds => "google_ads_search_stream",
        };
        let mut readings = Vec::with_capacity(rows.len());
        for row in rows {
            let mut matched = false;
            for target in group
                .iter()
                .filter(|t| t.link.platform_campaign_id == row.platform_campaign_id)
            {
                matched = true;
                readings.push(Ok(reading(&target.campaign_id, platform, &row, fetched_at, source)));
            }
            if !matched {
                report.unmatched_rows += 1;
            }
        }
        report.readings += readings.len();
        for batch in readings.chunks(INGEST_BATCH) {
            let result = ingest::ingest(&app.log, batch, &metadata).await?;
            for outcome in result.outcomes {
                match outcome {
                    Outcome::Recorded => report.recorded += 1,
                    Outcome::Restated => report.restated += 1,
                    Outcome::Unchanged => report.unchanged += 1,
                    Outcome::Stale { .. } => report.stale += 1,
                    Outcome::Rejected { reason } => {
                        report.rejected += 1;
                        *report.rejections.entry(reason).or_default() += 1;
                    }
                }
            }
            if let Some(position) = result.position {
                report.position = Some(position.to_string());
            }
        }
        progress(SyncProgress {
            accounts_done: done + 1,
            accounts_total: total,
            readings: report.readings,
        });
    }
    Ok(report)
}

fn reading(
    campaign_id: &str,
    platform: AdPlatform,
    row: &CampaignDay,
    fetched_at: DateTime<Utc>,
    source: &str,
) -> IngestReading {
    IngestReading {
        campaign_id: campaign_id.to_string(),
        platform,
        date: row.date,
        spend_micros: row.spend_micros,
        currency: row.currency.clone(),
        impressions: row.impressions,
        reach: row.reach,
        clicks: row.clicks,
        views: row.views,
        saves: row.saves,
        reactions: row.reactions,
        comments: row.comments,
        shares: row.shares,
        follows: row.follows,
        conversions: row.conversions,
        fetched_at,
        source: source.to_string(),
    }
}

/// Why one account was not read.
enum AccountError {
    /// The platform answered that the token is invalid: invalidate the connection.
    TokenRejected,
    /// Not readable now (not connected, not configured, rate limited, platform down): reported.
    Skipped(String),
    /// Our own failure (database): the sync stops.
    Fatal(AppError),
}

impl From<ConnectorError> for AccountError {
    fn from(error: ConnectorError) -> Self {
        match error {
            ConnectorError::InvalidToken => AccountError::TokenRejected,
            other => AccountError::Skipped(other.to_string()),
        }
    }
}

impl From<AppError> for AccountError {
    fn from(error: AppError) -> Self {
        match error {
            // Not live, or its key erased.
            AppError::Conflict(reason) => AccountError::Skipped(reason),
            other => AccountError::Fatal(other),
        }
    }
}

/// One account's rows over `since..=until`, with the connection's token.
async fn read_account(
    app: &App,
    connection_id: &str,
    account_id: &str,
    platform: AdPlatform,
    since: NaiveDate,
    until: NaiveDate,
    metadata: &EventMetadata,
) -> Result<Vec<CampaignDay>, AccountError> {
    let details = live_details(&app.log, connection_id).await?;
    // P17: each outbound call below is recorded first, under the connection's owner.
    let disclose = |processor, categories, purpose| {
        disclosure::record(
            &app.log,
            disclosure::connection_owner(connection_id),
            processor,
            categories,
            purpose,
            Some(connection_id),
            metadata,
        )
    };
    match (platform, details) {
        (AdPlatform::Meta, ConnectionDetails::Meta { access_token, .. }) => {
            let token = open_token(&app.vault, connection_id, "access_token", &access_token).await?;
            disclose(Processor::Meta, disclosure::TOKEN_AND_AD_ACCOUNT, Purpose::SpendSync).await?;
            Ok(app
                .platforms
                .meta
                .campaign_insights(&token, account_id, since, until)
                .await?)
        }
        (AdPlatform::GoogleAds, ConnectionDetails::GoogleAds { refresh_token, .. }) => {
            let (Some(google), Some(ads)) = (&app.platforms.google, &app.platforms.google_ads) else {
                return Err(AccountError::Skipped(
                    "Google Ads is not configured (DYNAMOI_GOOGLE_CLIENT_ID/SECRET and \
                     DYNAMOI_GOOGLE_ADS_DEVELOPER_TOKEN)"
                        .into(),
                ));
            };
            let refresh = open_token(&app.vault, connection_id, "refresh_token", &refresh_token).await?;
            disclose(Processor::Google, disclosure::TOKEN, Purpose::TokenRefresh).await?;
            // The access token lives only in this call's memory.
            let access = google.refresh_access_token(&refresh).await?;
            disclose(
                Processor::GoogleAds,
                disclosure::TOKEN_AND_AD_ACCOUNT,
                Purpose::SpendSync,
            )
            .await?;
            Ok(ads.campaign_days(&access.token, account_id, since, until).await?)
        }
        _ => Err(AccountError::Skipped(
            "the linked connection is for another platform".into(),
        )),
    }
}
