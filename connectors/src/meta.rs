//! Meta's Graph API, as campaign creation needs it (P12): a Facebook page's published posts and
//! an Instagram professional account's media, with the connection's access token (P9, P19); and
//! the Marketing API's insights, one [`CampaignDay`] per campaign and day of an ad account.
//!
//! - `GET {base}/{version}/{page_id}/posts?fields=id,message,created_time,permalink_url&limit=…`
//! - `GET {base}/{version}/{ig_user_id}/media?fields=id,caption,media_type,permalink,timestamp&limit=…`
//! - `GET {base}/{version}/act_{ad_account_id}/insights?level=campaign&time_increment=1&
//!   time_range={"since":"YYYY-MM-DD","until":"YYYY-MM-DD"}&fields=campaign_id,date_start,spend,
//!   impressions,reach,clicks,actions,account_currency&limit=500`
//! - `DELETE {base}/{version}/me/permissions` (erasure, P22): revokes every permission the person
//!   granted the app ("de-authorize", *User permissions* reference: "If the request is
//!   successful, you will receive a response of true", which current versions write as
//!   `{"success": true}`). A token that is already invalid (code 190) leaves nothing to revoke.
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
//! **Insights.** Meta writes `spend` as a decimal string in the ad account's currency
//! (`account_currency`): it becomes micros exactly ([`decimal_to_micros`]). `impressions`,
//! `reach` and `clicks` are integer strings (missing → 0). `actions` is a list of
//! `{"action_type", "value"}`, mapped (summed if a type repeats; types not listed are ignored):
//!
//! | `action_type`                                       | [`CampaignDay`] field |
//! |-----------------------------------------------------|-----------------------|
//! | `video_view`                                        | `views`               |
//! | `onsite_conversion.post_save`                       | `saves`               |
//! | `post_reaction`                                     | `reactions`           |
//! | `comment`                                           | `comments`            |
//! | `post` (shares of the ad's post)                    | `shares`              |
//! | `like` (page likes)                                 | `follows`             |
//! | `offsite_conversion.*` (pixel and Conversions API)  | `conversions` (sum)   |
//!
//! `omni_purchase` and `lead` are not added: Meta counts the same pixel purchase or lead in them
//! as in `offsite_conversion.fb_pixel_purchase` / `offsite_conversion.fb_pixel_lead`, so adding
//! them would count one conversion twice.
//! An action's value is a whole number, as a string or a number; a non-zero fraction fails the
//! call with [`ConnectorError::Decode`] (it is not truncated), as does a spend with more than six
//! fraction digits, a row without a currency, or a date that is not `YYYY-MM-DD`. The window
//! (`since..=until`) is at most [`MAX_WINDOW_DAYS`] days (Meta documents no shorter maximum for
//! daily rows; it refuses a `since` more than 37 months ago with code 3018). An insights listing
//! that would need more than [`MAX_PAGES`] pages fails with [`ConnectorError::InvalidInput`]
//! rather than return part of the window: the caller asks for a shorter one.
//!
//! **Throttling.** Every insights answer carries usage headers: `X-Business-Use-Case-Usage`
//! (`{"<business id>": [{"type": "ads_insights", "call_count", "total_cputime", "total_time"
//! (percentages), "estimated_time_to_regain_access" (minutes)}]}`, entries of other types are
//! ignored), `X-Ad-Account-Usage` (`{"acc_id_util_pct", "reset_time_duration" (seconds)}`) and
//! `X-FB-Ads-Insights-Throttle` (`{"app_id_util_pct", "acc_id_util_pct"}`). Before asking for
//! another page: if a percentage is at least 95 or `estimated_time_to_regain_access` is above
//! zero, the call stops with [`ConnectorError::RateLimited`] whose `retry_after` is that many
//! minutes, else `reset_time_duration`, else 60 s; at 75 or more it waits
//! [`MetaSettings::insights_slowdown`] first. An unreadable header counts as absent. Header values
//! are never logged.
//!
//! **Errors** (Meta's *Handling Errors* guide: `{"error": {"code", "error_subcode", "type",
//! "message", …}}`; messages are dropped): code 190 (`OAuthException`, token expired, revoked or
//! invalid) or 102 (session) → [`ConnectorError::InvalidToken`]; throttling codes 4, 17, 32, 341,
//! 613 and 80000–80014 → [`ConnectorError::RateLimited`] returned at once (their windows are an
//! hour or a day, so retrying within seconds only burns the budget), HTTP 429 → rate limited and
//! retried; codes 1 and 2 (temporary outage) → retried as [`ConnectorError::Server`]; code 100
//! with subcode 33 and code 803 (no such object) → [`ConnectorError::NotFound`]; anything else
//! → [`ConnectorError::Client`] with the code as `"{code}"` or `"{code}/{subcode}"`.
//!
//! [`MAX_WINDOW_DAYS`]: crate::ad_reporting::MAX_WINDOW_DAYS
//! [`decimal_to_micros`]: crate::ad_reporting::decimal_to_micros

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use hmac::{Hmac, Mac};
use reqwest::header::HeaderMap;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use sha2::Sha256;

