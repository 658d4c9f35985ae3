//! Which commit each environment runs: deployments (sync, promote, rollback), promotion
//! requests waiting for approval, and import errors.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::FromRow;

use crate::{Result, Store, StoreError, VersionSync};

#[derive(Debug, Clone, FromRow, serde::Serialize)]
pub struct DeploymentRow {
    pub id: i64,
    pub environment: String,
    pub commit_sha: String,
    pub previous_sha: Option<String>,
    pub kind: String,
    pub actor: String,
    pub approved_by: Option<String>,
    pub note: Option<String>,
    pub changed_dags: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, FromRow, serde::Serialize)]
pub struct PromotionRequest {
    pub id: i64,
    pub environment: String,
    pub commit_sha: String,
    pub from_environment: Option<String>,
    pub requested_by: String,
    pub note: Option<String>,
    pub state: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, FromRow, serde::Serialize)]
pub struct ImportError {
    pub environment: String,
    pub path: String,
    pub commit_sha: String,
    pub message: String,
    pub created_at: DateTime<Utc>,
}

/// What to record when an environment moves to a commit.
#[derive(Debug, Clone)]
pub struct CommitChange<'a> {
    pub environment: &'a str,
    pub commit: &'a str,
    /// DAGs whose content is new to this environment.
    pub upserts: &'a [VersionSync],
    /// DAGs no longer in the repository.
    pub removed: &'a [String],
    /// Files that fail validation: (path, message). Their DAGs keep their last good version.
    pub errors: &'a [(String, String)],
    pub new_paused: bool,
    pub kind: &'a str,
    pub actor: &'a str,
    pub approved_by: Option<&'a str>,
    pub note: Option<&'a str>,
    /// The commit the environment ran when this change was planned (`None`: none yet). It
    /// moves only from there: if it moved meanwhile the change is refused (compare and set).
    pub expected_from: Option<&'a str>,
    /// The pending promotion request this change applies: marked applied in the same
    /// transaction, so a change that fails leaves it pending.
    pub applies_request: Option<i64>,
}

/// The first characters of a commit id, as people read them.
fn short(commit: &str) -> &str {
    &commit[..commit.len().min(10)]
}

const DEPLOYMENT_COLUMNS: &str = "id, environment, commit_sha, previous_sha, kind, actor, approved_by, note, changed_dags, created_at";

