//! DAGs read straight from git: a commit's tree under a subfolder (default `dags/`), no
//! checkout. Each blob is parsed and validated once, whatever the number of commits it appears
//! in. Remote repositories (https, file://) are cloned bare into a cache folder and fetched by
//! Drover itself; credentials come from the environment and are never logged.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use drover_spec::dag::{DAG_FILE_EXTENSIONS, load_dags};
use drover_spec::diagnostic::Diagnostic;
use git2::{
    FetchOptions, ObjectType, Oid, RemoteCallbacks, Repository, TreeWalkMode, TreeWalkResult,
};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum RepoError {
    #[error("git: {0}")]
    Git(#[from] git2::Error),
    #[error("no branch `{0}` in the DAG repository")]
    NoBranch(String),
    #[error("`{0}` is not a commit of the DAG repository")]
    NoCommit(String),
    #[error("cannot prepare {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// One DAG file at a commit.
#[derive(Debug, Clone)]
pub struct FileAt {
    /// Path from the repository root, e.g. `dags/lead_scoring.yaml`.
    pub path: String,
    pub blob_id: String,
    pub source: Arc<str>,
    /// The DAG id when the file is valid.
    pub dag_id: Option<String>,
    /// Why it is not, when it is not.
    pub errors: Vec<Diagnostic>,
}

/// The DAG files of one commit.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub commit: String,
    pub files: Vec<FileAt>,
}

impl Snapshot {
    pub fn valid(&self) -> impl Iterator<Item = &FileAt> {
        self.files.iter().filter(|f| f.dag_id.is_some())
    }

    pub fn broken(&self) -> impl Iterator<Item = &FileAt> {
        self.files.iter().filter(|f| f.dag_id.is_none())
    }
}

#[derive(Debug, Clone)]
struct Parsed {
    dag_id: Option<String>,
    errors: Vec<Diagnostic>,
}

/// A DAG repository and the parse results of every blob seen so far.
pub struct DagRepo {
    repo: Repository,
    subdir: String,
    remote: bool,
    parsed: HashMap<(String, Oid), Parsed>,
}

impl std::fmt::Debug for DagRepo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DagRepo")
            .field("path", &self.repo.path())
            .field("subdir", &self.subdir)
            .finish()
    }
}

fn is_url(location: &str) -> bool {
    ["https://", "http://", "file://", "ssh://", "git@"]
        .iter()
        .any(|p| location.starts_with(p))
}

/// Credentials for https remotes, from DROVER_GIT_USERNAME and DROVER_GIT_TOKEN.
fn callbacks() -> RemoteCallbacks<'static> {
    let mut cb = RemoteCallbacks::new();
    cb.credentials(|_url, username, _allowed| {
        let token = std::env::var("DROVER_GIT_TOKEN").map_err(|_| git2::Error::from_str("the repository asks for credentials: set DROVER_GIT_TOKEN (and DROVER_GIT_USERNAME)"))?;
        let user = std::env::var("DROVER_GIT_USERNAME").ok().or(username.map(str::to_owned)).unwrap_or_else(|| "git".to_owned());
        git2::Cred::userpass_plaintext(&user, &token)
    });
    cb
}

impl DagRepo {
    /// Open `location`: a local repository path, or a URL cloned (bare) into `cache_dir`.
    pub fn open(location: &str, subdir: &str, cache_dir: &Path) -> Result<Self, RepoError> {
        let subdir = subdir.trim_matches('/').to_owned();
        if !is_url(location) {
            let repo = Repository::open(location)?;
            return Ok(Self {
                repo,
                subdir,
                remote: false,
                parsed: HashMap::new(),
            });
        }
        let mut h = std::collections::hash_map::DefaultHasher::new();
        std::hash::Hash::hash(location, &mut h);
        let dir: PathBuf = cache_dir.join(format!("{:016x}.git", std::hash::Hasher::finish(&h)));
        let repo = if dir.join("HEAD").exists() {
            Repository::open_bare(&dir)?
        } else {
            std::fs::create_dir_all(cache_dir).map_err(|source| RepoError::Io {
                path: cache_dir.display().to_string(),
                source,
            })?;
            let repo = Repository::init_bare(&dir)?;
            repo.remote_with_fetch("origin", location, "+refs/heads/*:refs/remotes/origin/*")?;
            repo
        };
        let mut me = Self {
            repo,
            subdir,
            remote: true,
            parsed: HashMap::new(),
        };
        me.fetch()?;
        Ok(me)
    }

    /// Fetch every branch of the remote (local repositories need none).
    pub fn fetch(&mut self) -> Result<(), RepoError> {
        if !self.remote {
            return Ok(());
        }
        let mut remote = self.repo.find_remote("origin")?;
        let mut options = FetchOptions::new();
        options.remote_callbacks(callbacks());
        remote.fetch(
            &["+refs/heads/*:refs/remotes/origin/*"],
            Some(&mut options),
            None,
        )?;
        Ok(())
    }

    /// The commit at the head of `branch`.
    pub fn head_of(&self, branch: &str) -> Result<String, RepoError> {
        let names = if self.remote {
            vec![format!("refs/remotes/origin/{branch}")]
        } else {
            vec![
                format!("refs/heads/{branch}"),
                format!("refs/remotes/origin/{branch}"),
            ]
        };
        for name in names {
            if let Ok(r) = self.repo.find_reference(&name) {
                return Ok(r.peel_to_commit()?.id().to_string());
            }
        }
        Err(RepoError::NoBranch(branch.to_owned()))
    }

