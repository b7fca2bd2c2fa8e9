//! Events as appended and as stored, and the metadata every event carries.

use crate::Position;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Who and what caused an event. Stored as the `metadata` JSON object of every event.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMetadata {
    /// Who issued the command: `person:<id>`, `support:<id>`, `service:<name>`, `system`.
    #[serde(default)]
    pub actor: String,
    /// The request that carried the command, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The event (id) that caused this command, when another event did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<String>,
}

impl EventMetadata {
    /// Metadata for work the system does by itself.
    pub fn system() -> Self {
        EventMetadata {
            actor: "system".into(),
            ..Default::default()
        }
    }
}

/// An event about to be appended.
#[derive(Clone, Debug, PartialEq)]
pub struct NewEvent {
    pub event_type: String,
    pub event_version: String,
    pub payload: serde_json::Value,
}

impl NewEvent {
    /// Serialises a domain event.
    pub fn from_domain<E: domain::DomainEvent>(event: &E) -> Result<NewEvent, serde_json::Error> {
        Ok(NewEvent {
            event_type: event.event_type(),
            event_version: event.event_version(),
            payload: serde_json::to_value(event)?,
        })
    }
}

/// The events one aggregate appends, and the sequence it expects to follow (0 for a new one).
#[derive(Clone, Debug)]
pub struct StreamAppend {
    pub aggregate_type: String,
    pub aggregate_id: String,
    /// The aggregate's last sequence when the command was decided; the events get the next ones.
    pub expected_sequence: i64,
    pub events: Vec<NewEvent>,
}

/// An event as stored in the log and read from the feed.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredEvent {
    pub position: Position,
    pub event_id: Uuid,
    pub aggregate_type: String,
    pub aggregate_id: String,
    /// 1 for an aggregate's first event, then 2, 3, … without gaps.
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    pub payload: serde_json::Value,
    pub metadata: EventMetadata,
    pub recorded_at: DateTime<Utc>,
    /// This event's link in its stream's hash chain (`None` for rows written by other tools).
    pub chain_hash: Option<String>,
}

/// An event ready for the INSERT: serialised, numbered, identified and chained.
pub(crate) struct PreparedEvent {
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    pub payload: String,
    pub event_id: Uuid,
    pub chain_hash: String,
}

impl StoredEvent {
    /// Decodes the payload as a domain event.
    pub fn decode<E: domain::DomainEvent>(&self) -> Result<E, serde_json::Error> {
        E::deserialize(&self.payload)
    }
}
