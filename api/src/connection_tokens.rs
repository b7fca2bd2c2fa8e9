//! A live connection's details and tokens, read from the write side and opened from the vault
//! just for one outbound call (P9, P19), and what happens when a platform rejects a token: the
//! connection is invalidated and its key destroyed at once (P25). Used by the asset listing and
//! by the spend sync.

use crate::routes::connections::{connection_error, connection_key};
use crate::ApiError;
use domain::connection::{Connection, ConnectionCommand, ConnectionDetails, ConnectionEvent, InvalidationReason};
use domain::sealed::Sealed;
use eventlog::{EventLog, EventMetadata};
use secrecy::SecretString;
use vault::{Opened, SealedValue, Vault};

/// What a caller is told when a token no longer works.
pub const NEEDS_REAUTHORISATION: &str = "the platform no longer accepts this connection's token; connect it again";

/// The live connection's details, from its own stream (the write side: never stale); a 409
/// when the connection is not live.
pub async fn live_details(log: &EventLog, connection_id: &str) -> Result<ConnectionDetails, ApiError> {
    let events = log.load(<Connection as domain::Aggregate>::TYPE, connection_id).await?;
    let mut live = None;
    for stored in events {
        match stored.decode::<ConnectionEvent>().map_err(|_| ApiError::Internal)? {
            ConnectionEvent::Connected { details, .. } => live = Some(details),
            _ => live = None,
        }
    }
    live.ok_or_else(|| ApiError::Conflict("this platform is not connected".into()))
}

/// Opens one sealed token of a connection; an erased key is a 409 asking to reconnect.
pub async fn open_token(
    vault: &Vault,
    connection_id: &str,
    field: &str,
    sealed: &Sealed,
) -> Result<SecretString, ApiError> {
    let sealed: SealedValue = serde_json::from_value(sealed.0.clone()).map_err(|_| ApiError::Internal)?;
    match vault
        .open_string(&connection_key(connection_id), field, &sealed)
        .await?
    {
        Opened::Plain(token) => Ok(SecretString::from(token.to_string())),
        Opened::Erased => Err(ApiError::Conflict(NEEDS_REAUTHORISATION.into())),
    }
}

/// Records that the platform rejected the connection's token and destroys its key at once;
/// returns the 409 to answer with.
pub async fn invalidate(
    log: &EventLog,
    vault: &Vault,
    connection_id: &str,
    metadata: &EventMetadata,
) -> Result<ApiError, ApiError> {
    log.execute::<Connection>(
        connection_id,
        ConnectionCommand::Invalidate {
            reason: InvalidationReason::TokenRejected,
        },
        metadata,
    )
    .await
    .map_err(connection_error)?;
    vault.destroy(&connection_key(connection_id), "token_rejected").await?;
    Ok(ApiError::Conflict(NEEDS_REAUTHORISATION.into()))
}
