//! Meta's Graph API: a page's posts and an Instagram account's media across cursor pages, the
//! token kept out of every URL, `appsecret_proof`, and Meta's error codes.

use std::time::{Duration, Instant};

use connectors::meta::{InstagramMedia, Meta, MetaSettings, PagePost};
use connectors::{ConnectorError, HttpSettings};
use serde_json::json;
use wiremock::matchers::{bearer_token, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{base, fast_http, impatient_http, query, requests, secret, SLOW};

const PAGE_TOKEN: &str = "EAAB-page-access-token";
const PAGE_ID: &str = "104958162837";
const IG_USER: &str = "17841405822304914";

fn meta(server: &MockServer, http: HttpSettings) -> Meta {
    Meta::new(MetaSettings {
        base_url: base(server),
        http,
        ..MetaSettings::default()
    })
    .unwrap()
}

fn posts_path() -> String {
    format!("/v25.0/{PAGE_ID}/posts")
}

fn graph_error(status: u16, code: i64, subcode: Option<i64>, message: &str) -> ResponseTemplate {
    let mut error = json!({"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "AbCdEf"});
    if let Some(subcode) = subcode {
        error["error_subcode"] = json!(subcode);
    }
    ResponseTemplate::new(status).set_body_json(json!({"error": error}))
}

fn one_post_page() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "data": [{"id": format!("{PAGE_ID}_1"), "created_time": "2024-05-01T10:00:00+0000"}],
        "paging": {"cursors": {"before": "B", "after": "A"}}
    }))
}

#[tokio::test]
async fn page_posts_are_listed_across_cursor_pages_with_the_token_only_in_the_header() {
    let server = MockServer::start().await;
    let next = format!(
        "{}/v25.0/{PAGE_ID}/posts?access_token={PAGE_TOKEN}&fields=id%2Cmessage&limit=100&after=QVFIUkxx",
        server.uri()
    );
    Mock::given(method("GET"))
        .and(path(posts_path()))
        .and(query_param_is_missing("after"))
        .and(bearer_token(PAGE_TOKEN))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": [
                {
                    "id": format!("{PAGE_ID}_2"),
                    "message": "New single out now",
                    "created_time": "2024-05-02T18:30:00+0000",
                    "permalink_url": "https://www.facebook.com/104958162837/posts/2"
                },
                {"id": format!("{PAGE_ID}_1"), "created_time": "2024-05-01T10:00:00+0000"}
            ],
            "paging": {"cursors": {"before": "QVFIUkbb", "after": "QVFIUkxx"}, "next": next}
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(posts_path()))
        .and(query_param("after", "QVFIUkxx"))
        .and(bearer_token(PAGE_TOKEN))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": [{"id": format!("{PAGE_ID}_0"), "message": "Hello", "created_time": "2024-04-01T08:00:00+0000"}],
            "paging": {"cursors": {"before": "QVFIUkcc", "after": "QVFIUkdd"}}
        })))
        .expect(1)
        .mount(&server)
        .await;

    let posts = meta(&server, fast_http())
        .page_posts(&secret(PAGE_TOKEN), PAGE_ID, 10)
        .await
        .unwrap();

    assert_eq!(
        posts,
        vec![
            PagePost {
                id: format!("{PAGE_ID}_2"),
                message: Some("New single out now".into()),
                created_time: Some("2024-05-02T18:30:00Z".parse().unwrap()),
                permalink_url: Some("https://www.facebook.com/104958162837/posts/2".into()),
            },
            PagePost {
                id: format!("{PAGE_ID}_1"),
                message: None,
                created_time: Some("2024-05-01T10:00:00Z".parse().unwrap()),
                permalink_url: None,
            },
            PagePost {
                id: format!("{PAGE_ID}_0"),
                message: Some("Hello".into()),
                created_time: Some("2024-04-01T08:00:00Z".parse().unwrap()),
                permalink_url: None,
            },
        ]
    );
    for request in requests(&server).await {
        let query = query(&request);
        assert_eq!(query["fields"], "id,message,created_time,permalink_url");
        assert_eq!(query["limit"], "10");
        assert!(
            !query.contains_key("access_token"),
            "the token went into a URL: {}",
            request.url
        );
        assert!(!request.url.as_str().contains(PAGE_TOKEN));
    }
}

