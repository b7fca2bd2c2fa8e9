//! `billing`: billing accounts (plan, subscription, payment-method summary), the artists each
//! pays for, every campaign's artist, every spend ledger's latest spend with the position of
//! its last event, closed periods with their statements and what was reported to Stripe, and
//! the Stripe facts (P3, P11). Usage per account, period and currency is a sum over
//! `billing_readings` joined to campaigns and artists; a restatement replaces its day, so
//! usage always equals the latest readings.

use crate::projection::{Projection, ProjectionError, ReadTx, Target};
use async_trait::async_trait;
use domain::billing::{BillingAccount, BillingEvent, BillingPeriod, PeriodEvent};
use domain::campaign::{Campaign, CampaignEvent};
use domain::spend::{SpendEvent, SpendLedger};
use domain::Aggregate;
use eventlog::{dispatch, Dialect, StoredEvent};

/// The projection that fills the billing tables.
pub struct Billing;

/// A bound parameter of one statement.
enum Arg {
    Text(String),
    Int(i64),
    NullText,
}

async fn run(tx: &mut ReadTx<'_>, sql: &str, args: Vec<Arg>) -> Result<(), ProjectionError> {
    dispatch!(tx, ReadTx, |conn| {
        let mut query = sqlx::query(sql);
        for arg in &args {
            query = match arg {
                Arg::Text(text) => query.bind(text.as_str()),
                Arg::Int(int) => query.bind(*int),
                Arg::NullText => query.bind(None::<String>),
            };
        }
        query.execute(&mut **conn).await?;
    });
    Ok(())
}

fn text(value: impl Into<String>) -> Arg {
    Arg::Text(value.into())
}

