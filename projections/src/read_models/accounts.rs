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
        // 2: `closed_at`.
        2
    }

    fn tables(&self) -> &'static [&'static str] {
        &["accounts"]
    }

    fn schema(&self, dialect: Dialect) -> &'static str {
        match dialect {
            Dialect::Postgres => include_str!("../../../migrations/read_models/postgres/accounts.sql"),
            Dialect::Sqlite => include_str!("../../../migrations/read_models/sqlite/accounts.sql"),
        }
    }

    async fn apply(&self, tx: &mut ReadTx<'_>, target: &Target, events: &[StoredEvent]) -> Result<(), ProjectionError> {
        let table = target.table("accounts");
        for event in events.iter().filter(|e| e.aggregate_type == Account::TYPE) {
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
                    minimum_age_met,
                } => {
                    let sql = format!(
                        "INSERT INTO {table} (person_id, provider, country, minimum_age_met, provider_subject_sealed, \
                         name_sealed, email_sealed, avatar_url_sealed, child, signed_up_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, false, $9, $9) ON CONFLICT (person_id) DO NOTHING"
                    );
                    let provider = serde_json::to_value(provider)?.as_str().unwrap_or_default().to_string();
                    dispatch!(tx, ReadTx, |conn| {
                        sqlx::query(&sql)
                            .bind(person)
                            .bind(&provider)
                            .bind(&country)
                            .bind(i32::from(minimum_age_met))
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
