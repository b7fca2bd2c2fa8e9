//! The event-log conformance suite: the promises of `eventlog` (append and load, consistency
//! tokens, conflicts, commands, the commit-ordered feed, all-or-nothing multi-stream appends,
//! exactly-once delivery under concurrent writers), each checked against SQLite, PostgreSQL and
//! KurrentDB (the in-process stand-in, or `DYNAMOI_TEST_KURRENTDB_URL`).

use chrono::{SubsecRound, Utc};
use domain::policy::{PolicyCommand, PolicyDocument, PolicyError, PolicyEvent};
use domain::Aggregate;
use eventlog::{CommandError, Db, EventLog, EventMetadata, LogError, NewEvent, Position, StoredEvent, StreamAppend};
use serde_json::json;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tests::{three_backends, wait_until, Backend, TestDb};
use uuid::Uuid;

/// The aggregate type the suite's hand-made events belong to.
const TYPE: &str = "conformance";

fn event(event_type: &str, n: i64) -> NewEvent {
    NewEvent::json(event_type, "1", &json!({ "n": n, "text": format!("event number {n}") }))
}

fn metadata(actor: &str) -> EventMetadata {
    EventMetadata {
        actor: actor.into(),
        request_id: Some(format!("req-{actor}")),
        causation_id: None,
    }
}

fn backend(db: &TestDb) -> &'static str {
    db.backend_name()
}

/// How long any wait in this suite may take before it counts as a failure.
const BOUND: Duration = Duration::from_secs(30);

/// The whole feed in one read.
async fn read_all(log: &EventLog) -> Vec<StoredEvent> {
    log.read_feed(Position::START, 1_000_000).await.expect("read the feed")
}

/// The whole feed, once the event at `last` is visible in it. On PostgreSQL a commit joins the
/// feed once every transaction that began before it has ended, in any database of the server,
/// so a read right after an append may not show it yet. A visible `last` means every event
/// committed before it is visible too.
async fn feed_through(log: &EventLog, last: Position) -> Vec<StoredEvent> {
    let visible = wait_until(BOUND, || async {
        log.head(Position::START).await.expect("head").head >= Some(last)
    })
    .await;
    assert!(visible, "position {last} became visible in the feed within {BOUND:?}");
    read_all(log).await
}

fn ids(events: &[StoredEvent]) -> Vec<Uuid> {
    events.iter().map(|e| e.event_id).collect()
}

fn assert_strictly_increasing(positions: impl IntoIterator<Item = Position>) {
    let positions: Vec<Position> = positions.into_iter().collect();
    for pair in positions.windows(2) {
        assert!(
            pair[0] < pair[1],
            "positions must strictly increase: {} then {}",
            pair[0],
            pair[1]
        );
    }
}

fn publish(label: &str, effective_date: &str, text: char) -> PolicyCommand {
    PolicyCommand::PublishVersion {
        label: label.into(),
        effective_date: effective_date.parse().expect("a test date"),
        locale: "en".into(),
        text_sha256: std::iter::repeat_n(text, 64).collect(),
        summary_of_changes: "What changed.".into(),
    }
}

three_backends! {
    async fn appended_events_load_back_in_sequence_order_with_everything_they_carry(db: TestDb) {
        // The log stamps `recorded_at` from its clock, here standing at an instant the test sets.
        let instant: chrono::DateTime<Utc> = "2026-11-15T12:00:00.123456789Z".parse().unwrap();
        let log = db.log_with_clock(clock::ManualClock::new(instant));
        let metadata = EventMetadata {
            actor: "person:alice".into(),
            request_id: Some("req-42".into()),
            causation_id: Some(Uuid::now_v7().to_string()),
        };
        let events = vec![
            NewEvent::json("Opened", "1", &json!({ "owner": "alice", "limits": [1, 2, 3], "ratio": 0.25 })),
            NewEvent::json("Renamed", "2", &json!({ "name": "Ünïcødé ✓ \"quoted\" 'single'", "nested": { "a": null, "b": true } })),
            NewEvent::json("Closed", "1", &json!({})),
        ];
        // Another aggregate, and the same id under another type, must not mix in.
        log.append(TYPE, "a-2", 0, vec![event("Other", 1)], &EventMetadata::system()).await.expect("append a-2");
        log.append("elsewhere", "a-1", 0, vec![event("Other", 2)], &EventMetadata::system()).await.expect("append elsewhere");

        let appended = log.append(TYPE, "a-1", 0, events.clone(), &metadata).await.expect("append a-1");
        assert_eq!(appended.len(), 3);

        let loaded = log.load(TYPE, "a-1").await.expect("load a-1");
        assert_eq!(loaded.len(), 3, "exactly the three events of a-1");
        for (i, (stored, (new, (id, position)))) in loaded.iter().zip(events.iter().zip(&appended)).enumerate() {
            assert_eq!(stored.sequence, i as i64 + 1);
            assert_eq!(stored.aggregate_type, TYPE);
            assert_eq!(stored.aggregate_id, "a-1");
            assert_eq!(stored.event_type, new.event_type);
            assert_eq!(stored.event_version, new.event_version);
            assert_eq!(stored.payload, new.payload_value());
            assert_eq!(stored.metadata, metadata);
            assert_eq!(stored.event_id, *id, "the id the append returned");
            assert_eq!(stored.event_id.get_version_num(), 7, "event ids are UUIDv7");
            assert_eq!(stored.position, *position, "the position the append returned");
            assert_eq!(stored.recorded_at.timestamp_subsec_nanos() % 1_000, 0, "recorded_at is in whole microseconds");
            assert_eq!(stored.recorded_at, instant.trunc_subsecs(6), "recorded_at is the clock's instant");
        }
        assert_eq!(loaded.iter().map(|e| e.event_id).collect::<HashSet<_>>().len(), 3, "ids are distinct");

        // The feed returns the very same events, recorded_at included, to the microsecond.
        let feed = feed_through(&log, appended[2].1).await;
        assert_eq!(feed.len(), 5);
        let from_feed: Vec<StoredEvent> =
            feed.into_iter().filter(|e| e.aggregate_type == TYPE && e.aggregate_id == "a-1").collect();
        assert_eq!(from_feed, loaded);

        // Metadata with nothing optional comes back as it went in.
        let system = log.load("elsewhere", "a-1").await.expect("load elsewhere");
        assert_eq!(system.len(), 1);
        assert_eq!(system[0].metadata, EventMetadata::system());
        assert_eq!(system[0].payload, json!({ "n": 2, "text": "event number 2" }));
    }
}

