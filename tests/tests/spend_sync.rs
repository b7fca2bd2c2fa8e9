//! The spend sync end to end, against local stand-ins of the Meta Marketing API and the Google
//! Ads API (real HTTP on loopback): a 28-day window synced, some days restated by the platform,
//! synced again; the dashboard equals the platform's latest figures cent for cent; a sync of
//! unchanged days writes nothing; a rejected token invalidates the connection.

use api::auth::Role;
use chrono::{Duration, NaiveDate};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tests::{Backend, TestApp};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// One day of one platform campaign as the stand-in reports it.
#[derive(Clone, Debug)]
struct Day {
    spend_cents: i64,
    impressions: i64,
    clicks: i64,
    views: i64,
    follows: i64,
    conversions: i64,
}

/// Meta's insights edge over shared state: rows per (platform campaign, day), 20 per page with
/// cursors, or error 190 once the token is revoked.
#[derive(Clone, Default)]
struct MetaInsights {
    rows: Arc<Mutex<BTreeMap<(String, NaiveDate), Day>>>,
    revoked: Arc<Mutex<bool>>,
}

const PAGE: usize = 20;

impl Respond for MetaInsights {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        if *self.revoked.lock().unwrap() {
            return ResponseTemplate::new(400).set_body_json(json!({"error": {
                "message": "Error validating access token", "type": "OAuthException", "code": 190, "fbtrace_id": "x"
            }}));
        }
        let query: BTreeMap<String, String> = request.url.query_pairs().into_owned().collect();
        assert_eq!(query.get("level").map(String::as_str), Some("campaign"));
        assert_eq!(query.get("time_increment").map(String::as_str), Some("1"));
        assert!(!query.contains_key("access_token"), "the token travels in a header");
        let range: Value = serde_json::from_str(&query["time_range"]).unwrap();
        let since: NaiveDate = range["since"].as_str().unwrap().parse().unwrap();
        let until: NaiveDate = range["until"].as_str().unwrap().parse().unwrap();
        let rows: Vec<Value> = self
            .rows
            .lock()
            .unwrap()
            .iter()
            .filter(|((_, day), _)| *day >= since && *day <= until)
            .map(|((campaign, day), d)| {
                json!({
                    "campaign_id": campaign, "date_start": day.to_string(), "date_stop": day.to_string(),
                    "spend": format!("{}.{:02}", d.spend_cents / 100, d.spend_cents % 100),
                    "impressions": d.impressions.to_string(), "reach": (d.impressions * 7 / 10).to_string(),
                    "clicks": d.clicks.to_string(), "account_currency": "USD",
                    "actions": [
                        {"action_type": "video_view", "value": d.views.to_string()},
                        {"action_type": "like", "value": d.follows.to_string()},
                        {"action_type": "offsite_conversion.fb_pixel_purchase", "value": d.conversions.to_string()},
                        {"action_type": "link_click", "value": d.clicks.to_string()}
                    ]
                })
            })
            .collect();
        let start: usize = query
            .get("after")
            .map_or(0, |after| after.trim_start_matches('c').parse().unwrap());
        let end = (start + PAGE).min(rows.len());
        let mut body = json!({ "data": rows[start..end] });
        if end < rows.len() {
            body["paging"] = json!({
                "cursors": {"before": format!("c{start}"), "after": format!("c{end}")},
                "next": format!("https://graph.facebook.com/v25.0/act_1001/insights?after=c{end}&access_token=leak")
            });
        }
        ResponseTemplate::new(200).set_body_json(body)
    }
}

fn day(seed: i64) -> Day {
    Day {
        // Cents with every kind of decimal ending, and one large day.
        spend_cents: if seed == 7 {
            123_456_789
        } else {
            1_000 + seed * 137 % 2_999
        },
        impressions: 2_000 + seed * 31,
        clicks: 40 + seed % 17,
        views: 300 + seed,
        follows: seed % 5,
        conversions: seed % 3,
    }
}

