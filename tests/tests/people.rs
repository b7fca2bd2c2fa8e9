//! People and their consents end to end, on both backends: sign-up with sealed fields, the age
//! gate (and a sign-up stored in the shape of version 1), consents and policy acceptance, the auditor's replay at several instants, click ids
//! under consent, crypto-shredding, and a scan of every table for plaintext personal data.

use api::auth::Role;
use eventlog::{dispatch, Db};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::sync::Arc;
use tests::{cells_holding, Backend, TestApp};

const NAME: &str = "Zainab Qureshi-Plaintext";
const EMAIL: &str = "zainab.plaintext@example.test";
const AVATAR: &str = "https://cdn.example.test/avatars/zainab-plaintext.png";
const FBC: &str = "fb.1.1700000000.AbCdEfPlaintextFbc";
const FBP: &str = "fb.1.1700000000.9876543210PlaintextFbp";

struct Api<'a> {
    app: &'a TestApp,
}

impl Api<'_> {
    async fn send(&self, method: reqwest::Method, path: &str, token: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = self
            .app
            .client
            .request(method, format!("{}{path}", self.app.base_url))
            .bearer_auth(token)
            .header("user-agent", "Mozilla/5.0 (test)");
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("sent");
        let status = response.status();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, body)
    }
    async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.send(reqwest::Method::POST, path, token, Some(body)).await
    }
    async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.send(reqwest::Method::GET, path, token, None).await
    }
}

fn sign_up_body(person: &str, birth_date: &str, country: &str) -> Value {
    json!({
        "person_id": person,
        "provider": "google",
        "provider_subject": "google-oauth2|1234567890",
        "name": NAME,
        "email": EMAIL,
        "avatar_url": AVATAR,
        "country": country,
        "birth_date": birth_date,
    })
}

fn consent(purpose: &str, granted: bool, version: &str) -> Value {
    json!({
        "purpose": purpose,
        "granted": granted,
        "method": "banner",
        "jurisdiction": "PK",
        "notice": { "version_label": version },
    })
}

