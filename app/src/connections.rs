//! Platform connections (P5, P9, P12, P19, P23, P25): connect with the tokens of the front
//! end's OAuth callback (sealed at once with AES-256-GCM under the connection's own key), list
//! (no token ever leaves), disconnect (the key is destroyed at once), the assets available for
//! campaign creation fetched through the platforms' APIs, and what happens when a platform
//! rejects a token: the connection is invalidated and its key destroyed at once (P25).
//!
//! A live connection's details and tokens are read from the write side (its own stream) and
//! opened from the vault just for one outbound call (P9, P19); the spend sync and the erasure
//! use the same functions.

use crate::disclosure;
use crate::error::corrupt;
use crate::{App, AppError, Call, Role};
use connectors::ConnectorError;
use domain::connection::{
    Connection, ConnectionCommand, ConnectionDetails, ConnectionError, ConnectionEvent, InvalidationReason, Platform,
};
use domain::disclosure::{Processor, Purpose};
use domain::sealed::Sealed;
use eventlog::{CommandError, EventLog, EventMetadata};
use projections::read_models::connections::{self as read_model, ConnectionRow};
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::{json, Value};
use vault::{KeyRef, Opened, SealedValue, Vault};

/// What a caller is told when a token no longer works.
pub const NEEDS_REAUTHORISATION: &str = "the platform no longer accepts this connection's token; connect it again";

/// The live connection's details, from its own stream (the write side: never stale); a 409
/// when the connection is not live.
pub async fn live_details(log: &EventLog, connection_id: &str) -> Result<ConnectionDetails, AppError> {
    let events = log.load(<Connection as domain::Aggregate>::TYPE, connection_id).await?;
    let mut live = None;
    for stored in events {
        match stored
            .decode::<ConnectionEvent>()
            .map_err(|_| corrupt("a connection event"))?
        {
            ConnectionEvent::Connected { details, .. } => live = Some(details),
            _ => live = None,
        }
    }
    live.ok_or_else(|| AppError::Conflict("this platform is not connected".into()))
}

/// Opens one sealed token of a connection; an erased key is a 409 asking to reconnect.
pub async fn open_token(
    vault: &Vault,
    connection_id: &str,
    field: &str,
    sealed: &Sealed,
) -> Result<SecretString, AppError> {
    let sealed: SealedValue = serde_json::from_value(sealed.0.clone()).map_err(|_| corrupt("a sealed token"))?;
    match vault
        .open_string(&connection_key(connection_id), field, &sealed)
        .await?
    {
        Opened::Plain(token) => Ok(SecretString::from(token.to_string())),
        Opened::Erased => Err(AppError::Conflict(NEEDS_REAUTHORISATION.into())),
    }
}

/// Records that the platform rejected the connection's token and destroys its key at once;
/// returns the 409 to answer with.
pub async fn invalidate(
    log: &EventLog,
    vault: &Vault,
    connection_id: &str,
    metadata: &EventMetadata,
) -> Result<AppError, AppError> {
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
    Ok(AppError::Conflict(NEEDS_REAUTHORISATION.into()))
}

pub fn connection_error(error: CommandError<ConnectionError>) -> AppError {
    match error {
        CommandError::Rejected(rule @ (ConnectionError::AlreadyConnected | ConnectionError::NotConnected)) => {
            AppError::Conflict(rule.to_string())
        }
        CommandError::Rejected(rule) => AppError::Validation(rule.to_string()),
        CommandError::Log(log) => log.into(),
    }
}

/// The key that seals a connection's tokens.
pub fn connection_key(connection_id: &str) -> KeyRef {
    KeyRef::connection(connection_id)
}

fn platform(raw: &str) -> Result<Platform, AppError> {
    raw.parse().map_err(AppError::NotFound)
}

/// What connecting a platform takes: the ids and tokens of the front end's OAuth callback.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectRequest {
    pub platform: Platform,
    #[serde(default)]
    pub artist_id: Option<String>,
    #[serde(default)]
    pub page_id: Option<String>,
    #[serde(default)]
    pub instagram_actor_id: Option<String>,
    #[serde(default)]
    pub access_token: Option<String>,
    #[serde(default)]
    pub channel_id: Option<String>,
    #[serde(default)]
    pub channel_name: Option<String>,
    #[serde(default)]
    pub customer_id: Option<String>,
    #[serde(default)]
    pub refresh_token: Option<String>,
}

