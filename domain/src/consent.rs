//! Consents (P6, P14, P15, P20, P28, P31): one stream per person. Each grant or withdrawal
//! records the notice shown (policy version and its text hash), the method, the jurisdiction,
//! evidence (user agent; IP address truncated, never whole) and, through its event, the time.
//! Policy acceptances are recorded as explicit or as continued use after notification.
//! Facebook click ids are accepted only while `ad_attribution` is granted.
//!
//! [`ConsentHistory`] folds a stream with each event's id and time: the one consent check and
//! the auditor's replay "as of an instant" both use it.

use crate::sealed::Sealed;
use crate::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// What a person can consent to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Purpose {
    /// Performance/analytics cookies: Google Analytics, PostHog (P4, P20).
    #[serde(rename = "cookies.analytics")]
    CookiesAnalytics,
    /// Targeting/marketing cookies: Meta Pixel (P20).
    #[serde(rename = "cookies.marketing")]
    CookiesMarketing,
    /// Promotional email (P15).
    #[serde(rename = "email.marketing")]
    EmailMarketing,
    /// AI-generated creatives (P14).
    #[serde(rename = "ai_features")]
    AiFeatures,
    /// Facebook click ids fbc/fbp linked to the account (P6).
    #[serde(rename = "ad_attribution")]
    AdAttribution,
}

impl Purpose {
    pub const ALL: [Purpose; 5] = [
        Purpose::CookiesAnalytics,
        Purpose::CookiesMarketing,
        Purpose::EmailMarketing,
        Purpose::AiFeatures,
        Purpose::AdAttribution,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Purpose::CookiesAnalytics => "cookies.analytics",
            Purpose::CookiesMarketing => "cookies.marketing",
            Purpose::EmailMarketing => "email.marketing",
            Purpose::AiFeatures => "ai_features",
            Purpose::AdAttribution => "ad_attribution",
        }
    }
}

impl fmt::Display for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Purpose {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Purpose::ALL.into_iter().find(|p| p.as_str() == s).ok_or_else(|| {
            format!(
                "unknown purpose; use one of {}",
                Purpose::ALL.map(|p| p.as_str()).join(", ")
            )
        })
    }
}

/// The notice shown when consent was given or withdrawn: a published policy version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    pub document_id: String,
    pub version_label: String,
    pub text_sha256: String,
}

/// How the change was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    Banner,
    SettingsPage,
    Api,
    /// Support acting on the person's behalf (P29).
    SupportOnBehalf,
}

/// Evidence of a change: the user agent, and the IP address truncated (IPv4 to /24, IPv6 to
/// /48), never whole.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Evidence {
    pub user_agent: Option<String>,
    pub ip_truncated: Option<String>,
}

impl Evidence {
    /// Builds evidence from what the request showed; the IP is truncated here, so the whole
    /// address never reaches an event. A user agent is cut to 512 characters.
    pub fn from_request(user_agent: Option<&str>, ip: Option<IpAddr>) -> Evidence {
        Evidence {
            user_agent: user_agent.map(|ua| ua.chars().take(512).collect()),
            ip_truncated: ip.map(truncate_ip),
        }
    }
}

/// IPv4 to its /24 network, IPv6 to its /48, in CIDR notation.
pub fn truncate_ip(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return truncate_ip(IpAddr::V4(v4));
            }
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2])
        }
    }
}

/// How a new policy version was accepted (P28).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "mode")]
pub enum Acceptance {
    /// The person clicked "I accept".
    Explicit,
    /// The person was notified and went on using the service.
    ContinuedUseAfterNotification { notified_at: chrono::DateTime<chrono::Utc> },
}

/// What a change says and how it was made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub purpose: Purpose,
    pub notice: Notice,
    pub method: Method,
    /// ISO 3166-1 alpha-2 of the person's jurisdiction.
    pub jurisdiction: String,
    pub evidence: Evidence,
}

/// Commands of a person's consent stream.
#[derive(Clone, Debug, PartialEq)]
pub enum ConsentCommand {
    Grant(Change),
    Withdraw(Change),
    AcceptPolicy {
        notice: Notice,
        acceptance: Acceptance,
        method: Method,
        evidence: Evidence,
    },
    /// Facebook click ids, sealed under the person's `ad_attribution` key.
    RecordAttributionIds {
        fbc: Option<Sealed>,
        fbp: Option<Sealed>,
    },
}