/// The dashboard's day series of one campaign: day → (spend micros, views, follows, conversions).
async fn series(
    app: &TestApp,
    owner: &str,
    artist: &str,
    campaign: &str,
    from: NaiveDate,
    to: NaiveDate,
    position: &str,
) -> BTreeMap<String, (i64, i64, i64, i64)> {
    let (status, dashboard) = app.send(owner,
        reqwest::Method::GET,
        &format!("/v1/artists/{artist}/dashboard?from={from}&to={to}&granularity=day&campaign={campaign}&min_position={position}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{dashboard}");
    dashboard["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|point| {
            (
                point["period"].as_str().unwrap().to_string(),
                (
                    point["spend_micros"].as_i64().unwrap(),
                    point["views"].as_i64().unwrap(),
                    point["follows"].as_i64().unwrap(),
                    point["conversions"].as_i64().unwrap(),
                ),
            )
        })
        .collect()
}

/// What the platform reports for `platform_campaign`, as the dashboard should show it.
fn expected(insights: &MetaInsights, platform_campaign: &str) -> BTreeMap<String, (i64, i64, i64, i64)> {
    insights
        .rows
        .lock()
        .unwrap()
        .iter()
        .filter(|((campaign, _), _)| campaign == platform_campaign)
        .map(|((_, date), d)| {
            (
                date.to_string(),
                (d.spend_cents * 10_000, d.views, d.follows, d.conversions),
            )
        })
        .collect()
}

