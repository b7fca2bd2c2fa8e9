//! The Google Ads API (REST), as ad reporting needs it: one [`CampaignDay`] per campaign and day
//! of a customer account, with the connection's Google access token (scope `adwords`, refreshed
//! by [`crate::google_oauth`]) and dynamoi's developer token.
//!
//! `POST {base}/{version}/customers/{customer_id}/googleAds:searchStream` with the headers
//! `Authorization: Bearer {access token}`, `developer-token` and, when the customer is reached
//! through a manager account, `login-customer-id` (both ids as ten digits, without dashes), and
//! the body `{"query": …}`:
//!
//! ```text
//! SELECT campaign.id, segments.date, customer.currency_code, metrics.cost_micros,
//!   metrics.impressions, metrics.clicks, metrics.video_trueview_views, metrics.conversions
//! FROM campaign WHERE segments.date BETWEEN 'YYYY-MM-DD' AND 'YYYY-MM-DD'
//! ```
//!
//! The API version is a setting (default [`DEFAULT_API_VERSION`], the newest in late 2026; Google
//! keeps a major version about a year, see *Deprecation and sunset* in its docs). v22 replaced
//! `metrics.video_views` with `metrics.video_trueview_views`, so the former is not asked for.
//! The window (`since..=until`) is at most [`MAX_WINDOW_DAYS`] days.
//!
//! **Answer.** A JSON array of batches `{"results": [row, …], "fieldMask", "requestId"}`; a row is
//! `{"campaign": {"resourceName", "id"}, "segments": {"date"}, "customer": {"currencyCode"},
//! "metrics": {"costMicros", "impressions", "clicks", "videoTrueviewViews", "conversions"}}`.
//! int64 values are JSON strings (proto3 JSON mapping) and a metric that is zero may be absent
//! (→ 0). `metrics.conversions` is a double (fractional under data-driven attribution): it is
//! rounded to the nearest whole number, halves away from zero, from the digits of its JSON text
//! (never through a float). `cost_micros` is already micros of `customer.currency_code`. Google
//! has no reach for this resource and no saves, reactions, comments, shares or follows: they
//! are 0. A batch that holds an `error` (a failure in the middle of the stream) fails the call
//! as the same error would have as an answer. The whole stream is read as one answer, within
//! the HTTP machinery's 8 MiB bound.
//!
//! **Errors** (`{"error": {"code", "status", "details": [{"@type": "….GoogleAdsFailure",
//! "errors": [{"errorCode": {"<family>": "<value>"}, …}]}]}}`, possibly inside an array for
//! searchStream; messages are dropped): HTTP 401 or `UNAUTHENTICATED` →
//! [`ConnectorError::InvalidToken`]; HTTP 429, `RESOURCE_EXHAUSTED` or a `quotaError` →
//! [`ConnectorError::RateLimited`], retried after `Retry-After` or the failure's
//! `quotaErrorDetails.retryDelay` (returned at once when that is longer than the retry policy
//! waits); HTTP 403, `PERMISSION_DENIED` or an `authorizationError` → [`ConnectorError::Client`]
//! with code `PERMISSION_DENIED`; 5xx retried; anything else → the shared classification, with
//! the code `"<family>.<value>"` (e.g. `queryError.BAD_FIELD_NAME`), else the status.
//!
//! [`MAX_WINDOW_DAYS`]: crate::ad_reporting::MAX_WINDOW_DAYS

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use chrono::NaiveDate;
use reqwest::header::HeaderValue;
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::ad_reporting::{self, check_window, numeric_text, CampaignDay};
use crate::error::ConnectorError;
use crate::http::{decode, lenient, Failure, HttpClient, HttpSettings, Verdict};
use crate::Url;

/// The Google Ads API version used unless the settings name another.
pub const DEFAULT_API_VERSION: &str = "v26";
/// The operation name of the report in logs and errors.
const SEARCH_STREAM: &str = "google ads searchStream";
/// The error code of every refusal for lack of permission.
const PERMISSION_DENIED: &str = "PERMISSION_DENIED";

