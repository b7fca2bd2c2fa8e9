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

    fn schema(&self, dialect: Dialect) -> &'static str {
        match dialect {
            Dialect::Postgres => include_str!("../../../migrations/read_models/postgres/connections.sql"),
            Dialect::Sqlite => include_str!("../../../migrations/read_models/sqlite/connections.sql"),
        }
    }

    async fn apply(&self, tx: &mut ReadTx<'_>, target: &Target, events: &[StoredEvent]) -> Result<(), ProjectionError> {
        let table = target.table("connections");
        for event in events.iter().filter(|e| e.aggregate_type == Connection::TYPE) {
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
