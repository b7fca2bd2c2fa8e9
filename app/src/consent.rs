//! Consents (P6, P14, P15, P20, P21, P28, P31): the one consent check (P4, P6, P14, P15), a
//! person's consents and policy acceptances and their changes (by themselves or by support on
//! their behalf), Facebook click ids (only while `ad_attribution` is granted), the auditor's
//! replay of a person's consents as of an instant, and consent receipts. The check, the replay
//! and the receipts read the person's consent stream from the event log itself, never a read
//! model.

use crate::error::corrupt;
use crate::personal::{bounded, person_id, seal};
use crate::{App, AppError, Call, Role};
use chrono::{DateTime, SecondsFormat, Utc};
use domain::consent::{Acceptance, Change, ConsentCommand, ConsentError, Evidence, Method, Notice};
use domain::consent::{ConsentEvent, ConsentHistory, Consents, HistoryEntry, Purpose, Recorded};
use domain::Aggregate;
use eventlog::chain::StreamVerification;
use eventlog::{CommandError, EventMetadata};
use eventlog::{EventLog, StoredEvent};
use projections::read_models::consent_ledger;
use serde::Deserialize;
use serde::Serialize;
use serde_json::{json, Value};
use vault::KeyRef;

/// The answer of the consent check: may this processing happen, and on which consent event?
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConsentDecision {
    pub allowed: bool,
    /// The event that set the current state (a grant when allowed); callers record it as the
    /// causation of what they do.
    pub relied_on: Option<String>,
}

async fn history_until(
    log: &EventLog,
    person_id: &str,
    until: Option<DateTime<Utc>>,
) -> Result<(ConsentHistory, Vec<StoredEvent>), AppError> {
    let events = log.load(Consents::TYPE, person_id).await?;
    let mut history = ConsentHistory::default();
    for stored in &events {
        if until.is_some_and(|t| stored.recorded_at > t) {
            break;
        }
        let event: ConsentEvent = stored.decode().map_err(|_| corrupt("a consent event"))?;
        history.apply(
            event,
            Recorded {
                event_id: stored.event_id.to_string(),
                sequence: stored.sequence,
                at: stored.recorded_at,
            },
        );
    }
    Ok((history, events))
}

/// The one consent check every processing path that needs consent calls.
pub async fn check(log: &EventLog, person_id: &str, purpose: Purpose) -> Result<ConsentDecision, AppError> {
    let (history, _) = history_until(log, person_id, None).await?;
    let state = history.state(purpose);
    Ok(ConsentDecision {
        allowed: state.granted,
        relied_on: state.set_by.map(|e| e.recorded.event_id),
    })
}

/// What an auditor sees of one change: the consent ids are shown as recorded or not, never
/// as their (sealed) values.
pub fn entry_view(entry: &HistoryEntry) -> Value {
    let recorded = &entry.recorded;
    let base = json!({
        "event_id": recorded.event_id,
        "sequence": recorded.sequence,
        "recorded_at": recorded.at.to_rfc3339_opts(SecondsFormat::Micros, true),
    });
    let detail = match &entry.event {
        ConsentEvent::ConsentGranted(change) | ConsentEvent::ConsentWithdrawn(change) => json!({
            "change": if matches!(entry.event, ConsentEvent::ConsentGranted(_)) { "granted" } else { "withdrawn" },
            "purpose": change.purpose,
            "notice": change.notice,
            "method": change.method,
            "jurisdiction": change.jurisdiction,
            "evidence": change.evidence,
        }),
        ConsentEvent::PolicyAccepted {
            notice,
            acceptance,
            method,
            evidence,
        } => json!({
            "change": "policy_accepted",
            "notice": notice,
            "acceptance": acceptance,
            "method": method,
            "evidence": evidence,
        }),
        ConsentEvent::AttributionIdsRecorded { fbc, fbp } => json!({
            "change": "attribution_ids_recorded",
            "fbc_recorded": fbc.is_some(),
            "fbp_recorded": fbp.is_some(),
        }),
    };
    let mut merged = base;
    if let (Some(target), Value::Object(source)) = (merged.as_object_mut(), detail) {
        target.extend(source);
    }
    merged
}

