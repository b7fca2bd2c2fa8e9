//! Artist profiles and teams (P7, P13, P16): create, read, members, invitations (sent by email
//! through the outbox), accepting, revoking, removing. Every artist-scoped endpoint checks the
//! caller's role in the `artist_access` read model: a stranger gets 404 (whether the artist
//! exists is not revealed), a member without the permission 403; neither body says anything
//! about the artist.

use super::{command_input, finish, json, json_body, parse_json, query_params, run_command, CommandReply, Ctx};
use crate::auth::{Caller, Role};
use crate::ApiError;
use base64::Engine as _;
use domain::artist::{ArtistCommand, ArtistError, ArtistProfile, Permission, Role as TeamRole};
use eventlog::{dispatch, CommandError, Db};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::Row;
use std::collections::HashMap;
use vault::KeyRef;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection};

/// The vault subject under which an invitee's email is sealed; destroyed when the invitation
/// ends, so the address serves nothing else (P13).
pub fn invitee_key(invitation_id: &str) -> KeyRef {
    KeyRef::person(format!("invitee.{invitation_id}"))
}

/// The single-use token of an invitation: `<artist id>.<HMAC-SHA256 of the artist and
/// invitation ids under a server secret>`. Only its hash is ever stored; the outbox can still
/// put it in the email it sends; and accepting needs no read model: the artist id it starts
/// with names the stream whose invitations the hash is matched against.
pub fn invitation_token(secret: &[u8], artist_id: &str, invitation_id: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(b"dynamoi invitation token\n");
    mac.update(artist_id.as_bytes());
    mac.update(b"\n");
    mac.update(invitation_id.as_bytes());
    let mac = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{artist_id}.{mac}")
}

/// The secret invitation tokens are derived with, itself derived from the JWT secret.
pub fn invitation_secret(jwt_secret: &str) -> secrecy::SecretString {
    secrecy::SecretString::from(hex::encode(Sha256::digest(
        format!("dynamoi invitations\n{jwt_secret}").as_bytes(),
    )))
}

/// The stored form of a token.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

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

/// The caller's role on `artist` from `artist_access` (after waiting for `min_position`).
pub async fn role_on(ctx: &Ctx, artist: &str, person: &str) -> Result<Option<TeamRole>, ApiError> {
    let sql = "SELECT role FROM artist_access WHERE artist_id = $1 AND person_id = $2";
    let role: Option<String> = dispatch!(ctx.state.log.db(), Db, |pool| {
        sqlx::query_scalar(sql)
            .bind(artist)
            .bind(person)
            .fetch_optional(pool)
            .await?
    });
    Ok(role.and_then(|r| serde_json::from_value(json!(r)).ok()))
}

/// Checks that the caller (a person) holds `permission` on `artist`: 404 for strangers and
/// unknown artists alike, 403 for members whose role lacks it.
pub async fn authorize(
    ctx: &Ctx,
    artist: &str,
    permission: Permission,
    query: &HashMap<String, String>,
) -> Result<(Caller, TeamRole), ApiError> {
    let caller = ctx.caller()?;
    caller.require(&[Role::Person])?;
    ctx.wait_for_position("artist_access", query.get("min_position"))
        .await?;
    match role_on(ctx, artist, &caller.subject).await? {
        None => Err(ApiError::NotFound("no such artist".into())),
        Some(role) if role.allows(permission) => Ok((caller, role)),
        Some(_) => Err(ApiError::Forbidden("your role does not allow this".into())),
    }
}

