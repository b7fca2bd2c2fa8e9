//! Stripe: usage reported for metered billing (P11), a customer's personal fields cleared on
//! erasure (P22), and the signature check of Stripe's webhooks ([`webhook`]).
//!
//! **Meter events.** `POST {base}/v1/billing/meter_events`, form-encoded `event_name`,
//! `payload[stripe_customer_id]`, `payload[value]` (a whole number, as text), `identifier` and
//! `timestamp` (Unix seconds), with `Authorization: Bearer <secret key>` (Stripe's *Create a
//! billing meter event* reference); the answer is the meter event object
//! (`{"object": "billing.meter_event", "identifier", "livemode", "payload", "timestamp", …}`).
//! Stripe takes values of at most 15 significant digits, negative ones included (*Configure
//! meters*, "fix incorrectly recorded usage data by recording negative quantities": this is how
//! a restatement's correction is reported), identifiers of at most 100 characters, and
//! timestamps from the past 35 days up to 5 minutes ahead (older or later → a 400 returned as
//! [`ConnectorError::Client`]).
//!
//! **Never twice.** The event's `identifier` is sent twice: as the meter event's identifier, which
//! Stripe keeps unique for at least 24 hours, and as the `Idempotency-Key` header, with which
//! Stripe replays its first answer to a repeated request for 24 hours (*Idempotent requests*).
//! So the retries of the shared machinery (5xx, 429, 408, timeouts, reset connections) are
//! safe, and so is an outbox worker's retry of the whole call after a crash. The caller derives
//! the identifier from the one billable fact it reports (e.g. the spend event being billed, or
//! the restatement being corrected), never from the time of sending. Stripe keeps the answer of
//! a request that failed with a 500 under its idempotency key and replays it; such a call fails
//! with [`ConnectorError::Server`] and the outbox tries again later.
//!
//! **A duplicate identifier is success.** When Stripe already holds an event with this identifier
//! (the idempotency key has expired, or an earlier attempt was sent under another key), it
//! refuses the new one with a 400: `{"error": {"type": "invalid_request_error", "message": "An
//! event already exists with identifier …"}}`, or a code such as `resource_already_exists`.
//! Because an identifier names one billable fact, Stripe holding it proves that the fact was
//! reported: [`Stripe::send_meter_event`] answers [`MeterEventAck`] with `duplicate: true`
//! instead of an error, so the outbox marks the fact reported rather than stalling on it
//! forever. (The message is read only to recognise this case; it is never kept.)
//!
//! **Anonymising a customer.** `POST {base}/v1/customers/{id}` (*Update a customer*: "Any
//! parameters not provided will be left unchanged"), form-encoded `name=`, `email=`, `phone=`,
//! `description=`, `address=` and `shipping=`, with an `Idempotency-Key`. An empty value unsets
//! a field; `address` and `shipping` are hashes, which Stripe's API takes as `''` to unset (its
//! OpenAPI specification types both as "object or the empty string", as the generated SDKs
//! show: `Literal['']|…Address`). The customer object, its invoices and its payments stay:
//! billing records are kept under a legal obligation, so the customer is emptied, not deleted.
//! Metadata is left alone (dynamoi writes no personal data there). A 404 `resource_missing`
//! (no such customer: deleted already) is success.
//!
//! **Errors** (`{"error": {"type", "code", "message", "param"}}`, *Errors* reference; a message
//! can quote what we sent, so only the code, or without one the type, is kept): 401 →
//! [`ConnectorError::InvalidToken`] (our secret key is wrong: alert); 429 (`rate_limit`,
//! `lock_timeout`) → retried after `Retry-After`, then [`ConnectorError::RateLimited`]; 409 (a
//! request with the same idempotency key is still in flight) → retried; 404 →
//! [`ConnectorError::NotFound`]; other 4xx (403 for a restricted key without the permission,
//! 400 `idempotency_error` for a key reused with other parameters, an unknown customer, a
//! timestamp out of range) → [`ConnectorError::Client`] with the code.
//!
//! Stripe's secret key and webhook secrets are [`SecretString`]s: no log line, error or `Debug`
//! output of this module holds them.

