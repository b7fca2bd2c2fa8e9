//! Spend ledgers (P1, P11): one per campaign, platform and day. A reading is that day's full
//! metrics as the platform reports them. The same reading again records nothing (or, fetched
//! later, only that a later view confirmed the figures); a changed one is a restatement carrying
//! old and new values (platforms revise past days: Meta for about 28
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
    SpendRestated {
        old: Metrics,
        new: Reading,
    },
    /// A later view of the day with the same figures: no figure changes, but the day's latest
    /// `fetched_at` moves on, so an older view arriving afterwards is stale.
    SpendConfirmed {
        date: NaiveDate,
        fetched_at: DateTime<Utc>,
        source: String,
    },
}

impl DomainEvent for SpendEvent {
    const VERSIONS: &'static [(&'static str, u32)] =
        &[("SpendRecorded", 1), ("SpendRestated", 1), ("SpendConfirmed", 1)];

    fn event_type(&self) -> String {
        match self {
            SpendEvent::SpendRecorded(_) => "SpendRecorded",
            SpendEvent::SpendRestated { .. } => "SpendRestated",
            SpendEvent::SpendConfirmed { .. } => "SpendConfirmed",
        }
        .to_string()
    }
}

/// Why a reading was refused; shown per reading in ingestion answers.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpendError {
    #[error("{0} is negative")]
    Negative(&'static str),
    #[error("{field} is above its maximum of {max}")]
    TooLarge { field: &'static str, max: i64 },
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
    /// Fetched before the reading the ledger holds: the platform's older view of the day. It is
    /// not recorded and changes nothing (the ledger keeps the latest `fetched_at`).
    #[error("stale: fetched at {fetched_at}, before the reading held, fetched at {latest}")]
    Stale {
        fetched_at: DateTime<Utc>,
        latest: DateTime<Utc>,
    },
}

/// The state of one ledger: its day, its latest metrics and when they were fetched.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct SpendLedger {
    day: Option<NaiveDate>,
    latest: Option<Metrics>,
    fetched_at: Option<DateTime<Utc>>,
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
        let max = if name == "spend_micros" {
            crate::money::MAX_MICROS
        } else {
            crate::money::MAX_COUNT
        };
        if value > max {
            return Err(SpendError::TooLarge { field: name, max });
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
        // An older view of the day never replaces a newer one, whatever order they arrive in.
        if let Some(latest) = self.fetched_at {
            if reading.fetched_at < latest {
                return Err(SpendError::Stale {
                    fetched_at: reading.fetched_at,
                    latest,
                });
            }
        }
        match &self.latest {
            None => Ok(vec![SpendEvent::SpendRecorded(reading)]),
            // The same figures again: fetched later, only the later view is recorded (so an older
            // view arriving afterwards is stale); fetched at the same instant, nothing at all.
            Some(latest) if *latest == reading.metrics => {
                if self.fetched_at.is_some_and(|held| reading.fetched_at > held) {
                    Ok(vec![SpendEvent::SpendConfirmed {
                        date: reading.date,
                        fetched_at: reading.fetched_at,
                        source: reading.source,
                    }])
                } else {
                    Ok(vec![])
                }
            }
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
                self.fetched_at = Some(
                    self.fetched_at
                        .map_or(reading.fetched_at, |f| f.max(reading.fetched_at)),
                );
            }
            SpendEvent::SpendConfirmed { date, fetched_at, .. } => {
                self.day = Some(date);
                self.fetched_at = Some(self.fetched_at.map_or(fetched_at, |f| f.max(fetched_at)));
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
    fn the_same_reading_again_records_nothing() {
        given::<SpendLedger>(vec![SpendEvent::SpendRecorded(reading("2026-03-05", 12_500_000))])
            .when(record(reading("2026-03-05", 12_500_000)))
            .then_expect_events(vec![]);
    }

    #[test]
    fn the_same_figures_fetched_later_confirm_the_day_and_make_an_older_view_stale() {
        let mut later = reading("2026-03-05", 12_500_000);
        later.fetched_at = "2026-03-11T06:00:00Z".parse().unwrap();
        let confirmed = SpendEvent::SpendConfirmed {
            date: day("2026-03-05"),
            fetched_at: later.fetched_at,
            source: "meta_insights".into(),
        };
        given::<SpendLedger>(vec![SpendEvent::SpendRecorded(reading("2026-03-05", 12_500_000))])
            .when(record(later))
            .then_expect_events(vec![confirmed.clone()]);
        // Found by the seeded simulation: a view fetched between the two, with other figures,
        // arriving after the confirmation, must not replace the day.
        let mut between = reading("2026-03-05", 13_000_000);
        between.fetched_at = "2026-03-10T18:00:00Z".parse().unwrap();
        given::<SpendLedger>(vec![
            SpendEvent::SpendRecorded(reading("2026-03-05", 12_500_000)),
            confirmed,
        ])
        .when(record(between))
        .then_expect_error_message(
            "stale: fetched at 2026-03-10 18:00:00 UTC, before the reading held, fetched at 2026-03-11 06:00:00 UTC",
        );
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
    fn an_older_reading_is_stale_and_changes_nothing() {
        let mut newer = reading("2026-03-05", 13_000_000);
        newer.fetched_at = "2026-03-20T06:00:00Z".parse().unwrap();
        let mut older = reading("2026-03-05", 12_500_000);
        older.fetched_at = "2026-03-06T06:00:00Z".parse().unwrap();
        given::<SpendLedger>(vec![SpendEvent::SpendRecorded(newer.clone())])
            .when(record(older.clone()))
            .then_expect_error_message(
                "stale: fetched at 2026-03-06 06:00:00 UTC, before the reading held, fetched at 2026-03-20 06:00:00 UTC",
            );
        // A restatement fetched later still replaces the day.
        let mut later = reading("2026-03-05", 14_000_000);
        later.fetched_at = "2026-03-21T06:00:00Z".parse().unwrap();
        given::<SpendLedger>(vec![SpendEvent::SpendRecorded(newer.clone())])
            .when(record(later.clone()))
            .then_expect_events(vec![SpendEvent::SpendRestated {
                old: newer.metrics.clone(),
                new: later,
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
    fn figures_above_their_maximum_are_refused_with_the_field_named() {
        given::<SpendLedger>(vec![])
            .when(record(reading("2026-03-05", crate::money::MAX_MICROS)))
            .then_expect_events(vec![SpendEvent::SpendRecorded(reading(
                "2026-03-05",
                crate::money::MAX_MICROS,
            ))]);
        given::<SpendLedger>(vec![])
            .when(record(reading("2026-03-05", crate::money::MAX_MICROS + 1)))
            .then_expect_error_message("spend_micros is above its maximum of 1000000000000000");
        let mut bad = reading("2026-03-05", 1);
        bad.metrics.impressions = i64::MAX;
        given::<SpendLedger>(vec![])
            .when(record(bad))
            .then_expect_error_message("impressions is above its maximum of 1000000000000");
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
