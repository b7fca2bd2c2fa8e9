//! The SQL of the durable workflows' work items (`workflow_items`) and their feed checkpoints
//! (`outbox_checkpoints`): intake from the feed with the checkpoint in one transaction, claims
//! under a lease, outcomes with backoff and parking, and what operators see and do.
//!
//! The rules (what an item is, how long to back off) live in the application (`app::workflows`);
//! this module only stores. Times are RFC 3339 UTC text with microseconds, so they compare as
//! text.

use crate::{dispatch, Db, LogError, Position};
use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::Row;

fn text(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// An item as created: its key within the workflow and its payload (JSON text).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewItem {
    pub item: String,
    pub payload: String,
}

/// A stored item.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Item {
    pub workflow: String,
    pub item: String,
    pub payload: String,
    /// `pending`, `done` or `parked`.
    pub state: String,
    pub attempts: i32,
    /// How often the item was put back to work (see [`rearm_and_claim`]).
    pub arms: i32,
    pub next_attempt_at: String,
    pub last_error: Option<String>,
    pub outcome: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

const COLUMNS: &str =
    "workflow, item, payload, state, attempts, arms, next_attempt_at, last_error, outcome, created_at, updated_at";

/// An [`Item`] from a row of either backend (a macro: the row types differ).
macro_rules! item_of {
    ($row:expr) => {{
        let row = $row;
        Ok::<Item, sqlx::Error>(Item {
            workflow: row.try_get("workflow")?,
            item: row.try_get("item")?,
            payload: row.try_get("payload")?,
            state: row.try_get("state")?,
            attempts: row.try_get("attempts")?,
            arms: row.try_get("arms")?,
            next_attempt_at: row.try_get("next_attempt_at")?,
            last_error: row.try_get("last_error")?,
            outcome: row.try_get("outcome")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }};
}

/// Stores the items a batch of the feed started and moves the workflow's checkpoint from
/// `from` to `to`, in one transaction; `false` (and nothing stored) when the checkpoint was not
/// at `from` any more (another instance took the batch). An item that exists already is left as
/// it is (use cases that let an item go on again re-arm it themselves: [`rearm_and_claim`]).
pub async fn intake(
    db: &Db,
    workflow: &str,
    items: &[NewItem],
    from: Position,
    to: Position,
    now: DateTime<Utc>,
) -> Result<bool, LogError> {
    let now = text(now);
    let insert = "INSERT INTO workflow_items (workflow, item, payload, state, attempts, next_attempt_at, created_at, updated_at) \
         VALUES ($1, $2, $3, 'pending', 0, $4, $4, $4) ON CONFLICT (workflow, item) DO NOTHING";
    let moved = dispatch!(db, Db, |pool| {
        let mut tx = pool.begin().await?;
        // A missing row is created (a workflow's first batch starts at the start of the feed).
        let moved = sqlx::query(ADVANCE)
            .bind(workflow)
            .bind(from.commit)
            .bind(from.global)
            .bind(to.commit)
            .bind(to.global)
            .bind(&now)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        if moved {
            for new in items {
                sqlx::query(insert)
                    .bind(workflow)
                    .bind(&new.item)
                    .bind(&new.payload)
                    .bind(&now)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        }
        moved
    });
    Ok(moved)
}

/// Moves a checkpoint from `from` to `to` if it is at `from` (a missing row is at the start).
const ADVANCE: &str = "INSERT INTO outbox_checkpoints (name, checkpoint_commit, checkpoint_global, updated_at) \
     VALUES ($1, $4, $5, $6) ON CONFLICT (name) DO UPDATE SET checkpoint_commit = excluded.checkpoint_commit, \
     checkpoint_global = excluded.checkpoint_global, updated_at = excluded.updated_at \
     WHERE outbox_checkpoints.checkpoint_commit = $2 AND outbox_checkpoints.checkpoint_global = $3";

/// Creates `item` if it does not exist (pending, due now) and claims it for `owner` until
/// `lease_until` if it is pending and nobody holds it: what a use case does to run an item at
/// once. `None` when it cannot be claimed (done, parked, or held), else the claimed item.
pub async fn create_and_claim(
    db: &Db,
    workflow: &str,
    new: &NewItem,
    owner: &str,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
) -> Result<Option<Item>, LogError> {
    // Created already held, in one statement, so no runner can take it in between.
    let (stamp, until) = (text(now), text(lease_until));
    let sql = format!(
        "INSERT INTO workflow_items (workflow, item, payload, state, attempts, next_attempt_at, lease_owner, lease_until, \
         created_at, updated_at) VALUES ($1, $2, $3, 'pending', 0, $4, $5, $6, $4, $4) \
         ON CONFLICT (workflow, item) DO NOTHING RETURNING {COLUMNS}"
    );
    let created = dispatch!(db, Db, |pool| {
        let row = sqlx::query(&sql)
            .bind(workflow)
            .bind(&new.item)
            .bind(&new.payload)
            .bind(&stamp)
            .bind(owner)
            .bind(&until)
            .fetch_optional(pool)
            .await?;
        row.as_ref().map(|row| item_of!(row)).transpose()?
    });
    if created.is_some() {
        return Ok(created);
    }
    claim(db, workflow, &new.item, owner, now, lease_until, false).await
}

/// Puts `item` back to work (pending, attempts from zero, whatever its state) and claims it for
/// `owner`, in one statement, or creates it held; `None` when another runner holds it.
pub async fn rearm_and_claim(
    db: &Db,
    workflow: &str,
    new: &NewItem,
    owner: &str,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
) -> Result<Option<Item>, LogError> {
    let (stamp, until) = (text(now), text(lease_until));
    // Re-armed whatever holds it; taken only when nobody does. A runner holding it finishes its
    // attempt, sees the re-arm, and leaves the item pending for another attempt.
    let sql = format!(
        "UPDATE workflow_items SET state = 'pending', attempts = 0, arms = arms + 1, next_attempt_at = $3, \
         updated_at = $3, \
         lease_owner = CASE WHEN lease_until IS NULL OR lease_until < $3 THEN $4 ELSE lease_owner END, \
         lease_until = CASE WHEN lease_until IS NULL OR lease_until < $3 THEN $5 ELSE lease_until END \
         WHERE workflow = $1 AND item = $2 RETURNING {COLUMNS}, lease_owner"
    );
    let rearmed = dispatch!(db, Db, |pool| {
        let row = sqlx::query(&sql)
            .bind(workflow)
            .bind(&new.item)
            .bind(&stamp)
            .bind(owner)
            .bind(&until)
            .fetch_optional(pool)
            .await?;
        match row {
            Some(row) => Some((item_of!(&row)?, row.try_get::<Option<String>, _>("lease_owner")?)),
            None => None,
        }
    });
    match rearmed {
        Some((item, holder)) => Ok((holder.as_deref() == Some(owner)).then_some(item)),
        None => create_and_claim(db, workflow, new, owner, now, lease_until).await,
    }
}

/// Claims one item for `owner` until `lease_until` if it is pending, nobody holds it, and (when
/// `due_only`) it is due.
pub async fn claim(
    db: &Db,
    workflow: &str,
    item_key: &str,
    owner: &str,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    due_only: bool,
) -> Result<Option<Item>, LogError> {
    let (now, until) = (text(now), text(lease_until));
    let sql = format!(
        "UPDATE workflow_items SET lease_owner = $3, lease_until = $4 \
         WHERE workflow = $1 AND item = $2 AND state = 'pending' AND (lease_until IS NULL OR lease_until < $5) \
         AND ($6 = 0 OR next_attempt_at <= $5) RETURNING {COLUMNS}"
    );
    let claimed = dispatch!(db, Db, |pool| {
        let row = sqlx::query(&sql)
            .bind(workflow)
            .bind(item_key)
            .bind(owner)
            .bind(&until)
            .bind(&now)
            .bind(i32::from(due_only))
            .fetch_optional(pool)
            .await?;
        row.as_ref().map(|row| item_of!(row)).transpose()?
    });
    Ok(claimed)
}

/// The keys of up to `limit` pending items of `workflow` due at `now` and not held, the most
/// overdue first.
pub async fn due(db: &Db, workflow: &str, now: DateTime<Utc>, limit: i64) -> Result<Vec<String>, LogError> {
    let now = text(now);
    let keys = dispatch!(db, Db, |pool| {
        sqlx::query_scalar::<_, String>(
            "SELECT item FROM workflow_items WHERE workflow = $1 AND state = 'pending' AND next_attempt_at <= $2 \
             AND (lease_until IS NULL OR lease_until < $2) ORDER BY next_attempt_at, created_at, item LIMIT $3",
        )
        .bind(workflow)
        .bind(&now)
        .bind(limit)
        .fetch_all(pool)
        .await?
    });
    Ok(keys)
}

/// When the next pending item of `workflow` falls due (RFC 3339), if any.
pub async fn next_due(db: &Db, workflow: &str) -> Result<Option<String>, LogError> {
    let next = dispatch!(db, Db, |pool| {
        sqlx::query_scalar::<_, Option<String>>(
            "SELECT MIN(next_attempt_at) FROM workflow_items WHERE workflow = $1 AND state = 'pending'",
        )
        .bind(workflow)
        .fetch_one(pool)
        .await?
    });
    Ok(next)
}

/// What became of one attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// Done, with a one-line outcome.
    Done { outcome: String },
    /// Failed; try again at `retry_at`.
    Retry { error: String, retry_at: DateTime<Utc> },
    /// Failed too often: parked until an operator acts.
    Park { error: String },
}

/// Records the attempt `owner` made on an item it holds, and releases the lease.
pub async fn record(db: &Db, item: &Item, owner: &str, attempt: &Attempt, now: DateTime<Utc>) -> Result<(), LogError> {
    let now = text(now);
    let (state, next, error, outcome) = match attempt {
        Attempt::Done { outcome } => ("done", now.clone(), None, Some(outcome.as_str())),
        Attempt::Retry { error, retry_at } => ("pending", text(*retry_at), Some(error.as_str()), None),
        Attempt::Park { error } => ("parked", now.clone(), Some(error.as_str()), None),
    };
    // Re-armed while this attempt ran (`arms` moved): the item stays pending, due now, so the
    // re-arm's reason is handled by another attempt.
    dispatch!(db, Db, |pool| {
        sqlx::query(
            "UPDATE workflow_items SET \
             state = CASE WHEN arms = $9 THEN $4 ELSE 'pending' END, \
             attempts = CASE WHEN arms = $9 THEN attempts + 1 ELSE 0 END, \
             next_attempt_at = CASE WHEN arms = $9 THEN $5 ELSE $8 END, \
             last_error = COALESCE($6, last_error), outcome = COALESCE($7, outcome), updated_at = $8, \
             lease_owner = NULL, lease_until = NULL \
             WHERE workflow = $1 AND item = $2 AND lease_owner = $3",
        )
        .bind(&item.workflow)
        .bind(&item.item)
        .bind(owner)
        .bind(state)
        .bind(&next)
        .bind(error)
        .bind(outcome)
        .bind(&now)
        .bind(item.arms)
        .execute(pool)
        .await?;
    });
    Ok(())
}

/// Gives up `owner`'s lease on an item without recording an attempt (the call that claimed it
/// failed before the item's work began).
pub async fn release(db: &Db, workflow: &str, item_key: &str, owner: &str) -> Result<(), LogError> {
    dispatch!(db, Db, |pool| {
        sqlx::query(
            "UPDATE workflow_items SET lease_owner = NULL, lease_until = NULL \
             WHERE workflow = $1 AND item = $2 AND lease_owner = $3",
        )
        .bind(workflow)
        .bind(item_key)
        .bind(owner)
        .execute(pool)
        .await?;
    });
    Ok(())
}

/// One item of a workflow.
pub async fn get(db: &Db, workflow: &str, item_key: &str) -> Result<Option<Item>, LogError> {
    let sql = format!("SELECT {COLUMNS} FROM workflow_items WHERE workflow = $1 AND item = $2");
    let found = dispatch!(db, Db, |pool| {
        let row = sqlx::query(&sql)
            .bind(workflow)
            .bind(item_key)
            .fetch_optional(pool)
            .await?;
        row.as_ref().map(|row| item_of!(row)).transpose()?
    });
    Ok(found)
}

/// Items in `state` (all workflows, or one), newest first, at most `limit`.
pub async fn list(db: &Db, workflow: Option<&str>, state: Option<&str>, limit: i64) -> Result<Vec<Item>, LogError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM workflow_items WHERE ($1 = '' OR workflow = $1) AND ($2 = '' OR state = $2) \
         ORDER BY updated_at DESC, workflow, item LIMIT $3"
    );
    let items = dispatch!(db, Db, |pool| {
        sqlx::query(&sql)
            .bind(workflow.unwrap_or(""))
            .bind(state.unwrap_or(""))
            .bind(limit)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|row| item_of!(row))
            .collect::<Result<Vec<_>, sqlx::Error>>()?
    });
    Ok(items)
}

