//! The disclosure log (P17) end to end against local stand-ins of the processors (wiremock,
//! real HTTP): every outbound call that carries a person's data records, under that person,
//! one `DisclosureRecorded` event naming the processor, the data categories, the purpose and a
//! non-personal reference: the spend sync (Meta insights, Google's token refresh, Google Ads
//! searchStream) under the connection's owner, the asset listing under the caller, the
//! invitation email under the inviter, the Stripe meter event under the billing account's
//! owner. `app::disclosure::list` gives the same disclosures for the access export.

use api::auth::Role;
use chrono::{Duration, NaiveDate};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tests::{wait_until, Backend, TestApp, TestDb};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// The payloads of `person`'s disclosure log, oldest first.
async fn disclosures(log: &eventlog::EventLog, person: &str) -> Vec<Value> {
    log.load("disclosure_log", person)
        .await
        .unwrap()
        .into_iter()
        .map(|event| {
            assert_eq!(event.event_type, "DisclosureRecorded");
            assert_eq!(event.event_version, "1");
            event.payload["DisclosureRecorded"].clone()
        })
        .collect()
}

fn disclosure(processor: &str, categories: &[&str], purpose: &str, reference: &str) -> Value {
    json!({"processor": processor, "categories": categories, "purpose": purpose, "reference": reference})
}

/// `app::disclosure::list` answers the same disclosures as the stream, with ids and times.
async fn assert_listed(log: &eventlog::EventLog, person: &str, expected: &[Value]) {
    let stored = log.load("disclosure_log", person).await.unwrap();
    let listed = app::disclosure::list(log, person).await.unwrap();
    assert_eq!(listed.len(), expected.len(), "{listed:?}");
    for ((entry, event), want) in listed.iter().zip(&stored).zip(expected) {
        assert_eq!(entry["event_id"], event.event_id.to_string());
        assert_eq!(entry["recorded_at"], json!(event.recorded_at));
        for field in ["processor", "categories", "purpose", "reference"] {
            assert_eq!(entry[field], want[field], "{field} of {entry}");
        }
    }
}

