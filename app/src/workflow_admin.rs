//! The service's durable workflows by name ([`all`]), their runners ([`start`]), and what
//! operators see and do with their items: [`status`] (checkpoints, counts, parked items),
//! [`items`], [`retry`] and [`resolve`] — what `dynamoi workflows`, `/metrics` and
//! `/v1/operations/workflows` serve. The engine itself is [`crate::workflows`].

use crate::workflows::{run, RetryPolicy, Workflow};
use crate::{App, AppError};
use eventlog::outbox;
use eventlog::workflow::{self as store, Item};
use serde::Serialize;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Every workflow of the service.
pub fn all() -> Vec<Arc<dyn Workflow>> {
    vec![
        Arc::new(crate::artists::InvitationEmails),
        Arc::new(crate::billing::MeterReports),
        Arc::new(crate::billing::SubscriptionHolds),
        Arc::new(crate::privacy::RequestSteps),
        Arc::new(crate::retention::RetentionActions),
    ]
}

/// The workflow called `name`.
pub fn named(name: &str) -> Option<Arc<dyn Workflow>> {
    all().into_iter().find(|w| w.name() == name)
}

/// Starts every workflow's runner; they stop when `stop` is cancelled.
pub fn start(app: &App, policy: &RetryPolicy, stop: &CancellationToken) -> Vec<tokio::task::JoinHandle<()>> {
    all()
        .into_iter()
        .map(|workflow| tokio::spawn(run(app.clone(), workflow, policy.clone(), stop.clone())))
        .collect()
}

/// A workflow as `dynamoi workflows status` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct WorkflowStatus {
    pub workflow: &'static str,
    pub checkpoint: String,
    pub pending: i64,
    pub done: i64,
    pub parked: i64,
    /// Why its items wait (a processor not configured), if they do.
    pub blocked: Option<String>,
}

/// Every workflow's checkpoint and item counts, and the parked items (newest first, at most 100).
pub async fn status(app: &App) -> Result<(Vec<WorkflowStatus>, Vec<Item>), AppError> {
    let db = app.log.db();
    let counts = store::counts(db).await?;
    let count = |workflow: &str, state: &str| {
        counts
            .iter()
            .find(|(w, s, _)| w == workflow && s == state)
            .map_or(0, |(_, _, n)| *n)
    };
    let mut statuses = Vec::new();
    for workflow in all() {
        let name = workflow.name();
        statuses.push(WorkflowStatus {
            workflow: name,
            checkpoint: outbox::checkpoint(db, name).await?.to_string(),
            pending: count(name, "pending"),
            done: count(name, "done"),
            parked: count(name, "parked"),
            blocked: workflow.blocked(app),
        });
    }
    let parked = store::list(db, None, Some("parked"), 100).await?;
    Ok((statuses, parked))
}

/// Items of a workflow (or all) in a state (or all), newest first.
pub async fn items(app: &App, workflow: Option<&str>, state: Option<&str>, limit: i64) -> Result<Vec<Item>, AppError> {
    if let Some(name) = workflow {
        named(name).ok_or_else(|| AppError::NotFound(format!("there is no workflow called `{name}`")))?;
    }
    if let Some(state) = state {
        if !["pending", "done", "parked"].contains(&state) {
            return Err(AppError::InvalidInput("state must be pending, done or parked".into()));
        }
    }
    Ok(store::list(app.log.db(), workflow, state, limit.clamp(1, 1000)).await?)
}

/// An operator puts an item back to work (due now, attempts from zero).
pub async fn retry(app: &App, workflow: &str, item: &str) -> Result<Item, AppError> {
    named(workflow).ok_or_else(|| AppError::NotFound(format!("there is no workflow called `{workflow}`")))?;
    if !store::retry(app.log.db(), workflow, item, false, app.now()).await? {
        return Err(match store::get(app.log.db(), workflow, item).await? {
            None => AppError::NotFound("there is no such workflow item".into()),
            Some(_) => AppError::Conflict("this item is done already".into()),
        });
    }
    app.log.nudge();
    store::get(app.log.db(), workflow, item)
        .await?
        .ok_or_else(|| AppError::NotFound("there is no such workflow item".into()))
}

/// An operator records that an item was handled by hand, with what was done.
pub async fn resolve(app: &App, workflow: &str, item: &str, note: &str) -> Result<Item, AppError> {
    named(workflow).ok_or_else(|| AppError::NotFound(format!("there is no workflow called `{workflow}`")))?;
    crate::personal::bounded("note", note, 500)?;
    let outcome = format!("resolved by hand: {note}");
    if !store::resolve(app.log.db(), workflow, item, &outcome, app.now()).await? {
        return Err(match store::get(app.log.db(), workflow, item).await? {
            None => AppError::NotFound("there is no such workflow item".into()),
            Some(_) => AppError::Conflict("this item is done already".into()),
        });
    }
    store::get(app.log.db(), workflow, item)
        .await?
        .ok_or_else(|| AppError::NotFound("there is no such workflow item".into()))
}
