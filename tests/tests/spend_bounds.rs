//! Money and counts at their documented maxima, and readings arriving out of order, end to end
//! on both backends: two maximal readings total exactly in the dashboard, the usage, the
//! statement and the period close; a reading, budget or plan above its maximum is refused with
//! the field named and records nothing; an older reading of a day is answered `stale` and never
//! changes the day's figures or the bill, whether it comes alone or in a batch.

use api::auth::Role;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tests::{both_backends, TestApp};

const MAX_MICROS: i64 = domain::money::MAX_MICROS;
const MAX_COUNT: i64 = domain::money::MAX_COUNT;

/// An artist owned by `owner` with a live Meta campaign in USD from 2026-08-01, attached to
/// billing account `cus_BOUNDS` (500 USD included, 2.5 % beyond). The artist and campaign ids.
async fn artist_with_campaign(app: &TestApp, owner: &str) -> (String, String) {
    let (artist_id, campaign) = artist_with_live_campaign(app, owner).await;
    let token = app.token(owner, Role::Person);
    let plan = json!({"monthly_fee_micros": 29_000_000, "included_spend_micros": 500_000_000, "fee_basis_points": 250,
                      "currency": "USD", "time_zone": "Etc/UTC"});
    let (status, body) = app
        .send(
            &token,
            Method::POST,
            "/v1/billing/accounts",
            Some(json!({"stripe_customer_id": "cus_BOUNDS", "plan": plan})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = app
        .send(
            &token,
            Method::POST,
            "/v1/billing/accounts/cus_BOUNDS/artists",
            Some(json!({"artist_id": artist_id})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    (artist_id, campaign)
}

/// An artist owned by `owner` (signed up here) with a live Meta campaign in USD from
/// 2026-08-01. The artist and campaign ids.
async fn artist_with_live_campaign(app: &TestApp, owner: &str) -> (String, String) {
    app.sign_up(owner).await;
    let token = app.token(owner, Role::Person);
    let (status, body) = app
        .send(
            &token,
            Method::POST,
            "/v1/connections",
            Some(json!({"platform": "meta", "page_id": "77", "access_token": "EAA-bounds"})),
        )
        .await;
    assert!(status.is_success(), "{body}");
    let (status, artist) = app
        .send(&token, Method::POST, "/v1/artists", Some(json!({"name": "Band"})))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{artist}");
    let artist_id = artist["artist_id"].as_str().unwrap().to_string();
    // Commands read the artist from its read model: wait until it holds the creation.
    let (status, body) = app
        .send(
            &token,
            Method::GET,
            &format!(
                "/v1/artists/{artist_id}?min_position={}",
                artist["position"].as_str().unwrap()
            ),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, drafted) = app
        .send(
            &token,
            Method::POST,
            &format!("/v1/artists/{artist_id}/campaigns"),
            Some(json!({
                "platform": "meta", "objective": "streams", "budget": {"kind": "daily", "amount_micros": 200_000_000},
                "currency": "USD", "schedule": {"start": "2026-08-01"}, "countries": ["PK"],
                "creatives": [{"kind": "facebook_post", "post_id": "77_1"}]
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{drafted}");
    let campaign = drafted["campaign_id"].as_str().unwrap().to_string();
    let (status, body) = app
        .send(
            &token,
            Method::POST,
            &format!("/v1/campaigns/{campaign}/launch"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    (artist_id, campaign)
}

fn reading(campaign: &str, day: &str, spend_micros: i64, impressions: i64, fetched_at: &str) -> Value {
    json!({
        "campaign_id": campaign, "platform": "meta", "date": day, "spend_micros": spend_micros,
        "currency": "USD", "impressions": impressions, "clicks": 10, "fetched_at": fetched_at,
        "source": "meta_insights"
    })
}

async fn ingest(app: &TestApp, readings: Vec<Value>) -> Value {
    let service = app.token("sync", Role::Service);
    let (status, body) = app
        .send(&service, Method::POST, "/v1/ingest/spend", Some(Value::Array(readings)))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn dashboard_totals(app: &TestApp, owner: &str, artist: &str, position: &str) -> Value {
    let (status, dashboard) = app
        .send(
            &app.token(owner, Role::Person),
            Method::GET,
            &format!("/v1/artists/{artist}/dashboard?min_position={position}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{dashboard}");
    dashboard["totals"][0].clone()
}

/// The account's usage of `period` once the billing read model shows `spend`.
async fn usage_reaches(app: &TestApp, owner: &str, period: &str, spend: i64) -> bool {
    let token = app.token(owner, Role::Person);
    tests::wait_until(std::time::Duration::from_secs(10), || async {
        let (status, usage) = app
            .send(&token, Method::GET, "/v1/billing/accounts/cus_BOUNDS/usage", None)
            .await;
        status == StatusCode::OK
            && usage["usage"]
                .as_array()
                .is_some_and(|rows| rows.iter().any(|u| u["period"] == period && u["spend_micros"] == spend))
    })
    .await
}

both_backends! {
    async fn two_maximal_readings_total_exactly_and_a_larger_one_is_refused_with_nothing_recorded(db: TestDb) {
        let app = TestApp::spawn_on(db, &[]).await;
        let owner = "bounds-owner";
        let (artist, campaign) = artist_with_campaign(&app, owner).await;
        let token = app.token(owner, Role::Person);

        // Above the maxima: each reading refused alone, with the field and its maximum named.
        let before = app.event_count().await;
        let refused = ingest(
            &app,
            vec![
                reading(&campaign, "2026-09-01", i64::MAX, 1, "2026-10-01T06:00:00Z"),
                reading(&campaign, "2026-09-02", MAX_MICROS + 1, 1, "2026-10-01T06:00:00Z"),
                reading(&campaign, "2026-09-03", 1, i64::MAX, "2026-10-01T06:00:00Z"),
            ],
        )
        .await;
        assert_eq!((&refused["recorded"], &refused["rejected"]), (&json!(0), &json!(3)), "{refused}");
        assert_eq!(refused["results"][0]["reason"], "spend_micros is above its maximum of 1000000000000000");
        assert_eq!(refused["results"][1]["reason"], "spend_micros is above its maximum of 1000000000000000");
        assert_eq!(refused["results"][2]["reason"], "impressions is above its maximum of 1000000000000");
        assert_eq!(app.event_count().await, before, "nothing recorded");

        // Two readings at the maxima.
        let ingested = ingest(
            &app,
            vec![
                reading(&campaign, "2026-09-01", MAX_MICROS, MAX_COUNT, "2026-10-01T06:00:00Z"),
                reading(&campaign, "2026-09-02", MAX_MICROS, MAX_COUNT, "2026-10-01T06:00:00Z"),
            ],
        )
        .await;
        assert_eq!(ingested["recorded"], 2, "{ingested}");
        // A JSON array is read one reading at a time: one that is not an object, or holds a
        // control character, is refused alone and the others go on (here a repeat: unchanged).
        let mut with_nul = reading(&campaign, "2026-09-05", 1, 1, "2026-10-01T06:00:00Z");
        with_nul["source"] = json!("sync\u{0}");
        let repeat = reading(&campaign, "2026-09-01", MAX_MICROS, MAX_COUNT, "2026-10-01T06:00:00Z");
        let mixed = ingest(&app, vec![repeat, json!(7), with_nul]).await;
        assert_eq!((&mixed["unchanged"], &mixed["rejected"]), (&json!(1), &json!(2)), "{mixed}");
        assert!(mixed["results"][1]["reason"].as_str().is_some_and(|r| r.contains("invalid type")), "{mixed}");
        assert!(mixed["results"][2]["reason"].as_str().is_some_and(|r| !r.is_empty()), "{mixed}");
        let (status, problem) = app
            .send(&app.token("sync", Role::Service), Method::POST, "/v1/ingest/spend", Some(json!({"readings": []})))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "not an array: {problem}");
        let position = ingested["position"].as_str().unwrap().to_string();
        let totals = dashboard_totals(&app, owner, &artist, &position).await;
        assert_eq!(totals["spend_micros"], 2 * MAX_MICROS, "{totals}");
        assert_eq!(totals["impressions"], 2 * MAX_COUNT, "{totals}");
        assert!(usage_reaches(&app, owner, "2026-09", 2 * MAX_MICROS).await, "usage shows both readings");

        let support = app.token("support-1", Role::Support);
        let (status, closed) = app
            .send(
                &support,
                Method::POST,
                "/v1/billing/accounts/cus_BOUNDS/periods/2026-09/close",
                Some(json!({"min_position": position})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{closed}");
        let statement = &closed["statement"];
        assert_eq!(statement["spend_micros"], 2 * MAX_MICROS, "{statement}");
        // (2 × 10^15 − 500 × 10^6) × 2.5 %.
        let fee = (2 * MAX_MICROS - 500_000_000) / 40;
        assert_eq!(statement["fee_micros"], fee, "{statement}");
        assert_eq!(statement["reported_minor"], fee / 10_000, "{statement}");
        let (status, shown) = app
            .send(&token, Method::GET, "/v1/billing/accounts/cus_BOUNDS/statements/2026-09", None)
            .await;
        assert_eq!(status, StatusCode::OK, "{shown}");

        // A budget or a plan amount above the maximum: 422 with the reason, nothing stored.
        let before = app.event_count().await;
        let (status, refused) = app
            .send(
                &token,
                Method::POST,
                &format!("/v1/artists/{artist}/campaigns"),
                Some(json!({
                    "platform": "meta", "objective": "streams", "budget": {"kind": "daily", "amount_micros": i64::MAX},
                    "currency": "USD", "schedule": {"start": "2026-08-01"}, "countries": ["PK"],
                    "creatives": [{"kind": "facebook_post", "post_id": "77_1"}]
                })),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
        assert_eq!(refused["detail"], "a budget must be at most 1000000000000000 micros");
        let plan = json!({"monthly_fee_micros": i64::MAX, "included_spend_micros": 0, "fee_basis_points": 250,
                          "currency": "USD", "time_zone": "Etc/UTC"});
        let (status, refused) = app
            .send(
                &token,
                Method::POST,
                "/v1/billing/accounts",
                Some(json!({"stripe_customer_id": "cus_BOUNDS2", "plan": plan})),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
        assert_eq!(refused["detail"], "the plan's amounts must be at most 1000000000000000 micros");
        assert_eq!(app.event_count().await, before, "nothing recorded");
        app.stop().await;
    }
}

both_backends! {
    async fn an_older_reading_is_stale_and_never_changes_the_day_or_the_bill(db: TestDb) {
        let app = TestApp::spawn_on(db, &[]).await;
        let owner = "stale-owner";
        let (artist, campaign) = artist_with_campaign(&app, owner).await;

        // Fetched on 2026-10-20, then the view fetched on 2026-10-06 arrives.
        let newer = ingest(&app, vec![reading(&campaign, "2026-09-01", 900_000_000, 5000, "2026-10-20T06:00:00Z")]).await;
        assert_eq!(newer["recorded"], 1, "{newer}");
        let before = app.event_count().await;
        let older = ingest(&app, vec![reading(&campaign, "2026-09-01", 700_000_000, 4000, "2026-10-06T06:00:00Z")]).await;
        assert_eq!((&older["stale"], &older["restated"]), (&json!(1), &json!(0)), "{older}");
        assert_eq!(older["results"][0]["outcome"], "stale", "{older}");
        assert_eq!(app.event_count().await, before, "a stale reading is not recorded");

        // In one batch, in either order: the latest fetch wins.
        let batch = ingest(
            &app,
            vec![
                reading(&campaign, "2026-09-02", 300_000_000, 100, "2026-10-20T06:00:00Z"),
                reading(&campaign, "2026-09-02", 100_000_000, 100, "2026-10-06T06:00:00Z"),
                reading(&campaign, "2026-09-03", 100_000_000, 100, "2026-10-06T06:00:00Z"),
                reading(&campaign, "2026-09-03", 200_000_000, 100, "2026-10-20T06:00:00Z"),
            ],
        )
        .await;
        assert_eq!(
            (&batch["recorded"], &batch["stale"], &batch["restated"]),
            (&json!(2), &json!(1), &json!(1)),
            "{batch}"
        );
        let position = batch["position"].as_str().unwrap().to_string();
        let totals = dashboard_totals(&app, owner, &artist, &position).await;
        assert_eq!(totals["spend_micros"], 900_000_000 + 300_000_000 + 200_000_000, "{totals}");
        assert_eq!(totals["impressions"], 5000 + 100 + 100, "{totals}");
        assert!(usage_reaches(&app, owner, "2026-09", 1_400_000_000).await, "usage follows the latest readings");

        let support = app.token("support-1", Role::Support);
        let (status, closed) = app
            .send(
                &support,
                Method::POST,
                "/v1/billing/accounts/cus_BOUNDS/periods/2026-09/close",
                Some(json!({"min_position": position})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{closed}");
        assert_eq!(closed["statement"]["spend_micros"], 1_400_000_000, "{closed}");
        // 1,400 − 500 included = 900 USD × 2.5 % = 22.50 USD.
        assert_eq!(closed["statement"]["fee_micros"], 22_500_000, "{closed}");
        app.stop().await;
    }
}

both_backends! {
    /// k-anonymity of the platform-wide statistics (issue 13, item 16), with k = 3: a day on
    /// which fewer than three artists spent is not served, even when a restatement changes its
    /// figures; a day of three artists is.
    async fn platform_statistics_serve_only_cells_of_at_least_k_artists(db: TestDb) {
        let app = TestApp::spawn_on(db, &[("DYNAMOI_STATS_MIN_ARTISTS", "3")]).await;
        let mut campaigns = Vec::new();
        for owner in ["k-owner-1", "k-owner-2", "k-owner-3"] {
            campaigns.push(artist_with_live_campaign(&app, owner).await.1);
        }
        // 2026-09-01: all three artists; 2026-09-02: two of them; 2026-09-03: one.
        let mut batch = Vec::new();
        for (index, campaign) in campaigns.iter().enumerate() {
            batch.push(reading(campaign, "2026-09-01", 1_000_000, 10, "2026-10-01T06:00:00Z"));
            if index < 2 {
                batch.push(reading(campaign, "2026-09-02", 2_000_000, 10, "2026-10-01T06:00:00Z"));
            }
            if index == 0 {
                batch.push(reading(campaign, "2026-09-03", 7_000_000, 10, "2026-10-01T06:00:00Z"));
            }
        }
        let first = ingest(&app, batch).await;
        assert_eq!(first["recorded"], 6, "{first}");
        // A restatement of the lone artist's day changes nothing that is served.
        let restated = ingest(&app, vec![reading(&campaigns[0], "2026-09-03", 9_000_000, 10, "2026-10-02T06:00:00Z")]).await;
        assert_eq!(restated["restated"], 1, "{restated}");
        let support = app.token("support-1", Role::Support);
        let (status, stats) = app
            .send(
                &support,
                Method::GET,
                &format!(
                    "/v1/stats/platforms?from=2026-09-01&to=2026-09-30&min_position={}",
                    restated["position"].as_str().unwrap()
                ),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{stats}");
        let days: Vec<(&str, i64)> = stats["days"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| (d["day"].as_str().unwrap(), d["spend_micros"].as_i64().unwrap()))
            .collect();
        assert_eq!(days, vec![("2026-09-01", 3_000_000)], "{stats}");
        app.stop().await;
    }
}
