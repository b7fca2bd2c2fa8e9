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

use crate::connections::connection_key;
use crate::disclosure;
pub use crate::restriction::ensure_processing_allowed;
use crate::restriction::subject_error;
use crate::{system_metadata, App, AppError, Call};
use chrono::{DateTime, SecondsFormat, Utc};
use domain::account::{Account, AccountCommand, AccountEvent};
use domain::connection::{Connection, ConnectionCommand, ConnectionDetails, Platform};
use domain::disclosure::{DataCategory, Processor, Purpose};
use domain::privacy::{
    CertifiedStep, DataSubject, ErasureCertificate, Kept, Opener, PrivacyCommand, PrivacyError, PrivacyEvent,
    PrivacyRequest, Rectification, RequestKind, RequestState, StepOutcome, SubjectCommand,
};
use domain::sealed::Sealed;
use domain::Aggregate;
use eventlog::{CommandError, EventLog, EventMetadata, StoredEvent};
use projections::read_models::{person_index, privacy_requests};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use vault::{KeyRef, Opened, SealedValue, Vault};

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

fn privacy_error(error: CommandError<PrivacyError>) -> AppError {
    match error {
        CommandError::Rejected(PrivacyError::NotOpened) => {
            AppError::NotFound("there is no such privacy request".into())
        }
        CommandError::Rejected(rule @ (PrivacyError::MissingText | PrivacyError::BadExtension)) => {
            AppError::Validation(rule.to_string())
        }
        CommandError::Rejected(rule) => AppError::Conflict(rule.to_string()),
        CommandError::Log(error) => error.into(),
    }
}

/// The connections of `person_id` whose key may still hold a token: every one whose last event
/// is `Connected` (a disconnected or invalidated one had its key destroyed already).
async fn live_connections(log: &EventLog, person_id: &str) -> Result<Vec<(String, ConnectionDetails)>, AppError> {
    let mut live = Vec::new();
    for platform in Platform::ALL {
        let id = platform.connection_id(person_id);
        match crate::connections::live_details(log, &id).await {
            Ok(details) => live.push((id, details)),
            // Not connected (never, or ended).
            Err(AppError::Conflict(_)) => {}
            Err(other) => return Err(other),
        }
    }
    Ok(live)
}

/// The person index, once it holds every event committed before this call: an erasure must
/// not miss a billing account opened a moment ago, and an export must not miss a stream.
async fn fresh_index(app: &App) -> Result<(), AppError> {
    caught_up(app, &["person_index"]).await
}

/// Returns once each of `projections` has applied every event committed before this call (at
/// most the configured consistency wait; past it, the read model is behind: an error).
async fn caught_up(app: &App, projections: &[&str]) -> Result<(), AppError> {
    let Some(head) = app.log.head_position().await? else {
        return Ok(());
    };
    for projection in projections {
        app.wait_until_applied(projection, head).await?;
    }
    Ok(())
}

/// The person's read-model rows, once the projections writing them hold every event committed
/// before this call: an export shows the account just signed up. (An erasure's check reads the
/// rows as they are: a row not written yet is sealed under the same destroyed key.)
async fn person_rows(app: &App, person: &str) -> Result<Map<String, Value>, AppError> {
    caught_up(app, &person_index::person_table_projections()).await?;
    Ok(person_index::rows_about(app.log.db(), person).await?)
}

/// The billing accounts (Stripe customers: the account id is the customer id) `person_id` owns.
async fn billing_customers(app: &App, person_id: &str) -> Result<Vec<String>, AppError> {
    fresh_index(app).await?;
    Ok(person_index::subject_ids(app.log.db(), person_id, domain::billing::BillingAccount::TYPE).await?)
}

