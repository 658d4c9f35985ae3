//! Reading DAG and environment files from disk: the IO the spec library leaves to us.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use drover_spec::dag::DAG_FILE_EXTENSIONS;
use drover_spec::diagnostic::{Diagnostic, Position};

/// A file read from disk: its display name and text, or why it could not be read.
pub(crate) type Source = (String, Result<String, Diagnostic>);

/// Every YAML file under `paths` (files as given, folders walked recursively, hidden entries
/// skipped), sorted by path.
pub(crate) fn yaml_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).with_context(|| format!("cannot read {}", p.display()))?;
        if meta.is_dir() {
            walk(p, &mut out).with_context(|| format!("cannot list {}", p.display()))?;
        } else {
            out.push(p.clone());
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        if hidden {
            continue;
        }
        if entry.file_type()?.is_dir() {
            walk(&path, out)?;
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| DAG_FILE_EXTENSIONS.contains(&e))
        {
            out.push(path);
        }
    }
    Ok(())
}

/// Read each file; an unreadable or non-UTF-8 file becomes a diagnostic, not a failure, and
/// so does a DAG file over `max_dag_bytes` (refused by its size on disk, unread).
pub(crate) fn read_all(files: &[PathBuf], max_dag_bytes: Option<u64>) -> Vec<Source> {
    files
        .iter()
        .map(|path| {
            let name = path.display().to_string();
            if let (Some(limit), Ok(meta)) = (max_dag_bytes, std::fs::metadata(path))
                && let Err(d) = drover_spec::dag::check_dag_size(&name, meta.len(), limit)
            {
                return (name, Err(d));
            }
            let text = std::fs::read(path)
                .map_err(|e| {
                    Diagnostic::new(&name, Position::START, format!("cannot read file: {e}"))
                })
                .and_then(|bytes| {
                    String::from_utf8(bytes).map_err(|e| {
                        Diagnostic::new(
                            &name,
                            Position::START,
                            format!("file is not UTF-8 text: {e}"),
                        )
                    })
                });
            (name, text)
        })
        .collect()
}
