//! Idempotency keys of command endpoints: claim a key for a request, store its answer, and
//! replay that answer for a retry of the same request.
//!
//! A command's effect and its key commit together: while a request runs under its claim
//! ([`within`]), every append it makes also marks the key `applied` (with the first aggregate
//! it wrote and the position of its last event) in the append's own transaction, and only if
//! the claim is still this request's (its token). So:
//! - a retry after the events committed but before the answer was stored (the process died,
//!   the connection dropped, storing the answer failed) finds the effect ([`Claim::Applied`])
//!   and never runs the command again;
//! - a claim left `pending` past [`STALE_CLAIM_SECONDS`] (nothing committed yet) may be taken
//!   over by a retry; the slow request that lost it can then no longer commit
//!   ([`LogError::ClaimLost`]), so a slow request never runs twice either.
//!
//! Keys expire [`KEY_TTL_SECONDS`] after their claim: an expired key may be used afresh, and
//! [`purge_expired`] deletes expired records (the daily retention job calls it).

use crate::{dispatch, Db, LogError};
use sqlx::Row;

/// A `pending` claim older than this (a process died before its command committed) may be
/// taken over by a retry.
pub const STALE_CLAIM_SECONDS: i64 = 60;

/// How long an Idempotency-Key is remembered after its claim: 24 hours.
pub const KEY_TTL_SECONDS: i64 = 24 * 3600;

/// A claim held by the running request: its scope, key and the token that fences its appends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimToken {
    pub scope: String,
    pub key: String,
    pub token: String,
}

/// The effect a command recorded under its key: the first aggregate it appended to, and the
/// position of the last event it appended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Effect {
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub position: Option<String>,
}

/// What a request with an idempotency key should do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// The key is ours: run the command [`within`] the claim, then [`complete`] or [`release`].
    Claimed(ClaimToken),
    /// The same request was answered before: answer this again.
    Replay { status: u16, body: String },
    /// The same request's command committed, but its answer was never stored.
    Applied(Effect),
    /// The same request is being handled right now.
    InProgress,
    /// The key was used for a different request.
    Mismatch,
}

tokio::task_local! {
    static CURRENT: ClaimToken;
}

/// Runs `work` under `claim`: every append it makes (in this task) commits only while the
/// claim is still this request's, and marks the key `applied` in the same transaction.
pub async fn within<F: std::future::Future>(claim: ClaimToken, work: F) -> F::Output {
    CURRENT.scope(claim, work).await
}

/// The claim the current task runs under, if any.
pub(crate) fn current() -> Option<ClaimToken> {
    CURRENT.try_with(Clone::clone).ok()
}

/// Claims `key` within `scope` (the caller) for a request whose body hashes to `request_sha256`.
pub async fn claim(
    db: &Db,
    scope: &str,
    key: &str,
    request_sha256: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Claim, LogError> {
    let now_s = now.timestamp();
    for _ in 0..3 {
        let token = uuid::Uuid::now_v7().to_string();
        let inserted = dispatch!(db, Db, |pool| {
            sqlx::query(
                "INSERT INTO idempotency_keys (scope, key, request_sha256, state, claimed_at, claim_token) \
                 VALUES ($1, $2, $3, 'pending', $4, $5) ON CONFLICT (scope, key) DO NOTHING",
            )
            .bind(scope)
            .bind(key)
            .bind(request_sha256)
            .bind(now_s)
            .bind(&token)
            .execute(pool)
            .await?
            .rows_affected()
        });
        let claimed = || {
            Claim::Claimed(ClaimToken {
                scope: scope.to_string(),
                key: key.to_string(),
                token: token.clone(),
            })
        };
        if inserted == 1 {
            return Ok(claimed());
        }
        let row = dispatch!(db, Db, |pool| {
            let row = sqlx::query(
                "SELECT request_sha256, state, status, body, claimed_at, effect, effect_position \
                 FROM idempotency_keys WHERE scope = $1 AND key = $2",
            )
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
                    row.try_get::<Option<String>, _>(5)?,
                    row.try_get::<Option<String>, _>(6)?,
                )),
                None => None,
            }
        });
        // Released between our insert and our read: try again.
        let Some((hash, state, status, body, claimed_at, effect, effect_position)) = row else {
            continue;
        };
        if claimed_at < now_s - KEY_TTL_SECONDS {
            // Expired: forget it and claim afresh.
            dispatch!(db, Db, |pool| {
                sqlx::query("DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2 AND claimed_at = $3")
                    .bind(scope)
                    .bind(key)
                    .bind(claimed_at)
                    .execute(pool)
                    .await?;
            });
            continue;
        }
        if hash != request_sha256 {
            return Ok(Claim::Mismatch);
        }
        match state.as_str() {
            "done" => {
                return Ok(Claim::Replay {
                    status: status.unwrap_or(200) as u16,
                    body: body.unwrap_or_default(),
                })
            }
            "applied" => {
                let (aggregate_type, aggregate_id) = effect
                    .as_deref()
                    .and_then(|e| e.split_once(' '))
                    .map(|(t, i)| (t.to_string(), i.to_string()))
                    .unwrap_or_default();
                return Ok(Claim::Applied(Effect {
                    aggregate_type,
                    aggregate_id,
                    position: effect_position,
                }));
            }
            _ => {}
        }
        if claimed_at < now_s - STALE_CLAIM_SECONDS {
            // Nothing committed under the old claim: take it over with a new token, which
            // fences the old request's appends out.
            let taken = dispatch!(db, Db, |pool| {
                sqlx::query(
                    "UPDATE idempotency_keys SET claimed_at = $3, claim_token = $5 \
                     WHERE scope = $1 AND key = $2 AND state = 'pending' AND claimed_at = $4",
                )
                .bind(scope)
                .bind(key)
                .bind(now_s)
                .bind(claimed_at)
                .bind(&token)
                .execute(pool)
                .await?
                .rows_affected()
            });
            if taken == 1 {
                return Ok(claimed());
            }
        }
        return Ok(Claim::InProgress);
    }
    Ok(Claim::InProgress)
}

