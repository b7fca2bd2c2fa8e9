//! People: sign-up from the auth provider (service role), `GET`/`PATCH /v1/me`, closing one's
//! account (`POST /v1/me/close`), one's own consents, policy acceptances and Facebook click
//! ids; support acting on a person's behalf (consents, marking a child's account); the
//! auditor's consent replay and receipts.
//!
//! Personal fields are sealed with the person's key here, before any command sees them, and
//! opened here when shown; a destroyed key shows them as erased (`null` and `erased: true`).

use super::{command_input, finish, json, parse_json, query_params, run_command, CommandReply, Ctx};
use crate::auth::Role;
use crate::consent;
use crate::ApiError;
use chrono::{DateTime, NaiveDate, Utc};
use domain::account::{Account, AccountCommand, AccountError, AuthProvider, ChildReport};
use domain::consent::{Acceptance, Change, ConsentCommand, ConsentError, Consents, Evidence, Method, Notice, Purpose};
use domain::sealed::Sealed;
use eventlog::{dispatch, CommandError, CommandOutcome, Db, EventMetadata};
use serde::Deserialize;
use serde_json::{json, Value};
use sqlx::Row;
use std::collections::HashMap;
use std::net::SocketAddr;
use vault::{KeyRef, Opened, SealedValue, Vault};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection};

/// The purpose key under which Facebook click ids are sealed (erasable on its own, P6).
pub const AD_ATTRIBUTION_KEY: &str = "ad_attribution";

/// What the request showed about where it came from (for consent evidence).
#[derive(Clone, Debug)]
struct Origin {
    user_agent: Option<String>,
    remote: Option<SocketAddr>,
}

impl Origin {
    fn evidence(&self) -> Evidence {
        Evidence::from_request(self.user_agent.as_deref(), self.remote.map(|a| a.ip()))
    }
}

fn origin() -> impl Filter<Extract = (Origin,), Error = Rejection> + Clone + Send + Sync + 'static {
    warp::header::optional::<String>("user-agent")
        .and(warp::addr::remote())
        .map(|user_agent, remote| Origin { user_agent, remote })
}

