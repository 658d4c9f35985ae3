//! Replays: recorded events sent through their DAG again. Each replay is a new event (kind
//! `replay`, pointing at the one it replays, with the same trigger and payload and no
//! idempotency key) in a new run of type `replay`; the events, their runs and the audit event
//! commit together.
//!
//! A range replay keeps the grouping of the original runs: events that shared a batch run
//! share one replay run, so a DAG that sums up its batch sees the same batches again. It
//! replays the events that arrived in the range, not earlier replays of them (those were
//! received when they were made, and replaying them again would double the work); a replay
//! is replayed by its id.

use chrono::{DateTime, Utc};
use drover_spec::numbers::thousands;
use uuid::Uuid;

use crate::notify::CHANNEL_RUNS;
use crate::{Result, Store, StoreError, Tx};

/// The most events one range replay may take.
pub const MAX_REPLAY_EVENTS: i64 = 10_000;

/// Who replays, and the deadline the new runs get (from the DAG's `deadline`, counted from now).
#[derive(Debug, Clone, Copy)]
pub struct ReplayBy<'a> {
    pub actor: &'a str,
    pub deadline_at: Option<DateTime<Utc>>,
}

/// One replayed event.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReplayedEvent {
    /// The event replayed.
    pub original: Uuid,
    /// The new event.
    pub event_id: Uuid,
    /// The new event's run.
    pub run_id: Uuid,
}

/// What a replay did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Replayed {
    pub dag_id: String,
    pub environment: String,
    /// In the order the originals were received.
    pub events: Vec<ReplayedEvent>,
    /// The new runs, in the order of their first original event.
    pub runs: Vec<Uuid>,
}

