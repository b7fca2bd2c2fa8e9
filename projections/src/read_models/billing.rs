//! `billing`: billing accounts (plan, subscription, payment-method summary), the artists each
//! pays for, every campaign's artist, every spend ledger's latest spend with the position of
//! its last event, closed periods with their statements and what was reported to Stripe, and
//! the Stripe facts (P3, P11). Usage per account, period and currency is a sum over
//! `billing_readings` joined to campaigns and artists; a restatement replaces its day, so
//! usage always equals the latest readings.
//!
//! The high-volume events (spend readings and restatements, campaign drafts) are folded per
//! batch in memory and written with one statement per table per batch; the rest (accounts,
//! periods, Stripe facts) are written per event, in feed order.

use crate::projection::{Projection, ProjectionError, ReadTx, Target};
use async_trait::async_trait;
use domain::billing::{BillingAccount, BillingEvent, BillingPeriod, PeriodEvent};
use domain::campaign::{Campaign, CampaignEvent};
use domain::spend::{SpendEvent, SpendLedger};
use domain::Aggregate;
use eventlog::{dispatch, Dialect, StoredEvent};
use std::collections::BTreeMap;

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

    fn aggregate_types(&self) -> Option<&'static [&'static str]> {
        Some(&[
            Campaign::TYPE,
            SpendLedger::TYPE,
            BillingAccount::TYPE,
            BillingPeriod::TYPE,
        ])
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
        // The batch's campaign drafts (the first per campaign: the insert keeps an existing row)
        // and each ledger's latest reading (the upsert overwrites), as applying them one by one
        // would leave them.
        let mut drafted: BTreeMap<&str, String> = BTreeMap::new();
        let mut latest: BTreeMap<&str, LatestReading<'_>> = BTreeMap::new();
        for event in events.iter().filter(|e| self.reads(e)) {
            if event.aggregate_type == Campaign::TYPE && event.event_type == "CampaignDrafted" {
                if let CampaignEvent::CampaignDrafted(draft) = event
                    .decode::<CampaignEvent>()
                    .map_err(|e| ProjectionError::undecodable(event, e))?
                {
                    drafted.entry(event.aggregate_id.as_str()).or_insert(draft.artist_id);
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
                    // A later view with the same figures: nothing billed changes.
                    SpendEvent::SpendConfirmed { .. } => continue,
                };
                // The campaign and period are functions of the ledger id, so the first insert's
                // (which the upsert keeps) equal the latest event's.
                latest.insert(
                    event.aggregate_id.as_str(),
                    LatestReading {
                        campaign,
                        period: day.get(..7).unwrap_or(day),
                        currency: metrics.currency,
                        spend_micros: metrics.spend_micros,
                        last_commit: event.position.commit,
                        last_global: event.position.global,
                    },
                );
            } else if event.aggregate_type == BillingAccount::TYPE {
                let id = event.aggregate_id.clone();
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
                            text(serde_json::to_string(&statement)?),
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
        // No statement above reads or writes `billing_campaigns` or `billing_readings`, so
        // writing them after the per-event statements leaves what event-order writes would.
        write_campaigns(tx, &campaigns, &drafted).await?;
        write_readings(tx, &readings, &latest).await?;
        Ok(())
    }
}

/// A spend ledger's latest reading in a batch: the row `billing_readings` holds for it.
struct LatestReading<'e> {
    campaign: &'e str,
    period: &'e str,
    currency: String,
    spend_micros: i64,
    last_commit: i64,
    last_global: i64,
}

/// Inserts the batch's drafted campaigns in one statement, keeping rows already there.
async fn write_campaigns(
    tx: &mut ReadTx<'_>,
    table: &str,
    drafted: &BTreeMap<&str, String>,
) -> Result<(), ProjectionError> {
    if drafted.is_empty() {
        return Ok(());
    }
    let insert = format!("INSERT INTO {table} (campaign_id, artist_id)");
    let conflict = "ON CONFLICT (campaign_id) DO NOTHING";
    match tx {
        ReadTx::Postgres(conn) => {
            let ids: Vec<&str> = drafted.keys().copied().collect();
            let artists: Vec<&str> = drafted.values().map(String::as_str).collect();
            sqlx::query(&format!(
                "{insert} SELECT * FROM UNNEST($1::text[], $2::text[]) {conflict}"
            ))
            .bind(&ids)
            .bind(&artists)
            .execute(&mut **conn)
            .await?;
        }
        ReadTx::Sqlite(conn) => {
            let rows: Vec<_> = drafted
                .iter()
                .map(|(id, artist)| serde_json::json!([id, artist]))
                .collect();
            // `WHERE true` resolves SQLite's parsing ambiguity between a join and the upsert.
            sqlx::query(&format!(
                "{insert} SELECT value ->> 0, value ->> 1 FROM json_each($1) WHERE true {conflict}"
            ))
            .bind(serde_json::Value::Array(rows).to_string())
            .execute(&mut **conn)
            .await?;
        }
    }
    Ok(())
}

