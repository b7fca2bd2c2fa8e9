//! Bulk spend ingestion (P1): a sync delivers hundreds to thousands of readings. Every ledger
//! they touch is folded from one query (`EventLog::load_states`), each reading is judged by the
//! same domain rules as a single command (`SpendLedger::handle`), and all resulting events are
//! appended in one transaction. Re-sending a batch writes nothing.

use crate::AppError;
use chrono::{DateTime, NaiveDate, Utc};
use domain::campaign::{AdPlatform, Campaign};
use domain::spend::{CampaignFacts, Metrics, Reading, SpendCommand, SpendEvent, SpendLedger};
use domain::Aggregate;
use eventlog::aggregate_cache::Cached;
use eventlog::{EventLog, EventMetadata, LogError, NewEvent, Position, StreamAppend};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One reading as a sync or the ingestion API delivers it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestReading {
    pub campaign_id: String,
    pub platform: AdPlatform,
    pub date: NaiveDate,
    pub spend_micros: i64,
    pub currency: String,
    #[serde(default)]
    pub impressions: i64,
    #[serde(default)]
    pub reach: i64,
    #[serde(default)]
    pub clicks: i64,
    #[serde(default)]
    pub views: i64,
    #[serde(default)]
    pub saves: i64,
    #[serde(default)]
    pub reactions: i64,
    #[serde(default)]
    pub comments: i64,
    #[serde(default)]
    pub shares: i64,
    #[serde(default)]
    pub follows: i64,
    #[serde(default)]
    pub conversions: i64,
    pub fetched_at: DateTime<Utc>,
    pub source: String,
}

/// What became of one reading.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Recorded,
    Restated,
    Unchanged,
    /// Fetched before the reading the ledger holds: not recorded, changes nothing.
    Stale {
        reason: String,
    },
    Rejected {
        reason: String,
    },
}

/// The answer for a whole batch.
#[derive(Clone, Debug, Serialize)]
pub struct BatchResult {
    pub outcomes: Vec<Outcome>,
    pub position: Option<Position>,
}

/// How many times a batch is decided again after losing a race with another writer.
const CONFLICT_RETRIES: usize = 3;

/// A service's batch of readings (each already parsed, or the reason it could not be).
pub async fn ingest_batch(
    app: &crate::App,
    call: &crate::Call,
    readings: &[Result<IngestReading, String>],
) -> Result<BatchResult, AppError> {
    call.caller.require(&[crate::Role::Service])?;
    if readings.is_empty() {
        return Err(AppError::Validation("the batch holds no reading".into()));
    }
    ingest(&app.log, readings, &call.metadata()).await
}

/// Ingests `readings` (each already parsed, or the reason it could not be).
pub async fn ingest(
    log: &EventLog,
    readings: &[Result<IngestReading, String>],
    metadata: &EventMetadata,
) -> Result<BatchResult, AppError> {
    let mut attempt = 0;
    loop {
        match ingest_once(log, readings, metadata).await {
            Err(LogError::Conflict { .. }) if attempt < CONFLICT_RETRIES => attempt += 1,
            Err(error) => return Err(error.into()),
            Ok(result) => return Ok(result),
        }
    }
}

async fn ingest_once(
    log: &EventLog,
    readings: &[Result<IngestReading, String>],
    metadata: &EventMetadata,
) -> Result<BatchResult, LogError> {
    // The campaigns: currency, life and platform, from their own streams.
    let mut campaign_ids: Vec<String> = readings.iter().flatten().map(|r| r.campaign_id.clone()).collect();
    campaign_ids.sort();
    campaign_ids.dedup();
    let campaigns = log.load_states::<Campaign>(&campaign_ids).await?;
    // The ledgers, with their last sequence and chain link.
    let mut ledger_ids: Vec<String> = readings
        .iter()
        .flatten()
        .map(|r| SpendLedger::id(&r.campaign_id, r.platform.as_str(), r.date))
        .collect();
    ledger_ids.sort();
    ledger_ids.dedup();
    let mut ledgers = log.load_states::<SpendLedger>(&ledger_ids).await?;
    let mut pending: BTreeMap<String, Vec<NewEvent>> = BTreeMap::new();
    let mut outcomes = Vec::with_capacity(readings.len());
    for reading in readings {
        let reading = match reading {
            Ok(reading) => reading,
            Err(reason) => {
                outcomes.push(Outcome::Rejected { reason: reason.clone() });
                continue;
            }
        };
        let Some(details) = campaigns.get(&reading.campaign_id).and_then(|c| c.state.details()) else {
            outcomes.push(Outcome::Rejected {
                reason: "there is no such campaign".into(),
            });
            continue;
        };
        if details.platform != reading.platform {
            outcomes.push(Outcome::Rejected {
                reason: format!("the campaign runs on {}", details.platform.as_str()),
            });
            continue;
        }
        let facts = CampaignFacts {
            currency: details.currency.clone(),
            start: details.schedule.start,
            end: details.schedule.end,
        };
        let ledger_id = SpendLedger::id(&reading.campaign_id, reading.platform.as_str(), reading.date);
        let ledger = ledgers.entry(ledger_id.clone()).or_insert_with(Cached::empty);
        let command = SpendCommand::Record {
            reading: Reading {
                date: reading.date,
                metrics: Metrics {
                    spend_micros: reading.spend_micros,
                    currency: reading.currency.clone(),
                    impressions: reading.impressions,
                    reach: reading.reach,
                    clicks: reading.clicks,
                    views: reading.views,
                    saves: reading.saves,
                    reactions: reading.reactions,
                    comments: reading.comments,
                    shares: reading.shares,
                    follows: reading.follows,
                    conversions: reading.conversions,
                },
                fetched_at: reading.fetched_at,
                source: reading.source.clone(),
            },
            campaign: facts,
        };
        match ledger.state.handle(command) {
            Err(rule @ domain::spend::SpendError::Stale { .. }) => outcomes.push(Outcome::Stale {
                reason: rule.to_string(),
            }),
            Err(rule) => outcomes.push(Outcome::Rejected {
                reason: rule.to_string(),
            }),
            Ok(events) => {
                outcomes.push(match events.first() {
                    None => Outcome::Unchanged,
                    Some(SpendEvent::SpendRecorded(_)) => Outcome::Recorded,
                    Some(SpendEvent::SpendRestated { .. }) => Outcome::Restated,
                    // A later view with the same figures: recorded, but no figure changed.
                    Some(SpendEvent::SpendConfirmed { .. }) => Outcome::Unchanged,
                });
                for event in events {
                    pending
                        .entry(ledger_id.clone())
                        .or_default()
                        .push(NewEvent::from_domain(&event)?);
                    // Later readings of the same ledger in this batch see this one.
                    ledger.state.apply(event);
                }
            }
        }
    }
    let mut streams = Vec::with_capacity(pending.len());
    let mut previous = Vec::with_capacity(pending.len());
    for (ledger_id, events) in pending {
        let (sequence, hash) = ledgers
            .remove(&ledger_id)
            .map_or((0, None), |ledger| (ledger.sequence, ledger.chain_hash));
        streams.push(StreamAppend {
            aggregate_type: SpendLedger::TYPE.to_string(),
            aggregate_id: ledger_id,
            expected_sequence: sequence,
            events,
        });
        previous.push(hash);
    }
    // One statement, one commit, for the whole batch.
    let appended = log.append_streams_after(&streams, &previous, metadata).await?;
    Ok(BatchResult {
        outcomes,
        position: appended.last().map(|(_, p)| *p),
    })
}
