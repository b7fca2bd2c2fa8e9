//! The `projection_generations` table: each projection's generations, which one is active,
//! their checkpoints, states and last errors; and the DDL that creates and swaps generations.

use crate::projection::{Projection, ReadTx, Target};
use chrono::{DateTime, SecondsFormat, Utc};
use eventlog::{dispatch, Db, Dialect, Position};
use sqlx::Row;
use std::future::Future;
use std::pin::Pin;

/// A boxed, `Send` future: sqlx's executor impls on `&mut Connection` otherwise trip the
/// compiler's higher-ranked lifetime check when callers are spawned.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A generation is catching up from the start of the feed.
pub const REBUILDING: &str = "rebuilding";
/// A generation has caught up and follows the live feed.
pub const RUNNING: &str = "running";
/// A generation's worker cannot apply an event and is retrying with backoff.
pub const STALLED: &str = "stalled";
/// A generation that was replaced; its tables are dropped.
pub const RETIRED: &str = "retired";

/// One row of `projection_generations`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Generation {
    pub name: String,
    pub generation: i64,
    pub version: i32,
    pub active: bool,
    pub state: String,
    pub checkpoint: Position,
    pub events_applied: i64,
    pub last_error: Option<String>,
    pub error_position: Option<String>,
    pub updated_at: String,
}

impl Generation {
    /// Where this generation's tables are.
    pub fn target(&self) -> Target {
        Target {
            generation: self.generation,
            served: self.active,
        }
    }
}

/// A timestamp as the table stores it.
fn stamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

const COLUMNS: &str = "name, generation, version, active, state, checkpoint_commit, checkpoint_global, \
                       events_applied, last_error, error_position, updated_at";