use std::fmt;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::error::ConnectorError;
use crate::http::{check_id, lenient, Failure, HttpClient, HttpSettings, Verdict};
use crate::Url;

/// Stripe's bound on a meter event's `identifier`.
pub const MAX_IDENTIFIER_LEN: usize = 100;
/// Stripe's bound on a meter event's `event_name`.
pub const MAX_EVENT_NAME_LEN: usize = 100;
/// The largest magnitude of a meter event's value: Stripe refuses more than 15 significant digits.
pub const MAX_METER_VALUE: i64 = 999_999_999_999_999;

/// Stripe's bound on an `Idempotency-Key`.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// The update that empties a customer's personal fields (module documentation).
const ANONYMISED_CUSTOMER: [(&str, &str); 6] = [
    ("name", ""),
    ("email", ""),
    ("phone", ""),
    ("description", ""),
    ("address", ""),
    ("shipping", ""),
];

/// Where Stripe is and the secret key to call it with.
#[derive(Debug, Clone)]
pub struct StripeSettings {
    /// Default `https://api.stripe.com`.
    pub base_url: Url,
    /// A secret (`sk_…`) or restricted (`rk_…`) key allowed to write meter events.
    pub api_key: SecretString,
    pub http: HttpSettings,
}

impl StripeSettings {
    /// Stripe's production host with default timeouts and retries.
    pub fn new(api_key: SecretString) -> Self {
        StripeSettings {
            base_url: Url::parse("https://api.stripe.com").expect("a valid constant URL"),
            api_key,
            http: HttpSettings::default(),
        }
    }
}

/// One usage report: `value` units of the meter whose event name is `event_name`, for one Stripe
/// customer, at `timestamp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeterEvent {
    /// The meter's `event_name`, 1 to 100 visible ASCII characters.
    pub event_name: String,
    /// `cus_…`.
    pub stripe_customer_id: String,
    /// A whole number of the meter's unit (e.g. micros of ad spend); negative to correct an
    /// earlier report. At most 15 digits.
    pub value: i64,
    /// Names the billable fact reported, 1 to 100 visible ASCII characters; also the
    /// `Idempotency-Key`.
    pub identifier: String,
    /// When the usage happened (sent in whole seconds).
    pub timestamp: DateTime<Utc>,
}

/// Stripe's acknowledgement of a meter event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeterEventAck {
    /// The event's identifier (the one sent).
    pub identifier: String,
    /// Stripe already held an event with this identifier and refused this one as a duplicate:
    /// the usage was reported before, nothing was added now.
    pub duplicate: bool,
    /// Whether Stripe took the event in live mode (`None` for a duplicate, or when Stripe did
    /// not say): lets the caller notice a test key in production.
    pub livemode: Option<bool>,
}

/// The Stripe client.
pub struct Stripe {
    http: HttpClient,
    api_key: SecretString,
}

impl fmt::Debug for Stripe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stripe")
            .field("http", &self.http)
            .finish_non_exhaustive()
    }
}

/// The part of a meter event answer that is kept.
#[derive(Deserialize)]
struct MeterEventAnswer {
    #[serde(default, deserialize_with = "lenient")]
    livemode: Option<bool>,
}

#[derive(Deserialize)]
struct ErrorAnswer {
    #[serde(default, deserialize_with = "lenient")]
    error: Option<ErrorBody>,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(rename = "type", default, deserialize_with = "lenient")]
    kind: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    code: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    param: Option<String>,
    /// Read only to recognise a duplicate identifier; never kept.
    #[serde(default, deserialize_with = "lenient")]
    message: Option<String>,
}

/// What the classifier answers for "Stripe already holds this identifier": an error variant
/// Stripe's answers can never produce otherwise, turned into success by `send_meter_event`.
const DUPLICATE_IDENTIFIER: &str = "stripe already holds a meter event with this identifier";

