//! The engine: one catch-up worker per projection, their status, read-your-writes waiting,
//! and blue/green rebuilds.

use crate::checkpoint::{self, Generation, LockFence as Fence, REBUILDING, RUNNING, STALLED};
use crate::projection::{Projection, ProjectionError, ReadTx, Target};
use chrono::Utc;
use eventlog::{Db, EventLog, Position, StoredEvent};
use serde::Serialize;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How the workers batch, poll and back off.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Events read and applied per transaction by the workers and `catch_up`.
    pub batch_size: usize,
    /// Events read and applied per transaction by [`Engine::rebuild`]. Larger than a worker's:
    /// no reader waits on a rebuild's batches, and a bigger batch folds more in memory (a day
    /// restated within the batch is written once) and pays each batch's round trips fewer
    /// times. It bounds what a rebuild holds: this many events, and as many read ahead.
    pub rebuild_batch_size: usize,
    /// How often an idle worker looks for events committed by other processes.
    pub poll_interval: Duration,
    /// The first wait after a failed batch; it doubles up to `backoff_max`.
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// How often a worker waiting for another instance's lock (PostgreSQL) tries again.
    pub standby_retry: Duration,
    /// How long a live worker may hold back its checkpoint's move over batches holding no event
    /// it reads ([`Projection::reads`]) before storing it. Such a batch writes no table, so it
    /// opens no transaction; a read-your-writes waiter here has the move stored at once.
    pub checkpoint_delay: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            batch_size: 1000,
            rebuild_batch_size: 5_000,
            poll_interval: Duration::from_millis(250),
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(30),
            standby_retry: Duration::from_secs(2),
            checkpoint_delay: Duration::from_millis(100),
        }
    }
}

/// What `dynamoi projections status`, `/readyz` and `/metrics` report per projection.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ProjectionStatus {
    pub name: String,
    pub version: i32,
    pub generation: Option<i64>,
    /// `rebuilding`, `running`, `stalled`, or `absent` before the first start.
    pub state: String,
    pub position: Position,
    pub events_applied: i64,
    pub lag_events: i64,
    pub lag_seconds: f64,
    pub last_error: Option<String>,
    pub error_position: Option<String>,
    /// A generation rebuilding beside the active one, if any.
    pub rebuilding: Option<RebuildingStatus>,
}

/// A generation being rebuilt beside the active one.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct RebuildingStatus {
    pub generation: i64,
    pub version: i32,
    pub position: Position,
    pub events_applied: i64,
    pub lag_events: i64,
}

/// Progress of a rebuild, reported after each batch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RebuildProgress {
    pub done: u64,
    pub total: u64,
}

/// What a rebuild did.
#[derive(Clone, Debug, PartialEq)]
pub struct RebuildReport {
    pub generation: i64,
    pub events: u64,
    pub elapsed: Duration,
}

/// The projection engine. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    log: EventLog,
    projections: Vec<Arc<dyn Projection>>,
    config: EngineConfig,
    /// One per projection (in `projections`' order).
    signals: Vec<Signals>,
    shutdown: CancellationToken,
    workers: Mutex<Vec<JoinHandle<()>>>,
    /// The last feed read a tailing worker made, which the others reuse: every worker reads the
    /// same feed, and they all wake on the same commit.
    shared_read: tokio::sync::Mutex<Option<SharedRead>>,
}

/// What one projection's worker here and its read-your-writes waiters tell each other.
struct Signals {
    /// Bumped after every batch the worker commits and when a rebuilt generation takes over;
    /// waiters watch it.
    progress: watch::Sender<u64>,
    /// The position the latest waiter found the stored checkpoint short of: when a move the
    /// worker holds back reaches it, the worker stores the move at once (see
    /// [`EngineConfig::checkpoint_delay`]). The latest, not the furthest: a position that never
    /// comes (a `min_position` past the feed) is replaced by the next waiter's.
    store_now: watch::Sender<Position>,
}

impl Inner {
    /// The signals of projection `name`.
    fn signals_of(&self, name: &str) -> Option<&Signals> {
        let index = self.projections.iter().position(|p| p.name() == name)?;
        Some(&self.signals[index])
    }