fn decode<R: Row>(row: &R) -> Result<Generation, sqlx::Error>
where
    for<'r> &'r str: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i32: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> bool: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(Generation {
        name: row.try_get("name")?,
        generation: row.try_get("generation")?,
        version: row.try_get("version")?,
        active: row.try_get("active")?,
        state: row.try_get("state")?,
        checkpoint: Position {
            commit: row.try_get("checkpoint_commit")?,
            global: row.try_get("checkpoint_global")?,
        },
        events_applied: row.try_get("events_applied")?,
        last_error: row.try_get("last_error")?,
        error_position: row.try_get("error_position")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Every generation of a projection that is not retired, oldest first.
pub fn live_generations<'a>(db: &'a Db, name: &'a str) -> BoxFuture<'a, Result<Vec<Generation>, sqlx::Error>> {
    Box::pin(async move {
        let sql = format!(
            "SELECT {COLUMNS} FROM projection_generations WHERE name = $1 AND state <> '{RETIRED}' ORDER BY generation"
        );
        dispatch!(db, Db, |pool| {
            let rows = sqlx::query(&sql).bind(name).fetch_all(pool).await?;
            rows.iter().map(decode).collect()
        })
    })
}

/// One generation, whatever its state.
pub fn load<'a>(db: &'a Db, name: &'a str, generation: i64) -> BoxFuture<'a, Result<Option<Generation>, sqlx::Error>> {
    Box::pin(async move {
        let sql = format!("SELECT {COLUMNS} FROM projection_generations WHERE name = $1 AND generation = $2");
        dispatch!(db, Db, |pool| {
            let row = sqlx::query(&sql)
                .bind(name)
                .bind(generation)
                .fetch_optional(pool)
                .await?;
            row.as_ref().map(decode).transpose()
        })
    })
}

/// The checkpoint of a projection's active generation (the start of the feed when none).
pub fn active_checkpoint<'a>(db: &'a Db, name: &'a str) -> BoxFuture<'a, Result<Position, sqlx::Error>> {
    Box::pin(async move {
        let sql = "SELECT checkpoint_commit, checkpoint_global FROM projection_generations WHERE name = $1 AND active";
        dispatch!(db, Db, |pool| {
            let row = sqlx::query(sql).bind(name).fetch_optional(pool).await?;
            match row {
                Some(row) => Ok(Position {
                    commit: row.try_get(0)?,
                    global: row.try_get(1)?,
                }),
                None => Ok(Position::START),
            }
        })
    })
}

/// Creates the next generation of `projection` with its tables, in one transaction. When
/// `active`, it is served at once (its views are created): used when no generation serves yet.
pub fn create<'a>(
    db: &'a Db,
    projection: &'a dyn Projection,
    active: bool,
    now: DateTime<Utc>,
) -> BoxFuture<'a, Result<Generation, sqlx::Error>> {
    Box::pin(async move {
        let name = projection.name();
        let insert = "INSERT INTO projection_generations (name, generation, version, active, state, updated_at) \
                  SELECT $1, COALESCE(MAX(generation), 0) + 1, $2, $3, $4, $5 FROM projection_generations WHERE name = $1 \
                  RETURNING generation";
        let schema = projection.schema(db.dialect());
        let generation: i64 = dispatch!(db, Db, |pool| {
            let mut tx = pool.begin().await?;
            let generation: i64 = sqlx::query_scalar(insert)
                .bind(name)
                .bind(projection.version())
                .bind(active)
                .bind(REBUILDING)
                .bind(stamp(now))
                .fetch_one(&mut *tx)
                .await?;
            let target = Target {
                generation,
                served: active,
            };
            let ddl = schema.replace("{g}", &target.suffix());
            for statement in statements(&ddl) {
                sqlx::query(&statement).execute(&mut *tx).await?;
            }
            if active {
                let views = views_sql(projection, target, None);
                for statement in statements(&views) {
                    sqlx::query(&statement).execute(&mut *tx).await?;
                }
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(generation)
        })?;
        Ok(load(db, name, generation)
            .await?
            .expect("the generation was just created"))
    })
}

/// The statements of a DDL script, comment lines removed (ours hold no `;` inside literals).
fn statements(script: &str) -> Vec<String> {
    let without_comments: String = script
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    without_comments
        .split(';')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Statements that point the views at `new` and drop the tables of `old`.
fn views_sql(projection: &dyn Projection, new: Target, old: Option<Target>) -> String {
    let mut sql = String::new();
    for table in projection.tables() {
        sql.push_str(&format!(
            "DROP VIEW IF EXISTS {table}; CREATE VIEW {table} AS SELECT * FROM {};\n",
            new.table(table)
        ));
        if let Some(old) = old {
            sql.push_str(&format!("DROP TABLE IF EXISTS {};\n", old.table(table)));
        }
    }
    sql
}

/// Makes generation `new` the active one in one transaction: the views switch to its tables,
/// the previous active generation is retired and its tables dropped.
pub fn take_over<'a>(
    db: &'a Db,
    projection: &'a dyn Projection,
    new: i64,
    now: DateTime<Utc>,
) -> BoxFuture<'a, Result<(), sqlx::Error>> {
    Box::pin(async move {
        let name = projection.name();
        // SQLite: IMMEDIATE takes the write lock up front. A deferred transaction would read
        // first and then fail at once ("database is locked") when upgrading to write after any
        // other worker committed meanwhile; SQLite does not wait on a lock upgrade.
        let begin = match db.dialect() {
            Dialect::Postgres => "BEGIN",
            Dialect::Sqlite => "BEGIN IMMEDIATE",
        };
        dispatch!(db, Db, |pool| {
            let mut tx = pool.begin_with(begin).await?;
            let old: Option<i64> =
                sqlx::query_scalar("SELECT generation FROM projection_generations WHERE name = $1 AND active")
                    .bind(name)
                    .fetch_optional(&mut *tx)
                    .await?;
            sqlx::query("UPDATE projection_generations SET active = false, state = $3, updated_at = $4 WHERE name = $1 AND generation <> $2 AND active")
            .bind(name)
            .bind(new)
            .bind(RETIRED)
            .bind(stamp(now))
            .execute(&mut *tx)
            .await?;
            sqlx::query("UPDATE projection_generations SET active = true, state = $3, updated_at = $4 WHERE name = $1 AND generation = $2")
            .bind(name)
            .bind(new)
            .bind(RUNNING)
            .bind(stamp(now))
            .execute(&mut *tx)
            .await?;
            let old = old.filter(|g| *g != new).map(|generation| Target {
                generation,
                served: false,
            });
            let target = Target {
                generation: new,
                served: true,
            };
            let views = views_sql(projection, target, old);
            for statement in statements(&views) {
                sqlx::query(&statement).execute(&mut *tx).await?;
            }
            // After the generation's row moved: a batch of another runner on this generation
            // either committed before (its writes are seen here) or finds it served.
            projection.on_take_over(&mut ReadTx::from(&mut *tx), &target).await?;
            tx.commit().await
        })
    })
}

