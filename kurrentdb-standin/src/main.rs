//! `kurrentdb-standin`: runs the in-memory KurrentDB stand-in on an address until Ctrl-C, so
//! that `dynamoi serve` (or anything using the `kurrentdb` client) can run against it.

use std::io::Write;
use std::net::SocketAddr;

use clap::Parser;
use kurrentdb_standin::{Standin, StandinOptions};

/// An in-memory stand-in of KurrentDB's gRPC server (no persistence, no TLS, no auth).
#[derive(Debug, Parser)]
#[command(name = "kurrentdb-standin", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:2113", env = "KURRENTDB_STANDIN_LISTEN")]
    listen: SocketAddr,
    /// Host that gossip advertises to `+discover` clients (default: the listening IP, or
    /// 127.0.0.1 when listening on 0.0.0.0).
    #[arg(long)]
    advertise_host: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let handle = Standin::start_with(StandinOptions {
        listen: args.listen,
        advertise_host: args.advertise_host,
    })
    .await?;
    writeln!(std::io::stdout(), "{}", handle.url())?;
    let token = handle.shutdown_token();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            tracing::info!("Ctrl-C: stopping");
        }
        token.cancel();
    });
    handle.wait().await
}
