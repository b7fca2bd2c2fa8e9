//! The SQLite backend's SQL: one-statement appends over `json_each`, and the feed by position.

use crate::event::{FoldRow, PreparedEvent};
use crate::idempotency::{self, ClaimToken};
use crate::postgres::conflict_or;
use crate::{LogError, Position, StoredEvent, StreamAppend};
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqlitePool};
use uuid::Uuid;

const COLUMNS: &str = "aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, \
     event_id, recorded_at, chain_hash, global_position";

/// Appends a batch of events, given as a JSON array (`?1`) of their columns.
const INSERT_MANY: &str = "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, \
                             payload, metadata, event_id, recorded_at, chain_hash, global_position) \
         SELECT json_extract(value, '$.t'), json_extract(value, '$.i'), json_extract(value, '$.s'), \
                json_extract(value, '$.e'), json_extract(value, '$.v'), json_extract(value, '$.p'), \
                ?2, json_extract(value, '$.id'), ?3, json_extract(value, '$.h'), \
                (SELECT COALESCE(MAX(global_position), 0) FROM events) + key + 1 \
         FROM json_each(?1) ORDER BY key \
         RETURNING event_id, global_position";

/// Appends one event, its columns bound one by one.
const INSERT_ONE: &str = "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, \
                             payload, metadata, event_id, recorded_at, chain_hash, global_position) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, (SELECT COALESCE(MAX(global_position), 0) FROM events) + 1) \
         RETURNING event_id, global_position";

pub(crate) async fn append(
    pool: &SqlitePool,
    rows: &[PreparedEvent],
    metadata: &str,
    recorded_at: DateTime<Utc>,
    streams: &[StreamAppend],
    claim: Option<&ClaimToken>,
) -> Result<Vec<(Uuid, Position)>, LogError> {
    let recorded_at = recorded_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    // One event (most commands): a plain single-row INSERT, no JSON to build or to parse.
    let one = match rows {
        [row] => Some(row),
        _ => None,
    };
    let json_rows = match one {
        Some(_) => String::new(),
        None => serde_json::to_string(
            &rows
                .iter()
                .map(|r| {
                    serde_json::json!({
                        "t": r.aggregate_type,
                        "i": r.aggregate_id,
                        "s": r.sequence,
                        "e": r.event_type,
                        "v": r.event_version,
                        "p": r.payload,
                        "id": r.event_id.to_string(),
                        "h": r.chain_hash,
                    })
                })
                .collect::<Vec<_>>(),
        )?,
    };
    let event_id = one.map(|row| row.event_id.to_string());
    // One statement in autocommit: SQLite takes the write lock before the statement reads
    // MAX(global_position), and the SELECT is materialised before the first row is written
    // (it reads the table it inserts into), so positions are MAX+1, MAX+2, … without gaps.
    let insert = || match (one, &event_id) {
        (Some(row), Some(event_id)) => sqlx::query(INSERT_ONE)
            .bind(&row.aggregate_type)
            .bind(&row.aggregate_id)
            .bind(row.sequence)
            .bind(&row.event_type)
            .bind(&row.event_version)
            .bind(&row.payload)
            .bind(metadata)
            .bind(event_id)
            .bind(&recorded_at)
            .bind(&row.chain_hash),
        _ => sqlx::query(INSERT_MANY)
            .bind(&json_rows)
            .bind(metadata)
            .bind(&recorded_at),
    };
    let Some(claim) = claim else {
        let returned = insert().fetch_all(pool).await.map_err(|e| conflict_or(e, streams))?;
        return positions(&returned);
    };
    // Under an Idempotency-Key: the events and the key's `applied` mark in one transaction
    // (the INSERT comes first, so the transaction takes the write lock at once).
    let mut tx = pool.begin().await?;
    let returned = insert()
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| conflict_or(e, streams))?;
    let out = positions(&returned)?;
    let first = &streams[0];
    let last = out.last().map(|(_, p)| p.to_string());
    let marked = idempotency::mark_applied_on!(&mut *tx, claim, &first.aggregate_type, &first.aggregate_id, last);
    if let Err(error) = marked {
        tx.rollback().await?;
        return Err(error);
    }
    tx.commit().await?;
    Ok(out)
}

fn positions(returned: &[SqliteRow]) -> Result<Vec<(Uuid, Position)>, LogError> {
    let mut out = Vec::with_capacity(returned.len());
    for row in returned {
        let id: String = row.try_get(0)?;
        out.push((
            Uuid::parse_str(&id).map_err(|e| LogError::Database(sqlx::Error::Decode(Box::new(e))))?,
            Position {
                commit: 0,
                global: row.try_get(1)?,
            },
        ));
    }
    // RETURNING order is not promised by SQLite; positions follow the input order.
    out.sort_by_key(|(_, p)| *p);
    Ok(out)
}

