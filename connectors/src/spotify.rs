//! The Spotify Web API's public catalogue, for the Chrome extension's lookup (P8): popularity,
//! label and release date of a track or an album id. No person's Spotify data is read: calls use
//! the app's own token from the client-credentials flow, which carries no user.
//!
//! - Token: `POST {accounts}/api/token`, HTTP Basic `client_id:client_secret`, form
//!   `grant_type=client_credentials`; the answer `{"access_token", "token_type", "expires_in"}`
//!   (Spotify's *Client Credentials Flow* tutorial). The token is kept in memory and reused until
//!   [`TOKEN_REFRESH_MARGIN`] before it expires; one lock held across the request means
//!   concurrent lookups wait for one token instead of each asking for one.
//! - Catalogue: `GET {api}/v1/tracks/{id}` and `GET {api}/v1/albums/{id}` with the token as a
//!   bearer header. A 401 (the token expired early or was revoked) drops the cached token, gets
//!   a new one and repeats the call once; a second 401 is [`ConnectorError::InvalidToken`], which
//!   here means the app's credentials need attention. 404 is [`ConnectorError::NotFound`].
//!
//! **Fields that disappear.** Spotify removed `popularity` (tracks, albums) and `label`
//! (albums) from the answers of apps in development mode (*Web API Changelog – February 2026*,
//! *February 2026 Migration Guide*); extended-quota apps still get them. Every field but `id` and
//! `name` is therefore optional and read leniently: missing, `null` or of another type is `None`.
//!
//! **A track's label.** A track object embeds a simplified album (`album.id`,
//! `album.release_date`) that has no `label`: [`Spotify::track`] makes a second call,
//! `GET /v1/albums/{album.id}`, for it. The release date comes from the track's embedded album,
//! else from the full album. The several-albums endpoint (`GET /v1/albums?ids=`) is gone for
//! development-mode apps in the same change, so one lookup is at most two calls; when the
//! album call answers 404 the label is `None`, other failures fail the lookup.

use std::fmt;
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::error::ConnectorError;
use crate::http::{check_id, decode, lenient, Failure, HttpClient, HttpSettings, Verdict};
use crate::Url;

/// A cached token is renewed this long before Spotify says it expires (a token that expires
/// sooner than this after it was issued is used once).
pub const TOKEN_REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// Where Spotify is and the app dynamoi is registered as.
#[derive(Debug, Clone)]
pub struct SpotifySettings {
    /// Default `https://accounts.spotify.com` (token endpoint `{base}/api/token`).
    pub accounts_base_url: Url,
    /// Default `https://api.spotify.com` (catalogue under `{base}/v1/`).
    pub api_base_url: Url,
    pub client_id: SecretString,
    pub client_secret: SecretString,
    pub http: HttpSettings,
}

impl SpotifySettings {
    /// Spotify's production hosts with default timeouts and retries.
    pub fn new(client_id: SecretString, client_secret: SecretString) -> Self {
        SpotifySettings {
            accounts_base_url: Url::parse("https://accounts.spotify.com").expect("a valid constant URL"),
            api_base_url: Url::parse("https://api.spotify.com").expect("a valid constant URL"),
            client_id,
            client_secret,
            http: HttpSettings::default(),
        }
    }
}

/// Public catalogue data of a track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackInfo {
    pub id: String,
    pub name: String,
    /// 0–100, when Spotify still sends it.
    pub popularity: Option<u32>,
    /// The album the track appears on.
    pub album_id: Option<String>,
    /// The label of that album (a second call, see the module documentation).
    pub album_label: Option<String>,
    /// `YYYY`, `YYYY-MM` or `YYYY-MM-DD`, as precise as Spotify knows it.
    pub release_date: Option<String>,
}

/// Public catalogue data of an album.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlbumInfo {
    pub id: String,
    pub name: String,
    pub popularity: Option<u32>,
    pub label: Option<String>,
    pub release_date: Option<String>,
}

/// The Spotify catalogue client. Share one per process (behind an `Arc`): it caches the token.
pub struct Spotify {
    accounts: HttpClient,
    api: HttpClient,
    client_id: SecretString,
    client_secret: SecretString,
    token: Mutex<Option<AppToken>>,
}

impl fmt::Debug for Spotify {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Spotify")
            .field("accounts", &self.accounts)
            .field("api", &self.api)
            .finish_non_exhaustive()
    }
}

/// The cached app token. `generation` tells a 401 handler whether the token it used is still
/// the cached one (then it is dropped) or another task has already replaced it.
struct AppToken {
    token: SecretString,
    renew_at: Instant,
    generation: u64,
}

impl Spotify {
    pub fn new(settings: SpotifySettings) -> Result<Self, ConnectorError> {
        let accounts = HttpClient::new("spotify_accounts", &settings.accounts_base_url, &settings.http)?;
        let api = accounts.with_base("spotify", &settings.api_base_url)?;
        Ok(Spotify {
            accounts,
            api,
            client_id: settings.client_id,
            client_secret: settings.client_secret,
            token: Mutex::new(None),
        })
    }