/// The steps a request of `kind` on `person_id` runs, in order.
pub async fn plan_steps(app: &App, person_id: &str, kind: RequestKind) -> Result<Vec<String>, AppError> {
    Ok(match kind {
        RequestKind::Access => vec![STEP_EVENT_LOG.into(), STEP_READ_MODELS.into(), STEP_DISCLOSURES.into()],
        RequestKind::Rectify => vec![STEP_EVENT_LOG.into()],
        RequestKind::Restrict | RequestKind::LiftRestriction => vec![STEP_PROCESSING.into()],
        RequestKind::Erase => {
            let mut steps: Vec<String> = live_connections(&app.log, person_id)
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

/// Opens a request (and, when the person opened it signed in or the service did, records the
/// verification at once); returns its id. Nothing is carried out yet: see [`run`].
pub async fn open(
    app: &App,
    person_id: &str,
    kind: RequestKind,
    opener: Opener,
    rectification: Option<Rectification>,
    metadata: &EventMetadata,
) -> Result<(String, Option<crate::workflows::Claimed>), AppError> {
    if app.log.load(Account::TYPE, person_id).await?.is_empty() {
        return Err(AppError::NotFound("there is no such person".into()));
    }
    let (subject, _, _) = app.log.load_aggregate::<DataSubject>(person_id).await?;
    if subject.is_erased() && kind != RequestKind::Access {
        return Err(AppError::Conflict("this person's data was erased already".into()));
    }
    let request_id = format!("pr-{}", uuid::Uuid::now_v7());
    let steps = plan_steps(app, person_id, kind).await?;
    let now = app.now();
    let verification = match &opener {
        Opener::Person => Some("authenticated_session".to_string()),
        Opener::System { reason } => Some(format!("system:{reason}")),
        Opener::Support { .. } => None,
    };
    app.log
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
            CommandError::Rejected(rule) => AppError::Validation(rule.to_string()),
            other => privacy_error(other),
        })?;
    // Held before the verification is recorded, so this call (not the background runner)
    // carries the request out at once.
    let claimed = claim_request(app, &request_id).await?;
    if let Some(method) = verification {
        if let Err(error) = verify(app, &request_id, &method, metadata).await {
            release_claim(app, claimed).await?;
            return Err(error);
        }
    }
    Ok((request_id, claimed))
}

/// Records the identity verification of a request opened by support.
pub async fn verify(app: &App, request_id: &str, method: &str, metadata: &EventMetadata) -> Result<(), AppError> {
    app.log
        .execute::<PrivacyRequest>(
            request_id,
            PrivacyCommand::Verify {
                method: method.into(),
                at: app.now(),
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
) -> Result<Option<eventlog::Position>, AppError> {
    let outcome = log
        .execute::<PrivacyRequest>(request_id, command, metadata)
        .await
        .map_err(privacy_error)?;
    Ok(outcome.position)
}

/// Opens an erase request for `person_id` on the service's own initiative (a child's account,
/// P27; an account closed longer than retention allows, P24) and carries it out; reuses the
/// person's unfinished erase request when there is one. Returns the request id.
pub async fn open_system_erasure(app: &App, person_id: &str, reason: &str) -> Result<String, AppError> {
    let metadata = system_metadata(reason);
    // Erased already (a child's account reported twice, say): that erasure is the answer.
    let (subject, _, _) = app.log.load_aggregate::<DataSubject>(person_id).await?;
    if let Some(request_id) = subject.erased_by() {
        return Ok(request_id.to_string());
    }
    let unfinished = privacy_requests::unfinished_erasure(app.log.db(), person_id).await?;
    let request_id = match unfinished {
        Some(id) => id,
        None => {
            let (request_id, claimed) = open(
                app,
                person_id,
                RequestKind::Erase,
                Opener::System { reason: reason.into() },
                None,
                &metadata,
            )
            .await?;
            carry_out_claimed(app, claimed).await?;
            return Ok(request_id);
        }
    };
    carry_out_now(app, &request_id).await?;
    Ok(request_id)
}

/// Carries out the request's steps from the first one not done, in order, until all are done
/// (then completes it) or one fails. A pending, paused or finished request is left as it is.
/// Returns the state it ends in.
pub async fn run(app: &App, request_id: &str, metadata: &EventMetadata) -> Result<RequestState, AppError> {
    let log = &app.log;
    loop {
        let (request, _, _) = log.load_aggregate::<PrivacyRequest>(request_id).await?;
        if request.kind().is_none() {
            return Err(AppError::NotFound("there is no such privacy request".into()));
        }
        match request.state() {
            RequestState::Verified | RequestState::InProgress | RequestState::Failed => {}
            other => return Ok(other),
        }
        let Some(step) = request.next_step().map(str::to_string) else {
            let certificate = match request.kind() {
                Some(RequestKind::Erase) => Some(certificate(app, request_id, request.person_id()).await?),
                _ => None,
            };
            command(
                log,
                request_id,
                PrivacyCommand::Complete {
                    at: app.now(),
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
                at: app.now(),
            },
            metadata,
        )
        .await?;
        let person = request.person_id().to_string();
        let kind = request.kind().unwrap_or(RequestKind::Access);
        match carry_out(app, request_id, &person, kind, &step, metadata).await {
            Ok(outcome) => {
                command(
                    log,
                    request_id,
                    PrivacyCommand::CompleteStep {
                        step,
                        outcome,
                        at: app.now(),
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
                        at: app.now(),
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
pub async fn run_unfinished(app: &App) -> Result<usize, AppError> {
    let ids = privacy_requests::runnable(app.log.db()).await?;
    let mut completed = 0;
    for id in ids {
        carry_out_now(app, &id).await?;
        let (request, _, _) = app.log.load_aggregate::<PrivacyRequest>(&id).await?;
        if request.state() == RequestState::Completed {
            completed += 1;
        }
    }
    Ok(completed)
}

/// Carries out one step; the error is the reason recorded with the failure (no personal data).
async fn carry_out(
    app: &App,
    request_id: &str,
    person: &str,
    kind: RequestKind,
    step: &str,
    metadata: &EventMetadata,
) -> Result<StepOutcome, String> {
    let done = |evidence: String| Ok(StepOutcome::Done { evidence });
    let not_applicable = |reason: &str| Ok(StepOutcome::NotApplicable { reason: reason.into() });
    let internal = |what: &str, error: AppError| format!("{what}: {error}");
    match (kind, step) {
        (RequestKind::Access, STEP_EVENT_LOG) => {
            let streams = person_streams(app, person)
                .await
                .map_err(|e| internal("the event log", e))?;
            let authored = authored_elsewhere(app, person)
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
            let rows = read_model_rows(app, person)
                .await
                .map_err(|e| internal("the read models", e))?;
            let count: usize = rows.values().map(|v| v.as_array().map_or(0, Vec::len)).sum();
            done(format!(
                "{count} read-model rows in {} tables are in the export",
                rows.len()
            ))
        }
        (RequestKind::Access, STEP_DISCLOSURES) => {
            let list = disclosure::list(&app.log, person)
                .await
                .map_err(|e| internal("the disclosure log", e))?;
            done(format!("{} disclosures are in the export", list.len()))
        }
        (RequestKind::Rectify, STEP_EVENT_LOG) => rectify(&app.log, request_id, person, metadata).await,
        (RequestKind::Restrict, STEP_PROCESSING) => {
            let outcome = app
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
            app.log
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
            revoke_platform(app, person, &step[PLATFORM_STEP.len()..], metadata).await
        }
        (RequestKind::Erase, STEP_POSTHOG) => {
            let Some(posthog) = &app.platforms.posthog else {
                return not_applicable("no PostHog project is configured: no analytics of the person were sent there");
            };
            record_disclosure(
                &app.log,
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
            let Some(resend) = &app.platforms.resend else {
                return not_applicable("no Resend account is configured: no email of the person was sent there");
            };
            let Some(email) = current_email(app, person).await.map_err(|e| internal("the vault", e))? else {
                return not_applicable("the person's email is already unreadable");
            };
            record_disclosure(
                &app.log,
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
            let customers = billing_customers(app, person)
                .await
                .map_err(|e| internal("the billing read model", e))?;
            if customers.is_empty() {
                return not_applicable("the person owns no billing account");
            }
            let Some(stripe) = &app.platforms.stripe else {
                return Err(
                    "Stripe is not configured: anonymise the customer in Stripe's dashboard and \
                            record the step by hand"
                        .into(),
                );
            };
            for customer in &customers {
                record_disclosure(
                    &app.log,
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
            let keys = destroy_keys(&app.vault, person)
                .await
                .map_err(|e| internal("the vault", e))?;
            done(format!(
                "{} data keys destroyed (person, purpose and connection keys); the erasure ledger re-applies \
                 them at every start",
                keys.len()
            ))
        }
        (RequestKind::Erase, STEP_READ_MODELS) => {
            let (checked, readable) = count_readable(app, person)
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
async fn destroy_keys(vault: &Vault, person: &str) -> Result<Vec<String>, AppError> {
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
    app: &App,
    person: &str,
    connection_id: &str,
    metadata: &EventMetadata,
) -> Result<StepOutcome, String> {
    let details = match crate::connections::live_details(&app.log, connection_id).await {
        Ok(details) => details,
        Err(AppError::Conflict(_)) => {
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
    let evidence = match crate::connections::open_token(&app.vault, connection_id, field, sealed).await {
        Err(AppError::Conflict(_)) => "the token was unreadable already (key destroyed)".to_string(),
        Err(error) => return Err(format!("the vault: {error}")),
        Ok(token) => {
            disclosure::record(
                &app.log,
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
                Processor::Meta => app
                    .platforms
                    .meta
                    .revoke_permissions(&token)
                    .await
                    .map_err(|e| format!("Meta: {e}"))?,
                _ => {
                    let google = app
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
    match app
        .log
        .execute::<Connection>(connection_id, ConnectionCommand::Disconnect, metadata)
        .await
    {
        Ok(_) | Err(CommandError::Rejected(_)) => {}
        Err(CommandError::Log(error)) => return Err(format!("the event log: {error}")),
    }
    app.vault
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
async fn current_email(app: &App, person: &str) -> Result<Option<String>, AppError> {
    let mut email: Option<Sealed> = None;
    for stored in app.log.load(Account::TYPE, person).await? {
        match stored.decode::<AccountEvent>().map_err(|_| AppError::Internal)? {
            AccountEvent::SignedUp { email: e, .. } => email = Some(e),
            AccountEvent::ProfileRectified { email: Some(e), .. } => email = Some(e),
            _ => {}
        }
    }
    let Some(sealed) = email else { return Ok(None) };
    let sealed: SealedValue = serde_json::from_value(sealed.0).map_err(|_| AppError::Internal)?;
    match app.vault.open_string(&KeyRef::person(person), "email", &sealed).await? {
        Opened::Plain(text) => Ok(Some(text.to_string())),
        Opened::Erased => Ok(None),
    }
}

/// Issues the certificate of a completed erasure from the request's own stream and the vault's ledger.
async fn certificate(app: &App, request_id: &str, person: &str) -> Result<ErasureCertificate, AppError> {
    let mut steps = Vec::new();
    for stored in app.log.load(PrivacyRequest::TYPE, request_id).await? {
        if let PrivacyEvent::StepCompleted { step, outcome, at } =
            stored.decode::<PrivacyEvent>().map_err(|_| AppError::Internal)?
        {
            steps.push(CertifiedStep {
                step,
                completed_at: at,
                outcome,
            });
        }
    }
    // Idempotent: gives every key id of the person already in the ledger.
    let mut keys_destroyed = destroy_keys(&app.vault, person).await?;
    keys_destroyed.sort();
    keys_destroyed.dedup();
    Ok(ErasureCertificate {
        request_id: request_id.into(),
        person_id: person.into(),
        erased_at: app.now(),
        keys_destroyed,
        steps,
        kept: kept_after_erasure(),
    })
}

// ----- The person's data: streams, rows, sealed values -----

/// Every stream that is the person's (account, consents, processing state, disclosures,
/// connections, billing accounts they own, their privacy requests), from the person index,
/// with their events; in feed order of each stream's first event.
async fn person_streams(app: &App, person: &str) -> Result<Vec<((String, String), Vec<StoredEvent>)>, AppError> {
    fresh_index(app).await?;
    let mut streams = Vec::new();
    for stream in person_index::streams_of(app.log.db(), person, Some(person_index::SUBJECT)).await? {
        let events = app.log.load(&stream.aggregate_type, &stream.aggregate_id).await?;
        if !events.is_empty() {
            streams.push(((stream.aggregate_type, stream.aggregate_id), events));
        }
    }
    Ok(streams)
}

/// Events the person recorded in streams that are not theirs (an artist's, a campaign's): the
/// stream, type and time only, since their payloads may concern other people. In feed order.
async fn authored_elsewhere(app: &App, person: &str) -> Result<Vec<Value>, AppError> {
    fresh_index(app).await?;
    let actor = format!("person:{person}");
    let indexed = person_index::streams_of(app.log.db(), person, None).await?;
    let own: std::collections::HashSet<(&str, &str)> = indexed
        .iter()
        .filter(|s| s.role == person_index::SUBJECT)
        .map(|s| (s.aggregate_type.as_str(), s.aggregate_id.as_str()))
        .collect();
    let mut events = Vec::new();
    for stream in indexed.iter().filter(|s| s.role == person_index::AUTHOR) {
        if own.contains(&(stream.aggregate_type.as_str(), stream.aggregate_id.as_str())) {
            continue;
        }
        for event in app.log.load(&stream.aggregate_type, &stream.aggregate_id).await? {
            if event.metadata.actor == actor {
                events.push(event);
            }
        }
    }
    events.sort_by_key(|e| e.position);
    Ok(events
        .into_iter()
        .map(|e| {
            json!({
                "stream": format!("{}/{}", e.aggregate_type, e.aggregate_id),
                "sequence": e.sequence,
                "event_type": e.event_type,
                "recorded_at": at(e.recorded_at),
            })
        })
        .collect())
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
async fn opened_view(vault: &Vault, field: &str, sealed: &SealedValue) -> Result<Value, AppError> {
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
async fn open_all(vault: &Vault, document: &mut Value) -> Result<(), AppError> {
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
async fn count_readable(app: &App, person: &str) -> Result<(usize, usize), AppError> {
    let mut found = Vec::new();
    for ((_, _), events) in person_streams(app, person).await? {
        for event in events {
            find_sealed(&event.payload, "", "", &mut found);
        }
    }
    find_sealed(
        &Value::Object(person_index::rows_about(app.log.db(), person).await?),
        "",
        "",
        &mut found,
    );
    let mut readable = 0;
    for (_, field, sealed) in &found {
        let Some(key) = key_of(sealed) else { continue };
        if let Ok(Opened::Plain(_)) = app.vault.open(&key, field, sealed).await {
            readable += 1;
        }
    }
    Ok((found.len(), readable))
}

async fn read_model_rows(app: &App, person: &str) -> Result<Map<String, Value>, AppError> {
    let mut rows = Value::Object(person_rows(app, person).await?);
    open_all(&app.vault, &mut rows).await?;
    let Value::Object(mut tables) = rows else {
        return Err(AppError::Internal);
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
pub async fn export(app: &App, person: &str) -> Result<Value, AppError> {
    let mut stored: Vec<StoredEvent> = person_streams(app, person)
        .await?
        .into_iter()
        .flat_map(|(_, events)| events)
        .collect();
    // One order on both backends: the feed's.
    stored.sort_by_key(|e| e.position);
    let mut events = Vec::new();
    {
        for event in stored {
            let (aggregate_type, aggregate_id) = (&event.aggregate_type, &event.aggregate_id);
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
    open_all(&app.vault, &mut events).await?;
    let consents = crate::consent::replay(&app.log, person, app.now()).await?;
    let mut receipts = Vec::new();
    for entry in consents["history"].as_array().into_iter().flatten() {
        if let Some(event_id) = entry["event_id"].as_str() {
            receipts.push(crate::consent::receipt(&app.log, person, event_id).await?);
        }
    }
    let (subject, _, _) = app.log.load_aggregate::<DataSubject>(person).await?;
    Ok(json!({
        "person_id": person,
        "generated_at": at(app.now()),
        "processing": {
            "restricted": subject.is_restricted(),
            "erased": subject.is_erased(),
        },
        "events": events,
        "recorded_elsewhere": authored_elsewhere(app, person).await?,
        "read_models": read_model_rows(app, person).await?,
        "consents": consents,
        "consent_receipts": receipts,
        "disclosures": disclosure::list(&app.log, person).await?,
    }))
}

/// One request as its own stream tells it (never stale): kind, state, deadline, every step with
/// its attempts, times and outcome, and the certificate of an erasure.
pub async fn request_view(log: &EventLog, request_id: &str) -> Result<Value, AppError> {
    let stored = log.load(PrivacyRequest::TYPE, request_id).await?;
    if stored.is_empty() {
        return Err(AppError::NotFound("there is no such privacy request".into()));
    }
    let mut request = PrivacyRequest::default();
    let mut view = Map::new();
    let mut steps: Vec<Value> = Vec::new();
    let mut certificate = Value::Null;
    let mut history = Vec::new();
    for event in &stored {
        let decoded = event.decode::<PrivacyEvent>().map_err(|_| AppError::Internal)?;
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

// ----- The workflow that carries requests out -----

/// The `privacy_requests` workflow: a request is one item (its id), carried out step by step by
/// [`run`] from the first step not done. An item is started when the request is verified, and
/// again when it is resumed or support records a manual step; one that fails is retried from
/// its failed step with backoff, and parked when it keeps failing (a step that needs a human:
/// support records it with `manual-step`). Opening or verifying a request over the API runs its
/// item at once ([`carry_out_now`]).
pub struct RequestSteps;

/// The workflow's name.
pub const WORKFLOW: &str = "privacy_requests";

#[async_trait::async_trait]
impl crate::workflows::Workflow for RequestSteps {
    fn name(&self) -> &'static str {
        WORKFLOW
    }

    fn select(&self, event: &StoredEvent) -> Vec<eventlog::workflow::NewItem> {
        if event.aggregate_type != PrivacyRequest::TYPE {
            return Vec::new();
        }
        let starts = match event.event_type.as_str() {
            "IdentityVerified" | "RequestResumed" => true,
            // A step support carried out by hand lets the request go on.
            "StepCompleted" => matches!(
                event.decode::<PrivacyEvent>(),
                Ok(PrivacyEvent::StepCompleted {
                    outcome: StepOutcome::Manual { .. },
                    ..
                })
            ),
            _ => false,
        };
        if starts {
            vec![crate::workflows::item(event.aggregate_id.clone(), &Value::Null)]
        } else {
            Vec::new()
        }
    }

    async fn handle(&self, app: &App, item: &eventlog::workflow::Item) -> Result<String, String> {
        let metadata = system_metadata("privacy-requests");
        match run(app, &item.item, &metadata).await.map_err(|e| e.to_string())? {
            RequestState::Failed => Err(last_failure(&app.log, &item.item)
                .await
                .unwrap_or_else(|| "a step failed".to_string())),
            state => Ok(format!(
                "{}: {}",
                item.item,
                serde_json::to_value(state).unwrap_or_default()
            )),
        }
    }
}

/// The reason the last failed step of a request gave.
async fn last_failure(log: &EventLog, request_id: &str) -> Option<String> {
    let events = log.load(PrivacyRequest::TYPE, request_id).await.ok()?;
    events.iter().rev().find_map(|e| match e.decode::<PrivacyEvent>() {
        Ok(PrivacyEvent::StepFailed { step, reason, .. }) => Some(format!("step {step}: {reason}")),
        _ => None,
    })
}

/// Claims the request's workflow item for this call (re-arming it when it was done or parked),
/// so that what the call records next is carried out here at once, not by the background runner
/// at the same time. `None` when another runner holds it (it carries the request on).
/// When the background runner holds the item (an attempt in flight), waits for it, bounded by
/// [`CLAIM_WAIT`], so the caller's answer reflects the steps run now; after that the re-armed
/// item is left to the runner.
pub async fn claim_request(app: &App, request_id: &str) -> Result<Option<crate::workflows::Claimed>, AppError> {
    let give_up = std::time::Instant::now() + CLAIM_WAIT;
    loop {
        let claimed = crate::workflows::rearm_and_claim(
            app,
            &RequestSteps,
            crate::workflows::item(request_id, &Value::Null),
            &app.config.workflows,
        )
        .await?;
        if claimed.is_some() || std::time::Instant::now() >= give_up {
            return Ok(claimed);
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// How long a request's caller waits for the background runner's attempt to finish.
const CLAIM_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Gives up the claim of a call that failed before the request's work began.
async fn release_claim(app: &App, claimed: Option<crate::workflows::Claimed>) -> Result<(), AppError> {
    if let Some(claimed) = claimed {
        crate::workflows::release(app, &RequestSteps, claimed).await?;
    }
    Ok(())
}

/// Carries a request on under the claim this call holds (nothing when it holds none).
pub async fn carry_out_claimed(app: &App, claimed: Option<crate::workflows::Claimed>) -> Result<(), AppError> {
    if let Some(claimed) = claimed {
        crate::workflows::attempt(app, &RequestSteps, &claimed, &app.config.workflows).await?;
    }
    Ok(())
}

/// Carries a request out now, in the caller's task, under its workflow item's lease (a no-op
/// when another runner holds it).
pub async fn carry_out_now(app: &App, request_id: &str) -> Result<(), AppError> {
    let claimed = claim_request(app, request_id).await?;
    carry_out_claimed(app, claimed).await
}

// ----- Use cases over the API -----

/// What opening a request takes.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenRequest {
    pub kind: RequestKind,
    /// Support only: how the person asked (an email to privacy@, a phone call…).
    #[serde(default)]
    pub reason: Option<String>,
    /// Rectify only: the new values.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub avatar_url: Option<String>,
}

/// A support action's input.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionRequest {
    /// verify: how the identity was checked.
    #[serde(default)]
    pub method: Option<String>,
    /// extend, deny, pause: why.
    #[serde(default)]
    pub reason: Option<String>,
    /// extend: the new deadline (RFC 3339).
    #[serde(default)]
    pub until: Option<DateTime<Utc>>,
    /// manual-step: which step, and what was done.
    #[serde(default)]
    pub step: Option<String>,
    #[serde(default)]
    pub evidence: Option<String>,
}

/// A request id as the API accepts it; anything else is not-found.
pub fn request_id(raw: &str) -> Result<String, AppError> {
    let ok = raw.len() <= 64 && raw.starts_with("pr-") && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if ok {
        Ok(raw.to_string())
    } else {
        Err(AppError::NotFound("there is no such privacy request".into()))
    }
}

fn required<'a>(value: &'a Option<String>, name: &str) -> Result<&'a str, AppError> {
    let value = value
        .as_deref()
        .ok_or_else(|| AppError::Validation(format!("{name} is required")))?;
    crate::personal::bounded(name, value, 500)?;
    Ok(value)
}

/// The request as its stream tells it, refused (not-found) unless it is `person`'s when given.
async fn view_for(app: &App, request: &str, person: Option<&str>) -> Result<Value, AppError> {
    let view = request_view(&app.log, &request_id(request)?).await?;
    if person.is_some_and(|p| view["person_id"] != json!(p)) {
        return Err(AppError::NotFound("there is no such privacy request".into()));
    }
    Ok(view)
}

async fn rectification(app: &App, person: &str, body: &OpenRequest) -> Result<Option<Rectification>, AppError> {
    use crate::personal::{bounded, seal, valid_avatar, valid_email};
    if body.kind != RequestKind::Rectify {
        if body.name.is_some() || body.email.is_some() || body.avatar_url.is_some() {
            return Err(AppError::Validation(
                "name, email and avatar_url are taken by a rectify request only".into(),
            ));
        }
        return Ok(None);
    }
    let key = KeyRef::person(person);
    let mut values = Rectification::default();
    if let Some(name) = &body.name {
        bounded("name", name, 200)?;
        values.name = Some(seal(&app.vault, &key, "name", name).await?);
    }
    if let Some(email) = &body.email {
        valid_email(email)?;
        values.email = Some(seal(&app.vault, &key, "email", email).await?);
    }
    if let Some(url) = &body.avatar_url {
        valid_avatar(url)?;
        values.avatar_url = Some(seal(&app.vault, &key, "avatar_url", url).await?);
    }
    if values.name.is_none() && values.email.is_none() && values.avatar_url.is_none() {
        return Err(AppError::Validation(
            "a rectify request needs at least one of name, email or avatar_url".into(),
        ));
    }
    Ok(Some(values))
}

/// Opens a request (the person's own, or support's on `on_behalf_of`'s behalf), carries it out
/// at once when it is verified, and answers with it as its stream tells it.
pub async fn open_request(
    app: &App,
    call: &Call,
    on_behalf_of: Option<&str>,
    request: OpenRequest,
) -> Result<Value, AppError> {
    let caller = &call.caller;
    let (person, opener) = match on_behalf_of {
        None => {
            caller.require(&[crate::Role::Person])?;
            if request.reason.is_some() {
                return Err(AppError::Validation("reason is for support's requests only".into()));
            }
            (crate::personal::person_id(&caller.subject)?, Opener::Person)
        }
        Some(person) => {
            caller.require(&[crate::Role::Support])?;
            let reason = required(&request.reason, "reason")?.to_string();
            (
                crate::personal::person_id(person)?,
                Opener::Support {
                    agent: caller.actor(),
                    reason,
                },
            )
        }
    };
    let values = rectification(app, &person, &request).await?;
    let (id, claimed) = open(app, &person, request.kind, opener, values, &call.metadata()).await?;
    carry_out_claimed(app, claimed).await?;
    request_view(&app.log, &id).await
}

/// Support's actions on a request: `verify`, `extend`, `deny`, `pause`, `resume`, `retry`,
/// `manual-step`. Whatever the action, the request then goes on with what can run now.
pub async fn act(app: &App, call: &Call, request: &str, action: &str, input: ActionRequest) -> Result<Value, AppError> {
    call.caller.require(&[crate::Role::Support])?;
    let id = request_id(request)?;
    let metadata = call.metadata();
    let now = app.now();
    if !["verify", "extend", "deny", "pause", "resume", "retry", "manual-step"].contains(&action) {
        return Err(AppError::NotFound("no such route".into()));
    }
    if !app.log.exists(PrivacyRequest::TYPE, &id).await? {
        return Err(AppError::NotFound("there is no such privacy request".into()));
    }
    // Held before anything is recorded, so this call carries the request on at once (a parked or
    // finished item is put back to work: support's retry, or a change that lets it go on).
    let claimed = claim_request(app, &id).await?;
    let recorded = async {
        let command = match action {
            "verify" => {
                verify(app, &id, required(&input.method, "method")?, &metadata).await?;
                None
            }
            "extend" => Some(PrivacyCommand::Extend {
                reason: required(&input.reason, "reason")?.into(),
                until: input
                    .until
                    .ok_or_else(|| AppError::Validation("until is required (RFC 3339)".into()))?,
            }),
            "deny" => Some(PrivacyCommand::Deny {
                reason: required(&input.reason, "reason")?.into(),
                at: now,
            }),
            "pause" => Some(PrivacyCommand::Pause {
                reason: required(&input.reason, "reason")?.into(),
                at: now,
            }),
            "resume" => Some(PrivacyCommand::Resume { at: now }),
            "retry" => None,
            "manual-step" => Some(PrivacyCommand::CompleteStep {
                step: required(&input.step, "step")?.into(),
                outcome: StepOutcome::Manual {
                    evidence: required(&input.evidence, "evidence")?.into(),
                    by: call.caller.actor(),
                },
                at: now,
            }),
            _ => return Err(AppError::NotFound("no such route".into())),
        };
        if let Some(command) = command {
            self::command(&app.log, &id, command, &metadata).await?;
        }
        Ok::<_, AppError>(())
    }
    .await;
    if let Err(error) = recorded {
        release_claim(app, claimed).await?;
        return Err(error);
    }
    carry_out_claimed(app, claimed).await?;
    request_view(&app.log, &id).await
}

/// One request: the person's own (`mine`), or any for support or an auditor, with its chain
/// verified for staff.
pub async fn show(app: &App, call: &Call, request: &str) -> Result<Value, AppError> {
    let caller = &call.caller;
    match caller.role {
        crate::Role::Person => view_for(app, request, Some(&caller.subject)).await,
        crate::Role::Support | crate::Role::Auditor => {
            let mut view = view_for(app, request, None).await?;
            let verification = app
                .log
                .verify_stream(PrivacyRequest::TYPE, &request_id(request)?)
                .await?;
            view["chain"] = json!({ "verified": verification.broken.is_none(), "events": verification.events });
            Ok(view)
        }
        crate::Role::Service => Err(AppError::Forbidden(
            "this action needs the role person, support or auditor".into(),
        )),
    }
}

/// The export of a completed access request: the person's own, or any for support.
pub async fn export_of(app: &App, call: &Call, request: &str) -> Result<Value, AppError> {
    let caller = &call.caller;
    caller.require(&[crate::Role::Person, crate::Role::Support])?;
    let person = (caller.role == crate::Role::Person).then_some(caller.subject.as_str());
    let view = view_for(app, request, person).await?;
    if view["kind"] != json!("access") {
        return Err(AppError::Conflict("only an access request has an export".into()));
    }
    if view["state"] != json!("completed") {
        return Err(AppError::Conflict(
            "the access request is not completed yet; its steps show where it stands".into(),
        ));
    }
    let person = view["person_id"]
        .as_str()
        .ok_or_else(|| crate::error::corrupt("a request without a person"))?;
    export(app, person).await
}

/// A request in a list, with whether its deadline passed unfinished.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ListedRequest {
    #[serde(flatten)]
    pub request: privacy_requests::RequestRow,
    pub overdue: bool,
}

/// Requests from the audit trail, newest first (at most 500): the caller's own (a person), or
/// anyone's (support and auditors; of one person and/or in one state when given).
pub async fn list(
    app: &App,
    call: &Call,
    person: Option<&str>,
    state: Option<&str>,
    min_position: Option<&str>,
) -> Result<Vec<ListedRequest>, AppError> {
    let caller = &call.caller;
    let person = match caller.role {
        crate::Role::Person => Some(caller.subject.clone()),
        crate::Role::Support | crate::Role::Auditor => person.map(crate::personal::person_id).transpose()?,
        crate::Role::Service => {
            return Err(AppError::Forbidden(
                "this action needs the role person, support or auditor".into(),
            ))
        }
    };
    app.wait_for("privacy_requests", min_position).await?;
    let now = at(app.now());
    Ok(privacy_requests::list(app.log.db(), person.as_deref(), state, 500)
        .await?
        .into_iter()
        .map(|request| ListedRequest {
            overdue: request.completed_at.is_none() && request.deadline < now,
            request,
        })
        .collect())
}

/// A person's erasure certificates, each with its chain verified (an auditor's read).
pub async fn certificates(app: &App, call: &Call, person: &str, min_position: Option<&str>) -> Result<Value, AppError> {
    call.caller.require(&[crate::Role::Auditor])?;
    let person = crate::personal::person_id(person)?;
    app.wait_for("privacy_requests", min_position).await?;
    let db = app.log.db();
    let mut rows = privacy_requests::certificates(db, &person).await?;
    if rows.is_empty() {
        // The read model may not have applied a just-completed erasure yet (an auditor reading
        // right after it, with no `min_position`): wait, bounded, until it has applied
        // everything appended so far, then look again before answering 404.
        if let Some(head) = app.log.head_position().await? {
            let _ = app
                .engine
                .wait_for("privacy_requests", head, app.config.consistency_wait)
                .await?;
            rows = privacy_requests::certificates(db, &person).await?;
        }
    }
    let mut certificates = Vec::new();
    for row in rows {
        let verification = app.log.verify_stream(PrivacyRequest::TYPE, &row.request_id).await?;
        certificates.push(json!({
            "request_id": row.request_id,
            "issued_at": row.issued_at,
            "certificate": serde_json::from_str::<Value>(&row.certificate).map_err(|_| crate::error::corrupt("a stored certificate"))?,
            "event_id": row.event_id,
            "chain_hash": row.chain_hash,
            "chain": {
                "stream": format!("{}/{}", PrivacyRequest::TYPE, row.request_id),
                "verified": verification.broken.is_none(),
                "events": verification.events,
            },
        }));
    }
    if certificates.is_empty() {
        return Err(AppError::NotFound("no erasure certificate for this person".into()));
    }
    Ok(json!({ "person_id": person, "certificates": certificates }))
}
