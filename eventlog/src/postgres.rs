//! The PostgreSQL backend's SQL: one-statement appends with UNNEST, and the commit-ordered feed.

use crate::event::{FoldRow, PreparedEvent};
use crate::idempotency::{self, ClaimToken};
use crate::kept_connections::{self, KeptConnections};
use crate::{EventMetadata, LogError, Position, StoredEvent, StreamAppend};
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{PgPool, Row};
use std::borrow::Cow;
use uuid::Uuid;

const COLUMNS: &str = "aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, \
     event_id, recorded_at, chain_hash, transaction_id::text::bigint AS commit_id, global_position";

/// The lock every transaction that writes events holds, shared, from before it has a
/// transaction id until it ends (the `events_feed_writer` trigger, migration 0011), as a
/// `pg_locks` condition on the row `w`. Advisory locks are per database: writers of other
/// databases on the same server are not ours.
const FEED_WRITER: &str = "w.locktype = 'advisory' AND w.granted AND w.classid = 1685679713 AND w.objid = 1 \
     AND w.objsubid = 2 AND w.database = (SELECT oid FROM pg_database WHERE datname = current_database())";

/// The feed's horizon: every event whose transaction id is below it has ended (committed or
/// rolled back), so a reader that stops below it can never skip one. It is the lowest id among
/// the open transactions that write events, or the snapshot's `xmax` when none is open: an
/// open transaction that writes no event (an admin's psql, a `pg_dump`, in any database of the
/// server) holds nothing back.
///
/// It must be computed by a statement of its own, *before* the statement that reads events
/// below it: a writer that commits between this statement's snapshot and its `pg_locks` scan is
/// then visible to the later read. A writer that takes the lock after the scan gets an id at
/// or above this snapshot's `xmax` (the trigger refuses a writer that already had an id).
fn horizon_sql() -> String {
    format!(
        "SELECT (CASE WHEN pg_snapshot_xmin(s) = pg_snapshot_xmax(s) THEN pg_snapshot_xmax(s) \
         ELSE least(pg_snapshot_xmax(s), (SELECT min(x) FROM pg_snapshot_xip(s) AS x \
              WHERE x::text::bigint % 4294967296 IN (\
                  SELECT t.transactionid::text::bigint FROM pg_locks w JOIN pg_locks t ON t.pid = w.pid \
                  WHERE {FEED_WRITER} AND t.locktype = 'transactionid' AND t.mode = 'ExclusiveLock' AND t.granted))) \
         END)::text FROM pg_current_snapshot() AS s"
    )
}

/// The feed's horizon now, as the text of an `xid8` (see [`horizon_sql`]).
async fn horizon(pool: &PgPool) -> Result<String, LogError> {
    Ok(sqlx::query_scalar(&horizon_sql()).fetch_one(pool).await?)
}

/// Appends a batch of events: the arrays are the columns, in the order of the batch.
const INSERT_MANY: &str = "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, \
                             payload, metadata, event_id, recorded_at, chain_hash) \
         SELECT t, i, s, e, v, p::json, $7::json, id, $8, h \
         FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $9::uuid[], $10::text[]) \
              WITH ORDINALITY AS u(t, i, s, e, v, p, id, h, ord) \
         ORDER BY ord \
         RETURNING event_id, transaction_id::text::bigint, global_position";

/// Appends one event: the same parameters as [`INSERT_MANY`], each a value instead of an array.
const INSERT_ONE: &str = "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, \
                             payload, metadata, event_id, recorded_at, chain_hash) \
         VALUES ($1, $2, $3, $4, $5, $6::json, $7::json, $9, $8, $10) \
         RETURNING event_id, transaction_id::text::bigint, global_position";

/// The most events one INSERT carries. A larger batch (a bulk ingest) is several statements in
/// one transaction: the statement's bind buffers then stay near 1 MB instead of growing with the
/// batch (at the peak of two concurrent 10,000-event ingests they held ~27 MB: BENCHMARKS.md).
const EVENTS_PER_STATEMENT: usize = 1_000;

