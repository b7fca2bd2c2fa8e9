//! Resend's email API: one email per call (invitations, P7/P13), and a contact deleted on
//! erasure (P22).
//!
//! `POST {base}/emails` with `Authorization: Bearer <api key>`, an `Idempotency-Key` header and
//! `{"from", "to": [...], "subject", "html", "text"}`; the answer is `{"id"}` (Resend's *Send
//! Email* reference). Resend keeps an idempotency key for 24 hours and answers a repeat with the
//! first answer instead of sending again (*Idempotency Keys*), so retries (5xx, 429, timeouts,
//! a reset connection) can never send twice; the caller derives the key from its outbox entry
//! (e.g. `invitation/{id}`), 1 to 256 characters.
//!
//! **Contacts.** Resend's contacts are global, one per email address (*Contacts*; the older
//! per-audience model was migrated to segments). `DELETE {base}/contacts/{id or email}` removes
//! the contact with its properties and segment and topic memberships (*Delete Contact*: "Either
//! `id` or `email` must be provided"); the answer is `{"object": "contact", …, "deleted":
//! true}`. A 404 (`not_found`: no contact with that address, e.g. deleted already) is success.
//! The address travels percent-encoded as one path segment, the only place Resend takes it.
//!
//! **Errors** (`{"statusCode", "name", "message"}`, *Errors* reference; the message can quote the
//! recipient, so only `name` is kept): 401 (`missing_api_key`, or `validation_error` for a bad
//! key on the sending endpoints) and 403 `invalid_api_key` → [`ConnectorError::InvalidToken`];
//! 429 `daily_quota_exceeded`/`monthly_quota_exceeded` → [`ConnectorError::RateLimited`]
//! returned at once (a quota does not refill in seconds), other 429 → retried after
//! `Retry-After`; 409 `concurrent_idempotent_requests` (the same key is still being processed)
//! → retried; 409 `invalid_idempotent_request` (the key was used for another email) and other
//! 4xx → [`ConnectorError::Client`] with the name.
//!
//! The recipient address is personal data: it is sent to Resend and nowhere else: no log line,
//! no error and no `Debug` output of this module holds it (nor the body, which holds the
//! invitation link).

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::error::ConnectorError;
use crate::http::{Failure, HttpClient, HttpSettings, Verdict};
use crate::Url;

/// Resend's bound on an idempotency key.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 256;
/// Resend's bound on recipients of one email.
pub const MAX_RECIPIENTS: usize = 50;
/// The longest email address accepted (64 for the local part, 255 for the domain, and the `@`).
const MAX_EMAIL_LEN: usize = 320;

/// Where Resend is and the API key to send with.
#[derive(Debug, Clone)]
pub struct ResendSettings {
    /// Default `https://api.resend.com`.
    pub base_url: Url,
    pub api_key: SecretString,
    pub http: HttpSettings,
}

impl ResendSettings {
    /// Resend's production host with default timeouts and retries.
    pub fn new(api_key: SecretString) -> Self {
        ResendSettings {
            base_url: Url::parse("https://api.resend.com").expect("a valid constant URL"),
            api_key,
            http: HttpSettings::default(),
        }
    }
}

/// One email. `Debug` shows the sender, the subject and how many recipients, never their
/// addresses or the body.
#[derive(Clone, Serialize)]
pub struct EmailMessage {
    /// `Name <address@verified-domain>` or a bare address.
    pub from: String,
    pub to: Vec<String>,
    pub subject: String,
    pub html: String,
    pub text: String,
}

impl fmt::Debug for EmailMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailMessage")
            .field("from", &self.from)
            .field("to", &format_args!("[{} recipient(s) REDACTED]", self.to.len()))
            .field("subject", &self.subject)
            .field("html", &format_args!("[{} bytes REDACTED]", self.html.len()))
            .field("text", &format_args!("[{} bytes REDACTED]", self.text.len()))
            .finish()
    }
}

/// The Resend client.
pub struct Resend {
    http: HttpClient,
    api_key: SecretString,
}

impl fmt::Debug for Resend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resend")
            .field("http", &self.http)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct SendAnswer {
    id: String,
}

#[derive(Deserialize)]
struct ErrorAnswer {
    name: Option<String>,
}

impl Resend {
    pub fn new(settings: ResendSettings) -> Result<Self, ConnectorError> {
        Ok(Resend {
            http: HttpClient::new("resend", &settings.base_url, &settings.http)?,
            api_key: settings.api_key,
        })
    }

    /// Sends `message` once per `idempotency_key` and returns Resend's email id.
    pub async fn send_email(&self, message: &EmailMessage, idempotency_key: &str) -> Result<String, ConnectorError> {
        let key_ok = !idempotency_key.is_empty()
            && idempotency_key.len() <= MAX_IDEMPOTENCY_KEY_LEN
            && idempotency_key.bytes().all(|b| b.is_ascii_graphic());
        if !key_ok {
            return Err(ConnectorError::InvalidInput(
                "an idempotency key is 1 to 256 visible ASCII characters without spaces",
            ));
        }
        if message.to.is_empty() || message.to.len() > MAX_RECIPIENTS {
            return Err(ConnectorError::InvalidInput("an email has 1 to 50 recipients"));
        }
        let url = self.http.url(&["emails"]);
        let answer: SendAnswer = self
            .http
            .send_json("resend send email", classify, |client| {
                client
                    .post(url.clone())
                    .bearer_auth(self.api_key.expose_secret())
                    .header("Idempotency-Key", idempotency_key)
                    .json(message)
            })
            .await?;
        Ok(answer.id)
    }

    /// Deletes the Resend contact whose address is `email` (see the module documentation).
    /// No such contact (404) is `Ok(())`: nothing is left to delete. The address never appears
    /// in an error or a log line.
    pub async fn delete_contact(&self, email: &str) -> Result<(), ConnectorError> {
        const OPERATION: &str = "resend delete contact";
        let plausible = email.len() <= MAX_EMAIL_LEN
            && email.contains('@')
            && !email.chars().any(|c| c.is_control() || c.is_whitespace());
        if !plausible {
            return Err(ConnectorError::InvalidInput(
                "a contact's email address is at most 320 characters with an @ and no spaces",
            ));
        }
        let url = self.http.url(&["contacts", email]);
        let answer = self
            .http
            .send(OPERATION, classify, |client| {
                client.delete(url.clone()).bearer_auth(self.api_key.expose_secret())
            })
            .await;
        match answer {
            Ok(_) => Ok(()),
            Err(ConnectorError::NotFound) => {
                tracing::info!(
                    platform = "resend",
                    operation = OPERATION,
                    "no such contact: nothing to delete"
                );
                Ok(())
            }
            Err(error) => Err(error),
        }
    }
}

fn classify(failure: &Failure<'_>) -> Verdict {
    let name = failure.json::<ErrorAnswer>().and_then(|answer| answer.name);
    let status = failure.status.as_u16();
    match (status, name.as_deref()) {
        (401, _) | (403, Some("invalid_api_key")) => Verdict::Fail(ConnectorError::InvalidToken),
        (429, Some("daily_quota_exceeded" | "monthly_quota_exceeded")) => Verdict::Fail(ConnectorError::RateLimited {
            retry_after: failure.retry_after,
        }),
        (409, Some("concurrent_idempotent_requests")) => Verdict::Retry(failure.client(name.as_deref())),
        (_, name) => failure.default_verdict(name),
    }
}
