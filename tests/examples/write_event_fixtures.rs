//! Writes the golden fixture of every event type at its *current* version that has none yet:
//! `tests/fixtures/events/<aggregate_type>/<EventType>.v<N>[.<example>].json`, the payload as
//! the event log stores it, serialised by today's code from realistic values (sealed values
//! sealed by a real vault, in the form `vault::SealedValue` takes).
//!
//! `cargo run -p tests --example write_event_fixtures`
//!
//! It never overwrites a file: a fixture is the stored shape of a version for good. A new event
//! type or a new version gets its example here, then this writes its file; a changed shape
//! without a new version is caught by `tests/tests/event_fixtures.rs`, not papered over here.

use chrono::{DateTime, NaiveDate, Utc};
use domain::account::{AccountEvent, AuthProvider, ChildReport};
use domain::artist::{ArtistEvent, Role};
use domain::billing::{
    Adjustment, BillingEvent, ForeignSpend, PaymentMethod, PeriodEvent, Plan, Statement, StripeFact,
};
use domain::campaign::{
    AdPlatform, Budget, CampaignDraft, CampaignEvent, Creative, Objective, PlatformLink, PlatformStatus, Schedule,
    Stage,
};
use domain::connection::{ConnectionDetails, ConnectionEvent, InvalidationReason, Platform};
use domain::consent::{Acceptance, Change, ConsentEvent, Evidence, Method, Notice, Purpose};
use domain::disclosure::{DataCategory, DisclosureEvent, Processor, Purpose as DisclosurePurpose};
use domain::policy::{PolicyEvent, PolicyVersion};
use domain::privacy::{
    CertifiedStep, ErasureCertificate, Kept, Opener, PrivacyEvent, Rectification, RequestKind, StepOutcome,
    SubjectEvent,
};
use domain::retention::{RetentionEvent, RuleOutcome};
use domain::sealed::Sealed;
use domain::spend::{Metrics, Reading, SpendEvent};
use domain::Aggregate;
use eventlog::NewEvent;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use vault::{KeyRef, MasterKeyring, Vault};

const PERSON: &str = "0190f3c2-a7be-7c55-9d3e-5a1b2c3d4e5f";
const OTHER_PERSON: &str = "0190f3c4-11d2-7a08-b6c1-0e9f8a7b6c5d";
const ARTIST: &str = "0191a2b3-c4d5-7e6f-8a9b-0c1d2e3f4a5b";
const CAMPAIGN: &str = "0191b7e0-5c3a-7d21-9f40-6e2a1b0c9d8e";
const INVITATION: &str = "0191a2b45e6f7a8b9c0d1e2f3a4b5c6d";
const REQUEST: &str = "pr-0192c4d5-e6f7-7a8b-9c0d-1e2f3a4b5c6d";
const CUSTOMER: &str = "cus_QkW3s9LzXc1aBd";

/// The fixtures' folder in the `tests` crate.
fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join("events")
}

fn at(text: &str) -> DateTime<Utc> {
    text.parse().expect("an RFC 3339 instant")
}

fn day(text: &str) -> NaiveDate {
    text.parse().expect("a date")
}

/// Seals like the service: the vault's `SealedValue` as JSON.
struct Sealer {
    vault: Vault,
}

impl Sealer {
    async fn seal(&self, key: &KeyRef, field: &str, plaintext: &str) -> Sealed {
        let sealed = self.vault.seal(key, field, plaintext.as_bytes()).await.expect("seal");
        Sealed(serde_json::to_value(sealed).expect("a sealed value serialises"))
    }
}

/// One fixture: its aggregate, an optional example label (for a second shape of one type),
/// and the stored event.
struct Example {
    aggregate_type: &'static str,
    label: Option<&'static str>,
    event: NewEvent,
}

fn example<A: Aggregate>(label: Option<&'static str>, event: A::Event) -> Example {
    Example {
        aggregate_type: A::TYPE,
        label,
        event: NewEvent::from_domain(&event).expect("an event serialises"),
    }
}

fn plan(currency: &str, fee_basis_points: i64) -> Plan {
    Plan {
        monthly_fee_micros: 29_000_000,
        included_spend_micros: 500_000_000,
        fee_basis_points,
        currency: currency.into(),
        time_zone: "Asia/Karachi".into(),
    }
}