use crate::ad_reporting::{self, check_window, numeric_text, CampaignDay};
use crate::error::ConnectorError;
use crate::http::{check_id, decode, lenient, Failure, HttpClient, HttpSettings, Verdict};
use crate::Url;

/// The Graph API version used unless the settings name another (available until July 2028).
pub const DEFAULT_GRAPH_VERSION: &str = "v25.0";
/// Most pages one listing reads.
pub const MAX_PAGES: usize = 100;
/// Posts per page: the Page posts edge takes at most 100.
const POSTS_PAGE_SIZE: usize = 100;
/// Media per page: Instagram's media edge is documented with smaller pages than Facebook's.
const MEDIA_PAGE_SIZE: usize = 50;
/// Insights rows per page.
const INSIGHTS_PAGE_SIZE: usize = 500;
/// The insights fields [`Meta::campaign_insights`] asks for.
const INSIGHTS_FIELDS: &str = "campaign_id,date_start,spend,impressions,reach,clicks,actions,account_currency";
/// The operation name of insights calls in logs and errors.
const INSIGHTS: &str = "meta campaign insights";
/// Query parameters of a `paging.next` URL that carry the position (all others are ours or a
/// token).
const PAGING_KEYS: [&str; 4] = ["after", "until", "since", "__paging_token"];
/// A usage percentage at which insights paging stops.
const STOP_AT_PERCENT: f64 = 95.0;
/// A usage percentage at which insights paging slows down.
const SLOW_AT_PERCENT: f64 = 75.0;
/// The wait returned when usage is exhausted and no header says for how long.
const DEFAULT_THROTTLE_WAIT: Duration = Duration::from_secs(60);

/// Where the Graph API is and which version and app secret to use.
#[derive(Debug, Clone)]
pub struct MetaSettings {
    /// Default `https://graph.facebook.com`.
    pub base_url: Url,
    /// `vMAJOR.MINOR`, default [`DEFAULT_GRAPH_VERSION`].
    pub graph_version: String,
    /// The Meta app's secret; when set, calls carry `appsecret_proof`.
    pub app_secret: Option<SecretString>,
    /// The pause before the next insights page when a usage header is at 75 % or more.
    /// Default 1 s.
    pub insights_slowdown: Duration,
    pub http: HttpSettings,
}

impl Default for MetaSettings {
    fn default() -> Self {
        MetaSettings {
            base_url: Url::parse("https://graph.facebook.com").expect("a valid constant URL"),
            graph_version: DEFAULT_GRAPH_VERSION.to_owned(),
            app_secret: None,
            insights_slowdown: Duration::from_secs(1),
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
    insights_slowdown: Duration,
}

impl fmt::Debug for Meta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Meta")
            .field("http", &self.http)
            .field("graph_version", &self.graph_version)
            .field("app_secret", &self.app_secret.as_ref().map(|_| "[REDACTED]"))
            .field("insights_slowdown", &self.insights_slowdown)
            .finish()
    }
}

/// One listing of `{node}/{edge}`: what to ask for and how many items to keep.
struct EdgeListing<'a> {
    operation: &'static str,
    token: &'a SecretString,
    node: &'a str,
    edge: &'a str,
    /// `fields`, `limit` and the edge's other parameters (the page position is added per page).
    params: Vec<(&'static str, String)>,
    max: usize,
}

/// What a listing read.
struct Listed<T> {
    items: Vec<T>,
    /// Meta offered another page after the [`MAX_PAGES`]th.
    more: bool,
}