/// Replays a person's consent stream from the log up to `as_of`, verifying its chain.
pub async fn replay(log: &EventLog, person_id: &str, as_of: DateTime<Utc>) -> Result<Value, AppError> {
    let (history, _) = history_until(log, person_id, Some(as_of)).await?;
    let verification: StreamVerification = log.verify_stream(Consents::TYPE, person_id).await?;
    let purposes: Vec<Value> = history
        .states()
        .iter()
        .map(|state| {
            json!({
                "purpose": state.purpose,
                "granted": state.granted,
                "set_by": state.set_by.as_ref().map(entry_view),
            })
        })
        .collect();
    Ok(json!({
        "person_id": person_id,
        "as_of": as_of.to_rfc3339_opts(SecondsFormat::Micros, true),
        "chain": {
            "verified": verification.broken.is_none(),
            "events": verification.events,
            "broken": verification.broken,
        },
        "purposes": purposes,
        "policy_acceptance": history.last_policy_acceptance.as_ref().map(entry_view),
        "history": history.history.iter().map(entry_view).collect::<Vec<_>>(),
    }))
}

/// A consent receipt for one change, with the ISO/IEC TS 27560 fields that apply, and what an
/// auditor needs to check it against the log (stream, sequence, chain hash).
pub async fn receipt(log: &EventLog, person_id: &str, event_id: &str) -> Result<Value, AppError> {
    let (history, events) = history_until(log, person_id, None).await?;
    let entry = history
        .history
        .iter()
        .find(|e| e.recorded.event_id == event_id)
        .ok_or_else(|| AppError::NotFound("there is no such consent change for this person".into()))?;
    let stored = events
        .iter()
        .find(|e| e.event_id.to_string() == event_id)
        .ok_or_else(|| corrupt("a consent receipt's event"))?;
    let verification = log.verify_stream(Consents::TYPE, person_id).await?;
    let view = entry_view(entry);
    let (state, purposes) = match &entry.event {
        ConsentEvent::ConsentGranted(c) => ("given", vec![c.purpose]),
        ConsentEvent::ConsentWithdrawn(c) => ("withdrawn", vec![c.purpose]),
        ConsentEvent::PolicyAccepted { .. } => ("notice_accepted", vec![]),
        ConsentEvent::AttributionIdsRecorded { .. } => ("data_recorded_under_consent", vec![Purpose::AdAttribution]),
    };
    Ok(json!({
        "schema_version": "ISO/IEC TS 27560:2023 (consent record information structure)",
        "record_id": event_id,
        "pii_principal_id": person_id,
        "pii_controllers": [{ "name": "dynamoi" }],
        "timestamp": view["recorded_at"],
        "state": state,
        "purposes": purposes.iter().map(|p| json!({
            "purpose": p,
            "legal_basis": "consent (GDPR Art. 6(1)(a))",
        })).collect::<Vec<_>>(),
        "notice": view.get("notice"),
        "acceptance": view.get("acceptance"),
        "collection_method": view.get("method"),
        "jurisdiction": view.get("jurisdiction"),
        "evidence": view.get("evidence"),
        "integrity": {
            "stream": format!("{}/{}", Consents::TYPE, person_id),
            "sequence": stored.sequence,
            "chain_hash": stored.chain_hash,
            "chain_verified": verification.broken.is_none(),
        },
    }))
}

/// The purpose key under which Facebook click ids are sealed (erasable on its own, P6).
pub const AD_ATTRIBUTION_KEY: &str = "ad_attribution";

fn consent_error(error: CommandError<ConsentError>) -> AppError {
    match error {
        CommandError::Rejected(ConsentError::AttributionNotGranted) => {
            AppError::Conflict(ConsentError::AttributionNotGranted.to_string())
        }
        CommandError::Rejected(rule) => AppError::Validation(rule.to_string()),
        CommandError::Log(log) => log.into(),
    }
}

/// A person's decision on one purpose, as their own list shows it.
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum CurrentConsent {
    Decided(consent_ledger::CurrentConsent),
    Undecided {
        purpose: String,
        granted: bool,
        decided: bool,
    },
}

/// The calling person's (or, for support, anyone's) current consents: every purpose, decided
/// or not.
pub async fn current(app: &App, person: &str, min_position: Option<&str>) -> Result<Vec<CurrentConsent>, AppError> {
    app.wait_for("consent_ledger", min_position).await?;
    let rows = consent_ledger::current(app.log.db(), person).await?;
    Ok(Purpose::ALL
        .iter()
        .map(|p| match rows.iter().find(|r| r.purpose == p.as_str()) {
            Some(row) => CurrentConsent::Decided(row.clone()),
            None => CurrentConsent::Undecided {
                purpose: p.as_str().to_string(),
                granted: false,
                decided: false,
            },
        })
        .collect())
}

