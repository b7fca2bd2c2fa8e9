//! The outbound clients the service uses, built once from [`crate::settings::Integrations`].
//! A client whose credentials are not configured is `None`, and the features needing it answer
//! 503 `unavailable` with the setting to set.

use crate::settings::Integrations;
use anyhow::Context;
use connectors::google_ads::{GoogleAds, GoogleAdsSettings};
use connectors::google_oauth::{GoogleOAuth, GoogleOAuthSettings};
use connectors::meta::{Meta, MetaSettings};
use connectors::resend::{Resend, ResendSettings};
use connectors::spotify::{Spotify, SpotifySettings};
use connectors::stripe::{Stripe, StripeSettings};
use connectors::youtube::{YouTube, YouTubeSettings};
use connectors::Url;
use std::sync::Arc;

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
}

fn url(name: &str, value: &Option<String>) -> anyhow::Result<Option<Url>> {
    value
        .as_deref()
        .map(|v| Url::parse(v).with_context(|| format!("{name} is not a URL")))
        .transpose()
}

impl Platforms {
    /// Builds the clients; fails only on a malformed base URL.
    pub fn build(integrations: &Integrations) -> anyhow::Result<Platforms> {
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
        Ok(Platforms {
            stripe,
            google,
            google_ads,
            youtube: Arc::new(YouTube::new(youtube)?),
            meta: Arc::new(Meta::new(meta)?),
            spotify,
            resend,
        })
    }
}
