//! The domain of dynamoi: aggregates, their commands and events, and value types.
//!
//! Everything here is pure: no I/O, no clock, no async runtime, no database or HTTP crate
//! (CI checks `cargo tree -p domain -e normal`). Business rules live only in
//! [`Aggregate::handle`]; [`Aggregate::apply`] only folds events into state.
//!
//! Layout:
//! - [`aggregate`]: the [`Aggregate`] and [`DomainEvent`] traits every aggregate implements.
//! - [`policy`]: privacy-policy versions (policy clause P28).
//! - [`account`]: sign-up, the age gate ([`age`]), rectification, child accounts (P2, P27).
//! - [`consent`]: consents, policy acceptances, click ids, and the history fold (P6, P14, P15, P20, P28, P31).
//! - [`artist`]: artist profiles, teams, roles and invitations (P7, P13, P16).
//! - [`connection`]: platform connections with sealed tokens (P5, P9, P23, P25).
//! - [`campaign`]: campaigns and their lifecycle; AI creatives only under consent (P10, P14).
//! - [`spend`]: spend ledgers per campaign, platform and day; repeats, restatements, refusals (P1).
//! - [`billing`]: billing accounts, the fee rule, period statements with adjustments (P3, P11).
//! - [`privacy`]: data-subject requests, restriction of processing, erasure certificates (P22, P27, P29, P30).
//! - [`disclosure`]: the disclosure log, one event per outbound sharing of personal data (P17).
//! - [`retention`]: one record per day of what the retention job did under each rule (P24, P25).
//! - [`money`]: the maxima of money and count fields, and sums that cannot overflow.
//! - [`sealed`]: personal fields as the vault sealed them; the domain never sees plaintext.
//! - [`testing`]: the given/when/then harness that every business rule is tested with.
//! - [`versions`]: each event type's current version and the upcasters that bring an older
//!   stored payload to it; [`versions::decode`] is how a stored payload becomes an event.
//!
//! Why not `cqrs_es::Aggregate` directly: cqrs-es 0.5.0 depends on tokio (its `EventSink`
//! holds a `tokio::sync::Mutex`), which would break the rule that this crate pulls in no
//! runtime or I/O crate. The traits here keep cqrs-es's shape (`TYPE`, `Command`, `Event`,
//! `Error`, `handle`, `apply`, `event_type`, `event_version`) so the mapping stays one to one;
//! see `docs/adr/0001-pure-domain-traits.md`.

pub mod account;
pub mod age;
pub mod aggregate;
pub mod artist;
pub mod billing;
pub mod campaign;
pub mod card_number;
pub mod connection;
pub mod consent;
pub mod disclosure;
pub mod money;
pub mod policy;
pub mod privacy;
pub mod retention;
pub mod sealed;
pub mod spend;
pub mod testing;
pub mod versions;

pub use aggregate::{Aggregate, DomainEvent};