/// The notice a person was shown: a published policy version.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoticeRequest {
    #[serde(default)]
    pub document_id: Option<String>,
    pub version_label: String,
}

/// The notice a person was shown, with its text hash. Read from the log (the policy document's
/// own stream), so a version published a moment ago counts.
async fn notice(app: &App, request: &NoticeRequest) -> Result<Notice, AppError> {
    let document = request
        .document_id
        .clone()
        .unwrap_or_else(|| crate::policies::DEFAULT_DOCUMENT.into());
    let (policy, _, _) = app
        .log
        .load_aggregate::<domain::policy::PolicyDocument>(&document)
        .await?;
    let version = policy
        .versions()
        .iter()
        .find(|v| v.label == request.version_label)
        .ok_or_else(|| AppError::Validation("the notice names a policy version that has not been published".into()))?;
    Ok(Notice {
        document_id: document,
        version_label: version.label.clone(),
        text_sha256: version.text_sha256.clone(),
    })
}

/// A grant or a withdrawal of one purpose.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentRequest {
    pub purpose: String,
    pub granted: bool,
    #[serde(default)]
    pub method: Option<Method>,
    pub jurisdiction: String,
    pub notice: NoticeRequest,
}

/// What a consent change recorded.
#[derive(Clone, Debug, Serialize)]
pub struct ConsentChanged {
    pub person_id: String,
    pub purpose: Purpose,
    pub granted: bool,
    /// `false` when the purpose was in that state already (nothing recorded).
    pub changed: bool,
    pub event_id: Option<String>,
    pub position: Option<String>,
}

/// Grants or withdraws one purpose: for the caller, or (support) for `on_behalf_of`, with the
/// request's evidence (user agent, truncated address). Withdrawing `ad_attribution` destroys
/// the click ids' key at once (P6).
pub async fn change(
    app: &App,
    call: &Call,
    on_behalf_of: Option<&str>,
    evidence: Evidence,
    request: ConsentRequest,
) -> Result<ConsentChanged, AppError> {
    let caller = &call.caller;
    let (person, method_override) = match on_behalf_of {
        Some(person) => {
            caller.require(&[Role::Support])?;
            (person_id(person)?, Some(Method::SupportOnBehalf))
        }
        None => {
            caller.require(&[Role::Person])?;
            (caller.subject.clone(), None)
        }
    };
    let purpose: Purpose = request.purpose.parse().map_err(AppError::Validation)?;
    if request.method == Some(Method::SupportOnBehalf) && method_override.is_none() {
        return Err(AppError::Validation(
            "only support may record a change on someone's behalf".into(),
        ));
    }
    let method = method_override.or(request.method).unwrap_or(Method::Api);
    let change = Change {
        purpose,
        notice: notice(app, &request.notice).await?,
        method,
        jurisdiction: request.jurisdiction.to_ascii_uppercase(),
        evidence,
    };
    let command = if request.granted {
        ConsentCommand::Grant(change)
    } else {
        ConsentCommand::Withdraw(change)
    };
    let outcome = app
        .log
        .execute::<Consents>(&person, command, &call.metadata())
        .await
        .map_err(consent_error)?;
    if !request.granted && purpose == Purpose::AdAttribution {
        app.vault
            .destroy(&KeyRef::purpose(&person, AD_ATTRIBUTION_KEY), "consent_withdrawn")
            .await?;
    }
    Ok(ConsentChanged {
        person_id: person,
        purpose,
        granted: request.granted,
        changed: !outcome.event_ids.is_empty(),
        event_id: outcome.event_ids.first().map(|id| id.to_string()),
        position: outcome.position.map(|p| p.to_string()),
    })
}

/// An acceptance of a policy version.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcceptanceRequest {
    #[serde(default)]
    pub document_id: Option<String>,
    pub version_label: String,
    /// `explicit`, or `continued_use` after a notification sent at `notified_at`.
    pub mode: String,
    #[serde(default)]
    pub notified_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub method: Option<Method>,
}

/// A recorded acceptance's event id and the consistency token.
#[derive(Clone, Debug, Serialize)]
pub struct AcceptanceRecorded {
    pub event_id: Option<String>,
    pub position: Option<String>,
}

