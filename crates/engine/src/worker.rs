//! A worker: claims queued task instances, runs them under a lease it keeps renewing, and
//! records their outcome. Completions are written in batches, in one transaction each, which
//! also queues the downstream tasks that became ready, so a chain moves without waiting for
//! the scheduler.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use drover_store::{CHANNEL_QUEUE, ClaimedTask, Completion, Listener, LogLine, Outcome, Store};
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
        let (done_tx, done_rx) = mpsc::unbounded_channel::<Completion>();
        // Completions go through the log writer, behind their tries' lines.
        let log_writer = tokio::spawn(write_logs(self.store.clone(), log_rx, done_tx));
        let completer = tokio::spawn(complete(
            self.store.clone(),
            cfg.id.clone(),
            done_rx,
            running.clone(),
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
        loop {
            let free = cfg.concurrency.saturating_sub(lock(&running).len());
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
                        for task in claimed {
                            let (cancel_tx, cancel_rx) = watch::channel(false);
                            lock(&running).insert(
                                task.ti_id,
                                Running {
                                    try_number: task.try_number,
                                    cancel: cancel_tx,
                                },
                            );
                            let exec = Execution {
                                store: self.store.clone(),
                                cache: self.cache.clone(),
                                runners: self.runners.clone(),
                                env_vars: env_vars.clone(),
                                log_tx: log_tx.clone(),
                                running: running.clone(),
                            };
                            tasks.spawn(exec.run(task, cancel_rx));
                        }
                    }
                    Err(e) => {
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
            }
        }

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
        // The writer ends once every line and completion is through; then the completer.
        drop(log_tx);
        let _ = log_writer.await;
        let _ = hb_stop_tx.send(true);
        let _ = heartbeat.await;
        let _ = completer.await;
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
        if let Err(e) = crate::data::events_dataset::add_events(
            &self.env_vars.store,
            claimed.run_id,
            &claimed.environment,
            &mut context,
        )
        .await
        {
            return Outcome::Failed {
                error: format!("reading the run's events: {e}"),
                exit_code: None,
                retryable: true,
            };
        }
        match crate::dataset_trigger::trigger_value(&self.store, claimed).await {
            Ok(trigger) => context.trigger = trigger,
            Err(e) => {
                return Outcome::Failed {
                    error: format!("could not read what started this run: {e}"),
                    exit_code: None,
                    retryable: true,
                };
            }
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

/// Write completions in batches: everything that finished since the last write goes in one
/// transaction. A transient database error keeps the batch and retries.
async fn complete(
    store: Store,
    worker_id: String,
    mut rx: mpsc::UnboundedReceiver<Completion>,
    running: RunningSet,
    wake: Arc<Notify>,
) {
    let mut batch: Vec<Completion> = Vec::new();
    let mut backoff = Duration::from_millis(50);
    loop {
        if batch.is_empty() {
            match rx.recv().await {
                Some(c) => batch.push(c),
                None => return,
            }
        }
        while batch.len() < 500 {
            match rx.try_recv() {
                Ok(c) => batch.push(c),
                Err(_) => break,
            }
        }
        match store.complete(&worker_id, &batch).await {
            Ok(result) => {
                if !result.lost.is_empty() {
                    tracing::warn!(tasks = ?result.lost, "finished tries whose lease was lost were not recorded");
                }
                {
                    let mut set = lock(&running);
                    for c in &batch {
                        if set
                            .get(&c.ti_id)
                            .is_some_and(|r| r.try_number == c.try_number)
                        {
                            set.remove(&c.ti_id);
                        }
                    }
                }
                batch.clear();
                backoff = Duration::from_millis(50);
                wake.notify_one();
            }
            Err(e) => {
                tracing::warn!(error = %e, pending = batch.len(), "cannot record completions; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
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

/// Write log lines in batches (every 100 ms or 1,000 lines), and pass each completion on to
/// the completer once the lines sent before it are written.
async fn write_logs(
    store: Store,
    mut rx: mpsc::UnboundedReceiver<LogMsg>,
    done_tx: mpsc::UnboundedSender<Completion>,
) {
    let mut batch = Vec::new();
    let mut then = Vec::new();
    loop {
        let first = tokio::time::timeout(Duration::from_millis(100), rx.recv()).await;
        match first {
            Ok(Some(msg)) => sort(msg, &mut batch, &mut then),
            Ok(None) if batch.is_empty() && then.is_empty() => return,
            Ok(None) | Err(_) => {}
        }
        while batch.len() < 1000 {
            match rx.try_recv() {
                Ok(msg) => sort(msg, &mut batch, &mut then),
                Err(_) => break,
            }
        }
        if !batch.is_empty() {
            append(&store, &batch).await;
            batch.clear();
        }
        for c in then.drain(..) {
            let _ = done_tx.send(c);
        }
    }
}

fn sort(msg: LogMsg, lines: &mut Vec<LogLine>, then: &mut Vec<Completion>) {
    match msg {
        LogMsg::Line(l) => lines.push(l),
        LogMsg::Then(c) => then.push(c),
    }
}

/// Append a batch of lines, retrying while the database is unavailable.
async fn append(store: &Store, batch: &[LogLine]) {
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
