//! Platform connections (P5, P9, P12, P19, P23, P25): connect with the tokens of the front
//! end's OAuth callback (sealed at once with AES-256-GCM under the connection's own key),
//! list (no token ever leaves), disconnect (the key is destroyed at once), and list the assets
//! available for campaign creation through the platforms' APIs.

use super::{command_input, finish, json, parse_json, query_params, run_command, CommandReply, Ctx};
use crate::auth::Role;
use crate::ApiError;
use domain::connection::{Connection, ConnectionCommand, ConnectionDetails, ConnectionError, Platform};
use domain::sealed::Sealed;
use eventlog::{dispatch, CommandError, Db};
use serde::Deserialize;
use serde_json::{json, Value};
use sqlx::Row;
use std::collections::HashMap;
use vault::KeyRef;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection};

pub fn routes(
    ctx: impl Filter<Extract = (Ctx,), Error = Rejection> + Clone + Send + Sync + 'static,
    max_body: u64,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + Send + Sync + 'static {
    let list = warp::path!("v1" / "connections")
        .and(warp::get())
        .and(ctx.clone())
        .and(warp::query::<HashMap<String, String>>())
        .then(|ctx: Ctx, q| async move { finish(&ctx.request_id, list(&ctx, q).await) });
    let connect = warp::path!("v1" / "connections")
        .and(warp::post())
        .and(ctx.clone())
        .and(command_input(max_body))
        .then(
            |ctx: Ctx, key: Option<String>, ct: Option<String>, body: bytes::Bytes| async move {
                let result = run_command(&ctx, "connect", key.as_deref(), &body, || {
                    connect(&ctx, ct.as_deref(), &body)
                })
                .await;
                finish(&ctx.request_id, result)
            },
        );
    let disconnect = warp::path!("v1" / "connections" / String)
        .and(warp::delete())
        .and(ctx.clone())
        .then(|platform: String, ctx: Ctx| async move { finish(&ctx.request_id, disconnect(&ctx, &platform).await) });
    let assets = warp::path!("v1" / "connections" / String / "assets")
        .and(warp::get())
        .and(ctx)
        .and(warp::query::<HashMap<String, String>>())
        .then(|platform: String, ctx: Ctx, q| async move {
            finish(&ctx.request_id, super::assets::list_assets(&ctx, &platform, q).await)
        });
    list.or(connect).unify().or(disconnect).unify().or(assets).unify()
}

pub fn connection_error(error: CommandError<ConnectionError>) -> ApiError {
    match error {
        CommandError::Rejected(rule @ (ConnectionError::AlreadyConnected | ConnectionError::NotConnected)) => {
            ApiError::Conflict(rule.to_string())
        }
        CommandError::Rejected(rule) => ApiError::Validation(rule.to_string()),
        CommandError::Log(log) => log.into(),
    }
}

/// The key that seals a connection's tokens.
pub fn connection_key(connection_id: &str) -> KeyRef {
    KeyRef::connection(connection_id)
}

fn platform(raw: &str) -> Result<Platform, ApiError> {
    raw.parse().map_err(ApiError::NotFound)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConnectRequest {
    platform: Platform,
    #[serde(default)]
    artist_id: Option<String>,
    #[serde(default)]
    page_id: Option<String>,
    #[serde(default)]
    instagram_actor_id: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    channel_id: Option<String>,
    #[serde(default)]
    channel_name: Option<String>,
    #[serde(default)]
    customer_id: Option<String>,
    #[serde(default)]
    refresh_token: Option<String>,
}

fn required(field: &'static str, value: Option<String>) -> Result<String, ApiError> {
    value
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| ApiError::Validation(format!("{field} is required for this platform")))
}

async fn seal_token(ctx: &Ctx, connection_id: &str, field: &str, token: &str) -> Result<Sealed, ApiError> {
    if token.len() > 4096 || token.chars().any(char::is_control) {
        return Err(ApiError::Validation(format!("{field} is not a token")));
    }
    let sealed = ctx
        .state
        .vault
        .seal(&connection_key(connection_id), field, token.as_bytes())
        .await?;
    Ok(Sealed(serde_json::to_value(sealed).map_err(|_| ApiError::Internal)?))
}

