//! The dashboards projection folds a batch in memory and writes each table once: a rebuild in
//! one batch, one in small batches and one event per batch leave the same `campaigns`,
//! `campaign_daily` and `platform_daily` rows (a day recorded then restated twice in one batch,
//! restatements that change the currency, spend before its campaign's draft, changes to a
//! campaign never drafted, a second draft), on SQLite and PostgreSQL; `artist_daily`, moved
//! by differences while served and summed once when a rebuilt generation takes over, holds the
//! same rows either way, and answers every dashboard exactly as summing `campaign_daily` does (which
//! serves while the active generation predates `artist_daily`); a member's dashboard reads its
//! days and checks the reader's role in one statement.

use chrono::NaiveDate;
use domain::artist::{ArtistEvent, ArtistProfile, Role as TeamRole};
use domain::campaign::{
    AdPlatform, Budget, Campaign, CampaignDraft, CampaignEvent, Creative, Objective, PlatformLink, PlatformStatus,
    Schedule,
};
use domain::spend::{Metrics, Reading, SpendEvent, SpendLedger};
use domain::{Aggregate, DomainEvent};
use eventlog::{dispatch, Db, EventLog, EventMetadata, NewEvent, Position};
use projections::read_models::artist_access::ArtistAccess;
use projections::read_models::dashboards::{self, Dashboards, DayFilter};
use sqlx::Row as _;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tests::{both_backends, wait_until};

/// How long the feed may take to show the appended events.
const BOUND: Duration = Duration::from_secs(30);

/// A row as its text columns (nullable) and then its integer columns.
type Row = (Vec<Option<String>>, Vec<i64>);

fn day(text: &str) -> NaiveDate {
    text.parse().expect("a test date")
}

fn draft(artist_id: &str, platform: AdPlatform, currency: &str) -> CampaignEvent {
    CampaignEvent::CampaignDrafted(CampaignDraft {
        artist_id: artist_id.into(),
        platform,
        objective: Objective::Streams,
        budget: Budget::Daily {
            amount_micros: 20_000_000,
        },
        currency: currency.into(),
        schedule: Schedule {
            start: day("2026-03-01"),
            end: Some(day("2026-06-30")),
        },
        countries: vec!["PK".into()],
        creatives: vec![Creative::FacebookPost { post_id: "p1".into() }],
    })
}

/// Metrics whose every figure differs, derived from `n`, so a wrong column shows.
fn metrics(n: i64, currency: &str) -> Metrics {
    Metrics {
        spend_micros: n * 1_000,
        currency: currency.into(),
        impressions: n * 100 + 1,
        reach: n * 50 + 2,
        clicks: n + 3,
        views: n * 2 + 4,
        saves: n + 5,
        reactions: n + 6,
        comments: n + 7,
        shares: n + 8,
        follows: n + 9,
        conversions: n / 2 + 10,
    }
}

fn reading(date: &str, n: i64, currency: &str) -> Reading {
    Reading {
        date: day(date),
        metrics: metrics(n, currency),
        fetched_at: "2026-05-02T03:04:05Z".parse().expect("a test time"),
        source: "meta_insights".into(),
    }
}

fn recorded(date: &str, n: i64, currency: &str) -> SpendEvent {
    SpendEvent::SpendRecorded(reading(date, n, currency))
}

fn restated(date: &str, old: (i64, &str), new: (i64, &str)) -> SpendEvent {
    SpendEvent::SpendRestated {
        old: metrics(old.0, old.1),
        new: reading(date, new.0, new.1),
    }
}

/// Appends events to streams one append at a time, tracking each stream's sequence.
struct Feed {
    log: EventLog,
    sequences: HashMap<(String, String), i64>,
    last: Position,
}

impl Feed {
    fn new(log: EventLog) -> Feed {
        Feed {
            log,
            sequences: HashMap::new(),
            last: Position::START,
        }
    }

    /// The log, once the feed shows every appended event.
    async fn shown(self) -> EventLog {
        let (log, last) = (self.log, self.last);
        let visible = wait_until(BOUND, || async {
            log.head(Position::START).await.expect("head").head >= Some(last)
        })
        .await;
        assert!(visible, "the feed shows the appended events");
        log
    }

