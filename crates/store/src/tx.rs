//! A transaction of the caller's: several changes and their audit events commit together or
//! not at all (an audit row that cannot be written undoes the change it records).
//!
//! ```ignore
//! let mut tx = store.begin().await?;
//! let cleared = tx.clear_tasks(run, &tasks).await?;
//! tx.audit("ana", "task.clear", Some("prod"), Some(dag), Some(run), &json!({ "tasks": cleared })).await?;
//! tx.commit().await?;
//! ```
//!
//! Dropped without [`Tx::commit`], it rolls back.

use sqlx::{PgConnection, Postgres, Transaction};
use uuid::Uuid;

use crate::{Result, Store};

#[derive(Debug)]
pub struct Tx {
    inner: Transaction<'static, Postgres>,
}

impl Store {
    /// Start a transaction for changes that must commit with their audit event.
    pub async fn begin(&self) -> Result<Tx> {
        Ok(Tx {
            inner: self.pool.begin().await?,
        })
    }
}

impl Tx {
    pub(crate) fn conn(&mut self) -> &mut PgConnection {
        &mut self.inner
    }

    /// Record an audit event in this transaction.
    pub async fn audit(
        &mut self,
        actor: &str,
        action: &str,
        environment: Option<&str>,
        dag_id: Option<&str>,
        run_id: Option<Uuid>,
        details: &serde_json::Value,
    ) -> Result<()> {
        crate::audit::record(
            self.conn(),
            actor,
            action,
            environment,
            dag_id,
            run_id,
            details,
        )
        .await
    }

    pub async fn commit(self) -> Result<()> {
        self.inner.commit().await?;
        Ok(())
    }
}
