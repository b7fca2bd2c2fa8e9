//! Checkpoints of outboxes: workers that follow the feed and cause effects outside dynamoi.
//! They are kept apart from projection checkpoints, so rebuilding a read model never moves an
//! outbox back and nothing is sent twice because of it.

use crate::{dispatch, Db, LogError, Position};
use sqlx::Row;

/// Where outbox `name` has got to (the start of the feed when it never ran).
pub async fn checkpoint(db: &Db, name: &str) -> Result<Position, LogError> {
    let sql = "SELECT checkpoint_commit, checkpoint_global FROM outbox_checkpoints WHERE name = $1";
    let position = dispatch!(db, Db, |pool| {
        match sqlx::query(sql).bind(name).fetch_optional(pool).await? {
            Some(row) => Position {
                commit: row.try_get(0)?,
                global: row.try_get(1)?,
            },
            None => Position::START,
        }
    });
    Ok(position)
}

/// Records that outbox `name` has handled everything up to `position`.
pub async fn advance(
    db: &Db,
    name: &str,
    position: Position,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), LogError> {
    let sql = "INSERT INTO outbox_checkpoints (name, checkpoint_commit, checkpoint_global, updated_at) \
               VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO UPDATE SET checkpoint_commit = excluded.checkpoint_commit, \
               checkpoint_global = excluded.checkpoint_global, updated_at = excluded.updated_at";
    let now = now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    dispatch!(db, Db, |pool| {
        sqlx::query(sql)
            .bind(name)
            .bind(position.commit)
            .bind(position.global)
            .bind(&now)
            .execute(pool)
            .await?;
    });
    Ok(())
}
