//! Stripe: meter events form-encoded with the secret key as a bearer token and the identifier
//! repeated as `Idempotency-Key` on every retry, a duplicate identifier taken as delivered,
//! Stripe's error codes without their messages, and the secret key kept out of errors and
//! `Debug`. The webhook signature check is tested next to it (`connectors::stripe::webhook`),
//! plus one round trip here through the public API.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use connectors::stripe::webhook::{self, WebhookError};
use connectors::stripe::{MeterEvent, MeterEventAck, Stripe, StripeSettings};
use connectors::{ConnectorError, HttpSettings, SecretString};
use serde_json::json;
use wiremock::matchers::{bearer_token, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{base, fast_http, form, impatient_http, requests, secret, SLOW};

const API_KEY: &str = "sk_test_SECRET_stripe_key";
const CUSTOMER: &str = "cus_NciAYcXfLnqBoz";
const IDENTIFIER: &str = "spend.0190a7c2-campaign.meta.2026-03-05.v1";
const METER_PATH: &str = "/v1/billing/meter_events";

fn stripe(server: &MockServer, http: HttpSettings) -> Stripe {
    let mut settings = StripeSettings::new(secret(API_KEY));
    settings.base_url = base(server);
    settings.http = http;
    Stripe::new(settings).unwrap()
}

fn usage() -> MeterEvent {
    MeterEvent {
        event_name: "ad_spend_micros".into(),
        stripe_customer_id: CUSTOMER.into(),
        value: 12_500_000,
        identifier: IDENTIFIER.into(),
        timestamp: Utc.with_ymd_and_hms(2026, 3, 5, 23, 59, 59).unwrap(),
    }
}

fn recorded(livemode: bool) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "object": "billing.meter_event",
        "created": 1_772_755_200,
        "event_name": "ad_spend_micros",
        "identifier": IDENTIFIER,
        "livemode": livemode,
        "payload": {"value": "12500000", "stripe_customer_id": CUSTOMER},
        "timestamp": 1_772_755_199
    }))
}

fn stripe_error(status: u16, error: serde_json::Value) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({ "error": error }))
}

fn delivered() -> MeterEventAck {
    MeterEventAck {
        identifier: IDENTIFIER.into(),
        duplicate: false,
        livemode: Some(false),
    }
}

fn duplicate() -> MeterEventAck {
    MeterEventAck {
        identifier: IDENTIFIER.into(),
        duplicate: true,
        livemode: None,
    }
}

#[tokio::test]
async fn a_meter_event_is_posted_form_encoded_with_the_key_and_its_identifier_as_idempotency_key() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(METER_PATH))
        .and(bearer_token(API_KEY))
        .and(header("idempotency-key", IDENTIFIER))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .respond_with(recorded(false))
        .expect(1)
        .mount(&server)
        .await;

    let ack = stripe(&server, fast_http()).send_meter_event(&usage()).await.unwrap();

    assert_eq!(ack, delivered());
    let received = requests(&server).await;
    let fields = form(&received[0]);
    let expected = [
        ("event_name", "ad_spend_micros"),
        ("identifier", IDENTIFIER),
        ("payload[stripe_customer_id]", CUSTOMER),
        ("payload[value]", "12500000"),
        ("timestamp", "1772755199"),
    ];
    assert_eq!(
        fields,
        expected
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect::<BTreeMap<_, _>>()
    );
}

#[tokio::test]
async fn a_negative_correction_is_sent_as_a_negative_whole_number() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(METER_PATH))
        .respond_with(recorded(true))
        .expect(1)
        .mount(&server)
        .await;

    let correction = MeterEvent {
        value: -2_500_000,
        ..usage()
    };
    let ack = stripe(&server, fast_http())
        .send_meter_event(&correction)
        .await
        .unwrap();

    assert_eq!(ack.livemode, Some(true));
    assert_eq!(form(&requests(&server).await[0])["payload[value]"], "-2500000");
}

#[tokio::test]
async fn a_500_is_retried_with_the_same_identifier_and_idempotency_key_then_succeeds() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(METER_PATH))
        .respond_with(stripe_error(
            500,
            json!({"type": "api_error", "message": "Something went wrong."}),
        ))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(METER_PATH))
        .respond_with(recorded(false))
        .expect(1)
        .mount(&server)
        .await;

    let ack = stripe(&server, fast_http()).send_meter_event(&usage()).await.unwrap();

    assert_eq!(ack, delivered());
    let received = requests(&server).await;
    assert_eq!(received.len(), 2);
    for request in &received {
        assert_eq!(crate::support::header(request, "idempotency-key"), Some(IDENTIFIER));
        assert_eq!(form(request)["identifier"], IDENTIFIER);
    }
    assert_eq!(received[0].body, received[1].body);
}