three_backends! {
    async fn loaded_states_are_each_stream_folded_in_sequence_order_with_its_head(db: TestDb) {
        use domain::spend::{CampaignFacts, Reading, SpendCommand, SpendEvent, SpendLedger};
        let log = db.log();
        let md = metadata("service:test");
        let day = chrono::NaiveDate::from_ymd_opt(2026, 3, 1).expect("a date");
        let at = |hour: u32| day.and_hms_opt(hour, 0, 0).expect("an hour").and_utc();
        let metrics = |spend_micros: i64| tests::spend_metrics(spend_micros, "USD");
        let reading = |spend_micros: i64, hour: u32| Reading {
            date: day,
            metrics: metrics(spend_micros),
            fetched_at: at(hour),
            source: "test".into(),
        };
        let events = |events: &[SpendEvent]| -> Vec<NewEvent> {
            events.iter().map(|e| NewEvent::from_domain(e).expect("serialisable")).collect()
        };
        let [a, b, c] = ["camp-a", "camp-b", "camp-c"].map(|campaign| SpendLedger::id(campaign, "meta", day));
        // Three ledgers, their appends interleaved: `a` in three appends among `b`'s and `c`'s.
        log.append(SpendLedger::TYPE, &a, 0, events(&[SpendEvent::SpendRecorded(reading(1, 1))]), &md).await.expect("a 1");
        log.append(SpendLedger::TYPE, &b, 0, events(&[SpendEvent::SpendRecorded(reading(5, 1))]), &md).await.expect("b 1");
        log.append(SpendLedger::TYPE, &a, 1, events(&[SpendEvent::SpendRestated { old: metrics(1), new: reading(2, 2) }]), &md)
            .await
            .expect("a 2");
        log.append(
            SpendLedger::TYPE,
            &c,
            0,
            events(&[SpendEvent::SpendRecorded(reading(7, 1)), SpendEvent::SpendRestated { old: metrics(7), new: reading(8, 2) }]),
            &md,
        )
        .await
        .expect("c 1-2");
        log.append(
            SpendLedger::TYPE,
            &a,
            2,
            events(&[SpendEvent::SpendConfirmed { date: day, fetched_at: at(3), source: "test".into() }]),
            &md,
        )
        .await
        .expect("a 3");

        let absent = SpendLedger::id("camp-none", "meta", day);
        let asked = vec![c.clone(), absent.clone(), a.clone(), b.clone(), a.clone()];
        let states = log.load_states::<SpendLedger>(&asked).await.expect("states");
        assert_eq!(states.len(), 3, "{}: an id with no event is absent", backend(&db));
        assert!(!states.contains_key(&absent));
        for (id, events) in [(&a, 3), (&b, 1), (&c, 2)] {
            let stored = log.load(SpendLedger::TYPE, id).await.expect("load");
            assert_eq!(stored.len(), events);
            let mut folded = SpendLedger::default();
            for event in &stored {
                folded.apply(event.decode().expect("decodes"));
            }
            let state = &states[id];
            assert_eq!(state.state, folded, "{}: {id} is its stream folded in order", backend(&db));
            assert_eq!(state.sequence, events as i64);
            assert_eq!(state.chain_hash, stored.last().expect("an event").chain_hash);
        }
        // What the fold means: `a` holds 2, last fetched at 3 o'clock. The same figures at that
        // instant record nothing; 1 at 2 o'clock is stale. Folded out of order (the record last)
        // it would hold 1 and restate.
        let facts = CampaignFacts { currency: "USD".into(), start: day, end: None };
        let record = |reading| SpendCommand::Record { reading, campaign: facts.clone() };
        assert_eq!(states[&a].state.handle(record(reading(2, 3))), Ok(vec![]));
        assert!(states[&a].state.handle(record(reading(1, 2))).is_err());
    }
}

three_backends! {
    async fn loaded_states_hold_the_ids_asked_and_none_of_their_neighbours(db: TestDb) {
        use domain::spend::{Reading, SpendEvent, SpendLedger};
        let log = db.log();
        let md = metadata("service:test");
        let day = |d: u32| chrono::NaiveDate::from_ymd_opt(2026, 3, d).expect("a date");
        let record = |d: u32, spend_micros: i64| {
            let reading = Reading {
                date: day(d),
                metrics: tests::spend_metrics(spend_micros, "USD"),
                fetched_at: day(d).and_hms_opt(12, 0, 0).expect("noon").and_utc(),
                source: "test".into(),
            };
            vec![NewEvent::from_domain(&SpendEvent::SpendRecorded(reading)).expect("serialisable")]
        };
        // Six days of one campaign's ledgers, two of another's, and a stream whose id sorts
        // among the first campaign's days without being one of them.
        for d in 1..=6 {
            let id = SpendLedger::id("camp-a", "meta", day(d));
            log.append(SpendLedger::TYPE, &id, 0, record(d, i64::from(d)), &md).await.expect("a day");
        }
        for d in 1..=2 {
            let id = SpendLedger::id("camp-b", "meta", day(d));
            log.append(SpendLedger::TYPE, &id, 0, record(d, 100 + i64::from(d)), &md).await.expect("b day");
        }
        let between = format!("{}x", SpendLedger::id("camp-a", "meta", day(3)));
        log.append(SpendLedger::TYPE, &between, 0, record(3, 999), &md).await.expect("between");

        // Asked with gaps (a family read as one range holds days not asked for), out of order,
        // with ids that have no event.
        let asked: Vec<String> = [("camp-a", 6), ("camp-b", 2), ("camp-a", 1), ("camp-a", 3), ("camp-a", 4), ("camp-a", 7), ("camp-c", 1)]
            .iter()
            .map(|(campaign, d)| SpendLedger::id(campaign, "meta", day(*d)))
            .collect();
        let states = log.load_states::<SpendLedger>(&asked).await.expect("states");
        let mut held: Vec<&String> = states.keys().collect();
        held.sort();
        let mut expected: Vec<&String> = asked[..5].iter().collect();
        expected.sort();
        assert_eq!(held, expected, "{}: exactly the asked ids that have events", backend(&db));
        for id in expected {
            let mut folded = SpendLedger::default();
            for event in log.load(SpendLedger::TYPE, id).await.expect("load") {
                folded.apply(event.decode().expect("decodes"));
            }
            assert_eq!(states[id].state, folded, "{}: {id} is its own stream folded", backend(&db));
            assert_eq!(states[id].sequence, 1);
        }
    }
}

