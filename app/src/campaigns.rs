//! Campaigns (P10, P14): drafts and lifecycle for an artist's managers, the link to the
//! platform's campaign, a sync of one campaign on demand, and the artist's campaign list.
//!
//! Inputs are this module's own types ([`DraftRequest`], [`BudgetInput`], …), converted to the
//! domain's: a stored event never changes because an API field was renamed. An AI-generated
//! creative cannot be drafted directly: it is added by `ai-creatives`, which relies on the
//! caller's current `ai_features` consent (P14).

use crate::artists::authorize;
use crate::sync::{SyncReport, SyncScope};
use crate::{App, AppError, Call, Role};
use chrono::NaiveDate;
use domain::artist::Permission;
use domain::campaign::{
    AdPlatform, Budget, Campaign, CampaignCommand, CampaignDraft, CampaignError, Creative, Objective, PlatformLink,
    Schedule,
};
use domain::connection::{Connection, ConnectionDetails, Platform};
use eventlog::CommandError;
use projections::read_models::dashboards::{self, CampaignListing};
use serde::{Deserialize, Serialize};

fn campaign_error(error: CommandError<CampaignError>) -> AppError {
    match error {
        CommandError::Rejected(rule @ CampaignError::NoCampaign) => AppError::NotFound(rule.to_string()),
        CommandError::Rejected(
            rule @ (CampaignError::AlreadyExists
            | CampaignError::WrongStage(_)
            | CampaignError::NotConnected
            | CampaignError::AlreadyLinked),
        ) => AppError::Conflict(rule.to_string()),
        CommandError::Rejected(rule) => AppError::Validation(rule.to_string()),
        CommandError::Log(log) => log.into(),
    }
}

/// A daily or lifetime budget, in micros of the campaign's currency.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum BudgetInput {
    Daily { amount_micros: i64 },
    Lifetime { amount_micros: i64 },
}

impl From<BudgetInput> for Budget {
    fn from(input: BudgetInput) -> Budget {
        match input {
            BudgetInput::Daily { amount_micros } => Budget::Daily { amount_micros },
            BudgetInput::Lifetime { amount_micros } => Budget::Lifetime { amount_micros },
        }
    }
}

/// When a campaign runs (inclusive days; no end: until ended).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleInput {
    pub start: NaiveDate,
    #[serde(default)]
    pub end: Option<NaiveDate>,
}

impl From<ScheduleInput> for Schedule {
    fn from(input: ScheduleInput) -> Schedule {
        Schedule {
            start: input.start,
            end: input.end,
        }
    }
}

/// A creative chosen from the platform's assets.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum CreativeInput {
    YoutubeVideo { video_id: String },
    FacebookPost { post_id: String },
    InstagramMedia { media_id: String },
}

impl From<CreativeInput> for Creative {
    fn from(input: CreativeInput) -> Creative {
        match input {
            CreativeInput::YoutubeVideo { video_id } => Creative::YoutubeVideo { video_id },
            CreativeInput::FacebookPost { post_id } => Creative::FacebookPost { post_id },
            CreativeInput::InstagramMedia { media_id } => Creative::InstagramMedia { media_id },
        }
    }
}

/// What drafting a campaign takes.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DraftRequest {
    pub platform: AdPlatform,
    pub objective: Objective,
    pub budget: BudgetInput,
    pub currency: String,
    pub schedule: ScheduleInput,
    pub countries: Vec<String>,
    pub creatives: Vec<CreativeInput>,
}

/// A campaign command's answer.
#[derive(Clone, Debug, Serialize)]
pub struct Done {
    pub campaign_id: String,
    pub position: Option<String>,
}

/// Drafts a campaign for `artist` (a manager's act; refused while the caller restricted processing).
pub async fn draft(app: &App, call: &Call, artist: &str, request: DraftRequest) -> Result<Done, AppError> {
    authorize(app, &call.caller, artist, Permission::ManageCampaigns, None).await?;
    crate::restriction::ensure_may_process(&app.log, &call.caller.subject).await?;
    let campaign_id = uuid::Uuid::now_v7().to_string();
    let command = CampaignCommand::Draft(CampaignDraft {
        artist_id: artist.to_string(),
        platform: request.platform,
        objective: request.objective,
        budget: request.budget.into(),
        currency: request.currency,
        schedule: request.schedule.into(),
        countries: request.countries,
        creatives: request.creatives.into_iter().map(Creative::from).collect(),
    });
    let outcome = app
        .log
        .execute::<Campaign>(&campaign_id, command, &call.metadata())
        .await
        .map_err(campaign_error)?;
    Ok(Done {
        campaign_id,
        position: outcome.position.map(|p| p.to_string()),
    })
}