/// An artist of `owner` with one launched and linked campaign per (draft, link) body; their ids.
async fn linked_campaigns(app: &TestApp, owner: &str, campaigns: &[(Value, Value)]) -> Vec<String> {
    let post = reqwest::Method::POST;
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
    for (draft, link) in campaigns {
        let (status, drafted) = app
            .send(
                owner,
                post.clone(),
                &format!("/v1/artists/{artist_id}/campaigns"),
                Some(draft.clone()),
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
        let (status, body) = app
            .send(
                owner,
                post.clone(),
                &format!("/v1/campaigns/{id}/link"),
                Some(link.clone()),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        ids.push(id);
    }
    ids
}

/// A spend sync over a Meta and a Google Ads account of one person (whose id has a dot), then
/// the person's Meta assets: one disclosure per outbound call, in call order, under them.
async fn platform_calls(backend: Backend) {
    let until: NaiveDate = "2026-11-28".parse().unwrap();
    let meta = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v25.0/act_1001/insights"))
        .and(header("authorization", "Bearer meta-token-SECRET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": [{
            "campaign_id": "111", "date_start": until.to_string(), "date_stop": until.to_string(),
            "spend": "12.34", "impressions": "1000", "clicks": "10", "account_currency": "USD"
        }]})))
        .mount(&meta)
        .await;
    Mock::given(method("GET"))
        .and(path("/v25.0/5550001/posts"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"data": [{"id": "5550001_1", "message": "New single"}]})),
        )
        .mount(&meta)
        .await;
    Mock::given(method("GET"))
        .and(path("/v25.0/1789/media"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": [{"id": "m1", "media_type": "IMAGE"}]})))
        .mount(&meta)
        .await;
    let google = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "ya29.access-SECRET", "expires_in": 3599, "token_type": "Bearer"
        })))
        .mount(&google)
        .await;
    Mock::given(method("POST"))
        .and(path("/v26/customers/1234567890/googleAds:searchStream"))
        .and(header("authorization", "Bearer ya29.access-SECRET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([{"results": [{
            "campaign": {"resourceName": "customers/1234567890/campaigns/777", "id": "777"},
            "segments": {"date": until.to_string()},
            "customer": {"resourceName": "customers/1234567890", "currencyCode": "USD"},
            "metrics": {"costMicros": "1250000", "impressions": "1000", "clicks": "12"}
        }]}])))
        .mount(&google)
        .await;
    let (meta_uri, google_uri) = (meta.uri(), google.uri());
    let Some(app) = TestApp::spawn(
        backend,
        &[
            ("DYNAMOI_META_BASE_URL", &meta_uri),
            ("DYNAMOI_GOOGLE_CLIENT_ID", "client-id"),
            ("DYNAMOI_GOOGLE_CLIENT_SECRET", "client-SECRET"),
            ("DYNAMOI_GOOGLE_OAUTH_BASE_URL", &google_uri),
            ("DYNAMOI_GOOGLE_ADS_DEVELOPER_TOKEN", "dev-token-SECRET"),
            ("DYNAMOI_GOOGLE_ADS_BASE_URL", &google_uri),
        ],
    )
    .await
    else {
        return;
    };
    let person = "first.last";
    app.sign_up(person).await;
    let owner = app.token(person, Role::Person);
    let post = reqwest::Method::POST;
    for connection in [
        json!({"platform": "meta", "page_id": "5550001", "instagram_actor_id": "1789", "access_token": "meta-token-SECRET"}),
        json!({"platform": "google_ads", "customer_id": "123-456-7890", "refresh_token": "1//refresh-SECRET"}),
    ] {
        let (status, body) = app
            .send(&owner, post.clone(), "/v1/connections", Some(connection))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let start = (until - Duration::days(60)).to_string();
    let ids = linked_campaigns(
        &app,
        &owner,
        &[
            (
                json!({"platform": "meta", "objective": "streams", "budget": {"kind": "daily", "amount_micros": 50_000_000},
                       "currency": "USD", "schedule": {"start": start}, "countries": ["PK"],
                       "creatives": [{"kind": "facebook_post", "post_id": "5550001_1"}]}),
                json!({"account_id": "act_1001", "platform_campaign_id": "111"}),
            ),
            (
                json!({"platform": "google_ads", "objective": "video_views", "budget": {"kind": "lifetime", "amount_micros": 900_000_000},
                       "currency": "USD", "schedule": {"start": start}, "countries": ["GB"],
                       "creatives": [{"kind": "youtube_video", "video_id": "dQw4w9WgXcQ"}]}),
                json!({"platform_campaign_id": "777"}),
            ),
        ],
    )
    .await;
    let log = app.db.log();
    assert!(
        disclosures(&log, person).await.is_empty(),
        "connecting and linking send nothing"
    );

    let service = app.token("scheduler", Role::Service);
    let (status, report) = app
        .send(
            &service,
            post.clone(),
            "/v1/spend/sync",
            Some(json!({"campaigns": ids, "until": until.to_string()})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(
        (&report["recorded"], &report["failures"]),
        (&json!(2), &json!([])),
        "{report}"
    );
    // Accounts are read in (connection, account) order: Google Ads before Meta.
    let google_ads = "first.last.google_ads";
    let sync = vec![
        disclosure("google", &["platform_token"], "token_refresh", google_ads),
        disclosure(
            "google_ads",
            &["platform_token", "ad_account_ids"],
            "spend_sync",
            google_ads,
        ),
        disclosure(
            "meta",
            &["platform_token", "ad_account_ids"],
            "spend_sync",
            "first.last.meta",
        ),
    ];
    assert_eq!(disclosures(&log, person).await, sync);
    let calls = meta.received_requests().await.unwrap().len() + google.received_requests().await.unwrap().len();
    assert_eq!(calls, sync.len(), "one disclosure per outbound call");

    // The asset listing: the page's posts and the Instagram media, two calls, two disclosures.
    let (status, assets) = app
        .send(&owner, reqwest::Method::GET, "/v1/connections/meta/assets", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{assets}");
    let listing = disclosure(
        "meta",
        &["platform_token", "platform_profile_ids"],
        "asset_listing",
        "first.last.meta",
    );
    let mut all = sync.clone();
    all.extend([listing.clone(), listing]);
    assert_eq!(disclosures(&log, person).await, all);
    assert_listed(&log, person, &all).await;
    let events = log.load("disclosure_log", person).await.unwrap();
    assert_eq!(events[0].metadata.actor, "service:scheduler");
    assert_eq!(events[3].metadata.actor, format!("person:{person}"));
    // Nobody else's log holds anything, and no disclosure holds a token.
    assert!(disclosures(&log, "first").await.is_empty());
    assert!(disclosures(&log, "scheduler").await.is_empty());
    for secret in ["meta-token-SECRET", "refresh-SECRET", "ya29"] {
        assert!(!format!("{all:?}").contains(secret));
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_platform_call_of_the_sync_and_the_asset_listing_is_disclosed_on_sqlite() {
    platform_calls(Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_platform_call_of_the_sync_and_the_asset_listing_is_disclosed_on_postgres() {
    platform_calls(Backend::Postgres).await
}

const INVITEE: &str = "invitee.disclosed@example.test";

/// The invitation email is disclosed once, under the inviter, without the address.
async fn invitation(backend: Backend) {
    let resend = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/emails"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "email-1"})))
        .mount(&resend)
        .await;
    let uri = resend.uri();
    let Some(app) = TestApp::spawn(
        backend,
        &[
            ("DYNAMOI_RESEND_API_KEY", "re_test_key"),
            ("DYNAMOI_RESEND_BASE_URL", &uri),
        ],
    )
    .await
    else {
        return;
    };
    app.sign_up("inviter-1").await;
    let owner = app.token("inviter-1", Role::Person);
    let post = reqwest::Method::POST;
    let (_, created) = app
        .send(&owner, post.clone(), "/v1/artists", Some(json!({"name": "Band"})))
        .await;
    let artist = created["artist_id"].as_str().unwrap().to_string();
    let (status, invited) = app
        .send(
            &owner,
            post,
            &format!(
                "/v1/artists/{artist}/invitations?min_position={}",
                created["position"].as_str().unwrap()
            ),
            Some(json!({"email": INVITEE, "role": "manager"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{invited}");
    let invitation_id = invited["invitation_id"].as_str().unwrap().to_string();
    let log = app.db.log();
    let sent = wait_until(std::time::Duration::from_secs(20), || async {
        let events = log.load("artist", &artist).await.unwrap();
        events.iter().any(|e| e.event_type == "InvitationEmailSent")
    })
    .await;
    assert!(sent, "the mailer records the delivery");
    assert_eq!(resend.received_requests().await.unwrap().len(), 1);
    let expected = vec![disclosure(
        "resend",
        &["email_address", "artist_name"],
        "invitation_email",
        &invitation_id,
    )];
    assert_eq!(disclosures(&log, "inviter-1").await, expected);
    assert_listed(&log, "inviter-1", &expected).await;
    let events = log.load("disclosure_log", "inviter-1").await.unwrap();
    assert_eq!(events[0].metadata.actor, "service:invitation_mailer");
    let invited_event = log.load("artist", &artist).await.unwrap();
    let invited_event = invited_event.iter().find(|e| e.event_type == "MemberInvited").unwrap();
    assert_eq!(
        events[0].metadata.causation_id,
        Some(invited_event.event_id.to_string())
    );
    assert!(!events[0].payload.to_string().contains("example.test"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invitation_email_is_disclosed_under_the_inviter_on_sqlite() {
    invitation(Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invitation_email_is_disclosed_under_the_inviter_on_postgres() {
    invitation(Backend::Postgres).await
}

/// The meter reporter discloses each meter event it sends, under the account's owner, once.
async fn meter_event(db: TestDb) {
    use domain::billing::{BillingAccount, BillingCommand, Plan};
    use domain::campaign::{Campaign, CampaignCommand};
    let stripe_stand_in = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/billing/meter_events"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "object": "billing.meter_event", "event_name": "dynamoi_fee", "identifier": "dynamoi-cus_DISCLOSE-2026-10",
            "livemode": false, "payload": {"stripe_customer_id": "cus_DISCLOSE", "value": "124"}, "timestamp": 1_793_000_000
        })))
        .mount(&stripe_stand_in)
        .await;
    let uri = stripe_stand_in.uri();
    let app = TestApp::spawn_on(
        db,
        &[
            ("DYNAMOI_STRIPE_API_KEY", "sk_test_disclose"),
            ("DYNAMOI_STRIPE_BASE_URL", &uri),
            ("DYNAMOI_STRIPE_METER_EVENT", "dynamoi_fee"),
        ],
    )
    .await;
    let log = app.app.log.clone();
    let meta = eventlog::EventMetadata::system();
    let plan = Plan {
        monthly_fee_micros: 0,
        included_spend_micros: 0,
        fee_basis_points: 1000,
        currency: "USD".into(),
        time_zone: "Etc/UTC".into(),
    };
    let open = BillingCommand::Open {
        owner: "payer.one".into(),
        stripe_customer_id: "cus_DISCLOSE".into(),
        plan,
    };
    log.execute::<BillingAccount>("cus_DISCLOSE", open, &meta)
        .await
        .unwrap();
    log.execute::<BillingAccount>(
        "cus_DISCLOSE",
        BillingCommand::AttachArtist { artist_id: "a1".into() },
        &meta,
    )
    .await
    .unwrap();
    let draft = tests::meta_campaign_draft("a1");
    log.execute::<Campaign>("c1", CampaignCommand::Draft(draft), &meta)
        .await
        .unwrap();
    let reading: app::ingest::IngestReading = serde_json::from_value(json!({
        "campaign_id": "c1", "platform": "meta", "date": "2026-10-31", "spend_micros": 12_345_678,
        "currency": "USD", "impressions": 1000, "clicks": 10, "fetched_at": "2026-11-01T06:00:00Z",
        "source": "meta_insights"
    }))
    .unwrap();
    app::ingest::ingest(&log, &[Ok(reading)], &meta).await.unwrap();
    // On PostgreSQL the feed shows a commit once no older transaction in the cluster is open.
    let projected = wait_until(std::time::Duration::from_secs(20), || async {
        !projections::read_models::billing::usage(log.db(), "cus_DISCLOSE", None)
            .await
            .unwrap()
            .is_empty()
    })
    .await;
    assert!(projected);
    assert!(disclosures(&log, "payer.one").await.is_empty(), "nothing sent yet");
    let now: chrono::DateTime<chrono::Utc> = "2026-11-02T08:00:00Z".parse().unwrap();
    assert_eq!(app::billing::close_ended_periods(&app.app, now).await.unwrap(), 1);
    // The `meter_reports` workflow sends the closed period, once.
    let expected = vec![disclosure(
        "stripe",
        &["billing_identifiers", "spend_figures"],
        "metered_billing",
        "dynamoi-cus_DISCLOSE-2026-10",
    )];
    let reported = wait_until(std::time::Duration::from_secs(20), || async {
        log.load("billing_period", "cus_DISCLOSE.2026-10").await.unwrap().len() == 2
    })
    .await;
    assert!(reported, "the period is recorded as reported");
    assert_eq!(disclosures(&log, "payer.one").await, expected);
    // Another pass sends nothing, and so discloses nothing.
    let (_, handled) = app::workflows::pass(&app.app, &app::billing::MeterReports, &app.app.config.workflows)
        .await
        .unwrap();
    assert_eq!(handled, 0);
    assert_eq!(stripe_stand_in.received_requests().await.unwrap().len(), 1);
    assert_eq!(disclosures(&log, "payer.one").await, expected);
    assert_listed(&log, "payer.one", &expected).await;
    let events = log.load("disclosure_log", "payer.one").await.unwrap();
    assert_eq!(events[0].metadata.actor, "system:meter-reporter");
    app.stop().await;
}

tests::both_backends!(
    async fn a_meter_event_is_disclosed_under_the_billing_accounts_owner(db: TestDb) {
        meter_event(db).await
    }
);