#[tokio::test]
async fn a_500_on_every_attempt_fails_with_server() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(METER_PATH))
        .respond_with(ResponseTemplate::new(503))
        .expect(3)
        .mount(&server)
        .await;

    let error = stripe(&server, fast_http())
        .send_meter_event(&usage())
        .await
        .unwrap_err();

    assert!(matches!(error, ConnectorError::Server { status: 503 }), "{error:?}");
    assert!(error.is_transient());
}

#[tokio::test]
async fn a_429_is_retried_after_its_retry_after_then_succeeds() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(METER_PATH))
        .respond_with(
            stripe_error(
                429,
                json!({"type": "invalid_request_error", "code": "rate_limit", "message": "Too many requests."}),
            )
            .insert_header("retry-after", "1"),
        )
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(METER_PATH))
        .respond_with(recorded(false))
        .expect(1)
        .mount(&server)
        .await;

    let started = Instant::now();
    let ack = stripe(&server, fast_http()).send_meter_event(&usage()).await.unwrap();

    assert_eq!(ack, delivered());
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited only {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_429_on_every_attempt_is_rate_limited() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(METER_PATH))
        .respond_with(stripe_error(
            429,
            json!({"type": "invalid_request_error", "code": "lock_timeout"}),
        ))
        .expect(3)
        .mount(&server)
        .await;

    let error = stripe(&server, fast_http())
        .send_meter_event(&usage())
        .await
        .unwrap_err();

    assert!(matches!(error, ConnectorError::RateLimited { .. }), "{error:?}");
}

#[tokio::test]
async fn a_request_in_flight_under_the_same_key_is_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(METER_PATH))
        .respond_with(stripe_error(
            409,
            json!({"type": "idempotency_error", "code": "idempotency_key_in_use", "message": "There is currently another in-progress request using this Idempotent Key."}),
        ))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(METER_PATH))
        .respond_with(recorded(false))
        .expect(1)
        .mount(&server)
        .await;

    let ack = stripe(&server, fast_http()).send_meter_event(&usage()).await.unwrap();

    assert_eq!(ack, delivered());
}

#[tokio::test]
async fn an_identifier_stripe_already_holds_is_acknowledged_as_a_duplicate_without_retrying() {
    let refusals = [
        json!({"type": "invalid_request_error", "message": format!("An event already exists with identifier {IDENTIFIER}.")}),
        json!({"type": "invalid_request_error", "code": "resource_already_exists", "message": "Already exists."}),
        json!({"type": "invalid_request_error", "param": "identifier", "message": "A meter event with this identifier already exists."}),
    ];
    for refusal in refusals {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(METER_PATH))
            .respond_with(stripe_error(400, refusal.clone()).insert_header("stripe-should-retry", "false"))
            .expect(1)
            .mount(&server)
            .await;

        let ack = stripe(&server, fast_http()).send_meter_event(&usage()).await;

        assert_eq!(ack.unwrap(), duplicate(), "{refusal}");
    }
}

#[tokio::test]
async fn a_rejected_key_is_an_invalid_token() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(METER_PATH))
        .respond_with(stripe_error(
            401,
            json!({"type": "invalid_request_error", "message": format!("Invalid API Key provided: {API_KEY}")}),
        ))
        .expect(1)
        .mount(&server)
        .await;

    let error = stripe(&server, fast_http())
        .send_meter_event(&usage())
        .await
        .unwrap_err();

    assert!(matches!(error, ConnectorError::InvalidToken), "{error:?}");
    assert!(!format!("{error} {error:?}").contains("SECRET"));
}

#[tokio::test]
async fn other_refusals_keep_the_code_or_type_but_never_the_message() {
    let cases = [
        (
            400,
            json!({"type": "invalid_request_error", "code": "resource_missing", "param": "payload[stripe_customer_id]",
                   "message": format!("No such customer: '{CUSTOMER}' (key {API_KEY})")}),
            "resource_missing",
        ),
        (
            400,
            json!({"type": "idempotency_error",
                   "message": format!("Keys for idempotent requests can only be used with the same parameters they were first used with: {IDENTIFIER}")}),
            "idempotency_error",
        ),
        (
            403,
            json!({"type": "invalid_request_error", "code": "secret_key_required",
                   "message": "The provided key 'rk_test_***' does not have the required permissions."}),
            "secret_key_required",
        ),
    ];
    for (status, refusal, code) in cases {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(METER_PATH))
            .respond_with(stripe_error(status, refusal))
            .expect(1)
            .mount(&server)
            .await;

        let error = stripe(&server, fast_http())
            .send_meter_event(&usage())
            .await
            .unwrap_err();

        assert!(
            matches!(&error, ConnectorError::Client { status: s, code: Some(c) } if *s == status && c == code),
            "{error:?}"
        );
        let shown = format!("{error} {error:?} {error:#?}");
        for needle in [CUSTOMER, API_KEY, IDENTIFIER, "SECRET", "No such", "permissions"] {
            assert!(!shown.contains(needle), "{shown} shows {needle}");
        }
    }
}

