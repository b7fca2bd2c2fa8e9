//! The billing projection folds spend readings, restatements and campaign drafts per batch: a
//! rebuild one event per batch, one in small batches and one in a single large batch leave the
//! same `billing_readings` and `billing_campaigns` rows (the latest reading of each ledger with
//! the position of its last event, the first draft of each campaign), on SQLite and PostgreSQL.

use chrono::NaiveDate;
use domain::billing::{BillingAccount, BillingEvent, BillingPeriod, PeriodEvent, Plan, StripeFact};
use domain::campaign::{AdPlatform, Budget, Campaign, CampaignDraft, CampaignEvent, Creative, Objective, Schedule};
use domain::spend::{Reading, SpendEvent, SpendLedger};
use domain::{Aggregate, DomainEvent};
use eventlog::{dispatch, Db, EventLog, EventMetadata, NewEvent, Position};
use projections::read_models::billing::Billing;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tests::{both_backends, spend_metrics as metrics, wait_until};

/// How long the feed may take to show the appended events.
const BOUND: Duration = Duration::from_secs(30);

type ReadingRow = (String, String, String, String, i64, i64, i64);
type CampaignRow = (String, String);

fn draft(artist_id: &str) -> CampaignEvent {
    CampaignEvent::CampaignDrafted(CampaignDraft {
        artist_id: artist_id.into(),
        platform: AdPlatform::Meta,
        objective: Objective::Streams,
        budget: Budget::Daily {
            amount_micros: 20_000_000,
        },
        currency: "USD".into(),
        schedule: Schedule {
            start: day("2026-03-01"),
            end: None,
        },
        countries: vec!["PK".into()],
        creatives: vec![Creative::FacebookPost { post_id: "p1".into() }],
    })
}

fn day(text: &str) -> NaiveDate {
    text.parse().expect("a test date")
}

fn reading(date: &str, spend_micros: i64, currency: &str) -> Reading {
    Reading {
        date: day(date),
        metrics: metrics(spend_micros, currency),
        fetched_at: "2026-05-02T03:04:05Z".parse().expect("a test time"),
        source: "meta_insights".into(),
    }
}

fn recorded(date: &str, spend_micros: i64) -> SpendEvent {
    SpendEvent::SpendRecorded(reading(date, spend_micros, "USD"))
}

fn restated(date: &str, old: i64, new: i64, currency: &str) -> SpendEvent {
    SpendEvent::SpendRestated {
        old: metrics(old, "USD"),
        new: reading(date, new, currency),
    }
}

fn plan() -> Plan {
    Plan {
        monthly_fee_micros: 49_000_000,
        included_spend_micros: 500_000_000,
        fee_basis_points: 250,
        currency: "USD".into(),
        time_zone: "Asia/Karachi".into(),
    }
}

/// Appends events to streams one append at a time, tracking each stream's sequence.
struct Feed {
    log: EventLog,
    sequences: HashMap<(String, String), i64>,
    last: Position,
    events: usize,
}

impl Feed {
    async fn append<E: DomainEvent>(&mut self, aggregate_type: &str, id: &str, events: &[E]) -> Vec<Position> {
        let sequence = self.sequences.entry((aggregate_type.into(), id.into())).or_default();
        let new = events
            .iter()
            .map(|e| NewEvent::from_domain(e).expect("serialise a test event"))
            .collect();
        let appended = self
            .log
            .append(aggregate_type, id, *sequence, new, &EventMetadata::system())
            .await
            .expect("append");
        *sequence += events.len() as i64;
        self.events += events.len();
        let positions: Vec<Position> = appended.into_iter().map(|(_, p)| p).collect();
        self.last = *positions.last().expect("something appended");
        positions
    }
}

async fn reading_rows(db: &Db) -> Vec<ReadingRow> {
    let sql = "SELECT ledger_id, campaign_id, period, currency, spend_micros, last_commit, last_global \
               FROM billing_readings ORDER BY ledger_id";
    dispatch!(db, Db, |pool| sqlx::query_as(sql).fetch_all(pool).await).expect("read billing_readings")
}

async fn campaign_rows(db: &Db) -> Vec<CampaignRow> {
    let sql = "SELECT campaign_id, artist_id FROM billing_campaigns ORDER BY campaign_id";
    dispatch!(db, Db, |pool| sqlx::query_as(sql).fetch_all(pool).await).expect("read billing_campaigns")
}

/// Rebuilds `billing` with batches of `batch_size`; returns the rows and how many batches it took.
async fn rebuild(log: &EventLog, batch_size: usize) -> (Vec<ReadingRow>, Vec<CampaignRow>, usize) {
    let batches = tests::rebuild_in_batches(log, Arc::new(Billing), batch_size).await;
    (reading_rows(log.db()).await, campaign_rows(log.db()).await, batches)
}

