//! dynamoi's connectors: reqwest clients for the official APIs of the platforms that artists
//! connect (P5, P9, P12), the public Spotify catalogue the Chrome extension asks about (P8) and
//! the email provider that sends invitations (P13).
//!
//! **What it owns.** All outbound HTTP of dynamoi (`DESIGN.md` §1: no other crate calls a
//! platform). One HTTP machinery ([`http`]: base URL per platform, connect and total timeouts,
//! bounded retries with exponential backoff on 5xx, 429 (honouring `Retry-After`), timeouts and
//! transport failures, no retry on other 4xx, bounded response bodies, no redirects), one error
//! type ([`ConnectorError`]) and one module per platform:
//!
//! - [`google_oauth`]: a YouTube connection's refresh token → a short-lived access token, and
//!   a token revoked on erasure;
//! - [`youtube`]: a channel's uploads playlist and its videos (campaign creation, P5/P12);
//! - [`meta`]: a Facebook page's posts and an Instagram account's media (P12), and an ad
//!   account's daily campaign insights, and the app's permissions revoked on erasure;
//! - [`google_ads`]: a Google Ads customer's daily campaign metrics (`googleAds:searchStream`);
//! - [`ad_reporting`]: [`ad_reporting::CampaignDay`], the row both ad-reporting calls return,
//!   and exact decimal-to-micros conversion;
//! - [`spotify`]: public track and album data with the app's own client-credentials token (P8);
//! - [`resend`]: one email per call, with an idempotency key (P13), and a contact deleted on
//!   erasure;
//! - [`stripe`]: usage reported to Stripe as billing meter events, once per identifier (P11),
//!   a customer's personal fields cleared on erasure (invoices kept), and [`stripe::webhook`],
//!   the signature check of Stripe's webhooks (secret rotation, replay tolerance);
//! - [`posthog`]: a person deleted by distinct id with their events and recordings (P4, P22).
//!
//! The erasure calls (P22) answer success when the platform says the thing is gone already
//! (an invalid token, no such customer, contact or person), so an erasure can be retried until
//! every processor has answered.
//!
//! Tokens come in as [`secrecy::SecretString`], which the callers open from the vault (P19) just
//! for the call; they travel in `Authorization` headers (Google Ads' developer token in its
//! `developer-token` header), marked sensitive, never in URLs. Every settings struct takes its
//! base URLs from the caller, so tests point them at a local server.
//!
//! **What it must never do.** Log, return, display or put in an error a token, a client secret,
//! an API key or personal data (an email address, a post's text): errors carry HTTP statuses and
//! the platform's error *code* (sanitised: letters, digits and `_.:/-`, at most 64 characters),
//! never a response body; `Debug` of clients, settings and messages redacts; log lines carry the
//! platform, the operation, the attempt and the status only. Follow a redirect or a URL that a
//! platform returned (paging goes through our own base URL, so a token never leaves for a host
//! we did not configure). Store anything: it holds no state but Spotify's app token in memory.
//! Depend on sqlx or warp: connectors are called by the service's workers and handlers, and
//! know nothing of the database or of our own HTTP API.

pub mod ad_reporting;
pub mod error;
pub mod google_ads;
pub mod google_oauth;
pub mod http;
pub mod meta;
pub mod posthog;
pub mod resend;
pub mod spotify;
pub mod stripe;
pub mod youtube;

pub use error::ConnectorError;
pub use http::{HttpSettings, RetryPolicy};
/// The URL type of every settings struct (re-exported so callers need no `reqwest` dependency).
pub use reqwest::Url;
/// The type in which every token, secret and API key is passed.
pub use secrecy::SecretString;