pub(crate) async fn append(
    pool: &PgPool,
    connections: Option<&KeptConnections>,
    rows: &[PreparedEvent],
    metadata: &str,
    recorded_at: DateTime<Utc>,
    streams: &[StreamAppend],
    claim: Option<&ClaimToken>,
) -> Result<Vec<(Uuid, Position)>, LogError> {
    // One statement, one implicit transaction, one commit, for every batch of up to
    // EVENTS_PER_STATEMENT events (every command), on a connection the log keeps for appends
    // (given back without sqlx's release ping: `crate::kept_connections`), or on one from
    // the pool when those are all in use.
    if claim.is_none() && rows.len() <= EVENTS_PER_STATEMENT {
        let returned = kept_connections::one_statement(connections, pool, async |connection| {
            insert(connection, rows, metadata, recorded_at).await
        })
        .await;
        return positions(&returned.map_err(|e| conflict_or(e, streams))?);
    }
    // Under an Idempotency-Key (the events and the key's `applied` mark) or for a larger batch:
    // one transaction. Its statements run in order, so positions still follow the batch's order.
    let mut tx = pool.begin().await?;
    let mut out = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(EVENTS_PER_STATEMENT) {
        let returned = insert(&mut *tx, chunk, metadata, recorded_at)
            .await
            .map_err(|e| conflict_or(e, streams))?;
        out.extend(positions(&returned)?);
    }
    if let Some(claim) = claim {
        let first = &streams[0];
        let last = out.last().map(|(_, p)| p.to_string());
        let marked = idempotency::mark_applied_on!(&mut *tx, claim, &first.aggregate_type, &first.aggregate_id, last);
        if let Err(error) = marked {
            tx.rollback().await?;
            return Err(error);
        }
    }
    tx.commit().await?;
    Ok(out)
}

/// One INSERT of `rows`. WITH ORDINALITY keeps the input order, so that positions follow the
/// order of the events; one event is a plain single-row INSERT (no arrays, no UNNEST or sort).
async fn insert<'c>(
    executor: impl sqlx::PgExecutor<'c>,
    rows: &[PreparedEvent],
    metadata: &str,
    recorded_at: DateTime<Utc>,
) -> Result<Vec<PgRow>, sqlx::Error> {
    if let [row] = rows {
        sqlx::query(INSERT_ONE)
            .bind(&row.aggregate_type)
            .bind(&row.aggregate_id)
            .bind(row.sequence)
            .bind(&row.event_type)
            .bind(&row.event_version)
            .bind(&row.payload)
            .bind(metadata)
            .bind(recorded_at)
            .bind(row.event_id)
            .bind(&row.chain_hash)
            .fetch_all(executor)
            .await
    } else {
        let c = ColumnArrays::of(rows);
        sqlx::query(INSERT_MANY)
            .bind(&c.types)
            .bind(&c.ids)
            .bind(&c.sequences)
            .bind(&c.event_types)
            .bind(&c.versions)
            .bind(&c.payloads)
            .bind(metadata)
            .bind(recorded_at)
            .bind(&c.event_ids)
            .bind(&c.hashes)
            .fetch_all(executor)
            .await
    }
}

/// A batch's events as the column arrays [`INSERT_MANY`] binds.
struct ColumnArrays<'a> {
    types: Vec<&'a str>,
    ids: Vec<&'a str>,
    sequences: Vec<i64>,
    event_types: Vec<&'a str>,
    versions: Vec<&'a str>,
    payloads: Vec<&'a str>,
    event_ids: Vec<Uuid>,
    hashes: Vec<&'a str>,
}

