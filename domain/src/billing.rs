//! Billing (P3, P11): a billing account per paying customer (its Stripe customer, its plan,
//! the artists it pays for, the payment method as Stripe summarises it, the subscription's
//! state and the Stripe facts behind it), and a billing period per account and month whose
//! closing statement fixes the spend fee and carries the adjustments of earlier periods.
//!
//! **The fee rule.** For a period and the account's billing currency: billable spend =
//! max(0, spend − included spend); fee = billable × basis points ÷ 10,000 in integer micros,
//! rounded half up ([`fee_micros`]). Spend in another currency is listed, never added.
//! A restatement of a closed period does not reopen it: the next statement carries an
//! adjustment (the difference in spend and in fee, and the readings behind it). What is
//! reported to Stripe is the statement's total in the currency's minor unit (cents; whole
//! units for zero-decimal currencies), rounded half up; a negative total is reported as zero
//! and carried to the next statement as a credit, so nothing is charged twice or lost.

use crate::sealed::Sealed;
use crate::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// What a customer pays.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// The subscription's own fee per month (charged by the Stripe subscription), in micros.
    pub monthly_fee_micros: i64,
    /// Spend per period on which no fee is due, in micros.
    pub included_spend_micros: i64,
    /// The fee on spend beyond the included spend, in basis points (250 = 2.5 %).
    pub fee_basis_points: i64,
    /// ISO 4217 billing currency.
    pub currency: String,
    /// IANA time zone whose calendar months are the periods (e.g. `Asia/Karachi`).
    pub time_zone: String,
}

/// The payment method as Stripe summarises it: never the card number.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentMethod {
    pub brand: String,
    pub last4: String,
    pub exp_month: u32,
    pub exp_year: u32,
    /// Personal data: sealed by the service under the owner's key.
    pub billing_address: Option<Sealed>,
}

/// The subscription as Stripe reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionState {
    #[default]
    Active,
    PastDue,
    Canceled,
}

/// A fact a Stripe webhook delivered: the transaction history (P3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StripeFact {
    /// `evt_…`: facts are recorded once per Stripe event.
    pub stripe_event_id: String,
    /// Stripe's event type, e.g. `invoice.paid`, `charge.refunded`.
    pub event_type: String,
    /// The object's id (`in_…`, `ch_…`, `sub_…`, `pm_…`).
    pub object_id: String,
    /// Amount in the currency's minor unit, when the object has one.
    pub amount_minor: Option<i64>,
    pub currency: Option<String>,
    /// The object's status (`paid`, `past_due`, `succeeded`, …).
    pub status: Option<String>,
    /// Unix seconds when Stripe created the event.
    pub created: i64,
    /// The `t` of the delivery's verified signature: Stripe signs each delivery anew, so the
    /// same event with the same `t` again is a replay, not a retry.
    pub signed_at: i64,
}

/// Commands of a billing account.
#[derive(Clone, Debug, PartialEq)]
pub enum BillingCommand {
    Open {
        owner: String,
        stripe_customer_id: String,
        plan: Plan,
    },
    ChangePlan(Plan),
    AttachArtist {
        artist_id: String,
    },
    RecordPaymentMethod(PaymentMethod),
    RecordStripeFact(StripeFact),
}

/// Events of a billing account (stored shape version 1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum BillingEvent {
    BillingAccountOpened {
        owner: String,
        stripe_customer_id: String,
        plan: Plan,
    },
    PlanChanged(Plan),
    ArtistAttached {
        artist_id: String,
    },
    PaymentMethodRecorded(PaymentMethod),
    StripeFactRecorded(StripeFact),
    /// Payment failed: the account's campaigns move to "subscription paused".
    SubscriptionPastDue {
        stripe_event_id: String,
    },
    /// Paid again: the campaigns paused for the subscription resume.
    SubscriptionReactivated {
        stripe_event_id: String,
    },
    SubscriptionCanceled {
        stripe_event_id: String,
    },
}