impl Stripe {
    pub fn new(settings: StripeSettings) -> Result<Self, ConnectorError> {
        Ok(Stripe {
            http: HttpClient::new("stripe", &settings.base_url, &settings.http)?,
            api_key: settings.api_key,
        })
    }

    /// Reports `event` once per identifier (see the module documentation), retrying transient
    /// failures; a duplicate identifier is an acknowledgement with `duplicate: true`.
    pub async fn send_meter_event(&self, event: &MeterEvent) -> Result<MeterEventAck, ConnectorError> {
        check_meter_event(event)?;
        let url = self.http.url(&["v1", "billing", "meter_events"]);
        let value = event.value.to_string();
        let timestamp = event.timestamp.timestamp().to_string();
        let answer = self
            .http
            .send_json::<MeterEventAnswer, _>("stripe meter event", classify, |client| {
                client
                    .post(url.clone())
                    .bearer_auth(self.api_key.expose_secret())
                    .header("Idempotency-Key", event.identifier.as_str())
                    .form(&[
                        ("event_name", event.event_name.as_str()),
                        ("payload[stripe_customer_id]", event.stripe_customer_id.as_str()),
                        ("payload[value]", value.as_str()),
                        ("identifier", event.identifier.as_str()),
                        ("timestamp", timestamp.as_str()),
                    ])
            })
            .await;
        match answer {
            Ok(answer) => Ok(MeterEventAck {
                identifier: event.identifier.clone(),
                duplicate: false,
                livemode: answer.livemode,
            }),
            Err(ConnectorError::InvalidInput(reason)) if reason == DUPLICATE_IDENTIFIER => {
                tracing::info!(
                    platform = "stripe",
                    operation = "stripe meter event",
                    "duplicate identifier: the usage was reported before"
                );
                Ok(MeterEventAck {
                    identifier: event.identifier.clone(),
                    duplicate: true,
                    livemode: None,
                })
            }
            Err(error) => Err(error),
        }
    }

    /// Clears the personal fields of Stripe customer `customer_id` (name, email, phone,
    /// description, billing address and shipping details; see the module documentation), once
    /// per `idempotency_key` (1 to 255 visible ASCII characters; the caller derives it from the
    /// erasure it carries out). The customer and its invoices are kept. A customer Stripe does
    /// not have (404 `resource_missing`, e.g. deleted already) is `Ok(())`: nothing is left to
    /// anonymise.
    pub async fn anonymise_customer(&self, customer_id: &str, idempotency_key: &str) -> Result<(), ConnectorError> {
        const OPERATION: &str = "stripe anonymise customer";
        check_id(
            customer_id,
            255,
            |c| c.is_ascii_alphanumeric() || c == '_',
            "a Stripe customer id is letters, digits and _",
        )?;
        let key_ok = !idempotency_key.is_empty()
            && idempotency_key.len() <= MAX_IDEMPOTENCY_KEY_LEN
            && idempotency_key.bytes().all(|b| b.is_ascii_graphic());
        if !key_ok {
            return Err(ConnectorError::InvalidInput(
                "a Stripe idempotency key is 1 to 255 visible ASCII characters without spaces",
            ));
        }
        let url = self.http.url(&["v1", "customers", customer_id]);
        let answer = self
            .http
            .send(OPERATION, classify_customer_update, |client| {
                client
                    .post(url.clone())
                    .bearer_auth(self.api_key.expose_secret())
                    .header("Idempotency-Key", idempotency_key)
                    .form(&ANONYMISED_CUSTOMER)
            })
            .await;
        match answer {
            Ok(_) => Ok(()),
            Err(ConnectorError::NotFound) => {
                tracing::info!(
                    platform = "stripe",
                    operation = OPERATION,
                    "no such customer: nothing to anonymise"
                );
                Ok(())
            }
            Err(error) => Err(error),
        }
    }
}

/// The metadata key of a Stripe customer that names the dynamoi person it belongs to: the front
/// end's Checkout sets it (`customer_creation` with `metadata[dynamoi_person]`).
pub const CUSTOMER_OWNER_KEY: &str = "dynamoi_person";

