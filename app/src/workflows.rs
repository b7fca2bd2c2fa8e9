//! Durable workflows (process managers): every reaction that calls a processor or spans more
//! than one command runs here, so that a crash or a failure between two steps resumes where it
//! stopped and never repeats a completed effect.
//!
//! A workflow turns events of the feed into **items** ([`Workflow::select`]), stored with the
//! workflow's checkpoint in one transaction (`eventlog::workflow::intake`), so none is lost or
//! taken twice. Each item is handled on its own ([`Workflow::handle`]): a handler checks the
//! aggregate's own stream before acting and records its effect as an event, so handling an
//! item again after a crash does nothing twice (an effect at a processor carries an idempotency
//! key). A failed item is retried with exponential backoff; one that keeps failing is
//! **parked** with its error after `max_attempts`, visible in `dynamoi workflows status`, in
//! `/metrics` and to support over the API, until an operator retries or resolves it. One item
//! never blocks another. Disclosures are recorded per actual call, and calls back off, so a
//! retry loop writes a bounded number of events.
//!
//! A use case that wants an effect now (a privacy request opened over HTTP, a retention action)
//! runs its item at once through [`run_now`]: the item is created and claimed under a lease,
//! so the background runner never handles it at the same time, and takes it over if this
//! process dies.
//!
//! The workflows: [`crate::artists`]' invitation emails (`invitation_mailer`),
//! [`crate::billing`]'s meter reports (`meter_reports`) and subscription holds
//! (`subscription_holds`), [`crate::privacy`]'s request steps (`privacy_requests`), and
//! [`crate::retention`]'s actions (`retention_actions`).

pub use crate::retry::RetryPolicy;
use crate::{App, AppError};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use eventlog::workflow::{self as store, Attempt, Item, NewItem};
use eventlog::{outbox, StoredEvent};
use serde::Serialize;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

/// One workflow: which events start its items, and how an item is handled.
#[async_trait]
pub trait Workflow: Send + Sync + 'static {
    /// A stable name: the checkpoint's and the items'.
    fn name(&self) -> &'static str;

    /// The items an event of the feed starts (none for most events).
    fn select(&self, event: &StoredEvent) -> Vec<NewItem>;

    /// Why the workflow cannot act at all now (its processor is not configured): its items wait,
    /// untouched, until it can.
    fn blocked(&self, _app: &App) -> Option<String> {
        None
    }

    /// Handles one item: `Ok` with a one-line outcome (ids and counts, never personal data), or
    /// `Err` with the reason (the same rule) to retry.
    async fn handle(&self, app: &App, item: &Item) -> Result<String, String>;
}

fn lease_until(app: &App, policy: &RetryPolicy) -> DateTime<Utc> {
    app.now() + chrono::Duration::from_std(policy.lease).unwrap_or(chrono::Duration::minutes(5))
}

/// An item this call holds under a lease, with the token it was claimed under (unique per
/// claim, so two tasks of one process never both hold an item).
#[derive(Clone, Debug)]
pub struct Claimed {
    pub item: Item,
    owner: String,
}

fn claim_token(app: &App) -> String {
    format!("{}:{}", app.instance, uuid::Uuid::now_v7().simple())
}

/// Creates `new` when it does not exist and claims it for this call: `None` when it cannot be
/// claimed (done, parked, or held by another runner).
pub async fn claim(
    app: &App,
    workflow: &dyn Workflow,
    new: NewItem,
    policy: &RetryPolicy,
) -> Result<Option<Claimed>, AppError> {
    let owner = claim_token(app);
    let claimed = store::create_and_claim(
        app.log.db(),
        workflow.name(),
        &new,
        &owner,
        app.now(),
        lease_until(app, policy),
    )
    .await?;
    Ok(claimed.map(|item| Claimed { item, owner }))
}

/// Puts `new` back to work whatever its state (or creates it) and claims it for this call, so
/// that what the call records next is handled here; `None` when another runner holds it.
pub async fn rearm_and_claim(
    app: &App,
    workflow: &dyn Workflow,
    new: NewItem,
    policy: &RetryPolicy,
) -> Result<Option<Claimed>, AppError> {
    let owner = claim_token(app);
    let claimed = store::rearm_and_claim(
        app.log.db(),
        workflow.name(),
        &new,
        &owner,
        app.now(),
        lease_until(app, policy),
    )
    .await?;
    Ok(claimed.map(|item| Claimed { item, owner }))
}

/// Gives a claim up without handling the item (the call failed before its work began).
pub async fn release(app: &App, workflow: &dyn Workflow, claimed: Claimed) -> Result<(), AppError> {
    store::release(app.log.db(), workflow.name(), &claimed.item.item, &claimed.owner).await?;
    Ok(())
}