#[tokio::test]
async fn instagram_media_is_listed_with_its_fields_until_max() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/v25.0/{IG_USER}/media")))
        .and(query_param("fields", "id,caption,media_type,permalink,timestamp"))
        .and(query_param("limit", "2"))
        .and(bearer_token("IGQ-user-token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": [
                {
                    "id": "17895695668004550",
                    "caption": "Tour dates",
                    "media_type": "CAROUSEL_ALBUM",
                    "permalink": "https://www.instagram.com/p/Cabc/",
                    "timestamp": "2024-06-01T12:00:00+0000"
                },
                {"id": "17895695668004551", "media_type": "VIDEO", "timestamp": "not a time"}
            ],
            "paging": {"cursors": {"before": "b", "after": "a"}, "next": "https://graph.facebook.com/next"}
        })))
        .expect(1)
        .mount(&server)
        .await;

    let media = meta(&server, fast_http())
        .instagram_media(&secret("IGQ-user-token"), IG_USER, 2)
        .await
        .unwrap();

    assert_eq!(
        media,
        vec![
            InstagramMedia {
                id: "17895695668004550".into(),
                caption: Some("Tour dates".into()),
                media_type: Some("CAROUSEL_ALBUM".into()),
                permalink: Some("https://www.instagram.com/p/Cabc/".into()),
                timestamp: Some("2024-06-01T12:00:00Z".parse().unwrap()),
            },
            InstagramMedia {
                id: "17895695668004551".into(),
                caption: None,
                media_type: Some("VIDEO".into()),
                permalink: None,
                timestamp: None,
            },
        ]
    );
}

#[tokio::test]
async fn an_app_secret_adds_the_appsecret_proof_of_the_token() {
    let server = MockServer::start().await;
    // HMAC-SHA256("page-token-123") keyed by "app-secret-xyz", as `openssl dgst -sha256 -hmac` computes it.
    Mock::given(method("GET"))
        .and(path(posts_path()))
        .and(query_param(
            "appsecret_proof",
            "f095003546960746d38360143f50e3599ceb36c8ed09b75e9c023fe3dc7a58bd",
        ))
        .respond_with(one_post_page())
        .expect(1)
        .mount(&server)
        .await;
    let settings = MetaSettings {
        base_url: base(&server),
        app_secret: Some(secret("app-secret-xyz")),
        http: fast_http(),
        ..MetaSettings::default()
    };

    let posts = Meta::new(settings)
        .unwrap()
        .page_posts(&secret("page-token-123"), PAGE_ID, 5)
        .await
        .unwrap();

    assert_eq!(posts.len(), 1);
}

#[tokio::test]
async fn an_expired_token_oauth_exception_190_is_an_invalid_token() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(posts_path()))
        .respond_with(graph_error(
            400,
            190,
            Some(463),
            "Error validating access token: Session has expired",
        ))
        .expect(1)
        .mount(&server)
        .await;

    let error = meta(&server, fast_http())
        .page_posts(&secret(PAGE_TOKEN), PAGE_ID, 5)
        .await
        .unwrap_err();

    assert!(matches!(error, ConnectorError::InvalidToken), "{error:?}");
}

#[tokio::test]
async fn an_application_throttle_code_is_rate_limited_without_retrying() {
    for code in [4, 17, 32, 613] {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path(posts_path()))
            .respond_with(graph_error(403, code, None, "(#4) Application request limit reached"))
            .expect(1)
            .mount(&server)
            .await;

        let error = meta(&server, fast_http())
            .page_posts(&secret(PAGE_TOKEN), PAGE_ID, 5)
            .await
            .unwrap_err();

        assert!(
            matches!(error, ConnectorError::RateLimited { retry_after: None }),
            "code {code}: {error:?}"
        );
    }
}