/// Upserts every ledger's latest reading of the batch in one statement.
async fn write_readings(
    tx: &mut ReadTx<'_>,
    table: &str,
    latest: &BTreeMap<&str, LatestReading<'_>>,
) -> Result<(), ProjectionError> {
    if latest.is_empty() {
        return Ok(());
    }
    let insert = format!(
        "INSERT INTO {table} (ledger_id, campaign_id, period, currency, spend_micros, last_commit, last_global)"
    );
    let upsert = "ON CONFLICT (ledger_id) DO UPDATE SET \
                  currency = excluded.currency, spend_micros = excluded.spend_micros, \
                  last_commit = excluded.last_commit, last_global = excluded.last_global";
    match tx {
        ReadTx::Postgres(conn) => {
            let ledgers: Vec<&str> = latest.keys().copied().collect();
            let campaigns: Vec<&str> = latest.values().map(|r| r.campaign).collect();
            let periods: Vec<&str> = latest.values().map(|r| r.period).collect();
            let currencies: Vec<&str> = latest.values().map(|r| r.currency.as_str()).collect();
            let spends: Vec<i64> = latest.values().map(|r| r.spend_micros).collect();
            let commits: Vec<i64> = latest.values().map(|r| r.last_commit).collect();
            let globals: Vec<i64> = latest.values().map(|r| r.last_global).collect();
            sqlx::query(&format!(
                "{insert} SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], \
                 $5::bigint[], $6::bigint[], $7::bigint[]) {upsert}"
            ))
            .bind(&ledgers)
            .bind(&campaigns)
            .bind(&periods)
            .bind(&currencies)
            .bind(&spends)
            .bind(&commits)
            .bind(&globals)
            .execute(&mut **conn)
            .await?;
        }
        ReadTx::Sqlite(conn) => {
            let rows: Vec<_> = latest
                .iter()
                .map(|(ledger, r)| {
                    serde_json::json!([
                        ledger,
                        r.campaign,
                        r.period,
                        r.currency,
                        r.spend_micros,
                        r.last_commit,
                        r.last_global
                    ])
                })
                .collect();
            // `WHERE true` resolves SQLite's parsing ambiguity between a join and the upsert.
            sqlx::query(&format!(
                "{insert} SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5, \
                 value ->> 6 FROM json_each($1) WHERE true {upsert}"
            ))
            .bind(serde_json::Value::Array(rows).to_string())
            .execute(&mut **conn)
            .await?;
        }
    }
    Ok(())
}

// ----- Queries -----

/// Spend of one period and currency.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PeriodUsage {
    pub period: String,
    pub currency: String,
    pub spend_micros: i64,
}

/// A closed period as the read model holds it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ClosedPeriod {
    pub period: String,
    pub statement: domain::billing::Statement,
    /// The position of the `PeriodClosed` event: restatements after it are adjustments.
    #[serde(skip)]
    pub closed_at: eventlog::Position,
    pub reported_identifier: Option<String>,
    pub reported_minor: Option<i64>,
}

/// Usage of `account` per period and currency (one period when given), in order.
pub async fn usage(
    db: &eventlog::Db,
    account: &str,
    period: Option<&str>,
) -> Result<Vec<PeriodUsage>, ProjectionError> {
    use eventlog::Db;
    let sql = format!(
        "SELECT r.period, r.currency, {} FROM billing_readings r \
               JOIN billing_campaigns c ON c.campaign_id = r.campaign_id \
               JOIN billing_artists a ON a.artist_id = c.artist_id \
               WHERE a.account_id = $1 AND ($2 = '' OR r.period = $2) \
               GROUP BY r.period, r.currency ORDER BY r.period, r.currency",
        super::dashboards::split_sum("r.spend_micros")
    );
    let rows: Vec<(String, String, i64, i64)> = dispatch!(db, Db, |pool| {
        sqlx::query_as(&sql)
            .bind(account)
            .bind(period.unwrap_or(""))
            .fetch_all(pool)
            .await?
    });
    Ok(rows
        .into_iter()
        .map(|(period, currency, millions, rest)| PeriodUsage {
            period,
            currency,
            spend_micros: super::dashboards::join_split_sum(millions, rest),
        })
        .collect())
}

/// The account's closed periods, oldest first.
pub async fn closed_periods(db: &eventlog::Db, account: &str) -> Result<Vec<ClosedPeriod>, ProjectionError> {
    use eventlog::Db;
    let sql = "SELECT period, statement, closed_commit, closed_global, reported_id, reported_minor \
               FROM billing_periods WHERE account_id = $1 ORDER BY period";
    type Row = (String, String, i64, i64, Option<String>, Option<i64>);
    let rows: Vec<Row> = dispatch!(db, Db, |pool| {
        sqlx::query_as(sql).bind(account).fetch_all(pool).await?
    });
    rows.into_iter()
        .map(
            |(period, statement, commit, global, reported_identifier, reported_minor)| {
                Ok(ClosedPeriod {
                    period,
                    statement: serde_json::from_str(&statement)?,
                    closed_at: eventlog::Position { commit, global },
                    reported_identifier,
                    reported_minor,
                })
            },
        )
        .collect()
}

