//! The official `kurrentdb` client against the stand-in over real gRPC — or, when
//! `DYNAMOI_TEST_KURRENTDB_URL` is set (e.g. `kurrentdb://127.0.0.1:2113?tls=false`), against
//! that real KurrentDB instead, so the same tests check the stand-in's fidelity.
//!
//! Every test writes to streams with its own random prefix, so they can share a real server;
//! waits are bounded (`within`), never sleeps.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::time::Duration;

use kurrentdb::{
    AppendToStreamOptions, Client, CurrentRevision, Error, EventData, Position, ReadAllOptions, ReadStreamOptions,
    ResolvedEvent, StreamPosition, StreamState, SubscribeToAllOptions, SubscribeToStreamOptions, Subscription,
    SubscriptionEvent, SubscriptionFilter,
};
use kurrentdb_standin::{Standin, StandinHandle};
use uuid::Uuid;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const WAIT: Duration = Duration::from_secs(15);

/// A client connected to the server under test.
struct Target {
    client: Client,
    url: String,
    /// A prefix no other test (or run) uses.
    prefix: String,
    standin: Option<StandinHandle>,
}

async fn target() -> Result<Target, Box<dyn std::error::Error>> {
    let (url, standin) = match std::env::var("DYNAMOI_TEST_KURRENTDB_URL") {
        Ok(url) if !url.is_empty() => (url, None),
        _ => {
            let standin = Standin::start().await?;
            (standin.url(), Some(standin))
        }
    };
    let client = Client::new(url.parse()?)?;
    let prefix = format!("t{}", Uuid::new_v4().simple());
    Ok(Target {
        client,
        url,
        prefix,
        standin,
    })
}

impl Target {
    fn stream(&self, name: &str) -> String {
        format!("{}-{name}", self.prefix)
    }

    fn only_mine(&self) -> SubscriptionFilter {
        SubscriptionFilter::on_stream_name().add_prefix(&self.prefix)
    }
}

async fn within<F: Future>(what: &str, future: F) -> F::Output {
    match tokio::time::timeout(WAIT, future).await {
        Ok(output) => output,
        Err(_) => panic!("timed out after {WAIT:?} waiting for {what}"),
    }
}

fn event(n: u64) -> Result<EventData, serde_json::Error> {
    Ok(EventData::json("Counted", &serde_json::json!({ "n": n }))?.id(Uuid::new_v4()))
}

fn events(range: std::ops::Range<u64>) -> Result<Vec<EventData>, serde_json::Error> {
    range.map(event).collect()
}

fn n_of(event: &ResolvedEvent) -> Result<u64, Box<dyn std::error::Error>> {
    let value: serde_json::Value = event.get_original_event().as_json()?;
    value["n"].as_u64().ok_or_else(|| "event without n".into())
}

async fn read_stream_all(
    client: &Client,
    stream: &str,
    options: &ReadStreamOptions,
) -> Result<Vec<ResolvedEvent>, Error> {
    let mut read = client.read_stream(stream, options).await?;
    let mut out = Vec::new();
    while let Some(event) = read.next().await? {
        out.push(event);
    }
    Ok(out)
}

async fn read_all_with(client: &Client, options: &ReadAllOptions) -> Result<Vec<ResolvedEvent>, Error> {
    let mut read = client.read_all(options).await?;
    let mut out = Vec::new();
    while let Some(event) = read.next().await? {
        out.push(event);
    }
    Ok(out)
}

/// Subscription messages until `CaughtUp` (inclusive), so appends made after this return are
/// delivered live.
async fn until_caught_up(subscription: &mut Subscription) -> Result<Vec<SubscriptionEvent>, Error> {
    let mut seen = Vec::new();
    loop {
        let message = subscription.next_subscription_event().await?;
        let done = matches!(message, SubscriptionEvent::CaughtUp(_));
        seen.push(message);
        if done {
            return Ok(seen);
        }
    }
}