impl DomainEvent for BillingEvent {
    const VERSIONS: &'static [(&'static str, u32)] = &[
        ("BillingAccountOpened", 1),
        ("PlanChanged", 1),
        ("ArtistAttached", 1),
        ("PaymentMethodRecorded", 1),
        ("StripeFactRecorded", 1),
        ("SubscriptionPastDue", 1),
        ("SubscriptionReactivated", 1),
        ("SubscriptionCanceled", 1),
    ];

    fn event_type(&self) -> String {
        match self {
            BillingEvent::BillingAccountOpened { .. } => "BillingAccountOpened",
            BillingEvent::PlanChanged(_) => "PlanChanged",
            BillingEvent::ArtistAttached { .. } => "ArtistAttached",
            BillingEvent::PaymentMethodRecorded(_) => "PaymentMethodRecorded",
            BillingEvent::StripeFactRecorded(_) => "StripeFactRecorded",
            BillingEvent::SubscriptionPastDue { .. } => "SubscriptionPastDue",
            BillingEvent::SubscriptionReactivated { .. } => "SubscriptionReactivated",
            BillingEvent::SubscriptionCanceled { .. } => "SubscriptionCanceled",
        }
        .to_string()
    }
}

/// Why a billing command was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BillingError {
    #[error("this billing account already exists")]
    AlreadyExists,
    #[error("there is no such billing account")]
    NoAccount,
    #[error("a Stripe customer id looks like cus_ followed by letters and digits")]
    InvalidCustomer,
    #[error("the plan's amounts must not be negative and its fee is 0 to 10,000 basis points")]
    InvalidPlan,
    #[error("the plan's amounts must be at most {max} micros", max = crate::money::MAX_MICROS)]
    PlanTooLarge,
    #[error("the currency must be an ISO 4217 code such as USD")]
    InvalidCurrency,
    #[error("the time zone must be an IANA name such as Asia/Karachi")]
    InvalidTimeZone,
    #[error("the currency of an open account cannot change")]
    CurrencyChange,
    #[error("a payment method summary is a brand, four digits and an expiry month and year")]
    InvalidPaymentMethod,
    #[error("this artist is already billed to this account")]
    AlreadyAttached,
    #[error("this webhook delivery was already received: a replay is refused")]
    ReplayedDelivery,
}

/// The state of a billing account.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct BillingAccount {
    owner: Option<String>,
    stripe_customer_id: Option<String>,
    plan: Option<Plan>,
    artists: BTreeSet<String>,
    subscription: SubscriptionState,
    seen_stripe_events: std::collections::BTreeMap<String, BTreeSet<i64>>,
}

impl BillingAccount {
    pub fn owner(&self) -> Option<&str> {
        self.owner.as_deref()
    }
    pub fn stripe_customer_id(&self) -> Option<&str> {
        self.stripe_customer_id.as_deref()
    }
    pub fn plan(&self) -> Option<&Plan> {
        self.plan.as_ref()
    }
    pub fn artists(&self) -> &BTreeSet<String> {
        &self.artists
    }
    pub fn subscription(&self) -> SubscriptionState {
        self.subscription
    }
}

fn is_currency(code: &str) -> bool {
    code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase())
}

fn check_plan(plan: &Plan) -> Result<(), BillingError> {
    if plan.monthly_fee_micros < 0 || plan.included_spend_micros < 0 || !(0..=10_000).contains(&plan.fee_basis_points) {
        return Err(BillingError::InvalidPlan);
    }
    if plan.monthly_fee_micros > crate::money::MAX_MICROS || plan.included_spend_micros > crate::money::MAX_MICROS {
        return Err(BillingError::PlanTooLarge);
    }
    if !is_currency(&plan.currency) {
        return Err(BillingError::InvalidCurrency);
    }
    // The service checks the name against the time-zone database; here, its shape.
    let shape = !plan.time_zone.is_empty()
        && plan.time_zone.len() <= 64
        && plan
            .time_zone
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/_-+".contains(&b));
    if !shape {
        return Err(BillingError::InvalidTimeZone);
    }
    Ok(())
}