    async fn append<E: DomainEvent>(&mut self, aggregate_type: &str, id: &str, events: &[E]) {
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
        self.last = appended.last().expect("something appended").1;
    }

    async fn campaign(&mut self, id: &str, events: &[CampaignEvent]) {
        self.append(Campaign::TYPE, id, events).await
    }

    async fn artist(&mut self, id: &str, events: &[ArtistEvent]) {
        self.append(ArtistProfile::TYPE, id, events).await
    }

    async fn spend(&mut self, ledger: &str, events: &[SpendEvent]) {
        self.append(SpendLedger::TYPE, ledger, events).await
    }
}

/// The rows of `sql`, whose first `texts` columns are text and the rest bigint.
async fn rows(db: &Db, sql: &str, texts: usize) -> Vec<Row> {
    dispatch!(db, Db, |pool| {
        let rows = sqlx::query(sql).fetch_all(pool).await.expect("read a dashboards table");
        rows.iter()
            .map(|row| {
                let text = (0..texts).map(|i| row.try_get(i).expect("a text column")).collect();
                let numbers = (texts..row.len())
                    .map(|i| row.try_get(i).expect("a bigint column"))
                    .collect();
                (text, numbers)
            })
            .collect()
    })
}

struct Tables {
    campaigns: Vec<Row>,
    daily: Vec<Row>,
    platform: Vec<Row>,
    rollup: Vec<Row>,
}

/// Rebuilds `dashboards` with batches of `batch_size` (a generation beside the served one, whose
/// `artist_daily` is summed on taking over); returns its tables and the batches it took.
async fn rebuild(log: &EventLog, batch_size: usize) -> (Tables, usize) {
    let batches = tests::rebuild_in_batches(log, Arc::new(Dashboards), batch_size).await;
    (tables(log).await, batches)
}

/// Builds the served generation of `dashboards` (the first, made by `prepare`) one event per
/// batch, as live workers do: `artist_daily` moved by differences, batch by batch.
async fn served_one_event_at_a_time(log: &EventLog) -> Tables {
    let config = projections::EngineConfig {
        batch_size: 1,
        ..projections::EngineConfig::default()
    };
    let engine = projections::Engine::new(log.clone(), vec![Arc::new(Dashboards)], config);
    engine.catch_up().await.expect("catch up dashboards");
    tables(log).await
}

/// The served generation's tables.
async fn tables(log: &EventLog) -> Tables {
    let db = log.db();
    Tables {
        campaigns: rows(
            db,
            "SELECT campaign_id, artist_id, platform, objective, stage, currency, start_date, end_date, budget_kind, \
             platform_status, connection_id, platform_account_id, platform_campaign_id, budget_micros \
             FROM campaigns ORDER BY campaign_id",
            13,
        )
        .await,
        daily: rows(
            db,
            "SELECT campaign_id, day, artist_id, platform, currency, spend_micros, impressions, reach, clicks, views, \
             saves, reactions, comments, shares, follows, conversions, restatements \
             FROM campaign_daily ORDER BY campaign_id, day",
            5,
        )
        .await,
        platform: rows(
            db,
            "SELECT platform, day, currency, spend_micros, impressions, clicks, views, conversions \
             FROM platform_daily ORDER BY platform, day, currency",
            3,
        )
        .await,
        // A row whose campaign-days all left (a restatement to another currency) stays at zero
        // when they left in a later batch than they came: not shown, so not compared.
        rollup: rows(
            db,
            "SELECT artist_id, platform, day, currency, days, spend_micros_m, spend_micros_r, impressions_m, \
             impressions_r, reach_m, reach_r, clicks_m, clicks_r, views_m, views_r, saves_m, saves_r, follows_m, \
             follows_r, conversions_m, conversions_r, engagement_m, engagement_r \
             FROM artist_daily WHERE days <> 0 ORDER BY artist_id, platform, day, currency",
            4,
        )
        .await,
    }
}

fn texts(values: &[&str]) -> Vec<Option<String>> {
    values.iter().map(|v| (!v.is_empty()).then(|| v.to_string())).collect()
}