/// The calling person accepts a policy version (P28): explicitly, or by continued use after
/// being notified.
pub async fn accept_policy(
    app: &App,
    call: &Call,
    evidence: Evidence,
    request: AcceptanceRequest,
) -> Result<AcceptanceRecorded, AppError> {
    call.caller.require(&[Role::Person])?;
    let acceptance = match (request.mode.as_str(), request.notified_at) {
        ("explicit", None) => Acceptance::Explicit,
        ("continued_use", Some(notified_at)) => Acceptance::ContinuedUseAfterNotification { notified_at },
        ("continued_use", None) => {
            return Err(AppError::Validation(
                "continued_use needs notified_at, when the person was notified".into(),
            ))
        }
        ("explicit", Some(_)) => return Err(AppError::Validation("notified_at goes only with continued_use".into())),
        _ => {
            return Err(AppError::Validation(
                "mode must be `explicit` or `continued_use`".into(),
            ))
        }
    };
    let notice = notice(
        app,
        &NoticeRequest {
            document_id: request.document_id,
            version_label: request.version_label,
        },
    )
    .await?;
    let command = ConsentCommand::AcceptPolicy {
        notice,
        acceptance,
        method: request.method.unwrap_or(Method::Api),
        evidence,
    };
    let outcome = app
        .log
        .execute::<Consents>(&call.caller.subject, command, &call.metadata())
        .await
        .map_err(consent_error)?;
    Ok(AcceptanceRecorded {
        event_id: outcome.event_ids.first().map(|id| id.to_string()),
        position: outcome.position.map(|p| p.to_string()),
    })
}

/// Facebook click ids of the calling person.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttributionRequest {
    #[serde(default)]
    pub fbc: Option<String>,
    #[serde(default)]
    pub fbp: Option<String>,
}

/// What recording click ids relied on.
#[derive(Clone, Debug, Serialize)]
pub struct AttributionRecorded {
    /// The `ad_attribution` grant relied on.
    pub relied_on: Option<String>,
    pub position: Option<String>,
}

/// Records the calling person's Facebook click ids (P6): refused while processing is restricted
/// (P22) and unless `ad_attribution` is granted (the one consent check, before anything is
/// sealed); sealed under the purpose's own key, with the grant relied on as the causation.
pub async fn record_attribution_ids(
    app: &App,
    call: &Call,
    request: AttributionRequest,
) -> Result<AttributionRecorded, AppError> {
    call.caller.require(&[Role::Person])?;
    let person = call.caller.subject.clone();
    crate::restriction::ensure_may_process(&app.log, &person).await?;
    let decision = check(&app.log, &person, Purpose::AdAttribution).await?;
    if !decision.allowed {
        return Err(AppError::Conflict(ConsentError::AttributionNotGranted.to_string()));
    }
    for (field, value) in [("fbc", &request.fbc), ("fbp", &request.fbp)] {
        if let Some(value) = value {
            bounded(field, value, 512)?;
        }
    }
    let key = KeyRef::purpose(&person, AD_ATTRIBUTION_KEY);
    let fbc = match &request.fbc {
        Some(v) => Some(seal(&app.vault, &key, "fbc", v).await?),
        None => None,
    };
    let fbp = match &request.fbp {
        Some(v) => Some(seal(&app.vault, &key, "fbp", v).await?),
        None => None,
    };
    let metadata = EventMetadata {
        causation_id: decision.relied_on.clone(),
        ..call.metadata()
    };
    let outcome = app
        .log
        .execute::<Consents>(&person, ConsentCommand::RecordAttributionIds { fbc, fbp }, &metadata)
        .await
        .map_err(consent_error)?;
    Ok(AttributionRecorded {
        relied_on: decision.relied_on,
        position: outcome.position.map(|p| p.to_string()),
    })
}

/// The auditor's replay of a person's consents as of `as_of` (now when not given), chain verified.
pub async fn audit_replay(
    app: &App,
    call: &Call,
    person: &str,
    as_of: Option<DateTime<Utc>>,
) -> Result<Value, AppError> {
    call.caller.require(&[Role::Auditor])?;
    let person = person_id(person)?;
    replay(&app.log, &person, as_of.unwrap_or_else(|| app.now())).await
}

/// The auditor's receipt of one consent change.
pub async fn audit_receipt(app: &App, call: &Call, person: &str, event_id: &str) -> Result<Value, AppError> {
    call.caller.require(&[Role::Auditor])?;
    let person = person_id(person)?;
    receipt(&app.log, &person, event_id).await
}