impl Store {
    /// The current deployment of `environment`, if it has one.
    pub async fn current_deployment(&self, environment: &str) -> Result<Option<DeploymentRow>> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {DEPLOYMENT_COLUMNS} from deployment where environment = $1 order by id desc limit 1"
        )))
        .bind(environment)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Deployments of `environment`, newest first.
    pub async fn deployments(&self, environment: &str, limit: i64) -> Result<Vec<DeploymentRow>> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {DEPLOYMENT_COLUMNS} from deployment where environment = $1 order by id desc limit $2"
        )))
        .bind(environment)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The blob each active DAG of `environment` runs, by DAG id.
    pub async fn environment_blobs(&self, environment: &str) -> Result<HashMap<String, String>> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "select d.dag_id, v.blob_id from dag_env d join dag_version v on v.id = d.version_id \
             where d.environment = $1 and d.active",
        )
        .bind(environment)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().collect())
    }

    /// Move `environment` to a commit, all or nothing: new versions, removed DAGs, the import
    /// errors of its broken files, a deployment row and (for promotions and rollbacks) an audit
    /// event. A sync to the commit the environment already runs records no deployment.
    pub async fn apply_commit(&self, change: &CommitChange<'_>) -> Result<Option<i64>> {
        let mut tx = self.pool.begin().await?;
        // One change of an environment at a time.
        sqlx::query("select 1 from environment where name = $1 for update")
            .bind(change.environment)
            .execute(&mut *tx)
            .await?;
        let previous: Option<String> = sqlx::query_scalar(
            "select commit_sha from deployment where environment = $1 order by id desc limit 1",
        )
        .bind(change.environment)
        .fetch_optional(&mut *tx)
        .await?;
        if previous.as_deref() != change.expected_from {
            let name = |c: Option<&str>| c.map_or("no commit".to_owned(), |c| short(c).to_owned());
            return Err(StoreError::Conflict(format!(
                "refused: {} moved from {} to {} while this {} was being checked; look again and retry",
                change.environment,
                name(change.expected_from),
                name(previous.as_deref()),
                match change.kind {
                    "promote" => "promotion",
                    other => other,
                },
            )));
        }
        if let Some(request) = change.applies_request {
            let pending: Option<String> = sqlx::query_scalar(
                "update promotion_request set state = 'applied', decided_by = $2, decided_at = now() \
                 where id = $1 and environment = $3 and state = 'pending' returning environment",
            )
            .bind(request)
            .bind(change.approved_by.unwrap_or(change.actor))
            .bind(change.environment)
            .fetch_optional(&mut *tx)
            .await?;
            if pending.is_none() {
                return Err(StoreError::Conflict(
                    "the request was decided meanwhile".to_owned(),
                ));
            }
            crate::audit::record(
                &mut tx,
                change.approved_by.unwrap_or(change.actor),
                "environment.promotion_approved",
                Some(change.environment),
                None,
                None,
                &serde_json::json!({ "request": request }),
            )
            .await?;
        }
        crate::dags::upsert_versions(
            &mut tx,
            change.environment,
            change.upserts,
            change.new_paused,
        )
        .await?;
        if !change.removed.is_empty() {
            sqlx::query(
                "update dag_env set active = false, updated_at = now() \
                 where environment = $1 and active and dag_id = any($2)",
            )
            .bind(change.environment)
            .bind(change.removed)
            .execute(&mut *tx)
            .await?;
        }
        crate::dataset_links::refresh(
            &mut tx,
            change.environment,
            !change.upserts.is_empty() || !change.removed.is_empty(),
        )
        .await?;
        let paths: Vec<&str> = change.errors.iter().map(|e| e.0.as_str()).collect();
        let messages: Vec<&str> = change.errors.iter().map(|e| e.1.as_str()).collect();
        sqlx::query("delete from import_error where environment = $1 and not (path = any($2))")
            .bind(change.environment)
            .bind(&paths)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "insert into import_error (environment, path, commit_sha, message) \
             select $1, p, $2, m from unnest($3::text[], $4::text[]) as e(p, m) \
             on conflict (environment, path) do update set commit_sha = excluded.commit_sha, \
               message = excluded.message, created_at = case when import_error.message = excluded.message \
               then import_error.created_at else now() end",
        )
        .bind(change.environment)
        .bind(change.commit)
        .bind(&paths)
        .bind(&messages)
        .execute(&mut *tx)
        .await?;
        let mut deployment = None;
        if previous.as_deref() != Some(change.commit) || change.kind != "sync" {
            let mut changed: Vec<&str> = change.upserts.iter().map(|u| u.dag_id.as_str()).collect();
            changed.extend(change.removed.iter().map(String::as_str));
            let details = serde_json::json!(changed);
            let id: i64 = sqlx::query_scalar(
                "insert into deployment (environment, commit_sha, previous_sha, kind, actor, approved_by, note, changed_dags) \
                 values ($1, $2, $3, $4, $5, $6, $7, $8) returning id",
            )
            .bind(change.environment)
            .bind(change.commit)
            .bind(&previous)
            .bind(change.kind)
            .bind(change.actor)
            .bind(change.approved_by)
            .bind(change.note)
            .bind(&details)
            .fetch_one(&mut *tx)
            .await?;
            if change.kind != "sync" {
                crate::audit::record(
                    &mut tx,
                    change.actor,
                    &format!("environment.{}", change.kind),
                    Some(change.environment),
                    None,
                    None,
                    &serde_json::json!({
                        "from": previous, "to": change.commit, "changed_dags": changed,
                        "approved_by": change.approved_by, "note": change.note,
                    }),
                )
                .await?;
            }
            deployment = Some(id);
        }
        tx.commit().await?;
        Ok(deployment)
    }

    /// Import errors of an environment (or all).
    pub async fn import_errors(&self, environment: Option<&str>) -> Result<Vec<ImportError>> {
        Ok(sqlx::query_as(
            "select environment, path, commit_sha, message, created_at from import_error \
             where ($1::text is null or environment = $1) order by environment, path",
        )
        .bind(environment)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Of `(dag_id, blob_id)` pairs, the DAG ids with a successful run in `environment` of
    /// the version with that content (at whatever commit it ran): a preview run, which sent
    /// nothing, does not count.
    pub async fn dags_succeeded_with(
        &self,
        environment: &str,
        contents: &[(String, String)],
    ) -> Result<Vec<String>> {
        let (ids, blobs): (Vec<&str>, Vec<&str>) = contents
            .iter()
            .map(|(d, b)| (d.as_str(), b.as_str()))
            .unzip();
        Ok(sqlx::query_scalar(
            "select v.dag_id from unnest($2::text[], $3::text[]) as c(dag_id, blob_id) \
             join dag_version v on v.dag_id = c.dag_id and v.blob_id = c.blob_id \
             where exists (select 1 from dag_run r where r.environment = $1 \
                           and r.version_id = v.id and r.state = 'success' and not r.preview) \
             order by v.dag_id",
        )
        .bind(environment)
        .bind(ids)
        .bind(blobs)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Ask for a promotion that needs approval. Only one may wait per environment.
    pub async fn request_promotion(
        &self,
        environment: &str,
        commit: &str,
        from: Option<&str>,
        actor: &str,
        note: Option<&str>,
    ) -> Result<i64> {
        let mut tx = self.pool.begin().await?;
        let id: Option<i64> = sqlx::query_scalar(
            "insert into promotion_request (environment, commit_sha, from_environment, requested_by, note, state) \
             values ($1, $2, $3, $4, $5, 'pending') on conflict (environment) where state = 'pending' do nothing returning id",
        )
        .bind(environment)
        .bind(commit)
        .bind(from)
        .bind(actor)
        .bind(note)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(id) = id else {
            return Err(StoreError::Conflict(format!(
                "refused: a promotion into `{environment}` is already waiting for approval: someone other than who asked runs `drover env approve {environment}` (or `drover env reject {environment}`), then promote again"
            )));
        };
        crate::audit::record(
            &mut tx,
            actor,
            "environment.promotion_requested",
            Some(environment),
            None,
            None,
            &serde_json::json!({ "request": id, "commit": commit, "from": from, "note": note }),
        )
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    pub async fn pending_promotion(&self, environment: &str) -> Result<Option<PromotionRequest>> {
        Ok(sqlx::query_as(
            "select id, environment, commit_sha, from_environment, requested_by, note, state, created_at \
             from promotion_request where environment = $1 and state = 'pending'",
        )
        .bind(environment)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Close a pending request (applied or rejected) by `actor`; false if it was not pending.
    pub async fn decide_promotion(&self, id: i64, state: &str, actor: &str) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let env: Option<String> = sqlx::query_scalar(
            "update promotion_request set state = $2, decided_by = $3, decided_at = now() \
             where id = $1 and state = 'pending' returning environment",
        )
        .bind(id)
        .bind(state)
        .bind(actor)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(env) = &env {
            crate::audit::record(
                &mut tx,
                actor,
                if state == "applied" {
                    "environment.promotion_approved"
                } else {
                    "environment.promotion_rejected"
                },
                Some(env),
                None,
                None,
                &serde_json::json!({ "request": id }),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(env.is_some())
    }
}