both_backends! {
    async fn dashboards_rebuilt_in_one_batch_equal_dashboards_rebuilt_event_by_event(db: TestDb) {
        let mut feed = Feed::new(db.log());
        feed.campaign("c-1", &[draft("a1", AdPlatform::Meta, "USD")]).await;
        feed.campaign("c-2", &[draft("a2", AdPlatform::GoogleAds, "EUR")]).await;
        // Spend before its campaign is drafted: the day keeps no artist; a later day has one.
        feed.spend("c-5.meta.2026-03-01", &[recorded("2026-03-01", 40, "USD")]).await;
        // One day recorded, then restated twice (the second changing the currency), in one append
        // and in two more: the latest reading wins, `platform_daily` moves by the differences.
        feed.spend("c-1.meta.2026-03-01", &[
            recorded("2026-03-01", 10, "USD"),
            restated("2026-03-01", (10, "USD"), (14, "USD")),
        ])
        .await;
        feed.campaign("c-1", &[CampaignEvent::CampaignLaunched]).await;
        feed.spend("c-1.meta.2026-03-02", &[recorded("2026-03-02", 7, "USD")]).await;
        feed.spend("c-2.google_ads.2026-03-01", &[recorded("2026-03-01", 30, "EUR")]).await;
        feed.spend("c-1.meta.2026-03-01", &[restated("2026-03-01", (14, "USD"), (13, "EUR"))]).await;
        feed.campaign("c-5", &[draft("a5", AdPlatform::Meta, "USD")]).await;
        feed.spend("c-5.meta.2026-03-02", &[recorded("2026-03-02", 41, "USD")]).await;
        feed.spend("c-5.meta.2026-03-01", &[restated("2026-03-01", (40, "USD"), (42, "USD"))]).await;
        // The same campaign and day on another platform: the row keeps its first platform.
        feed.spend("c-1.google_ads.2026-03-02", &[recorded("2026-03-02", 8, "USD")]).await;
        feed.spend("c-2.google_ads.2026-03-03", &[
            recorded("2026-03-03", 31, "EUR"),
            restated("2026-03-03", (31, "EUR"), (33, "EUR")),
            restated("2026-03-03", (33, "EUR"), (32, "EUR")),
        ])
        .await;
        // Campaign changes: the last of each wins; a schedule change may open the end.
        feed.campaign("c-1", &[
            CampaignEvent::BudgetChanged(Budget::Lifetime { amount_micros: 900_000_000 }),
            CampaignEvent::PlatformStatusReported(PlatformStatus::UnderReview),
            CampaignEvent::PlatformCampaignLinked(PlatformLink {
                connection_id: "conn-1".into(),
                account_id: "act-1".into(),
                platform_campaign_id: "pc-1".into(),
            }),
            CampaignEvent::CampaignPaused,
            CampaignEvent::PlatformStatusReported(PlatformStatus::Issue { reason: "policy".into() }),
        ])
        .await;
        feed.campaign("c-2", &[
            CampaignEvent::ScheduleChanged(Schedule { start: day("2026-04-01"), end: None }),
            CampaignEvent::CampaignLaunched,
        ])
        .await;
        // A second draft of c-1 changes nothing; the changes after it do.
        feed.campaign("c-1", &[
            draft("a-other", AdPlatform::GoogleAds, "EUR"),
            CampaignEvent::CampaignResumed,
        ])
        .await;
        // Changes to a campaign not drafted yet are lost; its draft then starts its row, and the
        // changes after the draft apply.
        feed.campaign("c-9", &[
            CampaignEvent::BudgetChanged(Budget::Daily { amount_micros: 1 }),
            CampaignEvent::CampaignLaunched,
        ])
        .await;
        feed.campaign("c-9", &[
            draft("a9", AdPlatform::GoogleAds, "GBP"),
            CampaignEvent::ScheduleChanged(Schedule { start: day("2026-05-01"), end: Some(day("2026-05-31")) }),
            CampaignEvent::AiCreativeAdded { asset_id: "asset-1".into(), consent_event_id: "consent-1".into() },
        ])
        .await;
        // Changes to a campaign never drafted leave no row.
        feed.campaign("c-0", &[CampaignEvent::CampaignEnded]).await;
        let log = feed.shown().await;

        let served = served_one_event_at_a_time(&log).await;
        let (one, one_batches) = rebuild(&log, 1).await;
        // Batches of five put c-1's status report, its second draft and its resumption in one
        // batch over a row that exists already.
        let (pairs, _) = rebuild(&log, 2).await;
        let (fives, _) = rebuild(&log, 5).await;
        let (big, big_batches) = rebuild(&log, 1000).await;
        assert!(one_batches >= 30, "one event per batch: {one_batches} batches");
        assert_eq!(big_batches, 1, "the whole feed in one batch");
        for (name, tables) in [("one batch", &big), ("batches of two", &pairs), ("batches of five", &fives)] {
            assert_eq!(tables.campaigns, one.campaigns, "campaigns: {name} equals one event at a time");
            assert_eq!(tables.daily, one.daily, "campaign_daily: {name} equals one event at a time");
            assert_eq!(tables.platform, one.platform, "platform_daily: {name} equals one event at a time");
            assert_eq!(tables.rollup, one.rollup, "artist_daily: {name} equals one event at a time");
        }
        // The rebuilt generations summed `artist_daily` once; the served one moved it by
        // differences, batch by batch: the same rows (and every other table the same).
        assert!(!served.rollup.is_empty(), "the served generation keeps artist_daily");
        assert_eq!(served.rollup, one.rollup, "artist_daily: summed on take-over equals moved batch by batch");
        assert_eq!(served.daily, one.daily, "campaign_daily: served equals rebuilt");
        assert_eq!(served.platform, one.platform, "platform_daily: served equals rebuilt");
        assert_eq!(served.campaigns, one.campaigns, "campaigns: served equals rebuilt");
        // Every dashboard read from `artist_daily` is the one summed from `campaign_daily`.
        for artist in ["a1", "a2", "a5", "a9", ""] {
            for platform in [None, Some("meta"), Some("google_ads")] {
                for (from, to) in [(None, None), (Some(day("2026-03-02")), Some(day("2026-03-02")))] {
                    let filter = DayFilter { from, to, platform, campaign: None };
                    let rolled = dashboards::artist_days_rolled_up(&log, artist, &filter).await.expect("rolled up");
                    let summed = dashboards::artist_days_summed(log.db(), artist, &filter).await.expect("summed");
                    assert_eq!(rolled, summed, "{artist} {filter:?}");
                }
            }
        }
        // One campaign's days are its rows as they are: what summing them by day gives.
        for (artist, campaign) in [("a1", "c-1"), ("a2", "c-2"), ("a5", "c-5"), ("", "c-5"), ("a1", "c-2")] {
            for platform in [None, Some("meta")] {
                let filter = DayFilter { platform, campaign: Some(campaign), ..DayFilter::default() };
                let rows = dashboards::artist_days(&log, artist, &filter).await.expect("one campaign");
                let summed = dashboards::artist_days_summed(log.db(), artist, &filter).await.expect("summed");
                assert_eq!(rows, summed, "{artist} {filter:?}");
            }
        }
        // a1: c-1's first day moved to EUR (its USD row counts no day and is not shown); its
        // second day holds the later reading, from the other platform, under the row's platform.
        let a1 = dashboards::artist_days(&log, "a1", &DayFilter::default()).await.expect("a1's days");
        let shown: Vec<_> = a1.iter().map(|d| (d.day.to_string(), d.currency.clone(), d.spend_micros, d.engagement)).collect();
        let m = |n: i64| metrics(n, "");
        let engagement = |n: i64| m(n).reactions + m(n).comments + m(n).shares;
        assert_eq!(shown, vec![
            ("2026-03-01".to_string(), "EUR".to_string(), m(13).spend_micros, engagement(13)),
            ("2026-03-02".to_string(), "USD".to_string(), m(8).spend_micros, engagement(8)),
        ]);
        let on_meta = DayFilter { platform: Some("meta"), ..DayFilter::default() };
        assert_eq!(dashboards::artist_days(&log, "a1", &on_meta).await.expect("a1 on meta"), a1);

        // While the active generation is one from before `artist_daily` (its views are the other
        // three tables; a new version rebuilds beside it), the dashboard is summed from
        // `campaign_daily`: the same answer, not an error. The take-over serves the table again.
        let everyone = ["a1", "a2", "a5", "a9", ""];
        let mut before = Vec::new();
        for artist in everyone {
            before.push(dashboards::artist_days(&log, artist, &DayFilter::default()).await.expect("days"));
        }
        dispatch!(log.db(), Db, |pool| {
            sqlx::query("DROP VIEW artist_daily").execute(pool).await.expect("drop the view");
        });
        for (artist, expected) in everyone.iter().zip(&before) {
            let days = dashboards::artist_days(&log, artist, &DayFilter::default()).await;
            assert_eq!(days.as_ref().ok(), Some(expected), "{artist} with no artist_daily: {days:?}");
        }
        let unserved = dashboards::artist_days_rolled_up(&log, "a1", &DayFilter::default()).await;
        assert!(unserved.is_err(), "artist_daily is not served: {unserved:?}");
        let _ = rebuild(&log, 1000).await;
        for (artist, expected) in everyone.iter().zip(&before) {
            let filter = DayFilter::default();
            let rolled = dashboards::artist_days_rolled_up(&log, artist, &filter).await.expect("served again");
            assert_eq!(&rolled, expected, "{artist} after the take-over");
        }

        let figures = |n: i64| {
            let m = metrics(n, "");
            vec![m.spend_micros, m.impressions, m.reach, m.clicks, m.views, m.saves, m.reactions, m.comments,
                 m.shares, m.follows, m.conversions]
        };
        let daily = |id: &str, date: &str, artist: &str, platform: &str, currency: &str, n: i64, restatements: i64| {
            let mut numbers = figures(n);
            numbers.push(restatements);
            (vec![Some(id.into()), Some(date.into()), Some(artist.into()), Some(platform.into()), Some(currency.into())], numbers)
        };
        assert_eq!(big.daily, vec![
            daily("c-1", "2026-03-01", "a1", "meta", "EUR", 13, 2),
            daily("c-1", "2026-03-02", "a1", "meta", "USD", 8, 0),
            daily("c-2", "2026-03-01", "a2", "google_ads", "EUR", 30, 0),
            daily("c-2", "2026-03-03", "a2", "google_ads", "EUR", 32, 2),
            daily("c-5", "2026-03-01", "", "meta", "USD", 42, 1),
            daily("c-5", "2026-03-02", "a5", "meta", "USD", 41, 0),
        ]);
        // spend, impressions, clicks, views, conversions of a reading, and their differences.
        let sums = |n: i64| {
            let m = metrics(n, "");
            [m.spend_micros, m.impressions, m.clicks, m.views, m.conversions]
        };
        let minus = |a: [i64; 5], b: [i64; 5]| -> Vec<i64> { a.iter().zip(b).map(|(x, y)| x - y).collect() };
        let platform = |p: &str, date: &str, currency: &str, numbers: Vec<i64>| {
            (vec![Some(p.into()), Some(date.into()), Some(currency.into())], numbers)
        };
        assert_eq!(big.platform, vec![
            platform("google_ads", "2026-03-01", "EUR", sums(30).to_vec()),
            platform("google_ads", "2026-03-02", "USD", sums(8).to_vec()),
            platform("google_ads", "2026-03-03", "EUR", sums(32).to_vec()),
            // c-1's day moved to EUR by 13 − 14; USD kept 14. c-5's first day: 42; both days of c-1 and c-5.
            platform("meta", "2026-03-01", "EUR", minus(sums(13), sums(14))),
            platform("meta", "2026-03-01", "USD", sums(14).iter().zip(sums(42)).map(|(a, b)| a + b).collect()),
            platform("meta", "2026-03-02", "USD", sums(7).iter().zip(sums(41)).map(|(a, b)| a + b).collect()),
        ]);
        assert_eq!(big.campaigns, vec![
            (
                texts(&["c-1", "a1", "meta", "streams", "live", "USD", "2026-03-01", "2026-06-30", "lifetime", "issue",
                        "conn-1", "act-1", "pc-1"]),
                vec![900_000_000],
            ),
            (
                texts(&["c-2", "a2", "google_ads", "streams", "live", "EUR", "2026-04-01", "", "daily", "", "", "", ""]),
                vec![20_000_000],
            ),
            (
                texts(&["c-5", "a5", "meta", "streams", "draft", "USD", "2026-03-01", "2026-06-30", "daily", "", "", "",
                        ""]),
                vec![20_000_000],
            ),
            (
                texts(&["c-9", "a9", "google_ads", "streams", "draft", "GBP", "2026-05-01", "2026-05-31", "daily", "",
                        "", "", ""]),
                vec![20_000_000],
            ),
        ]);
    }
}

