//! `peer`: dynamoi against the framework a Rust team would otherwise pick, in the same run and
//! on the same PostgreSQL server: the same campaign draft (decided by the same domain code) as a
//! cqrs-es 0.5 `Aggregate` executed through `CqrsFramework` on postgres-es 0.5's
//! `PostgresEventRepository` (its own `events`-shaped table, pool of 10), and through dynamoi's
//! `EventLog::execute` (pool of 10). Commands per second, 1 and 8 in flight; the target is
//! dynamoi ≥ 2× the peer (issue 14). Then the replay: the peer's `QueryReplay::replay_all` of
//! its whole feed into a `GenericQuery` over postgres-es's `PostgresViewRepository` (one view
//! row per campaign), against dynamoi's `Engine::rebuild` of `dashboards` over its own feed of
//! the same drafts (events per second; the target is dynamoi ≥ 20× the peer).

use super::concurrent::{self, CLIENTS};
use super::{postgres, size, Config};
use crate::fixtures;
use crate::report::{Row, Target};
use cqrs_es::event_sink::EventSink;
use cqrs_es::persist::{GenericQuery, PersistedEventStore, QueryReplay};
use cqrs_es::{CqrsFramework, EventEnvelope};
use domain::campaign::{Campaign, CampaignCommand, CampaignError, CampaignEvent};
use futures::future::try_join_all;
use postgres_es::{PostgresEventRepository, PostgresViewRepository};
use projections::{Engine, EngineConfig};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::Arc;
use std::time::Instant;

/// The peer's tables: postgres-es's documented schema, under names of their own.
const PEER_TABLES: &str = "
CREATE TABLE peer_events (
    aggregate_type text NOT NULL, aggregate_id text NOT NULL,
    sequence bigint CHECK (sequence >= 0) NOT NULL,
    event_type text NOT NULL, event_version text NOT NULL,
    payload json NOT NULL, metadata json NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id, sequence));
CREATE TABLE peer_snapshots (
    aggregate_type text NOT NULL, aggregate_id text NOT NULL,
    last_sequence bigint CHECK (last_sequence >= 0) NOT NULL,
    current_snapshot bigint CHECK (current_snapshot >= 0) NOT NULL,
    payload json NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id, last_sequence));
CREATE TABLE peer_campaign_view (
    view_id text NOT NULL, version bigint CHECK (version >= 0) NOT NULL,
    payload json NOT NULL,
    PRIMARY KEY (view_id));";

/// The peer's read model: one row per campaign, its events counted and the last one named.
#[derive(Debug, Default, Serialize, Deserialize)]
struct PeerCampaignView {
    events: u64,
    last_event: String,
}

impl cqrs_es::View<PeerCampaign> for PeerCampaignView {
    fn update(&mut self, event: &EventEnvelope<PeerCampaign>) {
        self.events += 1;
        self.last_event = cqrs_es::DomainEvent::event_type(&event.payload);
    }
}

type PeerQuery = GenericQuery<PostgresViewRepository<PeerCampaignView, PeerCampaign>, PeerCampaignView, PeerCampaign>;

/// Events per second of the peer's replay of its whole feed into an emptied view table; also
/// the events replayed.
async fn peer_replay(pool: &sqlx::PgPool) -> anyhow::Result<(f64, u64)> {
    sqlx::query("TRUNCATE peer_campaign_view").execute(pool).await?;
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM peer_events")
        .fetch_one(pool)
        .await?;
    let repository = PostgresEventRepository::new(pool.clone()).with_tables("peer_events", "peer_snapshots");
    let views = Arc::new(PostgresViewRepository::new("peer_campaign_view", pool.clone()));
    let replay = QueryReplay::new(repository, PeerQuery::new(views));
    let started = Instant::now();
    replay
        .replay_all()
        .await
        .map_err(|e| anyhow::anyhow!("the peer's replay failed: {e}"))?;
    let elapsed = started.elapsed().as_secs_f64();
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM peer_campaign_view")
        .fetch_one(pool)
        .await?;
    anyhow::ensure!(rows > 0, "the peer's replay wrote no view row");
    Ok((events as f64 / elapsed, events as u64))
}

/// The campaign as a cqrs-es aggregate: it decides with dynamoi's own domain code, so both sides
/// do the same work and store the same payload.
#[derive(Debug, Default, Serialize, Deserialize)]
struct PeerCampaign {
    drafted: bool,
}

/// dynamoi's campaign event, as cqrs-es stores it (the same JSON).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
struct PeerEvent(CampaignEvent);

impl cqrs_es::DomainEvent for PeerEvent {
    fn event_type(&self) -> String {
        domain::DomainEvent::event_type(&self.0)
    }

