//! Meta's insights: daily campaign rows across cursor pages with exact micros and the actions
//! mapping, the usage headers that slow down or stop paging, Meta's error codes, and the checks
//! made before anything is sent.

use std::time::Duration;

use chrono::NaiveDate;
use connectors::ad_reporting::CampaignDay;
use connectors::meta::{Meta, MetaSettings};
use connectors::ConnectorError;
use serde_json::{json, Value};
use wiremock::matchers::{bearer_token, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{base, fast_http, query, requests, secret};

const TOKEN: &str = "EAAB-insights-user-token";
const ACCOUNT: &str = "123456789012345";
const SINCE: &str = "2026-03-01";
const UNTIL: &str = "2026-03-31";

fn meta(server: &MockServer) -> Meta {
    Meta::new(MetaSettings {
        base_url: base(server),
        insights_slowdown: Duration::from_millis(5),
        http: fast_http(),
        ..MetaSettings::default()
    })
    .unwrap()
}

fn insights_path() -> String {
    format!("/v25.0/act_{ACCOUNT}/insights")
}

fn date(text: &str) -> NaiveDate {
    text.parse().unwrap()
}

/// A page of rows; with `after`, Meta offers a next page at that cursor.
fn page(rows: Value, after: Option<&str>) -> ResponseTemplate {
    let mut paging = json!({"cursors": {"before": "QkVGT1JF", "after": after.unwrap_or("TEFTVA")}});
    if let Some(after) = after {
        paging["next"] = json!(format!(
            "https://graph.facebook.com/v25.0/act_{ACCOUNT}/insights?access_token={TOKEN}&limit=500&after={after}"
        ));
    }
    ResponseTemplate::new(200).set_body_json(json!({"data": rows, "paging": paging}))
}

fn row(campaign: &str, day: &str, spend: &str) -> Value {
    json!({
        "campaign_id": campaign,
        "date_start": day,
        "date_stop": day,
        "spend": spend,
        "impressions": "1000",
        "account_currency": "EUR"
    })
}

fn zero_day(campaign: &str, day: &str, spend_micros: i64) -> CampaignDay {
    CampaignDay {
        platform_campaign_id: campaign.into(),
        date: date(day),
        currency: "EUR".into(),
        spend_micros,
        impressions: 1000,
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

fn graph_error(status: u16, code: i64) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "error": {"message": "(#80004) There have been too many calls to this ad-account.", "type": "OAuthException", "code": code, "fbtrace_id": "AbC"}
    }))
}

async fn insights(server: &MockServer, account: &str) -> Result<Vec<CampaignDay>, ConnectorError> {
    meta(server)
        .campaign_insights(&secret(TOKEN), account, date(SINCE), date(UNTIL))
        .await
}