fn appeared(messages: &[SubscriptionEvent]) -> Vec<&ResolvedEvent> {
    messages
        .iter()
        .filter_map(|m| match m {
            SubscriptionEvent::EventAppeared(e) => Some(e),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn wrong_expected_revision_answers_the_actual_revision() -> TestResult {
    let t = target().await?;
    let stream = t.stream("wev");
    let written = t
        .client
        .append_to_stream(
            stream.as_str(),
            &AppendToStreamOptions::default().stream_state(StreamState::NoStream),
            events(0..3)?,
        )
        .await?;
    assert_eq!(written.next_expected_version, 2);
    assert!(
        written.position.commit > 0,
        "the answer carries the $all position: {:?}",
        written.position
    );

    let cases = [
        (StreamState::StreamRevision(0), CurrentRevision::Current(2)),
        (StreamState::StreamRevision(7), CurrentRevision::Current(2)),
        (StreamState::NoStream, CurrentRevision::Current(2)),
    ];
    for (expected, current) in cases {
        let options = AppendToStreamOptions::default().stream_state(expected);
        match t
            .client
            .append_to_stream(stream.as_str(), &options, events(10..11)?)
            .await
        {
            Err(Error::WrongExpectedVersion {
                expected: e,
                current: c,
            }) => {
                assert_eq!((e, c), (expected, current), "expected {expected:?}");
            }
            other => panic!("expected {expected:?}: wanted WrongExpectedVersion, got {other:?}"),
        }
    }
    let missing = t.stream("missing");
    let options = AppendToStreamOptions::default().stream_state(StreamState::StreamExists);
    match t
        .client
        .append_to_stream(missing.as_str(), &options, events(0..1)?)
        .await
    {
        Err(Error::WrongExpectedVersion { expected, current }) => {
            assert_eq!(expected, StreamState::StreamExists);
            assert_eq!(current, CurrentRevision::NoStream);
        }
        other => panic!("wanted WrongExpectedVersion, got {other:?}"),
    }
    // Nothing of the refused appends was written; the right revision appends.
    let options = AppendToStreamOptions::default().stream_state(StreamState::StreamRevision(2));
    let next = t
        .client
        .append_to_stream(stream.as_str(), &options, events(3..4)?)
        .await?;
    assert_eq!(next.next_expected_version, 3);
    assert!(next.position > written.position);
    let read = read_stream_all(&t.client, &stream, &ReadStreamOptions::default()).await?;
    assert_eq!(read.iter().map(n_of).collect::<Result<Vec<_>, _>>()?, vec![0, 1, 2, 3]);
    Ok(())
}

#[tokio::test]
async fn reading_a_missing_stream_is_not_found() -> TestResult {
    let t = target().await?;
    let result = read_stream_all(&t.client, &t.stream("never-written"), &ReadStreamOptions::default()).await;
    assert!(matches!(result, Err(Error::ResourceNotFound)), "got {result:?}");
    let backwards = ReadStreamOptions::default().backwards().position(StreamPosition::End);
    let result = read_stream_all(&t.client, &t.stream("never-written"), &backwards).await;
    assert!(matches!(result, Err(Error::ResourceNotFound)), "got {result:?}");
    Ok(())
}

#[tokio::test]
async fn streams_and_all_read_forwards_and_backwards_from_a_point() -> TestResult {
    let t = target().await?;
    let stream = t.stream("read");
    for n in 0..5 {
        t.client
            .append_to_stream(stream.as_str(), &AppendToStreamOptions::default(), event(n)?)
            .await?;
    }
    let ns = |events: &[ResolvedEvent]| events.iter().map(n_of).collect::<Result<Vec<_>, _>>();
    let from_2 = ReadStreamOptions::default()
        .position(StreamPosition::Position(2))
        .max_count(2);
    assert_eq!(ns(&read_stream_all(&t.client, &stream, &from_2).await?)?, vec![2, 3]);
    let back_from_3 = ReadStreamOptions::default()
        .backwards()
        .position(StreamPosition::Position(3));
    assert_eq!(
        ns(&read_stream_all(&t.client, &stream, &back_from_3).await?)?,
        vec![3, 2, 1, 0]
    );
    let back_from_end = ReadStreamOptions::default()
        .backwards()
        .position(StreamPosition::End)
        .max_count(2);
    assert_eq!(
        ns(&read_stream_all(&t.client, &stream, &back_from_end).await?)?,
        vec![4, 3]
    );

    let mine = read_all_with(&t.client, &ReadAllOptions::default().filter(t.only_mine())).await?;
    assert_eq!(ns(&mine)?, vec![0, 1, 2, 3, 4]);
    let third = mine[2].get_original_event().position;
    // Forwards from a position includes the event there; backwards excludes it.
    let forwards = ReadAllOptions::default()
        .position(StreamPosition::Position(third))
        .filter(t.only_mine());
    assert_eq!(ns(&read_all_with(&t.client, &forwards).await?)?, vec![2, 3, 4]);
    let backwards = ReadAllOptions::default()
        .backwards()
        .position(StreamPosition::Position(third))
        .filter(t.only_mine());
    assert_eq!(ns(&read_all_with(&t.client, &backwards).await?)?, vec![1, 0]);
    let last_two = ReadAllOptions::default()
        .backwards()
        .position(StreamPosition::End)
        .filter(t.only_mine())
        .max_count(2);
    assert_eq!(ns(&read_all_with(&t.client, &last_two).await?)?, vec![4, 3]);
    Ok(())
}

#[tokio::test]
async fn all_positions_strictly_increase_in_commit_order_with_eight_concurrent_writers() -> TestResult {
    const WRITERS: u64 = 8;
    const APPENDS: u64 = 25;
    let t = target().await?;
    let mut tasks = Vec::new();
    for writer in 0..WRITERS {
        let client = t.client.clone();
        let stream = t.stream(&format!("w{writer}"));
        tasks.push(tokio::spawn(async move {
            let mut written = Vec::new();
            for append in 0..APPENDS {
                // Every third append carries three events: one transaction, contiguous.
                let size = if append % 3 == 0 { 3 } else { 1 };
                let batch: Vec<EventData> = (0..size)
                    .map(|i| event(writer * 1_000_000 + append * 10 + i))
                    .collect::<Result<_, _>>()
                    .map_err(|e| e.to_string())?;
                let result = client
                    .append_to_stream(stream.as_str(), &AppendToStreamOptions::default(), batch)
                    .await
                    .map_err(|e| e.to_string())?;
                written.push((stream.clone(), result, size));
            }
            Ok::<_, String>(written)
        }));
    }
    let mut appends = Vec::new();
    for task in tasks {
        appends.extend(within("the writers", task).await??);
    }
    let expected_events: u64 = appends.iter().map(|(_, _, n)| n).sum();

    let read = read_all_with(&t.client, &ReadAllOptions::default().filter(t.only_mine())).await?;
    assert_eq!(read.len() as u64, expected_events, "every event exactly once");
    let positions: Vec<Position> = read.iter().map(|e| e.get_original_event().position).collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "positions strictly increase in $all order"
    );
    assert!(
        positions.iter().all(|p| p.commit == p.prepare),
        "commit == prepare for every event"
    );
    let mut seen = HashSet::new();
    let mut revisions: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for event in &read {
        let recorded = event.get_original_event();
        assert!(seen.insert(recorded.id), "event {} read twice", recorded.id);
        assert!(
            event.commit_position.is_some(),
            "$all events carry their commit position"
        );
        revisions
            .entry(recorded.stream_id().to_owned())
            .or_default()
            .push(recorded.revision);
    }
    for (stream, revs) in &revisions {
        let wanted: Vec<u64> = (0..revs.len() as u64).collect();
        assert_eq!(revs, &wanted, "{stream}: revisions 0.. in order, no gap, no duplicate");
    }
    // Each answer's position is its last event's, and answers order like the log does.
    let by_position: BTreeMap<Position, (&String, u64)> = appends
        .iter()
        .map(|(s, r, _)| (r.position, (s, r.next_expected_version)))
        .collect();
    assert_eq!(
        by_position.len(),
        appends.len(),
        "every append answered its own position"
    );
    for (position, (stream, revision)) in &by_position {
        let found = read.iter().find(|e| e.get_original_event().position == *position);
        let recorded = found
            .ok_or("an append's position is not an event's")?
            .get_original_event();
        assert_eq!((recorded.stream_id(), recorded.revision), (stream.as_str(), *revision));
    }
    Ok(())
}

#[tokio::test]
async fn a_subscription_started_before_appends_delivers_them_live() -> TestResult {
    let t = target().await?;
    let stream = t.stream("live");
    let mut to_stream = t
        .client
        .subscribe_to_stream(stream.as_str(), &SubscribeToStreamOptions::default())
        .await;
    let mut to_all = t
        .client
        .subscribe_to_all(
            &SubscribeToAllOptions::default()
                .position(StreamPosition::End)
                .filter(t.only_mine()),
        )
        .await;
    let first = within("the stream subscription to catch up", until_caught_up(&mut to_stream)).await?;
    assert!(
        matches!(first.first(), Some(SubscriptionEvent::Confirmed(_))),
        "confirmation first: {first:?}"
    );
    assert!(appeared(&first).is_empty());
    within("the $all subscription to catch up", until_caught_up(&mut to_all)).await?;

    t.client
        .append_to_stream(stream.as_str(), &AppendToStreamOptions::default(), events(0..2)?)
        .await?;
    t.client
        .append_to_stream(stream.as_str(), &AppendToStreamOptions::default(), event(2)?)
        .await?;
    for n in 0..3 {
        let live = within("a live stream event", to_stream.next()).await?;
        assert_eq!((n_of(&live)?, live.get_original_event().revision), (n, n));
        let live = within("a live $all event", to_all.next()).await?;
        assert_eq!(n_of(&live)?, n);
    }
    Ok(())
}

#[tokio::test]
async fn subscribe_to_all_resumes_after_a_stored_position_exclusively() -> TestResult {
    let t = target().await?;
    let stream = t.stream("resume");
    for n in 0..5 {
        t.client
            .append_to_stream(stream.as_str(), &AppendToStreamOptions::default(), event(n)?)
            .await?;
    }
    let read = read_all_with(&t.client, &ReadAllOptions::default().filter(t.only_mine())).await?;
    let stored = read[1].get_original_event().position;

    let options = SubscribeToAllOptions::default()
        .position(StreamPosition::Position(stored))
        .filter(t.only_mine());
    let mut subscription = t.client.subscribe_to_all(&options).await;
    let caught_up = within("catching up", until_caught_up(&mut subscription)).await?;
    let ns = appeared(&caught_up)
        .into_iter()
        .map(n_of)
        .collect::<Result<Vec<_>, _>>()?;
    assert_eq!(ns, vec![2, 3, 4], "exactly the events after the stored position");

    t.client
        .append_to_stream(stream.as_str(), &AppendToStreamOptions::default(), event(5)?)
        .await?;
    assert_eq!(n_of(&within("the live event", subscription.next()).await?)?, 5);

    // A stream subscription from a revision is exclusive too.
    let options = SubscribeToStreamOptions::default().start_from(StreamPosition::Position(3));
    let mut subscription = t.client.subscribe_to_stream(stream.as_str(), &options).await;
    let caught_up = within("catching up", until_caught_up(&mut subscription)).await?;
    let ns = appeared(&caught_up)
        .into_iter()
        .map(n_of)
        .collect::<Result<Vec<_>, _>>()?;
    assert_eq!(ns, vec![4, 5]);
    match caught_up.last() {
        Some(SubscriptionEvent::CaughtUp(Some(c))) => assert_eq!(c.stream_revision, Some(5)),
        other => panic!("wanted CaughtUp with the revision, got {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn an_idempotent_append_of_the_same_event_ids_writes_nothing_new() -> TestResult {
    let t = target().await?;
    let stream = t.stream("idem");
    let batch = events(0..2)?;
    let no_stream = AppendToStreamOptions::default().stream_state(StreamState::NoStream);
    let first = t
        .client
        .append_to_stream(stream.as_str(), &no_stream, batch.clone())
        .await?;
    let again = t
        .client
        .append_to_stream(stream.as_str(), &no_stream, batch.clone())
        .await?;
    assert_eq!(
        (again.next_expected_version, again.position),
        (first.next_expected_version, first.position)
    );
    let any = t
        .client
        .append_to_stream(stream.as_str(), &AppendToStreamOptions::default(), batch.clone())
        .await?;
    assert_eq!(
        (any.next_expected_version, any.position),
        (first.next_expected_version, first.position)
    );

    let third = event(2)?;
    let at_1 = AppendToStreamOptions::default().stream_state(StreamState::StreamRevision(1));
    let written = t.client.append_to_stream(stream.as_str(), &at_1, third.clone()).await?;
    let retried = t.client.append_to_stream(stream.as_str(), &at_1, third).await?;
    assert_eq!(
        (retried.next_expected_version, retried.position),
        (written.next_expected_version, written.position)
    );

    // A different event at a revision that is already taken is a conflict, not a retry.
    match t.client.append_to_stream(stream.as_str(), &at_1, event(9)?).await {
        Err(Error::WrongExpectedVersion { current, .. }) => assert_eq!(current, CurrentRevision::Current(2)),
        other => panic!("wanted WrongExpectedVersion, got {other:?}"),
    }
    let read = read_stream_all(&t.client, &stream, &ReadStreamOptions::default()).await?;
    assert_eq!(
        read.iter().map(n_of).collect::<Result<Vec<_>, _>>()?,
        vec![0, 1, 2],
        "no duplicate written"
    );
    Ok(())
}

#[tokio::test]
async fn the_system_event_filter_hides_dollar_streams() -> TestResult {
    let t = target().await?;
    let user = t.stream("user");
    let system = format!("${}-system", t.prefix);
    let first = t
        .client
        .append_to_stream(user.as_str(), &AppendToStreamOptions::default(), event(0)?)
        .await?;
    t.client
        .append_to_stream(system.as_str(), &AppendToStreamOptions::default(), event(1)?)
        .await?;
    let dollar_type = EventData::json("$counted", &serde_json::json!({ "n": 2 }))?.id(Uuid::new_v4());
    t.client
        .append_to_stream(user.as_str(), &AppendToStreamOptions::default(), dollar_type)
        .await?;
    t.client
        .append_to_stream(user.as_str(), &AppendToStreamOptions::default(), event(3)?)
        .await?;

    let from_first = StreamPosition::Position(first.position);
    let unfiltered = read_all_with(&t.client, &ReadAllOptions::default().position(from_first)).await?;
    assert!(
        unfiltered.iter().any(|e| e.get_original_event().stream_id() == system),
        "unfiltered $all has it"
    );

    let on_stream = SubscriptionFilter::on_stream_name().exclude_system_events();
    let read = read_all_with(
        &t.client,
        &ReadAllOptions::default().position(from_first).filter(on_stream.clone()),
    )
    .await?;
    assert!(
        read.iter()
            .all(|e| !e.get_original_event().stream_id().starts_with('$')),
        "no $-stream"
    );
    let mine: Vec<u64> = read
        .iter()
        .filter(|e| e.get_original_event().stream_id() == user)
        .map(n_of)
        .collect::<Result<_, _>>()?;
    assert_eq!(mine, vec![0, 2, 3]);

    let on_type = SubscriptionFilter::on_event_type().exclude_system_events();
    let read = read_all_with(
        &t.client,
        &ReadAllOptions::default().position(from_first).filter(on_type),
    )
    .await?;
    assert!(
        read.iter().all(|e| !e.get_original_event().event_type.starts_with('$')),
        "no $-type"
    );

    // The same filter on a subscription.
    // From the event before ours (not the start: a real server's $all can be long).
    let before = ReadAllOptions::default().backwards().position(from_first).max_count(1);
    let start = read_all_with(&t.client, &before)
        .await?
        .first()
        .map_or(StreamPosition::Start, |e| {
            StreamPosition::Position(e.get_original_event().position)
        });
    let options = SubscribeToAllOptions::default().position(start).filter(on_stream);
    let mut subscription = t.client.subscribe_to_all(&options).await;
    let caught_up = within("catching up", until_caught_up(&mut subscription)).await?;
    let streams: Vec<&str> = appeared(&caught_up)
        .iter()
        .map(|e| e.get_original_event().stream_id())
        .collect();
    assert!(streams.contains(&user.as_str()));
    assert!(streams.iter().all(|s| !s.starts_with('$')));
    Ok(())
}

#[tokio::test]
async fn filtered_all_subscriptions_send_checkpoints() -> TestResult {
    let t = target().await?;
    let first = t
        .client
        .append_to_stream(t.stream("a").as_str(), &AppendToStreamOptions::default(), event(0)?)
        .await?;
    t.client
        .append_to_stream(t.stream("a").as_str(), &AppendToStreamOptions::default(), event(1)?)
        .await?;
    // A filter nothing matches, with a search window of 2: a checkpoint every 2 events. There
    // is an event after the start, so the subscription catches up (and checkpoints) before
    // going live; from the last event it would go live at once, without a checkpoint.
    let filter = SubscriptionFilter::on_stream_name()
        .add_prefix(format!("{}-nothing", t.prefix))
        .max(2);
    let options = SubscribeToAllOptions::default()
        .position(StreamPosition::Position(first.position))
        .filter(filter);
    let mut subscription = t.client.subscribe_to_all(&options).await;
    let caught_up = within("catching up", until_caught_up(&mut subscription)).await?;
    assert!(appeared(&caught_up).is_empty());
    assert!(
        caught_up.iter().any(|m| matches!(m, SubscriptionEvent::Checkpoint(_))),
        "a checkpoint when going live: {caught_up:?}"
    );
    let mut last = first.position;
    for n in 2..5 {
        let written = t
            .client
            .append_to_stream(t.stream("a").as_str(), &AppendToStreamOptions::default(), event(n)?)
            .await?;
        last = written.position;
    }
    let checkpoint = within("a live checkpoint", async {
        loop {
            match subscription.next_subscription_event().await? {
                SubscriptionEvent::Checkpoint(position) => return Ok::<_, Error>(position),
                SubscriptionEvent::EventAppeared(e) => panic!("the filter let {e:?} through"),
                _ => continue,
            }
        }
    })
    .await?;
    assert!(
        checkpoint > first.position && checkpoint <= last,
        "{checkpoint:?} within the new events"
    );
    Ok(())
}

#[tokio::test]
async fn discovery_and_legacy_connection_strings_connect() -> TestResult {
    let t = target().await?;
    let stream = t.stream("schemes");
    t.client
        .append_to_stream(stream.as_str(), &AppendToStreamOptions::default(), event(0)?)
        .await?;
    let rest = t
        .url
        .split_once("://")
        .map(|(_, rest)| rest.to_owned())
        .ok_or("a URL with a scheme")?;
    for scheme in ["esdb", "kurrentdb+discover", "esdb+discover"] {
        let client = Client::new(format!("{scheme}://{rest}").parse()?)?;
        let read = within(scheme, read_stream_all(&client, &stream, &ReadStreamOptions::default())).await?;
        assert_eq!(read.len(), 1, "{scheme}");
    }
    Ok(())
}

#[tokio::test]
async fn stopping_the_standin_ends_subscriptions_and_closes_the_port() -> TestResult {
    let t = target().await?;
    let Some(standin) = t.standin else {
        return Ok(()); // only the stand-in can be stopped from here
    };
    let addr = standin.local_addr();
    let mut subscription = t.client.subscribe_to_all(&SubscribeToAllOptions::default()).await;
    within("catching up", until_caught_up(&mut subscription)).await?;
    within("the shutdown", standin.shutdown()).await?;
    let ended = within("the subscription to end", subscription.next()).await;
    assert!(ended.is_err(), "the subscription ends with an error: {ended:?}");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the port is closed"
    );
    Ok(())
}