impl<'a> ColumnArrays<'a> {
    fn of(rows: &'a [PreparedEvent]) -> ColumnArrays<'a> {
        ColumnArrays {
            types: rows.iter().map(|r| r.aggregate_type.as_str()).collect(),
            ids: rows.iter().map(|r| r.aggregate_id.as_str()).collect(),
            sequences: rows.iter().map(|r| r.sequence).collect(),
            event_types: rows.iter().map(|r| r.event_type.as_str()).collect(),
            versions: rows.iter().map(|r| r.event_version.as_str()).collect(),
            payloads: rows.iter().map(|r| r.payload.as_str()).collect(),
            event_ids: rows.iter().map(|r| r.event_id).collect(),
            hashes: rows.iter().map(|r| r.chain_hash.as_str()).collect(),
        }
    }
}

fn positions(returned: &[PgRow]) -> Result<Vec<(Uuid, Position)>, LogError> {
    returned
        .iter()
        .map(|row| {
            Ok((
                row.try_get::<Uuid, _>(0)?,
                Position {
                    commit: row.try_get(1)?,
                    global: row.try_get(2)?,
                },
            ))
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()
        .map_err(LogError::from)
}

/// A primary-key violation means another writer took one of our sequences first.
pub(crate) fn conflict_or(error: sqlx::Error, streams: &[StreamAppend]) -> LogError {
    if let sqlx::Error::Database(db) = &error {
        if db.is_unique_violation() {
            let (aggregate_type, aggregate_id) = streams
                .iter()
                .find(|s| db.message().contains(&s.aggregate_id) || streams.len() == 1)
                .map(|s| (s.aggregate_type.clone(), s.aggregate_id.clone()))
                .unwrap_or_default();
            return LogError::Conflict {
                aggregate_type,
                aggregate_id,
            };
        }
    }
    LogError::Database(error)
}

pub(crate) async fn load_many(
    pool: &PgPool,
    aggregate_type: &str,
    aggregate_ids: &[String],
) -> Result<Vec<StoredEvent>, LogError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM events WHERE aggregate_type = $1 AND aggregate_id = ANY($2) \
         ORDER BY aggregate_id, sequence"
    );
    let rows = sqlx::query(&sql)
        .bind(aggregate_type)
        .bind(aggregate_ids)
        .fetch_all(pool)
        .await?;
    rows.iter().map(decode).collect()
}

/// The fold columns of every event of several aggregates of one type, in no order (the caller
/// sorts: an ORDER BY here sorted the wide rows on the server, measured in BENCHMARKS.md), each
/// row handed to `each` as it arrives: the caller decodes one row while the server is still
/// reading the next ones.
///
/// Ids of one family (the text up to their last `.`, then a day: a campaign's ledgers,
/// `campaign.platform.day`; [`same_family`]) are read as one range of the primary key, from the
/// first asked to the last, instead of one index descent each; a row in a range that was not
/// asked for is skipped before it is decoded.
/// When ranges would not save half the descents, the ids are probed one by one (`= ANY`).
pub(crate) async fn load_fold_rows<T>(
    pool: &PgPool,
    aggregate_type: &str,
    aggregate_ids: &[String],
    mut each: impl FnMut(FoldRow) -> Result<T, LogError>,
) -> Result<Vec<T>, LogError> {
    let wanted: Cow<'_, [String]> = if aggregate_ids.windows(2).all(|pair| pair[0] < pair[1]) {
        Cow::Borrowed(aggregate_ids)
    } else {
        let mut ids = aggregate_ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        Cow::Owned(ids)
    };
    let (lows, highs): (Vec<&str>, Vec<&str>) = family_ranges(&wanted).into_iter().unzip();
    // `OFFSET 0` keeps the range inside the lateral subquery: one index range scan per family.
    // Without it, statistics not yet analysed after a bulk insert (a planner estimate of a few
    // dozen ledgers) made PostgreSQL read every ledger once and filter the ranges in a join.
    let mut rows = if lows.len() * 2 <= wanted.len() {
        sqlx::query(
            "SELECT e.aggregate_id, e.sequence, e.event_type, e.event_version, e.payload::text AS payload, \
             e.chain_hash FROM unnest($2::text[], $3::text[]) AS family(low, high) \
             JOIN LATERAL (SELECT aggregate_id, sequence, event_type, event_version, payload, chain_hash \
             FROM events WHERE aggregate_type = $1 \
             AND aggregate_id BETWEEN family.low AND family.high OFFSET 0) e ON true",
        )
        .bind(aggregate_type)
        .bind(&lows)
        .bind(&highs)
        .fetch(pool)
    } else {
        sqlx::query(
            "SELECT aggregate_id, sequence, event_type, event_version, payload::text AS payload, chain_hash \
             FROM events WHERE aggregate_type = $1 AND aggregate_id = ANY($2)",
        )
        .bind(aggregate_type)
        .bind(&*wanted)
        .fetch(pool)
    };
    let mut folded = Vec::new();
    while let Some(row) = rows.try_next().await? {
        let id: &str = row.try_get(0)?;
        if wanted.binary_search_by(|asked| asked.as_str().cmp(id)).is_err() {
            continue;
        }
        folded.push(each(FoldRow::from_row(&row)?)?);
    }
    Ok(folded)
}