#[derive(serde::Deserialize)]
struct CustomerAnswer {
    #[serde(default)]
    deleted: bool,
    #[serde(default)]
    metadata: std::collections::HashMap<String, String>,
}

impl Stripe {
    /// The dynamoi person a Stripe customer belongs to (its `metadata[dynamoi_person]`), or
    /// `None` when Stripe has no such customer, it was deleted, or names no person
    /// (`GET /v1/customers/{id}`, Stripe's *Retrieve a customer*).
    pub async fn customer_owner(&self, customer_id: &str) -> Result<Option<String>, ConnectorError> {
        check_id(
            customer_id,
            255,
            |c| c.is_ascii_alphanumeric() || c == '_',
            "a Stripe customer id is letters, digits and _",
        )?;
        let url = self.http.url(&["v1", "customers", customer_id]);
        let answer = self
            .http
            .send_json::<CustomerAnswer, _>("stripe retrieve customer", classify_customer_update, |client| {
                client.get(url.clone()).bearer_auth(self.api_key.expose_secret())
            })
            .await;
        match answer {
            Ok(customer) if customer.deleted => Ok(None),
            Ok(mut customer) => Ok(customer.metadata.remove(CUSTOMER_OWNER_KEY)),
            Err(ConnectorError::NotFound) => Ok(None),
            Err(error) => Err(error),
        }
    }
}

/// Refuses, before sending, what Stripe would refuse or what could not travel in a header.
fn check_meter_event(event: &MeterEvent) -> Result<(), ConnectorError> {
    let visible =
        |text: &str, max: usize| !text.is_empty() && text.len() <= max && text.bytes().all(|b| b.is_ascii_graphic());
    if !visible(&event.identifier, MAX_IDENTIFIER_LEN) {
        return Err(ConnectorError::InvalidInput(
            "a meter event identifier is 1 to 100 visible ASCII characters without spaces",
        ));
    }
    if !visible(&event.event_name, MAX_EVENT_NAME_LEN) {
        return Err(ConnectorError::InvalidInput(
            "a meter event name is 1 to 100 visible ASCII characters without spaces",
        ));
    }
    check_id(
        &event.stripe_customer_id,
        255,
        |c| c.is_ascii_alphanumeric() || c == '_',
        "a Stripe customer id is letters, digits and _",
    )?;
    if event.value.unsigned_abs() > MAX_METER_VALUE.unsigned_abs() {
        return Err(ConnectorError::InvalidInput(
            "a meter event value has at most 15 digits",
        ));
    }
    Ok(())
}

fn classify(failure: &Failure<'_>) -> Verdict {
    let error = failure.json::<ErrorAnswer>().and_then(|answer| answer.error);
    let status = failure.status.as_u16();
    if status == 400 && error.as_ref().is_some_and(is_duplicate_identifier) {
        return Verdict::Fail(ConnectorError::InvalidInput(DUPLICATE_IDENTIFIER));
    }
    classify_error(failure, error.as_ref())
}

/// A customer update's failures: only a 404 `resource_missing` is [`ConnectorError::NotFound`]
/// (which `anonymise_customer` turns into success); a 404 without that code (a wrong base URL)
/// is a client error, so that it cannot pass for a deleted customer.
fn classify_customer_update(failure: &Failure<'_>) -> Verdict {
    let error = failure.json::<ErrorAnswer>().and_then(|answer| answer.error);
    if failure.status.as_u16() == 404 {
        let code = error.as_ref().and_then(|error| error.code.as_deref());
        return match code {
            Some("resource_missing") => Verdict::Fail(ConnectorError::NotFound),
            code => Verdict::Fail(failure.client(code)),
        };
    }
    classify_error(failure, error.as_ref())
}

/// What every Stripe call shares (module documentation, *Errors*).
fn classify_error(failure: &Failure<'_>, error: Option<&ErrorBody>) -> Verdict {
    let status = failure.status.as_u16();
    let code = error.and_then(|error| error.code.as_deref().or(error.kind.as_deref()));
    match status {
        401 => Verdict::Fail(ConnectorError::InvalidToken),
        409 => Verdict::Retry(failure.client(code)),
        _ => failure.default_verdict(code),
    }
}

