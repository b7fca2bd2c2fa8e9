//! Spotify's public catalogue: the client-credentials token (Basic auth, cached, renewed), track
//! and album lookups with fields Spotify may no longer send, a 401 renewing the token once, and
//! 404, 429, 500 and timeouts.

use std::time::{Duration, Instant};

use base64::Engine;
use connectors::spotify::{AlbumInfo, Spotify, SpotifySettings, TrackInfo};
use connectors::{ConnectorError, HttpSettings};
use serde_json::json;
use wiremock::matchers::{bearer_token, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{base, fast_http, form, impatient_http, requests, secret, SLOW};

const TRACK: &str = "11dFghVXANMlKmJXsNCbNl";
const ALBUM: &str = "6TJmQnO44YE5BtTxH8pop1";

fn spotify(server: &MockServer, http: HttpSettings) -> Spotify {
    let mut settings = SpotifySettings::new(secret("spotify-client-id"), secret("spotify-client-secret"));
    settings.accounts_base_url = base(server);
    settings.api_base_url = base(server);
    settings.http = http;
    Spotify::new(settings).unwrap()
}

fn token(value: &str, expires_in: u64) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "access_token": value,
        "token_type": "Bearer",
        "expires_in": expires_in
    }))
}

async fn mount_token(server: &MockServer, value: &str, times: u64) {
    Mock::given(method("POST"))
        .and(path("/api/token"))
        .respond_with(token(value, 3600))
        .expect(times)
        .mount(server)
        .await;
}

fn track_answer() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "id": TRACK,
        "name": "Cut To The Feeling",
        "popularity": 63,
        "type": "track",
        "duration_ms": 207959,
        "album": {
            "album_type": "single",
            "id": ALBUM,
            "name": "Cut To The Feeling",
            "release_date": "2017-05-26",
            "release_date_precision": "day",
            "type": "album"
        },
        "artists": [{"id": "6sFIWsNpZYqfjUpaCgueju", "name": "Carly Rae Jepsen"}]
    }))
}

fn album_answer() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "id": ALBUM,
        "name": "Cut To The Feeling",
        "album_type": "single",
        "popularity": 55,
        "label": "Interscope",
        "release_date": "2017-05-26",
        "release_date_precision": "day",
        "total_tracks": 1
    }))
}

#[tokio::test]
async fn a_track_lookup_returns_its_public_fields_and_its_albums_label() {
    let server = MockServer::start().await;
    let basic = base64::engine::general_purpose::STANDARD.encode("spotify-client-id:spotify-client-secret");
    Mock::given(method("POST"))
        .and(path("/api/token"))
        .and(header("authorization", format!("Basic {basic}")))
        .respond_with(token("app-token-1", 3600))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/v1/tracks/{TRACK}")))
        .and(bearer_token("app-token-1"))
        .respond_with(track_answer())
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/v1/albums/{ALBUM}")))
        .and(bearer_token("app-token-1"))
        .respond_with(album_answer())
        .expect(1)
        .mount(&server)
        .await;

    let track = spotify(&server, fast_http()).track(TRACK).await.unwrap();

    assert_eq!(
        track,
        TrackInfo {
            id: TRACK.into(),
            name: "Cut To The Feeling".into(),
            popularity: Some(63),
            album_id: Some(ALBUM.into()),
            album_label: Some("Interscope".into()),
            release_date: Some("2017-05-26".into()),
        }
    );
    let token_request = &requests(&server).await[0];
    assert_eq!(
        form(token_request).into_iter().collect::<Vec<_>>(),
        [("grant_type".into(), "client_credentials".into())]
    );
}

#[tokio::test]
async fn an_album_lookup_returns_its_popularity_label_and_release_date() {
    let server = MockServer::start().await;
    mount_token(&server, "app-token-1", 1).await;
    Mock::given(method("GET"))
        .and(path(format!("/v1/albums/{ALBUM}")))
        .respond_with(album_answer())
        .mount(&server)
        .await;

    let album = spotify(&server, fast_http()).album(ALBUM).await.unwrap();

    assert_eq!(
        album,
        AlbumInfo {
            id: ALBUM.into(),
            name: "Cut To The Feeling".into(),
            popularity: Some(55),
            label: Some("Interscope".into()),
            release_date: Some("2017-05-26".into()),
        }
    );
}

