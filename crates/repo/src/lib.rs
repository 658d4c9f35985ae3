//! DAGs read straight from git: a commit's tree under a subfolder (default `dags/`), no
//! checkout. Each blob is read, parsed and validated once, whatever the number of commits it
//! appears in (while recent snapshots keep seeing it). Remote repositories (https, file://) are
//! cloned bare into a cache folder and fetched by Drover itself; credentials come from the
//! environment and are never logged.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use drover_spec::dag::{DAG_FILE_EXTENSIONS, DEFAULT_MAX_DAG_BYTES, check_dag_size, load_dag};
use drover_spec::diagnostic::Diagnostic;
use git2::{
    FetchOptions, ObjectType, Oid, RemoteCallbacks, Repository, TreeWalkMode, TreeWalkResult,
};
use thiserror::Error;

mod checkout;
pub use checkout::{Checkout, checkout_of};

#[derive(Debug, Error)]
pub enum RepoError {
    #[error("git: {0}")]
    Git(#[from] git2::Error),
    #[error("no branch `{0}` in the DAG repository")]
    NoBranch(String),
    #[error("`{0}` is not a commit of the DAG repository")]
    NoCommit(String),
    #[error(
        "the DAG repository did not answer within {}s: the fetch was given up (the last fetched commits are used meanwhile)", .0.as_secs()
    )]
    FetchTimeout(Duration),
    #[error(
        "the previous fetch of the DAG repository has still not finished (the remote does not answer): not starting another"
    )]
    FetchStillRunning,
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

/// What a blob at a path holds: its text (so a snapshot reads only new blobs) and how it parses.
#[derive(Debug, Clone)]
struct Parsed {
    source: Arc<str>,
    dag_id: Option<String>,
    errors: Vec<Diagnostic>,
    /// The last snapshot that saw it.
    seen: u64,
}

/// Parse results unseen by this many snapshots are dropped (and re-read if seen again), so the
/// cache holds the files of recent commits, not of every commit ever synced.
const KEEP_SNAPSHOTS: u64 = 16;

/// A DAG repository and the parse results of the blobs seen by its recent snapshots.
pub struct DagRepo {
    repo: Repository,
    subdir: String,
    /// How a remote is fetched (`None` for a local repository).
    fetcher: Option<Fetcher>,
    /// DAG files larger than this are refused unread.
    max_file_bytes: u64,
    parsed: HashMap<(String, Oid), Parsed>,
    /// Snapshots taken so far.
    snapshots: u64,
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

/// Credentials for https remotes: DROVER_GIT_USERNAME and DROVER_GIT_TOKEN, unless set
/// otherwise.
#[derive(Clone, Default)]
pub struct GitCredentials {
    pub username: Option<String>,
    pub token: Option<String>,
}

impl std::fmt::Debug for GitCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitCredentials")
            .field("username", &self.username)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .finish()
    }
}

impl GitCredentials {
    pub fn from_env() -> Self {
        Self {
            username: std::env::var("DROVER_GIT_USERNAME").ok(),
            token: std::env::var("DROVER_GIT_TOKEN").ok(),
        }
    }
}

/// How long a fetch may take before Drover stops waiting for it.
pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(60);

/// The callbacks of one fetch: the token once (libgit2 asks again when the remote refuses
/// it, and would go on asking for ever), and a deadline on the transfer.
fn callbacks(credentials: &GitCredentials, deadline: Instant) -> RemoteCallbacks<'static> {
    let mut cb = RemoteCallbacks::new();
    let credentials = credentials.clone();
    let mut asked = 0u32;
    cb.credentials(move |_url, username, _allowed| {
        asked += 1;
        let Some(token) = &credentials.token else {
            return Err(git2::Error::from_str(
                "the repository asks for credentials: set DROVER_GIT_TOKEN (and DROVER_GIT_USERNAME)",
            ));
        };
        if asked > 1 {
            return Err(git2::Error::from_str(
                "the remote refused the token in DROVER_GIT_TOKEN (HTTP 401): check that it is \
                 valid, not expired, and allowed to read the repository (and DROVER_GIT_USERNAME, \
                 if the host needs one)",
            ));
        }
        let user = credentials
            .username
            .clone()
            .or(username.map(str::to_owned))
            .unwrap_or_else(|| "git".to_owned());
        git2::Cred::userpass_plaintext(&user, token)
    });
    // A transfer still going at the deadline is cancelled (returning false stops it).
    cb.transfer_progress(move |_| Instant::now() < deadline);
    cb.sideband_progress(move |_| Instant::now() < deadline);
    cb
}

