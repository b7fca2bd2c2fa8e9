//! Outbound integrations end to end against local stand-ins of the platforms (wiremock, real
//! HTTP): the invitation email reaches Resend exactly once across a 500, a restart and a
//! projection rebuild; YouTube videos are listed with the stored token until it is
//! disconnected; a rejected token invalidates the connection; the extension lookup validates,
//! limits, caches and tolerates missing fields.

use api::auth::Role;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::sync::Arc;
use tests::{wait_until, Backend, TestApp};
use wiremock::matchers::{body_string_contains, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const INVITEE: &str = "invitee.plaintext@example.test";

async fn post(app: &TestApp, token: &str, route: &str, body: Value) -> (StatusCode, Value) {
    let response = app
        .client
        .post(format!("{}{route}", app.base_url))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn get(app: &TestApp, token: &str, route: &str) -> reqwest::Response {
    app.client
        .get(format!("{}{route}", app.base_url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// Resend deliveries the stand-in accepted (2xx), with their idempotency keys.
async fn deliveries(resend: &MockServer) -> Vec<String> {
    resend
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter_map(|r| {
            r.headers
                .get("idempotency-key")
                .map(|v| v.to_str().unwrap().to_string())
        })
        .collect()
}

async fn invitation_email_once(backend: Backend) {
    let resend = MockServer::start().await;
    // The first attempt fails with a 500; Resend answers the retry.
    Mock::given(method("POST"))
        .and(path("/emails"))
        .respond_with(ResponseTemplate::new(500).set_body_json(json!({"name": "internal_server_error"})))
        .up_to_n_times(1)
        .mount(&resend)
        .await;
    Mock::given(method("POST"))
        .and(path("/emails"))
        .and(header("authorization", "Bearer re_test_key"))
        .and(body_string_contains(INVITEE))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "email-1"})))
        .mount(&resend)
        .await;
    let settings = [
        ("DYNAMOI_RESEND_API_KEY", "re_test_key"),
        ("DYNAMOI_RESEND_BASE_URL", &resend.uri()),
    ];
    let settings: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, *v)).collect();
    let Some(app) = TestApp::spawn(backend, &settings).await else {
        return;
    };
    app.sign_up("owner-1").await;
    let owner = app.token("owner-1", Role::Person);
    let (_, created) = post(&app, &owner, "/v1/artists", json!({"name": "Band"})).await;
    let artist = created["artist_id"].as_str().unwrap().to_string();
    let pos = created["position"].as_str().unwrap();
    let (status, _) = post(
        &app,
        &owner,
        &format!("/v1/artists/{artist}/invitations?min_position={pos}"),
        json!({"email": INVITEE, "role": "manager"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let sent = wait_until(std::time::Duration::from_secs(20), || async {
        let events = app.db.log().load("artist", &artist).await.unwrap();
        events.iter().any(|e| e.event_type == "InvitationEmailSent")
    })
    .await;
    assert!(sent, "the mailer records the delivery");
    let requests = resend.received_requests().await.unwrap();
    assert_eq!(requests.len(), 2, "one 500, then one delivery");
    let body = String::from_utf8(requests[1].body.clone()).unwrap();
    assert!(body.contains("/invitations/accept?token="), "{body}");

    // A restart and a rebuild of every projection send nothing more.
    let db = app.stop().await;
    let app = TestApp::spawn_on(db, &settings).await;
    for name in ["artist_access", "stream_index"] {
        let engine = projections::Engine::new(app.db.log(), projections::all(), projections::EngineConfig::default());
        engine.rebuild(name, |_| {}).await.unwrap();
    }
    // Let the restarted mailer go over the whole feed again (its checkpoint is stored).
    let marker = post(&app, &owner, "/v1/artists", json!({"name": "Marker"})).await.1;
    let marker_pos: eventlog::Position = marker["position"].as_str().unwrap().parse().unwrap();
    let caught_up = wait_until(std::time::Duration::from_secs(20), || async {
        eventlog::outbox::checkpoint(
            &app.db.db,
            app::workflows::Workflow::name(&app::artists::InvitationEmails),
        )
        .await
        .unwrap()
            >= marker_pos
    })
    .await;
    assert!(caught_up);
    assert_eq!(
        deliveries(&resend).await.len(),
        2,
        "no email after the restart and the rebuilds"
    );
    let keys = deliveries(&resend).await;
    assert_eq!(keys[0], keys[1], "the retry reused the idempotency key");
    assert!(
        tests::cells_holding(&app.db.db, INVITEE).await.is_empty(),
        "the address is stored sealed only"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invitation_email_is_delivered_exactly_once_on_sqlite() {
    invitation_email_once(Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invitation_email_is_delivered_exactly_once_on_postgres() {
    invitation_email_once(Backend::Postgres).await
}

fn playlist_item(video: &str, title: &str) -> Value {
    json!({
        "kind": "youtube#playlistItem",
        "snippet": {"publishedAt": "2026-03-02T09:00:00Z", "title": title, "thumbnails": {"high": {"url": format!("https://i.ytimg.com/vi/{video}/hq.jpg")}}, "resourceId": {"kind": "youtube#video", "videoId": video}},
        "contentDetails": {"videoId": video, "videoPublishedAt": "2026-03-01T12:00:00Z"}
    })
}

async fn youtube_story(backend: Backend) {
    let google = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(body_string_contains("refresh_token=1%2F%2Fgood-refresh"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": "ya29.access", "expires_in": 3599, "token_type": "Bearer"})),
        )
        .mount(&google)
        .await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(body_string_contains("refresh_token=1%2F%2Frevoked"))
        .respond_with(ResponseTemplate::new(400).set_body_json(
            json!({"error": "invalid_grant", "error_description": "Token has been expired or revoked."}),
        ))
        .mount(&google)
        .await;
    Mock::given(method("GET"))
        .and(path("/youtube/v3/channels"))
        .and(header("authorization", "Bearer ya29.access"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"items": [{"id": "UCartist", "contentDetails": {"relatedPlaylists": {"uploads": "UUartist"}}}]}),
        ))
        .mount(&google)
        .await;
    Mock::given(method("GET"))
        .and(path("/youtube/v3/playlistItems"))
        .and(query_param("pageToken", "p2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"items": [playlist_item("v3", "Third")]})))
        .mount(&google)
        .await;
    Mock::given(method("GET"))
        .and(path("/youtube/v3/playlistItems"))
        .and(query_param("playlistId", "UUartist"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"items": [playlist_item("v1", "First"), playlist_item("v2", "Second")], "nextPageToken": "p2"}),
        ))
        .mount(&google)
        .await;
    let base = google.uri();
    let settings = [
        ("DYNAMOI_GOOGLE_CLIENT_ID", "client-id"),
        ("DYNAMOI_GOOGLE_CLIENT_SECRET", "client-secret"),
        ("DYNAMOI_GOOGLE_OAUTH_BASE_URL", base.as_str()),
        ("DYNAMOI_YOUTUBE_BASE_URL", base.as_str()),
    ];
    let Some(app) = TestApp::spawn(backend, &settings).await else {
        return;
    };
    app.sign_up("artist-5").await;
    let me = app.token("artist-5", Role::Person);
    let (status, _) = post(&app, &me, "/v1/connections", json!({"platform": "youtube", "channel_id": "UCartist", "channel_name": "Artist Five", "refresh_token": "1//good-refresh"})).await;
    assert_eq!(status, StatusCode::CREATED);
    let listed = get(&app, &me, "/v1/connections/youtube/assets").await;
    assert_eq!(listed.status(), StatusCode::OK);
    let listed: Value = listed.json().await.unwrap();
    let ids: Vec<&str> = listed["videos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["video_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["v1", "v2", "v3"], "paging followed");

    let response = app
        .client
        .delete(format!("{}/v1/connections/youtube", app.base_url))
        .bearer_auth(&me)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let after = get(&app, &me, "/v1/connections/youtube/assets").await;
    assert_eq!(
        after.status(),
        StatusCode::CONFLICT,
        "a disconnected token can no longer be used"
    );
    let events = app.db.log().load("connection", "artist-5.youtube").await.unwrap();
    let sealed: vault::SealedValue =
        serde_json::from_value(events[0].payload["Connected"]["details"]["refresh_token"].clone()).unwrap();
    let fresh = vault::Vault::new(app.db.db.clone(), Arc::new(app.settings.master_keyring().unwrap()));
    assert!(fresh
        .open(&vault::KeyRef::connection("artist-5.youtube"), "refresh_token", &sealed)
        .await
        .unwrap()
        .is_erased());

    // A token the platform rejects invalidates the connection and destroys its key.
    let (status, _) = post(&app, &me, "/v1/connections", json!({"platform": "youtube", "channel_id": "UCartist", "channel_name": "Artist Five", "refresh_token": "1//revoked"})).await;
    assert_eq!(status, StatusCode::CREATED);
    let rejected = get(&app, &me, "/v1/connections/youtube/assets").await;
    assert_eq!(rejected.status(), StatusCode::CONFLICT);
    let events = app.db.log().load("connection", "artist-5.youtube").await.unwrap();
    assert_eq!(events.last().unwrap().event_type, "ConnectionInvalidated");
    let listed = get(
        &app,
        &me,
        &format!("/v1/connections?min_position={}", events.last().unwrap().position),
    )
    .await
    .text()
    .await
    .unwrap();
    assert!(listed.contains("needs_reauthorisation"), "{listed}");
    assert!(tests::cells_holding(&app.db.db, "good-refresh").await.is_empty());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn youtube_videos_are_listed_until_the_connection_ends_on_sqlite() {
    youtube_story(Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn youtube_videos_are_listed_until_the_connection_ends_on_postgres() {
    youtube_story(Backend::Postgres).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_extension_lookup_validates_limits_caches_and_tolerates_missing_fields() {
    const TRACK: &str = "4uLU6hMCjMI75M1A2tKUQC";
    const ALBUM: &str = "2up3OPMp9Tb4dAKM2erWXQ";
    let spotify = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/token"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": "BQ-token", "token_type": "Bearer", "expires_in": 3600})),
        )
        .mount(&spotify)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/v1/tracks/{TRACK}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": TRACK, "name": "Song", "popularity": null, "album": {"id": ALBUM, "name": "Album", "release_date": "2024-05-01"}})))
        .expect(1)
        .mount(&spotify)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/v1/albums/{ALBUM}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": ALBUM, "name": "Album", "label": "Indie Label", "popularity": 41, "release_date": "2024-05-01"})))
        .mount(&spotify)
        .await;
    let base = spotify.uri();
    let settings = [
        ("DYNAMOI_SPOTIFY_CLIENT_ID", "id"),
        ("DYNAMOI_SPOTIFY_CLIENT_SECRET", "secret"),
        ("DYNAMOI_SPOTIFY_ACCOUNTS_BASE_URL", base.as_str()),
        ("DYNAMOI_SPOTIFY_API_BASE_URL", base.as_str()),
        ("DYNAMOI_EXTENSION_RATE_PER_MINUTE", "3"),
    ];
    let app = TestApp::spawn(Backend::Sqlite, &settings).await.unwrap();
    let me = app.token("listener-1", Role::Person);
    let track = get(&app, &me, &format!("/v1/extension/spotify/tracks/{TRACK}")).await;
    assert_eq!(track.status(), StatusCode::OK);
    let track: Value = track.json().await.unwrap();
    assert_eq!(
        track["popularity"],
        Value::Null,
        "a field Spotify no longer sends is null"
    );
    assert_eq!(track["label"], "Indie Label");
    assert_eq!(track["release_date"], "2024-05-01");
    let again: Value = get(&app, &me, &format!("/v1/extension/spotify/tracks/{TRACK}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        again, track,
        "the second answer comes from the cache (the stand-in expects one call)"
    );
    let bad = get(&app, &me, "/v1/extension/spotify/tracks/not-an-id").await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let limited = get(&app, &me, &format!("/v1/extension/spotify/albums/{ALBUM}")).await;
    assert_eq!(
        limited.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "the fourth call in a minute"
    );
    assert!(limited.headers().contains_key("retry-after"));
    let other = app.token("listener-2", Role::Person);
    let album = get(&app, &other, &format!("/v1/extension/spotify/albums/{ALBUM}")).await;
    assert_eq!(album.status(), StatusCode::OK);
    let anonymous = app
        .client
        .get(format!("{}/v1/extension/spotify/tracks/{TRACK}", app.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let events: i64 = match &app.db.db {
        eventlog::Db::Sqlite(pool) => sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(pool)
            .await
            .unwrap(),
        eventlog::Db::Postgres(pool) => sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(pool)
            .await
            .unwrap(),
    };
    assert_eq!(events, 0, "a lookup stores nothing");
    app.stop().await;
    spotify.verify().await;
}
