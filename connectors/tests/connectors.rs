//! The connectors' integration tests, one binary: each platform's client against a local
//! wiremock server standing in for the platform (`support` holds what they share). Each module
//! covers its connector's documented success shape, paging where the API pages, an invalid
//! token, 429 with `Retry-After`, 500, and a timeout, and asserts the requests' shapes
//! (`meta_insights` and `google_ads` cover the ad-reporting calls, their usage and quota limits);
//! `stripe` covers meter events (idempotency, duplicates) and the webhook signature check;
//! the erasure calls (Google and Meta revocation, Stripe anonymisation, Resend contact and
//! PostHog person deletion) sit in their platform's module, `posthog` holding PostHog's;
//! `retries` covers the shared retry rules and `redaction` that no token, secret or recipient
//! reaches an error, a `Debug` output or a log line.

mod google_ads;
mod google_oauth;
mod meta;
mod meta_insights;
mod posthog;
mod redaction;
mod resend;
mod retries;
mod spotify;
mod stripe;
mod support;
mod youtube;
