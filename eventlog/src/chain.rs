//! Tamper evidence (P18): every stream is a hash chain. An event's `chain_hash` is the SHA-256
//! of the previous event's hash and of this event's stored fields: aggregate type and id,
//! sequence, event type and version, event id, recorded_at, the payload exactly as stored
//! (ciphertext included) and the metadata exactly as stored. Each field is length-prefixed, so
//! no two different events hash alike. Destroying a key changes no stored byte, so chains
//! still verify after crypto-shredding.

use crate::event::ChainRow;
use crate::{dispatch, Db, LogError};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::Row;

/// The stored fields an event's hash covers.
pub(crate) struct Link<'a> {
    pub aggregate_type: &'a str,
    pub aggregate_id: &'a str,
    pub sequence: i64,
    pub event_type: &'a str,
    pub event_version: &'a str,
    pub event_id: &'a str,
    pub recorded_at: DateTime<Utc>,
    pub payload: &'a str,
    pub metadata: &'a str,
}

/// The hash of an event given the previous event's hash (`None` for a stream's first event).
pub(crate) fn link(previous: Option<&str>, event: &Link<'_>) -> String {
    let mut hasher = Sha256::new();
    let recorded_at = event.recorded_at.to_rfc3339_opts(SecondsFormat::Micros, true);
    let sequence = event.sequence.to_string();
    for field in [
        previous.unwrap_or(""),
        event.aggregate_type,
        event.aggregate_id,
        &sequence,
        event.event_type,
        event.event_version,
        event.event_id,
        &recorded_at,
        event.payload,
        event.metadata,
    ] {
        hasher.update((field.len() as u64).to_be_bytes());
        hasher.update(field.as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// The result of verifying one stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StreamVerification {
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub events: i64,
    /// `None` when every link holds; otherwise the first broken sequence and why.
    pub broken: Option<BrokenLink>,
    /// Events with no chain hash: written outside dynamoi (e.g. by postgres-es), on purpose
    /// not tampering. Their bytes are not covered; the chain starts again after each (an
    /// append after such a row links to no previous hash), and the links after them are checked.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub written_outside: Vec<i64>,
}

/// Where a chain breaks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BrokenLink {
    pub sequence: i64,
    pub reason: String,
}

/// One stream's events from the SQL `events` table, with the texts their hashes cover.
pub(crate) async fn sql_rows(db: &Db, aggregate_type: &str, aggregate_id: &str) -> Result<Vec<ChainRow>, LogError> {
    let sql = match db {
        Db::Postgres(_) => {
            "SELECT sequence, event_type, event_version, event_id::text AS event_id, recorded_at, \
             payload::text AS payload, metadata::text AS metadata, chain_hash \
             FROM events WHERE aggregate_type = $1 AND aggregate_id = $2 ORDER BY sequence"
        }
        Db::Sqlite(_) => {
            "SELECT sequence, event_type, event_version, event_id, recorded_at, payload, metadata, chain_hash \
             FROM events WHERE aggregate_type = $1 AND aggregate_id = $2 ORDER BY sequence"
        }
    };
    let rows: Vec<ChainRow> = match db {
        Db::Postgres(pool) => {
            let rows = sqlx::query(sql)
                .bind(aggregate_type)
                .bind(aggregate_id)
                .fetch_all(pool)
                .await?;
            rows.iter()
                .map(|r| {
                    Ok(ChainRow {
                        sequence: r.try_get("sequence")?,
                        event_type: r.try_get("event_type")?,
                        event_version: r.try_get("event_version")?,
                        event_id: r.try_get("event_id")?,
                        recorded_at: r.try_get("recorded_at")?,
                        payload: r.try_get("payload")?,
                        metadata: r.try_get("metadata")?,
                        chain_hash: r.try_get("chain_hash")?,
                    })
                })
                .collect::<Result<_, sqlx::Error>>()?
        }
        Db::Sqlite(pool) => {
            let rows = sqlx::query(sql)
                .bind(aggregate_type)
                .bind(aggregate_id)
                .fetch_all(pool)
                .await?;
            rows.iter()
                .map(|r| {
                    let recorded_at: String = r.try_get("recorded_at")?;
                    Ok(ChainRow {
                        sequence: r.try_get("sequence")?,
                        event_type: r.try_get("event_type")?,
                        event_version: r.try_get("event_version")?,
                        event_id: r.try_get("event_id")?,
                        recorded_at: crate::sqlite::parse_time(&recorded_at)
                            .ok_or_else(|| sqlx::Error::Decode("invalid recorded_at".into()))?,
                        payload: r.try_get("payload")?,
                        metadata: r.try_get("metadata")?,
                        chain_hash: r.try_get("chain_hash")?,
                    })
                })
                .collect::<Result<_, sqlx::Error>>()?
        }
    };
    Ok(rows)
}

/// Recomputes every link of one stream from the stored bytes.
pub(crate) fn verify_rows(aggregate_type: &str, aggregate_id: &str, rows: &[ChainRow]) -> StreamVerification {
    let mut previous: Option<String> = None;
    let mut broken = None;
    let mut written_outside = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let expected_sequence = i as i64 + 1;
        if row.sequence != expected_sequence {
            broken = Some(BrokenLink {
                sequence: row.sequence,
                reason: format!("sequence {expected_sequence} is missing"),
            });
            break;
        }
        let computed = link(
            previous.as_deref(),
            &Link {
                aggregate_type,
                aggregate_id,
                sequence: row.sequence,
                event_type: &row.event_type,
                event_version: &row.event_version,
                event_id: &row.event_id,
                recorded_at: row.recorded_at,
                payload: &row.payload,
                metadata: &row.metadata,
            },
        );
        match &row.chain_hash {
            Some(stored) if *stored == computed => previous = Some(computed),
            Some(_) => {
                broken = Some(BrokenLink {
                    sequence: row.sequence,
                    reason: "the stored event does not match its hash: it was altered after it was written".into(),
                });
                break;
            }
            None => {
                written_outside.push(row.sequence);
                previous = None;
            }
        }
    }
    StreamVerification {
        aggregate_type: aggregate_type.to_string(),
        aggregate_id: aggregate_id.to_string(),
        events: rows.len() as i64,
        broken,
        written_outside,
    }
}