    /// Wakes the read-your-writes waiters of `projection`.
    fn signal_progress(&self, projection: &dyn Projection) {
        if let Some(signals) = self.signals_of(projection.name()) {
            signals.progress.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// Reads the feed after `after` for this worker alone.
    async fn read_feed(&self, after: Position, limit: usize) -> Result<FeedRead, eventlog::LogError> {
        let events = self.log.read_feed(after, limit).await?;
        Ok(FeedRead {
            reached_horizon: events.len() < limit,
            events: Arc::new(events),
            start: 0,
        })
    }
}

/// One read of the feed, kept for the other tailing workers.
struct SharedRead {
    /// The position the read started after.
    after: Position,
    /// The log's commit count (`EventLog::subscribe`) when the read began: every commit this
    /// process had made by then is in it (their transactions had ended, so the horizon was past them).
    commits_seen: u64,
    events: Arc<Vec<StoredEvent>>,
    /// The read returned fewer events than its limit: it reached the feed's horizon.
    reached_horizon: bool,
}

enum Mode {
    /// Follow the live feed until shut down or retired.
    Tail,
    /// Stop once the feed holds nothing more (a rebuild beside the active generation).
    UntilCaughtUp,
}

enum Outcome {
    Shutdown,
    Retired,
    CaughtUp,
    /// The worker's advisory lock is gone (its session ended: a PostgreSQL restart, a
    /// terminated backend): stand by until it is held again.
    LockLost,
}

enum BatchOutcome {
    Applied,
    /// The checkpoint moved under us (another runner) or the generation was retired.
    Moved,
    /// The session that held this worker's lock no longer holds it: nothing was applied.
    LockLost,
}

impl Engine {
    /// An engine over `log` for these projections. Nothing runs until [`Engine::start`].
    pub fn new(log: EventLog, projections: Vec<Arc<dyn Projection>>, config: EngineConfig) -> Engine {
        Engine {
            inner: Arc::new(Inner {
                log,
                signals: projections
                    .iter()
                    .map(|_| Signals {
                        progress: watch::channel(0).0,
                        store_now: watch::channel(Position::START).0,
                    })
                    .collect(),
                projections,
                config,
                shutdown: CancellationToken::new(),
                workers: Mutex::new(Vec::new()),
                shared_read: tokio::sync::Mutex::new(None),
            }),
        }
    }

    /// The projection called `name`.
    pub fn projection(&self, name: &str) -> Option<Arc<dyn Projection>> {
        self.inner.projections.iter().find(|p| p.name() == name).cloned()
    }

    /// The names of every projection, in start order.
    pub fn names(&self) -> Vec<&'static str> {
        self.inner.projections.iter().map(|p| p.name()).collect()
    }

    /// Makes sure every projection has an active generation, so its views exist and queries
    /// work before the workers have caught up.
    pub async fn prepare(&self) -> Result<(), ProjectionError> {
        for projection in &self.inner.projections {
            let generations = checkpoint::live_generations(self.db(), projection.name()).await?;
            if !generations.iter().any(|g| g.active) {
                create_active_or_adopt(self.db(), projection.as_ref(), self.inner.log.now()).await?;
            }
        }
        Ok(())
    }

    /// Starts one worker per projection.
    pub fn start(&self) {
        let mut workers = self
            .inner
            .workers
            .lock()
            .expect("the worker list lock is never poisoned");
        for projection in &self.inner.projections {
            let inner = self.inner.clone();
            let projection = projection.clone();
            workers.push(tokio::spawn(async move { run_worker(inner, projection).await }));
        }
    }

    /// Stops the workers: each finishes the batch it is applying, then returns.
    pub async fn shutdown(&self) {
        self.inner.shutdown.cancel();
        let workers: Vec<_> = std::mem::take(&mut *self.inner.workers.lock().expect("never poisoned"));
        for worker in workers {
            if let Err(error) = worker.await {
                tracing::error!(%error, "a projection worker ended abnormally");
            }
        }
    }

    fn db(&self) -> &Db {
        self.inner.log.db()
    }

    /// Waits, at most `timeout`, until projection `name` has applied the event at `position`.
    /// Returns whether it has.
    pub async fn wait_for(&self, name: &str, position: Position, timeout: Duration) -> Result<bool, ProjectionError> {
        Ok(self.wait_for_checkpoint(name, position, timeout).await?.is_some())
    }

    /// Waits, at most `timeout`, until projection `name`'s active checkpoint is at or past
    /// `position`, and returns the checkpoint it read then (`None` past the timeout).
    pub async fn wait_for_checkpoint(
        &self,
        name: &str,
        position: Position,
        timeout: Duration,
    ) -> Result<Option<Position>, ProjectionError> {
        let deadline = Instant::now() + timeout;
        let signals = self.inner.signals_of(name);
        let mut progress = signals.map(|signals| signals.progress.subscribe());
        loop {
            let checkpoint = checkpoint::active_checkpoint(self.db(), name).await?;
            if checkpoint >= position {
                return Ok(Some(checkpoint));
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            // A move the worker holds back may already cover `position`: have it stored.
            if let Some(signals) = signals {
                signals.store_now.send_replace(position);
            }
            // This projection's batches here wake us; the short nap covers other processes.
            let nap = (deadline - now).min(Duration::from_millis(50));
            match progress.as_mut() {
                Some(progress) => {
                    let _ = tokio::time::timeout(nap, progress.changed()).await;
                }
                None => tokio::time::sleep(nap).await,
            }
        }
    }

    /// The status of every projection, from the database (so it is true across processes).
    pub async fn status(&self) -> Result<Vec<ProjectionStatus>, ProjectionError> {
        let mut out = Vec::new();
        for projection in &self.inner.projections {
            let generations = checkpoint::live_generations(self.db(), projection.name()).await?;
            let active = generations.iter().find(|g| g.active);
            let rebuilding = generations.iter().find(|g| !g.active);
            let checkpoint = active.map(|g| g.checkpoint).unwrap_or(Position::START);
            let head = self.inner.log.head(checkpoint).await?;
            let lag_seconds = head
                .oldest_after
                .map(|t| (self.inner.log.now() - t).num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6)
                .unwrap_or(0.0)
                .max(0.0);
            let rebuilding = match rebuilding {
                Some(g) => Some(RebuildingStatus {
                    generation: g.generation,
                    version: g.version,
                    position: g.checkpoint,
                    events_applied: g.events_applied,
                    lag_events: self.inner.log.head(g.checkpoint).await?.events_after,
                }),
                None => None,
            };
            out.push(ProjectionStatus {
                name: projection.name().to_string(),
                version: projection.version(),
                generation: active.map(|g| g.generation),
                state: active.map(|g| g.state.clone()).unwrap_or_else(|| "absent".into()),
                position: checkpoint,
                events_applied: active.map(|g| g.events_applied).unwrap_or(0),
                lag_events: head.events_after,
                lag_seconds,
                last_error: active.and_then(|g| g.last_error.clone()),
                error_position: active.and_then(|g| g.error_position.clone()),
                rebuilding,
            });
        }
        Ok(out)
    }

    /// Rebuilds projection `name` into a new generation beside the active one, batch by batch
    /// (never one long transaction), then makes it the active one. `on_progress` is called
    /// after every batch. A running service keeps serving the old generation meanwhile, and
    /// its worker follows the new one after the take-over.
    pub async fn rebuild(
        &self,
        name: &str,
        mut on_progress: impl FnMut(RebuildProgress) + Send,
    ) -> Result<RebuildReport, ProjectionError> {
        let started = Instant::now();
        let projection = self.projection(name).ok_or_else(|| ProjectionError::Event {
            position: Position::START,
            event_type: String::new(),
            reason: format!("there is no projection called `{name}`"),
        })?;
        let lock = AdvisoryLock::try_acquire(self.db(), &format!("dynamoi.rebuild:{name}")).await?;
        if lock.as_ref().is_some_and(|lock| !lock.held) {
            return Err(ProjectionError::Event {
                position: Position::START,
                event_type: String::new(),
                reason: format!("another rebuild of `{name}` is running"),
            });
        }
        let outcome = self.rebuild_holding_lock(&projection, started, &mut on_progress).await;
        // Unlocked before returning, not when the connection's socket is eventually closed:
        // a rebuild that starts right after this one returns must find the lock free.
        if let Some(lock) = lock {
            lock.release().await;
        }
        outcome
    }

    async fn rebuild_holding_lock(
        &self,
        projection: &Arc<dyn Projection>,
        started: Instant,
        on_progress: &mut (impl FnMut(RebuildProgress) + Send),
    ) -> Result<RebuildReport, ProjectionError> {
        let name = projection.name();
        let db = self.db().clone();
        for abandoned in checkpoint::live_generations(&db, name)
            .await?
            .iter()
            .filter(|g| !g.active)
        {
            checkpoint::discard(&db, projection.as_ref(), abandoned.generation, self.inner.log.now()).await?;
        }
        let has_active = checkpoint::live_generations(&db, name).await?.iter().any(|g| g.active);
        let mut generation = checkpoint::create(&db, projection.as_ref(), !has_active, self.inner.log.now()).await?;
        let batch_size = self.inner.config.rebuild_batch_size;
        // The total (a count of the whole feed) is taken while the first batch is read.
        let (head, first) = tokio::join!(
            self.inner.log.head(Position::START),
            self.inner.log.read_feed(generation.checkpoint, batch_size),
        );
        let total = head?.events_after.max(0) as u64;
        let mut done = 0u64;
        on_progress(RebuildProgress { done, total });
        let mut events = first?;
        while let Some(last) = events.last().map(|e| e.position) {
            // The next batch is read while this one is applied (another connection): the
            // database's write and the next read's scan and decoding overlap. Nothing about the
            // next read depends on this batch's transaction, which writes only read-model tables.
            let batch = Batch::of(&events);
            let (outcome, next) = tokio::join!(
                apply_batch(&self.inner, projection.as_ref(), &generation, &batch, REBUILDING, None),
                self.inner.log.read_feed(last, batch_size),
            );
            match outcome? {
                BatchOutcome::Applied => {
                    done += events.len() as u64;
                    generation.checkpoint = last;
                    on_progress(RebuildProgress {
                        done,
                        total: total.max(done),
                    });
                    events = next?;
                }
                // No fence is passed here, so a lost lock is never reported. The batch read
                // ahead followed this one, which was not applied: read again from where the
                // checkpoint stands.
                BatchOutcome::Moved | BatchOutcome::LockLost => {
                    generation = checkpoint::load(&db, name, generation.generation)
                        .await?
                        .expect("a generation row is never deleted");
                    events = self.inner.log.read_feed(generation.checkpoint, batch_size).await?;
                }
            }
        }
        checkpoint::take_over(&db, projection.as_ref(), generation.generation, self.inner.log.now()).await?;
        self.inner.signal_progress(projection.as_ref());
        Ok(RebuildReport {
            generation: generation.generation,
            events: done,
            elapsed: started.elapsed(),
        })
    }

    /// Applies every event currently in the feed to every projection, then returns. For tools
    /// and tests that need read models up to date without running workers.
    pub async fn catch_up(&self) -> Result<(), ProjectionError> {
        self.prepare().await?;
        for projection in &self.inner.projections {
            let active = checkpoint::live_generations(self.db(), projection.name())
                .await?
                .into_iter()
                .find(|g| g.active)
                .expect("prepare made one active");
            let mut generation = active;
            loop {
                let events = self
                    .inner
                    .log
                    .read_feed(generation.checkpoint, self.inner.config.batch_size)
                    .await?;
                let Some(last) = events.last() else {
                    if generation.state == REBUILDING {
                        checkpoint::set_state(
                            self.db(),
                            projection.name(),
                            generation.generation,
                            RUNNING,
                            self.inner.log.now(),
                        )
                        .await?;
                    }
                    break;
                };
                let last = last.position;
                match apply_batch(
                    &self.inner,
                    projection.as_ref(),
                    &generation,
                    &Batch::of(&events),
                    RUNNING,
                    None,
                )
                .await?
                {
                    BatchOutcome::Applied => generation.checkpoint = last,
                    BatchOutcome::Moved | BatchOutcome::LockLost => {
                        generation = checkpoint::load(self.db(), projection.name(), generation.generation)
                            .await?
                            .expect("never deleted")
                    }
                }
            }
        }
        Ok(())
    }
}

/// Creates the first generation of a projection, active at once.
async fn create_active_or_adopt(
    db: &Db,
    projection: &dyn Projection,
    now: chrono::DateTime<Utc>,
) -> Result<Generation, ProjectionError> {
    match checkpoint::create(db, projection, true, now).await {
        Ok(generation) => Ok(generation),
        // Another process created it at the same moment (the one-active index refused ours).
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            let generations = checkpoint::live_generations(db, projection.name()).await?;
            Ok(generations
                .into_iter()
                .find(|g| g.active)
                .expect("the unique violation means an active generation exists"))
        }
        Err(e) => Err(e.into()),
    }
}

/// Picks the generation the worker should run, creating one when the code's version has none.
async fn resolve(
    db: &Db,
    projection: &dyn Projection,
    now: chrono::DateTime<Utc>,
) -> Result<(Generation, Mode), ProjectionError> {
    let generations = checkpoint::live_generations(db, projection.name()).await?;
    let active = generations.iter().find(|g| g.active);
    match active {
        Some(active) if active.version == projection.version() => Ok((active.clone(), Mode::Tail)),
        None => Ok((create_active_or_adopt(db, projection, now).await?, Mode::Tail)),
        Some(_) => {
            // The code has a new version: rebuild it beside the one being served.
            let pending = generations
                .iter()
                .find(|g| !g.active && g.version == projection.version());
            let pending = match pending {
                Some(pending) => pending.clone(),
                None => checkpoint::create(db, projection, false, now).await?,
            };
            Ok((pending, Mode::UntilCaughtUp))
        }
    }
}

/// One projection's worker: take the lock (PostgreSQL), then run generations until shut down.
async fn run_worker(inner: Arc<Inner>, projection: Arc<dyn Projection>) {
    let name = projection.name();
    let db = inner.log.db().clone();
    let lock_name = format!("dynamoi.projection:{name}");
    'standby: loop {
        let mut lock = None;
        loop {
            match AdvisoryLock::try_acquire(&db, &lock_name).await {
                Ok(None) => break,
                Ok(Some(l)) if l.held => {
                    lock = Some(l);
                    break;
                }
                Ok(Some(_)) => tracing::debug!(projection = name, "another instance runs this projection; standing by"),
                Err(error) => tracing::warn!(projection = name, %error, "could not take the projection lock"),
            }
            if sleep_or_shutdown(&inner, inner.config.standby_retry).await {
                return;
            }
        }
        let fence = lock.as_ref().map(AdvisoryLock::fence);
        metrics::gauge!("dynamoi_projection_lock_held", "projection" => name).set(1.0);
        let mut backoff = inner.config.backoff_initial;
        loop {
            if inner.shutdown.is_cancelled() {
                break;
            }
            let (generation, mode) = match resolve(&db, projection.as_ref(), inner.log.now()).await {
                Ok(resolved) => resolved,
                Err(error) => {
                    tracing::warn!(projection = name, %error, "could not resolve the projection's generation");
                    if sleep_or_shutdown(&inner, backoff).await {
                        break;
                    }
                    backoff = (backoff * 2).min(inner.config.backoff_max);
                    continue;
                }
            };
            backoff = inner.config.backoff_initial;
            match run_generation(&inner, projection.as_ref(), generation.clone(), &mode, fence).await {
                Outcome::Shutdown => break,
                Outcome::Retired => continue,
                Outcome::LockLost => {
                    tracing::warn!(
                    projection = name,
                    "this worker's projection lock is gone (its database session ended); standing by until it holds it again"
                );
                    metrics::gauge!("dynamoi_projection_lock_held", "projection" => name).set(0.0);
                    metrics::counter!("dynamoi_projection_lock_lost_total", "projection" => name).increment(1);
                    if let Some(lock) = lock {
                        lock.release().await;
                    }
                    if sleep_or_shutdown(&inner, inner.config.standby_retry).await {
                        return;
                    }
                    continue 'standby;
                }
                Outcome::CaughtUp => {
                    if let Err(error) =
                        checkpoint::take_over(&db, projection.as_ref(), generation.generation, inner.log.now()).await
                    {
                        tracing::warn!(projection = name, %error, "could not switch to the rebuilt generation");
                    } else {
                        tracing::info!(
                            projection = name,
                            generation = generation.generation,
                            "rebuilt generation took over"
                        );
                        inner.signal_progress(projection.as_ref());
                    }
                }
            }
        }
        if let Some(lock) = lock {
            lock.release().await;
        }
        return;
    }
}

