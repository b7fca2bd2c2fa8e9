//! `stream_index`: every stream (aggregate) in the log with its event count, last sequence and
//! last write. Folded in memory per batch and written with one multi-row upsert per batch.

use crate::projection::{Projection, ProjectionError, ReadTx, Target};
use async_trait::async_trait;
use chrono::SecondsFormat;
use eventlog::{Dialect, StoredEvent};
use std::collections::BTreeMap;

/// The projection that fills `stream_index`.
pub struct StreamIndex;

#[derive(Default)]
struct Fold {
    events: i64,
    last_sequence: i64,
    last_recorded_at: String,
}

#[async_trait]
impl Projection for StreamIndex {
    fn name(&self) -> &'static str {
        "stream_index"
    }

    fn version(&self) -> i32 {
        1
    }

    fn tables(&self) -> &'static [&'static str] {
        &["stream_index"]
    }

    fn schema(&self, dialect: Dialect) -> &'static str {
        match dialect {
            Dialect::Postgres => include_str!("../../../migrations/read_models/postgres/stream_index.sql"),
            Dialect::Sqlite => include_str!("../../../migrations/read_models/sqlite/stream_index.sql"),
        }
    }

    async fn apply(&self, tx: &mut ReadTx<'_>, target: &Target, events: &[StoredEvent]) -> Result<(), ProjectionError> {
        let mut folded: BTreeMap<(&str, &str), Fold> = BTreeMap::new();
        for event in events {
            let entry = folded
                .entry((event.aggregate_type.as_str(), event.aggregate_id.as_str()))
                .or_default();
            entry.events += 1;
            entry.last_sequence = entry.last_sequence.max(event.sequence);
            entry.last_recorded_at = event.recorded_at.to_rfc3339_opts(SecondsFormat::Micros, true);
        }
        let table = target.table("stream_index");
        let upsert = "ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE SET \
                      events = {t}.events + excluded.events, \
                      last_sequence = CASE WHEN excluded.last_sequence > {t}.last_sequence \
                                      THEN excluded.last_sequence ELSE {t}.last_sequence END, \
                      last_recorded_at = excluded.last_recorded_at"
            .replace("{t}", &table);
        match tx {
            ReadTx::Postgres(conn) => {
                let (mut types, mut ids, mut counts, mut sequences, mut times) =
                    (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
                for ((t, i), f) in &folded {
                    types.push(*t);
                    ids.push(*i);
                    counts.push(f.events);
                    sequences.push(f.last_sequence);
                    times.push(f.last_recorded_at.as_str());
                }
                sqlx::query(&format!(
                    "INSERT INTO {table} (aggregate_type, aggregate_id, events, last_sequence, last_recorded_at) \
                     SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::text[]) {upsert}"
                ))
                .bind(&types)
                .bind(&ids)
                .bind(&counts)
                .bind(&sequences)
                .bind(&times)
                .execute(&mut **conn)
                .await?;
            }
            ReadTx::Sqlite(conn) => {
                let rows: Vec<_> = folded
                    .iter()
                    .map(|((t, i), f)| serde_json::json!([t, i, f.events, f.last_sequence, f.last_recorded_at]))
                    .collect();
                // `WHERE true` resolves SQLite's parsing ambiguity between a join and the upsert.
                sqlx::query(&format!(
                    "INSERT INTO {table} (aggregate_type, aggregate_id, events, last_sequence, last_recorded_at) \
                     SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4 FROM json_each($1) WHERE true {upsert}"
                ))
                .bind(serde_json::Value::Array(rows).to_string())
                .execute(&mut **conn)
                .await?;
            }
        }
        Ok(())
    }
}
