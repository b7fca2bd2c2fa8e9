//! The vault's SQL, the same text on PostgreSQL and SQLite (`$n` placeholders, run through
//! [`eventlog::dispatch!`]) over its two tables: `vault_keys` (wrapped data keys, at most one
//! per subject) and `vault_erasures` (the erasure ledger). Writes that must not tear run in
//! one transaction that starts with its write, so SQLite never has to upgrade a read lock.

use crate::master::WrappedKey;
use eventlog::{dispatch, Db};
use sqlx::Row;

/// A `vault_keys` row.
pub(crate) struct KeyRow {
    pub key_id: String,
    pub key_ref: String,
    pub algorithm: String,
    pub master_key_id: String,
    pub wrap_nonce: Vec<u8>,
    pub wrapped_key: Vec<u8>,
    /// Whether the erasure ledger holds this key id (a row restored from an old copy).
    pub erased: bool,
}

/// Which keys an erasure covers.
#[derive(Clone, Copy)]
pub(crate) enum Scope<'a> {
    /// The keys of one subject.
    Subject(&'a str),
    /// A person's keys: `person:<id>` and every `purpose:<id>:…`.
    Person(&'a str),
}

impl Scope<'_> {
    /// The `WHERE` condition and its binds: the subject, then (for a person) the length and
    /// text of the purpose prefix. `substr` rather than `LIKE`: SQLite's `LIKE` ignores case.
    fn condition(self) -> (&'static str, String, Option<(i32, String)>) {
        match self {
            Scope::Subject(subject) => ("key_ref = $1", subject.to_string(), None),
            Scope::Person(person_id) => {
                let prefix = format!("purpose:{person_id}:");
                (
                    "(key_ref = $1 OR substr(key_ref, 1, $2) = $3)",
                    format!("person:{person_id}"),
                    Some((prefix.chars().count() as i32, prefix)),
                )
            }
        }
    }
}

const KEY_COLUMNS: &str = "k.key_id, k.key_ref, k.algorithm, k.master_key_id, k.wrap_nonce, k.wrapped_key, \
     EXISTS (SELECT 1 FROM vault_erasures e WHERE e.key_id = k.key_id)";

