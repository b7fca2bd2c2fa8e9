//! The traits every aggregate and event implements: decide (`handle`) and evolve (`apply`).

use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt::Debug;

/// An event an aggregate records. Persisted events are an API boundary: a stored shape never
/// changes in place; a new shape gets a new `event_version` and an upcaster.
pub trait DomainEvent: Serialize + DeserializeOwned + Clone + PartialEq + Debug + Send + Sync {
    /// The name stored in the `event_type` column, e.g. `PolicyVersionPublished`.
    fn event_type(&self) -> String;
    /// The version of this event's stored shape, stored in the `event_version` column.
    fn event_version(&self) -> String;
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
