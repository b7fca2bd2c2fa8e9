//! Golden fixtures of every stored event shape: `tests/fixtures/events/<aggregate_type>/
//! <EventType>.v<N>[.<example>].json` holds a payload exactly as a version of an event type was
//! stored. Every fixture must decode through the upcasters, fold into its aggregate and
//! re-serialise at the current version (a current-version fixture byte for byte as a JSON
//! value); every event type needs a fixture at every version up to its current one, and every
//! variant of every event enum (read from serde, no hand-kept list) a fixture at its current
//! version. So a shape changed in place, or a new version without its upcaster or fixture, fails
//! here. The same fixtures are then stored in a real log on both backends and loaded back
//! through `EventLog::load_aggregate` and every projection.

use domain::versions::{self, stored_variants};
use domain::{Aggregate, DomainEvent};
use eventlog::{DecodeError, EventMetadata, LogError, NewEvent};
use serde_json::Value;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tests::both_backends;

const PERSON: &str = "0190f3c2-a7be-7c55-9d3e-5a1b2c3d4e5f";
const CAMPAIGN: &str = "0191b7e0-5c3a-7d21-9f40-6e2a1b0c9d8e";
const CUSTOMER: &str = "cus_QkW3s9LzXc1aBd";

/// Calls `$run!(Aggregate, "stream id")` for every aggregate: the one list of aggregates this
/// test knows (a fixture folder of another aggregate fails `every_fixture_folder_is_checked`).
/// The stream ids are the ids the service gives such streams, so projections accept them.
macro_rules! every_aggregate {
    ($run:ident $(, $arg:expr)*) => {
        vec![
            $run!(domain::account::Account, PERSON.to_string() $(, $arg)*),
            $run!(domain::artist::ArtistProfile, "0191a2b3-c4d5-7e6f-8a9b-0c1d2e3f4a5b".to_string() $(, $arg)*),
            $run!(domain::billing::BillingAccount, CUSTOMER.to_string() $(, $arg)*),
            $run!(domain::billing::BillingPeriod, format!("{CUSTOMER}.2026-02") $(, $arg)*),
            $run!(domain::campaign::Campaign, CAMPAIGN.to_string() $(, $arg)*),
            $run!(domain::connection::Connection, format!("{PERSON}.meta") $(, $arg)*),
            $run!(domain::consent::Consents, PERSON.to_string() $(, $arg)*),
            $run!(domain::disclosure::DisclosureLog, PERSON.to_string() $(, $arg)*),
            $run!(domain::policy::PolicyDocument, "privacy-policy".to_string() $(, $arg)*),
            $run!(domain::privacy::PrivacyRequest, "pr-0192c4d5-e6f7-7a8b-9c0d-1e2f3a4b5c6d".to_string() $(, $arg)*),
            $run!(domain::privacy::DataSubject, PERSON.to_string() $(, $arg)*),
            $run!(domain::retention::RetentionRun, "2026-02-05".to_string() $(, $arg)*),
            $run!(domain::spend::SpendLedger, format!("{CAMPAIGN}.google_ads.2026-03-02") $(, $arg)*),
        ]
    };
}

/// One fixture file.
#[derive(Clone, Debug)]
struct Fixture {
    aggregate_type: String,
    event_type: String,
    version: u32,
    /// A second example of one type and version (another shape of an inner enum), if any.
    label: Option<String>,
    /// `<aggregate_type>/<file name>`, for messages.
    file: String,
    payload: Value,
}

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join("events")
}