/// An artist owned by `owner` with one launched Meta campaign per platform campaign id, each
/// linked to ad account 1001; returns the artist id and our campaign ids.
async fn meta_campaigns(app: &TestApp, owner: &str, start: NaiveDate, platform_ids: &[&str]) -> (String, Vec<String>) {
    let post = reqwest::Method::POST;
    let (status, connected) = app
        .send(
            owner,
            post.clone(),
            "/v1/connections",
            Some(json!({"platform": "meta", "page_id": "5550001", "access_token": "meta-user-token-SECRET"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{connected}");
    let (_, artist) = app
        .send(owner, post.clone(), "/v1/artists", Some(json!({"name": "Band"})))
        .await;
    let artist_id = artist["artist_id"].as_str().unwrap().to_string();
    app.send(
        owner,
        reqwest::Method::GET,
        &format!(
            "/v1/artists/{artist_id}?min_position={}",
            artist["position"].as_str().unwrap()
        ),
        None,
    )
    .await;
    let mut ids = Vec::new();
    for platform_id in platform_ids {
        let (status, drafted) = app
            .send(
                owner,
                post.clone(),
                &format!("/v1/artists/{artist_id}/campaigns"),
                Some(json!({
                    "platform": "meta", "objective": "streams",
                    "budget": {"kind": "daily", "amount_micros": 50_000_000}, "currency": "USD",
                    "schedule": {"start": start.to_string()}, "countries": ["PK"],
                    "creatives": [{"kind": "facebook_post", "post_id": "5550001_1"}]
                })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{drafted}");
        let id = drafted["campaign_id"].as_str().unwrap().to_string();
        let (status, body) = app
            .send(
                owner,
                post.clone(),
                &format!("/v1/campaigns/{id}/launch"),
                Some(json!({})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        // Bad links are refused with their reason and change nothing.
        for (bad, reason) in [
            (
                json!({"platform_campaign_id": platform_id}),
                "account_id (the Meta ad account id) is required",
            ),
            (
                json!({"account_id": "act_1001", "platform_campaign_id": "12; DROP"}),
                "account and platform campaign ids are 1 to 32 digits (a Meta ad account may start with act_)",
            ),
        ] {
            let (status, body) = app
                .send(owner, post.clone(), &format!("/v1/campaigns/{id}/link"), Some(bad))
                .await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
            assert_eq!(body["detail"], reason);
        }
        let (status, body) = app
            .send(
                owner,
                post.clone(),
                &format!("/v1/campaigns/{id}/link"),
                Some(json!({"account_id": "act_1001", "platform_campaign_id": platform_id})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        ids.push(id);
    }
    (artist_id, ids)
}

async fn meta_story(backend: Backend) {
    let meta = MockServer::start().await;
    let insights = MetaInsights::default();
    Mock::given(method("GET"))
        .and(path("/v25.0/act_1001/insights"))
        .and(header("authorization", "Bearer meta-user-token-SECRET"))
        .respond_with(insights.clone())
        .mount(&meta)
        .await;
    let Some(app) = TestApp::spawn(backend, &[("DYNAMOI_META_BASE_URL", &meta.uri())]).await else {
        return;
    };
    app.sign_up("owner-1").await;
    let owner = app.token("owner-1", Role::Person);
    let service = app.token("scheduler", Role::Service);
    let until: NaiveDate = "2026-11-28".parse().unwrap();
    let (artist, campaigns) = meta_campaigns(&app, &owner, until - Duration::days(60), &["111", "222"]).await;
    // The platform's 28-day window for both campaigns, and a campaign that is not ours.
    {
        let mut rows = insights.rows.lock().unwrap();
        for offset in 0..28 {
            let date = until - Duration::days(offset);
            rows.insert(("111".into(), date), day(offset));
            rows.insert(("222".into(), date), day(offset + 100));
        }
        rows.insert(("999".into(), until), day(3));
    }
    let sync = async || {
        let (status, report) = app
            .send(
                &service,
                reqwest::Method::POST,
                "/v1/spend/sync",
                Some(json!({"campaigns": campaigns, "until": until.to_string()})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{report}");
        report
    };
    let first = sync().await;
    assert_eq!(first["accounts"], 1, "{first}");
    assert_eq!(first["recorded"], 56, "{first}");
    assert_eq!(first["unmatched_rows"], 1, "{first}");
    assert_eq!(first["failures"], json!([]), "{first}");
    let position = first["position"].as_str().unwrap().to_string();
    let from = until - Duration::days(27);
    for (campaign, platform_id) in campaigns.iter().zip(["111", "222"]) {
        assert_eq!(
            series(&app, &owner, &artist, campaign, from, until, &position).await,
            expected(&insights, platform_id)
        );
    }
    // The platform restates five days (late conversions, a corrected spend).
    {
        let mut rows = insights.rows.lock().unwrap();
        for offset in [0, 3, 9, 20, 27] {
            let row = rows
                .get_mut(&("111".to_string(), until - Duration::days(offset)))
                .unwrap();
            row.conversions += 4;
            row.spend_cents += 1;
        }
    }
    let second = sync().await;
    assert_eq!(
        (&second["recorded"], &second["restated"], &second["unchanged"]),
        (&json!(0), &json!(5), &json!(51)),
        "{second}"
    );
    let position = second["position"].as_str().unwrap().to_string();
    for (campaign, platform_id) in campaigns.iter().zip(["111", "222"]) {
        assert_eq!(
            series(&app, &owner, &artist, campaign, from, until, &position).await,
            expected(&insights, platform_id),
            "the dashboard equals the platform's latest figures"
        );
    }
    // Nothing changed on the platform: the third sync changes no figure. It records that a
    // later view confirmed each day (56 `SpendConfirmed`, so an older view arriving afterwards
    // is stale) and the disclosure of its one call to Meta (P17).
    let before = app.event_count().await;
    let third = sync().await;
    assert_eq!(
        (&third["recorded"], &third["restated"], &third["unchanged"]),
        (&json!(0), &json!(0), &json!(56)),
        "{third}"
    );
    assert_eq!(app.event_count().await, before + 56 + 1);
    let position = third["position"].as_str().unwrap().to_string();
    for (campaign, platform_id) in campaigns.iter().zip(["111", "222"]) {
        assert_eq!(
            series(&app, &owner, &artist, campaign, from, until, &position).await,
            expected(&insights, platform_id),
            "a confirmation changes no figure"
        );
    }
    // The owner restricts processing of their data (P22): their connection is not read, and
    // the report says why; lifted, the sync goes on.
    let privacy_request = async |kind: &str| {
        let (status, body) = app
            .send(
                &owner,
                reqwest::Method::POST,
                "/v1/me/privacy-requests",
                Some(json!({ "kind": kind })),
            )
            .await;
        assert_eq!(
            (status, &body["state"]),
            (StatusCode::CREATED, &json!("completed")),
            "{body}"
        );
    };
    privacy_request("restrict").await;
    let calls = meta.received_requests().await.unwrap().len();
    let restricted = sync().await;
    assert_eq!(restricted["recorded"], 0, "{restricted}");
    assert!(
        restricted["failures"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("restricted at their request"),
        "{restricted}"
    );
    assert_eq!(
        meta.received_requests().await.unwrap().len(),
        calls,
        "Meta was not called"
    );
    privacy_request("lift_restriction").await;
    // The platform revokes the token: the connection ends, its key is destroyed, and the
    // next sync reports the account as not connected without calling the platform.
    *insights.revoked.lock().unwrap() = true;
    let rejected = sync().await;
    assert_eq!(rejected["invalidated_connections"], 1, "{rejected}");
    assert!(
        rejected["failures"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("invalidated"),
        "{rejected}"
    );
    let calls = meta.received_requests().await.unwrap().len();
    let after = sync().await;
    assert_eq!(
        after["failures"][0]["reason"], "this platform is not connected",
        "{after}"
    );
    assert_eq!(meta.received_requests().await.unwrap().len(), calls);
    let invalidated = tests::wait_until(std::time::Duration::from_secs(10), || async {
        let (_, listed) = app.send(&owner, reqwest::Method::GET, "/v1/connections", None).await;
        listed.to_string().contains("\"needs_reauthorisation\"")
    })
    .await;
    assert!(invalidated, "the connection is listed as needing reauthorisation");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meta_window_synced_twice_with_restatements_equals_the_latest_figures_on_sqlite() {
    meta_story(Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meta_window_synced_twice_with_restatements_equals_the_latest_figures_on_postgres() {
    meta_story(Backend::Postgres).await
}

/// A Google Ads campaign: the refresh token becomes an access token at the OAuth stand-in, the
/// last 14 days are read in one searchStream call (the customer id from the connection), and
/// the dashboard shows exactly what the stand-in answered.
async fn google_ads_story(backend: Backend) {
    let google = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "ya29.access-SECRET", "expires_in": 3599, "token_type": "Bearer",
            "scope": "https://www.googleapis.com/auth/adwords"
        })))
        .mount(&google)
        .await;
    let until: NaiveDate = "2026-11-28".parse().unwrap();
    let since = until - Duration::days(13);
    let results: Vec<Value> = (0..14)
        .map(|offset| {
            let date = since + Duration::days(offset);
            json!({
                "campaign": {"resourceName": "customers/1234567890/campaigns/777", "id": "777"},
                "segments": {"date": date.to_string()},
                "customer": {"resourceName": "customers/1234567890", "currencyCode": "USD"},
                "metrics": {"costMicros": (1_250_000 * (offset + 1)).to_string(), "impressions": "1000",
                            "clicks": "12", "videoTrueviewViews": "400", "conversions": 1.5}
            })
        })
        .collect();
    Mock::given(method("POST"))
        .and(path("/v26/customers/1234567890/googleAds:searchStream"))
        .and(header("authorization", "Bearer ya29.access-SECRET"))
        .and(header("developer-token", "dev-token-SECRET"))
        .and(wiremock::matchers::body_string_contains(format!(
            "BETWEEN '{since}' AND '{until}'"
        )))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            {"results": results[..7], "fieldMask": "campaign.id,segments.date", "requestId": "r1"},
            {"results": results[7..], "fieldMask": "campaign.id,segments.date", "requestId": "r1"}
        ])))
        .expect(1)
        .mount(&google)
        .await;
    let uri = google.uri();
    let Some(app) = TestApp::spawn(
        backend,
        &[
            ("DYNAMOI_GOOGLE_CLIENT_ID", "client-id"),
            ("DYNAMOI_GOOGLE_CLIENT_SECRET", "client-SECRET"),
            ("DYNAMOI_GOOGLE_OAUTH_BASE_URL", &uri),
            ("DYNAMOI_GOOGLE_ADS_DEVELOPER_TOKEN", "dev-token-SECRET"),
            ("DYNAMOI_GOOGLE_ADS_BASE_URL", &uri),
        ],
    )
    .await
    else {
        return;
    };
    app.sign_up("owner-2").await;
    let owner = app.token("owner-2", Role::Person);
    let post = reqwest::Method::POST;
    let (status, body) = app
        .send(
            &owner,
            post.clone(),
            "/v1/connections",
            Some(
                json!({"platform": "google_ads", "customer_id": "123-456-7890", "refresh_token": "1//refresh-SECRET"}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (_, artist) = app
        .send(&owner, post.clone(), "/v1/artists", Some(json!({"name": "Band"})))
        .await;
    let artist_id = artist["artist_id"].as_str().unwrap().to_string();
    app.send(
        &owner,
        reqwest::Method::GET,
        &format!(
            "/v1/artists/{artist_id}?min_position={}",
            artist["position"].as_str().unwrap()
        ),
        None,
    )
    .await;
    let (status, drafted) = app
        .send(
            &owner,
            post.clone(),
            &format!("/v1/artists/{artist_id}/campaigns"),
            Some(json!({
                "platform": "google_ads", "objective": "video_views",
                "budget": {"kind": "lifetime", "amount_micros": 900_000_000}, "currency": "USD",
                "schedule": {"start": (until - Duration::days(90)).to_string()}, "countries": ["GB"],
                "creatives": [{"kind": "youtube_video", "video_id": "dQw4w9WgXcQ"}]
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{drafted}");
    let campaign = drafted["campaign_id"].as_str().unwrap().to_string();
    let (status, body) = app
        .send(
            &owner,
            post.clone(),
            &format!("/v1/campaigns/{campaign}/launch"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // No account named: the connection's customer id, without dashes.
    let (status, linked) = app
        .send(
            &owner,
            post.clone(),
            &format!("/v1/campaigns/{campaign}/link"),
            Some(json!({"platform_campaign_id": "777"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{linked}");
    // Without naming campaigns: every linked campaign the read model knows at that position.
    let service = app.token("scheduler", Role::Service);
    let (status, report) = app
        .send(
            &service,
            post.clone(),
            "/v1/spend/sync",
            Some(json!({"until": until.to_string(), "min_position": linked["position"]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(
        (&report["campaigns"], &report["recorded"]),
        (&json!(1), &json!(14)),
        "{report}"
    );
    let (_, dashboard) = app
        .send(
            &owner,
            reqwest::Method::GET,
            &format!(
                "/v1/artists/{artist_id}/dashboard?from={since}&to={until}&granularity=week&min_position={}",
                report["position"].as_str().unwrap()
            ),
            None,
        )
        .await;
    let total: i64 = (1..=14).map(|n| 1_250_000 * n).sum();
    assert_eq!(dashboard["totals"][0]["spend_micros"], total, "{dashboard}");
    assert_eq!(dashboard["totals"][0]["views"], 14 * 400);
    // 1.5 conversions a day round half up to 2.
    assert_eq!(dashboard["totals"][0]["conversions"], 14 * 2);
    let (_, campaigns) = app
        .send(
            &owner,
            reqwest::Method::GET,
            &format!("/v1/artists/{artist_id}/campaigns"),
            None,
        )
        .await;
    assert_eq!(
        campaigns["campaigns"][0]["platform_account_id"], "1234567890",
        "{campaigns}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_google_ads_window_is_read_with_a_fresh_access_token_on_sqlite() {
    google_ads_story(Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_google_ads_window_is_read_with_a_fresh_access_token_on_postgres() {
    google_ads_story(Backend::Postgres).await
}
