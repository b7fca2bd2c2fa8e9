//! Privacy-policy versions (P28): a `PolicyDocument` aggregate publishes versions of one
//! document (e.g. `privacy-policy`), each with a label, effective date, locale, the SHA-256 of
//! its text and a summary of what changed. Consents (a later slice) name the version in force.

use crate::{Aggregate, DomainEvent};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The longest label accepted, in characters.
pub const MAX_LABEL_CHARS: usize = 64;
/// The longest summary of changes accepted, in characters.
pub const MAX_SUMMARY_CHARS: usize = 4000;

/// One published version's data, as stored in its event and read model.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyVersion {
    /// 1 for the first version of the document, then 2, 3, … in publication order.
    pub version_number: u32,
    /// A human label such as `2026-11` or `v3`; unique within the document.
    pub label: String,
    /// The day from which this version is in force.
    pub effective_date: NaiveDate,
    /// The language of the text, a BCP 47 tag such as `en` or `ur-PK`.
    pub locale: String,
    /// Lower-case hex SHA-256 of the exact text shown to people.
    pub text_sha256: String,
    /// What changed since the previous version, shown in the change notification.
    pub summary_of_changes: String,
}

/// Commands a policy document accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PolicyCommand {
    /// Publish a new version of the document.
    PublishVersion {
        label: String,
        effective_date: NaiveDate,
        locale: String,
        text_sha256: String,
        summary_of_changes: String,
    },
}

/// Events of a policy document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PolicyEvent {
    /// A version was published. Stored shape version 1.
    PolicyVersionPublished(PolicyVersion),
}

impl DomainEvent for PolicyEvent {
    const VERSIONS: &'static [(&'static str, u32)] = &[("PolicyVersionPublished", 1)];

    fn event_type(&self) -> String {
        match self {
            PolicyEvent::PolicyVersionPublished(_) => "PolicyVersionPublished".to_string(),
        }
    }
}

/// Why a policy command was refused. Messages are shown to the caller as they are.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    #[error("the label must be 1 to {MAX_LABEL_CHARS} printable characters")]
    InvalidLabel,
    #[error("the locale must be a BCP 47 language tag such as `en` or `ur-PK`")]
    InvalidLocale,
    #[error("text_sha256 must be 64 lower-case hexadecimal characters")]
    InvalidTextHash,
    #[error("the summary of changes must be 1 to {MAX_SUMMARY_CHARS} characters")]
    InvalidSummary,
    #[error("version `{0}` has already been published")]
    LabelAlreadyPublished(String),
    #[error("this text has already been published as version `{0}` for this locale")]
    TextAlreadyPublished(String),
    #[error("the effective date {requested} is not after {latest}, the effective date of version `{label}` for this locale: versions are published in order")]
    OutOfOrder {
        requested: NaiveDate,
        latest: NaiveDate,
        label: String,
    },
}

/// The state of one policy document: its published versions.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PolicyDocument {
    versions: Vec<PolicyVersion>,
    /// Latest version per locale, by index into `versions`.
    latest_by_locale: BTreeMap<String, usize>,
}

impl PolicyDocument {
    /// The versions published so far, in publication order.
    pub fn versions(&self) -> &[PolicyVersion] {
        &self.versions
    }
}

fn is_valid_locale(locale: &str) -> bool {
    // BCP 47 subset: a 2–3 letter language, then optional subtags of 2–8 alphanumerics.
    let mut parts = locale.split('-');
    let Some(language) = parts.next() else {
        return false;
    };
    let language_ok = (2..=3).contains(&language.len()) && language.chars().all(|c| c.is_ascii_alphabetic());
    language_ok
        && locale.len() <= 35
        && parts.all(|p| (2..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric()))
}

fn is_valid_sha256_hex(hash: &str) -> bool {
    hash.len() == 64 && hash.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
}

impl Aggregate for PolicyDocument {
    const TYPE: &'static str = "policy_document";
    type Command = PolicyCommand;
    type Event = PolicyEvent;
    type Error = PolicyError;

    fn handle(&self, command: PolicyCommand) -> Result<Vec<PolicyEvent>, PolicyError> {
        match command {
            PolicyCommand::PublishVersion {
                label,
                effective_date,
                locale,
                text_sha256,
                summary_of_changes,
            } => {
                let label = label.trim().to_string();
                let label_chars = label.chars().count();
                if label_chars == 0 || label_chars > MAX_LABEL_CHARS || label.chars().any(char::is_control) {
                    return Err(PolicyError::InvalidLabel);
                }
                if !is_valid_locale(&locale) {
                    return Err(PolicyError::InvalidLocale);
                }
                if !is_valid_sha256_hex(&text_sha256) {
                    return Err(PolicyError::InvalidTextHash);
                }
                let summary_chars = summary_of_changes.trim().chars().count();
                if summary_chars == 0 || summary_chars > MAX_SUMMARY_CHARS {
                    return Err(PolicyError::InvalidSummary);
                }
                if self.versions.iter().any(|v| v.label == label) {
                    return Err(PolicyError::LabelAlreadyPublished(label));
                }
                if let Some(same_text) = self
                    .versions
                    .iter()
                    .find(|v| v.locale == locale && v.text_sha256 == text_sha256)
                {
                    return Err(PolicyError::TextAlreadyPublished(same_text.label.clone()));
                }
                if let Some(&latest) = self.latest_by_locale.get(&locale) {
                    let latest = &self.versions[latest];
                    if effective_date <= latest.effective_date {
                        return Err(PolicyError::OutOfOrder {
                            requested: effective_date,
                            latest: latest.effective_date,
                            label: latest.label.clone(),
                        });
                    }
                }
                let version_number = u32::try_from(self.versions.len() + 1).unwrap_or(u32::MAX);
                Ok(vec![PolicyEvent::PolicyVersionPublished(PolicyVersion {
                    version_number,
                    label,
                    effective_date,
                    locale,
                    text_sha256,
                    summary_of_changes: summary_of_changes.trim().to_string(),
                })])
            }
        }
    }

