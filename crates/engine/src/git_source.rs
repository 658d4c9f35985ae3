//! DAGs from git: the lowest environment tracks a branch (fetched at every sync), the others
//! run the commit promoted into them. Moving an environment to a commit records the DAGs whose
//! content changed, marks those gone as inactive, and stores the files that fail validation as
//! import errors while their DAGs keep their last good version.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use drover_repo::{DagRepo, Snapshot};
use drover_spec::environment::Environment;
use drover_store::{CommitChange, Store, VersionSync};

use crate::EngineError;
use crate::folder_source::{SyncReport, sync_environments};

/// A DAG repository plus the environments folder.
#[derive(Debug, Clone)]
pub struct GitSource {
    repo: Arc<Mutex<DagRepo>>,
    /// Fetches the remote without the lock on `repo` (`None` for a local repository).
    fetcher: Option<drover_repo::Fetcher>,
    pub environments_dir: PathBuf,
    /// The branch the branch-tracking environment follows instead of its file's.
    tracked_branch: Option<String>,
}

/// How an environment moves to a commit: `sync`, `promote` or `rollback`, and by whom.
#[derive(Debug, Clone, Copy)]
pub struct Deploy<'a> {
    pub kind: &'a str,
    pub actor: &'a str,
    pub approved_by: Option<&'a str>,
    pub note: Option<&'a str>,
}

/// What moving an environment to a commit would change.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub commit: String,
    pub upserts: Vec<VersionSync>,
    pub removed: Vec<String>,
    /// (path, message) of files that fail validation.
    pub errors: Vec<(String, String)>,
    /// The commit the environment ran when this was planned: applying moves it only from
    /// there.
    pub from: Option<String>,
}

impl Plan {
    /// DAGs added, changed or removed.
    pub fn changed_dags(&self) -> Vec<String> {
        let mut v: Vec<String> = self.upserts.iter().map(|u| u.dag_id.clone()).collect();
        v.extend(self.removed.iter().cloned());
        v
    }
}

fn repo_error(e: drover_repo::RepoError) -> EngineError {
    EngineError::Invalid(e.to_string())
}

impl GitSource {
    /// Open the repository (fetching a remote one).
    pub fn open(
        location: &str,
        subdir: &str,
        cache_dir: &Path,
        environments_dir: PathBuf,
    ) -> Result<Self, EngineError> {
        let repo = DagRepo::open(location, subdir, cache_dir).map_err(repo_error)?;
        Ok(Self::of(repo, environments_dir))
    }

    /// Open the repository without fetching it yet: the first sync fetches.
    pub fn open_unfetched(
        location: &str,
        subdir: &str,
        cache_dir: &Path,
        environments_dir: PathBuf,
    ) -> Result<Self, EngineError> {
        let repo = DagRepo::open_unfetched(location, subdir, cache_dir).map_err(repo_error)?;
        Ok(Self::of(repo, environments_dir))
    }

    fn of(repo: DagRepo, environments_dir: PathBuf) -> Self {
        Self {
            fetcher: repo.fetcher(),
            repo: Arc::new(Mutex::new(repo)),
            environments_dir,
            tracked_branch: None,
        }
    }