/// What linking a campaign to its platform campaign takes.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkRequest {
    /// The ad account (the Meta ad account id; a Google Ads connection's customer id unless named).
    #[serde(default)]
    pub account_id: Option<String>,
    pub platform_campaign_id: String,
}

/// What adding an AI-generated creative takes.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AiCreativeRequest {
    pub asset_id: String,
}

/// What a manager can do to a campaign.
#[derive(Clone, Debug)]
pub enum Action {
    Launch,
    Link(LinkRequest),
    Pause,
    Resume,
    End,
    Archive,
    Budget(BudgetInput),
    Schedule(ScheduleInput),
    AiCreative(AiCreativeRequest),
}

/// The connection platform a campaign's ad platform runs on.
fn connection_platform(platform: AdPlatform) -> Platform {
    match platform {
        AdPlatform::Meta => Platform::Meta,
        AdPlatform::GoogleAds => Platform::GoogleAds,
    }
}

/// The campaign, and the caller's right to act on it: its artist decides who may; strangers
/// learn nothing (not-found). Every action processes the caller's data (their connection, their
/// consent): refused while they have restricted processing (P22).
async fn managed(app: &App, call: &Call, campaign_id: &str) -> Result<Campaign, AppError> {
    call.caller.require(&[Role::Person])?;
    let (campaign, _, _) = app.log.load_aggregate::<Campaign>(campaign_id).await?;
    let artist = campaign
        .details()
        .map(|d| d.artist_id.clone())
        .ok_or_else(|| AppError::NotFound("there is no such campaign".into()))?;
    authorize(app, &call.caller, &artist, Permission::ManageCampaigns, None)
        .await
        .map_err(|e| match e {
            AppError::NotFound(_) => AppError::NotFound("there is no such campaign".into()),
            other => other,
        })?;
    crate::restriction::ensure_may_process(&app.log, &call.caller.subject).await?;
    Ok(campaign)
}

/// Carries out one action on a campaign.
pub async fn act(app: &App, call: &Call, campaign_id: &str, action: Action) -> Result<Done, AppError> {
    let campaign = managed(app, call, campaign_id).await?;
    let details = campaign
        .details()
        .ok_or_else(|| AppError::NotFound("there is no such campaign".into()))?;
    let person = &call.caller.subject;
    let command = match action {
        Action::Launch => {
            let platform = connection_platform(details.platform);
            let (connection, _, _) = app
                .log
                .load_aggregate::<Connection>(&platform.connection_id(person))
                .await?;
            CampaignCommand::Launch {
                connection_live: connection.is_live(),
            }
        }
        Action::Link(request) => {
            let connection_id = connection_platform(details.platform).connection_id(person);
            let live = match crate::connections::live_details(&app.log, &connection_id).await {
                Ok(details) => Some(details),
                Err(AppError::Conflict(_)) => None,
                Err(other) => return Err(other),
            };
            let account_id = match (request.account_id, &live) {
                (Some(account), _) => account,
                (None, Some(ConnectionDetails::GoogleAds { customer_id, .. })) => customer_id.replace('-', ""),
                (None, Some(_)) => {
                    return Err(AppError::Validation(
                        "account_id (the Meta ad account id) is required".into(),
                    ))
                }
                (None, None) => String::new(),
            };
            CampaignCommand::LinkPlatform {
                link: PlatformLink {
                    connection_id,
                    account_id,
                    platform_campaign_id: request.platform_campaign_id,
                },
                connection_live: live.is_some(),
            }
        }
        Action::Pause => CampaignCommand::Pause,
        Action::Resume => CampaignCommand::Resume,
        Action::End => CampaignCommand::End,
        Action::Archive => CampaignCommand::Archive,
        Action::Budget(budget) => CampaignCommand::ChangeBudget(budget.into()),
        Action::Schedule(schedule) => CampaignCommand::ChangeSchedule(schedule.into()),
        Action::AiCreative(request) => {
            // The one consent check (P14): the caller's current ai_features consent.
            let decision = crate::consent::check(&app.log, person, domain::consent::Purpose::AiFeatures).await?;
            CampaignCommand::AddAiCreative {
                asset_id: request.asset_id,
                ai_consent_event_id: decision.allowed.then_some(decision.relied_on).flatten(),
            }
        }
    };
    let outcome = app
        .log
        .execute::<Campaign>(campaign_id, command, &call.metadata())
        .await
        .map_err(campaign_error)?;
    Ok(Done {
        campaign_id: campaign_id.to_string(),
        position: outcome.position.map(|p| p.to_string()),
    })
}

