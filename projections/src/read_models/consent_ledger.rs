//! `consent_ledger`: each person's current consent per purpose (`consent_current`) and every
//! change in order (`consent_history`) (P20, P31). The auditor's replay reads the log itself;
//! this read model serves people's own settings pages and support.

use crate::projection::{Projection, ProjectionError, ReadTx, Target};
use async_trait::async_trait;
use chrono::SecondsFormat;
use domain::consent::{ConsentEvent, Consents};
use domain::Aggregate;
use eventlog::{dispatch, Dialect, StoredEvent};

/// The projection that fills `consent_current` and `consent_history`.
pub struct ConsentLedger;

fn text<T: serde::Serialize>(value: &T) -> Result<String, serde_json::Error> {
    Ok(serde_json::to_value(value)?.as_str().unwrap_or_default().to_string())
}

#[async_trait]
impl Projection for ConsentLedger {
    fn name(&self) -> &'static str {
        "consent_ledger"
    }

    fn version(&self) -> i32 {
        1
    }

    fn tables(&self) -> &'static [&'static str] {
        &["consent_current", "consent_history"]
    }

    fn aggregate_types(&self) -> Option<&'static [&'static str]> {
        Some(&[Consents::TYPE])
    }

    fn schema(&self, dialect: Dialect) -> &'static str {
        match dialect {
            Dialect::Postgres => include_str!("../../../migrations/read_models/postgres/consent_ledger.sql"),
            Dialect::Sqlite => include_str!("../../../migrations/read_models/sqlite/consent_ledger.sql"),
        }
    }

    async fn apply(&self, tx: &mut ReadTx<'_>, target: &Target, events: &[StoredEvent]) -> Result<(), ProjectionError> {
        let current = target.table("consent_current");
        let history = target.table("consent_history");
        let upsert = format!(
            "INSERT INTO {current} (person_id, purpose, granted, notice_version, notice_sha256, method, jurisdiction, \
             changed_at, event_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (person_id, purpose) DO UPDATE SET granted = excluded.granted, \
             notice_version = excluded.notice_version, notice_sha256 = excluded.notice_sha256, \
             method = excluded.method, jurisdiction = excluded.jurisdiction, changed_at = excluded.changed_at, \
             event_id = excluded.event_id"
        );
        let insert_history = format!(
            "INSERT INTO {history} (person_id, sequence, event_id, change, purpose, notice_version, method, recorded_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (person_id, sequence) DO NOTHING"
        );
        for event in events.iter().filter(|e| self.reads(e)) {
            let at = event.recorded_at.to_rfc3339_opts(SecondsFormat::Micros, true);
            let person = &event.aggregate_id;
            let event_id = event.event_id.to_string();
            let decoded = event
                .decode::<ConsentEvent>()
                .map_err(|e| ProjectionError::undecodable(event, e))?;
            let (purpose, notice_version, method) = match &decoded {
                ConsentEvent::ConsentGranted(change) | ConsentEvent::ConsentWithdrawn(change) => {
                    let granted = matches!(decoded, ConsentEvent::ConsentGranted(_));
                    let method = text(&change.method)?;
                    dispatch!(tx, ReadTx, |conn| {
                        sqlx::query(&upsert)
                            .bind(person)
                            .bind(change.purpose.as_str())
                            .bind(granted)
                            .bind(&change.notice.version_label)
                            .bind(&change.notice.text_sha256)
                            .bind(&method)
                            .bind(&change.jurisdiction)
                            .bind(&at)
                            .bind(&event_id)
                            .execute(&mut **conn)
                            .await?;
                    });
                    (
                        Some(change.purpose.as_str().to_string()),
                        Some(change.notice.version_label.clone()),
                        Some(method),
                    )
                }
                ConsentEvent::PolicyAccepted { notice, method, .. } => {
                    (None, Some(notice.version_label.clone()), Some(text(method)?))
                }
                ConsentEvent::AttributionIdsRecorded { .. } => (None, None, None),
            };
            dispatch!(tx, ReadTx, |conn| {
                sqlx::query(&insert_history)
                    .bind(person)
                    .bind(event.sequence)
                    .bind(&event_id)
                    .bind(&event.event_type)
                    .bind(&purpose)
                    .bind(&notice_version)
                    .bind(&method)
                    .bind(&at)
                    .execute(&mut **conn)
                    .await?;
            });
        }
        Ok(())
    }
}

// ----- Queries -----

/// A person's current decision on one purpose.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CurrentConsent {
    pub purpose: String,
    pub granted: bool,
    pub notice_version: String,
    pub method: String,
    pub jurisdiction: String,
    pub changed_at: String,
    pub event_id: String,
}

/// `person`'s current decision per purpose they decided on.
pub async fn current(db: &eventlog::Db, person: &str) -> Result<Vec<CurrentConsent>, ProjectionError> {
    use eventlog::Db;
    type Row = (String, bool, String, String, String, String, String);
    let sql = "SELECT purpose, granted, notice_version, method, jurisdiction, changed_at, event_id \
               FROM consent_current WHERE person_id = $1 ORDER BY purpose";
    let rows: Vec<Row> = eventlog::dispatch!(db, Db, |pool| {
        sqlx::query_as(sql).bind(person).fetch_all(pool).await?
    });
    Ok(rows
        .into_iter()
        .map(|r| CurrentConsent {
            purpose: r.0,
            granted: r.1,
            notice_version: r.2,
            method: r.3,
            jurisdiction: r.4,
            changed_at: r.5,
            event_id: r.6,
        })
        .collect())
}
