//! Environments, DAG versions, and which version each environment runs.

use chrono::{DateTime, Utc};
use sqlx::FromRow;

use crate::{Result, Store, StoreError};

#[derive(Debug, Clone, FromRow, serde::Serialize)]
pub struct EnvironmentRow {
    pub name: String,
    pub ord: i32,
    pub spec: serde_json::Value,
}

#[derive(Debug, Clone, FromRow)]
pub struct DagVersionRow {
    pub id: i64,
    pub dag_id: String,
    pub path: String,
    pub blob_id: String,
    pub commit_sha: Option<String>,
    pub source: String,
}

#[derive(Debug, Clone, FromRow, serde::Serialize)]
pub struct DagEnvRow {
    pub dag_id: String,
    pub environment: String,
    pub version_id: i64,
    pub paused: bool,
    pub active: bool,
    pub updated_at: DateTime<Utc>,
}

/// One DAG file seen in a source, to record as a version.
#[derive(Debug, Clone)]
pub struct VersionSync {
    pub dag_id: String,
    pub path: String,
    pub blob_id: String,
    pub commit_sha: Option<String>,
    pub source: String,
}

impl Store {
    pub async fn upsert_environment(
        &self,
        name: &str,
        ord: i32,
        spec: &serde_json::Value,
    ) -> Result<()> {
        sqlx::query(
            "insert into environment (name, ord, spec) values ($1, $2, $3) \
             on conflict (name) do update set ord = excluded.ord, spec = excluded.spec, updated_at = now() \
             where environment.spec is distinct from excluded.spec or environment.ord <> excluded.ord",
        )
        .bind(name)
        .bind(ord)
        .bind(spec)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn environments(&self) -> Result<Vec<EnvironmentRow>> {
        Ok(
            sqlx::query_as("select name, ord, spec from environment order by ord")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// Record `files` as the DAGs `environment` runs: new contents become versions, each DAG
    /// points at its version (new DAGs paused if `new_paused`), and DAGs no longer present are
    /// marked inactive. Returns the number of DAGs whose version changed.
    pub async fn sync_versions(
        &self,
        environment: &str,
        files: &[VersionSync],
        new_paused: bool,
    ) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        let changed = upsert_versions(&mut tx, environment, files, new_paused).await?;
        let ids: Vec<&str> = files.iter().map(|f| f.dag_id.as_str()).collect();
        let removed = sqlx::query(
            "update dag_env set active = false, updated_at = now() \
             where environment = $1 and active and not (dag_id = any($2))",
        )
        .bind(environment)
        .bind(&ids)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        crate::dataset_links::refresh(&mut tx, environment, changed + removed > 0).await?;
        tx.commit().await?;
        Ok(changed)
    }

    /// Record `file` as a version of its DAG, without making it what any environment runs
    /// (a test run of a file as it is on disk); its id (the existing one for known content).
    pub async fn record_version(&self, file: &VersionSync) -> Result<i64> {
        let id: Option<i64> = sqlx::query_scalar(
            "with new as ( \
               insert into dag_version (dag_id, path, blob_id, commit_sha, source) \
               values ($1, $2, $3, $4, $5) on conflict (dag_id, blob_id) do nothing returning id) \
             select id from new union all \
             select id from dag_version where dag_id = $1 and blob_id = $3 limit 1",
        )
        .bind(&file.dag_id)
        .bind(&file.path)
        .bind(&file.blob_id)
        .bind(&file.commit_sha)
        .bind(&file.source)
        .fetch_optional(&self.pool)
        .await?;
        id.ok_or_else(|| StoreError::Conflict(format!("version of `{}` not recorded", file.dag_id)))
    }

    pub async fn dag_version(&self, id: i64) -> Result<DagVersionRow> {
        sqlx::query_as(
            "select id, dag_id, path, blob_id, commit_sha, source from dag_version where id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("no DAG version {id}")))
    }

    /// Active DAGs of every environment (or one).
    pub async fn dag_envs(&self, environment: Option<&str>) -> Result<Vec<DagEnvRow>> {
        Ok(sqlx::query_as(
            "select dag_id, environment, version_id, paused, active, updated_at from dag_env \
             where active and ($1::text is null or environment = $1) order by environment, dag_id",
        )
        .bind(environment)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn dag_env(&self, dag_id: &str, environment: &str) -> Result<DagEnvRow> {
        sqlx::query_as(
            "select dag_id, environment, version_id, paused, active, updated_at from dag_env \
             where dag_id = $1 and environment = $2",
        )
        .bind(dag_id)
        .bind(environment)
        .fetch_optional(&self.pool)
        .await?
        .filter(|d: &DagEnvRow| d.active)
        .ok_or_else(|| {
            StoreError::NotFound(format!("no DAG `{dag_id}` in environment `{environment}`"))
        })
    }

    /// Pause or unpause; returns false if it already was in that state. Records an audit event.
    pub async fn set_paused(
        &self,
        dag_id: &str,
        environment: &str,
        paused: bool,
        actor: &str,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let changed = sqlx::query(
            "update dag_env set paused = $3, updated_at = now() \
             where dag_id = $1 and environment = $2 and paused <> $3",
        )
        .bind(dag_id)
        .bind(environment)
        .bind(paused)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed > 0 {
            crate::audit::record(
                &mut tx,
                actor,
                if paused { "dag.pause" } else { "dag.unpause" },
                Some(environment),
                Some(dag_id),
                None,
                &serde_json::json!({}),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(changed > 0)
    }
}

/// Record `files` as versions and point their DAGs in `environment` at them (new DAGs paused if
/// `new_paused`). Returns the number of DAGs whose version changed.
pub(crate) async fn upsert_versions(
    conn: &mut sqlx::PgConnection,
    environment: &str,
    files: &[VersionSync],
    new_paused: bool,
) -> Result<u64> {
    if files.is_empty() {
        return Ok(0);
    }
    let col = |f: fn(&VersionSync) -> &str| files.iter().map(f).collect::<Vec<&str>>();
    sqlx::query(
        "insert into dag_version (dag_id, path, blob_id, commit_sha, source) \
         select * from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) \
         on conflict (dag_id, blob_id) do nothing",
    )
    .bind(col(|f| &f.dag_id))
    .bind(col(|f| &f.path))
    .bind(col(|f| &f.blob_id))
    .bind(
        files
            .iter()
            .map(|f| f.commit_sha.as_deref())
            .collect::<Vec<Option<&str>>>(),
    )
    .bind(col(|f| &f.source))
    .execute(&mut *conn)
    .await?;
    Ok(sqlx::query(
        "insert into dag_env (dag_id, environment, version_id, paused) \
         select v.dag_id, $3, v.id, $4 from unnest($1::text[], $2::text[]) as f(dag_id, blob_id) \
         join dag_version v on v.dag_id = f.dag_id and v.blob_id = f.blob_id \
         on conflict (dag_id, environment) do update set version_id = excluded.version_id, active = true, \
           updated_at = now() \
         where dag_env.version_id <> excluded.version_id or not dag_env.active",
    )
    .bind(col(|f| &f.dag_id))
    .bind(col(|f| &f.blob_id))
    .bind(environment)
    .bind(new_paused)
    .execute(&mut *conn)
    .await?
    .rows_affected())
}
