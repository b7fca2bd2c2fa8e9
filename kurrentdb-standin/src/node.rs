//! What the client asks a node right after connecting: `ServerFeatures.GetSupportedMethods`,
//! and `Gossip.Read` for cluster discovery (`+discover` or several hosts in the string).

use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::proto::event_store::client::gossip::gossip_server::Gossip;
use crate::proto::event_store::client::gossip::{member_info, ClusterInfo, EndPoint, MemberInfo};
use crate::proto::event_store::client::server_features::server_features_server::ServerFeatures;
use crate::proto::event_store::client::server_features::{SupportedMethod, SupportedMethods};
use crate::proto::event_store::client::{uuid as wire_uuid, Empty, Uuid as WireUuid};

/// The server version the stand-in reports: the 25.x gRPC surface it imitates.
pub const REPORTED_VERSION: &str = "25.0.0";

/// `ServerFeatures`: lists the methods the stand-in serves, named as the real server names
/// them (lower-case method and service). `batchappend` is left out, so the client's
/// `batch_append` answers `UnsupportedFeature` instead of calling it.
#[derive(Debug, Clone, Default)]
pub struct Features;

#[tonic::async_trait]
impl ServerFeatures for Features {
    async fn get_supported_methods(&self, _request: Request<Empty>) -> Result<Response<SupportedMethods>, Status> {
        let method = |service: &str, name: &str, features: &[&str]| SupportedMethod {
            method_name: name.to_owned(),
            service_name: service.to_owned(),
            features: features.iter().map(|f| (*f).to_owned()).collect(),
        };
        let methods = vec![
            method("event_store.client.streams.streams", "read", &["position", "events"]),
            method("event_store.client.streams.streams", "append", &[]),
            method("event_store.client.gossip.gossip", "read", &[]),
            method(
                "event_store.client.server_features.serverfeatures",
                "getsupportedmethods",
                &[],
            ),
        ];
        Ok(Response::new(SupportedMethods {
            methods,
            event_store_server_version: REPORTED_VERSION.to_owned(),
        }))
    }
}

/// `Gossip`: a cluster of one leader, alive, at the advertised endpoint.
#[derive(Debug, Clone)]
pub struct SingleNodeGossip {
    instance_id: Uuid,
    host: String,
    port: u16,
}

impl SingleNodeGossip {
    /// Gossip that advertises `host:port` as the leader's endpoint.
    pub fn new(host: String, port: u16) -> Self {
        SingleNodeGossip {
            instance_id: Uuid::new_v4(),
            host,
            port,
        }
    }
}

#[tonic::async_trait]
impl Gossip for SingleNodeGossip {
    async fn read(&self, _request: Request<Empty>) -> Result<Response<ClusterInfo>, Status> {
        let value = self.instance_id.as_u128();
        let ticks = crate::store::now_ticks();
        let member = MemberInfo {
            instance_id: Some(WireUuid {
                value: Some(wire_uuid::Value::Structured(wire_uuid::Structured {
                    most_significant_bits: (value >> 64) as u64 as i64,
                    least_significant_bits: value as u64 as i64,
                })),
            }),
            time_stamp: ticks,
            state: member_info::VNodeState::Leader as i32,
            is_alive: true,
            http_end_point: Some(EndPoint {
                address: self.host.clone(),
                port: u32::from(self.port),
            }),
        };
        Ok(Response::new(ClusterInfo { members: vec![member] }))
    }
}