pub fn routes(
    ctx: impl Filter<Extract = (Ctx,), Error = Rejection> + Clone + Send + Sync + 'static,
    max_body: u64,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + Send + Sync + 'static {
    let sign_up = warp::path!("v1" / "accounts")
        .and(warp::post())
        .and(ctx.clone())
        .and(command_input(max_body))
        .then(
            |ctx: Ctx, key: Option<String>, ct: Option<String>, body: bytes::Bytes| async move {
                let result = run_command(&ctx, "sign-up", key.as_deref(), &body, || {
                    sign_up(&ctx, ct.as_deref(), &body)
                })
                .await;
                finish(&ctx.request_id, result)
            },
        );
    let me = warp::path!("v1" / "me")
        .and(warp::get())
        .and(ctx.clone())
        .and(warp::query::<HashMap<String, String>>())
        .then(|ctx: Ctx, q| async move { finish(&ctx.request_id, me(&ctx, q).await) });
    let rectify = warp::path!("v1" / "me")
        .and(warp::patch())
        .and(ctx.clone())
        .and(command_input(max_body))
        .then(
            |ctx: Ctx, key: Option<String>, ct: Option<String>, body: bytes::Bytes| async move {
                let result = run_command(&ctx, "rectify", key.as_deref(), &body, || {
                    rectify(&ctx, ct.as_deref(), &body)
                })
                .await;
                finish(&ctx.request_id, result)
            },
        );
    // No body: closing takes nothing, so a bare `POST` (no Content-Length) is fine.
    let close = warp::path!("v1" / "me" / "close")
        .and(warp::post())
        .and(ctx.clone())
        .and(warp::header::optional::<String>("idempotency-key"))
        .then(|ctx: Ctx, key: Option<String>| async move {
            let result = run_command(&ctx, "close-account", key.as_deref(), b"", || close(&ctx)).await;
            finish(&ctx.request_id, result)
        });
    let my_consents = warp::path!("v1" / "me" / "consents")
        .and(warp::get())
        .and(ctx.clone())
        .and(warp::query::<HashMap<String, String>>())
        .then(|ctx: Ctx, q| async move {
            let result = match ctx.caller() {
                Ok(caller) => current_consents(&ctx, &caller.subject, q).await,
                Err(e) => Err(e),
            };
            finish(&ctx.request_id, result)
        });
    let change_consent_route = warp::path!("v1" / "me" / "consents")
        .and(warp::post())
        .and(ctx.clone())
        .and(origin())
        .and(command_input(max_body))
        .then(
            |ctx: Ctx, origin: Origin, key: Option<String>, ct: Option<String>, body: bytes::Bytes| async move {
                let result = run_command(&ctx, "consent", key.as_deref(), &body, || {
                    change_consent(&ctx, None, origin, ct.as_deref(), &body)
                })
                .await;
                finish(&ctx.request_id, result)
            },
        );
    let accept_policy = warp::path!("v1" / "me" / "policy-acceptances")
        .and(warp::post())
        .and(ctx.clone())
        .and(origin())
        .and(command_input(max_body))
        .then(
            |ctx: Ctx, origin: Origin, key: Option<String>, ct: Option<String>, body: bytes::Bytes| async move {
                let result = run_command(&ctx, "accept-policy", key.as_deref(), &body, || {
                    accept_policy(&ctx, origin, ct.as_deref(), &body)
                })
                .await;
                finish(&ctx.request_id, result)
            },
        );
    let attribution = warp::path!("v1" / "me" / "attribution-ids")
        .and(warp::post())
        .and(ctx.clone())
        .and(command_input(max_body))
        .then(
            |ctx: Ctx, key: Option<String>, ct: Option<String>, body: bytes::Bytes| async move {
                let result = run_command(&ctx, "attribution-ids", key.as_deref(), &body, || {
                    record_attribution_ids(&ctx, ct.as_deref(), &body)
                })
                .await;
                finish(&ctx.request_id, result)
            },
        );
    let support_consent =
        warp::path!("v1" / "support" / "people" / String / "consents")
            .and(warp::post())
            .and(ctx.clone())
            .and(origin())
            .and(command_input(max_body))
            .then(
                |person: String,
                 ctx: Ctx,
                 origin: Origin,
                 key: Option<String>,
                 ct: Option<String>,
                 body: bytes::Bytes| async move {
                    let result = run_command(&ctx, "support-consent", key.as_deref(), &body, || {
                        change_consent(&ctx, Some(person.clone()), origin, ct.as_deref(), &body)
                    })
                    .await;
                    finish(&ctx.request_id, result)
                },
            );
    let child = warp::path!("v1" / "support" / "people" / String / "child")
        .and(warp::post())
        .and(ctx.clone())
        .and(command_input(max_body))
        .then(
            |person: String, ctx: Ctx, key: Option<String>, ct: Option<String>, body: bytes::Bytes| async move {
                let result = run_command(&ctx, "mark-child", key.as_deref(), &body, || {
                    mark_as_child(&ctx, &person, ct.as_deref(), &body)
                })
                .await;
                finish(&ctx.request_id, result)
            },
        );
    let replay = warp::path!("v1" / "audit" / "people" / String / "consents")
        .and(warp::get())
        .and(ctx.clone())
        .and(warp::query::<HashMap<String, String>>())
        .then(
            |person: String, ctx: Ctx, q| async move { finish(&ctx.request_id, audit_replay(&ctx, &person, q).await) },
        );
    let receipt = warp::path!("v1" / "audit" / "people" / String / "consents" / "receipts" / String)
        .and(warp::get())
        .and(ctx)
        .then(|person: String, event_id: String, ctx: Ctx| async move {
            let result = async {
                ctx.caller()?.require(&[Role::Auditor])?;
                let person = person_id(&person)?;
                json(
                    StatusCode::OK,
                    &consent::receipt(&ctx.state.log, &person, &event_id).await?,
                )
            }
            .await;
            finish(&ctx.request_id, result)
        });
    sign_up
        .or(me)
        .unify()
        .or(rectify)
        .unify()
        .or(close)
        .unify()
        .or(my_consents)
        .unify()
        .or(change_consent_route)
        .unify()
        .or(accept_policy)
        .unify()
        .or(attribution)
        .unify()
        .or(support_consent)
        .unify()
        .or(child)
        .unify()
        .or(replay)
        .unify()
        .or(receipt)
        .unify()
}

