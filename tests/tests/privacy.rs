//! Data-subject requests end to end over HTTP, with local stand-ins of Stripe, PostHog, Resend
//! and Meta on loopback: a person with consents, a connection, campaigns, spend and billing
//! asks for an export (everything of theirs, nothing of anyone else), then for erasure
//! (processors called once each, keys destroyed, nothing readable left, totals unchanged,
//! certificate and chains verified); a restored pre-erasure key store does not bring them back;
//! a restricted person's processing commands are refused one by one; support's requests wait
//! for verification, fail on a processor and retry from the failed step; an auditor reading the
//! certificate right after the erasure gets it even while the audit trail lags, and an access
//! request opened right after signing up exports the account while its read model lags.

use api::auth::Role;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tests::{cells_holding, TestApp, TestDb};
use wiremock::matchers::{method, path, path_regex, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const NAME: &str = "Ayesha Erasable-Qureshi";
const EMAIL: &str = "ayesha.erasable@example.com";
const ADDRESS: &str = "17 Erasure Lane";
const TOKEN: &str = "EAA-erase-me-token";
const OTHER_NAME: &str = "Bilal Untouched-Khan";
const OTHER_EMAIL: &str = "bilal.untouched@example.com";
const PROJECT: &str = "4242";

/// One loopback server answering as Stripe, PostHog, Resend and Meta document it.
async fn processors() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path_regex(r"^/v1/customers/cus_[A-Za-z0-9]+$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "cus_ERASE", "object": "customer"})))
        .mount(&server)
        .await;
    // The customer Checkout created for ayesha-1 (the person `export_then_erase` uses).
    Mock::given(method("GET"))
        .and(path("/v1/customers/cus_ERASE"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"id": "cus_ERASE", "object": "customer", "metadata": {"dynamoi_person": "ayesha-1"}}),
        ))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/api/projects/{PROJECT}/persons/")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "results": [{"id": 1, "uuid": "01890000-0000-7000-8000-000000000001", "distinct_ids": ["x"]}],
            "next": null
        })))
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path(format!(
            "/api/projects/{PROJECT}/persons/01890000-0000-7000-8000-000000000001/"
        )))
        .and(query_param("delete_events", "true"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path_regex(r"^/contacts/.+$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"object": "contact", "deleted": true})))
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path_regex(r"^/v[0-9.]+/me/permissions$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"success": true})))
        .mount(&server)
        .await;
    server
}

fn settings(uri: &str) -> Vec<(&'static str, String)> {
    vec![
        ("DYNAMOI_STRIPE_API_KEY", "sk_test_privacy".into()),
        // One artist: the platform statistics show its cells (k-anonymity is tested elsewhere).
        ("DYNAMOI_STATS_MIN_ARTISTS", "1".into()),
        ("DYNAMOI_STRIPE_BASE_URL", uri.into()),
        ("DYNAMOI_POSTHOG_BASE_URL", uri.into()),
        ("DYNAMOI_POSTHOG_PROJECT_ID", PROJECT.into()),
        ("DYNAMOI_POSTHOG_API_KEY", "phx_test_privacy".into()),
        ("DYNAMOI_RESEND_API_KEY", "re_test_privacy".into()),
        ("DYNAMOI_RESEND_BASE_URL", uri.into()),
        ("DYNAMOI_META_BASE_URL", uri.into()),
    ]
}

/// How many requests the stand-in received whose method and path match.
async fn calls(server: &MockServer, verb: &str, path_start: &str) -> usize {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.method.as_str() == verb && r.url.path().starts_with(path_start))
        .count()
}

struct Person<'a> {
    app: &'a TestApp,
    token: String,
}

impl Person<'_> {
    async fn send(&self, verb: Method, route: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.app.send(&self.token, verb, route, body).await
    }
}

