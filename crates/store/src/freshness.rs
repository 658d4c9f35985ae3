//! Freshness: how old each DAG's (`task_id` "") and each task's data is in each environment,
//! and the episodes of stale data.
//!
//! A run that finishes succeeded (warnings included; never a preview) refreshes its DAG's
//! data, and a successful try (of a run that is no preview) its task's, in the transaction
//! that records it: `data_refresh` keeps the latest per (environment, DAG, task), and an open
//! episode of that data ends there too. Data never refreshed counts its age from when its DAG
//! came into the environment (`dag_env.added_at`). What declares `freshness` is the DAG
//! files' business: callers pass it in as [`FreshnessRule`]s.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgConnection};
use uuid::Uuid;

use crate::approvals::SYSTEM_ACTOR;
use crate::{Result, Store};

/// What a DAG (`task_id` "") or one of its tasks asks of its data in an environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreshnessRule {
    pub environment: String,
    pub dag_id: String,
    pub task_id: String,
    pub max_age_secs: i64,
}

/// How fresh some data is now (on the database's clock).
#[derive(Debug, Clone, FromRow, serde::Serialize)]
pub struct FreshnessState {
    pub environment: String,
    pub dag_id: String,
    /// Empty for the DAG itself.
    pub task_id: String,
    pub max_age_secs: i64,
    /// The latest refresh, and the run that made it; none when it never was refreshed.
    pub last_refreshed_at: Option<DateTime<Utc>>,
    pub last_refreshed_by: Option<Uuid>,
    /// What its age counts from: the latest refresh, or when the DAG came into the
    /// environment.
    pub counted_from: DateTime<Utc>,
    pub age_secs: i64,
    /// Older than `max_age`.
    pub stale: bool,
    /// When it went stale, or goes stale if nothing refreshes it (`counted_from + max_age`).
    pub stale_at: DateTime<Utc>,
    /// The DAG is paused in the environment (its data goes stale all the same).
    pub paused: bool,
}

/// One time some data went stale.
#[derive(Debug, Clone, FromRow, serde::Serialize)]
pub struct StaleEpisode {
    pub id: i64,
    pub environment: String,
    pub dag_id: String,
    /// Empty for the DAG itself.
    pub task_id: String,
    /// The `max_age` asked for when it went stale.
    pub max_age_secs: i64,
    pub last_refreshed_at: Option<DateTime<Utc>>,
    pub counted_from: DateTime<Utc>,
    pub stale_since: DateTime<Utc>,
    pub opened_at: DateTime<Utc>,
    pub cleared_at: Option<DateTime<Utc>>,
    /// `refreshed` (by `cleared_by_run`) or `not_required` (nothing asks for it any more, or
    /// a larger `max_age` makes it fresh).
    pub cleared_because: Option<String>,
    pub cleared_by_run: Option<Uuid>,
    /// When the first channel was told.
    pub notified_at: Option<DateTime<Utc>>,
}

const EPISODE: &str = "id, environment, dag_id, task_id, max_age_secs, last_refreshed_at, \
                       counted_from, stale_since, opened_at, cleared_at, cleared_because, \
                       cleared_by_run, notified_at";

/// What one pass over the rules changed.
#[derive(Debug, Clone, Default)]
pub struct FreshnessChanges {
    /// Episodes this pass opened.
    pub opened: Vec<StaleEpisode>,
    /// Episodes this pass ended (nothing asks for them any more, or a larger `max_age`);
    /// those a refresh ended were ended by it.
    pub ended: Vec<StaleEpisode>,
}

/// The rules as columns, for `unnest`.
struct RuleColumns {
    environments: Vec<String>,
    dags: Vec<String>,
    tasks: Vec<String>,
    max_ages: Vec<i64>,
}

impl RuleColumns {
    fn of(rules: &[FreshnessRule]) -> Self {
        Self {
            environments: rules.iter().map(|r| r.environment.clone()).collect(),
            dags: rules.iter().map(|r| r.dag_id.clone()).collect(),
            tasks: rules.iter().map(|r| r.task_id.clone()).collect(),
            max_ages: rules.iter().map(|r| r.max_age_secs.max(1)).collect(),
        }
    }
}