/// Sleeps, unless shutdown comes first; returns true on shutdown.
async fn sleep_or_shutdown(inner: &Inner, duration: Duration) -> bool {
    tokio::select! {
        _ = inner.shutdown.cancelled() => true,
        _ = tokio::time::sleep(duration) => false,
    }
}

/// Runs one generation: apply batches until shut down, retired, or (rebuilds) caught up.
async fn run_generation(
    inner: &Inner,
    projection: &dyn Projection,
    mut generation: Generation,
    mode: &Mode,
    fence: Option<Fence>,
) -> Outcome {
    let name = projection.name();
    let db = inner.log.db();
    let mut appended = inner.log.subscribe();
    let mut store_now = inner.signals_of(name).map(|signals| signals.store_now.subscribe());
    let mut limit = inner.config.batch_size;
    let mut backoff = inner.config.backoff_initial;
    // The state a healthy batch leaves: a fresh generation is rebuilding until first caught up.
    let mut healthy = if generation.state == RUNNING || (generation.state == STALLED && generation.active) {
        RUNNING
    } else {
        REBUILDING
    };
    // After a poll tick the feed is read afresh: other processes' commits are not counted.
    let mut poll_tick = false;
    // Whether the last read reached the feed's horizon. A worker still catching up reads on its
    // own: its full batches could serve no worker at the head, and they would wait behind them.
    let mut at_head = false;
    // The checkpoint's move over batches this projection reads nothing of, not stored yet (live
    // workers only): stored with the next batch it reads, when a waiter asks, or once it is
    // `checkpoint_delay` old.
    let mut held: Option<HeldMove> = None;
    loop {
        if inner.shutdown.is_cancelled() {
            store_before_stopping(inner, projection, &generation, held, healthy, fence).await;
            return Outcome::Shutdown;
        }
        let commits_seen = *appended.borrow_and_update();
        let shareable = matches!(mode, Mode::Tail) && limit == inner.config.batch_size && !poll_tick && at_head;
        poll_tick = false;
        let after = held.as_ref().map_or(generation.checkpoint, |held| held.to);
        let read = if shareable {
            read_feed_shared(inner, after, limit, commits_seen).await
        } else {
            inner.read_feed(after, limit).await
        };
        let FeedRead {
            events: feed,
            start,
            reached_horizon,
        } = match read {
            Ok(read) => read,
            Err(error) => {
                tracing::warn!(projection = name, %error, "reading the feed failed");
                if sleep_or_shutdown(inner, backoff).await {
                    return Outcome::Shutdown;
                }
                backoff = (backoff * 2).min(inner.config.backoff_max);
                continue;
            }
        };
        at_head = reached_horizon;
        // The events this commit folds; none when it only stores a held move.
        let mut events = &feed[start..];
        if events.is_empty() {
            if let Mode::UntilCaughtUp = mode {
                return Outcome::CaughtUp;
            }
            if healthy == REBUILDING {
                healthy = RUNNING;
                if let Err(error) =
                    checkpoint::set_state(db, name, generation.generation, RUNNING, inner.log.now()).await
                {
                    tracing::warn!(projection = name, %error, "could not record the running state");
                }
            }
            // Idle: wake on an in-process commit, a poll tick, a held move falling due, or
            // shutdown; on a poll tick make sure this generation was not replaced by a rebuild
            // from another process.
            let store_held = tokio::select! {
                _ = inner.shutdown.cancelled() => {
                    store_before_stopping(inner, projection, &generation, held, healthy, fence).await;
                    return Outcome::Shutdown;
                }
                _ = appended.changed() => false,
                _ = held_move_due(held.as_ref(), generation.checkpoint, store_now.as_mut(), inner.config.checkpoint_delay), if held.is_some() => true,
                _ = tokio::time::sleep(inner.config.poll_interval) => {
                    poll_tick = true;
                    match checkpoint::load(db, name, generation.generation).await {
                        Ok(Some(row)) if row.state == checkpoint::RETIRED => return Outcome::Retired,
                        Ok(Some(row)) => {
                            if row.checkpoint > generation.checkpoint {
                                // Moved by someone else: read on from there.
                                generation.checkpoint = row.checkpoint;
                                held = None;
                            }
                        }
                        Ok(None) => return Outcome::Retired,
                        Err(error) => tracing::warn!(projection = name, %error, "could not read the checkpoint"),
                    }
                    false
                }
            };
            if !store_held {
                continue;
            }
        } else if matches!(mode, Mode::Tail) && !events.iter().any(|event| projection.reads(event)) {
            // Nothing here for this projection: hold the move back instead of a transaction.
            let move_ = held.get_or_insert_with(|| HeldMove {
                to: after,
                events: 0,
                since: Instant::now(),
            });
            move_.to = events.last().expect("non-empty").position;
            move_.events += events.len() as i64;
            let asked = store_now
                .as_ref()
                .is_some_and(|store_now| move_.covers(*store_now.borrow(), generation.checkpoint));
            if !asked && move_.since.elapsed() < inner.config.checkpoint_delay {
                continue;
            }
            events = &[];
        }
        let batch = Batch {
            // Nothing to fold: the held move alone (it may have just taken in this read's batch).
            to: events
                .last()
                .map_or_else(|| held.as_ref().map_or(after, |held| held.to), |e| e.position),
            events: held.as_ref().map_or(0, |held| held.events) + events.len() as i64,
            fold: events,
        };
        match apply_batch(inner, projection, &generation, &batch, healthy, fence).await {
            Ok(BatchOutcome::LockLost) => return Outcome::LockLost,
            Ok(BatchOutcome::Applied) => {
                generation.checkpoint = batch.to;
                held = None;
                limit = inner.config.batch_size;
                backoff = inner.config.backoff_initial;
                metrics::counter!("dynamoi_projection_events_applied_total", "projection" => name)
                    .increment(batch.events as u64);
                inner.signal_progress(projection);
            }
            Ok(BatchOutcome::Moved) => {
                held = None;
                match checkpoint::load(db, name, generation.generation).await {
                    Ok(Some(row)) if row.state != checkpoint::RETIRED => generation = row,
                    Ok(_) => return Outcome::Retired,
                    Err(error) => tracing::warn!(projection = name, %error, "could not reload the checkpoint"),
                }
            }
            Err(error) => {
                let position = match &error {
                    ProjectionError::Event { position, .. } => Some(*position),
                    _ if events.len() == 1 => Some(events[0].position),
                    _ => None,
                };
                tracing::error!(projection = name, %error, "projection stalled; retrying with backoff");
                // The cause as status shows it: for a database failure on one event, that
                // event's position and type and the error's kind (never its message).
                let cause = match &error {
                    ProjectionError::Database(e) if events.len() == 1 => format!(
                        "event at {} ({}) could not be applied: {}",
                        events[0].position,
                        events[0].event_type,
                        crate::projection::describe_database_error(e)
                    ),
                    ProjectionError::Database(e) => crate::projection::describe_database_error(e),
                    other => other.to_string(),
                };
                if let Err(e) =
                    checkpoint::record_error(db, name, generation.generation, &cause, position, inner.log.now()).await
                {
                    tracing::warn!(projection = name, error = %e, "could not record the projection error");
                }
                metrics::counter!("dynamoi_projection_errors_total", "projection" => name).increment(1);
                // Apply one event at a time until past the failure, so every good event before
                // the poison one takes effect and the error names the exact event. A held move
                // stays held: it is stored with the next commit.
                limit = 1;
                if sleep_or_shutdown(inner, backoff).await {
                    return Outcome::Shutdown;
                }
                backoff = (backoff * 2).min(inner.config.backoff_max);
            }
        }
    }
}