/// Reads every fixture; a file whose name or JSON is malformed fails the test here.
fn load_all() -> Vec<Fixture> {
    let mut all = Vec::new();
    let mut folders: Vec<_> = std::fs::read_dir(fixtures_dir())
        .expect("tests/fixtures/events exists")
        .map(|entry| entry.expect("a readable folder entry").path())
        .collect();
    folders.sort();
    for folder in folders {
        let aggregate_type = folder.file_name().unwrap().to_string_lossy().to_string();
        let mut files: Vec<_> = std::fs::read_dir(&folder)
            .unwrap_or_else(|e| panic!("{} is a folder of fixtures: {e}", folder.display()))
            .map(|entry| entry.expect("a readable file entry").path())
            .collect();
        files.sort();
        for path in files {
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            let file = format!("{aggregate_type}/{name}");
            let parts: Vec<&str> = name
                .strip_suffix(".json")
                .unwrap_or_else(|| panic!("{file}: a fixture is a .json file"))
                .split('.')
                .collect();
            let (event_type, version, label) = match parts.as_slice() {
                [event_type, version] => (*event_type, *version, None),
                [event_type, version, label] => (*event_type, *version, Some(label.to_string())),
                _ => panic!("{file}: a fixture is named <EventType>.v<N>[.<example>].json"),
            };
            let version = version
                .strip_prefix('v')
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or_else(|| panic!("{file}: the version is v<N>"));
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
            let payload = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file} is not JSON: {e}"));
            all.push(Fixture {
                aggregate_type: aggregate_type.clone(),
                event_type: event_type.to_string(),
                version,
                label,
                file,
                payload,
            });
        }
    }
    all
}

/// The variant an externally tagged payload holds: the string of a unit variant, the one key
/// of any other.
fn variant_of(payload: &Value) -> Option<&str> {
    match payload {
        Value::String(name) => Some(name),
        Value::Object(map) if map.len() == 1 => map.keys().next().map(String::as_str),
        _ => None,
    }
}

/// The fixtures of `A` in the order a stream would hold them: by type as `VERSIONS` lists them
/// (the enum's order, roughly a life), then version, then example.
fn fixtures_of<A: Aggregate>(all: &[Fixture]) -> Vec<&Fixture> {
    let rank = |f: &Fixture| {
        let position = <A::Event as DomainEvent>::VERSIONS
            .iter()
            .position(|(t, _)| *t == f.event_type)
            .unwrap_or(usize::MAX);
        (position, f.version, f.label.clone())
    };
    let mut mine: Vec<&Fixture> = all.iter().filter(|f| f.aggregate_type == A::TYPE).collect();
    mine.sort_by_key(|f| rank(f));
    mine
}