async fn publish(api: &Api<'_>, support: &str, label: &str, date: &str) -> String {
    let (status, body) = api
        .post(
            "/v1/policies",
            support,
            json!({"label": label, "effective_date": date, "locale": "en", "text": format!("text of {label}"), "summary_of_changes": "changes"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["position"].as_str().unwrap().to_string()
}

async fn the_whole_story(backend: Backend) {
    let Some(app) = TestApp::spawn(backend, &[]).await else {
        return;
    };
    let api = Api { app: &app };
    let person = format!("p{}", uuid::Uuid::now_v7().simple());
    let service = app.token("auth-hook", Role::Service);
    let support = app.token("support-1", Role::Support);
    let auditor = app.token("auditor-1", Role::Auditor);
    let me = app.token(&person, Role::Person);

    publish(&api, &support, "v1", "2020-01-01").await;

    // An under-age sign-up (Germany: 16) is refused neutrally and stores nothing.
    let child = format!("c{}", uuid::Uuid::now_v7().simple());
    let (status, body) = api
        .post("/v1/accounts", &service, sign_up_body(&child, "2015-01-01", "DE"))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["detail"], "sign-up is not available");
    let child_rows: i64 = dispatch!(&app.db.db, Db, |pool| {
        let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE aggregate_id = $1")
            .bind(&child)
            .fetch_one(pool)
            .await
            .unwrap();
        let keys: i64 = sqlx::query_scalar("SELECT count(*) FROM vault_keys WHERE key_ref LIKE '%' || $1 || '%'")
            .bind(&child)
            .fetch_one(pool)
            .await
            .unwrap();
        events + keys
    });
    assert_eq!(child_rows, 0, "an under-age sign-up leaves no event and no key");
    assert_eq!(
        feed_holding(&app, &child).await,
        0,
        "an under-age sign-up leaves no event in the feed"
    );

    // Sign-up, then the person reads their own profile.
    let (status, body) = api
        .post("/v1/accounts", &service, sign_up_body(&person, "1995-05-05", "PK"))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let token = body["position"].as_str().unwrap().to_string();
    let (status, profile) = api.get(&format!("/v1/me?min_position={token}"), &me).await;
    assert_eq!(status, StatusCode::OK, "{profile}");
    assert_eq!(profile["name"], NAME);
    assert_eq!(profile["email"], EMAIL);
    assert_eq!(profile["avatar_url"], AVATAR);
    assert_eq!(
        profile["minimum_age"], 13,
        "Pakistan's minimum age, which the age gate checked"
    );
    assert_eq!(profile["minimum_age_met"], true);
    assert_eq!(profile["erased"], false);
    let (status, _) = api
        .post("/v1/accounts", &service, sign_up_body(&person, "1995-05-05", "PK"))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = api
        .post("/v1/accounts", &me, sign_up_body("someone", "1995-05-05", "PK"))
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "only the auth provider's service signs people up"
    );

    // Consents over time, at instants the test sets, with instants in between for the auditor.
    let at = |text: &str| text.parse::<chrono::DateTime<chrono::Utc>>().unwrap();
    let before_any = at("2026-11-15T09:59:00Z");
    app.clock.set(at("2026-11-15T10:00:00Z"));
    let (status, granted) = api
        .post("/v1/me/consents", &me, consent("ai_features", true, "v1"))
        .await;
    assert_eq!(status, StatusCode::OK, "{granted}");
    assert_eq!(granted["changed"], true);
    let (_, again) = api
        .post("/v1/me/consents", &me, consent("ai_features", true, "v1"))
        .await;
    assert_eq!(
        again["changed"], false,
        "granting twice under the same notice records nothing"
    );
    let after_grant = at("2026-11-15T10:30:00Z");
    app.clock.set(at("2026-11-15T11:00:00Z"));
    let (status, _) = api
        .post("/v1/me/consents", &me, consent("ai_features", false, "v1"))
        .await;
    assert_eq!(status, StatusCode::OK);
    let after_withdrawal = at("2026-11-15T11:30:00Z");
    app.clock.set(at("2026-11-15T12:00:00Z"));
    let (status, body) = api
        .post("/v1/me/consents", &me, consent("ai_features", true, "v7"))
        .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "an unpublished notice is refused: {body}"
    );

    // A new policy version, accepted by continued use after notification.
    let v2 = publish(&api, &support, "v2", "2021-01-01").await;
    let (status, body) = api
        .post(
            &format!("/v1/me/policy-acceptances?min_position={v2}"),
            &me,
            json!({"version_label": "v2", "mode": "continued_use", "notified_at": "2026-11-01T09:00:00Z"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Click ids: refused without ad_attribution, stored sealed with it.
    let (status, _) = api
        .post("/v1/me/attribution-ids", &me, json!({"fbc": FBC, "fbp": FBP}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (_, attribution) = api
        .post("/v1/me/consents", &me, consent("ad_attribution", true, "v2"))
        .await;
    let (status, body) = api
        .post("/v1/me/attribution-ids", &me, json!({"fbc": FBC, "fbp": FBP}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["relied_on"], attribution["event_id"],
        "the write names the consent it relied on"
    );
    let (_, support_change) = api
        .post(
            &format!("/v1/support/people/{person}/consents"),
            &support,
            consent("email.marketing", true, "v2"),
        )
        .await;
    let last = support_change["position"].as_str().unwrap().to_string();

    // The person's own view of their consents.
    let (_, mine) = api.get(&format!("/v1/me/consents?min_position={last}"), &me).await;
    let by_purpose = |p: &str| {
        mine["consents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["purpose"] == p)
            .unwrap()
            .clone()
    };
    assert_eq!(by_purpose("ai_features")["granted"], false);
    assert_eq!(by_purpose("email.marketing")["method"], "support_on_behalf");
    assert_eq!(by_purpose("cookies.analytics")["decided"], false);

    // The auditor asks for several instants.
    let replay = |at: chrono::DateTime<chrono::Utc>| {
        let path = format!(
            "/v1/audit/people/{person}/consents?as_of={}",
            at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                .replace('+', "%2B")
        );
        let api = &api;
        let auditor = auditor.clone();
        async move { api.get(&path, &auditor).await }
    };
    let ai = |r: &Value| {
        r["purposes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["purpose"] == "ai_features")
            .unwrap()
            .clone()
    };
    let (status, at0) = replay(before_any).await;
    assert_eq!(status, StatusCode::OK, "{at0}");
    assert_eq!(ai(&at0)["granted"], false);
    assert_eq!(ai(&at0)["set_by"], Value::Null);
    let (_, at1) = replay(after_grant).await;
    assert_eq!(ai(&at1)["granted"], true);
    assert_eq!(ai(&at1)["set_by"]["notice"]["version_label"], "v1");
    assert_eq!(ai(&at1)["set_by"]["notice"]["text_sha256"].as_str().unwrap().len(), 64);
    assert_eq!(ai(&at1)["set_by"]["method"], "banner");
    assert_eq!(ai(&at1)["set_by"]["evidence"]["user_agent"], "Mozilla/5.0 (test)");
    assert_eq!(ai(&at1)["set_by"]["evidence"]["ip_truncated"], "127.0.0.0/24");
    let (_, at2) = replay(after_withdrawal).await;
    assert_eq!(ai(&at2)["granted"], false);
    assert_eq!(ai(&at2)["set_by"]["change"], "withdrawn");
    assert_eq!(at2["policy_acceptance"], Value::Null);
    let (_, now) = replay(app.now()).await;
    assert_eq!(now["chain"]["verified"], true);
    assert_eq!(now["policy_acceptance"]["notice"]["version_label"], "v2");
    assert_eq!(
        now["policy_acceptance"]["acceptance"]["mode"],
        "continued_use_after_notification"
    );
    let receipt_id = ai(&at1)["set_by"]["event_id"].as_str().unwrap().to_string();
    let (status, receipt) = api
        .get(
            &format!("/v1/audit/people/{person}/consents/receipts/{receipt_id}"),
            &auditor,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{receipt}");
    assert_eq!(receipt["state"], "given");
    assert_eq!(receipt["purposes"][0]["purpose"], "ai_features");
    assert_eq!(receipt["integrity"]["chain_verified"], true);
    let (status, _) = api.get(&format!("/v1/audit/people/{person}/consents"), &me).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "only auditors replay");

    // No table or column holds any personal value in plaintext.
    for secret in [NAME, EMAIL, AVATAR, FBC, FBP, "google-oauth2|1234567890"] {
        assert_eq!(
            cells_holding(&app.db.db, secret).await,
            Vec::<String>::new(),
            "{secret} is stored in plaintext"
        );
        assert_eq!(
            feed_holding(&app, secret).await,
            0,
            "{secret} is in an event in plaintext"
        );
    }

    // A ciphertext copied to another person or field does not open.
    let vault = vault::Vault::new(app.db.db.clone(), Arc::new(app.settings.master_keyring().unwrap()));
    let sealed_name: String = dispatch!(&app.db.db, Db, |pool| {
        sqlx::query_scalar("SELECT name_sealed FROM accounts WHERE person_id = $1")
            .bind(&person)
            .fetch_one(pool)
            .await
            .unwrap()
    });
    let sealed_name: vault::SealedValue = serde_json::from_str(&sealed_name).unwrap();
    assert!(vault
        .open(&vault::KeyRef::person("someone-else"), "name", &sealed_name)
        .await
        .is_err());
    assert!(vault
        .open(&vault::KeyRef::person(&person), "email", &sealed_name)
        .await
        .is_err());
    assert!(vault
        .open(&vault::KeyRef::person(&person), "name", &sealed_name)
        .await
        .unwrap()
        .as_plain()
        .is_some());

    // Withdrawing ad_attribution destroys the click ids' key at once.
    let sealed_fbc = {
        let events = app.db.log().load("consent", &person).await.unwrap();
        let recorded = events
            .iter()
            .find(|e| e.event_type == "AttributionIdsRecorded")
            .unwrap();
        serde_json::from_value::<vault::SealedValue>(recorded.payload["AttributionIdsRecorded"]["fbc"].clone()).unwrap()
    };
    let attribution_key = vault::KeyRef::purpose(&person, "ad_attribution");
    assert!(vault
        .open(&attribution_key, "fbc", &sealed_fbc)
        .await
        .unwrap()
        .as_plain()
        .is_some());
    let (status, withdrawn) = api
        .post("/v1/me/consents", &me, consent("ad_attribution", false, "v2"))
        .await;
    assert_eq!(status, StatusCode::OK, "{withdrawn}");
    assert_eq!(withdrawn["changed"], true);
    // A fresh vault, as another process would be (this one cached the key a moment ago).
    let vault = vault::Vault::new(app.db.db.clone(), Arc::new(app.settings.master_keyring().unwrap()));
    assert!(vault
        .open(&attribution_key, "fbc", &sealed_fbc)
        .await
        .unwrap()
        .is_erased());

    // Learned to be a child's account: every key goes; fields read as erased, chains verify.
    let (status, body) = api
        .post(
            &format!("/v1/support/people/{person}/child"),
            &support,
            json!({"report": "parent_or_guardian"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let position = body["position"].as_str().unwrap().to_string();
    let (_, profile) = api.get(&format!("/v1/me?min_position={position}"), &me).await;
    assert_eq!(profile["erased"], true, "{profile}");
    assert_eq!(profile["name"], Value::Null);
    assert_eq!(profile["email"], Value::Null);
    assert!(vault
        .open(&vault::KeyRef::person(&person), "name", &sealed_name)
        .await
        .unwrap()
        .is_erased());
    let (_, after) = replay(app.now()).await;
    assert_eq!(after["chain"]["verified"], true, "chains still verify after shredding");
    assert_eq!(ai(&after)["granted"], false);
    let (_, verify) = api.get("/v1/audit/verify", &auditor).await;
    assert_eq!(verify["all_verified"], true);
    app.stop().await;
}

async fn sealed(vault: &vault::Vault, key: &vault::KeyRef, field: &str, text: &str) -> Value {
    serde_json::to_value(vault.seal(key, field, text.as_bytes()).await.unwrap()).unwrap()
}

/// A sign-up stored as `SignedUp` version 1, whose `minimum_age_met` held the minimum age
/// itself (16 in Germany): the profile answers that minimum age and that it was met, through
/// the upcaster and the `accounts` read model.
async fn a_sign_up_stored_as_version_one(backend: Backend) {
    let Some(app) = TestApp::spawn(backend, &[]).await else {
        return;
    };
    let api = Api { app: &app };
    let person = format!("p{}", uuid::Uuid::now_v7().simple());
    let vault = vault::Vault::new(app.db.db.clone(), Arc::new(app.settings.master_keyring().unwrap()));
    let key = vault::KeyRef::person(&person);
    let v1 = json!({"SignedUp": {
        "provider": "google",
        "provider_subject": sealed(&vault, &key, "provider_subject", "google-oauth2|1234567890").await,
        "name": sealed(&vault, &key, "name", NAME).await,
        "email": sealed(&vault, &key, "email", EMAIL).await,
        "avatar_url": null,
        "country": "DE",
        "minimum_age_met": 16,
    }});
    let appended = app
        .db
        .log()
        .append(
            "account",
            &person,
            0,
            vec![eventlog::NewEvent::json("SignedUp", "1", &v1)],
            &eventlog::EventMetadata::system(),
        )
        .await
        .unwrap();
    let token = appended.last().unwrap().1.to_string();
    let (status, profile) = api
        .get(
            &format!("/v1/me?min_position={token}"),
            &app.token(&person, Role::Person),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{profile}");
    assert_eq!(profile["country"], "DE");
    assert_eq!(profile["minimum_age"], 16);
    assert_eq!(profile["minimum_age_met"], true);
    assert_eq!(profile["name"], NAME);
    // A command on that stream decodes it too.
    let (status, body) = api
        .send(
            reqwest::Method::PATCH,
            "/v1/me",
            &app.token(&person, Role::Person),
            Some(json!({"name": "Zainab Q."})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_up_stored_as_version_one_reads_as_its_minimum_age_and_that_it_was_met_on_sqlite() {
    a_sign_up_stored_as_version_one(Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_up_stored_as_version_one_reads_as_its_minimum_age_and_that_it_was_met_on_postgres() {
    a_sign_up_stored_as_version_one(Backend::Postgres).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_up_consents_and_is_replayed_by_an_auditor_on_sqlite() {
    the_whole_story(Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_up_consents_and_is_replayed_by_an_auditor_on_postgres() {
    the_whole_story(Backend::Postgres).await
}

/// The service with `DYNAMOI_EVENT_STORE_URL=kurrentdb://…` (the stand-in, or
/// `DYNAMOI_TEST_KURRENTDB_URL`): events in KurrentDB, read models and the vault in SQLite.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_up_consents_and_is_replayed_by_an_auditor_on_kurrentdb() {
    the_whole_story(Backend::KurrentDb).await
}

/// The feed's events whose aggregate id, payload or metadata text holds `needle` (the SQL
/// checks above do not see events kept in KurrentDB).
async fn feed_holding(app: &TestApp, needle: &str) -> usize {
    let feed = app
        .app
        .log
        .read_feed(eventlog::Position::START, 1_000_000)
        .await
        .expect("read the feed");
    feed.iter()
        .filter(|e| {
            e.aggregate_id.contains(needle)
                || e.payload.to_string().contains(needle)
                || serde_json::to_string(&e.metadata).unwrap_or_default().contains(needle)
        })
        .count()
}
