//! Metered billing end to end against a local stand-in of Stripe's API (real HTTP on
//! loopback): spend → usage → period statements → meter events with exact amounts; a
//! restatement after a period closed becomes exactly one adjustment; a crash between Stripe's
//! answer and our record, and a projection rebuild, send nothing twice; webhooks are verified,
//! deduplicated, and a past-due subscription holds the campaigns; card numbers are refused and
//! stored nowhere.

use api::auth::Role;
use chrono::{Duration, NaiveDate};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tests::{Backend, TestApp};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const WEBHOOK_SECRET: &str = "whsec_test_secret_for_billing";

/// Stripe's meter events endpoint: one accepted event per identifier; a repeated identifier
/// is refused as Stripe refuses it. Counts every request and keeps every accepted event.
#[derive(Clone, Default)]
struct MeterEvents {
    accepted: Arc<Mutex<BTreeMap<String, (String, i64)>>>,
    requests: Arc<Mutex<usize>>,
}

impl Respond for MeterEvents {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        *self.requests.lock().unwrap() += 1;
        let form: BTreeMap<String, String> = url::form_urlencoded::parse(&request.body).into_owned().collect();
        let identifier = form["identifier"].clone();
        assert_eq!(request.headers["idempotency-key"].to_str().unwrap(), identifier);
        let mut accepted = self.accepted.lock().unwrap();
        if accepted.contains_key(&identifier) {
            return ResponseTemplate::new(400).set_body_json(json!({"error": {
                "type": "invalid_request_error",
                "message": format!("An event already exists with identifier {identifier}.")
            }}));
        }
        let value: i64 = form["payload[value]"].parse().unwrap();
        accepted.insert(identifier.clone(), (form["payload[stripe_customer_id]"].clone(), value));
        ResponseTemplate::new(200).set_body_json(json!({
            "object": "billing.meter_event", "event_name": form["event_name"], "identifier": identifier,
            "livemode": false, "payload": {"stripe_customer_id": form["payload[stripe_customer_id]"], "value": form["payload[value]"]},
            "timestamp": form["timestamp"].parse::<i64>().unwrap()
        }))
    }
}

fn reading(campaign: &str, day: NaiveDate, spend_micros: i64, currency: &str) -> Value {
    json!({
        "campaign_id": campaign, "platform": "meta", "date": day.to_string(), "spend_micros": spend_micros,
        "currency": currency, "impressions": 1000, "clicks": 10, "fetched_at": "2026-11-01T06:00:00Z",
        "source": "meta_insights"
    })
}

fn days(first: &str, count: i64) -> impl Iterator<Item = NaiveDate> {
    let first: NaiveDate = first.parse().unwrap();
    (0..count).map(move |offset| first + Duration::days(offset))
}