fn required(field: &'static str, value: Option<String>) -> Result<String, AppError> {
    value
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| AppError::Validation(format!("{field} is required for this platform")))
}

async fn seal_token(app: &App, connection_id: &str, field: &str, token: &str) -> Result<Sealed, AppError> {
    if token.len() > 4096 || token.chars().any(char::is_control) {
        return Err(AppError::Validation(format!("{field} is not a token")));
    }
    let sealed = app
        .vault
        .seal(&connection_key(connection_id), field, token.as_bytes())
        .await?;
    Ok(Sealed(
        serde_json::to_value(sealed).map_err(|_| corrupt("a sealed token"))?,
    ))
}

/// What connecting did: the connection and the consistency token of its event.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Connected {
    pub connection_id: String,
    pub platform: Platform,
    pub position: Option<String>,
}

/// Connects one platform of the calling person: refused while processing is restricted (P22),
/// or while the platform is connected already (before anything is sealed: a new key would
/// replace the live one).
pub async fn connect(app: &App, call: &Call, request: ConnectRequest) -> Result<Connected, AppError> {
    let caller = &call.caller;
    caller.require(&[Role::Person])?;
    crate::restriction::ensure_may_process(&app.log, &caller.subject).await?;
    let connection_id = request.platform.connection_id(&caller.subject);
    let (connection, _, _) = app.log.load_aggregate::<Connection>(&connection_id).await?;
    if connection.is_live() {
        return Err(AppError::Conflict(ConnectionError::AlreadyConnected.to_string()));
    }
    let details = match request.platform {
        Platform::Spotify => ConnectionDetails::Spotify {
            artist_id: required("artist_id", request.artist_id)?,
        },
        Platform::Meta => ConnectionDetails::Meta {
            page_id: required("page_id", request.page_id)?,
            instagram_actor_id: request.instagram_actor_id,
            access_token: seal_token(
                app,
                &connection_id,
                "access_token",
                &required("access_token", request.access_token)?,
            )
            .await?,
        },
        Platform::Youtube => ConnectionDetails::Youtube {
            channel_id: required("channel_id", request.channel_id)?,
            channel_name: required("channel_name", request.channel_name)?,
            refresh_token: seal_token(
                app,
                &connection_id,
                "refresh_token",
                &required("refresh_token", request.refresh_token)?,
            )
            .await?,
        },
        Platform::GoogleAds => ConnectionDetails::GoogleAds {
            customer_id: required("customer_id", request.customer_id)?,
            refresh_token: seal_token(
                app,
                &connection_id,
                "refresh_token",
                &required("refresh_token", request.refresh_token)?,
            )
            .await?,
        },
    };
    let outcome = app
        .log
        .execute::<Connection>(
            &connection_id,
            ConnectionCommand::Connect {
                person_id: caller.subject.clone(),
                details,
            },
            &call.metadata(),
        )
        .await
        .map_err(connection_error)?;
    Ok(Connected {
        connection_id,
        platform: request.platform,
        position: outcome.position.map(|p| p.to_string()),
    })
}

/// The calling person's connections that are not disconnected (no token ever leaves).
pub async fn list(app: &App, call: &Call, min_position: Option<&str>) -> Result<Vec<ConnectionRow>, AppError> {
    call.caller.require(&[Role::Person])?;
    app.wait_for("connections", min_position).await?;
    Ok(read_model::of_person(app.log.db(), &call.caller.subject).await?)
}

/// What disconnecting did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Disconnected {
    pub connection_id: String,
    pub keys_destroyed: usize,
    pub position: Option<String>,
}

/// Disconnects one platform of the calling person; revocation takes effect at once (P23, P25):
/// the tokens can never be decrypted again.
pub async fn disconnect(app: &App, call: &Call, platform_name: &str) -> Result<Disconnected, AppError> {
    let caller = &call.caller;
    caller.require(&[Role::Person])?;
    let platform = platform(platform_name)?;
    let connection_id = platform.connection_id(&caller.subject);
    let outcome = app
        .log
        .execute::<Connection>(&connection_id, ConnectionCommand::Disconnect, &call.metadata())
        .await
        .map_err(connection_error)?;
    let destroyed = app
        .vault
        .destroy(&connection_key(&connection_id), "disconnected")
        .await?;
    Ok(Disconnected {
        connection_id,
        keys_destroyed: destroyed.len(),
        position: outcome.position.map(|p| p.to_string()),
    })
}

