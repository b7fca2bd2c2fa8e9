//! Meta's Graph API, as campaign creation needs it (P12): a Facebook page's published posts and
//! an Instagram professional account's media, with the connection's access token (P9, P19).
//!
//! - `GET {base}/{version}/{page_id}/posts?fields=id,message,created_time,permalink_url&limit=…`
//! - `GET {base}/{version}/{ig_user_id}/media?fields=id,caption,media_type,permalink,timestamp&limit=…`
//!
//! The Graph version is a setting (default [`DEFAULT_GRAPH_VERSION`]; Meta keeps a version for
//! about two years, see its *Graph API changelog*). The token goes in an `Authorization: Bearer`
//! header, never in the query; with [`MetaSettings::app_secret`] set, every call also carries
//! `appsecret_proof` (HMAC-SHA256 of the token keyed by the app secret, hex), which Meta's *Securing
//! Graph API Requests* recommends for server calls and requires when "Require App Secret" is on.
//!
//! **Paging.** An answer is `{"data": […], "paging": {"cursors": {"after": …}, "next": …}}`;
//! `next` is present only while there are more. We do not request `next` itself (it points at
//! Meta's host and may carry a token in its query): we repeat our own request with its cursor,
//! `after` from `paging.cursors`, or else the time-based paging parameters (`until`, `since`,
//! `__paging_token`) copied from `next`'s query. Listing stops at `max` items, when `next` is
//! absent, when a cursor repeats, or after [`MAX_PAGES`] pages.
//!
//! **Errors** (Meta's *Handling Errors* guide: `{"error": {"code", "error_subcode", "type",
//! "message", …}}`; messages are dropped): code 190 (`OAuthException`, token expired, revoked or
//! invalid) or 102 (session) → [`ConnectorError::InvalidToken`]; throttling codes 4, 17, 32, 341,
//! 613 and 80000–80014 → [`ConnectorError::RateLimited`] returned at once (their windows are an
//! hour or a day, so retrying within seconds only burns the budget), HTTP 429 → rate limited and
//! retried; codes 1 and 2 (temporary outage) → retried as [`ConnectorError::Server`]; code 100
//! with subcode 33 and code 803 (no such object) → [`ConnectorError::NotFound`]; anything else
//! → [`ConnectorError::Client`] with the code as `"{code}"` or `"{code}/{subcode}"`.

use std::fmt;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use sha2::Sha256;

use crate::error::ConnectorError;
use crate::http::{check_id, Failure, HttpClient, HttpSettings, Verdict};
use crate::Url;

/// The Graph API version used unless the settings name another (available until July 2028).
pub const DEFAULT_GRAPH_VERSION: &str = "v25.0";
/// Most pages one listing reads.
pub const MAX_PAGES: usize = 100;
/// Posts per page: the Page posts edge takes at most 100.
const POSTS_PAGE_SIZE: usize = 100;
/// Media per page: Instagram's media edge is documented with smaller pages than Facebook's.
const MEDIA_PAGE_SIZE: usize = 50;
/// Query parameters of a `paging.next` URL that carry the position (all others are ours or a
/// token).
const PAGING_KEYS: [&str; 4] = ["after", "until", "since", "__paging_token"];

/// Where the Graph API is and which version and app secret to use.
#[derive(Debug, Clone)]
pub struct MetaSettings {
    /// Default `https://graph.facebook.com`.
    pub base_url: Url,
    /// `vMAJOR.MINOR`, default [`DEFAULT_GRAPH_VERSION`].
    pub graph_version: String,
    /// The Meta app's secret; when set, calls carry `appsecret_proof`.
    pub app_secret: Option<SecretString>,
    pub http: HttpSettings,
}

impl Default for MetaSettings {
    fn default() -> Self {
        MetaSettings {
            base_url: Url::parse("https://graph.facebook.com").expect("a valid constant URL"),
            graph_version: DEFAULT_GRAPH_VERSION.to_owned(),
            app_secret: None,
            http: HttpSettings::default(),
        }
    }
}

/// A post a Facebook page published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PagePost {
    pub id: String,
    pub message: Option<String>,
    pub created_time: Option<DateTime<Utc>>,
    pub permalink_url: Option<String>,
}

/// A photo, video or carousel of an Instagram professional account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstagramMedia {
    pub id: String,
    pub caption: Option<String>,
    /// `IMAGE`, `VIDEO` or `CAROUSEL_ALBUM`.
    pub media_type: Option<String>,
    pub permalink: Option<String>,
    pub timestamp: Option<DateTime<Utc>>,
}

