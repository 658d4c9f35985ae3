//! The git work tree a folder of DAGs sits in, so a developer's own checkout can be the DAG
//! repository: which branch it is on and what is not committed yet.

use std::path::{Path, PathBuf};

use git2::{Repository, StatusOptions};

use crate::RepoError;

/// A folder of DAGs inside a git work tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkout {
    /// The work tree's root.
    pub root: PathBuf,
    /// The DAGs folder relative to the root, with `/` separators (empty: the root itself).
    pub subdir: String,
    /// The branch checked out; `None` when HEAD is detached or the branch has no commit yet.
    pub branch: Option<String>,
    /// Files under the DAGs folder that differ from the branch's head (new, changed, deleted).
    pub uncommitted: Vec<String>,
}

/// The checkout `dags_dir` belongs to, if it is inside a (non-bare) git work tree.
pub fn checkout_of(dags_dir: &Path) -> Result<Option<Checkout>, RepoError> {
    let dir = std::path::absolute(dags_dir).map_err(|source| RepoError::Io {
        path: dags_dir.display().to_string(),
        source,
    })?;
    let Ok(repo) = Repository::discover(&dir) else {
        return Ok(None);
    };
    let Some(root) = repo.workdir().map(Path::to_path_buf) else {
        return Ok(None);
    };
    let canonical = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let (root, dir) = (canonical(&root), canonical(&dir));
    let Ok(rel) = dir.strip_prefix(&root) else {
        return Ok(None);
    };
    let subdir = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/");
    let branch = match repo.head() {
        Ok(head) if head.is_branch() => head.shorthand().ok().map(str::to_owned),
        _ => None,
    };
    let mut options = StatusOptions::new();
    options.include_untracked(true).recurse_untracked_dirs(true);
    if !subdir.is_empty() {
        options.pathspec(&subdir);
    }
    let uncommitted = repo
        .statuses(Some(&mut options))?
        .iter()
        .filter(|s| !s.status().is_ignored())
        .filter_map(|s| s.path().ok().map(str::to_owned))
        .collect();
    Ok(Some(Checkout {
        root,
        subdir,
        branch,
        uncommitted,
    }))
}
