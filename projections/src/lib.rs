//! The projection engine and the read models it builds.
//!
//! A projection folds the global feed into read-model tables. Each one runs as a catch-up
//! worker: read a batch after its checkpoint, apply it, and write the read-model changes and
//! the new checkpoint in **one transaction**, so each event takes effect exactly once whatever
//! crashes in between. Workers tail the live feed, woken in-process after each commit and by a
//! short poll (commits of other processes).
//!
//! Versions and rebuilds are blue/green: a projection's tables exist per *generation*
//! (`policy_versions_g3`), the active generation is served through views named after the
//! tables (`policy_versions`), and a new generation rebuilds beside the active one, taking over
//! in one transaction when it has caught up.
//!
//! Invariants:
//! - read models are derived and rebuildable; they never cause side effects;
//! - a failing event stalls only its own projection, which retries with backoff;
//! - on PostgreSQL one process at a time runs a projection (an advisory lock), and the
//!   checkpoint update is conditional, so even two runners could not apply a batch twice.
//!
//! Layout: [`projection`] (the trait and the transaction handle), [`checkpoint`] (the
//! `projection_generations` table), [`engine`] (workers, status, waiting for a position,
//! rebuilds), [`read_models`] (the projections themselves).

pub mod checkpoint;
pub mod engine;
pub mod projection;
pub mod read_models;

pub use engine::{Engine, EngineConfig, ProjectionStatus, RebuildProgress};
pub use projection::{Projection, ProjectionError, ReadTx, Target};

/// Every projection dynamoi runs, in the order they are started.
pub fn all() -> Vec<std::sync::Arc<dyn Projection>> {
    vec![
        std::sync::Arc::new(read_models::policy_versions::PolicyVersions),
        std::sync::Arc::new(read_models::stream_index::StreamIndex),
        std::sync::Arc::new(read_models::person_index::PersonIndex),
        std::sync::Arc::new(read_models::accounts::Accounts),
        std::sync::Arc::new(read_models::consent_ledger::ConsentLedger),
        std::sync::Arc::new(read_models::connections::Connections),
        std::sync::Arc::new(read_models::artist_access::ArtistAccess),
        std::sync::Arc::new(read_models::dashboards::Dashboards),
        std::sync::Arc::new(read_models::billing::Billing),
        std::sync::Arc::new(read_models::privacy_requests::PrivacyRequests),
    ]
}
