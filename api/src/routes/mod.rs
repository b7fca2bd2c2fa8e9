//! The HTTP routes, the request context every handler gets, and the rejection mapping.

pub mod artists;
pub mod assets;
pub mod audit;
pub mod billing;
pub mod campaigns;
pub mod connections;
pub mod extension;
pub mod health;
pub mod people;
pub mod policies;
pub mod privacy;

use crate::auth::{Authenticator, Caller};
use crate::settings::Settings;
use crate::{telemetry, ApiError};
use eventlog::idempotency::{self, Claim};
use eventlog::{EventLog, Position};
use projections::Engine;
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use warp::http::{HeaderValue, StatusCode};
use warp::reply::Response;
use warp::{Filter, Rejection};

/// What every handler can reach.
pub struct AppState {
    pub log: EventLog,
    pub engine: Engine,
    pub vault: vault::Vault,
    pub platforms: crate::platforms::Platforms,
    pub extension: extension::LookupGuard,
    pub auth: Authenticator,
    /// Derives invitation tokens (HMAC); itself derived from the JWT secret.
    pub invitation_secret: secrecy::SecretString,
    pub settings: Settings,
}

/// One request's context: its id, its credentials, and the shared state.
pub struct Ctx {
    pub request_id: String,
    authorization: Option<String>,
    pub state: Arc<AppState>,
}

impl Ctx {
    /// The authenticated caller, or 401.
    pub fn caller(&self) -> Result<Caller, ApiError> {
        self.state.auth.authenticate(self.authorization.as_deref())
    }

    /// The metadata of the events a command of `caller` in this request records.
    pub fn metadata(&self, caller: &Caller) -> eventlog::EventMetadata {
        eventlog::EventMetadata {
            actor: caller.actor(),
            request_id: Some(self.request_id.clone()),
            causation_id: None,
        }
    }

    /// Waits (bounded by `DYNAMOI_CONSISTENCY_WAIT_MS`) until `projection` has applied the
    /// position given as `min_position`, if one was given.
    pub async fn wait_for_position(&self, projection: &str, min_position: Option<&String>) -> Result<(), ApiError> {
        let Some(raw) = min_position else { return Ok(()) };
        let position: Position = raw
            .parse()
            .map_err(|e| ApiError::InvalidRequest(format!("min_position: {e}")))?;
        let state = &self.state;
        if state
            .engine
            .wait_for(projection, position, state.settings.consistency_wait)
            .await?
        {
            Ok(())
        } else {
            Err(ApiError::ReadModelBehind {
                projection: projection.into(),
                position: position.to_string(),
            })
        }
    }
}

fn context(state: Arc<AppState>) -> impl Filter<Extract = (Ctx,), Error = Rejection> + Clone + Send + Sync + 'static {
    warp::header::optional::<String>("x-request-id")
        .and(warp::header::optional::<String>("authorization"))
        .map(move |request_id: Option<String>, authorization| Ctx {
            request_id: telemetry::request_id(request_id.as_deref()),
            authorization,
            state: state.clone(),
        })
}

/// Query parameters, refusing any name not in `allowed` so that typos are reported.
pub fn query_params(raw: &HashMap<String, String>, allowed: &[&str]) -> Result<HashMap<String, String>, ApiError> {
    if let Some(unknown) = raw.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(ApiError::InvalidRequest(format!(
            "unknown query parameter `{}`; allowed: {}",
            unknown.chars().take(64).collect::<String>(),
            allowed.join(", ")
        )));
    }
    Ok(raw.clone())
}