/// Everything wrong with the fixtures of `A`: each must decode, fold into a fresh aggregate
/// without panicking and re-serialise at the current version, and they must cover every
/// version of every type and every variant.
fn problems<A: Aggregate>(all: &[Fixture]) -> Vec<String> {
    let mut problems = Vec::new();
    let mine = fixtures_of::<A>(all);
    for fixture in &mine {
        let Fixture { file, payload, .. } = fixture;
        let version = fixture.version.to_string();
        let event = match versions::decode::<A::Event>(&fixture.event_type, &version, payload) {
            Ok(event) => event,
            Err(error) => {
                problems.push(format!("{file} does not decode: {error}"));
                continue;
            }
        };
        if catch_unwind(AssertUnwindSafe(|| A::default().apply(event.clone()))).is_err() {
            problems.push(format!("{file}: {}::apply panics on it", A::TYPE));
        }
        let again = NewEvent::from_domain(&event).expect("a decoded event serialises");
        let current = versions::current_version::<A::Event>(&fixture.event_type).expect("it decoded");
        if again.event_type != fixture.event_type || again.event_version != current.to_string() {
            problems.push(format!(
                "{file} re-serialises as {} v{}, not {} v{current}",
                again.event_type, again.event_version, fixture.event_type
            ));
        }
        let expected = if fixture.version == current {
            payload.clone()
        } else {
            versions::upcast::<A::Event>(&fixture.event_type, &version, payload.clone()).expect("it decoded")
        };
        if again.payload_value() != expected {
            problems.push(format!(
                "{file} does not re-serialise as {}: the stored shape changed without a new version \
                 (add a version to VERSIONS, an upcaster and a fixture), or an upcaster's output is not \
                 the current shape.\n  expected {expected}\n  got      {}",
                if fixture.version == current {
                    "it was stored"
                } else {
                    "its upcast"
                },
                again.payload
            ));
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for (event_type, current) in <A::Event as DomainEvent>::VERSIONS {
        if !seen.insert(*event_type) {
            problems.push(format!("{}: {event_type} is listed twice in VERSIONS", A::TYPE));
        }
        for version in 1..=*current {
            let found = mine
                .iter()
                .any(|f| f.event_type == *event_type && f.version == version && f.label.is_none());
            if !found {
                problems.push(format!(
                    "no fixture {}/{event_type}.v{version}.json: {}",
                    A::TYPE,
                    if version == *current {
                        "add its example to tests/examples/write_event_fixtures.rs and run it"
                    } else {
                        "an older version's fixture is the JSON that version stored; restore it from git"
                    }
                ));
            }
        }
    }
    for variant in stored_variants::<A::Event>() {
        let covered = mine.iter().any(|f| {
            variant_of(&f.payload) == Some(*variant)
                && versions::current_version::<A::Event>(&f.event_type) == Some(f.version)
        });
        if !covered {
            problems.push(format!(
                "{}: the variant {variant} has no fixture at its current version: add its example to \
                 tests/examples/write_event_fixtures.rs, give its type a VERSIONS entry, and run the example",
                A::TYPE
            ));
        }
    }
    problems
}

macro_rules! problems_of {
    ($aggregate:ty, $id:expr, $all:expr) => {{
        let _ = $id;
        (<$aggregate as Aggregate>::TYPE, problems::<$aggregate>($all))
    }};
}

#[test]
fn every_fixture_decodes_folds_and_reserialises_and_every_type_version_and_variant_has_one() {
    let all = load_all();
    assert!(all.len() >= 60, "the fixtures are there: {}", all.len());
    let mut report = Vec::new();
    for (aggregate_type, problems) in every_aggregate!(problems_of, &all) {
        report.extend(problems.into_iter().map(|p| format!("[{aggregate_type}] {p}")));
    }
    assert!(report.is_empty(), "{} problems:\n{}", report.len(), report.join("\n"));
}

macro_rules! type_of {
    ($aggregate:ty, $id:expr) => {{
        let _ = $id;
        <$aggregate as Aggregate>::TYPE
    }};
}

#[test]
fn every_fixture_folder_is_checked() {
    let known: Vec<&str> = every_aggregate!(type_of);
    for fixture in load_all() {
        assert!(
            known.contains(&fixture.aggregate_type.as_str()),
            "{}: no aggregate of this test has that type; add it to every_aggregate!",
            fixture.file
        );
    }
}

/// The check itself can fail: a shape changed in place, a missing fixture and a variant without
/// one are each reported.
#[test]
fn the_check_reports_a_shape_changed_in_place_and_missing_fixtures() {
    use domain::account::Account;
    let all = load_all();
    assert!(problems::<Account>(&all).is_empty());

    // A field renamed in the stored JSON of the current version, as if the code had changed it.
    let mut renamed = all.clone();
    let current = versions::current_version::<<Account as Aggregate>::Event>("ProfileRectified").unwrap();
    let fixture = renamed
        .iter_mut()
        .find(|f| f.aggregate_type == "account" && f.event_type == "ProfileRectified" && f.version == current)
        .expect("the ProfileRectified fixture");
    let fields = fixture.payload["ProfileRectified"].as_object_mut().unwrap();
    let name = fields.remove("name").unwrap();
    fields.insert("full_name".into(), name);
    let found = problems::<Account>(&renamed);
    assert!(
        found
            .iter()
            .any(|p| p.contains("ProfileRectified") && p.contains("does not re-serialise")),
        "{found:?}"
    );

    // The only fixture of a type and variant removed.
    let without: Vec<Fixture> = all
        .iter()
        .filter(|f| !(f.aggregate_type == "account" && f.event_type == "AccountClosed"))
        .cloned()
        .collect();
    let found = problems::<Account>(&without);
    assert!(
        found
            .iter()
            .any(|p| p.contains("no fixture account/AccountClosed.v1.json")),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|p| p.contains("the variant AccountClosed has no fixture")),
        "{found:?}"
    );
}

/// Stores the fixtures of `A` in the log, each under its own stored version, and loads them
/// back through it: every row decodes and every stream folds. The oldest plain fixture of each
/// type goes into one stream, `id`, in the enum's order (roughly a life); every other fixture (a
/// newer version, another example) alone into a stream of its own, `<version or example>-<id>`,
/// so that no stream holds what no real stream could (two openings of one request, say).
async fn store_and_load<A: Aggregate>(log: &eventlog::EventLog, id: &str, all: &[Fixture]) -> usize {
    let mut streams: Vec<(String, Vec<&Fixture>)> = vec![(id.to_string(), vec![])];
    for fixture in fixtures_of::<A>(all) {
        let first = fixture.label.is_none() && !streams[0].1.iter().any(|f| f.event_type == fixture.event_type);
        if first {
            streams[0].1.push(fixture);
        } else {
            let prefix = fixture.label.clone().unwrap_or_else(|| format!("v{}", fixture.version));
            streams.push((format!("{prefix}-{id}"), vec![fixture]));
        }
    }
    let mut count = 0;
    for (stream, fixtures) in streams {
        let events: Vec<NewEvent> = fixtures
            .iter()
            .map(|f| NewEvent::json(&f.event_type, &f.version.to_string(), &f.payload))
            .collect();
        count += events.len();
        let expected = events.len() as i64;
        log.append(A::TYPE, &stream, 0, events, &EventMetadata::system())
            .await
            .unwrap_or_else(|e| panic!("append {} {stream}: {e}", A::TYPE));
        for stored in log.load(A::TYPE, &stream).await.unwrap() {
            if let Err(error) = stored.decode::<A::Event>() {
                panic!(
                    "{} {} v{} from the log: {error}",
                    A::TYPE,
                    stored.event_type,
                    stored.event_version
                );
            }
        }
        let (_, sequence, _) = log
            .load_aggregate::<A>(&stream)
            .await
            .unwrap_or_else(|e| panic!("load {} {stream}: {e}", A::TYPE));
        assert_eq!(sequence, expected);
    }
    count
}

macro_rules! stored {
    ($aggregate:ty, $id:expr, $log:expr, $all:expr) => {
        store_and_load::<$aggregate>($log, &$id, $all).await
    };
}

/// Catches every projection up with the whole feed (on PostgreSQL a commit shows in the feed
/// once no older transaction in the cluster is open, so this waits, bounded); the first
/// projection error, as its message.
async fn catch_up_all(engine: &projections::Engine) -> Result<(), String> {
    let failure = std::sync::Mutex::new(None::<String>);
    let settled = tests::wait_until(Duration::from_secs(20), || async {
        match engine.catch_up().await {
            Err(error) => {
                *failure.lock().unwrap() = Some(format!("{error} ({error:?})"));
                true
            }
            Ok(()) => engine
                .status()
                .await
                .map(|all| all.iter().all(|s| s.lag_events == 0))
                .unwrap_or(false),
        }
    })
    .await;
    if let Some(error) = failure.into_inner().unwrap() {
        return Err(error);
    }
    assert!(settled, "the projections catch up with the feed");
    Ok(())
}

/// A log on `db` holding every fixture, each in a stream of its aggregate.
async fn log_with_every_fixture(db: &tests::TestDb) -> eventlog::EventLog {
    let log = db.log();
    let all = load_all();
    let stored: Vec<usize> = every_aggregate!(stored, &log, &all);
    assert_eq!(stored.iter().sum::<usize>(), all.len(), "every fixture was stored");
    log
}

/// A projection given only the events it does not read ([`projections::Projection::reads`]),
/// under its own name and tables; it declares no aggregate types, so the engine applies every batch.
struct UnreadOnly(std::sync::Arc<dyn projections::Projection>);

#[async_trait::async_trait]
impl projections::Projection for UnreadOnly {
    fn name(&self) -> &'static str {
        self.0.name()
    }
    fn version(&self) -> i32 {
        self.0.version()
    }
    fn tables(&self) -> &'static [&'static str] {
        self.0.tables()
    }
    fn schema(&self, dialect: eventlog::Dialect) -> &'static str {
        self.0.schema(dialect)
    }
    async fn apply(
        &self,
        tx: &mut projections::ReadTx<'_>,
        target: &projections::Target,
        events: &[eventlog::StoredEvent],
    ) -> Result<(), projections::ProjectionError> {
        let unread: Vec<_> = events.iter().filter(|e| !self.0.reads(e)).cloned().collect();
        self.0.apply(tx, target, &unread).await
    }
}