/// Handles a claimed item and records the attempt: done, retry later, or parked.
pub async fn attempt(
    app: &App,
    workflow: &dyn Workflow,
    claimed: &Claimed,
    policy: &RetryPolicy,
) -> Result<Attempt, AppError> {
    let item = &claimed.item;
    let outcome = workflow.handle(app, item).await;
    let failures = item.attempts + 1;
    let attempt = match outcome {
        Ok(outcome) => Attempt::Done { outcome },
        Err(error) if failures >= policy.max_attempts => {
            tracing::warn!(workflow = workflow.name(), item = %item.item, %error, failures, "a workflow item is parked");
            metrics::counter!("dynamoi_workflow_parked_total", "workflow" => workflow.name()).increment(1);
            Attempt::Park { error }
        }
        Err(error) => {
            let wait = policy.backoff_after(failures);
            tracing::info!(workflow = workflow.name(), item = %item.item, %error, failures, ?wait, "a workflow item failed; it is retried");
            Attempt::Retry {
                error,
                retry_at: app.now() + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::hours(6)),
            }
        }
    };
    store::record(app.log.db(), item, &claimed.owner, &attempt, app.now()).await?;
    Ok(attempt)
}

/// Runs one item now, in the caller's task, under the item's lease: creates it if it does not
/// exist. `None` when it cannot be claimed (done already, parked, or being handled elsewhere).
pub async fn run_now(
    app: &App,
    workflow: &dyn Workflow,
    new: NewItem,
    policy: &RetryPolicy,
) -> Result<Option<Attempt>, AppError> {
    match claim(app, workflow, new, policy).await? {
        Some(claimed) => Ok(Some(attempt(app, workflow, &claimed, policy).await?)),
        None => Ok(None),
    }
}

/// One pass of a workflow's runner: takes in what the feed holds after its checkpoint, then
/// handles every item due now. Returns how many events it read and items it handled.
pub async fn pass(app: &App, workflow: &dyn Workflow, policy: &RetryPolicy) -> Result<(usize, usize), AppError> {
    let db = app.log.db();
    let mut read = 0;
    loop {
        let from = outbox::checkpoint(db, workflow.name()).await?;
        let events = app.log.read_feed(from, 500).await?;
        let Some(last) = events.last().map(|e| e.position) else {
            break;
        };
        read += events.len();
        let items: Vec<NewItem> = events.iter().flat_map(|e| workflow.select(e)).collect();
        if !store::intake(db, workflow.name(), &items, from, last, app.now()).await? {
            // Another instance took this batch; read on from where it left the checkpoint.
            continue;
        }
    }
    if workflow.blocked(app).is_some() {
        return Ok((read, 0));
    }
    let mut handled = 0;
    for key in store::due(db, workflow.name(), app.now(), 100).await? {
        let owner = claim_token(app);
        let claimed = store::claim(
            db,
            workflow.name(),
            &key,
            &owner,
            app.now(),
            lease_until(app, policy),
            true,
        )
        .await?;
        if let Some(item) = claimed {
            attempt(app, workflow, &Claimed { item, owner }, policy).await?;
            handled += 1;
        }
    }
    Ok((read, handled))
}

/// Runs one workflow until `stop`: a pass whenever something was appended here, at every poll
/// (other processes, items falling due), and again at once while there was work.
pub async fn run(app: App, workflow: Arc<dyn Workflow>, policy: RetryPolicy, stop: CancellationToken) {
    let mut appended = app.log.subscribe();
    if let Some(reason) = workflow.blocked(&app) {
        tracing::warn!(workflow = workflow.name(), %reason, "workflow items wait until this is configured");
    }
    loop {
        if stop.is_cancelled() {
            return;
        }
        let busy = match pass(&app, workflow.as_ref(), &policy).await {
            Ok((read, handled)) => read > 0 || handled > 0,
            Err(error) => {
                tracing::warn!(workflow = workflow.name(), %error, "a workflow pass failed; retrying");
                false
            }
        };
        if busy {
            continue;
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = appended.changed() => {}
            _ = tokio::time::sleep(policy.poll) => {}
        }
    }
}

/// An item keyed by `key` with a JSON payload.
pub fn item(key: impl Into<String>, payload: &impl Serialize) -> NewItem {
    NewItem {
        item: key.into(),
        payload: serde_json::to_string(payload).unwrap_or_else(|_| "null".into()),
    }
}

/// The payload of an item, decoded.
pub fn payload<T: serde::de::DeserializeOwned>(item: &Item) -> Result<T, String> {
    serde_json::from_str(&item.payload).map_err(|_| format!("the item's payload is malformed ({})", item.item))
}
