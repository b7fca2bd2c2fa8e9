//! The YouTube Data API v3, as campaign creation needs it (P5, P12): a connected channel's
//! uploads playlist and the videos in it.
//!
//! - `channels.list`: `GET {base}/youtube/v3/channels?part=contentDetails&id={channel}`, the
//!   playlist id at `items[0].contentDetails.relatedPlaylists.uploads`;
//! - `playlistItems.list`: `GET {base}/youtube/v3/playlistItems?part=snippet,contentDetails&
//!   playlistId={playlist}&maxResults={≤ 50}&pageToken={token}`, following `nextPageToken` until
//!   it is absent or `max` videos are collected (at most [`MAX_PAGES`] pages; every page costs
//!   one quota unit whatever its size, so pages are as large as `max` allows, up to the API's 50).
//!
//! Each call carries the connection's access token from [`crate::google_oauth`] as a bearer
//! header. Errors follow the API's `{"error": {"errors": [{"reason": …}]}}` shape: `authError` or
//! HTTP 401 → [`ConnectorError::InvalidToken`] (an access token lives an hour, so the caller
//! first refreshes it; only a failed refresh invalidates the connection);
//! `quotaExceeded`/`dailyLimitExceeded` → [`ConnectorError::RateLimited`] returned at once (the
//! daily quota resets at midnight Pacific time, retrying now is pointless);
//! `rateLimitExceeded`/`userRateLimitExceeded` → rate limited and retried with backoff;
//! `…NotFound` reasons, and a channel list with no item, → [`ConnectorError::NotFound`].
//!
//! A video's time is `contentDetails.videoPublishedAt` (when the video went public), else
//! `snippet.publishedAt` (when it joined the playlist); its thumbnail is the largest one the
//! answer has. Private and deleted videos stay in the list (YouTube hides their thumbnails and
//! publication time), so the caller decides whether to offer them.

use std::fmt;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::error::ConnectorError;
use crate::http::{check_id, lenient, Failure, HttpClient, HttpSettings, Verdict};
use crate::Url;

/// Most pages one listing reads (5,000 videos at 50 a page).
pub const MAX_PAGES: usize = 100;
/// The API's largest `maxResults`.
const PAGE_SIZE: usize = 50;

/// Where the YouTube Data API is.
#[derive(Debug, Clone)]
pub struct YouTubeSettings {
    /// Default `https://www.googleapis.com` (calls go to `{base}/youtube/v3/…`).
    pub base_url: Url,
    pub http: HttpSettings,
}

impl Default for YouTubeSettings {
    fn default() -> Self {
        YouTubeSettings {
            base_url: Url::parse("https://www.googleapis.com").expect("a valid constant URL"),
            http: HttpSettings::default(),
        }
    }
}

/// One video of a channel's uploads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Video {
    pub video_id: String,
    /// Empty when YouTube sent none.
    pub title: String,
    pub published_at: Option<DateTime<Utc>>,
    pub thumbnail_url: Option<String>,
}

/// The YouTube Data API client.
pub struct YouTube {
    http: HttpClient,
}

impl fmt::Debug for YouTube {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("YouTube").field("http", &self.http).finish()
    }
}

impl YouTube {
    pub fn new(settings: YouTubeSettings) -> Result<Self, ConnectorError> {
        Ok(YouTube {
            http: HttpClient::new("youtube", &settings.base_url, &settings.http)?,
        })
    }

    /// The id of the channel's uploads playlist.
    pub async fn uploads_playlist(
        &self,
        access_token: &SecretString,
        channel_id: &str,
    ) -> Result<String, ConnectorError> {
        check_id(
            channel_id,
            64,
            youtube_id_char,
            "a YouTube channel id is 1 to 64 letters, digits, '_' or '-'",
        )?;
        let url = self.http.url(&["youtube", "v3", "channels"]);
        let answer: ChannelList = self
            .http
            .send_json("youtube channels.list", classify, |client| {
                client
                    .get(url.clone())
                    .bearer_auth(access_token.expose_secret())
                    .query(&[("part", "contentDetails"), ("id", channel_id)])
            })
            .await?;
        answer
            .items
            .into_iter()
            .find_map(|channel| channel.content_details?.related_playlists?.uploads)
            .filter(|uploads| !uploads.is_empty())
            .ok_or(ConnectorError::NotFound)
    }