/// Events of a person's consent stream (all stored shape version 1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ConsentEvent {
    ConsentGranted(Change),
    ConsentWithdrawn(Change),
    PolicyAccepted {
        notice: Notice,
        acceptance: Acceptance,
        method: Method,
        evidence: Evidence,
    },
    AttributionIdsRecorded {
        fbc: Option<Sealed>,
        fbp: Option<Sealed>,
    },
}

impl DomainEvent for ConsentEvent {
    const VERSIONS: &'static [(&'static str, u32)] = &[
        ("ConsentGranted", 1),
        ("ConsentWithdrawn", 1),
        ("PolicyAccepted", 1),
        ("AttributionIdsRecorded", 1),
    ];

    fn event_type(&self) -> String {
        match self {
            ConsentEvent::ConsentGranted(_) => "ConsentGranted",
            ConsentEvent::ConsentWithdrawn(_) => "ConsentWithdrawn",
            ConsentEvent::PolicyAccepted { .. } => "PolicyAccepted",
            ConsentEvent::AttributionIdsRecorded { .. } => "AttributionIdsRecorded",
        }
        .to_string()
    }
}

/// Why a consent command was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConsentError {
    #[error("jurisdiction must be an ISO 3166-1 alpha-2 code such as `PK` or `DE`")]
    InvalidJurisdiction,
    #[error("the notice must name a document, a version label and a 64-character lower-case SHA-256")]
    InvalidNotice,
    #[error("Facebook click ids are stored only while `ad_attribution` is granted")]
    AttributionNotGranted,
    #[error("give fbc, fbp or both")]
    NoAttributionIds,
}

fn validate(change: &Change) -> Result<(), ConsentError> {
    if crate::age::minimum_age(&change.jurisdiction).is_none() {
        return Err(ConsentError::InvalidJurisdiction);
    }
    validate_notice(&change.notice)
}

fn validate_notice(notice: &Notice) -> Result<(), ConsentError> {
    let hash_ok = notice.text_sha256.len() == 64
        && notice
            .text_sha256
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if notice.document_id.is_empty() || notice.version_label.is_empty() || !hash_ok {
        return Err(ConsentError::InvalidNotice);
    }
    Ok(())
}

/// The state of a person's consents: what is granted, under which notice.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Consents {
    granted: BTreeMap<Purpose, Notice>,
}

impl Consents {
    pub fn is_granted(&self, purpose: Purpose) -> bool {
        self.granted.contains_key(&purpose)
    }
}

impl Aggregate for Consents {
    const TYPE: &'static str = "consent";
    type Command = ConsentCommand;
    type Event = ConsentEvent;
    type Error = ConsentError;

    fn handle(&self, command: ConsentCommand) -> Result<Vec<ConsentEvent>, ConsentError> {
        match command {
            ConsentCommand::Grant(change) => {
                validate(&change)?;
                // Granting again under the same notice changes nothing; under a new notice it
                // is a new consent to a new text.
                if self.granted.get(&change.purpose) == Some(&change.notice) {
                    return Ok(vec![]);
                }
                Ok(vec![ConsentEvent::ConsentGranted(change)])
            }
            ConsentCommand::Withdraw(change) => {
                validate(&change)?;
                if !self.is_granted(change.purpose) {
                    return Ok(vec![]);
                }
                Ok(vec![ConsentEvent::ConsentWithdrawn(change)])
            }
            ConsentCommand::AcceptPolicy {
                notice,
                acceptance,
                method,
                evidence,
            } => {
                validate_notice(&notice)?;
                Ok(vec![ConsentEvent::PolicyAccepted {
                    notice,
                    acceptance,
                    method,
                    evidence,
                }])
            }
            ConsentCommand::RecordAttributionIds { fbc, fbp } => {
                if !self.is_granted(Purpose::AdAttribution) {
                    return Err(ConsentError::AttributionNotGranted);
                }
                if fbc.is_none() && fbp.is_none() {
                    return Err(ConsentError::NoAttributionIds);
                }
                Ok(vec![ConsentEvent::AttributionIdsRecorded { fbc, fbp }])
            }
        }
    }