both_backends! {
    async fn a_dashboard_reads_its_days_and_checks_access_in_one_statement(db: TestDb) {
        let mut feed = Feed::new(db.log());
        let created = |owner: &str| ArtistEvent::ArtistCreated {
            owner: owner.into(),
            name: "An artist".into(),
            spotify_artist_id: None,
        };
        feed.artist("a1", &[
            created("p-owner"),
            ArtistEvent::InvitationAccepted {
                invitation_id: "inv-1".into(),
                person_id: "p-viewer".into(),
                role: TeamRole::Viewer,
            },
        ])
        .await;
        feed.artist("a2", &[created("p-other")]).await;
        feed.campaign("c-1", &[draft("a1", AdPlatform::Meta, "USD")]).await;
        feed.campaign("c-2", &[draft("a2", AdPlatform::GoogleAds, "EUR")]).await;
        feed.spend("c-1.meta.2026-03-01", &[recorded("2026-03-01", 10, "USD")]).await;
        feed.spend("c-1.meta.2026-03-02", &[recorded("2026-03-02", 11, "USD")]).await;
        feed.spend("c-2.google_ads.2026-03-01", &[recorded("2026-03-01", 30, "EUR")]).await;
        let log = feed.shown().await;
        let _ = rebuild(&log, 1000).await;
        tests::rebuild_in_batches(&log, Arc::new(ArtistAccess), 1000).await;

        let everything = DayFilter::default();
        let one_campaign = DayFilter { campaign: Some("c-1"), ..DayFilter::default() };
        let nothing_matches = DayFilter { from: Some(day("2027-01-01")), ..DayFilter::default() };
        let member = |artist: &'static str, person: &'static str, filter: DayFilter<'static>| {
            let log = log.clone();
            async move { dashboards::member_artist_days(&log, artist, person, &filter).await.expect("member read") }
        };
        let a1 = dashboards::artist_days(&log, "a1", &everything).await.expect("a1's days");
        assert_eq!(a1.len(), 2, "a1 has two days: {a1:?}");
        let c1 = dashboards::artist_days(&log, "a1", &one_campaign).await.expect("c-1's days");
        for person in ["p-owner", "p-viewer"] {
            assert_eq!(member("a1", person, everything.clone()).await, Some(a1.clone()), "{person} on a1");
            assert_eq!(member("a1", person, one_campaign.clone()).await, Some(c1.clone()), "{person} on c-1");
            // A member whose filter matches no day is told so (no days), not refused.
            assert_eq!(member("a1", person, nothing_matches.clone()).await, Some(vec![]), "{person}, no day");
        }
        // Another artist's campaign is not a1's: a member of a1 sees none of its days.
        let c2 = DayFilter { campaign: Some("c-2"), ..DayFilter::default() };
        assert_eq!(member("a1", "p-owner", c2.clone()).await, Some(vec![]), "c-2 through a1");
        // Someone with no role on the artist reads nothing, whatever the filter.
        for (person, filter) in [("p-other", everything.clone()), ("p-other", one_campaign.clone()),
                                 ("stranger", nothing_matches.clone()), ("", everything.clone())] {
            assert_eq!(member("a1", person, filter.clone()).await, None, "{person} on a1 {filter:?}");
        }
        assert_eq!(member("a-unknown", "p-owner", everything.clone()).await, None, "an unknown artist");
        // More reads at once than the log keeps connections for (the pool's size, 16 on
        // PostgreSQL, `eventlog::kept_connections`): those beyond go through the pool, and every
        // one answers the same.
        let at_once = futures::future::join_all((0..40).map(|_| member("a1", "p-viewer", everything.clone()))).await;
        assert!(at_once.iter().all(|days| days.as_ref() == Some(&a1)), "40 reads at once: {at_once:?}");
        // While the active generation predates `artist_daily`, the same answers (summed).
        dispatch!(log.db(), Db, |pool| {
            sqlx::query("DROP VIEW artist_daily").execute(pool).await.expect("drop the view");
        });
        assert_eq!(member("a1", "p-viewer", everything.clone()).await, Some(a1.clone()), "summed, a viewer");
        assert_eq!(member("a1", "p-other", everything.clone()).await, None, "summed, not a member");
    }
}
