//! `dynamoi demo`: a signed-up person owning an artist with three live campaigns (two on Meta, one on Google Ads),
//! `days` days of plausible readings, restatements included, and a billing account paying for
//! the artist, so a newcomer's first dashboard and first statement show something. Everything goes through the same commands and the same bulk ingestion as
//! real data; the connections hold placeholder tokens (sealed like real ones) and the
//! campaigns are not linked to platform campaigns, so the daily sync leaves them alone.

use crate::connections::connection_key;
use crate::ingest::{self, IngestReading, Outcome};
use crate::App;
use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use domain::account::{Account, AccountCommand, AuthProvider};
use domain::artist::{ArtistCommand, ArtistProfile};
use domain::billing::{BillingAccount, BillingCommand, Plan as BillingPlan};
use domain::campaign::{AdPlatform, Budget, Campaign, CampaignCommand, CampaignDraft, Creative, Objective, Schedule};
use domain::connection::{Connection, ConnectionCommand, ConnectionDetails, Platform};
use domain::sealed::Sealed;
use eventlog::EventMetadata;
use serde::Serialize;

/// Why the demo could not be loaded: the step, and the reason.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("--days must be from 1 to 3650")]
    Days,
    #[error("{what}: {reason}")]
    Step { what: &'static str, reason: String },
}

fn step(what: &'static str) -> impl FnOnce(&dyn std::fmt::Display) -> DemoError {
    move |reason| DemoError::Step {
        what,
        reason: reason.to_string(),
    }
}

/// What the demo created.
#[derive(Clone, Debug, Serialize)]
pub struct DemoReport {
    pub person_id: String,
    pub artist_id: String,
    pub campaign_ids: Vec<String>,
    /// The demo's billing account (a made-up Stripe customer id): 500 USD included a month,
    /// 2.5 % beyond.
    pub billing_account_id: String,
    pub first_day: NaiveDate,
    pub last_day: NaiveDate,
    pub recorded: usize,
    pub restated: usize,
    /// Consistency token of the last write.
    pub position: Option<String>,
}

/// One demo campaign: where it runs, what for, and the shape of its days.
struct Plan {
    platform: AdPlatform,
    objective: Objective,
    daily_budget_micros: i64,
    /// Cost per thousand impressions, in micros.
    cpm_micros: i64,
    creative: Creative,
}

fn plans() -> [Plan; 3] {
    [
        Plan {
            platform: AdPlatform::Meta,
            objective: Objective::Streams,
            daily_budget_micros: 25_000_000,
            cpm_micros: 6_500_000,
            creative: Creative::InstagramMedia {
                media_id: "17900000000000001".into(),
            },
        },
        Plan {
            platform: AdPlatform::Meta,
            objective: Objective::Followers,
            daily_budget_micros: 12_000_000,
            cpm_micros: 8_200_000,
            creative: Creative::FacebookPost {
                post_id: "100000000000001_200000000000001".into(),
            },
        },
        Plan {
            platform: AdPlatform::GoogleAds,
            objective: Objective::VideoViews,
            daily_budget_micros: 30_000_000,
            cpm_micros: 4_100_000,
            creative: Creative::YoutubeVideo {
                video_id: "dQw4w9WgXcQ".into(),
            },
        },
    ]
}

