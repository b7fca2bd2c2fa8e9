//! `person_index`: every stream a person owns or wrote into, with their role in it and where
//! it starts in the feed. What the access export and the erasure read instead of scanning the
//! whole event log (P22, P30).
//!
//! Roles:
//! - `subject`: the stream is the person's: their account, consents, processing state and
//!   disclosure log (id = the person), their connections (`Connected.person_id`), the billing
//!   accounts they own (`BillingAccountOpened.owner`) and their privacy requests
//!   (`PrivacyRequestOpened.person_id`);
//! - `author`: a stream of someone or something else (an artist, a campaign, …) into which the
//!   person recorded events (event metadata `actor = person:<id>`).
//!
//! A stream enters the index with its first event of that role and never leaves it (streams are
//! never deleted). Rows are written with `INSERT … ON CONFLICT DO NOTHING`, once per batch.

use crate::projection::{Projection, ProjectionError, ReadTx, Target};
use async_trait::async_trait;
use domain::billing::{BillingAccount, BillingEvent};
use domain::connection::{Connection, ConnectionEvent};
use domain::privacy::{PrivacyEvent, PrivacyRequest};
use domain::Aggregate;
use eventlog::{dispatch, Db, Dialect, Position, StoredEvent};
use serde_json::{Map, Value};
use sqlx::{Column, Row};
use std::collections::BTreeMap;

/// The projection that fills `person_index`.
pub struct PersonIndex;

/// The person owns the stream.
pub const SUBJECT: &str = "subject";
/// The person recorded events in a stream that is not theirs.
pub const AUTHOR: &str = "author";

/// Aggregates whose id is the person's id.
const PERSON_STREAMS: &[&str] = &["account", "consent", "data_subject", "disclosure_log"];

/// The person a stream belongs to, judged on one of its events; `None` when this event does not say.
fn subject_of(event: &StoredEvent) -> Result<Option<String>, ProjectionError> {
    if PERSON_STREAMS.contains(&event.aggregate_type.as_str()) {
        return Ok(Some(event.aggregate_id.clone()));
    }
    let decoded = |e: eventlog::DecodeError| ProjectionError::undecodable(event, e);
    Ok(match event.aggregate_type.as_str() {
        t if t == Connection::TYPE && event.event_type == "Connected" => {
            match event.decode::<ConnectionEvent>().map_err(decoded)? {
                ConnectionEvent::Connected { person_id, .. } => Some(person_id),
                _ => None,
            }
        }
        t if t == BillingAccount::TYPE && event.event_type == "BillingAccountOpened" => {
            match event.decode::<BillingEvent>().map_err(decoded)? {
                BillingEvent::BillingAccountOpened { owner, .. } => Some(owner),
                _ => None,
            }
        }
        t if t == PrivacyRequest::TYPE && event.event_type == "PrivacyRequestOpened" => {
            match event.decode::<PrivacyEvent>().map_err(decoded)? {
                PrivacyEvent::RequestOpened { person_id, .. } => Some(person_id),
                _ => None,
            }
        }
        _ => None,
    })
}

#[async_trait]
impl Projection for PersonIndex {
    fn name(&self) -> &'static str {
        "person_index"
    }

    fn version(&self) -> i32 {
        1
    }

    fn tables(&self) -> &'static [&'static str] {
        &["person_index"]
    }

    fn schema(&self, dialect: Dialect) -> &'static str {
        match dialect {
            Dialect::Postgres => include_str!("../../../migrations/read_models/postgres/person_index.sql"),
            Dialect::Sqlite => include_str!("../../../migrations/read_models/sqlite/person_index.sql"),
        }
    }

    async fn apply(&self, tx: &mut ReadTx<'_>, target: &Target, events: &[StoredEvent]) -> Result<(), ProjectionError> {
        // (person, type, id, role) → the first position seen in this batch.
        let mut rows: BTreeMap<(String, &str, &str, &str), Position> = BTreeMap::new();
        let mut subjects: BTreeMap<(&str, &str), String> = BTreeMap::new();
        for event in events {
            let key = (event.aggregate_type.as_str(), event.aggregate_id.as_str());
            if let Some(person) = subject_of(event)? {
                subjects.insert(key, person.clone());
                rows.entry((person, key.0, key.1, SUBJECT)).or_insert(event.position);
            }
            if let Some(author) = event.metadata.actor.strip_prefix("person:") {
                // An author of their own stream is its subject already; a stream whose subject is
                // only known from an earlier batch gets an author row too, which the export
                // tells apart (it lists a subject's streams whole and skips their author rows).
                let own = subjects.get(&key).is_some_and(|subject| subject == author)
                    || (PERSON_STREAMS.contains(&key.0) && key.1 == author);
                if !own {
                    rows.entry((author.to_string(), key.0, key.1, AUTHOR))
                        .or_insert(event.position);
                }
            }
        }
        if rows.is_empty() {
            return Ok(());
        }
        let table = target.table("person_index");
        let columns = "person_id, aggregate_type, aggregate_id, role, first_commit, first_global";
        match tx {
            ReadTx::Postgres(conn) => {
                let mut cols: (Vec<&str>, Vec<&str>, Vec<&str>, Vec<&str>, Vec<i64>, Vec<i64>) = Default::default();
                for ((person, t, i, role), p) in &rows {
                    cols.0.push(person);
                    cols.1.push(t);
                    cols.2.push(i);
                    cols.3.push(role);
                    cols.4.push(p.commit);
                    cols.5.push(p.global);
                }
                sqlx::query(&format!(
                    "INSERT INTO {table} ({columns}) \
                     SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[]) \
                     ON CONFLICT DO NOTHING"
                ))
                .bind(&cols.0)
                .bind(&cols.1)
                .bind(&cols.2)
                .bind(&cols.3)
                .bind(&cols.4)
                .bind(&cols.5)
                .execute(&mut **conn)
                .await?;
            }
            ReadTx::Sqlite(conn) => {
                let json: Vec<_> = rows
                    .iter()
                    .map(|((person, t, i, role), p)| serde_json::json!([person, t, i, role, p.commit, p.global]))
                    .collect();
                sqlx::query(&format!(
                    "INSERT INTO {table} ({columns}) \
                     SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5 \
                     FROM json_each($1) WHERE true ON CONFLICT DO NOTHING"
                ))
                .bind(serde_json::Value::Array(json).to_string())
                .execute(&mut **conn)
                .await?;
            }
        }
        Ok(())
    }
}