fn artist_error(error: CommandError<ArtistError>) -> ApiError {
    match error {
        CommandError::Rejected(rule) => match rule {
            ArtistError::NotAnAdmin => ApiError::Forbidden("your role does not allow this".into()),
            ArtistError::NoProfile => ApiError::NotFound("no such artist".into()),
            ArtistError::InvitationNotValid => ApiError::NotFound(rule.to_string()),
            ArtistError::NoSuchInvitation | ArtistError::NotAMember => ApiError::NotFound(rule.to_string()),
            ArtistError::InvalidName => ApiError::Validation(rule.to_string()),
            _ => ApiError::Conflict(rule.to_string()),
        },
        CommandError::Log(log) => log.into(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRequest {
    name: String,
    #[serde(default)]
    spotify_artist_id: Option<String>,
}

async fn create(ctx: &Ctx, content_type: Option<&str>, body: &[u8]) -> Result<CommandReply, ApiError> {
    let caller = ctx.caller()?;
    caller.require(&[Role::Person])?;
    let request: CreateRequest = parse_json(content_type, body)?;
    if let Some(id) = &request.spotify_artist_id {
        if !super::extension::is_spotify_id(id) {
            return Err(ApiError::Validation(
                "spotify_artist_id must be 22 base62 characters".into(),
            ));
        }
    }
    let artist_id = uuid::Uuid::now_v7().to_string();
    let command = ArtistCommand::Create {
        owner: caller.subject.clone(),
        name: request.name,
        spotify_artist_id: request.spotify_artist_id,
    };
    let outcome = ctx
        .state
        .log
        .execute::<ArtistProfile>(&artist_id, command, &ctx.metadata(&caller))
        .await
        .map_err(artist_error)?;
    Ok(CommandReply {
        status: StatusCode::CREATED,
        body: json!({ "artist_id": artist_id, "position": outcome.position.map(|p| p.to_string()) }),
    })
}

async fn show(ctx: &Ctx, artist: &str, query: HashMap<String, String>) -> Result<Response, ApiError> {
    let query = query_params(&query, &["min_position"])?;
    let (_, role) = authorize(ctx, artist, Permission::View, &query).await?;
    let sql = "SELECT name, spotify_artist_id, owner FROM artists WHERE artist_id = $1";
    let row = dispatch!(ctx.state.log.db(), Db, |pool| {
        let row = sqlx::query(sql).bind(artist).fetch_optional(pool).await?;
        match row {
            Some(r) => Some((
                r.try_get::<String, _>(0)?,
                r.try_get::<Option<String>, _>(1)?,
                r.try_get::<String, _>(2)?,
            )),
            None => None,
        }
    });
    let (name, spotify, owner) = row.ok_or_else(|| ApiError::NotFound("no such artist".into()))?;
    json(
        StatusCode::OK,
        &json!({ "artist_id": artist, "name": name, "spotify_artist_id": spotify, "owner": owner, "your_role": role }),
    )
}

async fn members(ctx: &Ctx, artist: &str, query: HashMap<String, String>) -> Result<Response, ApiError> {
    let query = query_params(&query, &["min_position"])?;
    authorize(ctx, artist, Permission::View, &query).await?;
    let sql = "SELECT person_id, role FROM artist_access WHERE artist_id = $1 ORDER BY person_id";
    let members: Vec<serde_json::Value> = dispatch!(ctx.state.log.db(), Db, |pool| {
        let rows = sqlx::query(sql).bind(artist).fetch_all(pool).await?;
        rows.iter()
            .map(|r| Ok(json!({ "person_id": r.try_get::<String, _>(0)?, "role": r.try_get::<String, _>(1)? })))
            .collect::<Result<Vec<_>, sqlx::Error>>()?
    });
    json(StatusCode::OK, &json!({ "artist_id": artist, "members": members }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InviteRequest {
    email: String,
    role: TeamRole,
}

async fn invite(
    ctx: &Ctx,
    artist: &str,
    query: HashMap<String, String>,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<CommandReply, ApiError> {
    let query = query_params(&query, &["min_position"])?;
    let (caller, _) = authorize(ctx, artist, Permission::ManageTeam, &query).await?;
    let request: InviteRequest = parse_json(content_type, body)?;
    let email = request.email.trim();
    let parts: Vec<&str> = email.split('@').collect();
    if email.len() > 254 || parts.len() != 2 || parts[0].is_empty() || !parts[1].contains('.') || email.contains(' ') {
        return Err(ApiError::Validation(
            "email must be an address such as name@example.com".into(),
        ));
    }
    let invitation_id = uuid::Uuid::now_v7().simple().to_string();
    let sealed = ctx
        .state
        .vault
        .seal(&invitee_key(&invitation_id), "email", email.as_bytes())
        .await?;
    let token = invitation_token(
        secrecy::ExposeSecret::expose_secret(&ctx.state.invitation_secret).as_bytes(),
        artist,
        &invitation_id,
    );
    let command = ArtistCommand::Invite {
        by: caller.subject.clone(),
        invitation_id: invitation_id.clone(),
        email: domain::sealed::Sealed(serde_json::to_value(sealed).map_err(|_| ApiError::Internal)?),
        role: request.role,
        token_sha256: token_hash(&token),
        now: chrono::Utc::now(),
    };
    let outcome = ctx
        .state
        .log
        .execute::<ArtistProfile>(artist, command, &ctx.metadata(&caller))
        .await
        .map_err(artist_error)?;
    let expires_at = outcome.events.iter().find_map(|e| match e {
        domain::artist::ArtistEvent::MemberInvited { expires_at, .. } => Some(*expires_at),
        _ => None,
    });
    Ok(CommandReply {
        status: StatusCode::CREATED,
        body: json!({
            "invitation_id": invitation_id,
            "role": request.role,
            "expires_at": expires_at,
            "position": outcome.position.map(|p| p.to_string()),
        }),
    })
}

async fn revoke(
    ctx: &Ctx,
    artist: &str,
    invitation: &str,
    query: HashMap<String, String>,
) -> Result<Response, ApiError> {
    let query = query_params(&query, &["min_position"])?;
    let (caller, _) = authorize(ctx, artist, Permission::ManageTeam, &query).await?;
    let command = ArtistCommand::Revoke {
        by: caller.subject.clone(),
        invitation_id: invitation.to_string(),
    };
    let outcome = ctx
        .state
        .log
        .execute::<ArtistProfile>(artist, command, &ctx.metadata(&caller))
        .await
        .map_err(artist_error)?;
    // The address has served its one purpose.
    ctx.state
        .vault
        .destroy(&invitee_key(invitation), "invitation_ended")
        .await?;
    json(
        StatusCode::OK,
        &json!({ "position": outcome.position.map(|p| p.to_string()) }),
    )
}

async fn remove_member(
    ctx: &Ctx,
    artist: &str,
    person: &str,
    query: HashMap<String, String>,
) -> Result<Response, ApiError> {
    let query = query_params(&query, &["min_position"])?;
    let (caller, _) = authorize(ctx, artist, Permission::ManageTeam, &query).await?;
    let command = ArtistCommand::RemoveMember {
        by: caller.subject.clone(),
        person_id: person.to_string(),
    };
    let outcome = ctx
        .state
        .log
        .execute::<ArtistProfile>(artist, command, &ctx.metadata(&caller))
        .await
        .map_err(artist_error)?;
    json(
        StatusCode::OK,
        &json!({ "position": outcome.position.map(|p| p.to_string()) }),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AcceptRequest {
    token: String,
}

async fn accept(ctx: &Ctx, content_type: Option<&str>, body: &[u8]) -> Result<Response, ApiError> {
    let caller = ctx.caller()?;
    caller.require(&[Role::Person])?;
    let request: AcceptRequest = parse_json(content_type, body)?;
    let token = request.token.trim();
    let not_valid = || ApiError::NotFound(ArtistError::InvitationNotValid.to_string());
    let artist = token
        .split_once('.')
        .map(|(artist, _)| artist)
        .filter(|a| !a.is_empty() && a.len() <= 64 && a.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        .ok_or_else(not_valid)?;
    let command = ArtistCommand::Accept {
        person_id: caller.subject.clone(),
        token_sha256: token_hash(token),
        now: chrono::Utc::now(),
    };
    let outcome = ctx
        .state
        .log
        .execute::<ArtistProfile>(artist, command, &ctx.metadata(&caller))
        .await
        .map_err(|e| match e {
            CommandError::Rejected(ArtistError::NoProfile) => not_valid(),
            other => artist_error(other),
        })?;
    let invitation_id = outcome.events.iter().find_map(|e| match e {
        domain::artist::ArtistEvent::InvitationAccepted { invitation_id, .. } => Some(invitation_id.clone()),
        _ => None,
    });
    if let Some(invitation_id) = invitation_id {
        // The address has served its one purpose.
        ctx.state
            .vault
            .destroy(&invitee_key(&invitation_id), "invitation_ended")
            .await?;
    }
    json(
        StatusCode::OK,
        &json!({ "artist_id": artist, "position": outcome.position.map(|p| p.to_string()) }),
    )
}
