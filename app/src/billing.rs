//! Metered billing (P3, P11): billing accounts (owner, Stripe customer, plan, artists paid
//! for, card summary), usage per period and currency from the `billing` read model, closing a
//! period into a statement (fee, adjustments of earlier periods restated after they closed,
//! carried credit), reconciliation, Stripe webhook facts, and two workflows: the meter reports
//! (each closed period sent to Stripe exactly once) and the subscription holds (a past-due
//! subscription pauses the account's campaigns; paid again, they resume).
//!
//! Nothing is charged twice: a period's statement is fixed when it closes (an event), later
//! restatements of its days become one adjustment in the next statement, and a statement is
//! reported as one meter event whose identifier (`dynamoi-<account>-<period>`, also the
//! Idempotency-Key) Stripe deduplicates. The `meter_reports` workflow asks the period's own
//! stream before sending, so a rebuild or replay never sends again; a crash between Stripe's
//! answer and our record resends the same identifier, which Stripe answers as a duplicate, and
//! the workflow records it as reported. One account that Stripe refuses never holds up another:
//! each period is its own item, retried with backoff and parked when it keeps failing.
//!
//! Every billing input that holds a full card number is refused before anything looks at it
//! ([`refuse_card_numbers`]).

use crate::artists::authorize;
use crate::error::corrupt;
use crate::workflows::{self, Workflow};
use crate::{App, AppError, Call, Caller, Role};
use async_trait::async_trait;
use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use connectors::stripe::webhook::{verify_signature, DEFAULT_TOLERANCE_SECS};
use connectors::stripe::MeterEvent;
use domain::artist::Permission;
use domain::billing::{
    fee_micros, Adjustment, BillingAccount, BillingCommand, BillingError, BillingEvent, BillingPeriod, ForeignSpend,
    PaymentMethod, PeriodCommand, PeriodError, Plan, Statement, StripeFact, SubscriptionState,
};
use domain::campaign::{Campaign, CampaignCommand};
use domain::disclosure::{DataCategory, Processor, Purpose};
use domain::money::saturating_sum;
use domain::Aggregate;
use eventlog::workflow::{Item, NewItem};
use eventlog::{CommandError, Db, EventLog, EventMetadata, Position, StoredEvent};
use projections::read_models::billing as read_model;
pub use projections::read_models::billing::{AccountSummary, ClosedPeriod, FactRow, PeriodUsage};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `YYYY-MM` of a day.
pub fn period_of(day: NaiveDate) -> String {
    format!("{:04}-{:02}", day.year(), day.month())
}

/// Checks `YYYY-MM` and returns its first day.
pub fn parse_period(period: &str) -> Result<NaiveDate, AppError> {
    NaiveDate::parse_from_str(&format!("{period}-01"), "%Y-%m-%d")
        .ok()
        .filter(|_| period.len() == 7)
        .ok_or_else(|| AppError::Validation("a period is a month written YYYY-MM".into()))
}

/// Whether `period` has ended in `time_zone` at `now`.
pub fn period_ended(period: &str, time_zone: &str, now: DateTime<Utc>) -> Result<bool, AppError> {
    let first = parse_period(period)?;
    let next = first
        .checked_add_months(chrono::Months::new(1))
        .ok_or_else(|| AppError::Validation("the period is out of range".into()))?;
    let zone: chrono_tz::Tz = time_zone
        .parse()
        .map_err(|_| AppError::Validation("the time zone must be an IANA name such as Asia/Karachi".into()))?;
    let end = zone
        .from_local_datetime(&next.and_hms_opt(0, 0, 0).expect("midnight exists"))
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or(now);
    Ok(now >= end)
}

fn spend_in(usage: &[PeriodUsage], period: &str, currency: &str) -> i64 {
    usage
        .iter()
        .filter(|u| u.period == period && u.currency == currency)
        .map(|u| u.spend_micros)
        .fold(0i64, i64::saturating_add)
}