/// A live worker's checkpoint move over batches its projection reads nothing of, not stored yet.
struct HeldMove {
    /// The last position those batches held.
    to: Position,
    /// How many events they held.
    events: i64,
    /// When the first of them was read.
    since: Instant,
}

impl HeldMove {
    /// Whether storing this move takes the `stored` checkpoint to `wanted`, which it is short of.
    fn covers(&self, wanted: Position, stored: Position) -> bool {
        stored < wanted && wanted <= self.to
    }
}

/// Resolves when a held move falls due: `delay` after its first batch, or when a waiter wants a
/// position it covers.
async fn held_move_due(
    held: Option<&HeldMove>,
    stored: Position,
    store_now: Option<&mut watch::Receiver<Position>>,
    delay: Duration,
) {
    let Some(held) = held else {
        return std::future::pending().await;
    };
    let due = tokio::time::sleep_until((held.since + delay).into());
    let asked = async {
        match store_now {
            // An error: the engine (the sender) is gone; only the delay is left.
            Some(store_now) => {
                if store_now.wait_for(|wanted| held.covers(*wanted, stored)).await.is_err() {
                    std::future::pending::<()>().await
                }
            }
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = due => {}
        _ = asked => {}
    }
}

/// Stores a held move before the worker stops. Best effort: a move not stored only makes the
/// next worker read again events this projection does not read.
async fn store_before_stopping(
    inner: &Inner,
    projection: &dyn Projection,
    generation: &Generation,
    held: Option<HeldMove>,
    state: &str,
    fence: Option<Fence>,
) {
    let Some(held) = held else { return };
    let batch = Batch {
        to: held.to,
        events: held.events,
        fold: &[],
    };
    if let Err(error) = apply_batch(inner, projection, generation, &batch, state, fence).await {
        tracing::warn!(projection = projection.name(), %error, "could not store the checkpoint before stopping");
    }
}

/// The feed after `after`, from the last read another tailing worker made when it can stand for
/// a read of our own, else read now (and kept for the others). It can when it began after
/// every commit this worker has been told of (`commits_seen`), started at or before `after`, and
/// either holds events after `after` or reached the horizon: the feed below a horizon never
/// changes, so its events after `after` are exactly what a read of our own would return first.
async fn read_feed_shared(
    inner: &Inner,
    after: Position,
    limit: usize,
    commits_seen: u64,
) -> Result<FeedRead, eventlog::LogError> {
    // Held while reading, so workers woken by the same commit wait for one read, not make ten.
    let mut shared = inner.shared_read.lock().await;
    if let Some(read) = shared.as_ref() {
        if read.commits_seen >= commits_seen && read.after <= after {
            let start = read.events.partition_point(|event| event.position <= after);
            if start < read.events.len() || read.reached_horizon {
                return Ok(FeedRead {
                    events: read.events.clone(),
                    start,
                    reached_horizon: read.reached_horizon,
                });
            }
        }
    }
    let commits_seen = *inner.log.subscribe().borrow();
    let read = inner.read_feed(after, limit).await?;
    *shared = Some(SharedRead {
        after,
        commits_seen,
        reached_horizon: read.reached_horizon,
        events: read.events.clone(),
    });
    Ok(read)
}

/// What a worker's read of the feed gave it.
struct FeedRead {
    events: Arc<Vec<StoredEvent>>,
    /// The index of the first event after the worker's checkpoint.
    start: usize,
    /// The read stopped at the feed's horizon, not at its limit.
    reached_horizon: bool,
}

/// What one commit of a worker moves its checkpoint to, and what it folds.
struct Batch<'a> {
    to: Position,
    /// The events the move passes over, folded or not.
    events: i64,
    /// The events to fold; none: the move alone, one statement outside any transaction.
    fold: &'a [StoredEvent],
}