/// A person id as the vault accepts it: the auth provider's user id.
pub(crate) fn person_id(raw: &str) -> Result<String, ApiError> {
    let ok =
        !raw.is_empty() && raw.len() <= 128 && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if ok {
        Ok(raw.to_string())
    } else {
        Err(ApiError::Validation(
            "person_id must be 1 to 128 letters, digits, `_`, `.` or `-`".into(),
        ))
    }
}

pub(crate) async fn seal(vault: &Vault, key: &KeyRef, field: &str, plaintext: &str) -> Result<Sealed, ApiError> {
    let sealed = vault.seal(key, field, plaintext.as_bytes()).await?;
    Ok(Sealed(serde_json::to_value(sealed).map_err(|_| ApiError::Internal)?))
}

/// Opens a sealed field for display: `None` when its key was destroyed.
pub async fn open(vault: &Vault, key: &KeyRef, field: &str, sealed_json: &str) -> Result<Option<String>, ApiError> {
    let sealed: SealedValue = serde_json::from_str(sealed_json).map_err(|_| ApiError::Internal)?;
    match vault.open_string(key, field, &sealed).await? {
        Opened::Plain(text) => Ok(Some(text.to_string())),
        Opened::Erased => Ok(None),
    }
}

fn position<E>(outcome: &CommandOutcome<E>) -> Value {
    json!(outcome.position.map(|p| p.to_string()))
}

fn account_error(error: CommandError<AccountError>) -> ApiError {
    match error {
        CommandError::Rejected(rule) => match rule {
            AccountError::AlreadySignedUp | AccountError::ChildAccount | AccountError::Closed => {
                ApiError::Conflict(rule.to_string())
            }
            AccountError::NoAccount => ApiError::NotFound(rule.to_string()),
            _ => ApiError::Validation(rule.to_string()),
        },
        CommandError::Log(log) => log.into(),
    }
}

fn consent_error(error: CommandError<ConsentError>) -> ApiError {
    match error {
        CommandError::Rejected(ConsentError::AttributionNotGranted) => {
            ApiError::Conflict(ConsentError::AttributionNotGranted.to_string())
        }
        CommandError::Rejected(rule) => ApiError::Validation(rule.to_string()),
        CommandError::Log(log) => log.into(),
    }
}

pub(crate) fn bounded(field: &str, value: &str, max: usize) -> Result<(), ApiError> {
    let chars = value.trim().chars().count();
    if chars == 0 || chars > max || value.chars().any(char::is_control) {
        return Err(ApiError::Validation(format!("{field} must be 1 to {max} characters")));
    }
    Ok(())
}

pub(crate) fn valid_email(email: &str) -> Result<(), ApiError> {
    bounded("email", email, 254)?;
    let parts: Vec<&str> = email.split('@').collect();
    if parts.len() != 2 || parts[0].is_empty() || !parts[1].contains('.') || email.contains(' ') {
        return Err(ApiError::Validation(
            "email must be an address such as name@example.com".into(),
        ));
    }
    Ok(())
}

