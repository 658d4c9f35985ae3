//! Promotion and rollback between environments, with their gates: every DAG at the commit
//! validates; each changed DAG ran successfully in the environment below with the same file
//! content (where the environment asks); a second person approves (where the environment
//! asks).

use drover_spec::environment::Environment;
use drover_store::{DeploymentRow, Store};

use crate::EngineError;
use crate::git_source::{Deploy, GitSource, Plan};

/// What a promotion request came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PromotionOutcome {
    /// Applied: the environment now runs the commit.
    Applied {
        commit: String,
        changed: Vec<String>,
    },
    /// Waiting for another person's approval (request id).
    AwaitingApproval { request: i64, commit: String },
}

/// Why a promotion was refused: a message meant for the person who asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// The environments, in promotion order, as the store has them.
pub async fn environments(store: &Store) -> Result<Vec<Environment>, EngineError> {
    let mut envs = Vec::new();
    for row in store.environments().await? {
        let env: Environment = serde_json::from_value(row.spec).map_err(|e| {
            EngineError::Invalid(format!(
                "environment `{}` is stored in an unknown shape: {e}",
                row.name
            ))
        })?;
        envs.push(env);
    }
    envs.sort_by_key(|e| e.order);
    Ok(envs)
}

fn find<'a>(envs: &'a [Environment], name: &str) -> Result<&'a Environment, EngineError> {
    envs.iter().find(|e| e.name == name).ok_or_else(|| {
        let hint =
            drover_spec::environment::suggest_name(name, envs.iter().map(|e| e.name.as_str()));
        EngineError::Invalid(format!("no environment `{name}`{hint}"))
    })
}

/// Check the gates for moving `target` to `plan`'s commit. A refusal says what would satisfy
/// it: the command to run, and where.
async fn check_gates(
    store: &Store,
    target: &Environment,
    below: Option<&Environment>,
    plan: &Plan,
) -> Result<(), EngineError> {
    if !plan.errors.is_empty() {
        let list: Vec<String> = plan
            .errors
            .iter()
            .map(|(p, m)| format!("  {p}: {}", m.lines().next().unwrap_or("")))
            .collect();
        return Err(EngineError::Invalid(format!(
            "refused: {} DAG file(s) do not validate at {}:\n{}\n\
             Fix them (`drover dags validate` shows every problem, file:line:col), commit, then promote again.",
            plan.errors.len(),
            short(&plan.commit),
            list.join("\n")
        )));
    }
    if target.promotion.require_success_below {
        let Some(below) = below else {
            return Err(EngineError::Invalid(format!(
                "refused: `{}` has no environment below it to have run the DAGs",
                target.name
            )));
        };
        missing_below(store, target, below, plan).await?;
    }
    Ok(())
}

/// The gate `require_success_below` checks content, not commits: a changed DAG passes when
/// its file, byte for byte (its blob id), ran clean in `below` at any commit, so a commit
/// that only touched another DAG or a README does not ask for the run again.
async fn missing_below(
    store: &Store,
    target: &Environment,
    below: &Environment,
    plan: &Plan,
) -> Result<(), EngineError> {
    let contents: Vec<(String, String)> = plan
        .upserts
        .iter()
        .map(|u| (u.dag_id.clone(), u.blob_id.clone()))
        .collect();
    let ok = store.dags_succeeded_with(&below.name, &contents).await?;
    let missing: Vec<&drover_store::VersionSync> = plan
        .upserts
        .iter()
        .filter(|u| !ok.contains(&u.dag_id))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let runs_below = store.environment_blobs(&below.name).await?;
    let mut lines = Vec::with_capacity(missing.len());
    for u in &missing {
        let (dag, env) = (&u.dag_id, &below.name);
        lines.push(if runs_below.get(dag) == Some(&u.blob_id) {
            format!(
                "  {dag} has not run clean in {env} at this content; run it there: \
                 `drover runs trigger {dag} --env {env}` and wait for it to succeed"
            )
        } else {
            let bring = match &below.branch {
                Some(branch) => format!("commit it to `{branch}`, which {env} follows"),
                None => format!(
                    "`drover env promote {env} --commit {}`",
                    short(&plan.commit)
                ),
            };
            format!(
                "  {dag} has not run clean in {env} at this content, and {env} runs another \
                 version of it: bring this version into {env} first ({bring}), then run it \
                 there: `drover runs trigger {dag} --env {env}` and wait for it to succeed"
            )
        });
    }
    let names: Vec<&str> = missing.iter().map(|u| u.dag_id.as_str()).collect();
    Err(EngineError::Invalid(format!(
        "refused: `{}` takes a changed DAG only once its content ran clean in `{}`; not yet \
         at {}: {}\n{}\nthen promote again.",
        target.name,
        below.name,
        short(&plan.commit),
        names.join(", "),
        lines.join("\n")
    )))
}

pub fn short(commit: &str) -> &str {
    &commit[..commit.len().min(10)]
}

