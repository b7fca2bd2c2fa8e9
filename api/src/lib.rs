//! dynamoi's service: HTTP API (warp), configuration, authentication, the projection workers,
//! and the `dynamoi` command line.
//!
//! Layout:
//! - [`settings`]: one typed [`Settings`] from environment variables and an optional TOML file;
//! - [`startup`]: [`Application::build`] binds a listener (port 0 in tests), runs migrations and
//!   the projection engine, serves until told to stop, then shuts down gracefully;
//! - [`auth`]: bearer JWTs as Supabase issues them (HS256), roles, development tokens;
//! - [`problem`]: [`ApiError`], the one mapping of errors to RFC 9457 problem+json;
//! - [`routes`]: the HTTP routes; [`telemetry`]: tracing, request ids and Prometheus metrics;
//! - [`consent`]: the one consent check, the auditor's replay and consent receipts;
//! - [`ingest`]: bulk spend ingestion, one statement per batch;
//! - [`billing`]: usage, period statements, the meter reporter, reconciliation (P3, P11);
//! - [`outbox`]: the invitation mailer, sending each invitation email exactly once;
//! - [`sync`]: the spend sync from Meta and Google Ads and its daily scheduler;
//! - [`connection_tokens`]: live connection details, tokens opened for one call, invalidation;
//! - [`privacy`]: data-subject requests carried out step by step, the access export, erasure (P22);
//! - [`disclosure`]: recording each outbound sharing of personal data (P17);
//! - [`retention`]: the retention rules per data category and the job that applies them (P24, P25);
//! - [`demo`]: `dynamoi demo`;
//! - [`cli`]: `dynamoi serve | migrate | projections | audit | keys | sync | demo | token`.
//!
//! Invariant: handlers return responses; warp's `recover` only maps framework rejections
//! (unknown route, wrong method, body too large). Invariant: no token, key or secret is ever
//! logged or returned in an error.

pub mod auth;
pub mod billing;
pub mod cli;
pub mod connection_tokens;
pub mod consent;
pub mod demo;
pub mod disclosure;
pub mod ingest;
pub mod outbox;
pub mod platforms;
pub mod privacy;
pub mod problem;
pub mod retention;
pub mod routes;
pub mod settings;
pub mod startup;
pub mod sync;
pub mod telemetry;

pub use problem::ApiError;
pub use settings::Settings;
pub use startup::Application;
