//! A DAG file's import error as a banner reads it: file, line, column and message, parsed
//! from the validator's `path:line:column: message` lines.

use drover_store::ImportError;

/// The banner over a DAG's page when its current file in the environment fails to load.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ImportBanner {
    pub(crate) path: String,
    pub(crate) line: Option<usize>,
    pub(crate) column: Option<usize>,
    /// The first problem's message.
    pub(crate) message: String,
    /// Every problem, as the validator wrote them.
    pub(crate) full: String,
    /// The short commit the file was read at.
    pub(crate) commit: String,
    /// Problems beyond the first.
    pub(crate) more: usize,
}

impl ImportBanner {
    pub(crate) fn new(e: &ImportError) -> Self {
        let mut lines = e.message.lines().filter(|l| !l.trim().is_empty());
        let first = lines.next().unwrap_or_default();
        let more = lines.count();
        let (line, column, message) = split_location(&e.path, first);
        Self {
            path: e.path.clone(),
            line,
            column,
            message: message.to_owned(),
            full: e.message.clone(),
            commit: super::short_sha(&e.commit_sha).to_owned(),
            more,
        }
    }

    /// "line 5, column 5" (or nothing when the error has no place).
    pub(crate) fn place(&self) -> String {
        match (self.line, self.column) {
            (Some(l), Some(c)) => format!("line {l}, column {c}"),
            (Some(l), None) => format!("line {l}"),
            _ => String::new(),
        }
    }
}

/// `path:line:column: message` → (line, column, message); other text is all message.
fn split_location<'a>(path: &str, text: &'a str) -> (Option<usize>, Option<usize>, &'a str) {
    let Some(rest) = text.strip_prefix(path).and_then(|r| r.strip_prefix(':')) else {
        return (None, None, text.trim());
    };
    let mut parts = rest.splitn(3, ':');
    let line = parts.next().and_then(|p| p.trim().parse().ok());
    let column = parts.next().and_then(|p| p.trim().parse().ok());
    match (line, column, parts.next()) {
        (Some(l), Some(c), Some(m)) => (Some(l), Some(c), m.trim()),
        _ => (None, None, text.trim()),
    }
}

/// The import error of `dag_id`'s file among `errors`: the file the DAG was last loaded
/// from, else a file named after the DAG.
pub(crate) fn for_dag(
    errors: &[ImportError],
    dag_id: &str,
    path: Option<&str>,
) -> Option<ImportBanner> {
    let stem = |p: &str| {
        std::path::Path::new(p)
            .file_stem()
            .and_then(|s| s.to_str())
            .map(str::to_owned)
    };
    errors
        .iter()
        .find(|e| Some(e.path.as_str()) == path)
        .or_else(|| {
            errors
                .iter()
                .find(|e| stem(&e.path).as_deref() == Some(dag_id))
        })
        .map(ImportBanner::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(path: &str, message: &str) -> ImportError {
        ImportError {
            environment: "dev".into(),
            path: path.into(),
            commit_sha: "0123456789abcdef".into(),
            message: message.into(),
            created_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn the_banner_names_file_line_column_and_message() {
        let errors = [
            error("dags/other.yaml", "dags/other.yaml:1:1: invalid YAML"),
            error(
                "dags/beta.yaml",
                "dags/beta.yaml:5:5: unknown key `retrys`, did you mean `retries`?\ndags/beta.yaml:6:1: more",
            ),
        ];
        let b = for_dag(&errors, "beta", Some("dags/beta.yaml")).unwrap_or_else(|| panic!("none"));
        assert_eq!(b.place(), "line 5, column 5");
        assert_eq!(b.message, "unknown key `retrys`, did you mean `retries`?");
        assert_eq!(b.more, 1);
        assert_eq!(b.commit, "0123456789");
        // Found by file name when the DAG never loaded from it.
        let b = for_dag(&errors, "other", None).unwrap_or_else(|| panic!("none"));
        assert_eq!(b.path, "dags/other.yaml");
        assert!(for_dag(&errors, "alpha", Some("dags/alpha.yaml")).is_none());
        // Text without a place is all message.
        let b = ImportBanner::new(&error("dags/x.yaml", "cannot read the file"));
        assert_eq!(
            (b.place().as_str(), b.message.as_str()),
            ("", "cannot read the file")
        );
    }
}
