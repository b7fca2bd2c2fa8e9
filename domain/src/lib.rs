//! The domain of dynamoi: aggregates, their commands and events, and value types.
//!
//! Everything here is pure: no I/O, no clock, no async runtime, no database or HTTP crate
//! (CI checks `cargo tree -p domain -e normal`). Business rules live only in
//! [`Aggregate::handle`]; [`Aggregate::apply`] only folds events into state.
//!
//! Layout:
//! - [`aggregate`]: the [`Aggregate`] and [`DomainEvent`] traits every aggregate implements.
//! - [`policy`]: privacy-policy versions (policy clause P28).
//! - [`testing`]: the given/when/then harness that every business rule is tested with.
//!
//! Why not `cqrs_es::Aggregate` directly: cqrs-es 0.5.0 depends on tokio (its `EventSink`
//! holds a `tokio::sync::Mutex`), which would break the rule that this crate pulls in no
//! runtime or I/O crate. The traits here keep cqrs-es's shape (`TYPE`, `Command`, `Event`,
//! `Error`, `handle`, `apply`, `event_type`, `event_version`) so the mapping stays one to one;
//! see `docs/adr/0001-pure-domain-traits.md`.

pub mod aggregate;
pub mod policy;
pub mod testing;

pub use aggregate::{Aggregate, DomainEvent};