/// Turns a handler's result into the response, with the request id on it and errors logged.
pub fn finish(request_id: &str, result: Result<Response, ApiError>) -> Response {
    let mut response = match result {
        Ok(response) => response,
        Err(error) => {
            let (status, code, _) = error.parts();
            if status.is_server_error() {
                tracing::warn!(request_id, code, "request failed");
            } else {
                tracing::debug!(request_id, code, "request refused");
            }
            error.into_response(request_id)
        }
    };
    tracing::info!(request_id, status = response.status().as_u16(), "request handled");
    if let Ok(value) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

/// The answer of a command endpoint before it becomes a response, so that it can be stored
/// and replayed for a retry carrying the same `Idempotency-Key`.
pub struct CommandReply {
    pub status: StatusCode,
    pub body: serde_json::Value,
}

impl CommandReply {
    fn into_response(self, replayed: bool) -> Result<Response, ApiError> {
        let mut response = json(self.status, &self.body)?;
        if let Some(position) = self.body.get("position").and_then(|p| p.as_str()) {
            if let Ok(value) = HeaderValue::from_str(position) {
                response.headers_mut().insert("x-dynamoi-position", value);
            }
        }
        if replayed {
            response
                .headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
        }
        Ok(response)
    }
}

/// Runs a command handler under the request's `Idempotency-Key`, if it has one: the first
/// request with a key runs and its success is stored; a retry with the same key and body gets
/// the stored answer (and changes nothing); the same key with another body is refused. A
/// refused or failed command stores nothing, so its retry runs again.
pub async fn run_command<F, Fut>(
    ctx: &Ctx,
    endpoint: &str,
    idempotency_key: Option<&str>,
    body: &[u8],
    run: F,
) -> Result<Response, ApiError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<CommandReply, ApiError>>,
{
    let Some(key) = idempotency_key else {
        return run().await?.into_response(false);
    };
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::InvalidRequest(
            "Idempotency-Key must be 1 to 255 visible ASCII characters".into(),
        ));
    }
    // Keys are per caller and endpoint: another caller's key can neither collide nor replay.
    let scope = format!("{endpoint} {}", ctx.caller()?.actor());
    let request_hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(body));
    let db = ctx.state.log.db();
    match idempotency::claim(db, &scope, key, &request_hash).await? {
        Claim::Replay { status, body } => {
            let status = StatusCode::from_u16(status).map_err(|_| ApiError::Internal)?;
            let body = serde_json::from_str(&body).map_err(|_| ApiError::Internal)?;
            CommandReply { status, body }.into_response(true)
        }
        Claim::Mismatch => Err(ApiError::Validation(
            "this Idempotency-Key was already used with a different request body".into(),
        )),
        Claim::InProgress => Err(ApiError::Conflict(
            "a request with this Idempotency-Key is still being processed; retry shortly".into(),
        )),
        Claim::Claimed => match run().await {
            Ok(reply) => {
                idempotency::complete(db, &scope, key, reply.status.as_u16(), &reply.body.to_string()).await?;
                reply.into_response(false)
            }
            Err(error) => {
                idempotency::release(db, &scope, key).await?;
                Err(error)
            }
        },
    }
}

/// A JSON response.
pub fn json<T: serde::Serialize>(status: StatusCode, body: &T) -> Result<Response, ApiError> {
    let bytes = serde_json::to_vec(body).map_err(|_| ApiError::Internal)?;
    let mut response = Response::new(bytes.into());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    Ok(response)
}

/// The JSON body of a command request: size-limited, `application/json` only.
pub fn json_body(
    max_bytes: u64,
) -> impl Filter<Extract = (Option<String>, bytes::Bytes), Error = Rejection> + Clone + Send + Sync + 'static {
    warp::body::content_length_limit(max_bytes)
        .and(warp::header::optional::<String>("content-type"))
        .and(warp::body::bytes())
}

/// A command request's `Idempotency-Key` header, content type and size-limited body.
pub fn command_input(
    max_bytes: u64,
) -> impl Filter<Extract = (Option<String>, Option<String>, bytes::Bytes), Error = Rejection> + Clone + Send + Sync + 'static
{
    warp::header::optional::<String>("idempotency-key").and(json_body(max_bytes))
}