/// Where the Google Ads API is, which version to use, and dynamoi's developer token.
#[derive(Debug, Clone)]
pub struct GoogleAdsSettings {
    /// Default `https://googleads.googleapis.com`.
    pub base_url: Url,
    /// `vN`, default [`DEFAULT_API_VERSION`].
    pub api_version: String,
    /// dynamoi's developer token (Google Ads API Center of its manager account).
    pub developer_token: SecretString,
    /// The manager account through which customers are reached, if any (digits, dashes
    /// allowed): sent as `login-customer-id`.
    pub login_customer_id: Option<String>,
    pub http: HttpSettings,
}

impl GoogleAdsSettings {
    /// Google's production endpoint, the default version, no manager account, default timeouts
    /// and retries.
    pub fn new(developer_token: SecretString) -> Self {
        GoogleAdsSettings {
            base_url: Url::parse("https://googleads.googleapis.com").expect("a valid constant URL"),
            api_version: DEFAULT_API_VERSION.to_owned(),
            developer_token,
            login_customer_id: None,
            http: HttpSettings::default(),
        }
    }
}

/// The Google Ads API client.
pub struct GoogleAds {
    http: HttpClient,
    api_version: String,
    developer_token: SecretString,
    login_customer_id: Option<String>,
}

impl fmt::Debug for GoogleAds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GoogleAds")
            .field("http", &self.http)
            .field("api_version", &self.api_version)
            .field("login_customer_id", &self.login_customer_id)
            .finish_non_exhaustive()
    }
}

impl GoogleAds {
    pub fn new(settings: GoogleAdsSettings) -> Result<Self, ConnectorError> {
        let version = settings.api_version.as_str();
        let valid = version
            .strip_prefix('v')
            .is_some_and(|major| (1..=3).contains(&major.len()) && major.chars().all(|c| c.is_ascii_digit()));
        if !valid {
            return Err(ConnectorError::Config("a Google Ads API version is vN, e.g. v26"));
        }
        developer_token_header(&settings.developer_token)?;
        let login_customer_id = match settings.login_customer_id.as_deref() {
            Some(id) => Some(
                customer_digits(id)
                    .map_err(|_| ConnectorError::Config("a login customer id is ten digits, dashes allowed"))?,
            ),
            None => None,
        };
        Ok(GoogleAds {
            http: HttpClient::new("google_ads", &settings.base_url, &settings.http)?,
            api_version: settings.api_version,
            developer_token: settings.developer_token,
            login_customer_id,
        })
    }

    /// Each campaign's metrics for each day from `since` to `until` (both included, at most
    /// [`MAX_WINDOW_DAYS`] days) of the customer, as the module documentation says.
    /// `customer_id` is ten digits, dashes allowed (`123-456-7890`). Days on which a campaign
    /// had no metrics have no row.
    ///
    /// [`MAX_WINDOW_DAYS`]: crate::ad_reporting::MAX_WINDOW_DAYS
    pub async fn campaign_days(
        &self,
        access_token: &SecretString,
        customer_id: &str,
        since: NaiveDate,
        until: NaiveDate,
    ) -> Result<Vec<CampaignDay>, ConnectorError> {
        let customer_id = customer_digits(customer_id)?;
        check_window(since, until)?;
        let query = format!(
            "SELECT campaign.id, segments.date, customer.currency_code, metrics.cost_micros, \
             metrics.impressions, metrics.clicks, metrics.video_trueview_views, metrics.conversions \
             FROM campaign WHERE segments.date BETWEEN '{since}' AND '{until}'"
        );
        let body = serde_json::json!({ "query": query });
        let developer_token = developer_token_header(&self.developer_token)?;
        let url = self
            .http
            .url(&[&self.api_version, "customers", &customer_id, "googleAds:searchStream"]);
        let answer = self
            .http
            .send(SEARCH_STREAM, classify, |client| {
                let request = client
                    .post(url.clone())
                    .bearer_auth(access_token.expose_secret())
                    .header("developer-token", developer_token.clone())
                    .json(&body);
                match &self.login_customer_id {
                    Some(login) => request.header("login-customer-id", login),
                    None => request,
                }
            })
            .await?;
        if answer.iter().all(u8::is_ascii_whitespace) {
            return Ok(Vec::new());
        }
        let batches: Vec<StreamBatch> = decode(SEARCH_STREAM, &answer)?;
        let mut days = Vec::new();
        for batch in batches {
            if let Some(error) = batch.error {
                return Err(stream_error(&error));
            }
            for row in batch.results {
                days.push(row.into_campaign_day()?);
            }
        }
        Ok(days)
    }
}

