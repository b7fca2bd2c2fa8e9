//! Spend ledgers (P1, P11): one per campaign, platform and day. A reading is that day's full
//! metrics as the platform reports them. The same reading again records nothing; a changed one
//! is a restatement carrying old and new values (platforms revise past days: Meta for about 28
//! days, Google Ads conversions for about 14); an impossible one is refused with its reason.

use crate::{Aggregate, DomainEvent};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// One day's metrics of one campaign on one platform. Money in currency micros, never floats.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metrics {
    pub spend_micros: i64,
    /// ISO 4217, e.g. `USD`.
    pub currency: String,
    pub impressions: i64,
    pub reach: i64,
    pub clicks: i64,
    pub views: i64,
    pub saves: i64,
    pub reactions: i64,
    pub comments: i64,
    pub shares: i64,
    pub follows: i64,
    pub conversions: i64,
}

/// A reading: the metrics, the day they are for, and where and when they were fetched.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reading {
    pub date: NaiveDate,
    pub metrics: Metrics,
    pub fetched_at: DateTime<Utc>,
    /// e.g. `meta_insights`, `google_ads_search_stream`, `ingest_api`.
    pub source: String,
}

/// What the ledger must know of its campaign to judge a reading.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CampaignFacts {
    pub currency: String,
    pub start: NaiveDate,
    /// `None` while the campaign has no end.
    pub end: Option<NaiveDate>,
}

/// Commands of a spend ledger.
#[derive(Clone, Debug, PartialEq)]
pub enum SpendCommand {
    Record { reading: Reading, campaign: CampaignFacts },
}

/// Events of a spend ledger (stored shape version 1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum SpendEvent {
    SpendRecorded(Reading),
    SpendRestated { old: Metrics, new: Reading },
}

impl DomainEvent for SpendEvent {
    fn event_type(&self) -> String {
        match self {
            SpendEvent::SpendRecorded(_) => "SpendRecorded",
            SpendEvent::SpendRestated { .. } => "SpendRestated",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        "1".to_string()
    }
}

/// Why a reading was refused; shown per reading in ingestion answers.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpendError {
    #[error("{0} is negative")]
    Negative(&'static str),
    #[error("the currency {got} is not the campaign's currency {expected}")]
    WrongCurrency { got: String, expected: String },
    #[error("{date} is outside the campaign's life ({start} to {end}, with a day of slack either side)")]
    OutsideCampaign {
        date: NaiveDate,
        start: NaiveDate,
        end: String,
    },
    #[error("the reading is for {got}, but this ledger is for {expected}")]
    WrongDay { got: NaiveDate, expected: NaiveDate },
}

/// The state of one ledger: its day and its latest metrics.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct SpendLedger {
    day: Option<NaiveDate>,
    latest: Option<Metrics>,
}

impl SpendLedger {
    /// The ledger id of a campaign, platform and day: `<campaign>.<platform>.<YYYY-MM-DD>`.
    pub fn id(campaign_id: &str, platform: &str, date: NaiveDate) -> String {
        format!("{campaign_id}.{platform}.{date}")
    }
}

fn validate(reading: &Reading, campaign: &CampaignFacts) -> Result<(), SpendError> {
    let m = &reading.metrics;
    for (name, value) in [
        ("spend_micros", m.spend_micros),
        ("impressions", m.impressions),
        ("reach", m.reach),
        ("clicks", m.clicks),
        ("views", m.views),
        ("saves", m.saves),
        ("reactions", m.reactions),
        ("comments", m.comments),
        ("shares", m.shares),
        ("follows", m.follows),
        ("conversions", m.conversions),
    ] {
        if value < 0 {
            return Err(SpendError::Negative(name));
        }
    }
    if m.currency != campaign.currency {
        return Err(SpendError::WrongCurrency {
            got: m.currency.clone(),
            expected: campaign.currency.clone(),
        });
    }
    let slack = Duration::days(1);
    let too_early = reading.date < campaign.start - slack;
    let too_late = campaign.end.is_some_and(|end| reading.date > end + slack);
    if too_early || too_late {
        return Err(SpendError::OutsideCampaign {
            date: reading.date,
            start: campaign.start,
            end: campaign.end.map(|e| e.to_string()).unwrap_or_else(|| "no end".into()),
        });
    }
    Ok(())
}

impl Aggregate for SpendLedger {
    const TYPE: &'static str = "spend_ledger";
    type Command = SpendCommand;
    type Event = SpendEvent;
    type Error = SpendError;