    fn apply(&mut self, event: ConsentEvent) {
        match event {
            ConsentEvent::ConsentGranted(change) => {
                self.granted.insert(change.purpose, change.notice);
            }
            ConsentEvent::ConsentWithdrawn(change) => {
                self.granted.remove(&change.purpose);
            }
            ConsentEvent::PolicyAccepted { .. } | ConsentEvent::AttributionIdsRecorded { .. } => {}
        }
    }
}

/// Where and when an event was recorded: what the fold needs beyond the payload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Recorded {
    pub event_id: String,
    pub sequence: i64,
    pub at: chrono::DateTime<chrono::Utc>,
}

/// One purpose's state, with the change that set it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PurposeState {
    pub purpose: Purpose,
    pub granted: bool,
    /// The change that set this state; `None` when the person never decided (not granted).
    pub set_by: Option<HistoryEntry>,
}

/// One change in a person's consent history.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HistoryEntry {
    pub recorded: Recorded,
    pub event: ConsentEvent,
}

/// A person's consent history folded up to some instant.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ConsentHistory {
    pub history: Vec<HistoryEntry>,
    current: BTreeMap<Purpose, HistoryEntry>,
    pub last_policy_acceptance: Option<HistoryEntry>,
}

impl ConsentHistory {
    /// Folds one event, with where and when it was recorded.
    pub fn apply(&mut self, event: ConsentEvent, recorded: Recorded) {
        let entry = HistoryEntry { recorded, event };
        match &entry.event {
            ConsentEvent::ConsentGranted(change) | ConsentEvent::ConsentWithdrawn(change) => {
                self.current.insert(change.purpose, entry.clone());
            }
            ConsentEvent::PolicyAccepted { .. } => self.last_policy_acceptance = Some(entry.clone()),
            ConsentEvent::AttributionIdsRecorded { .. } => {}
        }
        self.history.push(entry);
    }

    /// Every purpose's state.
    pub fn states(&self) -> Vec<PurposeState> {
        Purpose::ALL.into_iter().map(|p| self.state(p)).collect()
    }

