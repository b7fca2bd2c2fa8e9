//! Assets for campaign creation (P5, P12): `GET /v1/connections/{platform}/assets` lists the
//! connected YouTube channel's videos, or the Facebook page's posts and the Instagram
//! account's media, fetched on demand through the official APIs with the stored token.
//!
//! A token that can no longer be decrypted (disconnected) is a 409; a token the platform
//! rejects invalidates the connection at once and destroys its key (P25), also a 409 asking
//! for re-authorisation.

use super::connections::{connection_error, connection_key};
use super::{json, query_params, Ctx};
use crate::auth::Role;
use crate::ApiError;
use connectors::ConnectorError;
use domain::connection::{
    Connection, ConnectionCommand, ConnectionDetails, ConnectionEvent, InvalidationReason, Platform,
};
use domain::sealed::Sealed;
use eventlog::EventMetadata;
use secrecy::SecretString;
use serde_json::json;
use std::collections::HashMap;
use vault::{Opened, SealedValue};
use warp::http::StatusCode;
use warp::reply::Response;

const NEEDS_REAUTHORISATION: &str = "the platform no longer accepts this connection's token; connect it again";

/// The live connection's details, from its own stream (the write side: never stale).
async fn live_details(ctx: &Ctx, connection_id: &str) -> Result<ConnectionDetails, ApiError> {
    let events = ctx
        .state
        .log
        .load(<Connection as domain::Aggregate>::TYPE, connection_id)
        .await?;
    let mut live = None;
    for stored in events {
        match stored.decode::<ConnectionEvent>().map_err(|_| ApiError::Internal)? {
            ConnectionEvent::Connected { details, .. } => live = Some(details),
            _ => live = None,
        }
    }
    live.ok_or_else(|| ApiError::Conflict("this platform is not connected".into()))
}

async fn token(ctx: &Ctx, connection_id: &str, field: &str, sealed: &Sealed) -> Result<SecretString, ApiError> {
    let sealed: SealedValue = serde_json::from_value(sealed.0.clone()).map_err(|_| ApiError::Internal)?;
    match ctx
        .state
        .vault
        .open_string(&connection_key(connection_id), field, &sealed)
        .await?
    {
        Opened::Plain(token) => Ok(SecretString::from(token.to_string())),
        Opened::Erased => Err(ApiError::Conflict(NEEDS_REAUTHORISATION.into())),
    }
}

/// Records that the platform rejected the token, and destroys the connection's key at once.
async fn invalidate(ctx: &Ctx, connection_id: &str, actor: String) -> Result<ApiError, ApiError> {
    ctx.state
        .log
        .execute::<Connection>(
            connection_id,
            ConnectionCommand::Invalidate {
                reason: InvalidationReason::TokenRejected,
            },
            &EventMetadata {
                actor,
                request_id: Some(ctx.request_id.clone()),
                causation_id: None,
            },
        )
        .await
        .map_err(connection_error)?;
    ctx.state
        .vault
        .destroy(&connection_key(connection_id), "token_rejected")
        .await?;
    Ok(ApiError::Conflict(NEEDS_REAUTHORISATION.into()))
}

pub async fn list_assets(ctx: &Ctx, platform: &str, query: HashMap<String, String>) -> Result<Response, ApiError> {
    let caller = ctx.caller()?;
    caller.require(&[Role::Person])?;
    let query = query_params(&query, &["max"])?;
    let max: usize = match query.get("max") {
        Some(raw) => raw
            .parse()
            .ok()
            .filter(|n| (1..=500).contains(n))
            .ok_or_else(|| ApiError::InvalidRequest("max must be a whole number from 1 to 500".into()))?,
        None => 50,
    };
    let platform: Platform = platform.parse().map_err(ApiError::NotFound)?;
    let connection_id = platform.connection_id(&caller.subject);
    let details = live_details(ctx, &connection_id).await?;
    let platforms = &ctx.state.platforms;
    let outcome: Result<serde_json::Value, ConnectorError> = match details {
        ConnectionDetails::Youtube {
            channel_id,
            refresh_token,
            ..
        } => {
            let google = platforms.google.as_ref().ok_or_else(|| {
                ApiError::Upstream("Google is not configured (DYNAMOI_GOOGLE_CLIENT_ID/SECRET)".into())
            })?;
            let refresh = token(ctx, &connection_id, "refresh_token", &refresh_token).await?;
            // The access token lives only in this request's memory.
            match google.refresh_access_token(&refresh).await {
                Ok(access) => platforms
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
                    }),
                Err(e) => Err(e),
            }
        }
        ConnectionDetails::Meta {
            page_id,
            instagram_actor_id,
            access_token,
        } => {
            let access = token(ctx, &connection_id, "access_token", &access_token).await?;
            match platforms.meta.page_posts(&access, &page_id, max).await {
                Ok(posts) => {
                    let media = match &instagram_actor_id {
                        Some(ig) => platforms.meta.instagram_media(&access, ig, max).await.map(Some),
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
            return Err(ApiError::NotFound(
                "this platform has no assets for campaign creation".into(),
            ))
        }
    };
    match outcome {
        Ok(body) => json(StatusCode::OK, &body),
        Err(ConnectorError::InvalidToken) => Err(invalidate(ctx, &connection_id, caller.actor()).await?),
        Err(other) => Err(other.into()),
    }
}