    fn apply(&mut self, event: PolicyEvent) {
        match event {
            PolicyEvent::PolicyVersionPublished(version) => {
                self.latest_by_locale
                    .insert(version.locale.clone(), self.versions.len());
                self.versions.push(version);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::given;

    fn day(s: &str) -> NaiveDate {
        s.parse().expect("a test date")
    }

    fn hash(c: char) -> String {
        std::iter::repeat_n(c, 64).collect()
    }

    fn publish(label: &str, date: &str, locale: &str, text: char) -> PolicyCommand {
        PolicyCommand::PublishVersion {
            label: label.into(),
            effective_date: day(date),
            locale: locale.into(),
            text_sha256: hash(text),
            summary_of_changes: "First version.".into(),
        }
    }

    fn published(number: u32, label: &str, date: &str, locale: &str, text: char) -> PolicyEvent {
        PolicyEvent::PolicyVersionPublished(PolicyVersion {
            version_number: number,
            label: label.into(),
            effective_date: day(date),
            locale: locale.into(),
            text_sha256: hash(text),
            summary_of_changes: "First version.".into(),
        })
    }

    #[test]
    fn the_first_version_is_published_as_number_one() {
        given::<PolicyDocument>(vec![])
            .when(publish("2026-01", "2026-01-01", "ur-PK", 'a'))
            .then_expect_events(vec![published(1, "2026-01", "2026-01-01", "ur-PK", 'a')]);
    }

    #[test]
    fn a_later_version_gets_the_next_number() {
        given::<PolicyDocument>(vec![published(1, "2026-01", "2026-01-01", "en", 'a')])
            .when(publish("2026-06", "2026-06-01", "en", 'b'))
            .then_expect_events(vec![published(2, "2026-06", "2026-06-01", "en", 'b')]);
    }

    #[test]
    fn a_label_cannot_be_published_twice() {
        given::<PolicyDocument>(vec![published(1, "2026-01", "2026-01-01", "en", 'a')])
            .when(publish("2026-01", "2026-06-01", "en", 'b'))
            .then_expect_error_message("version `2026-01` has already been published");
    }

    #[test]
    fn the_same_text_cannot_be_published_twice_for_a_locale() {
        given::<PolicyDocument>(vec![published(1, "2026-01", "2026-01-01", "en", 'a')])
            .when(publish("2026-06", "2026-06-01", "en", 'a'))
            .then_expect_error_message("this text has already been published as version `2026-01` for this locale");
    }

    #[test]
    fn a_version_cannot_take_effect_before_or_with_the_latest_of_its_locale() {
        given::<PolicyDocument>(vec![published(1, "2026-06", "2026-06-01", "en", 'a')])
            .when(publish("2026-05", "2026-05-01", "en", 'b'))
            .then_expect_error_message(
                "the effective date 2026-05-01 is not after 2026-06-01, the effective date of version `2026-06` for this locale: versions are published in order",
            );
        given::<PolicyDocument>(vec![published(1, "2026-06", "2026-06-01", "en", 'a')])
            .when(publish("2026-06b", "2026-06-01", "en", 'b'))
            .then_expect_error_message(
                "the effective date 2026-06-01 is not after 2026-06-01, the effective date of version `2026-06` for this locale: versions are published in order",
            );
    }

    #[test]
    fn another_locale_has_its_own_order() {
        given::<PolicyDocument>(vec![published(1, "2026-06-en", "2026-06-01", "en", 'a')])
            .when(publish("2026-06-ur", "2026-06-01", "ur", 'b'))
            .then_expect_events(vec![published(2, "2026-06-ur", "2026-06-01", "ur", 'b')]);
    }

    #[test]
    fn malformed_fields_are_refused_with_the_field_named() {
        let refused = |label: &str, locale: &str, text_sha256: String, summary: &str| {
            let command = PolicyCommand::PublishVersion {
                label: label.into(),
                effective_date: day("2026-01-01"),
                locale: locale.into(),
                text_sha256,
                summary_of_changes: summary.into(),
            };
            given::<PolicyDocument>(vec![])
                .when(command)
                .inspect_result()
                .unwrap_err()
        };
        let ok = "A summary.";
        assert_eq!(refused("  ", "en", hash('a'), ok), PolicyError::InvalidLabel);
        assert_eq!(refused(&"x".repeat(65), "en", hash('a'), ok), PolicyError::InvalidLabel);
        assert_eq!(refused("v1", "english", hash('a'), ok), PolicyError::InvalidLocale);
        assert_eq!(refused("v1", "en_US", hash('a'), ok), PolicyError::InvalidLocale);
        assert_eq!(refused("v1", "en", "ABC".into(), ok), PolicyError::InvalidTextHash);
        assert_eq!(refused("v1", "en", hash('A'), ok), PolicyError::InvalidTextHash);
        assert_eq!(refused("v1", "en", hash('a'), " "), PolicyError::InvalidSummary);
    }

    #[test]
    fn the_stored_shape_of_version_one_still_loads() {
        let stored = r#"{"PolicyVersionPublished":{"version_number":1,"label":"2026-01","effective_date":"2026-01-01","locale":"ur-PK","text_sha256":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","summary_of_changes":"First version."}}"#;
        let event: PolicyEvent = serde_json::from_str(stored).expect("version 1 JSON loads");
        assert_eq!(event, published(1, "2026-01", "2026-01-01", "ur-PK", 'a'));
    }
}
