//! Retention (P24, P25): the rules per data category, in one place, and the scheduled job that applies them.
//!
//! [`RULES`] says, for every category of data the service keeps, what is kept, for how long,
//! on which basis, and what happens when the time is up. [`apply`] carries out every rule once
//! per UTC day (claimed in `scheduled_runs`, so one instance runs it) and records what it did
//! as the `RetentionApplied` event of that day's [`RetentionRun`] (`retention_run/YYYY-MM-DD`):
//! per rule, how many records it looked at and the ids (never personal data) it acted on.
//! `serve` runs it in the daily job after the billing close; `dynamoi retention run` runs it
//! now. Every rule is judged on the state, not on what an earlier run did, so a record that
//! failed (or a day that was missed) is handled by the next run.

use crate::privacy::Services;
use crate::routes::artists::invitee_key;
use crate::routes::connections::connection_key;
use crate::ApiError;
use chrono::{DateTime, Duration, NaiveDate, SecondsFormat, Utc};
use domain::artist::{ArtistCommand, ArtistEvent, ArtistProfile};
use domain::connection::{Connection, ConnectionDetails, ConnectionEvent};
use domain::privacy::DataSubject;
use domain::retention::{RetentionCommand, RetentionRun, RuleOutcome};
use domain::sealed::Sealed;
use domain::Aggregate;
use eventlog::{dispatch, Db, EventMetadata};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use vault::SealedValue;

/// The job's name in `scheduled_runs`.
pub const JOB: &str = "retention";
/// Who the job's events are recorded as.
pub const ACTOR: &str = "system:retention";
/// The setting that says how long a closed account is kept.
pub const CLOSED_ACCOUNT_DAYS_SETTING: &str = "DYNAMOI_RETENTION_CLOSED_ACCOUNT_DAYS";
/// Streams loaded per query.
const LOAD_BATCH: usize = 500;

/// Rule codes (the data categories).
pub const INVITATION_EMAIL: &str = "invitation_email";
pub const CONNECTION_TOKEN: &str = "connection_token";
pub const CLOSED_ACCOUNT: &str = "closed_account";
pub const BILLING_RECORDS: &str = "billing_records";
pub const ANONYMOUS_AGGREGATES: &str = "anonymous_aggregates";

/// How long a category is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum RetentionPeriod {
    /// Days given by a setting (its variable name).
    Setting(&'static str),
    /// A fixed period or condition, in words.
    Fixed(&'static str),
}

/// What the job does when a record's time is up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RetentionAction {
    /// Record the artist's `Expire` for the invitation and destroy the invitee's key.
    ExpireInvitation,
    /// Destroy the connection's key (crypto-shredding its tokens).
    DestroyConnectionKey,
    /// Open an erasure request for the person (`privacy::open_system_erasure`).
    OpenErasure,
    /// Nothing: the rule documents why the data is kept.
    None,
}

/// One retention rule: a data category, what is kept, how long, why, and what happens then.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct RetentionRule {
    pub category: &'static str,
    pub kept: &'static str,
    pub period: RetentionPeriod,
    pub basis: &'static str,
    pub action: RetentionAction,
}

/// Every retention rule. The README's "Retention" table is this list.
pub const RULES: &[RetentionRule] = &[
    RetentionRule {
        category: INVITATION_EMAIL,
        kept: "an invitee's email address, sealed under `invitee.<invitation id>`",
        period: RetentionPeriod::Fixed("until the invitation is accepted, revoked or expires (7 days)"),
        basis: "legitimate interest: delivering the invitation, and nothing else (P13)",
        action: RetentionAction::ExpireInvitation,
    },
    RetentionRule {
        category: CONNECTION_TOKEN,
        kept: "a platform connection's access or refresh token, sealed under the connection's key",
        period: RetentionPeriod::Fixed("while the connection is live; gone on disconnect or invalidation"),
        basis: "contract: the person connected the platform to run their campaigns (P9, P23, P25)",
        action: RetentionAction::DestroyConnectionKey,
    },
    RetentionRule {
        category: CLOSED_ACCOUNT,
        kept: "a closed account's profile and everything sealed under the person's keys",
        period: RetentionPeriod::Setting(CLOSED_ACCOUNT_DAYS_SETTING),
        basis: "contract while the account is active; after closing, a grace period for disputes (P24)",
        action: RetentionAction::OpenErasure,
    },
    RetentionRule {
        category: BILLING_RECORDS,
        kept: "billing accounts, statements and reported usage, under pseudonymous ids (no card numbers)",
        period: RetentionPeriod::Fixed("as long as tax and accounting law requires"),
        basis: "legal obligation (P24)",
        action: RetentionAction::None,
    },
    RetentionRule {
        category: ANONYMOUS_AGGREGATES,
        kept: "platform-wide daily sums (`platform_daily`), which hold no personal data",
        period: RetentionPeriod::Fixed("indefinitely; they survive erasure"),
        basis: "aggregated, anonymous analytics (P26)",
        action: RetentionAction::None,
    },
];