#[tokio::test]
async fn a_stripe_slower_than_the_timeout_is_a_timeout() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(METER_PATH))
        .respond_with(recorded(false).set_delay(SLOW))
        .expect(2)
        .mount(&server)
        .await;

    let error = stripe(&server, impatient_http())
        .send_meter_event(&usage())
        .await
        .unwrap_err();

    assert!(matches!(error, ConnectorError::Timeout), "{error:?}");
}

#[tokio::test]
async fn an_event_stripe_would_refuse_is_refused_before_sending() {
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(recorded(false))
        .expect(0)
        .mount(&server)
        .await;
    let stripe = stripe(&server, fast_http());

    let bad = [
        MeterEvent {
            identifier: String::new(),
            ..usage()
        },
        MeterEvent {
            identifier: "x".repeat(101),
            ..usage()
        },
        MeterEvent {
            identifier: "has space".into(),
            ..usage()
        },
        MeterEvent {
            identifier: "new\nline".into(),
            ..usage()
        },
        MeterEvent {
            event_name: String::new(),
            ..usage()
        },
        MeterEvent {
            event_name: "e".repeat(101),
            ..usage()
        },
        MeterEvent {
            stripe_customer_id: String::new(),
            ..usage()
        },
        MeterEvent {
            stripe_customer_id: "cus_1/../x".into(),
            ..usage()
        },
        MeterEvent {
            value: 1_000_000_000_000_000,
            ..usage()
        },
        MeterEvent {
            value: i64::MIN,
            ..usage()
        },
    ];
    for event in bad {
        let error = stripe.send_meter_event(&event).await.unwrap_err();
        assert!(matches!(error, ConnectorError::InvalidInput(_)), "{event:?}: {error:?}");
    }
    let largest = MeterEvent {
        value: -999_999_999_999_999,
        identifier: "x".repeat(100),
        ..usage()
    };
    let server_ok = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(recorded(false))
        .expect(1)
        .mount(&server_ok)
        .await;
    assert!(self::stripe(&server_ok, fast_http())
        .send_meter_event(&largest)
        .await
        .is_ok());
}

#[test]
fn debug_of_the_client_and_its_settings_hides_the_key() {
    let settings = StripeSettings::new(secret(API_KEY));
    let client = Stripe::new(settings.clone()).unwrap();
    let shown = format!("{settings:?} {settings:#?} {client:?} {client:#?}");
    assert!(!shown.contains("SECRET"), "{shown}");
    assert!(shown.contains("api.stripe.com"), "{shown}");
}

#[test]
fn a_webhook_signed_like_stripe_verifies_through_the_public_api() {
    let body = br#"{"id":"evt_1","type":"invoice.paid"}"#;
    let secrets = [
        SecretString::from("whsec_rotated_out"),
        SecretString::from("whsec_current"),
    ];
    let now = 1_772_755_200;
    let header = webhook::sign_for_tests(body, "whsec_current", now - 5);

    let verified = webhook::verify_signature(body, &header, &secrets, now, webhook::DEFAULT_TOLERANCE_SECS).unwrap();

    assert_eq!(verified.timestamp, now - 5);
    assert_eq!(
        webhook::verify_signature(b"{}", &header, &secrets, now, webhook::DEFAULT_TOLERANCE_SECS),
        Err(WebhookError::NoValidSignature)
    );
    let error =
        webhook::verify_signature(body, &header, &secrets, now + 3600, webhook::DEFAULT_TOLERANCE_SECS).unwrap_err();
    assert!(
        matches!(error, WebhookError::OutsideTolerance { age: 3605 }),
        "{error:?}"
    );
    assert!(!format!("{error} {error:?}").contains("whsec"));
}

// Anonymising a customer (erasure): `POST /v1/customers/{id}` emptying the personal fields.

const ERASURE_KEY: &str = "erasure/0190a7c2-person/stripe";

fn customer_path() -> String {
    format!("/v1/customers/{CUSTOMER}")
}

fn emptied_customer() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "id": CUSTOMER,
        "object": "customer",
        "address": null,
        "description": null,
        "email": null,
        "name": null,
        "phone": null,
        "shipping": null,
        "metadata": {"dynamoi_account": "0190a7c2"},
        "livemode": false
    }))
}