impl<'a> Batch<'a> {
    /// A batch that folds every one of `events` (not empty).
    fn of(events: &'a [StoredEvent]) -> Batch<'a> {
        Batch {
            to: events.last().expect("batches are never empty").position,
            events: events.len() as i64,
            fold: events,
        }
    }
}

/// Applies one batch and moves the checkpoint, in one transaction; a batch with nothing to
/// fold moves the checkpoint in one statement.
///
/// Boxed so that callers' futures stay `Send` for every lifetime: sqlx's executor impls on
/// `&mut Connection` otherwise trip the compiler's higher-ranked lifetime check in `spawn`.
fn apply_batch<'a>(
    inner: &'a Inner,
    projection: &'a dyn Projection,
    generation: &'a Generation,
    batch: &'a Batch<'a>,
    state: &'a str,
    fence: Option<Fence>,
) -> Pin<Box<dyn Future<Output = Result<BatchOutcome, ProjectionError>> + Send + 'a>> {
    Box::pin(async move {
        let step = checkpoint::Step {
            from: generation.checkpoint,
            to: batch.to,
            events: batch.events,
            state,
            now: inner.log.now(),
            fence,
        };
        // The checkpoint's move (which also checks the lock): whether the generation is served,
        // or, when refused, why.
        macro_rules! advance {
            ($read_tx:expr) => {{
                match checkpoint::advance(&mut $read_tx, projection.name(), generation.generation, step).await? {
                    Some(served) => Ok(served),
                    None => {
                        // Not taken: tell a lost lock from a checkpoint another runner moved.
                        let lock_lost = match (&mut $read_tx, fence) {
                            (ReadTx::Postgres(conn), Some(fence)) => !fence.is_held(conn).await?,
                            _ => false,
                        };
                        Err(if lock_lost {
                            BatchOutcome::LockLost
                        } else {
                            BatchOutcome::Moved
                        })
                    }
                }
            }};
        }
        macro_rules! in_transaction {
            ($tx:expr, $variant:ident) => {{
                let mut tx = $tx;
                let mut read_tx = ReadTx::$variant(&mut *tx);
                let served = match advance!(read_tx) {
                    Ok(served) => served,
                    Err(outcome) => {
                        tx.rollback().await?;
                        return Ok(outcome);
                    }
                };
                let target = Target {
                    served,
                    ..generation.target()
                };
                projection.apply(&mut read_tx, &target, batch.fold).await?;
                tx.commit().await?;
            }};
        }
        macro_rules! alone {
            ($pool:expr, $variant:ident) => {{
                let mut connection = $pool.acquire().await?;
                let mut read_tx = ReadTx::$variant(&mut *connection);
                if let Err(outcome) = advance!(read_tx) {
                    return Ok(outcome);
                }
            }};
        }
        match (inner.log.db(), batch.fold.is_empty()) {
            // The lock is checked by the checkpoint's move, the transaction's first statement.
            (Db::Postgres(pool), false) => in_transaction!(pool.begin().await?, Postgres),
            // IMMEDIATE: take the write lock up front, so the transaction never fails half-way on
            // a lock upgrade.
            (Db::Sqlite(pool), false) => in_transaction!(pool.begin_with("BEGIN IMMEDIATE").await?, Sqlite),
            (Db::Postgres(pool), true) => alone!(pool, Postgres),
            (Db::Sqlite(pool), true) => alone!(pool, Sqlite),
        }
        Ok(BatchOutcome::Applied)
    })
}

