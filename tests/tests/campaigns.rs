//! Campaigns, bulk spend ingestion and dashboards end to end, on both backends: 10,000 readings
//! in one request; re-sending writes nothing; restatements replace their day exactly; bad
//! readings are refused one by one with their reason; the dashboard's sums and KPIs; AI
//! creatives only under consent.

use api::auth::Role;
use chrono::{Duration, NaiveDate};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tests::{Backend, TestApp};

fn campaign_body(start: &str, end: &str) -> Value {
    json!({
        "platform": "meta", "objective": "streams",
        "budget": {"kind": "daily", "amount_micros": 20_000_000}, "currency": "USD",
        "schedule": {"start": start, "end": end}, "countries": ["PK"],
        "creatives": [{"kind": "facebook_post", "post_id": "p1"}]
    })
}

fn reading(campaign: &str, day: NaiveDate, spend: i64) -> Value {
    json!({
        "campaign_id": campaign, "platform": "meta", "date": day.to_string(),
        "spend_micros": spend, "currency": "USD", "impressions": 1000, "reach": 700, "clicks": 25,
        "views": 300, "saves": 4, "reactions": 10, "comments": 2, "shares": 1, "follows": 3, "conversions": 2,
        "fetched_at": "2026-03-01T06:00:00Z", "source": "ingest_api"
    })
}

