//! The YouTube Data API: a channel's uploads playlist, its videos across pages, and the
//! API's error reasons (authError, quotaExceeded) as well as 429, 500 and timeouts.

use std::time::{Duration, Instant};

use connectors::youtube::{Video, YouTube, YouTubeSettings};
use connectors::{ConnectorError, HttpSettings};
use serde_json::{json, Value};
use wiremock::matchers::{bearer_token, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{base, fast_http, impatient_http, query, requests, secret, SLOW};

const TOKEN: &str = "ya29.youtube-access-token";
const CHANNEL: &str = "UC_x5XG1OV2P6uZZ5FSM9Ttw";
const UPLOADS: &str = "UU_x5XG1OV2P6uZZ5FSM9Ttw";

fn youtube(server: &MockServer, http: HttpSettings) -> YouTube {
    YouTube::new(YouTubeSettings {
        base_url: base(server),
        http,
    })
    .unwrap()
}

fn channel_answer() -> Value {
    json!({
        "kind": "youtube#channelListResponse",
        "etag": "e1",
        "pageInfo": {"totalResults": 1, "resultsPerPage": 5},
        "items": [{
            "kind": "youtube#channel",
            "etag": "e2",
            "id": CHANNEL,
            "contentDetails": {"relatedPlaylists": {"likes": "", "uploads": UPLOADS}}
        }]
    })
}

fn item(video_id: &str, title: &str, published: Option<&str>, thumbnails: Value) -> Value {
    let mut content_details = json!({"videoId": video_id});
    if let Some(published) = published {
        content_details["videoPublishedAt"] = json!(published);
    }
    json!({
        "kind": "youtube#playlistItem",
        "etag": "etag",
        "id": format!("item-{video_id}"),
        "snippet": {
            "publishedAt": "2024-03-02T09:00:00Z",
            "channelId": CHANNEL,
            "title": title,
            "description": "",
            "thumbnails": thumbnails,
            "channelTitle": "The Artist",
            "playlistId": UPLOADS,
            "position": 0,
            "resourceId": {"kind": "youtube#video", "videoId": video_id}
        },
        "contentDetails": content_details
    })
}

fn page(items: Vec<Value>, next: Option<&str>) -> ResponseTemplate {
    let mut body = json!({
        "kind": "youtube#playlistItemListResponse",
        "etag": "etag",
        "pageInfo": {"totalResults": 3, "resultsPerPage": 50},
        "items": items
    });
    if let Some(next) = next {
        body["nextPageToken"] = json!(next);
    }
    ResponseTemplate::new(200).set_body_json(body)
}

fn youtube_error(status: u16, reason: &str, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "error": {
            "code": status,
            "message": message,
            "errors": [{"message": message, "domain": "youtube", "reason": reason}],
            "status": "ERROR"
        }
    }))
}

#[tokio::test]
async fn the_uploads_playlist_is_read_from_the_channels_content_details() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/youtube/v3/channels"))
        .and(query_param("part", "contentDetails"))
        .and(query_param("id", CHANNEL))
        .and(bearer_token(TOKEN))
        .respond_with(ResponseTemplate::new(200).set_body_json(channel_answer()))
        .expect(1)
        .mount(&server)
        .await;

    let uploads = youtube(&server, fast_http())
        .uploads_playlist(&secret(TOKEN), CHANNEL)
        .await
        .unwrap();

    assert_eq!(uploads, UPLOADS);
    assert!(
        !requests(&server).await[0].url.as_str().contains(TOKEN),
        "the token is in a header, not the URL"
    );
}

#[tokio::test]
async fn a_channel_list_without_items_is_not_found() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/youtube/v3/channels"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "kind": "youtube#channelListResponse",
            "pageInfo": {"totalResults": 0, "resultsPerPage": 5}
        })))
        .expect(1)
        .mount(&server)
        .await;

    let error = youtube(&server, fast_http())
        .uploads_playlist(&secret(TOKEN), CHANNEL)
        .await
        .unwrap_err();

    assert!(matches!(error, ConnectorError::NotFound), "{error:?}");
}

