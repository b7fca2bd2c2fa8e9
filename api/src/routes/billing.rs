//! Billing over HTTP (P3, P11): billing accounts (owner, Stripe customer, plan, artists paid
//! for), usage for the open and closed periods, statements with line items and adjustments,
//! the invoice history from Stripe's facts, closing a period (support, service), and
//! `POST /v1/webhooks/stripe`. Every billing request whose body holds a full card number is
//! refused with 422 before anything is parsed, stored or logged.

use super::artists::authorize;
use super::{command_input, finish, json, json_body, parse_json, query_params, run_command, CommandReply, Ctx};
use crate::auth::{Caller, Role};
use crate::billing;
use crate::ApiError;
use connectors::stripe::webhook::{verify_signature, DEFAULT_TOLERANCE_SECS};
use domain::artist::Permission;
use domain::billing::{BillingAccount, BillingCommand, BillingError, BillingEvent, PaymentMethod, Plan, StripeFact};
use domain::sealed::Sealed;
use eventlog::{dispatch, CommandError, Db, EventMetadata};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection};

/// What a caller is told when a body holds a card number (never the number, never where).
const CARD_NUMBER_REFUSED: &str = "the request holds a full card number; card numbers are never accepted here \
                                   (payment details go to Stripe directly)";

/// Refuses a body that holds a full card number, before anything else looks at it.
fn refuse_card_numbers(body: &[u8]) -> Result<(), ApiError> {
    let text = String::from_utf8_lossy(body);
    if domain::card_number::find_card_number_in_text(&text).is_some() {
        metrics::counter!("dynamoi_card_numbers_refused_total").increment(1);
        return Err(ApiError::Validation(CARD_NUMBER_REFUSED.into()));
    }
    Ok(())
}

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
                let result = match refuse_card_numbers(&body) {
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
                let result = match refuse_card_numbers(&body) {
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
                let result = match refuse_card_numbers(&body) {
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

fn billing_error(error: CommandError<BillingError>) -> ApiError {
    match error {
        CommandError::Rejected(rule @ BillingError::NoAccount) => ApiError::NotFound(rule.to_string()),
        CommandError::Rejected(
            rule @ (BillingError::AlreadyExists | BillingError::AlreadyAttached | BillingError::ReplayedDelivery),
        ) => ApiError::Conflict(rule.to_string()),
        CommandError::Rejected(rule) => ApiError::Validation(rule.to_string()),
        CommandError::Log(log) => log.into(),
    }
}

/// A plan as requests carry it; the time zone is checked against the IANA database.
fn checked_plan(plan: Plan) -> Result<Plan, ApiError> {
    plan.time_zone
        .parse::<chrono_tz::Tz>()
        .map_err(|_| ApiError::Validation("the time zone must be an IANA name such as Asia/Karachi".into()))?;
    Ok(plan)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OpenRequest {
    stripe_customer_id: String,
    plan: Plan,
}

/// `POST /v1/billing/accounts`: the caller opens an account for a Stripe customer (created
/// by the front end's Stripe Checkout); the account id is the customer id.
async fn open(ctx: &Ctx, content_type: Option<&str>, body: &[u8]) -> Result<CommandReply, ApiError> {
    let caller = ctx.caller()?;
    caller.require(&[Role::Person])?;
    let request: OpenRequest = parse_json(content_type, body)?;
    let plan = checked_plan(request.plan)?;
    let account = request.stripe_customer_id.clone();
    let outcome = ctx
        .state
        .log
        .execute::<BillingAccount>(
            &account,
            BillingCommand::Open {
                owner: caller.subject.clone(),
                stripe_customer_id: request.stripe_customer_id,
                plan,
            },
            &ctx.metadata(&caller),
        )
        .await
        .map_err(billing_error)?;
    Ok(CommandReply {
        status: StatusCode::CREATED,
        body: json!({ "account_id": account, "position": outcome.position.map(|p| p.to_string()) }),
    })
}

/// The account (write side) and the caller, who must be its owner (or, to read, support or
/// an auditor); others learn nothing.
async fn owned(ctx: &Ctx, account: &str, staff_may_read: bool) -> Result<(Caller, BillingAccount), ApiError> {
    let caller = ctx.caller()?;
    let (state, _, _) = ctx.state.log.load_aggregate::<BillingAccount>(account).await?;
    let staff = staff_may_read && matches!(caller.role, Role::Support | Role::Auditor);
    if state.owner().is_none() || !(staff || state.owner() == Some(caller.subject.as_str())) {
        return Err(ApiError::NotFound("there is no such billing account".into()));
    }
    Ok((caller, state))
}

/// `POST /v1/billing/accounts/{id}/{artists|plan|payment-method}`.
async fn act(
    ctx: &Ctx,
    account: &str,
    action: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Response, ApiError> {
    let (caller, _) = owned(ctx, account, false).await?;
    let command = match action {
        "artists" => {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct Attach {
                artist_id: String,
            }
            let request: Attach = parse_json(content_type, body)?;
            // Only an artist's admins may bill it to an account.
            authorize(ctx, &request.artist_id, Permission::ManageTeam, &HashMap::new()).await?;
            BillingCommand::AttachArtist {
                artist_id: request.artist_id,
            }
        }
        "plan" => BillingCommand::ChangePlan(checked_plan(parse_json(content_type, body)?)?),
        "payment-method" => {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct Method {
                brand: String,
                last4: String,
                exp_month: u32,
                exp_year: u32,
                billing_address: Option<Value>,
            }
            let request: Method = parse_json(content_type, body)?;
            let billing_address = match request.billing_address {
                None => None,
                Some(address) => {
                    let sealed = ctx
                        .state
                        .vault
                        .seal(
                            &vault::KeyRef::person(caller.subject.clone()),
                            "billing_address",
                            address.to_string().as_bytes(),
                        )
                        .await?;
                    Some(Sealed(serde_json::to_value(sealed).map_err(|_| ApiError::Internal)?))
                }
            };
            BillingCommand::RecordPaymentMethod(PaymentMethod {
                brand: request.brand,
                last4: request.last4,
                exp_month: request.exp_month,
                exp_year: request.exp_year,
                billing_address,
            })
        }
        _ => return Err(ApiError::NotFound("no such billing action".into())),
    };
    let outcome = ctx
        .state
        .log
        .execute::<BillingAccount>(account, command, &ctx.metadata(&caller))
        .await
        .map_err(billing_error)?;
    json(
        StatusCode::OK,
        &json!({ "account_id": account, "position": outcome.position.map(|p| p.to_string()) }),
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
    let caller = ctx.caller()?;
    caller.require(&[Role::Support, Role::Service])?;
    billing::parse_period(period)?;
    let request: CloseRequest = if body.is_empty() {
        CloseRequest::default()
    } else {
        parse_json(content_type, body)?
    };
    ctx.wait_for_position("billing", request.min_position.as_ref()).await?;
    let (statement, position) = billing::close_period(
        &ctx.state.log,
        account,
        period,
        chrono::Utc::now(),
        &ctx.metadata(&caller),
    )
    .await?;
    json(
        StatusCode::OK,
        &json!({ "account_id": account, "statement": statement, "position": position.map(|p| p.to_string()) }),
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
    let (_, state) = owned(ctx, account, true).await?;
    let query = query_params(&query, &["min_position"])?;
    ctx.wait_for_position("billing", query.get("min_position")).await?;
    let db = ctx.state.log.db();
    let plan = state.plan().cloned().ok_or(ApiError::Internal)?;
    match what {
        "account" if period.is_none() => {
            let sql = "SELECT subscription, payment_brand, payment_last4, payment_expiry FROM billing_accounts \
                       WHERE account_id = $1";
            type Row = (String, Option<String>, Option<String>, Option<String>);
            let row: Option<Row> = dispatch!(db, Db, |pool| {
                sqlx::query_as(sql).bind(account).fetch_optional(pool).await?
            });
            let (subscription, brand, last4, expiry) = row.unwrap_or(("active".into(), None, None, None));
            json(
                StatusCode::OK,
                &json!({
                    "account_id": account, "stripe_customer_id": state.stripe_customer_id(), "plan": plan,
                    "artists": state.artists(), "subscription": subscription,
                    "payment_method": brand.map(|brand| json!({"brand": brand, "last4": last4, "expiry": expiry})),
                }),
            )
        }
        "usage" => {
            let usage = billing::usage(db, account, None).await?;
            let closed = billing::closed_periods(db, account).await?;
            let mut open: Vec<Value> = Vec::new();
            let mut periods: Vec<&str> = usage.iter().map(|u| u.period.as_str()).collect();
            periods.dedup();
            for period in periods {
                if closed.iter().any(|c| c.period == period) {
                    continue;
                }
                let draft = billing::draft_statement(db, account, &plan, period).await?;
                open.push(json!({ "period": period, "state": "open", "statement": draft }));
            }
            json(
                StatusCode::OK,
                &json!({
                    "account_id": account, "currency": plan.currency, "usage": usage, "open_periods": open,
                    "closed_periods": closed.iter().map(|c| json!({
                        "period": c.period, "state": "closed", "statement": c.statement,
                        "reported": c.reported_identifier.as_ref().map(|id| json!({"identifier": id, "value_minor": c.reported_minor})),
                    })).collect::<Vec<_>>(),
                }),
            )
        }
        "statement" => {
            let period = period.unwrap_or_default();
            billing::parse_period(period)?;
            let closed = billing::closed_periods(db, account).await?;
            let body = match closed.into_iter().find(|c| c.period == period) {
                Some(c) => json!({
                    "account_id": account, "period": period, "state": "closed", "statement": c.statement,
                    "reported": c.reported_identifier.map(|id| json!({"identifier": id, "value_minor": c.reported_minor})),
                }),
                None => json!({
                    "account_id": account, "period": period, "state": "open",
                    "statement": billing::draft_statement(db, account, &plan, period).await?,
                }),
            };
            json(StatusCode::OK, &body)
        }
        "invoices" => {
            let sql = "SELECT stripe_event_id, event_type, object_id, amount_minor, currency, status, created \
                       FROM billing_facts WHERE account_id = $1 ORDER BY created, stripe_event_id";
            type Fact = (String, String, String, Option<i64>, Option<String>, Option<String>, i64);
            let rows: Vec<Fact> = dispatch!(db, Db, |pool| {
                sqlx::query_as(sql).bind(account).fetch_all(pool).await?
            });
            let history: Vec<Value> = rows
                .into_iter()
                .map(|(id, kind, object, amount, currency, status, created)| {
                    json!({"stripe_event_id": id, "type": kind, "object_id": object, "amount_minor": amount,
                           "currency": currency, "status": status, "created": created})
                })
                .collect();
            json(StatusCode::OK, &json!({ "account_id": account, "history": history }))
        }
        _ => Err(ApiError::NotFound("no such billing resource".into())),
    }
}

/// `POST /v1/webhooks/stripe`: verified, deduplicated, recorded.
async fn stripe_webhook(ctx: &Ctx, signature: Option<&str>, body: &[u8]) -> Result<Response, ApiError> {
    refuse_card_numbers(body)?;
    let secrets = &ctx.state.settings.integrations.stripe_webhook_secrets;
    if secrets.is_empty() {
        return Err(ApiError::Upstream(
            "Stripe webhooks are not configured (DYNAMOI_STRIPE_WEBHOOK_SECRET)".into(),
        ));
    }
    let signature =
        signature.ok_or_else(|| ApiError::InvalidRequest("the Stripe-Signature header is missing".into()))?;
    let verified = verify_signature(
        body,
        signature,
        secrets,
        chrono::Utc::now().timestamp(),
        DEFAULT_TOLERANCE_SECS,
    )
    .map_err(|e| ApiError::InvalidRequest(format!("the Stripe signature does not verify: {e}")))?;
    let event: Value =
        serde_json::from_slice(body).map_err(|_| ApiError::InvalidRequest("a Stripe event is a JSON object".into()))?;
    let text = |v: &Value| v.as_str().map(str::to_string);
    let (Some(event_id), Some(event_type)) = (text(&event["id"]), text(&event["type"])) else {
        return Err(ApiError::Validation("a Stripe event has an id and a type".into()));
    };
    let object = &event["data"]["object"];
    // The billing account is the Stripe customer.
    let customer =
        text(&object["customer"]).or_else(|| (object["object"] == "customer").then(|| text(&object["id"])).flatten());
    let Some(account) = customer else {
        return json(
            StatusCode::OK,
            &json!({ "received": true, "recorded": false, "reason": "no customer" }),
        );
    };
    let (state, _, _) = ctx.state.log.load_aggregate::<BillingAccount>(&account).await?;
    if state.owner().is_none() {
        // Not a customer of ours (yet): acknowledged so Stripe stops retrying; nothing stored.
        return json(
            StatusCode::OK,
            &json!({ "received": true, "recorded": false, "reason": "unknown customer" }),
        );
    }
    let metadata = EventMetadata {
        actor: "service:stripe-webhook".into(),
        request_id: Some(ctx.request_id.clone()),
        causation_id: None,
    };
    let fact = StripeFact {
        stripe_event_id: event_id,
        event_type: event_type.clone(),
        object_id: text(&object["id"]).unwrap_or_default(),
        amount_minor: object["amount_paid"]
            .as_i64()
            .or_else(|| object["amount"].as_i64())
            .or_else(|| object["amount_due"].as_i64()),
        currency: text(&object["currency"]),
        status: text(&object["status"]),
        created: event["created"].as_i64().unwrap_or(verified.timestamp),
        signed_at: verified.timestamp,
    };
    let outcome = ctx
        .state
        .log
        .execute::<BillingAccount>(&account, BillingCommand::RecordStripeFact(fact), &metadata)
        .await
        .map_err(billing_error)?;
    if outcome.events.is_empty() {
        return json(
            StatusCode::OK,
            &json!({ "received": true, "recorded": false, "reason": "duplicate" }),
        );
    }
    // A card's summary, as Stripe sends it (never the number: Stripe never sends one).
    if event_type == "payment_method.attached" {
        let card = &object["card"];
        if let (Some(brand), Some(last4), Some(month), Some(year)) = (
            text(&card["brand"]),
            text(&card["last4"]),
            card["exp_month"].as_u64(),
            card["exp_year"].as_u64(),
        ) {
            let method = PaymentMethod {
                brand,
                last4,
                exp_month: u32::try_from(month).unwrap_or(0),
                exp_year: u32::try_from(year).unwrap_or(0),
                billing_address: None,
            };
            ctx.state
                .log
                .execute::<BillingAccount>(&account, BillingCommand::RecordPaymentMethod(method), &metadata)
                .await
                .map_err(billing_error)?;
        }
    }
    let artists: Vec<String> = state.artists().iter().cloned().collect();
    let mut campaigns_moved = 0;
    let mut position = outcome.position;
    for event in &outcome.events {
        let hold = match event {
            BillingEvent::SubscriptionPastDue { .. } => true,
            BillingEvent::SubscriptionReactivated { .. } => false,
            _ => continue,
        };
        let (moved, last) = billing::hold_or_release_campaigns(&ctx.state.log, &artists, hold, &metadata).await?;
        campaigns_moved += moved;
        position = last.or(position);
    }
    json(
        StatusCode::OK,
        &json!({
            "received": true, "recorded": true, "campaigns_moved": campaigns_moved,
            "position": position.map(|p| p.to_string()),
        }),
    )
}
