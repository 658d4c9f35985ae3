//! A worker: claims queued task instances, runs them under a lease it keeps renewing, and
//! records their outcome. Completions are written in batches, in one transaction each, which
//! also queues the downstream tasks that became ready, so a chain moves without waiting for
//! the scheduler.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use drover_store::{
    CHANNEL_QUEUE, ClaimRequest, ClaimedTask, Completion, Listener, LogLine, Outcome, Store,
};
use tokio::sync::{Notify, mpsc, watch};

use crate::EngineError;
use crate::catalog::DagCache;
use crate::context::render_context;
use crate::runner::{Job, LogMsg, LogSink, Runners};
use drover_spec::environment::Environment;

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub id: String,
    /// Tasks run at once.
    pub concurrency: usize,
    /// How long a claim holds without renewal.
    pub lease: Duration,
    /// How often leases are renewed (about a third of the lease).
    pub heartbeat: Duration,
    /// How often to look for work without a notification.
    pub poll: Duration,
    /// On stop: how long running tasks may take to finish before they are given back.
    pub grace: Duration,
    /// Claim only the task instances of these environments (`None`: of every environment).
    /// A worker bound to PROD runs on PROD's machines with PROD's variables and nothing else.
    pub environments: Option<Vec<String>>,
    /// The OS user command tasks run as (`None`: the worker's own).
    pub task_user: Option<crate::runner::task_user::TaskUser>,
    /// Claim only the task instances of these runs (`None`: of every run). Such a worker
    /// (`drover dags test`'s) takes no revert jobs either.
    pub runs: Option<Vec<uuid::Uuid>>,
}

impl WorkerConfig {
    pub fn new(id: String, concurrency: usize) -> Self {
        Self {
            id,
            concurrency: concurrency.max(1),
            lease: Duration::from_secs(30),
            heartbeat: Duration::from_secs(10),
            poll: Duration::from_secs(2),
            grace: Duration::from_secs(30),
            environments: None,
            task_user: None,
            runs: None,
        }
    }
}

struct Running {
    try_number: i32,
    cancel: watch::Sender<bool>,
}

type RunningSet = Arc<Mutex<HashMap<i64, Running>>>;

#[derive(Debug)]
pub struct Worker {
    store: Store,
    cache: DagCache,
    config: WorkerConfig,
    runners: Arc<Runners>,
    /// The MAP connections, for revert jobs.
    plane: Option<crate::data::DataPlane>,
}