/// The ranges (first, last) covering sorted, distinct `ids`, one per family: consecutive ids
/// of [`same_family`]. Any other id is a range of its own (an equality).
fn family_ranges(ids: &[String]) -> Vec<(&str, &str)> {
    let mut ranges: Vec<(&str, &str)> = Vec::new();
    for id in ids {
        match ranges.last_mut() {
            Some((low, high)) if same_family(low, id) => *high = id,
            _ => ranges.push((id, id)),
        }
    }
    ranges
}

/// Whether `a` and `b` share the text up to their last `.` and what follows in each is ASCII
/// digits and `-` in the same places (a day: `2026-03-01`). Such ids sort the same under every
/// collation the database may use (digits sort alike everywhere, and same-shaped suffixes differ
/// only in digits), so a range from the first to the last, which PostgreSQL reads in its own
/// collation's order, holds every one between them that was asked for. Ids `.`-free or with
/// other text after their last `.` (whose order a collation may change) are not ranged.
fn same_family(a: &str, b: &str) -> bool {
    let (Some(a_dot), Some(b_dot)) = (a.rfind('.'), b.rfind('.')) else {
        return false;
    };
    let (a_suffix, b_suffix) = (&a.as_bytes()[a_dot + 1..], &b.as_bytes()[b_dot + 1..]);
    a[..a_dot] == b[..b_dot]
        && !a_suffix.is_empty()
        && a_suffix.len() == b_suffix.len()
        && a_suffix
            .iter()
            .zip(b_suffix)
            .all(|(x, y)| (x.is_ascii_digit() && y.is_ascii_digit()) || (*x == b'-' && *y == b'-'))
}

pub(crate) async fn load(
    pool: &PgPool,
    aggregate_type: &str,
    aggregate_id: &str,
) -> Result<Vec<StoredEvent>, LogError> {
    let sql = format!("SELECT {COLUMNS} FROM events WHERE aggregate_type = $1 AND aggregate_id = $2 ORDER BY sequence");
    let rows = sqlx::query(&sql)
        .bind(aggregate_type)
        .bind(aggregate_id)
        .fetch_all(pool)
        .await?;
    rows.iter().map(decode).collect()
}

pub(crate) async fn read_feed(pool: &PgPool, after: Position, limit: i64) -> Result<Vec<StoredEvent>, LogError> {
    let horizon = horizon(pool).await?;
    let sql = format!(
        "SELECT {COLUMNS} FROM events \
         WHERE (transaction_id, global_position) > ($1::text::xid8, $2) AND transaction_id < $4::text::xid8 \
         ORDER BY transaction_id, global_position LIMIT $3"
    );
    // Decoded as the rows arrive, not after the last: the decoding overlaps the server's
    // sending, and a batch never holds its rows and their events at once.
    let mut rows = sqlx::query(&sql)
        .bind(after.commit.to_string())
        .bind(after.global)
        .bind(limit)
        .bind(horizon)
        .fetch(pool);
    let mut events = Vec::new();
    while let Some(row) = rows.try_next().await? {
        events.push(decode(&row)?);
    }
    Ok(events)
}

/// The newest event below the horizon (`$1`): the feed order's index read backwards, one row.
/// The ORDER BY names the table's columns: a bare `transaction_id` there would name the output
/// column of that name (the `bigint` cast), which no index orders, and every call would scan
/// and sort the whole table (12 ms at 30,000 events, growing with the log).
pub const HEAD: &str = "SELECT transaction_id::text::bigint, global_position FROM events \
                        WHERE transaction_id < $1::text::xid8 \
                        ORDER BY events.transaction_id DESC, events.global_position DESC LIMIT 1";