async fn connect(ctx: &Ctx, content_type: Option<&str>, body: &[u8]) -> Result<CommandReply, ApiError> {
    let caller = ctx.caller()?;
    caller.require(&[Role::Person])?;
    crate::privacy::ensure_processing_allowed(&ctx.state.log, &caller.subject).await?;
    let request: ConnectRequest = parse_json(content_type, body)?;
    let connection_id = request.platform.connection_id(&caller.subject);
    let (connection, _, _) = ctx.state.log.load_aggregate::<Connection>(&connection_id).await?;
    if connection.is_live() {
        // Refuse before sealing anything: a new key would replace the live one.
        return Err(ApiError::Conflict(ConnectionError::AlreadyConnected.to_string()));
    }
    let details = match request.platform {
        Platform::Spotify => ConnectionDetails::Spotify {
            artist_id: required("artist_id", request.artist_id)?,
        },
        Platform::Meta => ConnectionDetails::Meta {
            page_id: required("page_id", request.page_id)?,
            instagram_actor_id: request.instagram_actor_id,
            access_token: seal_token(
                ctx,
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
                ctx,
                &connection_id,
                "refresh_token",
                &required("refresh_token", request.refresh_token)?,
            )
            .await?,
        },
        Platform::GoogleAds => ConnectionDetails::GoogleAds {
            customer_id: required("customer_id", request.customer_id)?,
            refresh_token: seal_token(
                ctx,
                &connection_id,
                "refresh_token",
                &required("refresh_token", request.refresh_token)?,
            )
            .await?,
        },
    };
    let outcome = ctx
        .state
        .log
        .execute::<Connection>(
            &connection_id,
            ConnectionCommand::Connect {
                person_id: caller.subject.clone(),
                details,
            },
            &ctx.metadata(&caller),
        )
        .await
        .map_err(connection_error)?;
    Ok(CommandReply {
        status: StatusCode::CREATED,
        body: json!({
            "connection_id": connection_id,
            "platform": request.platform,
            "position": outcome.position.map(|p| p.to_string()),
        }),
    })
}

async fn list(ctx: &Ctx, query: HashMap<String, String>) -> Result<Response, ApiError> {
    let caller = ctx.caller()?;
    caller.require(&[Role::Person])?;
    let query = query_params(&query, &["min_position"])?;
    ctx.wait_for_position("connections", query.get("min_position")).await?;
    let sql = "SELECT connection_id, platform, status, external_id, display_name, connected_at, ended_at \
               FROM connections WHERE person_id = $1 AND status <> 'disconnected' ORDER BY platform";
    let rows: Vec<Value> = dispatch!(ctx.state.log.db(), Db, |pool| {
        let rows = sqlx::query(sql).bind(&caller.subject).fetch_all(pool).await?;
        rows.iter()
            .map(|r| {
                Ok(json!({
                    "connection_id": r.try_get::<String, _>(0)?,
                    "platform": r.try_get::<String, _>(1)?,
                    "status": r.try_get::<String, _>(2)?,
                    "external_id": r.try_get::<String, _>(3)?,
                    "display_name": r.try_get::<Option<String>, _>(4)?,
                    "connected_at": r.try_get::<String, _>(5)?,
                    "ended_at": r.try_get::<Option<String>, _>(6)?,
                }))
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?
    });
    json(StatusCode::OK, &json!({ "connections": rows }))
}

async fn disconnect(ctx: &Ctx, platform_name: &str) -> Result<Response, ApiError> {
    let caller = ctx.caller()?;
    caller.require(&[Role::Person])?;
    let platform = platform(platform_name)?;
    let connection_id = platform.connection_id(&caller.subject);
    let outcome = ctx
        .state
        .log
        .execute::<Connection>(&connection_id, ConnectionCommand::Disconnect, &ctx.metadata(&caller))
        .await
        .map_err(connection_error)?;
    // Revocation takes effect at once (P23, P25): the tokens can never be decrypted again.
    let destroyed = ctx
        .state
        .vault
        .destroy(&connection_key(&connection_id), "disconnected")
        .await?;
    json(
        StatusCode::OK,
        &json!({
            "connection_id": connection_id,
            "keys_destroyed": destroyed.len(),
            "position": outcome.position.map(|p| p.to_string()),
        }),
    )
}