/// A PostgreSQL session-level advisory lock, held on a connection taken out of the pool (so
/// that if we die, closing the connection releases it). SQLite has one process and no lock.
struct AdvisoryLock {
    connection: Option<sqlx::PgConnection>,
    key: i64,
    held: bool,
    /// The backend pid of the session holding the lock.
    pid: i32,
}

impl AdvisoryLock {
    /// `Ok(None)` on SQLite; otherwise whether the lock was free and is now ours.
    async fn try_acquire(db: &Db, name: &str) -> Result<Option<AdvisoryLock>, ProjectionError> {
        let Db::Postgres(pool) = db else { return Ok(None) };
        let key = lock_key(name);
        let mut connection = pool.acquire().await?.detach();
        let (held, pid): (bool, i32) = sqlx::query_as("SELECT pg_try_advisory_lock($1), pg_backend_pid()")
            .bind(key)
            .fetch_one(&mut connection)
            .await?;
        Ok(Some(AdvisoryLock {
            connection: held.then_some(connection),
            key,
            held,
            pid,
        }))
    }

    /// What a batch checks to know this lock is still held.
    fn fence(&self) -> Fence {
        Fence {
            key: self.key,
            pid: self.pid,
        }
    }

    async fn release(mut self) {
        if let Some(mut connection) = self.connection.take() {
            let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(self.key)
                .execute(&mut connection)
                .await;
            let _ = sqlx::Connection::close(connection).await;
        }
    }
}

/// A stable 64-bit key for a lock name (FNV-1a), the same in every process and version.
fn lock_key(name: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in name.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash as i64
}