/// What a page's headers say about asking for the next one.
#[derive(Debug, PartialEq)]
enum Pace {
    Go,
    Pause(Duration),
    /// Stop with [`ConnectorError::RateLimited`] after this long.
    Stop(Duration),
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
            insights_slowdown: settings.insights_slowdown,
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
        let posts: Listed<PostNode> = self
            .list_edge(
                EdgeListing {
                    operation: "meta page posts",
                    token: page_access_token,
                    node: page_id,
                    edge: "posts",
                    params: vec![
                        ("fields", "id,message,created_time,permalink_url".to_owned()),
                        ("limit", max.min(POSTS_PAGE_SIZE).to_string()),
                    ],
                    max,
                },
                |_| Pace::Go,
            )
            .await?;
        Ok(posts
            .items
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
        let media: Listed<MediaNode> = self
            .list_edge(
                EdgeListing {
                    operation: "meta instagram media",
                    token: access_token,
                    node: ig_user_id,
                    edge: "media",
                    params: vec![
                        ("fields", "id,caption,media_type,permalink,timestamp".to_owned()),
                        ("limit", max.min(MEDIA_PAGE_SIZE).to_string()),
                    ],
                    max,
                },
                |_| Pace::Go,
            )
            .await?;
        Ok(media
            .items
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

    /// Each campaign's metrics for each day from `since` to `until` (both included, at most
    /// [`MAX_WINDOW_DAYS`] days) of the ad account, as the module documentation says.
    /// `ad_account_id` is its digits, with or without the `act_` prefix. Days on which a campaign
    /// had no delivery have no row.
    ///
    /// [`MAX_WINDOW_DAYS`]: crate::ad_reporting::MAX_WINDOW_DAYS
    pub async fn campaign_insights(
        &self,
        access_token: &SecretString,
        ad_account_id: &str,
        since: NaiveDate,
        until: NaiveDate,
    ) -> Result<Vec<CampaignDay>, ConnectorError> {
        let digits = ad_account_id.strip_prefix("act_").unwrap_or(ad_account_id);
        check_id(
            digits,
            32,
            |c| c.is_ascii_digit(),
            "an ad account id is 1 to 32 digits, optionally after 'act_'",
        )?;
        check_window(since, until)?;
        let node = format!("act_{digits}");
        let time_range = format!(r#"{{"since":"{since}","until":"{until}"}}"#);
        let rows: Listed<InsightsRow> = self
            .list_edge(
                EdgeListing {
                    operation: INSIGHTS,
                    token: access_token,
                    node: &node,
                    edge: "insights",
                    params: vec![
                        ("level", "campaign".to_owned()),
                        ("time_increment", "1".to_owned()),
                        ("time_range", time_range),
                        ("fields", INSIGHTS_FIELDS.to_owned()),
                        ("limit", INSIGHTS_PAGE_SIZE.to_string()),
                    ],
                    max: usize::MAX,
                },
                |headers| insights_pace(headers, self.insights_slowdown),
            )
            .await?;
        if rows.more {
            return Err(ConnectorError::InvalidInput(
                "the window has more insights rows than one call reads; ask for a shorter window",
            ));
        }
        rows.items.into_iter().map(InsightsRow::into_campaign_day).collect()
    }

    /// Revokes every permission the person granted the app (`DELETE /{version}/me/permissions`
    /// with their user access token), so Meta stops treating dynamoi as authorised for them.
    ///
    /// `{"success": true}` (or a bare `true`) → `Ok(())`. An `OAuthException` with code 190 (the
    /// token expired, was revoked, or the person removed the app already) or 102 (session) also
    /// → `Ok(())`: the token authorises nothing any more, so there is nothing left to revoke.
    /// `{"success": false}` and every other failure are errors; the token never appears in them.
    pub async fn revoke_permissions(&self, access_token: &SecretString) -> Result<(), ConnectorError> {
        const OPERATION: &str = "meta revoke permissions";
        let url = self.http.url(&[&self.graph_version, "me", "permissions"]);
        let proof = self
            .app_secret
            .as_ref()
            .map(|secret| appsecret_proof(secret, access_token));
        let answer = self
            .http
            .send(OPERATION, classify_revoke, |client| {
                let mut request = client.delete(url.clone()).bearer_auth(access_token.expose_secret());
                if let Some(proof) = &proof {
                    request = request.query(&[("appsecret_proof", proof.expose_secret())]);
                }
                request
            })
            .await;
        let body = match answer {
            Ok(body) => body,
            Err(ConnectorError::InvalidToken) => {
                tracing::info!(
                    platform = "meta",
                    operation = OPERATION,
                    "the token was already invalid: nothing to revoke"
                );
                return Ok(());
            }
            Err(error) => return Err(error),
        };
        let success = match decode::<serde_json::Value>(OPERATION, &body)? {
            serde_json::Value::Bool(success) => success,
            serde_json::Value::Object(answer) => answer.get("success") == Some(&serde_json::Value::Bool(true)),
            _ => false,
        };
        if success {
            Ok(())
        } else {
            Err(ConnectorError::Decode {
                what: OPERATION,
                detail: "Meta did not answer success: true".to_owned(),
            })
        }
    }

    /// Reads `{node}/{edge}` page by page as the module documentation says. Before asking for
    /// a next page it asks `pace` about the headers of the last one.
    async fn list_edge<T, P>(&self, listing: EdgeListing<'_>, pace: P) -> Result<Listed<T>, ConnectorError>
    where
        T: DeserializeOwned,
        P: Fn(&HeaderMap) -> Pace,
    {
        let EdgeListing {
            operation,
            token,
            node,
            edge,
            params,
            max,
        } = listing;
        if max == 0 {
            return Ok(Listed {
                items: Vec::new(),
                more: false,
            });
        }
        let url = self.http.url(&[&self.graph_version, node, edge]);
        let proof = self.app_secret.as_ref().map(|secret| appsecret_proof(secret, token));
        let mut items = Vec::new();
        let mut position: Vec<(String, String)> = Vec::new();
        let mut more = false;
        for page in 1..=MAX_PAGES {
            let (headers, answer): (HeaderMap, EdgePage<T>) = self
                .http
                .send_json_with_headers(operation, classify, |client| {
                    let mut request = client
                        .get(url.clone())
                        .bearer_auth(token.expose_secret())
                        .query(&params)
                        .query(&position);
                    if let Some(proof) = &proof {
                        request = request.query(&[("appsecret_proof", proof.expose_secret())]);
                    }
                    request
                })
                .await?;
            items.extend(answer.data);
            let next = match answer.paging.and_then(|paging| paging.next_position()) {
                Some(next) if next != position => next,
                _ => break,
            };
            if items.len() >= max {
                break;
            }
            if page == MAX_PAGES {
                more = true;
                break;
            }
            match pace(&headers) {
                Pace::Go => {}
                Pace::Pause(wait) => {
                    tracing::debug!(
                        platform = "meta",
                        operation,
                        page,
                        wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                        "usage is high, slowing down"
                    );
                    tokio::time::sleep(wait).await;
                }
                Pace::Stop(retry_after) => {
                    tracing::warn!(
                        platform = "meta",
                        operation,
                        page,
                        retry_after_s = retry_after.as_secs(),
                        "usage is exhausted, stopping before the next page"
                    );
                    return Err(ConnectorError::RateLimited {
                        retry_after: Some(retry_after),
                    });
                }
            }
            position = next;
        }
        items.truncate(max);
        Ok(Listed { items, more })
    }
}

/// What Meta's usage headers say about the next insights page (module documentation).
fn insights_pace(headers: &HeaderMap, slowdown: Duration) -> Pace {
    let json = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    let mut percents: Vec<f64> = Vec::new();
    let mut regain_minutes: f64 = 0.0;
    let mut reset_seconds: f64 = 0.0;
    if let Some(usage) = json("x-business-use-case-usage")
        .and_then(|text| serde_json::from_str::<HashMap<String, Vec<BusinessUseCaseUsage>>>(text).ok())
    {
        for entry in usage.into_values().flatten() {
            if entry.kind.as_deref().is_some_and(|kind| kind != "ads_insights") {
                continue;
            }
            percents.extend(
                [entry.call_count, entry.total_cputime, entry.total_time]
                    .into_iter()
                    .flatten(),
            );
            regain_minutes = regain_minutes.max(entry.estimated_time_to_regain_access.unwrap_or(0.0));
        }
    }
    if let Some(usage) = json("x-ad-account-usage").and_then(|text| serde_json::from_str::<AdAccountUsage>(text).ok()) {
        percents.extend(usage.acc_id_util_pct);
        reset_seconds = usage.reset_time_duration.unwrap_or(0.0);
    }
    if let Some(usage) =
        json("x-fb-ads-insights-throttle").and_then(|text| serde_json::from_str::<InsightsThrottle>(text).ok())
    {
        percents.extend([usage.app_id_util_pct, usage.acc_id_util_pct].into_iter().flatten());
    }
    let highest = percents.into_iter().fold(0.0_f64, f64::max);
    if highest >= STOP_AT_PERCENT || regain_minutes > 0.0 {
        let wait = if regain_minutes > 0.0 {
            whole_seconds(regain_minutes * 60.0)
        } else if reset_seconds > 0.0 {
            whole_seconds(reset_seconds)
        } else {
            DEFAULT_THROTTLE_WAIT
        };
        Pace::Stop(wait)
    } else if highest >= SLOW_AT_PERCENT {
        Pace::Pause(slowdown)
    } else {
        Pace::Go
    }
}

/// A header's count of seconds, rounded up, capped at a day (a wait is advice, not data).
fn whole_seconds(seconds: f64) -> Duration {
    Duration::from_secs(seconds.ceil().clamp(1.0, 86_400.0) as u64)
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
struct InsightsRow {
    campaign_id: Option<String>,
    date_start: Option<String>,
    account_currency: Option<String>,
    #[serde(default, deserialize_with = "numeric_text")]
    spend: Option<String>,
    #[serde(default, deserialize_with = "numeric_text")]
    impressions: Option<String>,
    #[serde(default, deserialize_with = "numeric_text")]
    reach: Option<String>,
    #[serde(default, deserialize_with = "numeric_text")]
    clicks: Option<String>,
    #[serde(default)]
    actions: Option<Vec<InsightsAction>>,
}

#[derive(Deserialize)]
struct InsightsAction {
    action_type: Option<String>,
    #[serde(default, deserialize_with = "numeric_text")]
    value: Option<String>,
}

impl InsightsRow {
    fn into_campaign_day(self) -> Result<CampaignDay, ConnectorError> {
        let count = |text: Option<&str>| text.map_or(Ok(0), |text| ad_reporting::count(INSIGHTS, text));
        let mut day = CampaignDay {
            platform_campaign_id: self.campaign_id.filter(|id| !id.is_empty()).ok_or_else(|| {
                ConnectorError::Decode {
                    what: INSIGHTS,
                    detail: "a row has no campaign_id".to_owned(),
                }
            })?,
            date: ad_reporting::day(INSIGHTS, self.date_start.as_deref())?,
            currency: ad_reporting::currency(INSIGHTS, self.account_currency)?,
            spend_micros: self
                .spend
                .as_deref()
                .map_or(Ok(0), |spend| ad_reporting::micros(INSIGHTS, spend))?,
            impressions: count(self.impressions.as_deref())?,
            reach: count(self.reach.as_deref())?,
            clicks: count(self.clicks.as_deref())?,
            views: 0,
            saves: 0,
            reactions: 0,
            comments: 0,
            shares: 0,
            follows: 0,
            conversions: 0,
        };
        for action in self.actions.unwrap_or_default() {
            let Some(kind) = action.action_type else { continue };
            let field = match kind.as_str() {
                "video_view" => &mut day.views,
                "onsite_conversion.post_save" => &mut day.saves,
                "post_reaction" => &mut day.reactions,
                "comment" => &mut day.comments,
                "post" => &mut day.shares,
                "like" => &mut day.follows,
                kind if kind.starts_with("offsite_conversion.") => &mut day.conversions,
                _ => continue,
            };
            let value = count(action.value.as_deref())?;
            *field = field.checked_add(value).ok_or_else(|| ConnectorError::Decode {
                what: INSIGHTS,
                detail: "an action count is too large for i64".to_owned(),
            })?;
        }
        Ok(day)
    }
}

/// One entry of `X-Business-Use-Case-Usage`.
#[derive(Deserialize)]
struct BusinessUseCaseUsage {
    #[serde(rename = "type", default, deserialize_with = "lenient")]
    kind: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    call_count: Option<f64>,
    #[serde(default, deserialize_with = "lenient")]
    total_cputime: Option<f64>,
    #[serde(default, deserialize_with = "lenient")]
    total_time: Option<f64>,
    #[serde(default, deserialize_with = "lenient")]
    estimated_time_to_regain_access: Option<f64>,
}

/// `X-Ad-Account-Usage`.
#[derive(Deserialize)]
struct AdAccountUsage {
    #[serde(default, deserialize_with = "lenient")]
    acc_id_util_pct: Option<f64>,
    #[serde(default, deserialize_with = "lenient")]
    reset_time_duration: Option<f64>,
}

/// `X-FB-Ads-Insights-Throttle`.
#[derive(Deserialize)]
struct InsightsThrottle {
    #[serde(default, deserialize_with = "lenient")]
    app_id_util_pct: Option<f64>,
    #[serde(default, deserialize_with = "lenient")]
    acc_id_util_pct: Option<f64>,
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

/// The revocation's failures: only Graph codes 190 and 102 (the token is no longer valid) are
/// [`ConnectorError::InvalidToken`], which `revoke_permissions` turns into success; a 401
/// without such a code is a client error, so that it cannot pass for one.
fn classify_revoke(failure: &Failure<'_>) -> Verdict {
    let code = failure
        .json::<ErrorAnswer>()
        .and_then(|answer| answer.error)
        .and_then(|error| error.code);
    match code {
        Some(190 | 102) => Verdict::Fail(ConnectorError::InvalidToken),
        None if failure.status.as_u16() == 401 => Verdict::Fail(failure.client(None)),
        _ => classify(failure),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn pace(headers: &[(&'static str, &'static str)]) -> Pace {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(*name, HeaderValue::from_static(value));
        }
        insights_pace(&map, Duration::from_millis(7))
    }

    #[test]
    fn low_or_missing_usage_goes_on() {
        assert_eq!(pace(&[]), Pace::Go);
        assert_eq!(
            pace(&[
                (
                    "x-business-use-case-usage",
                    r#"{"123":[{"type":"ads_insights","call_count":74,"total_cputime":3,"total_time":5,"estimated_time_to_regain_access":0}]}"#
                ),
                (
                    "x-ad-account-usage",
                    r#"{"acc_id_util_pct":9.67,"reset_time_duration":100}"#
                ),
                (
                    "x-fb-ads-insights-throttle",
                    r#"{"app_id_util_pct":1,"acc_id_util_pct":2}"#
                ),
            ]),
            Pace::Go
        );
        // Another use case's usage does not slow insights down; unreadable headers are ignored.
        assert_eq!(
            pace(&[
                (
                    "x-business-use-case-usage",
                    r#"{"123":[{"type":"ads_management","call_count":99,"estimated_time_to_regain_access":5}]}"#
                ),
                ("x-ad-account-usage", "not json"),
            ]),
            Pace::Go
        );
    }

    #[test]
    fn usage_from_75_percent_pauses() {
        assert_eq!(
            pace(&[(
                "x-fb-ads-insights-throttle",
                r#"{"app_id_util_pct":80,"acc_id_util_pct":2}"#
            )]),
            Pace::Pause(Duration::from_millis(7))
        );
        assert_eq!(
            pace(&[(
                "x-ad-account-usage",
                r#"{"acc_id_util_pct":75.0,"reset_time_duration":30}"#
            )]),
            Pace::Pause(Duration::from_millis(7))
        );
    }

    #[test]
    fn exhausted_usage_stops_for_as_long_as_the_headers_say() {
        assert_eq!(
            pace(&[(
                "x-business-use-case-usage",
                r#"{"123":[{"type":"ads_insights","call_count":20,"total_cputime":3,"total_time":5,"estimated_time_to_regain_access":3}]}"#
            )]),
            Pace::Stop(Duration::from_secs(180))
        );
        assert_eq!(
            pace(&[
                (
                    "x-ad-account-usage",
                    r#"{"acc_id_util_pct":96.5,"reset_time_duration":42}"#
                ),
                (
                    "x-fb-ads-insights-throttle",
                    r#"{"app_id_util_pct":10,"acc_id_util_pct":96}"#
                ),
            ]),
            Pace::Stop(Duration::from_secs(42))
        );
        assert_eq!(
            pace(&[(
                "x-fb-ads-insights-throttle",
                r#"{"app_id_util_pct":95,"acc_id_util_pct":0}"#
            )]),
            Pace::Stop(Duration::from_secs(60))
        );
    }

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
