//! `GET /openapi.json` against the running router: the document is OpenAPI 3.1, every path and
//! method it lists is answered by a handler (never the router's "no such route" 404 nor its
//! 405), its security claims hold (a bearer-secured operation refuses an anonymous call with
//! 401), and it keeps listing a route of every area, so that removing a route shows here.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use tests::{Backend, TestApp};

/// One route per area that the document must list (and so the router must answer).
const REQUIRED: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/openapi.json"),
    ("get", "/v1/policies/current"),
    ("post", "/v1/accounts"),
    ("get", "/v1/me"),
    ("post", "/v1/me/consents"),
    ("post", "/v1/connections"),
    ("get", "/v1/connections/{platform}/assets"),
    ("post", "/v1/artists"),
    ("post", "/v1/artists/{artist_id}/invitations"),
    ("post", "/v1/invitations/accept"),
    ("get", "/v1/extension/spotify/tracks/{id}"),
    ("post", "/v1/artists/{artist_id}/campaigns"),
    ("post", "/v1/campaigns/{campaign_id}/launch"),
    ("post", "/v1/ingest/spend"),
    ("post", "/v1/spend/sync"),
    ("get", "/v1/artists/{artist_id}/dashboard"),
    ("get", "/v1/stats/platforms"),
    ("get", "/v1/billing/accounts/{account_id}/usage"),
    ("post", "/v1/webhooks/stripe"),
    ("post", "/v1/me/privacy-requests"),
    ("post", "/v1/support/privacy-requests/{request_id}/verify"),
    ("get", "/v1/audit/verify"),
];

const METHODS: &[&str] = &["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// The path with each `{parameter}` replaced by a well-formed placeholder.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(
            |segment| match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                None => segment.to_string(),
                Some("platform") => "youtube".into(),
                Some("period") => "2026-01".into(),
                Some("request_id") => "pr-00000000".into(),
                Some("id") => "0000000000000000000000".into(),
                Some("event_id") => "00000000-0000-0000-0000-000000000000".into(),
                Some(_) => "placeholder".into(),
            },
        )
        .collect::<Vec<_>>()
        .join("/")
}

/// The `{names}` of a path template.
fn template_names(path: &str) -> BTreeSet<String> {
    path.split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(str::to_string)
        .collect()
}

/// `value`, or what its `$ref` (a local JSON pointer) points at.
fn resolve<'a>(document: &'a Value, value: &'a Value) -> &'a Value {
    match value["$ref"].as_str() {
        Some(reference) => document
            .pointer(reference.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("`{reference}` points at nothing")),
        None => value,
    }
}

/// Every `$ref` in `value`.
fn references(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                match (key.as_str(), inner) {
                    ("$ref", Value::String(reference)) => found.push(reference.clone()),
                    _ => references(inner, found),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|inner| references(inner, found)),
        _ => {}
    }
}

