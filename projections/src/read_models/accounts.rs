//! `accounts`: one row per person with their sealed profile fields, country and state (P2):
//! child, and when the account was closed (what the retention job reads, P24).

use crate::projection::{Projection, ProjectionError, ReadTx, Target};
use async_trait::async_trait;
use chrono::SecondsFormat;
use domain::account::{Account, AccountEvent};
use domain::Aggregate;
use eventlog::{dispatch, Dialect, StoredEvent};

/// The projection that fills `accounts`.
pub struct Accounts;

fn sealed_text(value: &domain::sealed::Sealed) -> String {
    value.0.to_string()
}

#[async_trait]
impl Projection for Accounts {
    fn name(&self) -> &'static str {
        "accounts"
    }

    fn version(&self) -> i32 {
        // 2: `closed_at`. 3: `minimum_age` (the number) and `minimum_age_met` (a boolean), where
        // `minimum_age_met` held the number (`SignedUp` version 2).
        3
    }

    fn tables(&self) -> &'static [&'static str] {
        &["accounts"]
    }

    fn aggregate_types(&self) -> Option<&'static [&'static str]> {
        Some(&[Account::TYPE])
    }

    fn schema(&self, dialect: Dialect) -> &'static str {
        match dialect {
            Dialect::Postgres => include_str!("../../../migrations/read_models/postgres/accounts.sql"),
            Dialect::Sqlite => include_str!("../../../migrations/read_models/sqlite/accounts.sql"),
        }
    }

    async fn apply(&self, tx: &mut ReadTx<'_>, target: &Target, events: &[StoredEvent]) -> Result<(), ProjectionError> {
        let table = target.table("accounts");
        for event in events.iter().filter(|e| self.reads(e)) {
            let at = event.recorded_at.to_rfc3339_opts(SecondsFormat::Micros, true);
            let person = &event.aggregate_id;
            match event
                .decode::<AccountEvent>()
                .map_err(|e| ProjectionError::undecodable(event, e))?
            {
                AccountEvent::SignedUp {
                    provider,
                    provider_subject,
                    name,
                    email,
                    avatar_url,
                    country,
                    minimum_age,
                    minimum_age_met,
                } => {
                    let sql = format!(
                        "INSERT INTO {table} (person_id, provider, country, minimum_age, minimum_age_met, \
                         provider_subject_sealed, name_sealed, email_sealed, avatar_url_sealed, child, signed_up_at, \
                         updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, false, $10, $10) ON CONFLICT (person_id) DO NOTHING"
                    );
                    let provider = serde_json::to_value(provider)?.as_str().unwrap_or_default().to_string();
                    dispatch!(tx, ReadTx, |conn| {
                        sqlx::query(&sql)
                            .bind(person)
                            .bind(&provider)
                            .bind(&country)
                            .bind(i32::from(minimum_age))
                            .bind(minimum_age_met)
                            .bind(sealed_text(&provider_subject))
                            .bind(sealed_text(&name))
                            .bind(sealed_text(&email))
                            .bind(avatar_url.as_ref().map(sealed_text))
                            .bind(&at)
                            .execute(&mut **conn)
                            .await?;
                    });
                }
                AccountEvent::ProfileRectified {
                    name,
                    email,
                    avatar_url,
                } => {
                    let sql = format!(
                        "UPDATE {table} SET name_sealed = COALESCE($2, name_sealed), \
                         email_sealed = COALESCE($3, email_sealed), \
                         avatar_url_sealed = COALESCE($4, avatar_url_sealed), updated_at = $5 WHERE person_id = $1"
                    );
                    dispatch!(tx, ReadTx, |conn| {
                        sqlx::query(&sql)
                            .bind(person)
                            .bind(name.as_ref().map(sealed_text))
                            .bind(email.as_ref().map(sealed_text))
                            .bind(avatar_url.as_ref().map(sealed_text))
                            .bind(&at)
                            .execute(&mut **conn)
                            .await?;
                    });
                }
                AccountEvent::AccountMarkedAsChild { .. } => {
                    let sql = format!("UPDATE {table} SET child = true, updated_at = $2 WHERE person_id = $1");
                    dispatch!(tx, ReadTx, |conn| {
                        sqlx::query(&sql).bind(person).bind(&at).execute(&mut **conn).await?;
                    });
                }
                AccountEvent::AccountClosed {} => {
                    let sql = format!(
                        "UPDATE {table} SET closed_at = COALESCE(closed_at, $2), updated_at = $2 WHERE person_id = $1"
                    );
                    dispatch!(tx, ReadTx, |conn| {
                        sqlx::query(&sql).bind(person).bind(&at).execute(&mut **conn).await?;
                    });
                }
            }
        }
        Ok(())
    }
}

// ----- Queries -----

/// An account as the read model holds it (personal fields sealed, as JSON text).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountRow {
    pub provider: String,
    pub country: String,
    /// The minimum age of the country's age gate at sign-up.
    pub minimum_age: i32,
    /// The person met it (always true: the gate refuses anyone under it).
    pub minimum_age_met: bool,
    pub name_sealed: String,
    pub email_sealed: String,
    pub avatar_url_sealed: Option<String>,
    pub child: bool,
    pub signed_up_at: String,
}

/// The account of `person`, if they signed up.
pub async fn account(db: &eventlog::Db, person: &str) -> Result<Option<AccountRow>, ProjectionError> {
    use eventlog::Db;
    type Row = (String, String, i32, bool, String, String, Option<String>, bool, String);
    let sql = "SELECT provider, country, minimum_age, minimum_age_met, name_sealed, email_sealed, avatar_url_sealed, \
               child, signed_up_at FROM accounts WHERE person_id = $1";
    let row: Option<Row> = dispatch!(db, Db, |pool| {
        sqlx::query_as(sql).bind(person).fetch_optional(pool).await?
    });
    Ok(row.map(|r| AccountRow {
        provider: r.0,
        country: r.1,
        minimum_age: r.2,
        minimum_age_met: r.3,
        name_sealed: r.4,
        email_sealed: r.5,
        avatar_url_sealed: r.6,
        child: r.7,
        signed_up_at: r.8,
    }))
}

/// The people whose account was closed at or before `cutoff` (not a child's: those are erased
/// at once), by id.
pub async fn closed_not_child(
    db: &eventlog::Db,
    cutoff: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<String>, ProjectionError> {
    use eventlog::Db;
    let sql = "SELECT person_id FROM accounts \
               WHERE closed_at IS NOT NULL AND closed_at <= $1 AND NOT child ORDER BY person_id";
    let cutoff = cutoff.to_rfc3339_opts(SecondsFormat::Micros, true);
    let ids: Vec<(String,)> = dispatch!(db, Db, |pool| {
        sqlx::query_as(sql).bind(&cutoff).fetch_all(pool).await?
    });
    Ok(ids.into_iter().map(|(id,)| id).collect())
}
