//! The scheduler: creates due runs, starts queued runs within `max_active_runs`, decides
//! pending task instances by trigger rule, re-queues retries, recovers tasks of lost workers,
//! fails tasks past their timeout, finishes runs and opens episodes of stale data. Every step
//! is an idempotent, guarded statement, so several schedulers can run at once; wake-ups come
//! by LISTEN/NOTIFY with polling as the safety net.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use drover_store::{CHANNEL_RUNS, Listener, NewRun, RunType, Store};
use uuid::Uuid;

use crate::EngineError;
use crate::catalog::DagCache;
use crate::git_source::DagSource;
use crate::plan::plan_runs;
use crate::task_specs::task_instance_specs;

#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// Longest sleep between passes.
    pub tick: Duration,
    /// Where DAGs and environments come from, and how often to re-read them.
    pub source: Option<DagSource>,
    pub sync_every: Duration,
    /// Most scheduled runs created per DAG and environment in one pass (catchup is streamed).
    pub max_new_runs: usize,
    /// Extra time past a task's timeout before the scheduler fails it itself.
    pub timeout_grace: Duration,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            tick: Duration::from_secs(1),
            source: None,
            sync_every: Duration::from_secs(10),
            max_new_runs: 16,
            timeout_grace: Duration::from_secs(30),
        }
    }
}

#[derive(Debug)]
pub struct Scheduler {
    store: Store,
    cache: DagCache,
    config: SchedulerConfig,
    data: Option<crate::data::DataPlane>,
    /// Whether the last pass found maintenance on (to log only the changes).
    in_maintenance: AtomicBool,
    notifier: Option<crate::Notifier>,
}

/// How long after a batch's `batch_until` (by the database's clock) the scheduler wakes to
/// start it: its start query compares with the database's `now()`.
const BATCH_DUE_MARGIN: Duration = Duration::from_millis(5);
/// How often staged datasets past their retention are looked for.
const RETENTION_EVERY: Duration = Duration::from_secs(60);
/// How often new events are looked for and due notifications sent.
const NOTIFY_EVERY: Duration = Duration::from_secs(2);

impl Scheduler {
    pub fn new(store: Store, config: SchedulerConfig) -> Self {
        let cache = DagCache::new(store.clone());
        Self {
            store,
            cache,
            config,
            data: None,
            in_maintenance: AtomicBool::new(false),
            notifier: None,
        }
    }

    /// Also send the environments' notifications.
    #[must_use]
    pub fn with_notifier(mut self, notifier: crate::Notifier) -> Self {
        self.notifier = Some(notifier);
        self
    }

    /// Also drop staged datasets past their environment's retention.
    pub fn with_data(mut self, plane: crate::data::DataPlane) -> Self {
        self.data = Some(plane);
        self
    }

