//! Metered billing (P3, P11): usage per billing account, period and currency from the `billing`
//! read model; closing a period into a statement (fee, adjustments of earlier periods restated
//! after they closed, carried credit); the meter reporter, an outbox that sends each closed
//! period to Stripe exactly once; reconciliation; Stripe webhook facts and what a past-due
//! subscription does to the account's campaigns.
//!
//! Nothing is charged twice: a period's statement is fixed when it closes (an event), later
//! restatements of its days become one adjustment in the next statement, and a statement is
//! reported as one meter event whose identifier (`dynamoi-<account>-<period>`, also the
//! Idempotency-Key) Stripe deduplicates. The reporter asks the period's own stream before
//! sending, so a projection rebuild or a log replay never sends again; a crash between
//! Stripe's answer and our record resends the same identifier, which Stripe refuses as a
//! duplicate, and the reporter records it as reported.

use crate::ApiError;
use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use connectors::stripe::{MeterEvent, Stripe};
use domain::billing::{
    fee_micros, Adjustment, BillingAccount, BillingPeriod, ForeignSpend, PeriodCommand, PeriodError, Plan, Statement,
};
use domain::campaign::{Campaign, CampaignCommand};
use domain::disclosure::{DataCategory, Processor, Purpose};
use eventlog::{dispatch, CommandError, Db, EventLog, EventMetadata, Position};
use serde::Serialize;
use sqlx::Row;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Spend of one period and currency.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PeriodUsage {
    pub period: String,
    pub currency: String,
    pub spend_micros: i64,
}

/// A closed period as the read model holds it.
#[derive(Clone, Debug, Serialize)]
pub struct ClosedPeriod {
    pub period: String,
    pub statement: Statement,
    #[serde(skip)]
    pub closed_at: Position,
    pub reported_identifier: Option<String>,
    pub reported_minor: Option<i64>,
}

/// `YYYY-MM` of a day.
pub fn period_of(day: NaiveDate) -> String {
    format!("{:04}-{:02}", day.year(), day.month())
}

/// Checks `YYYY-MM` and returns its first day.
pub fn parse_period(period: &str) -> Result<NaiveDate, ApiError> {
    NaiveDate::parse_from_str(&format!("{period}-01"), "%Y-%m-%d")
        .ok()
        .filter(|_| period.len() == 7)
        .ok_or_else(|| ApiError::Validation("a period is a month written YYYY-MM".into()))
}

/// Whether `period` has ended in `time_zone` at `now`.
pub fn period_ended(period: &str, time_zone: &str, now: DateTime<Utc>) -> Result<bool, ApiError> {
    let first = parse_period(period)?;
    let next = first
        .checked_add_months(chrono::Months::new(1))
        .ok_or_else(|| ApiError::Validation("the period is out of range".into()))?;
    let zone: chrono_tz::Tz = time_zone
        .parse()
        .map_err(|_| ApiError::Validation("the time zone must be an IANA name such as Asia/Karachi".into()))?;
    let end = zone
        .from_local_datetime(&next.and_hms_opt(0, 0, 0).expect("midnight exists"))
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or(now);
    Ok(now >= end)
}

/// Usage of `account` per period and currency, optionally one period.
pub async fn usage(db: &Db, account: &str, period: Option<&str>) -> Result<Vec<PeriodUsage>, ApiError> {
    let sql = "SELECT r.period, r.currency, CAST(SUM(r.spend_micros) AS BIGINT) FROM billing_readings r \
               JOIN billing_campaigns c ON c.campaign_id = r.campaign_id \
               JOIN billing_artists a ON a.artist_id = c.artist_id \
               WHERE a.account_id = $1 AND ($2 = '' OR r.period = $2) \
               GROUP BY r.period, r.currency ORDER BY r.period, r.currency";
    let rows = dispatch!(db, Db, |pool| {
        sqlx::query(sql)
            .bind(account)
            .bind(period.unwrap_or(""))
            .fetch_all(pool)
            .await?
            .iter()
            .map(|row| {
                Ok(PeriodUsage {
                    period: row.try_get(0)?,
                    currency: row.try_get(1)?,
                    spend_micros: row.try_get(2)?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?
    });
    Ok(rows)
}

/// The account's closed periods, oldest first.
pub async fn closed_periods(db: &Db, account: &str) -> Result<Vec<ClosedPeriod>, ApiError> {
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
                    statement: serde_json::from_str(&statement).map_err(|_| ApiError::Internal)?,
                    closed_at: Position { commit, global },
                    reported_identifier,
                    reported_minor,
                })
            },
        )
        .collect()
}