#[tokio::test]
async fn daily_campaign_rows_are_read_across_cursor_pages_with_exact_micros_and_mapped_actions() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(insights_path()))
        .and(query_param_is_missing("after"))
        .and(bearer_token(TOKEN))
        .respond_with(page(
            json!([
                {
                    "campaign_id": "120210000000001",
                    "date_start": "2026-03-01",
                    "date_stop": "2026-03-01",
                    "spend": "1234567.89",
                    "impressions": "361324",
                    "reach": "200001",
                    "clicks": "4512",
                    "account_currency": "USD",
                    "actions": [
                        {"action_type": "video_view", "value": "1500"},
                        {"action_type": "onsite_conversion.post_save", "value": "7"},
                        {"action_type": "post_reaction", "value": "88"},
                        {"action_type": "comment", "value": "12"},
                        {"action_type": "post", "value": "5"},
                        {"action_type": "like", "value": "3"},
                        {"action_type": "offsite_conversion.fb_pixel_purchase", "value": "2"},
                        {"action_type": "offsite_conversion.fb_pixel_lead", "value": "4"},
                        {"action_type": "omni_purchase", "value": "2"},
                        {"action_type": "lead", "value": 4},
                        {"action_type": "link_click", "value": "900"},
                        {"action_type": "page_engagement", "value": "1000"},
                        {"value": "1"}
                    ]
                },
                row("120210000000002", "2026-03-01", "0.01")
            ]),
            Some("QVFIUmNext"),
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(insights_path()))
        .and(query_param("after", "QVFIUmNext"))
        .and(bearer_token(TOKEN))
        .respond_with(page(
            json!([
                // Fields Meta leaves out when they are zero, and a spend of exactly zero.
                {"campaign_id": "120210000000001", "date_start": "2026-03-02", "spend": "0", "account_currency": "USD"}
            ]),
            None,
        ))
        .expect(1)
        .mount(&server)
        .await;

    let days = insights(&server, ACCOUNT).await.unwrap();

    assert_eq!(
        days,
        vec![
            CampaignDay {
                platform_campaign_id: "120210000000001".into(),
                date: date("2026-03-01"),
                currency: "USD".into(),
                spend_micros: 1_234_567_890_000,
                impressions: 361_324,
                reach: 200_001,
                clicks: 4512,
                views: 1500,
                saves: 7,
                reactions: 88,
                comments: 12,
                shares: 5,
                follows: 3,
                // The pixel actions only: omni_purchase and lead count the same events again.
                conversions: 6,
            },
            zero_day("120210000000002", "2026-03-01", 10_000),
            CampaignDay {
                platform_campaign_id: "120210000000001".into(),
                date: date("2026-03-02"),
                currency: "USD".into(),
                spend_micros: 0,
                impressions: 0,
                ..zero_day("120210000000001", "2026-03-02", 0)
            },
        ]
    );
    let received = requests(&server).await;
    assert_eq!(received.len(), 2);
    for request in received {
        let query = query(&request);
        assert_eq!(query["level"], "campaign");
        assert_eq!(query["time_increment"], "1");
        assert_eq!(query["time_range"], r#"{"since":"2026-03-01","until":"2026-03-31"}"#);
        assert_eq!(
            query["fields"],
            "campaign_id,date_start,spend,impressions,reach,clicks,actions,account_currency"
        );
        assert_eq!(query["limit"], "500");
        assert!(
            !query.contains_key("access_token"),
            "the token went into a URL: {}",
            request.url
        );
        assert!(!query.contains_key("appsecret_proof"));
        assert!(!request.url.as_str().contains(TOKEN));
    }
}

#[tokio::test]
async fn the_account_id_is_taken_with_or_without_its_act_prefix_and_the_proof_is_added() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(insights_path()))
        // HMAC-SHA256("EAAB-insights-user-token") keyed by "app-secret-xyz".
        .and(query_param(
            "appsecret_proof",
            "eb07abe8de9a441e777056f8c22ed550ec423de316db8a1c0547d4f57ca75b15",
        ))
        .respond_with(page(json!([row("7", "2026-03-05", "12.34")]), None))
        .expect(2)
        .mount(&server)
        .await;
    let meta = Meta::new(MetaSettings {
        base_url: base(&server),
        app_secret: Some(secret("app-secret-xyz")),
        http: fast_http(),
        ..MetaSettings::default()
    })
    .unwrap();

    for account in [ACCOUNT.to_owned(), format!("act_{ACCOUNT}")] {
        let days = meta
            .campaign_insights(&secret(TOKEN), &account, date(SINCE), date(UNTIL))
            .await
            .unwrap();
        assert_eq!(days, vec![zero_day("7", "2026-03-05", 12_340_000)], "{account}");
    }
}

#[tokio::test]
async fn exhausted_usage_stops_before_the_next_page_with_the_wait_meta_announced() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(insights_path()))
        .and(query_param_is_missing("after"))
        .respond_with(
            page(json!([row("1", "2026-03-01", "1")]), Some("NEXT")).insert_header(
                "X-Business-Use-Case-Usage",
                r#"{"1029384756":[{"type":"ads_insights","call_count":96,"total_cputime":20,"total_time":30,"estimated_time_to_regain_access":4}]}"#,
            ),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(insights_path()))
        .and(query_param("after", "NEXT"))
        .respond_with(page(json!([]), None))
        .expect(0)
        .mount(&server)
        .await;

    let error = insights(&server, ACCOUNT).await.unwrap_err();

    assert!(
        matches!(error, ConnectorError::RateLimited { retry_after: Some(after) } if after == Duration::from_secs(240)),
        "{error:?}"
    );
    assert_eq!(requests(&server).await.len(), 1);
}

#[tokio::test]
async fn an_ad_account_at_95_percent_stops_for_its_reset_time() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(insights_path()))
        .respond_with(
            page(json!([row("1", "2026-03-01", "1")]), Some("NEXT"))
                .insert_header(
                    "X-Ad-Account-Usage",
                    r#"{"acc_id_util_pct":95,"reset_time_duration":75,"ads_api_access_tier":"standard_access"}"#,
                )
                .insert_header(
                    "X-FB-Ads-Insights-Throttle",
                    r#"{"app_id_util_pct":3,"acc_id_util_pct":95}"#,
                ),
        )
        .expect(1)
        .mount(&server)
        .await;

    let error = insights(&server, ACCOUNT).await.unwrap_err();

    assert!(
        matches!(error, ConnectorError::RateLimited { retry_after: Some(after) } if after == Duration::from_secs(75)),
        "{error:?}"
    );
    assert_eq!(requests(&server).await.len(), 1);
}