/// The rules, each with what its age counts from, as the relation `s` (active DAGs only).
const STATES: &str = "rule as (select * from unnest($1::text[], $2::text[], $3::text[], $4::int8[]) \
                                as r(environment, dag_id, task_id, max_age_secs)), \
     s as (select r.environment, r.dag_id, r.task_id, r.max_age_secs, \
                  f.refreshed_at as last_refreshed_at, f.run_id as last_refreshed_by, \
                  coalesce(f.refreshed_at, d.added_at) as counted_from, d.paused \
           from rule r \
           join dag_env d on d.dag_id = r.dag_id and d.environment = r.environment and d.active \
           left join data_refresh f on f.environment = r.environment and f.dag_id = r.dag_id \
                                   and f.task_id = r.task_id)";

impl Store {
    /// How fresh the data of `rules` is now, by environment, DAG and task (the DAG first).
    /// Rules of DAGs not active in their environment are left out.
    pub async fn freshness(&self, rules: &[FreshnessRule]) -> Result<Vec<FreshnessState>> {
        if rules.is_empty() {
            return Ok(Vec::new());
        }
        let c = RuleColumns::of(rules);
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "with {STATES} \
             select s.*, \
                    greatest(0, floor(extract(epoch from now() - s.counted_from)))::int8 as age_secs, \
                    now() - s.counted_from > make_interval(secs => s.max_age_secs) as stale, \
                    s.counted_from + make_interval(secs => s.max_age_secs) as stale_at \
             from s order by s.environment, s.dag_id, s.task_id"
        )))
        .bind(&c.environments)
        .bind(&c.dags)
        .bind(&c.tasks)
        .bind(&c.max_ages)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Open an episode for each rule whose data is stale and has none open, and end the open
    /// episodes nothing asks for any more: their DAG left the environment, or it is one of
    /// `loaded` (DAGs whose rules are all in `rules`) and no rule names them, or a larger
    /// `max_age` makes the data fresh. Each change is audited with it. Any number of
    /// schedulers may do this at once: an episode is opened once, and never on data a refresh
    /// made fresh meanwhile (both lock the data's `data_refresh` row).
    pub async fn settle_freshness(
        &self,
        rules: &[FreshnessRule],
        loaded: &[(String, String)],
    ) -> Result<FreshnessChanges> {
        let c = RuleColumns::of(rules);
        let mut tx = self.pool.begin().await?;
        // Data never refreshed gets its row, to lock. A refresh of a row in progress makes
        // this wait for it (the row is being changed), so what follows sees it.
        sqlx::query(
            "insert into data_refresh (environment, dag_id, task_id) \
             select r.environment, r.dag_id, r.task_id \
             from unnest($1::text[], $2::text[], $3::text[]) as r(environment, dag_id, task_id) \
             join dag_env d on d.dag_id = r.dag_id and d.environment = r.environment and d.active \
             order by r.task_id = '', r.environment, r.dag_id, r.task_id \
             on conflict (environment, dag_id, task_id) do nothing",
        )
        .bind(&c.environments)
        .bind(&c.dags)
        .bind(&c.tasks)
        .execute(&mut *tx)
        .await?;
        // Stale data without an open episode: its row is locked (tasks' first, as a
        // completion takes them), so a refresh that began since the statement above is
        // waited for and seen (the row is read again and no longer qualifies), and one that
        // comes after waits for this transaction and then ends the episode opened here.
        let opened: Vec<StaleEpisode> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "with opened as ( \
               insert into stale_episode (environment, dag_id, task_id, max_age_secs, \
                                          last_refreshed_at, counted_from, stale_since) \
               select r.environment, r.dag_id, r.task_id, r.max_age_secs, f.refreshed_at, \
                      coalesce(f.refreshed_at, d.added_at), \
                      coalesce(f.refreshed_at, d.added_at) + make_interval(secs => r.max_age_secs) \
               from unnest($1::text[], $2::text[], $3::text[], $4::int8[]) \
                    as r(environment, dag_id, task_id, max_age_secs) \
               join dag_env d on d.dag_id = r.dag_id and d.environment = r.environment and d.active \
               join data_refresh f on f.environment = r.environment and f.dag_id = r.dag_id \
                                  and f.task_id = r.task_id \
               where coalesce(f.refreshed_at, d.added_at) + make_interval(secs => r.max_age_secs) < now() \
                 and not exists (select 1 from stale_episode e where e.environment = r.environment \
                                   and e.dag_id = r.dag_id and e.task_id = r.task_id \
                                   and e.cleared_at is null) \
               order by r.task_id = '', r.environment, r.dag_id, r.task_id \
               for share of f \
               on conflict (environment, dag_id, task_id) where cleared_at is null do nothing \
               returning {EPISODE}), \
             audit as ( \
               insert into audit_event (actor, action, environment, dag_id, details) \
               select $5, 'data.stale', o.environment, o.dag_id, jsonb_build_object( \
                        'task', nullif(o.task_id, ''), 'episode', o.id, 'max_age_secs', o.max_age_secs, \
                        'last_refreshed_at', o.last_refreshed_at, 'stale_since', o.stale_since) \
               from opened o) \
             select {EPISODE} from opened order by environment, dag_id, task_id"
        )))
        .bind(&c.environments)
        .bind(&c.dags)
        .bind(&c.tasks)
        .bind(&c.max_ages)
        .bind(SYSTEM_ACTOR)
        .fetch_all(&mut *tx)
        .await?;
        let loaded_envs: Vec<&str> = loaded.iter().map(|(e, _)| e.as_str()).collect();
        let loaded_dags: Vec<&str> = loaded.iter().map(|(_, d)| d.as_str()).collect();
        let ended: Vec<StaleEpisode> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "with {STATES}, \
             loaded as (select * from unnest($5::text[], $6::text[]) as l(environment, dag_id)), \
             ending as ( \
               select e.id from stale_episode e \
               left join s on s.environment = e.environment and s.dag_id = e.dag_id and s.task_id = e.task_id \
               where e.cleared_at is null \
                 and (now() - s.counted_from <= make_interval(secs => s.max_age_secs) \
                      or (s.environment is null \
                          and (exists (select 1 from loaded l where l.environment = e.environment \
                                         and l.dag_id = e.dag_id) \
                               or not exists (select 1 from dag_env d where d.dag_id = e.dag_id \
                                                and d.environment = e.environment and d.active))))), \
             ended as ( \
               update stale_episode e set cleared_at = now(), cleared_because = 'not_required' \
               from ending x where e.id = x.id and e.cleared_at is null \
               returning e.*), \
             audit as ( \
               insert into audit_event (actor, action, environment, dag_id, details) \
               select $7, 'data.fresh', n.environment, n.dag_id, jsonb_build_object( \
                        'task', nullif(n.task_id, ''), 'episode', n.id, 'because', n.cleared_because) \
               from ended n) \
             select {EPISODE} from ended order by environment, dag_id, task_id"
        )))
        .bind(&c.environments)
        .bind(&c.dags)
        .bind(&c.tasks)
        .bind(&c.max_ages)
        .bind(&loaded_envs)
        .bind(&loaded_dags)
        .bind(SYSTEM_ACTOR)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(FreshnessChanges { opened, ended })
    }

    /// One episode.
    pub async fn stale_episode(&self, id: i64) -> Result<Option<StaleEpisode>> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {EPISODE} from stale_episode where id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// The latest episodes of a DAG (and its tasks) in an environment, newest first.
    pub async fn stale_episodes(
        &self,
        environment: &str,
        dag_id: &str,
        limit: i64,
    ) -> Result<Vec<StaleEpisode>> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {EPISODE} from stale_episode where environment = $1 and dag_id = $2 \
             order by opened_at desc, id desc limit $3"
        )))
        .bind(environment)
        .bind(dag_id)
        .bind(limit.clamp(1, 1000))
        .fetch_all(&self.pool)
        .await?)
    }

    /// The episodes `run` ended by refreshing their data.
    pub async fn ended_by_run(&self, run: Uuid) -> Result<Vec<StaleEpisode>> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {EPISODE} from stale_episode where cleared_by_run = $1 \
             order by task_id, id"
        )))
        .bind(run)
        .fetch_all(&self.pool)
        .await?)
    }
}

