//! Assets for campaign creation (P5, P12): `GET /v1/connections/{platform}/assets` lists the
//! connected YouTube channel's videos, or the Facebook page's posts and the Instagram
//! account's media, fetched on demand through the official APIs with the stored token.
//!
//! A token that can no longer be decrypted (disconnected) is a 409; a token the platform
//! rejects invalidates the connection at once and destroys its key (P25), also a 409 asking
//! for re-authorisation.

use super::{json, query_params, Ctx};
use crate::auth::Role;
use crate::connection_tokens::{invalidate, live_details, open_token};
use crate::disclosure;
use crate::ApiError;
use connectors::ConnectorError;
use domain::connection::{ConnectionDetails, Platform};
use domain::disclosure::{Processor, Purpose};
use serde_json::json;
use std::collections::HashMap;
use warp::http::StatusCode;
use warp::reply::Response;

pub async fn list_assets(ctx: &Ctx, platform: &str, query: HashMap<String, String>) -> Result<Response, ApiError> {
    let caller = ctx.caller()?;
    caller.require(&[Role::Person])?;
    crate::privacy::ensure_processing_allowed(&ctx.state.log, &caller.subject).await?;
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
    let details = live_details(&ctx.state.log, &connection_id).await?;
    let platforms = &ctx.state.platforms;
    // P17: each outbound call below is recorded first, under the caller (the connection's owner).
    let metadata = ctx.metadata(&caller);
    let disclose = |processor, categories, purpose| {
        disclosure::record(
            &ctx.state.log,
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
                ApiError::Upstream("Google is not configured (DYNAMOI_GOOGLE_CLIENT_ID/SECRET)".into())
            })?;
            let refresh = open_token(&ctx.state.vault, &connection_id, "refresh_token", &refresh_token).await?;
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
            let access = open_token(&ctx.state.vault, &connection_id, "access_token", &access_token).await?;
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
            return Err(ApiError::NotFound(
                "this platform has no assets for campaign creation".into(),
            ))
        }
    };
    match outcome {
        Ok(body) => json(StatusCode::OK, &body),
        Err(ConnectorError::InvalidToken) => {
            Err(invalidate(&ctx.state.log, &ctx.state.vault, &connection_id, &ctx.metadata(&caller)).await?)
        }
        Err(other) => Err(other.into()),
    }
}
