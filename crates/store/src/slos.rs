//! Data SLOs: how a check's runs went over its SLO's period and the last hours, and the fast
//! burns recorded for alerting.

use drover_spec::dag::slo::Tally;
use uuid::Uuid;

use crate::{Result, Store};

/// A check's passes over the SLO period, the last hour and the last six hours (each run
/// counted once, by its latest try).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SloTallies {
    pub period: Tally,
    pub last_1h: Tally,
    pub last_6h: Tally,
}

/// A fast burn to record.
#[derive(Debug, Clone)]
pub struct SloBurn<'a> {
    pub run_id: Uuid,
    pub task_id: &'a str,
    pub dag_id: &'a str,
    pub environment: &'a str,
    pub burn_1h: Option<f64>,
    pub burn_6h: Option<f64>,
    pub budget_remaining: f64,
}

impl Store {
    pub async fn slo_tallies(
        &self,
        dag_id: &str,
        environment: &str,
        task_id: &str,
        period_secs: f64,
    ) -> Result<SloTallies> {
        let row: (i64, i64, i64, i64, i64, i64) = sqlx::query_as(
            "with latest as ( \
               select distinct on (run_id) passed, checked_at from check_result \
               where dag_id = $1 and environment = $2 and task_id = $3 \
                 and checked_at > now() - make_interval(secs => $4) \
               order by run_id, try_number desc) \
             select count(*) filter (where passed), count(*), \
                    count(*) filter (where passed and checked_at > now() - interval '1 hour'), \
                    count(*) filter (where checked_at > now() - interval '1 hour'), \
                    count(*) filter (where passed and checked_at > now() - interval '6 hours'), \
                    count(*) filter (where checked_at > now() - interval '6 hours') \
             from latest",
        )
        .bind(dag_id)
        .bind(environment)
        .bind(task_id)
        .bind(period_secs)
        .fetch_one(&self.pool)
        .await?;
        let tally = |good, total| Tally { good, total };
        Ok(SloTallies {
            period: tally(row.0, row.1),
            last_1h: tally(row.2, row.3),
            last_6h: tally(row.4, row.5),
        })
    }

    /// Record a fast burn (once per check run).
    pub async fn record_slo_burn(&self, b: &SloBurn<'_>) -> Result<()> {
        sqlx::query(
            "insert into slo_burn (run_id, task_id, dag_id, environment, burn_1h, burn_6h, budget_remaining) \
             values ($1, $2, $3, $4, $5, $6, $7) on conflict (run_id, task_id) do nothing",
        )
        .bind(b.run_id)
        .bind(b.task_id)
        .bind(b.dag_id)
        .bind(b.environment)
        .bind(b.burn_1h)
        .bind(b.burn_6h)
        .bind(b.budget_remaining)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