/// Fetches of one cloned remote, each on a thread of its own: the caller waits at most the
/// timeout, and a fetch that never ends (a remote that accepts and never answers) blocks
/// nothing but its own thread, and no second fetch starts while it hangs.
#[derive(Debug, Clone)]
pub struct Fetcher {
    git_dir: PathBuf,
    credentials: GitCredentials,
    timeout: Duration,
    running: Arc<AtomicBool>,
}

impl Fetcher {
    /// How long a caller waits for a fetch.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Fetch every branch of the remote, waiting at most the timeout.
    pub fn fetch(&self) -> Result<(), RepoError> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.start(move |result| {
            let _ = tx.send(result);
        })?;
        match rx.recv_timeout(self.timeout) {
            Ok(result) => result,
            Err(_) => Err(RepoError::FetchTimeout(self.timeout)),
        }
    }

    /// Start a fetch on its own thread and hand its result to `done`; the caller decides how
    /// long to wait (async callers wait without holding a thread). Refused while an earlier
    /// fetch still runs.
    pub fn start(
        &self,
        done: impl FnOnce(Result<(), RepoError>) + Send + 'static,
    ) -> Result<(), RepoError> {
        if self.running.swap(true, Ordering::AcqRel) {
            return Err(RepoError::FetchStillRunning);
        }
        let (git_dir, credentials, running) = (
            self.git_dir.clone(),
            self.credentials.clone(),
            self.running.clone(),
        );
        let deadline = Instant::now() + self.timeout;
        let spawned = std::thread::Builder::new()
            .name("git-fetch".to_owned())
            .spawn(move || {
                let result = fetch_into(&git_dir, &credentials, deadline);
                running.store(false, Ordering::Release);
                done(result);
            });
        spawned.map(|_| ()).map_err(|e| {
            self.running.store(false, Ordering::Release);
            RepoError::Io {
                path: self.git_dir.display().to_string(),
                source: e,
            }
        })
    }
}

fn fetch_into(
    git_dir: &Path,
    credentials: &GitCredentials,
    deadline: Instant,
) -> Result<(), RepoError> {
    let repo = Repository::open_bare(git_dir)?;
    let mut remote = repo.find_remote("origin")?;
    let mut options = FetchOptions::new();
    options.remote_callbacks(callbacks(credentials, deadline));
    remote.fetch(
        &["+refs/heads/*:refs/remotes/origin/*"],
        Some(&mut options),
        None,
    )?;
    Ok(())
}

/// `load_dag` on every (path, text), on all cores (as `load_dags`), keeping only what a
/// snapshot needs: the id of a valid DAG, the errors of a broken one. Each DAG is dropped as
/// soon as it is checked, so a cold snapshot does not hold 10,000 parsed DAGs at once.
fn check_all(files: &[(&str, &str)]) -> Vec<(Option<String>, Vec<Diagnostic>)> {
    drover_spec::dag::map_parallel(files, |(path, text)| match load_dag(path, text) {
        Ok(dag) => (Some(dag.id), Vec::new()),
        Err(errors) => (None, errors),
    })
}

impl DagRepo {
    /// Open `location`: a local repository path, or a URL cloned (bare) into `cache_dir` and
    /// fetched.
    pub fn open(location: &str, subdir: &str, cache_dir: &Path) -> Result<Self, RepoError> {
        let mut me = Self::open_unfetched(location, subdir, cache_dir)?;
        me.fetch()?;
        Ok(me)
    }