/// An instant as the tables store it.
pub(crate) fn stamp(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn key_row<R: Row>(row: &R) -> Result<KeyRow, sqlx::Error>
where
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Vec<u8>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> bool: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    usize: sqlx::ColumnIndex<R>,
{
    Ok(KeyRow {
        key_id: row.try_get(0)?,
        key_ref: row.try_get(1)?,
        algorithm: row.try_get(2)?,
        master_key_id: row.try_get(3)?,
        wrap_nonce: row.try_get(4)?,
        wrapped_key: row.try_get(5)?,
        erased: row.try_get(6)?,
    })
}

/// The row of `key_id`, if it exists.
pub(crate) async fn key_by_id(db: &Db, key_id: &str) -> Result<Option<KeyRow>, sqlx::Error> {
    let sql = format!("SELECT {KEY_COLUMNS} FROM vault_keys k WHERE k.key_id = $1");
    dispatch!(db, Db, |pool| {
        let row = sqlx::query(&sql).bind(key_id).fetch_optional(pool).await?;
        row.as_ref().map(key_row).transpose()
    })
}

/// The live key row of `subject`, if it has one.
pub(crate) async fn key_by_subject(db: &Db, subject: &str) -> Result<Option<KeyRow>, sqlx::Error> {
    let sql = format!("SELECT {KEY_COLUMNS} FROM vault_keys k WHERE k.key_ref = $1");
    dispatch!(db, Db, |pool| {
        let row = sqlx::query(&sql).bind(subject).fetch_optional(pool).await?;
        row.as_ref().map(key_row).transpose()
    })
}

/// The highest generation `subject` ever had, live or erased; 0 when none.
pub(crate) async fn last_generation(db: &Db, subject: &str) -> Result<i64, sqlx::Error> {
    dispatch!(db, Db, |pool| {
        sqlx::query_scalar::<_, i64>(
            "SELECT COALESCE(MAX(generation), 0) FROM \
             (SELECT generation FROM vault_keys WHERE key_ref = $1 \
              UNION ALL SELECT generation FROM vault_erasures WHERE key_ref = $1) AS g",
        )
        .bind(subject)
        .fetch_one(pool)
        .await
    })
}

/// Inserts a new key unless `subject` already has one (a concurrent creator won). Returns
/// whether this key was inserted.
pub(crate) async fn insert_key(
    db: &Db,
    key_id: &str,
    subject: &str,
    generation: i64,
    algorithm: &str,
    wrapped: &WrappedKey,
    created_at: &str,
) -> Result<bool, sqlx::Error> {
    let inserted = dispatch!(db, Db, |pool| {
        sqlx::query(
            "INSERT INTO vault_keys (key_id, key_ref, generation, algorithm, master_key_id, wrap_nonce, wrapped_key, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
        )
        .bind(key_id)
        .bind(subject)
        .bind(generation)
        .bind(algorithm)
        .bind(&wrapped.master_key_id)
        .bind(&wrapped.nonce)
        .bind(&wrapped.wrapped)
        .bind(created_at)
        .execute(pool)
        .await?
        .rows_affected()
    });
    Ok(inserted == 1)
}

/// Whether `key_id` is in the erasure ledger.
pub(crate) async fn is_erased(db: &Db, key_id: &str) -> Result<bool, sqlx::Error> {
    dispatch!(db, Db, |pool| {
        let found: Option<String> = sqlx::query_scalar("SELECT key_id FROM vault_erasures WHERE key_id = $1")
            .bind(key_id)
            .fetch_optional(pool)
            .await?;
        Ok(found.is_some())
    })
}

/// Destroys every key in `scope`, in one transaction: deletes their rows and records each in
/// the ledger. Returns every key id of the scope now in the ledger (this call's and earlier
/// ones'), by generation, so a retry answers the same.
pub(crate) async fn destroy(
    db: &Db,
    scope: Scope<'_>,
    reason: &str,
    destroyed_at: &str,
) -> Result<(Vec<String>, usize), sqlx::Error> {
    let (condition, subject, prefix) = scope.condition();
    let delete = format!("DELETE FROM vault_keys WHERE {condition} RETURNING key_id, key_ref, generation");
    let ledger = format!("SELECT key_id FROM vault_erasures WHERE {condition} ORDER BY key_ref, generation, key_id");
    dispatch!(db, Db, |pool| {
        let mut tx = pool.begin().await?;
        let mut query = sqlx::query(&delete).bind(&subject);
        if let Some((length, text)) = &prefix {
            query = query.bind(*length).bind(text);
        }
        let deleted = query.fetch_all(&mut *tx).await?;
        for row in &deleted {
            sqlx::query(
                "INSERT INTO vault_erasures (key_id, key_ref, generation, destroyed_at, reason) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (key_id) DO NOTHING",
            )
            .bind(row.try_get::<String, _>(0)?)
            .bind(row.try_get::<String, _>(1)?)
            .bind(row.try_get::<i64, _>(2)?)
            .bind(destroyed_at)
            .bind(reason)
            .execute(&mut *tx)
            .await?;
        }
        let mut query = sqlx::query_scalar::<_, String>(&ledger).bind(&subject);
        if let Some((length, text)) = &prefix {
            query = query.bind(*length).bind(text);
        }
        let erased = query.fetch_all(&mut *tx).await?;
        tx.commit().await?;
        Ok((erased, deleted.len()))
    })
}

/// Deletes every key row whose id is in the erasure ledger. Returns how many.
pub(crate) async fn reapply_erasures(db: &Db) -> Result<u64, sqlx::Error> {
    dispatch!(db, Db, |pool| {
        Ok(
            sqlx::query("DELETE FROM vault_keys WHERE key_id IN (SELECT key_id FROM vault_erasures)")
                .execute(pool)
                .await?
                .rows_affected(),
        )
    })
}

/// Up to `limit` key rows not wrapped by `master_key_id`, with ids after `after`, by id.
pub(crate) async fn keys_not_wrapped_by(
    db: &Db,
    master_key_id: &str,
    after: &str,
    limit: i64,
) -> Result<Vec<KeyRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {KEY_COLUMNS} FROM vault_keys k WHERE k.master_key_id <> $1 AND k.key_id > $2 ORDER BY k.key_id LIMIT $3"
    );
    dispatch!(db, Db, |pool| {
        let rows = sqlx::query(&sql)
            .bind(master_key_id)
            .bind(after)
            .bind(limit)
            .fetch_all(pool)
            .await?;
        rows.iter().map(key_row).collect()
    })
}

/// One re-wrapping: the row as it was read, and its new wrapping.
pub(crate) struct Rewrap<'a> {
    pub old: &'a KeyRow,
    pub new: WrappedKey,
}

/// Stores new wrappings in one transaction, each only if its row is still as it was read (a
/// row destroyed or re-wrapped meanwhile is left alone). Returns how many rows changed.
pub(crate) async fn rewrap(db: &Db, rewraps: &[Rewrap<'_>]) -> Result<u64, sqlx::Error> {
    if rewraps.is_empty() {
        return Ok(0);
    }
    dispatch!(db, Db, |pool| {
        let mut tx = pool.begin().await?;
        let mut changed = 0;
        for rewrap in rewraps {
            changed += sqlx::query(
                "UPDATE vault_keys SET master_key_id = $1, wrap_nonce = $2, wrapped_key = $3 \
                 WHERE key_id = $4 AND master_key_id = $5 AND wrapped_key = $6",
            )
            .bind(&rewrap.new.master_key_id)
            .bind(&rewrap.new.nonce)
            .bind(&rewrap.new.wrapped)
            .bind(&rewrap.old.key_id)
            .bind(&rewrap.old.master_key_id)
            .bind(&rewrap.old.wrapped_key)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        Ok(changed)
    })
}

/// How many key rows each master key wraps, by master key id.
pub(crate) async fn master_key_usage(db: &Db) -> Result<Vec<(String, i64)>, sqlx::Error> {
    dispatch!(db, Db, |pool| {
        sqlx::query_as::<_, (String, i64)>(
            "SELECT master_key_id, COUNT(*) FROM vault_keys GROUP BY master_key_id ORDER BY master_key_id",
        )
        .fetch_all(pool)
        .await
    })
}