/// A customer id as its ten digits (dashes removed).
fn customer_digits(id: &str) -> Result<String, ConnectorError> {
    let digits: String = id.chars().filter(|c| *c != '-').collect();
    if digits.len() != 10 || !digits.chars().all(|c| c.is_ascii_digit()) {
        return Err(ConnectorError::InvalidInput(
            "a Google Ads customer id is ten digits, dashes allowed",
        ));
    }
    Ok(digits)
}

/// The developer token as a header value marked sensitive (kept out of reqwest's `Debug`).
fn developer_token_header(token: &SecretString) -> Result<HeaderValue, ConnectorError> {
    let mut value = HeaderValue::from_str(token.expose_secret())
        .map_err(|_| ConnectorError::Config("a developer token must be visible ASCII"))?;
    value.set_sensitive(true);
    Ok(value)
}

#[derive(Deserialize)]
struct StreamBatch {
    #[serde(default)]
    results: Vec<AdsRow>,
    #[serde(default)]
    error: Option<GoogleError>,
}

#[derive(Deserialize)]
struct AdsRow {
    campaign: Option<CampaignPart>,
    segments: Option<SegmentsPart>,
    customer: Option<CustomerPart>,
    #[serde(default)]
    metrics: MetricsPart,
}

#[derive(Deserialize)]
struct CampaignPart {
    #[serde(default, deserialize_with = "numeric_text")]
    id: Option<String>,
}