#[tokio::test]
async fn fields_spotify_no_longer_returns_come_back_as_none() {
    let server = MockServer::start().await;
    mount_token(&server, "app-token-1", 1).await;
    Mock::given(method("GET"))
        .and(path(format!("/v1/tracks/{TRACK}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": TRACK,
            "name": "Cut To The Feeling",
            "popularity": null,
            "album": {"id": ALBUM, "name": "Cut To The Feeling"}
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/v1/albums/{ALBUM}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": ALBUM,
            "name": "Cut To The Feeling",
            "label": null,
            "release_date": "2017"
        })))
        .mount(&server)
        .await;
    let spotify = spotify(&server, fast_http());

    let track = spotify.track(TRACK).await.unwrap();
    let album = spotify.album(ALBUM).await.unwrap();

    assert_eq!(track.popularity, None);
    assert_eq!(track.album_label, None);
    assert_eq!(
        track.release_date.as_deref(),
        Some("2017"),
        "taken from the album when the track's has none"
    );
    assert_eq!((album.popularity, album.label), (None, None));
}

#[tokio::test]
async fn a_track_whose_album_is_gone_has_no_label() {
    let server = MockServer::start().await;
    mount_token(&server, "app-token-1", 1).await;
    Mock::given(method("GET"))
        .and(path(format!("/v1/tracks/{TRACK}")))
        .respond_with(track_answer())
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/v1/albums/{ALBUM}")))
        .respond_with(
            ResponseTemplate::new(404).set_body_json(json!({"error": {"status": 404, "message": "Not found."}})),
        )
        .mount(&server)
        .await;

    let track = spotify(&server, fast_http()).track(TRACK).await.unwrap();

    assert_eq!(
        (track.album_label, track.release_date.as_deref()),
        (None, Some("2017-05-26"))
    );
}

#[tokio::test]
async fn the_app_token_is_cached_across_lookups() {
    let server = MockServer::start().await;
    mount_token(&server, "app-token-1", 1).await;
    Mock::given(method("GET"))
        .and(path(format!("/v1/albums/{ALBUM}")))
        .and(bearer_token("app-token-1"))
        .respond_with(album_answer())
        .expect(3)
        .mount(&server)
        .await;
    let spotify = spotify(&server, fast_http());

    for _ in 0..3 {
        spotify.album(ALBUM).await.unwrap();
    }
}

#[tokio::test]
async fn concurrent_lookups_wait_for_one_token_request() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/token"))
        .respond_with(token("app-token-1", 3600).set_delay(Duration::from_millis(200)))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/v1/albums/{ALBUM}")))
        .and(bearer_token("app-token-1"))
        .respond_with(album_answer())
        .expect(4)
        .mount(&server)
        .await;
    let spotify = spotify(&server, fast_http());

    let (a, b, c, d) = tokio::join!(
        spotify.album(ALBUM),
        spotify.album(ALBUM),
        spotify.album(ALBUM),
        spotify.album(ALBUM)
    );

    for lookup in [a, b, c, d] {
        assert_eq!(lookup.unwrap().id, ALBUM);
    }
}

#[tokio::test]
async fn a_token_that_expires_within_the_margin_is_renewed_for_the_next_lookup() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/token"))
        .respond_with(token("short-lived", 30))
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/v1/albums/{ALBUM}")))
        .respond_with(album_answer())
        .expect(2)
        .mount(&server)
        .await;
    let spotify = spotify(&server, fast_http());

    spotify.album(ALBUM).await.unwrap();
    spotify.album(ALBUM).await.unwrap();
}

#[tokio::test]
async fn a_401_renews_the_token_once_and_repeats_the_call() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/token"))
        .respond_with(token("revoked-token", 3600))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/token"))
        .respond_with(token("fresh-token", 3600))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/v1/albums/{ALBUM}")))
        .and(bearer_token("revoked-token"))
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_json(json!({"error": {"status": 401, "message": "The access token expired"}})),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/v1/albums/{ALBUM}")))
        .and(bearer_token("fresh-token"))
        .respond_with(album_answer())
        .expect(2)
        .mount(&server)
        .await;
    let spotify = spotify(&server, fast_http());

    spotify.album(ALBUM).await.unwrap();
    // The renewed token is the cached one now.
    spotify.album(ALBUM).await.unwrap();
}