/// Sends `method` to `path` anonymously (a JSON `{}` body for methods that carry one): the
/// status and the JSON answer (`null` when it is not JSON).
async fn anonymous(app: &TestApp, method: Method, path: &str) -> (StatusCode, Value) {
    let has_body = [Method::POST, Method::PUT, Method::PATCH].contains(&method);
    let mut request = app.client.request(method, format!("{}{path}", app.base_url));
    if has_body {
        request = request.json(&json!({}));
    }
    let response = request.send().await.expect("the request is sent");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_route_is_answered_by_the_service() {
    let app = TestApp::spawn(Backend::Sqlite, &[])
        .await
        .expect("SQLite is always there");

    let response = app
        .client
        .get(format!("{}/openapi.json", app.base_url))
        .send()
        .await
        .expect("the request is sent");
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"].to_str().unwrap().to_string();
    assert!(content_type.starts_with("application/json"), "{content_type}");
    let document: Value = response.json().await.expect("the document is JSON");
    let version = document["openapi"].as_str().expect("an `openapi` version");
    assert!(version.starts_with("3.1."), "OpenAPI 3.1, not {version}");
    assert_eq!(document["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    assert!(document["components"]["schemas"]["Problem"]["properties"]["code"].is_object());
    assert_eq!(document["security"], json!([{ "bearer": [] }]));

    let mut refs = Vec::new();
    references(&document, &mut refs);
    for reference in &refs {
        assert!(
            reference.starts_with("#/") && document.pointer(&reference[1..]).is_some(),
            "`{reference}` points at nothing"
        );
    }

    // The checks below must tell the router's refusals from a handler's: make sure they can.
    let (status, unknown) = anonymous(&app, Method::GET, "/v1/no-such-area").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(unknown["detail"], "no such route", "{unknown}");
    let (status, _) = anonymous(&app, Method::DELETE, "/v1/policies").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);

    let paths = document["paths"].as_object().expect("paths");
    let mut listed = BTreeSet::new();
    let mut operation_ids = BTreeSet::new();
    for (path, item) in paths {
        let item = item.as_object().expect("a path item");
        for (method, operation) in item.iter().filter(|(m, _)| METHODS.contains(&m.as_str())) {
            listed.insert((method.clone(), path.clone()));
            let what = format!("{} {path}", method.to_uppercase());
            if let Some(id) = operation["operationId"].as_str() {
                assert!(
                    operation_ids.insert(id.to_string()),
                    "{what}: operationId `{id}` is used twice"
                );
            }
            let declared: BTreeSet<String> = operation["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| resolve(&document, p))
                .filter(|p| p["in"] == "path")
                .map(|p| p["name"].as_str().expect("a parameter name").to_string())
                .collect();
            assert_eq!(declared, template_names(path), "{what}: path parameters");

            let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("an HTTP method");
            let (status, body) = anonymous(&app, method, &concrete(path)).await;
            assert_ne!(
                status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{what}: the router has no such method"
            );
            assert!(
                !(status == StatusCode::NOT_FOUND && body["detail"] == "no such route"),
                "{what}: the router has no such route"
            );
            let secured = operation
                .get("security")
                .unwrap_or(&document["security"])
                .as_array()
                .is_some_and(|s| !s.is_empty());
            if secured {
                assert_eq!(
                    status,
                    StatusCode::UNAUTHORIZED,
                    "{what} answered an anonymous call: {body}"
                );
                assert_eq!(body["code"], "unauthorized", "{what}: {body}");
            } else {
                assert_ne!(
                    status,
                    StatusCode::UNAUTHORIZED,
                    "{what} is documented as public: {body}"
                );
            }
        }
    }

    for (method, path) in REQUIRED {
        assert!(
            listed.contains(&(method.to_string(), path.to_string())),
            "the document no longer lists {} {path}",
            method.to_uppercase()
        );
    }
}

/// The contract check that every end-to-end test's answers go through (`tests::contract`)
/// catches each kind of drift, and lets a faithful answer pass.
#[test]
fn the_contract_check_catches_each_kind_of_drift() {
    use tests::contract::{violations, Answer};
    const JSON: Option<&str> = Some("application/json");
    const PROBLEM: Option<&str> = Some("application/problem+json");
    let check = |method: &str, path: &str, status: u16, content_type: Option<&str>, allow: Option<&str>, body: &str| {
        violations(&Answer {
            method,
            path,
            status,
            content_type,
            allow,
            body: body.as_bytes(),
        })
    };
    let problem = |status: u16, code: &str| {
        json!({
            "type": format!("https://dynamoi.dev/problems/{code}"), "title": "t", "status": status,
            "detail": "d", "code": code, "request_id": "r-1"
        })
        .to_string()
    };
    let caught = |found: Vec<String>, what: &str| {
        assert!(
            found.iter().any(|v| v.contains(what)),
            "expected a violation naming `{what}`: {found:?}"
        );
    };

    assert_eq!(
        check("GET", "/healthz", 200, JSON, None, r#"{"status":"ok"}"#),
        Vec::<String>::new()
    );
    caught(
        check("GET", "/healthz", 200, JSON, None, r#"{"status":"ok","uptime":3}"#),
        "uptime",
    );
    caught(check("GET", "/healthz", 200, JSON, None, "{}"), "status");
    caught(
        check("GET", "/healthz", 200, JSON, None, r#"{"status":"down"}"#),
        "/status",
    );
    caught(
        check("GET", "/healthz", 201, JSON, None, r#"{"status":"ok"}"#),
        "does not list",
    );
    caught(
        check("GET", "/healthz", 200, Some("text/plain"), None, "ok"),
        "text/plain",
    );
    caught(check("GET", "/v1/nothing", 200, JSON, None, "{}"), "expected 404");
    assert_eq!(
        check("GET", "/v1/nothing", 404, PROBLEM, None, &problem(404, "not_found")),
        Vec::<String>::new()
    );
    caught(
        check("GET", "/v1/nothing", 404, PROBLEM, None, &problem(404, "teapot")),
        "/code",
    );
    assert_eq!(
        check(
            "DELETE",
            "/healthz",
            405,
            PROBLEM,
            Some("GET"),
            &problem(405, "method_not_allowed")
        ),
        Vec::<String>::new()
    );
    caught(
        check(
            "DELETE",
            "/healthz",
            405,
            PROBLEM,
            Some("POST"),
            &problem(405, "method_not_allowed"),
        ),
        "Allow",
    );
    caught(
        check("DELETE", "/healthz", 404, PROBLEM, None, &problem(404, "not_found")),
        "expected 405",
    );
    // A path parameter matches any one segment; a literal segment is preferred over it.
    caught(
        check("GET", "/v1/me/consents", 200, JSON, None, r#"{"unexpected": true}"#),
        "unexpected",
    );
}
