//! No token, client secret, API key or recipient address reaches an error's `Display`, `Debug`
//! or source chain, a client's or a settings struct's `Debug`, or a log line, even when the
//! platform echoes them back in its error bodies.

use std::error::Error as _;
use std::io;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use connectors::google_oauth::{GoogleOAuth, GoogleOAuthSettings};
use connectors::meta::{Meta, MetaSettings};
use connectors::resend::{EmailMessage, Resend, ResendSettings};
use connectors::spotify::{Spotify, SpotifySettings};
use connectors::youtube::{YouTube, YouTubeSettings};
use connectors::{ConnectorError, Url};
use serde_json::json;
use tracing_subscriber::fmt::MakeWriter;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{base, fast_http, impatient_http, secret, SLOW};

const REFRESH_TOKEN: &str = "1//refresh-SECRET-r";
const ACCESS_TOKEN: &str = "ya29.ACCESS-SECRET-y";
const META_TOKEN: &str = "EAAB-SECRET-m";
const META_APP_SECRET: &str = "app-SECRET-meta";
const GOOGLE_CLIENT_ID: &str = "google-id-SECRET";
const GOOGLE_CLIENT_SECRET: &str = "google-SECRET-c";
const SPOTIFY_CLIENT_ID: &str = "spotify-id-SECRET";
const SPOTIFY_CLIENT_SECRET: &str = "spotify-SECRET-s";
const RESEND_KEY: &str = "re_SECRET_k";
const RECIPIENT: &str = "private.person@example.com";

const NEVER_SHOWN: [&str; 10] = [
    REFRESH_TOKEN,
    ACCESS_TOKEN,
    META_TOKEN,
    META_APP_SECRET,
    GOOGLE_CLIENT_ID,
    GOOGLE_CLIENT_SECRET,
    SPOTIFY_CLIENT_ID,
    SPOTIFY_CLIENT_SECRET,
    RESEND_KEY,
    RECIPIENT,
];

fn assert_clean(what: &str, text: &str) {
    for needle in NEVER_SHOWN {
        assert!(!text.contains(needle), "{what} shows {needle:?}:\n{text}");
    }
    // The distinctive part of every secret above, in case one is shown in pieces or encoded.
    assert!(!text.contains("SECRET"), "{what} shows a secret:\n{text}");
}

/// Everything an error shows: `Display`, `Debug`, pretty `Debug` and each source's `Display`.
fn everything_shown(error: &ConnectorError) -> String {
    let mut shown = format!("{error}\n{error:?}\n{error:#?}");
    let mut source = error.source();
    while let Some(cause) = source {
        shown.push_str(&format!("\n{cause}\n{cause:?}"));
        source = cause.source();
    }
    shown
}

/// A log sink the test can read.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl io::Write for Logs {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Logs {
    type Writer = Logs;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// An error body that quotes everything secret back, as a careless platform might.
fn echoing(status: u16, mut body: serde_json::Value) -> ResponseTemplate {
    body["echo"] = json!(NEVER_SHOWN);
    ResponseTemplate::new(status).set_body_json(body)
}

fn email() -> EmailMessage {
    EmailMessage {
        from: "dynamoi <invitations@dynamoi.test>".into(),
        to: vec![RECIPIENT.into()],
        subject: "Invitation".into(),
        html: "<p>hi</p>".into(),
        text: "hi".into(),
    }
}