async fn sign_up(app: &TestApp, person: &str, name: &str, email: &str) {
    let service = app.token("auth-hook", Role::Service);
    let (status, body) = app
        .send(
            &service,
            Method::POST,
            "/v1/accounts",
            Some(json!({
                "person_id": person, "provider": "google", "provider_subject": format!("google|{person}"),
                "name": name, "email": email, "country": "PK", "birth_date": "1994-04-04"
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// A person with a consent, a Meta connection, an artist with a launched campaign and spend,
/// and a billing account with a sealed billing address. Returns (artist id, campaign id, position).
async fn a_full_person(app: &TestApp, person: &str) -> (String, String, String) {
    sign_up(app, person, NAME, EMAIL).await;
    let me = Person {
        app,
        token: app.token(person, Role::Person),
    };
    let support = app.token("support-1", Role::Support);
    app.send(
        &support,
        Method::POST,
        "/v1/policies",
        Some(json!({"label": "v1", "effective_date": "2020-01-01", "locale": "en", "text": "t", "summary_of_changes": "s"})),
    )
    .await;
    let (status, body) = me
        .send(
            Method::POST,
            "/v1/me/consents",
            Some(json!({"purpose": "ai_features", "granted": true, "jurisdiction": "PK", "notice": {"version_label": "v1"}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = me
        .send(
            Method::POST,
            "/v1/connections",
            Some(json!({"platform": "meta", "page_id": "9001", "access_token": TOKEN})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, artist) = me
        .send(Method::POST, "/v1/artists", Some(json!({"name": "The Erasables"})))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{artist}");
    let artist_id = artist["artist_id"].as_str().unwrap().to_string();
    me.send(
        Method::GET,
        &format!(
            "/v1/artists/{artist_id}?min_position={}",
            artist["position"].as_str().unwrap()
        ),
        None,
    )
    .await;
    let (status, drafted) = me
        .send(
            Method::POST,
            &format!("/v1/artists/{artist_id}/campaigns"),
            Some(json!({
                "platform": "meta", "objective": "streams", "budget": {"kind": "daily", "amount_micros": 50_000_000},
                "currency": "USD", "schedule": {"start": "2026-10-01"}, "countries": ["PK"],
                "creatives": [{"kind": "facebook_post", "post_id": "9001_1"}]
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{drafted}");
    let campaign = drafted["campaign_id"].as_str().unwrap().to_string();
    let (status, body) = me
        .send(
            Method::POST,
            &format!("/v1/campaigns/{campaign}/launch"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let readings: Vec<Value> = (1..=10)
        .map(|day| {
            json!({"campaign_id": campaign, "platform": "meta", "date": format!("2026-10-{day:02}"),
                   "spend_micros": 12_345_678 + day, "currency": "USD", "impressions": 1000, "clicks": 10,
                   "fetched_at": "2026-11-01T06:00:00Z", "source": "meta_insights"})
        })
        .collect();
    let service = app.token("sync", Role::Service);
    let (status, ingested) = app
        .send(&service, Method::POST, "/v1/ingest/spend", Some(Value::Array(readings)))
        .await;
    assert_eq!(status, StatusCode::OK, "{ingested}");
    let plan = json!({"monthly_fee_micros": 29_000_000, "included_spend_micros": 50_000_000, "fee_basis_points": 250,
                      "currency": "USD", "time_zone": "Etc/UTC"});
    let (status, body) = me
        .send(
            Method::POST,
            "/v1/billing/accounts",
            Some(json!({"stripe_customer_id": "cus_ERASE", "plan": plan})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = me
        .send(
            Method::POST,
            "/v1/billing/accounts/cus_ERASE/artists",
            Some(json!({"artist_id": artist_id})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = me
        .send(
            Method::POST,
            "/v1/billing/accounts/cus_ERASE/payment-method",
            Some(
                json!({"brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2030,
                        "billing_address": {"line1": ADDRESS, "city": "Lahore", "country": "PK"}}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    (
        artist_id,
        campaign,
        body["position"].as_str().unwrap_or_default().to_string(),
    )
}

/// What must not change when the person is erased: the dashboard, the billing usage, the
/// anonymous platform aggregate.
async fn totals(app: &TestApp, me: &Person<'_>, artist: &str, min_position: &str) -> Value {
    let (status, dashboard) = me
        .send(
            Method::GET,
            &format!(
                "/v1/artists/{artist}/dashboard?from=2026-10-01&to=2026-10-31&granularity=month&min_position={min_position}"
            ),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{dashboard}");
    let (status, usage) = me
        .send(
            Method::GET,
            &format!("/v1/billing/accounts/cus_ERASE/usage?min_position={min_position}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{usage}");
    let support = app.token("support-1", Role::Support);
    let (status, platforms) = app
        .send(
            &support,
            Method::GET,
            &format!("/v1/stats/platforms?from=2026-10-01&to=2026-10-31&min_position={min_position}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{platforms}");
    json!({"dashboard": dashboard["totals"], "usage": usage["usage"], "open": usage["open_periods"], "platforms": platforms})
}

async fn export_then_erase(db: TestDb) {
    let standins = processors().await;
    let extra = settings(&standins.uri());
    let extra: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let app = TestApp::spawn_on(db, &extra).await;
    let person = "ayesha-1";
    let (artist, _campaign, position) = a_full_person(&app, person).await;
    sign_up(&app, "bilal-2", OTHER_NAME, OTHER_EMAIL).await;
    let me = Person {
        app: &app,
        token: app.token(person, Role::Person),
    };
    let auditor = app.token("auditor-1", Role::Auditor);
    let before = totals(&app, &me, &artist, &position).await;

    // Access: one document with everything of theirs, and nothing of anyone else.
    let (status, access) = me
        .send(Method::POST, "/v1/me/privacy-requests", Some(json!({"kind": "access"})))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{access}");
    assert_eq!(access["state"], "completed", "{access}");
    assert_eq!(access["opened_by"]["by"], "person");
    assert_eq!(access["verified"]["method"], "authenticated_session");
    let access_id = access["request_id"].as_str().unwrap().to_string();
    let (status, export) = me
        .send(
            Method::GET,
            &format!("/v1/me/privacy-requests/{access_id}/export"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{export}");
    let text = export.to_string();
    for mine in [NAME, EMAIL, ADDRESS, "cus_ERASE", "9001"] {
        assert!(text.contains(mine), "the export holds {mine}");
    }
    for theirs in [OTHER_NAME, OTHER_EMAIL, "bilal-2"] {
        assert!(
            !text.contains(theirs),
            "the export holds nothing of anyone else ({theirs})"
        );
    }
    assert!(!text.contains(TOKEN), "a live platform token is withheld");
    assert_eq!(
        export["read_models"]["accounts"][0]["name"], NAME,
        "{}",
        export["read_models"]
    );
    assert!(!export["consents"]["history"].as_array().unwrap().is_empty());
    assert_eq!(
        export["consent_receipts"].as_array().unwrap().len(),
        export["consents"]["history"].as_array().unwrap().len()
    );
    assert!(export["recorded_elsewhere"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["event_type"] == "CampaignDrafted"));
    let stranger = app.token("bilal-2", Role::Person);
    let (status, _) = app
        .send(
            &stranger,
            Method::GET,
            &format!("/v1/me/privacy-requests/{access_id}/export"),
            None,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "another person's export is not there for them"
    );

    // A copy of the key store as it is now: the backup an attacker (or an admin) restores later.
    app.db
        .execute("CREATE TABLE vault_keys_backup AS SELECT * FROM vault_keys")
        .await;

    // Erase.
    let (status, erased) = me
        .send(Method::POST, "/v1/me/privacy-requests", Some(json!({"kind": "erase"})))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{erased}");
    assert_eq!(erased["state"], "completed", "{erased}");
    let steps: Vec<&str> = erased["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        [
            "platform:ayesha-1.meta",
            "posthog",
            "resend",
            "stripe",
            "vault",
            "read_models"
        ]
    );
    for step in erased["steps"].as_array().unwrap() {
        assert_eq!(step["status"], "done", "{step}");
        assert_eq!(step["result"]["outcome"], "done", "{step}");
        assert_eq!(step["attempts"], 1, "{step}");
    }
    assert_eq!(
        calls(&standins, "DELETE", "/v25.0/me/permissions").await,
        1,
        "Meta token revoked"
    );
    assert_eq!(
        calls(&standins, "DELETE", &format!("/api/projects/{PROJECT}/persons/")).await,
        1
    );
    assert_eq!(
        calls(&standins, "DELETE", "/contacts/").await,
        1,
        "Resend contact deleted"
    );
    assert_eq!(
        calls(&standins, "POST", "/v1/customers/cus_ERASE").await,
        1,
        "Stripe customer anonymised"
    );
    let certificate = &erased["erasure_certificate"]["certificate"];
    assert!(
        certificate["keys_destroyed"].as_array().unwrap().len() >= 2,
        "{certificate}"
    );
    assert!(certificate["kept"]
        .as_array()
        .unwrap()
        .iter()
        .any(|k| k["category"] == "billing_records" && k["basis"].as_str().unwrap().starts_with("legal_obligation")));

    // Nothing readable is left of them; no plaintext anywhere; the totals are unchanged.
    let (_, profile) = me.send(Method::GET, "/v1/me", None).await;
    assert_eq!(profile["erased"], true, "{profile}");
    for secret in [NAME, EMAIL, ADDRESS, TOKEN] {
        assert!(
            cells_holding(&app.db.db, secret).await.is_empty(),
            "{secret} is stored in plaintext"
        );
    }
    let position_after = erased["position"].as_str().unwrap();
    assert_eq!(totals(&app, &me, &artist, position_after).await, before);
    // A well-formed draft (input is judged before state): refused because the person was erased.
    let (status, refused) = me
        .send(
            Method::POST,
            &format!("/v1/artists/{artist}/campaigns"),
            Some(json!({
                "platform": "meta", "objective": "streams", "budget": {"kind": "daily", "amount_micros": 1_000_000},
                "currency": "USD", "schedule": {"start": "2026-12-01"}, "countries": ["PK"],
                "creatives": [{"kind": "facebook_post", "post_id": "9001_2"}]
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert_eq!(refused["code"], "processing_restricted");

    // The audit trail: both requests with every step, the certificate, every chain verified.
    let (status, trail) = app
        .send(
            &auditor,
            Method::GET,
            &format!("/v1/audit/privacy-requests?person={person}&min_position={position_after}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{trail}");
    let requests = trail["requests"].as_array().unwrap();
    assert_eq!(requests.len(), 2, "{trail}");
    assert!(requests.iter().all(|r| r["state"] == "completed"));
    let erase_row = requests.iter().find(|r| r["kind"] == "erase").unwrap();
    assert_eq!(erase_row["steps"].as_array().unwrap().len(), 6);
    assert!(erase_row["steps"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["status"] == "done" && !s["finished_at"].is_null() && !s["evidence"].is_null()));
    let (status, certificates) = app
        .send(
            &auditor,
            Method::GET,
            &format!("/v1/audit/people/{person}/erasure-certificates"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{certificates}");
    assert_eq!(certificates["certificates"][0]["chain"]["verified"], true);
    assert_eq!(certificates["certificates"][0]["certificate"], *certificate);
    let (_, verify) = app.send(&auditor, Method::GET, "/v1/audit/verify", None).await;
    assert_eq!(verify["all_verified"], true, "{verify}");
    // The processors they were disclosed to, in their (now erased) export.
    let (_, second) = me
        .send(Method::POST, "/v1/me/privacy-requests", Some(json!({"kind": "access"})))
        .await;
    let (_, export) = me
        .send(
            Method::GET,
            &format!(
                "/v1/me/privacy-requests/{}/export",
                second["request_id"].as_str().unwrap()
            ),
            None,
        )
        .await;
    assert_eq!(export["read_models"]["accounts"][0]["name"], json!({"erased": true}));
    let processors: Vec<&str> = export["disclosures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["processor"].as_str().unwrap())
        .collect();
    for processor in ["meta", "posthog", "resend", "stripe"] {
        assert!(processors.contains(&processor), "{processors:?}");
    }

    // Restore the pre-erasure key store and restart: the erasure ledger wins.
    let db = app.stop().await;
    db.execute(
        "INSERT INTO vault_keys SELECT * FROM vault_keys_backup WHERE key_id NOT IN (SELECT key_id FROM vault_keys)",
    )
    .await;
    db.execute("DROP TABLE vault_keys_backup").await;
    let app = TestApp::spawn_on(db, &extra).await;
    let me = Person {
        app: &app,
        token: app.token(person, Role::Person),
    };
    let (_, profile) = me.send(Method::GET, "/v1/me", None).await;
    assert_eq!(
        profile["erased"], true,
        "a restored key backup does not bring them back: {profile}"
    );
    assert_eq!(profile["name"], Value::Null);
    let keys_left = app
        .db
        .count(&format!(
            "SELECT count(*) FROM vault_keys WHERE key_ref LIKE 'person:{person}%' OR key_ref LIKE 'connection:{person}.%'"
        ))
        .await;
    assert_eq!(keys_left, 0);
    app.stop().await;
}

tests::both_backends!(
    async fn a_person_exports_everything_then_is_erased_for_good(db: TestDb) {
        export_then_erase(db).await
    }
);

async fn restricted(db: TestDb) {
    let app = TestApp::spawn_on(db, &[]).await;
    let person = "restricted-1";
    let (artist, campaign, _) = a_full_person(&app, person).await;
    let me = Person {
        app: &app,
        token: app.token(person, Role::Person),
    };
    // Rectify: the new values go through the request (sealed at once) into the account.
    let (status, refused) = me
        .send(
            Method::POST,
            "/v1/me/privacy-requests",
            Some(json!({"kind": "access", "name": "Someone Else"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    let (status, rectified) = me
        .send(
            Method::POST,
            "/v1/me/privacy-requests",
            Some(json!({"kind": "rectify", "name": "Ayesha Q.", "email": "ayesha.q@example.com"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{rectified}");
    assert_eq!(rectified["state"], "completed", "{rectified}");
    assert_eq!(
        rectified["steps"][0]["result"]["evidence"],
        "account rectified: name, email"
    );
    let (_, profile) = me
        .send(
            Method::GET,
            &format!("/v1/me?min_position={}", rectified["position"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(
        (&profile["name"], &profile["email"]),
        (&json!("Ayesha Q."), &json!("ayesha.q@example.com"))
    );
    assert!(
        cells_holding(&app.db.db, "ayesha.q@example.com").await.is_empty(),
        "sealed, never plaintext"
    );

    let (status, restricted) = me
        .send(
            Method::POST,
            "/v1/me/privacy-requests",
            Some(json!({"kind": "restrict"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{restricted}");
    assert_eq!(restricted["state"], "completed", "{restricted}");

    let draft = json!({
        "platform": "meta", "objective": "streams", "budget": {"kind": "daily", "amount_micros": 1_000_000},
        "currency": "USD", "schedule": {"start": "2026-12-01"}, "countries": ["PK"],
        "creatives": [{"kind": "facebook_post", "post_id": "9001_2"}]
    });
    let attempts: Vec<(Method, String, Option<Value>)> = vec![
        (
            Method::POST,
            format!("/v1/artists/{artist}/campaigns"),
            Some(draft.clone()),
        ),
        (Method::POST, format!("/v1/campaigns/{campaign}/pause"), Some(json!({}))),
        (Method::POST, format!("/v1/campaigns/{campaign}/end"), Some(json!({}))),
        (
            Method::POST,
            format!("/v1/campaigns/{campaign}/budget"),
            Some(json!({"kind": "daily", "amount_micros": 2_000_000})),
        ),
        (
            Method::POST,
            format!("/v1/campaigns/{campaign}/ai-creatives"),
            Some(json!({"asset_id": "gen-1"})),
        ),
        (Method::POST, format!("/v1/campaigns/{campaign}/sync"), Some(json!({}))),
        (
            Method::POST,
            "/v1/connections".into(),
            Some(json!({"platform": "spotify", "artist_id": "0OdUWJ0sBjDrqHygGUXeCF"})),
        ),
        (Method::GET, "/v1/connections/meta/assets".into(), None),
        (
            Method::POST,
            "/v1/me/attribution-ids".into(),
            Some(json!({"fbc": "fb.1.1700000000.abc", "fbp": "fb.1.1700000000.123"})),
        ),
    ];
    let events_before = app.event_count().await;
    for (verb, route, body) in &attempts {
        let (status, refused) = me.send(verb.clone(), route, body.clone()).await;
        assert_eq!(status, StatusCode::CONFLICT, "{route}: {refused}");
        assert_eq!(refused["code"], "processing_restricted", "{route}: {refused}");
        assert!(
            refused["detail"]
                .as_str()
                .unwrap()
                .contains("restricted at their request"),
            "{refused}"
        );
    }
    assert_eq!(
        app.event_count().await,
        events_before,
        "a refused command records nothing"
    );
    // Reading is still allowed.
    let (status, _) = me.send(Method::GET, "/v1/me", None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = me
        .send(Method::GET, &format!("/v1/artists/{artist}/campaigns"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    // Lifted: processing is accepted again.
    let (status, lifted) = me
        .send(
            Method::POST,
            "/v1/me/privacy-requests",
            Some(json!({"kind": "lift_restriction"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{lifted}");
    assert_eq!(lifted["state"], "completed");
    let (status, body) = me
        .send(Method::POST, &format!("/v1/artists/{artist}/campaigns"), Some(draft))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    app.stop().await;
}

tests::both_backends!(
    async fn a_restricted_persons_processing_commands_are_refused_until_lifted(db: TestDb) {
        restricted(db).await
    }
);

async fn support_on_behalf(db: TestDb) {
    let standins = MockServer::start().await;
    // PostHog refuses the first deletion (a key without the right scope), then accepts.
    Mock::given(method("GET"))
        .and(path(format!("/api/projects/{PROJECT}/persons/")))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({"detail": "permission denied"})))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&standins)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/api/projects/{PROJECT}/persons/")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"results": [], "next": null})))
        .mount(&standins)
        .await;
    Mock::given(method("DELETE"))
        .and(path_regex(r"^/v[0-9.]+/me/permissions$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"success": true})))
        .mount(&standins)
        .await;
    let uri = standins.uri();
    // No Stripe configured: its step needs a manual record.
    let app = TestApp::spawn_on(
        db,
        &[
            ("DYNAMOI_POSTHOG_BASE_URL", &uri),
            ("DYNAMOI_POSTHOG_PROJECT_ID", PROJECT),
            ("DYNAMOI_POSTHOG_API_KEY", "phx_test"),
            ("DYNAMOI_META_BASE_URL", &uri),
            // The workflow retries a failed step after an hour: this test retries by hand.
            ("DYNAMOI_WORKFLOW_BACKOFF_MS", "3600000"),
        ],
    )
    .await;
    let person = "asked-by-email";
    a_full_person(&app, person).await;
    let support = app.token("support-7", Role::Support);
    let send = |verb: Method, route: String, body: Value| {
        let support = support.clone();
        let app = &app;
        async move { app.send(&support, verb, &route, Some(body)).await }
    };

    let (status, body) = send(
        Method::POST,
        format!("/v1/support/people/{person}/privacy-requests"),
        json!({"kind": "erase"}),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "support says how the person asked: {body}"
    );
    let (status, opened) = send(
        Method::POST,
        format!("/v1/support/people/{person}/privacy-requests"),
        json!({"kind": "erase", "reason": "email to privacy@ from the account's address"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{opened}");
    assert_eq!(
        opened["state"], "pending",
        "nothing runs before the identity is verified"
    );
    assert_eq!(opened["opened_by"]["agent"], "support:support-7");
    assert_eq!(standins.received_requests().await.unwrap().len(), 0);
    let id = opened["request_id"].as_str().unwrap().to_string();
    let (status, extended) = send(
        Method::POST,
        format!("/v1/support/privacy-requests/{id}/extend"),
        json!({"reason": "waiting for the bank's chargeback", "until": "2099-01-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "at most three months: {extended}"
    );

    let (status, verified) = send(
        Method::POST,
        format!("/v1/support/privacy-requests/{id}/verify"),
        json!({"method": "reply from the account's email address"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{verified}");
    assert_eq!(verified["state"], "failed", "{verified}");
    let step = |view: &Value, name: &str| {
        view["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["step"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(step(&verified, "platform:asked-by-email.meta")["status"], "done");
    assert_eq!(step(&verified, "posthog")["status"], "failed");

    // Retried by the daily job (what `serve` runs each day): from the failed step, not the start.
    let auditor = app.token("auditor-1", Role::Auditor);
    let failed_visible = tests::wait_until(std::time::Duration::from_secs(20), || async {
        let (_, trail) = app
            .send(&auditor, Method::GET, "/v1/audit/privacy-requests?state=failed", None)
            .await;
        trail["requests"].as_array().is_some_and(|r| r.len() == 1)
    })
    .await;
    assert!(failed_visible, "the audit trail shows the failed request");
    assert_eq!(
        app::privacy::run_unfinished(&app.app).await.unwrap(),
        0,
        "stripe still waits"
    );
    let (status, retried) = app
        .send(
            &support,
            Method::GET,
            &format!("/v1/support/privacy-requests/{id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{retried}");
    assert_eq!(step(&retried, "posthog")["attempts"], 2);
    assert_eq!(step(&retried, "posthog")["result"]["outcome"], "done");
    assert_eq!(step(&retried, "platform:asked-by-email.meta")["attempts"], 1);
    assert_eq!(calls(&standins, "DELETE", "/v25.0/me/permissions").await, 1);
    // Stripe is not configured here, so the request waits on a manual record of that step.
    assert_eq!(retried["state"], "failed", "{retried}");
    assert_eq!(step(&retried, "stripe")["status"], "failed");
    // Support's retry: the same step again, failing again with its reason.
    let (status, retried) = send(
        Method::POST,
        format!("/v1/support/privacy-requests/{id}/retry"),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{retried}");
    assert_eq!(step(&retried, "stripe")["attempts"], 2);
    assert!(step(&retried, "stripe")["result"]["reason"]
        .as_str()
        .unwrap()
        .starts_with("Stripe is not configured"));
    let (status, manual) = send(
        Method::POST,
        format!("/v1/support/privacy-requests/{id}/manual-step"),
        json!({"step": "stripe", "evidence": "customer anonymised in the Stripe dashboard, ticket 123"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{manual}");
    assert_eq!(manual["state"], "completed", "{manual}");
    assert_eq!(step(&manual, "stripe")["result"]["outcome"], "manual");
    assert_eq!(step(&manual, "stripe")["result"]["by"], "support:support-7");
    let (status, again) = send(
        Method::POST,
        format!("/v1/support/privacy-requests/{id}/deny"),
        json!({"reason": "too late"}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");

    // A child's account opens an erase request by itself (P27).
    sign_up(&app, "young-1", "Young Person", "young@example.com").await;
    let (status, child) = send(
        Method::POST,
        "/v1/support/people/young-1/child".into(),
        json!({"report": "parent_or_guardian"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{child}");
    assert_eq!(child["state"], "completed", "{child}");
    let (status, again) = send(
        Method::POST,
        "/v1/support/people/young-1/child".into(),
        json!({"report": "parent_or_guardian"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "reported twice: {again}");
    assert_eq!(again["erase_request"], child["erase_request"], "one erasure");
    let (status, view) = app
        .send(
            &auditor,
            Method::GET,
            &format!(
                "/v1/audit/privacy-requests/{}",
                child["erase_request"].as_str().unwrap()
            ),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["opened_by"], json!({"by": "system", "reason": "child_account"}));
    assert_eq!(view["chain"]["verified"], true);
    app.stop().await;
}

tests::both_backends!(
    async fn support_opens_verifies_and_retries_a_request_from_its_failed_step(db: TestDb) {
        support_on_behalf(db).await
    }
);

/// The app with a consistency wait far beyond the tests' bound below: while a read model is
/// held back, a read waiting for it cannot give up either, however loaded the machine.
async fn app_waiting_long(db: TestDb, standins: &MockServer) -> TestApp {
    let mut extra = settings(&standins.uri());
    extra.push(("DYNAMOI_CONSISTENCY_WAIT_MS", "60000".into()));
    let extra: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (*k, v.as_str())).collect();
    TestApp::spawn_on(db, &extra).await
}

/// Holds `projection`'s checkpoint row (PostgreSQL row lock): its next batch cannot commit
/// until the returned transaction ends.
async fn hold_back(app: &TestApp, projection: &str) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let eventlog::Db::Postgres(pool) = &app.db.db else {
        panic!("a PostgreSQL test database")
    };
    let mut hold = pool.begin().await.expect("begin");
    sqlx::query("SELECT 1 FROM projection_generations WHERE name = $1 AND active FOR UPDATE")
        .bind(projection)
        .execute(&mut *hold)
        .await
        .expect("lock the checkpoint row");
    hold
}

/// Sends a request in a task of its own, so that the test can check it has no answer yet.
fn send_later(
    app: &TestApp,
    method: Method,
    path: String,
    token: String,
    body: Option<Value>,
) -> tokio::task::JoinHandle<(StatusCode, Value)> {
    let url = format!("{}{path}", app.base_url);
    tokio::spawn(async move {
        let mut request = reqwest::Client::new().request(method, url).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer = request.send().await.expect("the request is answered");
        (answer.status(), answer.json::<Value>().await.expect("a JSON body"))
    })
}

/// Asserts that `task` has no answer within 300 ms: a bound, not a sleep; the request is given
/// time to answer wrongly.
async fn assert_unanswered(task: &mut tokio::task::JoinHandle<(StatusCode, Value)>, what: &str) {
    let early = tokio::time::timeout(std::time::Duration::from_millis(300), task).await;
    assert!(early.is_err(), "{what}: {early:?}");
}

/// An auditor reading a person's erasure certificate right after the erasure, with no
/// `min_position`, gets it even while the `privacy_requests` read model has not applied it yet:
/// the route waits (bounded) for the read model to reach the log's head before it answers 404.
/// The read model is held back by a lock on its checkpoint row (PostgreSQL row locks).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_read_right_after_the_erasure_waits_for_the_read_model() {
    let Some(db) = TestDb::postgres().await else { return };
    let standins = processors().await;
    let app = app_waiting_long(db, &standins).await;
    let person = "late-reader-1";
    sign_up(&app, person, OTHER_NAME, OTHER_EMAIL).await;
    let auditor = app.token("auditor-1", Role::Auditor);
    let hold = hold_back(&app, "privacy_requests").await;

    let me = app.token(person, Role::Person);
    let (status, erased) = app
        .send(
            &me,
            Method::POST,
            "/v1/me/privacy-requests",
            Some(json!({"kind": "erase"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{erased}");
    assert_eq!(erased["state"], "completed", "{erased}");
    let mut read = send_later(
        &app,
        Method::GET,
        format!("/v1/audit/people/{person}/erasure-certificates"),
        auditor,
        None,
    );
    // Before the fix it answered 404 at once.
    assert_unanswered(&mut read, "answered before the read model applied the erasure").await;
    hold.rollback().await.expect("release the checkpoint row");
    let (status, certificates) = read.await.expect("the read task");
    assert_eq!(status, StatusCode::OK, "{certificates}");
    assert_eq!(certificates["person_id"], person);
    assert_eq!(
        certificates["certificates"][0]["certificate"], erased["erasure_certificate"]["certificate"],
        "{certificates}"
    );
    app.stop().await;
}

/// An access request opened right after signing up exports the account: the read-model step
/// waits (bounded) until the projections writing the person's rows have applied every event
/// committed before it. The `accounts` read model is held back by a lock on its checkpoint row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_access_request_right_after_signing_up_exports_the_account() {
    let Some(db) = TestDb::postgres().await else { return };
    let standins = processors().await;
    let app = app_waiting_long(db, &standins).await;
    let hold = hold_back(&app, "accounts").await;
    let person = "quick-exporter-1";
    sign_up(&app, person, NAME, EMAIL).await;
    let me = app.token(person, Role::Person);
    let mut access = send_later(
        &app,
        Method::POST,
        "/v1/me/privacy-requests".into(),
        me.clone(),
        Some(json!({"kind": "access"})),
    );
    // Before the fix it completed at once, its export without the account.
    assert_unanswered(&mut access, "completed before the read model applied the sign-up").await;
    hold.rollback().await.expect("release the checkpoint row");
    let (status, access) = access.await.expect("the request task");
    assert_eq!(status, StatusCode::CREATED, "{access}");
    assert_eq!(access["state"], "completed", "{access}");
    let (status, export) = app
        .send(
            &me,
            Method::GET,
            &format!(
                "/v1/me/privacy-requests/{}/export",
                access["request_id"].as_str().unwrap()
            ),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{export}");
    assert_eq!(
        export["read_models"]["accounts"][0]["name"], NAME,
        "{}",
        export["read_models"]
    );
    app.stop().await;
}