/// Syncs one campaign's spend from its platform now (a manager's act); the report says which
/// account failed and why.
pub async fn sync_one(app: &App, call: &Call, campaign_id: &str) -> Result<SyncReport, AppError> {
    managed(app, call, campaign_id).await?;
    let scope = SyncScope {
        campaigns: Some(vec![campaign_id.to_string()]),
        until: app.now().date_naive(),
        actor: call.caller.actor(),
    };
    crate::sync::sync(app, &scope, &|_| {}).await
}

/// What a sync of many campaigns takes (a service's call); every field is optional.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncRequest {
    /// The campaigns; every linked one the dashboards read model knows when omitted.
    pub campaigns: Option<Vec<String>>,
    /// The last day read; today (UTC) when omitted.
    pub until: Option<NaiveDate>,
    /// Wait for the dashboards read model to reach this position first.
    pub min_position: Option<String>,
}

/// Syncs the campaigns asked for now (a service's call).
pub async fn sync_many(app: &App, call: &Call, request: SyncRequest) -> Result<SyncReport, AppError> {
    call.caller.require(&[Role::Service])?;
    if request
        .campaigns
        .as_ref()
        .is_some_and(|c| c.is_empty() || c.len() > 10_000)
    {
        return Err(AppError::Validation("campaigns holds 1 to 10,000 campaign ids".into()));
    }
    app.wait_for("dashboards", request.min_position.as_deref()).await?;
    let scope = SyncScope {
        campaigns: request.campaigns,
        until: request.until.unwrap_or_else(|| app.now().date_naive()),
        actor: call.caller.actor(),
    };
    crate::sync::sync(app, &scope, &|_| {}).await
}

/// A campaign as its artist's members see it in the list.
#[derive(Clone, Debug, Serialize)]
pub struct CampaignView {
    pub campaign_id: String,
    pub platform: String,
    pub objective: String,
    pub stage: String,
    pub currency: String,
    pub start: String,
    pub end: Option<String>,
    pub budget: BudgetView,
    pub platform_status: Option<String>,
    pub platform_account_id: Option<String>,
    pub platform_campaign_id: Option<String>,
}

/// A budget as shown.
#[derive(Clone, Debug, Serialize)]
pub struct BudgetView {
    pub kind: String,
    pub amount_micros: i64,
}

impl From<CampaignListing> for CampaignView {
    fn from(row: CampaignListing) -> CampaignView {
        CampaignView {
            campaign_id: row.campaign_id,
            platform: row.platform,
            objective: row.objective,
            stage: row.stage,
            currency: row.currency,
            start: row.start,
            end: row.end,
            budget: BudgetView {
                kind: row.budget_kind,
                amount_micros: row.budget_micros,
            },
            platform_status: row.platform_status,
            platform_account_id: row.platform_account_id,
            platform_campaign_id: row.platform_campaign_id,
        }
    }
}

/// The artist's campaigns, for a member who may view it.
pub async fn list(
    app: &App,
    call: &Call,
    artist: &str,
    min_position: Option<&str>,
) -> Result<Vec<CampaignView>, AppError> {
    authorize(app, &call.caller, artist, Permission::View, min_position).await?;
    app.wait_for("dashboards", min_position).await?;
    Ok(dashboards::campaigns_of(app.log.db(), artist)
        .await?
        .into_iter()
        .map(CampaignView::from)
        .collect())
}
