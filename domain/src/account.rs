//! Accounts (P2, P24, P27): sign-up from the auth provider with name, email and avatar URL
//! sealed under the person's key; the age gate by country; rectifying profile fields; marking
//! an account as a child's (whose keys the service then destroys at once); closing an account
//! (the retention job erases it once `DYNAMOI_RETENTION_CLOSED_ACCOUNT_DAYS` have passed).

use crate::age;
use crate::sealed::Sealed;
use crate::versions::{self, UpcastError};
use crate::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Where the person signed up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthProvider {
    Google,
    Meta,
    Email,
}

/// Why an account was marked as a child's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChildReport {
    /// Support learned it (a report, the person's own statement).
    ReportedToSupport,
    /// A parent or guardian told us.
    ParentOrGuardian,
}

/// Commands an account accepts.
#[derive(Clone, Debug, PartialEq)]
pub enum AccountCommand {
    SignUp {
        provider: AuthProvider,
        provider_subject: Sealed,
        name: Sealed,
        email: Sealed,
        avatar_url: Option<Sealed>,
        /// ISO 3166-1 alpha-2.
        country: String,
        /// Whole years, computed by the caller from a birth date it then forgets.
        age_years: i32,
    },
    Rectify {
        name: Option<Sealed>,
        email: Option<Sealed>,
        avatar_url: Option<Sealed>,
    },
    MarkAsChild {
        report: ChildReport,
    },
    /// The person closes their account. Closing a closed account changes nothing.
    Close,
}

/// Events of an account.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum AccountEvent {
    /// Stored shape version 2. Holds no birth date: only the minimum age of the country that
    /// the age gate checked, and that the person met it. Version 1 stored the minimum age
    /// itself as `minimum_age_met` (a number that read as a yes/no); see `signed_up_v1_to_v2`.
    SignedUp {
        provider: AuthProvider,
        provider_subject: Sealed,
        name: Sealed,
        email: Sealed,
        avatar_url: Option<Sealed>,
        country: String,
        /// The minimum age of `country` the age gate checked (e.g. 13, or 16 in Germany).
        minimum_age: u8,
        /// Whether the person met it. Always true: an under-age sign-up is refused and records
        /// nothing. Stored so that the event says what was checked and how the check ended.
        minimum_age_met: bool,
    },
    ProfileRectified {
        name: Option<Sealed>,
        email: Option<Sealed>,
        avatar_url: Option<Sealed>,
    },
    AccountMarkedAsChild {
        report: ChildReport,
    },
    /// When is the event's `recorded_at`: the retention period counts from it.
    AccountClosed {},
}

impl DomainEvent for AccountEvent {
    const VERSIONS: &'static [(&'static str, u32)] = &[
        // 2: `minimum_age` (the number) and `minimum_age_met` (a boolean).
        ("SignedUp", 2),
        ("ProfileRectified", 1),
        ("AccountMarkedAsChild", 1),
        ("AccountClosed", 1),
    ];

    fn event_type(&self) -> String {
        match self {
            AccountEvent::SignedUp { .. } => "SignedUp",
            AccountEvent::ProfileRectified { .. } => "ProfileRectified",
            AccountEvent::AccountMarkedAsChild { .. } => "AccountMarkedAsChild",
            AccountEvent::AccountClosed { .. } => "AccountClosed",
        }
        .to_string()
    }

    fn upcast_step(event_type: &str, from: u32, payload: Value) -> Result<Value, UpcastError> {
        match (event_type, from) {
            ("SignedUp", 1) => signed_up_v1_to_v2(payload),
            _ => Err(versions::missing_upcaster(event_type, from)),
        }
    }
}

/// `SignedUp` version 1 → 2. Version 1 stored the country's minimum age as `minimum_age_met`
/// (`13`); version 2 stores it as `minimum_age` and `minimum_age_met: true`. True is what a
/// version 1 event means: sign-up refused anyone under the minimum age then too, so every
/// stored `SignedUp` is of a person who met it.
fn signed_up_v1_to_v2(mut payload: Value) -> Result<Value, UpcastError> {
    let shape = |expected| UpcastError::UnexpectedShape {
        event_type: "SignedUp".into(),
        from: 1,
        expected,
    };
    let fields =
        versions::variant_fields(&mut payload, "SignedUp").ok_or_else(|| shape("an object under `SignedUp`"))?;
    let minimum_age = fields
        .remove("minimum_age_met")
        .and_then(|v| v.as_u64())
        .filter(|age| *age <= u64::from(u8::MAX))
        .ok_or_else(|| shape("`minimum_age_met`, the country's minimum age as a whole number from 0 to 255"))?;
    fields.insert("minimum_age".into(), Value::from(minimum_age));
    fields.insert("minimum_age_met".into(), Value::Bool(true));
    Ok(payload)
}

