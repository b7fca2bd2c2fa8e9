//! The disclosure log (P17): every outbound request that carries a person's data is recorded as an event naming the processor, the data categories, the purpose and the person.
//!
//! One stream per person, id = the person id (the subject of the data, never an email), so the
//! person's access export reads it as one stream. An event holds no personal data itself: the
//! processor, the categories and the purpose are closed enums, and `reference` is an id that is
//! already recorded elsewhere in the log (a connection id, an invitation id, a Stripe meter
//! event identifier) and lets the disclosure be tied to the record it concerns.
//!
//! Adding a processor, category or purpose is a new enum variant: old events still decode, so
//! the stored shape stays version 1.

use crate::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

/// Who received the data. Only processors the service actually calls with personal data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Processor {
    /// Stripe: metered billing, erasure of the customer.
    Stripe,
    /// Resend: transactional email.
    Resend,
    /// Meta (Marketing and Graph APIs).
    Meta,
    /// Google's OAuth server: refresh and revocation of tokens.
    Google,
    /// The Google Ads API.
    GoogleAds,
    /// The YouTube Data API.
    Youtube,
    /// PostHog: product analytics (P4); erasure of the person's analytics.
    Posthog,
}

/// What kind of personal data was sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataCategory {
    /// A person's OAuth access or refresh token for a platform.
    PlatformToken,
    /// Ad account ids (Meta ad accounts, Google Ads customer ids).
    AdAccountIds,
    /// Ids of a person's pages, channels or Instagram accounts.
    PlatformProfileIds,
    /// An email address.
    EmailAddress,
    /// An artist's display name (e.g. in an invitation email).
    ArtistName,
    /// Billing identifiers (the Stripe customer id).
    BillingIdentifiers,
    /// Spend or usage figures.
    SpendFigures,
    /// Analytics identifiers (click ids, cookie ids).
    AnalyticsIdentifiers,
}

/// Why the data was sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// Reading campaign spend and metrics (P1).
    SpendSync,
    /// Listing a person's posts, media or videos for campaign creation (P5).
    AssetListing,
    /// Exchanging a refresh token for an access token.
    TokenRefresh,
    /// Sending a team invitation (P7).
    InvitationEmail,
    /// Reporting a closed period's usage to the billing processor (P3).
    MeteredBilling,
    /// Asking a processor to erase what it holds of the person (P22).
    ErasureAtProcessor,
    /// Revoking a token at the platform (P25).
    TokenRevocation,
}

/// The longest `reference` accepted, in characters.
pub const MAX_REFERENCE_CHARS: usize = 200;

/// Commands of a disclosure log.
#[derive(Clone, Debug, PartialEq)]
pub enum DisclosureCommand {
    /// Records that `categories` of the person's data are being sent to `processor` for `purpose`.
    Record {
        processor: Processor,
        categories: Vec<DataCategory>,
        purpose: Purpose,
        /// A non-personal id of what the disclosure concerns, when there is one.
        reference: Option<String>,
    },
}

/// Events of a disclosure log (stored shape version 1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum DisclosureEvent {
    DisclosureRecorded {
        processor: Processor,
        categories: Vec<DataCategory>,
        purpose: Purpose,
        reference: Option<String>,
    },
}

impl DomainEvent for DisclosureEvent {
    const VERSIONS: &'static [(&'static str, u32)] = &[("DisclosureRecorded", 1)];

    fn event_type(&self) -> String {
        match self {
            DisclosureEvent::DisclosureRecorded { .. } => "DisclosureRecorded",
        }
        .to_string()
    }
}

/// Why a disclosure was not recorded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DisclosureError {
    #[error("a disclosure names at least one data category")]
    NoCategory,
    #[error("a data category is named twice")]
    DuplicateCategory,
    #[error("a reference is 1 to 200 characters without control characters")]
    InvalidReference,
}

/// The disclosures of one person. Recording never depends on earlier disclosures; the state
/// only counts them.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct DisclosureLog {
    recorded: u64,
}

impl DisclosureLog {
    /// How many disclosures were recorded.
    pub fn recorded(&self) -> u64 {
        self.recorded
    }
}

impl Aggregate for DisclosureLog {
    const TYPE: &'static str = "disclosure_log";
    type Command = DisclosureCommand;
    type Event = DisclosureEvent;
    type Error = DisclosureError;