both_backends! {
    /// The engine opens no transaction for a batch with none of the aggregate types a projection
    /// declares (`Projection::aggregate_types`): so each projection that declares them, given
    /// every fixture of every other aggregate type, must write no row.
    async fn a_projection_writes_nothing_for_the_aggregate_types_it_does_not_declare(db: TestDb) {
        let log = log_with_every_fixture(&db).await;
        let declaring: Vec<_> = projections::all()
            .into_iter()
            .filter(|p| p.aggregate_types().is_some())
            .collect();
        assert!(declaring.len() >= 8, "{} projections declare what they read", declaring.len());
        let engine = projections::Engine::new(
            log.clone(),
            declaring
                .iter()
                .map(|p| std::sync::Arc::new(UnreadOnly(p.clone())) as std::sync::Arc<dyn projections::Projection>)
                .collect(),
            projections::EngineConfig::default(),
        );
        if let Err(error) = catch_up_all(&engine).await {
            panic!("a projection refused an event it does not declare: {error}");
        }
        for projection in &declaring {
            for table in projection.tables() {
                let rows = db.count(&format!("SELECT count(*) FROM {table}")).await;
                assert_eq!(rows, 0, "{} wrote {rows} rows into {table}", projection.name());
            }
        }
    }
}

both_backends! {
    async fn every_fixture_stored_in_the_log_loads_back_and_projects(db: TestDb) {
        let log = log_with_every_fixture(&db).await;

        let engine = projections::Engine::new(log.clone(), projections::all(), projections::EngineConfig::default());
        if let Err(error) = catch_up_all(&engine).await {
            panic!("a projection refused a fixture: {error}");
        }
        for status in engine.status().await.unwrap() {
            assert_eq!(status.state, "running", "{status:?}");
        }
        // The account stream `PERSON` starts with SignedUp v1 (`minimum_age_met: 13`, the number),
        // the stream `v2-PERSON` holds SignedUp v2: both rows say the minimum age and that it was met.
        for person in [PERSON.to_string(), format!("v2-{PERSON}")] {
            let minimum_age = db
                .count(&format!("SELECT CAST(minimum_age AS BIGINT) FROM accounts WHERE person_id = '{person}'"))
                .await;
            assert_eq!(minimum_age, 13, "{person}");
            let met = db
                .count(&format!("SELECT count(*) FROM accounts WHERE person_id = '{person}' AND minimum_age_met"))
                .await;
            assert_eq!(met, 1, "{person}");
        }
    }
}