#[tokio::test]
async fn videos_are_listed_across_pages_until_there_is_no_next_page_token() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/youtube/v3/playlistItems"))
        .and(query_param_is_missing("pageToken"))
        .respond_with(page(
            vec![
                item(
                    "vid-1",
                    "Single (Official Video)",
                    Some("2024-03-01T18:00:00Z"),
                    json!({
                        "default": {"url": "https://i.ytimg.com/vi/vid-1/default.jpg", "width": 120, "height": 90},
                        "high": {"url": "https://i.ytimg.com/vi/vid-1/hqdefault.jpg", "width": 480, "height": 360},
                        "maxres": {"url": "https://i.ytimg.com/vi/vid-1/maxresdefault.jpg", "width": 1280, "height": 720}
                    }),
                ),
                item(
                    "vid-2",
                    "Lyric video",
                    Some("2024-02-01T18:00:00Z"),
                    json!({"medium": {"url": "https://i.ytimg.com/vi/vid-2/mqdefault.jpg"}}),
                ),
            ],
            Some("CAIQAA"),
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/youtube/v3/playlistItems"))
        .and(query_param("pageToken", "CAIQAA"))
        .respond_with(page(vec![item("vid-3", "Private video", None, json!({}))], None))
        .expect(1)
        .mount(&server)
        .await;

    let videos = youtube(&server, fast_http())
        .list_videos(&secret(TOKEN), UPLOADS, 100)
        .await
        .unwrap();

    assert_eq!(
        videos,
        vec![
            Video {
                video_id: "vid-1".into(),
                title: "Single (Official Video)".into(),
                published_at: Some("2024-03-01T18:00:00Z".parse().unwrap()),
                thumbnail_url: Some("https://i.ytimg.com/vi/vid-1/maxresdefault.jpg".into()),
            },
            Video {
                video_id: "vid-2".into(),
                title: "Lyric video".into(),
                published_at: Some("2024-02-01T18:00:00Z".parse().unwrap()),
                thumbnail_url: Some("https://i.ytimg.com/vi/vid-2/mqdefault.jpg".into()),
            },
            // No videoPublishedAt (private): the time it joined the playlist stands in.
            Video {
                video_id: "vid-3".into(),
                title: "Private video".into(),
                published_at: Some("2024-03-02T09:00:00Z".parse().unwrap()),
                thumbnail_url: None,
            },
        ]
    );
    for request in requests(&server).await {
        let query = query(&request);
        assert_eq!(query["part"], "snippet,contentDetails");
        assert_eq!(query["playlistId"], UPLOADS);
        assert_eq!(query["maxResults"], "50");
        assert_eq!(
            crate::support::header(&request, "authorization"),
            Some(&*format!("Bearer {TOKEN}"))
        );
    }
}

#[tokio::test]
async fn listing_stops_at_max_and_asks_for_pages_no_larger_than_max() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/youtube/v3/playlistItems"))
        .and(query_param("maxResults", "2"))
        .respond_with(page(
            vec![
                item("a", "A", None, json!({})),
                item("b", "B", None, json!({})),
                item("c", "C", None, json!({})),
            ],
            Some("NEXT"),
        ))
        .expect(1)
        .mount(&server)
        .await;

    let videos = youtube(&server, fast_http())
        .list_videos(&secret(TOKEN), UPLOADS, 2)
        .await
        .unwrap();

    assert_eq!(
        videos.iter().map(|video| video.video_id.as_str()).collect::<Vec<_>>(),
        ["a", "b"]
    );
}

#[tokio::test]
async fn channel_videos_reads_the_uploads_playlist_then_its_videos() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/youtube/v3/channels"))
        .respond_with(ResponseTemplate::new(200).set_body_json(channel_answer()))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/youtube/v3/playlistItems"))
        .and(query_param("playlistId", UPLOADS))
        .respond_with(page(vec![item("only", "Only", None, json!({}))], None))
        .expect(1)
        .mount(&server)
        .await;

    let videos = youtube(&server, fast_http())
        .channel_videos(&secret(TOKEN), CHANNEL, 10)
        .await
        .unwrap();

    assert_eq!(videos.len(), 1);
}