/// Runs that just finished succeeded (`runs`; previews are left out here) refreshed their
/// DAGs' data: recorded, and the open episodes of that data ended by them, in the caller's
/// transaction.
pub(crate) async fn refresh_dags(conn: &mut PgConnection, runs: &[Uuid]) -> Result<()> {
    if runs.is_empty() {
        return Ok(());
    }
    let refreshed = sqlx::query(
        "insert into data_refresh (environment, dag_id, task_id, refreshed_at, run_id) \
         select distinct on (environment, dag_id) environment, dag_id, '', finished_at, id \
         from dag_run where id = any($1) and state = 'success' and not preview \
           and finished_at is not null \
         order by environment, dag_id, finished_at desc \
         on conflict (environment, dag_id, task_id) do update \
           set refreshed_at = excluded.refreshed_at, run_id = excluded.run_id \
           where data_refresh.refreshed_at is null or data_refresh.refreshed_at <= excluded.refreshed_at",
    )
    .bind(runs)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if refreshed > 0 {
        end_refreshed(conn, runs, false).await?;
    }
    Ok(())
}

/// The part of a completion's statement that records that its tasks which succeeded refreshed
/// their data: a CTE `refreshed` over the statement's `done` rows (their `run_id`,
/// `environment`, `task_id` and new `state`), returning the runs whose refresh it recorded.
/// Preview runs refresh nothing; a refresh never goes back in time. The open episodes of
/// that data are ended by [`tasks_refreshed`], in a statement of its own.
pub(crate) const TASKS_REFRESHED_CTE: &str = "refreshed as ( \
       insert into data_refresh (environment, dag_id, task_id, refreshed_at, run_id) \
       select distinct on (d.environment, r.dag_id, d.task_id) d.environment, r.dag_id, d.task_id, now(), d.run_id \
       from done d join dag_run r on r.id = d.run_id \
       where d.state = 'success' and not r.preview \
       order by d.environment, r.dag_id, d.task_id \
       on conflict (environment, dag_id, task_id) do update \
         set refreshed_at = excluded.refreshed_at, run_id = excluded.run_id \
         where data_refresh.refreshed_at is null or data_refresh.refreshed_at <= excluded.refreshed_at \
       returning run_id)";

