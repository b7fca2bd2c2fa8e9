//! The outbound clients the service uses, built once from [`Integrations`] (the settings that
//! name the platforms' base URLs and credentials). A client whose credentials are not
//! configured is `None`, and the features needing it answer that they are not configured,
//! naming the setting to set.

use connectors::google_ads::{GoogleAds, GoogleAdsSettings};
use connectors::google_oauth::{GoogleOAuth, GoogleOAuthSettings};
use connectors::meta::{Meta, MetaSettings};
use connectors::posthog::PostHog;
use connectors::resend::{Resend, ResendSettings};
use connectors::spotify::{Spotify, SpotifySettings};
use connectors::stripe::{Stripe, StripeSettings};
use connectors::youtube::{YouTube, YouTubeSettings};
use connectors::{HttpSettings, Url};
use secrecy::SecretString;
use std::sync::Arc;

/// Where the platforms' APIs are and the credentials dynamoi calls them with. A base URL can
/// point at a local stand-in (tests, demos). A feature whose credentials are missing answers
/// 503 `unavailable` (and the invitation mailer does not start) instead of failing silently.
#[derive(Clone, Debug, Default)]
pub struct Integrations {
    /// `DYNAMOI_RESEND_API_KEY` (secret) and `DYNAMOI_RESEND_BASE_URL` (`https://api.resend.com`).
    pub resend_api_key: Option<SecretString>,
    pub resend_base_url: Option<String>,
    /// The sender of invitation emails (`DYNAMOI_EMAIL_FROM`, `dynamoi <invitations@dynamoi.dev>`).
    pub email_from: String,
    /// Where the web app is, for links in emails (`DYNAMOI_APP_BASE_URL`, `http://localhost:3000`).
    pub app_base_url: String,
    /// Google OAuth client (`DYNAMOI_GOOGLE_CLIENT_ID`, `DYNAMOI_GOOGLE_CLIENT_SECRET`) and
    /// token endpoint base (`DYNAMOI_GOOGLE_OAUTH_BASE_URL`, `https://oauth2.googleapis.com`).
    pub google_client_id: Option<SecretString>,
    pub google_client_secret: Option<SecretString>,
    pub google_oauth_base_url: Option<String>,
    /// `DYNAMOI_YOUTUBE_BASE_URL` (`https://www.googleapis.com`).
    pub youtube_base_url: Option<String>,
    /// `DYNAMOI_META_BASE_URL` (`https://graph.facebook.com`).
    pub meta_base_url: Option<String>,
    /// Spotify app (`DYNAMOI_SPOTIFY_CLIENT_ID`, `DYNAMOI_SPOTIFY_CLIENT_SECRET`), accounts and
    /// API bases (`DYNAMOI_SPOTIFY_ACCOUNTS_BASE_URL`, `DYNAMOI_SPOTIFY_API_BASE_URL`).
    pub spotify_client_id: Option<SecretString>,
    pub spotify_client_secret: Option<SecretString>,
    pub spotify_accounts_base_url: Option<String>,
    pub spotify_api_base_url: Option<String>,
    /// Google Ads API: the developer token (`DYNAMOI_GOOGLE_ADS_DEVELOPER_TOKEN`, secret), the
    /// manager account that calls are made through (`DYNAMOI_GOOGLE_ADS_LOGIN_CUSTOMER_ID`) and
    /// the base URL (`DYNAMOI_GOOGLE_ADS_BASE_URL`, `https://googleads.googleapis.com`).
    pub google_ads_developer_token: Option<SecretString>,
    pub google_ads_login_customer_id: Option<String>,
    pub google_ads_base_url: Option<String>,
    /// Stripe: the secret API key (`DYNAMOI_STRIPE_API_KEY`), the host
    /// (`DYNAMOI_STRIPE_BASE_URL`, `https://api.stripe.com`), the webhook endpoint secrets
    /// (`DYNAMOI_STRIPE_WEBHOOK_SECRET`, `whsec_…`; several separated by `,` while rotating),
    /// and the meter's event name (`DYNAMOI_STRIPE_METER_EVENT`, `dynamoi_spend_fee`).
    pub stripe_api_key: Option<SecretString>,
    pub stripe_base_url: Option<String>,
    pub stripe_webhook_secrets: Vec<SecretString>,
    pub stripe_meter_event: String,
    /// PostHog, where erasure deletes a person with their events: the instance's app host
    /// (`DYNAMOI_POSTHOG_BASE_URL`, `https://us.posthog.com`; EU Cloud is
    /// `https://eu.posthog.com`), the project's numeric id (`DYNAMOI_POSTHOG_PROJECT_ID`) and a
    /// personal API key with the `person:write` scope (`DYNAMOI_POSTHOG_API_KEY`, secret).
    pub posthog_base_url: Option<String>,
    pub posthog_project_id: Option<String>,
    pub posthog_api_key: Option<SecretString>,
    /// Extension lookups allowed per person per minute (`DYNAMOI_EXTENSION_RATE_PER_MINUTE`, 30).
    pub extension_rate_per_minute: u32,
}

