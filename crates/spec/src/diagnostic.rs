//! Diagnostics: one precise, human-readable message per problem, located as `file:line:col`.

use std::fmt;

use serde::Serialize;

/// A 1-based line and column in a source file (columns count characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl Position {
    pub const START: Position = Position { line: 1, column: 1 };

    pub fn new(line: usize, column: usize) -> Self {
        Self { line, column }
    }
}

/// One problem found in a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
    /// The offending source line, if the position points into the file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snippet: Option<String>,
}

impl Diagnostic {
    pub fn new(file: &str, pos: Position, message: impl Into<String>) -> Self {
        Self {
            file: file.to_owned(),
            line: pos.line,
            column: pos.column,
            message: message.into(),
            snippet: None,
        }
    }

    /// Attach the source line the diagnostic points at.
    pub fn with_snippet_from(mut self, source: &str) -> Self {
        self.snippet = source
            .lines()
            .nth(self.line.saturating_sub(1))
            .map(|l| l.trim_end().to_owned())
            .filter(|l| !l.trim().is_empty());
        self
    }

    /// Attach `line` (the source line the diagnostic points at), found with [`SourceLines`].
    pub fn with_snippet(mut self, line: Option<&str>) -> Self {
        self.snippet = line
            .map(|l| l.trim_end().to_owned())
            .filter(|l| !l.trim().is_empty());
        self
    }

    pub fn position(&self) -> Position {
        Position::new(self.line, self.column)
    }
}

/// `file:line:col: message`, then the source line with a caret under the column.
impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )?;
        if let Some(snippet) = &self.snippet {
            let gutter = self.line.to_string();
            let pad = " ".repeat(gutter.len());
            let caret_pad: String = snippet
                .chars()
                .take(self.column.saturating_sub(1))
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            write!(
                f,
                "\n {pad} |\n {gutter} | {snippet}\n {pad} | {caret_pad}^"
            )?;
        }
        Ok(())
    }
}

/// A source's lines, indexed once: a snippet per diagnostic without rescanning the file (a
/// file with thousands of problems would otherwise cost lines × problems).
#[derive(Debug)]
pub struct SourceLines<'a> {
    source: &'a str,
    /// Byte offset where each line starts.
    starts: Vec<usize>,
}

impl<'a> SourceLines<'a> {
    pub fn index(source: &'a str) -> Self {
        let mut starts = vec![0];
        starts.extend(source.match_indices('\n').map(|(i, _)| i + 1));
        Self { source, starts }
    }

    /// Line `line` (1-based), as `str::lines` would give it.
    pub fn line(&self, line: usize) -> Option<&'a str> {
        let start = *self.starts.get(line.checked_sub(1)?)?;
        if start >= self.source.len() {
            return None;
        }
        let end = self
            .starts
            .get(line)
            .map_or(self.source.len(), |next| next - 1);
        let text = &self.source[start..end];
        Some(text.strip_suffix('\r').unwrap_or(text))
    }
}

/// Most diagnostics kept for one file: the rest are counted in one last message, so a file
/// with thousands of errors cannot make every listing of DAGs thousands of errors long.
pub const MAX_DIAGNOSTICS_PER_FILE: usize = 1_000;

/// Sort and dedupe (as [`sort_diagnostics`]), then keep the first
/// [`MAX_DIAGNOSTICS_PER_FILE`] and say how many more there were.
pub fn sort_and_cap(diags: &mut Vec<Diagnostic>) {
    sort_diagnostics(diags);
    if diags.len() > MAX_DIAGNOSTICS_PER_FILE {
        let more = diags.len() - MAX_DIAGNOSTICS_PER_FILE;
        diags.truncate(MAX_DIAGNOSTICS_PER_FILE);
        let last = diags[MAX_DIAGNOSTICS_PER_FILE - 1].clone();
        diags.push(Diagnostic::new(
            &last.file,
            last.position(),
            format!(
                "and {more} more problem(s) in this file (only the first {MAX_DIAGNOSTICS_PER_FILE} are listed)"
            ),
        ));
    }
}

/// Sort diagnostics by file, then position, and drop exact duplicates.
pub fn sort_diagnostics(diags: &mut Vec<Diagnostic>) {
    diags.sort_by(|a, b| {
        (a.file.as_str(), a.line, a.column, a.message.as_str()).cmp(&(
            b.file.as_str(),
            b.line,
            b.column,
            b.message.as_str(),
        ))
    });
    diags.dedup();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexed_lines_are_the_lines_of_the_text() {
        let src = "a\r\n\nccc\nlast";
        let lines = SourceLines::index(src);
        for (i, expected) in src.lines().enumerate() {
            assert_eq!(lines.line(i + 1), Some(expected));
        }
        assert_eq!(lines.line(0), None);
        assert_eq!(lines.line(5), None);
        assert_eq!(SourceLines::index("x\n").line(2), None);
    }

    #[test]
    fn a_long_list_is_cut_with_a_count_of_the_rest() {
        let mut diags: Vec<Diagnostic> = (0..1_500)
            .map(|i| Diagnostic::new("f.yaml", Position::new(i + 1, 1), "bad"))
            .collect();
        sort_and_cap(&mut diags);
        assert_eq!(diags.len(), MAX_DIAGNOSTICS_PER_FILE + 1);
        assert!(
            diags[MAX_DIAGNOSTICS_PER_FILE]
                .message
                .starts_with("and 500 more")
        );
    }

    #[test]
    fn displays_location_snippet_and_caret() {
        let src = "id: x\ntasks:\n  - id: a\n    dependson: [b]\n";
        let d = Diagnostic::new(
            "dags/x.yaml",
            Position::new(4, 5),
            "unknown key `dependson`",
        )
        .with_snippet_from(src);
        assert_eq!(
            d.to_string(),
            "dags/x.yaml:4:5: unknown key `dependson`\n   |\n 4 |     dependson: [b]\n   |     ^"
        );
    }
}