async fn webhook(app: &TestApp, event: &Value, signed_at: i64) -> (StatusCode, Value) {
    let body = serde_json::to_vec(event).unwrap();
    let signature = connectors::stripe::webhook::sign_for_tests(&body, WEBHOOK_SECRET, signed_at);
    let response = app
        .client
        .post(format!("{}/v1/webhooks/stripe", app.base_url))
        .header("stripe-signature", signature)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn story(backend: Backend) {
    let stripe = MockServer::start().await;
    let meter = MeterEvents::default();
    Mock::given(method("POST"))
        .and(path("/v1/billing/meter_events"))
        .and(header("authorization", "Bearer sk_test_billing"))
        .respond_with(meter.clone())
        .mount(&stripe)
        .await;
    // Checkout's customer of payer-1, and an id Stripe does not have.
    Mock::given(method("GET"))
        .and(path("/v1/customers/cus_TEST1"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(
                json!({"id": "cus_TEST1", "object": "customer", "metadata": {"dynamoi_person": "payer-1"}}),
            ),
        )
        .mount(&stripe)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/customers/cus_MADEUP"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"error": {
            "code": "resource_missing", "param": "id", "type": "invalid_request_error",
            "message": "No such customer: 'cus_MADEUP'"}})))
        .mount(&stripe)
        .await;
    let uri = stripe.uri();
    let Some(app) = TestApp::spawn(
        backend,
        &[
            ("DYNAMOI_STRIPE_API_KEY", "sk_test_billing"),
            ("DYNAMOI_STRIPE_BASE_URL", &uri),
            ("DYNAMOI_STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET),
        ],
    )
    .await
    else {
        return;
    };
    let post = reqwest::Method::POST;
    let get = reqwest::Method::GET;
    app.sign_up("payer-1").await;
    let owner = app.token("payer-1", Role::Person);
    let service = app.token("sync", Role::Service);
    let support = app.token("support-1", Role::Support);
    // An artist with a live Meta campaign in USD and one in EUR.
    app.send(
        &owner,
        post.clone(),
        "/v1/connections",
        Some(json!({"platform": "meta", "page_id": "77", "access_token": "EAA-billing"})),
    )
    .await;
    let (_, artist) = app
        .send(&owner, post.clone(), "/v1/artists", Some(json!({"name": "Band"})))
        .await;
    let artist_id = artist["artist_id"].as_str().unwrap().to_string();
    app.send(
        &owner,
        get.clone(),
        &format!(
            "/v1/artists/{artist_id}?min_position={}",
            artist["position"].as_str().unwrap()
        ),
        None,
    )
    .await;
    let mut campaigns = Vec::new();
    for currency in ["USD", "EUR"] {
        let (status, drafted) = app.send(&owner,
            post.clone(),
            &format!("/v1/artists/{artist_id}/campaigns"),
            Some(json!({
                "platform": "meta", "objective": "streams", "budget": {"kind": "daily", "amount_micros": 200_000_000},
                "currency": currency, "schedule": {"start": "2026-08-01"}, "countries": ["PK"],
                "creatives": [{"kind": "facebook_post", "post_id": "77_1"}]
            })),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{drafted}");
        let id = drafted["campaign_id"].as_str().unwrap().to_string();
        let (status, body) = app
            .send(
                &owner,
                post.clone(),
                &format!("/v1/campaigns/{id}/launch"),
                Some(json!({})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        campaigns.push(id);
    }
    let (usd, eur) = (campaigns[0].clone(), campaigns[1].clone());

    // A full card number, anywhere in a billing request, is refused before anything happens.
    for (route, body) in [
        (
            "/v1/billing/accounts".to_string(),
            json!({"stripe_customer_id": "cus_TEST1", "plan": {"note": "card 4242 4242 4242 4242"}}),
        ),
        (
            "/v1/billing/accounts/cus_TEST1/payment-method".to_string(),
            json!({"brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2030, "billing_address": {"line2": "4000-0566-5566-5556"}}),
        ),
    ] {
        let (status, refused) = app.send(&owner, post.clone(), &route, Some(body)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
        assert!(
            refused["detail"]
                .as_str()
                .unwrap()
                .starts_with("the request holds a full card number"),
            "{refused}"
        );
        assert!(!refused.to_string().contains("4242 4242"), "{refused}");
    }
    let (status, refused) = webhook(&app, &json!({"id": "evt_card", "type": "charge.succeeded", "data": {"object": {"customer": "cus_TEST1", "description": "5555555555554444"}}}), app.now().timestamp()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");

    // The account: 500 USD of spend included each month, 2.5 % beyond, months in UTC.
    let plan = json!({"monthly_fee_micros": 29_000_000, "included_spend_micros": 500_000_000, "fee_basis_points": 250,
                      "currency": "USD", "time_zone": "Etc/UTC"});
    let (status, opened) = app
        .send(
            &owner,
            post.clone(),
            "/v1/billing/accounts",
            Some(json!({"stripe_customer_id": "cus_TEST1", "plan": plan})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{opened}");
    let (status, body) = app
        .send(
            &owner,
            post.clone(),
            "/v1/billing/accounts/cus_TEST1/artists",
            Some(json!({"artist_id": artist_id})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // No existence oracle: another person opening payer-1's customer gets exactly the answer of
    // a customer Stripe does not have, and nothing is recorded; payer-1 again is a conflict.
    app.sign_up("stranger").await;
    let stranger = app.token("stranger", Role::Person);
    let before = app.event_count().await;
    let mut refusals = Vec::new();
    for customer in ["cus_TEST1", "cus_MADEUP"] {
        let (status, mut refused) = app
            .send(
                &stranger,
                post.clone(),
                "/v1/billing/accounts",
                Some(json!({"stripe_customer_id": customer, "plan": plan})),
            )
            .await;
        refused.as_object_mut().map(|o| o.remove("request_id"));
        refusals.push((status, refused));
    }
    assert_eq!(
        refusals[0], refusals[1],
        "someone else's customer answers as a missing one"
    );
    assert_eq!(refusals[0].0, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", refusals[0]);
    assert_eq!(app.event_count().await, before);
    let (status, again) = app
        .send(
            &owner,
            post.clone(),
            "/v1/billing/accounts",
            Some(json!({"stripe_customer_id": "cus_TEST1", "plan": plan})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");
    let (status, _) = app
        .send(&stranger, get.clone(), "/v1/billing/accounts/cus_TEST1/usage", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // August 31 × 30 USD, September 30 × 40 USD, and 100 EUR in September (reported, not billed).
    let mut batch: Vec<Value> = days("2026-08-01", 31)
        .map(|d| reading(&usd, d, 30_000_000, "USD"))
        .collect();
    batch.extend(days("2026-09-01", 30).map(|d| reading(&usd, d, 40_000_000, "USD")));
    batch.push(reading(&eur, "2026-09-15".parse().unwrap(), 100_000_000, "EUR"));
    let (status, ingested) = app
        .send(&service, post.clone(), "/v1/ingest/spend", Some(Value::Array(batch)))
        .await;
    assert_eq!(status, StatusCode::OK, "{ingested}");
    assert_eq!(ingested["recorded"], 62, "{ingested}");
    let position = ingested["position"].as_str().unwrap().to_string();

    // A crash after Stripe accepted August's meter event but before we recorded it: Stripe
    // already holds the identifier when our reporter (re)sends it.
    meter
        .accepted
        .lock()
        .unwrap()
        .insert("dynamoi-cus_TEST1-2026-08".into(), ("cus_TEST1".into(), 1075));
    let close = async |period: &str, min_position: &str| {
        app.send(
            &support,
            reqwest::Method::POST,
            &format!("/v1/billing/accounts/cus_TEST1/periods/{period}/close"),
            Some(json!({"min_position": min_position})),
        )
        .await
    };
    let (status, august) = close("2026-08", &position).await;
    assert_eq!(status, StatusCode::OK, "{august}");
    // 930 spent − 500 included = 430 × 2.5 % = 10.75 USD.
    assert_eq!(august["statement"]["fee_micros"], 10_750_000, "{august}");
    assert_eq!(august["statement"]["reported_minor"], 1075);
    let (status, september) = close("2026-09", &position).await;
    assert_eq!(status, StatusCode::OK, "{september}");
    let statement = &september["statement"];
    assert_eq!(
        (&statement["spend_micros"], &statement["fee_micros"]),
        (&json!(1_200_000_000), &json!(17_500_000)),
        "{statement}"
    );
    assert_eq!(
        statement["foreign_spend"],
        json!([{"currency": "EUR", "spend_micros": 100_000_000}])
    );
    assert_eq!(statement["adjustments"], json!([]));
    let (status, again) = close("2026-09", &position).await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");
    // The month the service's clock stands in (tests::test_now()) has not ended.
    let this_month = app.now().format("%Y-%m").to_string();
    let (status, early) = close(&this_month, &position).await;
    assert_eq!(status, StatusCode::CONFLICT, "{early}");
    assert_eq!(early["detail"], format!("{this_month} has not ended yet in Etc/UTC"));

    let reported = async |count: usize| {
        tests::wait_until(std::time::Duration::from_secs(15), || async {
            let (_, usage) = app
                .send(
                    &owner,
                    reqwest::Method::GET,
                    "/v1/billing/accounts/cus_TEST1/usage",
                    None,
                )
                .await;
            usage["closed_periods"]
                .as_array()
                .is_some_and(|periods| periods.iter().filter(|p| !p["reported"].is_null()).count() == count)
        })
        .await
    };
    assert!(reported(2).await, "both periods reported");
    {
        let accepted = meter.accepted.lock().unwrap();
        assert_eq!(accepted.len(), 2, "{accepted:?}");
        assert_eq!(accepted["dynamoi-cus_TEST1-2026-09"], ("cus_TEST1".to_string(), 1750));
    }

    // September 30 is restated (+100 USD) after September closed; October spends 500 USD.
    let mut batch = vec![reading(&usd, "2026-09-30".parse().unwrap(), 140_000_000, "USD")];
    batch.extend(days("2026-10-01", 10).map(|d| reading(&usd, d, 50_000_000, "USD")));
    let (_, ingested) = app
        .send(&service, post.clone(), "/v1/ingest/spend", Some(Value::Array(batch)))
        .await;
    assert_eq!(
        (&ingested["restated"], &ingested["recorded"]),
        (&json!(1), &json!(10)),
        "{ingested}"
    );
    let (status, october) = close("2026-10", ingested["position"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{october}");
    let statement = &october["statement"];
    // October is within the included spend; September's fee rises from 17.50 to 20.00.
    assert_eq!(statement["fee_micros"], 0);
    let usd_ledger = format!("{usd}.meta.2026-09-30");
    assert_eq!(
        statement["adjustments"],
        json!([{"period": "2026-09", "spend_delta_micros": 100_000_000, "fee_delta_micros": 2_500_000, "readings": [usd_ledger]}])
    );
    assert_eq!(statement["reported_minor"], 250);
    assert!(reported(3).await, "October reported");
    assert_eq!(meter.accepted.lock().unwrap()["dynamoi-cus_TEST1-2026-10"].1, 250);
    let requests = *meter.requests.lock().unwrap();
    assert_eq!(
        requests, 3,
        "August's resend was refused as a duplicate; nothing else repeated"
    );

    // Rebuilding the billing read model sends nothing again: the meter reports follow the feed
    // with their own checkpoint, and each period's stream says it was reported.
    let engine = projections::Engine::new(app.db.log(), projections::all(), projections::EngineConfig::default());
    engine.rebuild("billing", |_| {}).await.unwrap();
    for _ in 0..3 {
        let (_, handled) = app::workflows::pass(&app.app, &app::billing::MeterReports, &app.app.config.workflows)
            .await
            .unwrap();
        assert_eq!(handled, 0, "nothing is due");
    }
    assert_eq!(*meter.requests.lock().unwrap(), 3);
    assert_eq!(meter.accepted.lock().unwrap().len(), 3);

    // Reconciliation agrees for September (its restatement is adjusted in October).
    let (_, invoices) = app
        .send(&owner, get.clone(), "/v1/billing/accounts/cus_TEST1/invoices", None)
        .await;
    assert_eq!(invoices["history"], json!([]));

    // Webhooks: a failed payment holds the campaigns; paying again releases them.
    let now = app.now().timestamp();
    let failed = json!({"id": "evt_fail_1", "type": "invoice.payment_failed", "created": now,
                        "data": {"object": {"id": "in_1", "object": "invoice", "customer": "cus_TEST1", "amount_due": 2900,
                                            "currency": "usd", "status": "open",
                                            "metadata": {"meta_campaign": "23851234567890123", "ad_account": "120210000000001"}}}});
    let (status, recorded) = webhook(&app, &failed, now).await;
    assert_eq!(status, StatusCode::OK, "{recorded}");
    assert_eq!(recorded["subscription"], "past_due", "{recorded}");
    let (status, replay) = webhook(&app, &failed, now).await;
    assert_eq!(status, StatusCode::CONFLICT, "a replayed delivery is refused: {replay}");
    let (status, retried) = webhook(&app, &failed, now + 60).await;
    assert_eq!(
        (status, &retried["recorded"]),
        (StatusCode::OK, &json!(false)),
        "{retried}"
    );
    let (status, stale) = webhook(&app, &json!({"id": "evt_old", "type": "invoice.paid"}), now - 301).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{stale}");
    let (status, _) = app
        .client
        .post(format!("{}/v1/webhooks/stripe", app.base_url))
        .header("stripe-signature", format!("t={now},v1={}", "0".repeat(64)))
        .body("{}")
        .send()
        .await
        .map(|r| (r.status(), ()))
        .unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // The `subscription_holds` workflow pauses both campaigns from the recorded fact.
    let stages = async || {
        let (_, listed) = app
            .send(&owner, get.clone(), &format!("/v1/artists/{artist_id}/campaigns"), None)
            .await;
        listed["campaigns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["stage"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert!(
        tests::wait_until(std::time::Duration::from_secs(15), || async {
            stages().await == ["subscription_paused", "subscription_paused"]
        })
        .await,
        "{:?}",
        stages().await
    );
    let paid = json!({"id": "evt_paid_1", "type": "invoice.paid", "created": now + 5,
                      "data": {"object": {"id": "in_1", "object": "invoice", "customer": "cus_TEST1", "amount_paid": 2900,
                                          "currency": "usd", "status": "paid"}}});
    let (_, recorded) = webhook(&app, &paid, now + 5).await;
    assert_eq!(recorded["subscription"], "active", "{recorded}");
    assert!(
        tests::wait_until(std::time::Duration::from_secs(15), || async {
            stages().await == ["live", "live"]
        })
        .await,
        "{:?}",
        stages().await
    );
    let (_, account) = app
        .send(
            &owner,
            get.clone(),
            &format!(
                "/v1/billing/accounts/cus_TEST1?min_position={}",
                recorded["position"].as_str().unwrap()
            ),
            None,
        )
        .await;
    assert_eq!(account["subscription"], "active", "{account}");
    let (_, invoices) = app
        .send(&owner, get.clone(), "/v1/billing/accounts/cus_TEST1/invoices", None)
        .await;
    let kinds: Vec<&str> = invoices["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["invoice.payment_failed", "invoice.paid"], "{invoices}");

    // The card numbers sent above are nowhere in the database.
    for digits in [
        "4242 4242 4242 4242",
        "4242424242424242",
        "4000-0566-5566-5556",
        "5555555555554444",
    ] {
        assert_eq!(
            tests::cells_holding(&app.db.db, digits).await,
            Vec::<String>::new(),
            "{digits}"
        );
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spend_becomes_usage_statements_and_exactly_one_meter_event_each_on_sqlite() {
    story(Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spend_becomes_usage_statements_and_exactly_one_meter_event_each_on_postgres() {
    story(Backend::Postgres).await
}

/// The daily job closes each account's last ended month once.
async fn daily_close(db: tests::TestDb) {
    use domain::billing::{BillingAccount, BillingCommand, Plan};
    use domain::campaign::{Campaign, CampaignCommand};
    let app = TestApp::spawn_on(db, &[]).await;
    let log = &app.app.log;
    let meta = eventlog::EventMetadata::system();
    let now: chrono::DateTime<chrono::Utc> = "2026-11-02T08:00:00Z".parse().unwrap();
    let plan = Plan {
        monthly_fee_micros: 0,
        included_spend_micros: 0,
        fee_basis_points: 1000,
        currency: "USD".into(),
        time_zone: "Asia/Karachi".into(),
    };
    let open = BillingCommand::Open {
        owner: "p1".into(),
        stripe_customer_id: "cus_DAILY".into(),
        plan,
    };
    log.execute::<BillingAccount>("cus_DAILY", open, &meta).await.unwrap();
    log.execute::<BillingAccount>(
        "cus_DAILY",
        BillingCommand::AttachArtist { artist_id: "a1".into() },
        &meta,
    )
    .await
    .unwrap();
    let draft = tests::meta_campaign_draft("a1");
    log.execute::<Campaign>("c1", CampaignCommand::Draft(draft), &meta)
        .await
        .unwrap();
    let reading: app::ingest::IngestReading =
        serde_json::from_value(reading("c1", "2026-10-31".parse().unwrap(), 12_345_678, "USD")).unwrap();
    app::ingest::ingest(log, &[Ok(reading)], &meta).await.unwrap();
    let usage = || projections::read_models::billing::usage(log.db(), "cus_DAILY", None);
    let closed = || projections::read_models::billing::closed_periods(log.db(), "cus_DAILY");
    // On PostgreSQL the feed shows a commit once no older transaction in the cluster is open.
    let projected = tests::wait_until(std::time::Duration::from_secs(20), || async {
        !usage().await.unwrap().is_empty()
    })
    .await;
    assert!(projected);
    assert_eq!(app::billing::close_ended_periods(&app.app, now).await.unwrap(), 1);
    // The close is a new commit: wait until the billing read model shows it, as above.
    let closed_visible = tests::wait_until(std::time::Duration::from_secs(20), || async {
        !closed().await.unwrap().is_empty()
    })
    .await;
    assert!(closed_visible);
    assert_eq!(
        app::billing::close_ended_periods(&app.app, now).await.unwrap(),
        0,
        "closed once"
    );
    let closed = closed().await.unwrap();
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0].period, "2026-10");
    // 10 % of 12.345678 = 1.2345678 → 1.234568 (half up).
    assert_eq!(closed[0].statement.fee_micros, 1_234_568);
    app.stop().await;
}

tests::both_backends!(
    async fn the_daily_job_closes_each_accounts_last_month_once(db: TestDb) {
        daily_close(db).await
    }
);

/// The same month-end story at an instant the test sets: a month's spend closes into its
/// statement only once the month has ended in the account's time zone, and the daily job
/// then has nothing left to close. Months are taken relative to `now`.
async fn month_end_at(app: &TestApp, now: chrono::DateTime<chrono::Utc>, account: &str) {
    use chrono::Datelike;
    use domain::billing::{BillingAccount, BillingCommand, Plan};
    use domain::campaign::{
        AdPlatform, Budget, Campaign, CampaignCommand, CampaignDraft, Creative, Objective, Schedule,
    };
    app.clock.set(now);
    let log = &app.app.log;
    let meta = eventlog::EventMetadata::system();
    let this_month = now.date_naive().with_day(1).unwrap();
    let last_month = this_month - chrono::Months::new(1);
    let period = |first: NaiveDate| format!("{:04}-{:02}", first.year(), first.month());
    let artist = format!("artist-{account}");
    let campaign = format!("camp-{account}");
    let plan = Plan {
        monthly_fee_micros: 0,
        included_spend_micros: 0,
        fee_basis_points: 1000,
        currency: "USD".into(),
        time_zone: "Asia/Karachi".into(),
    };
    let open = BillingCommand::Open {
        owner: "payer-y".into(),
        stripe_customer_id: account.into(),
        plan,
    };
    log.execute::<BillingAccount>(account, open, &meta).await.unwrap();
    let attach = BillingCommand::AttachArtist {
        artist_id: artist.clone(),
    };
    log.execute::<BillingAccount>(account, attach, &meta).await.unwrap();
    let draft = CampaignDraft {
        artist_id: artist.clone(),
        platform: AdPlatform::Meta,
        objective: Objective::Streams,
        budget: Budget::Daily {
            amount_micros: 50_000_000,
        },
        currency: "USD".into(),
        schedule: Schedule {
            start: last_month,
            end: None,
        },
        countries: vec!["PK".into()],
        creatives: vec![Creative::FacebookPost { post_id: "1_2".into() }],
    };
    log.execute::<Campaign>(&campaign, CampaignCommand::Draft(draft), &meta)
        .await
        .unwrap();
    // 10 USD a day from the first of last month to yesterday.
    let days = (now.date_naive() - last_month).num_days();
    let readings: Vec<Result<app::ingest::IngestReading, String>> = (0..days)
        .map(|offset| {
            let mut value = reading(&campaign, last_month + Duration::days(offset), 10_000_000, "USD");
            value["fetched_at"] = json!(now.to_rfc3339());
            Ok(serde_json::from_value(value).unwrap())
        })
        .collect();
    let ingested = app::ingest::ingest(log, &readings, &meta).await.unwrap();
    let position = ingested.position.unwrap().to_string();
    let support = app.token("support-y", Role::Support);
    let close = async |period: &str| {
        app.send(
            &support,
            reqwest::Method::POST,
            &format!("/v1/billing/accounts/{account}/periods/{period}/close"),
            Some(json!({"min_position": position})),
        )
        .await
    };
    let (status, closed) = close(&period(last_month)).await;
    assert_eq!(status, StatusCode::OK, "{closed}");
    let days_last_month = (this_month - last_month).num_days();
    assert_eq!(
        closed["statement"]["spend_micros"],
        days_last_month * 10_000_000,
        "{closed}"
    );
    assert_eq!(
        closed["statement"]["fee_micros"],
        days_last_month * 1_000_000,
        "{closed}"
    );
    let (status, early) = close(&period(this_month)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{early}");
    assert_eq!(
        early["detail"],
        format!("{} has not ended yet in Asia/Karachi", period(this_month))
    );
    let visible = tests::wait_until(std::time::Duration::from_secs(20), || async {
        projections::read_models::billing::closed_periods(log.db(), account)
            .await
            .unwrap()
            .len()
            == 1
    })
    .await;
    assert!(visible);
    // The daily job (which closes every account's last ended month) finds this one closed.
    app::billing::close_ended_periods(&app.app, now).await.unwrap();
    let periods = log
        .load("billing_period", &format!("{account}.{}", period(last_month)))
        .await
        .unwrap();
    assert_eq!(periods.len(), 1, "closed once");
    assert!(log
        .load("billing_period", &format!("{account}.{}", period(this_month)))
        .await
        .unwrap()
        .is_empty());
}

tests::both_backends!(
    async fn the_billing_close_behaves_the_same_at_two_instants_a_year_apart(db: TestDb) {
        let app = TestApp::spawn_on(db, &[]).await;
        month_end_at(&app, "2026-11-15T12:00:00Z".parse().unwrap(), "cus_YEAR1").await;
        month_end_at(&app, "2027-11-15T12:00:00Z".parse().unwrap(), "cus_YEAR2").await;
        app.stop().await;
    }
);