pub(crate) async fn load_many(
    pool: &SqlitePool,
    aggregate_type: &str,
    aggregate_ids: &[String],
) -> Result<Vec<StoredEvent>, LogError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM events WHERE aggregate_type = ?1 \
         AND aggregate_id IN (SELECT value FROM json_each(?2)) ORDER BY aggregate_id, sequence"
    );
    let ids = serde_json::to_string(aggregate_ids)?;
    let rows = sqlx::query(&sql).bind(aggregate_type).bind(ids).fetch_all(pool).await?;
    rows.iter().map(decode).collect()
}

/// The fold columns of every event of several aggregates of one type, in no order, each row
/// handed to `each` as it is read.
pub(crate) async fn load_fold_rows<T>(
    pool: &SqlitePool,
    aggregate_type: &str,
    aggregate_ids: &[String],
    mut each: impl FnMut(FoldRow) -> Result<T, LogError>,
) -> Result<Vec<T>, LogError> {
    let ids = serde_json::to_string(aggregate_ids)?;
    let mut rows = sqlx::query(
        "SELECT aggregate_id, sequence, event_type, event_version, payload, chain_hash FROM events \
         WHERE aggregate_type = ?1 AND aggregate_id IN (SELECT value FROM json_each(?2))",
    )
    .bind(aggregate_type)
    .bind(ids)
    .fetch(pool);
    let mut folded = Vec::new();
    while let Some(row) = rows.try_next().await? {
        folded.push(each(FoldRow::from_row(&row)?)?);
    }
    Ok(folded)
}

pub(crate) async fn load(
    pool: &SqlitePool,
    aggregate_type: &str,
    aggregate_id: &str,
) -> Result<Vec<StoredEvent>, LogError> {
    let sql = format!("SELECT {COLUMNS} FROM events WHERE aggregate_type = ?1 AND aggregate_id = ?2 ORDER BY sequence");
    let rows = sqlx::query(&sql)
        .bind(aggregate_type)
        .bind(aggregate_id)
        .fetch_all(pool)
        .await?;
    rows.iter().map(decode).collect()
}

pub(crate) async fn read_feed(pool: &SqlitePool, after: Position, limit: i64) -> Result<Vec<StoredEvent>, LogError> {
    let sql = format!("SELECT {COLUMNS} FROM events WHERE global_position > ?1 ORDER BY global_position LIMIT ?2");
    let rows = sqlx::query(&sql).bind(after.global).bind(limit).fetch_all(pool).await?;
    rows.iter().map(decode).collect()
}

pub(crate) async fn head(pool: &SqlitePool) -> Result<Option<Position>, LogError> {
    let global: Option<i64> = sqlx::query_scalar("SELECT MAX(global_position) FROM events")
        .fetch_one(pool)
        .await?;
    Ok(global.map(|global| Position { commit: 0, global }))
}

pub(crate) async fn count_after(pool: &SqlitePool, after: Position) -> Result<(i64, Option<DateTime<Utc>>), LogError> {
    let row = sqlx::query("SELECT count(*), min(recorded_at) FROM events WHERE global_position > ?1")
        .bind(after.global)
        .fetch_one(pool)
        .await?;
    let oldest: Option<String> = row.try_get(1)?;
    let oldest = oldest.and_then(|s| parse_time(&s));
    Ok((row.try_get(0)?, oldest))
}

pub(crate) fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .or_else(|_| DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f%:z"))
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn decode(row: &SqliteRow) -> Result<StoredEvent, LogError> {
    let payload: String = row.try_get("payload")?;
    let metadata: String = row.try_get("metadata")?;
    let event_id: String = row.try_get("event_id")?;
    let recorded_at: String = row.try_get("recorded_at")?;
    let bad = |what: &str| {
        LogError::Database(sqlx::Error::Decode(
            format!("invalid {what} in the events table").into(),
        ))
    };
    Ok(StoredEvent {
        position: Position {
            commit: 0,
            global: row.try_get("global_position")?,
        },
        event_id: Uuid::parse_str(&event_id).map_err(|_| bad("event_id"))?,
        aggregate_type: row.try_get("aggregate_type")?,
        aggregate_id: row.try_get("aggregate_id")?,
        sequence: row.try_get("sequence")?,
        event_type: row.try_get("event_type")?,
        event_version: row.try_get("event_version")?,
        payload: serde_json::from_str(&payload)?,
        metadata: serde_json::from_str(&metadata)?,
        recorded_at: parse_time(&recorded_at).ok_or_else(|| bad("recorded_at"))?,
        chain_hash: row.try_get("chain_hash")?,
    })
}
