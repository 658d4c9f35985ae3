//! What people do to Drover — trigger, pause, clear, mark, revert, promote, approve, roll
//! back — each checked against the actor's role and recorded in the audit trail. The web UI,
//! the JSON API and the CLI all go through here, so the same rules hold everywhere.

mod access;
mod approval;
mod events;
mod hooks;
mod rerun;
mod trigger;

use std::sync::Arc;

use drover_spec::environment::Environment;
use drover_store::{RunState, Store, StoreError};
use uuid::Uuid;

pub use access::{Action, Actor, parse_role, role_name};
pub use approval::same_person;
pub use events::{
    EventList, EventQuery, EventView, MAX_EVENTS_LISTED, parse_moment, payload_hidden,
};
pub use hooks::{HOOK_RETRY_AFTER_SECS, Held, HookAccepted, HookError, HookRequest};
pub use rerun::downstream_of;
pub use trigger::{ManualInterval, TriggerRequest, manual_interval, parse_instant, parse_params};

use crate::data::DataPlane;
use crate::promotion::{self, PromotionOutcome};
use crate::{DagCache, EngineError, GitSource};

/// Why an operation did not happen, by the answer it deserves.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    /// The actor's role does not allow it.
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// The thing is not in a state that allows it (already paused, still running, …).
    #[error("{0}")]
    Conflict(String),
    /// The request itself is wrong (bad parameter, refused promotion gate).
    #[error("{0}")]
    Invalid(String),
    /// This Drover process cannot do it (no DAG repository, no MAP connection).
    #[error("{0}")]
    Unavailable(String),
    /// Drover is in maintenance: nothing changes until it ends.
    #[error("Drover is in maintenance: {}{}", .0.message, .0.until.map(|u| format!(" (until {})", u.format("%Y-%m-%d %H:%M UTC"))).unwrap_or_default())]
    Maintenance(drover_store::Maintenance),
    #[error(transparent)]
    Engine(EngineError),
}

impl From<EngineError> for OpError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Store(s) => s.into(),
            EngineError::Invalid(m) => OpError::Invalid(m),
            other => OpError::Engine(other),
        }
    }
}

impl From<StoreError> for OpError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(m) => OpError::NotFound(m),
            StoreError::Conflict(m) => OpError::Conflict(m),
            StoreError::Invalid(m) => OpError::Invalid(m),
            other => OpError::Engine(EngineError::Store(other)),
        }
    }
}

/// How two environments' commits differ.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EnvironmentDiff {
    pub from_commit: String,
    pub to_commit: String,
    /// (path, "added" | "changed" | "removed")
    pub files: Vec<(String, &'static str)>,
    /// Unified diff of the DAG files.
    pub text: String,
}

/// What promoting one environment's commit into another would do there.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PromotionDiff {
    pub from_commit: String,
    /// `None` when the target runs nothing yet.
    pub to_commit: Option<String>,
    /// (DAG id, path) of the DAGs the target would add, and of those it would change.
    pub added: Vec<(String, String)>,
    pub changed: Vec<(String, String)>,
    /// DAG ids it would stop running.
    pub removed: Vec<String>,
    /// (path, message) of the files that do not validate at the commit (a promotion refuses).
    pub errors: Vec<(String, String)>,
    /// Unified diff from the target's DAG files to the source's.
    pub text: String,
    /// Whether DAGs new to the target start paused there.
    pub new_dags_paused: bool,
}

impl PromotionDiff {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.changed.is_empty()
            && self.removed.is_empty()
            && self.errors.is_empty()
    }
}

/// The operations, over one store, with what some of them need: the DAG repository
/// (promotion) and the MAP connections (revert).
#[derive(Debug, Clone)]
pub struct Operations {
    store: Store,
    dags: DagCache,
    git: Option<Arc<GitSource>>,
    plane: Option<DataPlane>,
}

impl Operations {
    pub fn new(store: Store) -> Self {
        Self {
            dags: DagCache::new(store.clone()),
            store,
            git: None,
            plane: None,
        }
    }

    pub fn with_git(mut self, git: Arc<GitSource>) -> Self {
        self.git = Some(git);
        self
    }

    pub fn with_data(mut self, plane: DataPlane) -> Self {
        self.plane = Some(plane);
        self
    }