    /// One pass: with no `dirty` runs a full sweep (due runs, retries, lost and overdue tasks,
    /// every running run); with some, only what a notification can have changed: queued runs
    /// to start and those runs to advance. Public for `drover scheduler --once`.
    ///
    /// In maintenance it creates and starts no run (workers claim no task either); the rest
    /// of its bookkeeping goes on, and when maintenance ends each DAG catches up as its
    /// `catchup` says.
    pub async fn pass(&self, dirty: &[Uuid]) -> Result<(), EngineError> {
        // Read at each full sweep (every tick); the passes between reuse what it found.
        if dirty.is_empty() {
            let maintenance = self.store.maintenance().await?;
            let was = self
                .in_maintenance
                .swap(maintenance.is_some(), Ordering::Relaxed);
            match &maintenance {
                Some(m) if !was => {
                    tracing::warn!(message = %m.message, until = ?m.until, "maintenance: no run is created or started");
                }
                None if was => tracing::info!("maintenance over: scheduling resumes"),
                _ => {}
            }
        }
        let open = !self.in_maintenance.load(Ordering::Relaxed);
        if !dirty.is_empty() {
            // Read again before starting anything: an event accepted just after maintenance
            // began must wait for its end, not for this scheduler's next sweep.
            if open && self.store.maintenance().await?.is_none() {
                self.start_queued_runs().await?;
            }
            // A run that finished may leave data stale that its success would have refreshed.
            if self.evaluate(dirty).await? > 0 {
                self.settle_freshness().await?;
            }
            return Ok(());
        }
        if open {
            self.create_due_runs().await?;
            self.start_queued_runs().await?;
        }
        self.store.queue_due_retries().await?;
        let reaped = self.store.reap_expired_leases().await?;
        for (ti, run, state) in &reaped {
            tracing::warn!(task_instance = ti, %run, %state, "task lost with its worker");
        }
        let overdue = self
            .store
            .fail_overdue(self.config.timeout_grace.as_secs_f64())
            .await?;
        if overdue > 0 {
            tracing::warn!(count = overdue, "tasks failed past their timeout");
        }
        // In maintenance nobody can approve: no request expires meanwhile.
        if open {
            for a in self.store.expire_approvals().await? {
                tracing::warn!(run = %a.run_id, dag = %a.dag_id, env = %a.environment,
                    task = %a.task_id, "return not approved in time: failed");
            }
        }
        let runs = self.store.running_run_ids().await?;
        self.evaluate(&runs).await?;
        for miss in self.store.settle_deadlines().await? {
            tracing::warn!(run = %miss.run_id, dag = %miss.dag_id, env = %miss.environment,
                task = %miss.task_id, deadline = %miss.deadline_at, "deadline missed");
        }
        // Data goes stale with no run at all, paused DAGs' too, and in maintenance.
        self.settle_freshness().await
    }

    /// Advance `runs`; returns how many finished.
    async fn evaluate(&self, runs: &[Uuid]) -> Result<usize, EngineError> {
        let mut count = 0;
        for chunk in runs.chunks(500) {
            let (_, finished) = self.store.evaluate_runs(chunk).await?;
            count += finished.len();
            for (run, state) in finished {
                tracing::info!(%run, %state, "run finished");
            }
        }
        Ok(count)
    }

    /// Open an episode for data that went stale, end those nothing asks for any more (a
    /// refresh ends its episode itself).
    async fn settle_freshness(&self) -> Result<(), EngineError> {
        let changes = crate::freshness::settle(&self.store, &self.cache).await?;
        for e in &changes.opened {
            tracing::warn!(dag = %e.dag_id, env = %e.environment, task = %e.task_id,
                stale_since = %e.stale_since, max_age_secs = e.max_age_secs, "data is stale");
        }
        for e in &changes.ended {
            tracing::info!(dag = %e.dag_id, env = %e.environment, task = %e.task_id,
                "stale data no longer asked for: its episode ended");
        }
        Ok(())
    }