#[tokio::test]
async fn an_unknown_object_is_not_found_and_other_codes_are_client_errors_with_their_code() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(posts_path()))
        .respond_with(graph_error(400, 100, Some(33), "Unsupported get request."))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/v25.0/{IG_USER}/media")))
        .respond_with(graph_error(
            403,
            10,
            None,
            "(#10) Application does not have permission for this action",
        ))
        .expect(1)
        .mount(&server)
        .await;
    let meta = meta(&server, fast_http());

    let missing = meta.page_posts(&secret(PAGE_TOKEN), PAGE_ID, 5).await.unwrap_err();
    let refused = meta.instagram_media(&secret(PAGE_TOKEN), IG_USER, 5).await.unwrap_err();

    assert!(matches!(missing, ConnectorError::NotFound), "{missing:?}");
    assert!(
        matches!(&refused, ConnectorError::Client { status: 403, code: Some(code) } if code == "10"),
        "{refused:?}"
    );
}

#[tokio::test]
async fn a_429_is_retried_after_its_retry_after_then_succeeds() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(posts_path()))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(posts_path()))
        .respond_with(one_post_page())
        .expect(1)
        .mount(&server)
        .await;

    let started = Instant::now();
    let posts = meta(&server, fast_http())
        .page_posts(&secret(PAGE_TOKEN), PAGE_ID, 5)
        .await
        .unwrap();

    assert_eq!(posts.len(), 1);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited only {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_500_is_retried_then_succeeds() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(posts_path()))
        .respond_with(graph_error(500, 2, None, "Service temporarily unavailable"))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(posts_path()))
        .respond_with(one_post_page())
        .expect(1)
        .mount(&server)
        .await;

    let posts = meta(&server, fast_http())
        .page_posts(&secret(PAGE_TOKEN), PAGE_ID, 5)
        .await
        .unwrap();

    assert_eq!(posts.len(), 1);
}

#[tokio::test]
async fn a_500_on_every_attempt_fails_with_server() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(posts_path()))
        .respond_with(graph_error(500, 1, None, "An unknown error occurred"))
        .expect(3)
        .mount(&server)
        .await;

    let error = meta(&server, fast_http())
        .page_posts(&secret(PAGE_TOKEN), PAGE_ID, 5)
        .await
        .unwrap_err();

    assert!(matches!(error, ConnectorError::Server { status: 500 }), "{error:?}");
}

#[tokio::test]
async fn a_graph_api_slower_than_the_timeout_is_a_timeout() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(posts_path()))
        .respond_with(one_post_page().set_delay(SLOW))
        .expect(2)
        .mount(&server)
        .await;

    let error = meta(&server, impatient_http())
        .page_posts(&secret(PAGE_TOKEN), PAGE_ID, 5)
        .await
        .unwrap_err();

    assert!(matches!(error, ConnectorError::Timeout), "{error:?}");
}

#[test]
fn a_graph_version_that_is_not_v_major_minor_is_refused() {
    for version in ["21.0", "v21", "v21.x", "v21.0/../me"] {
        let settings = MetaSettings {
            graph_version: version.into(),
            ..MetaSettings::default()
        };
        assert!(
            matches!(Meta::new(settings), Err(ConnectorError::Config(_))),
            "{version}"
        );
    }
}

// Revocation (erasure): `DELETE /{version}/me/permissions` with the person's token.

const USER_TOKEN: &str = "EAAB-user-token-to-revoke";
const PERMISSIONS_PATH: &str = "/v25.0/me/permissions";

