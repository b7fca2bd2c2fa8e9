//! The HTTP routes, the request context every handler gets, and the rejection mapping.

pub mod artists;
pub mod audit;
pub mod billing;
pub mod campaigns;
pub mod connections;
pub mod console;
pub mod extension;
pub mod health;
pub mod operations;
pub mod people;
pub mod policies;
pub mod privacy;

use crate::auth::{Authenticator, Caller};
use crate::settings::Settings;
use crate::{telemetry, ApiError};
use app::{App, Call};
use eventlog::idempotency::{self, Claim};
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use warp::http::{HeaderValue, StatusCode};
use warp::reply::Response;
use warp::{Filter, Rejection};

/// What every handler can reach: the application, the authenticator and the settings.
pub struct AppState {
    pub app: App,
    pub auth: Authenticator,
    pub settings: Settings,
    /// A one-connection pool of its own for `/readyz` (`eventlog::Db::connect_probe`).
    pub probe: eventlog::Db,
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

    /// The application.
    pub fn app(&self) -> &App {
        &self.state.app
    }

    /// One call of a use case by the authenticated caller, in this request.
    pub fn call(&self) -> Result<Call, ApiError> {
        Ok(Call::new(self.caller()?, self.request_id.clone()))
    }

    /// [`Ctx::call`], refused (403) unless the caller has one of `roles`: checked before a body
    /// is parsed, so a caller who may not call a route learns nothing from its validation. The
    /// use case checks its roles again.
    pub fn call_as(&self, roles: &[crate::auth::Role]) -> Result<Call, ApiError> {
        let call = self.call()?;
        call.caller.require(roles)?;
        Ok(call)
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
/// refused or failed command that committed nothing stores nothing, so its retry runs again.
///
/// The command's events and the key's `applied` mark commit in one transaction
/// (`eventlog::idempotency`): a retry whose original committed but whose answer was never
/// stored (a crash, a dropped connection) is answered from that mark, never run again.
/// Bodies are compared in a canonical JSON form (keys sorted, no whitespace), so the same
/// JSON sent with other spacing or key order is the same request.
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
    let request_hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(canonical_body(body)));
    let db = ctx.app().log.db();
    match idempotency::claim(db, &scope, key, &request_hash, ctx.app().now()).await? {
        Claim::Replay { status, body } => {
            let status = StatusCode::from_u16(status).map_err(|_| ApiError::Internal)?;
            let body = serde_json::from_str(&body).map_err(|_| ApiError::Internal)?;
            CommandReply { status, body }.into_response(true)
        }
        Claim::Applied(effect) => applied_reply(&effect).into_response(true),
        Claim::Mismatch => Err(ApiError::Validation(
            "this Idempotency-Key was already used with a different request body".into(),
        )),
        Claim::InProgress => Err(ApiError::Contended(
            "a request with this Idempotency-Key is still being processed; retry shortly".into(),
        )),
        Claim::Claimed(claim) => match idempotency::within(claim.clone(), run()).await {
            Ok(reply) => {
                // The command committed (and marked the key `applied` with it): failing to store
                // its answer must not turn its success into an error, as its retry is answered
                // from the mark.
                if let Err(error) =
                    idempotency::complete(db, &claim, reply.status.as_u16(), &reply.body.to_string()).await
                {
                    tracing::warn!(request_id = %ctx.request_id, %error, "the answer of an idempotent command could not be stored");
                }
                reply.into_response(false)
            }
            Err(error) => {
                if let Err(release_error) = idempotency::release(db, &claim).await {
                    tracing::warn!(request_id = %ctx.request_id, error = %release_error, "an Idempotency-Key could not be released");
                }
                Err(error)
            }
        },
    }
}

/// The answer to a retry whose original request committed its command but never stored its
/// answer: `200` with `{"<aggregate type>_id": …, "position": …}` (the first aggregate the
/// command wrote, the position of its last event).
fn applied_reply(effect: &idempotency::Effect) -> CommandReply {
    let mut body = serde_json::Map::new();
    body.insert(
        format!("{}_id", effect.aggregate_type),
        serde_json::Value::String(effect.aggregate_id.clone()),
    );
    body.insert(
        "position".into(),
        effect
            .position
            .clone()
            .map(serde_json::Value::String)
            .unwrap_or(serde_json::Value::Null),
    );
    CommandReply {
        status: StatusCode::OK,
        body: serde_json::Value::Object(body),
    }
}