    fn handle(&self, command: SpendCommand) -> Result<Vec<SpendEvent>, SpendError> {
        let SpendCommand::Record { reading, campaign } = command;
        if let Some(day) = self.day {
            if day != reading.date {
                return Err(SpendError::WrongDay {
                    got: reading.date,
                    expected: day,
                });
            }
        }
        validate(&reading, &campaign)?;
        match &self.latest {
            None => Ok(vec![SpendEvent::SpendRecorded(reading)]),
            // The same figures again (whenever fetched) are a repeat: nothing to record.
            Some(latest) if *latest == reading.metrics => Ok(vec![]),
            Some(latest) => Ok(vec![SpendEvent::SpendRestated {
                old: latest.clone(),
                new: reading,
            }]),
        }
    }

    fn apply(&mut self, event: SpendEvent) {
        match event {
            SpendEvent::SpendRecorded(reading) | SpendEvent::SpendRestated { new: reading, .. } => {
                self.day = Some(reading.date);
                self.latest = Some(reading.metrics);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::given;

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn metrics(spend: i64) -> Metrics {
        Metrics {
            spend_micros: spend,
            currency: "USD".into(),
            impressions: 1000,
            reach: 800,
            clicks: 30,
            views: 200,
            saves: 5,
            reactions: 12,
            comments: 3,
            shares: 2,
            follows: 4,
            conversions: 1,
        }
    }

    fn reading(date: &str, spend: i64) -> Reading {
        Reading {
            date: day(date),
            metrics: metrics(spend),
            fetched_at: "2026-03-10T06:00:00Z".parse().unwrap(),
            source: "meta_insights".into(),
        }
    }

    fn campaign() -> CampaignFacts {
        CampaignFacts {
            currency: "USD".into(),
            start: day("2026-03-01"),
            end: Some(day("2026-03-31")),
        }
    }

    fn record(r: Reading) -> SpendCommand {
        SpendCommand::Record {
            reading: r,
            campaign: campaign(),
        }
    }

    #[test]
    fn a_first_reading_is_recorded() {
        given::<SpendLedger>(vec![])
            .when(record(reading("2026-03-05", 12_500_000)))
            .then_expect_events(vec![SpendEvent::SpendRecorded(reading("2026-03-05", 12_500_000))]);
    }

    #[test]
    fn the_same_reading_again_records_nothing_even_when_fetched_later() {
        let mut later = reading("2026-03-05", 12_500_000);
        later.fetched_at = "2026-03-11T06:00:00Z".parse().unwrap();
        given::<SpendLedger>(vec![SpendEvent::SpendRecorded(reading("2026-03-05", 12_500_000))])
            .when(record(later))
            .then_expect_events(vec![]);
    }

    #[test]
    fn a_changed_reading_is_a_restatement_with_old_and_new_values() {
        given::<SpendLedger>(vec![SpendEvent::SpendRecorded(reading("2026-03-05", 12_500_000))])
            .when(record(reading("2026-03-05", 13_000_000)))
            .then_expect_events(vec![SpendEvent::SpendRestated {
                old: metrics(12_500_000),
                new: reading("2026-03-05", 13_000_000),
            }]);
    }

    #[test]
    fn negative_figures_are_refused_with_the_field_named() {
        let mut bad = reading("2026-03-05", 1);
        bad.metrics.clicks = -1;
        given::<SpendLedger>(vec![])
            .when(record(bad))
            .then_expect_error_message("clicks is negative");
    }

    #[test]
    fn another_currency_is_refused() {
        let mut bad = reading("2026-03-05", 1);
        bad.metrics.currency = "EUR".into();
        given::<SpendLedger>(vec![])
            .when(record(bad))
            .then_expect_error_message("the currency EUR is not the campaign's currency USD");
    }

    #[test]
    fn a_day_of_slack_either_side_and_no_more() {
        given::<SpendLedger>(vec![])
            .when(record(reading("2026-02-28", 1)))
            .then_expect_events(vec![SpendEvent::SpendRecorded(reading("2026-02-28", 1))]);
        given::<SpendLedger>(vec![])
            .when(record(reading("2026-04-01", 1)))
            .then_expect_events(vec![SpendEvent::SpendRecorded(reading("2026-04-01", 1))]);
        given::<SpendLedger>(vec![])
            .when(record(reading("2026-02-27", 1)))
            .then_expect_error_message(
                "2026-02-27 is outside the campaign's life (2026-03-01 to 2026-03-31, with a day of slack either side)",
            );
        given::<SpendLedger>(vec![])
            .when(record(reading("2026-04-02", 1)))
            .then_expect_error_message(
                "2026-04-02 is outside the campaign's life (2026-03-01 to 2026-03-31, with a day of slack either side)",
            );
    }

    #[test]
    fn a_ledger_holds_one_day() {
        given::<SpendLedger>(vec![SpendEvent::SpendRecorded(reading("2026-03-05", 1))])
            .when(record(reading("2026-03-06", 1)))
            .then_expect_error_message("the reading is for 2026-03-06, but this ledger is for 2026-03-05");
    }
}