    /// Up to `max` videos of a playlist, newest first for an uploads playlist.
    pub async fn list_videos(
        &self,
        access_token: &SecretString,
        playlist_id: &str,
        max: usize,
    ) -> Result<Vec<Video>, ConnectorError> {
        check_id(
            playlist_id,
            128,
            youtube_id_char,
            "a YouTube playlist id is 1 to 128 letters, digits, '_' or '-'",
        )?;
        let url = self.http.url(&["youtube", "v3", "playlistItems"]);
        let page_size = max.min(PAGE_SIZE).to_string();
        let mut videos = Vec::new();
        let mut page_token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            if videos.len() >= max {
                break;
            }
            let page: PlaylistItemList = self
                .http
                .send_json("youtube playlistItems.list", classify, |client| {
                    let request = client
                        .get(url.clone())
                        .bearer_auth(access_token.expose_secret())
                        .query(&[
                            ("part", "snippet,contentDetails"),
                            ("playlistId", playlist_id),
                            ("maxResults", &page_size),
                        ]);
                    match &page_token {
                        Some(token) => request.query(&[("pageToken", token)]),
                        None => request,
                    }
                })
                .await?;
            videos.extend(page.items.into_iter().filter_map(PlaylistItem::into_video));
            match page.next_page_token {
                // A token equal to the one just used would loop forever.
                Some(next) if !next.is_empty() && page_token.as_ref() != Some(&next) => page_token = Some(next),
                _ => break,
            }
        }
        videos.truncate(max);
        Ok(videos)
    }

    /// [`uploads_playlist`](Self::uploads_playlist), then [`list_videos`](Self::list_videos).
    pub async fn channel_videos(
        &self,
        access_token: &SecretString,
        channel_id: &str,
        max: usize,
    ) -> Result<Vec<Video>, ConnectorError> {
        let uploads = self.uploads_playlist(access_token, channel_id).await?;
        self.list_videos(access_token, &uploads, max).await
    }
}

fn youtube_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

#[derive(Deserialize)]
struct ChannelList {
    #[serde(default)]
    items: Vec<Channel>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Channel {
    content_details: Option<ChannelContentDetails>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChannelContentDetails {
    related_playlists: Option<RelatedPlaylists>,
}

#[derive(Deserialize)]
struct RelatedPlaylists {
    uploads: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PlaylistItemList {
    #[serde(default)]
    items: Vec<PlaylistItem>,
    next_page_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PlaylistItem {
    snippet: Option<Snippet>,
    content_details: Option<ItemContentDetails>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Snippet {
    title: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    published_at: Option<DateTime<Utc>>,
    #[serde(default)]
    thumbnails: Thumbnails,
    resource_id: Option<ResourceId>,
}

#[derive(Deserialize, Default)]
struct Thumbnails {
    maxres: Option<Thumbnail>,
    standard: Option<Thumbnail>,
    high: Option<Thumbnail>,
    medium: Option<Thumbnail>,
    default: Option<Thumbnail>,
}

#[derive(Deserialize)]
struct Thumbnail {
    url: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResourceId {
    video_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ItemContentDetails {
    video_id: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    video_published_at: Option<DateTime<Utc>>,
}

impl PlaylistItem {
    /// The video of this item, or `None` when the item names no video.
    fn into_video(self) -> Option<Video> {
        let (content_id, video_published_at) = match self.content_details {
            Some(details) => (details.video_id, details.video_published_at),
            None => (None, None),
        };
        let snippet = self.snippet;
        let snippet_id = snippet
            .as_ref()
            .and_then(|s| s.resource_id.as_ref())
            .and_then(|r| r.video_id.clone());
        let video_id = content_id.or(snippet_id).filter(|id| !id.is_empty())?;
        let (title, added_at, thumbnail_url) = match snippet {
            Some(snippet) => {
                let t = snippet.thumbnails;
                let best = [t.maxres, t.standard, t.high, t.medium, t.default]
                    .into_iter()
                    .flatten()
                    .find_map(|t| t.url);
                (snippet.title.unwrap_or_default(), snippet.published_at, best)
            }
            None => (String::new(), None, None),
        };
        Some(Video {
            video_id,
            title,
            published_at: video_published_at.or(added_at),
            thumbnail_url,
        })
    }
}

#[derive(Deserialize)]
struct ErrorAnswer {
    error: Option<ErrorBody>,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<ErrorItem>,
}

#[derive(Deserialize)]
struct ErrorItem {
    reason: Option<String>,
}

/// Classifies on the first `errors[].reason`; the messages are dropped.
fn classify(failure: &Failure<'_>) -> Verdict {
    let reason = failure
        .json::<ErrorAnswer>()
        .and_then(|answer| answer.error)
        .and_then(|error| error.errors.into_iter().find_map(|item| item.reason));
    let retry_after = failure.retry_after;
    match reason.as_deref() {
        Some("authError") => Verdict::Fail(ConnectorError::InvalidToken),
        Some("quotaExceeded" | "dailyLimitExceeded") => Verdict::Fail(ConnectorError::RateLimited { retry_after }),
        Some("rateLimitExceeded" | "userRateLimitExceeded") => {
            Verdict::Retry(ConnectorError::RateLimited { retry_after })
        }
        Some(reason) if reason.ends_with("NotFound") => Verdict::Fail(ConnectorError::NotFound),
        reason => failure.default_verdict(reason),
    }
}