/// Every outbound client.
#[derive(Clone)]
pub struct Platforms {
    pub google: Option<Arc<GoogleOAuth>>,
    /// Google Ads reporting: needs the developer token.
    pub google_ads: Option<Arc<GoogleAds>>,
    pub youtube: Arc<YouTube>,
    pub meta: Arc<Meta>,
    pub spotify: Option<Arc<Spotify>>,
    pub resend: Option<Arc<Resend>>,
    /// Stripe (meter events): needs the API key.
    pub stripe: Option<Arc<Stripe>>,
    /// PostHog (erasure of a person and their events): needs the project id and the API key.
    pub posthog: Option<Arc<PostHog>>,
}

/// PostHog US Cloud's app host, used unless `DYNAMOI_POSTHOG_BASE_URL` names another.
const POSTHOG_DEFAULT_BASE_URL: &str = "https://us.posthog.com";

/// Why the clients could not be built from the settings (start-up only).
#[derive(Debug, thiserror::Error)]
pub enum PlatformConfigError {
    #[error("{0} is not a URL")]
    NotAUrl(&'static str),
    #[error("DYNAMOI_POSTHOG_PROJECT_ID must be the project's numeric id")]
    PostHogProject(#[source] connectors::ConnectorError),
    #[error("an HTTP client could not be built")]
    Client(#[from] connectors::ConnectorError),
}

fn url(name: &'static str, value: &Option<String>) -> Result<Option<Url>, PlatformConfigError> {
    value
        .as_deref()
        .map(|v| Url::parse(v).map_err(|_| PlatformConfigError::NotAUrl(name)))
        .transpose()
}

impl Platforms {
    /// Builds the clients; fails only on a malformed base URL (or PostHog project id).
    pub fn build(integrations: &Integrations) -> Result<Platforms, PlatformConfigError> {
        let google = match (&integrations.google_client_id, &integrations.google_client_secret) {
            (Some(id), Some(secret)) => {
                let mut settings = GoogleOAuthSettings::new(id.clone(), secret.clone());
                if let Some(base) = url("DYNAMOI_GOOGLE_OAUTH_BASE_URL", &integrations.google_oauth_base_url)? {
                    settings.base_url = base;
                }
                Some(Arc::new(GoogleOAuth::new(settings)?))
            }
            _ => None,
        };
        let google_ads = match &integrations.google_ads_developer_token {
            Some(token) => {
                let mut settings = GoogleAdsSettings::new(token.clone());
                if let Some(base) = url("DYNAMOI_GOOGLE_ADS_BASE_URL", &integrations.google_ads_base_url)? {
                    settings.base_url = base;
                }
                settings.login_customer_id = integrations.google_ads_login_customer_id.clone();
                Some(Arc::new(GoogleAds::new(settings)?))
            }
            None => None,
        };
        let mut youtube = YouTubeSettings::default();
        if let Some(base) = url("DYNAMOI_YOUTUBE_BASE_URL", &integrations.youtube_base_url)? {
            youtube.base_url = base;
        }
        let mut meta = MetaSettings::default();
        if let Some(base) = url("DYNAMOI_META_BASE_URL", &integrations.meta_base_url)? {
            meta.base_url = base;
        }
        let spotify = match (&integrations.spotify_client_id, &integrations.spotify_client_secret) {
            (Some(id), Some(secret)) => {
                let mut settings = SpotifySettings::new(id.clone(), secret.clone());
                if let Some(base) = url(
                    "DYNAMOI_SPOTIFY_ACCOUNTS_BASE_URL",
                    &integrations.spotify_accounts_base_url,
                )? {
                    settings.accounts_base_url = base;
                }
                if let Some(base) = url("DYNAMOI_SPOTIFY_API_BASE_URL", &integrations.spotify_api_base_url)? {
                    settings.api_base_url = base;
                }
                Some(Arc::new(Spotify::new(settings)?))
            }
            _ => None,
        };
        let resend = match &integrations.resend_api_key {
            Some(key) => {
                let mut settings = ResendSettings::new(key.clone());
                if let Some(base) = url("DYNAMOI_RESEND_BASE_URL", &integrations.resend_base_url)? {
                    settings.base_url = base;
                }
                Some(Arc::new(Resend::new(settings)?))
            }
            None => None,
        };
        let stripe = match &integrations.stripe_api_key {
            Some(key) => {
                let mut settings = StripeSettings::new(key.clone());
                if let Some(base) = url("DYNAMOI_STRIPE_BASE_URL", &integrations.stripe_base_url)? {
                    settings.base_url = base;
                }
                Some(Arc::new(Stripe::new(settings)?))
            }
            None => None,
        };
        let posthog = match (&integrations.posthog_project_id, &integrations.posthog_api_key) {
            (Some(project_id), Some(key)) => {
                let base = url("DYNAMOI_POSTHOG_BASE_URL", &integrations.posthog_base_url)?
                    .unwrap_or_else(|| Url::parse(POSTHOG_DEFAULT_BASE_URL).expect("a valid constant URL"));
                let client = PostHog::new(HttpSettings::default(), base, project_id.as_str(), key.clone())
                    .map_err(PlatformConfigError::PostHogProject)?;
                Some(Arc::new(client))
            }
            _ => None,
        };
        Ok(Platforms {
            stripe,
            posthog,
            google,
            google_ads,
            youtube: Arc::new(YouTube::new(youtube)?),
            meta: Arc::new(Meta::new(meta)?),
            spotify,
            resend,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn posthog(
        project_id: Option<&str>,
        key: Option<&str>,
        base: Option<&str>,
    ) -> Result<Platforms, PlatformConfigError> {
        Platforms::build(&Integrations {
            posthog_project_id: project_id.map(str::to_owned),
            posthog_api_key: key.map(|key| SecretString::from(key.to_owned())),
            posthog_base_url: base.map(str::to_owned),
            ..Integrations::default()
        })
    }

    #[test]
    fn posthog_is_built_only_with_a_project_id_and_a_key() {
        assert!(posthog(None, None, None).unwrap().posthog.is_none());
        assert!(posthog(Some("12345"), None, None).unwrap().posthog.is_none());
        assert!(posthog(None, Some("phx_key"), None).unwrap().posthog.is_none());
        let built = posthog(Some("12345"), Some("phx_key"), Some("http://127.0.0.1:8099"))
            .unwrap()
            .posthog
            .expect("configured");
        let shown = format!("{built:?}");
        assert!(shown.contains("127.0.0.1:8099") && shown.contains("12345"), "{shown}");
        assert!(!shown.contains("phx_key"), "{shown}");
        let default = posthog(Some("12345"), Some("phx_key"), None).unwrap().posthog.unwrap();
        assert!(format!("{default:?}").contains("us.posthog.com"));
    }

    #[test]
    fn a_malformed_posthog_project_id_or_base_url_names_the_setting() {
        let project = posthog(Some("my-project"), Some("phx_key"), None).err().unwrap();
        assert!(
            format!("{project:#}").contains("DYNAMOI_POSTHOG_PROJECT_ID"),
            "{project:#}"
        );
        let base = posthog(Some("1"), Some("phx_key"), Some("not a url")).err().unwrap();
        assert!(format!("{base:#}").contains("DYNAMOI_POSTHOG_BASE_URL"), "{base:#}");
    }
}