#[tokio::test]
async fn high_usage_slows_down_but_reads_every_page_and_exhaustion_on_the_last_page_is_ignored() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(insights_path()))
        .and(query_param_is_missing("after"))
        .respond_with(page(json!([row("1", "2026-03-01", "1")]), Some("NEXT")).insert_header(
            "X-FB-Ads-Insights-Throttle",
            r#"{"app_id_util_pct":80,"acc_id_util_pct":10}"#,
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(insights_path()))
        .and(query_param("after", "NEXT"))
        .respond_with(page(json!([row("1", "2026-03-02", "2")]), None).insert_header(
            "X-FB-Ads-Insights-Throttle",
            r#"{"app_id_util_pct":99,"acc_id_util_pct":99}"#,
        ))
        .expect(1)
        .mount(&server)
        .await;

    let days = insights(&server, ACCOUNT).await.unwrap();

    assert_eq!(
        days,
        vec![
            zero_day("1", "2026-03-01", 1_000_000),
            zero_day("1", "2026-03-02", 2_000_000)
        ]
    );
}

#[tokio::test]
async fn an_expired_token_is_an_invalid_token_and_throttling_codes_are_rate_limits() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(insights_path()))
        .respond_with(graph_error(400, 190))
        .expect(1)
        .mount(&server)
        .await;

    let error = insights(&server, ACCOUNT).await.unwrap_err();

    assert!(matches!(error, ConnectorError::InvalidToken), "{error:?}");

    for code in [17, 80000, 80004] {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path(insights_path()))
            .respond_with(graph_error(400, code))
            .expect(1)
            .mount(&server)
            .await;

        let error = insights(&server, ACCOUNT).await.unwrap_err();

        assert!(
            matches!(error, ConnectorError::RateLimited { .. }),
            "code {code}: {error:?}"
        );
    }
}

#[tokio::test]
async fn amounts_and_counts_that_cannot_be_read_exactly_fail_the_call() {
    for bad_row in [
        json!({"campaign_id": "1", "date_start": "2026-03-01", "account_currency": "EUR", "spend": "0.0000001"}),
        json!({"campaign_id": "1", "date_start": "2026-03-01", "account_currency": "EUR", "spend": "-1.00"}),
        json!({"campaign_id": "1", "date_start": "2026-03-01", "account_currency": "EUR",
               "actions": [{"action_type": "video_view", "value": "2.5"}]}),
        json!({"campaign_id": "1", "date_start": "2026-03-01", "account_currency": "EUR", "impressions": "12x"}),
        json!({"campaign_id": "1", "date_start": "2026-03-01", "spend": "1"}),
        json!({"campaign_id": "1", "date_start": "01/03/2026", "account_currency": "EUR"}),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path(insights_path()))
            .respond_with(page(json!([bad_row]), None))
            .expect(1)
            .mount(&server)
            .await;

        let error = insights(&server, ACCOUNT).await.unwrap_err();

        assert!(
            matches!(
                error,
                ConnectorError::Decode {
                    what: "meta campaign insights",
                    ..
                }
            ),
            "{bad_row}: {error:?}"
        );
    }
}

#[tokio::test]
async fn windows_and_account_ids_are_checked_before_anything_is_sent() {
    let server = MockServer::start().await;
    let meta = meta(&server);
    let token = secret(TOKEN);

    for (account, since, until) in [
        (ACCOUNT, "2026-03-02", "2026-03-01"),
        (ACCOUNT, "2026-01-01", "2026-04-04"),
        ("act_", SINCE, UNTIL),
        ("act_12a", SINCE, UNTIL),
        ("../me", SINCE, UNTIL),
        ("", SINCE, UNTIL),
    ] {
        let error = meta
            .campaign_insights(&token, account, date(since), date(until))
            .await
            .unwrap_err();
        assert!(
            matches!(error, ConnectorError::InvalidInput(_)),
            "{account} {since}..{until}: {error:?}"
        );
    }
    assert!(requests(&server).await.is_empty());
}

#[tokio::test]
async fn a_93_day_window_is_accepted() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(insights_path()))
        .and(query_param(
            "time_range",
            r#"{"since":"2026-01-01","until":"2026-04-03"}"#,
        ))
        .respond_with(page(json!([]), None))
        .expect(1)
        .mount(&server)
        .await;

    let days = meta(&server)
        .campaign_insights(&secret(TOKEN), ACCOUNT, date("2026-01-01"), date("2026-04-03"))
        .await
        .unwrap();

    assert!(days.is_empty());
}