both_backends! {
    async fn a_row_newer_than_the_code_or_of_an_unknown_type_is_a_typed_error_for_commands_and_projections(db: TestDb) {
        use domain::account::Account;
        let log = db.log();
        let all = load_all();
        let v2 = all
            .iter()
            .find(|f| f.aggregate_type == "account" && f.event_type == "SignedUp" && f.version == 2)
            .expect("the SignedUp v2 fixture");
        log.append(
            Account::TYPE,
            "from-the-future",
            0,
            vec![NewEvent::json("SignedUp", "3", &v2.payload)],
            &EventMetadata::system(),
        )
        .await
        .unwrap();
        match log.load_aggregate::<Account>("from-the-future").await {
            Err(LogError::Event(DecodeError::Version(versions::UpcastError::NewerVersion { event_type, version, current }))) => {
                assert_eq!((event_type.as_str(), version, current), ("SignedUp", 3, 2));
            }
            other => panic!("a version newer than the code is refused: {:?}", other.map(|(_, s, _)| s)),
        }
        log.append(
            Account::TYPE,
            "unknown-type",
            0,
            vec![NewEvent::json("AccountFrozen", "1", &serde_json::json!({"AccountFrozen": {}}))],
            &EventMetadata::system(),
        )
        .await
        .unwrap();
        assert!(matches!(
            log.load_aggregate::<Account>("unknown-type").await,
            Err(LogError::Event(DecodeError::Version(versions::UpcastError::UnknownEventType { .. })))
        ));

        // A projection cannot apply it either, and says why.
        let engine = projections::Engine::new(log.clone(), projections::all(), projections::EngineConfig::default());
        let error = catch_up_all(&engine).await.expect_err("the accounts projection cannot apply it");
        assert!(
            error.contains("SignedUp version 3 is newer than this code, which knows up to version 2"),
            "{error}"
        );
    }
}