three_backends! {
    async fn an_append_returns_the_position_of_its_last_event_as_the_feed_reports_it(db: TestDb) {
        let log = db.log();
        let md = metadata("service:test");
        let first = log.append(TYPE, "t-1", 0, vec![event("A", 1), event("A", 2)], &md).await.expect("first");
        let second = log.append(TYPE, "t-2", 0, vec![event("B", 1)], &md).await.expect("second");
        let third = log.append(TYPE, "t-1", 2, vec![event("A", 3), event("A", 4), event("A", 5)], &md).await.expect("third");

        let all: Vec<(Uuid, Position)> = first.iter().chain(&second).chain(&third).copied().collect();
        assert_eq!(all.len(), 6);
        assert_strictly_increasing(all.iter().map(|(_, p)| *p));

        let token = third.last().expect("three events").1;
        let feed = feed_through(&log, token).await;
        assert_eq!(feed.iter().map(|e| (e.event_id, e.position)).collect::<Vec<_>>(), all);

        let head = log.head(Position::START).await.expect("head");
        assert_eq!(head.head, Some(token), "the token of the last append is the head of the feed");
        assert_eq!(head.events_after, 6);
        assert_eq!(log.head(token).await.expect("head after token").events_after, 0);
        assert!(log.read_feed(token, 100).await.expect("read after token").is_empty());

        // Resuming after the second append's token yields exactly the third append's events.
        let second_token = second.last().expect("one event").1;
        let rest = log.read_feed(second_token, 100).await.expect("read after second");
        assert_eq!(ids(&rest), third.iter().map(|(id, _)| *id).collect::<Vec<_>>());
        assert_eq!(rest.last().map(|e| e.position), Some(token));

        // The token survives its text form, as clients pass it back.
        assert_eq!(token.to_string().parse::<Position>(), Ok(token));
    }
}

three_backends! {
    async fn an_append_with_a_stale_expected_sequence_is_a_conflict_and_writes_nothing(db: TestDb) {
        let log = db.log();
        let md = metadata("service:test");
        let original = log.append(TYPE, "c-1", 0, vec![event("A", 1), event("A", 2)], &md).await.expect("append");

        for stale in [0, 1] {
            let error = log
                .append(TYPE, "c-1", stale, vec![event("X", 10), event("X", 11)], &md)
                .await
                .expect_err("a stale expected sequence is refused");
            match error {
                LogError::Conflict { aggregate_type, aggregate_id } => {
                    assert_eq!(aggregate_type, TYPE);
                    assert_eq!(aggregate_id, "c-1");
                }
                other => panic!("expected a conflict after expecting {stale}, got {other:?}"),
            }
        }

        let loaded = log.load(TYPE, "c-1").await.expect("load");
        assert_eq!(ids(&loaded), original.iter().map(|(id, _)| *id).collect::<Vec<_>>());
        assert!(loaded.iter().all(|e| e.event_type == "A"));

        // The right expectation still appends, right after; once it is visible, so is anything
        // committed before it, and the feed holds no trace of the refused appends.
        let next = log.append(TYPE, "c-1", 2, vec![event("A", 3)], &md).await.expect("append at 2");
        let loaded = log.load(TYPE, "c-1").await.expect("load");
        assert_eq!(loaded.iter().map(|e| e.sequence).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert_eq!(loaded[2].event_id, next[0].0);
        let feed = feed_through(&log, next[0].1).await;
        assert_eq!(feed, loaded, "the refused appends left nothing in the feed");
        assert_eq!(log.head(Position::START).await.expect("head").events_after, 3);
    }
}

three_backends! {
    async fn of_two_concurrent_appends_at_the_same_sequence_exactly_one_succeeds(db: TestDb) {
        let log = db.log();
        const ROUNDS: i64 = 25;
        let mut winners = Vec::new();
        for round in 0..ROUNDS {
            let barrier = Arc::new(tokio::sync::Barrier::new(2));
            let contenders: Vec<_> = (0..2)
                .map(|contender| {
                    let log = log.clone();
                    let barrier = barrier.clone();
                    tokio::spawn(async move {
                        barrier.wait().await;
                        log.append(TYPE, "race", round, vec![event("Raced", contender)], &metadata("service:racer")).await
                    })
                })
                .collect();
            let mut succeeded = Vec::new();
            let mut conflicts = 0;
            for contender in contenders {
                match contender.await.expect("a contender panicked") {
                    Ok(appended) => succeeded.push(appended),
                    Err(LogError::Conflict { .. }) => conflicts += 1,
                    Err(other) => panic!("round {round}: expected success or a conflict, got {other:?}"),
                }
            }
            assert_eq!((succeeded.len(), conflicts), (1, 1), "round {round}: one success and one conflict");
            winners.push(succeeded[0][0]);
        }
        let last = winners.last().expect("winners").1;
        let winners: Vec<Uuid> = winners.into_iter().map(|(id, _)| id).collect();
        let loaded = log.load(TYPE, "race").await.expect("load");
        assert_eq!(ids(&loaded), winners, "exactly the winners are stored, in order");
        assert_eq!(loaded.iter().map(|e| e.sequence).collect::<Vec<_>>(), (1..=ROUNDS).collect::<Vec<_>>());
        assert_eq!(ids(&feed_through(&log, last).await), winners);
    }
}

three_backends! {
    async fn executing_a_policy_command_accepts_a_publish_and_rejects_a_duplicate(db: TestDb) {
        let log = db.log();
        let md = EventMetadata {
            actor: "support:7".into(),
            request_id: Some("req-publish".into()),
            causation_id: None,
        };
        let outcome = log
            .execute::<PolicyDocument>("privacy-policy", publish("2026-01", "2026-01-01", 'a'), &md)
            .await
            .expect("the first version is accepted");
        assert_eq!(outcome.event_ids.len(), 1);

        let stored = log.load(PolicyDocument::TYPE, "privacy-policy").await.expect("load");
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].event_id, outcome.event_ids[0]);
        assert_eq!(outcome.position, Some(stored[0].position), "the outcome's token is the event's position");
        assert_eq!(stored[0].event_type, "PolicyVersionPublished");
        assert_eq!(stored[0].event_version, "1");
        assert_eq!(stored[0].metadata, md);
        let PolicyEvent::PolicyVersionPublished(version) = stored[0].decode::<PolicyEvent>().expect("decode");
        assert_eq!((version.version_number, version.label.as_str()), (1, "2026-01"));

        // The same label again, and the same text again: business rules refuse both.
        let error = log
            .execute::<PolicyDocument>("privacy-policy", publish("2026-01", "2026-06-01", 'b'), &md)
            .await
            .expect_err("a duplicate label is refused");
        match error {
            CommandError::Rejected(PolicyError::LabelAlreadyPublished(label)) => assert_eq!(label, "2026-01"),
            other => panic!("expected a rejection, got {other:?}"),
        }
        let error = log
            .execute::<PolicyDocument>("privacy-policy", publish("2026-06", "2026-06-01", 'a'), &md)
            .await
            .expect_err("a duplicate text is refused");
        assert!(
            matches!(error, CommandError::Rejected(PolicyError::TextAlreadyPublished(ref label)) if label == "2026-01"),
            "expected a rejection, got {error:?}"
        );

        // A proper next version is accepted as version 2, sequence 2.
        let second = log
            .execute::<PolicyDocument>("privacy-policy", publish("2026-06", "2026-06-01", 'b'), &md)
            .await
            .expect("the second version is accepted");
        let (document, sequence, _) = log.load_aggregate::<PolicyDocument>("privacy-policy").await.expect("load aggregate");
        assert_eq!(sequence, 2);
        assert_eq!(document.versions().iter().map(|v| v.version_number).collect::<Vec<_>>(), vec![1, 2]);
        let second_position = second.position.expect("a position");
        let feed = feed_through(&log, second_position).await;
        assert_eq!(ids(&feed), [outcome.event_ids.clone(), second.event_ids].concat(), "rejected commands appended nothing");
        assert_eq!(log.head(Position::START).await.expect("head").head, Some(second_position));
    }
}