    /// The full id of the commit `rev` names (a sha, a prefix, a branch…).
    pub fn resolve(&self, rev: &str) -> Result<String, RepoError> {
        let object = self
            .repo
            .revparse_single(rev)
            .map_err(|_| RepoError::NoCommit(rev.to_owned()))?;
        Ok(object
            .peel_to_commit()
            .map_err(|_| RepoError::NoCommit(rev.to_owned()))?
            .id()
            .to_string())
    }

    /// The DAG files of `commit`, each parsed once per blob.
    pub fn snapshot(&mut self, commit: &str) -> Result<Snapshot, RepoError> {
        let oid = Oid::from_str(commit).map_err(|_| RepoError::NoCommit(commit.to_owned()))?;
        let tree = self
            .repo
            .find_commit(oid)
            .map_err(|_| RepoError::NoCommit(commit.to_owned()))?
            .tree()?;
        let root = if self.subdir.is_empty() {
            tree
        } else {
            match tree.get_path(Path::new(&self.subdir)) {
                Ok(entry) if entry.kind() == Some(ObjectType::Tree) => {
                    self.repo.find_tree(entry.id())?
                }
                _ => {
                    return Ok(Snapshot {
                        commit: commit.to_owned(),
                        files: Vec::new(),
                    });
                }
            }
        };
        let mut entries: Vec<(String, Oid)> = Vec::new();
        root.walk(TreeWalkMode::PreOrder, |dir, entry| {
            let name = entry.name().unwrap_or_default();
            if name.starts_with('.') {
                return TreeWalkResult::Skip;
            }
            let yaml = Path::new(name)
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| DAG_FILE_EXTENSIONS.contains(&e));
            if entry.kind() == Some(ObjectType::Blob) && yaml {
                let prefix = if self.subdir.is_empty() {
                    String::new()
                } else {
                    format!("{}/", self.subdir)
                };
                entries.push((format!("{prefix}{dir}{name}"), entry.id()));
            }
            TreeWalkResult::Ok
        })?;
        entries.sort();
        let mut files = Vec::with_capacity(entries.len());
        let mut misses = Vec::new();
        let mut miss_oids = Vec::new();
        for (path, oid) in &entries {
            let blob = self.repo.find_blob(*oid)?;
            let source: Arc<str> = match std::str::from_utf8(blob.content()) {
                Ok(s) => Arc::from(s),
                Err(_) => {
                    self.parsed
                        .entry((path.clone(), *oid))
                        .or_insert_with(|| Parsed {
                            dag_id: None,
                            errors: vec![Diagnostic::new(
                                path,
                                drover_spec::diagnostic::Position::START,
                                "file is not UTF-8 text",
                            )],
                        });
                    Arc::from("")
                }
            };
            if !self.parsed.contains_key(&(path.clone(), *oid)) {
                misses.push((path.clone(), source.to_string()));
                miss_oids.push(*oid);
            }
            files.push(FileAt {
                path: path.clone(),
                blob_id: oid.to_string(),
                source,
                dag_id: None,
                errors: Vec::new(),
            });
        }
        if !misses.is_empty() {
            for (((path, _), oid), result) in misses.iter().zip(&miss_oids).zip(load_dags(&misses))
            {
                let oid = *oid;
                let parsed = match result {
                    Ok(dag) => Parsed {
                        dag_id: Some(dag.id),
                        errors: Vec::new(),
                    },
                    Err(errors) => Parsed {
                        dag_id: None,
                        errors,
                    },
                };
                self.parsed.insert((path.clone(), oid), parsed);
            }
        }
        for (file, (path, oid)) in files.iter_mut().zip(&entries) {
            if let Some(p) = self.parsed.get(&(path.clone(), *oid)) {
                file.dag_id = p.dag_id.clone();
                file.errors = p.errors.clone();
            }
        }
        Ok(Snapshot {
            commit: commit.to_owned(),
            files,
        })
    }

    /// A unified diff of the DAG files between two commits (`from` may be None: everything added).
    pub fn diff_text(&self, from: Option<&str>, to: &str) -> Result<String, RepoError> {
        let tree_of = |c: &str| -> Result<git2::Tree<'_>, RepoError> {
            let oid = Oid::from_str(c).map_err(|_| RepoError::NoCommit(c.to_owned()))?;
            Ok(self
                .repo
                .find_commit(oid)
                .map_err(|_| RepoError::NoCommit(c.to_owned()))?
                .tree()?)
        };
        let old = from.map(tree_of).transpose()?;
        let new = tree_of(to)?;
        let mut opts = git2::DiffOptions::new();
        if !self.subdir.is_empty() {
            opts.pathspec(&self.subdir);
        }
        let diff = self
            .repo
            .diff_tree_to_tree(old.as_ref(), Some(&new), Some(&mut opts))?;
        let mut out = String::new();
        diff.print(git2::DiffFormat::Patch, |_, _, line| {
            let prefix = match line.origin() {
                '+' | '-' | ' ' => line.origin().to_string(),
                _ => String::new(),
            };
            out.push_str(&prefix);
            out.push_str(&String::from_utf8_lossy(line.content()));
            true
        })?;
        Ok(out)
    }
}