/// Stripe's refusal of an identifier it already holds: a documented-looking code, or the
/// message Stripe sends for it (`An event already exists with identifier …`).
fn is_duplicate_identifier(error: &ErrorBody) -> bool {
    let code = matches!(
        error.code.as_deref(),
        Some("resource_already_exists" | "duplicate_meter_event")
    );
    let message = error.message.as_deref().unwrap_or_default();
    let about_identifier = error.param.as_deref() == Some("identifier") && message.contains("already exists");
    code || about_identifier
        || message
            .trim_start()
            .starts_with("An event already exists with identifier")
}

/// Stripe's webhook signatures (*Check the webhook signatures* in Stripe's webhook guide).
///
/// Stripe sends `Stripe-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>…][,v0=<hex>]`. Each
/// `v1` is the hex HMAC-SHA256 of `"{t}.{raw body}"` keyed with an endpoint's signing secret
/// (the whole `whsec_…` string, as bytes); there is one `v1` per active secret while a secret is
/// being rolled. A webhook is genuine when any `v1` matches under any configured secret (so
/// the old and the new secret can both be configured during a rotation), compared in constant
/// time, and its `t` is within the tolerance of now, either way (Stripe recommends 300 s
/// against replays; a `t` from the future is refused too). `v0` (Stripe's legacy test scheme)
/// and unknown schemes are ignored.
///
/// The body must be the raw bytes received: parsing and re-serialising changes them.
pub mod webhook {
    use hmac::{Hmac, Mac};
    use secrecy::{ExposeSecret, SecretString};
    use sha2::Sha256;

    /// The header Stripe signs its webhooks in.
    pub const SIGNATURE_HEADER: &str = "Stripe-Signature";
    /// Stripe's recommended tolerance between the signature's timestamp and now.
    pub const DEFAULT_TOLERANCE_SECS: i64 = 300;