/// Why an account command was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AccountError {
    /// Deliberately neutral: it must not tell a child what age to claim.
    #[error("sign-up is not available")]
    AgeGate,
    #[error("country must be an ISO 3166-1 alpha-2 code such as `PK` or `DE`")]
    InvalidCountry,
    #[error("this account already exists")]
    AlreadySignedUp,
    #[error("there is no such account")]
    NoAccount,
    #[error("this account was closed as a child's account")]
    ChildAccount,
    #[error("this account is closed; its data is erased after the retention period")]
    Closed,
    #[error("give at least one of name, email or avatar_url")]
    NothingToRectify,
}

/// The state of an account.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Account {
    signed_up: bool,
    child: bool,
    closed: bool,
}

impl Account {
    fn usable(&self) -> Result<(), AccountError> {
        if !self.signed_up {
            return Err(AccountError::NoAccount);
        }
        if self.child {
            return Err(AccountError::ChildAccount);
        }
        if self.closed {
            return Err(AccountError::Closed);
        }
        Ok(())
    }

    /// Whether the person may have their data processed under this account: signed up (past
    /// the age gate), neither closed nor a child's; otherwise the reason.
    pub fn check_usable(&self) -> Result<(), AccountError> {
        self.usable()
    }

    /// Whether the account was closed.
    pub fn is_closed(&self) -> bool {
        self.closed
    }
}

impl Aggregate for Account {
    const TYPE: &'static str = "account";
    type Command = AccountCommand;
    type Event = AccountEvent;
    type Error = AccountError;

    fn handle(&self, command: AccountCommand) -> Result<Vec<AccountEvent>, AccountError> {
        match command {
            AccountCommand::SignUp {
                provider,
                provider_subject,
                name,
                email,
                avatar_url,
                country,
                age_years,
            } => {
                let minimum = age::minimum_age(&country).ok_or(AccountError::InvalidCountry)?;
                if age_years < i32::from(minimum) {
                    return Err(AccountError::AgeGate);
                }
                if self.signed_up {
                    return Err(AccountError::AlreadySignedUp);
                }
                Ok(vec![AccountEvent::SignedUp {
                    provider,
                    provider_subject,
                    name,
                    email,
                    avatar_url,
                    country: country.to_ascii_uppercase(),
                    minimum_age: minimum,
                    minimum_age_met: true,
                }])
            }
            AccountCommand::Rectify {
                name,
                email,
                avatar_url,
            } => {
                self.usable()?;
                if name.is_none() && email.is_none() && avatar_url.is_none() {
                    return Err(AccountError::NothingToRectify);
                }
                Ok(vec![AccountEvent::ProfileRectified {
                    name,
                    email,
                    avatar_url,
                }])
            }
            AccountCommand::MarkAsChild { report } => {
                if !self.signed_up {
                    return Err(AccountError::NoAccount);
                }
                if self.child {
                    return Ok(vec![]);
                }
                Ok(vec![AccountEvent::AccountMarkedAsChild { report }])
            }
            AccountCommand::Close => {
                if self.closed {
                    return Ok(vec![]);
                }
                self.usable()?;
                Ok(vec![AccountEvent::AccountClosed {}])
            }
        }
    }