#[async_trait]
impl Projection for Billing {
    fn name(&self) -> &'static str {
        "billing"
    }

    fn version(&self) -> i32 {
        1
    }

    fn tables(&self) -> &'static [&'static str] {
        &[
            "billing_accounts",
            "billing_artists",
            "billing_campaigns",
            "billing_readings",
            "billing_periods",
            "billing_facts",
        ]
    }

    fn schema(&self, dialect: Dialect) -> &'static str {
        match dialect {
            Dialect::Postgres => include_str!("../../../migrations/read_models/postgres/billing.sql"),
            Dialect::Sqlite => include_str!("../../../migrations/read_models/sqlite/billing.sql"),
        }
    }

    async fn apply(&self, tx: &mut ReadTx<'_>, target: &Target, events: &[StoredEvent]) -> Result<(), ProjectionError> {
        let accounts = target.table("billing_accounts");
        let artists = target.table("billing_artists");
        let campaigns = target.table("billing_campaigns");
        let readings = target.table("billing_readings");
        let periods = target.table("billing_periods");
        let facts = target.table("billing_facts");
        for event in events {
            let id = event.aggregate_id.clone();
            if event.aggregate_type == Campaign::TYPE && event.event_type == "CampaignDrafted" {
                if let CampaignEvent::CampaignDrafted(draft) = event
                    .decode::<CampaignEvent>()
                    .map_err(|e| ProjectionError::undecodable(event, e))?
                {
                    let sql = format!(
                        "INSERT INTO {campaigns} (campaign_id, artist_id) VALUES ($1, $2) ON CONFLICT (campaign_id) DO NOTHING"
                    );
                    run(tx, &sql, vec![text(id), text(draft.artist_id)]).await?;
                }
            } else if event.aggregate_type == SpendLedger::TYPE {
                // `<campaign>.<platform>.<YYYY-MM-DD>`: the period is the day's month.
                let mut parts = event.aggregate_id.rsplitn(3, '.');
                let (Some(day), Some(_), Some(campaign)) = (parts.next(), parts.next(), parts.next()) else {
                    return Err(ProjectionError::Event {
                        position: event.position,
                        event_type: event.event_type.clone(),
                        reason: "the ledger id is not <campaign>.<platform>.<day>".into(),
                    });
                };
                let metrics = match event
                    .decode::<SpendEvent>()
                    .map_err(|e| ProjectionError::undecodable(event, e))?
                {
                    SpendEvent::SpendRecorded(reading) => reading.metrics,
                    SpendEvent::SpendRestated { new, .. } => new.metrics,
                };
                let period = day.get(..7).unwrap_or(day).to_string();
                let sql = format!(
                    "INSERT INTO {readings} (ledger_id, campaign_id, period, currency, spend_micros, last_commit, last_global) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (ledger_id) DO UPDATE SET \
                     currency = excluded.currency, spend_micros = excluded.spend_micros, \
                     last_commit = excluded.last_commit, last_global = excluded.last_global"
                );
                let args = vec![
                    text(id.clone()),
                    text(campaign),
                    text(period),
                    text(metrics.currency),
                    Arg::Int(metrics.spend_micros),
                    Arg::Int(event.position.commit),
                    Arg::Int(event.position.global),
                ];
                run(tx, &sql, args).await?;
            } else if event.aggregate_type == BillingAccount::TYPE {
                let decoded = event
                    .decode::<BillingEvent>()
                    .map_err(|e| ProjectionError::undecodable(event, e))?;
                let subscription = |state: &str| {
                    (
                        format!("UPDATE {accounts} SET subscription = $2 WHERE account_id = $1"),
                        vec![text(id.clone()), text(state)],
                    )
                };
                let (sql, args) = match decoded {
                    BillingEvent::BillingAccountOpened {
                        owner,
                        stripe_customer_id,
                        plan,
                    } => (
                        format!(
                            "INSERT INTO {accounts} (account_id, owner, stripe_customer_id, currency, time_zone, \
                             monthly_fee_micros, included_spend_micros, fee_basis_points, subscription) \
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'active') ON CONFLICT (account_id) DO NOTHING"
                        ),
                        vec![
                            text(id.clone()),
                            text(owner),
                            text(stripe_customer_id),
                            text(plan.currency),
                            text(plan.time_zone),
                            Arg::Int(plan.monthly_fee_micros),
                            Arg::Int(plan.included_spend_micros),
                            Arg::Int(plan.fee_basis_points),
                        ],
                    ),
                    BillingEvent::PlanChanged(plan) => (
                        format!(
                            "UPDATE {accounts} SET time_zone = $2, monthly_fee_micros = $3, included_spend_micros = $4, \
                             fee_basis_points = $5 WHERE account_id = $1"
                        ),
                        vec![
                            text(id.clone()),
                            text(plan.time_zone),
                            Arg::Int(plan.monthly_fee_micros),
                            Arg::Int(plan.included_spend_micros),
                            Arg::Int(plan.fee_basis_points),
                        ],
                    ),
                    BillingEvent::ArtistAttached { artist_id } => (
                        format!(
                            "INSERT INTO {artists} (artist_id, account_id) VALUES ($1, $2) \
                             ON CONFLICT (artist_id) DO UPDATE SET account_id = excluded.account_id"
                        ),
                        vec![text(artist_id), text(id.clone())],
                    ),
                    BillingEvent::PaymentMethodRecorded(method) => (
                        format!(
                            "UPDATE {accounts} SET payment_brand = $2, payment_last4 = $3, payment_expiry = $4 \
                             WHERE account_id = $1"
                        ),
                        vec![
                            text(id.clone()),
                            text(method.brand),
                            text(method.last4),
                            text(format!("{:02}/{}", method.exp_month, method.exp_year)),
                        ],
                    ),
                    BillingEvent::StripeFactRecorded(fact) => (
                        format!(
                            "INSERT INTO {facts} (stripe_event_id, account_id, event_type, object_id, amount_minor, \
                             currency, status, created) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                             ON CONFLICT (stripe_event_id) DO NOTHING"
                        ),
                        vec![
                            text(fact.stripe_event_id),
                            text(id.clone()),
                            text(fact.event_type),
                            text(fact.object_id),
                            fact.amount_minor.map_or(Arg::NullText, Arg::Int),
                            fact.currency.map_or(Arg::NullText, Arg::Text),
                            fact.status.map_or(Arg::NullText, Arg::Text),
                            Arg::Int(fact.created),
                        ],
                    ),
                    BillingEvent::SubscriptionPastDue { .. } => subscription("past_due"),
                    BillingEvent::SubscriptionReactivated { .. } => subscription("active"),
                    BillingEvent::SubscriptionCanceled { .. } => subscription("canceled"),
                };
                run(tx, &sql, args).await?;
            } else if event.aggregate_type == BillingPeriod::TYPE {
                // `<account>.<YYYY-MM>`.
                let Some((account, period)) = event.aggregate_id.rsplit_once('.') else {
                    return Err(ProjectionError::Event {
                        position: event.position,
                        event_type: event.event_type.clone(),
                        reason: "the period id is not <account>.<YYYY-MM>".into(),
                    });
                };
                let (sql, args) = match event
                    .decode::<PeriodEvent>()
                    .map_err(|e| ProjectionError::undecodable(event, e))?
                {
                    PeriodEvent::PeriodClosed(statement) => (
                        format!(
                            "INSERT INTO {periods} (account_id, period, statement, closed_commit, closed_global) \
                             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (account_id, period) DO NOTHING"
                        ),
                        vec![
                            text(account),
                            text(period),
                            text(serde_json::to_string(&statement).map_err(|e| ProjectionError::undecodable(event, e))?),
                            Arg::Int(event.position.commit),
                            Arg::Int(event.position.global),
                        ],
                    ),
                    PeriodEvent::UsageReported {
                        identifier,
                        value_minor,
                    } => (
                        format!(
                            "UPDATE {periods} SET reported_id = $3, reported_minor = $4 WHERE account_id = $1 AND period = $2"
                        ),
                        vec![text(account), text(period), text(identifier), Arg::Int(value_minor)],
                    ),
                };
                run(tx, &sql, args).await?;
            }
        }
        Ok(())
    }
}