three_backends! {
    async fn commands_decided_on_a_cached_or_guessed_state_are_checked_by_the_append(db: TestDb) {
        // Two logs over one store: two processes, each with its own aggregate cache.
        use domain::campaign::{Budget, Campaign, CampaignCommand, CampaignError};
        let (a, b) = (db.log(), db.log());
        let md = metadata("support:7");
        let versions = |log: EventLog| async move {
            let (document, sequence, _) = log.load_aggregate::<PolicyDocument>("privacy-policy").await.expect("load");
            (document.versions().iter().map(|v| (v.version_number, v.label.clone())).collect::<Vec<_>>(), sequence)
        };

        a.execute::<PolicyDocument>("privacy-policy", publish("2026-01", "2026-01-01", 'a'), &md)
            .await
            .expect("the first version");
        // B has never commanded this stream: its guess (an empty document) accepts the label,
        // the append at sequence 1 conflicts, and the stream as stored refuses it.
        let error = b
            .execute::<PolicyDocument>("privacy-policy", publish("2026-01", "2026-02-01", 'b'), &md)
            .await
            .expect_err("the label exists in the stream");
        assert!(matches!(error, CommandError::Rejected(PolicyError::LabelAlreadyPublished(_))), "{error:?}");
        b.execute::<PolicyDocument>("privacy-policy", publish("2026-06", "2026-06-01", 'b'), &md)
            .await
            .expect("B's second version");
        // A's cached document is one version behind: its decision (version 2) conflicts, and
        // the reloaded stream makes it version 3.
        a.execute::<PolicyDocument>("privacy-policy", publish("2026-09", "2026-09-01", 'c'), &md)
            .await
            .expect("A's next version");
        // And B's, cached at version 2, becomes version 4.
        b.execute::<PolicyDocument>("privacy-policy", publish("2026-12", "2026-12-01", 'd'), &md)
            .await
            .expect("B's next version");
        let (listed, sequence) = versions(db.log()).await;
        assert_eq!(
            listed,
            vec![(1, "2026-01".into()), (2, "2026-06".into()), (3, "2026-09".into()), (4, "2026-12".into())]
        );
        assert_eq!(sequence, 4);
        let verification = a.verify_stream(PolicyDocument::TYPE, "privacy-policy").await.expect("verify");
        assert_eq!((verification.events, verification.broken), (4, None), "every link holds");

        // A command its guess refuses is decided on the stream: B never saw this campaign, so
        // an empty campaign refuses a budget change, but the stored one accepts it.
        use domain::campaign::CampaignEvent;
        let campaign = Uuid::now_v7().to_string();
        a.execute::<Campaign>(&campaign, CampaignCommand::Draft(tests::meta_campaign_draft("artist-1")), &md)
            .await
            .expect("the draft");
        let budget = |amount_micros| Budget::Daily { amount_micros };
        b.execute::<Campaign>(&campaign, CampaignCommand::ChangeBudget(budget(7_000_000)), &md)
            .await
            .expect("B changes the budget of a campaign it never loaded");
        // A's cached campaign is at sequence 1: its append conflicts, and it is decided again.
        a.execute::<Campaign>(&campaign, CampaignCommand::ChangeBudget(budget(9_000_000)), &md)
            .await
            .expect("A changes it again");
        let stored = db.log().load(Campaign::TYPE, &campaign).await.expect("load");
        let events: Vec<CampaignEvent> = stored.iter().map(|e| e.decode().expect("decode")).collect();
        assert_eq!(stored.iter().map(|e| e.sequence).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert_eq!(events[1], CampaignEvent::BudgetChanged(budget(7_000_000)));
        assert_eq!(events[2], CampaignEvent::BudgetChanged(budget(9_000_000)));
        let refused = b
            .execute::<Campaign>(&campaign, CampaignCommand::Draft(tests::meta_campaign_draft("artist-1")), &md)
            .await
            .expect_err("a second draft of the same campaign");
        assert!(matches!(refused, CommandError::Rejected(CampaignError::AlreadyExists)), "{refused:?}");
    }
}

three_backends! {
    async fn the_feed_yields_every_event_once_in_commit_order_and_resumes_from_any_cursor(db: TestDb) {
        let log = db.log();
        let md = metadata("service:test");
        let plan: &[(&str, i64)] =
            &[("f-a", 2), ("f-b", 1), ("f-c", 3), ("f-a", 1), ("f-c", 1), ("f-b", 2), ("f-d", 4), ("f-a", 3), ("f-e", 1)];
        let mut sequences: HashMap<&str, i64> = HashMap::new();
        let mut expected = Vec::new();
        let mut last = Position::START;
        for (i, (aggregate, count)) in plan.iter().enumerate() {
            let sequence = sequences.entry(aggregate).or_default();
            let events = (0..*count).map(|k| event("Fed", i as i64 * 10 + k)).collect();
            let appended = log.append(TYPE, aggregate, *sequence, events, &md).await.expect("append");
            *sequence += count;
            expected.extend(appended.iter().map(|(id, _)| *id));
            last = appended.last().expect("events").1;
        }
        assert_eq!(expected.len(), 18);

        let feed = feed_through(&log, last).await;
        assert_eq!(ids(&feed), expected, "commit order, each event once");
        assert_eq!(feed.iter().map(|e| e.event_id).collect::<HashSet<_>>().len(), expected.len());
        assert_strictly_increasing(feed.iter().map(|e| e.position));
        let mut per_aggregate: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
        for e in &feed {
            per_aggregate.entry(e.aggregate_id.as_str()).or_default().push(e.sequence);
        }
        for (aggregate, seen) in &per_aggregate {
            assert_eq!(*seen, (1..=sequences[aggregate]).collect::<Vec<_>>(), "sequences of {aggregate}");
        }

        for page in [1, 2, 3, 5, 7, 17, 18, 100] {
            let mut cursor = Position::START;
            let mut paged = Vec::new();
            loop {
                let batch = log.read_feed(cursor, page).await.expect("read a page");
                assert!(batch.len() <= page, "a page holds at most {page} events");
                let Some(last) = batch.last() else { break };
                cursor = last.position;
                paged.extend(batch);
                assert!(paged.len() <= feed.len(), "paging with {page} repeats events");
            }
            assert_eq!(paged, feed, "pages of {page} yield the same sequence as one read");
        }

        // From every cursor, the rest of the feed and nothing else.
        for (k, e) in feed.iter().enumerate() {
            let rest = log.read_feed(e.position, 1000).await.expect("read the rest");
            assert_eq!(rest, feed[k + 1..], "resuming after event {k}");
        }
    }
}

three_backends! {
    async fn a_multi_stream_append_stores_all_of_its_events_or_none(db: TestDb) {
        let log = db.log();
        let md = metadata("service:test");
        let existing = log.append(TYPE, "m-x", 0, vec![event("X", 1)], &md).await.expect("append m-x");

        let mut batch = vec![
            StreamAppend {
                aggregate_type: TYPE.into(),
                aggregate_id: "m-y".into(),
                expected_sequence: 0,
                events: vec![event("Y", 1), event("Y", 2)],
            },
            StreamAppend {
                aggregate_type: TYPE.into(),
                aggregate_id: "m-x".into(),
                // Stale: m-x is at 1.
                expected_sequence: 0,
                events: vec![event("X", 2)],
            },
            StreamAppend {
                aggregate_type: TYPE.into(),
                aggregate_id: "m-z".into(),
                expected_sequence: 0,
                events: vec![event("Z", 1)],
            },
        ];
        let error = log.append_streams(&batch, &md).await.expect_err("one stale stream refuses the batch");
        assert!(matches!(error, LogError::Conflict { .. }), "expected a conflict, got {error:?}");
        assert!(log.load(TYPE, "m-y").await.expect("load m-y").is_empty(), "nothing of m-y was stored");
        assert!(log.load(TYPE, "m-z").await.expect("load m-z").is_empty(), "nothing of m-z was stored");
        assert_eq!(ids(&log.load(TYPE, "m-x").await.expect("load m-x")), vec![existing[0].0]);

        // Two streams of one batch claiming the same sequence refuse the batch too.
        let clash = vec![
            StreamAppend {
                aggregate_type: TYPE.into(),
                aggregate_id: "m-w".into(),
                expected_sequence: 0,
                events: vec![event("W", 1)],
            },
            StreamAppend {
                aggregate_type: TYPE.into(),
                aggregate_id: "m-w".into(),
                expected_sequence: 0,
                events: vec![event("W", 2)],
            },
        ];
        let error = log.append_streams(&clash, &md).await.expect_err("a batch clashing with itself is refused");
        assert!(matches!(error, LogError::Conflict { .. }), "expected a conflict, got {error:?}");
        assert!(log.load(TYPE, "m-w").await.expect("load m-w").is_empty());

        // With the right expectation the whole batch goes in, in input order, in one commit; and
        // the feed holds the first event and this batch, nothing of the refused ones.
        batch[1].expected_sequence = 1;
        let appended = log.append_streams(&batch, &md).await.expect("the corrected batch is stored");
        assert_eq!(appended.len(), 4);
        let feed = feed_through(&log, appended[3].1).await;
        assert_eq!(feed.len(), 5, "the refused batches left nothing in the feed");
        assert_eq!(feed[0].event_id, existing[0].0);
        assert_eq!(feed[1..].iter().map(|e| (e.event_id, e.position)).collect::<Vec<_>>(), appended);
        if db.backend() != Backend::KurrentDb {
            assert!(appended.iter().all(|(_, p)| p.commit == appended[0].1.commit), "one commit");
        }
        assert_eq!(
            feed[1..].iter().map(|e| (e.aggregate_id.as_str(), e.sequence)).collect::<Vec<_>>(),
            vec![("m-y", 1), ("m-y", 2), ("m-x", 2), ("m-z", 1)]
        );
    }
}

tests::both_backends! {
    /// A batch larger than one INSERT carries on PostgreSQL (a bulk ingest: several statements in
    /// one transaction) is still all or nothing, in input order, in one commit: a stale stream in
    /// its last part leaves nothing of the earlier parts.
    async fn a_batch_of_thousands_of_events_is_stored_whole_in_order_or_not_at_all(db: TestDb) {
        const STREAMS: usize = 2_500;
        let log = db.log();
        let md = metadata("service:test");
        log.append(TYPE, "big-last", 0, vec![event("L", 1)], &md).await.expect("append big-last");
        let mut batch: Vec<StreamAppend> = (0..STREAMS)
            .map(|n| StreamAppend {
                aggregate_type: TYPE.into(),
                aggregate_id: format!("big-{n:04}"),
                expected_sequence: 0,
                events: vec![event("B", n as i64)],
            })
            .collect();
        batch.push(StreamAppend {
            aggregate_type: TYPE.into(),
            aggregate_id: "big-last".into(),
            // Stale: big-last is at 1.
            expected_sequence: 0,
            events: vec![event("L", 2)],
        });
        let error = log.append_streams(&batch, &md).await.expect_err("the stale last stream refuses the batch");
        assert!(matches!(error, LogError::Conflict { .. }), "expected a conflict, got {error:?}");
        for first_part in ["big-0000", "big-0999", "big-1000", "big-2499"] {
            assert!(log.load(TYPE, first_part).await.expect("load").is_empty(), "{first_part} was not stored");
        }

        batch[STREAMS].expected_sequence = 1;
        let appended = log.append_streams(&batch, &md).await.expect("the corrected batch is stored");
        assert_eq!(appended.len(), STREAMS + 1);
        let feed = feed_through(&log, appended[STREAMS].1).await;
        assert_eq!(feed.len(), STREAMS + 2, "the refused batch left nothing in the feed");
        assert_eq!(feed[1..].iter().map(|e| (e.event_id, e.position)).collect::<Vec<_>>(), appended);
        assert!(appended.windows(2).all(|w| w[0].1 < w[1].1), "positions follow the batch's order");
        assert!(appended.iter().all(|(_, p)| p.commit == appended[0].1.commit), "one commit");
        let order: Vec<(String, i64)> = feed[1..].iter().map(|e| (e.aggregate_id.clone(), e.sequence)).collect();
        let expected: Vec<(String, i64)> = batch.iter().map(|s| (s.aggregate_id.clone(), s.expected_sequence + 1)).collect();
        assert_eq!(order, expected);
    }
}

tests::both_backends! {
    /// Ids, payloads and metadata holding a tab, a newline, a carriage return and backslashes
    /// (what any bulk path that writes rows as text, such as a COPY, must escape) come back
    /// byte for byte from a batch larger than one INSERT carries, and their hash chains verify.
    async fn a_bulk_batch_stores_tabs_newlines_and_backslashes_byte_for_byte(db: TestDb) {
        const STREAMS: usize = 1_200;
        let log = db.log();
        let md = metadata("service:tab\there\nnew line\r\\ back\\slash");
        let awkward = |n: usize| format!("odd\t{n:04}\nline\r\\end\\.");
        let batch: Vec<StreamAppend> = (0..STREAMS)
            .map(|n| StreamAppend {
                aggregate_type: TYPE.into(),
                aggregate_id: awkward(n),
                expected_sequence: 0,
                events: vec![NewEvent::json(
                    "Odd",
                    "1",
                    &json!({ "n": n, "text": "a \"quote\", a \\ backslash,\ta tab,\na newline, \\. \\N" }),
                )],
            })
            .collect();
        let appended = log.append_streams(&batch, &md).await.expect("the batch is stored");
        assert_eq!(appended.len(), STREAMS);
        assert!(appended.windows(2).all(|w| w[0].1 < w[1].1), "positions follow the batch's order");
        for n in [0, 999, 1_000, STREAMS - 1] {
            let stored = log.load(TYPE, &awkward(n)).await.expect("load");
            assert_eq!(stored.len(), 1, "{n}");
            assert_eq!(stored[0].aggregate_id, awkward(n));
            assert_eq!(stored[0].payload, batch[n].events[0].payload_value());
            assert_eq!(stored[0].metadata, md);
            assert_eq!((stored[0].event_id, stored[0].position), appended[n]);
            let verified = log.verify_stream(TYPE, &awkward(n)).await.expect("verify");
            assert_eq!(verified.broken, None, "{n}: the chain covers the stored bytes");
        }
    }
}

const WRITERS: usize = 8;
const COMMANDS_PER_WRITER: usize = 500;
const OWN_AGGREGATES: u64 = 4;
const SHARED_AGGREGATES: u64 = 2;
const STRESS_TYPE: &str = "stress";

/// A tiny deterministic generator (xorshift64*), so each run exercises the same mix.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// One event a writer appended, as the append reported it.
struct Written {
    event_id: Uuid,
    position: Position,
    aggregate_id: String,
    sequence: i64,
}

/// What a writer did: its events and its successful commands.
struct WriterReport {
    written: Vec<Written>,
    commands: usize,
}

/// A writer: 500 commands of 1–3 events each, mostly to aggregates only it writes (tracking
/// their sequences), one in ten to aggregates every writer shares (reloading and retrying on a
/// conflict).
async fn writer(log: EventLog, w: usize) -> WriterReport {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ ((w as u64 + 1) * 0x0100_0000_01b3));
    let md = metadata(&format!("service:writer-{w}"));
    let mut known: HashMap<String, i64> = HashMap::new();
    let mut report = WriterReport {
        written: Vec::new(),
        commands: 0,
    };
    for command in 0..COMMANDS_PER_WRITER {
        let shared = rng.next().is_multiple_of(10);
        let aggregate_id = if shared {
            format!("shared-{}", rng.next() % SHARED_AGGREGATES)
        } else {
            format!("w{w}-a{}", rng.next() % OWN_AGGREGATES)
        };
        let count = 1 + (rng.next() % 3) as usize;
        let mut attempts = 0;
        loop {
            let expected = known.get(&aggregate_id).copied().unwrap_or(0);
            let events = (0..count)
                .map(|k| NewEvent::json("Stressed", "1", &json!({ "writer": w, "command": command, "k": k })))
                .collect();
            match log.append(STRESS_TYPE, &aggregate_id, expected, events, &md).await {
                Ok(appended) => {
                    assert_eq!(appended.len(), count);
                    for (k, (event_id, position)) in appended.into_iter().enumerate() {
                        report.written.push(Written {
                            event_id,
                            position,
                            aggregate_id: aggregate_id.clone(),
                            sequence: expected + 1 + k as i64,
                        });
                    }
                    known.insert(aggregate_id.clone(), expected + count as i64);
                    report.commands += 1;
                    break;
                }
                Err(LogError::Conflict { .. }) if shared => {
                    attempts += 1;
                    assert!(
                        attempts < 1_000,
                        "writer {w}: command {command} lost 1000 races on {aggregate_id}"
                    );
                    let stored = log
                        .load(STRESS_TYPE, &aggregate_id)
                        .await
                        .expect("reload after a conflict");
                    known.insert(aggregate_id.clone(), stored.last().map_or(0, |e| e.sequence));
                }
                Err(other) => panic!("writer {w}: command {command} on {aggregate_id} failed: {other:?}"),
            }
        }
    }
    report
}