    fn apply(&mut self, event: AccountEvent) {
        match event {
            AccountEvent::SignedUp { .. } => self.signed_up = true,
            AccountEvent::ProfileRectified { .. } => {}
            AccountEvent::AccountMarkedAsChild { .. } => self.child = true,
            AccountEvent::AccountClosed {} => self.closed = true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::given;
    use serde_json::json;

    fn sealed(tag: &str) -> Sealed {
        Sealed(serde_json::json!({ "ct": tag }))
    }

    fn sign_up(country: &str, age_years: i32) -> AccountCommand {
        AccountCommand::SignUp {
            provider: AuthProvider::Google,
            provider_subject: sealed("sub"),
            name: sealed("name"),
            email: sealed("email"),
            avatar_url: None,
            country: country.into(),
            age_years,
        }
    }

    fn signed_up(country: &str, minimum: u8) -> AccountEvent {
        AccountEvent::SignedUp {
            provider: AuthProvider::Google,
            provider_subject: sealed("sub"),
            name: sealed("name"),
            email: sealed("email"),
            avatar_url: None,
            country: country.into(),
            minimum_age: minimum,
            minimum_age_met: true,
        }
    }

    #[test]
    fn a_person_old_enough_for_their_country_signs_up_and_only_the_met_minimum_is_recorded() {
        given::<Account>(vec![])
            .when(sign_up("de", 16))
            .then_expect_events(vec![signed_up("DE", 16)]);
    }

    #[test]
    fn a_person_under_their_countrys_minimum_age_is_refused_neutrally() {
        given::<Account>(vec![])
            .when(sign_up("DE", 15))
            .then_expect_error_message("sign-up is not available");
        given::<Account>(vec![])
            .when(sign_up("PK", 12))
            .then_expect_error_message("sign-up is not available");
    }

    #[test]
    fn an_unknown_country_code_is_refused() {
        given::<Account>(vec![])
            .when(sign_up("Germany", 30))
            .then_expect_error_message("country must be an ISO 3166-1 alpha-2 code such as `PK` or `DE`");
    }

    #[test]
    fn an_account_cannot_sign_up_twice() {
        given::<Account>(vec![signed_up("PK", 13)])
            .when(sign_up("PK", 30))
            .then_expect_error_message("this account already exists");
    }

    #[test]
    fn profile_fields_can_be_rectified_but_not_with_nothing() {
        given::<Account>(vec![signed_up("PK", 13)])
            .when(AccountCommand::Rectify {
                name: Some(sealed("new name")),
                email: None,
                avatar_url: None,
            })
            .then_expect_events(vec![AccountEvent::ProfileRectified {
                name: Some(sealed("new name")),
                email: None,
                avatar_url: None,
            }]);
        given::<Account>(vec![signed_up("PK", 13)])
            .when(AccountCommand::Rectify {
                name: None,
                email: None,
                avatar_url: None,
            })
            .then_expect_error_message("give at least one of name, email or avatar_url");
    }

    #[test]
    fn a_childs_account_is_marked_once_and_then_refuses_changes() {
        let marked = AccountEvent::AccountMarkedAsChild {
            report: ChildReport::ParentOrGuardian,
        };
        given::<Account>(vec![signed_up("PK", 13)])
            .when(AccountCommand::MarkAsChild {
                report: ChildReport::ParentOrGuardian,
            })
            .then_expect_events(vec![marked.clone()]);
        given::<Account>(vec![signed_up("PK", 13), marked.clone()])
            .when(AccountCommand::MarkAsChild {
                report: ChildReport::ReportedToSupport,
            })
            .then_expect_events(vec![]);
        given::<Account>(vec![signed_up("PK", 13), marked])
            .when(AccountCommand::Rectify {
                name: Some(sealed("x")),
                email: None,
                avatar_url: None,
            })
            .then_expect_error_message("this account was closed as a child's account");
    }

    #[test]
    fn an_account_is_closed_once_and_then_refuses_rectification() {
        given::<Account>(vec![signed_up("PK", 13)])
            .when(AccountCommand::Close)
            .then_expect_events(vec![AccountEvent::AccountClosed {}]);
        given::<Account>(vec![signed_up("PK", 13), AccountEvent::AccountClosed {}])
            .when(AccountCommand::Close)
            .then_expect_events(vec![]);
        given::<Account>(vec![signed_up("PK", 13), AccountEvent::AccountClosed {}])
            .when(AccountCommand::Rectify {
                name: Some(sealed("x")),
                email: None,
                avatar_url: None,
            })
            .then_expect_error_message("this account is closed; its data is erased after the retention period");
    }

    #[test]
    fn there_is_no_account_to_close_before_sign_up_and_a_childs_account_is_already_closed() {
        given::<Account>(vec![])
            .when(AccountCommand::Close)
            .then_expect_error_message("there is no such account");
        given::<Account>(vec![
            signed_up("PK", 13),
            AccountEvent::AccountMarkedAsChild {
                report: ChildReport::ReportedToSupport,
            },
        ])
        .when(AccountCommand::Close)
        .then_expect_error_message("this account was closed as a child's account");
    }

    #[test]
    fn a_closed_account_can_still_be_marked_as_a_childs() {
        given::<Account>(vec![signed_up("PK", 13), AccountEvent::AccountClosed {}])
            .when(AccountCommand::MarkAsChild {
                report: ChildReport::ParentOrGuardian,
            })
            .then_expect_events(vec![AccountEvent::AccountMarkedAsChild {
                report: ChildReport::ParentOrGuardian,
            }]);
    }

    /// The JSON version 1 stored, from its golden fixture.
    fn signed_up_v1() -> Value {
        serde_json::from_str(include_str!("../../tests/fixtures/events/account/SignedUp.v1.json")).unwrap()
    }

    #[test]
    fn sign_up_is_stored_as_version_two_and_the_other_account_events_as_version_one() {
        assert_eq!(signed_up("PK", 13).event_version(), "2");
        assert_eq!(AccountEvent::AccountClosed {}.event_version(), "1");
        let stored = serde_json::to_value(signed_up("DE", 16)).unwrap();
        assert_eq!(stored["SignedUp"]["minimum_age"], 16);
        assert_eq!(stored["SignedUp"]["minimum_age_met"], true);
    }

    #[test]
    fn a_version_one_sign_up_upcasts_to_the_minimum_age_and_that_it_was_met() {
        let v1 = signed_up_v1();
        assert_eq!(v1["SignedUp"]["minimum_age_met"], 13, "the fixture is version 1");
        let mut expected = v1.clone();
        let fields = expected["SignedUp"].as_object_mut().unwrap();
        fields.insert("minimum_age".into(), 13.into());
        fields.insert("minimum_age_met".into(), true.into());
        assert_eq!(
            versions::upcast::<AccountEvent>("SignedUp", "1", v1.clone()),
            Ok(expected)
        );

        match versions::decode::<AccountEvent>("SignedUp", "1", &v1).unwrap() {
            AccountEvent::SignedUp {
                country,
                minimum_age,
                minimum_age_met,
                ..
            } => assert_eq!((country.as_str(), minimum_age, minimum_age_met), ("PK", 13, true)),
            other => panic!("a sign-up decodes as one: {other:?}"),
        }
        // Stored as version 1, it folds like a sign-up of today.
        let mut account = Account::default();
        account.apply(versions::decode::<AccountEvent>("SignedUp", "1", &v1).unwrap());
        assert_eq!(
            account.handle(AccountCommand::Close),
            Ok(vec![AccountEvent::AccountClosed {}])
        );
    }

    #[test]
    fn a_version_one_sign_up_without_its_minimum_age_is_refused_not_guessed() {
        for bad in [json!(true), json!(-1), json!(300), json!("13"), Value::Null] {
            let mut v1 = signed_up_v1();
            v1["SignedUp"]["minimum_age_met"] = bad.clone();
            assert!(
                matches!(
                    versions::decode::<AccountEvent>("SignedUp", "1", &v1),
                    Err(versions::DecodeError::Version(UpcastError::UnexpectedShape {
                        from: 1,
                        ..
                    }))
                ),
                "{bad}"
            );
        }
        let mut v1 = signed_up_v1();
        v1["SignedUp"].as_object_mut().unwrap().remove("minimum_age_met");
        assert!(versions::decode::<AccountEvent>("SignedUp", "1", &v1).is_err());
        // A version 2 payload labelled version 1 is not taken for one.
        let v2 = serde_json::to_value(signed_up("PK", 13)).unwrap();
        assert!(versions::decode::<AccountEvent>("SignedUp", "1", &v2).is_err());
    }

    #[test]
    fn there_is_nothing_to_rectify_or_mark_before_sign_up() {
        given::<Account>(vec![])
            .when(AccountCommand::MarkAsChild {
                report: ChildReport::ReportedToSupport,
            })
            .then_expect_error_message("there is no such account");
    }
}
