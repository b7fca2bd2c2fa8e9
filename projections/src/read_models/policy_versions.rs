//! `policy_versions`: every published version of every policy document (P28), for
//! `GET /v1/policies` and `GET /v1/policies/current`.

use crate::projection::{Projection, ProjectionError, ReadTx, Target};
use async_trait::async_trait;
use chrono::SecondsFormat;
use domain::policy::PolicyEvent;
use domain::Aggregate;
use eventlog::{dispatch, Dialect, StoredEvent};

/// The projection that fills `policy_versions`.
pub struct PolicyVersions;

#[async_trait]
impl Projection for PolicyVersions {
    fn name(&self) -> &'static str {
        "policy_versions"
    }

    fn version(&self) -> i32 {
        1
    }

    fn tables(&self) -> &'static [&'static str] {
        &["policy_versions"]
    }

    fn aggregate_types(&self) -> Option<&'static [&'static str]> {
        Some(&[domain::policy::PolicyDocument::TYPE])
    }

    fn schema(&self, dialect: Dialect) -> &'static str {
        match dialect {
            Dialect::Postgres => include_str!("../../../migrations/read_models/postgres/policy_versions.sql"),
            Dialect::Sqlite => include_str!("../../../migrations/read_models/sqlite/policy_versions.sql"),
        }
    }

    async fn apply(&self, tx: &mut ReadTx<'_>, target: &Target, events: &[StoredEvent]) -> Result<(), ProjectionError> {
        let sql = format!(
            "INSERT INTO {} (document_id, version_number, label, effective_date, locale, text_sha256, \
                             summary_of_changes, published_at, published_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (document_id, version_number) DO NOTHING",
            target.table("policy_versions")
        );
        for event in events.iter().filter(|e| self.reads(e)) {
            let PolicyEvent::PolicyVersionPublished(version) = event
                .decode::<PolicyEvent>()
                .map_err(|e| ProjectionError::undecodable(event, e))?;
            let published_at = event.recorded_at.to_rfc3339_opts(SecondsFormat::Micros, true);
            dispatch!(tx, ReadTx, |conn| {
                sqlx::query(&sql)
                    .bind(&event.aggregate_id)
                    .bind(i64::from(version.version_number))
                    .bind(&version.label)
                    .bind(version.effective_date.to_string())
                    .bind(&version.locale)
                    .bind(&version.text_sha256)
                    .bind(&version.summary_of_changes)
                    .bind(&published_at)
                    .bind(&event.metadata.actor)
                    .execute(&mut **conn)
                    .await?;
            });
        }
        Ok(())
    }
}

// ----- Queries -----

/// A published version as the read model holds it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct VersionRow {
    pub document_id: String,
    pub version_number: i64,
    pub label: String,
    pub effective_date: String,
    pub locale: String,
    pub text_sha256: String,
    pub summary_of_changes: String,
    pub published_at: String,
}

/// The versions of `document_id` (of one locale, and in force on a day, when given), by number.
pub async fn versions(
    db: &eventlog::Db,
    document_id: &str,
    locale: Option<&str>,
    in_force_on: Option<chrono::NaiveDate>,
) -> Result<Vec<VersionRow>, ProjectionError> {
    use eventlog::Db;
    type Row = (String, i32, String, String, String, String, String, String);
    let sql = "SELECT document_id, version_number, label, effective_date, locale, text_sha256, summary_of_changes, published_at \
               FROM policy_versions WHERE document_id = $1 AND ($2 IS NULL OR locale = $2) \
               AND ($3 IS NULL OR effective_date <= $3) ORDER BY version_number";
    let in_force_on = in_force_on.map(|d| d.to_string());
    let rows: Vec<Row> = dispatch!(db, Db, |pool| {
        sqlx::query_as(sql)
            .bind(document_id)
            .bind(locale)
            .bind(&in_force_on)
            .fetch_all(pool)
            .await?
    });
    Ok(rows
        .into_iter()
        .map(|r| VersionRow {
            document_id: r.0,
            version_number: i64::from(r.1),
            label: r.2,
            effective_date: r.3,
            locale: r.4,
            text_sha256: r.5,
            summary_of_changes: r.6,
            published_at: r.7,
        })
        .collect())
}
