//! The durable workflows end to end (issue 12): a reaction that spans commands or calls a
//! processor survives a crash between its steps and never repeats a completed effect, and one
//! item that keeps failing is parked, visible and retriable without holding any other up.
//!
//! - A process records a Stripe "payment failed" fact and dies before its workflows run; the
//!   next process pauses the account's campaigns, each exactly once, and handling the item
//!   again changes nothing.
//! - Two billing accounts close a month; Stripe refuses one customer's meter events. The other
//!   is reported at once; the refused one is retried with backoff and parked after
//!   `DYNAMOI_WORKFLOW_MAX_ATTEMPTS` attempts, with one disclosure per actual call (bounded),
//!   visible to support over the API, and reported after support retries it.

use api::auth::Role;
use domain::billing::{BillingAccount, BillingCommand, Plan};
use domain::campaign::{Campaign, CampaignCommand, CampaignDraft};
use eventlog::EventMetadata;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tests::{both_backends, wait_until, TestApp, TestDb};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const WEBHOOK_SECRET: &str = "whsec_test_secret_for_workflows";

fn plan() -> Plan {
    Plan {
        monthly_fee_micros: 0,
        included_spend_micros: 0,
        fee_basis_points: 1000,
        currency: "USD".into(),
        time_zone: "Etc/UTC".into(),
    }
}

fn draft(artist: &str) -> CampaignDraft {
    tests::meta_campaign_draft(artist)
}

/// A billing account owned by `owner` paying for `artist`, with `campaigns` live campaigns.
async fn account(app: &app::App, account: &str, owner: &str, artist: &str, campaigns: &[&str]) {
    let meta = EventMetadata::system();
    let log = &app.log;
    let open = BillingCommand::Open {
        owner: owner.into(),
        stripe_customer_id: account.into(),
        plan: plan(),
    };
    log.execute::<BillingAccount>(account, open, &meta).await.unwrap();
    let attach = BillingCommand::AttachArtist {
        artist_id: artist.into(),
    };
    log.execute::<BillingAccount>(account, attach, &meta).await.unwrap();
    for campaign in campaigns {
        for command in [
            CampaignCommand::Draft(draft(artist)),
            CampaignCommand::Launch { connection_live: true },
        ] {
            log.execute::<Campaign>(campaign, command, &meta).await.unwrap();
        }
    }
}

/// How many events of `event_type` the stream holds.
async fn count(app: &app::App, aggregate_type: &str, id: &str, event_type: &str) -> usize {
    app.log
        .load(aggregate_type, id)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.event_type == event_type)
        .count()
}