/// The statement `period` of `account` would close with now: its spend in the billing
/// currency, adjustments for every earlier closed period whose spend changed since (with the
/// readings restated after it closed), and the credit the last statement carried out. The
/// `billing` read model must be up to date (callers wait for it).
pub async fn draft_statement(db: &Db, account: &str, plan: &Plan, period: &str) -> Result<Statement, AppError> {
    let all_usage = read_model::usage(db, account, None).await?;
    let closed = read_model::closed_periods(db, account).await?;
    let mut adjustments = Vec::new();
    for earlier in closed.iter().filter(|c| c.period.as_str() < period) {
        let currency = &earlier.statement.currency;
        // What has been charged for it: its own spend and every later adjustment of it.
        let charged_spend = saturating_sum(
            std::iter::once(earlier.statement.spend_micros).chain(
                closed
                    .iter()
                    .flat_map(|c| c.statement.adjustments.iter())
                    .filter(|a| a.period == earlier.period)
                    .map(|a| a.spend_delta_micros),
            ),
        );
        let now_spend = spend_in(&all_usage, &earlier.period, currency);
        if now_spend != charged_spend {
            let plan = &earlier.statement.plan;
            adjustments.push(Adjustment {
                period: earlier.period.clone(),
                spend_delta_micros: now_spend.saturating_sub(charged_spend),
                fee_delta_micros: fee_micros(now_spend, plan).saturating_sub(fee_micros(charged_spend, plan)),
                readings: read_model::restated_after(db, account, &earlier.period, earlier.closed_at).await?,
            });
        }
    }
    let carried_in = closed
        .iter()
        .rfind(|c| c.period.as_str() < period)
        .map_or(0, |c| c.statement.carried_out_micros);
    let foreign = all_usage
        .iter()
        .filter(|u| u.period == period && u.currency != plan.currency)
        .map(|u| ForeignSpend {
            currency: u.currency.clone(),
            spend_micros: u.spend_micros,
        })
        .collect();
    Ok(Statement::new(
        period,
        plan,
        spend_in(&all_usage, period, &plan.currency),
        adjustments,
        carried_in,
        foreign,
    ))
}

/// Closes `period` of `account`: refused before the period has ended in the account's time
/// zone, or when it is closed already.
pub async fn close_period(
    log: &EventLog,
    account: &str,
    period: &str,
    now: DateTime<Utc>,
    metadata: &EventMetadata,
) -> Result<(Statement, Option<Position>), AppError> {
    let (state, _, _) = log.load_aggregate::<BillingAccount>(account).await?;
    let plan = state
        .plan()
        .ok_or_else(|| AppError::NotFound("there is no such billing account".into()))?
        .clone();
    if !period_ended(period, &plan.time_zone, now)? {
        return Err(AppError::Conflict(format!(
            "{period} has not ended yet in {}",
            plan.time_zone
        )));
    }
    let statement = draft_statement(log.db(), account, &plan, period).await?;
    let outcome = log
        .execute::<BillingPeriod>(
            &BillingPeriod::id(account, period),
            PeriodCommand::Close(statement.clone()),
            metadata,
        )
        .await
        .map_err(|e| match e {
            CommandError::Rejected(rule @ PeriodError::AlreadyClosed) => AppError::Conflict(rule.to_string()),
            CommandError::Rejected(rule) => AppError::Validation(rule.to_string()),
            CommandError::Log(log) => log.into(),
        })?;
    Ok((statement, outcome.position))
}

/// The meter event identifier of a period.
pub fn meter_identifier(account: &str, period: &str) -> String {
    format!("dynamoi-{account}-{period}")
}

/// What a caller is told when a body holds a card number (never the number, never where).
const CARD_NUMBER_REFUSED: &str = "the request holds a full card number; card numbers are never accepted here \
                                   (payment details go to Stripe directly)";

/// Refuses an input that holds a full card number, before anything else looks at it (P3).
pub fn refuse_card_numbers(body: &[u8]) -> Result<(), AppError> {
    let text = String::from_utf8_lossy(body);
    if domain::card_number::find_card_number_in_text(&text).is_some() {
        metrics::counter!("dynamoi_card_numbers_refused_total").increment(1);
        return Err(AppError::Validation(CARD_NUMBER_REFUSED.into()));
    }
    Ok(())
}

fn billing_error(error: CommandError<BillingError>) -> AppError {
    match error {
        CommandError::Rejected(rule @ BillingError::NoAccount) => AppError::NotFound(rule.to_string()),
        CommandError::Rejected(
            rule @ (BillingError::AlreadyExists | BillingError::AlreadyAttached | BillingError::ReplayedDelivery),
        ) => AppError::Conflict(rule.to_string()),
        CommandError::Rejected(rule) => AppError::Validation(rule.to_string()),
        CommandError::Log(log) => log.into(),
    }
}