/// Marks the claim `applied` inside an append's transaction (binds: scope, key, token, effect,
/// position); it changes no row when the claim is no longer this request's (taken over, or
/// released), and the append is then rolled back.
pub(crate) const MARK_APPLIED: &str =
    "UPDATE idempotency_keys SET state = 'applied', effect = COALESCE(effect, $4), effect_position = $5 \
     WHERE scope = $1 AND key = $2 AND claim_token = $3 AND state IN ('pending', 'applied')";

/// Runs [`MARK_APPLIED`] on `$executor` (a pool, or a transaction of either dialect): the
/// claimed key is `applied`, its effect the given aggregate. `Err(ClaimLost)` when the claim
/// was taken over meanwhile. The one place the statement is bound, for every caller.
macro_rules! mark_applied_on {
    ($executor:expr, $claim:expr, $aggregate_type:expr, $aggregate_id:expr, $position:expr) => {
        match sqlx::query($crate::idempotency::MARK_APPLIED)
            .bind(&$claim.scope)
            .bind(&$claim.key)
            .bind(&$claim.token)
            .bind($crate::idempotency::effect_of($aggregate_type, $aggregate_id))
            .bind($position)
            .execute($executor)
            .await?
            .rows_affected()
        {
            1 => Ok(()),
            _ => Err($crate::LogError::ClaimLost),
        }
    };
}
pub(crate) use mark_applied_on;

/// Marks the claimed key `applied` in a commit of its own: what an append to an event store
/// outside the SQL database (KurrentDB) does right after its events are written. `ClaimLost`
/// when the claim was taken over meanwhile (the events are written all the same).
pub async fn mark_applied(
    db: &Db,
    claim: &ClaimToken,
    aggregate_type: &str,
    aggregate_id: &str,
    position: Option<String>,
) -> Result<(), LogError> {
    dispatch!(db, Db, |pool| mark_applied_on!(
        pool,
        claim,
        aggregate_type,
        aggregate_id,
        position.clone()
    ))
}

/// The `effect` column's value: the first aggregate a command appended to.
pub(crate) fn effect_of(aggregate_type: &str, aggregate_id: &str) -> String {
    format!("{aggregate_type} {aggregate_id}")
}

/// Stores the answer given to the claimed request.
pub async fn complete(db: &Db, claim: &ClaimToken, status: u16, body: &str) -> Result<(), LogError> {
    dispatch!(db, Db, |pool| {
        sqlx::query(
            "UPDATE idempotency_keys SET state = 'done', status = $3, body = $4 \
             WHERE scope = $1 AND key = $2 AND claim_token = $5",
        )
        .bind(&claim.scope)
        .bind(&claim.key)
        .bind(i32::from(status))
        .bind(body)
        .bind(&claim.token)
        .execute(pool)
        .await?;
    });
    Ok(())
}

/// Gives the key up (the request failed in a way a retry may fix). A claim whose command
/// already committed something stays `applied`: its retry must not run the command again.
pub async fn release(db: &Db, claim: &ClaimToken) -> Result<(), LogError> {
    dispatch!(db, Db, |pool| {
        sqlx::query(
            "DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2 AND state = 'pending' AND claim_token = $3",
        )
        .bind(&claim.scope)
        .bind(&claim.key)
        .bind(&claim.token)
        .execute(pool)
        .await?;
    });
    Ok(())
}

/// Deletes every key claimed more than [`KEY_TTL_SECONDS`] before `now`; how many.
pub async fn purge_expired(db: &Db, now: chrono::DateTime<chrono::Utc>) -> Result<u64, LogError> {
    let cutoff = now.timestamp() - KEY_TTL_SECONDS;
    Ok(dispatch!(db, Db, |pool| {
        sqlx::query("DELETE FROM idempotency_keys WHERE claimed_at < $1")
            .bind(cutoff)
            .execute(pool)
            .await?
            .rows_affected()
    }))
}
