//! `connections`: each person's platform connections with their status and platform ids; no
//! token (P9, P23).

use crate::projection::{Projection, ProjectionError, ReadTx, Target};
use async_trait::async_trait;
use chrono::SecondsFormat;
use domain::connection::{Connection, ConnectionDetails, ConnectionEvent};
use domain::Aggregate;
use eventlog::{dispatch, Dialect, StoredEvent};

/// The projection that fills `connections`.
pub struct Connections;

#[async_trait]
impl Projection for Connections {
    fn name(&self) -> &'static str {
        "connections"
    }

    fn version(&self) -> i32 {
        1
    }

    fn tables(&self) -> &'static [&'static str] {
        &["connections"]
    }

    fn aggregate_types(&self) -> Option<&'static [&'static str]> {
        Some(&[Connection::TYPE])
    }

    fn schema(&self, dialect: Dialect) -> &'static str {
        match dialect {
            Dialect::Postgres => include_str!("../../../migrations/read_models/postgres/connections.sql"),
            Dialect::Sqlite => include_str!("../../../migrations/read_models/sqlite/connections.sql"),
        }
    }

    async fn apply(&self, tx: &mut ReadTx<'_>, target: &Target, events: &[StoredEvent]) -> Result<(), ProjectionError> {
        let table = target.table("connections");
        for event in events.iter().filter(|e| self.reads(e)) {
            let at = event.recorded_at.to_rfc3339_opts(SecondsFormat::Micros, true);
            let id = &event.aggregate_id;
            match event
                .decode::<ConnectionEvent>()
                .map_err(|e| ProjectionError::undecodable(event, e))?
            {
                ConnectionEvent::Connected { person_id, details } => {
                    let (external_id, display_name) = match &details {
                        ConnectionDetails::Spotify { artist_id } => (artist_id.clone(), None),
                        ConnectionDetails::Meta {
                            page_id,
                            instagram_actor_id,
                            ..
                        } => (page_id.clone(), instagram_actor_id.clone()),
                        ConnectionDetails::Youtube {
                            channel_id,
                            channel_name,
                            ..
                        } => (channel_id.clone(), Some(channel_name.clone())),
                        ConnectionDetails::GoogleAds { customer_id, .. } => (customer_id.clone(), None),
                    };
                    let sql = format!(
                        "INSERT INTO {table} (connection_id, person_id, platform, status, external_id, display_name, \
                         connected_at, ended_at) VALUES ($1, $2, $3, 'connected', $4, $5, $6, NULL) \
                         ON CONFLICT (connection_id) DO UPDATE SET status = 'connected', \
                         external_id = excluded.external_id, display_name = excluded.display_name, \
                         connected_at = excluded.connected_at, ended_at = NULL"
                    );
                    dispatch!(tx, ReadTx, |conn| {
                        sqlx::query(&sql)
                            .bind(id)
                            .bind(&person_id)
                            .bind(details.platform().as_str())
                            .bind(&external_id)
                            .bind(&display_name)
                            .bind(&at)
                            .execute(&mut **conn)
                            .await?;
                    });
                }
                ConnectionEvent::Disconnected { .. } | ConnectionEvent::ConnectionInvalidated { .. } => {
                    let status = if event.event_type == "Disconnected" {
                        "disconnected"
                    } else {
                        "needs_reauthorisation"
                    };
                    let sql = format!("UPDATE {table} SET status = $2, ended_at = $3 WHERE connection_id = $1");
                    dispatch!(tx, ReadTx, |conn| {
                        sqlx::query(&sql)
                            .bind(id)
                            .bind(status)
                            .bind(&at)
                            .execute(&mut **conn)
                            .await?;
                    });
                }
            }
        }
        Ok(())
    }
}

// ----- Queries -----

/// A connection as a person's list shows it (never a token).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ConnectionRow {
    pub connection_id: String,
    pub platform: String,
    pub status: String,
    pub external_id: String,
    pub display_name: Option<String>,
    pub connected_at: String,
    pub ended_at: Option<String>,
}

/// The connections of `person` that are not disconnected, by platform.
pub async fn of_person(db: &eventlog::Db, person: &str) -> Result<Vec<ConnectionRow>, ProjectionError> {
    use eventlog::Db;
    type Row = (String, String, String, String, Option<String>, String, Option<String>);
    let sql = "SELECT connection_id, platform, status, external_id, display_name, connected_at, ended_at \
               FROM connections WHERE person_id = $1 AND status <> 'disconnected' ORDER BY platform";
    let rows: Vec<Row> = dispatch!(db, Db, |pool| {
        sqlx::query_as(sql).bind(person).fetch_all(pool).await?
    });
    Ok(rows
        .into_iter()
        .map(|r| ConnectionRow {
            connection_id: r.0,
            platform: r.1,
            status: r.2,
            external_id: r.3,
            display_name: r.4,
            connected_at: r.5,
            ended_at: r.6,
        })
        .collect())
}

/// Connections that ended (disconnected or invalidated), by id: the retention job checks that
/// their keys are gone.
pub async fn ended_connection_ids(db: &eventlog::Db) -> Result<Vec<String>, ProjectionError> {
    use eventlog::Db;
    let sql = "SELECT connection_id FROM connections WHERE status <> 'connected' ORDER BY connection_id";
    let ids: Vec<(String,)> = dispatch!(db, Db, |pool| { sqlx::query_as(sql).fetch_all(pool).await? });
    Ok(ids.into_iter().map(|(id,)| id).collect())
}