/// A plan as requests carry it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanInput {
    /// The subscription's own fee per month, in micros.
    pub monthly_fee_micros: i64,
    /// Spend per period on which no fee is due, in micros.
    pub included_spend_micros: i64,
    /// The fee on spend beyond the included spend, in basis points (250 = 2.5 %).
    pub fee_basis_points: i64,
    /// ISO 4217 billing currency.
    pub currency: String,
    /// IANA time zone whose calendar months are the periods.
    pub time_zone: String,
}

impl PlanInput {
    /// The plan, its time zone checked against the IANA database.
    fn checked(self) -> Result<Plan, AppError> {
        self.time_zone
            .parse::<chrono_tz::Tz>()
            .map_err(|_| AppError::Validation("the time zone must be an IANA name such as Asia/Karachi".into()))?;
        Ok(Plan {
            monthly_fee_micros: self.monthly_fee_micros,
            included_spend_micros: self.included_spend_micros,
            fee_basis_points: self.fee_basis_points,
            currency: self.currency,
            time_zone: self.time_zone,
        })
    }
}

/// What opening an account takes: the Stripe customer the front end's Checkout created.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenRequest {
    pub stripe_customer_id: String,
    pub plan: PlanInput,
}

/// A billing command's answer.
#[derive(Clone, Debug, Serialize)]
pub struct Done {
    pub account_id: String,
    pub position: Option<String>,
}

/// The one answer for a Stripe customer the caller cannot show is theirs: whether it does not
/// exist, belongs to someone else, or already has someone else's account (no oracle).
fn not_your_customer() -> AppError {
    AppError::Validation(format!(
        "stripe_customer_id does not name a Stripe customer of yours (Checkout sets its metadata[{}] to your person id)",
        connectors::stripe::CUSTOMER_OWNER_KEY
    ))
}

/// The calling person opens a billing account for a Stripe customer; the account id is the
/// customer id. With Stripe configured, the customer must be the caller's: its
/// `metadata[dynamoi_person]` names them. A customer that does not exist, is someone else's, or
/// already has someone else's billing account gets one and the same answer
/// ([`not_your_customer`]); only the caller's own account again is a conflict.
pub async fn open_account(app: &App, call: &Call, request: OpenRequest) -> Result<Done, AppError> {
    call.caller.require(&[Role::Person])?;
    crate::restriction::ensure_may_process(&app.log, &call.caller.subject).await?;
    let plan = request.plan.checked()?;
    let account = request.stripe_customer_id.clone();
    if let Some(stripe) = &app.platforms.stripe {
        let owner = stripe.customer_owner(&account).await.map_err(|error| match error {
            connectors::ConnectorError::InvalidInput(_) => not_your_customer(),
            other => other.into(),
        })?;
        if owner.as_deref() != Some(call.caller.subject.as_str()) {
            return Err(not_your_customer());
        }
    }
    let (existing, _, _) = app.log.load_aggregate::<BillingAccount>(&account).await?;
    if existing.owner().is_some_and(|owner| owner != call.caller.subject) {
        return Err(not_your_customer());
    }
    let outcome = app
        .log
        .execute::<BillingAccount>(
            &account,
            BillingCommand::Open {
                owner: call.caller.subject.clone(),
                stripe_customer_id: request.stripe_customer_id,
                plan,
            },
            &call.metadata(),
        )
        .await
        .map_err(billing_error)?;
    Ok(Done {
        account_id: account,
        position: outcome.position.map(|p| p.to_string()),
    })
}

/// The account (write side), if the caller may see it: its owner, or (to read) support or an
/// auditor; others learn nothing.
async fn owned(app: &App, caller: &Caller, account: &str, staff_may_read: bool) -> Result<BillingAccount, AppError> {
    let (state, _, _) = app.log.load_aggregate::<BillingAccount>(account).await?;
    let staff = staff_may_read && matches!(caller.role, Role::Support | Role::Auditor);
    if state.owner().is_none() || !(staff || state.owner() == Some(caller.subject.as_str())) {
        return Err(AppError::NotFound("there is no such billing account".into()));
    }
    Ok(state)
}

/// A card summary as the owner records it (never the number).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentMethodInput {
    pub brand: String,
    pub last4: String,
    pub exp_month: u32,
    pub exp_year: u32,
    /// Personal data: sealed under the owner's key before it is recorded.
    #[serde(default)]
    pub billing_address: Option<Value>,
}