/// Retires a generation that is not active (an abandoned rebuild) and drops its tables.
pub fn discard<'a>(
    db: &'a Db,
    projection: &'a dyn Projection,
    generation: i64,
    now: DateTime<Utc>,
) -> BoxFuture<'a, Result<(), sqlx::Error>> {
    Box::pin(async move {
        let target = Target {
            generation,
            served: false,
        };
        let drops: String = projection
            .tables()
            .iter()
            .map(|t| format!("DROP TABLE IF EXISTS {};\n", target.table(t)))
            .collect();
        dispatch!(db, Db, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query("UPDATE projection_generations SET state = $3, updated_at = $4 WHERE name = $1 AND generation = $2 AND NOT active")
            .bind(projection.name())
            .bind(generation)
            .bind(RETIRED)
            .bind(stamp(now))
            .execute(&mut *tx)
            .await?;
            for statement in statements(&drops) {
                sqlx::query(&statement).execute(&mut *tx).await?;
            }
            tx.commit().await
        })
    })
}

/// One batch's move of a checkpoint: from where it was read, to its last event, how many events
/// it held, the state the generation is in after it, and when.
#[derive(Clone, Copy, Debug)]
pub struct Step<'a> {
    pub from: Position,
    pub to: Position,
    pub events: i64,
    pub state: &'a str,
    pub now: DateTime<Utc>,
    /// PostgreSQL: the lock the runner must still hold for the step to be taken.
    pub fence: Option<LockFence>,
}

/// Who must hold a projection's lock for a batch to apply (PostgreSQL): the lock's key and the
/// backend pid of the session that took it. A lost session (a restart) frees the lock for
/// another instance, which may be running the projection now.
#[derive(Clone, Copy, Debug)]
pub struct LockFence {
    pub key: i64,
    pub pid: i32,
}

/// The condition "session `$pid` holds the advisory lock `($classid, $objid)`", with the
/// parameter numbers given.
fn lock_held_condition(pid: u8, classid: u8, objid: u8) -> String {
    format!(
        "EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted \
         AND pid = ${pid} AND classid::bigint = ${classid} AND objid::bigint = ${objid} AND objsubid = 1)"
    )
}

impl LockFence {
    /// The lock's key as `pg_locks` shows it: (classid, objid).
    fn parts(&self) -> (i64, i64) {
        let key = self.key as u64;
        ((key >> 32) as i64, (key & 0xffff_ffff) as i64)
    }

    /// Whether the session that took the lock still holds it.
    pub async fn is_held(&self, conn: &mut sqlx::PgConnection) -> Result<bool, sqlx::Error> {
        let (classid, objid) = self.parts();
        sqlx::query_scalar(&format!("SELECT {}", lock_held_condition(1, 2, 3)))
            .bind(self.pid)
            .bind(classid)
            .bind(objid)
            .fetch_one(conn)
            .await
    }
}

/// The checkpoint's move (`advance`), conditional on where it was read.
const ADVANCE: &str = "UPDATE projection_generations \
       SET checkpoint_commit = $4, checkpoint_global = $5, events_applied = events_applied + $6, \
           state = $7, last_error = NULL, error_position = NULL, updated_at = $8 \
       WHERE name = $1 AND generation = $2 AND state <> 'retired' \
         AND checkpoint_commit = $3 AND checkpoint_global = $9";