/// After a completion's statement recorded that tasks of `runs` refreshed their data (see
/// [`TASKS_REFRESHED_CTE`]): end the open episodes of that data, in the caller's transaction.
pub(crate) async fn tasks_refreshed(conn: &mut PgConnection, runs: &[Uuid]) -> Result<()> {
    if runs.is_empty() {
        return Ok(());
    }
    end_refreshed(conn, runs, true).await
}

/// End the open episodes of the data `runs` refreshed (tasks' data when `tasks`, else the
/// DAGs'), each with its audit event. A statement of its own after the refresh's: it sees an
/// episode opened by a scheduler that held the data's row until just now.
async fn end_refreshed(conn: &mut PgConnection, runs: &[Uuid], tasks: bool) -> Result<()> {
    sqlx::query(
        "with ended as ( \
           update stale_episode e set cleared_at = now(), cleared_because = 'refreshed', \
                  cleared_by_run = f.run_id \
           from data_refresh f \
           where f.environment = e.environment and f.dag_id = e.dag_id and f.task_id = e.task_id \
             and e.cleared_at is null and f.run_id = any($1) and (f.task_id <> '') = $2 \
             and (e.environment, e.dag_id) in (select environment, dag_id from dag_run where id = any($1)) \
           returning e.id, e.environment, e.dag_id, e.task_id, e.cleared_by_run, e.stale_since) \
         insert into audit_event (actor, action, environment, dag_id, run_id, details) \
         select $3, 'data.fresh', n.environment, n.dag_id, n.cleared_by_run, jsonb_build_object( \
                  'task', nullif(n.task_id, ''), 'episode', n.id, 'because', 'refreshed', \
                  'stale_since', n.stale_since) \
         from ended n",
    )
    .bind(runs)
    .bind(tasks)
    .bind(SYSTEM_ACTOR)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