    fn handle(&self, command: DisclosureCommand) -> Result<Vec<DisclosureEvent>, DisclosureError> {
        match command {
            DisclosureCommand::Record {
                processor,
                categories,
                purpose,
                reference,
            } => {
                if categories.is_empty() {
                    return Err(DisclosureError::NoCategory);
                }
                if categories.iter().enumerate().any(|(i, c)| categories[..i].contains(c)) {
                    return Err(DisclosureError::DuplicateCategory);
                }
                if let Some(reference) = &reference {
                    let n = reference.chars().count();
                    if n == 0 || n > MAX_REFERENCE_CHARS || reference.chars().any(char::is_control) {
                        return Err(DisclosureError::InvalidReference);
                    }
                }
                Ok(vec![DisclosureEvent::DisclosureRecorded {
                    processor,
                    categories,
                    purpose,
                    reference,
                }])
            }
        }
    }

    fn apply(&mut self, event: DisclosureEvent) {
        match event {
            DisclosureEvent::DisclosureRecorded { .. } => self.recorded += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::given;

    fn record(categories: Vec<DataCategory>, reference: Option<&str>) -> DisclosureCommand {
        DisclosureCommand::Record {
            processor: Processor::Meta,
            categories,
            purpose: Purpose::SpendSync,
            reference: reference.map(str::to_string),
        }
    }

    fn recorded(reference: Option<&str>) -> DisclosureEvent {
        DisclosureEvent::DisclosureRecorded {
            processor: Processor::Meta,
            categories: vec![DataCategory::PlatformToken, DataCategory::AdAccountIds],
            purpose: Purpose::SpendSync,
            reference: reference.map(str::to_string),
        }
    }

    #[test]
    fn a_disclosure_is_recorded_every_time_it_happens() {
        let command = record(
            vec![DataCategory::PlatformToken, DataCategory::AdAccountIds],
            Some("p1.meta"),
        );
        given::<DisclosureLog>(vec![])
            .when(command.clone())
            .then_expect_events(vec![recorded(Some("p1.meta"))]);
        // The same disclosure again is a second disclosure, not a repeat to ignore.
        given::<DisclosureLog>(vec![recorded(Some("p1.meta"))])
            .when(command)
            .then_expect_events(vec![recorded(Some("p1.meta"))]);
        given::<DisclosureLog>(vec![])
            .when(record(
                vec![DataCategory::PlatformToken, DataCategory::AdAccountIds],
                None,
            ))
            .then_expect_events(vec![recorded(None)]);
    }

    #[test]
    fn a_disclosure_names_at_least_one_category() {
        given::<DisclosureLog>(vec![])
            .when(record(vec![], Some("p1.meta")))
            .then_expect_error_message("a disclosure names at least one data category");
    }

    #[test]
    fn a_category_is_named_once() {
        given::<DisclosureLog>(vec![])
            .when(record(
                vec![
                    DataCategory::PlatformToken,
                    DataCategory::AdAccountIds,
                    DataCategory::PlatformToken,
                ],
                None,
            ))
            .then_expect_error_message("a data category is named twice");
    }

    #[test]
    fn the_reference_is_bounded() {
        let refused = "a reference is 1 to 200 characters without control characters";
        let longest = "r".repeat(MAX_REFERENCE_CHARS);
        given::<DisclosureLog>(vec![])
            .when(record(vec![DataCategory::PlatformToken], Some(&longest)))
            .inspect_result()
            .expect("200 characters are accepted");
        for bad in ["", "line\nbreak", &"r".repeat(MAX_REFERENCE_CHARS + 1)] {
            given::<DisclosureLog>(vec![])
                .when(record(vec![DataCategory::PlatformToken], Some(bad)))
                .then_expect_error_message(refused);
        }
    }

    #[test]
    fn the_stored_shape_is_snake_case_and_holds_no_person() {
        let event = DisclosureEvent::DisclosureRecorded {
            processor: Processor::GoogleAds,
            categories: vec![DataCategory::PlatformToken, DataCategory::AdAccountIds],
            purpose: Purpose::SpendSync,
            reference: Some("conn-1".into()),
        };
        assert_eq!(
            serde_json::to_value(&event).unwrap(),
            serde_json::json!({"DisclosureRecorded": {
                "processor": "google_ads", "categories": ["platform_token", "ad_account_ids"],
                "purpose": "spend_sync", "reference": "conn-1"
            }})
        );
        assert_eq!(event.event_type(), "DisclosureRecorded");
        assert_eq!(event.event_version(), "1");
        let mut log = DisclosureLog::default();
        log.apply(event);
        assert_eq!(log.recorded(), 1);
    }
}