/// A small deterministic hash (SplitMix64) so every run draws the same plausible days.
fn noise(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `value` scaled by a factor between `low` and `high` per mille, drawn from `seed`.
fn vary(value: i64, seed: u64, low: i64, high: i64) -> i64 {
    let span = (high - low + 1) as u64;
    value * (low + (noise(seed) % span) as i64) / 1000
}

fn reading(
    campaign_id: &str,
    plan: &Plan,
    index: u64,
    day_number: u64,
    date: NaiveDate,
    fetched_at: DateTime<Utc>,
    revision: u64,
) -> IngestReading {
    let seed = index * 1_000_003 + day_number;
    // A slow ramp over the first two weeks, weekends a little stronger.
    let ramp = (day_number.min(14) as i64 + 6) * 1000 / 20;
    let weekend = if date.weekday().number_from_monday() >= 6 {
        1100
    } else {
        1000
    };
    let spend = vary(plan.daily_budget_micros, seed, 780, 1000) * ramp / 1000 * weekend / 1000 / 10_000 * 10_000;
    let impressions = spend * 1000 / vary(plan.cpm_micros, seed + 1, 850, 1150).max(1);
    let clicks = impressions * vary(1000, seed + 2, 8, 19) / 1000 / 1000 + 1;
    let views = match plan.objective {
        Objective::VideoViews => impressions * vary(1000, seed + 3, 250, 380) / 1000,
        _ => impressions * vary(1000, seed + 3, 20, 60) / 1000,
    };
    let follows = match plan.objective {
        Objective::Followers => clicks * vary(1000, seed + 4, 150, 300) / 1000,
        _ => clicks * vary(1000, seed + 4, 10, 40) / 1000,
    };
    // A restatement revises conversions and reach upwards, as late attribution does.
    let late = (revision * (1 + noise(seed + 9) % 3)) as i64;
    IngestReading {
        campaign_id: campaign_id.to_string(),
        platform: plan.platform,
        date,
        spend_micros: spend,
        currency: "USD".into(),
        impressions,
        reach: impressions * vary(1000, seed + 5, 600, 800) / 1000 + late * 7,
        clicks,
        views,
        saves: clicks * vary(1000, seed + 6, 50, 120) / 1000,
        reactions: impressions * vary(1000, seed + 7, 3, 9) / 1000,
        comments: clicks / 40,
        shares: clicks / 25,
        follows,
        conversions: clicks * vary(1000, seed + 8, 40, 90) / 1000 + late,
        fetched_at,
        source: "demo".into(),
    }
}

/// Loads the demo: `days` days ending `last_day`, then a second pass that restates the
/// platforms' lookback windows (Meta 28 days, Google Ads 14) on some days.
pub async fn load(app: &App, last_day: NaiveDate, days: u32) -> Result<DemoReport, DemoError> {
    if !(1..=3650).contains(&days) {
        return Err(DemoError::Days);
    }
    let person_id = uuid::Uuid::now_v7().to_string();
    let artist_id = uuid::Uuid::now_v7().to_string();
    let metadata = EventMetadata {
        actor: format!("person:{person_id}"),
        request_id: None,
        causation_id: None,
    };
    let first_day = last_day - Duration::days(i64::from(days) - 1);
    // The person's account, its personal fields sealed under their own key like a real sign-up,
    // so that a newcomer can try their data-subject requests (export, erase) on the demo.
    let person_key = vault::KeyRef::person(&person_id);
    let mut sealed_fields = Vec::new();
    for (field, text) in [
        ("provider_subject", format!("email|{person_id}")),
        ("name", "Demo Person".to_string()),
        ("email", "demo.person@example.com".to_string()),
    ] {
        let sealed = app
            .vault
            .seal(&person_key, field, text.as_bytes())
            .await
            .map_err(|e| step("cannot seal the demo person's profile")(&e))?;
        sealed_fields.push(Sealed(
            serde_json::to_value(sealed).map_err(|e| step("cannot seal the demo person's profile")(&e))?,
        ));
    }
    let [provider_subject, name, email]: [Sealed; 3] = sealed_fields
        .try_into()
        .map_err(|_| step("cannot seal the demo person's profile")(&"three sealed fields"))?;
    app.log
        .execute::<Account>(
            &person_id,
            AccountCommand::SignUp {
                provider: AuthProvider::Email,
                provider_subject,
                name,
                email,
                avatar_url: None,
                country: "PK".into(),
                age_years: 30,
            },
            &metadata,
        )
        .await
        .map_err(|e| step("cannot sign the demo person up")(&e))?;
    app.log
        .execute::<ArtistProfile>(
            &artist_id,
            ArtistCommand::Create {
                owner: person_id.clone(),
                name: "Demo Artist".into(),
                spotify_artist_id: None,
            },
            &metadata,
        )
        .await
        .map_err(|e| step("cannot create the demo artist")(&e))?;
    for platform in [Platform::Meta, Platform::GoogleAds] {
        let connection_id = platform.connection_id(&person_id);
        let (field, placeholder) = match platform {
            Platform::Meta => ("access_token", "demo-placeholder-not-a-meta-token"),
            _ => ("refresh_token", "demo-placeholder-not-a-google-token"),
        };
        let sealed = app
            .vault
            .seal(&connection_key(&connection_id), field, placeholder.as_bytes())
            .await
            .map_err(|e| step("cannot seal the demo connection's placeholder token")(&e))?;
        let sealed = Sealed(
            serde_json::to_value(sealed)
                .map_err(|e| step("cannot seal the demo connection's placeholder token")(&e))?,
        );
        let details = match platform {
            Platform::Meta => ConnectionDetails::Meta {
                page_id: "100000000000001".into(),
                instagram_actor_id: Some("17800000000000001".into()),
                access_token: sealed,
            },
            _ => ConnectionDetails::GoogleAds {
                customer_id: "1234567890".into(),
                refresh_token: sealed,
            },
        };
        app.log
            .execute::<Connection>(
                &connection_id,
                ConnectionCommand::Connect {
                    person_id: person_id.clone(),
                    details,
                },
                &metadata,
            )
            .await
            .map_err(|e| step("cannot connect the demo platform")(&e))?;
    }
    let mut campaign_ids = Vec::new();
    for plan in plans() {
        let campaign_id = uuid::Uuid::now_v7().to_string();
        let draft = CampaignDraft {
            artist_id: artist_id.clone(),
            platform: plan.platform,
            objective: plan.objective,
            budget: Budget::Daily {
                amount_micros: plan.daily_budget_micros,
            },
            currency: "USD".into(),
            schedule: Schedule {
                start: first_day,
                end: None,
            },
            countries: vec!["US".into(), "GB".into(), "PK".into()],
            creatives: vec![plan.creative.clone()],
        };
        for command in [
            CampaignCommand::Draft(draft),
            CampaignCommand::Launch { connection_live: true },
        ] {
            app.log
                .execute::<Campaign>(&campaign_id, command, &metadata)
                .await
                .map_err(|e| step("cannot create a demo campaign")(&e))?;
        }
        campaign_ids.push(campaign_id);
    }
    let plans = plans();
    let fetched_at = app.now();
    let mut first_pass = Vec::new();
    let mut second_pass = Vec::new();
    for (index, (campaign_id, plan)) in campaign_ids.iter().zip(&plans).enumerate() {
        let lookback = match plan.platform {
            AdPlatform::Meta => crate::sync::META_LOOKBACK_DAYS,
            AdPlatform::GoogleAds => crate::sync::GOOGLE_ADS_LOOKBACK_DAYS,
        };
        for day_number in 0..u64::from(days) {
            let date = first_day + Duration::days(day_number as i64);
            let index = index as u64;
            first_pass.push(Ok(reading(campaign_id, plan, index, day_number, date, fetched_at, 0)));
            // The last sync's window: a third of those days come back revised.
            if (last_day - date).num_days() < lookback && noise(index * 31 + day_number).is_multiple_of(3) {
                let later = fetched_at + Duration::days(1);
                second_pass.push(Ok(reading(campaign_id, plan, index, day_number, date, later, 1)));
            }
        }
    }
    let billing_account_id = format!("cus_demo{}", &uuid::Uuid::now_v7().simple().to_string()[20..]);
    for command in [
        BillingCommand::Open {
            owner: person_id.clone(),
            stripe_customer_id: billing_account_id.clone(),
            plan: BillingPlan {
                monthly_fee_micros: 29_000_000,
                included_spend_micros: 500_000_000,
                fee_basis_points: 250,
                currency: "USD".into(),
                time_zone: "Etc/UTC".into(),
            },
        },
        BillingCommand::AttachArtist {
            artist_id: artist_id.clone(),
        },
    ] {
        app.log
            .execute::<BillingAccount>(&billing_account_id, command, &metadata)
            .await
            .map_err(|e| step("cannot open the demo billing account")(&e))?;
    }
    let mut report = DemoReport {
        person_id,
        artist_id,
        campaign_ids,
        billing_account_id,
        first_day,
        last_day,
        recorded: 0,
        restated: 0,
        position: None,
    };
    let service = EventMetadata {
        actor: "system:demo".into(),
        request_id: None,
        causation_id: None,
    };
    for batch in [first_pass, second_pass] {
        let result = ingest::ingest(&app.log, &batch, &service)
            .await
            .map_err(|e| step("cannot ingest the demo readings")(&e))?;
        for outcome in &result.outcomes {
            match outcome {
                Outcome::Recorded => report.recorded += 1,
                Outcome::Restated => report.restated += 1,
                Outcome::Unchanged | Outcome::Stale { .. } => {}
                Outcome::Rejected { reason } => return Err(step("a demo reading was refused")(reason)),
            }
        }
        if let Some(position) = result.position {
            report.position = Some(position.to_string());
        }
    }
    Ok(report)
}
