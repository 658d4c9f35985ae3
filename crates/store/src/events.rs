//! Events: what a webhook, another DAG's dataset or a replay brought, recorded as received,
//! and the run each went to. An event and its run commit together (or the event joins a
//! queued run still gathering a batch), so every accepted event has exactly one run; a
//! repeated idempotency key is answered with the first event and its run.

use chrono::{DateTime, Utc};
use sqlx::FromRow;
use uuid::Uuid;

use crate::notify::CHANNEL_RUNS;
use crate::{EventKind, NewRun, Result, RunType, Store, StoreError, Tx};

/// An event to accept.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub kind: EventKind,
    /// The webhook's name, or `dataset:<dag>.<task>` ([`dataset_trigger`]).
    pub trigger: String,
    /// Who sent it, in words: the sender's address, the producing run, who replayed it.
    pub source: String,
    pub idempotency_key: Option<String>,
    pub payload: serde_json::Value,
    /// The event this one replays.
    pub replay_of: Option<Uuid>,
    /// The run to create for it (or for the batch it opens): its DAG, environment, version,
    /// type, interval (the instant received), params and deadline.
    pub run: NewRun,
    /// Gather events into one run: at most this many, for at most this long after the first.
    pub batch: Option<BatchRule>,
}

/// A batch's bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchRule {
    pub max_events: i32,
    pub max_wait: std::time::Duration,
}

/// What accepting an event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub event_id: Uuid,
    pub run_id: Uuid,
    /// The idempotency key was seen before: this is the first event's answer, nothing new
    /// was created.
    pub duplicate: bool,
    /// The event opened a new run (false: it joined a batch, or is a repeat).
    pub new_run: bool,
}

/// An event as recorded, with its run's state.
#[derive(Debug, Clone, serde::Serialize, FromRow)]
pub struct EventRow {
    pub id: Uuid,
    pub environment: String,
    pub dag_id: String,
    pub trigger: String,
    pub kind: String,
    pub received_at: DateTime<Utc>,
    pub source: String,
    pub idempotency_key: Option<String>,
    pub payload: serde_json::Value,
    pub run_id: Option<Uuid>,
    pub replay_of: Option<Uuid>,
    /// The state of its run (`queued`, `running`, `success`, `failed`); none once the run is gone.
    pub run_state: Option<String>,
}

/// The trigger name an event from `dag`'s `task` dataset is recorded under.
pub fn dataset_trigger(dag: &str, task: &str) -> String {
    format!("dataset:{dag}.{task}")
}

pub(crate) const EVENT_COLUMNS: &str = "e.id, e.environment, e.dag_id, e.trigger, e.kind, e.received_at, \
     e.source, e.idempotency_key, e.payload, e.run_id, e.replay_of, r.state as run_state";

impl Store {
    /// Accept one event: record it and give it its run, in one transaction.
    pub async fn accept_event(&self, event: &NewEvent) -> Result<Accepted> {
        let mut tx = self.begin().await?;
        let accepted = tx.accept_event(event).await?;
        tx.commit().await?;
        Ok(accepted)
    }

    /// One event.
    pub async fn event(&self, id: Uuid) -> Result<EventRow> {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {EVENT_COLUMNS} from event e left join dag_run r on r.id = e.run_id where e.id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("no event {id}")))
    }

    /// A DAG's events in an environment, newest first, received in `[from, to)` when given,
    /// at most `limit`.
    pub async fn dag_events(
        &self,
        dag_id: &str,
        environment: &str,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        limit: i64,
    ) -> Result<Vec<EventRow>> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {EVENT_COLUMNS} from event e left join dag_run r on r.id = e.run_id \
             where e.dag_id = $1 and e.environment = $2 \
               and ($3::timestamptz is null or e.received_at >= $3) \
               and ($4::timestamptz is null or e.received_at < $4) \
             order by e.received_at desc, e.id desc limit $5"
        )))
        .bind(dag_id)
        .bind(environment)
        .bind(from)
        .bind(to)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The events of a run, in the order received.
    pub async fn run_events(&self, run_id: Uuid) -> Result<Vec<EventRow>> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {EVENT_COLUMNS} from event e left join dag_run r on r.id = e.run_id \
             where e.run_id = $1 order by e.received_at, e.id"
        )))
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Events of a DAG in an environment that are not yet in a started run: those waiting in a
    /// queued run (gathering a batch, or behind `max_active_runs`, maintenance or a pause).
    pub async fn waiting_events(&self, dag_id: &str, environment: &str) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "select coalesce(sum(event_count), 0)::bigint from dag_run \
             where dag_id = $1 and environment = $2 and state = 'queued' and event_count > 0",
        )
        .bind(dag_id)
        .bind(environment)
        .fetch_one(&self.pool)
        .await?)
    }
}