/// The settings the job reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetentionSettings {
    /// Days a closed account is kept before its erasure is opened.
    pub closed_account_days: u32,
}

impl From<&crate::Settings> for RetentionSettings {
    fn from(settings: &crate::Settings) -> Self {
        RetentionSettings {
            closed_account_days: settings.retention_closed_account_days,
        }
    }
}

/// What a run did.
#[derive(Clone, Debug, Serialize)]
pub struct RetentionReport {
    /// The run's day (UTC): the id of its `retention_run` stream.
    pub day: NaiveDate,
    /// `true` when this day's run had already been claimed: nothing was done.
    pub already_ran: bool,
    /// One outcome per rule, in the order of [`RULES`].
    pub rules: Vec<RuleOutcome>,
    /// The erasure request opened (or reused) for each closed account, by person id.
    pub erasure_requests: BTreeMap<String, String>,
    /// Consistency token of the `RetentionApplied` event.
    pub position: Option<String>,
}

impl RetentionReport {
    /// One line for logs and `scheduled_runs` (counts only).
    pub fn summary(&self) -> String {
        if self.already_ran {
            return format!("retention for {} already ran", self.day);
        }
        let rules: Vec<String> = self
            .rules
            .iter()
            .map(|r| {
                format!(
                    "{}: {} examined, {} acted on, {} failed",
                    r.rule, r.examined, r.affected, r.failed
                )
            })
            .collect();
        rules.join("; ")
    }

    /// The outcome of rule `category`.
    pub fn rule(&self, category: &str) -> Option<&RuleOutcome> {
        self.rules.iter().find(|r| r.rule == category)
    }
}

/// Applies every rule as of `now`, once per UTC day, and records what it did.
pub async fn apply(
    services: &Services<'_>,
    now: DateTime<Utc>,
    settings: &RetentionSettings,
) -> Result<RetentionReport, ApiError> {
    let day = now.date_naive();
    let run_key = day.to_string();
    let db = services.log.db();
    if !eventlog::scheduled::claim_run(db, JOB, &run_key).await? {
        return Ok(RetentionReport {
            day,
            already_ran: true,
            rules: Vec::new(),
            erasure_requests: BTreeMap::new(),
            position: None,
        });
    }
    let result = run(services, now, settings).await;
    let outcome = match &result {
        Ok(report) => report.summary(),
        Err(error) => format!("failed: {error}"),
    };
    eventlog::scheduled::finish_run(db, JOB, &run_key, &outcome).await?;
    result
}

fn metadata() -> EventMetadata {
    EventMetadata {
        actor: ACTOR.into(),
        request_id: None,
        causation_id: None,
    }
}

async fn run(
    services: &Services<'_>,
    now: DateTime<Utc>,
    settings: &RetentionSettings,
) -> Result<RetentionReport, ApiError> {
    let mut erasure_requests = BTreeMap::new();
    let mut rules = Vec::with_capacity(RULES.len());
    for rule in RULES {
        let mut outcome = RuleOutcome {
            rule: rule.category.to_string(),
            examined: 0,
            affected: 0,
            failed: 0,
            ids: Vec::new(),
        };
        match rule.action {
            RetentionAction::ExpireInvitation => expire_invitations(services, now, &mut outcome).await?,
            RetentionAction::DestroyConnectionKey => destroy_dead_connection_keys(services, &mut outcome).await?,
            RetentionAction::OpenErasure => {
                let cutoff = now - Duration::days(i64::from(settings.closed_account_days));
                erase_closed_accounts(services, cutoff, &mut outcome, &mut erasure_requests).await?
            }
            RetentionAction::None => {}
        }
        outcome.affected = outcome.ids.len() as u64;
        rules.push(outcome);
    }
    let day = now.date_naive();
    let recorded = services
        .log
        .execute::<RetentionRun>(
            &day.to_string(),
            RetentionCommand::Record {
                at: now,
                rules: rules.clone(),
            },
            &metadata(),
        )
        .await
        .map_err(|e| match e {
            eventlog::CommandError::Rejected(rule) => {
                tracing::error!(error = %rule, "the retention record was refused");
                ApiError::Internal
            }
            eventlog::CommandError::Log(log) => log.into(),
        })?;
    Ok(RetentionReport {
        day,
        already_ran: false,
        rules,
        erasure_requests,
        position: recorded.position.map(|p| p.to_string()),
    })
}

