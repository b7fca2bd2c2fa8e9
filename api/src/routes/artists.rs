//! Artist profiles and teams (P7, P13, P16) over HTTP: create, read, members, invitations,
//! accepting, revoking, removing (the use cases are `app::artists`). A stranger gets 404 (whether
//! the artist exists is not revealed), a member without the permission 403.

use super::{
    command_input, finish, json, json_body, param, parse_json, query_params, reply, run_command, CommandReply, Ctx,
};
use crate::auth::Role;
use crate::ApiError;
use serde::Deserialize;
use serde_json::json;
use std::collections::HashMap;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection};

pub fn routes(
    ctx: impl Filter<Extract = (Ctx,), Error = Rejection> + Clone + Send + Sync + 'static,
    max_body: u64,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + Send + Sync + 'static {
    let query = warp::query::<HashMap<String, String>>();
    let create = warp::path!("v1" / "artists")
        .and(warp::post())
        .and(ctx.clone())
        .and(command_input(max_body))
        .then(
            |ctx: Ctx, key: Option<String>, ct: Option<String>, body: bytes::Bytes| async move {
                let result = run_command(&ctx, "create-artist", key.as_deref(), &body, || {
                    create(&ctx, ct.as_deref(), &body)
                })
                .await;
                finish(&ctx.request_id, result)
            },
        );
    let show = warp::path!("v1" / "artists" / String)
        .and(warp::get())
        .and(ctx.clone())
        .and(query)
        .then(|artist: String, ctx: Ctx, q: HashMap<String, String>| async move {
            finish(&ctx.request_id, show(&ctx, &artist, q).await)
        });
    let members = warp::path!("v1" / "artists" / String / "members")
        .and(warp::get())
        .and(ctx.clone())
        .and(query)
        .then(|artist: String, ctx: Ctx, q: HashMap<String, String>| async move {
            finish(&ctx.request_id, members(&ctx, &artist, q).await)
        });
    let invite = warp::path!("v1" / "artists" / String / "invitations")
        .and(warp::post())
        .and(ctx.clone())
        .and(query)
        .and(command_input(max_body))
        .then(
            |artist: String,
             ctx: Ctx,
             q: HashMap<String, String>,
             key: Option<String>,
             ct: Option<String>,
             body: bytes::Bytes| async move {
                let result = run_command(&ctx, "invite", key.as_deref(), &body, || {
                    invite(&ctx, &artist, q, ct.as_deref(), &body)
                })
                .await;
                finish(&ctx.request_id, result)
            },
        );
    let revoke = warp::path!("v1" / "artists" / String / "invitations" / String)
        .and(warp::delete())
        .and(ctx.clone())
        .and(query)
        .then(
            |artist: String, invitation: String, ctx: Ctx, q: HashMap<String, String>| async move {
                finish(&ctx.request_id, revoke(&ctx, &artist, &invitation, q).await)
            },
        );
    let remove = warp::path!("v1" / "artists" / String / "members" / String)
        .and(warp::delete())
        .and(ctx.clone())
        .and(query)
        .then(
            |artist: String, person: String, ctx: Ctx, q: HashMap<String, String>| async move {
                finish(&ctx.request_id, remove_member(&ctx, &artist, &person, q).await)
            },
        );
    let accept = warp::path!("v1" / "invitations" / "accept")
        .and(warp::post())
        .and(ctx)
        .and(json_body(max_body))
        .then(|ctx: Ctx, ct: Option<String>, body: bytes::Bytes| async move {
            finish(&ctx.request_id, accept(&ctx, ct.as_deref(), &body).await)
        });
    create
        .or(show)
        .unify()
        .or(members)
        .unify()
        .or(invite)
        .unify()
        .or(revoke)
        .unify()
        .or(remove)
        .unify()
        .or(accept)
        .unify()
}

async fn create(ctx: &Ctx, content_type: Option<&str>, body: &[u8]) -> Result<CommandReply, ApiError> {
    let call = ctx.call_as(&[Role::Person])?;
    let done = app::artists::create(ctx.app(), &call, parse_json(content_type, body)?).await?;
    reply(StatusCode::CREATED, &done)
}

async fn show(ctx: &Ctx, artist: &str, query: HashMap<String, String>) -> Result<Response, ApiError> {
    let call = ctx.call()?;
    let query = query_params(&query, &["min_position"])?;
    json(
        StatusCode::OK,
        &app::artists::show(ctx.app(), &call, artist, param(&query, "min_position")).await?,
    )
}

async fn members(ctx: &Ctx, artist: &str, query: HashMap<String, String>) -> Result<Response, ApiError> {
    let call = ctx.call()?;
    let query = query_params(&query, &["min_position"])?;
    let members = app::artists::members(ctx.app(), &call, artist, param(&query, "min_position")).await?;
    json(StatusCode::OK, &json!({ "artist_id": artist, "members": members }))
}

async fn invite(
    ctx: &Ctx,
    artist: &str,
    query: HashMap<String, String>,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<CommandReply, ApiError> {
    let call = ctx.call_as(&[Role::Person])?;
    let query = query_params(&query, &["min_position"])?;
    let request = parse_json(content_type, body)?;
    let invited = app::artists::invite(ctx.app(), &call, artist, param(&query, "min_position"), request).await?;
    reply(StatusCode::CREATED, &invited)
}

async fn revoke(
    ctx: &Ctx,
    artist: &str,
    invitation: &str,
    query: HashMap<String, String>,
) -> Result<Response, ApiError> {
    let call = ctx.call()?;
    let query = query_params(&query, &["min_position"])?;
    let done = app::artists::revoke(ctx.app(), &call, artist, invitation, param(&query, "min_position")).await?;
    json(StatusCode::OK, &done)
}

async fn remove_member(
    ctx: &Ctx,
    artist: &str,
    person: &str,
    query: HashMap<String, String>,
) -> Result<Response, ApiError> {
    let call = ctx.call()?;
    let query = query_params(&query, &["min_position"])?;
    let done = app::artists::remove_member(ctx.app(), &call, artist, person, param(&query, "min_position")).await?;
    json(StatusCode::OK, &done)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AcceptRequest {
    token: String,
}

async fn accept(ctx: &Ctx, content_type: Option<&str>, body: &[u8]) -> Result<Response, ApiError> {
    let call = ctx.call_as(&[Role::Person])?;
    let request: AcceptRequest = parse_json(content_type, body)?;
    json(
        StatusCode::OK,
        &app::artists::accept(ctx.app(), &call, &request.token).await?,
    )
}