impl Aggregate for BillingAccount {
    const TYPE: &'static str = "billing_account";
    type Command = BillingCommand;
    type Event = BillingEvent;
    type Error = BillingError;

    fn handle(&self, command: BillingCommand) -> Result<Vec<BillingEvent>, BillingError> {
        use BillingCommand as C;
        use BillingEvent as E;
        if !matches!(command, C::Open { .. }) && self.owner.is_none() {
            return Err(BillingError::NoAccount);
        }
        match command {
            C::Open {
                owner,
                stripe_customer_id,
                plan,
            } => {
                if self.owner.is_some() {
                    return Err(BillingError::AlreadyExists);
                }
                let valid = stripe_customer_id.strip_prefix("cus_").is_some_and(|rest| {
                    (1..=64).contains(&rest.len()) && rest.bytes().all(|b| b.is_ascii_alphanumeric())
                });
                if !valid {
                    return Err(BillingError::InvalidCustomer);
                }
                check_plan(&plan)?;
                Ok(vec![E::BillingAccountOpened {
                    owner,
                    stripe_customer_id,
                    plan,
                }])
            }
            C::ChangePlan(plan) => {
                check_plan(&plan)?;
                if self
                    .plan
                    .as_ref()
                    .is_some_and(|current| current.currency != plan.currency)
                {
                    return Err(BillingError::CurrencyChange);
                }
                if self.plan.as_ref() == Some(&plan) {
                    return Ok(vec![]);
                }
                Ok(vec![E::PlanChanged(plan)])
            }
            C::AttachArtist { artist_id } => {
                if self.artists.contains(&artist_id) {
                    return Err(BillingError::AlreadyAttached);
                }
                Ok(vec![E::ArtistAttached { artist_id }])
            }
            C::RecordPaymentMethod(method) => {
                let valid = !method.brand.is_empty()
                    && method.brand.len() <= 32
                    && method.last4.len() == 4
                    && method.last4.bytes().all(|b| b.is_ascii_digit())
                    && (1..=12).contains(&method.exp_month)
                    && (2000..=2100).contains(&method.exp_year);
                if !valid {
                    return Err(BillingError::InvalidPaymentMethod);
                }
                Ok(vec![E::PaymentMethodRecorded(method)])
            }
            C::RecordStripeFact(fact) => {
                if let Some(deliveries) = self.seen_stripe_events.get(&fact.stripe_event_id) {
                    if deliveries.contains(&fact.signed_at) {
                        return Err(BillingError::ReplayedDelivery);
                    }
                    // Stripe delivering the same event again records nothing.
                    return Ok(vec![]);
                }
                let id = fact.stripe_event_id.clone();
                let status = fact.status.as_deref();
                let mut events = vec![];
                let next = match (fact.event_type.as_str(), status) {
                    ("invoice.payment_failed", _) | ("customer.subscription.updated", Some("past_due" | "unpaid")) => {
                        Some(SubscriptionState::PastDue)
                    }
                    ("invoice.paid", _) | ("customer.subscription.updated", Some("active")) => {
                        Some(SubscriptionState::Active)
                    }
                    ("customer.subscription.deleted", _) => Some(SubscriptionState::Canceled),
                    _ => None,
                };
                events.push(E::StripeFactRecorded(fact));
                match (self.subscription, next) {
                    (SubscriptionState::Active, Some(SubscriptionState::PastDue)) => {
                        events.push(E::SubscriptionPastDue { stripe_event_id: id })
                    }
                    (SubscriptionState::PastDue, Some(SubscriptionState::Active)) => {
                        events.push(E::SubscriptionReactivated { stripe_event_id: id })
                    }
                    (SubscriptionState::Active | SubscriptionState::PastDue, Some(SubscriptionState::Canceled)) => {
                        events.push(E::SubscriptionCanceled { stripe_event_id: id })
                    }
                    _ => {}
                }
                Ok(events)
            }
        }
    }