/// The Graph API client.
pub struct Meta {
    http: HttpClient,
    graph_version: String,
    app_secret: Option<SecretString>,
}

impl fmt::Debug for Meta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Meta")
            .field("http", &self.http)
            .field("graph_version", &self.graph_version)
            .field("app_secret", &self.app_secret.as_ref().map(|_| "[REDACTED]"))
            .finish()
    }
}

impl Meta {
    pub fn new(settings: MetaSettings) -> Result<Self, ConnectorError> {
        let version = settings.graph_version.as_str();
        let valid = version
            .strip_prefix('v')
            .and_then(|rest| rest.split_once('.'))
            .is_some_and(|(major, minor)| {
                !major.is_empty()
                    && !minor.is_empty()
                    && major.chars().all(|c| c.is_ascii_digit())
                    && minor.chars().all(|c| c.is_ascii_digit())
            });
        if !valid {
            return Err(ConnectorError::Config(
                "a Graph API version is vMAJOR.MINOR, e.g. v25.0",
            ));
        }
        Ok(Meta {
            http: HttpClient::new("meta", &settings.base_url, &settings.http)?,
            graph_version: settings.graph_version,
            app_secret: settings.app_secret,
        })
    }

    /// Up to `max` posts the page published, newest first, with a page access token.
    pub async fn page_posts(
        &self,
        page_access_token: &SecretString,
        page_id: &str,
        max: usize,
    ) -> Result<Vec<PagePost>, ConnectorError> {
        check_id(
            page_id,
            64,
            graph_id_char,
            "a Facebook page id is 1 to 64 letters, digits or '_'",
        )?;
        let posts: Vec<PostNode> = self
            .list_edge(
                "meta page posts",
                page_access_token,
                page_id,
                "posts",
                "id,message,created_time,permalink_url",
                POSTS_PAGE_SIZE,
                max,
            )
            .await?;
        Ok(posts
            .into_iter()
            .map(|post| PagePost {
                id: post.id,
                message: post.message,
                created_time: post.created_time.as_deref().and_then(parse_time),
                permalink_url: post.permalink_url,
            })
            .collect())
    }

    /// Up to `max` media of the Instagram account, newest first.
    pub async fn instagram_media(
        &self,
        access_token: &SecretString,
        ig_user_id: &str,
        max: usize,
    ) -> Result<Vec<InstagramMedia>, ConnectorError> {
        check_id(
            ig_user_id,
            64,
            graph_id_char,
            "an Instagram user id is 1 to 64 letters, digits or '_'",
        )?;
        let media: Vec<MediaNode> = self
            .list_edge(
                "meta instagram media",
                access_token,
                ig_user_id,
                "media",
                "id,caption,media_type,permalink,timestamp",
                MEDIA_PAGE_SIZE,
                max,
            )
            .await?;
        Ok(media
            .into_iter()
            .map(|node| InstagramMedia {
                id: node.id,
                caption: node.caption,
                media_type: node.media_type,
                permalink: node.permalink,
                timestamp: node.timestamp.as_deref().and_then(parse_time),
            })
            .collect())
    }

    /// Reads `{node}/{edge}` page by page as the module documentation says.
    #[allow(clippy::too_many_arguments)]
    async fn list_edge<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        token: &SecretString,
        node: &str,
        edge: &str,
        fields: &str,
        page_size: usize,
        max: usize,
    ) -> Result<Vec<T>, ConnectorError> {
        let url = self.http.url(&[&self.graph_version, node, edge]);
        let limit = max.min(page_size).to_string();
        let proof = self.app_secret.as_ref().map(|secret| appsecret_proof(secret, token));
        let mut items = Vec::new();
        let mut position: Vec<(String, String)> = Vec::new();
        for _ in 0..MAX_PAGES {
            if items.len() >= max {
                break;
            }
            let page: EdgePage<T> = self
                .http
                .send_json(operation, classify, |client| {
                    let mut request = client
                        .get(url.clone())
                        .bearer_auth(token.expose_secret())
                        .query(&[("fields", fields), ("limit", &limit)])
                        .query(&position);
                    if let Some(proof) = &proof {
                        request = request.query(&[("appsecret_proof", proof.expose_secret())]);
                    }
                    request
                })
                .await?;
            items.extend(page.data);
            match page.paging.and_then(|paging| paging.next_position()) {
                Some(next) if next != position => position = next,
                _ => break,
            }
        }
        items.truncate(max);
        Ok(items)
    }
}

