//! The revert jobs of a run's return tasks, in words for the run page.

use drover_store::{RevertJob, Store, StoreError};
use uuid::Uuid;

use crate::views::format::thousands;

/// One return task's newest revert, as the page shows it.
#[derive(Debug, Clone)]
pub(crate) struct RevertLine {
    pub(crate) task: String,
    /// "Reverting: 40,000 of 100,000 records", "Reverted: 10 restored, 2 skipped (changed since)".
    pub(crate) text: String,
    pub(crate) unfinished: bool,
    /// A failed job may be asked again.
    pub(crate) failed: bool,
    pub(crate) skipped_keys: Vec<String>,
}

/// Whether the page offers Revert for `task`: not while a job is unfinished, nor after one
/// that completed.
pub(crate) fn may_revert(lines: &[RevertLine], task: &str) -> bool {
    !lines.iter().any(|l| l.task == task && !l.failed)
}

pub(crate) async fn load(store: &Store, run: Uuid) -> Result<Vec<RevertLine>, StoreError> {
    Ok(store.latest_reverts(run).await?.iter().map(line).collect())
}

fn line(j: &RevertJob) -> RevertLine {
    let text = match j.state.as_str() {
        "queued" => "Revert queued: waiting for a worker".to_owned(),
        "running" => match j.total {
            Some(t) => format!(
                "Reverting: {} of {} records",
                thousands(j.processed),
                thousands(t)
            ),
            None => "Reverting: reading the receipt".to_owned(),
        },
        "failed" => format!(
            "Revert failed after {} of {} records ({} restored): {}",
            thousands(j.processed),
            thousands(j.total.unwrap_or(0)),
            thousands(j.restored),
            j.error.as_deref().unwrap_or("no reason recorded")
        ),
        _ => {
            let mut t = format!(
                "Reverted: {} restored, {} skipped (changed since)",
                thousands(j.restored),
                thousands(j.skipped_changed)
            );
            if j.refused > 0 {
                t.push_str(&format!(", {} refused by Marketo", thousands(j.refused)));
            }
            if j.created_left > 0 {
                t.push_str(&format!(
                    ", {} created by the return left in place",
                    thousands(j.created_left)
                ));
            }
            t
        }
    };
    RevertLine {
        task: j.task_id.clone(),
        text,
        unfinished: j.unfinished(),
        failed: j.state == "failed",
        skipped_keys: j.skipped_keys.iter().take(50).cloned().collect(),
    }
}
