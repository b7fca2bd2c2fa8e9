//! The invitation mailer: an outbox that follows the feed and sends each invitation's email
//! through Resend exactly once (P7, P13).
//!
//! Why exactly once: the worker has its own checkpoint (`outbox_checkpoints`), never moved by
//! a projection rebuild; before sending it asks the artist's stream whether the email was
//! already recorded as sent (`InvitationEmailSent`), and it sends with the idempotency key
//! `invitation-<id>`, so a crash between sending and recording makes the retry a repeat that
//! Resend answers without sending again. Failures are retried with backoff from the same event.

use crate::routes::artists::{invitation_token, invitee_key};
use connectors::resend::{EmailMessage, Resend};
use domain::artist::{ArtistCommand, ArtistEvent, ArtistProfile};
use domain::disclosure::{DataCategory, Processor, Purpose};
use domain::Aggregate;
use eventlog::{outbox, EventLog, EventMetadata, Position, StoredEvent};
use secrecy::{ExposeSecret, SecretString};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use vault::{Opened, SealedValue, Vault};

/// The outbox's name in `outbox_checkpoints`.
pub const NAME: &str = "invitation_mailer";

/// What the mailer needs.
pub struct InvitationMailer {
    pub log: EventLog,
    pub vault: Vault,
    pub resend: std::sync::Arc<Resend>,
    pub from: String,
    pub app_base_url: String,
    pub token_secret: SecretString,
    pub poll_interval: Duration,
}

/// Why one delivery did not happen yet.
#[derive(Debug, thiserror::Error)]
enum DeliveryError {
    #[error("Resend refused or failed")]
    Resend(#[from] connectors::ConnectorError),
    #[error("the event log failed")]
    Log(#[from] eventlog::LogError),
    #[error("the vault failed")]
    Vault(#[from] vault::VaultError),
    #[error("recording the delivery failed")]
    Record(String),
}

impl InvitationMailer {
    /// Runs until `shutdown`, finishing the delivery in hand.
    pub async fn run(self, shutdown: CancellationToken) {
        let db = self.log.db().clone();
        let mut appended = self.log.subscribe();
        let mut backoff = Duration::from_millis(200);
        loop {
            if shutdown.is_cancelled() {
                return;
            }
            let checkpoint = match outbox::checkpoint(&db, NAME).await {
                Ok(c) => c,
                Err(error) => {
                    tracing::warn!(%error, "invitation mailer: cannot read its checkpoint");
                    if sleep_or_stop(&shutdown, backoff).await {
                        return;
                    }
                    continue;
                }
            };
            let events = match self.log.read_feed(checkpoint, 100).await {
                Ok(events) => events,
                Err(error) => {
                    tracing::warn!(%error, "invitation mailer: cannot read the feed");
                    if sleep_or_stop(&shutdown, backoff).await {
                        return;
                    }
                    continue;
                }
            };
            if events.is_empty() {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = appended.changed() => {}
                    _ = tokio::time::sleep(self.poll_interval) => {}
                }
                continue;
            }
            let mut done: Option<Position> = None;
            let mut failed = false;
            for event in &events {
                if let Err(error) = self.handle(event).await {
                    tracing::warn!(%error, position = %event.position, "invitation email not delivered yet; retrying");
                    failed = true;
                    break;
                }
                done = Some(event.position);
            }
            if let Some(position) = done {
                if let Err(error) = outbox::advance(&db, NAME, position).await {
                    tracing::warn!(%error, "invitation mailer: cannot store its checkpoint");
                }
            }
            if failed {
                if sleep_or_stop(&shutdown, backoff).await {
                    return;
                }
                backoff = (backoff * 2).min(Duration::from_secs(60));
            } else {
                backoff = Duration::from_millis(200);
            }
        }
    }

    async fn handle(&self, event: &StoredEvent) -> Result<(), DeliveryError> {
        if event.aggregate_type != ArtistProfile::TYPE || event.event_type != "MemberInvited" {
            return Ok(());
        }
        let Ok(ArtistEvent::MemberInvited {
            invitation_id,
            email,
            by,
            ..
        }) = event.decode::<ArtistEvent>()
        else {
            return Ok(());
        };
        let (artist, _, _) = self.log.load_aggregate::<ArtistProfile>(&event.aggregate_id).await?;
        if !artist.invitation_awaits_email(&invitation_id) {
            return Ok(());
        }
        let sealed: SealedValue = serde_json::from_value(email.0)
            .map_err(|_| DeliveryError::Record("the sealed email is malformed".into()))?;
        let address = match self
            .vault
            .open_string(&invitee_key(&invitation_id), "email", &sealed)
            .await?
        {
            Opened::Plain(address) => address,
            // The invitation ended and its address was erased: there is nobody to write to.
            Opened::Erased => return Ok(()),
        };
        let token = invitation_token(
            self.token_secret.expose_secret().as_bytes(),
            &event.aggregate_id,
            &invitation_id,
        );
        let link = format!(
            "{}/invitations/accept?token={token}",
            self.app_base_url.trim_end_matches('/')
        );
        let name = artist.name();
        let message = EmailMessage {
            from: self.from.clone(),
            to: vec![address.to_string()],
            subject: format!("You are invited to join {name} on dynamoi"),
            html: format!(
                "<p>You have been invited to join the team of <strong>{}</strong> on dynamoi.</p>\
                 <p><a href=\"{link}\">Accept the invitation</a> (valid for 7 days).</p>",
                html_escape(name)
            ),
            text: format!(
                "You have been invited to join the team of {name} on dynamoi.\nAccept (valid for 7 days): {link}\n"
            ),
        };
        // P17: recorded under the inviter, who gave us the address (the invitee has no account).
        let metadata = EventMetadata {
            actor: "service:invitation_mailer".into(),
            request_id: None,
            causation_id: Some(event.event_id.to_string()),
        };
        crate::disclosure::record(
            &self.log,
            &by,
            Processor::Resend,
            &[DataCategory::EmailAddress, DataCategory::ArtistName],
            Purpose::InvitationEmail,
            Some(&invitation_id),
            &metadata,
        )
        .await
        .map_err(|e| DeliveryError::Record(e.to_string()))?;
        let provider_message_id = self
            .resend
            .send_email(&message, &format!("invitation-{invitation_id}"))
            .await?;
        self.log
            .execute::<ArtistProfile>(
                &event.aggregate_id,
                ArtistCommand::RecordInvitationEmailSent {
                    invitation_id,
                    provider_message_id,
                },
                &metadata,
            )
            .await
            .map_err(|e| DeliveryError::Record(e.to_string()))?;
        Ok(())
    }
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

async fn sleep_or_stop(shutdown: &CancellationToken, duration: Duration) -> bool {
    tokio::select! {
        _ = shutdown.cancelled() => true,
        _ = tokio::time::sleep(duration) => false,
    }
}
