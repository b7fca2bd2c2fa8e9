//! The Google Ads API's searchStream: daily campaign rows across the stream's batches, the
//! headers and query sent, proto3 JSON's string int64s and absent zeros, Google's error shapes,
//! the checks made before anything is sent, and the developer token kept out of `Debug`.

use std::error::Error as _;

use chrono::NaiveDate;
use connectors::ad_reporting::CampaignDay;
use connectors::google_ads::{GoogleAds, GoogleAdsSettings, DEFAULT_API_VERSION};
use connectors::{ConnectorError, HttpSettings};
use serde_json::{json, Value};
use wiremock::matchers::{bearer_token, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{base, fast_http, header as request_header, requests, secret};

const ACCESS_TOKEN: &str = "ya29.ads-SECRET-access";
const DEVELOPER_TOKEN: &str = "dev-SECRET-token";
const CUSTOMER: &str = "1234567890";
const STREAM_PATH: &str = "/v26/customers/1234567890/googleAds:searchStream";

fn settings(server: &MockServer, http: HttpSettings) -> GoogleAdsSettings {
    GoogleAdsSettings {
        base_url: base(server),
        http,
        ..GoogleAdsSettings::new(secret(DEVELOPER_TOKEN))
    }
}

fn google_ads(server: &MockServer) -> GoogleAds {
    GoogleAds::new(settings(server, fast_http())).unwrap()
}

fn date(text: &str) -> NaiveDate {
    text.parse().unwrap()
}

async fn campaign_days(server: &MockServer, customer: &str) -> Result<Vec<CampaignDay>, ConnectorError> {
    google_ads(server)
        .campaign_days(&secret(ACCESS_TOKEN), customer, date("2026-02-01"), date("2026-02-28"))
        .await
}

fn result_row(campaign: &str, day: &str, metrics: Value) -> Value {
    json!({
        "campaign": {"resourceName": format!("customers/{CUSTOMER}/campaigns/{campaign}"), "id": campaign},
        "segments": {"date": day},
        "customer": {"resourceName": format!("customers/{CUSTOMER}"), "currencyCode": "JPY"},
        "metrics": metrics
    })
}

fn day(campaign: &str, date_text: &str) -> CampaignDay {
    CampaignDay {
        platform_campaign_id: campaign.into(),
        date: date(date_text),
        currency: "JPY".into(),
        spend_micros: 0,
        impressions: 0,
        reach: 0,
        clicks: 0,
        views: 0,
        saves: 0,
        reactions: 0,
        comments: 0,
        shares: 0,
        follows: 0,
        conversions: 0,
    }
}

/// A Google Ads failure as searchStream answers it: an array holding one error envelope.
fn ads_failure(code: u16, status: &str, family: &str, value: &str) -> ResponseTemplate {
    ResponseTemplate::new(code).set_body_json(json!([{
        "error": {
            "code": code,
            "message": format!("Request failed for {ACCESS_TOKEN}"),
            "status": status,
            "details": [{
                "@type": "type.googleapis.com/google.ads.googleads.v26.errors.GoogleAdsFailure",
                "errors": [{"errorCode": {family: value}, "message": format!("developer token {DEVELOPER_TOKEN}")}],
                "requestId": "x1y2z3"
            }]
        }
    }]))
}

#[tokio::test]
async fn daily_campaign_rows_are_read_from_every_batch_of_the_stream() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(STREAM_PATH))
        .and(bearer_token(ACCESS_TOKEN))
        .and(header("developer-token", DEVELOPER_TOKEN))
        .and(header("login-customer-id", "1112223333"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            {
                "results": [
                    result_row("111", "2026-02-01", json!({
                        "costMicros": "1234567890000",
                        "impressions": "10",
                        "clicks": "2",
                        "videoTrueviewViews": "3",
                        "conversions": 2.5
                    })),
                    result_row("222", "2026-02-01", json!({"impressions": "7", "conversions": 0.49999})),
                ],
                "fieldMask": "campaign.id,segments.date,customer.currencyCode,metrics.costMicros,metrics.impressions,metrics.clicks,metrics.videoTrueviewViews,metrics.conversions",
                "requestId": "abc"
            },
            {
                "results": [
                    // Every metric zero, so absent; and a row without `metrics` at all.
                    result_row("111", "2026-02-02", json!({})),
                    {"campaign": {"id": "333"}, "segments": {"date": "2026-02-28"}, "customer": {"currencyCode": "JPY"}}
                ],
                "fieldMask": "campaign.id",
                "requestId": "abc"
            },
            {"fieldMask": "campaign.id", "requestId": "abc", "queryResourceConsumption": "42"}
        ])))
        .expect(1)
        .mount(&server)
        .await;
    let settings = GoogleAdsSettings {
        login_customer_id: Some("111-222-3333".into()),
        ..settings(&server, fast_http())
    };

    let days = GoogleAds::new(settings)
        .unwrap()
        .campaign_days(
            &secret(ACCESS_TOKEN),
            "123-456-7890",
            date("2026-02-01"),
            date("2026-02-28"),
        )
        .await
        .unwrap();

    assert_eq!(
        days,
        vec![
            CampaignDay {
                spend_micros: 1_234_567_890_000,
                impressions: 10,
                clicks: 2,
                views: 3,
                conversions: 3,
                ..day("111", "2026-02-01")
            },
            CampaignDay {
                impressions: 7,
                ..day("222", "2026-02-01")
            },
            day("111", "2026-02-02"),
            day("333", "2026-02-28"),
        ]
    );
    let received = requests(&server).await;
    assert_eq!(received.len(), 1);
    let request = &received[0];
    assert_eq!(request_header(request, "content-type"), Some("application/json"));
    assert!(request.url.query().is_none(), "{}", request.url);
    let body: Value = serde_json::from_slice(&request.body).unwrap();
    let gaql = body["query"].as_str().unwrap();
    assert_eq!(
        gaql,
        "SELECT campaign.id, segments.date, customer.currency_code, metrics.cost_micros, metrics.impressions, \
         metrics.clicks, metrics.video_trueview_views, metrics.conversions FROM campaign \
         WHERE segments.date BETWEEN '2026-02-01' AND '2026-02-28'"
    );
}

