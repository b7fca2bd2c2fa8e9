//! Campaigns, spend ingestion and dashboards (P1, P10, P14, P26): drafts and lifecycle for an
//! artist's managers, `POST /v1/ingest/spend` for services, the artist dashboard with KPIs from
//! sums in integer micros, and the anonymous platform aggregate.

use super::artists::authorize;
use super::{command_input, finish, json, json_body, parse_json, query_params, run_command, CommandReply, Ctx};
use crate::auth::Role;
use crate::ingest::{self, IngestReading, Outcome};
use crate::sync::{SyncDeps, SyncScope};
use crate::ApiError;
use chrono::{Datelike, NaiveDate};
use domain::artist::Permission;
use domain::campaign::{
    AdPlatform, Budget, Campaign, CampaignCommand, CampaignDraft, CampaignError, Creative, Objective, PlatformLink,
    Schedule,
};
use domain::connection::{Connection, ConnectionDetails, Platform};
use eventlog::{dispatch, CommandError, Db};
use serde::Deserialize;
use serde_json::{json, Value};
use sqlx::Row;
use std::collections::{BTreeMap, HashMap};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection};

pub fn routes(
    ctx: impl Filter<Extract = (Ctx,), Error = Rejection> + Clone + Send + Sync + 'static,
    max_body: u64,
    max_ingest: u64,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + Send + Sync + 'static {
    let draft = warp::path!("v1" / "artists" / String / "campaigns")
        .and(warp::post())
        .and(ctx.clone())
        .and(command_input(max_body))
        .then(
            |artist: String, ctx: Ctx, key: Option<String>, ct: Option<String>, body: bytes::Bytes| async move {
                let result = run_command(&ctx, "draft-campaign", key.as_deref(), &body, || {
                    draft(&ctx, &artist, ct.as_deref(), &body)
                })
                .await;
                finish(&ctx.request_id, result)
            },
        );
    let list = warp::path!("v1" / "artists" / String / "campaigns")
        .and(warp::get())
        .and(ctx.clone())
        .and(warp::query::<HashMap<String, String>>())
        .then(|artist: String, ctx: Ctx, q: HashMap<String, String>| async move {
            finish(&ctx.request_id, list(&ctx, &artist, q).await)
        });
    let action = warp::path!("v1" / "campaigns" / String / String)
        .and(warp::post())
        .and(ctx.clone())
        .and(json_body(max_body))
        .then(
            |campaign: String, action: String, ctx: Ctx, ct: Option<String>, body: bytes::Bytes| async move {
                finish(
                    &ctx.request_id,
                    act(&ctx, &campaign, &action, ct.as_deref(), &body).await,
                )
            },
        );
    let ingest = warp::path!("v1" / "ingest" / "spend")
        .and(warp::post())
        .and(ctx.clone())
        .and(json_body(max_ingest))
        .then(|ctx: Ctx, ct: Option<String>, body: bytes::Bytes| async move {
            finish(&ctx.request_id, ingest_route(&ctx, ct.as_deref(), &body).await)
        });
    let sync_all = warp::path!("v1" / "spend" / "sync")
        .and(warp::post())
        .and(ctx.clone())
        .and(json_body(max_body))
        .then(|ctx: Ctx, ct: Option<String>, body: bytes::Bytes| async move {
            finish(&ctx.request_id, sync_route(&ctx, ct.as_deref(), &body).await)
        });
    let dashboard = warp::path!("v1" / "artists" / String / "dashboard")
        .and(warp::get())
        .and(ctx.clone())
        .and(warp::query::<HashMap<String, String>>())
        .then(|artist: String, ctx: Ctx, q: HashMap<String, String>| async move {
            finish(&ctx.request_id, dashboard(&ctx, &artist, q).await)
        });
    let platforms =
        warp::path!("v1" / "stats" / "platforms")
            .and(warp::get())
            .and(ctx)
            .and(warp::query::<HashMap<String, String>>())
            .then(|ctx: Ctx, q: HashMap<String, String>| async move {
                finish(&ctx.request_id, platform_stats(&ctx, q).await)
            });
    draft
        .or(list)
        .unify()
        .or(action)
        .unify()
        .or(ingest)
        .unify()
        .or(sync_all)
        .unify()
        .or(dashboard)
        .unify()
        .or(platforms)
        .unify()
}