async fn story(backend: Backend) {
    // Six projections apply the 10,000 readings after the request; on a loaded 2-core machine
    // that can take longer than the default 5 s consistency wait.
    let Some(app) = TestApp::spawn(
        backend,
        &[
            ("DYNAMOI_CONSISTENCY_WAIT_MS", "60000"),
            ("DYNAMOI_STATS_MIN_ARTISTS", "1"),
        ],
    )
    .await
    else {
        return;
    };
    app.sign_up("owner-1").await;
    let owner = app.token("owner-1", Role::Person);
    let service = app.token("sync", Role::Service);
    let post = reqwest::Method::POST;
    let (_, artist) = app
        .send(&owner, post.clone(), "/v1/artists", Some(json!({"name": "Band"})))
        .await;
    let artist_id = artist["artist_id"].as_str().unwrap().to_string();
    let pos = artist["position"].as_str().unwrap().to_string();
    app.send(
        &owner,
        reqwest::Method::GET,
        &format!("/v1/artists/{artist_id}?min_position={pos}"),
        None,
    )
    .await;

    // 40 campaigns × 250 days = 10,000 readings.
    let start = NaiveDate::from_ymd_opt(2025, 6, 1).unwrap();
    let end = start + Duration::days(249);
    let mut campaigns = Vec::new();
    for _ in 0..40 {
        let (status, body) = app
            .send(
                &owner,
                post.clone(),
                &format!("/v1/artists/{artist_id}/campaigns"),
                Some(campaign_body(&start.to_string(), &end.to_string())),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        campaigns.push(body["campaign_id"].as_str().unwrap().to_string());
    }
    let batch: Vec<Value> = campaigns
        .iter()
        .flat_map(|c| (0..250).map(move |d| (c.clone(), d)))
        .map(|(c, d)| reading(&c, start + Duration::days(d), 1_000_000 + d * 1000))
        .collect();
    assert_eq!(batch.len(), 10_000);
    let started = std::time::Instant::now();
    let (status, answer) = app
        .send(
            &service,
            post.clone(),
            "/v1/ingest/spend",
            Some(Value::Array(batch.clone())),
        )
        .await;
    let elapsed = started.elapsed();
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["recorded"], 10_000, "{}", answer["results"][0]);
    eprintln!(
        "ingest {backend:?}: readings=10000 elapsed={:.2}s rate={:.0}/s",
        elapsed.as_secs_f64(),
        10_000.0 / elapsed.as_secs_f64()
    );
    let before = app.event_count().await;
    let (_, again) = app
        .send(
            &service,
            post.clone(),
            "/v1/ingest/spend",
            Some(Value::Array(batch.clone())),
        )
        .await;
    assert_eq!(again["unchanged"], 10_000);
    assert_eq!(app.event_count().await, before, "re-sending a batch writes nothing");

    // Restatements and refusals, as NDJSON.
    let c0 = &campaigns[0];
    let mut lines = [
        reading(c0, start, 5_000_000),
        reading(c0, start + Duration::days(1), 1_001_000),
        reading(c0, start - Duration::days(2), 1),
        json!({"campaign_id": c0, "platform": "meta", "date": start.to_string(), "spend_micros": -1, "currency": "USD", "fetched_at": "2026-03-01T06:00:00Z", "source": "x"}),
        reading("no-such-campaign", start, 1),
    ];
    lines[1]["currency"] = json!("EUR");
    let mut ndjson: String = lines.iter().map(|l| format!("{l}\n")).collect();
    ndjson.push_str("{not json\n");
    let response = app
        .client
        .post(format!("{}/v1/ingest/spend", app.base_url))
        .bearer_auth(&service)
        .header("content-type", "application/x-ndjson")
        .body(ndjson)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let answer: Value = response.json().await.unwrap();
    let outcomes: Vec<&str> = answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        ["restated", "rejected", "rejected", "rejected", "rejected", "rejected"]
    );
    assert!(answer["results"][1]["reason"].as_str().unwrap().contains("EUR"));
    assert!(answer["results"][2]["reason"]
        .as_str()
        .unwrap()
        .contains("outside the campaign"));
    assert!(answer["results"][3]["reason"].as_str().unwrap().contains("negative"));
    assert_eq!(answer["results"][4]["reason"], "there is no such campaign");
    let position = answer["position"].as_str().unwrap().to_string();

    // The dashboard equals the latest readings, cent for cent.
    let expected_total: i64 = 40 * (0..250).map(|d| 1_000_000 + d * 1000).sum::<i64>() - 1_000_000 + 5_000_000;
    let (status, dashboard) = app
        .send(
            &owner,
            reqwest::Method::GET,
            &format!("/v1/artists/{artist_id}/dashboard?granularity=month&min_position={position}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{dashboard}");
    assert_eq!(dashboard["totals"][0]["spend_micros"], expected_total);
    assert_eq!(dashboard["totals"][0]["impressions"], 10_000 * 1000);
    assert_eq!(dashboard["totals"][0]["kpis"]["ctr_basis_points"], 250);
    assert_eq!(dashboard["series"][0]["period"], "2025-06");
    let (_, one_day) = app
        .send(
            &owner,
            reqwest::Method::GET,
            &format!("/v1/artists/{artist_id}/dashboard?from={start}&to={start}&campaign={c0}"),
            None,
        )
        .await;
    assert_eq!(one_day["series"][0]["spend_micros"], 5_000_000);
    assert_eq!(one_day["series"][0]["kpis"]["cpm_micros"], 5_000_000);
    assert_eq!(one_day["series"][0]["kpis"]["cost_per_follow_micros"], 1_666_667);
    let stranger = app.token("stranger", Role::Person);
    let (status, body) = app
        .send(
            &stranger,
            reqwest::Method::GET,
            &format!("/v1/artists/{artist_id}/dashboard"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let auditor = app.token("auditor", Role::Auditor);
    let (_, stats) = app
        .send(
            &auditor,
            reqwest::Method::GET,
            &format!("/v1/stats/platforms?from={start}&to={start}"),
            None,
        )
        .await;
    assert_eq!(
        stats["days"][0]["spend_micros"],
        39 * 1_000_000 + 5_000_000,
        "the anonymous aggregate follows restatements"
    );
    assert!(!stats.to_string().contains(&artist_id));

    // Launch needs a live connection; AI creatives need consent.
    let (status, _) = app
        .send(
            &owner,
            post.clone(),
            &format!("/v1/campaigns/{c0}/launch"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    app.send(
        &owner,
        post.clone(),
        "/v1/connections",
        Some(json!({"platform": "meta", "page_id": "1", "access_token": "EAAx"})),
    )
    .await;
    let (status, body) = app
        .send(
            &owner,
            post.clone(),
            &format!("/v1/campaigns/{c0}/launch"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app
        .send(
            &owner,
            post.clone(),
            &format!("/v1/campaigns/{c0}/ai-creatives"),
            Some(json!({"asset_id": "gen-1"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    app.send(&app.token("support", Role::Support), post.clone(), "/v1/policies", Some(json!({"label": "v1", "effective_date": "2020-01-01", "locale": "en", "text": "t", "summary_of_changes": "s"}))).await;
    let (_, granted) = app.send(&owner,
        post.clone(),
        "/v1/me/consents",
        Some(
            json!({"purpose": "ai_features", "granted": true, "jurisdiction": "PK", "notice": {"version_label": "v1"}}),
        ),
    )
    .await;
    let (status, _) = app
        .send(
            &owner,
            post.clone(),
            &format!("/v1/campaigns/{c0}/ai-creatives"),
            Some(json!({"asset_id": "gen-1"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let stream = app.db.log().load("campaign", c0).await.unwrap();
    assert_eq!(
        stream.last().unwrap().payload["AiCreativeAdded"]["consent_event_id"],
        granted["event_id"]
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_readings_then_restatements_and_the_dashboard_on_sqlite() {
    story(Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_readings_then_restatements_and_the_dashboard_on_postgres() {
    story(Backend::Postgres).await
}

/// The service with `DYNAMOI_EVENT_STORE_URL=kurrentdb://…` (the stand-in, or
/// `DYNAMOI_TEST_KURRENTDB_URL`): events in KurrentDB, read models in SQLite.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_readings_then_restatements_and_the_dashboard_on_kurrentdb() {
    story(Backend::KurrentDb).await
}
