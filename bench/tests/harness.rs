//! The harness itself runs: every database scenario in quick mode (tiny sizes, two pairs), each
//! figure finite and every row with its pairs. Not a measurement: the figures are the
//! release build's (`cargo run --release -p bench`, see BENCHMARKS.md). `http` and `memory`
//! need the release `dynamoi` binary and are run by the harness, not here.

use bench::scenarios::{self, Config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_database_scenario_runs_and_reports_its_pairs() {
    if bench::databases::PrivateDb::postgres(1)
        .await
        .expect("PostgreSQL for the harness")
        .is_none()
    {
        return;
    }
    let config = Config {
        pairs: 2,
        quick: true,
        dynamoi: None,
        pin: false,
        http_seconds: 0.2,
        http_connections: 2,
        server_log: "warn".into(),
        lag_seconds: 0.3,
        lag_rate: None,
        self_exe: std::env::current_exe().unwrap(),
    };
    let names: Vec<String> = [
        "counters",
        "command",
        "concurrent",
        "peer",
        "ingest",
        "rebuild",
        "lag",
        "sqlite",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let rows = scenarios::run(&config, &names).await.unwrap();
    for name in &names {
        assert!(rows.iter().any(|r| &r.scenario == name), "no row of {name}");
    }
    for row in &rows {
        let computed = row.compute();
        assert!(!row.ours.is_empty(), "{}: {}", row.scenario, row.metric);
        assert!(row.ours.iter().all(|v| v.is_finite() && *v >= 0.0), "{row:?}");
        if !row.baseline.is_empty() {
            assert_eq!(row.baseline.len(), row.ours.len());
            assert!(computed.ratio_spread.is_some(), "{row:?}");
        }
    }
    let table = bench::report::table(&rows.iter().map(|r| r.compute()).collect::<Vec<_>>());
    assert!(table.lines().count() >= rows.len() + 2);
}