#[tokio::test]
async fn a_customer_is_anonymised_by_an_update_emptying_every_personal_field_with_an_idempotency_key() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(customer_path()))
        .and(bearer_token(API_KEY))
        .and(header("idempotency-key", ERASURE_KEY))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .respond_with(emptied_customer())
        .expect(1)
        .mount(&server)
        .await;

    stripe(&server, fast_http())
        .anonymise_customer(CUSTOMER, ERASURE_KEY)
        .await
        .unwrap();

    let received = requests(&server).await;
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].method.as_str(), "POST");
    let expected: BTreeMap<String, String> = ["name", "email", "phone", "description", "address", "shipping"]
        .into_iter()
        .map(|field| (field.to_owned(), String::new()))
        .collect();
    assert_eq!(form(&received[0]), expected);
    assert_eq!(
        std::str::from_utf8(&received[0].body).unwrap(),
        "name=&email=&phone=&description=&address=&shipping="
    );
}

#[tokio::test]
async fn a_customer_stripe_does_not_have_is_already_anonymised() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(customer_path()))
        .respond_with(stripe_error(
            404,
            json!({
                "code": "resource_missing",
                "doc_url": "https://stripe.com/docs/error-codes/resource-missing",
                "message": format!("No such customer: '{CUSTOMER}'"),
                "param": "id",
                "type": "invalid_request_error"
            }),
        ))
        .expect(1)
        .mount(&server)
        .await;

    stripe(&server, fast_http())
        .anonymise_customer(CUSTOMER, ERASURE_KEY)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_404_without_resource_missing_is_an_error_not_an_anonymised_customer() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(customer_path()))
        .respond_with(ResponseTemplate::new(404).set_body_string("Not Found"))
        .expect(1)
        .mount(&server)
        .await;

    let error = stripe(&server, fast_http())
        .anonymise_customer(CUSTOMER, ERASURE_KEY)
        .await
        .unwrap_err();

    assert!(
        matches!(
            error,
            ConnectorError::Client {
                status: 404,
                code: None
            }
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn an_anonymisation_failing_with_5xx_is_retried_under_the_same_idempotency_key() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(customer_path()))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(customer_path()))
        .respond_with(emptied_customer())
        .expect(1)
        .mount(&server)
        .await;

    stripe(&server, fast_http())
        .anonymise_customer(CUSTOMER, ERASURE_KEY)
        .await
        .unwrap();

    let keys: Vec<_> = requests(&server)
        .await
        .iter()
        .map(|request| crate::support::header(request, "idempotency-key").map(str::to_owned))
        .collect();
    assert_eq!(keys, [Some(ERASURE_KEY.to_owned()), Some(ERASURE_KEY.to_owned())]);
}

#[tokio::test]
async fn a_refused_anonymisation_is_a_client_error_with_the_code_and_a_wrong_key_an_invalid_token() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(customer_path()))
        .and(bearer_token(API_KEY))
        .respond_with(stripe_error(
            400,
            json!({
                "code": "idempotency_key_in_use",
                "message": "Keys for idempotent requests can only be used with the same parameters",
                "type": "invalid_request_error"
            }),
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(customer_path()))
        .respond_with(stripe_error(
            401,
            json!({"message": "Invalid API Key provided: sk_test_****", "type": "invalid_request_error"}),
        ))
        .expect(1)
        .mount(&server)
        .await;

    let refused = stripe(&server, fast_http())
        .anonymise_customer(CUSTOMER, ERASURE_KEY)
        .await
        .unwrap_err();
    let mut wrong_key = StripeSettings::new(secret("sk_test_wrong"));
    wrong_key.base_url = base(&server);
    wrong_key.http = fast_http();
    let unauthorised = Stripe::new(wrong_key)
        .unwrap()
        .anonymise_customer(CUSTOMER, ERASURE_KEY)
        .await
        .unwrap_err();

    assert!(
        matches!(&refused, ConnectorError::Client { status: 400, code: Some(code) } if code == "idempotency_key_in_use"),
        "{refused:?}"
    );
    assert!(matches!(unauthorised, ConnectorError::InvalidToken), "{unauthorised:?}");
}

#[tokio::test]
async fn a_customer_id_or_idempotency_key_that_could_change_the_request_is_refused_before_sending() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(emptied_customer())
        .expect(0)
        .mount(&server)
        .await;
    let stripe = stripe(&server, fast_http());

    for (customer, key) in [
        ("../v1/charges", ERASURE_KEY),
        ("", ERASURE_KEY),
        (CUSTOMER, ""),
        (CUSTOMER, "has space"),
        (CUSTOMER, &"k".repeat(256)),
    ] {
        let error = stripe.anonymise_customer(customer, key).await.unwrap_err();
        assert!(
            matches!(error, ConnectorError::InvalidInput(_)),
            "{customer} {key}: {error:?}"
        );
    }
}
