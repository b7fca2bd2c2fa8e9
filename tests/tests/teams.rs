//! Artist teams and authorisation end to end, on both backends: every artist-scoped endpoint
//! called as a stranger, as a viewer where an admin is needed, and as a removed member gets
//! 404 or 403 with nothing about the artist in the body.

use api::auth::Role;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tests::{Backend, TestApp, TEST_JWT_SECRET};

const ARTIST_NAME: &str = "Secret Artist Name 7781";

async fn call(app: &TestApp, method: Method, path: &str, token: &str, body: Option<Value>) -> (StatusCode, String) {
    let mut request = app
        .client
        .request(method, format!("{}{path}", app.base_url))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("sent");
    (response.status(), response.text().await.unwrap())
}

async fn story(backend: Backend) {
    let Some(app) = TestApp::spawn(backend, &[]).await else {
        return;
    };
    app.sign_up("owner-1").await;
    app.sign_up("viewer-1").await;
    app.sign_up("stranger-1").await;
    let owner = app.token("owner-1", Role::Person);
    let viewer = app.token("viewer-1", Role::Person);
    let stranger = app.token("stranger-1", Role::Person);

    let (status, body) = call(
        &app,
        Method::POST,
        "/v1/artists",
        &owner,
        Some(json!({"name": ARTIST_NAME})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let created: Value = serde_json::from_str(&body).unwrap();
    let artist = created["artist_id"].as_str().unwrap().to_string();
    let pos = created["position"].as_str().unwrap().to_string();
    let (status, body) = call(
        &app,
        Method::GET,
        &format!("/v1/artists/{artist}?min_position={pos}"),
        &owner,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains(ARTIST_NAME));

    // Invite a viewer; the token is what the email carries.
    let (status, body) = call(
        &app,
        Method::POST,
        &format!("/v1/artists/{artist}/invitations"),
        &owner,
        Some(json!({"email": "viewer@example.test", "role": "viewer"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let invitation: Value = serde_json::from_str(&body).unwrap();
    let invitation_id = invitation["invitation_id"].as_str().unwrap();
    assert!(!body.contains("viewer@example.test"));
    let secret = app::artists::invitation_secret(TEST_JWT_SECRET);
    let token = app::artists::invitation_token(
        secrecy::ExposeSecret::expose_secret(&secret).as_bytes(),
        &artist,
        invitation_id,
    );
    let (status, body) = call(
        &app,
        Method::POST,
        "/v1/invitations/accept",
        &viewer,
        Some(json!({"token": token})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let joined = serde_json::from_str::<Value>(&body).unwrap()["position"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, _) = call(
        &app,
        Method::POST,
        "/v1/invitations/accept",
        &stranger,
        Some(json!({"token": token})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a token is single-use");

    let (status, body) = call(
        &app,
        Method::GET,
        &format!("/v1/artists/{artist}/members?min_position={joined}"),
        &viewer,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("viewer-1") && body.contains("\"viewer\""));

    // Every artist-scoped endpoint, and what each caller may not do there.
    let endpoints: Vec<(Method, String, Option<Value>, bool)> = vec![
        (Method::GET, format!("/v1/artists/{artist}"), None, false),
        (Method::GET, format!("/v1/artists/{artist}/members"), None, false),
        (
            Method::POST,
            format!("/v1/artists/{artist}/invitations"),
            Some(json!({"email": "x@example.test", "role": "admin"})),
            true,
        ),
        (
            Method::DELETE,
            format!("/v1/artists/{artist}/invitations/{invitation_id}"),
            None,
            true,
        ),
        (
            Method::DELETE,
            format!("/v1/artists/{artist}/members/owner-1"),
            None,
            true,
        ),
    ];
    for (method, path, body, needs_admin) in &endpoints {
        let (status, answer) = call(&app, method.clone(), path, &stranger, body.clone()).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "stranger on {method} {path}: {answer}");
        assert!(!answer.contains(ARTIST_NAME) && !answer.contains("owner-1"), "{answer}");
        if *needs_admin {
            let (status, answer) = call(&app, method.clone(), path, &viewer, body.clone()).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "viewer on {method} {path}: {answer}");
            assert!(!answer.contains(ARTIST_NAME) && !answer.contains("owner-1"), "{answer}");
        }
    }

    // The owner removes the viewer, who then is a stranger everywhere.
    let (status, body) = call(
        &app,
        Method::DELETE,
        &format!("/v1/artists/{artist}/members/viewer-1"),
        &owner,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let removed = serde_json::from_str::<Value>(&body).unwrap()["position"]
        .as_str()
        .unwrap()
        .to_string();
    for (method, path, body, _) in &endpoints {
        let sep = if path.contains('?') { '&' } else { '?' };
        let (status, answer) = call(
            &app,
            method.clone(),
            &format!("{path}{sep}min_position={removed}"),
            &viewer,
            body.clone(),
        )
        .await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "removed member on {method} {path}: {answer}"
        );
        assert!(!answer.contains(ARTIST_NAME), "{answer}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn artist_scoped_endpoints_refuse_strangers_viewers_and_removed_members_on_sqlite() {
    story(Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn artist_scoped_endpoints_refuse_strangers_viewers_and_removed_members_on_postgres() {
    story(Backend::Postgres).await
}