    /// Run until `shutdown` resolves.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), EngineError> {
        let mut listener = Listener::new(self.store.pool().clone(), &[CHANNEL_RUNS]);
        let mut last_sync: Option<Instant> = None;
        let mut last_full = Instant::now();
        let mut backoff = Duration::from_millis(200);
        let mut dirty: Vec<Uuid> = Vec::new();
        // Woken for a gathering batch's `batch_until` rather than by a notification.
        let mut batch_due = false;
        let mut known_problems = std::collections::HashSet::<String>::new();
        let mut last_retention: Option<Instant> = None;
        let mut last_notify: Option<Instant> = None;
        let mut syncing: Option<tokio::task::JoinHandle<Result<crate::SyncReport, EngineError>>> =
            None;
        tokio::pin!(shutdown);
        tracing::info!("scheduler started");
        loop {
            if let Some(plane) = &self.data
                && last_retention.is_none_or(|t| t.elapsed() >= RETENTION_EVERY)
            {
                last_retention = Some(Instant::now());
                match crate::data::drop_expired_datasets(plane, 100).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(datasets = n, "dropped datasets past their retention"),
                    Err(e) => tracing::warn!(error = %e, "dropping expired datasets failed"),
                }
            }
            if let Some(notifier) = &self.notifier
                && last_notify.is_none_or(|t| t.elapsed() >= NOTIFY_EVERY)
            {
                last_notify = Some(Instant::now());
                if let Err(e) = notifier.pass().await {
                    tracing::warn!(error = %e, "notifications pass failed");
                }
            }
            // The sync (fetch, read, validate, record) runs in a task of its own: a dead remote
            // or a file that is slow to validate never holds up runs, leases or promotions.
            // The scheduler reads what it recorded at its next passes.
            if let Some(task) = &syncing
                && task.is_finished()
                && let Some(task) = syncing.take()
            {
                last_sync = Some(Instant::now());
                match task.await {
                    Ok(Ok(r)) => {
                        // Say each problem once, not at every sync.
                        let problems: std::collections::HashSet<String> =
                            r.problems.iter().map(ToString::to_string).collect();
                        for p in problems.iter().filter(|p| !known_problems.contains(*p)) {
                            tracing::warn!(problem = %p, "file skipped: its DAG keeps its last good version");
                        }
                        known_problems = problems;
                        if r.changed > 0 {
                            tracing::info!(dags = r.dags, changed = r.changed, "DAGs synced");
                        }
                    }
                    Ok(Err(e)) => tracing::warn!(error = %e, "DAG sync failed"),
                    Err(e) => tracing::warn!(error = %e, "DAG sync stopped"),
                }
            }
            if let Some(source) = &self.config.source
                && syncing.is_none()
                && last_sync.is_none_or(|t| t.elapsed() >= self.config.sync_every)
            {
                let (source, store) = (source.clone(), self.store.clone());
                syncing = Some(tokio::spawn(async move { source.sync(&store).await }));
            }
            // A full sweep every tick, or only the runs we were told about.
            let full = last_full.elapsed() >= self.config.tick;
            let targets = if full {
                Vec::new()
            } else {
                std::mem::take(&mut dirty)
            };
            let passed = if batch_due && !full && targets.is_empty() {
                self.start_due_batches().await
            } else {
                self.pass(&targets).await
            };
            batch_due = false;
            match passed {
                Ok(()) => {
                    backoff = Duration::from_millis(200);
                    if full {
                        last_full = Instant::now();
                        dirty.clear();
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "scheduler pass failed; retrying");
                    tokio::select! {
                        () = &mut shutdown => break,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            }
            let mut wait = self
                .config
                .tick
                .saturating_sub(last_full.elapsed())
                .max(Duration::from_millis(5));
            // A batch is due at its `batch_until`, not at the next tick.
            let mut wakes_for_batch = false;
            match self.store.next_batch_due().await {
                Ok(Some(due)) if due + BATCH_DUE_MARGIN < wait => {
                    wait = due + BATCH_DUE_MARGIN;
                    wakes_for_batch = true;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "could not read when the next batch is due"),
            }
            tokio::select! {
                () = &mut shutdown => break,
                payload = listener.wait(wait) => {
                    if payload.is_none() && wakes_for_batch {
                        batch_due = true;
                    }
                    if let Some(p) = payload {
                        collect_dirty(&p, &mut dirty, &mut last_full, self.config.tick);
                        // Take what else arrived at once, to work in batches.
                        while let Some(p) = listener.wait(Duration::from_millis(1)).await {
                            collect_dirty(&p, &mut dirty, &mut last_full, self.config.tick);
                        }
                    }
                }
            }
        }
        if let Some(task) = syncing {
            task.abort();
        }
        tracing::info!("scheduler stopped");
        Ok(())
    }

    /// Start the batches whose `batch_until` passed (none in maintenance).
    async fn start_due_batches(&self) -> Result<(), EngineError> {
        if self.in_maintenance.load(Ordering::Relaxed) {
            return Ok(());
        }
        self.start_queued_runs().await
    }

