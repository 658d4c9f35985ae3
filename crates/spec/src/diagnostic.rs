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