#[tokio::test]
async fn without_a_manager_account_no_login_customer_id_is_sent() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(STREAM_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .expect(1)
        .mount(&server)
        .await;

    let days = campaign_days(&server, CUSTOMER).await.unwrap();

    assert!(days.is_empty());
    let received = requests(&server).await;
    assert_eq!(request_header(&received[0], "login-customer-id"), None);
    assert_eq!(request_header(&received[0], "developer-token"), Some(DEVELOPER_TOKEN));
    assert_eq!(DEFAULT_API_VERSION, "v26");
}

#[tokio::test]
async fn an_unauthenticated_token_is_an_invalid_token_without_retrying() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(STREAM_PATH))
        .respond_with(ads_failure(
            401,
            "UNAUTHENTICATED",
            "authenticationError",
            "OAUTH_TOKEN_EXPIRED",
        ))
        .expect(1)
        .mount(&server)
        .await;

    let error = campaign_days(&server, CUSTOMER).await.unwrap_err();

    assert!(matches!(error, ConnectorError::InvalidToken), "{error:?}");
}

#[tokio::test]
async fn a_refused_permission_is_a_client_error_with_permission_denied() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(STREAM_PATH))
        .respond_with(ads_failure(
            403,
            "PERMISSION_DENIED",
            "authorizationError",
            "USER_PERMISSION_DENIED",
        ))
        .expect(1)
        .mount(&server)
        .await;

    let error = campaign_days(&server, CUSTOMER).await.unwrap_err();

    assert!(
        matches!(&error, ConnectorError::Client { status: 403, code: Some(code) } if code == "PERMISSION_DENIED"),
        "{error:?}"
    );
}

#[tokio::test]
async fn an_exhausted_quota_is_retried_after_its_retry_after_then_succeeds() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(STREAM_PATH))
        .respond_with(
            ads_failure(
                429,
                "RESOURCE_EXHAUSTED",
                "quotaError",
                "RESOURCE_TEMPORARILY_EXHAUSTED",
            )
            .insert_header("Retry-After", "0"),
        )
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(STREAM_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([{
            "results": [result_row("111", "2026-02-03", json!({"clicks": "1"}))]
        }])))
        .expect(1)
        .mount(&server)
        .await;

    let days = campaign_days(&server, CUSTOMER).await.unwrap();

    assert_eq!(
        days,
        vec![CampaignDay {
            clicks: 1,
            ..day("111", "2026-02-03")
        }]
    );
}

#[tokio::test]
async fn a_daily_quota_with_a_long_retry_delay_is_rate_limited_at_once() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(STREAM_PATH))
        .respond_with(ResponseTemplate::new(429).set_body_json(json!([{
            "error": {
                "code": 429,
                "status": "RESOURCE_EXHAUSTED",
                "details": [{
                    "@type": "type.googleapis.com/google.ads.googleads.v26.errors.GoogleAdsFailure",
                    "errors": [{
                        "errorCode": {"quotaError": "RESOURCE_EXHAUSTED"},
                        "details": {"quotaErrorDetails": {"rateScope": "DEVELOPER", "retryDelay": "3600s"}}
                    }]
                }]
            }
        }])))
        .expect(1)
        .mount(&server)
        .await;

    let error = campaign_days(&server, CUSTOMER).await.unwrap_err();

    assert!(
        matches!(error, ConnectorError::RateLimited { retry_after: Some(after) } if after.as_secs() == 3600),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_500_is_retried_then_succeeds() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(STREAM_PATH))
        .respond_with(ads_failure(500, "INTERNAL", "internalError", "INTERNAL_ERROR"))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(STREAM_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .expect(1)
        .mount(&server)
        .await;

    assert!(campaign_days(&server, CUSTOMER).await.unwrap().is_empty());
}

