//! Billing over HTTP (P3, P11): billing accounts (owner, Stripe customer, plan, artists paid
//! for), usage for the open and closed periods, statements with line items and adjustments,
//! the invoice history from Stripe's facts, closing a period (support, service), and
//! `POST /v1/webhooks/stripe` (the use cases are `app::billing`). Every billing request whose
//! body holds a full card number is refused with 422 before anything is parsed, stored or logged.

use super::{
    command_input, finish, json, json_body, param, parse_json, query_params, reply, run_command, CommandReply, Ctx,
};
use crate::auth::Role;
use crate::ApiError;
use app::billing::{AccountAction, AccountRead};
use serde::Deserialize;
use std::collections::HashMap;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection};

pub fn routes(
    ctx: impl Filter<Extract = (Ctx,), Error = Rejection> + Clone + Send + Sync + 'static,
    max_body: u64,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + Send + Sync + 'static {
    let open = warp::path!("v1" / "billing" / "accounts")
        .and(warp::post())
        .and(ctx.clone())
        .and(command_input(max_body))
        .then(
            |ctx: Ctx, key: Option<String>, ct: Option<String>, body: bytes::Bytes| async move {
                let result = match app::billing::refuse_card_numbers(&body).map_err(ApiError::from) {
                    Err(e) => Err(e),
                    Ok(()) => {
                        run_command(&ctx, "open-billing-account", key.as_deref(), &body, || {
                            open(&ctx, ct.as_deref(), &body)
                        })
                        .await
                    }
                };
                finish(&ctx.request_id, result)
            },
        );
    let act = warp::path!("v1" / "billing" / "accounts" / String / String)
        .and(warp::post())
        .and(ctx.clone())
        .and(json_body(max_body))
        .then(
            |account: String, action: String, ctx: Ctx, ct: Option<String>, body: bytes::Bytes| async move {
                let result = match app::billing::refuse_card_numbers(&body).map_err(ApiError::from) {
                    Err(e) => Err(e),
                    Ok(()) => act(&ctx, &account, &action, ct.as_deref(), &body).await,
                };
                finish(&ctx.request_id, result)
            },
        );
    let close = warp::path!("v1" / "billing" / "accounts" / String / "periods" / String / "close")
        .and(warp::post())
        .and(ctx.clone())
        .and(json_body(max_body))
        .then(
            |account: String, period: String, ctx: Ctx, ct: Option<String>, body: bytes::Bytes| async move {
                let result = match app::billing::refuse_card_numbers(&body).map_err(ApiError::from) {
                    Err(e) => Err(e),
                    Ok(()) => close(&ctx, &account, &period, ct.as_deref(), &body).await,
                };
                finish(&ctx.request_id, result)
            },
        );
    let resource = warp::path!("v1" / "billing" / "accounts" / String / String)
        .and(warp::get())
        .and(ctx.clone())
        .and(warp::query::<HashMap<String, String>>())
        .then(
            |account: String, what: String, ctx: Ctx, q: HashMap<String, String>| async move {
                finish(&ctx.request_id, read(&ctx, &account, &what, None, q).await)
            },
        );
    let show = warp::path!("v1" / "billing" / "accounts" / String)
        .and(warp::get())
        .and(ctx.clone())
        .and(warp::query::<HashMap<String, String>>())
        .then(|account: String, ctx: Ctx, q: HashMap<String, String>| async move {
            finish(&ctx.request_id, read(&ctx, &account, "account", None, q).await)
        });
    let statement = warp::path!("v1" / "billing" / "accounts" / String / "statements" / String)
        .and(warp::get())
        .and(ctx.clone())
        .and(warp::query::<HashMap<String, String>>())
        .then(
            |account: String, period: String, ctx: Ctx, q: HashMap<String, String>| async move {
                finish(
                    &ctx.request_id,
                    read(&ctx, &account, "statement", Some(&period), q).await,
                )
            },
        );
    let webhook = warp::path!("v1" / "webhooks" / "stripe")
        .and(warp::post())
        .and(ctx)
        .and(warp::header::optional::<String>("stripe-signature"))
        .and(warp::body::content_length_limit(max_body))
        .and(warp::body::bytes())
        .then(|ctx: Ctx, signature: Option<String>, body: bytes::Bytes| async move {
            finish(&ctx.request_id, stripe_webhook(&ctx, signature.as_deref(), &body).await)
        });
    open.or(close)
        .unify()
        .or(act)
        .unify()
        .or(show)
        .unify()
        .or(statement)
        .unify()
        .or(resource)
        .unify()
        .or(webhook)
        .unify()
}

