//! Starting and stopping the stand-in: [`Standin::start`] on 127.0.0.1:0 for tests,
//! [`Standin::start_with`] on a chosen address for the binary.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;

use crate::node::{Features, SingleNodeGossip};
use crate::proto::event_store::client::gossip::gossip_server::GossipServer;
use crate::proto::event_store::client::server_features::server_features_server::ServerFeaturesServer;
use crate::proto::event_store::client::streams::streams_server::StreamsServer;
use crate::store::Store;
use crate::streams::StreamsService;

/// The largest gRPC message the streams service takes, as the real server configures it
/// (`TFConsts.EffectiveMaxLogRecordSize`, just under 16 MiB); tonic's default is 4 MiB.
const MAX_MESSAGE: usize = 16 * 1024 * 1024;

/// Where and how to start a stand-in.
#[derive(Debug, Clone)]
pub struct StandinOptions {
    /// The address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// The host that gossip advertises (what `+discover` clients then connect to). Default:
    /// the listening IP, or 127.0.0.1 when that is unspecified (0.0.0.0 or ::).
    pub advertise_host: Option<String>,
}

impl Default for StandinOptions {
    fn default() -> Self {
        StandinOptions {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            advertise_host: None,
        }
    }
}

/// The stand-in server.
#[derive(Debug)]
pub struct Standin;

impl Standin {
    /// Starts an empty stand-in on 127.0.0.1 on a free port.
    pub async fn start() -> std::io::Result<StandinHandle> {
        Self::start_with(StandinOptions::default()).await
    }

    /// Starts an empty stand-in as `options` say. Returns once the port is bound: the client
    /// can connect at once.
    pub async fn start_with(options: StandinOptions) -> std::io::Result<StandinHandle> {
        let listener = TcpListener::bind(options.listen).await?;
        let addr = listener.local_addr()?;
        let advertise_host = options.advertise_host.unwrap_or_else(|| {
            if addr.ip().is_unspecified() {
                Ipv4Addr::LOCALHOST.to_string()
            } else {
                addr.ip().to_string()
            }
        });
        let store = Store::new();
        let shutdown = CancellationToken::new();
        let streams = StreamsServer::new(StreamsService::new(store.clone(), shutdown.clone()))
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE);
        let router = tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(Duration::from_secs(10)))
            .http2_keepalive_timeout(Some(Duration::from_secs(10)))
            .add_service(streams)
            .add_service(ServerFeaturesServer::new(Features))
            .add_service(GossipServer::new(SingleNodeGossip::new(
                advertise_host.clone(),
                addr.port(),
            )));
        let stop = shutdown.clone();
        let task = tokio::spawn(async move {
            router
                .serve_with_incoming_shutdown(TcpListenerStream::new(listener), stop.cancelled_owned())
                .await
        });
        tracing::info!(%addr, "KurrentDB stand-in listening");
        Ok(StandinHandle {
            addr,
            advertise_host,
            shutdown,
            task: Some(task),
        })
    }
}

/// A running stand-in. Dropping it stops the server too (without waiting).
#[derive(Debug)]
pub struct StandinHandle {
    addr: SocketAddr,
    advertise_host: String,
    shutdown: CancellationToken,
    task: Option<JoinHandle<Result<(), tonic::transport::Error>>>,
}

impl StandinHandle {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The connection string for the `kurrentdb` client:
    /// `kurrentdb://127.0.0.1:PORT?tls=false` (single node, no TLS, no credentials).
    pub fn url(&self) -> String {
        let host = if self.advertise_host.contains(':') {
            format!("[{}]", self.advertise_host)
        } else {
            self.advertise_host.clone()
        };
        format!("kurrentdb://{host}:{}?tls=false", self.addr.port())
    }

    /// Stops accepting, ends open subscriptions with `UNAVAILABLE` (as a stopping server
    /// does), and waits until the server has stopped.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.await??;
        }
        Ok(())
    }

    /// Waits until the server stops (after [`StandinHandle::shutdown`] elsewhere, or an error).
    pub async fn wait(mut self) -> anyhow::Result<()> {
        if let Some(task) = self.task.take() {
            task.await??;
        }
        Ok(())
    }

    /// A token that stops the server when cancelled (e.g. from a signal handler).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }
}

impl Drop for StandinHandle {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
