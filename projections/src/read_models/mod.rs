//! The read models: each a [`crate::Projection`] with its tables under `migrations/read_models`.

pub mod accounts;
pub mod artist_access;
pub mod billing;
pub mod connections;
pub mod consent_ledger;
pub mod dashboards;
pub mod person_index;
pub mod policy_versions;
pub mod privacy_requests;
pub mod stream_index;
