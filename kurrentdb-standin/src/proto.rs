//! The gRPC messages and server traits generated (by `build.rs`) from `protos/`.
//!
//! Modules mirror the proto packages, since prost's generated code refers to sibling packages
//! through `super::` paths.
#![allow(
    clippy::all,
    clippy::pedantic,
    missing_docs,
    unreachable_pub,
    rustdoc::broken_intra_doc_links
)]

/// `event_store.client`: the shared messages (UUID, StreamIdentifier, Empty, ...).
pub mod event_store {
    /// `event_store.client`.
    pub mod client {
        tonic::include_proto!("event_store.client");

        /// `event_store.client.streams`: append, read, subscribe.
        pub mod streams {
            tonic::include_proto!("event_store.client.streams");
        }

        /// `event_store.client.server_features`: what the client asks right after connecting.
        pub mod server_features {
            tonic::include_proto!("event_store.client.server_features");
        }

        /// `event_store.client.gossip`: cluster discovery (`+discover` and multi-host strings).
        pub mod gossip {
            tonic::include_proto!("event_store.client.gossip");
        }
    }
}

/// `google.rpc`: the status type that `BatchAppendResp` refers to.
pub mod google {
    /// `google.rpc`.
    pub mod rpc {
        tonic::include_proto!("google.rpc");
    }
}