/// Promote into `target` the commit `from` runs (default: the environment below), or an
/// explicit `commit`.
pub async fn promote(
    store: &Store,
    git: &GitSource,
    target: &str,
    from: Option<&str>,
    commit: Option<&str>,
    actor: &str,
    note: Option<&str>,
) -> Result<PromotionOutcome, EngineError> {
    let envs = environments(store).await?;
    let env = find(&envs, target)?;
    if env.branch.is_some() {
        return Err(EngineError::Invalid(format!(
            "refused: `{}` tracks the branch `{}`: commit to it instead of promoting",
            env.name,
            env.branch.as_deref().unwrap_or_default()
        )));
    }
    let below = envs.iter().rev().find(|e| e.order < env.order);
    let source_env = match from {
        Some(name) => Some(find(&envs, name)?),
        None => below,
    };
    let commit = match (commit, source_env) {
        (Some(c), _) => git.resolve(c).await?,
        (None, Some(src)) => store
            .current_deployment(&src.name)
            .await?
            .map(|d| d.commit_sha)
            .ok_or_else(|| {
                EngineError::Invalid(format!(
                    "refused: `{}` runs no commit yet: promote into it first, or give --commit",
                    src.name
                ))
            })?,
        (None, None) => {
            return Err(EngineError::Invalid(
                "refused: give --commit or --from".to_owned(),
            ));
        }
    };
    let plan = git.plan(store, &env.name, &commit).await?;
    check_gates(store, env, below, &plan).await?;
    if env.promotion.require_approval {
        let request = store
            .request_promotion(
                &env.name,
                &commit,
                source_env.map(|e| e.name.as_str()),
                actor,
                note,
            )
            .await?;
        return Ok(PromotionOutcome::AwaitingApproval { request, commit });
    }
    applied(
        store,
        git,
        env,
        plan,
        &Deploy {
            kind: "promote",
            actor,
            approved_by: None,
            note,
        },
        commit,
    )
    .await
}

/// Approve the promotion waiting for `target`: by someone other than who asked; the gates are
/// checked again, since the environment below may have changed meanwhile.
pub async fn approve(
    store: &Store,
    git: &GitSource,
    target: &str,
    actor: &str,
) -> Result<PromotionOutcome, EngineError> {
    let envs = environments(store).await?;
    let env = find(&envs, target)?;
    let request = store.pending_promotion(&env.name).await?.ok_or_else(|| {
        EngineError::Invalid(format!(
            "no promotion into `{target}` is waiting for approval"
        ))
    })?;
    if request.requested_by == actor {
        return Err(EngineError::Invalid(format!(
            "refused: {actor} asked for this promotion; it needs the approval of a different person: another operator (or an admin) runs `drover env approve {target}`"
        )));
    }
    let below = envs.iter().rev().find(|e| e.order < env.order);
    let plan = git.plan(store, &env.name, &request.commit_sha).await?;
    check_gates(store, env, below, &plan).await?;
    // Marked applied in the transaction that applies it: a move that fails leaves it pending.
    git.apply_request(
        store,
        env,
        &plan,
        &Deploy {
            kind: "promote",
            actor: &request.requested_by,
            approved_by: Some(actor),
            note: request.note.as_deref(),
        },
        request.id,
    )
    .await?;
    Ok(PromotionOutcome::Applied {
        changed: plan.changed_dags(),
        commit: request.commit_sha,
    })
}

/// Reject the promotion waiting for `target`.
pub async fn reject(store: &Store, target: &str, actor: &str) -> Result<(), EngineError> {
    let request = store.pending_promotion(target).await?.ok_or_else(|| {
        EngineError::Invalid(format!(
            "no promotion into `{target}` is waiting for approval"
        ))
    })?;
    store
        .decide_promotion(request.id, "rejected", actor)
        .await?;
    Ok(())
}

/// Go back to the commit `target` ran before its current deployment.
pub async fn rollback(
    store: &Store,
    git: &GitSource,
    target: &str,
    actor: &str,
    note: Option<&str>,
) -> Result<PromotionOutcome, EngineError> {
    let envs = environments(store).await?;
    let env = find(&envs, target)?;
    let current = store.current_deployment(&env.name).await?.ok_or_else(|| {
        EngineError::Invalid(format!(
            "refused: `{target}` has no deployment to roll back"
        ))
    })?;
    roll_back(store, git, env, &current, actor, note).await
}

/// Undo the deployment `seen` (its environment's current one, as the caller saw it): go back
/// to the commit before it. The environment moves only from `seen`'s commit: if anything
/// moved it since, the rollback is refused rather than undoing a deployment nobody looked at.
pub async fn rollback_deployment(
    store: &Store,
    git: &GitSource,
    seen: &DeploymentRow,
    actor: &str,
    note: Option<&str>,
) -> Result<PromotionOutcome, EngineError> {
    let envs = environments(store).await?;
    let env = find(&envs, &seen.environment)?;
    roll_back(store, git, env, seen, actor, note).await
}

async fn roll_back(
    store: &Store,
    git: &GitSource,
    env: &Environment,
    seen: &DeploymentRow,
    actor: &str,
    note: Option<&str>,
) -> Result<PromotionOutcome, EngineError> {
    let previous = seen.previous_sha.clone().ok_or_else(|| {
        EngineError::Invalid(format!(
            "refused: `{}` has no earlier commit to go back to",
            env.name
        ))
    })?;
    let mut plan = git.plan(store, &env.name, &previous).await?;
    // The plan reads the environment's commit again; what this undoes is `seen`, so that is
    // the commit it moves from (a promotion landing in between is refused, not undone too).
    plan.from = Some(seen.commit_sha.clone());
    applied(
        store,
        git,
        env,
        plan,
        &Deploy {
            kind: "rollback",
            actor,
            approved_by: None,
            note,
        },
        previous,
    )
    .await
}

/// Move `env` as planned and say so.
async fn applied(
    store: &Store,
    git: &GitSource,
    env: &Environment,
    plan: Plan,
    by: &Deploy<'_>,
    commit: String,
) -> Result<PromotionOutcome, EngineError> {
    git.apply(store, env, &plan, by).await?;
    Ok(PromotionOutcome::Applied {
        changed: plan.changed_dags(),
        commit,
    })
}
