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

use crate::artists::invitee_key;
use crate::connections::connection_key;
use crate::{App, AppError};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use domain::artist::{ArtistCommand, ArtistEvent, ArtistProfile};
use domain::connection::{Connection, ConnectionDetails, ConnectionEvent};
use domain::privacy::DataSubject;
use domain::retention::{RetentionCommand, RetentionRun, RuleOutcome};
use domain::sealed::Sealed;
use domain::Aggregate;
use eventlog::workflow::Attempt;
use eventlog::EventMetadata;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use vault::SealedValue;

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

/// What a run did.
#[derive(Clone, Debug, Serialize)]
pub struct RetentionReport {
    /// The run's day (UTC): the id of its `retention_run` stream.
    pub day: NaiveDate,
    /// One outcome per rule, in the order of [`RULES`].
    pub rules: Vec<RuleOutcome>,
    /// The erasure request opened (or reused) for each closed account, by person id.
    pub erasure_requests: BTreeMap<String, String>,
    /// Consistency token of the `RetentionApplied` event.
    pub position: Option<String>,
    /// Idempotency-Key records past their 24 hours, deleted by this run.
    pub idempotency_keys_purged: u64,
}

impl RetentionReport {
    /// One line for logs and `scheduled_runs` (counts only).
    pub fn summary(&self) -> String {
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
        format!(
            "{}; {} expired idempotency keys purged",
            rules.join("; "),
            self.idempotency_keys_purged
        )
    }

    /// The outcome of rule `category`.
    pub fn rule(&self, category: &str) -> Option<&RuleOutcome> {
        self.rules.iter().find(|r| r.rule == category)
    }
}

/// Applies every rule as of `now` and records what it did as the day's `RetentionApplied`.
/// Run once a day by the `retention` job ([`crate::jobs`]), which claims the day.
/// It also purges the Idempotency-Key records that expired
/// (`eventlog::idempotency::KEY_TTL_SECONDS`, 24 hours after their claim).
pub async fn apply(app: &App, now: DateTime<Utc>) -> Result<RetentionReport, AppError> {
    // Purged first: the day's `RetentionApplied` event stays the run's last act.
    let purged = eventlog::idempotency::purge_expired(app.log.db(), now).await?;
    let mut report = run(app, now, app.config.retention_closed_account_days).await?;
    report.idempotency_keys_purged = purged;
    Ok(report)
}

/// The run recorded for `day`, if any: when it ran and what each rule did (what `dynamoi
/// retention run` shows when `serve`'s daily job ran the day already).
pub async fn recorded_run(app: &App, day: NaiveDate) -> Result<Option<(DateTime<Utc>, Vec<RuleOutcome>)>, AppError> {
    let events = app.log.load(RetentionRun::TYPE, &day.to_string()).await?;
    let Some(stored) = events.first() else {
        return Ok(None);
    };
    let event = stored.decode::<domain::retention::RetentionEvent>().map_err(|_| {
        tracing::error!(day = %day, "a retention record cannot be decoded");
        AppError::Internal
    })?;
    let domain::retention::RetentionEvent::RetentionApplied { at, rules } = event;
    Ok(Some((at, rules)))
}

fn metadata() -> EventMetadata {
    EventMetadata {
        actor: ACTOR.into(),
        request_id: None,
        causation_id: None,
    }
}

async fn run(app: &App, now: DateTime<Utc>, closed_account_days: u32) -> Result<RetentionReport, AppError> {
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
            RetentionAction::ExpireInvitation => expire_invitations(app, now, &mut outcome).await?,
            RetentionAction::DestroyConnectionKey => destroy_dead_connection_keys(app, now, &mut outcome).await?,
            RetentionAction::OpenErasure => {
                let cutoff = now - Duration::days(i64::from(closed_account_days));
                erase_closed_accounts(app, now, cutoff, &mut outcome, &mut erasure_requests).await?
            }
            RetentionAction::None => {}
        }
        outcome.affected = outcome.ids.len() as u64;
        rules.push(outcome);
    }
    let day = now.date_naive();
    let recorded = app
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
                AppError::Internal
            }
            eventlog::CommandError::Log(log) => log.into(),
        })?;
    Ok(RetentionReport {
        day,
        rules,
        erasure_requests,
        position: recorded.position.map(|p| p.to_string()),
        idempotency_keys_purged: 0,
    })
}