#[tokio::test]
async fn errors_and_log_lines_never_show_a_token_a_secret_or_the_recipient() {
    let logs = Logs::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(logs.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let server = MockServer::start().await;
    // Each endpoint fails once with a 500 that echoes the secrets (a retry, so a log line),
    // then with its final error, which echoes them too.
    let failures = [
        (
            "POST",
            "/token",
            echoing(
                400,
                json!({"error": "invalid_grant", "error_description": REFRESH_TOKEN}),
            ),
        ),
        (
            "GET",
            "/youtube/v3/channels",
            echoing(
                401,
                json!({"error": {"code": 401, "errors": [{"reason": "authError"}]}}),
            ),
        ),
        (
            "GET",
            "/v25.0/123/posts",
            echoing(400, json!({"error": {"code": 190, "message": META_TOKEN}})),
        ),
        (
            "POST",
            "/api/token",
            echoing(
                400,
                json!({"error": "invalid_client", "error_description": SPOTIFY_CLIENT_SECRET}),
            ),
        ),
        (
            "POST",
            "/emails",
            echoing(
                422,
                json!({"statusCode": 422, "name": "validation_error", "message": RECIPIENT}),
            ),
        ),
    ];
    for (verb, route, final_answer) in failures {
        Mock::given(method(verb))
            .and(path(route))
            .respond_with(echoing(500, json!({"message": "retry me"})))
            .up_to_n_times(1)
            .mount(&server)
            .await;
        Mock::given(method(verb))
            .and(path(route))
            .respond_with(final_answer)
            .mount(&server)
            .await;
    }
    let mut google_settings = GoogleOAuthSettings::new(secret(GOOGLE_CLIENT_ID), secret(GOOGLE_CLIENT_SECRET));
    google_settings.base_url = base(&server);
    google_settings.http = fast_http();
    let youtube_settings = YouTubeSettings {
        base_url: base(&server),
        http: fast_http(),
    };
    let meta_settings = MetaSettings {
        base_url: base(&server),
        app_secret: Some(secret(META_APP_SECRET)),
        http: fast_http(),
        ..MetaSettings::default()
    };
    let mut spotify_settings = SpotifySettings::new(secret(SPOTIFY_CLIENT_ID), secret(SPOTIFY_CLIENT_SECRET));
    spotify_settings.accounts_base_url = base(&server);
    spotify_settings.api_base_url = base(&server);
    spotify_settings.http = fast_http();
    let mut resend_settings = ResendSettings::new(secret(RESEND_KEY));
    resend_settings.base_url = base(&server);
    resend_settings.http = fast_http();
    let settings_shown = format!(
        "{google_settings:?}{google_settings:#?}{youtube_settings:?}{meta_settings:?}{meta_settings:#?}\
         {spotify_settings:?}{spotify_settings:#?}{resend_settings:?}{resend_settings:#?}"
    );
    let google = GoogleOAuth::new(google_settings).unwrap();
    let youtube = YouTube::new(youtube_settings).unwrap();
    let meta = Meta::new(meta_settings).unwrap();
    let spotify = Spotify::new(spotify_settings).unwrap();
    let resend = Resend::new(resend_settings.clone()).unwrap();

    let mut errors = vec![
        google.refresh_access_token(&secret(REFRESH_TOKEN)).await.unwrap_err(),
        youtube
            .uploads_playlist(&secret(ACCESS_TOKEN), "UC1")
            .await
            .unwrap_err(),
        meta.page_posts(&secret(META_TOKEN), "123", 5).await.unwrap_err(),
        spotify.album("6TJmQnO44YE5BtTxH8pop1").await.unwrap_err(),
        resend.send_email(&email(), "invitation/1").await.unwrap_err(),
    ];
    // A transport failure (nothing listens) and a timeout: errors that carry a reqwest source.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let unreachable: Url = format!("http://127.0.0.1:{port}").parse().unwrap();
    let offline = Resend::new(ResendSettings {
        base_url: unreachable,
        ..resend_settings.clone()
    })
    .unwrap();
    errors.push(offline.send_email(&email(), "invitation/2").await.unwrap_err());
    let slow = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/emails"))
        .respond_with(ResponseTemplate::new(200).set_delay(SLOW))
        .mount(&slow)
        .await;
    let impatient = Resend::new(ResendSettings {
        base_url: base(&slow),
        http: impatient_http(),
        ..resend_settings
    })
    .unwrap();
    errors.push(impatient.send_email(&email(), "invitation/3").await.unwrap_err());

    assert!(matches!(errors[0], ConnectorError::InvalidToken), "{:?}", errors[0]);
    assert!(matches!(errors[5], ConnectorError::Transport(_)), "{:?}", errors[5]);
    assert!(matches!(errors[6], ConnectorError::Timeout), "{:?}", errors[6]);
    for error in &errors {
        assert_clean("an error", &everything_shown(error));
    }
    assert_clean("a settings struct", &settings_shown);
    let clients_shown = format!(
        "{google:?}{google:#?}{youtube:?}{meta:?}{meta:#?}{spotify:?}{spotify:#?}{resend:?}{resend:#?}{offline:?}"
    );
    assert_clean("a client", &clients_shown);
    let logs = logs.text();
    assert!(
        logs.contains("retrying"),
        "the retries were not logged, so this test checks nothing:\n{logs}"
    );
    assert_clean("the logs", &logs);
}