/// The bytes an Idempotency-Key's request is compared by: JSON in a canonical form (object
/// keys sorted, no insignificant whitespace); anything else as sent.
fn canonical_body(body: &[u8]) -> Vec<u8> {
    fn write(value: &serde_json::Value, out: &mut String) {
        match value {
            serde_json::Value::Object(map) => {
                let mut entries: Vec<_> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                out.push('{');
                for (i, (k, v)) in entries.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::Value::String(k.clone()).to_string());
                    out.push(':');
                    write(v, out);
                }
                out.push('}');
            }
            serde_json::Value::Array(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(v, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(value) => {
            let mut out = String::with_capacity(body.len());
            write(&value, &mut out);
            out.into_bytes()
        }
        Err(_) => body.to_vec(),
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
    crate::edge::check_json_body(body)?;
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
    // The edge's one check of the path and query (`crate::edge`) runs before every route.
    let routes = crate::edge::clean_uri().and(
        health::routes(ctx.clone())
            .boxed()
            .or(policies::routes(ctx.clone(), max_body).boxed())
            .unify()
            .or(audit::routes(ctx.clone()).boxed())
            .unify()
            .or(people::routes(ctx.clone(), max_body).boxed())
            .unify()
            .or(artists::routes(ctx.clone(), max_body).boxed())
            .unify()
            .or(connections::routes(ctx.clone(), max_body).boxed())
            .unify()
            .or(extension::routes(ctx.clone()).boxed())
            .unify()
            .or(campaigns::routes(ctx.clone(), max_body, max_ingest).boxed())
            .unify()
            .or(billing::routes(ctx.clone(), max_body).boxed())
            .unify()
            .or(privacy::routes(ctx.clone(), max_body).boxed())
            .unify()
            .or(console::routes(ctx.clone()).boxed())
            .unify()
            .or(operations::routes(ctx, max_body).boxed())
            .unify()
            .or(method_not_allowed().boxed())
            .unify()
            // Boxed, each subject's routes and the whole: the combined filter's futures are
            // otherwise deep enough to overflow a worker thread's stack (debug builds) and the
            // compiler's query depth when the server future is laid out.
            .boxed(),
    );
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

/// Answers 405 with `Allow` (problem+json) when no route took the request and its path is a
/// documented route without its method; otherwise rejects as not found, so the rejections of
/// the routes tried (a body too large, a bad header) are what [`recover`] answers.
fn method_not_allowed() -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + Send + Sync + 'static {
    warp::method().and(warp::path::full()).and_then(
        |method: warp::http::Method, path: warp::path::FullPath| async move {
            let allowed: Vec<String> = crate::route_table::routes()
                .iter()
                .filter(|r| r.matches(path.as_str()))
                .flat_map(|r| r.methods.iter().cloned())
                .collect();
            if allowed.is_empty() || allowed.iter().any(|m| m == method.as_str()) {
                return Err(warp::reject::not_found());
            }
            let mut response = finish(&telemetry::request_id(None), Err(ApiError::MethodNotAllowed));
            if let Ok(value) = HeaderValue::from_str(&allowed.join(", ")) {
                response.headers_mut().insert("allow", value);
            }
            Ok::<_, Rejection>(response)
        },
    )
}

/// Maps framework rejections (no such route, wrong method, body too large, bad header) to
/// problem+json. Handlers never reject: they answer.
async fn recover(rejection: Rejection, max_body: u64) -> Result<Response, Infallible> {
    let request_id = telemetry::request_id(None);
    // Body rejections first: warp combines the rejections of every route tried, and a body
    // refused by the POST route would otherwise be reported as the GET route's wrong method.
    let error = if let Some(refused) = rejection.find::<crate::edge::ControlInUri>() {
        refused.error()
    } else if rejection.find::<warp::reject::PayloadTooLarge>().is_some() {
        ApiError::PayloadTooLarge(max_body)
    } else if rejection.find::<warp::reject::LengthRequired>().is_some() {
        ApiError::InvalidRequest("a Content-Length header is required".into())
    } else if format!("{rejection:?}").contains("BodyReadError") {
        // warp's body-read rejection is private: the body failed to arrive, in practice the
        // body read timeout (api/src/server.rs) or a client gone mid-body.
        ApiError::RequestTimeout
    } else if rejection.is_not_found() {
        ApiError::NotFound("no such route".into())
    } else if rejection.find::<warp::reject::InvalidHeader>().is_some()
        || rejection.find::<warp::reject::MissingHeader>().is_some()
    {
        // Before the wrong method: a malformed header refused by the route of this method
        // must not be reported as the other route's wrong method.
        ApiError::InvalidRequest("a request header is malformed".into())
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        ApiError::MethodNotAllowed
    } else if rejection.find::<warp::reject::InvalidQuery>().is_some() {
        ApiError::InvalidRequest("the query string is malformed".into())
    } else {
        tracing::warn!(?rejection, "unmapped rejection");
        ApiError::InvalidRequest("the request could not be processed".into())
    };
    Ok(finish(&request_id, Err(error)))
}

/// The value of query parameter `name`, if given.
pub fn param<'a>(query: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    query.get(name).map(String::as_str)
}

/// A command's answer as JSON with `status`, for the idempotency record.
pub fn reply<T: serde::Serialize>(status: StatusCode, body: &T) -> Result<CommandReply, ApiError> {
    Ok(CommandReply {
        status,
        body: serde_json::to_value(body).map_err(|_| ApiError::Internal)?,
    })
}

/// A query parameter that is a day (`YYYY-MM-DD`).
pub fn day_param(query: &HashMap<String, String>, name: &str) -> Result<Option<chrono::NaiveDate>, ApiError> {
    param(query, name)
        .map(|raw| {
            raw.parse()
                .map_err(|_| ApiError::InvalidRequest(format!("{name} must be a date such as 2026-03-01")))
        })
        .transpose()
}
