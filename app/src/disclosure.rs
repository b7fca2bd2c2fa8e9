//! Recording disclosures (P17): the one function every outbound call that carries personal data goes through.
//!
//! [`record`] appends one `DisclosureRecorded` event to the person's `disclosure_log` stream
//! (stream id = the person id); [`list`] reads them back for the person's access export.
//!
//! **When**: *before* the outbound call, once per invocation of the call site, after
//! everything that could stop the call without sending (the connection is live, its token
//! opened, the client configured). What is recorded is what we are about to send: a call that
//! then fails may still have carried the data to the processor as far as we can know, so it
//! stays recorded; a retry is another invocation and another disclosure. If the disclosure
//! cannot be recorded the call is not made (the log is never missing a disclosure).
//! A call site that pages (Meta insights, YouTube playlist items, Google Ads searchStream
//! chunks) is one invocation and one disclosure.
//!
//! **Reference**: a non-personal id that is already in the log elsewhere: the connection id
//! `<person>.<platform>` for platform calls, the invitation id for invitation emails, the
//! meter event identifier `dynamoi-<account>-<period>` for Stripe.
//!
//! Call sites covered (processor · categories · purpose · person):
//! - `sync::read_account`, Meta `campaign_insights`: meta · platform_token, ad_account_ids ·
//!   spend_sync · the connection's owner (the person part of `<person>.<platform>`).
//! - `sync::read_account`, Google `refresh_access_token`: google · platform_token ·
//!   token_refresh · the connection's owner.
//! - `sync::read_account`, Google Ads `campaign_days` (searchStream): google_ads ·
//!   platform_token, ad_account_ids · spend_sync · the connection's owner.
//! - `routes::assets::list_assets`, Google `refresh_access_token`: google · platform_token ·
//!   token_refresh · the caller (whose connection it is).
//! - `routes::assets::list_assets`, YouTube `channel_videos`: youtube · platform_token,
//!   platform_profile_ids · asset_listing · the caller.
//! - `routes::assets::list_assets`, Meta `page_posts` and `instagram_media` (two calls, two
//!   disclosures): meta · platform_token, platform_profile_ids · asset_listing · the caller.
//! - `outbox::InvitationMailer::handle`, Resend `send_email`: resend · email_address,
//!   artist_name · invitation_email · the **inviter** (`MemberInvited.by`). The invitee is not
//!   a person of ours yet (no account, no stream); the inviter is who gave us the address and
//!   on whose behalf it is sent, so the disclosure is in the inviter's export. The address
//!   itself is never in the event; the invitation id is the reference.
//! - `billing::report_due`, Stripe `send_meter_event`: stripe · billing_identifiers,
//!   spend_figures · metered_billing · the billing account's owner.
//!
//! Outbound calls that carry no personal data, and so record nothing:
//! - `routes::extension` Spotify `track`/`album`: public catalog ids under the service's own
//!   client-credentials token; nothing of the caller is sent.
//! - The connectors' own app-level token requests (Spotify client credentials).
//!
//! Erasure at processors and token revocation (purposes `erasure_at_processor`,
//! `token_revocation`; PostHog, Resend, Stripe, Meta, Google) are recorded through [`record`]
//! by the erasure steps of [`crate::privacy`], which own those call sites.

use crate::AppError;
use domain::disclosure::{DataCategory, DisclosureCommand, DisclosureEvent, DisclosureLog, Processor, Purpose};
use domain::Aggregate;
use eventlog::{CommandError, EventLog, EventMetadata, LogError};
use serde_json::json;

/// How many times a disclosure is tried again after `execute` gave up on conflicts (each try
/// is itself up to [`eventlog::command::CONFLICT_RETRIES`] decisions): a disclosure never
/// depends on the stream's state, so it can always be appended once the race is over.
const CONFLICT_ROUNDS: usize = 3;

/// What a platform token refresh sends.
pub const TOKEN: &[DataCategory] = &[DataCategory::PlatformToken];
/// What a spend report request sends: the token and the ad account id.
pub const TOKEN_AND_AD_ACCOUNT: &[DataCategory] = &[DataCategory::PlatformToken, DataCategory::AdAccountIds];
/// What an asset listing request sends: the token and the page, channel or Instagram account id.
pub const TOKEN_AND_PROFILE: &[DataCategory] = &[DataCategory::PlatformToken, DataCategory::PlatformProfileIds];

/// The person a connection belongs to: connection ids are `<person>.<platform>` (platform
/// names have no dot, so the last dot splits them even when a person id has dots).
pub fn connection_owner(connection_id: &str) -> &str {
    connection_id
        .rsplit_once('.')
        .map_or(connection_id, |(person, _)| person)
}

/// Records that `categories` of `person_id`'s data are about to be sent to `processor` for
/// `purpose`. Call it right before the outbound call; do not make the call when it fails.
pub async fn record(
    log: &EventLog,
    person_id: &str,
    processor: Processor,
    categories: &[DataCategory],
    purpose: Purpose,
    reference: Option<&str>,
    metadata: &EventMetadata,
) -> Result<(), AppError> {
    if person_id.is_empty() {
        tracing::error!(?processor, ?purpose, "a disclosure without a person");
        return Err(AppError::Internal);
    }
    let command = DisclosureCommand::Record {
        processor,
        categories: categories.to_vec(),
        purpose,
        reference: reference.map(str::to_string),
    };
    let mut round = 0;
    loop {
        match log.execute::<DisclosureLog>(person_id, command.clone(), metadata).await {
            Ok(_) => return Ok(()),
            Err(CommandError::Log(LogError::Conflict { .. })) if round < CONFLICT_ROUNDS => round += 1,
            Err(CommandError::Log(error)) => return Err(error.into()),
            Err(CommandError::Rejected(rule)) => {
                // The categories and references are fixed by the calling code: a bug.
                tracing::error!(%rule, ?processor, ?purpose, "a disclosure was refused");
                return Err(AppError::Internal);
            }
        }
    }
}

/// Every disclosure of `person_id`, oldest first, for the access export: `event_id`,
/// `recorded_at`, `processor`, `categories`, `purpose`, `reference`.
pub async fn list(log: &EventLog, person_id: &str) -> Result<Vec<serde_json::Value>, AppError> {
    let stored = log.load(DisclosureLog::TYPE, person_id).await?;
    stored
        .iter()
        .map(|event| {
            let DisclosureEvent::DisclosureRecorded {
                processor,
                categories,
                purpose,
                reference,
            } = event.decode::<DisclosureEvent>().map_err(|_| AppError::Internal)?;
            Ok(json!({
                "event_id": event.event_id,
                "recorded_at": event.recorded_at,
                "processor": processor,
                "categories": categories,
                "purpose": purpose,
                "reference": reference,
            }))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::connection_owner;

    #[test]
    fn the_owner_of_a_connection_is_everything_before_the_platform() {
        assert_eq!(connection_owner("owner-1.meta"), "owner-1");
        assert_eq!(connection_owner("first.last@idp.google_ads"), "first.last@idp");
        assert_eq!(connection_owner("nodot"), "nodot");
    }
}
