//! An in-memory stand-in of KurrentDB's gRPC server for the official `kurrentdb` client.
//!
//! The rest of these docs is `README.md`: how it works, what is faithful to the real server,
//! and every known difference from it.
#![doc = include_str!("../README.md")]
// gRPC handlers answer `tonic::Status` (176 bytes); helpers return it as it is.
#![allow(clippy::result_large_err)]

mod filter;
mod node;
pub mod proto;
mod server;
mod store;
mod streams;

pub use server::{Standin, StandinHandle, StandinOptions};
