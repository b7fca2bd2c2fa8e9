//! Data-subject requests carried out: each step through its system, the access export, erasure and its certificate (P22, P24, P26, P27, P30).
//!
//! A request ([`domain::privacy::PrivacyRequest`]) names its steps when it opens, in the order
//! they run ([`plan_steps`]); [`run`] starts the next step that is not done, carries it out,
//! records its outcome, and goes on until every step is done (then completes the request,
//! with the erasure certificate for an erase) or one fails (the request is `failed`; the next
//! [`run`], by support's retry or the daily job, starts again at that step, never at a step done).
//!
//! Steps per kind:
//! - **access**: `event_log` (the person's streams, decrypted), `read_models` (their rows),
//!   `disclosures` (what went to which processor): counted as evidence; the document itself is
//!   built on demand by [`export`] and never stored (it is plaintext personal data).
//! - **rectify**: `event_log`: the account's `Rectify` with the values the request carries
//!   (sealed under the person's key, like the account's own).
//! - **erase**: one `platform:<connection id>` per connection whose token is still held
//!   (revoked at the platform, then the connection recorded as disconnected), `posthog`
//!   (the person's analytics deleted), `resend` (their contact deleted), `stripe` (each billing
//!   customer of theirs anonymised; the records stay, pseudonymised, under the legal
//!   obligation), `vault` (person, purpose and connection keys destroyed: crypto-shredding),
//!   `read_models` (every sealed value of theirs, in events and read-model rows, checked to be
//!   unreadable). The steps that need a plaintext value (a token, the email) run before `vault`.
//!   A processor not configured holds nothing of ours: its step is `not_applicable`.
//! - **restrict** / **lift_restriction**: `processing`, the person's [`DataSubject`] stream.
//!
//! Every call to a processor is a disclosure (P17) and is recorded first ([`crate::disclosure`]).

use crate::disclosure;
use crate::platforms::Platforms;
use crate::routes::connections::connection_key;
use crate::ApiError;
use chrono::{DateTime, SecondsFormat, Utc};
use domain::account::{Account, AccountCommand, AccountEvent};
use domain::connection::{Connection, ConnectionCommand, ConnectionDetails, Platform};
use domain::disclosure::{DataCategory, Processor, Purpose};
use domain::privacy::{
    CertifiedStep, DataSubject, ErasureCertificate, Kept, Opener, PrivacyCommand, PrivacyError, PrivacyEvent,
    PrivacyRequest, Rectification, RequestKind, RequestState, StepOutcome, SubjectCommand, SubjectError,
};
use domain::sealed::Sealed;
use domain::Aggregate;
use eventlog::{dispatch, CommandError, Db, EventLog, EventMetadata, StoredEvent};
use serde_json::{json, Map, Value};
use sqlx::{Column, Row};
use vault::{KeyRef, Opened, SealedValue, Vault};

/// What carrying out a request needs.
pub struct Services<'a> {
    pub log: &'a EventLog,
    pub vault: &'a Vault,
    pub platforms: &'a Platforms,
}