#[tokio::test]
async fn an_auth_error_is_an_invalid_token_and_is_not_retried() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/youtube/v3/channels"))
        .respond_with(youtube_error(401, "authError", "Invalid Credentials"))
        .expect(1)
        .mount(&server)
        .await;

    let error = youtube(&server, fast_http())
        .uploads_playlist(&secret(TOKEN), CHANNEL)
        .await
        .unwrap_err();

    assert!(matches!(error, ConnectorError::InvalidToken), "{error:?}");
}

#[tokio::test]
async fn an_exceeded_daily_quota_is_rate_limited_without_retrying() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/youtube/v3/playlistItems"))
        .respond_with(youtube_error(
            403,
            "quotaExceeded",
            "The request cannot be completed because you have exceeded your quota.",
        ))
        .expect(1)
        .mount(&server)
        .await;

    let error = youtube(&server, fast_http())
        .list_videos(&secret(TOKEN), UPLOADS, 10)
        .await
        .unwrap_err();

    assert!(
        matches!(error, ConnectorError::RateLimited { retry_after: None }),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_missing_playlist_is_not_found() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/youtube/v3/playlistItems"))
        .respond_with(youtube_error(
            404,
            "playlistNotFound",
            "The playlist identified with the request's playlistId parameter cannot be found.",
        ))
        .expect(1)
        .mount(&server)
        .await;

    let error = youtube(&server, fast_http())
        .list_videos(&secret(TOKEN), UPLOADS, 10)
        .await
        .unwrap_err();

    assert!(matches!(error, ConnectorError::NotFound), "{error:?}");
}

#[tokio::test]
async fn a_429_is_retried_after_its_retry_after_then_succeeds() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/youtube/v3/channels"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/youtube/v3/channels"))
        .respond_with(ResponseTemplate::new(200).set_body_json(channel_answer()))
        .expect(1)
        .mount(&server)
        .await;

    let started = Instant::now();
    let uploads = youtube(&server, fast_http())
        .uploads_playlist(&secret(TOKEN), CHANNEL)
        .await
        .unwrap();

    assert_eq!(uploads, UPLOADS);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited only {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_500_on_the_second_page_is_retried_and_the_listing_completes() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/youtube/v3/playlistItems"))
        .and(query_param_is_missing("pageToken"))
        .respond_with(page(vec![item("p1", "P1", None, json!({}))], Some("PAGE2")))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/youtube/v3/playlistItems"))
        .and(query_param("pageToken", "PAGE2"))
        .respond_with(youtube_error(500, "backendError", "Backend Error"))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/youtube/v3/playlistItems"))
        .and(query_param("pageToken", "PAGE2"))
        .respond_with(page(vec![item("p2", "P2", None, json!({}))], None))
        .expect(1)
        .mount(&server)
        .await;

    let videos = youtube(&server, fast_http())
        .list_videos(&secret(TOKEN), UPLOADS, 10)
        .await
        .unwrap();

    assert_eq!(
        videos.iter().map(|video| video.video_id.as_str()).collect::<Vec<_>>(),
        ["p1", "p2"]
    );
}

#[tokio::test]
async fn a_500_on_every_attempt_fails_with_server() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/youtube/v3/channels"))
        .respond_with(youtube_error(503, "backendError", "Backend Error"))
        .expect(3)
        .mount(&server)
        .await;

    let error = youtube(&server, fast_http())
        .uploads_playlist(&secret(TOKEN), CHANNEL)
        .await
        .unwrap_err();

    assert!(matches!(error, ConnectorError::Server { status: 503 }), "{error:?}");
}

#[tokio::test]
async fn an_api_slower_than_the_timeout_is_a_timeout() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/youtube/v3/channels"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(channel_answer())
                .set_delay(SLOW),
        )
        .expect(2)
        .mount(&server)
        .await;

    let error = youtube(&server, impatient_http())
        .uploads_playlist(&secret(TOKEN), CHANNEL)
        .await
        .unwrap_err();

    assert!(matches!(error, ConnectorError::Timeout), "{error:?}");
}

#[tokio::test]
async fn a_channel_id_that_could_change_the_query_is_refused_before_any_request() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;

    let error = youtube(&server, fast_http())
        .uploads_playlist(&secret(TOKEN), "UC1&mine=true")
        .await
        .unwrap_err();

    assert!(matches!(error, ConnectorError::InvalidInput(_)), "{error:?}");
}