/// What the feed reader saw, in feed order.
struct Seen {
    event_id: Uuid,
    aggregate_id: String,
    sequence: i64,
    position: Position,
}

/// How long the reader may take to see every event, once the writers are done or not.
const READER_BOUND: Duration = Duration::from_secs(120);

three_backends! {
    async fn concurrent_writers_and_a_tailing_reader_see_every_event_exactly_once(db: TestDb) {
        let log = db.log();
        let backend = backend(&db);
        let started = Instant::now();
        // usize::MAX until the writers are done; then the number of events they appended.
        let expected_total = Arc::new(AtomicUsize::new(usize::MAX));

        let reader = tokio::spawn({
            let log = log.clone();
            let expected_total = expected_total.clone();
            async move {
                let deadline = Instant::now() + READER_BOUND;
                let mut wake = log.subscribe();
                let mut cursor = Position::START;
                let mut seen = Vec::new();
                let mut unique = HashSet::new();
                loop {
                    let batch = log.read_feed(cursor, 100).await.expect("the reader reads the feed");
                    if let Some(last) = batch.last() {
                        cursor = last.position;
                        for e in batch {
                            unique.insert(e.event_id);
                            seen.push(Seen {
                                event_id: e.event_id,
                                aggregate_id: e.aggregate_id,
                                sequence: e.sequence,
                                position: e.position,
                            });
                        }
                        continue;
                    }
                    let expected = expected_total.load(Ordering::SeqCst);
                    if expected != usize::MAX && unique.len() >= expected {
                        return (seen, false);
                    }
                    if Instant::now() >= deadline {
                        return (seen, true);
                    }
                    // Caught up: wait for the next commit here, or poll again shortly (on
                    // PostgreSQL a commit becomes visible once older transactions end).
                    let _ = tokio::time::timeout(Duration::from_millis(20), wake.changed()).await;
                }
            }
        });

        let writers: Vec<_> = (0..WRITERS).map(|w| tokio::spawn(writer(log.clone(), w))).collect();
        let reports = tokio::time::timeout(Duration::from_secs(300), async {
            let mut reports = Vec::new();
            for writer in writers {
                reports.push(writer.await.expect("a writer panicked"));
            }
            reports
        })
        .await
        .expect("the writers finish within 300 s");
        let commands: usize = reports.iter().map(|r| r.commands).sum();
        let written: Vec<Written> = reports.into_iter().flat_map(|r| r.written).collect();
        expected_total.store(written.len(), Ordering::SeqCst);

        let (seen, timed_out) = tokio::time::timeout(READER_BOUND + Duration::from_secs(30), reader)
            .await
            .expect("the reader stops by its own deadline")
            .expect("the reader panicked");
        let elapsed = started.elapsed();

        let seen_ids: HashSet<Uuid> = seen.iter().map(|s| s.event_id).collect();
        let written_ids: HashSet<Uuid> = written.iter().map(|w| w.event_id).collect();
        let duplicates = seen.len() - seen_ids.len();
        let missed = written_ids.difference(&seen_ids).count();
        let unexpected = seen_ids.difference(&written_ids).count();
        eprintln!(
            "stress {backend}: writers={WRITERS} commands={commands} events={} duplicates={duplicates} missed={missed} elapsed={:.2}s",
            written.len(),
            elapsed.as_secs_f64()
        );

        assert_eq!(commands, WRITERS * COMMANDS_PER_WRITER, "every command was carried out");
        assert_eq!(written_ids.len(), written.len(), "appends returned distinct ids");
        assert!(!timed_out, "the reader saw only {} of {} events within {READER_BOUND:?}", seen_ids.len(), written.len());
        assert_eq!(duplicates, 0, "the reader saw events twice");
        assert_eq!(missed, 0, "the reader missed events");
        assert_eq!(unexpected, 0, "the reader saw events nobody appended");

        // Feed order: strictly increasing positions, each the one its append returned.
        assert_strictly_increasing(seen.iter().map(|s| s.position));
        let seen_by_id: HashMap<Uuid, &Seen> = seen.iter().map(|s| (s.event_id, s)).collect();
        for w in &written {
            let s = seen_by_id[&w.event_id];
            assert_eq!(s.position, w.position, "the append's position is the feed's");
            assert_eq!((s.aggregate_id.as_str(), s.sequence), (w.aggregate_id.as_str(), w.sequence));
        }

        // Per aggregate, the reader saw sequences 1, 2, 3, … in feed order, up to the last written.
        let mut per_aggregate: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
        for s in &seen {
            per_aggregate.entry(s.aggregate_id.as_str()).or_default().push(s.sequence);
        }
        let mut last_written: HashMap<&str, i64> = HashMap::new();
        for w in &written {
            let last = last_written.entry(w.aggregate_id.as_str()).or_default();
            *last = (*last).max(w.sequence);
        }
        assert_eq!(per_aggregate.len(), last_written.len());
        for (aggregate, sequences) in &per_aggregate {
            assert_eq!(*sequences, (1..=last_written[aggregate]).collect::<Vec<_>>(), "sequences of {aggregate}");
        }

        // On SQLite the global positions are exactly 1..=N, in the feed and in the table.
        if let (Db::Sqlite(pool), Backend::Sqlite) = (&db.db, db.backend()) {
            let n = written.len() as i64;
            assert_eq!(seen.iter().map(|s| s.position.global).collect::<Vec<_>>(), (1..=n).collect::<Vec<_>>());
            let stored: Vec<i64> = sqlx::query_scalar("SELECT global_position FROM events ORDER BY global_position")
                .fetch_all(pool)
                .await
                .expect("read positions");
            assert_eq!(stored, (1..=n).collect::<Vec<_>>(), "SQLite positions are 1..=N without gaps");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_positions_stay_gap_free_through_conflicts_and_refused_batches() {
    let db = TestDb::sqlite().await;
    let log = db.log();
    // Racing writers on one aggregate: every lost race is a refused statement.
    let racers: Vec<_> = (0..4)
        .map(|r| {
            let log = log.clone();
            tokio::spawn(async move {
                let mut appended = 0;
                while appended < 25 {
                    let expected = log
                        .load(TYPE, "gap")
                        .await
                        .expect("load")
                        .last()
                        .map_or(0, |e| e.sequence);
                    match log
                        .append(
                            TYPE,
                            "gap",
                            expected,
                            vec![event("Gap", r), event("Gap", r)],
                            &EventMetadata::system(),
                        )
                        .await
                    {
                        Ok(_) => appended += 1,
                        Err(LogError::Conflict { .. }) => {}
                        Err(other) => panic!("racer {r}: {other:?}"),
                    }
                }
            })
        })
        .collect();
    for racer in racers {
        racer.await.expect("a racer panicked");
    }
    // A refused multi-stream batch in the middle.
    let refused = [
        StreamAppend {
            aggregate_type: TYPE.into(),
            aggregate_id: "gap-new".into(),
            expected_sequence: 0,
            events: vec![event("New", 1)],
        },
        StreamAppend {
            aggregate_type: TYPE.into(),
            aggregate_id: "gap".into(),
            expected_sequence: 1,
            events: vec![event("Stale", 1)],
        },
    ];
    assert!(matches!(
        log.append_streams(&refused, &EventMetadata::system()).await,
        Err(LogError::Conflict { .. })
    ));
    let after = log
        .append(TYPE, "gap-after", 0, vec![event("After", 1)], &EventMetadata::system())
        .await
        .expect("append");

    let Db::Sqlite(pool) = &db.db else {
        unreachable!("a SQLite test database")
    };
    let stored: Vec<i64> = sqlx::query_scalar("SELECT global_position FROM events ORDER BY global_position")
        .fetch_all(pool)
        .await
        .expect("read positions");
    assert_eq!(stored.len(), 4 * 25 * 2 + 1);
    assert_eq!(
        stored,
        (1..=stored.len() as i64).collect::<Vec<_>>(),
        "positions are 1..=N without gaps"
    );
    assert_eq!(
        after[0].1.global,
        stored.len() as i64,
        "the refused batch used up no position"
    );
}

/// Two appends at once (so the log keeps two connections for appends), then the server ends
/// the sessions they ran on (as a restart or an administrator's `pg_terminate_backend` would).
async fn appends_whose_sessions_the_server_ended(db: &TestDb, log: &EventLog, actor: &EventMetadata) {
    let (first, second) = tokio::join!(
        log.append(TYPE, "before-1", 0, vec![event("Counted", 1)], actor),
        log.append(TYPE, "before-2", 0, vec![event("Counted", 2)], actor),
    );
    first.expect("the first append before");
    second.expect("the second append before");
    let appenders = "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() \
                     AND query LIKE 'INSERT INTO events%'";
    let ended = db
        .count(&format!("SELECT count(pg_terminate_backend(pid)) {appenders}"))
        .await;
    assert_eq!(ended, 2, "the two sessions the appends ran on were ended");
    let gone = wait_until(BOUND, || async {
        db.count(&format!("SELECT count(*) {appenders}")).await == 0
    })
    .await;
    assert!(gone, "the ended sessions are gone");
}

/// Appends three streams one after another; each is stored, or (only the first, when
/// `first_may_fail`) refused as a database error with nothing stored.
async fn three_appends_after(log: &EventLog, actor: &EventMetadata, first_may_fail: bool) {
    for n in 1..=3 {
        let id = format!("after-{n}");
        match log.append(TYPE, &id, 0, vec![event("Counted", n)], actor).await {
            Ok(appended) => {
                let stored = log.load(TYPE, &id).await.expect("load");
                assert_eq!(ids(&stored), vec![appended[0].0], "{id} is stored");
            }
            Err(LogError::Database(_)) if n == 1 && first_may_fail => {
                assert!(log.load(TYPE, &id).await.expect("load").is_empty(), "{id} was refused");
            }
            Err(error) => panic!("append {id} after the sessions ended: {error}"),
        }
    }
}

/// PostgreSQL: a one-statement append runs on a connection the log keeps for appends and gives
/// back without a ping (`eventlog::kept_connections`). When the server ends those sessions
/// right after they were used, at most the first append after it is refused, as a database
/// error; every later one opens a new connection and is stored.
#[tokio::test(flavor = "multi_thread")]
async fn appends_go_on_after_the_server_ends_the_sessions_they_ran_on() {
    let Some(db) = TestDb::postgres().await else { return };
    let log = db.log();
    let actor = metadata("a");
    appends_whose_sessions_the_server_ended(&db, &log, &actor).await;
    three_appends_after(&log, &actor, true).await;
}

/// PostgreSQL: a connection kept for appends and idle for more than a second is pinged before
/// it is used, so when the server ended it meanwhile, no append is refused.
#[tokio::test(flavor = "multi_thread")]
async fn appends_after_a_second_idle_check_their_connection_first() {
    let Some(db) = TestDb::postgres().await else { return };
    let log = db.log();
    let actor = metadata("a");
    appends_whose_sessions_the_server_ended(&db, &log, &actor).await;
    // Not a wait for anything to happen: the idle time is the condition under test (the
    // log pings a connection idle for longer than 1 s).
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    three_appends_after(&log, &actor, false).await;
}

/// PostgreSQL: the connections appends keep beside the pool are at most as many as the pool's
/// (README, `DYNAMOI_DATABASE_MAX_CONNECTIONS`): 24 appends at once through a log over a pool
/// of 2 are all stored, and the log opened at most 4 sessions.
#[tokio::test(flavor = "multi_thread")]
async fn appends_beside_a_pool_of_two_open_at_most_four_sessions() {
    let Some(db) = TestDb::postgres().await else { return };
    // Sessions are counted from a connection of their own, opened before the log's.
    let mut counter = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url)
        .await
        .expect("connect");
    let opened_since: chrono::DateTime<Utc> = sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(&mut counter)
        .await
        .expect("the server's time");
    let log = db.log_over(Db::connect(&db.url, 2).await.expect("a pool of two"), clock::system());
    let actor = metadata("a");
    let streams: Vec<String> = (0..24).map(|n| format!("at-once-{n}")).collect();
    let appended = futures::future::join_all(
        streams
            .iter()
            .map(|id| log.append(TYPE, id, 0, vec![event("Counted", 1)], &actor)),
    )
    .await;
    for (id, outcome) in streams.iter().zip(&appended) {
        let appended = outcome.as_ref().expect("every append is stored");
        assert_eq!(ids(&log.load(TYPE, id).await.expect("load")), vec![appended[0].0]);
    }
    let sessions: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND backend_start >= $1",
    )
    .bind(opened_since)
    .fetch_one(&mut counter)
    .await
    .expect("count the sessions");
    assert!(sessions >= 1, "the log's sessions are counted");
    assert!(sessions <= 4, "{sessions} sessions for a pool of 2");
}