pub(crate) fn valid_avatar(url: &str) -> Result<(), ApiError> {
    bounded("avatar_url", url, 2048)?;
    if !url.starts_with("https://") {
        return Err(ApiError::Validation("avatar_url must be an https:// URL".into()));
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignUpRequest {
    person_id: String,
    provider: AuthProvider,
    provider_subject: String,
    name: String,
    email: String,
    #[serde(default)]
    avatar_url: Option<String>,
    country: String,
    birth_date: NaiveDate,
}

async fn sign_up(ctx: &Ctx, content_type: Option<&str>, body: &[u8]) -> Result<CommandReply, ApiError> {
    let caller = ctx.caller()?;
    caller.require(&[Role::Service])?;
    let request: SignUpRequest = parse_json(content_type, body)?;
    let person = person_id(&request.person_id)?;
    // The age gate comes first, before anything is sealed or stored: an under-age sign-up
    // leaves no key, no event and no log line with personal data.
    let minimum = domain::age::minimum_age(&request.country).ok_or_else(|| {
        ApiError::Validation("country must be an ISO 3166-1 alpha-2 code such as `PK` or `DE`".into())
    })?;
    let today = Utc::now().date_naive();
    if request.birth_date > today {
        return Err(ApiError::Validation("birth_date is in the future".into()));
    }
    let age_years = domain::age::age_on(request.birth_date, today);
    if age_years < i32::from(minimum) {
        tracing::info!(request_id = %ctx.request_id, "sign-up refused by the age gate");
        return Err(ApiError::Validation(AccountError::AgeGate.to_string()));
    }
    bounded("name", &request.name, 200)?;
    valid_email(&request.email)?;
    bounded("provider_subject", &request.provider_subject, 256)?;
    if let Some(url) = &request.avatar_url {
        valid_avatar(url)?;
    }
    let vault = &ctx.state.vault;
    let key = KeyRef::person(&person);
    let command = AccountCommand::SignUp {
        provider: request.provider,
        provider_subject: seal(vault, &key, "provider_subject", &request.provider_subject).await?,
        name: seal(vault, &key, "name", &request.name).await?,
        email: seal(vault, &key, "email", &request.email).await?,
        avatar_url: match &request.avatar_url {
            Some(url) => Some(seal(vault, &key, "avatar_url", url).await?),
            None => None,
        },
        country: request.country,
        age_years,
    };
    let outcome = ctx
        .state
        .log
        .execute::<Account>(&person, command, &ctx.metadata(&caller))
        .await
        .map_err(account_error)?;
    Ok(CommandReply {
        status: StatusCode::CREATED,
        body: json!({ "person_id": person, "position": position(&outcome) }),
    })
}

async fn me(ctx: &Ctx, query: HashMap<String, String>) -> Result<Response, ApiError> {
    let caller = ctx.caller()?;
    caller.require(&[Role::Person])?;
    let query = query_params(&query, &["min_position"])?;
    ctx.wait_for_position("accounts", query.get("min_position")).await?;
    json(StatusCode::OK, &profile(ctx, &caller.subject).await?)
}

/// A person's profile from the `accounts` read model, opened with their key.
pub async fn profile(ctx: &Ctx, person: &str) -> Result<Value, ApiError> {
    let sql = "SELECT provider, country, minimum_age_met, name_sealed, email_sealed, avatar_url_sealed, child, \
               signed_up_at FROM accounts WHERE person_id = $1";
    let row = dispatch!(ctx.state.log.db(), Db, |pool| {
        let row = sqlx::query(sql).bind(person).fetch_optional(pool).await?;
        match row {
            Some(r) => Some((
                r.try_get::<String, _>(0)?,
                r.try_get::<String, _>(1)?,
                r.try_get::<i32, _>(2)?,
                r.try_get::<String, _>(3)?,
                r.try_get::<String, _>(4)?,
                r.try_get::<Option<String>, _>(5)?,
                r.try_get::<bool, _>(6)?,
                r.try_get::<String, _>(7)?,
            )),
            None => None,
        }
    });
    let Some((provider, country, minimum_age_met, name, email, avatar, child, signed_up_at)) = row else {
        return Err(ApiError::NotFound("there is no account for this person".into()));
    };
    let vault = &ctx.state.vault;
    let key = KeyRef::person(person);
    let name = open(vault, &key, "name", &name).await?;
    let email = open(vault, &key, "email", &email).await?;
    let avatar_url = match avatar {
        Some(a) => open(vault, &key, "avatar_url", &a).await?,
        None => None,
    };
    Ok(json!({
        "person_id": person,
        "provider": provider,
        "country": country,
        "minimum_age_met": minimum_age_met,
        "erased": name.is_none(),
        "name": name,
        "email": email,
        "avatar_url": avatar_url,
        "child_account": child,
        "signed_up_at": signed_up_at,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RectifyRequest {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    avatar_url: Option<String>,
}

async fn rectify(ctx: &Ctx, content_type: Option<&str>, body: &[u8]) -> Result<CommandReply, ApiError> {
    let caller = ctx.caller()?;
    caller.require(&[Role::Person])?;
    let request: RectifyRequest = parse_json(content_type, body)?;
    let vault = &ctx.state.vault;
    let key = KeyRef::person(&caller.subject);
    if let Some(name) = &request.name {
        bounded("name", name, 200)?;
    }
    if let Some(email) = &request.email {
        valid_email(email)?;
    }
    if let Some(url) = &request.avatar_url {
        valid_avatar(url)?;
    }
    let mut fields = [None, None, None];
    for (slot, (field, value)) in fields.iter_mut().zip([
        ("name", &request.name),
        ("email", &request.email),
        ("avatar_url", &request.avatar_url),
    ]) {
        if let Some(value) = value {
            *slot = Some(seal(vault, &key, field, value).await?);
        }
    }
    let [name, email, avatar_url] = fields;
    let outcome = ctx
        .state
        .log
        .execute::<Account>(
            &caller.subject,
            AccountCommand::Rectify {
                name,
                email,
                avatar_url,
            },
            &ctx.metadata(&caller),
        )
        .await
        .map_err(account_error)?;
    Ok(CommandReply {
        status: StatusCode::OK,
        body: json!({ "position": position(&outcome) }),
    })
}

/// `POST /v1/me/close`: the signed-in person closes their account. Its data is erased once
/// `DYNAMOI_RETENTION_CLOSED_ACCOUNT_DAYS` have passed (the retention job, P24); closing again
/// changes nothing.
async fn close(ctx: &Ctx) -> Result<CommandReply, ApiError> {
    let caller = ctx.caller()?;
    caller.require(&[Role::Person])?;
    let outcome = ctx
        .state
        .log
        .execute::<Account>(&caller.subject, AccountCommand::Close, &ctx.metadata(&caller))
        .await
        .map_err(account_error)?;
    Ok(CommandReply {
        status: StatusCode::OK,
        body: json!({ "position": position(&outcome) }),
    })
}

async fn current_consents(ctx: &Ctx, person: &str, query: HashMap<String, String>) -> Result<Response, ApiError> {
    let query = query_params(&query, &["min_position"])?;
    ctx.wait_for_position("consent_ledger", query.get("min_position"))
        .await?;
    let sql = "SELECT purpose, granted, notice_version, method, jurisdiction, changed_at, event_id \
               FROM consent_current WHERE person_id = $1";
    let rows: Vec<Value> = dispatch!(ctx.state.log.db(), Db, |pool| {
        let rows = sqlx::query(sql).bind(person).fetch_all(pool).await?;
        rows.iter()
            .map(|r| {
                Ok(json!({
                    "purpose": r.try_get::<String, _>(0)?,
                    "granted": r.try_get::<bool, _>(1)?,
                    "notice_version": r.try_get::<String, _>(2)?,
                    "method": r.try_get::<String, _>(3)?,
                    "jurisdiction": r.try_get::<String, _>(4)?,
                    "changed_at": r.try_get::<String, _>(5)?,
                    "event_id": r.try_get::<String, _>(6)?,
                }))
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?
    });
    let consents: Vec<Value> = Purpose::ALL
        .iter()
        .map(|p| {
            rows.iter()
                .find(|r| r["purpose"] == p.as_str())
                .cloned()
                .unwrap_or_else(|| json!({ "purpose": p.as_str(), "granted": false, "decided": false }))
        })
        .collect();
    json(StatusCode::OK, &json!({ "person_id": person, "consents": consents }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoticeRequest {
    #[serde(default)]
    document_id: Option<String>,
    version_label: String,
}

/// The notice a person was shown: a published policy version, with its text hash. Read from
/// the log (the policy document's own stream), so a version published a moment ago counts.
async fn notice(log: &eventlog::EventLog, request: &NoticeRequest) -> Result<Notice, ApiError> {
    let document = request
        .document_id
        .clone()
        .unwrap_or_else(|| super::policies::DEFAULT_DOCUMENT.into());
    let (policy, _, _) = log.load_aggregate::<domain::policy::PolicyDocument>(&document).await?;
    let version = policy
        .versions()
        .iter()
        .find(|v| v.label == request.version_label)
        .ok_or_else(|| ApiError::Validation("the notice names a policy version that has not been published".into()))?;
    Ok(Notice {
        document_id: document,
        version_label: version.label.clone(),
        text_sha256: version.text_sha256.clone(),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsentRequest {
    purpose: String,
    granted: bool,
    #[serde(default)]
    method: Option<Method>,
    jurisdiction: String,
    notice: NoticeRequest,
}

/// Grants or withdraws one purpose: for the caller, or (support) for `on_behalf_of`.
async fn change_consent(
    ctx: &Ctx,
    on_behalf_of: Option<String>,
    origin: Origin,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<CommandReply, ApiError> {
    let caller = ctx.caller()?;
    let (person, method_override) = match on_behalf_of {
        Some(person) => {
            caller.require(&[Role::Support])?;
            (person_id(&person)?, Some(Method::SupportOnBehalf))
        }
        None => {
            caller.require(&[Role::Person])?;
            (caller.subject.clone(), None)
        }
    };
    let request: ConsentRequest = parse_json(content_type, body)?;
    let purpose: Purpose = request.purpose.parse().map_err(ApiError::Validation)?;
    if request.method == Some(Method::SupportOnBehalf) && method_override.is_none() {
        return Err(ApiError::Validation(
            "only support may record a change on someone's behalf".into(),
        ));
    }
    let method = method_override.or(request.method).unwrap_or(Method::Api);
    let change = Change {
        purpose,
        notice: notice(&ctx.state.log, &request.notice).await?,
        method,
        jurisdiction: request.jurisdiction.to_ascii_uppercase(),
        evidence: origin.evidence(),
    };
    let command = if request.granted {
        ConsentCommand::Grant(change)
    } else {
        ConsentCommand::Withdraw(change)
    };
    let outcome = ctx
        .state
        .log
        .execute::<Consents>(&person, command, &ctx.metadata(&caller))
        .await
        .map_err(consent_error)?;
    if !request.granted && purpose == Purpose::AdAttribution {
        // Withdrawal erases the click ids at once: their key is destroyed (P6).
        ctx.state
            .vault
            .destroy(&KeyRef::purpose(&person, AD_ATTRIBUTION_KEY), "consent_withdrawn")
            .await?;
    }
    Ok(CommandReply {
        status: StatusCode::OK,
        body: json!({
            "person_id": person,
            "purpose": purpose,
            "granted": request.granted,
            "changed": !outcome.event_ids.is_empty(),
            "event_id": outcome.event_ids.first().map(|id| id.to_string()),
            "position": position(&outcome),
        }),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AcceptanceRequest {
    #[serde(default)]
    document_id: Option<String>,
    version_label: String,
    /// `explicit`, or `continued_use` after a notification sent at `notified_at`.
    mode: String,
    #[serde(default)]
    notified_at: Option<DateTime<Utc>>,
    #[serde(default)]
    method: Option<Method>,
}

async fn accept_policy(
    ctx: &Ctx,
    origin: Origin,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<CommandReply, ApiError> {
    let caller = ctx.caller()?;
    caller.require(&[Role::Person])?;
    let request: AcceptanceRequest = parse_json(content_type, body)?;
    let acceptance = match (request.mode.as_str(), request.notified_at) {
        ("explicit", None) => Acceptance::Explicit,
        ("continued_use", Some(notified_at)) => Acceptance::ContinuedUseAfterNotification { notified_at },
        ("continued_use", None) => {
            return Err(ApiError::Validation(
                "continued_use needs notified_at, when the person was notified".into(),
            ))
        }
        ("explicit", Some(_)) => return Err(ApiError::Validation("notified_at goes only with continued_use".into())),
        _ => {
            return Err(ApiError::Validation(
                "mode must be `explicit` or `continued_use`".into(),
            ))
        }
    };
    let notice = notice(
        &ctx.state.log,
        &NoticeRequest {
            document_id: request.document_id,
            version_label: request.version_label,
        },
    )
    .await?;
    let command = ConsentCommand::AcceptPolicy {
        notice,
        acceptance,
        method: request.method.unwrap_or(Method::Api),
        evidence: origin.evidence(),
    };
    let outcome = ctx
        .state
        .log
        .execute::<Consents>(&caller.subject, command, &ctx.metadata(&caller))
        .await
        .map_err(consent_error)?;
    Ok(CommandReply {
        status: StatusCode::OK,
        body: json!({
            "event_id": outcome.event_ids.first().map(|id| id.to_string()),
            "position": position(&outcome),
        }),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AttributionRequest {
    #[serde(default)]
    fbc: Option<String>,
    #[serde(default)]
    fbp: Option<String>,
}

async fn record_attribution_ids(ctx: &Ctx, content_type: Option<&str>, body: &[u8]) -> Result<CommandReply, ApiError> {
    let caller = ctx.caller()?;
    caller.require(&[Role::Person])?;
    // Click ids serve ad measurement (marketing): refused while processing is restricted (P22).
    crate::privacy::ensure_processing_allowed(&ctx.state.log, &caller.subject).await?;
    let request: AttributionRequest = parse_json(content_type, body)?;
    let person = caller.subject.clone();
    // The one consent check: refuse before anything is sealed, and name what we relied on.
    let decision = consent::check(&ctx.state.log, &person, Purpose::AdAttribution).await?;
    if !decision.allowed {
        return Err(ApiError::Conflict(ConsentError::AttributionNotGranted.to_string()));
    }
    for (field, value) in [("fbc", &request.fbc), ("fbp", &request.fbp)] {
        if let Some(value) = value {
            bounded(field, value, 512)?;
        }
    }
    let vault = &ctx.state.vault;
    let key = KeyRef::purpose(&person, AD_ATTRIBUTION_KEY);
    let fbc = match &request.fbc {
        Some(v) => Some(seal(vault, &key, "fbc", v).await?),
        None => None,
    };
    let fbp = match &request.fbp {
        Some(v) => Some(seal(vault, &key, "fbp", v).await?),
        None => None,
    };
    let metadata = EventMetadata {
        causation_id: decision.relied_on.clone(),
        ..ctx.metadata(&caller)
    };
    let outcome = ctx
        .state
        .log
        .execute::<Consents>(&person, ConsentCommand::RecordAttributionIds { fbc, fbp }, &metadata)
        .await
        .map_err(consent_error)?;
    Ok(CommandReply {
        status: StatusCode::OK,
        body: json!({
            "relied_on": decision.relied_on,
            "position": position(&outcome),
        }),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChildRequest {
    report: ChildReport,
}

async fn mark_as_child(
    ctx: &Ctx,
    person: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<CommandReply, ApiError> {
    let caller = ctx.caller()?;
    caller.require(&[Role::Support])?;
    let person = person_id(person)?;
    let request: ChildRequest = parse_json(content_type, body)?;
    let outcome = ctx
        .state
        .log
        .execute::<Account>(
            &person,
            AccountCommand::MarkAsChild { report: request.report },
            &ctx.metadata(&caller),
        )
        .await
        .map_err(account_error)?;
    // A child's data is deleted when learned (P27): marking the account opens an erase request
    // by itself, carried out at once (keys destroyed, tokens revoked, processors asked).
    let services = crate::privacy::Services::of(&ctx.state);
    let request_id = crate::privacy::open_system_erasure(&services, &person, "child_account").await?;
    let request = crate::privacy::request_view(&ctx.state.log, &request_id).await?;
    let keys_destroyed = request["erasure_certificate"]["certificate"]["keys_destroyed"]
        .as_array()
        .map_or(0, Vec::len);
    Ok(CommandReply {
        status: StatusCode::OK,
        body: json!({
            "person_id": person,
            "erase_request": request_id,
            "state": request["state"],
            "keys_destroyed": keys_destroyed,
            "position": request["position"].as_str().map(str::to_string).or_else(|| {
                position(&outcome).as_str().map(str::to_string)
            }),
        }),
    })
}

async fn audit_replay(ctx: &Ctx, person: &str, query: HashMap<String, String>) -> Result<Response, ApiError> {
    ctx.caller()?.require(&[Role::Auditor])?;
    let person = person_id(person)?;
    let query = query_params(&query, &["as_of"])?;
    let as_of = match query.get("as_of") {
        Some(raw) => DateTime::parse_from_rfc3339(raw)
            .map_err(|_| {
                ApiError::InvalidRequest("as_of must be an RFC 3339 instant such as 2026-11-01T12:00:00Z".into())
            })?
            .with_timezone(&Utc),
        None => Utc::now(),
    };
    json(StatusCode::OK, &consent::replay(&ctx.state.log, &person, as_of).await?)
}
