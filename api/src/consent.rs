//! The one consent check (P4, P6, P14, P15), the auditor's replay of a person's consents as
//! of an instant (P31), and consent receipts. All of them read the person's consent stream
//! from the event log itself, never a read model.

use crate::ApiError;
use chrono::{DateTime, SecondsFormat, Utc};
use domain::consent::{ConsentEvent, ConsentHistory, Consents, HistoryEntry, Purpose, Recorded};
use domain::Aggregate;
use eventlog::chain::{self, StreamVerification};
use eventlog::{EventLog, StoredEvent};
use serde::Serialize;
use serde_json::{json, Value};

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
) -> Result<(ConsentHistory, Vec<StoredEvent>), ApiError> {
    let events = log.load(Consents::TYPE, person_id).await?;
    let mut history = ConsentHistory::default();
    for stored in &events {
        if until.is_some_and(|t| stored.recorded_at > t) {
            break;
        }
        let event: ConsentEvent = stored.decode().map_err(|_| ApiError::Internal)?;
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
pub async fn check(log: &EventLog, person_id: &str, purpose: Purpose) -> Result<ConsentDecision, ApiError> {
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
pub async fn replay(log: &EventLog, person_id: &str, as_of: DateTime<Utc>) -> Result<Value, ApiError> {
    let (history, _) = history_until(log, person_id, Some(as_of)).await?;
    let verification: StreamVerification = chain::verify_stream(log.db(), Consents::TYPE, person_id).await?;
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
pub async fn receipt(log: &EventLog, person_id: &str, event_id: &str) -> Result<Value, ApiError> {
    let (history, events) = history_until(log, person_id, None).await?;
    let entry = history
        .history
        .iter()
        .find(|e| e.recorded.event_id == event_id)
        .ok_or_else(|| ApiError::NotFound("there is no such consent change for this person".into()))?;
    let stored = events
        .iter()
        .find(|e| e.event_id.to_string() == event_id)
        .ok_or(ApiError::Internal)?;
    let verification = chain::verify_stream(log.db(), Consents::TYPE, person_id).await?;
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