pub(crate) async fn head(pool: &PgPool) -> Result<Option<Position>, LogError> {
    let horizon = horizon(pool).await?;
    let row = sqlx::query(HEAD).bind(horizon).fetch_optional(pool).await?;
    Ok(match row {
        Some(row) => Some(Position {
            commit: row.try_get(0)?,
            global: row.try_get(1)?,
        }),
        None => None,
    })
}

/// Every committed event after `after`, including those the feed still holds back behind an
/// open writer (they are lag too), and the oldest one's time.
pub(crate) async fn count_after(pool: &PgPool, after: Position) -> Result<(i64, Option<DateTime<Utc>>), LogError> {
    let row = sqlx::query(
        "SELECT count(*), min(recorded_at) FROM events WHERE (transaction_id, global_position) > ($1::text::xid8, $2)",
    )
    .bind(after.commit.to_string())
    .bind(after.global)
    .fetch_one(pool)
    .await?;
    Ok((row.try_get(0)?, row.try_get(1)?))
}

/// What holds the feed back now: committed events at or past the horizon, and how long (in
/// seconds, by the server's clock) the oldest open transaction that writes events has been open.
pub(crate) async fn holdback(pool: &PgPool) -> Result<(i64, Option<f64>), LogError> {
    let horizon = horizon(pool).await?;
    let sql = format!(
        "SELECT (SELECT count(*) FROM events WHERE transaction_id >= $1::text::xid8), \
                (SELECT extract(epoch FROM clock_timestamp() - min(a.xact_start))::float8 \
                 FROM pg_locks w JOIN pg_stat_activity a ON a.pid = w.pid WHERE {FEED_WRITER})"
    );
    let row = sqlx::query(&sql).bind(horizon).fetch_one(pool).await?;
    Ok((row.try_get(0)?, row.try_get(1)?))
}

fn decode(row: &PgRow) -> Result<StoredEvent, LogError> {
    let Json(payload): Json<serde_json::Value> = row.try_get("payload")?;
    let Json(metadata): Json<EventMetadata> = row.try_get("metadata")?;
    Ok(StoredEvent {
        position: Position {
            commit: row.try_get("commit_id")?,
            global: row.try_get("global_position")?,
        },
        event_id: row.try_get("event_id")?,
        aggregate_type: row.try_get("aggregate_type")?,
        aggregate_id: row.try_get("aggregate_id")?,
        sequence: row.try_get("sequence")?,
        event_type: row.try_get("event_type")?,
        event_version: row.try_get("event_version")?,
        payload,
        metadata,
        recorded_at: row.try_get("recorded_at")?,
        chain_hash: row.try_get("chain_hash")?,
    })
}

#[cfg(test)]
mod tests {
    use super::family_ranges;

    #[test]
    fn ids_are_ranged_by_the_text_up_to_their_last_dot_when_a_day_follows() {
        let ids: Vec<String> = [
            "a",
            "c1.meta.2026-03-01",
            "c1.meta.2026-03-04",
            "c1.tiktok.2026-03-01",
            "c2.meta.2026-03-02",
            "c3.x.A",
            "c3.x.b",
            "c4.x.1-2",
            "c4.x.12-",
            "plain",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            family_ranges(&ids),
            vec![
                ("a", "a"),
                ("c1.meta.2026-03-01", "c1.meta.2026-03-04"),
                ("c1.tiktok.2026-03-01", "c1.tiktok.2026-03-01"),
                ("c2.meta.2026-03-02", "c2.meta.2026-03-02"),
                // A collation may order these otherwise than their bytes: one probe each.
                ("c3.x.A", "c3.x.A"),
                ("c3.x.b", "c3.x.b"),
                ("c4.x.1-2", "c4.x.1-2"),
                ("c4.x.12-", "c4.x.12-"),
                ("plain", "plain"),
            ]
        );
        assert!(family_ranges(&[]).is_empty());
    }
}
