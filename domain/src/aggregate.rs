//! The traits every aggregate and event implements: decide (`handle`) and evolve (`apply`).

use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt::Debug;

/// An event an aggregate records. Persisted events are an API boundary: a stored shape never
/// changes in place; a new shape gets a new version in [`DomainEvent::VERSIONS`], an upcaster in
/// [`DomainEvent::upcast_step`] and a golden fixture (see [`crate::versions`]).
pub trait DomainEvent: Serialize + DeserializeOwned + Clone + PartialEq + Debug + Send + Sync {
    /// Every event type this enum stores, with the current version of its stored shape: the
    /// registry that decoding checks a stored `(event_type, event_version)` against, and the
    /// one place a version is bumped.
    const VERSIONS: &'static [(&'static str, u32)];

    /// The name stored in the `event_type` column, e.g. `PolicyVersionPublished`.
    fn event_type(&self) -> String;

    /// The version of this event's stored shape, stored in the `event_version` column: its
    /// type's entry in [`DomainEvent::VERSIONS`]. Not to be overridden. `"0"` (a version that
    /// never decodes) for a type missing from `VERSIONS`, which `eventlog` refuses to append.
    fn event_version(&self) -> String {
        current_version::<Self>(&self.event_type()).unwrap_or(0).to_string()
    }

    /// One upcaster step: the stored payload of `event_type` at version `from` to version
    /// `from + 1`, a pure JSON → JSON function. Called by [`crate::versions::upcast`] only for
    /// versions below the current one; the default has no step, right while every type of the
    /// enum is at version 1.
    fn upcast_step(event_type: &str, from: u32, payload: serde_json::Value) -> Result<serde_json::Value, UpcastError> {
        let _ = payload;
        Err(missing_upcaster(event_type, from))
    }
}

/// A consistency boundary: its state is the fold of its events, and its rules decide which
/// events a command produces.
pub trait Aggregate: Default + Send + Sync {
    /// The aggregate type, stored in the `aggregate_type` column of every event.
    const TYPE: &'static str;
    /// What callers ask the aggregate to do.
    type Command;
    /// What the aggregate records.
    type Event: DomainEvent;
    /// Why a command was refused; shown to the caller, so it must never hold personal data.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Decides which events a command produces, or refuses it. All business rules live here.
    fn handle(&self, command: Self::Command) -> Result<Vec<Self::Event>, Self::Error>;

    /// Folds one committed event into the state. No rules, no failure: an event is a fact.
    fn apply(&mut self, event: Self::Event);
}

/// Why a stored payload cannot be brought to its current shape. Messages name types and
/// versions only, never a value of the payload (which may be personal).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UpcastError {
    /// The row's event type is not one this event enum stores.
    #[error("`{event_type}` is not an event type this code knows for the stream")]
    UnknownEventType { event_type: String },
    /// The row's version is not a whole number from 1.
    #[error("{event_type} is stored with version `{version}`, which is not a whole number from 1")]
    InvalidVersion { event_type: String, version: String },
    /// Stored by newer code: this code cannot know what the new shape means.
    #[error("{event_type} version {version} is newer than this code, which knows up to version {current}")]
    NewerVersion {
        event_type: String,
        version: u32,
        current: u32,
    },
    /// A version below the current one has no upcaster: a bug the fixture test catches.
    #[error("{event_type} has no upcaster from version {from}")]
    MissingUpcaster { event_type: String, from: u32 },
    /// The payload does not have the shape its stored version had.
    #[error("{event_type} version {from} does not have the shape its upcaster expects: {expected}")]
    UnexpectedShape {
        event_type: String,
        from: u32,
        expected: &'static str,
    },
}

/// The current version of `event_type` in `E`'s registry; `None` for a type `E` does not store.
pub fn current_version<E: DomainEvent>(event_type: &str) -> Option<u32> {
    E::VERSIONS
        .iter()
        .find(|(name, _)| *name == event_type)
        .map(|(_, version)| *version)
}

/// The error an upcaster answers for a `(event_type, from)` it has no step for.
pub fn missing_upcaster(event_type: &str, from: u32) -> UpcastError {
    UpcastError::MissingUpcaster {
        event_type: event_type.to_string(),
        from,
    }
}