/// The ledgers of `account` in `period` whose latest event came after `after`.
async fn restated_after(db: &Db, account: &str, period: &str, after: Position) -> Result<Vec<String>, ApiError> {
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

fn spend_in(usage: &[PeriodUsage], period: &str, currency: &str) -> i64 {
    usage
        .iter()
        .filter(|u| u.period == period && u.currency == currency)
        .map(|u| u.spend_micros)
        .sum()
}

/// The statement `period` of `account` would close with now: its spend in the billing
/// currency, adjustments for every earlier closed period whose spend changed since (with the
/// readings restated after it closed), and the credit the last statement carried out. The
/// `billing` read model must be up to date (callers wait for it).
pub async fn draft_statement(db: &Db, account: &str, plan: &Plan, period: &str) -> Result<Statement, ApiError> {
    let all_usage = usage(db, account, None).await?;
    let closed = closed_periods(db, account).await?;
    let mut adjustments = Vec::new();
    for earlier in closed.iter().filter(|c| c.period.as_str() < period) {
        let currency = &earlier.statement.currency;
        // What has been charged for it: its own spend and every later adjustment of it.
        let charged_spend = earlier.statement.spend_micros
            + closed
                .iter()
                .flat_map(|c| c.statement.adjustments.iter())
                .filter(|a| a.period == earlier.period)
                .map(|a| a.spend_delta_micros)
                .sum::<i64>();
        let now_spend = spend_in(&all_usage, &earlier.period, currency);
        if now_spend != charged_spend {
            let plan = &earlier.statement.plan;
            adjustments.push(Adjustment {
                period: earlier.period.clone(),
                spend_delta_micros: now_spend - charged_spend,
                fee_delta_micros: fee_micros(now_spend, plan) - fee_micros(charged_spend, plan),
                readings: restated_after(db, account, &earlier.period, earlier.closed_at).await?,
            });
        }
    }
    let carried_in = closed
        .iter()
        .rfind(|c| c.period.as_str() < period)
        .map_or(0, |c| c.statement.carried_out_micros);
    let foreign = all_usage
        .iter()
        .filter(|u| u.period == period && u.currency != plan.currency)
        .map(|u| ForeignSpend {
            currency: u.currency.clone(),
            spend_micros: u.spend_micros,
        })
        .collect();
    Ok(Statement::new(
        period,
        plan,
        spend_in(&all_usage, period, &plan.currency),
        adjustments,
        carried_in,
        foreign,
    ))
}

/// Closes `period` of `account`: refused before the period has ended in the account's time
/// zone, or when it is closed already.
pub async fn close_period(
    log: &EventLog,
    account: &str,
    period: &str,
    now: DateTime<Utc>,
    metadata: &EventMetadata,
) -> Result<(Statement, Option<Position>), ApiError> {
    let (state, _, _) = log.load_aggregate::<BillingAccount>(account).await?;
    let plan = state
        .plan()
        .ok_or_else(|| ApiError::NotFound("there is no such billing account".into()))?
        .clone();
    if !period_ended(period, &plan.time_zone, now)? {
        return Err(ApiError::Conflict(format!(
            "{period} has not ended yet in {}",
            plan.time_zone
        )));
    }
    let statement = draft_statement(log.db(), account, &plan, period).await?;
    let outcome = log
        .execute::<BillingPeriod>(
            &BillingPeriod::id(account, period),
            PeriodCommand::Close(statement.clone()),
            metadata,
        )
        .await
        .map_err(|e| match e {
            CommandError::Rejected(rule @ PeriodError::AlreadyClosed) => ApiError::Conflict(rule.to_string()),
            CommandError::Rejected(rule) => ApiError::Validation(rule.to_string()),
            CommandError::Log(log) => log.into(),
        })?;
    Ok((statement, outcome.position))
}

/// The meter event identifier of a period.
pub fn meter_identifier(account: &str, period: &str) -> String {
    format!("dynamoi-{account}-{period}")
}

/// One pass of the meter reporter: every closed period not yet reported (per the read model,
/// confirmed on the period's own stream) is sent to Stripe and recorded. Returns how many
/// were sent.
pub async fn report_due(log: &EventLog, stripe: &Stripe, event_name: &str) -> Result<usize, ApiError> {
    let sql = "SELECT p.account_id, p.period, a.stripe_customer_id, a.owner FROM billing_periods p \
               JOIN billing_accounts a ON a.account_id = p.account_id WHERE p.reported_id IS NULL \
               ORDER BY p.period, p.account_id";
    let due: Vec<(String, String, String, String)> =
        dispatch!(log.db(), Db, |pool| { sqlx::query_as(sql).fetch_all(pool).await? });
    let mut sent = 0;
    for (account, period, customer, owner) in due {
        let period_id = BillingPeriod::id(&account, &period);
        let (state, _, _) = log.load_aggregate::<BillingPeriod>(&period_id).await?;
        let Some(statement) = state.statement() else { continue };
        if state.reported().is_some() {
            continue;
        }
        let identifier = meter_identifier(&account, &period);
        if statement.reported_minor > 0 {
            let event = MeterEvent {
                event_name: event_name.to_string(),
                stripe_customer_id: customer,
                value: statement.reported_minor,
                identifier: identifier.clone(),
                timestamp: Utc::now(),
            };
            // P17: the customer id and the amount go to Stripe, recorded under the account's owner.
            crate::disclosure::record(
                log,
                &owner,
                Processor::Stripe,
                &[DataCategory::BillingIdentifiers, DataCategory::SpendFigures],
                Purpose::MeteredBilling,
                Some(&identifier),
                &EventMetadata {
                    actor: "system:meter-reporter".into(),
                    request_id: None,
                    causation_id: None,
                },
            )
            .await?;
            stripe.send_meter_event(&event).await?;
            sent += 1;
        }
        log.execute::<BillingPeriod>(
            &period_id,
            PeriodCommand::RecordReported { identifier },
            &EventMetadata {
                actor: "system:meter-reporter".into(),
                request_id: None,
                causation_id: None,
            },
        )
        .await
        .map_err(|e| match e {
            CommandError::Rejected(rule) => ApiError::Conflict(rule.to_string()),
            CommandError::Log(log) => log.into(),
        })?;
    }
    Ok(sent)
}

/// The meter reporter of `serve`: [`report_due`] every `interval`; a failure is logged (no
/// amounts, no customer) and retried at the next pass.
pub async fn run_reporter(
    log: EventLog,
    stripe: Arc<Stripe>,
    event_name: String,
    interval: Duration,
    stop: CancellationToken,
) {
    loop {
        match report_due(&log, &stripe, &event_name).await {
            Ok(sent) if sent > 0 => tracing::info!(sent, "meter events sent to Stripe"),
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "the meter reporter will retry"),
        }
        metrics::counter!("dynamoi_meter_reporter_passes_total").increment(1);
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

/// Closes, for every account, the last month that has ended in its time zone (once: an
/// account already closed is skipped). What the daily job of `serve` runs after the sync.
pub async fn close_ended_periods(log: &EventLog, now: DateTime<Utc>) -> Result<usize, ApiError> {
    let accounts: Vec<(String,)> = dispatch!(log.db(), Db, |pool| {
        sqlx::query_as("SELECT account_id FROM billing_accounts ORDER BY account_id")
            .fetch_all(pool)
            .await?
    });
    let today = now.date_naive();
    let last_month = period_of(today.with_day(1).unwrap_or(today) - chrono::Duration::days(1));
    let metadata = EventMetadata {
        actor: "system:billing-close".into(),
        request_id: None,
        causation_id: None,
    };
    let mut closed = 0;
    for (account,) in accounts {
        match close_period(log, &account, &last_month, now, &metadata).await {
            Ok(_) => closed += 1,
            // Closed already, or not ended yet in a time zone behind UTC: tomorrow.
            Err(ApiError::Conflict(reason)) => tracing::debug!(%account, %reason, "billing period not closed"),
            Err(other) => return Err(other),
        }
    }
    Ok(closed)
}

/// One line of a reconciliation.
#[derive(Clone, Debug, Serialize)]
pub struct Difference {
    pub account_id: String,
    pub period: String,
    pub what: String,
}

/// Compares, for `period`, what every account's usage is now with its closed statement and
/// with what was reported to Stripe; lists every difference (none means all agree).
pub async fn reconcile(db: &Db, period: &str) -> Result<Vec<Difference>, ApiError> {
    parse_period(period)?;
    let accounts: Vec<(String, String)> = dispatch!(db, Db, |pool| {
        sqlx::query_as("SELECT account_id, currency FROM billing_accounts ORDER BY account_id")
            .fetch_all(pool)
            .await?
    });
    let mut differences = Vec::new();
    for (account, currency) in accounts {
        let now = usage(db, &account, Some(period)).await?;
        let closed = closed_periods(db, &account).await?;
        let mut note = |what: String| {
            differences.push(Difference {
                account_id: account.clone(),
                period: period.to_string(),
                what,
            })
        };
        let Some(this) = closed.iter().find(|c| c.period == period) else {
            if now.iter().any(|u| u.spend_micros != 0) {
                note("the period has usage but is not closed".into());
            }
            continue;
        };
        let adjusted = this.statement.spend_micros
            + closed
                .iter()
                .flat_map(|c| c.statement.adjustments.iter())
                .filter(|a| a.period == period)
                .map(|a| a.spend_delta_micros)
                .sum::<i64>();
        let current = spend_in(&now, period, &currency);
        if current != adjusted {
            note(format!(
                "usage is {current} micros {currency} but {adjusted} were charged (closed {} plus adjustments): \
                 the next statement will adjust {}",
                this.statement.spend_micros,
                current - adjusted
            ));
        }
        match (&this.reported_identifier, this.reported_minor) {
            (None, _) => note(format!(
                "closed with {} {currency} (minor units) to report, not reported to Stripe yet",
                this.statement.reported_minor
            )),
            (Some(_), Some(value)) if value != this.statement.reported_minor => note(format!(
                "reported {value} but the statement says {}",
                this.statement.reported_minor
            )),
            _ => {}
        }
        for foreign in &this.statement.foreign_spend {
            note(format!(
                "{} micros {} of spend in another currency, not billed",
                foreign.spend_micros, foreign.currency
            ));
        }
    }
    Ok(differences)
}

/// What a past-due or reactivated subscription does to the campaigns of the account's
/// artists (from the dashboards read model): how many moved, and the position of the last.
pub async fn hold_or_release_campaigns(
    log: &EventLog,
    artists: &[String],
    hold: bool,
    metadata: &EventMetadata,
) -> Result<(usize, Option<Position>), ApiError> {
    let mut moved = 0;
    let mut last = None;
    for artist in artists {
        let ids: Vec<(String,)> = dispatch!(log.db(), Db, |pool| {
            sqlx::query_as("SELECT campaign_id FROM campaigns WHERE artist_id = $1")
                .bind(artist)
                .fetch_all(pool)
                .await?
        });
        for (campaign,) in ids {
            let command = if hold {
                CampaignCommand::PauseForSubscription
            } else {
                CampaignCommand::ResumeAfterSubscription
            };
            let outcome = log
                .execute::<Campaign>(&campaign, command, metadata)
                .await
                .map_err(|e| match e {
                    CommandError::Rejected(rule) => ApiError::Conflict(rule.to_string()),
                    CommandError::Log(log) => log.into(),
                })?;
            moved += usize::from(!outcome.events.is_empty());
            last = outcome.position.or(last);
        }
    }
    Ok((moved, last))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_period_ends_at_midnight_in_the_accounts_time_zone() {
        // Karachi is UTC+5: November ends at 2026-11-30T19:00:00Z.
        let before: DateTime<Utc> = "2026-11-30T18:59:59Z".parse().unwrap();
        let after: DateTime<Utc> = "2026-11-30T19:00:00Z".parse().unwrap();
        assert!(!period_ended("2026-11", "Asia/Karachi", before).unwrap());
        assert!(period_ended("2026-11", "Asia/Karachi", after).unwrap());
        assert!(period_ended("2026-11", "Mars/Olympus", after).is_err());
        assert!(parse_period("2026-13").is_err());
        assert!(parse_period("2026-1").is_err());
        assert_eq!(period_of("2026-02-28".parse().unwrap()), "2026-02");
    }
}