    /// As [`DagRepo::open`], without fetching a remote yet: it holds what earlier fetches
    /// brought (nothing for a new clone) until [`DagRepo::fetch`].
    pub fn open_unfetched(
        location: &str,
        subdir: &str,
        cache_dir: &Path,
    ) -> Result<Self, RepoError> {
        let subdir = subdir.trim_matches('/').to_owned();
        if !is_url(location) {
            let repo = Repository::open(location)?;
            return Ok(Self {
                repo,
                subdir,
                fetcher: None,
                max_file_bytes: DEFAULT_MAX_DAG_BYTES,
                parsed: HashMap::new(),
                snapshots: 0,
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
        Ok(Self {
            fetcher: Some(Fetcher {
                git_dir: repo.path().to_path_buf(),
                credentials: GitCredentials::from_env(),
                timeout: DEFAULT_FETCH_TIMEOUT,
                running: Arc::new(AtomicBool::new(false)),
            }),
            repo,
            subdir,
            max_file_bytes: DEFAULT_MAX_DAG_BYTES,
            parsed: HashMap::new(),
            snapshots: 0,
        })
    }

    /// Refuse DAG files larger than `bytes` (their blobs are not read).
    pub fn set_max_file_bytes(&mut self, bytes: u64) {
        if bytes != self.max_file_bytes {
            self.max_file_bytes = bytes;
            self.parsed.clear();
        }
    }

    /// Give up waiting for a fetch after `timeout`.
    pub fn set_fetch_timeout(&mut self, timeout: Duration) {
        if let Some(f) = &mut self.fetcher {
            f.timeout = timeout;
        }
    }

    /// Use these credentials rather than DROVER_GIT_USERNAME and DROVER_GIT_TOKEN.
    pub fn set_credentials(&mut self, credentials: GitCredentials) {
        if let Some(f) = &mut self.fetcher {
            f.credentials = credentials;
        }
    }

    /// What fetches the remote, to fetch without holding this repository (`None` when local).
    pub fn fetcher(&self) -> Option<Fetcher> {
        self.fetcher.clone()
    }

    /// Fetch every branch of the remote (local repositories need none), waiting at most the
    /// fetch timeout.
    pub fn fetch(&mut self) -> Result<(), RepoError> {
        match &self.fetcher {
            Some(f) => f.fetch(),
            None => Ok(()),
        }
    }

    /// The commit at the head of `branch`.
    pub fn head_of(&self, branch: &str) -> Result<String, RepoError> {
        let names = if self.fetcher.is_some() {
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
        self.snapshots += 1;
        let now = self.snapshots;
        // Known blobs come from the cache; new ones are read, then parsed together.
        let odb = self.repo.odb()?;
        let mut files = Vec::with_capacity(entries.len());
        let mut missed: Vec<(usize, Oid)> = Vec::new();
        for (path, oid) in entries {
            let key = (path, oid);
            if let Some(p) = self.parsed.get_mut(&key) {
                p.seen = now;
                files.push(FileAt {
                    path: key.0,
                    blob_id: oid.to_string(),
                    source: p.source.clone(),
                    dag_id: p.dag_id.clone(),
                    errors: p.errors.clone(),
                });
                continue;
            }
            // The size from the object's header: a file over the limit is never inflated.
            let (size, _) = odb.read_header(oid)?;
            let refused = check_dag_size(&key.0, size as u64, self.max_file_bytes).err();
            let blob = match refused {
                Some(_) => None,
                None => Some(self.repo.find_blob(oid)?),
            };
            let text = blob.as_ref().map(|b| std::str::from_utf8(b.content()));
            let Some(Ok(text)) = text else {
                let error = refused.unwrap_or_else(|| {
                    Diagnostic::new(
                        &key.0,
                        drover_spec::diagnostic::Position::START,
                        "file is not UTF-8 text",
                    )
                });
                let parsed = Parsed {
                    source: Arc::from(""),
                    dag_id: None,
                    errors: vec![error],
                    seen: now,
                };
                files.push(FileAt {
                    path: key.0.clone(),
                    blob_id: oid.to_string(),
                    source: parsed.source.clone(),
                    dag_id: None,
                    errors: parsed.errors.clone(),
                });
                self.parsed.insert(key, parsed);
                continue;
            };
            missed.push((files.len(), oid));
            files.push(FileAt {
                path: key.0,
                blob_id: oid.to_string(),
                source: Arc::from(text),
                dag_id: None,
                errors: Vec::new(),
            });
        }
        if !missed.is_empty() {
            let texts: Vec<(&str, &str)> = missed
                .iter()
                .map(|(index, _)| (files[*index].path.as_str(), &*files[*index].source))
                .collect();
            let results = check_all(&texts);
            for ((index, oid), (dag_id, errors)) in missed.into_iter().zip(results) {
                let file = &mut files[index];
                file.dag_id = dag_id;
                file.errors = errors;
                self.parsed.insert(
                    (file.path.clone(), oid),
                    Parsed {
                        source: file.source.clone(),
                        dag_id: file.dag_id.clone(),
                        errors: file.errors.clone(),
                        seen: now,
                    },
                );
            }
        }
        if self.parsed.len() > files.len() {
            self.parsed.retain(|_, p| now - p.seen < KEEP_SNAPSHOTS);
        }
        Ok(Snapshot {
            commit: commit.to_owned(),
            files,
        })
    }

    /// Who last changed `path` (a path in the repository) in the history of `commit`: the
    /// author (name, email) of the latest commit whose content of `path` differs from each of
    /// its parents'. `None` when `path` is not in `commit`.
    pub fn last_author(
        &self,
        commit: &str,
        path: &str,
    ) -> Result<Option<(String, String)>, RepoError> {
        let oid = Oid::from_str(commit).map_err(|_| RepoError::NoCommit(commit.to_owned()))?;
        let start = self
            .repo
            .find_commit(oid)
            .map_err(|_| RepoError::NoCommit(commit.to_owned()))?;
        let blob_at = |c: &git2::Commit<'_>| {
            c.tree()
                .ok()
                .and_then(|t| t.get_path(Path::new(path)).ok())
                .map(|e| e.id())
        };
        if blob_at(&start).is_none() {
            return Ok(None);
        }
        let mut walk = self.repo.revwalk()?;
        walk.push(oid)?;
        walk.set_sorting(git2::Sort::TOPOLOGICAL | git2::Sort::TIME)?;
        for id in walk {
            let c = self.repo.find_commit(id?)?;
            let Some(mine) = blob_at(&c) else { continue };
            if c.parents().all(|p| blob_at(&p) != Some(mine)) {
                let author = c.author();
                return Ok(Some((
                    author.name().unwrap_or_default().to_owned(),
                    author.email().unwrap_or_default().to_owned(),
                )));
            }
        }
        Ok(None)
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

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::process::Command;

    use super::{DagRepo, KEEP_SNAPSHOTS};

    fn git(dir: &Path, args: &[&str]) -> String {
        let out = Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_AUTHOR_NAME", "T")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "T")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .output()
            .unwrap_or_else(|e| panic!("git: {e}"));
        assert!(out.status.success(), "git {args:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    fn commit(repo: &Path, path: &str, content: &[u8]) -> String {
        std::fs::write(repo.join(path), content).unwrap_or_else(|e| panic!("{e}"));
        git(repo, &["add", "-A"]);
        git(repo, &["commit", "-q", "-m", path]);
        git(repo, &["rev-parse", "HEAD"])
    }

    /// (path, dag id, first error, source) of each file.
    fn files(repo: &mut DagRepo, commit: &str) -> Vec<(String, Option<String>, String, String)> {
        let snap = repo.snapshot(commit).unwrap_or_else(|e| panic!("{e}"));
        snap.files
            .iter()
            .map(|f| {
                let error = f.errors.first().map(ToString::to_string);
                (
                    f.path.clone(),
                    f.dag_id.clone(),
                    error.unwrap_or_default(),
                    f.source.to_string(),
                )
            })
            .collect()
    }

    #[test]
    fn cached_and_evicted_files_read_as_fresh_ones() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let d = dir.path();
        git(d, &["init", "-q", "-b", "main"]);
        std::fs::create_dir_all(d.join("dags")).unwrap_or_else(|e| panic!("{e}"));
        let a = "id: a\ntasks:\n  - id: t\n    noop: {}\n";
        let c1 = commit(d, "dags/a.yaml", a.as_bytes());
        let c2 = commit(d, "dags/b.yaml", b"\xff\xfe not text");
        let c3 = commit(d, "dags/a.yaml", b"id: a\ntasks: [\n");
        let cache = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let location = d.to_str().unwrap_or_default();

        let fresh =
            || DagRepo::open(location, "dags", cache.path()).unwrap_or_else(|e| panic!("{e}"));
        let expected: Vec<_> = [&c1, &c2, &c3]
            .iter()
            .map(|c| files(&mut fresh(), c))
            .collect();
        assert_eq!(expected[0][0].1.as_deref(), Some("a"));
        assert_eq!(expected[0][0].3, a);
        assert!(expected[1][1].2.contains("not UTF-8"), "{:?}", expected[1]);
        assert!(expected[2][0].1.is_none() && !expected[2][0].2.is_empty());

        // One repository: every commit again and again, from the cache, then (after more
        // snapshots than the cache keeps) re-read.
        let mut repo = fresh();
        for round in 0..3 {
            for (c, want) in [&c1, &c2, &c3].iter().zip(&expected) {
                assert_eq!(&files(&mut repo, c), want, "round {round}");
            }
        }
        for _ in 0..KEEP_SNAPSHOTS {
            files(&mut repo, &c3);
        }
        assert!(repo.parsed.len() <= 2, "{} entries kept", repo.parsed.len());
        assert_eq!(files(&mut repo, &c1), expected[0]);
    }
}