async fn crash_between_the_fact_and_the_pause(db: TestDb) {
    let settings = [("DYNAMOI_STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET)];
    let first = TestApp::spawn_on(db, &settings).await;
    account(&first.app, "cus_HOLD", "payer-h", "artist-h", &["camp-h1", "camp-h2"]).await;
    let app_settings = first.settings.clone();
    let now = first.now();
    let db = first.stop().await;

    // A process that records the fact and dies before its workflows run: the application as
    // `serve` builds it, without its runners started.
    let dying = api::startup::build_app(&app_settings, clock::AnchoredClock::new(now))
        .await
        .expect("the application builds");
    let body = serde_json::to_vec(&json!({
        "id": "evt_fail_1", "type": "invoice.payment_failed", "created": now.timestamp(),
        "data": {"object": {"id": "in_1", "object": "invoice", "customer": "cus_HOLD", "amount_due": 2900,
                            "currency": "usd", "status": "open"}}
    }))
    .unwrap();
    let signature = connectors::stripe::webhook::sign_for_tests(&body, WEBHOOK_SECRET, now.timestamp());
    let recorded = app::billing::stripe_webhook(&dying, None, Some(&signature), &body)
        .await
        .expect("the fact is recorded");
    assert!(recorded.recorded);
    assert_eq!(recorded.subscription, Some(domain::billing::SubscriptionState::PastDue));
    assert_eq!(
        count(&dying, "campaign", "camp-h1", "CampaignSubscriptionPaused").await,
        0
    );
    dying.log.db().close().await;
    drop(dying);

    // The next process picks the workflow up from its checkpoint and pauses each campaign once.
    let second = TestApp::spawn_on(db, &settings).await;
    let paused = wait_until(Duration::from_secs(20), || async {
        count(&second.app, "campaign", "camp-h1", "CampaignSubscriptionPaused").await == 1
            && count(&second.app, "campaign", "camp-h2", "CampaignSubscriptionPaused").await == 1
    })
    .await;
    assert!(paused, "both campaigns are paused after the restart");
    let items = app::workflow_admin::items(&second.app, Some("subscription_holds"), None, 10)
        .await
        .unwrap();
    assert_eq!(items.len(), 1, "{items:?}");
    let done = wait_until(Duration::from_secs(10), || async {
        app::workflow_admin::items(&second.app, Some("subscription_holds"), Some("done"), 10)
            .await
            .unwrap()
            .len()
            == 1
    })
    .await;
    assert!(done);

    // Handled again (as after a crash between the pauses and the item's record): nothing twice.
    let item = &items[0].item;
    assert!(
        eventlog::workflow::retry(second.app.log.db(), "subscription_holds", item, true, second.now())
            .await
            .unwrap()
    );
    let again = wait_until(Duration::from_secs(10), || async {
        let items = app::workflow_admin::items(&second.app, Some("subscription_holds"), Some("done"), 10)
            .await
            .unwrap();
        items.len() == 1 && items[0].arms == 1
    })
    .await;
    assert!(again, "the re-armed item was handled again");
    for campaign in ["camp-h1", "camp-h2"] {
        assert_eq!(
            count(&second.app, "campaign", campaign, "CampaignSubscriptionPaused").await,
            1,
            "{campaign} paused exactly once"
        );
    }
    second.stop().await;
}

both_backends!(
    async fn a_crash_between_the_stripe_fact_and_the_pause_pauses_the_campaigns_exactly_once_on_restart(db: TestDb) {
        crash_between_the_fact_and_the_pause(db).await
    }
);

/// Stripe's meter events endpoint: refuses one customer (as Stripe refuses an unknown one)
/// until told otherwise; counts every request per customer.
#[derive(Clone, Default)]
struct Meter {
    requests: Arc<Mutex<BTreeMap<String, usize>>>,
    accept_everyone: Arc<AtomicBool>,
}

impl Respond for Meter {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let form: BTreeMap<String, String> = url::form_urlencoded::parse(&request.body).into_owned().collect();
        let customer = form["payload[stripe_customer_id]"].clone();
        *self.requests.lock().unwrap().entry(customer.clone()).or_default() += 1;
        if customer == "cus_REFUSES" && !self.accept_everyone.load(Ordering::SeqCst) {
            return ResponseTemplate::new(400).set_body_json(json!({"error": {
                "type": "invalid_request_error", "message": "No such customer: 'cus_REFUSES'"
            }}));
        }
        ResponseTemplate::new(200).set_body_json(json!({
            "object": "billing.meter_event", "event_name": form["event_name"], "identifier": form["identifier"],
            "livemode": false, "payload": {"stripe_customer_id": customer, "value": form["payload[value]"]},
            "timestamp": form["timestamp"].parse::<i64>().unwrap()
        }))
    }
}

async fn one_refused_customer(db: TestDb) {
    let stripe = MockServer::start().await;
    let meter = Meter::default();
    Mock::given(method("POST"))
        .and(path("/v1/billing/meter_events"))
        .respond_with(meter.clone())
        .mount(&stripe)
        .await;
    let uri = stripe.uri();
    let app = TestApp::spawn_on(
        db,
        &[
            ("DYNAMOI_STRIPE_API_KEY", "sk_test_workflows"),
            ("DYNAMOI_STRIPE_BASE_URL", &uri),
            ("DYNAMOI_WORKFLOW_MAX_ATTEMPTS", "3"),
            ("DYNAMOI_WORKFLOW_BACKOFF_MS", "20"),
        ],
    )
    .await;
    account(&app.app, "cus_OK", "payer-ok", "artist-ok", &["camp-ok"]).await;
    account(&app.app, "cus_REFUSES", "payer-no", "artist-no", &["camp-no"]).await;
    let meta = EventMetadata::system();
    let readings: Vec<Result<app::ingest::IngestReading, String>> = ["camp-ok", "camp-no"]
        .iter()
        .map(|campaign| {
            Ok(serde_json::from_value(json!({
                "campaign_id": campaign, "platform": "meta", "date": "2026-10-31", "spend_micros": 12_345_678,
                "currency": "USD", "impressions": 1000, "clicks": 10, "fetched_at": "2026-11-01T06:00:00Z",
                "source": "meta_insights"
            }))
            .unwrap())
        })
        .collect();
    app::ingest::ingest(&app.app.log, &readings, &meta).await.unwrap();
    let usage = |account: &'static str| {
        let db = app.app.log.db().clone();
        async move {
            !projections::read_models::billing::usage(&db, account, None)
                .await
                .unwrap()
                .is_empty()
        }
    };
    assert!(
        wait_until(Duration::from_secs(20), || async {
            usage("cus_OK").await && usage("cus_REFUSES").await
        })
        .await
    );
    let closed = app::billing::close_ended_periods(&app.app, "2026-11-02T08:00:00Z".parse().unwrap())
        .await
        .unwrap();
    assert_eq!(closed, 2);

    // The accepted customer is reported once; the refused one is parked after 3 attempts.
    let reported = |account: &'static str| {
        let app = app.app.clone();
        async move { count(&app, "billing_period", &format!("{account}.2026-10"), "UsageReported").await == 1 }
    };
    assert!(
        wait_until(Duration::from_secs(20), || reported("cus_OK")).await,
        "cus_OK is reported"
    );
    let support = app.token("support-w", Role::Support);
    let parked = wait_until(Duration::from_secs(20), || async {
        let (_, status) = app.send(&support, Method::GET, "/v1/operations/workflows", None).await;
        status["items"]
            .as_array()
            .is_some_and(|items| items.iter().any(|i| i["item"] == "cus_REFUSES.2026-10"))
    })
    .await;
    assert!(parked, "the refused period is parked and visible to support");
    let (status, listed) = app
        .send(
            &support,
            Method::GET,
            "/v1/operations/workflows?workflow=meter_reports&state=parked",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let item = &listed["items"][0];
    assert_eq!(item["attempts"], 3, "{item}");
    assert!(
        item["last_error"].as_str().unwrap().contains("refused"),
        "the error says why: {item}"
    );
    let meters = listed["workflows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["workflow"] == "meter_reports")
        .unwrap()
        .clone();
    assert_eq!(
        (meters["parked"].clone(), meters["done"].clone()),
        (json!(1), json!(1)),
        "{meters}"
    );
    assert!(!reported("cus_REFUSES").await);
    assert_eq!(meter.requests.lock().unwrap()["cus_OK"], 1);
    assert_eq!(meter.requests.lock().unwrap()["cus_REFUSES"], 3);

    // One disclosure per actual call: bounded by the attempts, and no more while parked.
    let disclosures = |person: &'static str| {
        let app = app.app.clone();
        async move { count(&app, "disclosure_log", person, "DisclosureRecorded").await }
    };
    assert_eq!(disclosures("payer-no").await, 3);
    assert_eq!(disclosures("payer-ok").await, 1);
    let (_, handled) = app::workflows::pass(&app.app, &app::billing::MeterReports, &app.app.config.workflows)
        .await
        .unwrap();
    assert_eq!(handled, 0, "a parked item is not tried again by itself");
    assert_eq!(disclosures("payer-no").await, 3);

    // Stripe accepts the customer now; support retries the parked item: it is reported.
    meter.accept_everyone.store(true, Ordering::SeqCst);
    let (status, retried) = app
        .send(
            &support,
            Method::POST,
            "/v1/operations/workflows/meter_reports/items/cus_REFUSES.2026-10/retry",
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{retried}");
    assert_eq!(retried["state"], "pending", "{retried}");
    assert!(wait_until(Duration::from_secs(20), || reported("cus_REFUSES")).await);
    // The item is marked done right after its report is recorded: wait for that too.
    let item_done = || async {
        app::workflow_admin::items(&app.app, Some("meter_reports"), Some("done"), 100)
            .await
            .unwrap()
            .iter()
            .any(|i| i.item == "cus_REFUSES.2026-10")
    };
    assert!(
        wait_until(Duration::from_secs(20), item_done).await,
        "the retried item is done"
    );
    assert_eq!(disclosures("payer-no").await, 4);
    assert_eq!(
        meter.requests.lock().unwrap()["cus_OK"],
        1,
        "the other account was never sent again"
    );
    let (status, refused) = app
        .send(
            &app.token("payer-no", Role::Person),
            Method::POST,
            "/v1/operations/workflows/meter_reports/items/cus_REFUSES.2026-10/retry",
            Some(json!({})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "only support acts on workflow items: {refused}"
    );
    let (status, done) = app
        .send(
            &support,
            Method::POST,
            "/v1/operations/workflows/meter_reports/items/cus_REFUSES.2026-10/resolve",
            Some(json!({"note": "checked by hand"})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "a done item is not resolved again: {done}"
    );
    let _: Value = done;
    app.stop().await;
}

both_backends!(
    async fn a_customer_stripe_refuses_is_parked_and_visible_while_the_other_is_reported_at_once(db: TestDb) {
        one_refused_customer(db).await
    }
);