/// Graph node ids are numeric; letters and `_` are allowed for ids of other shapes.
fn graph_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// `appsecret_proof`: HMAC-SHA256 of the access token keyed by the app secret, in lower hex.
fn appsecret_proof(app_secret: &SecretString, token: &SecretString) -> SecretString {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(app_secret.expose_secret().as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(token.expose_secret().as_bytes());
    SecretString::from(hex::encode(mac.finalize().into_bytes()))
}

/// Meta writes times as `2024-05-01T10:00:00+0000` (no colon in the offset); RFC 3339 is also
/// accepted. An unreadable time is `None`, not a failed listing.
fn parse_time(raw: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(raw)
        .or_else(|_| DateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S%z"))
        .ok()
        .map(|time| time.with_timezone(&Utc))
}

#[derive(Deserialize)]
struct EdgePage<T> {
    #[serde(default = "Vec::new")]
    data: Vec<T>,
    paging: Option<Paging>,
}

#[derive(Deserialize)]
struct Paging {
    cursors: Option<Cursors>,
    next: Option<String>,
}

#[derive(Deserialize)]
struct Cursors {
    after: Option<String>,
}

impl Paging {
    /// The query parameters that ask for the next page, or `None` on the last page.
    fn next_position(self) -> Option<Vec<(String, String)>> {
        let next = self.next.filter(|next| !next.is_empty())?;
        if let Some(after) = self
            .cursors
            .and_then(|cursors| cursors.after)
            .filter(|after| !after.is_empty())
        {
            return Some(vec![("after".to_owned(), after)]);
        }
        let next = Url::parse(&next).ok()?;
        let position: Vec<(String, String)> = next
            .query_pairs()
            .filter(|(key, _)| PAGING_KEYS.contains(&key.as_ref()))
            .map(|(key, value)| (key.into_owned(), value.into_owned()))
            .collect();
        (!position.is_empty()).then_some(position)
    }
}

#[derive(Deserialize)]
struct PostNode {
    id: String,
    message: Option<String>,
    created_time: Option<String>,
    permalink_url: Option<String>,
}

#[derive(Deserialize)]
struct MediaNode {
    id: String,
    caption: Option<String>,
    media_type: Option<String>,
    permalink: Option<String>,
    timestamp: Option<String>,
}

#[derive(Deserialize)]
struct ErrorAnswer {
    error: Option<GraphError>,
}

#[derive(Deserialize)]
struct GraphError {
    code: Option<i64>,
    error_subcode: Option<i64>,
}

fn classify(failure: &Failure<'_>) -> Verdict {
    let error = failure.json::<ErrorAnswer>().and_then(|answer| answer.error);
    let (code, subcode) = match &error {
        Some(error) => (error.code, error.error_subcode),
        None => (None, None),
    };
    let status = failure.status.as_u16();
    let retry_after = failure.retry_after;
    match (code, subcode) {
        (Some(190 | 102), _) => Verdict::Fail(ConnectorError::InvalidToken),
        _ if status == 429 => Verdict::Retry(ConnectorError::RateLimited { retry_after }),
        (Some(4 | 17 | 32 | 341 | 613 | 80000..=80014), _) => {
            Verdict::Fail(ConnectorError::RateLimited { retry_after })
        }
        (Some(1 | 2), _) => Verdict::Retry(ConnectorError::Server { status }),
        (Some(100), Some(33)) | (Some(803), _) => Verdict::Fail(ConnectorError::NotFound),
        (Some(code), Some(subcode)) => failure.default_verdict(Some(&format!("{code}/{subcode}"))),
        (Some(code), None) => failure.default_verdict(Some(&code.to_string())),
        (None, _) => failure.default_verdict(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_times_without_a_colon_in_the_offset_are_read() {
        let time = parse_time("2024-05-01T10:00:00+0000").unwrap();
        assert_eq!(time.to_rfc3339(), "2024-05-01T10:00:00+00:00");
        assert_eq!(parse_time("2024-05-01T12:00:00+02:00").unwrap(), time);
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn time_based_paging_parameters_are_taken_from_next_without_the_token() {
        let paging = Paging {
            cursors: None,
            next: Some("https://graph.facebook.com/v25.0/1/posts?access_token=SECRET&limit=2&until=1700000000&__paging_token=abc".into()),
        };
        let position = paging.next_position().unwrap();
        assert_eq!(
            position,
            vec![
                ("until".to_owned(), "1700000000".to_owned()),
                ("__paging_token".to_owned(), "abc".to_owned())
            ]
        );
    }
}