/// The assets of the calling person's connected platform for campaign creation (P5, P12): the
/// YouTube channel's videos, or the Facebook page's posts and the Instagram account's media,
/// fetched on demand with the stored token (`max` per list, 1 to 500). A token that can no
/// longer be opened (disconnected) is a conflict; a token the platform rejects invalidates the
/// connection at once and destroys its key (P25), also a conflict asking to reconnect.
pub async fn assets(app: &App, call: &Call, platform_name: &str, max: usize) -> Result<Value, AppError> {
    let caller = &call.caller;
    caller.require(&[Role::Person])?;
    crate::restriction::ensure_may_process(&app.log, &caller.subject).await?;
    if !(1..=500).contains(&max) {
        return Err(AppError::InvalidInput(
            "max must be a whole number from 1 to 500".into(),
        ));
    }
    let platform = platform(platform_name)?;
    let connection_id = platform.connection_id(&caller.subject);
    let details = live_details(&app.log, &connection_id).await?;
    let platforms = &app.platforms;
    // P17: each outbound call below is recorded first, under the caller (the connection's owner).
    let metadata = call.metadata();
    let disclose = |processor, categories, purpose| {
        disclosure::record(
            &app.log,
            &caller.subject,
            processor,
            categories,
            purpose,
            Some(&connection_id),
            &metadata,
        )
    };
    let outcome: Result<serde_json::Value, ConnectorError> = match details {
        ConnectionDetails::Youtube {
            channel_id,
            refresh_token,
            ..
        } => {
            let google = platforms.google.as_ref().ok_or_else(|| {
                AppError::Upstream("Google is not configured (DYNAMOI_GOOGLE_CLIENT_ID/SECRET)".into())
            })?;
            let refresh = open_token(&app.vault, &connection_id, "refresh_token", &refresh_token).await?;
            disclose(Processor::Google, disclosure::TOKEN, Purpose::TokenRefresh).await?;
            // The access token lives only in this request's memory.
            match google.refresh_access_token(&refresh).await {
                Ok(access) => {
                    disclose(Processor::Youtube, disclosure::TOKEN_AND_PROFILE, Purpose::AssetListing).await?;
                    platforms
                        .youtube
                        .channel_videos(&access.token, &channel_id, max)
                        .await
                        .map(|videos| {
                            json!({ "platform": "youtube", "videos": videos.iter().map(|v| json!({
                            "video_id": v.video_id,
                            "title": v.title,
                            "published_at": v.published_at,
                            "thumbnail_url": v.thumbnail_url,
                        })).collect::<Vec<_>>() })
                        })
                }
                Err(e) => Err(e),
            }
        }
        ConnectionDetails::Meta {
            page_id,
            instagram_actor_id,
            access_token,
        } => {
            let access = open_token(&app.vault, &connection_id, "access_token", &access_token).await?;
            disclose(Processor::Meta, disclosure::TOKEN_AND_PROFILE, Purpose::AssetListing).await?;
            match platforms.meta.page_posts(&access, &page_id, max).await {
                Ok(posts) => {
                    let media = match &instagram_actor_id {
                        Some(ig) => {
                            disclose(Processor::Meta, disclosure::TOKEN_AND_PROFILE, Purpose::AssetListing).await?;
                            platforms.meta.instagram_media(&access, ig, max).await.map(Some)
                        }
                        None => Ok(None),
                    };
                    media.map(|media| {
                        json!({
                            "platform": "meta",
                            "facebook_posts": posts.iter().map(|p| json!({
                                "post_id": p.id, "message": p.message, "created_time": p.created_time, "permalink_url": p.permalink_url,
                            })).collect::<Vec<_>>(),
                            "instagram_media": media.unwrap_or_default().iter().map(|m| json!({
                                "media_id": m.id, "caption": m.caption, "media_type": m.media_type, "permalink": m.permalink, "timestamp": m.timestamp,
                            })).collect::<Vec<_>>(),
                        })
                    })
                }
                Err(e) => Err(e),
            }
        }
        _ => {
            return Err(AppError::NotFound(
                "this platform has no assets for campaign creation".into(),
            ))
        }
    };
    match outcome {
        Ok(body) => Ok(body),
        Err(ConnectorError::InvalidToken) => Err(invalidate(&app.log, &app.vault, &connection_id, &metadata).await?),
        Err(other) => Err(other.into()),
    }
}