both_backends! {
    async fn billing_rebuilt_in_one_batch_equals_billing_rebuilt_event_by_event(db: TestDb) {
        let mut feed = Feed {
            log: db.log(),
            sequences: HashMap::new(),
            last: Position::START,
            events: 0,
        };
        let (account, ledger, campaign, period) =
            (BillingAccount::TYPE, SpendLedger::TYPE, Campaign::TYPE, BillingPeriod::TYPE);
        feed.append(account, "ba-1", &[BillingEvent::BillingAccountOpened {
            owner: "person:1".into(),
            stripe_customer_id: "cus_1".into(),
            plan: plan(),
        }])
        .await;
        feed.append(account, "ba-1", &[BillingEvent::ArtistAttached { artist_id: "a1".into() }]).await;
        feed.append(campaign, "c-1", &[draft("a1")]).await;
        // A second draft of the same campaign does not move it: the first artist stays.
        feed.append(campaign, "c-1", &[draft("a-other")]).await;
        feed.append(campaign, "c-2", &[draft("a2")]).await;
        feed.append(ledger, "c-1.meta.2026-03-01", &[recorded("2026-03-01", 5_000_000)]).await;
        let day_two = feed.append(ledger, "c-1.meta.2026-03-02", &[recorded("2026-03-02", 1_000_000)]).await;
        feed.append(account, "ba-1", &[BillingEvent::StripeFactRecorded(StripeFact {
            stripe_event_id: "evt_1".into(),
            event_type: "invoice.paid".into(),
            object_id: "in_1".into(),
            amount_minor: Some(4_900),
            currency: Some("usd".into()),
            status: Some("paid".into()),
            created: 1_772_000_000,
            signed_at: 1_772_000_001,
        })])
        .await;
        feed.append(ledger, "c-1.meta.2026-03-01", &[restated("2026-03-01", 5_000_000, 7_000_000, "USD")]).await;
        // Two events of one ledger in one append, then a third later: the last one wins.
        let both = feed
            .append(ledger, "c-2.google_ads.2026-04-30", &[
                recorded("2026-04-30", 300_000),
                restated("2026-04-30", 300_000, 450_000, "USD"),
            ])
            .await;
        feed.append(campaign, "c-3", &[draft("a1")]).await;
        let day_one = feed
            .append(ledger, "c-1.meta.2026-03-01", &[restated("2026-03-01", 7_000_000, 6_500_000, "EUR")])
            .await;
        feed.append(period, "ba-1.2026-03", &[PeriodEvent::UsageReported {
            identifier: "ba-1.2026-03".into(),
            value_minor: 1_234,
        }])
        .await;
        let c3 = feed.append(ledger, "c-3.meta.2026-05-31", &[recorded("2026-05-31", 0)]).await;
        let (last, events) = (feed.last, feed.events);
        let log = feed.log;
        let visible = wait_until(BOUND, || async {
            log.head(Position::START).await.expect("head").head >= Some(last)
        })
        .await;
        assert!(visible, "the feed shows the appended events");

        let (one_readings, one_campaigns, one_batches) = rebuild(&log, 1).await;
        let (small_readings, small_campaigns, _) = rebuild(&log, 4).await;
        let (big_readings, big_campaigns, big_batches) = rebuild(&log, 1000).await;
        assert_eq!(one_batches, events, "one event per batch");
        assert_eq!(big_batches, 1, "the whole feed in one batch");
        assert_eq!(big_readings, one_readings, "billing_readings: one batch equals one event at a time");
        assert_eq!(big_campaigns, one_campaigns, "billing_campaigns: one batch equals one event at a time");
        assert_eq!(small_readings, one_readings, "billing_readings: small batches equal one event at a time");
        assert_eq!(small_campaigns, one_campaigns, "billing_campaigns: small batches equal one event at a time");

        let row = |ledger: &str, campaign: &str, period: &str, currency: &str, spend: i64, at: Position| {
            (ledger.into(), campaign.into(), period.into(), currency.into(), spend, at.commit, at.global)
        };
        assert_eq!(
            big_readings,
            vec![
                row("c-1.meta.2026-03-01", "c-1", "2026-03", "EUR", 6_500_000, day_one[0]),
                row("c-1.meta.2026-03-02", "c-1", "2026-03", "USD", 1_000_000, day_two[0]),
                row("c-2.google_ads.2026-04-30", "c-2", "2026-04", "USD", 450_000, both[1]),
                row("c-3.meta.2026-05-31", "c-3", "2026-05", "USD", 0, c3[0]),
            ]
        );
        assert_eq!(
            big_campaigns,
            vec![("c-1".into(), "a1".into()), ("c-2".into(), "a2".into()), ("c-3".into(), "a1".into())]
        );
    }
}