/// What the owner of an account can change.
#[derive(Clone, Debug)]
pub enum AccountAction {
    /// Bill an artist to the account (the caller must be the artist's admin).
    AttachArtist {
        artist_id: String,
    },
    ChangePlan(PlanInput),
    RecordPaymentMethod(PaymentMethodInput),
}

/// The owner changes the account.
pub async fn act(app: &App, call: &Call, account: &str, action: AccountAction) -> Result<Done, AppError> {
    owned(app, &call.caller, account, false).await?;
    let command = match action {
        AccountAction::AttachArtist { artist_id } => {
            authorize(app, &call.caller, &artist_id, Permission::ManageTeam, None).await?;
            BillingCommand::AttachArtist { artist_id }
        }
        AccountAction::ChangePlan(plan) => BillingCommand::ChangePlan(plan.checked()?),
        AccountAction::RecordPaymentMethod(method) => {
            let billing_address = match method.billing_address {
                None => None,
                Some(address) => Some(
                    crate::personal::seal(
                        &app.vault,
                        &vault::KeyRef::person(call.caller.subject.clone()),
                        "billing_address",
                        &address.to_string(),
                    )
                    .await?,
                ),
            };
            BillingCommand::RecordPaymentMethod(PaymentMethod {
                brand: method.brand,
                last4: method.last4,
                exp_month: method.exp_month,
                exp_year: method.exp_year,
                billing_address,
            })
        }
    };
    let outcome = app
        .log
        .execute::<BillingAccount>(account, command, &call.metadata())
        .await
        .map_err(billing_error)?;
    Ok(Done {
        account_id: account.to_string(),
        position: outcome.position.map(|p| p.to_string()),
    })
}

/// A period as closed.
#[derive(Clone, Debug, Serialize)]
pub struct Closed {
    pub account_id: String,
    pub statement: Statement,
    pub position: Option<String>,
}

/// Support or a service closes a period of an account (on a read model that has seen
/// `min_position`, when given).
pub async fn close(
    app: &App,
    call: &Call,
    account: &str,
    period: &str,
    min_position: Option<&str>,
) -> Result<Closed, AppError> {
    call.caller.require(&[Role::Support, Role::Service])?;
    parse_period(period)?;
    app.wait_for("billing", min_position).await?;
    let (statement, position) = close_period(&app.log, account, period, app.now(), &call.metadata()).await?;
    Ok(Closed {
        account_id: account.to_string(),
        statement,
        position: position.map(|p| p.to_string()),
    })
}

/// An account as its owner (or staff) sees it.
#[derive(Clone, Debug, Serialize)]
pub struct AccountView {
    pub account_id: String,
    pub stripe_customer_id: Option<String>,
    pub plan: Plan,
    pub artists: Vec<String>,
    pub subscription: String,
    pub payment_method: Option<PaymentMethodView>,
}

/// A card summary as shown.
#[derive(Clone, Debug, Serialize)]
pub struct PaymentMethodView {
    pub brand: String,
    pub last4: Option<String>,
    pub expiry: Option<String>,
}

/// What was reported to Stripe for a closed period.
#[derive(Clone, Debug, Serialize)]
pub struct Reported {
    pub identifier: String,
    pub value_minor: Option<i64>,
}

/// A period with its statement: closed (fixed) or open (a draft of what it would close with now).
#[derive(Clone, Debug, Serialize)]
pub struct PeriodView {
    pub period: String,
    /// `open` or `closed`.
    pub state: &'static str,
    pub statement: Statement,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reported: Option<Reported>,
}

/// An account's usage, open and closed periods.
#[derive(Clone, Debug, Serialize)]
pub struct UsageView {
    pub account_id: String,
    pub currency: String,
    pub usage: Vec<PeriodUsage>,
    pub open_periods: Vec<PeriodView>,
    pub closed_periods: Vec<PeriodView>,
}

fn closed_view(c: ClosedPeriod) -> PeriodView {
    PeriodView {
        period: c.period,
        state: "closed",
        statement: c.statement,
        reported: c.reported_identifier.map(|identifier| Reported {
            identifier,
            value_minor: c.reported_minor,
        }),
    }
}

/// What of an account is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccountRead<'a> {
    Account,
    Usage,
    Statement(&'a str),
    Invoices,
}

/// What a read answers.
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum AccountReadView {
    Account(AccountView),
    Usage(UsageView),
    Statement {
        account_id: String,
        #[serde(flatten)]
        period: PeriodView,
    },
    Invoices {
        account_id: String,
        history: Vec<FactRow>,
    },
}