    /// Create the scheduled runs that are due, for every active, unpaused DAG of every
    /// environment whose schedules are on.
    async fn create_due_runs(&self) -> Result<(), EngineError> {
        let now = Utc::now();
        let envs = self.store.environments().await?;
        let enabled: HashMap<String, bool> = envs
            .iter()
            .map(|e| {
                (
                    e.name.clone(),
                    e.spec
                        .get("schedules_enabled")
                        .and_then(serde_json::Value::as_bool)
                        .unwrap_or(true),
                )
            })
            .collect();
        let last_ends: HashMap<(String, String), chrono::DateTime<Utc>> = self
            .store
            .last_scheduled_ends()
            .await?
            .into_iter()
            .map(|(d, e, t)| ((d, e), t))
            .collect();
        for de in self.store.dag_envs(None).await? {
            if de.paused || !enabled.get(&de.environment).copied().unwrap_or(false) {
                continue;
            }
            let dag = match self.cache.get(de.version_id).await {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot load DAG version");
                    continue;
                }
            };
            let last_end = last_ends
                .get(&(de.dag_id.clone(), de.environment.clone()))
                .copied();
            for planned in plan_runs(&dag, last_end, now, self.config.max_new_runs) {
                let created = self
                    .store
                    .insert_run(&NewRun {
                        dag_id: de.dag_id.clone(),
                        environment: de.environment.clone(),
                        version_id: de.version_id,
                        run_type: RunType::Scheduled,
                        logical_date: planned.logical_date,
                        interval_start: planned.interval.start,
                        interval_end: planned.interval.end,
                        params: serde_json::json!({}),
                        triggered_by: None,
                        deadline_at: dag
                            .deadline
                            .map(|d| d.due(planned.interval.end, dag.timezone)),
                        preview: false,
                    })
                    .await?;
                if let Some(id) = created {
                    tracing::info!(run = %id, dag = %de.dag_id, env = %de.environment, logical_date = %planned.logical_date, "scheduled run created");
                }
            }
        }
        Ok(())
    }

    /// Start queued runs while their DAG has room under `max_active_runs`.
    async fn start_queued_runs(&self) -> Result<(), EngineError> {
        let waiting = self.store.runs_waiting_to_start().await?;
        if waiting.is_empty() {
            return Ok(());
        }
        // Environments' own caps on running runs (`limits.max_active_runs`).
        let env_caps: HashMap<String, i64> = self
            .store
            .environments()
            .await?
            .into_iter()
            .filter_map(|e| {
                let spec: drover_spec::environment::Environment =
                    serde_json::from_value(e.spec).ok()?;
                Some((e.name, i64::from(spec.limits.max_active_runs?)))
            })
            .collect();
        for (dag_id, environment, running) in waiting {
            let current = match self.store.dag_env(&dag_id, &environment).await {
                Ok(de) => self.cache.get(de.version_id).await.ok(),
                Err(_) => None,
            };
            let max_active = current.as_ref().map_or(1, |d| i64::from(d.max_active_runs));
            if running >= max_active {
                continue;
            }
            for version_id in self
                .store
                .queued_run_versions(&dag_id, &environment)
                .await?
            {
                if let Err(e) = self.cache.get(version_id).await {
                    tracing::warn!(error = %e, "queued run's DAG version cannot be loaded");
                }
            }
            let cache = &self.cache;
            let started = self
                .store
                .start_queued_runs(
                    &dag_id,
                    &environment,
                    max_active,
                    env_caps.get(&environment).copied(),
                    |version, scheduled_at| {
                        cache
                            .get_cached(version)
                            .map(|dag| task_instance_specs(&dag, scheduled_at))
                    },
                )
                .await?;
            for run in started {
                tracing::info!(%run, dag = %dag_id, env = %environment, "run started");
            }
        }
        Ok(())
    }
}

fn collect_dirty(payload: &str, dirty: &mut Vec<Uuid>, last_full: &mut Instant, tick: Duration) {
    if payload == "*" || payload.is_empty() {
        // Something changed that we can't pin down: sweep everything now.
        *last_full = Instant::now()
            .checked_sub(tick)
            .unwrap_or_else(Instant::now);
        return;
    }
    for id in payload.split(',') {
        if let Ok(id) = Uuid::parse_str(id)
            && !dirty.contains(&id)
        {
            dirty.push(id);
        }
    }
}
