//! dynamoi's HTTP adapter and process: configuration, authentication, the warp routes, the
//! `dynamoi` command line, and start-up. Every use case lives in the `app` crate; a route
//! parses its input, calls `app`, and renders the answer (or the error as problem+json).
//!
//! Layout:
//! - [`settings`]: one typed [`Settings`] from environment variables and an optional TOML file;
//! - [`startup`]: [`Application::build`] binds a listener (port 0 in tests), runs migrations,
//!   builds the [`app::App`], and serves with the projection workers, the durable workflows and
//!   the job scheduler until told to stop, then shuts down gracefully;
//! - [`auth`]: bearer JWTs as Supabase issues them (HS256), roles, development tokens;
//! - [`problem`]: [`ApiError`], the one mapping of errors (the application's included) to RFC
//!   9457 problem+json;
//! - [`routes`]: the HTTP routes; [`server`]: the accept loop (read timeouts, bounded graceful
//!   shutdown, problem+json for what hyper refuses); [`telemetry`]: tracing, request ids and
//!   Prometheus metrics;
//! - [`cli`]: `dynamoi serve | migrate | projections | workflows | jobs | audit | keys | sync |
//!   demo | billing | retention | token`.
//!
//! Invariant: handlers return responses; warp's `recover` only maps framework rejections
//! (unknown route, wrong method, body too large). Invariant: no token, key or secret is ever
//! logged or returned in an error. Invariant: no SQL here (`.ci/run` checks it).

pub mod auth;
pub mod cli;
pub mod edge;
pub mod problem;
pub mod route_table;
pub mod routes;
pub mod server;
pub mod settings;
pub mod startup;
pub mod telemetry;

pub use problem::ApiError;
pub use settings::Settings;
pub use startup::Application;