/// What [`ADVANCE`] returns when it moved the checkpoint: whether the generation is served.
const ADVANCE_RETURNING: &str = " RETURNING active";

/// [`ADVANCE`], returning.
static ADVANCE_UNFENCED: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| format!("{ADVANCE}{ADVANCE_RETURNING}"));

/// [`ADVANCE`], also conditional on a lock's session still holding it, returning.
static ADVANCE_FENCED: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| format!("{ADVANCE} AND {}{ADVANCE_RETURNING}", lock_held_condition(10, 11, 12)));

/// Moves a generation's checkpoint from `step.from` to `step.to` inside the batch's
/// transaction, and returns whether the generation is the served one (the row is then locked
/// until the batch commits, so a take-over waits for it). Returns `None`, changing nothing, when
/// the checkpoint is no longer at `from` or the generation was retired (another runner got there
/// first), or when `step.fence` names a lock its session no longer holds: this batch must not be
/// applied. The lock is checked by the same statement, so a batch costs no round trip for it.
pub fn advance<'a, 'b: 'a>(
    tx: &'a mut ReadTx<'b>,
    name: &'a str,
    generation: i64,
    step: Step<'a>,
) -> BoxFuture<'a, Result<Option<bool>, sqlx::Error>> {
    let Step {
        from,
        to,
        events,
        state,
        now,
        fence,
    } = step;
    Box::pin(async move {
        let fence = fence.filter(|_| matches!(tx, ReadTx::Postgres(_)));
        let sql: &str = if fence.is_some() {
            &ADVANCE_FENCED
        } else {
            &ADVANCE_UNFENCED
        };
        let served = dispatch!(tx, ReadTx, |conn| {
            let mut query = sqlx::query(sql)
                .bind(name)
                .bind(generation)
                .bind(from.commit)
                .bind(to.commit)
                .bind(to.global)
                .bind(events)
                .bind(state)
                .bind(stamp(now))
                .bind(from.global);
            if let Some(fence) = fence {
                let (classid, objid) = fence.parts();
                query = query.bind(fence.pid).bind(classid).bind(objid);
            }
            query
                .fetch_optional(&mut **conn)
                .await?
                .map(|row| row.try_get::<bool, _>(0))
                .transpose()?
        });
        Ok(served)
    })
}

/// Sets a generation's state (e.g. `running` once caught up).
pub fn set_state<'a>(
    db: &'a Db,
    name: &'a str,
    generation: i64,
    state: &'a str,
    now: DateTime<Utc>,
) -> BoxFuture<'a, Result<(), sqlx::Error>> {
    Box::pin(async move {
        dispatch!(db, Db, |pool| {
            sqlx::query("UPDATE projection_generations SET state = $3, updated_at = $4 WHERE name = $1 AND generation = $2 AND state <> 'retired'")
            .bind(name)
            .bind(generation)
            .bind(state)
            .bind(stamp(now))
            .execute(pool)
            .await?;
        });
        Ok(())
    })
}

/// Records why a generation is stalled, and where.
pub fn record_error<'a>(
    db: &'a Db,
    name: &'a str,
    generation: i64,
    error: &'a str,
    position: Option<Position>,
    now: DateTime<Utc>,
) -> BoxFuture<'a, Result<(), sqlx::Error>> {
    Box::pin(async move {
        dispatch!(db, Db, |pool| {
            sqlx::query("UPDATE projection_generations SET state = $3, last_error = $4, error_position = $5, updated_at = $6 WHERE name = $1 AND generation = $2 AND state <> 'retired'")
            .bind(name)
            .bind(generation)
            .bind(STALLED)
            .bind(error)
            .bind(position.map(|p| p.to_string()))
            .bind(stamp(now))
            .execute(pool)
            .await?;
        });
        Ok(())
    })
}
