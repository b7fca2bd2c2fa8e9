//! dynamoi's benchmark harness: every path of ours measured against a raw baseline that runs
//! interleaved with it (A B A B …) in the same process and the same database, reported as
//! ratios, since absolute times on these shared machines move 20–40% between runs
//! (`../shared/design/PERFORMANCE.md`).
//!
//! Layout:
//! - [`databases`]: a private PostgreSQL database or SQLite file per scenario or test, dropped
//!   after (the same rules as `tests/src/lib.rs`: under `CI=true` an unreachable PostgreSQL is a
//!   failure, never a skip);
//! - [`wire`]: a counting proxy that sits between sqlx and PostgreSQL and reads the protocol,
//!   so commits, round trips and statements are counted as they cross the wire (the counters of
//!   `bench/tests/counters.rs` and of the harness's own report);
//! - [`report`]: samples, pairs, medians, ratios, targets, the table and the JSON;
//! - [`fixtures`]: the commands and readings the scenarios send;
//! - [`http`]: the keep-alive HTTP/1.1 load generator and the warp hello-world server that the
//!   binary re-executes itself as (`bench load`, `bench hello`);
//! - [`scenarios`]: one module per scenario of issue 8.

pub mod databases;
pub mod fixtures;
pub mod http;
pub mod report;
pub mod scenarios;
pub mod wire;
