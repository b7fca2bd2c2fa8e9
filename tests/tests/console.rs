//! The web console (`/console`) in a real browser: headless Chromium from Debian's packages,
//! driven over WebDriver, against a running service with data (the demo, a person with consent
//! changes, an erased person). Each page is loaded at a desktop's width and a phone's, its DOM
//! is checked against the API's own answers fetched here (timeline order, the as-of replay,
//! chart points, totals, request steps, projections), the browser's console must stay free of
//! errors, and a screenshot of each page is saved under `target/console-screenshots/`.

use api::auth::Role;
use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;
use tests::browser::{keys, Browser, LogEntry};
use tests::{Backend, TestApp};

const WAIT: Duration = Duration::from_secs(30);
const DESKTOP: (u32, u32) = (1280, 900);
const PHONE: (u32, u32) = (375, 812);

/// Where screenshots go: `target/console-screenshots/` of the workspace.
fn screenshot(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("console-screenshots").join(format!("{name}.png"))
}

async fn app() -> TestApp {
    // A failed privacy step is retried by hand here (the support page's retry), not by the
    // workflow's own backoff.
    TestApp::spawn(Backend::Sqlite, &[("DYNAMOI_WORKFLOW_BACKOFF_MS", "3600000")])
        .await
        .expect("SQLite is always there")
}

async fn get(app: &TestApp, token: &str, route: &str) -> Value {
    let (status, body) = app.send(token, Method::GET, route, None).await;
    assert_eq!(status, StatusCode::OK, "GET {route}: {body}");
    body
}

async fn post(app: &TestApp, token: &str, route: &str, body: Value) -> Value {
    let (status, answer) = app.send(token, Method::POST, route, Some(body)).await;
    assert!(status.is_success(), "POST {route}: {status} {answer}");
    answer
}

/// Opens `/console#hash` and waits until the page has loaded what it shows.
async fn visit(browser: &Browser, app: &TestApp, hash: &str) {
    browser
        .execute("if (document.body) document.body.dataset.ready = 'stale'", vec![])
        .await;
    let url = format!("{}/console{hash}", app.base_url);
    // Going to the very URL on screen would change nothing: reload it instead.
    if browser.execute("return location.href", vec![]).await == json!(url) {
        browser.refresh().await;
    } else {
        browser.goto(&url).await;
    }
    ready(browser).await;
}

async fn ready(browser: &Browser) {
    browser
        .wait_for(
            "the page to finish loading",
            "return document.body.dataset.ready === 'true'",
            WAIT,
        )
        .await;
}

/// Signs in through the sign-in form, with the keyboard.
async fn sign_in(browser: &Browser, app: &TestApp, token: &str) {
    visit(browser, app, "").await;
    browser
        .wait_for(
            "the sign-in form",
            "return !document.getElementById('sign-in').hidden",
            WAIT,
        )
        .await;
    browser
        .type_into("#token-input", &format!("{token}{}", keys::ENTER))
        .await;
    browser
        .wait_for(
            "the signed-in header",
            "return !document.getElementById('who').hidden",
            WAIT,
        )
        .await;
    ready(browser).await;
}

/// Fails on any error in the browser's console, except network refusals whose message holds
/// one of `expected` (a 404 the page asked for on purpose).
async fn assert_no_console_errors(browser: &Browser, expected: &[&str]) {
    let errors: Vec<LogEntry> = browser
        .logs()
        .await
        .into_iter()
        .filter(|e| e.level == "SEVERE" || e.level == "WARNING")
        .filter(|e| !(e.source == "network" && expected.iter().any(|x| e.message.contains(x))))
        .collect();
    assert!(errors.is_empty(), "the browser's console has errors: {errors:#?}");
    let alert = browser
        .execute(
            "const a = document.getElementById('alert'); return a.hidden ? '' : a.textContent",
            vec![],
        )
        .await;
    assert_eq!(alert, json!(""), "the page shows an error");
}

/// At this width nothing sticks out sideways (wide tables scroll inside their own box).
async fn assert_fits(browser: &Browser) {
    let sizes = browser
        .execute(
            "return [document.documentElement.scrollWidth, window.innerWidth]",
            vec![],
        )
        .await;
    assert!(
        sizes[0].as_u64() <= sizes[1].as_u64(),
        "the page is wider than the viewport: {sizes}"
    );
}

async fn shoot(browser: &Browser, name: &str) {
    browser.screenshot(&screenshot(name)).await;
}