/// "2026-12-02 14:02:01 UTC".
fn at(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

impl Store {
    /// Replay one event (of any kind, a replay too) in a new run of its own.
    pub async fn replay_event(&self, id: Uuid, by: ReplayBy<'_>) -> Result<Replayed> {
        let mut tx = self.begin().await?;
        let found: Option<(String, String, Option<Uuid>)> =
            sqlx::query_as("select dag_id, environment, run_id from event where id = $1 for share")
                .bind(id)
                .fetch_optional(tx.conn())
                .await?;
        let (dag, env, _) = found.ok_or_else(|| StoreError::NotFound(format!("no event {id}")))?;
        let version = replayable_version(&mut tx, &dag, &env).await?;
        let done = tx.replay(&dag, &env, version, &[(id, id)], by).await?;
        tx.audit(
            by.actor,
            "event.replay",
            Some(&env),
            Some(&dag),
            done.runs.first().copied(),
            &serde_json::json!({
                "event": id,
                "replay": done.events.first().map(|e| e.event_id),
                "events": 1,
                "runs": 1,
            }),
        )
        .await?;
        tx.commit().await?;
        Ok(done)
    }

    /// Replay the events `dag` received in `environment` in `[from, to)` (not earlier
    /// replays), keeping their runs' grouping; at most [`MAX_REPLAY_EVENTS`].
    pub async fn replay_range(
        &self,
        dag: &str,
        environment: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        by: ReplayBy<'_>,
    ) -> Result<Replayed> {
        if to <= from {
            return Err(StoreError::Invalid(format!(
                "the range ends ({}) before it starts ({}): give a `from` earlier than `to`",
                at(to),
                at(from)
            )));
        }
        let mut tx = self.begin().await?;
        let version = replayable_version(&mut tx, dag, environment).await?;
        let between = format!("between {} and {}", at(from), at(to));
        let count: i64 = sqlx::query_scalar(
            "select count(*) from event where dag_id = $1 and environment = $2 \
             and received_at >= $3 and received_at < $4 and kind <> 'replay'",
        )
        .bind(dag)
        .bind(environment)
        .bind(from)
        .bind(to)
        .fetch_one(tx.conn())
        .await?;
        if count == 0 {
            let replays: i64 = sqlx::query_scalar(
                "select count(*) from event where dag_id = $1 and environment = $2 \
                 and received_at >= $3 and received_at < $4",
            )
            .bind(dag)
            .bind(environment)
            .bind(from)
            .bind(to)
            .fetch_one(tx.conn())
            .await?;
            return Err(StoreError::Invalid(if replays > 0 {
                format!(
                    "no events between {} and {} in `{environment}` but {replays} replay{} ({dag}): a range replays the events that arrived, not replays of them; replay a replay by its id",
                    at(from),
                    at(to),
                    if replays == 1 { "" } else { "s" }
                )
            } else {
                format!("no events {between} for `{dag}` in `{environment}`: nothing to replay")
            }));
        }
        if count > MAX_REPLAY_EVENTS {
            return Err(StoreError::Invalid(format!(
                "{} events arrived {between}, more than the {} one replay may take: narrow the range",
                thousands(count),
                thousands(MAX_REPLAY_EVENTS)
            )));
        }
        let originals: Vec<(Uuid, Uuid)> = sqlx::query_as(
            "select id, coalesce(run_id, id) from event where dag_id = $1 and environment = $2 \
             and received_at >= $3 and received_at < $4 and kind <> 'replay' \
             order by received_at, id limit $5",
        )
        .bind(dag)
        .bind(environment)
        .bind(from)
        .bind(to)
        .bind(MAX_REPLAY_EVENTS)
        .fetch_all(tx.conn())
        .await?;
        let done = tx.replay(dag, environment, version, &originals, by).await?;
        tx.audit(
            by.actor,
            "event.replay",
            Some(environment),
            Some(dag),
            None,
            &serde_json::json!({
                "from": from,
                "to": to,
                "events": done.events.len(),
                "runs": done.runs.len(),
            }),
        )
        .await?;
        tx.commit().await?;
        Ok(done)
    }

    /// The events that replay `id`, oldest first.
    pub async fn replays_of(&self, id: Uuid) -> Result<Vec<Uuid>> {
        Ok(
            sqlx::query_scalar(
                "select id from event where replay_of = $1 order by received_at, id",
            )
            .bind(id)
            .fetch_all(&self.pool)
            .await?,
        )
    }
}

/// The version `dag` runs in `environment`, or why its events cannot be replayed there.
async fn replayable_version(tx: &mut Tx, dag: &str, environment: &str) -> Result<i64> {
    let row: Option<(i64, bool)> = sqlx::query_as(
        "select version_id, active from dag_env where dag_id = $1 and environment = $2 for share",
    )
    .bind(dag)
    .bind(environment)
    .fetch_optional(tx.conn())
    .await?;
    match row {
        Some((version, true)) => Ok(version),
        Some((_, false)) => Err(StoreError::Conflict(format!(
            "`{dag}` is no longer in `{environment}` (its file was removed there): its events cannot be replayed until it is back"
        ))),
        None => Err(StoreError::NotFound(format!(
            "no DAG `{dag}` in environment `{environment}`"
        ))),
    }
}

impl Tx {
    /// Replay `originals` — (event, the group it goes with: its run) in the order received —
    /// as new events, one new run per group.
    async fn replay(
        &mut self,
        dag: &str,
        environment: &str,
        version: i64,
        originals: &[(Uuid, Uuid)],
        by: ReplayBy<'_>,
    ) -> Result<Replayed> {
        let mut runs: Vec<Uuid> = Vec::new();
        let mut counts: Vec<i32> = Vec::new();
        let mut group_run: std::collections::HashMap<Uuid, usize> =
            std::collections::HashMap::new();
        let mut events = Vec::with_capacity(originals.len());
        for &(original, group) in originals {
            let i = *group_run.entry(group).or_insert_with(|| {
                runs.push(Uuid::now_v7());
                counts.push(0);
                runs.len() - 1
            });
            counts[i] += 1;
            events.push(ReplayedEvent {
                original,
                event_id: Uuid::now_v7(),
                run_id: runs[i],
            });
        }
        // The runs start in the order of their first events, and the new events list in the
        // order of the originals: a microsecond apart each.
        let made = sqlx::query(
            "insert into dag_run (id, dag_id, environment, version_id, run_type, logical_date, \
               interval_start, interval_end, state, params, triggered_by, commit_sha, deadline_at, \
               deadline_state, preview, event_count) \
             select u.id, $3, $4, $5, 'replay', t.at, t.at, t.at, 'queued', '{}'::jsonb, $6, \
                    (select commit_sha from deployment where environment = $4 order by id desc limit 1), \
                    $7, case when $7::timestamptz is not null then 'pending' end, false, u.n \
             from unnest($1::uuid[], $2::int[]) with ordinality as u(id, n, ord) \
             cross join lateral (select now() + (u.ord - 1) * interval '1 microsecond' as at) t",
        )
        .bind(&runs)
        .bind(&counts)
        .bind(dag)
        .bind(environment)
        .bind(version)
        .bind(by.actor)
        .bind(by.deadline_at)
        .execute(self.conn())
        .await?
        .rows_affected();
        let ids: Vec<Uuid> = events.iter().map(|e| e.event_id).collect();
        let of: Vec<Uuid> = events.iter().map(|e| e.original).collect();
        let into: Vec<Uuid> = events.iter().map(|e| e.run_id).collect();
        let recorded = sqlx::query(
            "insert into event (id, environment, dag_id, trigger, kind, source, idempotency_key, \
               payload, run_id, replay_of, received_at) \
             select u.id, o.environment, o.dag_id, o.trigger, 'replay', \
                    'replay by ' || $4 || ' of event ' || o.id::text, null, o.payload, u.run, o.id, \
                    now() + (u.ord - 1) * interval '1 microsecond' \
             from unnest($1::uuid[], $2::uuid[], $3::uuid[]) with ordinality as u(id, original, run, ord) \
             join event o on o.id = u.original",
        )
        .bind(&ids)
        .bind(&of)
        .bind(&into)
        .bind(by.actor)
        .execute(self.conn())
        .await?
        .rows_affected();
        if made != runs.len() as u64 || recorded != events.len() as u64 {
            return Err(StoreError::Conflict(
                "some of these events were deleted meanwhile (with their runs' history): look again and retry"
                    .to_owned(),
            ));
        }
        if let Some(first) = runs.first() {
            sqlx::query("select pg_notify($1, $2)")
                .bind(CHANNEL_RUNS)
                .bind(first.to_string())
                .execute(self.conn())
                .await?;
        }
        Ok(Replayed {
            dag_id: dag.to_owned(),
            environment: environment.to_owned(),
            events,
            runs,
        })
    }
}