    fn apply(&mut self, event: BillingEvent) {
        use BillingEvent as E;
        match event {
            E::BillingAccountOpened {
                owner,
                stripe_customer_id,
                plan,
            } => {
                self.owner = Some(owner);
                self.stripe_customer_id = Some(stripe_customer_id);
                self.plan = Some(plan);
            }
            E::PlanChanged(plan) => self.plan = Some(plan),
            E::ArtistAttached { artist_id } => {
                self.artists.insert(artist_id);
            }
            E::PaymentMethodRecorded(_) => {}
            E::StripeFactRecorded(fact) => {
                self.seen_stripe_events
                    .entry(fact.stripe_event_id)
                    .or_default()
                    .insert(fact.signed_at);
            }
            E::SubscriptionPastDue { .. } => self.subscription = SubscriptionState::PastDue,
            E::SubscriptionReactivated { .. } => self.subscription = SubscriptionState::Active,
            E::SubscriptionCanceled { .. } => self.subscription = SubscriptionState::Canceled,
        }
    }
}

/// The fee on `spend_micros` under `plan`: beyond the included spend, at the plan's basis
/// points, in integer micros rounded half up.
pub fn fee_micros(spend_micros: i64, plan: &Plan) -> i64 {
    let billable = (i128::from(spend_micros) - i128::from(plan.included_spend_micros)).max(0);
    let fee = (billable * i128::from(plan.fee_basis_points) + 5_000) / 10_000;
    i64::try_from(fee).unwrap_or(i64::MAX)
}

/// Currencies Stripe charges in whole units (no minor unit).
const ZERO_DECIMAL: [&str; 16] = [
    "BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF",
];

/// Micros of `currency` in its minor unit (cents; whole units for zero-decimal currencies),
/// rounded half up (towards +∞ at exactly one half).
pub fn micros_to_minor(micros: i64, currency: &str) -> i64 {
    let unit: i64 = if ZERO_DECIMAL.contains(&currency) {
        1_000_000
    } else {
        10_000
    };
    micros.div_euclid(unit) + i64::from(micros.rem_euclid(unit) * 2 >= unit)
}

/// A correction of a closed period, carried by a later statement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Adjustment {
    /// The closed period it corrects (`YYYY-MM`).
    pub period: String,
    pub spend_delta_micros: i64,
    pub fee_delta_micros: i64,
    /// The spend ledgers (`<campaign>.<platform>.<day>`) restated after that period closed.
    pub readings: Vec<String>,
}

/// Spend in a currency other than the billing currency: listed, never added.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForeignSpend {
    pub currency: String,
    pub spend_micros: i64,
}

/// A closed period's statement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    pub period: String,
    pub currency: String,
    pub plan: Plan,
    pub spend_micros: i64,
    pub billable_micros: i64,
    pub fee_micros: i64,
    pub adjustments: Vec<Adjustment>,
    /// A credit carried from an earlier statement whose total was negative (≤ 0).
    pub carried_in_micros: i64,
    /// fee + adjustments + carried credit.
    pub total_micros: i64,
    /// What is reported to Stripe, in the minor unit (≥ 0).
    pub reported_minor: i64,
    /// A negative total, carried to the next statement (≤ 0).
    pub carried_out_micros: i64,
    pub foreign_spend: Vec<ForeignSpend>,
}