#[derive(Deserialize)]
struct SegmentsPart {
    date: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CustomerPart {
    currency_code: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MetricsPart {
    #[serde(default, deserialize_with = "numeric_text")]
    cost_micros: Option<String>,
    #[serde(default, deserialize_with = "numeric_text")]
    impressions: Option<String>,
    #[serde(default, deserialize_with = "numeric_text")]
    clicks: Option<String>,
    #[serde(default, deserialize_with = "numeric_text")]
    video_trueview_views: Option<String>,
    #[serde(default, deserialize_with = "numeric_text")]
    conversions: Option<String>,
}

impl AdsRow {
    fn into_campaign_day(self) -> Result<CampaignDay, ConnectorError> {
        let count = |text: Option<&str>| text.map_or(Ok(0), |text| ad_reporting::count(SEARCH_STREAM, text));
        let metrics = self.metrics;
        Ok(CampaignDay {
            platform_campaign_id: self
                .campaign
                .and_then(|campaign| campaign.id)
                .filter(|id| !id.is_empty())
                .ok_or_else(|| ConnectorError::Decode {
                    what: SEARCH_STREAM,
                    detail: "a row has no campaign.id".to_owned(),
                })?,
            date: ad_reporting::day(
                SEARCH_STREAM,
                self.segments.as_ref().and_then(|segments| segments.date.as_deref()),
            )?,
            currency: ad_reporting::currency(SEARCH_STREAM, self.customer.and_then(|customer| customer.currency_code))?,
            spend_micros: count(metrics.cost_micros.as_deref())?,
            impressions: count(metrics.impressions.as_deref())?,
            reach: 0,
            clicks: count(metrics.clicks.as_deref())?,
            views: count(metrics.video_trueview_views.as_deref())?,
            saves: 0,
            reactions: 0,
            comments: 0,
            shares: 0,
            follows: 0,
            conversions: metrics
                .conversions
                .as_deref()
                .map_or(Ok(0), |text| ad_reporting::round_half_up(SEARCH_STREAM, text))?,
        })
    }
}

/// An error answer: searchStream's array of envelopes, or one envelope. (The array is tried
/// first: serde would also read an array as a struct, field by field.)
#[derive(Deserialize)]
#[serde(untagged)]
enum ErrorAnswer {
    Stream(Vec<ErrorEnvelope>),
    One(ErrorEnvelope),
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    error: Option<GoogleError>,
}

#[derive(Deserialize)]
struct GoogleError {
    #[serde(default, deserialize_with = "lenient")]
    code: Option<u16>,
    #[serde(default, deserialize_with = "lenient")]
    status: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    details: Option<Vec<FailureDetail>>,
}

/// One entry of `details`; only `GoogleAdsFailure` has `errors`.
#[derive(Deserialize)]
struct FailureDetail {
    #[serde(default, deserialize_with = "lenient")]
    errors: Option<Vec<AdsError>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AdsError {
    /// `{"<family>": "<value>"}`, e.g. `{"authenticationError": "OAUTH_TOKEN_EXPIRED"}`.
    #[serde(default, deserialize_with = "lenient")]
    error_code: Option<BTreeMap<String, String>>,
    #[serde(default, deserialize_with = "lenient")]
    details: Option<AdsErrorDetails>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AdsErrorDetails {
    #[serde(default, deserialize_with = "lenient")]
    quota_error_details: Option<QuotaErrorDetails>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct QuotaErrorDetails {
    /// A protobuf `Duration` in JSON: `"30s"`, `"1.5s"`.
    #[serde(default, deserialize_with = "lenient")]
    retry_delay: Option<String>,
}

impl GoogleError {
    fn ads_errors(&self) -> impl Iterator<Item = &AdsError> {
        self.details
            .iter()
            .flatten()
            .filter_map(|detail| detail.errors.as_ref())
            .flatten()
    }

    /// The first `errorCode` as `(family, value)`.
    fn error_code(&self) -> Option<(&str, &str)> {
        self.ads_errors()
            .filter_map(|error| error.error_code.as_ref())
            .find_map(|code| code.iter().next())
            .map(|(family, value)| (family.as_str(), value.as_str()))
    }

    /// The longest `quotaErrorDetails.retryDelay`, rounded up to whole seconds.
    fn retry_delay(&self) -> Option<Duration> {
        self.ads_errors()
            .filter_map(|error| {
                error
                    .details
                    .as_ref()?
                    .quota_error_details
                    .as_ref()?
                    .retry_delay
                    .as_deref()
            })
            .filter_map(parse_duration)
            .max()
    }
}

/// A protobuf `Duration` in JSON (`"30s"`, `"1.500s"`), rounded up to whole seconds.
fn parse_duration(text: &str) -> Option<Duration> {
    let number = text.strip_suffix('s')?;
    let (seconds, fraction) = number.split_once('.').unwrap_or((number, ""));
    if !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let seconds: u64 = seconds.parse().ok()?;
    let round_up = u64::from(fraction.bytes().any(|b| b != b'0'));
    Some(Duration::from_secs(seconds.saturating_add(round_up)))
}

fn classify(failure: &Failure<'_>) -> Verdict {
    let error = failure.json::<ErrorAnswer>().and_then(|answer| match answer {
        ErrorAnswer::Stream(envelopes) => envelopes.into_iter().find_map(|envelope| envelope.error),
        ErrorAnswer::One(envelope) => envelope.error,
    });
    verdict(failure, error.as_ref())
}

/// The error of a batch that reports a failure in the middle of a stream.
fn stream_error(error: &GoogleError) -> ConnectorError {
    let status = error
        .code
        .and_then(|code| StatusCode::from_u16(code).ok())
        .filter(|status| !status.is_success())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let failure = Failure {
        status,
        retry_after: None,
        body: &[],
    };
    match verdict(&failure, Some(error)) {
        Verdict::Retry(error) | Verdict::Fail(error) => error,
    }
}

fn verdict(failure: &Failure<'_>, error: Option<&GoogleError>) -> Verdict {
    let status_text = error.and_then(|error| error.status.as_deref());
    let error_code = error.and_then(GoogleError::error_code);
    let family = error_code.map(|(family, _)| family);
    let status = failure.status.as_u16();
    if status == 401 || status_text == Some("UNAUTHENTICATED") {
        return Verdict::Fail(ConnectorError::InvalidToken);
    }
    if status == 429 || status_text == Some("RESOURCE_EXHAUSTED") || family == Some("quotaError") {
        let retry_after = failure.retry_after.or_else(|| error.and_then(GoogleError::retry_delay));
        return Verdict::Retry(ConnectorError::RateLimited { retry_after });
    }
    if status == 403 || status_text == Some("PERMISSION_DENIED") || family == Some("authorizationError") {
        return Verdict::Fail(failure.client(Some(PERMISSION_DENIED)));
    }
    let code = error_code.map(|(family, value)| format!("{family}.{value}"));
    failure.default_verdict(code.as_deref().or(status_text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn customer_ids_are_ten_digits_with_or_without_dashes() {
        assert_eq!(customer_digits("123-456-7890").unwrap(), "1234567890");
        assert_eq!(customer_digits("1234567890").unwrap(), "1234567890");
        for bad in [
            "",
            "123-456-789",
            "12345678901",
            "123 456 7890",
            "act_123456",
            "../12345678",
        ] {
            assert!(
                matches!(customer_digits(bad), Err(ConnectorError::InvalidInput(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn protobuf_durations_are_read_in_whole_seconds() {
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("1.500s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("2.000s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("30"), None);
        assert_eq!(parse_duration("-1s"), None);
    }

    #[test]
    fn failures_are_classified_by_status_and_error_code() {
        let classify_body = |status: u16, body: &str| {
            let failure = Failure {
                status: StatusCode::from_u16(status).unwrap(),
                retry_after: None,
                body: body.as_bytes(),
            };
            match classify(&failure) {
                Verdict::Retry(error) => (true, error),
                Verdict::Fail(error) => (false, error),
            }
        };
        let quota = r#"[{"error":{"code":429,"status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.ads.googleads.v26.errors.GoogleAdsFailure","errors":[{"errorCode":{"quotaError":"RESOURCE_TEMPORARILY_EXHAUSTED"},"message":"Too many requests","details":{"quotaErrorDetails":{"rateScope":"ACCOUNT","retryDelay":"12s"}}}]}]}}]"#;
        let (retried, error) = classify_body(429, quota);
        assert!(retried);
        assert!(
            matches!(error, ConnectorError::RateLimited { retry_after: Some(after) } if after == Duration::from_secs(12)),
            "{error:?}"
        );
        let query = r#"{"error":{"code":400,"status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.ads.googleads.v26.errors.GoogleAdsFailure","errors":[{"errorCode":{"queryError":"BAD_FIELD_NAME"},"message":"Unrecognized field ada@example.com"}]}]}}"#;
        let (retried, error) = classify_body(400, query);
        assert!(!retried);
        assert!(
            matches!(&error, ConnectorError::Client { status: 400, code: Some(code) } if code == "queryError.BAD_FIELD_NAME"),
            "{error:?}"
        );
        let denied = r#"{"error":{"code":403,"status":"PERMISSION_DENIED","details":[{"@type":"type.googleapis.com/google.ads.googleads.v26.errors.GoogleAdsFailure","errors":[{"errorCode":{"authorizationError":"USER_PERMISSION_DENIED"}}]}]}}"#;
        let (retried, error) = classify_body(403, denied);
        assert!(!retried);
        assert!(
            matches!(&error, ConnectorError::Client { status: 403, code: Some(code) } if code == "PERMISSION_DENIED"),
            "{error:?}"
        );
        let (retried, error) = classify_body(503, r#"{"error":{"code":503,"status":"UNAVAILABLE"}}"#);
        assert!(retried);
        assert!(matches!(error, ConnectorError::Server { status: 503 }), "{error:?}");
        let (_, error) = classify_body(400, "not json");
        assert!(
            matches!(
                error,
                ConnectorError::Client {
                    status: 400,
                    code: None
                }
            ),
            "{error:?}"
        );
    }
}
