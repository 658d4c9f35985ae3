//! Events a page at a time (without their payloads, which a listing does not show and a batch
//! can make large), and what started a run.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{EventRow, Result, Store};

/// Columns of [`EventRow`] with the payload left out (null).
const LISTED_COLUMNS: &str = "e.id, e.environment, e.dag_id, e.trigger, e.kind, e.received_at, \
     e.source, e.idempotency_key, 'null'::jsonb as payload, e.run_id, e.replay_of, r.state as run_state";

/// The events of a run, in short: how many, the first, and when the last came.
#[derive(Debug, Clone)]
pub struct RunEvents {
    pub count: i64,
    /// The first received, with its payload.
    pub first: EventRow,
    pub last_received: DateTime<Utc>,
}

impl Store {
    /// A DAG's events in an environment, newest first, received in `[from, to)` when given,
    /// older than the event `before` when given (the next page), at most `limit`. Their
    /// payloads are null: [`Store::event`] reads one with its payload.
    pub async fn dag_events_page(
        &self,
        dag_id: &str,
        environment: &str,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        before: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<EventRow>> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {LISTED_COLUMNS} from event e left join dag_run r on r.id = e.run_id \
             where e.dag_id = $1 and e.environment = $2 \
               and ($3::timestamptz is null or e.received_at >= $3) \
               and ($4::timestamptz is null or e.received_at < $4) \
               and ($5::uuid is null or (e.received_at, e.id) < \
                    (select b.received_at, b.id from event b where b.id = $5)) \
             order by e.received_at desc, e.id desc limit $6"
        )))
        .bind(dag_id)
        .bind(environment)
        .bind(from)
        .bind(to)
        .bind(before)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The events that went to `run`, in short; none for a run no event started.
    pub async fn run_event_summary(&self, run_id: Uuid) -> Result<Option<RunEvents>> {
        let first: Option<EventRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {} from event e left join dag_run r on r.id = e.run_id \
             where e.run_id = $1 order by e.received_at, e.id limit 1",
            crate::events::EVENT_COLUMNS
        )))
        .bind(run_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(first) = first else {
            return Ok(None);
        };
        let (count, last_received): (i64, DateTime<Utc>) =
            sqlx::query_as("select count(*), max(received_at) from event where run_id = $1")
                .bind(run_id)
                .fetch_one(&self.pool)
                .await?;
        Ok(Some(RunEvents {
            count,
            first,
            last_received,
        }))
    }

    /// The first `limit` events of a run, in the order received, without their payloads.
    pub async fn run_events_page(&self, run_id: Uuid, limit: i64) -> Result<Vec<EventRow>> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {LISTED_COLUMNS} from event e left join dag_run r on r.id = e.run_id \
             where e.run_id = $1 order by e.received_at, e.id limit $2"
        )))
        .bind(run_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }
}