impl<'a> Services<'a> {
    /// The running service's log, vault and platform clients.
    pub fn of(state: &'a crate::routes::AppState) -> Services<'a> {
        Services {
            log: &state.log,
            vault: &state.vault,
            platforms: &state.platforms,
        }
    }
}

/// Step names.
pub const STEP_EVENT_LOG: &str = "event_log";
pub const STEP_READ_MODELS: &str = "read_models";
pub const STEP_DISCLOSURES: &str = "disclosures";
pub const STEP_PROCESSING: &str = "processing";
pub const STEP_POSTHOG: &str = "posthog";
pub const STEP_RESEND: &str = "resend";
pub const STEP_STRIPE: &str = "stripe";
pub const STEP_VAULT: &str = "vault";
/// Prefix of a platform step: `platform:<connection id>`.
pub const PLATFORM_STEP: &str = "platform:";

/// The reason code written to the vault's erasure ledger for an erase request.
const ERASURE_REASON: &str = "erasure_requested";

/// What an erasure keeps, and on which basis (P24, P26, P30).
pub fn kept_after_erasure() -> Vec<Kept> {
    vec![
        Kept {
            category: "billing_records".into(),
            basis: "legal_obligation (tax and accounting records, GDPR Art. 17(3)(b))".into(),
            detail: "billing accounts, statements, meter reports and Stripe facts, under the pseudonymous \
                     person id and Stripe customer id; card brand, last four digits and expiry as Stripe \
                     reported them; the billing address is sealed under the destroyed key"
                .into(),
        },
        Kept {
            category: "anonymous_aggregates".into(),
            basis: "no personal data (P26)".into(),
            detail: "spend and results by platform and day (platform_daily) and artists' campaign dashboards".into(),
        },
        Kept {
            category: "event_log".into(),
            basis: "append-only log (P30)".into(),
            detail: "the person's events stay in the log so it replays and its chains verify; every personal \
                     field in them is sealed under a destroyed key"
                .into(),
        },
        Kept {
            category: "erasure_records".into(),
            basis: "legal_obligation (accountability, GDPR Art. 5(2))".into(),
            detail: "this request, its steps and certificate, and the disclosure log, under the pseudonymous \
                     person id only"
                .into(),
        },
    ]
}

fn privacy_error(error: CommandError<PrivacyError>) -> ApiError {
    match error {
        CommandError::Rejected(PrivacyError::NotOpened) => {
            ApiError::NotFound("there is no such privacy request".into())
        }
        CommandError::Rejected(rule @ (PrivacyError::MissingText | PrivacyError::BadExtension)) => {
            ApiError::Validation(rule.to_string())
        }
        CommandError::Rejected(rule) => ApiError::Conflict(rule.to_string()),
        CommandError::Log(error) => error.into(),
    }
}

fn subject_error(error: CommandError<SubjectError>) -> ApiError {
    match error {
        CommandError::Rejected(rule @ (SubjectError::Restricted(_) | SubjectError::Erased(_))) => {
            ApiError::Restricted(rule.to_string())
        }
        CommandError::Rejected(rule) => ApiError::Conflict(rule.to_string()),
        CommandError::Log(error) => error.into(),
    }
}

/// Refuses a processing command on `person_id`'s data while they have restricted processing
/// (or were erased), with a 409 `processing_restricted` that says so. Reading is not processing
/// in this sense: read routes never call it. Read from the write side: never stale.
pub async fn ensure_processing_allowed(log: &EventLog, person_id: &str) -> Result<(), ApiError> {
    let (subject, _, _) = log.load_aggregate::<DataSubject>(person_id).await?;
    subject
        .handle(SubjectCommand::CheckProcessing)
        .map(|_| ())
        .map_err(|rule| subject_error(CommandError::Rejected(rule)))
}

/// The connections of `person_id` whose key may still hold a token: every one whose last event
/// is `Connected` (a disconnected or invalidated one had its key destroyed already).
async fn live_connections(log: &EventLog, person_id: &str) -> Result<Vec<(String, ConnectionDetails)>, ApiError> {
    let mut live = Vec::new();
    for platform in Platform::ALL {
        let id = platform.connection_id(person_id);
        match crate::connection_tokens::live_details(log, &id).await {
            Ok(details) => live.push((id, details)),
            // Not connected (never, or ended).
            Err(ApiError::Conflict(_)) => {}
            Err(other) => return Err(other),
        }
    }
    Ok(live)
}

/// The ids of the streams of `aggregate_type` whose first event (`variant`, as serde names it in
/// the payload) has `field` = `value`: read from the log itself, never from a read model that
/// may not have caught up (an erasure must not miss a billing account opened a moment ago).
async fn streams_where(
    db: &Db,
    aggregate_type: &str,
    variant: &str,
    field: &str,
    value: &str,
) -> Result<Vec<String>, ApiError> {
    let rows: Vec<(String,)> = match db {
        Db::Postgres(pool) => {
            sqlx::query_as(
                "SELECT DISTINCT aggregate_id FROM events WHERE aggregate_type = $1 AND sequence = 1 \
                 AND (payload -> $2 ->> $3) = $4 ORDER BY 1",
            )
            .bind(aggregate_type)
            .bind(variant)
            .bind(field)
            .bind(value)
            .fetch_all(pool)
            .await?
        }
        Db::Sqlite(pool) => {
            sqlx::query_as(
                "SELECT DISTINCT aggregate_id FROM events WHERE aggregate_type = $1 AND sequence = 1 \
                 AND json_extract(payload, $2) = $3 ORDER BY 1",
            )
            .bind(aggregate_type)
            .bind(format!("$.{variant}.{field}"))
            .bind(value)
            .fetch_all(pool)
            .await?
        }
    };
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// The billing accounts (Stripe customers: the account id is the customer id) `person_id` owns.
async fn billing_customers(db: &Db, person_id: &str) -> Result<Vec<String>, ApiError> {
    streams_where(
        db,
        domain::billing::BillingAccount::TYPE,
        "BillingAccountOpened",
        "owner",
        person_id,
    )
    .await
}

/// The ids of the person's privacy requests, from the log.
async fn request_ids(db: &Db, person: &str) -> Result<Vec<String>, ApiError> {
    streams_where(db, PrivacyRequest::TYPE, "RequestOpened", "person_id", person).await
}

/// The steps a request of `kind` on `person_id` runs, in order.
pub async fn plan_steps(services: &Services<'_>, person_id: &str, kind: RequestKind) -> Result<Vec<String>, ApiError> {
    Ok(match kind {
        RequestKind::Access => vec![STEP_EVENT_LOG.into(), STEP_READ_MODELS.into(), STEP_DISCLOSURES.into()],
        RequestKind::Rectify => vec![STEP_EVENT_LOG.into()],
        RequestKind::Restrict | RequestKind::LiftRestriction => vec![STEP_PROCESSING.into()],
        RequestKind::Erase => {
            let mut steps: Vec<String> = live_connections(services.log, person_id)
                .await?
                .into_iter()
                .filter(|(_, details)| !matches!(details, ConnectionDetails::Spotify { .. }))
                .map(|(id, _)| format!("{PLATFORM_STEP}{id}"))
                .collect();
            steps.extend([STEP_POSTHOG, STEP_RESEND, STEP_STRIPE, STEP_VAULT, STEP_READ_MODELS].map(String::from));
            steps
        }
    })
}

fn system_metadata(reason: &str) -> EventMetadata {
    EventMetadata {
        actor: format!("system:{reason}"),
        request_id: None,
        causation_id: None,
    }
}

/// Opens a request (and, when the person opened it signed in or the service did, records the
/// verification at once); returns its id. Nothing is carried out yet: see [`run`].
pub async fn open(
    services: &Services<'_>,
    person_id: &str,
    kind: RequestKind,
    opener: Opener,
    rectification: Option<Rectification>,
    metadata: &EventMetadata,
) -> Result<String, ApiError> {
    if services.log.load(Account::TYPE, person_id).await?.is_empty() {
        return Err(ApiError::NotFound("there is no such person".into()));
    }
    let (subject, _, _) = services.log.load_aggregate::<DataSubject>(person_id).await?;
    if subject.is_erased() && kind != RequestKind::Access {
        return Err(ApiError::Conflict("this person's data was erased already".into()));
    }
    let request_id = format!("pr-{}", uuid::Uuid::now_v7());
    let steps = plan_steps(services, person_id, kind).await?;
    let now = Utc::now();
    let verification = match &opener {
        Opener::Person => Some("authenticated_session".to_string()),
        Opener::System { reason } => Some(format!("system:{reason}")),
        Opener::Support { .. } => None,
    };
    services
        .log
        .execute::<PrivacyRequest>(
            &request_id,
            PrivacyCommand::Open {
                person_id: person_id.into(),
                kind,
                opener,
                opened_at: now,
                steps,
                rectification,
            },
            metadata,
        )
        .await
        .map_err(|e| match e {
            CommandError::Rejected(rule) => ApiError::Validation(rule.to_string()),
            other => privacy_error(other),
        })?;
    if let Some(method) = verification {
        verify(services.log, &request_id, &method, metadata).await?;
    }
    Ok(request_id)
}

/// Records the identity verification of a request opened by support.
pub async fn verify(log: &EventLog, request_id: &str, method: &str, metadata: &EventMetadata) -> Result<(), ApiError> {
    log.execute::<PrivacyRequest>(
        request_id,
        PrivacyCommand::Verify {
            method: method.into(),
            at: Utc::now(),
        },
        metadata,
    )
    .await
    .map_err(privacy_error)?;
    Ok(())
}

/// Runs any other command of a request (extend, deny, pause, resume, a manual step).
pub async fn command(
    log: &EventLog,
    request_id: &str,
    command: PrivacyCommand,
    metadata: &EventMetadata,
) -> Result<Option<eventlog::Position>, ApiError> {
    let outcome = log
        .execute::<PrivacyRequest>(request_id, command, metadata)
        .await
        .map_err(privacy_error)?;
    Ok(outcome.position)
}

/// Opens an erase request for `person_id` on the service's own initiative (a child's account,
/// P27; an account closed longer than retention allows, P24) and carries it out; reuses the
/// person's unfinished erase request when there is one. Returns the request id.
pub async fn open_system_erasure(services: &Services<'_>, person_id: &str, reason: &str) -> Result<String, ApiError> {
    let metadata = system_metadata(reason);
    // Erased already (a child's account reported twice, say): that erasure is the answer.
    let (subject, _, _) = services.log.load_aggregate::<DataSubject>(person_id).await?;
    if let Some(request_id) = subject.erased_by() {
        return Ok(request_id.to_string());
    }
    let unfinished: Option<(String,)> = dispatch!(services.log.db(), Db, |pool| {
        sqlx::query_as(
            "SELECT request_id FROM privacy_requests WHERE person_id = $1 AND kind = 'erase' \
             AND state NOT IN ('completed', 'denied') ORDER BY opened_at LIMIT 1",
        )
        .bind(person_id)
        .fetch_optional(pool)
        .await?
    });
    let request_id = match unfinished {
        Some((id,)) => id,
        None => {
            open(
                services,
                person_id,
                RequestKind::Erase,
                Opener::System { reason: reason.into() },
                None,
                &metadata,
            )
            .await?
        }
    };
    run(services, &request_id, &metadata).await?;
    Ok(request_id)
}

/// Carries out the request's steps from the first one not done, in order, until all are done
/// (then completes it) or one fails. A pending, paused or finished request is left as it is.
/// Returns the state it ends in.
pub async fn run(
    services: &Services<'_>,
    request_id: &str,
    metadata: &EventMetadata,
) -> Result<RequestState, ApiError> {
    let log = services.log;
    loop {
        let (request, _, _) = log.load_aggregate::<PrivacyRequest>(request_id).await?;
        if request.kind().is_none() {
            return Err(ApiError::NotFound("there is no such privacy request".into()));
        }
        match request.state() {
            RequestState::Verified | RequestState::InProgress | RequestState::Failed => {}
            other => return Ok(other),
        }
        let Some(step) = request.next_step().map(str::to_string) else {
            let certificate = match request.kind() {
                Some(RequestKind::Erase) => Some(certificate(services, request_id, request.person_id()).await?),
                _ => None,
            };
            command(
                log,
                request_id,
                PrivacyCommand::Complete {
                    at: Utc::now(),
                    certificate,
                },
                metadata,
            )
            .await?;
            if request.kind() == Some(RequestKind::Erase) {
                log.execute::<DataSubject>(
                    request.person_id(),
                    SubjectCommand::RecordErasure {
                        request_id: request_id.into(),
                    },
                    metadata,
                )
                .await
                .map_err(subject_error)?;
            }
            return Ok(RequestState::Completed);
        };
        command(
            log,
            request_id,
            PrivacyCommand::StartStep {
                step: step.clone(),
                at: Utc::now(),
            },
            metadata,
        )
        .await?;
        let person = request.person_id().to_string();
        let kind = request.kind().unwrap_or(RequestKind::Access);
        match carry_out(services, request_id, &person, kind, &step, metadata).await {
            Ok(outcome) => {
                command(
                    log,
                    request_id,
                    PrivacyCommand::CompleteStep {
                        step,
                        outcome,
                        at: Utc::now(),
                    },
                    metadata,
                )
                .await?;
            }
            Err(reason) => {
                tracing::warn!(request_id, step = %step, reason = %reason, "a privacy request step failed");
                command(
                    log,
                    request_id,
                    PrivacyCommand::FailStep {
                        step,
                        reason,
                        at: Utc::now(),
                    },
                    metadata,
                )
                .await?;
                return Ok(RequestState::Failed);
            }
        }
    }
}

/// Runs every request that can go on (verified, in progress or failed): what the daily job
/// does, so a step that failed on a processor's outage is retried without anyone asking.
pub async fn run_unfinished(services: &Services<'_>) -> Result<usize, ApiError> {
    let ids: Vec<(String,)> = dispatch!(services.log.db(), Db, |pool| {
        sqlx::query_as(
            "SELECT request_id FROM privacy_requests WHERE state IN ('verified', 'in_progress', 'failed') \
             ORDER BY opened_at",
        )
        .fetch_all(pool)
        .await?
    });
    let metadata = system_metadata("privacy-requests");
    let mut completed = 0;
    for (id,) in ids {
        if run(services, &id, &metadata).await? == RequestState::Completed {
            completed += 1;
        }
    }
    Ok(completed)
}

/// Carries out one step; the error is the reason recorded with the failure (no personal data).
async fn carry_out(
    services: &Services<'_>,
    request_id: &str,
    person: &str,
    kind: RequestKind,
    step: &str,
    metadata: &EventMetadata,
) -> Result<StepOutcome, String> {
    let done = |evidence: String| Ok(StepOutcome::Done { evidence });
    let not_applicable = |reason: &str| Ok(StepOutcome::NotApplicable { reason: reason.into() });
    let internal = |what: &str, error: ApiError| format!("{what}: {error}");
    match (kind, step) {
        (RequestKind::Access, STEP_EVENT_LOG) => {
            let streams = person_streams(services, person)
                .await
                .map_err(|e| internal("the event log", e))?;
            let authored = authored_elsewhere(services.log.db(), person)
                .await
                .map_err(|e| internal("the event log", e))?;
            let events: usize = streams.iter().map(|(_, events)| events.len()).sum();
            done(format!(
                "{events} events in {} streams of the person, and {} events they recorded in other streams, \
                 are in the export",
                streams.len(),
                authored.len()
            ))
        }
        (RequestKind::Access, STEP_READ_MODELS) => {
            let rows = read_model_rows(services, person)
                .await
                .map_err(|e| internal("the read models", e))?;
            let count: usize = rows.values().map(|v| v.as_array().map_or(0, Vec::len)).sum();
            done(format!(
                "{count} read-model rows in {} tables are in the export",
                rows.len()
            ))
        }
        (RequestKind::Access, STEP_DISCLOSURES) => {
            let list = disclosure::list(services.log, person)
                .await
                .map_err(|e| internal("the disclosure log", e))?;
            done(format!("{} disclosures are in the export", list.len()))
        }
        (RequestKind::Rectify, STEP_EVENT_LOG) => rectify(services.log, request_id, person, metadata).await,
        (RequestKind::Restrict, STEP_PROCESSING) => {
            let outcome = services
                .log
                .execute::<DataSubject>(
                    person,
                    SubjectCommand::Restrict {
                        request_id: request_id.into(),
                    },
                    metadata,
                )
                .await
                .map_err(|e| subject_error(e).to_string())?;
            done(if outcome.events.is_empty() {
                "processing was restricted already".into()
            } else {
                "processing restricted: processing commands are refused until the restriction is lifted".into()
            })
        }
        (RequestKind::LiftRestriction, STEP_PROCESSING) => {
            services
                .log
                .execute::<DataSubject>(
                    person,
                    SubjectCommand::Lift {
                        request_id: request_id.into(),
                    },
                    metadata,
                )
                .await
                .map_err(|e| subject_error(e).to_string())?;
            done("restriction lifted: processing commands are accepted again".into())
        }
        (RequestKind::Erase, step) if step.starts_with(PLATFORM_STEP) => {
            revoke_platform(services, person, &step[PLATFORM_STEP.len()..], metadata).await
        }
        (RequestKind::Erase, STEP_POSTHOG) => {
            let Some(posthog) = &services.platforms.posthog else {
                return not_applicable("no PostHog project is configured: no analytics of the person were sent there");
            };
            record_disclosure(
                services.log,
                person,
                Processor::Posthog,
                &[DataCategory::AnalyticsIdentifiers],
                metadata,
            )
            .await?;
            match posthog.delete_person(person).await {
                Ok(connectors::posthog::PostHogDeletion::NotFound) => {
                    done("PostHog holds no person with this distinct id".into())
                }
                Ok(_) => done("PostHog deleted the person and their events".into()),
                Err(error) => Err(format!("PostHog: {error}")),
            }
        }
        (RequestKind::Erase, STEP_RESEND) => {
            let Some(resend) = &services.platforms.resend else {
                return not_applicable("no Resend account is configured: no email of the person was sent there");
            };
            let Some(email) = current_email(services, person)
                .await
                .map_err(|e| internal("the vault", e))?
            else {
                return not_applicable("the person's email is already unreadable");
            };
            record_disclosure(
                services.log,
                person,
                Processor::Resend,
                &[DataCategory::EmailAddress],
                metadata,
            )
            .await?;
            match resend.delete_contact(&email).await {
                Ok(()) => done("Resend deleted the contact (or held none)".into()),
                Err(error) => Err(format!("Resend: {error}")),
            }
        }
        (RequestKind::Erase, STEP_STRIPE) => {
            let customers = billing_customers(services.log.db(), person)
                .await
                .map_err(|e| internal("the billing read model", e))?;
            if customers.is_empty() {
                return not_applicable("the person owns no billing account");
            }
            let Some(stripe) = &services.platforms.stripe else {
                return Err(
                    "Stripe is not configured: anonymise the customer in Stripe's dashboard and \
                            record the step by hand"
                        .into(),
                );
            };
            for customer in &customers {
                record_disclosure(
                    services.log,
                    person,
                    Processor::Stripe,
                    &[DataCategory::BillingIdentifiers],
                    metadata,
                )
                .await?;
                stripe
                    .anonymise_customer(customer, &format!("erase-{request_id}-{customer}"))
                    .await
                    .map_err(|error| format!("Stripe: {error}"))?;
            }
            done(format!(
                "{} Stripe customer(s) anonymised (name, email, phone, address cleared); invoices kept under \
                 the legal obligation",
                customers.len()
            ))
        }
        (RequestKind::Erase, STEP_VAULT) => {
            let keys = destroy_keys(services.vault, person)
                .await
                .map_err(|e| internal("the vault", e))?;
            done(format!(
                "{} data keys destroyed (person, purpose and connection keys); the erasure ledger re-applies \
                 them at every start",
                keys.len()
            ))
        }
        (RequestKind::Erase, STEP_READ_MODELS) => {
            let (checked, readable) = count_readable(services, person)
                .await
                .map_err(|e| internal("the vault", e))?;
            if readable > 0 {
                return Err(format!(
                    "{readable} of {checked} sealed values of the person still open"
                ));
            }
            done(format!(
                "{checked} sealed values of the person in events and read-model rows checked: none opens"
            ))
        }
        (kind, step) => Err(format!(
            "a {} request has no step `{step}` this service can carry out",
            kind.as_str()
        )),
    }
}

async fn record_disclosure(
    log: &EventLog,
    person: &str,
    processor: Processor,
    categories: &[DataCategory],
    metadata: &EventMetadata,
) -> Result<(), String> {
    disclosure::record(
        log,
        person,
        processor,
        categories,
        Purpose::ErasureAtProcessor,
        None,
        metadata,
    )
    .await
    .map_err(|e| format!("the disclosure log: {e}"))
}

/// Destroys every key of the person: their own, their purposes', their connections'. Idempotent;
/// returns every key id of theirs in the erasure ledger.
async fn destroy_keys(vault: &Vault, person: &str) -> Result<Vec<String>, ApiError> {
    let mut keys = vault.destroy_person(person, ERASURE_REASON).await?;
    for platform in Platform::ALL {
        keys.extend(
            vault
                .destroy(&connection_key(&platform.connection_id(person)), ERASURE_REASON)
                .await?,
        );
    }
    Ok(keys)
}

/// Revokes one connection's token at its platform, then records the connection as disconnected.
async fn revoke_platform(
    services: &Services<'_>,
    person: &str,
    connection_id: &str,
    metadata: &EventMetadata,
) -> Result<StepOutcome, String> {
    let details = match crate::connection_tokens::live_details(services.log, connection_id).await {
        Ok(details) => details,
        Err(ApiError::Conflict(_)) => {
            return Ok(StepOutcome::NotApplicable {
                reason: "the connection had ended already; its key was destroyed then".into(),
            })
        }
        Err(error) => return Err(format!("the event log: {error}")),
    };
    let (processor, field, sealed) = match &details {
        ConnectionDetails::Meta { access_token, .. } => (Processor::Meta, "access_token", access_token),
        ConnectionDetails::Youtube { refresh_token, .. } | ConnectionDetails::GoogleAds { refresh_token, .. } => {
            (Processor::Google, "refresh_token", refresh_token)
        }
        ConnectionDetails::Spotify { .. } => {
            return Ok(StepOutcome::NotApplicable {
                reason: "a Spotify connection holds no token".into(),
            })
        }
    };
    let evidence = match crate::connection_tokens::open_token(services.vault, connection_id, field, sealed).await {
        Err(ApiError::Conflict(_)) => "the token was unreadable already (key destroyed)".to_string(),
        Err(error) => return Err(format!("the vault: {error}")),
        Ok(token) => {
            disclosure::record(
                services.log,
                person,
                processor,
                &[DataCategory::PlatformToken],
                Purpose::TokenRevocation,
                Some(connection_id),
                metadata,
            )
            .await
            .map_err(|e| format!("the disclosure log: {e}"))?;
            match processor {
                Processor::Meta => services
                    .platforms
                    .meta
                    .revoke_permissions(&token)
                    .await
                    .map_err(|e| format!("Meta: {e}"))?,
                _ => {
                    let google = services
                        .platforms
                        .google
                        .as_ref()
                        .ok_or("Google OAuth is not configured: revoke the grant in the Google account by hand")?;
                    google.revoke_token(&token).await.map_err(|e| format!("Google: {e}"))?
                }
            }
            "the platform revoked the token".to_string()
        }
    };
    match services
        .log
        .execute::<Connection>(connection_id, ConnectionCommand::Disconnect, metadata)
        .await
    {
        Ok(_) | Err(CommandError::Rejected(_)) => {}
        Err(CommandError::Log(error)) => return Err(format!("the event log: {error}")),
    }
    services
        .vault
        .destroy(&connection_key(connection_id), ERASURE_REASON)
        .await
        .map_err(|e| format!("the vault: {e}"))?;
    Ok(StepOutcome::Done {
        evidence: format!("{evidence}; connection recorded as disconnected and its key destroyed"),
    })
}

/// Applies a rectify request's new values to the account.
async fn rectify(
    log: &EventLog,
    request_id: &str,
    person: &str,
    metadata: &EventMetadata,
) -> Result<StepOutcome, String> {
    let events = log
        .load(PrivacyRequest::TYPE, request_id)
        .await
        .map_err(|e| format!("the event log: {e}"))?;
    let values = events
        .iter()
        .find_map(|e| match e.decode::<PrivacyEvent>() {
            Ok(PrivacyEvent::RequestOpened { rectification, .. }) => rectification,
            _ => None,
        })
        .ok_or("the request carries no new values")?;
    let fields: Vec<&str> = [
        ("name", values.name.is_some()),
        ("email", values.email.is_some()),
        ("avatar_url", values.avatar_url.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, given)| given.then_some(name))
    .collect();
    log.execute::<Account>(
        person,
        AccountCommand::Rectify {
            name: values.name,
            email: values.email,
            avatar_url: values.avatar_url,
        },
        metadata,
    )
    .await
    .map_err(|e| match e {
        // A child's or a closed account: the rule says why, and the request fails on it.
        CommandError::Rejected(rule) => rule.to_string(),
        CommandError::Log(error) => format!("the event log: {error}"),
    })?;
    Ok(StepOutcome::Done {
        evidence: format!("account rectified: {}", fields.join(", ")),
    })
}

/// The person's current email, opened from their account stream; `None` once erased.
async fn current_email(services: &Services<'_>, person: &str) -> Result<Option<String>, ApiError> {
    let mut email: Option<Sealed> = None;
    for stored in services.log.load(Account::TYPE, person).await? {
        match stored.decode::<AccountEvent>().map_err(|_| ApiError::Internal)? {
            AccountEvent::SignedUp { email: e, .. } => email = Some(e),
            AccountEvent::ProfileRectified { email: Some(e), .. } => email = Some(e),
            _ => {}
        }
    }
    let Some(sealed) = email else { return Ok(None) };
    let sealed: SealedValue = serde_json::from_value(sealed.0).map_err(|_| ApiError::Internal)?;
    match services
        .vault
        .open_string(&KeyRef::person(person), "email", &sealed)
        .await?
    {
        Opened::Plain(text) => Ok(Some(text.to_string())),
        Opened::Erased => Ok(None),
    }
}

/// Issues the certificate of a completed erasure from the request's own stream and the vault's ledger.
async fn certificate(services: &Services<'_>, request_id: &str, person: &str) -> Result<ErasureCertificate, ApiError> {
    let mut steps = Vec::new();
    for stored in services.log.load(PrivacyRequest::TYPE, request_id).await? {
        if let PrivacyEvent::StepCompleted { step, outcome, at } =
            stored.decode::<PrivacyEvent>().map_err(|_| ApiError::Internal)?
        {
            steps.push(CertifiedStep {
                step,
                completed_at: at,
                outcome,
            });
        }
    }
    // Idempotent: gives every key id of the person already in the ledger.
    let mut keys_destroyed = destroy_keys(services.vault, person).await?;
    keys_destroyed.sort();
    keys_destroyed.dedup();
    Ok(ErasureCertificate {
        request_id: request_id.into(),
        person_id: person.into(),
        erased_at: Utc::now(),
        keys_destroyed,
        steps,
        kept: kept_after_erasure(),
    })
}

// ----- The person's data: streams, rows, sealed values -----

/// Every stream that is the person's: account, consents, processing state, disclosures,
/// connections, billing accounts they own, their privacy requests. With their events.
async fn person_streams(
    services: &Services<'_>,
    person: &str,
) -> Result<Vec<((String, String), Vec<StoredEvent>)>, ApiError> {
    let log = services.log;
    let mut ids: Vec<(String, String)> = vec![
        (Account::TYPE.into(), person.into()),
        (domain::consent::Consents::TYPE.into(), person.into()),
        (DataSubject::TYPE.into(), person.into()),
        (domain::disclosure::DisclosureLog::TYPE.into(), person.into()),
    ];
    for platform in Platform::ALL {
        ids.push((Connection::TYPE.into(), platform.connection_id(person)));
    }
    for account in billing_customers(log.db(), person).await? {
        ids.push((domain::billing::BillingAccount::TYPE.into(), account));
    }
    for request in request_ids(log.db(), person).await? {
        ids.push((PrivacyRequest::TYPE.into(), request));
    }
    let mut streams = Vec::new();
    for (aggregate_type, aggregate_id) in ids {
        let events = log.load(&aggregate_type, &aggregate_id).await?;
        if !events.is_empty() {
            streams.push(((aggregate_type, aggregate_id), events));
        }
    }
    Ok(streams)
}

/// Events the person recorded in streams that are not theirs (an artist's, a campaign's): the
/// stream, type and time only, since their payloads may concern other people.
async fn authored_elsewhere(db: &Db, person: &str) -> Result<Vec<Value>, ApiError> {
    let actor = format!("person:{person}");
    let rows: Vec<(String, String, i64, String, String)> = match db {
        Db::Postgres(pool) => {
            sqlx::query_as(
                "SELECT aggregate_type, aggregate_id, sequence, event_type, \
                 to_char(recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') \
                 FROM events WHERE metadata->>'actor' = $1 AND aggregate_type IN ('artist', 'campaign') \
                 ORDER BY recorded_at",
            )
            .bind(&actor)
            .fetch_all(pool)
            .await?
        }
        Db::Sqlite(pool) => {
            sqlx::query_as(
                "SELECT aggregate_type, aggregate_id, sequence, event_type, recorded_at \
                 FROM events WHERE json_extract(metadata, '$.actor') = $1 AND aggregate_type IN ('artist', 'campaign') \
                 ORDER BY global_position",
            )
            .bind(&actor)
            .fetch_all(pool)
            .await?
        }
    };
    Ok(rows
        .into_iter()
        .map(|(t, id, sequence, event_type, at)| {
            json!({ "stream": format!("{t}/{id}"), "sequence": sequence, "event_type": event_type, "recorded_at": at })
        })
        .collect())
}

/// The read-model tables that hold rows about one person, and the column naming them.
const PERSON_TABLES: &[(&str, &str)] = &[
    ("accounts", "person_id"),
    ("consent_current", "person_id"),
    ("consent_history", "person_id"),
    ("connections", "person_id"),
    ("artist_access", "person_id"),
    ("billing_accounts", "owner"),
    ("privacy_requests", "person_id"),
];

/// The person's read-model rows, per table, as JSON (sealed columns as stored).
async fn raw_rows(db: &Db, person: &str) -> Result<Map<String, Value>, ApiError> {
    let mut tables = Map::new();
    for (table, column) in PERSON_TABLES {
        let sql = format!("SELECT * FROM {table} WHERE {column} = $1");
        let rows: Vec<Value> = dispatch!(db, Db, |pool| {
            sqlx::query(&sql)
                .bind(person)
                .fetch_all(pool)
                .await?
                .iter()
                .map(|row| {
                    let mut object = Map::new();
                    for (index, col) in row.columns().iter().enumerate() {
                        let value = if let Ok(v) = row.try_get::<Option<String>, _>(index) {
                            v.map_or(Value::Null, Value::from)
                        } else if let Ok(v) = row.try_get::<Option<i64>, _>(index) {
                            v.map_or(Value::Null, Value::from)
                        } else if let Ok(v) = row.try_get::<Option<bool>, _>(index) {
                            v.map_or(Value::Null, Value::from)
                        } else if let Ok(v) = row.try_get::<Option<i32>, _>(index) {
                            v.map_or(Value::Null, Value::from)
                        } else {
                            Value::Null
                        };
                        object.insert(col.name().to_string(), value);
                    }
                    Value::Object(object)
                })
                .collect()
        });
        tables.insert((*table).to_string(), Value::Array(rows));
    }
    Ok(tables)
}

/// The key a sealed value names: `person:<id>`, `purpose:<id>:<purpose>` or `connection:<id>`.
fn key_of(sealed: &SealedValue) -> Option<KeyRef> {
    let subject = sealed.key_id.split('#').next()?;
    let (kind, rest) = subject.split_once(':')?;
    match kind {
        "person" => Some(KeyRef::person(rest)),
        "purpose" => rest.rsplit_once(':').map(|(p, purpose)| KeyRef::purpose(p, purpose)),
        "connection" => Some(KeyRef::connection(rest)),
        _ => None,
    }
}

/// Where a sealed value sits in a JSON document: its JSON pointer, its field name, the value.
fn find_sealed(value: &Value, pointer: &str, field: &str, found: &mut Vec<(String, String, SealedValue)>) {
    match value {
        Value::Object(map) if map.contains_key("ciphertext") && map.contains_key("key_id") => {
            if let Ok(sealed) = serde_json::from_value::<SealedValue>(value.clone()) {
                found.push((pointer.to_string(), field.to_string(), sealed));
            }
        }
        Value::Object(map) => {
            for (key, child) in map {
                let escaped = key.replace('~', "~0").replace('/', "~1");
                find_sealed(child, &format!("{pointer}/{escaped}"), key, found);
            }
        }
        Value::Array(items) => {
            for (index, child) in items.iter().enumerate() {
                find_sealed(child, &format!("{pointer}/{index}"), field, found);
            }
        }
        // Read-model columns keep sealed values as JSON text, in `<field>_sealed` columns.
        Value::String(text) if field.ends_with("_sealed") && text.starts_with('{') => {
            if let Ok(sealed) = serde_json::from_str::<SealedValue>(text) {
                found.push((
                    pointer.to_string(),
                    field.trim_end_matches("_sealed").to_string(),
                    sealed,
                ));
            }
        }
        _ => {}
    }
}

/// What a sealed value reads as in the export: its text, `{"erased": true}`, or, for platform
/// tokens, a note that they are withheld (a live credential is not handed out, even to its owner).
async fn opened_view(vault: &Vault, field: &str, sealed: &SealedValue) -> Result<Value, ApiError> {
    let Some(key) = key_of(sealed) else {
        return Ok(json!({ "sealed": true }));
    };
    if matches!(key, KeyRef::Connection { .. }) {
        return Ok(json!({ "withheld": "platform token, sealed with AES-256-GCM under the connection's key" }));
    }
    Ok(match vault.open_string(&key, field, sealed).await {
        Ok(Opened::Plain(text)) => Value::from(text.to_string()),
        Ok(Opened::Erased) => json!({ "erased": true }),
        Err(_) => json!({ "unreadable": true }),
    })
}

/// Replaces every sealed value in `document` with what it reads as.
async fn open_all(vault: &Vault, document: &mut Value) -> Result<(), ApiError> {
    let mut found = Vec::new();
    find_sealed(document, "", "", &mut found);
    for (pointer, field, sealed) in found {
        let view = opened_view(vault, &field, &sealed).await?;
        if let Some(slot) = document.pointer_mut(&pointer) {
            *slot = view;
        }
    }
    Ok(())
}

/// Counts the person's sealed values (events and read-model rows, tokens included) and how
/// many of them still open.
async fn count_readable(services: &Services<'_>, person: &str) -> Result<(usize, usize), ApiError> {
    let mut found = Vec::new();
    for ((_, _), events) in person_streams(services, person).await? {
        for event in events {
            find_sealed(&event.payload, "", "", &mut found);
        }
    }
    find_sealed(
        &Value::Object(raw_rows(services.log.db(), person).await?),
        "",
        "",
        &mut found,
    );
    let mut readable = 0;
    for (_, field, sealed) in &found {
        let Some(key) = key_of(sealed) else { continue };
        if let Ok(Opened::Plain(_)) = services.vault.open(&key, field, sealed).await {
            readable += 1;
        }
    }
    Ok((found.len(), readable))
}

async fn read_model_rows(services: &Services<'_>, person: &str) -> Result<Map<String, Value>, ApiError> {
    let mut rows = Value::Object(raw_rows(services.log.db(), person).await?);
    open_all(services.vault, &mut rows).await?;
    let Value::Object(mut tables) = rows else {
        return Err(ApiError::Internal);
    };
    // Opened, a `name_sealed` column is the name: shown under that name.
    for row in tables.values_mut().filter_map(Value::as_array_mut).flatten() {
        if let Value::Object(columns) = row {
            *columns = std::mem::take(columns)
                .into_iter()
                .map(|(column, value)| match column.strip_suffix("_sealed") {
                    Some(field) => (field.to_string(), value),
                    None => (column, value),
                })
                .collect();
        }
    }
    Ok(tables)
}

fn at(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The access export: one JSON document with everything held on the person and nothing on
/// anyone else: their streams' events (sealed values opened; tokens withheld), the events they
/// recorded elsewhere (stream, type and time only), their read-model rows, their consent
/// history with a receipt per change, and their disclosures.
pub async fn export(services: &Services<'_>, person: &str) -> Result<Value, ApiError> {
    let mut events = Vec::new();
    for ((aggregate_type, aggregate_id), stored) in person_streams(services, person).await? {
        for event in stored {
            events.push(json!({
                "stream": format!("{aggregate_type}/{aggregate_id}"),
                "sequence": event.sequence,
                "event_id": event.event_id,
                "event_type": event.event_type,
                "recorded_at": at(event.recorded_at),
                "actor": event.metadata.actor,
                "payload": event.payload,
                "chain_hash": event.chain_hash,
            }));
        }
    }
    let mut events = Value::Array(events);
    open_all(services.vault, &mut events).await?;
    let consents = crate::consent::replay(services.log, person, Utc::now()).await?;
    let mut receipts = Vec::new();
    for entry in consents["history"].as_array().into_iter().flatten() {
        if let Some(event_id) = entry["event_id"].as_str() {
            receipts.push(crate::consent::receipt(services.log, person, event_id).await?);
        }
    }
    let (subject, _, _) = services.log.load_aggregate::<DataSubject>(person).await?;
    Ok(json!({
        "person_id": person,
        "generated_at": at(Utc::now()),
        "processing": {
            "restricted": subject.is_restricted(),
            "erased": subject.is_erased(),
        },
        "events": events,
        "recorded_elsewhere": authored_elsewhere(services.log.db(), person).await?,
        "read_models": read_model_rows(services, person).await?,
        "consents": consents,
        "consent_receipts": receipts,
        "disclosures": disclosure::list(services.log, person).await?,
    }))
}

/// One request as its own stream tells it (never stale): kind, state, deadline, every step with
/// its attempts, times and outcome, and the certificate of an erasure.
pub async fn request_view(log: &EventLog, request_id: &str) -> Result<Value, ApiError> {
    let stored = log.load(PrivacyRequest::TYPE, request_id).await?;
    if stored.is_empty() {
        return Err(ApiError::NotFound("there is no such privacy request".into()));
    }
    let mut request = PrivacyRequest::default();
    let mut view = Map::new();
    let mut steps: Vec<Value> = Vec::new();
    let mut certificate = Value::Null;
    let mut history = Vec::new();
    for event in &stored {
        let decoded = event.decode::<PrivacyEvent>().map_err(|_| ApiError::Internal)?;
        history.push(json!({
            "event_type": event.event_type,
            "recorded_at": at(event.recorded_at),
            "actor": event.metadata.actor,
        }));
        match &decoded {
            PrivacyEvent::RequestOpened {
                person_id,
                kind,
                opener,
                opened_at,
                steps: names,
                ..
            } => {
                view.insert("person_id".into(), json!(person_id));
                view.insert("kind".into(), json!(kind));
                view.insert("opened_by".into(), json!(opener));
                view.insert("opened_at".into(), json!(at(*opened_at)));
                steps = names
                    .iter()
                    .map(|name| json!({ "step": name, "status": "waiting", "attempts": 0 }))
                    .collect();
            }
            PrivacyEvent::IdentityVerified { method, at: when } => {
                view.insert("verified".into(), json!({ "method": method, "at": at(*when) }));
            }
            PrivacyEvent::DeadlineExtended { reason, .. } => {
                view.insert("extension_reason".into(), json!(reason));
            }
            PrivacyEvent::RequestDenied { reason, .. } => {
                view.insert("denial_reason".into(), json!(reason));
            }
            PrivacyEvent::RequestPaused { reason, .. } => {
                view.insert("pause_reason".into(), json!(reason));
            }
            PrivacyEvent::RequestResumed { .. } => {
                view.remove("pause_reason");
            }
            PrivacyEvent::StepStarted {
                step,
                attempt,
                at: when,
            } => {
                if let Some(s) = steps.iter_mut().find(|s| s["step"] == json!(step)) {
                    s["status"] = json!("running");
                    s["attempts"] = json!(attempt);
                    s["started_at"] = json!(at(*when));
                }
            }
            PrivacyEvent::StepCompleted {
                step,
                outcome,
                at: when,
            } => {
                if let Some(s) = steps.iter_mut().find(|s| s["step"] == json!(step)) {
                    s["status"] = json!("done");
                    s["finished_at"] = json!(at(*when));
                    s["result"] = json!(outcome);
                }
            }
            PrivacyEvent::StepFailed { step, reason, at: when } => {
                if let Some(s) = steps.iter_mut().find(|s| s["step"] == json!(step)) {
                    s["status"] = json!("failed");
                    s["finished_at"] = json!(at(*when));
                    s["result"] = json!({ "outcome": "failed", "reason": reason });
                }
            }
            PrivacyEvent::RequestCompleted { at: when } => {
                view.insert("completed_at".into(), json!(at(*when)));
            }
            PrivacyEvent::ErasureCertificateIssued { certificate: c } => {
                certificate = json!({
                    "certificate": c,
                    "event_id": event.event_id,
                    "stream": format!("{}/{request_id}", PrivacyRequest::TYPE),
                    "sequence": event.sequence,
                    "chain_hash": event.chain_hash,
                });
            }
        }
        request.apply(decoded);
    }
    view.insert("request_id".into(), json!(request_id));
    view.insert("state".into(), json!(request.state()));
    view.insert("deadline".into(), json!(request.deadline().map(at)));
    view.insert("steps".into(), Value::Array(steps));
    view.insert("erasure_certificate".into(), certificate);
    view.insert("history".into(), Value::Array(history));
    view.insert("position".into(), json!(stored.last().map(|e| e.position.to_string())));
    Ok(Value::Object(view))
}