    /// Whether this process holds MAP connections of its own.
    pub fn has_data(&self) -> bool {
        self.plane.is_some()
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn dags(&self) -> &DagCache {
        &self.dags
    }

    pub fn has_git(&self) -> bool {
        self.git.is_some()
    }

    /// The environment named `name`.
    pub async fn environment(&self, name: &str) -> Result<Environment, OpError> {
        let envs = promotion::environments(&self.store).await?;
        envs.into_iter()
            .find(|e| e.name == name)
            .ok_or_else(|| OpError::NotFound(format!("no environment `{name}`")))
    }

    /// The environment, when `actor` may do `action` there and Drover is not in maintenance
    /// (every change goes through here).
    async fn allowed(
        &self,
        actor: &Actor,
        action: Action,
        environment: &str,
    ) -> Result<Environment, OpError> {
        if let Some(m) = self.store.maintenance().await? {
            return Err(OpError::Maintenance(m));
        }
        let env = self.environment(environment).await?;
        actor
            .check(action, Some(&env))
            .map_err(OpError::Forbidden)?;
        Ok(env)
    }

    /// What `runs` did and the problems they carry, by run id (two queries for any number).
    pub async fn stories(
        &self,
        runs: &[drover_store::RunRow],
    ) -> Result<std::collections::HashMap<Uuid, crate::story::RunStory>, OpError> {
        let envs = promotion::environments(&self.store).await?;
        Ok(crate::story::run_stories(&self.store, &self.dags, &envs, runs).await?)
    }

    /// What one run did and the problems it carries.
    pub async fn story(
        &self,
        run: &drover_store::RunRow,
    ) -> Result<crate::story::RunStory, OpError> {
        let mut all = self.stories(std::slice::from_ref(run)).await?;
        all.remove(&run.id)
            .ok_or_else(|| OpError::NotFound(format!("no run {}", run.id)))
    }

    /// Create a manual run; returns its id.
    pub async fn trigger(&self, actor: &Actor, req: &TriggerRequest) -> Result<Uuid, OpError> {
        self.allowed(actor, Action::Trigger, &req.environment)
            .await?;
        trigger::trigger(&self.store, &self.dags, actor, req).await
    }

    /// Pause or unpause; `Conflict` when it already was.
    pub async fn set_paused(
        &self,
        actor: &Actor,
        dag_id: &str,
        environment: &str,
        paused: bool,
    ) -> Result<(), OpError> {
        self.allowed(actor, Action::Pause, environment).await?;
        self.store.dag_env(dag_id, environment).await?;
        if !self
            .store
            .set_paused(dag_id, environment, paused, &actor.name)
            .await?
        {
            return Err(OpError::Conflict(format!(
                "`{dag_id}` is already {} in `{environment}`",
                if paused {
                    "paused"
                } else {
                    "running (not paused)"
                }
            )));
        }
        Ok(())
    }

    /// Clear finished tasks of a run so they run again; returns the cleared task ids.
    pub async fn clear(
        &self,
        actor: &Actor,
        run_id: Uuid,
        task_ids: &[String],
    ) -> Result<Vec<String>, OpError> {
        let run = self.store.get_run(run_id).await?;
        self.allowed(actor, Action::Clear, &run.environment).await?;
        // The change and its audit event commit together.
        let mut tx = self.store.begin().await?;
        let cleared = tx.clear_tasks(run_id, task_ids).await?;
        tx.audit(
            &actor.name,
            "task.clear",
            Some(&run.environment),
            Some(&run.dag_id),
            Some(run_id),
            &serde_json::json!({ "tasks": cleared }),
        )
        .await?;
        tx.commit().await?;
        Ok(cleared)
    }

    /// Mark a run (and its unfinished tasks) succeeded or failed.
    pub async fn mark(&self, actor: &Actor, run_id: Uuid, state: RunState) -> Result<(), OpError> {
        let run = self.store.get_run(run_id).await?;
        self.allowed(actor, Action::Mark, &run.environment).await?;
        if !matches!(state, RunState::Success | RunState::Failed) {
            return Err(OpError::Invalid(
                "a run can be marked success or failed".to_owned(),
            ));
        }
        let mut tx = self.store.begin().await?;
        let tasks = tx.mark_run(run_id, state).await?;
        tx.audit(
            &actor.name,
            "run.mark",
            Some(&run.environment),
            Some(&run.dag_id),
            Some(run_id),
            &serde_json::json!({ "state": state.as_str(), "from": run.state.as_str(), "tasks": tasks }),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Queue a revert of a return: a worker writes back the values it overwrote, leaving
    /// records changed since as they are unless `force` (admins only).
    pub async fn revert(
        &self,
        actor: &Actor,
        run_id: Uuid,
        task_id: &str,
        force: bool,
    ) -> Result<drover_store::RevertJob, OpError> {
        let run = self.store.get_run(run_id).await?;
        self.allowed(actor, Action::Revert, &run.environment)
            .await?;
        if force {
            self.allowed(actor, Action::Approve, &run.environment)
                .await
                .map_err(|_| {
                    OpError::Forbidden(
                        "only admins may force a revert over records changed since the return"
                            .to_owned(),
                    )
                })?;
        }
        Ok(queue_revert(&self.store, &actor.name, &run, task_id, force).await?)
    }

    fn git(&self) -> Result<&GitSource, OpError> {
        self.git.as_deref().ok_or_else(|| {
            OpError::Unavailable(
                "promotion needs the DAG repository: start Drover with --repo".to_owned(),
            )
        })
    }

    /// Promote into `target` what the environment below runs (or `commit`).
    pub async fn promote(
        &self,
        actor: &Actor,
        target: &str,
        from: Option<&str>,
        commit: Option<&str>,
        note: Option<&str>,
    ) -> Result<PromotionOutcome, OpError> {
        self.allowed(actor, Action::Promote, target).await?;
        let git = self.git()?;
        Ok(promotion::promote(&self.store, git, target, from, commit, &actor.name, note).await?)
    }

    /// Approve the promotion waiting in `target`.
    pub async fn approve(&self, actor: &Actor, target: &str) -> Result<PromotionOutcome, OpError> {
        self.allowed(actor, Action::Approve, target).await?;
        let git = self.git()?;
        Ok(promotion::approve(&self.store, git, target, &actor.name).await?)
    }

    /// Reject the promotion waiting in `target`.
    pub async fn reject(&self, actor: &Actor, target: &str) -> Result<(), OpError> {
        self.allowed(actor, Action::Approve, target).await?;
        Ok(promotion::reject(&self.store, target, &actor.name).await?)
    }

    /// Go back to the commit `target` ran before.
    pub async fn rollback(
        &self,
        actor: &Actor,
        target: &str,
        note: Option<&str>,
    ) -> Result<PromotionOutcome, OpError> {
        self.allowed(actor, Action::Promote, target).await?;
        let git = self.git()?;
        Ok(promotion::rollback(&self.store, git, target, &actor.name, note).await?)
    }

    /// How the DAG files of `to`'s commit differ from `from`'s: files and a unified diff.
    pub async fn diff(&self, from: &str, to: &str) -> Result<EnvironmentDiff, OpError> {
        let git = self.git()?;
        let commit_of = |name: &str| {
            let (store, name) = (self.store.clone(), name.to_owned());
            async move {
                store
                    .current_deployment(&name)
                    .await?
                    .map(|d| d.commit_sha)
                    .ok_or_else(|| {
                        OpError::Conflict(format!(
                            "`{name}` runs no commit yet: nothing to compare until a commit is promoted into it"
                        ))
                    })
            }
        };
        let (a, b) = (commit_of(from).await?, commit_of(to).await?);
        let (sa, sb) = (git.snapshot(&a).await?, git.snapshot(&b).await?);
        let blobs = |s: &drover_repo::Snapshot| -> std::collections::BTreeMap<String, String> {
            s.files
                .iter()
                .map(|f| (f.path.clone(), f.blob_id.clone()))
                .collect()
        };
        let (ba, bb) = (blobs(&sa), blobs(&sb));
        let mut files = Vec::new();
        for (path, blob) in &bb {
            match ba.get(path) {
                None => files.push((path.clone(), "added")),
                Some(old) if old != blob => files.push((path.clone(), "changed")),
                _ => {}
            }
        }
        for path in ba.keys().filter(|p| !bb.contains_key(*p)) {
            files.push((path.clone(), "removed"));
        }
        let text = git.diff_text(Some(&a), &b).await?;
        Ok(EnvironmentDiff {
            from_commit: a,
            to_commit: b,
            files,
            text,
        })
    }

    /// What promoting `from`'s commit into `to` would do there, DAG by DAG (as the promotion
    /// itself plans it), with the unified diff from `to`'s files to `from`'s.
    pub async fn promotion_diff(&self, from: &str, to: &str) -> Result<PromotionDiff, OpError> {
        let git = self.git()?;
        let target = self.environment(to).await?;
        self.environment(from).await?;
        let commit_of = |name: &str| {
            let (store, name) = (self.store.clone(), name.to_owned());
            async move { Ok::<_, OpError>(store.current_deployment(&name).await?.map(|d| d.commit_sha)) }
        };
        let from_commit = commit_of(from).await?.ok_or_else(|| {
            OpError::Conflict(format!(
                "`{from}` runs no commit yet: nothing to promote from it"
            ))
        })?;
        let to_commit = commit_of(to).await?;
        let plan = git.plan(&self.store, to, &from_commit).await?;
        let running = self.store.environment_blobs(to).await?;
        let (mut added, mut changed) = (Vec::new(), Vec::new());
        for u in &plan.upserts {
            let at = (u.dag_id.clone(), u.path.clone());
            if running.contains_key(&u.dag_id) {
                changed.push(at);
            } else {
                added.push(at);
            }
        }
        added.sort();
        changed.sort();
        let text = git.diff_text(to_commit.as_deref(), &from_commit).await?;
        Ok(PromotionDiff {
            from_commit,
            to_commit,
            added,
            changed,
            removed: plan.removed,
            errors: plan.errors,
            text,
            new_dags_paused: target.new_dags_paused,
        })
    }
}

/// Queue a revert job with its audit event, in one transaction.
pub async fn queue_revert(
    store: &Store,
    actor: &str,
    run: &drover_store::RunRow,
    task_id: &str,
    force: bool,
) -> Result<drover_store::RevertJob, EngineError> {
    if store.dataset(run.id, task_id, "receipt").await?.is_none() {
        return Err(EngineError::Invalid(format!(
            "task `{task_id}` of run {} has no return receipt to revert",
            run.id
        )));
    }
    let mut tx = store.begin().await?;
    let job = tx
        .queue_revert(run.id, task_id, &run.environment, force, actor)
        .await?;
    tx.audit(
        actor,
        "return.revert.requested",
        Some(&run.environment),
        Some(&run.dag_id),
        Some(run.id),
        &serde_json::json!({ "task": task_id, "job": job.id, "force": force }),
    )
    .await?;
    tx.commit().await?;
    Ok(job)
}