#[tokio::test]
async fn permissions_are_revoked_with_a_delete_carrying_the_token_and_its_proof_in_no_url() {
    let server = MockServer::start().await;
    Mock::given(method("DELETE"))
        .and(path(PERMISSIONS_PATH))
        .and(bearer_token("page-token-123"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"success": true})))
        .expect(1)
        .mount(&server)
        .await;
    let settings = MetaSettings {
        base_url: base(&server),
        app_secret: Some(secret("app-secret-xyz")),
        http: fast_http(),
        ..MetaSettings::default()
    };

    Meta::new(settings)
        .unwrap()
        .revoke_permissions(&secret("page-token-123"))
        .await
        .unwrap();

    let received = requests(&server).await;
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].method.as_str(), "DELETE");
    assert!(received[0].body.is_empty());
    // The same proof as for reads: HMAC-SHA256 of the token keyed by the app secret.
    assert_eq!(
        query(&received[0]),
        [(
            "appsecret_proof".to_owned(),
            "f095003546960746d38360143f50e3599ceb36c8ed09b75e9c023fe3dc7a58bd".to_owned()
        )]
        .into_iter()
        .collect()
    );
}

#[tokio::test]
async fn a_bare_true_answer_is_a_revocation_too() {
    let server = MockServer::start().await;
    Mock::given(method("DELETE"))
        .and(path(PERMISSIONS_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_string("true"))
        .expect(1)
        .mount(&server)
        .await;

    meta(&server, fast_http())
        .revoke_permissions(&secret(USER_TOKEN))
        .await
        .unwrap();
    assert!(query(&requests(&server).await[0]).is_empty());
}

#[tokio::test]
async fn an_already_invalid_token_code_190_leaves_nothing_to_revoke() {
    let server = MockServer::start().await;
    Mock::given(method("DELETE"))
        .and(path(PERMISSIONS_PATH))
        .respond_with(graph_error(
            400,
            190,
            Some(458),
            "Error validating access token: The user has not authorized application 123.",
        ))
        .expect(1)
        .mount(&server)
        .await;

    meta(&server, fast_http())
        .revoke_permissions(&secret(USER_TOKEN))
        .await
        .unwrap();
}

#[tokio::test]
async fn success_false_is_not_a_revocation() {
    let server = MockServer::start().await;
    Mock::given(method("DELETE"))
        .and(path(PERMISSIONS_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"success": false})))
        .expect(1)
        .mount(&server)
        .await;

    let error = meta(&server, fast_http())
        .revoke_permissions(&secret(USER_TOKEN))
        .await
        .unwrap_err();

    assert!(
        matches!(
            error,
            ConnectorError::Decode {
                what: "meta revoke permissions",
                ..
            }
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn another_graph_error_or_a_bare_401_fails_the_revocation_without_the_token() {
    let server = MockServer::start().await;
    Mock::given(method("DELETE"))
        .and(path(PERMISSIONS_PATH))
        .respond_with(graph_error(
            400,
            200,
            None,
            &format!("Permissions error for {USER_TOKEN}"),
        ))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path(PERMISSIONS_PATH))
        .respond_with(ResponseTemplate::new(401))
        .expect(1)
        .mount(&server)
        .await;
    let meta = meta(&server, fast_http());

    let refused = meta.revoke_permissions(&secret(USER_TOKEN)).await.unwrap_err();
    let unauthorised = meta.revoke_permissions(&secret(USER_TOKEN)).await.unwrap_err();

    assert!(
        matches!(&refused, ConnectorError::Client { status: 400, code: Some(code) } if code == "200"),
        "{refused:?}"
    );
    assert!(!format!("{refused} {refused:?}").contains(USER_TOKEN));
    assert!(
        matches!(
            unauthorised,
            ConnectorError::Client {
                status: 401,
                code: None
            }
        ),
        "{unauthorised:?}"
    );
}

#[tokio::test]
async fn a_revocation_failing_with_5xx_is_retried_then_succeeds() {
    let server = MockServer::start().await;
    Mock::given(method("DELETE"))
        .and(path(PERMISSIONS_PATH))
        .respond_with(ResponseTemplate::new(502))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path(PERMISSIONS_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"success": true})))
        .expect(1)
        .mount(&server)
        .await;

    meta(&server, fast_http())
        .revoke_permissions(&secret(USER_TOKEN))
        .await
        .unwrap();
}