/// How many items each workflow has in each state: `(workflow, state, count)`.
pub async fn counts(db: &Db) -> Result<Vec<(String, String, i64)>, LogError> {
    let counts = dispatch!(db, Db, |pool| {
        sqlx::query_as(
            "SELECT workflow, state, count(*) FROM workflow_items GROUP BY workflow, state ORDER BY workflow, state",
        )
        .fetch_all(pool)
        .await?
    });
    Ok(counts)
}

/// Puts a parked (or pending; with `done_too`, a done) item back to work, due now with its
/// attempts from zero; `false` when there is no such item (or it is done and `done_too` is not set).
pub async fn retry(
    db: &Db,
    workflow: &str,
    item_key: &str,
    done_too: bool,
    now: DateTime<Utc>,
) -> Result<bool, LogError> {
    let now = text(now);
    let changed = dispatch!(db, Db, |pool| {
        sqlx::query(
            "UPDATE workflow_items SET state = 'pending', attempts = 0, arms = arms + 1, next_attempt_at = $3, \
             updated_at = $3 WHERE workflow = $1 AND item = $2 AND ($4 = 1 OR state <> 'done')",
        )
        .bind(workflow)
        .bind(item_key)
        .bind(&now)
        .bind(i32::from(done_too))
        .execute(pool)
        .await?
        .rows_affected()
    });
    Ok(changed == 1)
}

/// An operator records that a parked (or pending) item was handled by hand; `false` when there
/// is no such item or it is done.
pub async fn resolve(
    db: &Db,
    workflow: &str,
    item_key: &str,
    outcome: &str,
    now: DateTime<Utc>,
) -> Result<bool, LogError> {
    let now = text(now);
    let changed = dispatch!(db, Db, |pool| {
        sqlx::query(
            "UPDATE workflow_items SET state = 'done', outcome = $3, updated_at = $4, lease_owner = NULL, lease_until = NULL \
             WHERE workflow = $1 AND item = $2 AND state <> 'done'",
        )
        .bind(workflow)
        .bind(item_key)
        .bind(outcome)
        .bind(&now)
        .execute(pool)
        .await?
        .rows_affected()
    });
    Ok(changed == 1)
}