    fn event_version(&self) -> String {
        "1".into()
    }
}

impl cqrs_es::Aggregate for PeerCampaign {
    const TYPE: &'static str = "campaign";
    type Command = CampaignCommand;
    type Event = PeerEvent;
    type Error = CampaignError;
    type Services = ();

    async fn handle(&mut self, command: CampaignCommand, _: &(), sink: &EventSink<Self>) -> Result<(), CampaignError> {
        // Only new campaigns are drafted here: the state is the domain's default campaign.
        let events = domain::Aggregate::handle(&Campaign::default(), command)?;
        for event in events {
            sink.write(PeerEvent(event), self).await;
        }
        Ok(())
    }

    fn apply(&mut self, _event: PeerEvent) {
        self.drafted = true;
    }
}

type Peer = CqrsFramework<PeerCampaign, PersistedEventStore<PostgresEventRepository, PeerCampaign>>;

/// Commands per second of `ops` drafts through the peer from `clients` concurrent tasks.
async fn peer_commands(peer: &Arc<Peer>, clients: usize, ops: usize) -> anyhow::Result<f64> {
    let per_client = ops / clients;
    let started = Instant::now();
    try_join_all((0..clients).map(|_| {
        let peer = peer.clone();
        tokio::spawn(async move {
            for _ in 0..per_client {
                peer.execute(&fixtures::new_id(), fixtures::draft_command("bench-artist"))
                    .await
                    .map_err(|e| anyhow::anyhow!("the peer refused a draft: {e}"))?;
            }
            Ok::<_, anyhow::Error>(())
        })
    }))
    .await?
    .into_iter()
    .collect::<anyhow::Result<Vec<()>>>()?;
    Ok((per_client * clients) as f64 / started.elapsed().as_secs_f64())
}

/// Runs the scenario.
pub async fn run(config: &Config) -> anyhow::Result<Vec<Row>> {
    let ops = size(config, 1600, 16);
    let ours_db = postgres(10).await?;
    let log = ours_db.log();
    let peer_db = postgres(1).await?;
    sqlx::raw_sql(PEER_TABLES).execute(peer_db.pg()).await?;
    let pool = postgres_es::default_postgress_pool(&peer_db.url).await;
    let repository = PostgresEventRepository::new(pool.clone()).with_tables("peer_events", "peer_snapshots");
    let peer: Arc<Peer> = Arc::new(CqrsFramework::new(
        PersistedEventStore::new_event_store(repository),
        vec![],
        (),
    ));
    // Warm-up: pools filled, statements prepared.
    peer_commands(&peer, CLIENTS, ops / 4).await?;
    concurrent::commands(&log, CLIENTS, ops / 4).await?;
    let mut rows = Vec::new();
    for clients in [1, CLIENTS] {
        let mut row = Row::new(
            "peer",
            &format!("{clients} in flight vs cqrs-es + postgres-es (throughput)"),
            "ops/s",
            "CqrsFramework + PostgresEventRepository",
            "execute",
            Target::RatioAtLeast { ratio: 2.0 },
        );
        let ops = if clients == 1 { ops / 4 } else { ops };
        for i in 0..config.pairs {
            let (b, o) = crate::alternate!(
                i,
                peer_commands(&peer, clients, ops).await?,
                concurrent::commands(&log, clients, ops).await?
            );
            row.pair(b, o);
            row.details.push(json!({ "ops": ops }));
        }
        rows.push(row);
    }

    // The replay: both feeds now hold the drafts just made (the same number on each side). The
    // peer's replay streams events on one connection while its view repository writes on
    // another: it runs on the peer's own pool, not the one-connection admin pool.
    let engine = Engine::new(log.clone(), projections::all(), EngineConfig::default());
    engine.prepare().await?;
    super::rebuild::rebuild(&engine, "dashboards").await?;
    let mut row = Row::new(
        "peer",
        "replay of the feed into a read model vs cqrs-es QueryReplay + PostgresViewRepository",
        "events/s",
        "QueryReplay into GenericQuery",
        "Engine::rebuild (dashboards)",
        Target::RatioAtLeast { ratio: 20.0 },
    );
    let replays = size(config, 3, 1).min(config.pairs);
    for i in 0..replays {
        let ((b, replayed), (o, applied)) = crate::alternate!(
            i,
            peer_replay(&pool).await?,
            super::rebuild::rebuild(&engine, "dashboards").await?
        );
        row.pair(b, o);
        row.details
            .push(json!({ "peer_events_replayed": replayed, "events_applied": applied }));
    }
    rows.push(row);
    Ok(rows)
}