impl Statement {
    /// Builds a statement from the period's spend, the adjustments of earlier periods and the
    /// credit carried in.
    pub fn new(
        period: &str,
        plan: &Plan,
        spend_micros: i64,
        adjustments: Vec<Adjustment>,
        carried_in_micros: i64,
        foreign_spend: Vec<ForeignSpend>,
    ) -> Statement {
        let fee = fee_micros(spend_micros, plan);
        // Saturating: the maxima of `money` keep real totals far from the bounds of i64.
        let total = crate::money::saturating_sum(
            [fee, carried_in_micros]
                .into_iter()
                .chain(adjustments.iter().map(|a| a.fee_delta_micros)),
        );
        let reported = micros_to_minor(total.max(0), &plan.currency);
        Statement {
            period: period.to_string(),
            currency: plan.currency.clone(),
            plan: plan.clone(),
            spend_micros,
            billable_micros: spend_micros.saturating_sub(plan.included_spend_micros).max(0),
            fee_micros: fee,
            adjustments,
            carried_in_micros,
            total_micros: total,
            reported_minor: reported,
            carried_out_micros: total.min(0),
            foreign_spend,
        }
    }
}

/// Commands of a billing period (id `<account>.<YYYY-MM>`).
#[derive(Clone, Debug, PartialEq)]
pub enum PeriodCommand {
    Close(Statement),
    /// The outbox sent the statement to Stripe as a meter event with this identifier.
    RecordReported {
        identifier: String,
    },
}

/// Events of a billing period (stored shape version 1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum PeriodEvent {
    PeriodClosed(Statement),
    UsageReported { identifier: String, value_minor: i64 },
}

impl DomainEvent for PeriodEvent {
    const VERSIONS: &'static [(&'static str, u32)] = &[("PeriodClosed", 1), ("UsageReported", 1)];

    fn event_type(&self) -> String {
        match self {
            PeriodEvent::PeriodClosed(_) => "PeriodClosed",
            PeriodEvent::UsageReported { .. } => "UsageReported",
        }
        .to_string()
    }
}

/// Why a period command was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PeriodError {
    #[error("this period is already closed")]
    AlreadyClosed,
    #[error("this period is not closed yet")]
    NotClosed,
}

/// The state of a billing period.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct BillingPeriod {
    statement: Option<Statement>,
    reported: Option<String>,
}

impl BillingPeriod {
    pub fn id(account_id: &str, period: &str) -> String {
        format!("{account_id}.{period}")
    }
    pub fn statement(&self) -> Option<&Statement> {
        self.statement.as_ref()
    }
    /// The meter event identifier, once reported.
    pub fn reported(&self) -> Option<&str> {
        self.reported.as_deref()
    }
}

impl Aggregate for BillingPeriod {
    const TYPE: &'static str = "billing_period";
    type Command = PeriodCommand;
    type Event = PeriodEvent;
    type Error = PeriodError;

    fn handle(&self, command: PeriodCommand) -> Result<Vec<PeriodEvent>, PeriodError> {
        match command {
            PeriodCommand::Close(statement) => {
                if self.statement.is_some() {
                    return Err(PeriodError::AlreadyClosed);
                }
                Ok(vec![PeriodEvent::PeriodClosed(statement)])
            }
            PeriodCommand::RecordReported { identifier } => {
                let statement = self.statement.as_ref().ok_or(PeriodError::NotClosed)?;
                if self.reported.is_some() {
                    // Reported once; a second confirmation records nothing.
                    return Ok(vec![]);
                }
                Ok(vec![PeriodEvent::UsageReported {
                    identifier,
                    value_minor: statement.reported_minor,
                }])
            }
        }
    }

