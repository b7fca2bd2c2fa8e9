//! Idempotency keys of command endpoints: claim a key for a request, store its answer, and
//! replay that answer for a retry of the same request.

use crate::{dispatch, Db, LogError};
use sqlx::Row;

/// A claim older than this (a process died mid-request) may be taken over by a retry.
pub const STALE_CLAIM_SECONDS: i64 = 60;

/// What a request with an idempotency key should do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// The key is ours: run the command, then [`complete`] or [`release`].
    Claimed,
    /// The same request was answered before: answer this again.
    Replay { status: u16, body: String },
    /// The same request is being handled right now.
    InProgress,
    /// The key was used for a different request.
    Mismatch,
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Claims `key` within `scope` (the caller) for a request whose body hashes to `request_sha256`.
pub async fn claim(db: &Db, scope: &str, key: &str, request_sha256: &str) -> Result<Claim, LogError> {
    let inserted = dispatch!(db, Db, |pool| {
        sqlx::query(
            "INSERT INTO idempotency_keys (scope, key, request_sha256, state, claimed_at) VALUES ($1, $2, $3, 'pending', $4) \
             ON CONFLICT (scope, key) DO NOTHING",
        )
        .bind(scope)
        .bind(key)
        .bind(request_sha256)
        .bind(now())
        .execute(pool)
        .await?
        .rows_affected()
    });
    if inserted == 1 {
        return Ok(Claim::Claimed);
    }
    let row = dispatch!(db, Db, |pool| {
        let row = sqlx::query("SELECT request_sha256, state, status, body, claimed_at FROM idempotency_keys WHERE scope = $1 AND key = $2")
            .bind(scope)
            .bind(key)
            .fetch_optional(pool)
            .await?;
        match row {
            Some(row) => Some((
                row.try_get::<String, _>(0)?,
                row.try_get::<String, _>(1)?,
                row.try_get::<Option<i32>, _>(2)?,
                row.try_get::<Option<String>, _>(3)?,
                row.try_get::<i64, _>(4)?,
            )),
            None => None,
        }
    });
    let Some((hash, state, status, body, claimed_at)) = row else {
        // Released between our insert and our read: try once more.
        return Box::pin(claim(db, scope, key, request_sha256)).await;
    };
    if hash != request_sha256 {
        return Ok(Claim::Mismatch);
    }
    if state == "done" {
        return Ok(Claim::Replay {
            status: status.unwrap_or(200) as u16,
            body: body.unwrap_or_default(),
        });
    }
    if claimed_at < now() - STALE_CLAIM_SECONDS {
        let taken = dispatch!(db, Db, |pool| {
            sqlx::query("UPDATE idempotency_keys SET claimed_at = $3 WHERE scope = $1 AND key = $2 AND state = 'pending' AND claimed_at = $4")
                .bind(scope)
                .bind(key)
                .bind(now())
                .bind(claimed_at)
                .execute(pool)
                .await?
                .rows_affected()
        });
        if taken == 1 {
            return Ok(Claim::Claimed);
        }
    }
    Ok(Claim::InProgress)
}

/// Stores the answer given to the claimed request.
pub async fn complete(db: &Db, scope: &str, key: &str, status: u16, body: &str) -> Result<(), LogError> {
    dispatch!(db, Db, |pool| {
        sqlx::query("UPDATE idempotency_keys SET state = 'done', status = $3, body = $4 WHERE scope = $1 AND key = $2")
            .bind(scope)
            .bind(key)
            .bind(i32::from(status))
            .bind(body)
            .execute(pool)
            .await?;
    });
    Ok(())
}

/// Gives the key up (the request failed in a way a retry may fix).
pub async fn release(db: &Db, scope: &str, key: &str) -> Result<(), LogError> {
    dispatch!(db, Db, |pool| {
        sqlx::query("DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2 AND state = 'pending'")
            .bind(scope)
            .bind(key)
            .execute(pool)
            .await?;
    });
    Ok(())
}