    /// A track's public data, with its album's label (two catalogue calls).
    pub async fn track(&self, id: &str) -> Result<TrackInfo, ConnectorError> {
        check_spotify_id(id)?;
        let track: TrackObject = decode(
            "spotify track",
            &self.catalog_get("spotify track", &["v1", "tracks", id]).await?,
        )?;
        let (album_id, embedded_release_date) = match track.album {
            Some(album) => (album.id.filter(|id| check_spotify_id(id).is_ok()), album.release_date),
            None => (None, None),
        };
        let album = match &album_id {
            Some(album_id) => match self.album(album_id).await {
                Ok(album) => Some(album),
                Err(ConnectorError::NotFound) => None,
                Err(error) => return Err(error),
            },
            None => None,
        };
        let (album_label, album_release_date) = match album {
            Some(album) => (album.label, album.release_date),
            None => (None, None),
        };
        Ok(TrackInfo {
            id: track.id,
            name: track.name,
            popularity: track.popularity,
            album_id,
            album_label,
            release_date: embedded_release_date.or(album_release_date),
        })
    }

    /// An album's public data.
    pub async fn album(&self, id: &str) -> Result<AlbumInfo, ConnectorError> {
        check_spotify_id(id)?;
        let album: AlbumObject = decode(
            "spotify album",
            &self.catalog_get("spotify album", &["v1", "albums", id]).await?,
        )?;
        Ok(AlbumInfo {
            id: album.id,
            name: album.name,
            popularity: album.popularity,
            label: album.label,
            release_date: album.release_date,
        })
    }

    /// GETs a catalogue path with the app token, renewing the token once on a 401.
    async fn catalog_get(&self, operation: &'static str, segments: &[&str]) -> Result<bytes::Bytes, ConnectorError> {
        let url = self.api.url(segments);
        let (token, generation) = self.app_token().await?;
        let get = |token: &SecretString| {
            let url = url.clone();
            let token = token.clone();
            move |client: &reqwest::Client| client.get(url.clone()).bearer_auth(token.expose_secret())
        };
        match self.api.send(operation, classify_catalog, get(&token)).await {
            Err(ConnectorError::InvalidToken) => {
                tracing::info!(platform = "spotify", operation, "app token refused; renewing it once");
                self.forget_token(generation).await;
                let (token, _) = self.app_token().await?;
                self.api.send(operation, classify_catalog, get(&token)).await
            }
            other => other,
        }
    }

    /// The cached app token, or a new one when there is none or it is about to expire.
    async fn app_token(&self) -> Result<(SecretString, u64), ConnectorError> {
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_ref().filter(|token| Instant::now() < token.renew_at) {
            return Ok((token.token.clone(), token.generation));
        }
        let url = self.accounts.url(&["api", "token"]);
        let answer: TokenAnswer = self
            .accounts
            .send_json("spotify token", classify_token, |client| {
                client
                    .post(url.clone())
                    .basic_auth(self.client_id.expose_secret(), Some(self.client_secret.expose_secret()))
                    .form(&[("grant_type", "client_credentials")])
            })
            .await?;
        let generation = cached.as_ref().map_or(1, |token| token.generation + 1);
        let lifetime = Duration::from_secs(answer.expires_in);
        let renew_at = Instant::now() + lifetime.saturating_sub(TOKEN_REFRESH_MARGIN);
        *cached = Some(AppToken {
            token: answer.access_token.clone(),
            renew_at,
            generation,
        });
        Ok((answer.access_token, generation))
    }

    /// Drops the cached token if it is still the one of `generation`.
    async fn forget_token(&self, generation: u64) {
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_mut().filter(|token| token.generation == generation) {
            // Keep the generation counting up; an instant in the past makes the token stale.
            token.renew_at = Instant::now();
        }
    }
}

/// Spotify ids are base62 (22 characters today; up to 64 accepted).
fn check_spotify_id(id: &str) -> Result<(), ConnectorError> {
    check_id(
        id,
        64,
        |c| c.is_ascii_alphanumeric(),
        "a Spotify id is 1 to 64 letters or digits",
    )
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: SecretString,
    expires_in: u64,
}

#[derive(Deserialize)]
struct TrackObject {
    id: String,
    name: String,
    #[serde(default, deserialize_with = "lenient")]
    popularity: Option<u32>,
    #[serde(default, deserialize_with = "lenient")]
    album: Option<SimplifiedAlbum>,
}

#[derive(Deserialize)]
struct SimplifiedAlbum {
    #[serde(default, deserialize_with = "lenient")]
    id: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    release_date: Option<String>,
}

#[derive(Deserialize)]
struct AlbumObject {
    id: String,
    name: String,
    #[serde(default, deserialize_with = "lenient")]
    popularity: Option<u32>,
    #[serde(default, deserialize_with = "lenient")]
    label: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    release_date: Option<String>,
}

/// The token endpoint answers `{"error": "invalid_client", "error_description": …}`: a problem
/// with our credentials, kept as a client error with its code.
fn classify_token(failure: &Failure<'_>) -> Verdict {
    #[derive(Deserialize)]
    struct TokenError {
        error: Option<String>,
    }
    let code = failure.json::<TokenError>().and_then(|answer| answer.error);
    match code.as_deref() {
        Some(code) if failure.status.is_client_error() && failure.status.as_u16() != 429 => {
            Verdict::Fail(failure.client(Some(code)))
        }
        _ if matches!(failure.status.as_u16(), 401 | 404) => Verdict::Fail(failure.client(None)),
        _ => failure.default_verdict(None),
    }
}

/// The catalogue answers `{"error": {"status", "message"}}` with a free-text message: only the
/// status decides (401 → invalid token, 404 → not found, 429/5xx retried).
fn classify_catalog(failure: &Failure<'_>) -> Verdict {
    failure.default_verdict(None)
}
