//! Approving or rejecting the plan of a return that waits for approval (`returns:
//! { require_approval: true }`). Who may: an operator other than the DAG's last committer —
//! the author of the commit that last changed the DAG's file, up to the commit the run uses —
//! or any admin; a viewer never. Rejecting only stops a write, so any operator may.

use drover_spec::environment::Role;
use drover_store::{ApprovalRow, RunRow};
use uuid::Uuid;

use super::{Action, Actor, OpError, Operations};

/// The longest reason a rejection may give.
const REASON_CHARS: usize = 500;

/// Whether Drover user `user` is the git author `name` <`email`>: the same name, the same
/// address, or the address's part before `@` (case aside).
pub fn same_person(user: &str, name: &str, email: &str) -> bool {
    let user = user.trim();
    let local = email.split_once('@').map_or(email, |(l, _)| l);
    [name, email, local]
        .iter()
        .any(|v| !v.trim().is_empty() && v.trim().eq_ignore_ascii_case(user))
}

impl Operations {
    /// Approve the plan of task `task_id` of run `run_id`: the task is queued again and its
    /// next try writes, if its plan is still the one approved.
    pub async fn approve_return(
        &self,
        actor: &Actor,
        run_id: Uuid,
        task_id: &str,
    ) -> Result<ApprovalRow, OpError> {
        let run = self.store.get_run(run_id).await?;
        self.allowed(actor, Action::ApproveReturn, &run.environment)
            .await?;
        let pending = self.waiting(&run, task_id).await?;
        self.not_the_committer(actor, &run).await?;
        let mut tx = self.store.begin().await?;
        let row = tx.approve_return(pending.id, &actor.name).await?;
        tx.audit(
            &actor.name,
            "return.approved",
            Some(&run.environment),
            Some(&run.dag_id),
            Some(run.id),
            &serde_json::json!({
                "task": row.task_id,
                "approval": row.id,
                "plan": row.totals(),
                "digest": row.digest,
            }),
        )
        .await?;
        tx.commit().await?;
        Ok(row)
    }

    /// Reject the plan of task `task_id` of run `run_id`: the task fails with `reason`.
    pub async fn reject_return(
        &self,
        actor: &Actor,
        run_id: Uuid,
        task_id: &str,
        reason: &str,
    ) -> Result<ApprovalRow, OpError> {
        let run = self.store.get_run(run_id).await?;
        self.allowed(actor, Action::ApproveReturn, &run.environment)
            .await?;
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(OpError::Invalid(
                "say why the plan is rejected (`--reason …`): the reason goes into the task's error and log".to_owned(),
            ));
        }
        if reason.chars().count() > REASON_CHARS {
            return Err(OpError::Invalid(format!(
                "the reason is too long: at most {REASON_CHARS} characters"
            )));
        }
        let pending = self.waiting(&run, task_id).await?;
        let mut tx = self.store.begin().await?;
        let row = tx.reject_return(pending.id, &actor.name, reason).await?;
        tx.audit(
            &actor.name,
            "return.rejected",
            Some(&run.environment),
            Some(&run.dag_id),
            Some(run.id),
            &serde_json::json!({
                "task": row.task_id,
                "approval": row.id,
                "plan": row.totals(),
                "reason": reason,
            }),
        )
        .await?;
        tx.commit().await?;
        Ok(row)
    }

    /// Who last changed the DAG of `run` (name, email), when it came from git; `None` for
    /// DAGs read from a folder.
    pub async fn last_committer(&self, run: &RunRow) -> Result<Option<(String, String)>, OpError> {
        let version = self.store.dag_version(run.version_id).await?;
        let Some(commit) = run.commit_sha.clone().or(version.commit_sha) else {
            return Ok(None);
        };
        let Some(git) = &self.git else {
            return Err(OpError::Unavailable(format!(
                "cannot tell who last changed `{}`: this Drover process has no DAG repository (start it with --repo or DROVER_REPO); an admin may approve meanwhile",
                run.dag_id
            )));
        };
        Ok(git.last_author(&commit, &version.path).await?)
    }

    /// The request waiting on `task_id` of `run`.
    async fn waiting(&self, run: &RunRow, task_id: &str) -> Result<ApprovalRow, OpError> {
        if let Some(row) = self.store.pending_approval(run.id, task_id).await? {
            return Ok(row);
        }
        let tis = self.store.task_instances(run.id).await?;
        match tis.iter().find(|t| t.task_id == task_id) {
            None => Err(OpError::NotFound(format!(
                "run {} has no task `{task_id}`",
                run.id
            ))),
            Some(t) => Err(OpError::Conflict(format!(
                "`{task_id}` of run {} does not wait for approval (it is {}): it may have been approved, rejected or timed out already",
                run.id,
                t.state.0.as_str().replace('_', " ")
            ))),
        }
    }

    /// Refuse `actor` if they made the last change to the DAG (admins may anyway).
    async fn not_the_committer(&self, actor: &Actor, run: &RunRow) -> Result<(), OpError> {
        if actor.role_in(Some(&run.environment)) == Role::Admin {
            return Ok(());
        }
        let committer = self.last_committer(run).await.map_err(|e| match e {
            OpError::Unavailable(m) => OpError::Forbidden(m),
            e => e,
        })?;
        if let Some((name, email)) = committer
            && same_person(&actor.name, &name, &email)
        {
            return Err(OpError::Forbidden(format!(
                "refused: {} made the last change to `{}` (as {name} <{email}>), so someone else must approve what it writes to {}: another operator, or an admin",
                actor.name, run.dag_id, run.environment
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::same_person;

    #[test]
    fn a_drover_user_is_matched_to_a_git_author_by_name_or_address() {
        assert!(same_person("olga", "olga", "o.k@example.com"));
        assert!(same_person("olga", "Olga Petrova", "olga@example.com"));
        assert!(same_person("Olga@Example.com", "O", "olga@example.com"));
        assert!(same_person("Olga", "olga", ""));
        assert!(!same_person("olga", "Olgan", "olgan@example.com"));
        assert!(!same_person("olga", "", ""));
        assert!(!same_person("", "", ""));
    }
}