/// Ids from a read-model query with one text column.
async fn ids(db: &Db, sql: &str, bind: Option<&str>) -> Result<Vec<String>, ApiError> {
    Ok(dispatch!(db, Db, |pool| {
        let mut query = sqlx::query_scalar::<_, String>(sql);
        if let Some(value) = bind {
            query = query.bind(value);
        }
        query.fetch_all(pool).await?
    }))
}

/// Open invitations whose expiry has passed: the invitee's key is destroyed first (so a crash
/// after it leaves the invitation open and the next run finishes it), then `Expire` recorded.
async fn expire_invitations(
    services: &Services<'_>,
    now: DateTime<Utc>,
    outcome: &mut RuleOutcome,
) -> Result<(), ApiError> {
    let artists = ids(
        services.log.db(),
        "SELECT artist_id FROM artists ORDER BY artist_id",
        None,
    )
    .await?;
    for batch in artists.chunks(LOAD_BATCH) {
        // Per artist, its invitations in order: id → (expiry, still open).
        let mut invitations: BTreeMap<String, BTreeMap<String, (DateTime<Utc>, bool)>> = BTreeMap::new();
        for stored in services.log.load_many(ArtistProfile::TYPE, batch).await? {
            let event = stored.decode::<ArtistEvent>().map_err(|_| ApiError::Internal)?;
            let of_artist = invitations.entry(stored.aggregate_id.clone()).or_default();
            match event {
                ArtistEvent::MemberInvited {
                    invitation_id,
                    expires_at,
                    ..
                } => {
                    of_artist.insert(invitation_id, (expires_at, true));
                }
                ArtistEvent::InvitationAccepted { invitation_id, .. }
                | ArtistEvent::InvitationRevoked { invitation_id }
                | ArtistEvent::InvitationExpired { invitation_id } => {
                    if let Some(invitation) = of_artist.get_mut(&invitation_id) {
                        invitation.1 = false;
                    }
                }
                _ => {}
            }
        }
        for (artist, of_artist) in invitations {
            for (invitation_id, (expires_at, open)) in of_artist {
                if !open {
                    continue;
                }
                outcome.examined += 1;
                if now < expires_at {
                    continue;
                }
                let done = async {
                    services
                        .vault
                        .destroy(&invitee_key(&invitation_id), "retention_invitation_expired")
                        .await?;
                    services
                        .log
                        .execute::<ArtistProfile>(
                            &artist,
                            ArtistCommand::Expire {
                                invitation_id: invitation_id.clone(),
                                now,
                            },
                            &metadata(),
                        )
                        .await
                        .map_err(|e| match e {
                            eventlog::CommandError::Rejected(rule) => ApiError::Conflict(rule.to_string()),
                            eventlog::CommandError::Log(log) => log.into(),
                        })?;
                    Ok::<_, ApiError>(())
                }
                .await;
                match done {
                    Ok(()) => outcome.ids.push(invitation_id),
                    Err(error) => {
                        outcome.failed += 1;
                        tracing::warn!(%artist, %invitation_id, %error, "could not expire an invitation; the next run tries again");
                    }
                }
            }
        }
    }
    Ok(())
}

/// The sealed token a connection's details carry, with its field name.
fn token_of(details: &ConnectionDetails) -> Option<(&'static str, &Sealed)> {
    match details {
        ConnectionDetails::Spotify { .. } => None,
        ConnectionDetails::Meta { access_token, .. } => Some(("access_token", access_token)),
        ConnectionDetails::Youtube { refresh_token, .. } | ConnectionDetails::GoogleAds { refresh_token, .. } => {
            Some(("refresh_token", refresh_token))
        }
    }
}