#[tokio::test]
async fn a_second_401_after_renewing_the_token_is_an_invalid_token() {
    let server = MockServer::start().await;
    mount_token(&server, "app-token", 2).await;
    Mock::given(method("GET"))
        .and(path(format!("/v1/albums/{ALBUM}")))
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_json(json!({"error": {"status": 401, "message": "Invalid access token"}})),
        )
        .expect(2)
        .mount(&server)
        .await;

    let error = spotify(&server, fast_http()).album(ALBUM).await.unwrap_err();

    assert!(matches!(error, ConnectorError::InvalidToken), "{error:?}");
}

#[tokio::test]
async fn rejected_app_credentials_are_a_client_error_naming_the_code() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/token"))
        .respond_with(
            ResponseTemplate::new(400)
                .set_body_json(json!({"error": "invalid_client", "error_description": "Invalid client"})),
        )
        .expect(1)
        .mount(&server)
        .await;

    let error = spotify(&server, fast_http()).album(ALBUM).await.unwrap_err();

    assert!(
        matches!(&error, ConnectorError::Client { status: 400, code: Some(code) } if code == "invalid_client"),
        "{error:?}"
    );
}

#[tokio::test]
async fn an_unknown_id_is_not_found() {
    let server = MockServer::start().await;
    mount_token(&server, "app-token-1", 1).await;
    Mock::given(method("GET"))
        .and(path(format!("/v1/tracks/{TRACK}")))
        .respond_with(
            ResponseTemplate::new(404).set_body_json(json!({"error": {"status": 404, "message": "Not found."}})),
        )
        .expect(1)
        .mount(&server)
        .await;

    let error = spotify(&server, fast_http()).track(TRACK).await.unwrap_err();

    assert!(matches!(error, ConnectorError::NotFound), "{error:?}");
}

#[tokio::test]
async fn an_id_that_could_change_the_path_is_refused_before_any_request() {
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    let spotify = spotify(&server, fast_http());

    for id in ["../me", "spotify:track:11dFghVXANMlKmJXsNCbNl", "", "a b"] {
        let error = spotify.track(id).await.unwrap_err();
        assert!(matches!(error, ConnectorError::InvalidInput(_)), "{id}: {error:?}");
    }
}

#[tokio::test]
async fn a_429_is_retried_after_its_retry_after_then_succeeds() {
    let server = MockServer::start().await;
    mount_token(&server, "app-token-1", 1).await;
    Mock::given(method("GET"))
        .and(path(format!("/v1/albums/{ALBUM}")))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/v1/albums/{ALBUM}")))
        .respond_with(album_answer())
        .expect(1)
        .mount(&server)
        .await;

    let started = Instant::now();
    let album = spotify(&server, fast_http()).album(ALBUM).await.unwrap();

    assert_eq!(album.label.as_deref(), Some("Interscope"));
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited only {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_500_is_retried_then_succeeds() {
    let server = MockServer::start().await;
    mount_token(&server, "app-token-1", 1).await;
    Mock::given(method("GET"))
        .and(path(format!("/v1/albums/{ALBUM}")))
        .respond_with(ResponseTemplate::new(502))
        .up_to_n_times(2)
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/v1/albums/{ALBUM}")))
        .respond_with(album_answer())
        .expect(1)
        .mount(&server)
        .await;

    let album = spotify(&server, fast_http()).album(ALBUM).await.unwrap();

    assert_eq!(album.id, ALBUM);
}

#[tokio::test]
async fn a_500_on_every_attempt_fails_with_server() {
    let server = MockServer::start().await;
    mount_token(&server, "app-token-1", 1).await;
    Mock::given(method("GET"))
        .and(path(format!("/v1/albums/{ALBUM}")))
        .respond_with(ResponseTemplate::new(500))
        .expect(3)
        .mount(&server)
        .await;

    let error = spotify(&server, fast_http()).album(ALBUM).await.unwrap_err();

    assert!(matches!(error, ConnectorError::Server { status: 500 }), "{error:?}");
}

#[tokio::test]
async fn a_catalogue_slower_than_the_timeout_is_a_timeout() {
    let server = MockServer::start().await;
    mount_token(&server, "app-token-1", 1).await;
    Mock::given(method("GET"))
        .and(path(format!("/v1/albums/{ALBUM}")))
        .respond_with(album_answer().set_delay(SLOW))
        .expect(2)
        .mount(&server)
        .await;

    let error = spotify(&server, impatient_http()).album(ALBUM).await.unwrap_err();

    assert!(matches!(error, ConnectorError::Timeout), "{error:?}");
}