/// The ledgers of `account` in `period` whose latest event came after `after`.
pub async fn restated_after(
    db: &eventlog::Db,
    account: &str,
    period: &str,
    after: eventlog::Position,
) -> Result<Vec<String>, ProjectionError> {
    use eventlog::Db;
    let sql = "SELECT r.ledger_id FROM billing_readings r \
               JOIN billing_campaigns c ON c.campaign_id = r.campaign_id \
               JOIN billing_artists a ON a.artist_id = c.artist_id \
               WHERE a.account_id = $1 AND r.period = $2 \
               AND (r.last_commit > $3 OR (r.last_commit = $3 AND r.last_global > $4)) ORDER BY r.ledger_id";
    let ids: Vec<(String,)> = dispatch!(db, Db, |pool| {
        sqlx::query_as(sql)
            .bind(account)
            .bind(period)
            .bind(after.commit)
            .bind(after.global)
            .fetch_all(pool)
            .await?
    });
    Ok(ids.into_iter().map(|(id,)| id).collect())
}

/// Every billing account with its billing currency, by id.
pub async fn accounts(db: &eventlog::Db) -> Result<Vec<(String, String)>, ProjectionError> {
    use eventlog::Db;
    Ok(dispatch!(db, Db, |pool| {
        sqlx::query_as("SELECT account_id, currency FROM billing_accounts ORDER BY account_id")
            .fetch_all(pool)
            .await?
    }))
}

/// A closed period not yet reported to Stripe, with the account's customer and owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DueReport {
    pub account_id: String,
    pub period: String,
    pub stripe_customer_id: String,
    pub owner: String,
}

/// Closed periods not yet reported, by period then account.
pub async fn due_reports(db: &eventlog::Db) -> Result<Vec<DueReport>, ProjectionError> {
    use eventlog::Db;
    let sql = "SELECT p.account_id, p.period, a.stripe_customer_id, a.owner FROM billing_periods p \
               JOIN billing_accounts a ON a.account_id = p.account_id WHERE p.reported_id IS NULL \
               ORDER BY p.period, p.account_id";
    let rows: Vec<(String, String, String, String)> =
        dispatch!(db, Db, |pool| { sqlx::query_as(sql).fetch_all(pool).await? });
    Ok(rows
        .into_iter()
        .map(|(account_id, period, stripe_customer_id, owner)| DueReport {
            account_id,
            period,
            stripe_customer_id,
            owner,
        })
        .collect())
}

/// An account's subscription state and card summary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountSummary {
    pub subscription: String,
    pub payment_brand: Option<String>,
    pub payment_last4: Option<String>,
    pub payment_expiry: Option<String>,
}

/// The subscription state and card summary of `account`, if the read model has it.
pub async fn account_summary(db: &eventlog::Db, account: &str) -> Result<Option<AccountSummary>, ProjectionError> {
    use eventlog::Db;
    let sql = "SELECT subscription, payment_brand, payment_last4, payment_expiry FROM billing_accounts \
               WHERE account_id = $1";
    type Row = (String, Option<String>, Option<String>, Option<String>);
    let row: Option<Row> = dispatch!(db, Db, |pool| {
        sqlx::query_as(sql).bind(account).fetch_optional(pool).await?
    });
    Ok(row.map(
        |(subscription, payment_brand, payment_last4, payment_expiry)| AccountSummary {
            subscription,
            payment_brand,
            payment_last4,
            payment_expiry,
        },
    ))
}

/// A Stripe fact (invoice, charge, subscription change) recorded for an account.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct FactRow {
    pub stripe_event_id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub object_id: String,
    pub amount_minor: Option<i64>,
    pub currency: Option<String>,
    pub status: Option<String>,
    pub created: i64,
}

/// The account's Stripe facts, oldest first: its transaction history (P3).
pub async fn facts(db: &eventlog::Db, account: &str) -> Result<Vec<FactRow>, ProjectionError> {
    use eventlog::Db;
    let sql = "SELECT stripe_event_id, event_type, object_id, amount_minor, currency, status, created \
               FROM billing_facts WHERE account_id = $1 ORDER BY created, stripe_event_id";
    type Row = (String, String, String, Option<i64>, Option<String>, Option<String>, i64);
    let rows: Vec<Row> = dispatch!(db, Db, |pool| {
        sqlx::query_as(sql).bind(account).fetch_all(pool).await?
    });
    Ok(rows
        .into_iter()
        .map(|r| FactRow {
            stripe_event_id: r.0,
            event_type: r.1,
            object_id: r.2,
            amount_minor: r.3,
            currency: r.4,
            status: r.5,
            created: r.6,
        })
        .collect())
}