/// Reads an account, its usage, one period's statement, or its invoice history.
pub async fn read(
    app: &App,
    call: &Call,
    account: &str,
    what: AccountRead<'_>,
    min_position: Option<&str>,
) -> Result<AccountReadView, AppError> {
    let state = owned(app, &call.caller, account, true).await?;
    app.wait_for("billing", min_position).await?;
    let db = app.log.db();
    let plan = state
        .plan()
        .cloned()
        .ok_or_else(|| corrupt("an open account without a plan"))?;
    Ok(match what {
        AccountRead::Account => {
            let summary = read_model::account_summary(db, account).await?;
            let subscription = summary
                .as_ref()
                .map_or("active".to_string(), |s| s.subscription.clone());
            AccountReadView::Account(AccountView {
                account_id: account.to_string(),
                stripe_customer_id: state.stripe_customer_id().map(str::to_string),
                plan,
                artists: state.artists().iter().cloned().collect(),
                subscription,
                payment_method: summary.and_then(|s| {
                    s.payment_brand.map(|brand| PaymentMethodView {
                        brand,
                        last4: s.payment_last4,
                        expiry: s.payment_expiry,
                    })
                }),
            })
        }
        AccountRead::Usage => {
            let usage = read_model::usage(db, account, None).await?;
            let closed = read_model::closed_periods(db, account).await?;
            let mut periods: Vec<&str> = usage.iter().map(|u| u.period.as_str()).collect();
            periods.dedup();
            let mut open = Vec::new();
            for period in periods {
                if closed.iter().any(|c| c.period == period) {
                    continue;
                }
                open.push(PeriodView {
                    period: period.to_string(),
                    state: "open",
                    statement: draft_statement(db, account, &plan, period).await?,
                    reported: None,
                });
            }
            AccountReadView::Usage(UsageView {
                account_id: account.to_string(),
                currency: plan.currency.clone(),
                usage: usage.clone(),
                open_periods: open,
                closed_periods: closed.into_iter().map(closed_view).collect(),
            })
        }
        AccountRead::Statement(period) => {
            parse_period(period)?;
            let closed = read_model::closed_periods(db, account).await?;
            let view = match closed.into_iter().find(|c| c.period == period) {
                Some(c) => closed_view(c),
                None => PeriodView {
                    period: period.to_string(),
                    state: "open",
                    statement: draft_statement(db, account, &plan, period).await?,
                    reported: None,
                },
            };
            AccountReadView::Statement {
                account_id: account.to_string(),
                period: view,
            }
        }
        AccountRead::Invoices => AccountReadView::Invoices {
            account_id: account.to_string(),
            history: read_model::facts(db, account).await?,
        },
    })
}

/// What a Stripe webhook delivery did.
#[derive(Clone, Debug, Serialize)]
pub struct WebhookOutcome {
    pub received: bool,
    pub recorded: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// Set when the fact changes the subscription: the `subscription_holds` workflow pauses or
    /// resumes the account's campaigns from this event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscription: Option<SubscriptionState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<String>,
}