/// Parses a JSON command body, with the reason when it does not fit.
pub fn parse_json<T: serde::de::DeserializeOwned>(content_type: Option<&str>, body: &[u8]) -> Result<T, ApiError> {
    let is_json = content_type
        .map(|c| {
            c.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("application/json")
        })
        .unwrap_or(false);
    if !is_json {
        return Err(ApiError::UnsupportedMediaType);
    }
    serde_json::from_slice(body).map_err(|e| {
        let reason = e.to_string();
        // serde's messages about a wrong value quote the value, which may be personal data:
        // only messages that name fields are passed on as they are.
        let names_only = reason.starts_with("unknown field") || reason.starts_with("missing field");
        if e.is_data() && names_only {
            ApiError::Validation(reason)
        } else if e.is_data() {
            ApiError::Validation(format!(
                "a field has a value of the wrong type or form (line {}, column {})",
                e.line(),
                e.column()
            ))
        } else {
            ApiError::InvalidRequest(format!(
                "the body is not valid JSON (line {}, column {})",
                e.line(),
                e.column()
            ))
        }
    })
}

/// Every route, with the rejection mapping and request metrics.
pub fn routes(
    state: Arc<AppState>,
) -> impl Filter<Extract = (impl warp::Reply,), Error = Infallible> + Clone + Send + Sync + 'static {
    let max_body = state.settings.max_body_bytes;
    let max_ingest = state.settings.max_ingest_bytes;
    let ctx = context(state);
    let routes = health::routes(ctx.clone())
        .or(policies::routes(ctx.clone(), max_body))
        .unify()
        .or(audit::routes(ctx.clone()))
        .unify()
        .or(people::routes(ctx.clone(), max_body))
        .unify()
        .or(artists::routes(ctx.clone(), max_body))
        .unify()
        .or(connections::routes(ctx.clone(), max_body))
        .unify()
        .or(extension::routes(ctx.clone()))
        .unify()
        .or(campaigns::routes(ctx.clone(), max_body, max_ingest))
        .unify()
        .or(billing::routes(ctx.clone(), max_body))
        .unify()
        .or(privacy::routes(ctx, max_body))
        .unify()
        // Boxed: the combined filter type is otherwise deep enough to overflow the compiler's
        // query depth when the server future is laid out.
        .boxed();
    routes
        .recover(move |rejection| recover(rejection, max_body))
        .unify()
        .with(warp::log::custom(|info| {
            let route = telemetry::route_label(info.path());
            metrics::histogram!(
                "dynamoi_http_request_duration_seconds",
                "method" => info.method().to_string(),
                "route" => route,
                "status" => info.status().as_u16().to_string()
            )
            .record(info.elapsed().as_secs_f64());
        }))
}

/// Maps framework rejections (no such route, wrong method, body too large, bad header) to
/// problem+json. Handlers never reject: they answer.
async fn recover(rejection: Rejection, max_body: u64) -> Result<Response, Infallible> {
    let request_id = telemetry::request_id(None);
    // Body rejections first: warp combines the rejections of every route tried, and a body
    // refused by the POST route would otherwise be reported as the GET route's wrong method.
    let error = if rejection.find::<warp::reject::PayloadTooLarge>().is_some() {
        ApiError::PayloadTooLarge(max_body)
    } else if rejection.find::<warp::reject::LengthRequired>().is_some() {
        ApiError::InvalidRequest("a Content-Length header is required".into())
    } else if rejection.is_not_found() {
        ApiError::NotFound("no such route".into())
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        ApiError::MethodNotAllowed
    } else if rejection.find::<warp::reject::InvalidQuery>().is_some() {
        ApiError::InvalidRequest("the query string is malformed".into())
    } else if rejection.find::<warp::reject::InvalidHeader>().is_some()
        || rejection.find::<warp::reject::MissingHeader>().is_some()
    {
        ApiError::InvalidRequest("a request header is malformed".into())
    } else {
        tracing::warn!(?rejection, "unmapped rejection");
        ApiError::InvalidRequest("the request could not be processed".into())
    };
    Ok(finish(&request_id, Err(error)))
}
