//! `dashboards`: campaigns (`campaigns`), each campaign's metrics per day (`campaign_daily`:
//! the latest reading, a restatement replaces the day), and the anonymous platform-wide
//! aggregate (`platform_daily`: per platform, day and currency; restatements applied as
//! differences) that no erasure removes (P1, P10, P26).

use crate::projection::{Projection, ProjectionError, ReadTx, Target};
use async_trait::async_trait;
use domain::campaign::{Budget, Campaign, CampaignEvent};
use domain::spend::{Metrics, SpendEvent, SpendLedger};
use domain::Aggregate;
use eventlog::{dispatch, Dialect, StoredEvent};

/// The projection that fills the dashboard tables.
pub struct Dashboards;

fn text<T: serde::Serialize>(value: &T) -> Result<String, serde_json::Error> {
    let v = serde_json::to_value(value)?;
    Ok(match v {
        serde_json::Value::String(s) => s,
        other => other["status"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| other.to_string()),
    })
}

#[async_trait]
impl Projection for Dashboards {
    fn name(&self) -> &'static str {
        "dashboards"
    }

    fn version(&self) -> i32 {
        2
    }

    fn tables(&self) -> &'static [&'static str] {
        &["campaigns", "campaign_daily", "platform_daily"]
    }

    fn schema(&self, dialect: Dialect) -> &'static str {
        match dialect {
            Dialect::Postgres => include_str!("../../../migrations/read_models/postgres/dashboards.sql"),
            Dialect::Sqlite => include_str!("../../../migrations/read_models/sqlite/dashboards.sql"),
        }
    }

    async fn apply(&self, tx: &mut ReadTx<'_>, target: &Target, events: &[StoredEvent]) -> Result<(), ProjectionError> {
        let campaigns = target.table("campaigns");
        let daily = target.table("campaign_daily");
        let platform_daily = target.table("platform_daily");
        for event in events {
            if event.aggregate_type == Campaign::TYPE {
                let id = &event.aggregate_id;
                let update = |column: &str| format!("UPDATE {campaigns} SET {column} = $2 WHERE campaign_id = $1");
                let (sql, value): (String, Option<String>) = match event
                    .decode::<CampaignEvent>()
                    .map_err(|e| ProjectionError::undecodable(event, e))?
                {
                    CampaignEvent::CampaignDrafted(d) => {
                        let (kind, micros) = match d.budget {
                            Budget::Daily { amount_micros } => ("daily", amount_micros),
                            Budget::Lifetime { amount_micros } => ("lifetime", amount_micros),
                        };
                        let sql = format!(
                            "INSERT INTO {campaigns} (campaign_id, artist_id, platform, objective, stage, currency, \
                             start_date, end_date, budget_kind, budget_micros) VALUES ($1, $2, $3, $4, 'draft', $5, $6, $7, $8, $9) \
                             ON CONFLICT (campaign_id) DO NOTHING"
                        );
                        let (platform, objective) = (text(&d.platform)?, text(&d.objective)?);
                        dispatch!(tx, ReadTx, |conn| {
                            sqlx::query(&sql)
                                .bind(id)
                                .bind(&d.artist_id)
                                .bind(&platform)
                                .bind(&objective)
                                .bind(&d.currency)
                                .bind(d.schedule.start.to_string())
                                .bind(d.schedule.end.map(|e| e.to_string()))
                                .bind(kind)
                                .bind(micros)
                                .execute(&mut **conn)
                                .await?;
                        });
                        continue;
                    }
                    CampaignEvent::BudgetChanged(budget) => {
                        let (kind, micros) = match budget {
                            Budget::Daily { amount_micros } => ("daily", amount_micros),
                            Budget::Lifetime { amount_micros } => ("lifetime", amount_micros),
                        };
                        let sql = format!(
                            "UPDATE {campaigns} SET budget_kind = $2, budget_micros = $3 WHERE campaign_id = $1"
                        );
                        dispatch!(tx, ReadTx, |conn| {
                            sqlx::query(&sql)
                                .bind(id)
                                .bind(kind)
                                .bind(micros)
                                .execute(&mut **conn)
                                .await?;
                        });
                        continue;
                    }
                    CampaignEvent::ScheduleChanged(s) => {
                        let sql =
                            format!("UPDATE {campaigns} SET start_date = $2, end_date = $3 WHERE campaign_id = $1");
                        dispatch!(tx, ReadTx, |conn| {
                            sqlx::query(&sql)
                                .bind(id)
                                .bind(s.start.to_string())
                                .bind(s.end.map(|e| e.to_string()))
                                .execute(&mut **conn)
                                .await?;
                        });
                        continue;
                    }
                    CampaignEvent::CampaignLaunched | CampaignEvent::CampaignResumed => {
                        (update("stage"), Some("live".into()))
                    }
                    CampaignEvent::CampaignPaused => (update("stage"), Some("paused".into())),
                    CampaignEvent::CampaignEnded => (update("stage"), Some("ended".into())),
                    CampaignEvent::CampaignArchived => (update("stage"), Some("archived".into())),
                    CampaignEvent::CampaignSubscriptionPaused { .. } => {
                        (update("stage"), Some("subscription_paused".into()))
                    }
                    CampaignEvent::CampaignSubscriptionResumed { stage } => (update("stage"), Some(text(&stage)?)),
                    CampaignEvent::PlatformStatusReported(status) => (update("platform_status"), Some(text(&status)?)),
                    CampaignEvent::AiCreativeAdded { .. } => continue,
                    CampaignEvent::PlatformCampaignLinked(link) => {
                        let sql = format!(
                            "UPDATE {campaigns} SET connection_id = $2, platform_account_id = $3, \
                             platform_campaign_id = $4 WHERE campaign_id = $1"
                        );
                        dispatch!(tx, ReadTx, |conn| {
                            sqlx::query(&sql)
                                .bind(id)
                                .bind(&link.connection_id)
                                .bind(&link.account_id)
                                .bind(&link.platform_campaign_id)
                                .execute(&mut **conn)
                                .await?;
                        });
                        continue;
                    }
                };
                dispatch!(tx, ReadTx, |conn| {
                    sqlx::query(&sql).bind(id).bind(&value).execute(&mut **conn).await?;
                });
            } else if event.aggregate_type == SpendLedger::TYPE {
                // Ledger ids are `<campaign>.<platform>.<YYYY-MM-DD>`; campaign ids hold no dots.
                let mut parts = event.aggregate_id.rsplitn(3, '.');
                let (Some(day), Some(platform), Some(campaign)) = (parts.next(), parts.next(), parts.next()) else {
                    return Err(ProjectionError::Event {
                        position: event.position,
                        event_type: event.event_type.clone(),
                        reason: "the ledger id is not <campaign>.<platform>.<day>".into(),
                    });
                };
                let decoded = event
                    .decode::<SpendEvent>()
                    .map_err(|e| ProjectionError::undecodable(event, e))?;
                let (old, new): (Option<Metrics>, Metrics) = match decoded {
                    SpendEvent::SpendRecorded(r) => (None, r.metrics),
                    SpendEvent::SpendRestated { old, new } => (Some(old), new.metrics),
                };
                let upsert = format!(
                    "INSERT INTO {daily} (campaign_id, day, artist_id, platform, currency, spend_micros, impressions, reach, \
                     clicks, views, saves, reactions, comments, shares, follows, conversions, restatements) \
                     SELECT $1, $2, COALESCE((SELECT artist_id FROM {campaigns} WHERE campaign_id = $1), ''), $3, $4, \
                     $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16 \
                     ON CONFLICT (campaign_id, day) DO UPDATE SET currency = excluded.currency, \
                     spend_micros = excluded.spend_micros, impressions = excluded.impressions, reach = excluded.reach, \
                     clicks = excluded.clicks, views = excluded.views, saves = excluded.saves, \
                     reactions = excluded.reactions, comments = excluded.comments, shares = excluded.shares, \
                     follows = excluded.follows, conversions = excluded.conversions, \
                     restatements = {daily}.restatements + excluded.restatements"
                );
                let m = &new;
                dispatch!(tx, ReadTx, |conn| {
                    sqlx::query(&upsert)
                        .bind(campaign)
                        .bind(day)
                        .bind(platform)
                        .bind(&m.currency)
                        .bind(m.spend_micros)
                        .bind(m.impressions)
                        .bind(m.reach)
                        .bind(m.clicks)
                        .bind(m.views)
                        .bind(m.saves)
                        .bind(m.reactions)
                        .bind(m.comments)
                        .bind(m.shares)
                        .bind(m.follows)
                        .bind(m.conversions)
                        .bind(i64::from(old.is_some()))
                        .execute(&mut **conn)
                        .await?;
                });
                // The anonymous aggregate moves by the difference.
                let zero = Metrics {
                    spend_micros: 0,
                    currency: m.currency.clone(),
                    impressions: 0,
                    reach: 0,
                    clicks: 0,
                    views: 0,
                    saves: 0,
                    reactions: 0,
                    comments: 0,
                    shares: 0,
                    follows: 0,
                    conversions: 0,
                };
                let o = old.unwrap_or(zero);
                let add = format!(
                    "INSERT INTO {platform_daily} (platform, day, currency, spend_micros, impressions, clicks, views, conversions) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (platform, day, currency) DO UPDATE SET \
                     spend_micros = {platform_daily}.spend_micros + excluded.spend_micros, \
                     impressions = {platform_daily}.impressions + excluded.impressions, \
                     clicks = {platform_daily}.clicks + excluded.clicks, views = {platform_daily}.views + excluded.views, \
                     conversions = {platform_daily}.conversions + excluded.conversions"
                );
                dispatch!(tx, ReadTx, |conn| {
                    sqlx::query(&add)
                        .bind(platform)
                        .bind(day)
                        .bind(&m.currency)
                        .bind(m.spend_micros - o.spend_micros)
                        .bind(m.impressions - o.impressions)
                        .bind(m.clicks - o.clicks)
                        .bind(m.views - o.views)
                        .bind(m.conversions - o.conversions)
                        .execute(&mut **conn)
                        .await?;
                });
            }
        }
        Ok(())
    }
}