/// One stream in a person's index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PersonStream {
    pub aggregate_type: String,
    pub aggregate_id: String,
    /// [`SUBJECT`] or [`AUTHOR`].
    pub role: String,
    /// Where the stream's first event of this role is in the feed.
    pub first: Position,
}

/// Every stream of `person` with the role given (or all roles), in feed order of their first event.
pub async fn streams_of(db: &Db, person: &str, role: Option<&str>) -> Result<Vec<PersonStream>, ProjectionError> {
    let sql = "SELECT aggregate_type, aggregate_id, role, first_commit, first_global FROM person_index \
               WHERE person_id = $1 AND ($2 = '' OR role = $2) ORDER BY first_commit, first_global, aggregate_type, aggregate_id";
    type Row = (String, String, String, i64, i64);
    let rows: Vec<Row> = dispatch!(db, Db, |pool| {
        sqlx::query_as(sql)
            .bind(person)
            .bind(role.unwrap_or(""))
            .fetch_all(pool)
            .await?
    });
    Ok(rows
        .into_iter()
        .map(|(aggregate_type, aggregate_id, role, commit, global)| PersonStream {
            aggregate_type,
            aggregate_id,
            role,
            first: Position { commit, global },
        })
        .collect())
}

/// The ids of `person`'s own streams of one aggregate type (their billing accounts, their requests, …).
pub async fn subject_ids(db: &Db, person: &str, aggregate_type: &str) -> Result<Vec<String>, ProjectionError> {
    Ok(streams_of(db, person, Some(SUBJECT))
        .await?
        .into_iter()
        .filter(|s| s.aggregate_type == aggregate_type)
        .map(|s| s.aggregate_id)
        .collect())
}

/// The read-model tables that hold rows about one person, and the column naming them.
const PERSON_TABLES: &[(&str, &str)] = &[
    ("accounts", "person_id"),
    ("consent_current", "person_id"),
    ("consent_history", "person_id"),
    ("connections", "person_id"),
    ("artist_access", "person_id"),
    ("billing_accounts", "owner"),
    ("privacy_requests", "person_id"),
];

/// The projections whose tables (`Projection::tables`) [`rows_about`] reads: what must have
/// caught up before those rows are the whole story.
pub fn person_table_projections() -> Vec<&'static str> {
    crate::all()
        .iter()
        .filter(|projection| {
            projection
                .tables()
                .iter()
                .any(|table| PERSON_TABLES.iter().any(|(person_table, _)| person_table == table))
        })
        .map(|projection| projection.name())
        .collect()
}

/// The person's read-model rows, per table, as JSON (sealed columns as stored): what the access
/// export shows and what the erasure checks no longer opens.
pub async fn rows_about(db: &Db, person: &str) -> Result<Map<String, Value>, ProjectionError> {
    let mut tables = Map::new();
    for (table, column) in PERSON_TABLES {
        let sql = format!("SELECT * FROM {table} WHERE {column} = $1");
        let rows: Vec<Value> = dispatch!(db, Db, |pool| {
            sqlx::query(&sql)
                .bind(person)
                .fetch_all(pool)
                .await?
                .iter()
                .map(|row| {
                    let mut object = Map::new();
                    for (index, col) in row.columns().iter().enumerate() {
                        let value = if let Ok(v) = row.try_get::<Option<String>, _>(index) {
                            v.map_or(Value::Null, Value::from)
                        } else if let Ok(v) = row.try_get::<Option<i64>, _>(index) {
                            v.map_or(Value::Null, Value::from)
                        } else if let Ok(v) = row.try_get::<Option<bool>, _>(index) {
                            v.map_or(Value::Null, Value::from)
                        } else if let Ok(v) = row.try_get::<Option<i32>, _>(index) {
                            v.map_or(Value::Null, Value::from)
                        } else {
                            Value::Null
                        };
                        object.insert(col.name().to_string(), value);
                    }
                    Value::Object(object)
                })
                .collect()
        });
        tables.insert((*table).to_string(), Value::Array(rows));
    }
    Ok(tables)
}

#[cfg(test)]
mod tests {
    use super::{person_table_projections, PERSON_TABLES};

    #[test]
    fn every_person_table_is_written_by_a_projection_the_export_waits_for() {
        let waited = person_table_projections();
        for (table, _) in PERSON_TABLES {
            let writer = crate::all()
                .into_iter()
                .find(|projection| projection.tables().contains(table))
                .unwrap_or_else(|| panic!("no projection writes {table}"));
            assert!(waited.contains(&writer.name()), "{table}");
        }
        assert_eq!(
            waited,
            [
                "accounts",
                "consent_ledger",
                "connections",
                "artist_access",
                "billing",
                "privacy_requests"
            ]
        );
    }
}
