//! DAGs and environments read from folders on disk (until DAGs come from git): every
//! environment runs what the folder holds. A file that fails validation keeps its DAG on the
//! last good version.

use std::path::{Path, PathBuf};

use drover_spec::dag::{DAG_FILE_EXTENSIONS, DEFAULT_MAX_DAG_BYTES, check_dag_size, load_dag};
use drover_spec::diagnostic::Diagnostic;
use drover_spec::environment::{Environment, load_environment};
use drover_store::{Store, VersionSync};

use crate::EngineError;

/// The id git gives a blob with this content, so folder and git versions agree.
pub fn git_blob_id(content: &[u8]) -> String {
    let mut h = sha1_smol::Sha1::new();
    h.update(format!("blob {}\0", content.len()).as_bytes());
    h.update(content);
    h.digest().to_string()
}

#[derive(Debug, Clone)]
pub struct FolderSource {
    pub dags_dir: PathBuf,
    pub environments_dir: PathBuf,
    /// DAG files larger than this are refused unread.
    pub max_dag_bytes: u64,
}

/// What one sync found.
#[derive(Debug, Default)]
pub struct SyncReport {
    pub environments: Vec<Environment>,
    pub dags: usize,
    pub changed: u64,
    pub problems: Vec<Diagnostic>,
}

fn yaml_files(dir: &Path) -> Result<Vec<PathBuf>, EngineError> {
    let io = |source| EngineError::Io {
        path: dir.display().to_string(),
        source,
    };
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).map_err(io)? {
            let entry = entry.map_err(io)?;
            let path = entry.path();
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            if entry.file_type().map_err(io)?.is_dir() {
                stack.push(path);
            } else if path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| DAG_FILE_EXTENSIONS.contains(&e))
            {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Read the environment files and record the valid ones; problems are reported, not fatal.
/// With `tracked_branch`, the branch-tracking environment follows that branch instead of the
/// one its file names.
pub(crate) async fn sync_environments(
    dir: &Path,
    store: &Store,
    tracked_branch: Option<&str>,
) -> Result<SyncReport, EngineError> {
    let mut report = SyncReport::default();
    for path in yaml_files(dir)? {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(&path).map_err(|source| EngineError::Io {
            path: name.clone(),
            source,
        })?;
        match load_environment(&name, &text) {
            Ok(env) => report.environments.push(env),
            Err(d) => report.problems.extend(d),
        }
    }
    report.environments.sort_by_key(|e| e.order);
    if let Some(branch) = tracked_branch {
        for env in report
            .environments
            .iter_mut()
            .filter(|e| e.branch.is_some())
        {
            env.branch = Some(branch.to_owned());
        }
    }
    for env in &report.environments {
        record_environment(store, env).await?;
    }
    Ok(report)
}

/// Record one environment as its file says, and provision its staging schema and SQL role
/// (a failure to provision is logged: its data tasks fail until it can be done).
pub async fn record_environment(store: &Store, env: &Environment) -> Result<(), EngineError> {
    let spec = serde_json::to_value(env).map_err(|e| EngineError::Invalid(e.to_string()))?;
    store
        .upsert_environment(
            &env.name,
            i32::try_from(env.order).unwrap_or(i32::MAX),
            &spec,
        )
        .await?;
    // Its own staging schema and SQL role, from the moment Drover knows it.
    match store.provision_sql_environment(&env.name).await {
        Ok(done) => crate::data::report_provisioned(&env.name, &done),
        Err(e) => tracing::warn!(
            environment = %env.name,
            error = %e,
            "could not provision the environment's SQL schemas and role; its data tasks fail until they can be"
        ),
    }
    Ok(())
}

impl FolderSource {
    /// The two folders, with the default size limit on DAG files.
    pub fn new(dags_dir: PathBuf, environments_dir: PathBuf) -> Self {
        Self {
            dags_dir,
            environments_dir,
            max_dag_bytes: DEFAULT_MAX_DAG_BYTES,
        }
    }

    /// Read both folders and record them: environments, then every valid DAG as the version
    /// each environment runs.
    pub async fn sync(&self, store: &Store) -> Result<SyncReport, EngineError> {
        let mut report = sync_environments(&self.environments_dir, store, None).await?;
        // Reading and validating is blocking work: off the async threads.
        let (dir, limit) = (self.dags_dir.clone(), self.max_dag_bytes);
        let (versions, problems) = tokio::task::spawn_blocking(move || read_dags(&dir, limit))
            .await
            .map_err(|e| EngineError::Invalid(format!("reading the DAG folder failed: {e}")))??;
        report.problems.extend(problems);
        report.dags = versions.len();
        for env in &report.environments {
            report.changed += store
                .sync_versions(&env.name, &versions, env.new_dags_paused)
                .await?;
        }
        Ok(report)
    }
}

/// The valid DAGs of `dir` and the problems of the others; a file over `limit` bytes is
/// refused by its size on disk, unread.
fn read_dags(dir: &Path, limit: u64) -> Result<(Vec<VersionSync>, Vec<Diagnostic>), EngineError> {
    let mut versions = Vec::new();
    let mut problems = Vec::new();
    for path in yaml_files(dir)? {
        let name = path.display().to_string();
        let io = |source| EngineError::Io {
            path: name.clone(),
            source,
        };
        let size = std::fs::metadata(&path).map_err(io)?.len();
        if let Err(d) = check_dag_size(&name, size, limit) {
            problems.push(d);
            continue;
        }
        let bytes = std::fs::read(&path).map_err(io)?;
        let Ok(text) = String::from_utf8(bytes.clone()) else {
            problems.push(Diagnostic::new(
                &name,
                drover_spec::diagnostic::Position::START,
                "file is not UTF-8 text",
            ));
            continue;
        };
        match load_dag(&name, &text) {
            Ok(dag) => versions.push(VersionSync {
                dag_id: dag.id,
                path: name,
                blob_id: git_blob_id(&bytes),
                commit_sha: None,
                source: text,
            }),
            Err(d) => problems.extend(d),
        }
    }
    Ok((versions, problems))
}

#[cfg(test)]
mod tests {
    #[test]
    fn blob_ids_match_git() {
        // `printf 'hello\n' | git hash-object --stdin`
        assert_eq!(
            super::git_blob_id(b"hello\n"),
            "ce013625030ba8dba906f756967f9e9ca394464a"
        );
    }
}
