//! The words of Drover's pages, each with a short explanation: shown on hover where a term
//! appears (`title="{{ crate::views::glossary::meaning("run") }}"`) and all together on
//! `/help/glossary`.

/// One term.
pub(crate) struct Term {
    pub(crate) key: &'static str,
    pub(crate) word: &'static str,
    pub(crate) meaning: &'static str,
}

/// Every term, in the order the glossary page lists them.
pub(crate) const TERMS: &[Term] = &[
    Term {
        key: "dag",
        word: "DAG",
        meaning: "A workflow: named tasks and the order they run in (a directed acyclic graph), written in one YAML file.",
    },
    Term {
        key: "run",
        word: "Run",
        meaning: "One go of a DAG for one data interval: every task, once (tasks may retry).",
    },
    Term {
        key: "data_interval",
        word: "Data interval",
        meaning: "The stretch of time whose data a run covers, e.g. yesterday for a daily run.",
    },
    Term {
        key: "logical_date",
        word: "Logical date",
        meaning: "The start of a run's data interval: the date a run is for, not when it ran.",
    },
    Term {
        key: "version",
        word: "Version",
        meaning: "The exact DAG file a run used: the commit it came from and its content hash.",
    },
    Term {
        key: "content_hash",
        word: "Content hash",
        meaning: "A fingerprint of the DAG file's text: the same hash means the very same file.",
    },
    Term {
        key: "try",
        word: "Try",
        meaning: "One attempt at a task. \"Try 2 of 4\": the second attempt, with up to 4 allowed before the task fails.",
    },
    Term {
        key: "export",
        word: "Export",
        meaning: "A task that reads leads or activities out of the marketing platform into a staged table.",
    },
    Term {
        key: "transform",
        word: "Transform",
        meaning: "A task that reshapes staged rows with SQL steps (normalize, dedupe, join); nothing leaves Drover.",
    },
    Term {
        key: "return",
        word: "Return",
        meaning: "A task that writes rows back to the marketing platform, keeping a receipt of each record's old and new values.",
    },
    Term {
        key: "receipt",
        word: "Receipt",
        meaning: "What a return sent, record by record, with the values before and the platform's answer (accepted or rejected and why).",
    },
    Term {
        key: "check",
        word: "Check",
        meaning: "A task that measures the data (a SQL value or a count in the platform) against thresholds; severity fail stops the run, warn only warns.",
    },
    Term {
        key: "slo",
        word: "SLO",
        meaning: "Service level objective: how often a check must hold over a period, e.g. 95% of checks over 28 days.",
    },
    Term {
        key: "indicator",
        word: "Indicator",
        meaning: "The share of checks that held over the SLO's period (the service level indicator).",
    },
    Term {
        key: "error_budget",
        word: "Error budget",
        meaning: "The failures an SLO allows in its period (5% of checks for a 95% objective); spent by each failed check.",
    },
    Term {
        key: "burn_rate",
        word: "Burn rate",
        meaning: "How fast the error budget is being spent: 1× spends it exactly over the period, 14× in about two days.",
    },
    Term {
        key: "freshness",
        word: "Freshness",
        meaning: "How recent a DAG's data (its last successful run) or a task's (its last successful try) must be; older than that it is stale, even when nothing failed.",
    },
    Term {
        key: "map",
        word: "MAP",
        meaning: "The marketing automation platform an environment writes to (Marketo).",
    },
];

/// The explanation of `key` (empty for a key without one; a test keeps templates honest).
pub(crate) fn meaning(key: &str) -> &'static str {
    TERMS
        .iter()
        .find(|t| t.key == key)
        .map_or("", |t| t.meaning)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `glossary::meaning("…")` in a template names a term with an explanation.
    #[test]
    fn every_term_used_has_an_entry() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web/templates");
        let mut used = 0;
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{e}")) {
            let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
            for piece in text.split("glossary::meaning(\"").skip(1) {
                let key = piece.split('"').next().unwrap_or_default();
                assert!(
                    !meaning(key).is_empty(),
                    "{} uses the term `{key}`, which the glossary lacks",
                    path.display()
                );
                used += 1;
            }
        }
        assert!(used >= 5, "only {used} terms explained on the pages");
        let mut keys: Vec<&str> = TERMS.iter().map(|t| t.key).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), TERMS.len(), "a term is listed twice");
    }
}