/// A Stripe webhook delivery (`Stripe-Signature` and the raw body): refused when it holds a card
/// number or its signature does not verify; recorded once per Stripe event as a fact of the
/// account (the Stripe customer); an unknown customer is acknowledged and nothing stored. What
/// a past-due or reactivated subscription does to campaigns happens in the
/// `subscription_holds` workflow, from the recorded fact.
pub async fn stripe_webhook(
    app: &App,
    request_id: Option<String>,
    signature: Option<&str>,
    body: &[u8],
) -> Result<WebhookOutcome, AppError> {
    refuse_card_numbers(body)?;
    let secrets = &app.config.stripe_webhook_secrets;
    if secrets.is_empty() {
        return Err(AppError::Upstream(
            "Stripe webhooks are not configured (DYNAMOI_STRIPE_WEBHOOK_SECRET)".into(),
        ));
    }
    let signature = signature.ok_or_else(|| AppError::InvalidInput("the Stripe-Signature header is missing".into()))?;
    let verified = verify_signature(body, signature, secrets, app.now().timestamp(), DEFAULT_TOLERANCE_SECS)
        .map_err(|e| AppError::InvalidInput(format!("the Stripe signature does not verify: {e}")))?;
    let event: Value =
        serde_json::from_slice(body).map_err(|_| AppError::InvalidInput("a Stripe event is a JSON object".into()))?;
    let text = |v: &Value| v.as_str().map(str::to_string);
    let (Some(event_id), Some(event_type)) = (text(&event["id"]), text(&event["type"])) else {
        return Err(AppError::Validation("a Stripe event has an id and a type".into()));
    };
    let object = &event["data"]["object"];
    let ignored = |reason| WebhookOutcome {
        received: true,
        recorded: false,
        reason: Some(reason),
        subscription: None,
        position: None,
    };
    // The billing account is the Stripe customer.
    let customer =
        text(&object["customer"]).or_else(|| (object["object"] == "customer").then(|| text(&object["id"])).flatten());
    let Some(account) = customer else {
        return Ok(ignored("no customer"));
    };
    let (state, _, _) = app.log.load_aggregate::<BillingAccount>(&account).await?;
    if state.owner().is_none() {
        // Not a customer of ours (yet): acknowledged so Stripe stops retrying; nothing stored.
        return Ok(ignored("unknown customer"));
    }
    let metadata = EventMetadata {
        actor: "service:stripe-webhook".into(),
        request_id,
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
    let outcome = app
        .log
        .execute::<BillingAccount>(&account, BillingCommand::RecordStripeFact(fact), &metadata)
        .await
        .map_err(billing_error)?;
    if outcome.events.is_empty() {
        return Ok(ignored("duplicate"));
    }
    let mut position = outcome.position;
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
            let recorded = app
                .log
                .execute::<BillingAccount>(&account, BillingCommand::RecordPaymentMethod(method), &metadata)
                .await
                .map_err(billing_error)?;
            position = recorded.position.or(position);
        }
    }
    let subscription = outcome.events.iter().find_map(|event| match event {
        BillingEvent::SubscriptionPastDue { .. } => Some(SubscriptionState::PastDue),
        BillingEvent::SubscriptionReactivated { .. } => Some(SubscriptionState::Active),
        BillingEvent::SubscriptionCanceled { .. } => Some(SubscriptionState::Canceled),
        _ => None,
    });
    Ok(WebhookOutcome {
        received: true,
        recorded: true,
        reason: None,
        subscription,
        position: position.map(|p| p.to_string()),
    })
}

/// The `meter_reports` workflow: each closed period is one item (its `billing_period` stream
/// id), reported to Stripe once as a meter event, then recorded as `UsageReported`.
pub struct MeterReports;

/// Who the workflows' events are recorded as.
const METER_ACTOR: &str = "system:meter-reporter";

#[async_trait]
impl Workflow for MeterReports {
    fn name(&self) -> &'static str {
        "meter_reports"
    }

    fn select(&self, event: &StoredEvent) -> Vec<NewItem> {
        if event.aggregate_type == BillingPeriod::TYPE && event.event_type == "PeriodClosed" {
            vec![workflows::item(event.aggregate_id.clone(), &Value::Null)]
        } else {
            Vec::new()
        }
    }

    fn blocked(&self, app: &App) -> Option<String> {
        app.platforms
            .stripe
            .is_none()
            .then(|| "Stripe is not configured (DYNAMOI_STRIPE_API_KEY)".to_string())
    }

    async fn handle(&self, app: &App, item: &Item) -> Result<String, String> {
        report_period(app, &item.item).await.map_err(|e| e.to_string())
    }
}

