//! Worker registration and liveness, for operators to see who is working.

use crate::{Result, Store};

impl Store {
    pub async fn register_worker(
        &self,
        id: &str,
        hostname: &str,
        pid: u32,
        concurrency: u32,
    ) -> Result<()> {
        sqlx::query(
            "insert into worker (id, hostname, pid, concurrency) values ($1, $2, $3, $4) \
             on conflict (id) do update set heartbeat_at = now(), stopped_at = null",
        )
        .bind(id)
        .bind(hostname)
        .bind(i32::try_from(pid).unwrap_or(i32::MAX))
        .bind(i32::try_from(concurrency).unwrap_or(i32::MAX))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn worker_heartbeat(&self, id: &str) -> Result<()> {
        sqlx::query("update worker set heartbeat_at = now() where id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn worker_stopped(&self, id: &str) -> Result<()> {
        sqlx::query("update worker set stopped_at = now() where id = $1 and stopped_at is null")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