/// `POST /v1/billing/accounts`: the caller opens an account for a Stripe customer.
async fn open(ctx: &Ctx, content_type: Option<&str>, body: &[u8]) -> Result<CommandReply, ApiError> {
    let call = ctx.call_as(&[Role::Person])?;
    let done = app::billing::open_account(ctx.app(), &call, parse_json(content_type, body)?).await?;
    reply(StatusCode::CREATED, &done)
}

/// `POST /v1/billing/accounts/{id}/{artists|plan|payment-method}`.
async fn act(
    ctx: &Ctx,
    account: &str,
    action: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Response, ApiError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Attach {
        artist_id: String,
    }
    let call = ctx.call_as(&[Role::Person])?;
    let action = match action {
        "artists" => {
            let request: Attach = parse_json(content_type, body)?;
            AccountAction::AttachArtist {
                artist_id: request.artist_id,
            }
        }
        "plan" => AccountAction::ChangePlan(parse_json(content_type, body)?),
        "payment-method" => AccountAction::RecordPaymentMethod(parse_json(content_type, body)?),
        _ => return Err(ApiError::NotFound("no such billing action".into())),
    };
    json(
        StatusCode::OK,
        &app::billing::act(ctx.app(), &call, account, action).await?,
    )
}

/// `POST /v1/billing/accounts/{id}/periods/{YYYY-MM}/close` (support, service):
/// `{"min_position": …}` optional, to close on a read model that has seen a write.
async fn close(
    ctx: &Ctx,
    account: &str,
    period: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Response, ApiError> {
    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    struct CloseRequest {
        min_position: Option<String>,
    }
    let call = ctx.call_as(&[Role::Support, Role::Service])?;
    let request: CloseRequest = if body.is_empty() {
        CloseRequest::default()
    } else {
        parse_json(content_type, body)?
    };
    json(
        StatusCode::OK,
        &app::billing::close(ctx.app(), &call, account, period, request.min_position.as_deref()).await?,
    )
}

/// `GET /v1/billing/accounts/{id}`, `…/{usage|invoices}` and `…/statements/{period}`.
async fn read(
    ctx: &Ctx,
    account: &str,
    what: &str,
    period: Option<&str>,
    query: HashMap<String, String>,
) -> Result<Response, ApiError> {
    let call = ctx.call()?;
    let query = query_params(&query, &["min_position"])?;
    let what = match (what, period) {
        ("account", None) => AccountRead::Account,
        ("usage", None) => AccountRead::Usage,
        ("invoices", None) => AccountRead::Invoices,
        ("statement", Some(period)) => AccountRead::Statement(period),
        _ => return Err(ApiError::NotFound("no such billing resource".into())),
    };
    json(
        StatusCode::OK,
        &app::billing::read(ctx.app(), &call, account, what, param(&query, "min_position")).await?,
    )
}

/// `POST /v1/webhooks/stripe`: verified, deduplicated, recorded.
async fn stripe_webhook(ctx: &Ctx, signature: Option<&str>, body: &[u8]) -> Result<Response, ApiError> {
    let outcome = app::billing::stripe_webhook(ctx.app(), Some(ctx.request_id.clone()), signature, body).await?;
    json(StatusCode::OK, &outcome)
}