/// A retention action: one item of the `retention_actions` workflow, keyed by the day and what
/// it acts on, run at once by the job and retried (or parked) by the workflow when it fails.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
enum Action {
    /// Destroy the invitee's key, then record the artist's `Expire` (a crash after the destroy
    /// leaves the invitation open, and the retry finishes it).
    ExpireInvitation {
        artist: String,
        invitation_id: String,
        now: DateTime<Utc>,
    },
    /// Destroy a dead connection's key if it still opens its token.
    DestroyConnectionKey { connection_id: String },
    /// Open (or reuse) the erasure of a closed account and carry it out.
    EraseClosedAccount { person_id: String },
}

impl Action {
    fn key(&self, day: NaiveDate) -> String {
        match self {
            Action::ExpireInvitation {
                artist, invitation_id, ..
            } => format!("{day}:{INVITATION_EMAIL}:{artist}:{invitation_id}"),
            Action::DestroyConnectionKey { connection_id } => format!("{day}:{CONNECTION_TOKEN}:{connection_id}"),
            Action::EraseClosedAccount { person_id } => format!("{day}:{CLOSED_ACCOUNT}:{person_id}"),
        }
    }
}

/// The `retention_actions` workflow: what the retention job decided to do, each action on its
/// own (see [`Action`]); every action is idempotent and judged again on the state when retried.
pub struct RetentionActions;

#[async_trait::async_trait]
impl crate::workflows::Workflow for RetentionActions {
    fn name(&self) -> &'static str {
        "retention_actions"
    }

    /// Its items come from the retention job, not from the feed.
    fn select(&self, _event: &eventlog::StoredEvent) -> Vec<eventlog::workflow::NewItem> {
        Vec::new()
    }

    async fn handle(&self, app: &App, item: &eventlog::workflow::Item) -> Result<String, String> {
        let action: Action = crate::workflows::payload(item)?;
        carry_out(app, &action).await.map_err(|e| e.to_string())
    }
}

/// Carries out one action; the outcome names what was done (ids only).
async fn carry_out(app: &App, action: &Action) -> Result<String, AppError> {
    match action {
        Action::ExpireInvitation {
            artist,
            invitation_id,
            now,
        } => {
            app.vault
                .destroy(&invitee_key(invitation_id), "retention_invitation_expired")
                .await?;
            match app
                .log
                .execute::<ArtistProfile>(
                    artist,
                    ArtistCommand::Expire {
                        invitation_id: invitation_id.clone(),
                        now: *now,
                    },
                    &metadata(),
                )
                .await
            {
                Ok(_) => Ok(format!("invitation {invitation_id} expired")),
                Err(eventlog::CommandError::Rejected(rule)) => Err(AppError::Conflict(rule.to_string())),
                Err(eventlog::CommandError::Log(log)) => Err(log.into()),
            }
        }
        Action::DestroyConnectionKey { connection_id } => {
            let mut details = None;
            let mut ended = false;
            for stored in app.log.load(Connection::TYPE, connection_id).await? {
                match stored
                    .decode::<ConnectionEvent>()
                    .map_err(|_| crate::error::corrupt("a connection event"))?
                {
                    ConnectionEvent::Connected { details: d, .. } => (details, ended) = (Some(d), false),
                    ConnectionEvent::Disconnected { .. } | ConnectionEvent::ConnectionInvalidated { .. } => {
                        ended = true
                    }
                }
            }
            if !ended {
                return Ok(format!("{connection_id} is connected again: nothing to destroy"));
            }
            let Some((field, sealed)) = details.as_ref().and_then(token_of) else {
                return Ok(format!("{connection_id} holds no token"));
            };
            let sealed: SealedValue =
                serde_json::from_value(sealed.0.clone()).map_err(|_| crate::error::corrupt("a sealed token"))?;
            let key = connection_key(connection_id);
            if app.vault.open(&key, field, &sealed).await?.is_erased() {
                return Ok(format!("{connection_id}'s key was destroyed already"));
            }
            app.vault.destroy(&key, "retention_dead_connection").await?;
            Ok(format!("{connection_id}'s key destroyed"))
        }
        Action::EraseClosedAccount { person_id } => {
            let (subject, _, _) = app.log.load_aggregate::<DataSubject>(person_id).await?;
            if subject.is_erased() {
                return Ok(format!("{person_id} was erased already"));
            }
            let request = crate::privacy::open_system_erasure(app, person_id, "closed_account_retention").await?;
            Ok(format!("erasure {request} of {person_id}"))
        }
    }
}