/// Reports one closed period (its stream id `<account>.<YYYY-MM>`), unless its own stream says
/// it was reported already.
async fn report_period(app: &App, period_id: &str) -> Result<String, AppError> {
    let stripe = app
        .platforms
        .stripe
        .as_ref()
        .ok_or_else(|| AppError::Upstream("Stripe is not configured (DYNAMOI_STRIPE_API_KEY)".into()))?;
    let (state, _, _) = app.log.load_aggregate::<BillingPeriod>(period_id).await?;
    let Some(statement) = state.statement() else {
        return Ok("no statement: the period is not closed".into());
    };
    if state.reported().is_some() {
        return Ok("reported already".into());
    }
    let (account_id, period) = period_id
        .rsplit_once('.')
        .ok_or_else(|| corrupt("a billing period id without its period"))?;
    let (account, _, _) = app.log.load_aggregate::<BillingAccount>(account_id).await?;
    let (Some(customer), Some(owner)) = (account.stripe_customer_id(), account.owner()) else {
        return Err(corrupt("a closed period of an account that was never opened"));
    };
    let metadata = EventMetadata {
        actor: METER_ACTOR.into(),
        request_id: None,
        causation_id: None,
    };
    let identifier = meter_identifier(account_id, period);
    let mut outcome = format!("{period_id}: nothing to report (0)");
    if statement.reported_minor > 0 {
        let event = MeterEvent {
            event_name: app.config.stripe_meter_event.clone(),
            stripe_customer_id: customer.to_string(),
            value: statement.reported_minor,
            identifier: identifier.clone(),
            timestamp: app.now(),
        };
        // P17: the customer id and the amount go to Stripe, recorded under the account's owner.
        crate::disclosure::record(
            &app.log,
            owner,
            Processor::Stripe,
            &[DataCategory::BillingIdentifiers, DataCategory::SpendFigures],
            Purpose::MeteredBilling,
            Some(&identifier),
            &metadata,
        )
        .await?;
        // The connector's own message (status and kind, never a body or a key) is what an
        // operator sees on a parked item.
        let ack = stripe
            .send_meter_event(&event)
            .await
            .map_err(|e| AppError::Upstream(format!("Stripe: {e}")))?;
        outcome = format!(
            "{period_id}: {} minor units reported{}",
            statement.reported_minor,
            if ack.duplicate { " (Stripe had it already)" } else { "" }
        );
        metrics::counter!("dynamoi_meter_events_sent_total").increment(1);
    }
    app.log
        .execute::<BillingPeriod>(period_id, PeriodCommand::RecordReported { identifier }, &metadata)
        .await
        .map_err(|e| match e {
            CommandError::Rejected(rule) => AppError::Conflict(rule.to_string()),
            CommandError::Log(log) => log.into(),
        })?;
    Ok(outcome)
}

/// The `subscription_holds` workflow: each subscription change of an account (past due,
/// reactivated, canceled) is one item; handling it makes every campaign of the account's
/// artists match the account's *current* subscription: held while past due, released
/// otherwise. Judging by the current state makes the items commute: handled late, twice, or
/// out of order, the campaigns end where the subscription is, each paused or resumed once.
pub struct SubscriptionHolds;

/// An item of [`SubscriptionHolds`].
#[derive(Serialize, Deserialize)]
struct HoldItem {
    account: String,
    /// The position of the subscription event: the campaign list is read once the dashboards
    /// read model has it.
    position: String,
}

#[async_trait]
impl Workflow for SubscriptionHolds {
    fn name(&self) -> &'static str {
        "subscription_holds"
    }

    fn select(&self, event: &StoredEvent) -> Vec<NewItem> {
        let subscription = ["SubscriptionPastDue", "SubscriptionReactivated", "SubscriptionCanceled"];
        if event.aggregate_type == BillingAccount::TYPE && subscription.contains(&event.event_type.as_str()) {
            vec![workflows::item(
                format!("{}:{}", event.aggregate_id, event.event_id),
                &HoldItem {
                    account: event.aggregate_id.clone(),
                    position: event.position.to_string(),
                },
            )]
        } else {
            Vec::new()
        }
    }

    async fn handle(&self, app: &App, item: &Item) -> Result<String, String> {
        let hold: HoldItem = workflows::payload(item)?;
        let (moved, _) = match_subscription(app, &hold.account, Some(&hold.position))
            .await
            .map_err(|e| e.to_string())?;
        Ok(format!("{}: {moved} campaigns moved", hold.account))
    }
}

/// Pauses (past due) or resumes (otherwise) the campaigns of the account's artists to match its
/// current subscription; how many moved, and the position of the last move.
pub async fn match_subscription(
    app: &App,
    account: &str,
    seen: Option<&str>,
) -> Result<(usize, Option<Position>), AppError> {
    app.wait_for("dashboards", seen).await?;
    let (state, _, _) = app.log.load_aggregate::<BillingAccount>(account).await?;
    let hold = state.subscription() == SubscriptionState::PastDue;
    let metadata = EventMetadata {
        actor: "system:subscription-holds".into(),
        request_id: None,
        causation_id: None,
    };
    let mut moved = 0;
    let mut last = None;
    for artist in state.artists() {
        for campaign in projections::read_models::dashboards::campaigns_of(app.log.db(), artist).await? {
            let command = if hold {
                CampaignCommand::PauseForSubscription
            } else {
                CampaignCommand::ResumeAfterSubscription
            };
            let outcome = app
                .log
                .execute::<Campaign>(&campaign.campaign_id, command, &metadata)
                .await
                .map_err(|e| match e {
                    CommandError::Rejected(rule) => AppError::Conflict(rule.to_string()),
                    CommandError::Log(log) => log.into(),
                })?;
            moved += usize::from(!outcome.events.is_empty());
            last = outcome.position.or(last);
        }
    }
    Ok((moved, last))
}