// ---------------------------------------------------------------------------------------------
// Served files and the operations route (no browser)

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_is_served_with_a_strict_policy_and_every_file_it_loads() {
    let app = app().await;
    let client = &app.client;
    let page = client.get(format!("{}/console", app.base_url)).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let headers = page.headers().clone();
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(headers["cache-control"], "no-cache");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    let policy = headers["content-security-policy"].to_str().unwrap().to_string();
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(policy.contains(directive), "{policy} lacks {directive}");
    }
    assert!(!policy.contains("unsafe"), "{policy}");
    let etag = headers["etag"].to_str().unwrap().to_string();
    let html = page.text().await.unwrap();
    let again = client
        .get(format!("{}/console", app.base_url))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "an unchanged page is a 304");

    // Every file the page and its modules load is served, with its type and the same policy.
    let mut wanted: Vec<String> = html
        .split('"')
        .filter_map(|s| s.strip_prefix("/console/assets/"))
        .map(str::to_string)
        .collect();
    let mut seen = Vec::new();
    while let Some(name) = wanted.pop() {
        if seen.contains(&name) {
            continue;
        }
        let response = client
            .get(format!("{}/console/assets/{name}", app.base_url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{name}");
        let kind = response.headers()["content-type"].to_str().unwrap().to_string();
        let expected = match name.rsplit('.').next() {
            Some("js") => "text/javascript; charset=utf-8",
            Some("css") => "text/css; charset=utf-8",
            Some("svg") => "image/svg+xml",
            other => panic!("unexpected file type {other:?}"),
        };
        assert_eq!(kind, expected, "{name}");
        assert_eq!(response.headers()["content-security-policy"], policy.as_str());
        assert!(response.headers().contains_key("etag"));
        let body = response.text().await.unwrap();
        if name.ends_with(".js") {
            for import in body.split("from './").skip(1) {
                wanted.push(import.split('\'').next().unwrap().to_string());
            }
            assert!(!body.contains("console.log"), "{name} logs to the console");
            assert!(!body.contains("innerHTML"), "{name} writes HTML from strings");
        }
        seen.push(name);
    }
    assert!(seen.len() >= 9, "the page loads its modules: {seen:?}");
    let missing = client
        .get(format!("{}/console/assets/nothing.js", app.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_read_the_projections_and_the_feed_head() {
    let app = app().await;
    let route = "/v1/operations/projections";
    let anonymous = app.client.get(format!("{}{route}", app.base_url)).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let (status, _) = app
        .send(&app.token("someone", Role::Person), Method::GET, route, None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "people do not see operations");
    let support = app.token("support-1", Role::Support);
    post(
        &app,
        &support,
        "/v1/policies",
        json!({"label": "ops-1", "effective_date": "2020-01-01", "locale": "en", "text": "t", "summary_of_changes": "s"}),
    )
    .await;
    for role in [Role::Support, Role::Auditor, Role::Service] {
        let body = get(&app, &app.token("staff-1", role), route).await;
        let names: Vec<&str> = body["projections"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        let all = projections::all();
        let expected: Vec<&str> = all.iter().map(|p| p.name()).collect();
        assert_eq!(names, expected, "{role}");
        let events = app.event_count().await;
        assert_eq!(body["feed_head"]["events"], json!(events));
        // On SQLite positions are gap-free: the head is the count.
        assert_eq!(body["feed_head"]["position"], format!("0.{events}"));
    }
    let (status, _) = app.send(&support, Method::GET, &format!("{route}?x=1"), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "unknown parameters are refused");
}

// ---------------------------------------------------------------------------------------------
// The auditor

async fn sign_up(app: &TestApp, person: &str) {
    post(
        app,
        &app.token("auth-hook", Role::Service),
        "/v1/accounts",
        json!({
            "person_id": person, "provider": "google", "provider_subject": format!("google|{person}"),
            "name": "Console Person", "email": format!("{person}@example.test"), "country": "PK",
            "birth_date": "1990-02-03"
        }),
    )
    .await;
}

/// A consent change an hour after the service's clock (each change at its own set instant).
async fn consent(app: &TestApp, person: &str, purpose: &str, granted: bool) {
    app.clock.advance(chrono::Duration::hours(1));
    post(
        app,
        &app.token(person, Role::Person),
        "/v1/me/consents",
        json!({"purpose": purpose, "granted": granted, "method": "settings_page", "jurisdiction": "PK",
               "notice": {"version_label": "2026-11"}}),
    )
    .await;
}

/// The state per purpose the page shows: (purpose, granted, set by).
async fn shown_state(browser: &Browser) -> Value {
    browser
        .execute(
            "return [...document.querySelectorAll('#as-of-result tr[data-purpose]')].map(r =>
               [r.dataset.purpose, r.dataset.granted === 'true', r.dataset.setBy])",
            vec![],
        )
        .await
}

fn api_state(replay: &Value) -> Value {
    Value::Array(
        replay["purposes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                json!([
                    p["purpose"],
                    p["granted"],
                    p["set_by"]["event_id"].as_str().unwrap_or("")
                ])
            })
            .collect(),
    )
}

/// Waits until the as-of result shows the replay asked for `instant`, and checks it against
/// the API's replay at that instant.
async fn assert_as_of(browser: &Browser, app: &TestApp, auditor: &str, person: &str, instant: &str) {
    let script = format!(
        "const r = document.getElementById('as-of-result');
         return r.dataset.requested === {instant:?} && r.dataset.loading === 'false'"
    );
    browser
        .wait_for(&format!("the replay as of {instant}"), &script, WAIT)
        .await;
    let replay = get(
        app,
        auditor,
        &format!("/v1/audit/people/{person}/consents?as_of={instant}"),
    )
    .await;
    assert_eq!(
        shown_state(browser).await,
        api_state(&replay),
        "the state as of {instant}"
    );
    let shown_as_of = browser
        .execute("return document.getElementById('as-of-result').dataset.asOf", vec![])
        .await;
    assert_eq!(shown_as_of, replay["as_of"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_auditor_sees_the_timeline_replays_any_instant_and_an_erasure() {
    let app = app().await;
    let support = app.token("support-1", Role::Support);
    let auditor = app.token("auditor-1", Role::Auditor);
    post(
        &app,
        &support,
        "/v1/policies",
        json!({"label": "2026-11", "effective_date": "2020-01-01", "locale": "en",
               "text": "the policy text", "summary_of_changes": "first"}),
    )
    .await;
    // Each change is recorded an hour after the one before (the service's clock is set).
    let person = "consenting-1";
    sign_up(&app, person).await;
    consent(&app, person, "ai_features", true).await;
    consent(&app, person, "email.marketing", true).await;
    consent(&app, person, "ai_features", false).await;
    app.clock.advance(chrono::Duration::hours(1));
    post(
        &app,
        &app.token(person, Role::Person),
        "/v1/me/policy-acceptances",
        json!({"version_label": "2026-11", "mode": "explicit"}),
    )
    .await;
    consent(&app, person, "ad_attribution", true).await;
    consent(&app, person, "email.marketing", false).await;

    // A request opened by support 40 days ago (the clock set back) and never verified: past
    // its deadline.
    let today = app.now();
    app.clock.set(today - chrono::Duration::days(40));
    let overdue = post(
        &app,
        &support,
        &format!("/v1/support/people/{person}/privacy-requests"),
        json!({"kind": "access", "reason": "letter received by post"}),
    )
    .await;
    let overdue_id = overdue["request_id"].as_str().unwrap().to_string();
    app.clock.set(today);

    let erased = "erased-1";
    sign_up(&app, erased).await;
    consent(&app, erased, "email.marketing", true).await;
    let marked = post(
        &app,
        &support,
        &format!("/v1/support/people/{erased}/child"),
        json!({"report": "parent_or_guardian"}),
    )
    .await;
    let settled = tests::wait_until(WAIT, || async {
        let (_, list) = app
            .send(
                &auditor,
                Method::GET,
                &format!("/v1/audit/privacy-requests?person={erased}&state=completed"),
                None,
            )
            .await;
        list["requests"].as_array().is_some_and(|r| r.len() == 1)
    })
    .await;
    assert!(settled, "the child's erasure is in the audit trail: {marked}");
    let listed = tests::wait_until(WAIT, || async {
        let (_, list) = app
            .send(
                &auditor,
                Method::GET,
                &format!("/v1/audit/privacy-requests?person={person}"),
                None,
            )
            .await;
        list["requests"].as_array().is_some_and(|r| r.len() == 1)
    })
    .await;
    assert!(listed, "the overdue request is in the audit trail");

    let full = get(&app, &auditor, &format!("/v1/audit/people/{person}/consents")).await;
    let history = full["history"].as_array().unwrap().clone();
    assert_eq!(history.len(), 6);

    let browser = Browser::start(DESKTOP.0, DESKTOP.1).await;
    sign_in(&browser, &app, &auditor).await;
    let current = browser.execute("return location.hash", vec![]).await;
    assert_eq!(current, "#/auditor", "an auditor lands on the auditor's page");
    visit(&browser, &app, &format!("#/auditor?person={person}")).await;

    // The timeline: per purpose, the API's changes in the API's order.
    let groups = browser
        .execute(
            "const out = {}; for (const g of document.querySelectorAll('.timeline-group')) {
               out[g.dataset.group] = [...g.querySelectorAll('li[data-event-id]')].map(li => [li.dataset.eventId, li.dataset.change]);
             } return out;",
            vec![],
        )
        .await;
    let group_of = |e: &Value| match e["change"].as_str().unwrap() {
        "policy_accepted" => "policy".to_string(),
        "attribution_ids_recorded" => "ad_attribution".to_string(),
        _ => e["purpose"].as_str().unwrap().to_string(),
    };
    let mut expected = serde_json::Map::new();
    for p in full["purposes"].as_array().unwrap() {
        expected.insert(p["purpose"].as_str().unwrap().into(), json!([]));
    }
    expected.insert("policy".into(), json!([]));
    for e in &history {
        expected[&group_of(e)]
            .as_array_mut()
            .unwrap()
            .push(json!([e["event_id"], e["change"]]));
    }
    assert_eq!(groups, Value::Object(expected), "the timeline per purpose");
    let first = &history[0];
    let entry_text = browser
        .execute(
            "return document.querySelector(`li[data-event-id='${arguments[0]}']`).textContent",
            vec![first["event_id"].clone()],
        )
        .await;
    let entry_text = entry_text.as_str().unwrap();
    for shown in [
        first["notice"]["text_sha256"].as_str().unwrap(),
        first["notice"]["version_label"].as_str().unwrap(),
        first["method"].as_str().unwrap(),
        first["recorded_at"].as_str().unwrap(),
    ] {
        assert!(entry_text.contains(shown), "{entry_text} lacks {shown}");
    }
    let marks = browser
        .execute(
            "return [...document.querySelectorAll('[data-chain]')].map(m => m.dataset.chain)",
            vec![],
        )
        .await;
    assert!(
        marks.as_array().unwrap().len() >= 2 && marks.as_array().unwrap().iter().all(|m| m == "verified"),
        "{marks}"
    );

    // A receipt, opened with the keyboard.
    let event_id = first["event_id"].as_str().unwrap();
    browser
        .execute(
            "document.querySelector(`li[data-event-id='${arguments[0]}'] button`).focus()",
            vec![json!(event_id)],
        )
        .await;
    browser
        .type_into(&format!("li[data-event-id='{event_id}'] button"), keys::ENTER)
        .await;
    let shown_hash = browser
        .wait_for(
            "the receipt",
            "const r = document.querySelector('[data-receipt] [data-chain-hash]'); return r && r.dataset.chainHash",
            WAIT,
        )
        .await;
    let receipt = get(
        &app,
        &auditor,
        &format!("/v1/audit/people/{person}/consents/receipts/{event_id}"),
    )
    .await;
    assert_eq!(shown_hash, receipt["integrity"]["chain_hash"]);

    // The as-of control: the slider steps through every change (keyboard), each instant
    // showing what the API's replay answers for it.
    assert_as_of_now(&browser, &full).await;
    browser
        .execute("document.getElementById('as-of-step').focus()", vec![])
        .await;
    browser.type_into("#as-of-step", keys::HOME).await;
    assert_as_of(&browser, &app, &auditor, person, "1970-01-01T00:00:00Z").await;
    for change in &history {
        browser.type_into("#as-of-step", keys::RIGHT).await;
        assert_as_of(
            &browser,
            &app,
            &auditor,
            person,
            change["recorded_at"].as_str().unwrap(),
        )
        .await;
    }
    // Any instant typed in: halfway between the second and third changes.
    let at = |e: &Value| e["recorded_at"].as_str().unwrap().parse::<DateTime<Utc>>().unwrap();
    let middle = at(&history[1]) + (at(&history[2]) - at(&history[1])) / 2;
    let middle = middle.to_rfc3339_opts(SecondsFormat::Micros, true);
    browser.clear("#as-of-instant").await;
    browser
        .type_into("#as-of-instant", &format!("{middle}{}", keys::ENTER))
        .await;
    assert_as_of(&browser, &app, &auditor, person, &middle).await;
    let state = shown_state(&browser).await;
    assert_eq!(
        state[3],
        json!(["ai_features", true, history[0]["event_id"]]),
        "halfway, AI features are granted by the first change"
    );
    // The overdue request, marked as the audit trail marks it.
    let trail = get(&app, &auditor, &format!("/v1/audit/privacy-requests?person={person}")).await;
    assert_eq!(trail["requests"][0]["overdue"], true, "{trail}");
    let shown = browser
        .execute(
            "const a = document.querySelector('article.request');
             return [a.dataset.requestId, a.dataset.overdue, a.classList.contains('overdue'),
                     a.querySelector('.deadline time').getAttribute('datetime'), a.querySelectorAll('.badge-overdue').length]",
            vec![],
        )
        .await;
    assert_eq!(
        shown,
        json!([overdue_id, "true", true, trail["requests"][0]["deadline"], 1])
    );
    assert_no_console_errors(&browser, &[]).await;
    assert_fits(&browser).await;
    shoot(&browser, "auditor-1280").await;

    // The erased person: the request's steps as the audit trail has them, and the certificate.
    visit(&browser, &app, &format!("#/auditor?person={erased}")).await;
    let trail = get(&app, &auditor, &format!("/v1/audit/privacy-requests?person={erased}")).await;
    let request = &trail["requests"][0];
    let shown = browser
        .execute(
            "const a = document.querySelector('article.request');
             return {id: a.dataset.requestId, state: a.dataset.state, overdue: a.dataset.overdue,
                     steps: [...a.querySelectorAll('tr[data-step]')].map(r => [r.dataset.step, r.dataset.status, Number(r.dataset.attempts)])}",
            vec![],
        )
        .await;
    let steps: Vec<Value> = request["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| json!([s["step"], s["status"], s["attempts"]]))
        .collect();
    assert_eq!(
        shown,
        json!({"id": request["request_id"], "state": "completed", "overdue": request["overdue"].to_string(), "steps": steps})
    );
    let certificates = get(
        &app,
        &auditor,
        &format!("/v1/audit/people/{erased}/erasure-certificates"),
    )
    .await;
    let certificate = browser
        .execute(
            "const c = document.querySelector('article.certificate');
             return c && [c.dataset.requestId, Number(c.dataset.keys), c.querySelector('[data-chain]').dataset.chain]",
            vec![],
        )
        .await;
    assert_eq!(
        certificate,
        json!([
            certificates["certificates"][0]["request_id"],
            certificates["certificates"][0]["certificate"]["keys_destroyed"]
                .as_array()
                .unwrap()
                .len(),
            "verified"
        ])
    );
    assert_no_console_errors(&browser, &[]).await;
    shoot(&browser, "auditor-erased-1280").await;

    browser.resize(PHONE.0, PHONE.1).await;
    visit(&browser, &app, &format!("#/auditor?person={person}")).await;
    assert_eq!(browser.viewport_width().await, u64::from(PHONE.0));
    assert_fits(&browser).await;
    assert_no_console_errors(&browser, &[]).await;
    shoot(&browser, "auditor-375").await;
}

/// Before the control is touched, the page shows the state now, as the full replay does.
async fn assert_as_of_now(browser: &Browser, full: &Value) {
    assert_eq!(shown_state(browser).await, api_state(full));
}

// ---------------------------------------------------------------------------------------------
// Support

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn support_opens_verifies_retries_extends_and_completes_a_request_by_hand() {
    use wiremock::matchers::{method, path_regex};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    // PostHog refuses the erasure (a 403 is not retried): the request stops at that step.
    let posthog = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path_regex("^/api/projects/.*"))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({"detail": "no"})))
        .mount(&posthog)
        .await;
    let uri = posthog.uri();
    let app = TestApp::spawn(
        Backend::Sqlite,
        &[
            ("DYNAMOI_POSTHOG_BASE_URL", &uri),
            ("DYNAMOI_POSTHOG_PROJECT_ID", "7"),
            ("DYNAMOI_POSTHOG_API_KEY", "phx_console_test"),
            // The failed step is retried by hand (the Retry button), not by the workflow's backoff;
            // one failure parks the request's workflow item, which the page lists.
            ("DYNAMOI_WORKFLOW_BACKOFF_MS", "3600000"),
            ("DYNAMOI_WORKFLOW_MAX_ATTEMPTS", "1"),
        ],
    )
    .await
    .unwrap();
    let person = "asks-by-email";
    sign_up(&app, person).await;
    let support = app.token("support-9", Role::Support);

    let browser = Browser::start(DESKTOP.0, DESKTOP.1).await;
    sign_in(&browser, &app, &support).await;
    assert_eq!(browser.execute("return location.hash", vec![]).await, "#/support");
    let parked_rows = async |browser: &Browser| {
        browser
            .execute(
                "const w = document.getElementById('workflows');
                 return [w.dataset.available, [...w.querySelectorAll('tr[data-item]')].map(r =>
                   [r.dataset.workflow, r.dataset.item, Number(r.querySelector('[data-field=attempts]').dataset.value)])]",
                vec![],
            )
            .await
    };
    assert_eq!(
        parked_rows(&browser).await,
        json!(["true", []]),
        "nothing is parked yet"
    );

    // Open an erasure on the person's behalf.
    browser.type_into("#open input[name=person]", person).await;
    browser
        .execute(
            "const k = document.querySelector('#open select[name=kind]'); k.value = 'erase'; k.dispatchEvent(new Event('change'))",
            vec![],
        )
        .await;
    browser
        .type_into(
            "#open input[name=reason]",
            &format!("email to privacy@ from the account's address{}", keys::ENTER),
        )
        .await;
    let id = browser
        .wait_for(
            "the opened request",
            "const r = document.getElementById('request'); return document.body.dataset.ready === 'true' && r && r.dataset.requestId",
            WAIT,
        )
        .await;
    let id = id.as_str().unwrap().to_string();
    let view_route = format!("/v1/support/privacy-requests/{id}");
    assert_shown_request(&browser, &get(&app, &support, &view_route).await).await;
    assert_eq!(get(&app, &support, &view_route).await["state"], "pending");

    // Verify: the request runs and stops at PostHog.
    browser
        .type_into(
            "form[data-action=verify] input",
            &format!("reply from the account's address{}", keys::ENTER),
        )
        .await;
    wait_actions(&browser, 1).await;
    let view = get(&app, &support, &view_route).await;
    assert_eq!(view["state"], "failed", "{view}");
    assert_shown_request(&browser, &view).await;
    // Its workflow item is parked (one attempt allowed here): the page lists it as the API does.
    let parked = get(&app, &support, "/v1/operations/workflows?state=parked").await;
    let expected: Vec<Value> = parked["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| json!([i["workflow"], i["item"], i["attempts"]]))
        .collect();
    assert_eq!(expected, vec![json!(["privacy_requests", id, 1])], "{parked}");
    visit(&browser, &app, &format!("#/support?person={person}&request={id}")).await;
    assert_eq!(parked_rows(&browser).await, json!(["true", expected]));
    // The page was loaded again: its count of answered actions starts again.

    // Retry: the same step again, a second attempt.
    browser.click("form[data-action=retry] button").await;
    wait_actions(&browser, 1).await;
    let view = get(&app, &support, &view_route).await;
    let posthog_step = view["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "posthog")
        .unwrap()
        .clone();
    assert_eq!(posthog_step["attempts"], 2, "{view}");
    assert_shown_request(&browser, &view).await;

    // Extend the deadline (a date control: its value is set as a date picker would).
    let until = (app.now() + chrono::Duration::days(45)).date_naive().to_string();
    browser
        .execute(
            "document.querySelector('form[data-action=extend] input[name=until]').value = arguments[0]",
            vec![json!(until)],
        )
        .await;
    browser
        .type_into(
            "form[data-action=extend] input[name=reason]",
            &format!("the person asked for a copy first{}", keys::ENTER),
        )
        .await;
    wait_actions(&browser, 2).await;
    let view = get(&app, &support, &view_route).await;
    assert_eq!(view["deadline"].as_str().unwrap(), format!("{until}T23:59:59.000000Z"));
    assert_shown_request(&browser, &view).await;

    // PostHog's person was deleted by hand: recorded, and the request carries on to the end.
    browser
        .type_into(
            "form[data-action=manual-step] textarea",
            "deleted in PostHog's dashboard, ticket 4711",
        )
        .await;
    browser.click("form[data-action=manual-step] button").await;
    wait_actions(&browser, 3).await;
    let view = get(&app, &support, &view_route).await;
    assert_eq!(view["state"], "completed", "{view}");
    assert_shown_request(&browser, &view).await;
    let status = browser
        .execute("return document.querySelector('#request .status').textContent", vec![])
        .await;
    assert_eq!(status, "manual-step: done; the request is completed.");

    // The list (the audit trail's read model, read at the command's position) shows it.
    let row = browser
        .execute(
            "const r = document.querySelector(`#requests tr[data-request-id='${arguments[0]}']`); return r && r.dataset.state",
            vec![json!(id)],
        )
        .await;
    assert_eq!(row, "completed");
    assert_no_console_errors(&browser, &[]).await;
    assert_fits(&browser).await;
    shoot(&browser, "support-1280").await;
    browser.resize(PHONE.0, PHONE.1).await;
    visit(&browser, &app, &format!("#/support?person={person}&request={id}")).await;
    assert_fits(&browser).await;
    assert_no_console_errors(&browser, &[]).await;
    shoot(&browser, "support-375").await;
}

async fn wait_actions(browser: &Browser, n: u32) {
    browser
        .wait_for(
            &format!("support's action {n} to be answered"),
            &format!("return document.getElementById('request-detail').dataset.actions === '{n}'"),
            WAIT,
        )
        .await;
    let alert = browser
        .execute(
            "const a = document.getElementById('alert'); return a.hidden ? '' : a.textContent",
            vec![],
        )
        .await;
    assert_eq!(alert, "", "action {n} was refused");
}

/// The request on screen is the API's: state, deadline, steps with their status and attempts.
async fn assert_shown_request(browser: &Browser, view: &Value) {
    let shown = browser
        .execute(
            "const r = document.getElementById('request');
             return [r.dataset.requestId, r.dataset.state, r.querySelector('[data-deadline]').dataset.deadline,
                     [...r.querySelectorAll('tr[data-step]')].map(s => [s.dataset.step, s.dataset.status, Number(s.dataset.attempts)])]",
            vec![],
        )
        .await;
    let steps: Vec<Value> = view["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| json!([s["step"], s["status"], s["attempts"]]))
        .collect();
    assert_eq!(
        shown,
        json!([view["request_id"], view["state"], view["deadline"], steps])
    );
}

// ---------------------------------------------------------------------------------------------
// A member of an artist: the demo's dashboard, campaigns and billing

/// `1,234.5 USD` → 1234500000 micros (the page writes money exactly, never rounded).
fn micros(text: &str) -> i64 {
    let number = text.split(' ').next().unwrap().replace(',', "");
    let (whole, fraction) = number.split_once('.').unwrap_or((&number, ""));
    let negative = whole.starts_with('-');
    let whole: i64 = whole.trim_start_matches('-').parse().unwrap();
    let fraction: i64 = format!("{fraction:0<6}").parse().unwrap();
    let value = whole * 1_000_000 + fraction;
    if negative {
        -value
    } else {
        value
    }
}

/// The points of the chart `id` as (period, value).
async fn chart_points(browser: &Browser, id: &str) -> Value {
    browser
        .execute(
            "return [...document.querySelectorAll(`#${arguments[0]} [data-period]`)].filter(e => e.closest('svg'))
               .map(e => [e.dataset.period, Number(e.dataset.value)])",
            vec![json!(id)],
        )
        .await
}

async fn assert_dashboard(browser: &Browser, app: &TestApp, token: &str, artist: &str, granularity: &str) {
    let dashboard = get(
        app,
        token,
        &format!("/v1/artists/{artist}/dashboard?granularity={granularity}"),
    )
    .await;
    let series = dashboard["series"].as_array().unwrap();
    assert!(series.len() > 1, "{dashboard}");
    let spend: Vec<Value> = series.iter().map(|p| json!([p["period"], p["spend_micros"]])).collect();
    let results: Vec<Value> = series.iter().map(|p| json!([p["period"], p["conversions"]])).collect();
    assert_eq!(
        chart_points(browser, "spend-USD").await,
        json!(spend),
        "spend per {granularity}"
    );
    assert_eq!(
        chart_points(browser, "results-USD").await,
        json!(results),
        "results per {granularity}"
    );
    let shown = browser
        .execute("return document.getElementById('charts').dataset.granularity", vec![])
        .await;
    assert_eq!(shown, granularity);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_sees_the_dashboard_campaigns_and_billing_and_a_stranger_nothing() {
    let app = app().await;
    let yesterday = app.now().date_naive() - chrono::Duration::days(1);
    let demo = app::demo::load(&app.app, yesterday, 75).await.expect("the demo loads");
    let owner = app.token(&demo.person_id, Role::Person);
    let artist = &demo.artist_id;
    let account = &demo.billing_account_id;
    let position = demo.position.clone().unwrap();
    get(
        &app,
        &owner,
        &format!("/v1/artists/{artist}/dashboard?min_position={position}"),
    )
    .await;
    get(
        &app,
        &owner,
        &format!("/v1/billing/accounts/{account}/usage?min_position={position}"),
    )
    .await;

    let browser = Browser::start(DESKTOP.0, DESKTOP.1).await;
    sign_in(&browser, &app, &owner).await;
    assert_eq!(
        browser.execute("return location.hash", vec![]).await,
        "#/artist",
        "a person lands on the artist page"
    );
    let token_in_url = browser.execute("return location.href", vec![]).await;
    assert!(!token_in_url.as_str().unwrap().contains(&owner[..20]));
    let nav = browser
        .execute(
            "return [...document.querySelectorAll('#nav a')].map(a => a.textContent)",
            vec![],
        )
        .await;
    assert_eq!(nav, json!(["Artist"]), "a person is offered their page only");

    // The artist and billing account, typed in and shown with the keyboard.
    browser.type_into("#choose input[name=artist]", artist).await;
    browser
        .type_into("#choose input[name=account]", &format!("{account}{}", keys::ENTER))
        .await;
    browser
        .wait_for(
            "the dashboard",
            "return document.body.dataset.ready === 'true' && document.getElementById('charts')",
            WAIT,
        )
        .await;
    assert_dashboard(&browser, &app, &owner, artist, "week").await;

    // KPIs: the API's totals.
    let totals = get(
        &app,
        &owner,
        &format!("/v1/artists/{artist}/dashboard?granularity=week"),
    )
    .await;
    let total = &totals["totals"][0];
    let kpis = browser
        .execute(
            "const out = {}; for (const k of document.querySelectorAll('.kpis[data-currency=USD] [data-kpi]')) {
               const v = k.querySelector('[data-value]').dataset.value; out[k.dataset.kpi] = v === '' ? null : Number(v);
             } return out;",
            vec![],
        )
        .await;
    for key in [
        "spend_micros",
        "impressions",
        "clicks",
        "views",
        "follows",
        "conversions",
    ] {
        assert_eq!(kpis[key], total[key], "{key}");
    }
    for key in [
        "cpm_micros",
        "cpc_micros",
        "ctr_basis_points",
        "cost_per_view_micros",
        "cost_per_follow_micros",
        "cost_per_result_micros",
    ] {
        assert_eq!(kpis[key], total["kpis"][key], "{key}");
    }
    let spend_text = browser
        .execute(
            "return document.querySelector('.kpis [data-kpi=spend_micros] [data-value]').textContent",
            vec![],
        )
        .await;
    assert_eq!(
        micros(spend_text.as_str().unwrap()),
        total["spend_micros"].as_i64().unwrap(),
        "the shown text is the exact amount: {spend_text}"
    );

    // Campaigns with their stage and totals; totals per platform.
    let campaigns = get(&app, &owner, &format!("/v1/artists/{artist}/campaigns")).await;
    let shown = browser
        .execute(
            "return [...document.querySelectorAll('#campaigns tr[data-campaign-id]')].map(r =>
               [r.dataset.campaignId, r.dataset.stage, Number(r.querySelector('[data-field=spend_micros]').dataset.value)])",
            vec![],
        )
        .await;
    let mut expected = Vec::new();
    for c in campaigns["campaigns"].as_array().unwrap() {
        let id = c["campaign_id"].as_str().unwrap();
        let one = get(&app, &owner, &format!("/v1/artists/{artist}/dashboard?campaign={id}")).await;
        expected.push(json!([id, c["stage"], one["totals"][0]["spend_micros"]]));
    }
    assert_eq!(shown, json!(expected));
    assert_eq!(expected.len(), 3);
    for platform in ["meta", "google_ads"] {
        let one = get(
            &app,
            &owner,
            &format!("/v1/artists/{artist}/dashboard?platform={platform}"),
        )
        .await;
        let shown = browser
            .execute(
                "return Number(document.querySelector(`#platforms tr[data-platform=${arguments[0]}] [data-field=spend_micros]`).dataset.value)",
                vec![json!(platform)],
            )
            .await;
        assert_eq!(shown, one["totals"][0]["spend_micros"], "{platform}");
    }

    // Billing: usage per month and each statement's figures.
    let usage = get(&app, &owner, &format!("/v1/billing/accounts/{account}/usage")).await;
    let shown = browser
        .execute(
            "return [...document.querySelectorAll('table.usage tr[data-period]')].map(r =>
               [r.dataset.period, r.dataset.currency, Number(r.querySelector('[data-field=spend_micros]').dataset.value)])",
            vec![],
        )
        .await;
    let expected: Vec<Value> = usage["usage"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| json!([u["period"], u["currency"], u["spend_micros"]]))
        .collect();
    assert_eq!(shown, json!(expected));
    let mut statements: Vec<Value> = usage["open_periods"]
        .as_array()
        .unwrap()
        .iter()
        .chain(usage["closed_periods"].as_array().unwrap())
        .map(|p| {
            json!([
                p["period"],
                p["state"],
                p["statement"]["fee_micros"],
                p["statement"]["total_micros"]
            ])
        })
        .collect();
    statements.sort_by(|a, b| a[0].as_str().cmp(&b[0].as_str()));
    let shown = browser
        .execute(
            "return [...document.querySelectorAll('table.statements tr[data-period]')].map(r =>
               [r.dataset.period, r.dataset.state, Number(r.querySelector('[data-field=fee_micros]').dataset.value),
                Number(r.querySelector('[data-field=total_micros]').dataset.value)])",
            vec![],
        )
        .await;
    assert_eq!(shown, json!(statements));
    assert!(!statements.is_empty());
    assert_no_console_errors(&browser, &[]).await;
    assert_fits(&browser).await;
    shoot(&browser, "artist-1280").await;

    // Per month, chosen with the keyboard.
    browser
        .execute("document.getElementById('granularity').focus()", vec![])
        .await;
    browser.type_into("#granularity", "per month").await;
    let chosen = browser
        .execute("return document.getElementById('granularity').value", vec![])
        .await;
    assert_eq!(chosen, "month");
    browser.execute("document.body.dataset.ready = 'stale'", vec![]).await;
    browser.type_into("#filters button[type=submit]", keys::ENTER).await;
    ready(&browser).await;
    assert_dashboard(&browser, &app, &owner, artist, "month").await;
    visit(
        &browser,
        &app,
        &format!("#/artist?artist={artist}&account={account}&granularity=day"),
    )
    .await;
    assert_dashboard(&browser, &app, &owner, artist, "day").await;
    assert_no_console_errors(&browser, &[]).await;

    browser.resize(PHONE.0, PHONE.1).await;
    visit(
        &browser,
        &app,
        &format!("#/artist?artist={artist}&account={account}&granularity=week"),
    )
    .await;
    assert_dashboard(&browser, &app, &owner, artist, "week").await;
    assert_fits(&browser).await;
    assert_no_console_errors(&browser, &[]).await;
    shoot(&browser, "artist-375").await;

    // A stranger, with a valid token of their own: the API answers 404 and the page shows
    // nothing of the artist or the billing account.
    browser.click("#sign-out").await;
    let stored = browser.execute("return sessionStorage.length", vec![]).await;
    assert_eq!(stored, 0, "signing out forgets the token");
    let stranger = app.token("stranger-1", Role::Person);
    sign_in(&browser, &app, &stranger).await;
    visit(
        &browser,
        &app,
        &format!("#/artist?artist={artist}&account={account}&granularity=week"),
    )
    .await;
    let page = browser
        .execute(
            "return {refused: [...document.querySelectorAll('[data-refused=not-found]')].length,
                     charts: document.querySelectorAll('svg.chart').length,
                     values: document.querySelectorAll('#page [data-value]').length,
                     text: document.getElementById('page').textContent}",
            vec![],
        )
        .await;
    assert_eq!(page["refused"], 2, "{page}");
    assert_eq!(page["charts"], 0);
    assert_eq!(page["values"], 0);
    let text = page["text"].as_str().unwrap();
    let artist_view = get(&app, &owner, &format!("/v1/artists/{artist}")).await;
    assert!(!text.contains(artist_view["name"].as_str().unwrap()), "{text}");
    for c in campaigns["campaigns"].as_array().unwrap() {
        assert!(!text.contains(c["campaign_id"].as_str().unwrap()), "{text}");
    }
    // The only console errors are the browser's notes of the API's two 404s.
    assert_no_console_errors(
        &browser,
        &[
            &format!("/v1/artists/{artist} - Failed to load resource: the server responded with a status of 404"),
            &format!(
                "/v1/billing/accounts/{account} - Failed to load resource: the server responded with a status of 404"
            ),
        ],
    )
    .await;
    shoot(&browser, "artist-stranger-375").await;
}