/// Runs one action at once under its workflow item; records it in `outcome` as acted on, or as
/// failed (the workflow retries it, and parks it when it keeps failing).
async fn act(
    app: &App,
    now: DateTime<Utc>,
    action: Action,
    id: String,
    outcome: &mut RuleOutcome,
) -> Result<(), AppError> {
    let item = crate::workflows::item(action.key(now.date_naive()), &action);
    match crate::workflows::run_now(app, &RetentionActions, item, &app.config.workflows).await? {
        Some(Attempt::Done { .. }) => outcome.ids.push(id),
        Some(Attempt::Retry { error, .. } | Attempt::Park { error }) => {
            outcome.failed += 1;
            tracing::warn!(%id, %error, "a retention action failed; the workflow retries it");
        }
        // Done earlier today, or being retried elsewhere.
        None => {}
    }
    Ok(())
}

/// Open invitations whose expiry has passed are expired.
async fn expire_invitations(app: &App, now: DateTime<Utc>, outcome: &mut RuleOutcome) -> Result<(), AppError> {
    let artists = projections::read_models::artist_access::artist_ids(app.log.db()).await?;
    for batch in artists.chunks(LOAD_BATCH) {
        // Per artist, its invitations in order: id → (expiry, still open).
        let mut invitations: BTreeMap<String, BTreeMap<String, (DateTime<Utc>, bool)>> = BTreeMap::new();
        for stored in app.log.load_many(ArtistProfile::TYPE, batch).await? {
            let event = stored
                .decode::<ArtistEvent>()
                .map_err(|_| crate::error::corrupt("an artist event"))?;
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
                let action = Action::ExpireInvitation {
                    artist: artist.clone(),
                    invitation_id: invitation_id.clone(),
                    now,
                };
                act(app, now, action, invitation_id, outcome).await?;
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
async fn destroy_dead_connection_keys(
    app: &App,
    now: DateTime<Utc>,
    outcome: &mut RuleOutcome,
) -> Result<(), AppError> {
    let candidates = projections::read_models::connections::ended_connection_ids(app.log.db()).await?;
    for batch in candidates.chunks(LOAD_BATCH) {
        // Per connection: the details of its last `Connected`, and whether it ended since.
        let mut state: HashMap<String, (Option<ConnectionDetails>, bool)> = HashMap::new();
        for stored in app.log.load_many(Connection::TYPE, batch).await? {
            let event = stored
                .decode::<ConnectionEvent>()
                .map_err(|_| crate::error::corrupt("a connection event"))?;
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
            let alive = async {
                let sealed: SealedValue =
                    serde_json::from_value(sealed.0.clone()).map_err(|_| crate::error::corrupt("a sealed token"))?;
                Ok::<_, AppError>(
                    !app.vault
                        .open(&connection_key(connection_id), field, &sealed)
                        .await?
                        .is_erased(),
                )
            }
            .await;
            match alive {
                Ok(false) => {}
                Ok(true) => {
                    let action = Action::DestroyConnectionKey {
                        connection_id: connection_id.clone(),
                    };
                    act(app, now, action, connection_id.clone(), outcome).await?;
                }
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
    app: &App,
    now: DateTime<Utc>,
    cutoff: DateTime<Utc>,
    outcome: &mut RuleOutcome,
    requests: &mut BTreeMap<String, String>,
) -> Result<(), AppError> {
    for person_id in projections::read_models::accounts::closed_not_child(app.log.db(), cutoff).await? {
        outcome.examined += 1;
        let (subject, _, _) = app.log.load_aggregate::<DataSubject>(&person_id).await?;
        if subject.is_erased() {
            continue;
        }
        let action = Action::EraseClosedAccount {
            person_id: person_id.clone(),
        };
        act(app, now, action, person_id.clone(), outcome).await?;
        if outcome.ids.last() == Some(&person_id) {
            if let Some(request) =
                projections::read_models::privacy_requests::unfinished_erasure(app.log.db(), &person_id)
                    .await?
                    .or(app
                        .log
                        .load_aggregate::<DataSubject>(&person_id)
                        .await?
                        .0
                        .erased_by()
                        .map(str::to_string))
            {
                requests.insert(person_id, request);
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