fn campaign_error(error: CommandError<CampaignError>) -> ApiError {
    match error {
        CommandError::Rejected(rule @ CampaignError::NoCampaign) => ApiError::NotFound(rule.to_string()),
        CommandError::Rejected(
            rule @ (CampaignError::AlreadyExists
            | CampaignError::WrongStage(_)
            | CampaignError::NotConnected
            | CampaignError::AlreadyLinked),
        ) => ApiError::Conflict(rule.to_string()),
        CommandError::Rejected(rule) => ApiError::Validation(rule.to_string()),
        CommandError::Log(log) => log.into(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DraftRequest {
    platform: AdPlatform,
    objective: Objective,
    budget: Budget,
    currency: String,
    schedule: Schedule,
    countries: Vec<String>,
    creatives: Vec<Creative>,
}

async fn draft(ctx: &Ctx, artist: &str, content_type: Option<&str>, body: &[u8]) -> Result<CommandReply, ApiError> {
    let (caller, _) = authorize(ctx, artist, Permission::ManageCampaigns, &HashMap::new()).await?;
    crate::privacy::ensure_processing_allowed(&ctx.state.log, &caller.subject).await?;
    let request: DraftRequest = parse_json(content_type, body)?;
    let campaign_id = uuid::Uuid::now_v7().to_string();
    let command = CampaignCommand::Draft(CampaignDraft {
        artist_id: artist.to_string(),
        platform: request.platform,
        objective: request.objective,
        budget: request.budget,
        currency: request.currency,
        schedule: request.schedule,
        countries: request.countries,
        creatives: request.creatives,
    });
    let outcome = ctx
        .state
        .log
        .execute::<Campaign>(&campaign_id, command, &ctx.metadata(&caller))
        .await
        .map_err(campaign_error)?;
    Ok(CommandReply {
        status: StatusCode::CREATED,
        body: json!({ "campaign_id": campaign_id, "position": outcome.position.map(|p| p.to_string()) }),
    })
}

/// The command of `POST /v1/campaigns/{id}/link`: the caller's connection for the campaign's
/// platform, the ad account (a Google Ads connection's customer id unless named) and the
/// platform's campaign id.
async fn link_command(
    ctx: &Ctx,
    person: &str,
    platform: AdPlatform,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<CampaignCommand, ApiError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct LinkRequest {
        account_id: Option<String>,
        platform_campaign_id: String,
    }
    let request: LinkRequest = parse_json(content_type, body)?;
    let connection_id = connection_platform(platform).connection_id(person);
    let details = match crate::connection_tokens::live_details(&ctx.state.log, &connection_id).await {
        Ok(details) => Some(details),
        Err(ApiError::Conflict(_)) => None,
        Err(other) => return Err(other),
    };
    let account_id = match (request.account_id, &details) {
        (Some(account), _) => account,
        (None, Some(ConnectionDetails::GoogleAds { customer_id, .. })) => customer_id.replace('-', ""),
        (None, Some(_)) => {
            return Err(ApiError::Validation(
                "account_id (the Meta ad account id) is required".into(),
            ))
        }
        (None, None) => String::new(),
    };
    Ok(CampaignCommand::LinkPlatform {
        link: PlatformLink {
            connection_id,
            account_id,
            platform_campaign_id: request.platform_campaign_id,
        },
        connection_live: details.is_some(),
    })
}

/// The connection platform a campaign's ad platform runs on.
fn connection_platform(platform: AdPlatform) -> Platform {
    match platform {
        AdPlatform::Meta => Platform::Meta,
        AdPlatform::GoogleAds => Platform::GoogleAds,
    }
}

/// `POST /v1/campaigns/{id}/{launch|link|pause|resume|end|archive|budget|schedule|ai-creatives}`.
async fn act(
    ctx: &Ctx,
    campaign_id: &str,
    action: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Response, ApiError> {
    let caller = ctx.caller()?;
    caller.require(&[Role::Person])?;
    let (campaign, _, _) = ctx.state.log.load_aggregate::<Campaign>(campaign_id).await?;
    let details = campaign
        .details()
        .ok_or_else(|| ApiError::NotFound("there is no such campaign".into()))?;
    // The campaign's artist decides who may act on it; strangers learn nothing.
    authorize(ctx, &details.artist_id, Permission::ManageCampaigns, &HashMap::new())
        .await
        .map_err(|e| match e {
            ApiError::NotFound(_) => ApiError::NotFound("there is no such campaign".into()),
            other => other,
        })?;
    // Every action processes the caller's data (their connection, their consent): refused while
    // they have restricted processing (P22).
    crate::privacy::ensure_processing_allowed(&ctx.state.log, &caller.subject).await?;
    let command = match action {
        "sync" => {
            let scope = SyncScope {
                campaigns: Some(vec![campaign_id.to_string()]),
                until: chrono::Utc::now().date_naive(),
                actor: caller.actor(),
            };
            return run_sync(ctx, &scope).await;
        }
        "launch" => {
            let platform = connection_platform(details.platform);
            let (connection, _, _) = ctx
                .state
                .log
                .load_aggregate::<Connection>(&platform.connection_id(&caller.subject))
                .await?;
            CampaignCommand::Launch {
                connection_live: connection.is_live(),
            }
        }
        "link" => link_command(ctx, &caller.subject, details.platform, content_type, body).await?,
        "pause" => CampaignCommand::Pause,
        "resume" => CampaignCommand::Resume,
        "end" => CampaignCommand::End,
        "archive" => CampaignCommand::Archive,
        "budget" => CampaignCommand::ChangeBudget(parse_json(content_type, body)?),
        "schedule" => CampaignCommand::ChangeSchedule(parse_json(content_type, body)?),
        "ai-creatives" => {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct AiCreative {
                asset_id: String,
            }
            let request: AiCreative = parse_json(content_type, body)?;
            // The one consent check (P14): the caller's current ai_features consent.
            let decision =
                crate::consent::check(&ctx.state.log, &caller.subject, domain::consent::Purpose::AiFeatures).await?;
            CampaignCommand::AddAiCreative {
                asset_id: request.asset_id,
                ai_consent_event_id: decision.allowed.then_some(decision.relied_on).flatten(),
            }
        }
        _ => return Err(ApiError::NotFound("no such campaign action".into())),
    };
    let outcome = ctx
        .state
        .log
        .execute::<Campaign>(campaign_id, command, &ctx.metadata(&caller))
        .await
        .map_err(campaign_error)?;
    json(
        StatusCode::OK,
        &json!({ "campaign_id": campaign_id, "position": outcome.position.map(|p| p.to_string()) }),
    )
}

/// Syncs `scope` now and answers with the report (`200` even when an account failed: the
/// report says which and why).
async fn run_sync(ctx: &Ctx, scope: &SyncScope) -> Result<Response, ApiError> {
    let deps = SyncDeps {
        log: &ctx.state.log,
        vault: &ctx.state.vault,
        platforms: &ctx.state.platforms,
    };
    let report = crate::sync::sync(&deps, scope, &|_| {}).await?;
    json(StatusCode::OK, &report)
}

/// `POST /v1/spend/sync` (service): `{"campaigns": [...], "until": "YYYY-MM-DD", "min_position": "…"}`,
/// every field optional; without `campaigns`, every linked campaign the dashboards read model
/// knows (at `min_position` when given).
async fn sync_route(ctx: &Ctx, content_type: Option<&str>, body: &[u8]) -> Result<Response, ApiError> {
    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    struct SyncRequest {
        campaigns: Option<Vec<String>>,
        until: Option<NaiveDate>,
        min_position: Option<String>,
    }
    let caller = ctx.caller()?;
    caller.require(&[Role::Service])?;
    let request: SyncRequest = if body.is_empty() {
        SyncRequest::default()
    } else {
        parse_json(content_type, body)?
    };
    if request
        .campaigns
        .as_ref()
        .is_some_and(|c| c.is_empty() || c.len() > 10_000)
    {
        return Err(ApiError::Validation("campaigns holds 1 to 10,000 campaign ids".into()));
    }
    ctx.wait_for_position("dashboards", request.min_position.as_ref())
        .await?;
    let scope = SyncScope {
        campaigns: request.campaigns,
        until: request.until.unwrap_or_else(|| chrono::Utc::now().date_naive()),
        actor: caller.actor(),
    };
    run_sync(ctx, &scope).await
}

async fn list(ctx: &Ctx, artist: &str, query: HashMap<String, String>) -> Result<Response, ApiError> {
    let query = query_params(&query, &["min_position"])?;
    authorize(ctx, artist, Permission::View, &query).await?;
    ctx.wait_for_position("dashboards", query.get("min_position")).await?;
    let sql = "SELECT campaign_id, platform, objective, stage, currency, start_date, end_date, budget_kind, \
               budget_micros, platform_status, platform_account_id, platform_campaign_id FROM campaigns \
               WHERE artist_id = $1 ORDER BY campaign_id";
    let campaigns: Vec<Value> = dispatch!(ctx.state.log.db(), Db, |pool| {
        let rows = sqlx::query(sql).bind(artist).fetch_all(pool).await?;
        rows.iter()
            .map(|r| {
                Ok(json!({
                    "campaign_id": r.try_get::<String, _>(0)?,
                    "platform": r.try_get::<String, _>(1)?,
                    "objective": r.try_get::<String, _>(2)?,
                    "stage": r.try_get::<String, _>(3)?,
                    "currency": r.try_get::<String, _>(4)?,
                    "start": r.try_get::<String, _>(5)?,
                    "end": r.try_get::<Option<String>, _>(6)?,
                    "budget": { "kind": r.try_get::<String, _>(7)?, "amount_micros": r.try_get::<i64, _>(8)? },
                    "platform_status": r.try_get::<Option<String>, _>(9)?,
                    "platform_account_id": r.try_get::<Option<String>, _>(10)?,
                    "platform_campaign_id": r.try_get::<Option<String>, _>(11)?,
                }))
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?
    });
    json(StatusCode::OK, &json!({ "artist_id": artist, "campaigns": campaigns }))
}

async fn ingest_route(ctx: &Ctx, content_type: Option<&str>, body: &[u8]) -> Result<Response, ApiError> {
    let caller = ctx.caller()?;
    caller.require(&[Role::Service])?;
    let kind = content_type.map(|c| c.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
    // A malformed reading is refused alone, with its reason; the rest of the batch goes on.
    let parse = |value: Value| serde_json::from_value::<IngestReading>(value).map_err(|e| e.to_string());
    let readings: Vec<Result<IngestReading, String>> = match kind.as_deref() {
        Some("application/x-ndjson") | Some("application/jsonl") => std::str::from_utf8(body)
            .map_err(|_| ApiError::InvalidRequest("the body is not UTF-8".into()))?
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|line| {
                serde_json::from_str::<Value>(line)
                    .map_err(|e| format!("not JSON: {e}"))
                    .and_then(parse)
            })
            .collect(),
        Some("application/json") => {
            let values: Vec<Value> = serde_json::from_slice(body)
                .map_err(|_| ApiError::InvalidRequest("the body must be a JSON array of readings".into()))?;
            values.into_iter().map(parse).collect()
        }
        _ => return Err(ApiError::UnsupportedMediaType),
    };
    if readings.is_empty() {
        return Err(ApiError::Validation("the batch holds no reading".into()));
    }
    let result = ingest::ingest(&ctx.state.log, &readings, &ctx.metadata(&caller)).await?;
    let count = |f: fn(&Outcome) -> bool| result.outcomes.iter().filter(|o| f(o)).count();
    json(
        StatusCode::OK,
        &json!({
            "recorded": count(|o| matches!(o, Outcome::Recorded)),
            "restated": count(|o| matches!(o, Outcome::Restated)),
            "unchanged": count(|o| matches!(o, Outcome::Unchanged)),
            "rejected": count(|o| matches!(o, Outcome::Rejected { .. })),
            "results": result.outcomes,
            "position": result.position.map(|p| p.to_string()),
        }),
    )
}

/// Sums of one period and currency.
#[derive(Default, Clone)]
struct Sums {
    spend: i64,
    impressions: i64,
    reach: i64,
    clicks: i64,
    views: i64,
    saves: i64,
    follows: i64,
    conversions: i64,
    engagement: i64,
}

/// `numerator × scale ÷ denominator` in integers, rounded half up; `None` when nothing to divide by.
fn ratio(numerator: i64, scale: i64, denominator: i64) -> Option<i64> {
    if denominator <= 0 {
        return None;
    }
    let n = i128::from(numerator) * i128::from(scale);
    let d = i128::from(denominator);
    i64::try_from((n + d / 2) / d).ok()
}

impl Sums {
    fn view(&self, period: &str, currency: &str) -> Value {
        json!({
            "period": period,
            "currency": currency,
            "spend_micros": self.spend,
            "impressions": self.impressions,
            "reach": self.reach,
            "clicks": self.clicks,
            "views": self.views,
            "saves": self.saves,
            "follows": self.follows,
            "conversions": self.conversions,
            "engagement": self.engagement,
            "kpis": {
                "cpm_micros": ratio(self.spend, 1000, self.impressions),
                "cpc_micros": ratio(self.spend, 1, self.clicks),
                "ctr_basis_points": ratio(self.clicks, 10_000, self.impressions),
                "cost_per_view_micros": ratio(self.spend, 1, self.views),
                "cost_per_save_micros": ratio(self.spend, 1, self.saves),
                "cost_per_follow_micros": ratio(self.spend, 1, self.follows),
                "cost_per_result_micros": ratio(self.spend, 1, self.conversions),
            },
        })
    }
}

fn period_of(day: NaiveDate, granularity: &str) -> String {
    match granularity {
        "week" => {
            let monday = day - chrono::Duration::days(i64::from(day.weekday().num_days_from_monday()));
            monday.to_string()
        }
        "month" => format!("{:04}-{:02}", day.year(), day.month()),
        _ => day.to_string(),
    }
}

fn parse_day(name: &str, raw: Option<&String>) -> Result<Option<NaiveDate>, ApiError> {
    raw.map(|r| {
        r.parse()
            .map_err(|_| ApiError::InvalidRequest(format!("{name} must be a date such as 2026-03-01")))
    })
    .transpose()
}

async fn dashboard(ctx: &Ctx, artist: &str, query: HashMap<String, String>) -> Result<Response, ApiError> {
    let query = query_params(
        &query,
        &["from", "to", "granularity", "platform", "campaign", "min_position"],
    )?;
    authorize(ctx, artist, Permission::View, &query).await?;
    ctx.wait_for_position("dashboards", query.get("min_position")).await?;
    let granularity = query.get("granularity").map(String::as_str).unwrap_or("day");
    if !["day", "week", "month"].contains(&granularity) {
        return Err(ApiError::InvalidRequest(
            "granularity must be day, week or month".into(),
        ));
    }
    let from = parse_day("from", query.get("from"))?.map(|d| d.to_string());
    let to = parse_day("to", query.get("to"))?.map(|d| d.to_string());
    // CAST: PostgreSQL sums bigints into numeric.
    let sql = "SELECT day, currency, CAST(SUM(spend_micros) AS BIGINT), CAST(SUM(impressions) AS BIGINT), \
               CAST(SUM(reach) AS BIGINT), CAST(SUM(clicks) AS BIGINT), CAST(SUM(views) AS BIGINT), \
               CAST(SUM(saves) AS BIGINT), CAST(SUM(follows) AS BIGINT), CAST(SUM(conversions) AS BIGINT), \
               CAST(SUM(reactions + comments + shares) AS BIGINT) FROM campaign_daily \
               WHERE artist_id = $1 AND ($2 IS NULL OR day >= $2) AND ($3 IS NULL OR day <= $3) \
               AND ($4 IS NULL OR platform = $4) AND ($5 IS NULL OR campaign_id = $5) \
               GROUP BY day, currency ORDER BY day";
    let rows: Vec<(String, String, Sums)> = dispatch!(ctx.state.log.db(), Db, |pool| {
        let rows = sqlx::query(sql)
            .bind(artist)
            .bind(&from)
            .bind(&to)
            .bind(query.get("platform"))
            .bind(query.get("campaign"))
            .fetch_all(pool)
            .await?;
        rows.iter()
            .map(|r| {
                let n =
                    |i: usize| -> Result<i64, sqlx::Error> { r.try_get::<Option<i64>, _>(i).map(|v| v.unwrap_or(0)) };
                Ok((
                    r.try_get::<String, _>(0)?,
                    r.try_get::<String, _>(1)?,
                    Sums {
                        spend: n(2)?,
                        impressions: n(3)?,
                        reach: n(4)?,
                        clicks: n(5)?,
                        views: n(6)?,
                        saves: n(7)?,
                        follows: n(8)?,
                        conversions: n(9)?,
                        engagement: n(10)?,
                    },
                ))
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?
    });
    let mut series: BTreeMap<(String, String), Sums> = BTreeMap::new();
    let mut totals: BTreeMap<String, Sums> = BTreeMap::new();
    for (day, currency, sums) in rows {
        let day: NaiveDate = day.parse().map_err(|_| ApiError::Internal)?;
        for target in [
            series
                .entry((period_of(day, granularity), currency.clone()))
                .or_default(),
            totals.entry(currency.clone()).or_default(),
        ] {
            target.spend += sums.spend;
            target.impressions += sums.impressions;
            target.reach += sums.reach;
            target.clicks += sums.clicks;
            target.views += sums.views;
            target.saves += sums.saves;
            target.follows += sums.follows;
            target.conversions += sums.conversions;
            target.engagement += sums.engagement;
        }
    }
    json(
        StatusCode::OK,
        &json!({
            "artist_id": artist,
            "granularity": granularity,
            "series": series.iter().map(|((period, currency), s)| s.view(period, currency)).collect::<Vec<_>>(),
            "totals": totals.iter().map(|(currency, s)| s.view("total", currency)).collect::<Vec<_>>(),
        }),
    )
}

/// `GET /v1/stats/platforms`: spend and results by platform and day, anonymous (P26).
async fn platform_stats(ctx: &Ctx, query: HashMap<String, String>) -> Result<Response, ApiError> {
    ctx.caller()?.require(&[Role::Support, Role::Auditor, Role::Service])?;
    let query = query_params(&query, &["from", "to", "min_position"])?;
    ctx.wait_for_position("dashboards", query.get("min_position")).await?;
    let from = parse_day("from", query.get("from"))?.map(|d| d.to_string());
    let to = parse_day("to", query.get("to"))?.map(|d| d.to_string());
    let sql =
        "SELECT platform, day, currency, spend_micros, impressions, clicks, views, conversions FROM platform_daily \
               WHERE ($1 IS NULL OR day >= $1) AND ($2 IS NULL OR day <= $2) ORDER BY day, platform, currency";
    let rows: Vec<Value> = dispatch!(ctx.state.log.db(), Db, |pool| {
        let rows = sqlx::query(sql).bind(&from).bind(&to).fetch_all(pool).await?;
        rows.iter()
            .map(|r| {
                Ok(json!({
                    "platform": r.try_get::<String, _>(0)?,
                    "day": r.try_get::<String, _>(1)?,
                    "currency": r.try_get::<String, _>(2)?,
                    "spend_micros": r.try_get::<i64, _>(3)?,
                    "impressions": r.try_get::<i64, _>(4)?,
                    "clicks": r.try_get::<i64, _>(5)?,
                    "views": r.try_get::<i64, _>(6)?,
                    "conversions": r.try_get::<i64, _>(7)?,
                }))
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?
    });
    json(StatusCode::OK, &json!({ "days": rows }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_round_half_up_and_never_divide_by_zero() {
        assert_eq!(ratio(10_000_000, 1000, 4000), Some(2_500_000));
        assert_eq!(ratio(10, 1, 3), Some(3));
        assert_eq!(ratio(11, 1, 2), Some(6));
        assert_eq!(ratio(5, 1, 0), None);
    }

    #[test]
    fn weeks_start_on_monday_and_months_are_calendar_months() {
        let d: NaiveDate = "2026-03-05".parse().unwrap();
        assert_eq!(period_of(d, "week"), "2026-03-02");
        assert_eq!(period_of(d, "month"), "2026-03");
        assert_eq!(period_of(d, "day"), "2026-03-05");
    }
}
