//! What a run's events give it and when a gathering batch is due: the first event (its
//! payload is the run's `{{ event }}`), an accepted event found by its idempotency key, and
//! the earliest `batch_until` the scheduler must wake for.

use std::time::Duration;

use uuid::Uuid;

use crate::{Accepted, Result, Store};

/// The first event of a run: its trigger and payload.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct FirstEvent {
    pub trigger: String,
    pub payload: serde_json::Value,
}

impl Store {
    /// The run's first event received, if events started it.
    pub async fn first_event(&self, run_id: Uuid) -> Result<Option<FirstEvent>> {
        Ok(sqlx::query_as(
            "select trigger, payload from event where run_id = $1 \
             order by received_at, id limit 1",
        )
        .bind(run_id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// The event accepted under `key` for this trigger, with its run, as a repeat is answered.
    pub async fn event_by_key(
        &self,
        environment: &str,
        dag_id: &str,
        trigger: &str,
        key: &str,
    ) -> Result<Option<Accepted>> {
        let found: Option<(Uuid, Option<Uuid>)> = sqlx::query_as(
            "select id, run_id from event where environment = $1 and dag_id = $2 \
             and trigger = $3 and idempotency_key = $4",
        )
        .bind(environment)
        .bind(dag_id)
        .bind(trigger)
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        Ok(found.and_then(|(event_id, run)| {
            run.map(|run_id| Accepted {
                event_id,
                run_id,
                duplicate: true,
                new_run: false,
            })
        }))
    }

    /// How long until the earliest gathering batch is due (its `batch_until`), by the
    /// database's clock; none when no batch is gathering. Batches of paused DAGs wait for
    /// the unpause, which wakes the scheduler itself.
    pub async fn next_batch_due(&self) -> Result<Option<Duration>> {
        let secs: Option<f64> = sqlx::query_scalar(
            "select extract(epoch from min(batch_until) - now())::float8 from dag_run \
             where state = 'queued' and batch_trigger is not null \
               and event_count < batch_max and batch_until > now() \
               and not exists (select 1 from dag_env p where p.dag_id = dag_run.dag_id \
                               and p.environment = dag_run.environment and p.paused)",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(secs.map(|s| Duration::from_secs_f64(s.max(0.0))))
    }
}