/// Closes, for every account, the last month that has ended in its time zone (once: an
/// account already closed is skipped). The `billing_close` job (after the day's sync).
pub async fn close_ended_periods(app: &App, now: DateTime<Utc>) -> Result<usize, AppError> {
    let accounts = read_model::accounts(app.log.db()).await?;
    let today = now.date_naive();
    let last_month = period_of(today.with_day(1).unwrap_or(today) - chrono::Duration::days(1));
    let metadata = EventMetadata {
        actor: "system:billing-close".into(),
        request_id: None,
        causation_id: None,
    };
    let mut closed = 0;
    for (account, _) in accounts {
        match close_period(&app.log, &account, &last_month, now, &metadata).await {
            Ok(_) => closed += 1,
            // Closed already, or not ended yet in a time zone behind UTC: tomorrow.
            Err(AppError::Conflict(reason)) => tracing::debug!(%account, %reason, "billing period not closed"),
            Err(other) => return Err(other),
        }
    }
    Ok(closed)
}

/// One line of a reconciliation.
#[derive(Clone, Debug, Serialize)]
pub struct Difference {
    pub account_id: String,
    pub period: String,
    pub what: String,
}

/// Compares, for `period`, what every account's usage is now with its closed statement and
/// with what was reported to Stripe; lists every difference (none means all agree).
pub async fn reconcile(db: &Db, period: &str) -> Result<Vec<Difference>, AppError> {
    parse_period(period)?;
    let accounts = read_model::accounts(db).await?;
    let mut differences = Vec::new();
    for (account, currency) in accounts {
        let now = read_model::usage(db, &account, Some(period)).await?;
        let closed = read_model::closed_periods(db, &account).await?;
        let mut note = |what: String| {
            differences.push(Difference {
                account_id: account.clone(),
                period: period.to_string(),
                what,
            })
        };
        let Some(this) = closed.iter().find(|c| c.period == period) else {
            if now.iter().any(|u| u.spend_micros != 0) {
                note("the period has usage but is not closed".into());
            }
            continue;
        };
        let adjusted = saturating_sum(
            std::iter::once(this.statement.spend_micros).chain(
                closed
                    .iter()
                    .flat_map(|c| c.statement.adjustments.iter())
                    .filter(|a| a.period == period)
                    .map(|a| a.spend_delta_micros),
            ),
        );
        let current = spend_in(&now, period, &currency);
        if current != adjusted {
            note(format!(
                "usage is {current} micros {currency} but {adjusted} were charged (closed {} plus adjustments): \
                 the next statement will adjust {}",
                this.statement.spend_micros,
                current - adjusted
            ));
        }
        match (&this.reported_identifier, this.reported_minor) {
            (None, _) => note(format!(
                "closed with {} {currency} (minor units) to report, not reported to Stripe yet",
                this.statement.reported_minor
            )),
            (Some(_), Some(value)) if value != this.statement.reported_minor => note(format!(
                "reported {value} but the statement says {}",
                this.statement.reported_minor
            )),
            _ => {}
        }
        for foreign in &this.statement.foreign_spend {
            note(format!(
                "{} micros {} of spend in another currency, not billed",
                foreign.spend_micros, foreign.currency
            ));
        }
    }
    Ok(differences)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_period_ends_at_midnight_in_the_accounts_time_zone() {
        // Karachi is UTC+5: November ends at 2026-11-30T19:00:00Z.
        let before: DateTime<Utc> = "2026-11-30T18:59:59Z".parse().unwrap();
        let after: DateTime<Utc> = "2026-11-30T19:00:00Z".parse().unwrap();
        assert!(!period_ended("2026-11", "Asia/Karachi", before).unwrap());
        assert!(period_ended("2026-11", "Asia/Karachi", after).unwrap());
        assert!(period_ended("2026-11", "Mars/Olympus", after).is_err());
        assert!(parse_period("2026-13").is_err());
        assert!(parse_period("2026-1").is_err());
        assert_eq!(period_of("2026-02-28".parse().unwrap()), "2026-02");
    }
}