#[tokio::test]
async fn an_error_in_the_middle_of_the_stream_fails_the_call() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(STREAM_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            {"results": [result_row("111", "2026-02-01", json!({}))]},
            {"error": {"code": 401, "status": "UNAUTHENTICATED", "message": "token expired"}}
        ])))
        .expect(1)
        .mount(&server)
        .await;

    let error = campaign_days(&server, CUSTOMER).await.unwrap_err();

    assert!(matches!(error, ConnectorError::InvalidToken), "{error:?}");
}

#[tokio::test]
async fn values_that_cannot_be_read_exactly_fail_the_call() {
    for metrics in [
        json!({"impressions": "1.5"}),
        json!({"costMicros": "12e3"}),
        json!({"clicks": true}),
        json!({"conversions": "NaN"}),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(STREAM_PATH))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!([{"results": [result_row("1", "2026-02-01", metrics.clone())]}])),
            )
            .expect(1)
            .mount(&server)
            .await;

        let error = campaign_days(&server, CUSTOMER).await.unwrap_err();

        assert!(
            matches!(
                error,
                ConnectorError::Decode {
                    what: "google ads searchStream",
                    ..
                }
            ),
            "{metrics}: {error:?}"
        );
    }
}

#[tokio::test]
async fn windows_and_customer_ids_are_checked_before_anything_is_sent() {
    let server = MockServer::start().await;
    let ads = google_ads(&server);
    let token = secret(ACCESS_TOKEN);

    for (customer, since, until) in [
        (CUSTOMER, "2026-02-02", "2026-02-01"),
        (CUSTOMER, "2026-01-01", "2026-04-04"),
        ("123-456-789", "2026-02-01", "2026-02-28"),
        ("12345678901", "2026-02-01", "2026-02-28"),
        ("123/456/7890", "2026-02-01", "2026-02-28"),
        ("", "2026-02-01", "2026-02-28"),
    ] {
        let error = ads
            .campaign_days(&token, customer, date(since), date(until))
            .await
            .unwrap_err();
        assert!(
            matches!(error, ConnectorError::InvalidInput(_)),
            "{customer} {since}..{until}: {error:?}"
        );
    }
    assert!(requests(&server).await.is_empty());
}

#[test]
fn versions_and_login_customer_ids_that_could_change_the_request_are_refused() {
    for version in ["26", "v26.0", "v26/../x", "latest", "v"] {
        let settings = GoogleAdsSettings {
            api_version: version.into(),
            ..GoogleAdsSettings::new(secret(DEVELOPER_TOKEN))
        };
        assert!(
            matches!(GoogleAds::new(settings), Err(ConnectorError::Config(_))),
            "{version}"
        );
    }
    for login in ["111-222", "111-222-3333\r\nx-evil: 1"] {
        let settings = GoogleAdsSettings {
            login_customer_id: Some(login.into()),
            ..GoogleAdsSettings::new(secret(DEVELOPER_TOKEN))
        };
        assert!(
            matches!(GoogleAds::new(settings), Err(ConnectorError::Config(_))),
            "{login:?}"
        );
    }
    let settings = GoogleAdsSettings::new(secret("line\nbreak"));
    assert!(matches!(GoogleAds::new(settings), Err(ConnectorError::Config(_))));
}

#[tokio::test]
async fn neither_token_reaches_a_debug_output_or_an_error() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(STREAM_PATH))
        .respond_with(ads_failure(400, "INVALID_ARGUMENT", "requestError", "INVALID_INPUT"))
        .expect(1)
        .mount(&server)
        .await;
    let settings = settings(&server, fast_http());
    let ads = GoogleAds::new(settings.clone()).unwrap();

    let error = ads
        .campaign_days(&secret(ACCESS_TOKEN), CUSTOMER, date("2026-02-01"), date("2026-02-02"))
        .await
        .unwrap_err();

    assert!(
        matches!(&error, ConnectorError::Client { status: 400, code: Some(code) } if code == "requestError.INVALID_INPUT"),
        "{error:?}"
    );
    let mut shown = format!("{error}\n{error:?}\n{settings:?}\n{settings:#?}\n{ads:?}\n{ads:#?}");
    let mut source = error.source();
    while let Some(cause) = source {
        shown.push_str(&format!("\n{cause}\n{cause:?}"));
        source = cause.source();
    }
    assert!(!shown.contains("SECRET"), "a token is shown:\n{shown}");
}