/// Every stream in the SQL `events` table (not a read model).
pub(crate) async fn sql_streams(db: &Db) -> Result<Vec<(String, String)>, LogError> {
    let sql = "SELECT DISTINCT aggregate_type, aggregate_id FROM events ORDER BY aggregate_type, aggregate_id";
    let streams = dispatch!(db, Db, |pool| {
        let rows = sqlx::query(sql).fetch_all(pool).await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<Vec<(String, String)>, sqlx::Error>>()?
    });
    Ok(streams)
}

/// Looks up the chain hash of each stream's event at `sequence` (the last one an append follows).
pub(crate) async fn heads(db: &Db, wanted: &[(&str, &str, i64)]) -> Result<Vec<Option<String>>, LogError> {
    let mut out = Vec::with_capacity(wanted.len());
    for (aggregate_type, aggregate_id, sequence) in wanted {
        if *sequence == 0 {
            out.push(None);
            continue;
        }
        let sql = "SELECT chain_hash FROM events WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence = $3";
        let hash: Option<Option<String>> = dispatch!(db, Db, |pool| {
            sqlx::query_scalar(sql)
                .bind(*aggregate_type)
                .bind(*aggregate_id)
                .bind(*sequence)
                .fetch_optional(pool)
                .await?
        });
        // No event at the expected sequence: the caller's view of the stream is wrong (an
        // append there would leave a gap), which is a conflict like any stale expectation.
        let Some(hash) = hash else {
            return Err(LogError::Conflict {
                aggregate_type: aggregate_type.to_string(),
                aggregate_id: aggregate_id.to_string(),
            });
        };
        out.push(hash);
    }
    Ok(out)
}