impl Tx {
    /// Accept one event within this transaction (see [`Store::accept_event`]).
    pub async fn accept_event(&mut self, event: &NewEvent) -> Result<Accepted> {
        let env = event.run.environment.as_str();
        let dag = event.run.dag_id.as_str();
        let id = Uuid::now_v7();
        // A repeated key waits here for the first event's transaction, then finds it.
        let inserted: Option<Uuid> = sqlx::query_scalar(
            "insert into event (id, environment, dag_id, trigger, kind, source, idempotency_key, payload, replay_of) \
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             on conflict (environment, dag_id, trigger, idempotency_key) where idempotency_key is not null \
             do nothing returning id",
        )
        .bind(id)
        .bind(env)
        .bind(dag)
        .bind(&event.trigger)
        .bind(event.kind.as_str())
        .bind(&event.source)
        .bind(&event.idempotency_key)
        .bind(&event.payload)
        .bind(event.replay_of)
        .fetch_optional(self.conn())
        .await?;
        if inserted.is_none() {
            let (first, run): (Uuid, Option<Uuid>) = sqlx::query_as(
                "select id, run_id from event where environment = $1 and dag_id = $2 \
                 and trigger = $3 and idempotency_key = $4",
            )
            .bind(env)
            .bind(dag)
            .bind(&event.trigger)
            .bind(&event.idempotency_key)
            .fetch_one(self.conn())
            .await?;
            let run = run.ok_or_else(|| {
                StoreError::Conflict(format!(
                    "event {first} (the same idempotency key) has no run any more: it was deleted with its history"
                ))
            })?;
            return Ok(Accepted {
                event_id: first,
                run_id: run,
                duplicate: true,
                new_run: false,
            });
        }
        let (run_id, new_run) = match event.batch {
            Some(rule) => self.batch_run(event, rule).await?,
            None => (self.event_run(event).await?, true),
        };
        sqlx::query("update event set run_id = $2 where id = $1")
            .bind(id)
            .bind(run_id)
            .execute(self.conn())
            .await?;
        Ok(Accepted {
            event_id: id,
            run_id,
            duplicate: false,
            new_run,
        })
    }

    /// A run of its own for one event.
    async fn event_run(&mut self, event: &NewEvent) -> Result<Uuid> {
        let run = self
            .insert_run(&event.run)
            .await?
            .ok_or_else(|| StoreError::Conflict("the event's run was not created".to_owned()))?;
        sqlx::query("update dag_run set event_count = 1 where id = $1")
            .bind(run)
            .execute(self.conn())
            .await?;
        Ok(run)
    }

    /// The batch this event joins: the trigger's gathering run, or a new one. Acceptances of
    /// one trigger take turns (a transaction-scoped lock), so a flood fills one run at a
    /// time; a run being started meanwhile is no longer `queued` and takes no more events.
    async fn batch_run(&mut self, event: &NewEvent, rule: BatchRule) -> Result<(Uuid, bool)> {
        let env = event.run.environment.as_str();
        let dag = event.run.dag_id.as_str();
        sqlx::query("select pg_advisory_xact_lock(hashtextextended($1, 19))")
            .bind(format!("{env}\u{1f}{dag}\u{1f}{}", event.trigger))
            .execute(self.conn())
            .await?;
        let joined: Option<(Uuid, i32)> = sqlx::query_as(
            "update dag_run set event_count = event_count + 1 \
             where id = (select id from dag_run where dag_id = $1 and environment = $2 \
                           and batch_trigger = $3 and state = 'queued' \
                           and event_count < batch_max and batch_until > now() \
                         order by created_at limit 1 for update) \
               and state = 'queued' \
             returning id, event_count",
        )
        .bind(dag)
        .bind(env)
        .bind(&event.trigger)
        .fetch_optional(self.conn())
        .await?;
        if let Some((run, count)) = joined {
            if count >= rule.max_events {
                // Full: the scheduler starts it now rather than at `batch_until`.
                sqlx::query("select pg_notify($1, $2)")
                    .bind(CHANNEL_RUNS)
                    .bind(run.to_string())
                    .execute(self.conn())
                    .await?;
            }
            return Ok((run, false));
        }
        let run = self
            .insert_run(&event.run)
            .await?
            .ok_or_else(|| StoreError::Conflict("the batch's run was not created".to_owned()))?;
        let wait = chrono::Duration::from_std(rule.max_wait).unwrap_or(chrono::Duration::MAX);
        sqlx::query(
            "update dag_run set event_count = 1, batch_trigger = $2, batch_max = $3, \
             batch_until = now() + $4 where id = $1",
        )
        .bind(run)
        .bind(&event.trigger)
        .bind(rule.max_events)
        .bind(wait)
        .execute(self.conn())
        .await?;
        Ok((run, true))
    }
}

/// Whether a run of this type was started by events (and so has events of its own).
pub fn started_by_events(run_type: RunType) -> bool {
    matches!(
        run_type,
        RunType::Event | RunType::Dataset | RunType::Replay
    )
}