// ---------------------------------------------------------------------------------------------
// The operator

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_sees_every_projection_and_the_feed_head() {
    let app = app().await;
    let support = app.token("support-1", Role::Support);
    for label in ["op-1", "op-2"] {
        post(
            &app,
            &support,
            "/v1/policies",
            json!({"label": label, "effective_date": format!("202{}-01-01", &label[3..]), "locale": "en", "text": label, "summary_of_changes": "s"}),
        )
        .await;
    }
    sign_up(&app, "operated-1").await;
    let route = "/v1/operations/projections";
    let caught_up = tests::wait_until(WAIT, || async {
        let body = get(&app, &support, route).await;
        body["projections"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["lag_events"] == 0 && p["state"] == "running")
    })
    .await;
    assert!(caught_up, "every projection catches up");
    let status = get(&app, &support, route).await;

    let browser = Browser::start(DESKTOP.0, DESKTOP.1).await;
    // A person is not offered the page, and is refused it without a call.
    sign_in(&browser, &app, &app.token("someone", Role::Person)).await;
    visit(&browser, &app, "#/operator").await;
    let refused = browser
        .execute(
            "return [document.querySelectorAll('[data-refused=role]').length, [...document.querySelectorAll('#nav a')].map(a => a.textContent)]",
            vec![],
        )
        .await;
    assert_eq!(refused, json!([1, ["Artist"]]));
    browser.click("#sign-out").await;

    let auditor = app.token("auditor-1", Role::Auditor);
    sign_in(&browser, &app, &auditor).await;
    let stored = browser
        .execute(
            "return [sessionStorage.getItem('dynamoi.console.token') === arguments[0], location.href.includes(arguments[0])]",
            vec![json!(auditor)],
        )
        .await;
    assert_eq!(
        stored,
        json!([true, false]),
        "the token is in the tab's storage, not the URL"
    );
    visit(&browser, &app, "#/operator").await;

    // The keyboard: after a fresh load, Tab walks the skip link, the header and the page in
    // reading order, each with a visible focus ring; the skip link moves the focus to the page.
    browser.execute("document.body.dataset.ready = 'stale'", vec![]).await;
    browser.refresh().await;
    ready(&browser).await;
    let mut walked = Vec::new();
    for _ in 0..6 {
        browser.press(keys::TAB).await;
        walked.push(
            browser
                .execute(
                    "const e = document.activeElement;
                     return [e.textContent.trim(), getComputedStyle(e).outlineStyle]",
                    vec![],
                )
                .await,
        );
    }
    assert_eq!(
        walked,
        vec![
            json!(["Skip to the content", "solid"]),
            json!(["dynamoi console", "solid"]),
            json!(["Auditor", "solid"]),
            json!(["Operator", "solid"]),
            json!(["Sign out", "solid"]),
            json!(["Refresh", "solid"]),
        ]
    );
    browser.refresh().await;
    ready(&browser).await;
    browser.press(keys::TAB).await;
    browser.press(keys::ENTER).await;
    let after_skip = browser
        .execute("return [document.activeElement.id, location.hash]", vec![])
        .await;
    assert_eq!(after_skip, json!(["main", "#/operator"]));

    let shown = browser
        .execute(
            "return {rows: [...document.querySelectorAll('#projections tr[data-projection]')].map(r => [
                        r.dataset.projection, r.dataset.state, r.querySelector('[data-field=position]').textContent,
                        Number(r.querySelector('[data-field=events_applied]').dataset.value),
                        Number(r.querySelector('[data-field=lag_events]').dataset.value)]),
                     head: document.querySelector('[data-feed-head]').dataset.feedHead,
                     events: Number(document.querySelector('#feed [data-field=events]').dataset.value),
                     jobs: [...document.querySelectorAll('#jobs tr[data-job]')].map(r =>
                       [r.dataset.job, r.querySelector('[data-field=schedule]').textContent]),
                     workflows: [...document.querySelectorAll('#workflow-counts tr[data-workflow]')].map(r =>
                       [r.dataset.workflow, Number(r.querySelector('[data-field=pending]').dataset.value),
                        Number(r.querySelector('[data-field=done]').dataset.value),
                        Number(r.querySelector('[data-field=parked]').dataset.value)])}",
            vec![],
        )
        .await;
    let rows: Vec<Value> = status["projections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            json!([
                p["name"],
                p["state"],
                format!("{}.{}", p["position"]["commit"], p["position"]["global"]),
                p["events_applied"],
                p["lag_events"]
            ])
        })
        .collect();
    let jobs: Vec<Value> = get(&app, &support, "/v1/operations/jobs").await["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| json!([j["job"], j["schedule"]]))
        .collect();
    assert_eq!(jobs.len(), 4, "{jobs:?}");
    let workflows: Vec<Value> = get(&app, &support, "/v1/operations/workflows").await["workflows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| json!([w["workflow"], w["pending"], w["done"], w["parked"]]))
        .collect();
    assert_eq!(
        shown,
        json!({"rows": rows, "head": status["feed_head"]["position"], "events": status["feed_head"]["events"],
               "jobs": jobs, "workflows": workflows})
    );
    assert_no_console_errors(&browser, &[]).await;
    assert_fits(&browser).await;
    shoot(&browser, "operator-1280").await;
    browser.resize(PHONE.0, PHONE.1).await;
    visit(&browser, &app, "#/operator?view=phone").await;
    assert_fits(&browser).await;
    assert_no_console_errors(&browser, &[]).await;
    shoot(&browser, "operator-375").await;
    browser.click("#sign-out").await;
    ready(&browser).await;
    shoot(&browser, "sign-in-375").await;
}