    fn apply(&mut self, event: PeriodEvent) {
        match event {
            PeriodEvent::PeriodClosed(statement) => self.statement = Some(statement),
            PeriodEvent::UsageReported { identifier, .. } => self.reported = Some(identifier),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::given;
    use BillingCommand as C;
    use BillingEvent as E;

    fn plan() -> Plan {
        Plan {
            monthly_fee_micros: 29_000_000,
            included_spend_micros: 500_000_000,
            fee_basis_points: 250,
            currency: "USD".into(),
            time_zone: "Asia/Karachi".into(),
        }
    }

    fn opened() -> E {
        E::BillingAccountOpened {
            owner: "p1".into(),
            stripe_customer_id: "cus_ABC123".into(),
            plan: plan(),
        }
    }

    fn fact(id: &str, event_type: &str, status: Option<&str>) -> StripeFact {
        StripeFact {
            stripe_event_id: id.into(),
            event_type: event_type.into(),
            object_id: "in_1".into(),
            amount_minor: Some(2900),
            currency: Some("usd".into()),
            status: status.map(str::to_string),
            created: 1_790_000_000,
            signed_at: 1_790_000_005,
        }
    }

    #[test]
    fn an_account_opens_with_a_stripe_customer_and_a_valid_plan() {
        given::<BillingAccount>(vec![])
            .when(C::Open {
                owner: "p1".into(),
                stripe_customer_id: "cus_ABC123".into(),
                plan: plan(),
            })
            .then_expect_events(vec![opened()]);
        given::<BillingAccount>(vec![])
            .when(C::Open {
                owner: "p1".into(),
                stripe_customer_id: "4242424242424242".into(),
                plan: plan(),
            })
            .then_expect_error_message("a Stripe customer id looks like cus_ followed by letters and digits");
        let mut bad = plan();
        bad.fee_basis_points = 10_001;
        given::<BillingAccount>(vec![])
            .when(C::Open {
                owner: "p1".into(),
                stripe_customer_id: "cus_A".into(),
                plan: bad,
            })
            .then_expect_error_message(
                "the plan's amounts must not be negative and its fee is 0 to 10,000 basis points",
            );
        given::<BillingAccount>(vec![opened()])
            .when(C::AttachArtist { artist_id: "a1".into() })
            .then_expect_events(vec![E::ArtistAttached { artist_id: "a1".into() }]);
        let mut euros = plan();
        euros.currency = "EUR".into();
        given::<BillingAccount>(vec![opened()])
            .when(C::ChangePlan(euros))
            .then_expect_error_message("the currency of an open account cannot change");
    }

    #[test]
    fn a_payment_method_is_a_summary_only() {
        let method = PaymentMethod {
            brand: "visa".into(),
            last4: "4242".into(),
            exp_month: 12,
            exp_year: 2030,
            billing_address: None,
        };
        given::<BillingAccount>(vec![opened()])
            .when(C::RecordPaymentMethod(method.clone()))
            .then_expect_events(vec![E::PaymentMethodRecorded(method.clone())]);
        let mut full = method;
        full.last4 = "4242424242424242".into();
        given::<BillingAccount>(vec![opened()])
            .when(C::RecordPaymentMethod(full))
            .then_expect_error_message("a payment method summary is a brand, four digits and an expiry month and year");
    }

    #[test]
    fn a_failed_payment_makes_the_subscription_past_due_and_paying_again_reactivates_it() {
        let failed = fact("evt_1", "invoice.payment_failed", Some("open"));
        given::<BillingAccount>(vec![opened()])
            .when(C::RecordStripeFact(failed.clone()))
            .then_expect_events(vec![
                E::StripeFactRecorded(failed.clone()),
                E::SubscriptionPastDue {
                    stripe_event_id: "evt_1".into(),
                },
            ]);
        let past_due = vec![
            opened(),
            E::StripeFactRecorded(failed.clone()),
            E::SubscriptionPastDue {
                stripe_event_id: "evt_1".into(),
            },
        ];
        // The same delivery again is a replay; Stripe's own redelivery (signed anew) records nothing.
        given::<BillingAccount>(past_due.clone())
            .when(C::RecordStripeFact(failed.clone()))
            .then_expect_error_message("this webhook delivery was already received: a replay is refused");
        let mut redelivered = failed;
        redelivered.signed_at += 3600;
        given::<BillingAccount>(past_due.clone())
            .when(C::RecordStripeFact(redelivered))
            .then_expect_events(vec![]);
        let paid = fact("evt_2", "invoice.paid", Some("paid"));
        given::<BillingAccount>(past_due)
            .when(C::RecordStripeFact(paid.clone()))
            .then_expect_events(vec![
                E::StripeFactRecorded(paid),
                E::SubscriptionReactivated {
                    stripe_event_id: "evt_2".into(),
                },
            ]);
        // Paid while active: a fact, no state change.
        let paid = fact("evt_3", "invoice.paid", Some("paid"));
        given::<BillingAccount>(vec![opened()])
            .when(C::RecordStripeFact(paid.clone()))
            .then_expect_events(vec![E::StripeFactRecorded(paid)]);
    }

    #[test]
    fn the_fee_is_charged_beyond_the_included_spend_rounded_half_up() {
        // 500 included; 1,000.000002 spent → 500.000002 × 2.5 % = 12.50000005 → 12.500000.
        assert_eq!(fee_micros(1_000_000_002, &plan()), 12_500_000);
        // 500.00002 billable × 2.5 % = 12.5000005 → rounds half up to 12.500001.
        assert_eq!(fee_micros(1_000_000_020, &plan()), 12_500_001);
        assert_eq!(fee_micros(400_000_000, &plan()), 0);
        assert!(fee_micros(i64::MAX, &plan()) > 0);
        assert_eq!(micros_to_minor(12_500_001, "USD"), 1250);
        assert_eq!(micros_to_minor(12_505_000, "USD"), 1251);
        assert_eq!(micros_to_minor(1_500_000, "JPY"), 2);
        assert_eq!(micros_to_minor(-15_000, "USD"), -1);
    }

    #[test]
    fn a_statement_carries_adjustments_and_a_negative_total_forward() {
        let adjustment = Adjustment {
            period: "2026-09".into(),
            spend_delta_micros: -900_000_000,
            fee_delta_micros: -22_500_000,
            readings: vec!["c1.meta.2026-09-30".into()],
        };
        let statement = Statement::new("2026-10", &plan(), 1_000_000_000, vec![adjustment], 0, vec![]);
        assert_eq!(statement.fee_micros, 12_500_000);
        assert_eq!(statement.total_micros, -10_000_000);
        assert_eq!(statement.reported_minor, 0);
        assert_eq!(statement.carried_out_micros, -10_000_000);
        let next = Statement::new("2026-11", &plan(), 2_500_000_000, vec![], -10_000_000, vec![]);
        assert_eq!(next.total_micros, 50_000_000 - 10_000_000);
        assert_eq!(next.reported_minor, 4000);
    }

    #[test]
    fn a_period_closes_once_and_is_reported_once() {
        let statement = Statement::new("2026-10", &plan(), 1_000_000_000, vec![], 0, vec![]);
        given::<BillingPeriod>(vec![])
            .when(PeriodCommand::RecordReported { identifier: "x".into() })
            .then_expect_error_message("this period is not closed yet");
        given::<BillingPeriod>(vec![PeriodEvent::PeriodClosed(statement.clone())])
            .when(PeriodCommand::Close(statement.clone()))
            .then_expect_error_message("this period is already closed");
        given::<BillingPeriod>(vec![PeriodEvent::PeriodClosed(statement.clone())])
            .when(PeriodCommand::RecordReported {
                identifier: "dynamoi-a1-2026-10".into(),
            })
            .then_expect_events(vec![PeriodEvent::UsageReported {
                identifier: "dynamoi-a1-2026-10".into(),
                value_minor: 1250,
            }]);
        given::<BillingPeriod>(vec![
            PeriodEvent::PeriodClosed(statement),
            PeriodEvent::UsageReported {
                identifier: "dynamoi-a1-2026-10".into(),
                value_minor: 1250,
            },
        ])
        .when(PeriodCommand::RecordReported {
            identifier: "dynamoi-a1-2026-10".into(),
        })
        .then_expect_events(vec![]);
    }
}
