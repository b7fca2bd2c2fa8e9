//! Events as appended and as stored, and the metadata every event carries.

use crate::Position;
use chrono::{DateTime, Utc};
use domain::versions::DecodeError;
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

/// An event about to be appended, its payload already the JSON text that is stored (and
/// hashed into its stream's chain) byte for byte: serialised once, straight from the domain
/// event, never held as a `serde_json::Value` (a bulk ingest of 10,000 readings held ~30 MiB
/// of `Value` maps per request for text it wrote once; heaptrack, `bench memory`).
#[derive(Clone, Debug)]
pub struct NewEvent {
    pub event_type: String,
    pub event_version: String,
    pub payload: Box<serde_json::value::RawValue>,
}

impl PartialEq for NewEvent {
    fn eq(&self, other: &NewEvent) -> bool {
        self.event_type == other.event_type
            && self.event_version == other.event_version
            && self.payload.get() == other.payload.get()
    }
}

impl NewEvent {
    /// Serialises a domain event under its type's current version. An event whose type is
    /// missing from its enum's `VERSIONS` is refused, so nothing is stored under no version.
    pub fn from_domain<E: domain::DomainEvent>(event: &E) -> Result<NewEvent, serde_json::Error> {
        let (event_type, version) =
            domain::versions::stored_as(event).map_err(<serde_json::Error as serde::ser::Error>::custom)?;
        Ok(NewEvent {
            event_type,
            event_version: version.to_string(),
            payload: serde_json::value::to_raw_value(event)?,
        })
    }

    /// An event of `event_type` at `event_version` whose payload is `payload` (events of no
    /// domain type: other tools' rows, tests).
    pub fn json(event_type: &str, event_version: &str, payload: &serde_json::Value) -> NewEvent {
        NewEvent {
            event_type: event_type.to_string(),
            event_version: event_version.to_string(),
            // A `Value` always serialises (its map keys are strings).
            payload: serde_json::value::to_raw_value(payload).unwrap_or_else(|_| null_payload()),
        }
    }

    /// The payload as a JSON value.
    pub fn payload_value(&self) -> serde_json::Value {
        // The text came from a serialiser, so it parses.
        serde_json::from_str(self.payload.get()).unwrap_or(serde_json::Value::Null)
    }
}

fn null_payload() -> Box<serde_json::value::RawValue> {
    serde_json::value::RawValue::from_string("null".into()).expect("`null` is JSON")
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

/// One stored event with the texts its chain hash covers, exactly as stored (see `chain`).
pub(crate) struct ChainRow {
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    pub event_id: String,
    pub recorded_at: DateTime<Utc>,
    pub payload: String,
    pub metadata: String,
    pub chain_hash: Option<String>,
}

/// One stored event with only what folding it into its aggregate needs, its payload still the
/// stored text (what [`crate::EventLog::load_states`] reads).
pub(crate) struct FoldRow {
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    pub payload: String,
    pub chain_hash: Option<String>,
}

impl FoldRow {
    /// From a row of the columns aggregate_id, sequence, event_type, event_version, payload
    /// (as text) and chain_hash, in that order, on either SQL backend.
    pub(crate) fn from_row<'r, R: sqlx::Row>(row: &'r R) -> Result<FoldRow, sqlx::Error>
    where
        usize: sqlx::ColumnIndex<R>,
        String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    {
        Ok(FoldRow {
            aggregate_id: row.try_get(0)?,
            sequence: row.try_get(1)?,
            event_type: row.try_get(2)?,
            event_version: row.try_get(3)?,
            payload: row.try_get(4)?,
            chain_hash: row.try_get(5)?,
        })
    }
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
    /// Decodes the payload as a domain event of `E`, the event enum of this row's aggregate
    /// type: by the row's event type and version, through `E`'s upcasters when the row is
    /// older than the code (`domain::versions::decode`). An unknown type, a version newer than
    /// the code or a payload of the wrong shape is a [`DecodeError`].
    pub fn decode<E: domain::DomainEvent>(&self) -> Result<E, DecodeError> {
        domain::versions::decode::<E>(&self.event_type, &self.event_version, &self.payload)
    }
}
