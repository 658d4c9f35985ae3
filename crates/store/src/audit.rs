//! The audit trail: who did what, when, to which environment, DAG or run.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgConnection};
use uuid::Uuid;

use crate::{Result, Store};

#[derive(Debug, Clone, FromRow, serde::Serialize)]
pub struct AuditEvent {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub environment: Option<String>,
    pub dag_id: Option<String>,
    pub run_id: Option<Uuid>,
    pub details: serde_json::Value,
}

pub(crate) async fn record(
    conn: &mut PgConnection,
    actor: &str,
    action: &str,
    environment: Option<&str>,
    dag_id: Option<&str>,
    run_id: Option<Uuid>,
    details: &serde_json::Value,
) -> Result<()> {
    sqlx::query(
        "insert into audit_event (actor, action, environment, dag_id, run_id, details) \
         values ($1, $2, $3, $4, $5, $6)",
    )
    .bind(actor)
    .bind(action)
    .bind(environment)
    .bind(dag_id)
    .bind(run_id)
    .bind(details)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

impl Store {
    pub async fn audit(
        &self,
        actor: &str,
        action: &str,
        environment: Option<&str>,
        dag_id: Option<&str>,
        run_id: Option<Uuid>,
        details: &serde_json::Value,
    ) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        record(
            &mut conn,
            actor,
            action,
            environment,
            dag_id,
            run_id,
            details,
        )
        .await
    }

    pub async fn audit_events(&self, limit: i64) -> Result<Vec<AuditEvent>> {
        Ok(sqlx::query_as(
            "select id, at, actor, action, environment, dag_id, run_id, details from audit_event \
             order by at desc, id desc limit $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }
}
