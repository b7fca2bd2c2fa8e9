//! The event log: where every fact of dynamoi is appended, and the global feed that
//! projections read.
//!
//! Two backends sit behind one type, [`EventLog`]:
//! - **SQLite**, the embedded default: the sqlite-es `events` table plus a `global_position`
//!   assigned inside the single writing statement (SQLite has one writer at a time, so the
//!   position is gap-free and commit-ordered); WAL with `synchronous=FULL`.
//! - **PostgreSQL**: the postgres-es `events` table plus `global_position` (identity),
//!   `transaction_id xid8 DEFAULT pg_current_xact_id()` and `recorded_at`. The feed reads in
//!   `(transaction_id, global_position)` order and never past the lowest id of a still-open
//!   transaction that writes events (each takes the feed-writer lock first, migration 0011), so
//!   an event whose transaction is still open can never be skipped by a reader, and a foreign
//!   open transaction (psql, pg_dump) holds nothing back.
//!
//! - **KurrentDB** ([`kurrent`], selected by `DYNAMOI_EVENT_STORE_URL=kurrentdb://…`): one
//!   KurrentDB stream per aggregate, the feed is `$all` filtered to dynamoi's namespace, a
//!   [`Position`] is KurrentDB's (commit, prepare). The SQL [`Db`] still holds read models,
//!   checkpoints, the vault, idempotency records, workflow items and job claims. A
//!   multi-stream append is one KurrentDB append per stream (see
//!   [`EventLog::append_streams`]).
//!
//! Invariants each backend keeps:
//! - a command's events are written by one statement in one commit;
//! - a concurrent append to the same aggregate is a typed [`LogError::Conflict`];
//! - the feed yields every committed event exactly once, in commit order, from any cursor;
//! - an append returns the feed [`Position`] of its last event: the consistency token.
//!
//! Every stream is a hash chain ([`chain`]): an edited event is detected by `verify_stream`.
//!
//! Rows are decoded only through [`StoredEvent::decode`], which goes by the row's event type and
//! version through the domain's upcasters (`domain::versions`): an old stored shape is brought to
//! the current one before the domain sees it; an unknown type or a newer version is a
//! [`DecodeError`].
//!
//! Layout: [`db`] (pools, migrations, dialect dispatch), [`event`] (event and metadata types),
//! [`position`], `postgres`/`sqlite` (the SQL of each backend), [`kept_connections`] (the
//! PostgreSQL connections one-statement appends and reads hold, given back without a ping), [`log`] (the [`EventLog`]),
//! [`command`] (load, decide, append with retry on conflict), [`locks`] (per-aggregate turns), [`idempotency`] (Idempotency-Key
//! records of command endpoints), [`outbox`] (outbox checkpoints), [`scheduled`] (one run per job
//! and day across instances, under a lease), [`workflow`] (the work items of durable workflows).

pub mod aggregate_cache;
pub mod chain;
pub mod command;
pub mod db;
pub mod error;
pub mod event;
pub mod idempotency;
pub mod kept_connections;
pub mod kurrent;
pub mod locks;
pub mod log;
pub mod outbox;
pub mod position;
mod postgres;
pub mod scheduled;
mod sqlite;
pub mod workflow;

pub use command::{CommandError, CommandOutcome};
pub use db::{Db, Dialect};
pub use domain::versions::DecodeError;
pub use error::LogError;
pub use event::{EventMetadata, NewEvent, StoredEvent, StreamAppend};
pub use kept_connections::{PgReader, Reader, SqliteReader};
pub use kurrent::KurrentStore;
pub use log::{Backend, EventLog, FeedHead, FeedHoldback};
pub use position::Position;
/// The statement that finds the newest visible position on PostgreSQL (its plan is tested).
pub use postgres::HEAD as POSTGRES_HEAD;