    fn configure(&self, f: impl FnOnce(&mut DagRepo)) {
        let mut guard = self
            .repo
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard);
    }

    /// Refuse DAG files larger than `bytes`, unread.
    #[must_use]
    pub fn with_max_dag_bytes(self, bytes: u64) -> Self {
        self.configure(|r| r.set_max_file_bytes(bytes));
        self
    }

    /// Stop waiting for a fetch after `timeout`.
    #[must_use]
    pub fn with_fetch_timeout(mut self, timeout: std::time::Duration) -> Self {
        let mut fetcher = None;
        self.configure(|r| {
            r.set_fetch_timeout(timeout);
            fetcher = r.fetcher();
        });
        self.fetcher = fetcher;
        self
    }

    /// Fetch the remote without holding the repository (snapshots, plans and promotions go
    /// on while a fetch waits for a remote that does not answer) and without holding a
    /// thread of the runtime: the fetch has a thread of its own, waited for at most its
    /// timeout.
    async fn fetch(&self) -> Result<(), EngineError> {
        let Some(fetcher) = &self.fetcher else {
            return Ok(());
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        fetcher
            .start(move |result| {
                let _ = tx.send(result);
            })
            .map_err(repo_error)?;
        match tokio::time::timeout(fetcher.timeout(), rx).await {
            Ok(Ok(result)) => result.map_err(repo_error),
            Ok(Err(_)) => Err(EngineError::Invalid(
                "the fetch of the DAG repository stopped without a result".to_owned(),
            )),
            Err(_) => Err(repo_error(drover_repo::RepoError::FetchTimeout(
                fetcher.timeout(),
            ))),
        }
    }

    /// Make the branch-tracking environment follow `branch` (e.g. the branch a developer's
    /// checkout is on) rather than the branch its environment file names.
    #[must_use]
    pub fn tracking(mut self, branch: Option<String>) -> Self {
        self.tracked_branch = branch;
        self
    }

    /// Run `f` on the repository off the async threads.
    async fn with_repo<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut DagRepo) -> Result<T, drover_repo::RepoError> + Send + 'static,
    ) -> Result<T, EngineError> {
        let repo = self.repo.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = repo
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            f(&mut guard)
        })
        .await
        .map_err(|e| EngineError::Invalid(format!("repository task failed: {e}")))?
        .map_err(repo_error)
    }

    /// The head commit of `branch` as last fetched.
    pub async fn branch_head(&self, branch: &str) -> Result<String, EngineError> {
        let branch = branch.to_owned();
        self.with_repo(move |r| r.head_of(&branch)).await
    }

    pub async fn resolve(&self, rev: &str) -> Result<String, EngineError> {
        let rev = rev.to_owned();
        self.with_repo(move |r| r.resolve(&rev)).await
    }

    pub async fn snapshot(&self, commit: &str) -> Result<Snapshot, EngineError> {
        let commit = commit.to_owned();
        self.with_repo(move |r| r.snapshot(&commit)).await
    }

    /// The author (name, email) of the commit that last changed `path` up to `commit`.
    pub async fn last_author(
        &self,
        commit: &str,
        path: &str,
    ) -> Result<Option<(String, String)>, EngineError> {
        let (commit, path) = (commit.to_owned(), path.to_owned());
        self.with_repo(move |r| r.last_author(&commit, &path)).await
    }

    pub async fn diff_text(&self, from: Option<&str>, to: &str) -> Result<String, EngineError> {
        let (from, to) = (from.map(str::to_owned), to.to_owned());
        self.with_repo(move |r| r.diff_text(from.as_deref(), &to))
            .await
    }

    /// What moving `environment` to `commit` would change.
    pub async fn plan(
        &self,
        store: &Store,
        environment: &str,
        commit: &str,
    ) -> Result<Plan, EngineError> {
        // The commit it runs first: what the plan starts from, and what applying it expects.
        let from = store
            .current_deployment(environment)
            .await?
            .map(|d| d.commit_sha);
        // Both at once: the snapshot reads git (on a blocking thread), the blobs read Postgres.
        let (snapshot, current) = tokio::try_join!(self.snapshot(commit), async {
            Ok::<_, EngineError>(store.environment_blobs(environment).await?)
        })?;
        let mut plan = Plan {
            commit: commit.to_owned(),
            from,
            ..Plan::default()
        };
        let mut seen = std::collections::HashSet::new();
        for f in &snapshot.files {
            match &f.dag_id {
                Some(id) if !seen.insert(id.clone()) => {
                    plan.errors.push((
                        f.path.clone(),
                        format!(
                            "{}:1:1: DAG id `{id}` is defined in another file too",
                            f.path
                        ),
                    ));
                }
                Some(id) => {
                    if current.get(id) != Some(&f.blob_id) {
                        plan.upserts.push(VersionSync {
                            dag_id: id.clone(),
                            path: f.path.clone(),
                            blob_id: f.blob_id.clone(),
                            commit_sha: Some(commit.to_owned()),
                            source: f.source.to_string(),
                        });
                    }
                }
                None => {
                    let text: Vec<String> = f.errors.iter().map(ToString::to_string).collect();
                    plan.errors.push((f.path.clone(), text.join("\n")));
                }
            }
        }
        // A broken file keeps its DAG (id = file name) on its last good version.
        let broken: std::collections::HashSet<String> = snapshot
            .broken()
            .filter_map(|f| {
                Path::new(&f.path)
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .map(str::to_owned)
            })
            .collect();
        plan.removed = current
            .keys()
            .filter(|id| !seen.contains(*id) && !broken.contains(*id))
            .cloned()
            .collect();
        plan.removed.sort();
        Ok(plan)
    }

    /// Move `env` to `commit` as planned, recording who did it and how. Refused (a
    /// conflict) when the environment no longer runs the commit the plan started from.
    pub async fn apply(
        &self,
        store: &Store,
        env: &Environment,
        plan: &Plan,
        by: &Deploy<'_>,
    ) -> Result<Option<i64>, EngineError> {
        self.apply_change(store, env, plan, by, None).await
    }

    /// As [`GitSource::apply`], marking the pending promotion `request` applied in the same
    /// transaction: if the move fails, the request stays pending.
    pub async fn apply_request(
        &self,
        store: &Store,
        env: &Environment,
        plan: &Plan,
        by: &Deploy<'_>,
        request: i64,
    ) -> Result<Option<i64>, EngineError> {
        self.apply_change(store, env, plan, by, Some(request)).await
    }

    async fn apply_change(
        &self,
        store: &Store,
        env: &Environment,
        plan: &Plan,
        by: &Deploy<'_>,
        request: Option<i64>,
    ) -> Result<Option<i64>, EngineError> {
        Ok(store
            .apply_commit(&CommitChange {
                environment: &env.name,
                commit: &plan.commit,
                upserts: &plan.upserts,
                removed: &plan.removed,
                errors: &plan.errors,
                new_paused: env.new_dags_paused,
                kind: by.kind,
                actor: by.actor,
                approved_by: by.approved_by,
                note: by.note,
                expected_from: plan.from.as_deref(),
                applies_request: request,
            })
            .await?)
    }

    /// Read the environments, fetch, and move the branch-tracking environment to its branch's
    /// head; an environment that has never been deployed starts at the `commit` its file names.
    pub async fn sync(&self, store: &Store) -> Result<SyncReport, EngineError> {
        let mut report = sync_environments(
            &self.environments_dir,
            store,
            self.tracked_branch.as_deref(),
        )
        .await?;
        self.fetch().await?;
        for env in report.environments.clone() {
            let target = match (&env.branch, &env.commit) {
                (Some(branch), _) => {
                    let branch = branch.clone();
                    Some(self.with_repo(move |r| r.head_of(&branch)).await?)
                }
                (None, Some(commit)) if store.current_deployment(&env.name).await?.is_none() => {
                    Some(self.resolve(commit).await?)
                }
                _ => None,
            };
            let Some(commit) = target else { continue };
            let current = store.current_deployment(&env.name).await?;
            if current.as_ref().is_some_and(|d| d.commit_sha == commit) {
                continue;
            }
            let plan = self.plan(store, &env.name, &commit).await?;
            report.dags += plan.upserts.len();
            report.changed += plan.upserts.len() as u64;
            self.apply(
                store,
                &env,
                &plan,
                &Deploy {
                    kind: "sync",
                    actor: "drover",
                    approved_by: None,
                    note: None,
                },
            )
            .await?;
        }
        Ok(report)
    }
}

/// Where the scheduler reads DAGs from.
#[derive(Debug, Clone)]
pub enum DagSource {
    /// A folder on disk: every environment runs what it holds.
    Folder(crate::FolderSource),
    /// A git repository: environments run commits.
    Git(GitSource),
}

impl DagSource {
    pub async fn sync(&self, store: &Store) -> Result<SyncReport, EngineError> {
        match self {
            DagSource::Folder(f) => f.sync(store).await,
            DagSource::Git(g) => g.sync(store).await,
        }
    }
}