/// Disconnected or invalidated connections (per the read model, confirmed on their own
/// streams): a key that still opens their last token (its destroy was missed, e.g. by a crash
/// between the event and the destroy) is destroyed now. Idempotent.
async fn destroy_dead_connection_keys(services: &Services<'_>, outcome: &mut RuleOutcome) -> Result<(), ApiError> {
    let candidates = ids(
        services.log.db(),
        "SELECT connection_id FROM connections WHERE status <> 'connected' ORDER BY connection_id",
        None,
    )
    .await?;
    for batch in candidates.chunks(LOAD_BATCH) {
        // Per connection: the details of its last `Connected`, and whether it ended since.
        let mut state: HashMap<String, (Option<ConnectionDetails>, bool)> = HashMap::new();
        for stored in services.log.load_many(Connection::TYPE, batch).await? {
            let event = stored.decode::<ConnectionEvent>().map_err(|_| ApiError::Internal)?;
            let entry = state.entry(stored.aggregate_id.clone()).or_insert((None, false));
            match event {
                ConnectionEvent::Connected { details, .. } => *entry = (Some(details), false),
                ConnectionEvent::Disconnected { .. } | ConnectionEvent::ConnectionInvalidated { .. } => entry.1 = true,
            }
        }
        for connection_id in batch {
            let Some((details, ended)) = state.get(connection_id) else {
                continue;
            };
            if !ended {
                continue; // reconnected since the read model looked
            }
            outcome.examined += 1;
            let Some((field, sealed)) = details.as_ref().and_then(token_of) else {
                continue; // nothing sealed (Spotify)
            };
            let done = async {
                let sealed: SealedValue = serde_json::from_value(sealed.0.clone()).map_err(|_| ApiError::Internal)?;
                let key = connection_key(connection_id);
                let alive = !services.vault.open(&key, field, &sealed).await?.is_erased();
                if alive {
                    services.vault.destroy(&key, "retention_dead_connection").await?;
                }
                Ok::<_, ApiError>(alive)
            }
            .await;
            match done {
                Ok(true) => outcome.ids.push(connection_id.clone()),
                Ok(false) => {}
                Err(error) => {
                    outcome.failed += 1;
                    tracing::warn!(%connection_id, %error, "could not check a dead connection's key; the next run tries again");
                }
            }
        }
    }
    Ok(())
}

/// Accounts closed at or before `cutoff` (not a child's: those are erased at once) whose person
/// was not erased yet (their [`DataSubject`] stream): an erasure request is opened, or the
/// unfinished one reused, and carried out (`privacy::open_system_erasure`).
async fn erase_closed_accounts(
    services: &Services<'_>,
    cutoff: DateTime<Utc>,
    outcome: &mut RuleOutcome,
    requests: &mut BTreeMap<String, String>,
) -> Result<(), ApiError> {
    let sql = "SELECT person_id FROM accounts \
               WHERE closed_at IS NOT NULL AND closed_at <= $1 AND NOT child ORDER BY person_id";
    let cutoff = cutoff.to_rfc3339_opts(SecondsFormat::Micros, true);
    for person_id in ids(services.log.db(), sql, Some(&cutoff)).await? {
        outcome.examined += 1;
        let done = async {
            let (subject, _, _) = services.log.load_aggregate::<DataSubject>(&person_id).await?;
            if subject.is_erased() {
                return Ok(None);
            }
            crate::privacy::open_system_erasure(services, &person_id, "closed_account_retention")
                .await
                .map(Some)
        }
        .await;
        match done {
            Ok(Some(request_id)) => {
                requests.insert(person_id.clone(), request_id);
                outcome.ids.push(person_id);
            }
            Ok(None) => {}
            Err(error) => {
                outcome.failed += 1;
                tracing::warn!(%person_id, %error, "could not open the erasure of a closed account; the next run tries again");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_is_complete_and_named_once() {
        let mut seen = std::collections::BTreeSet::new();
        for rule in RULES {
            assert!(seen.insert(rule.category), "{} twice", rule.category);
            assert!(!rule.kept.is_empty() && !rule.basis.is_empty(), "{}", rule.category);
            if let RetentionPeriod::Setting(name) = rule.period {
                assert!(name.starts_with("DYNAMOI_"), "{name}");
            }
        }
        for required in [
            INVITATION_EMAIL,
            CONNECTION_TOKEN,
            CLOSED_ACCOUNT,
            BILLING_RECORDS,
            ANONYMOUS_AGGREGATES,
        ] {
            assert!(seen.contains(required), "{required}");
        }
        let billing = RULES.iter().find(|r| r.category == BILLING_RECORDS).unwrap();
        assert!(billing.basis.starts_with("legal obligation") && billing.action == RetentionAction::None);
    }

    #[test]
    fn the_closed_account_setting_is_the_one_settings_read() {
        let settings = crate::Settings::from_lookup(|k| (k == CLOSED_ACCOUNT_DAYS_SETTING).then(|| "45".to_string()))
            .expect("valid settings");
        assert_eq!(RetentionSettings::from(&settings).closed_account_days, 45);
    }

    #[test]
    fn the_readme_lists_every_rule() {
        let readme = include_str!("../../README.md");
        for rule in RULES {
            assert!(
                readme.contains(&format!("`{}`", rule.category)),
                "README.md's Retention table misses `{}`",
                rule.category
            );
        }
    }
}