fn lock(set: &RunningSet) -> std::sync::MutexGuard<'_, HashMap<i64, Running>> {
    set.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Worker {
    pub fn new(store: Store, config: WorkerConfig) -> Self {
        let cache = DagCache::new(store.clone());
        let runners = Arc::new(Runners::default().with_task_user(config.task_user.clone()));
        Self {
            store,
            cache,
            config,
            runners,
            plane: None,
        }
    }

    /// Run the data kinds (export, transform, return, sql, check) on `plane`.
    pub fn with_data(mut self, plane: crate::data::DataPlane) -> Self {
        self.runners = Arc::new(
            Runners::with_data(plane.clone()).with_task_user(self.config.task_user.clone()),
        );
        self.plane = Some(plane);
        self
    }

    /// Work until `shutdown` resolves, then stop claiming, let running tasks finish within
    /// the grace period, and give back the rest.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), EngineError> {
        let cfg = self.config.clone();
        let hostname = nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default();
        retry_transient(|| {
            self.store.register_worker(
                &cfg.id,
                &hostname,
                std::process::id(),
                cfg.concurrency as u32,
            )
        })
        .await?;
        tracing::info!(
            worker = %cfg.id,
            concurrency = cfg.concurrency,
            environments = cfg.environments.as_ref().map_or_else(|| "all".to_owned(), |e| e.join(",")),
            "worker started"
        );

        let running: RunningSet = Arc::new(Mutex::new(HashMap::new()));
        let wake = Arc::new(Notify::new());
        let (log_tx, log_rx) = mpsc::unbounded_channel::<LogMsg>();
        let slots = Arc::new(Slots {
            running: running.clone(),
            reserved: AtomicUsize::new(0),
            concurrency: cfg.concurrency,
            stopping: AtomicBool::new(false),
        });
        let (claimed_tx, mut claimed_rx) = mpsc::unbounded_channel::<Claimed>();
        // Log lines and completions, in the order tries send them; each completion claims
        // what its tries free.
        let recorder = tokio::spawn(record(
            self.store.clone(),
            cfg.clone(),
            log_rx,
            slots.clone(),
            claimed_tx,
            wake.clone(),
        ));
        let (hb_stop_tx, hb_stop_rx) = watch::channel(false);
        let heartbeat = tokio::spawn(heartbeat(
            self.store.clone(),
            cfg.clone(),
            running.clone(),
            hb_stop_rx,
        ));
        let env_vars = Arc::new(EnvVars::new(self.store.clone()));
        let (revert_stop, revert_stop_rx) = watch::channel(false);
        let reverts = self
            .plane
            .clone()
            .filter(|_| cfg.runs.is_none())
            .map(|plane| {
                tokio::spawn(crate::data::revert_job::work(
                    plane,
                    cfg.id.clone(),
                    cfg.lease,
                    cfg.poll,
                    cfg.environments.clone(),
                    revert_stop_rx,
                ))
            });

        let mut listener = Listener::new(self.store.pool().clone(), &[CHANNEL_QUEUE]);
        tokio::pin!(shutdown);
        let mut tasks = tokio::task::JoinSet::new();
        let start = |tasks: &mut tokio::task::JoinSet<()>, (task, cancel): Claimed| {
            let exec = Execution {
                store: self.store.clone(),
                cache: self.cache.clone(),
                runners: self.runners.clone(),
                env_vars: env_vars.clone(),
                log_tx: log_tx.clone(),
                running: running.clone(),
            };
            tasks.spawn(exec.run(task, cancel));
        };
        loop {
            while let Ok(claimed) = claimed_rx.try_recv() {
                start(&mut tasks, claimed);
            }
            let free = slots.reserve(0);
            let mut claimed_all = false;
            if free > 0 {
                // The claim may wait for its turn (a bounded wait); a stop asked for meanwhile
                // is honoured at once (the unfinished claim's transaction is rolled back).
                let claim = self.store.claim_of(
                    &cfg.id,
                    free as i64,
                    cfg.lease.as_secs_f64(),
                    cfg.environments.as_deref(),
                    cfg.runs.as_deref(),
                );
                let claimed = tokio::select! {
                    () = &mut shutdown => break,
                    claimed = claim => claimed,
                };
                match claimed {
                    Ok(claimed) => {
                        claimed_all = claimed.len() == free;
                        for claimed in slots.take(claimed, &[], free) {
                            start(&mut tasks, claimed);
                        }
                    }
                    Err(e) => {
                        slots.release(free);
                        tracing::warn!(error = %e, "claim failed; retrying");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
            while tasks.try_join_next().is_some() {}
            if claimed_all {
                continue;
            }
            tokio::select! {
                () = &mut shutdown => break,
                _ = listener.wait(cfg.poll) => {}
                () = wake.notified() => {}
                Some(claimed) = claimed_rx.recv() => start(&mut tasks, claimed),
            }
        }
        slots.stopping.store(true, Ordering::SeqCst);

        // Stopping: no more claims. A revert job in progress is left to its lease (another
        // worker resumes it where it stopped).
        let _ = revert_stop.send(true);
        if let Some(r) = reverts {
            let _ = r.await;
        }
        // Give running tasks the grace period.
        tracing::info!(worker = %cfg.id, running = lock(&running).len(), "stopping: waiting for running tasks");
        let deadline = Instant::now() + cfg.grace;
        while !lock(&running).is_empty() && Instant::now() < deadline {
            // Claimed by a completion as the stop came: they run within the grace too.
            while let Ok(claimed) = claimed_rx.try_recv() {
                start(&mut tasks, claimed);
            }
            tokio::select! {
                () = wake.notified() => {}
                () = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
        let left: Vec<i64> = lock(&running).keys().copied().collect();
        if !left.is_empty() {
            tracing::warn!(worker = %cfg.id, tasks = ?left, "grace period over: stopping and giving back");
            for r in lock(&running).values() {
                let _ = r.cancel.send(true);
            }
        }
        // Tasks stopped by cancellation report "cancelled"; drop those reports and give the
        // task instances back instead, so they don't count as failures.
        while tasks.join_next().await.is_some() {}
        // The recorder ends once every line and completion is through.
        drop(log_tx);
        let _ = recorder.await;
        let _ = hb_stop_tx.send(true);
        let _ = heartbeat.await;
        if !left.is_empty() {
            retry_transient(|| self.store.give_back(&cfg.id, &left)).await?;
        }
        retry_transient(|| self.store.worker_stopped(&cfg.id)).await?;
        tracing::info!(worker = %cfg.id, "worker stopped");
        Ok(())
    }
}

/// Runs one claimed task instance and reports its completion.
struct Execution {
    store: Store,
    cache: DagCache,
    runners: Arc<Runners>,
    env_vars: Arc<EnvVars>,
    log_tx: mpsc::UnboundedSender<LogMsg>,
    running: RunningSet,
}

impl Execution {
    async fn run(self, claimed: ClaimedTask, cancel: watch::Receiver<bool>) {
        let log = LogSink::new(claimed.ti_id, claimed.try_number, self.log_tx.clone());
        log.system(format!(
            "try {} of {}.{} (run {})",
            claimed.try_number, claimed.dag_id, claimed.task_id, claimed.run_id
        ));
        let outcome = self.outcome(&claimed, log, cancel).await;
        let stopped_by_worker =
            matches!(&outcome, Outcome::Failed { error, .. } if error == "cancelled");
        if stopped_by_worker || outcome == Outcome::Recorded {
            // The lease was lost or the worker is stopping: the database already moved on, or
            // the task instance will be given back. Or the try recorded where its task went
            // (a return now waiting for approval gave back its slot and lease). Nothing to
            // record.
            lock(&self.running).remove(&claimed.ti_id);
            let _ = self.log_tx.send(LogMsg::Flush(None));
        } else {
            let _ = self.log_tx.send(LogMsg::Then(Completion {
                ti_id: claimed.ti_id,
                try_number: claimed.try_number,
                outcome,
            }));
        }
    }

    async fn outcome(
        &self,
        claimed: &ClaimedTask,
        log: LogSink,
        cancel: watch::Receiver<bool>,
    ) -> Outcome {
        let dag = match self.cache.get(claimed.version_id).await {
            Ok(d) => d,
            Err(e) => {
                return Outcome::Failed {
                    error: e.to_string(),
                    exit_code: None,
                    retryable: true,
                };
            }
        };
        let Some(task) = dag.task(&claimed.task_id) else {
            return Outcome::Failed {
                error: format!(
                    "task `{}` is not in this version of `{}`",
                    claimed.task_id, claimed.dag_id
                ),
                exit_code: None,
                retryable: false,
            };
        };
        let Some(runner) = self.runners.for_kind(&task.kind) else {
            let message = format!(
                "task kind `{}` cannot run on this worker: it was started without a connection for data tasks",
                task.kind.name()
            );
            log.system(&message);
            return Outcome::Failed {
                error: message,
                exit_code: None,
                retryable: false,
            };
        };
        let (vars, environment) = self.env_vars.get(&claimed.environment).await;
        let mut context = render_context(&dag, claimed, &vars);
        if claimed.has_events
            && let Err(failed) = self.add_events(claimed, &mut context).await
        {
            return failed;
        }
        let timeout = Duration::from_secs(u64::try_from(claimed.timeout_secs).unwrap_or(0).max(1));
        runner
            .run(Job {
                task,
                dag: &dag,
                context,
                timeout,
                log,
                cancel,
                environment,
                limits: dag.limits,
            })
            .await
    }

    /// `{{ event }}`, `{{ events }}` and `{{ trigger }}` of a run that events started.
    async fn add_events(
        &self,
        claimed: &ClaimedTask,
        context: &mut drover_spec::template::RenderContext,
    ) -> Result<(), Outcome> {
        if let Err(e) = crate::data::events_dataset::add_events(
            &self.env_vars.store,
            claimed.run_id,
            &claimed.environment,
            context,
        )
        .await
        {
            return Err(Outcome::Failed {
                error: format!("reading the run's events: {e}"),
                exit_code: None,
                retryable: true,
            });
        }
        match crate::dataset_trigger::trigger_value(&self.store, claimed).await {
            Ok(trigger) => context.trigger = trigger,
            Err(e) => {
                return Err(Outcome::Failed {
                    error: format!("could not read what started this run: {e}"),
                    exit_code: None,
                    retryable: true,
                });
            }
        }
        Ok(())
    }
}

type EnvEntry = (serde_json::Value, Option<Arc<Environment>>);

/// Environments (their variables for templates, their files for the data kinds), refreshed
/// from the store now and then.
struct EnvVars {
    store: Store,
    cached: tokio::sync::Mutex<(Instant, HashMap<String, EnvEntry>)>,
}

impl EnvVars {
    fn new(store: Store) -> Self {
        Self {
            store,
            cached: tokio::sync::Mutex::new((
                Instant::now() - Duration::from_secs(3600),
                HashMap::new(),
            )),
        }
    }

    async fn get(&self, env: &str) -> EnvEntry {
        let mut c = self.cached.lock().await;
        if (c.0.elapsed() > Duration::from_secs(30) || !c.1.contains_key(env))
            && let Ok(envs) = self.store.environments().await
        {
            c.1 = envs
                .into_iter()
                .map(|e| {
                    let vars = e.spec.get("variables").cloned().unwrap_or_default();
                    let parsed = serde_json::from_value::<Environment>(e.spec)
                        .ok()
                        .map(Arc::new);
                    (e.name, (vars, parsed))
                })
                .collect();
            c.0 = Instant::now();
        }
        c.1.get(env).cloned().unwrap_or_default()
    }
}

/// Renew leases; cancel tries whose lease was taken away; and if the database stays out of
/// reach for most of a lease, stop every try (the system will retry them elsewhere), so no
/// task ever runs twice at once.
async fn heartbeat(
    store: Store,
    cfg: WorkerConfig,
    running: RunningSet,
    mut stop: watch::Receiver<bool>,
) {
    let mut last_ok = Instant::now();
    loop {
        tokio::select! {
            () = tokio::time::sleep(cfg.heartbeat) => {}
            _ = stop.changed() => return,
        }
        let held: Vec<i64> = lock(&running).keys().copied().collect();
        let renewed = if held.is_empty() {
            store.worker_heartbeat(&cfg.id).await.map(|()| Vec::new())
        } else {
            store
                .renew_leases(&cfg.id, &held, cfg.lease.as_secs_f64())
                .await
        };
        match renewed {
            Ok(still_held) => {
                last_ok = Instant::now();
                let set = lock(&running);
                for id in held.iter().filter(|id| !still_held.contains(id)) {
                    if let Some(r) = set.get(id) {
                        tracing::warn!(task_instance = id, "lease lost: stopping the try");
                        let _ = r.cancel.send(true);
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot renew leases");
                if last_ok.elapsed() + cfg.heartbeat >= cfg.lease {
                    tracing::error!(
                        "database out of reach for most of a lease: stopping every try"
                    );
                    for r in lock(&running).values() {
                        let _ = r.cancel.send(true);
                    }
                }
            }
        }
    }
}

/// How long log lines of a running try are held to be written together.
const LOG_LINGER: Duration = Duration::from_millis(100);

/// Finished tries and the log lines written with them.
#[derive(Debug, Default)]
struct Finished {
    lines: Vec<LogLine>,
    completions: Vec<Completion>,
}

/// Write what tries send, in order, one write at a time: log lines in batches (100 ms after
/// the first line held, or 1,000 lines), and completions with every line held before them, in
/// the completion's transaction, so a try's log is whole the moment it is recorded as
/// finished, at the cost of a single commit. What arrives while a write is under way goes
/// in the next one.
async fn record(
    store: Store,
    cfg: WorkerConfig,
    mut rx: mpsc::UnboundedReceiver<LogMsg>,
    slots: Arc<Slots>,
    claimed_tx: mpsc::UnboundedSender<Claimed>,
    wake: Arc<Notify>,
) {
    let mut held: Vec<LogLine> = Vec::new();
    let mut since: Option<tokio::time::Instant> = None;
    loop {
        let msg = match since {
            None => rx.recv().await,
            Some(at) => match tokio::time::timeout_at(at + LOG_LINGER, rx.recv()).await {
                Ok(msg) => msg,
                Err(_) => {
                    append(&store, &held).await;
                    held.clear();
                    since = None;
                    continue;
                }
            },
        };
        match msg {
            Some(LogMsg::Line(line)) => {
                since.get_or_insert_with(tokio::time::Instant::now);
                held.push(line);
                if held.len() >= 1000 {
                    append(&store, &held).await;
                    held.clear();
                    since = None;
                }
            }
            Some(LogMsg::Flush(done)) => {
                append(&store, &held).await;
                held.clear();
                since = None;
                if let Some(done) = done {
                    let _ = done.send(());
                }
            }
            Some(LogMsg::Then(first)) => {
                let mut flushed = Vec::new();
                let mut finished = Finished {
                    lines: std::mem::take(&mut held),
                    completions: vec![first],
                };
                since = None;
                // Whatever else is ready goes along.
                while finished.lines.len() < 1000 && finished.completions.len() < 500 {
                    match rx.try_recv() {
                        Ok(LogMsg::Line(line)) => finished.lines.push(line),
                        Ok(LogMsg::Then(c)) => finished.completions.push(c),
                        // Answered once the completions and their lines are written.
                        Ok(LogMsg::Flush(done)) => flushed.extend(done),
                        Err(_) => break,
                    }
                }
                let all_claimed = complete(&store, &cfg, finished, &slots, &claimed_tx).await;
                for done in flushed {
                    let _ = done.send(());
                }
                // The worker's loop claims what this did not (or, stopping, counts down).
                if !all_claimed || slots.stopping.load(Ordering::SeqCst) {
                    wake.notify_one();
                }
            }
            None => {
                append(&store, &held).await;
                return;
            }
        }
    }
}

/// Record `finished` in one transaction, claiming in it as many task instances as it frees
/// slots (none once the worker is stopping); the claimed ones go to the worker's loop to
/// start. A transient database error keeps the batch and retries. Lines the database refuses
/// for good (their task instance deleted) are written apart, as a batch of lines alone
/// would be, so that they cannot hold completions back. Returns whether every freed slot
/// was filled.
async fn complete(
    store: &Store,
    cfg: &WorkerConfig,
    mut finished: Finished,
    slots: &Slots,
    claimed_tx: &mpsc::UnboundedSender<Claimed>,
) -> bool {
    let mut backoff = Duration::from_millis(50);
    loop {
        let free = if slots.stopping.load(Ordering::SeqCst) {
            0
        } else {
            slots.reserve(slots.finishing(&finished.completions))
        };
        let request = (free > 0).then_some(ClaimRequest {
            limit: free as i64,
            lease_secs: cfg.lease.as_secs_f64(),
            environments: cfg.environments.as_deref(),
            runs: cfg.runs.as_deref(),
        });
        match store
            .complete_and_claim(&cfg.id, &finished.lines, &finished.completions, request)
            .await
        {
            Ok((result, claimed)) => {
                if !result.lost.is_empty() {
                    tracing::warn!(tasks = ?result.lost, "finished tries whose lease was lost were not recorded");
                }
                let all = claimed.len() == free;
                for claimed in slots.take(claimed, &finished.completions, free) {
                    // The loop is gone only once the worker stopped and every task ended.
                    let _ = claimed_tx.send(claimed);
                }
                return all;
            }
            Err(e) => {
                slots.release(free);
                tracing::warn!(error = %e, pending = finished.completions.len(), "cannot record completions; retrying");
                if !e.is_transient() && !finished.lines.is_empty() {
                    append(store, &finished.lines).await;
                    finished.lines.clear();
                    continue;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// A claimed task instance and the receiver of its cancellation.
type Claimed = (ClaimedTask, watch::Receiver<bool>);

/// The worker's slots: the tries running and the slots reserved by a claim under way (the
/// loop's, or a completion's), so that two claims at once never take more than is free.
struct Slots {
    running: RunningSet,
    reserved: AtomicUsize,
    concurrency: usize,
    stopping: AtomicBool,
}

impl Slots {
    /// Reserve every free slot, counting `finishing` running tries as free; returns how
    /// many were reserved.
    fn reserve(&self, finishing: usize) -> usize {
        let set = lock(&self.running);
        let busy = set.len().saturating_sub(finishing) + self.reserved.load(Ordering::SeqCst);
        let free = self.concurrency.saturating_sub(busy);
        self.reserved.fetch_add(free, Ordering::SeqCst);
        free
    }

    fn release(&self, reserved: usize) {
        self.reserved.fetch_sub(reserved, Ordering::SeqCst);
    }

    /// How many of `completions` are tries this worker still counts as running.
    fn finishing(&self, completions: &[Completion]) -> usize {
        let set = lock(&self.running);
        completions
            .iter()
            .filter(|c| {
                set.get(&c.ti_id)
                    .is_some_and(|r| r.try_number == c.try_number)
            })
            .count()
    }

    /// After a claim that reserved `reserved` slots: the `completions` recorded with it leave
    /// the running set, the `claimed` tries enter it, and the reservation ends, at once.
    fn take(
        &self,
        claimed: Vec<ClaimedTask>,
        completions: &[Completion],
        reserved: usize,
    ) -> Vec<Claimed> {
        let mut set = lock(&self.running);
        for c in completions {
            if set
                .get(&c.ti_id)
                .is_some_and(|r| r.try_number == c.try_number)
            {
                set.remove(&c.ti_id);
            }
        }
        let started = claimed
            .into_iter()
            .map(|task| {
                let (cancel_tx, cancel_rx) = watch::channel(false);
                set.insert(
                    task.ti_id,
                    Running {
                        try_number: task.try_number,
                        cancel: cancel_tx,
                    },
                );
                (task, cancel_rx)
            })
            .collect();
        self.reserved.fetch_sub(reserved, Ordering::SeqCst);
        started
    }
}

/// Append a batch of lines, retrying while the database is unavailable.
async fn append(store: &Store, batch: &[LogLine]) {
    if batch.is_empty() {
        return;
    }
    let mut attempts = 0;
    loop {
        match store.append_logs(batch).await {
            Ok(()) => return,
            Err(e) if attempts < 20 && e.is_transient() => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => {
                tracing::error!(error = %e, lines = batch.len(), "task log lines lost");
                return;
            }
        }
    }
}

/// Retry an operation while it fails transiently (database restarting), up to about a minute.
pub(crate) async fn retry_transient<T, F, Fut>(mut op: F) -> Result<T, EngineError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, drover_store::StoreError>>,
{
    let mut wait = Duration::from_millis(100);
    let started = Instant::now();
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) if e.is_transient() && started.elapsed() < Duration::from_secs(60) => {
                tracing::warn!(error = %e, "database unavailable; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
            Err(e) => return Err(e.into()),
        }
    }
}
