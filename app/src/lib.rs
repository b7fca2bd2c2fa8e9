//! dynamoi's application layer: every use case the HTTP API and the command line offer
//! (commands, queries, durable workflows, scheduled jobs), with no knowledge of HTTP.
//!
//! Layout:
//! - [`application`]: [`App`] (the log, read models, vault, outbound clients, clock and
//!   configuration every use case reaches) and [`Call`] (who calls, in which request);
//! - [`caller`]: [`Caller`] and [`Role`]; [`error`]: [`AppError`], the one error of every use case;
//! - shared by the use cases: [`personal`] (checks of personal values, sealing and opening),
//!   [`restriction`] (the one restriction check, P22), [`lookup_guard`] (the extension's
//!   allowance and cache), [`platforms`] (the outbound clients);
//! - use cases by subject: [`policies`] (P28), [`people`] (sign-up, profile, closing, child
//!   accounts; P2, P27), [`consent`] (the one consent check, consents, the auditor's replay
//!   and receipts; P6, P14, P15, P20, P31), [`artists`] (teams and invitations; P7, P13, P16),
//!   [`connections`] (tokens sealed, assets, invalidation; P5, P9, P12, P19, P23, P25),
//!   [`extension`] (P8), [`campaigns`] (P10, P14), [`ingest`] and [`sync`] (spend readings;
//!   P1), [`dashboards`] (P10, P26), [`billing`] (P3, P11), [`privacy`] (data-subject
//!   requests, export, erasure; P22, P27, P29, P30), [`disclosure`] (P17), [`retention`]
//!   (P24, P25), [`audit`] (hash chains; P18), [`demo`];
//! - [`workflows`]: the engine of the durable workflows (process managers) that call processors
//!   or span several commands, each item retried on its own ([`retry`]) and parked when it keeps
//!   failing; [`workflow_admin`]: every workflow by name, their runners, and operators' view
//!   and actions;
//! - [`jobs`]: the scheduled jobs, each with its own time, run key and lease ([`schedule`]).
//!
//! Modules form no import circle (checked by `.ci/module_cycles.py`): the shared modules above
//! depend on none of the use cases; a use case depends on shared modules and on use cases
//! below it (privacy on consent and connections; jobs on sync, billing, retention, privacy);
//! `workflow_admin` and `jobs` are at the top.
//!
//! Invariants: no warp, no HTTP status and no SQL here (`.ci/run` checks both); the time comes
//! from [`App::now`] (the one clock); personal values are sealed before a command sees them
//! and opened only to answer; every outbound call carrying personal data is recorded first as
//! a disclosure.

pub mod application;
pub mod artists;
pub mod audit;
pub mod billing;
pub mod caller;
pub mod campaigns;
pub mod connections;
pub mod consent;
pub mod dashboards;
pub mod demo;
pub mod disclosure;
pub mod error;
pub mod extension;
pub mod ingest;
pub mod jobs;
pub mod lookup_guard;
pub mod people;
pub mod personal;
pub mod platforms;
pub mod policies;
pub mod privacy;
pub mod restriction;
pub mod retention;
pub mod retry;
pub mod schedule;
pub mod sync;
pub mod workflow_admin;
pub mod workflows;

pub use application::{system_metadata, App, Call, Config};
pub use caller::{Caller, Role};
pub use error::AppError;
