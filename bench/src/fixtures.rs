//! What the scenarios send: campaign drafts (one event per command), budget changes on an
//! existing campaign, artists, spend readings in bulk; and the raw tables the baselines write.

use app::ingest::IngestReading;
use chrono::{Duration, NaiveDate, TimeZone, Utc};
use domain::artist::{ArtistCommand, ArtistProfile};
use domain::campaign::{AdPlatform, Budget, Campaign, CampaignCommand, CampaignDraft, Creative, Objective, Schedule};
use eventlog::{EventLog, EventMetadata, Position};

/// The metadata of every event the bench writes.
pub fn metadata() -> EventMetadata {
    EventMetadata {
        actor: "service:bench".into(),
        request_id: None,
        causation_id: None,
    }
}

/// The first day of every campaign the bench drafts.
pub fn start_day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 6, 1).expect("a valid date")
}

/// A draft on Meta, in USD, running `days` days from [`start_day`].
pub fn draft(artist_id: &str, days: i64) -> CampaignDraft {
    CampaignDraft {
        artist_id: artist_id.into(),
        platform: AdPlatform::Meta,
        objective: Objective::Streams,
        budget: Budget::Daily {
            amount_micros: 20_000_000,
        },
        currency: "USD".into(),
        schedule: Schedule {
            start: start_day(),
            end: Some(start_day() + Duration::days(days - 1)),
        },
        countries: vec!["PK".into()],
        creatives: vec![Creative::FacebookPost {
            post_id: "1045_1".into(),
        }],
    }
}

/// The command that drafts a campaign: one event.
pub fn draft_command(artist_id: &str) -> CampaignCommand {
    CampaignCommand::Draft(draft(artist_id, 365))
}

/// A budget change on an existing campaign: one event, the stream grows.
pub fn budget_command(amount_micros: i64) -> CampaignCommand {
    CampaignCommand::ChangeBudget(Budget::Daily { amount_micros })
}

/// A fresh aggregate id, as the service makes them.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Creates an artist owned by `owner`; returns its id and the position of its event.
pub async fn create_artist(log: &EventLog, owner: &str) -> anyhow::Result<(String, Position)> {
    let id = new_id();
    let outcome = log
        .execute::<ArtistProfile>(
            &id,
            ArtistCommand::Create {
                owner: owner.into(),
                name: "Bench Band".into(),
                spotify_artist_id: None,
            },
            &metadata(),
        )
        .await?;
    Ok((id, outcome.position.expect("a creation appends an event")))
}

/// Drafts `count` campaigns of `artist_id`, each running `days` days.
pub async fn create_campaigns(log: &EventLog, artist_id: &str, count: usize, days: i64) -> anyhow::Result<Vec<String>> {
    let mut ids = Vec::with_capacity(count);
    for _ in 0..count {
        let id = new_id();
        log.execute::<Campaign>(&id, CampaignCommand::Draft(draft(artist_id, days)), &metadata())
            .await?;
        ids.push(id);
    }
    Ok(ids)
}

/// One reading per campaign and day (`days` days from [`start_day`]); `bump` changes every
/// spend so that a second batch restates the first.
pub fn readings(campaigns: &[String], days: i64, bump: i64) -> Vec<Result<IngestReading, String>> {
    let fetched_at = Utc
        .with_ymd_and_hms(2026, 3, 1, 6, 0, 0)
        .single()
        .expect("a valid time");
    campaigns
        .iter()
        .flat_map(|c| (0..days).map(move |d| (c, d)))
        .map(|(campaign, d)| {
            Ok(IngestReading {
                campaign_id: campaign.clone(),
                platform: AdPlatform::Meta,
                date: start_day() + Duration::days(d),
                spend_micros: 1_000_000 + d * 1000 + bump,
                currency: "USD".into(),
                impressions: 1000,
                reach: 700,
                clicks: 25,
                views: 300,
                saves: 4,
                reactions: 10,
                comments: 2,
                shares: 1,
                follows: 3,
                conversions: 2,
                fetched_at,
                source: "ingest_api".into(),
            })
        })
        .collect()
}

/// The plain table the raw single-row INSERTs write: the event columns of postgres-es, its
/// primary key, nothing else (no feed order, no event id index, no identity).
pub const RAW_EVENTS_POSTGRES: &str = "CREATE TABLE bench_raw_events (aggregate_type text NOT NULL, \
     aggregate_id text NOT NULL, sequence bigint NOT NULL, event_type text NOT NULL, event_version text NOT NULL, \
     payload json NOT NULL, metadata json NOT NULL, PRIMARY KEY (aggregate_type, aggregate_id, sequence))";

/// The same table on SQLite.
pub const RAW_EVENTS_SQLITE: &str = "CREATE TABLE bench_raw_events (aggregate_type text NOT NULL, \
     aggregate_id text NOT NULL, sequence integer NOT NULL, event_type text NOT NULL, event_version text NOT NULL, \
     payload text NOT NULL, metadata text NOT NULL, PRIMARY KEY (aggregate_type, aggregate_id, sequence))";

/// The raw INSERT of one event row on PostgreSQL (JSON is sent as text, cast by the server, as
/// the event log does).
pub const RAW_INSERT_POSTGRES: &str = "INSERT INTO bench_raw_events \
     (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
     VALUES ($1, $2, $3, $4, $5, $6::json, $7::json)";

/// The raw INSERT of one event row on SQLite.
pub const RAW_INSERT_SQLITE: &str = "INSERT INTO bench_raw_events \
     (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

/// A raw row: what a hand-written INSERT of the same event would send.
#[derive(Clone, Debug)]
pub struct RawRow {
    pub aggregate_id: String,
    pub payload: String,
    pub metadata: String,
}

/// The row of a campaign draft, serialised as the event log would (the JSON of the event).
pub fn raw_draft_row(artist_id: &str) -> RawRow {
    let event = domain::campaign::CampaignEvent::CampaignDrafted(draft(artist_id, 365));
    RawRow {
        aggregate_id: new_id(),
        payload: serde_json::to_string(&event).expect("events serialise"),
        metadata: serde_json::to_string(&metadata()).expect("metadata serialises"),
    }
}

/// Inserts one raw row on PostgreSQL, autocommit: one statement, one round trip, one commit.
pub async fn raw_insert_pg<'e, E>(executor: E, row: &RawRow) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'e, Database = sqlx::Postgres>,
{
    sqlx::query(RAW_INSERT_POSTGRES)
        .bind("Campaign")
        .bind(&row.aggregate_id)
        .bind(1_i64)
        .bind("CampaignDrafted")
        .bind("1")
        .bind(&row.payload)
        .bind(&row.metadata)
        .execute(executor)
        .await?;
    Ok(())
}

/// Inserts one raw row on SQLite, autocommit.
pub async fn raw_insert_sqlite<'e, E>(executor: E, row: &RawRow) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'e, Database = sqlx::Sqlite>,
{
    sqlx::query(RAW_INSERT_SQLITE)
        .bind("Campaign")
        .bind(&row.aggregate_id)
        .bind(1_i64)
        .bind("CampaignDrafted")
        .bind("1")
        .bind(&row.payload)
        .bind(&row.metadata)
        .execute(executor)
        .await?;
    Ok(())
}