    /// One purpose's state: granted only by a grant not since withdrawn.
    pub fn state(&self, purpose: Purpose) -> PurposeState {
        let set_by = self.current.get(&purpose).cloned();
        let granted = matches!(set_by.as_ref().map(|e| &e.event), Some(ConsentEvent::ConsentGranted(_)));
        PurposeState {
            purpose,
            granted,
            set_by,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::given;

    fn notice(label: &str) -> Notice {
        Notice {
            document_id: "privacy-policy".into(),
            version_label: label.into(),
            text_sha256: "a".repeat(64),
        }
    }

    fn change(purpose: Purpose, label: &str) -> Change {
        Change {
            purpose,
            notice: notice(label),
            method: Method::Banner,
            jurisdiction: "PK".into(),
            evidence: Evidence::from_request(Some("Mozilla/5.0"), Some("203.0.113.77".parse().unwrap())),
        }
    }

    #[test]
    fn a_grant_records_notice_method_jurisdiction_and_truncated_evidence() {
        let c = change(Purpose::AiFeatures, "v1");
        assert_eq!(c.evidence.ip_truncated.as_deref(), Some("203.0.113.0/24"));
        given::<Consents>(vec![])
            .when(ConsentCommand::Grant(c.clone()))
            .then_expect_events(vec![ConsentEvent::ConsentGranted(c)]);
    }

    #[test]
    fn granting_again_under_the_same_notice_records_nothing_but_a_new_notice_is_recorded() {
        let c = change(Purpose::EmailMarketing, "v1");
        given::<Consents>(vec![ConsentEvent::ConsentGranted(c.clone())])
            .when(ConsentCommand::Grant(c.clone()))
            .then_expect_events(vec![]);
        let newer = change(Purpose::EmailMarketing, "v2");
        given::<Consents>(vec![ConsentEvent::ConsentGranted(c)])
            .when(ConsentCommand::Grant(newer.clone()))
            .then_expect_events(vec![ConsentEvent::ConsentGranted(newer)]);
    }

    #[test]
    fn withdrawing_is_one_command_and_a_no_op_when_nothing_was_granted() {
        let c = change(Purpose::CookiesMarketing, "v1");
        given::<Consents>(vec![ConsentEvent::ConsentGranted(c.clone())])
            .when(ConsentCommand::Withdraw(c.clone()))
            .then_expect_events(vec![ConsentEvent::ConsentWithdrawn(c.clone())]);
        given::<Consents>(vec![])
            .when(ConsentCommand::Withdraw(c))
            .then_expect_events(vec![]);
    }

    #[test]
    fn click_ids_are_refused_without_ad_attribution_consent() {
        let ids = ConsentCommand::RecordAttributionIds {
            fbc: Some(Sealed(serde_json::json!("x"))),
            fbp: None,
        };
        given::<Consents>(vec![])
            .when(ids.clone())
            .then_expect_error_message("Facebook click ids are stored only while `ad_attribution` is granted");
        let granted = change(Purpose::AdAttribution, "v1");
        given::<Consents>(vec![
            ConsentEvent::ConsentGranted(granted.clone()),
            ConsentEvent::ConsentWithdrawn(granted.clone()),
        ])
        .when(ids.clone())
        .then_expect_error_message("Facebook click ids are stored only while `ad_attribution` is granted");
        given::<Consents>(vec![ConsentEvent::ConsentGranted(granted)])
            .when(ids)
            .then_expect_events(vec![ConsentEvent::AttributionIdsRecorded {
                fbc: Some(Sealed(serde_json::json!("x"))),
                fbp: None,
            }]);
    }

    #[test]
    fn a_bad_jurisdiction_or_notice_is_refused() {
        let mut c = change(Purpose::AiFeatures, "v1");
        c.jurisdiction = "Pakistan".into();
        given::<Consents>(vec![])
            .when(ConsentCommand::Grant(c))
            .then_expect_error_message("jurisdiction must be an ISO 3166-1 alpha-2 code such as `PK` or `DE`");
        let mut c = change(Purpose::AiFeatures, "v1");
        c.notice.text_sha256 = "nothex".into();
        given::<Consents>(vec![])
            .when(ConsentCommand::Grant(c))
            .then_expect_error_message(
                "the notice must name a document, a version label and a 64-character lower-case SHA-256",
            );
    }

    #[test]
    fn policy_acceptance_records_whether_it_was_explicit_or_continued_use() {
        let accepted = ConsentEvent::PolicyAccepted {
            notice: notice("v2"),
            acceptance: Acceptance::ContinuedUseAfterNotification {
                notified_at: "2026-11-01T00:00:00Z".parse().unwrap(),
            },
            method: Method::Api,
            evidence: Evidence::default(),
        };
        given::<Consents>(vec![])
            .when(ConsentCommand::AcceptPolicy {
                notice: notice("v2"),
                acceptance: Acceptance::ContinuedUseAfterNotification {
                    notified_at: "2026-11-01T00:00:00Z".parse().unwrap(),
                },
                method: Method::Api,
                evidence: Evidence::default(),
            })
            .then_expect_events(vec![accepted]);
    }

    #[test]
    fn ipv6_addresses_keep_only_their_48_bit_prefix() {
        assert_eq!(
            truncate_ip("2001:db8:85a3:8d3:1319:8a2e:370:7348".parse().unwrap()),
            "2001:db8:85a3::/48"
        );
        assert_eq!(truncate_ip("::ffff:198.51.100.9".parse().unwrap()), "198.51.100.0/24");
    }

    #[test]
    fn the_history_fold_answers_each_purpose_with_the_change_that_set_it() {
        let at = |s: &str| Recorded {
            event_id: s.into(),
            sequence: 0,
            at: format!("2026-01-0{s}T00:00:00Z").parse().unwrap(),
        };
        let mut h = ConsentHistory::default();
        h.apply(ConsentEvent::ConsentGranted(change(Purpose::AiFeatures, "v1")), at("1"));
        h.apply(
            ConsentEvent::ConsentWithdrawn(change(Purpose::AiFeatures, "v1")),
            at("2"),
        );
        h.apply(
            ConsentEvent::ConsentGranted(change(Purpose::EmailMarketing, "v1")),
            at("3"),
        );
        assert!(!h.state(Purpose::AiFeatures).granted);
        assert_eq!(h.state(Purpose::AiFeatures).set_by.unwrap().recorded.event_id, "2");
        assert!(h.state(Purpose::EmailMarketing).granted);
        assert_eq!(h.state(Purpose::CookiesAnalytics).set_by, None);
        assert_eq!(h.history.len(), 3);
    }
}