fn metrics(spend_micros: i64, impressions: i64) -> Metrics {
    Metrics {
        spend_micros,
        currency: "USD".into(),
        impressions,
        reach: impressions * 7 / 10,
        clicks: 412,
        views: 3_920,
        saves: 57,
        reactions: 231,
        comments: 18,
        shares: 9,
        follows: 44,
        conversions: 12,
    }
}

fn change(purpose: Purpose, method: Method) -> Change {
    Change {
        purpose,
        notice: Notice {
            document_id: "privacy-policy".into(),
            version_label: "2026-01".into(),
            text_sha256: "3f0a9c1be27d4a86c5e0f19b2d7a34c8e6b1f05d92a7c3e48b16f0d5a9c2e713".into(),
        },
        method,
        jurisdiction: "PK".into(),
        evidence: Evidence {
            user_agent: Some(
                "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Mobile Safari/537.36"
                    .into(),
            ),
            ip_truncated: Some("39.42.118.0/24".into()),
        },
    }
}

async fn examples(sealer: &Sealer) -> Vec<Example> {
    use domain::account::Account;
    use domain::artist::ArtistProfile;
    use domain::billing::{BillingAccount, BillingPeriod};
    use domain::campaign::Campaign;
    use domain::connection::Connection;
    use domain::consent::Consents;
    use domain::disclosure::DisclosureLog;
    use domain::policy::PolicyDocument;
    use domain::privacy::{DataSubject, PrivacyRequest};
    use domain::retention::RetentionRun;
    use domain::spend::SpendLedger;

    let person = KeyRef::person(PERSON);
    let mut all = vec![
        // account
        example::<Account>(
            None,
            AccountEvent::SignedUp {
                provider: AuthProvider::Google,
                provider_subject: sealer.seal(&person, "provider_subject", "109876543210987654321").await,
                name: sealer.seal(&person, "name", "Ayesha Khan").await,
                email: sealer.seal(&person, "email", "ayesha.khan@example.com").await,
                avatar_url: Some(
                    sealer
                        .seal(
                            &person,
                            "avatar_url",
                            "https://lh3.googleusercontent.com/a/ACg8ocK3x9Qz=s96-c",
                        )
                        .await,
                ),
                country: "PK".into(),
                minimum_age: 13,
                minimum_age_met: true,
            },
        ),
        example::<Account>(
            None,
            AccountEvent::ProfileRectified {
                name: Some(sealer.seal(&person, "name", "Ayesha K. Malik").await),
                email: None,
                avatar_url: None,
            },
        ),
        example::<Account>(
            None,
            AccountEvent::AccountMarkedAsChild {
                report: ChildReport::ParentOrGuardian,
            },
        ),
        example::<Account>(None, AccountEvent::AccountClosed {}),
    ];

    // artist
    let invitee = KeyRef::person(format!("invitee.{INVITATION}"));
    all.extend([
        example::<ArtistProfile>(
            None,
            ArtistEvent::ArtistCreated {
                owner: PERSON.into(),
                name: "Ayesha & the Monsoons".into(),
                spotify_artist_id: Some("4Z8W4fKeB5YxbusRsdQVPb".into()),
            },
        ),
        example::<ArtistProfile>(
            None,
            ArtistEvent::MemberInvited {
                invitation_id: INVITATION.into(),
                by: PERSON.into(),
                email: sealer.seal(&invitee, "email", "bilal.manager@example.com").await,
                role: Role::Manager,
                token_sha256: "9b74c9897bac770ffc029102a200c5de3f1e2d4a6b8c0e2f4a6b8c0d2e4f6a8b".into(),
                expires_at: at("2026-03-08T09:15:27.481516Z"),
            },
        ),
        example::<ArtistProfile>(
            None,
            ArtistEvent::InvitationEmailSent {
                invitation_id: INVITATION.into(),
                provider_message_id: "4ef9a417-02e9-4d39-ad75-9611e0fcc33c".into(),
            },
        ),
        example::<ArtistProfile>(
            None,
            ArtistEvent::InvitationAccepted {
                invitation_id: INVITATION.into(),
                person_id: OTHER_PERSON.into(),
                role: Role::Manager,
            },
        ),
        example::<ArtistProfile>(
            None,
            ArtistEvent::InvitationRevoked {
                invitation_id: INVITATION.into(),
            },
        ),
        example::<ArtistProfile>(
            None,
            ArtistEvent::InvitationExpired {
                invitation_id: INVITATION.into(),
            },
        ),
        example::<ArtistProfile>(
            None,
            ArtistEvent::MemberRemoved {
                person_id: OTHER_PERSON.into(),
            },
        ),
    ]);

    // billing_account
    all.extend([
        example::<BillingAccount>(
            None,
            BillingEvent::BillingAccountOpened {
                owner: PERSON.into(),
                stripe_customer_id: CUSTOMER.into(),
                plan: plan("USD", 250),
            },
        ),
        example::<BillingAccount>(None, BillingEvent::PlanChanged(plan("USD", 200))),
        example::<BillingAccount>(
            None,
            BillingEvent::ArtistAttached {
                artist_id: ARTIST.into(),
            },
        ),
        example::<BillingAccount>(
            None,
            BillingEvent::PaymentMethodRecorded(PaymentMethod {
                brand: "visa".into(),
                last4: "4242".into(),
                exp_month: 11,
                exp_year: 2028,
                billing_address: Some(
                    sealer
                        .seal(
                            &person,
                            "billing_address",
                            r#"{"line1":"12 Canal View","city":"Lahore","postal_code":"54000","country":"PK"}"#,
                        )
                        .await,
                ),
            }),
        ),
        example::<BillingAccount>(
            None,
            BillingEvent::StripeFactRecorded(StripeFact {
                stripe_event_id: "evt_1QkX2aLzXc1aBdEfGh3iJk4l".into(),
                event_type: "invoice.paid".into(),
                object_id: "in_1QkX29LzXc1aBdZyXwVu".into(),
                amount_minor: Some(2_900),
                currency: Some("usd".into()),
                status: Some("paid".into()),
                created: 1_767_225_600,
                signed_at: 1_767_225_603,
            }),
        ),
        example::<BillingAccount>(
            None,
            BillingEvent::SubscriptionPastDue {
                stripe_event_id: "evt_1QmB7cLzXc1aBdQr5sTu6v".into(),
            },
        ),
        example::<BillingAccount>(
            None,
            BillingEvent::SubscriptionReactivated {
                stripe_event_id: "evt_1QmC9dLzXc1aBdWx7yZa8b".into(),
            },
        ),
        example::<BillingAccount>(
            None,
            BillingEvent::SubscriptionCanceled {
                stripe_event_id: "evt_1QnD0eLzXc1aBdCd9eFg0h".into(),
            },
        ),
    ]);

    // billing_period
    let statement = Statement::new(
        "2026-02",
        &plan("USD", 250),
        1_234_567_890,
        vec![Adjustment {
            period: "2026-01".into(),
            spend_delta_micros: 12_345_678,
            fee_delta_micros: 308_642,
            readings: vec![
                format!("{CAMPAIGN}.meta.2026-01-30"),
                format!("{CAMPAIGN}.meta.2026-01-31"),
            ],
        }],
        -1_500_000,
        vec![ForeignSpend {
            currency: "PKR".into(),
            spend_micros: 2_800_000_000,
        }],
    );
    all.extend([
        example::<BillingPeriod>(None, PeriodEvent::PeriodClosed(statement.clone())),
        example::<BillingPeriod>(
            None,
            PeriodEvent::UsageReported {
                identifier: format!("dynamoi-{CUSTOMER}-2026-02"),
                value_minor: statement.reported_minor,
            },
        ),
    ]);

    // campaign
    let draft = CampaignDraft {
        artist_id: ARTIST.into(),
        platform: AdPlatform::GoogleAds,
        objective: Objective::VideoViews,
        budget: Budget::Daily {
            amount_micros: 25_000_000,
        },
        currency: "USD".into(),
        schedule: Schedule {
            start: day("2026-03-01"),
            end: Some(day("2026-03-31")),
        },
        countries: vec!["PK".into(), "AE".into(), "GB".into()],
        creatives: vec![
            Creative::YoutubeVideo {
                video_id: "dQw4w9WgXcQ".into(),
            },
            Creative::AiGenerated {
                asset_id: "ai-0191c0de-77aa-7bb1-8cc2-9dd3eef40512".into(),
                consent_event_id: "0191bf00-1a2b-7c3d-8e4f-5a6b7c8d9e0f".into(),
            },
        ],
    };
    let meta_draft = CampaignDraft {
        platform: AdPlatform::Meta,
        objective: Objective::Streams,
        budget: Budget::Lifetime {
            amount_micros: 400_000_000,
        },
        schedule: Schedule {
            start: day("2026-03-01"),
            end: None,
        },
        creatives: vec![
            Creative::FacebookPost {
                post_id: "104857392847561_912345678901234".into(),
            },
            Creative::InstagramMedia {
                media_id: "17912345678901234".into(),
            },
        ],
        ..draft.clone()
    };
    all.extend([
        example::<Campaign>(None, CampaignEvent::CampaignDrafted(draft)),
        example::<Campaign>(Some("meta"), CampaignEvent::CampaignDrafted(meta_draft)),
        example::<Campaign>(
            None,
            CampaignEvent::BudgetChanged(Budget::Daily {
                amount_micros: 30_000_000,
            }),
        ),
        example::<Campaign>(
            Some("lifetime"),
            CampaignEvent::BudgetChanged(Budget::Lifetime {
                amount_micros: 750_000_000,
            }),
        ),
        example::<Campaign>(
            None,
            CampaignEvent::ScheduleChanged(Schedule {
                start: day("2026-03-01"),
                end: Some(day("2026-04-15")),
            }),
        ),
        example::<Campaign>(None, CampaignEvent::CampaignLaunched),
        example::<Campaign>(None, CampaignEvent::CampaignPaused),
        example::<Campaign>(None, CampaignEvent::CampaignResumed),
        example::<Campaign>(None, CampaignEvent::CampaignEnded),
        example::<Campaign>(None, CampaignEvent::CampaignArchived),
        example::<Campaign>(
            None,
            CampaignEvent::PlatformStatusReported(PlatformStatus::Issue {
                reason: "disapproved: the ad's landing page is not available".into(),
            }),
        ),
        example::<Campaign>(
            Some("active"),
            CampaignEvent::PlatformStatusReported(PlatformStatus::Active),
        ),
        example::<Campaign>(
            None,
            CampaignEvent::AiCreativeAdded {
                asset_id: "ai-0191c0df-0011-7223-8334-455667788990".into(),
                consent_event_id: "0191bf00-1a2b-7c3d-8e4f-5a6b7c8d9e0f".into(),
            },
        ),
        example::<Campaign>(
            None,
            CampaignEvent::PlatformCampaignLinked(PlatformLink {
                connection_id: Platform::GoogleAds.connection_id(PERSON),
                account_id: "1234567890".into(),
                platform_campaign_id: "21458963570".into(),
            }),
        ),
        example::<Campaign>(
            None,
            CampaignEvent::CampaignSubscriptionPaused { previous: Stage::Live },
        ),
        example::<Campaign>(None, CampaignEvent::CampaignSubscriptionResumed { stage: Stage::Live }),
    ]);

    // connection
    let meta = KeyRef::connection(Platform::Meta.connection_id(PERSON));
    let youtube = KeyRef::connection(Platform::Youtube.connection_id(PERSON));
    let google_ads = KeyRef::connection(Platform::GoogleAds.connection_id(PERSON));
    all.extend([
        example::<Connection>(
            None,
            ConnectionEvent::Connected {
                person_id: PERSON.into(),
                details: ConnectionDetails::Meta {
                    page_id: "104857392847561".into(),
                    instagram_actor_id: Some("17841400123456789".into()),
                    access_token: sealer
                        .seal(
                            &meta,
                            "access_token",
                            "EAAGm0PX4ZCpsBAKZCZBz0ZB3q9ExampleLongLivedToken",
                        )
                        .await,
                },
            },
        ),
        example::<Connection>(
            Some("spotify"),
            ConnectionEvent::Connected {
                person_id: PERSON.into(),
                details: ConnectionDetails::Spotify {
                    artist_id: "4Z8W4fKeB5YxbusRsdQVPb".into(),
                },
            },
        ),
        example::<Connection>(
            Some("youtube"),
            ConnectionEvent::Connected {
                person_id: PERSON.into(),
                details: ConnectionDetails::Youtube {
                    channel_id: "UC_x5XG1OV2P6uZZ5FSM9Ttw".into(),
                    channel_name: "Ayesha & the Monsoons".into(),
                    refresh_token: sealer
                        .seal(&youtube, "refresh_token", "1//0gExampleRefreshTokenYT")
                        .await,
                },
            },
        ),
        example::<Connection>(
            Some("google_ads"),
            ConnectionEvent::Connected {
                person_id: PERSON.into(),
                details: ConnectionDetails::GoogleAds {
                    customer_id: "1234567890".into(),
                    refresh_token: sealer
                        .seal(&google_ads, "refresh_token", "1//0gExampleRefreshTokenGA")
                        .await,
                },
            },
        ),
        example::<Connection>(
            None,
            ConnectionEvent::Disconnected {
                person_id: PERSON.into(),
                platform: Platform::Meta,
            },
        ),
        example::<Connection>(
            None,
            ConnectionEvent::ConnectionInvalidated {
                person_id: PERSON.into(),
                platform: Platform::Youtube,
                reason: InvalidationReason::TokenRejected,
            },
        ),
    ]);

    // consent
    let attribution = KeyRef::purpose(PERSON, "ad_attribution");
    let notice = change(Purpose::AdAttribution, Method::Banner).notice;
    all.extend([
        example::<Consents>(
            None,
            ConsentEvent::ConsentGranted(change(Purpose::AdAttribution, Method::Banner)),
        ),
        example::<Consents>(
            None,
            ConsentEvent::ConsentWithdrawn(change(Purpose::EmailMarketing, Method::SettingsPage)),
        ),
        example::<Consents>(
            None,
            ConsentEvent::PolicyAccepted {
                notice: notice.clone(),
                acceptance: Acceptance::Explicit,
                method: Method::SettingsPage,
                evidence: change(Purpose::AdAttribution, Method::Banner).evidence,
            },
        ),
        example::<Consents>(
            Some("continued_use"),
            ConsentEvent::PolicyAccepted {
                notice,
                acceptance: Acceptance::ContinuedUseAfterNotification {
                    notified_at: at("2026-01-02T08:00:00Z"),
                },
                method: Method::Api,
                evidence: Evidence::default(),
            },
        ),
        example::<Consents>(
            None,
            ConsentEvent::AttributionIdsRecorded {
                fbc: Some(
                    sealer
                        .seal(&attribution, "fbc", "fb.1.1767225600123.IwAR2ExampleClickId")
                        .await,
                ),
                fbp: Some(sealer.seal(&attribution, "fbp", "fb.1.1767225600456.1098765432").await),
            },
        ),
    ]);

    // disclosure_log
    all.push(example::<DisclosureLog>(
        None,
        DisclosureEvent::DisclosureRecorded {
            processor: Processor::Stripe,
            categories: vec![DataCategory::BillingIdentifiers, DataCategory::SpendFigures],
            purpose: DisclosurePurpose::MeteredBilling,
            reference: Some(format!("dynamoi-{CUSTOMER}-2026-02")),
        },
    ));

    // policy_document
    all.push(example::<PolicyDocument>(
        None,
        PolicyEvent::PolicyVersionPublished(PolicyVersion {
            version_number: 2,
            label: "2026-01".into(),
            effective_date: day("2026-01-15"),
            locale: "ur-PK".into(),
            text_sha256: "3f0a9c1be27d4a86c5e0f19b2d7a34c8e6b1f05d92a7c3e48b16f0d5a9c2e713".into(),
            summary_of_changes: "PostHog replaces Google Analytics for product analytics.".into(),
        }),
    ));

    // privacy_request
    let opened = at("2026-02-01T10:00:00.123456Z");
    let erase_steps = vec![
        format!("platform:{}", Platform::Meta.connection_id(PERSON)),
        "posthog".into(),
        "resend".into(),
        "stripe".into(),
        "vault".into(),
        "read_models".into(),
    ];
    all.extend([
        example::<PrivacyRequest>(
            None,
            PrivacyEvent::RequestOpened {
                person_id: PERSON.into(),
                kind: RequestKind::Erase,
                opener: Opener::Person,
                opened_at: opened,
                deadline: at("2026-03-01T10:00:00.123456Z"),
                steps: erase_steps.clone(),
                rectification: None,
            },
        ),
        example::<PrivacyRequest>(
            Some("support_rectify"),
            PrivacyEvent::RequestOpened {
                person_id: PERSON.into(),
                kind: RequestKind::Rectify,
                opener: Opener::Support {
                    agent: "support-07".into(),
                    reason: "email to privacy@".into(),
                },
                opened_at: opened,
                deadline: at("2026-03-01T10:00:00.123456Z"),
                steps: vec!["event_log".into()],
                rectification: Some(Rectification {
                    name: None,
                    email: Some(sealer.seal(&person, "email", "ayesha.malik@example.com").await),
                    avatar_url: None,
                }),
            },
        ),
        example::<PrivacyRequest>(
            Some("system"),
            PrivacyEvent::RequestOpened {
                person_id: PERSON.into(),
                kind: RequestKind::Erase,
                opener: Opener::System {
                    reason: "closed_account_retention".into(),
                },
                opened_at: opened,
                deadline: at("2026-03-01T10:00:00.123456Z"),
                steps: vec![
                    "posthog".into(),
                    "resend".into(),
                    "stripe".into(),
                    "vault".into(),
                    "read_models".into(),
                ],
                rectification: None,
            },
        ),
        example::<PrivacyRequest>(
            None,
            PrivacyEvent::IdentityVerified {
                method: "signed_in_session".into(),
                at: opened,
            },
        ),
        example::<PrivacyRequest>(
            None,
            PrivacyEvent::DeadlineExtended {
                reason: "complex request: several processors".into(),
                deadline: at("2026-05-01T10:00:00.123456Z"),
            },
        ),
        example::<PrivacyRequest>(
            None,
            PrivacyEvent::RequestDenied {
                reason: "manifestly unfounded: repeated identical request".into(),
                at: at("2026-02-02T09:00:00Z"),
            },
        ),
        example::<PrivacyRequest>(
            None,
            PrivacyEvent::RequestPaused {
                reason: "waiting for the person's answer".into(),
                at: at("2026-02-03T09:00:00Z"),
            },
        ),
        example::<PrivacyRequest>(
            None,
            PrivacyEvent::RequestResumed {
                at: at("2026-02-04T09:00:00Z"),
            },
        ),
        example::<PrivacyRequest>(
            None,
            PrivacyEvent::StepStarted {
                step: "stripe".into(),
                attempt: 2,
                at: at("2026-02-04T09:00:01.5Z"),
            },
        ),
        example::<PrivacyRequest>(
            None,
            PrivacyEvent::StepCompleted {
                step: "stripe".into(),
                outcome: StepOutcome::Done {
                    evidence: format!("customer {CUSTOMER} deleted"),
                },
                at: at("2026-02-04T09:00:02.25Z"),
            },
        ),
        example::<PrivacyRequest>(
            Some("manual"),
            PrivacyEvent::StepCompleted {
                step: "posthog".into(),
                outcome: StepOutcome::Manual {
                    evidence: "person deleted in the PostHog dashboard, ticket PH-1182".into(),
                    by: "support-07".into(),
                },
                at: at("2026-02-04T11:30:00Z"),
            },
        ),
        example::<PrivacyRequest>(
            Some("not_applicable"),
            PrivacyEvent::StepCompleted {
                step: "resend".into(),
                outcome: StepOutcome::NotApplicable {
                    reason: "no email was ever sent to the person".into(),
                },
                at: at("2026-02-04T09:00:03Z"),
            },
        ),
        example::<PrivacyRequest>(
            None,
            PrivacyEvent::StepFailed {
                step: "stripe".into(),
                reason: "Stripe answered 503; retried at the next run".into(),
                at: at("2026-02-04T08:00:00Z"),
            },
        ),
        example::<PrivacyRequest>(
            None,
            PrivacyEvent::RequestCompleted {
                at: at("2026-02-04T09:00:05Z"),
            },
        ),
        example::<PrivacyRequest>(
            None,
            PrivacyEvent::ErasureCertificateIssued {
                certificate: ErasureCertificate {
                    request_id: REQUEST.into(),
                    person_id: PERSON.into(),
                    erased_at: at("2026-02-04T09:00:04.75Z"),
                    keys_destroyed: vec![
                        format!("person:{PERSON}#1.9f3c2a7be01d4c55"),
                        format!("purpose:{PERSON}:ad_attribution#1.0a1b2c3d4e5f6071"),
                        format!("connection:{}#1.8e7d6c5b4a392817", Platform::Meta.connection_id(PERSON)),
                    ],
                    steps: vec![
                        CertifiedStep {
                            step: "stripe".into(),
                            completed_at: at("2026-02-04T09:00:02.25Z"),
                            outcome: StepOutcome::Done {
                                evidence: format!("customer {CUSTOMER} deleted"),
                            },
                        },
                        CertifiedStep {
                            step: "resend".into(),
                            completed_at: at("2026-02-04T09:00:03Z"),
                            outcome: StepOutcome::NotApplicable {
                                reason: "no email was ever sent to the person".into(),
                            },
                        },
                    ],
                    kept: vec![Kept {
                        category: "billing_records".into(),
                        basis: "legal_obligation (tax and accounting records, GDPR Art. 17(3)(b))".into(),
                        detail: "billing accounts and statements under the pseudonymous person id".into(),
                    }],
                },
            },
        ),
    ]);

    // data_subject
    all.extend([
        example::<DataSubject>(
            None,
            SubjectEvent::ProcessingRestricted {
                request_id: REQUEST.into(),
            },
        ),
        example::<DataSubject>(
            None,
            SubjectEvent::RestrictionLifted {
                request_id: REQUEST.into(),
            },
        ),
        example::<DataSubject>(
            None,
            SubjectEvent::PersonErased {
                request_id: REQUEST.into(),
            },
        ),
    ]);

    // retention_run
    all.push(example::<RetentionRun>(
        None,
        RetentionEvent::RetentionApplied {
            at: at("2026-02-05T03:00:12.345678Z"),
            rules: vec![
                RuleOutcome {
                    rule: "invitation_email".into(),
                    examined: 14,
                    affected: 1,
                    failed: 0,
                    ids: vec![INVITATION.into()],
                },
                RuleOutcome {
                    rule: "closed_account".into(),
                    examined: 3,
                    affected: 0,
                    failed: 0,
                    ids: vec![],
                },
            ],
        },
    ));

    // spend_ledger
    let reading = Reading {
        date: day("2026-03-02"),
        metrics: metrics(23_456_789, 48_210),
        fetched_at: at("2026-03-03T02:00:07.123456Z"),
        source: "google_ads_search_stream".into(),
    };
    all.extend([
        example::<SpendLedger>(None, SpendEvent::SpendRecorded(reading.clone())),
        example::<SpendLedger>(
            None,
            SpendEvent::SpendRestated {
                old: reading.metrics.clone(),
                new: Reading {
                    metrics: metrics(24_001_002, 49_377),
                    fetched_at: at("2026-03-10T02:00:04.654321Z"),
                    ..reading.clone()
                },
            },
        ),
        example::<SpendLedger>(
            None,
            SpendEvent::SpendConfirmed {
                date: reading.date,
                fetched_at: at("2026-03-11T02:00:07.123456Z"),
                source: reading.source.clone(),
            },
        ),
    ]);
    all
}

#[tokio::main]
async fn main() {
    let db = tests::TestDb::sqlite().await;
    let ring = Arc::new(MasterKeyring::generate("fixtures").expect("a master key"));
    let sealer = Sealer {
        vault: Vault::new(db.db.clone(), ring),
    };
    let dir = fixtures_dir();
    let (mut written, mut kept) = (0, 0);
    for example in examples(&sealer).await {
        let folder = dir.join(example.aggregate_type);
        std::fs::create_dir_all(&folder).expect("create the fixtures folder");
        let name = match example.label {
            None => format!("{}.v{}.json", example.event.event_type, example.event.event_version),
            Some(label) => format!(
                "{}.v{}.{label}.json",
                example.event.event_type, example.event.event_version
            ),
        };
        let path = folder.join(name);
        if path.exists() {
            kept += 1;
            continue;
        }
        let text = serde_json::to_string_pretty(&example.event.payload).expect("JSON serialises") + "\n";
        std::fs::write(&path, text).expect("write a fixture");
        eprintln!("wrote {}", path.display());
        written += 1;
    }
    eprintln!("{written} fixtures written, {kept} already there (never overwritten)");
}