    /// A webhook whose signature and timestamp checked out.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct VerifiedWebhook {
        /// The signature's `t` (Unix seconds).
        pub timestamp: i64,
    }

    /// Why a webhook was refused. No variant holds the header, a signature or a secret.
    #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
    pub enum WebhookError {
        #[error("the Stripe-Signature header is missing")]
        MissingHeader,
        #[error("the Stripe-Signature header is malformed")]
        MalformedHeader,
        #[error("no signature matches the body under any configured secret")]
        NoValidSignature,
        /// `age` is now minus the signature's timestamp, in seconds (negative: from the future).
        #[error("the signature is {age} s old, outside the tolerance")]
        OutsideTolerance { age: i64 },
    }

    type HmacSha256 = Hmac<Sha256>;

    /// The parts of a `Stripe-Signature` header that are checked.
    struct Header<'a> {
        /// `t` exactly as sent: it is what Stripe signed.
        raw_timestamp: &'a str,
        timestamp: i64,
        signatures: Vec<Vec<u8>>,
    }

    fn parse(header: &str) -> Result<Header<'_>, WebhookError> {
        let header = header.trim();
        if header.is_empty() {
            return Err(WebhookError::MissingHeader);
        }
        let mut timestamp = None;
        let mut signatures = Vec::new();
        for item in header.split(',') {
            let (key, value) = item.split_once('=').ok_or(WebhookError::MalformedHeader)?;
            let value = value.trim();
            match key.trim() {
                "t" => {
                    let well_formed =
                        !value.is_empty() && value.len() <= 18 && value.bytes().all(|b| b.is_ascii_digit());
                    let parsed = value.parse::<i64>().ok().filter(|_| well_formed);
                    match (timestamp, parsed) {
                        (None, Some(parsed)) => timestamp = Some((value, parsed)),
                        _ => return Err(WebhookError::MalformedHeader),
                    }
                }
                // A v1 that is not 32 bytes of hex can match nothing: it is skipped.
                "v1" => signatures.extend(hex::decode(value).ok().filter(|bytes| bytes.len() == 32)),
                _ => {}
            }
        }
        let (raw_timestamp, timestamp) = timestamp.ok_or(WebhookError::MalformedHeader)?;
        Ok(Header {
            raw_timestamp,
            timestamp,
            signatures,
        })
    }

    /// The HMAC of `"{t}.{payload}"` under `secret`, not yet finalised.
    fn signer(secret: &[u8], raw_timestamp: &str, payload: &[u8]) -> Option<HmacSha256> {
        let mut mac = HmacSha256::new_from_slice(secret).ok()?;
        mac.update(raw_timestamp.as_bytes());
        mac.update(b".");
        mac.update(payload);
        Some(mac)
    }

    /// Checks `signature_header` (the `Stripe-Signature` value) against the raw `payload` under
    /// each of `secrets`, then its timestamp against `now` (Unix seconds) within
    /// `tolerance_secs` either way ([`DEFAULT_TOLERANCE_SECS`]). With no secret configured,
    /// nothing verifies.
    pub fn verify_signature(
        payload: &[u8],
        signature_header: &str,
        secrets: &[SecretString],
        now: i64,
        tolerance_secs: i64,
    ) -> Result<VerifiedWebhook, WebhookError> {
        let header = parse(signature_header)?;
        let matched = secrets.iter().any(|secret| {
            signer(secret.expose_secret().as_bytes(), header.raw_timestamp, payload).is_some_and(|mac| {
                header
                    .signatures
                    .iter()
                    .any(|signature| mac.clone().verify_slice(signature).is_ok())
            })
        });
        if !matched {
            return Err(WebhookError::NoValidSignature);
        }
        let age = now.saturating_sub(header.timestamp);
        if age.unsigned_abs() > tolerance_secs.max(0).unsigned_abs() {
            return Err(WebhookError::OutsideTolerance { age });
        }
        Ok(VerifiedWebhook {
            timestamp: header.timestamp,
        })
    }

    /// A `Stripe-Signature` header for `payload` signed with `secret` at `t`, as Stripe would
    /// send it: for tests (here and end to end) that play Stripe.
    pub fn sign_for_tests(payload: &[u8], secret: &str, t: i64) -> String {
        let t = t.to_string();
        let signature = signer(secret.as_bytes(), &t, payload)
            .map(|mac| hex::encode(mac.finalize().into_bytes()))
            .unwrap_or_default();
        format!("t={t},v1={signature}")
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        const SECRET: &str = "whsec_test_secret";
        const BODY: &[u8] = br#"{"id":"evt_test","object":"event"}"#;
        const T: i64 = 1_700_000_000;
        /// HMAC-SHA256 of `1700000000.{"id":"evt_test","object":"event"}` under
        /// `whsec_test_secret`, computed independently with Python:
        /// `hmac.new(b'whsec_test_secret', b'1700000000.' + body, hashlib.sha256).hexdigest()`.
        const KNOWN_V1: &str = "8042376f6ca064adbe037642a718227dfd59047137eb49497a54c49eb0cfb724";

        fn secrets(values: &[&str]) -> Vec<SecretString> {
            values.iter().map(|value| SecretString::from(*value)).collect()
        }

        #[test]
        fn a_known_vector_verifies_and_sign_for_tests_reproduces_it() {
            let header = format!("t={T},v1={KNOWN_V1}");
            assert_eq!(sign_for_tests(BODY, SECRET, T), header);
            assert_eq!(
                verify_signature(BODY, &header, &secrets(&[SECRET]), T + 10, DEFAULT_TOLERANCE_SECS),
                Ok(VerifiedWebhook { timestamp: T })
            );
            // Spaces after commas, a legacy v0 and a second, unrelated v1 change nothing.
            let busy = format!("t={T}, v1={}, v1={KNOWN_V1}, v0=abcdef", "00".repeat(32));
            assert!(verify_signature(BODY, &busy, &secrets(&[SECRET]), T, DEFAULT_TOLERANCE_SECS).is_ok());
        }

        #[test]
        fn a_tampered_body_or_timestamp_does_not_verify() {
            let header = sign_for_tests(BODY, SECRET, T);
            let tampered = br#"{"id":"evt_test","object":"event" }"#;
            assert_eq!(
                verify_signature(tampered, &header, &secrets(&[SECRET]), T, DEFAULT_TOLERANCE_SECS),
                Err(WebhookError::NoValidSignature)
            );
            let moved = header.replace(&format!("t={T}"), &format!("t={}", T + 1));
            assert_eq!(
                verify_signature(BODY, &moved, &secrets(&[SECRET]), T, DEFAULT_TOLERANCE_SECS),
                Err(WebhookError::NoValidSignature)
            );
        }

        #[test]
        fn a_wrong_secret_fails_and_any_configured_secret_may_match() {
            let header = sign_for_tests(BODY, SECRET, T);
            assert_eq!(
                verify_signature(BODY, &header, &secrets(&["whsec_other"]), T, DEFAULT_TOLERANCE_SECS),
                Err(WebhookError::NoValidSignature)
            );
            assert!(verify_signature(
                BODY,
                &header,
                &secrets(&["whsec_other", SECRET]),
                T,
                DEFAULT_TOLERANCE_SECS
            )
            .is_ok());
            assert_eq!(
                verify_signature(BODY, &header, &[], T, DEFAULT_TOLERANCE_SECS),
                Err(WebhookError::NoValidSignature)
            );
            // While Stripe rolls a secret it signs with both: either one configured here verifies.
            let old = sign_for_tests(BODY, "whsec_old", T);
            let new = sign_for_tests(BODY, "whsec_new", T);
            let both = format!("{old},v1={}", new.split_once(",v1=").unwrap().1);
            for configured in [["whsec_old"], ["whsec_new"]] {
                assert!(
                    verify_signature(BODY, &both, &secrets(&configured), T, DEFAULT_TOLERANCE_SECS).is_ok(),
                    "{configured:?}"
                );
            }
        }

        #[test]
        fn a_timestamp_beyond_the_tolerance_either_way_is_refused() {
            let header = sign_for_tests(BODY, SECRET, T);
            let check = |now| verify_signature(BODY, &header, &secrets(&[SECRET]), now, DEFAULT_TOLERANCE_SECS);
            assert!(check(T + 300).is_ok());
            assert!(check(T - 300).is_ok());
            assert_eq!(check(T + 301), Err(WebhookError::OutsideTolerance { age: 301 }));
            assert_eq!(check(T - 301), Err(WebhookError::OutsideTolerance { age: -301 }));
            assert_eq!(
                check(T + 86_400).unwrap_err().to_string(),
                "the signature is 86400 s old, outside the tolerance"
            );
        }

        #[test]
        fn a_missing_or_garbage_header_is_refused() {
            let check = |header: &str| verify_signature(BODY, header, &secrets(&[SECRET]), T, DEFAULT_TOLERANCE_SECS);
            assert_eq!(check(""), Err(WebhookError::MissingHeader));
            assert_eq!(check("   "), Err(WebhookError::MissingHeader));
            for garbage in [
                "garbage",
                "v1=abc",
                &format!("v1={KNOWN_V1}"),
                &format!("t=,v1={KNOWN_V1}"),
                &format!("t=-5,v1={KNOWN_V1}"),
                &format!("t=17e8,v1={KNOWN_V1}"),
                &format!("t={T},t={T},v1={KNOWN_V1}"),
                &format!("t={T};v1={KNOWN_V1}"),
                "t=99999999999999999999,v1=00",
            ] {
                assert_eq!(check(garbage), Err(WebhookError::MalformedHeader), "{garbage}");
            }
            for unsigned in [
                format!("t={T}"),
                format!("t={T},v1=not-hex"),
                format!("t={T},v1={}", &KNOWN_V1[..62]),
                format!("t={T},v0={KNOWN_V1}"),
            ] {
                assert_eq!(check(&unsigned), Err(WebhookError::NoValidSignature), "{unsigned}");
            }
        }
    }
}
